//! `ward request …`: the access requests people made from a refused page, and the requests
//! for more time from accounts past their end date; the officer lists them, approves one (it
//! becomes a grant, or a later end date) or denies it with a note.

use crate::users::directory;
use crate::users::grants::GrantStore;
use crate::users::requests::{self, RequestStore, Standing};
use crate::users::review::OFFICER_ROLE;
use crate::users::{Admin, SecretStore};
use std::path::Path;
use std::process::ExitCode;

/// `ward request …`.
#[derive(clap::Subcommand)]
pub enum RequestCommand {
    /// List the requests waiting for a decision (or all, with --all).
    List {
        /// Include decided requests.
        #[arg(long)]
        all: bool,
    },
    /// Approve a request: it becomes a grant for the time asked (or less, with --for).
    Approve {
        /// The request's id, from `ward request list`.
        id: String,
        /// Your own ward account (an officer; nobody approves their own request).
        #[arg(long)]
        officer: String,
        /// A shorter time than the person asked for, such as 2h.
        #[arg(long = "for")]
        duration: Option<String>,
        /// For a request for more time: an earlier last day than asked, YYYY-MM-DD.
        #[arg(long)]
        until: Option<String>,
    },
    /// Deny a request, with a note the person sees on their next visit.
    Deny {
        /// The request's id, from `ward request list`.
        id: String,
        /// Your own ward account (an officer; nobody decides on their own request).
        #[arg(long)]
        officer: String,
        /// Why, in words for the person.
        #[arg(long)]
        note: String,
    },
}

/// Runs one `ward request` command; prints for the officer; returns the exit code.
pub fn run(config: &Path, cmd: RequestCommand) -> ExitCode {
    match execute(config, cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ward request: {e}");
            ExitCode::FAILURE
        }
    }
}

fn when(t: i64) -> String {
    jiff::Timestamp::from_second(t)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| t.to_string())
}

/// The officer deciding: an account that can sign in now and has the officer role.
fn officer_account(users: &directory::Directory, name: &str, now: i64) -> Result<(), String> {
    match users.get(name) {
        Some(a)
            if a.usable_on(directory::today(now)) && a.roles.iter().any(|r| r == OFFICER_ROLE) =>
        {
            Ok(())
        }
        Some(_) => Err(format!(
            "--officer {name}: that account cannot sign in now or does not have the role '{OFFICER_ROLE}'"
        )),
        None => Err(format!(
            "--officer {name}: there is no account named '{name}'"
        )),
    }
}

fn execute(config: &Path, cmd: RequestCommand) -> Result<(), String> {
    let policy = crate::config::load(config, crate::config::Certs::Skip)
        .map_err(|d| format!("the policy has problems:\n{d}"))?
        .policy;
    let store = RequestStore::open(&policy.storage.state).map_err(|e| e.to_string())?;
    let now = crate::clock::unix_now();
    match cmd {
        RequestCommand::List { all } => {
            let list = store.read().map_err(|e| e.to_string())?;
            println!(
                "{:<9} {:<14} {:<32} {:<10} {:<22} {:<30} REASON",
                "ID", "USER", "WANTS", "FOR", "ASKED", "STATE"
            );
            for r in list.requests.iter().filter(|r| all || r.is_pending()) {
                let state = match &r.standing {
                    Standing::Pending => "waiting".to_string(),
                    Standing::Approved { by, until, .. } => {
                        format!("approved by {by} until {}", when(*until))
                    }
                    Standing::Denied { by, .. } => format!("denied by {by}"),
                };
                println!(
                    "{:<9} {:<14} {:<32} {:<10} {:<22} {:<30} {}",
                    r.id,
                    r.user,
                    r.wanted.describe(),
                    requests::wished_words(r),
                    when(r.made),
                    state,
                    r.reason
                );
            }
        }
        RequestCommand::Approve {
            id,
            officer,
            duration,
            until,
        } => {
            let users = directory::load(&policy.storage.users).map_err(|d| d.to_string())?;
            officer_account(&users, &officer, now)?;
            let all = store.read().map_err(|e| e.to_string())?;
            let asks_more_time = all.requests.iter().any(|r| {
                r.id == id
                    && r.is_pending()
                    && matches!(r.wanted, requests::Wanted::MoreTime { .. })
            });
            if asks_more_time || until.is_some() {
                return approve_more_time(&policy, &store, &users, &id, &officer, until, now);
            }
            let (r, g) =
                requests::check_approval(&all, &users, &id, &officer, duration.as_deref(), now)
                    .map_err(|e| e.to_string())?;
            let actor = format!("{officer} ({})", super::cli_actor());
            super::record_first(
                &policy,
                &actor,
                "request-approved",
                &r.user,
                Some(format!("{} ({})", g.id, g.reason)),
                format!(
                    "request {}: {} until {}",
                    r.id,
                    r.wanted.describe(),
                    when(g.end)
                ),
            )?;
            let not_made = |why: String| {
                super::record_not_made(&policy, &actor, "request-approved", &r.user, why)
            };
            let grant_store = GrantStore::open(&policy.storage.state).map_err(|e| e.to_string())?;
            requests::approve(&store, &grant_store, &r.id, &g, now)
                .map_err(|e| not_made(e.to_string()))?;
            println!(
                "Approved request {}: {} has {} until {} (grant {}).",
                r.id,
                r.user,
                r.wanted.describe(),
                when(g.end),
                g.id
            );
        }
        RequestCommand::Deny { id, officer, note } => {
            let users = directory::load(&policy.storage.users).map_err(|d| d.to_string())?;
            officer_account(&users, &officer, now)?;
            let all = store.read().map_err(|e| e.to_string())?;
            let (r, note) =
                requests::check_denial(&all, &id, &officer, &note).map_err(|e| e.to_string())?;
            let actor = format!("{officer} ({})", super::cli_actor());
            super::record_first(
                &policy,
                &actor,
                "request-denied",
                &r.user,
                None,
                format!("request {}: {} denied: {note}", r.id, r.wanted.describe()),
            )?;
            match requests::record_denial(&store, &r.id, &officer, &note, now) {
                Ok(true) => {}
                other => {
                    return Err(super::record_not_made(
                        &policy,
                        &actor,
                        "request-denied",
                        &r.user,
                        match other {
                            Err(e) => e.to_string(),
                            _ => format!("request '{}' was decided meanwhile", r.id),
                        },
                    ));
                }
            }
            println!(
                "Denied request {} of {}; they see your note on their next visit.",
                r.id, r.user
            );
        }
    }
    Ok(())
}

/// Approves request `id` for more time: the account's end date changes through the same code
/// as `ward user expire --on`, recorded first as an officer's change like it.
fn approve_more_time(
    policy: &crate::policy::Policy,
    store: &RequestStore,
    users: &directory::Directory,
    id: &str,
    officer: &str,
    until: Option<String>,
    now: i64,
) -> Result<(), String> {
    let all = store.read().map_err(|e| e.to_string())?;
    let (r, day) =
        requests::check_more_time_approval(&all, users, id, officer, until.as_deref(), now)
            .map_err(|e| e.to_string())?;
    let actor = format!("{officer} ({})", super::cli_actor());
    let words = format!(
        "request {}: {}; last day now {day}",
        r.id,
        r.wanted.describe()
    );
    super::record_first(
        policy,
        &actor,
        "request-approved",
        &r.user,
        None,
        words.clone(),
    )?;
    super::record_first(policy, &actor, "end-date-changed", &r.user, None, words)?;
    let secrets = SecretStore::open(&policy.storage.state).map_err(|e| e.to_string())?;
    let admin = Admin::new(&policy.storage.users, secrets, &policy.practice);
    let not_made =
        |why: String| super::record_not_made(policy, &actor, "end-date-changed", &r.user, why);
    admin
        .set_expiry(&r.user, Some(day))
        .map_err(|e| not_made(e.to_string()))?;
    match requests::record_extension(store, &r.id, officer, day, now) {
        Ok(true) => {}
        // Decided meanwhile (the console): the end date stands, as the officer set it.
        Ok(false) => println!(
            "Request {} was decided meanwhile; the end date is set anyway.",
            r.id
        ),
        Err(e) => return Err(not_made(e.to_string())),
    }
    println!(
        "Approved request {}: {}'s account now works until the end of {day}.",
        r.id, r.user
    );
    Ok(())
}
