//! `ward grant …`: the officer's time-limited exceptions (exports, break-glass).

use super::cli_actor;
use crate::users::directory;
use crate::users::grants::{self, Grant, GrantKind, GrantStore};
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
    crate::clock::unix_now()
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
    let check_user =
        |name: &str| grants::check_grantee(&users, name, now()).map_err(|e| e.to_string());
    // Every grant and revocation goes in the audit trail, as the console's do, and first:
    // when the record cannot be written and the policy says refuse, nothing is changed.
    let actor = cli_actor();
    let record_first = |event: &'static str, user: &str, grant: &str, detail: String| {
        super::record_first(
            &policy,
            &actor,
            event,
            user,
            Some(grant.to_string()),
            detail,
        )
    };
    // A change that failed after its record: the trail says so.
    let not_made = |event: &'static str, user: &str, why: String| {
        super::record_not_made(&policy, &actor, event, user, why)
    };
    let save = |event: &'static str, g: &Grant| {
        grants::save(&store, g).map_err(|why| not_made(event, &g.user, why.to_string()))
    };
    match cmd {
        GrantCommand::Export {
            user,
            route,
            duration,
            reason,
        } => {
            let g = grants::check_export(
                &users,
                grants::ExportRequest {
                    user: &user,
                    route: &route,
                    duration: &duration,
                    reason: &reason,
                    granted_by: &cli_actor(),
                },
                now(),
            )
            .map_err(|e| match e {
                grants::GrantError::Route(why) => format!("--route: {why}"),
                e => e.to_string(),
            })?;
            record_first(
                "grant-issued",
                &user,
                &format!("{} ({})", g.id, g.reason),
                format!("export from {route} until {}", when(g.end)),
            )?;
            save("grant-issued", &g)?;
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
                Some(d) => grants::parse_span(&d).map_err(|e| e.to_string())?,
                None => bg.duration.as_secs() as i64,
            };
            let g = grants::new_grant(
                &user,
                GrantKind::BreakGlass {
                    roles: bg.emergency_roles.clone(),
                },
                grants::check_reason(&reason).map_err(|e| e.to_string())?,
                &cli_actor(),
                now(),
                secs,
            )
            .map_err(|e| e.to_string())?;
            record_first(
                "break-glass",
                &user,
                &format!("{} ({})", g.id, g.reason),
                format!(
                    "emergency roles {} until {}",
                    bg.emergency_roles.join(", "),
                    when(g.end)
                ),
            )?;
            save("break-glass", &g)?;
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
                let (kind, what) = g.kind.describe();
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
            let Some(g) = grants::unrevoked(&store, &id).map_err(|e| e.to_string())? else {
                return Err(format!(
                    "no grant '{id}' in force; see `ward grant list --all`"
                ));
            };
            record_first(
                "grant-revoked",
                &g.user,
                &g.id,
                "revoked before its end".into(),
            )?;
            match grants::revoke(&store, &id, now()) {
                Ok(Some(_)) => println!("Revoked grant {id}."),
                Ok(None) => {
                    return Err(not_made(
                        "grant-revoked",
                        &g.user,
                        format!("grant '{id}' was revoked meanwhile"),
                    ));
                }
                Err(why) => return Err(not_made("grant-revoked", &g.user, why.to_string())),
            }
        }
    }
    Ok(())
}
