//! The `ward` command's subcommands, one file each; `main.rs` parses and dispatches to them.

pub mod audit;
pub mod check;
pub mod demo;
pub mod explain;
pub mod grant;
pub mod report;
pub mod request;
pub mod schema;
pub mod serve;
pub mod totp;
pub mod user;

/// Who is acting (granting, changing an account), as the operating system knows them.
pub fn cli_actor() -> String {
    let who = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into());
    format!("officer (command line, {who})")
}

/// Writes the audit record of an officer's change made from the command line, before the
/// change: when it cannot be written and the policy says refuse, nothing may be changed
/// (the words say so). `actor` is who acted; `grant` the grant (id and reason), if any.
pub fn record_first(
    policy: &crate::policy::Policy,
    actor: &str,
    event: &'static str,
    user: &str,
    grant: Option<String>,
    detail: String,
) -> Result<(), String> {
    let mut r = crate::audit::Record::officer(actor.to_string(), event)
        .user(user.to_string())
        .detail(detail);
    if let Some(g) = grant {
        r = r.grant(g);
    }
    match crate::audit::append_blocking_with(&policy.audit, r) {
        Ok(()) => Ok(()),
        Err(e) if policy.audit.on_failure == crate::audit::OnFailure::Continue => {
            eprintln!(
                "ward: the audit trail cannot record this change ({e}); making it anyway, as the policy's [audit] on_failure = \"continue\" allows"
            );
            Ok(())
        }
        Err(e) => Err(format!(
            "nothing was changed, because the audit trail cannot record the change: {e}"
        )),
    }
}

/// After `record_first`: the change failed, so the trail says it was not made. Returns `why`.
pub fn record_not_made(
    policy: &crate::policy::Policy,
    actor: &str,
    event: &'static str,
    user: &str,
    why: String,
) -> String {
    let r = crate::audit::Record::officer(actor.to_string(), "change-failed")
        .user(user.to_string())
        .detail(format!("{event} was not made: {why}"));
    if let Err(e) = crate::audit::append_blocking_with(&policy.audit, r) {
        eprintln!("ward: the audit trail cannot record that the change failed: {e}");
    }
    why
}
