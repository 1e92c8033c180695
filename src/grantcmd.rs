//! `ward grant …`: the officer's time-limited exceptions (exports, break-glass).

use crate::accounts::today;
use crate::grants::{self, Grant, GrantKind, GrantStore};
use crate::users::directory;
use std::path::Path;
use std::process::ExitCode;

/// `ward grant …`.
#[derive(clap::Subcommand)]
pub enum GrantCommand {
    /// Let a person export (download) from routes matching a pattern, for a while.
    Export {
        /// The person.
        #[arg(long)]
        user: String,
        /// A route pattern, such as /reports/**.
        #[arg(long)]
        route: String,
        /// How long, such as 2h or 30m (at most 30 days).
        #[arg(long = "for")]
        duration: String,
        /// Why (kept in the audit trail with every export under this grant).
        #[arg(long)]
        reason: String,
    },
    /// Start emergency (break-glass) access for a person: the policy's emergency roles.
    BreakGlass {
        /// The person.
        #[arg(long)]
        user: String,
        /// Why.
        #[arg(long)]
        reason: String,
        /// How long (default: the policy's [break_glass] duration).
        #[arg(long = "for")]
        duration: Option<String>,
    },
    /// List grants in force (or all, with --all).
    List {
        /// Include expired and revoked grants.
        #[arg(long)]
        all: bool,
    },
    /// End a grant now.
    Revoke {
        /// The grant's id, from `ward grant list`.
        id: String,
    },
}

/// Runs one `ward grant` command; prints for the officer; returns the exit code.
pub fn run(config: &Path, cmd: GrantCommand) -> ExitCode {
    match execute(config, cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ward grant: {e}");
            ExitCode::FAILURE
        }
    }
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Who is granting, as the operating system knows them.
pub fn cli_actor() -> String {
    let who = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into());
    format!("officer (command line, {who})")
}

fn when(t: i64) -> String {
    jiff::Timestamp::from_second(t)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| t.to_string())
}

fn execute(config: &Path, cmd: GrantCommand) -> Result<(), String> {
    let policy = crate::config::load(config, crate::config::Certs::Skip)
        .map_err(|d| format!("the policy has problems:\n{d}"))?
        .policy;
    let store = GrantStore::open(&policy.storage.state).map_err(|e| e.to_string())?;
    let users = directory::load(&policy.storage.users).map_err(|d| d.to_string())?;
    let check_user = |name: &str| -> Result<(), String> {
        match users.get(name) {
            Some(a) if a.usable_on(today(now())) => Ok(()),
            Some(_) => Err(format!(
                "{name} cannot sign in (deactivated, terminated or past the end date)"
            )),
            None => Err(format!("there is no account named '{name}'")),
        }
    };
    let reason_ok = |reason: &str| -> Result<String, String> {
        let r = reason.trim();
        if r.chars().count() < 10 {
            return Err("give a reason of a few words (it goes in the audit trail)".into());
        }
        Ok(r.chars().take(500).collect())
    };
    let span = |text: &str| -> Result<i64, String> {
        let d = humantime::parse_duration(text.trim())
            .map_err(|_| format!("'{text}' is not a length of time; write it like 30m or 2h"))?;
        if d.is_zero() || d.as_secs() > 30 * 24 * 3600 {
            return Err("a grant lasts more than zero and at most 30 days".into());
        }
        Ok(d.as_secs() as i64)
    };
    let add = |user: &str, kind: GrantKind, reason: String, secs: i64| -> Result<Grant, String> {
        let start = now();
        let grant = Grant {
            id: grants::new_id().map_err(|e| e.to_string())?,
            user: user.to_string(),
            kind,
            reason,
            granted_by: cli_actor(),
            start,
            end: start + secs,
            revoked: None,
        };
        store
            .update(|g| g.grants.push(grant.clone()))
            .map_err(|e| e.to_string())?;
        Ok(grant)
    };
    match cmd {
        GrantCommand::Export {
            user,
            route,
            duration,
            reason,
        } => {
            check_user(&user)?;
            crate::policy::routes::Pattern::parse(&route, false)
                .map_err(|e| format!("--route: {e}"))?;
            let g = add(
                &user,
                GrantKind::Export {
                    route: route.clone(),
                },
                reason_ok(&reason)?,
                span(&duration)?,
            )?;
            println!(
                "Granted {}: {user} may export from {route} until {} (grant {}).",
                g.id,
                when(g.end),
                g.id
            );
        }
        GrantCommand::BreakGlass {
            user,
            reason,
            duration,
        } => {
            check_user(&user)?;
            let bg = policy.break_glass.as_ref().ok_or(
                "the policy has no [break_glass] section, so there are no emergency roles to give",
            )?;
            let secs = match duration {
                Some(d) => span(&d)?,
                None => bg.duration.as_secs() as i64,
            };
            let g = add(
                &user,
                GrantKind::BreakGlass {
                    roles: bg.emergency_roles.clone(),
                },
                reason_ok(&reason)?,
                secs,
            )?;
            println!(
                "Emergency access for {user}: roles {} until {} (grant {}).",
                bg.emergency_roles.join(", "),
                when(g.end),
                g.id
            );
        }
        GrantCommand::List { all } => {
            let list = store.read().map_err(|e| e.to_string())?;
            let t = now();
            println!(
                "{:<9} {:<14} {:<12} {:<24} {:<26} REASON",
                "ID", "USER", "KIND", "WHAT", "UNTIL"
            );
            for g in list.grants.iter().filter(|g| all || g.active(t)) {
                let (kind, what) = match &g.kind {
                    GrantKind::Export { route } => ("export", route.clone()),
                    GrantKind::BreakGlass { roles } => ("break-glass", roles.join(",")),
                };
                let until = match g.revoked {
                    Some(r) => format!("revoked {}", when(r)),
                    None => when(g.end),
                };
                println!(
                    "{:<9} {:<14} {:<12} {:<24} {:<26} {}",
                    g.id, g.user, kind, what, until, g.reason
                );
            }
        }
        GrantCommand::Revoke { id } => {
            let t = now();
            let found = store
                .update(|g| {
                    match g
                        .grants
                        .iter_mut()
                        .find(|x| x.id == id && x.revoked.is_none())
                    {
                        Some(x) => {
                            x.revoked = Some(t);
                            true
                        }
                        None => false,
                    }
                })
                .map_err(|e| e.to_string())?;
            if !found {
                return Err(format!(
                    "no grant '{id}' in force; see `ward grant list --all`"
                ));
            }
            println!("Revoked grant {id}.");
        }
    }
    Ok(())
}
