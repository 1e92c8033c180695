//! Live sessions (who, from where, since when; end one or all of a person's) and the incident
//! lock-down (end every session of an organization, or of everyone but the officers).

use super::{BASE, Ctx, Form, Notice, OFFICER_ROLE, Section, ago, blocking, head_row, none, when};
use crate::body::Body;
use crate::session::Stage;
use crate::users::accounts;
use crate::users::{Admin, Directory, Status};
use crate::web::kit::PageOutcome;
use http::Response;
use maud::html;
use std::fmt::Write as _;

/// `GET /.ward/officer/sessions`.
pub(super) fn list(ctx: &Ctx<'_>, notice: Notice) -> Response<Body> {
    let gate = &ctx.shared.gate;
    let snap = gate.accounts.snapshot();
    let policy = ctx.policy();
    let now = ctx.now();
    let all = gate.sessions.all();
    let csrf = ctx.csrf_field();
    let h = html! {
        p {
            "Everyone signed in now, oldest first. Ending a session sends that browser to the sign-in page at its next click; the person can sign in again unless you also "
            a href={ (BASE) "users" } { "deactivate" }
            " the account. For an incident, "
            a href={ (BASE) "lockdown" } { "lock down" }
            " a whole organization."
        }
        table {
            caption { "Live sessions (" (all.len()) ")" }
            (head_row(&["Person", "Name", "From", "Since", "Last activity", "State", "Emergency", "End"]))
            tbody {
                @for s in &all {
                    @let (state, emergency) = match s.stage {
                        Stage::NeedsMfa => ("signing in (second step owed)".to_string(), false),
                        Stage::Complete => match accounts::identity_of(s, &snap, policy, now) {
                            Ok(who) => ("signed in".to_string(), who.emergency),
                            Err(why) => (format!("ending ({})", why.code()), false),
                        },
                    };
                    tr {
                        th scope="row" {
                            a href={ (BASE) "users/" (s.user) } { (s.user) }
                            @if s.public_id == ctx.session.public_id { " " strong { "(you, here)" } }
                        }
                        td {
                            @match snap.directory.get(&s.user) {
                                Some(a) => (a.display_name),
                                None => (none()),
                            }
                        }
                        td { (s.client_ip) }
                        td { (when(s.created)) }
                        td { (ago(now, s.last_active())) }
                        td { (state) }
                        td { @if emergency { strong { "yes (break-glass)" } } @else { "no" } }
                        td {
                            form method="post" action={ (BASE) "sessions/end" } {
                                (csrf)
                                input type="hidden" name="session" value=(s.public_id);
                                button.quiet type="submit" aria-label={ "End this session of " (s.user) } { "End this session" }
                            }
                            " "
                            form method="post" action={ (BASE) "sessions/end-user" } {
                                (csrf)
                                input type="hidden" name="user" value=(s.user);
                                button.quiet type="submit" { "End all of " (s.user) "'s sessions" }
                            }
                        }
                    }
                }
                @if all.is_empty() {
                    tr { td colspan="8" { "Nobody is signed in." } }
                }
            }
        }
    };
    let status = notice.status();
    ctx.page(status, Section::Sessions, "Live sessions", &notice, h)
}

/// `POST /.ward/officer/sessions/end`: ends one session by its public id.
pub(super) async fn end_one(
    ctx: &Ctx<'_>,
    form: &Form,
    outcome: &mut PageOutcome,
) -> Response<Body> {
    let id = form.get("session");
    let sessions = &ctx.shared.gate.sessions;
    let owner = sessions
        .all()
        .into_iter()
        .find(|s| crate::auth::codes::ct_eq(&s.public_id, id))
        .map(|s| s.user.clone());
    let (Some(user), true) = (owner, !id.is_empty() && sessions.remove_public(id)) else {
        return list(
            ctx,
            Notice::Problem("That session had already ended.".into()),
        );
    };
    let warn = ctx
        .audit(
            outcome,
            "session-ended",
            Some(&user),
            format!("ended session {id}"),
            |r| r,
        )
        .await;
    let mut words = format!(
        "The session of {user} has ended; that browser goes to the sign-in page at its next click."
    );
    if let Some(w) = warn {
        words.push('\n');
        words.push_str(&w);
    }
    list(ctx, Notice::Done(words))
}

/// `POST /.ward/officer/sessions/end-user`: ends every session of one person.
pub(super) async fn end_user(
    ctx: &Ctx<'_>,
    form: &Form,
    outcome: &mut PageOutcome,
) -> Response<Body> {
    let user = form.get("user").to_string();
    if crate::users::directory::check_name(&user).is_err() {
        return list(ctx, Notice::Problem("No such person.".into()));
    }
    let n = ctx.shared.gate.sessions.remove_user(&user);
    let warn = ctx
        .audit(
            outcome,
            "sessions-ended",
            Some(&user),
            format!("ended all {n} sessions"),
            |r| r,
        )
        .await;
    let mut words = match n {
        0 => format!("{user} had no live sessions."),
        1 => format!("{user}'s session has ended."),
        n => format!("All {n} of {user}'s sessions have ended."),
    };
    if let Some(w) = warn {
        words.push('\n');
        words.push_str(&w);
    }
    if form.get("back") == "person" {
        return super::people::person(ctx, &user, Notice::Done(words)).await;
    }
    list(ctx, Notice::Done(words))
}

/// The organizations named in users.toml, each spelled as first written, with its people.
fn organizations(dir: &Directory) -> Vec<(String, Vec<String>)> {
    let mut orgs: Vec<(String, Vec<String>)> = Vec::new();
    for a in dir.accounts.values() {
        let Some(org) = a.org.as_deref().map(str::trim).filter(|o| !o.is_empty()) else {
            continue;
        };
        match orgs.iter_mut().find(|(o, _)| o.eq_ignore_ascii_case(org)) {
            Some((_, people)) => people.push(a.name.clone()),
            None => orgs.push((org.to_string(), vec![a.name.clone()])),
        }
    }
    orgs.sort_by_key(|(o, _)| o.to_ascii_lowercase());
    orgs
}

fn is_officer(dir: &Directory, user: &str) -> bool {
    dir.get(user)
        .is_some_and(|a| a.roles.iter().any(|r| r == OFFICER_ROLE))
}

/// `GET /.ward/officer/lockdown`.
pub(super) fn lockdown_form(ctx: &Ctx<'_>, notice: Notice) -> Response<Body> {
    let gate = &ctx.shared.gate;
    let snap = gate.accounts.snapshot();
    let all = gate.sessions.all();
    let live = |people: &[String]| all.iter().filter(|s| people.contains(&s.user)).count();
    let plural = |n: usize, one: &'static str, many: &'static str| if n == 1 { one } else { many };
    let others = all
        .iter()
        .filter(|s| !is_officer(&snap.directory, &s.user))
        .count();
    let h = html! {
        p {
            "For an incident: end at once every session of one organization (a vendor whose staff or systems may be compromised), or of everyone but the officers. People can sign in again unless their accounts are deactivated, so for a vendor tick \"also deactivate\" as well; reactivate the accounts one by one on the "
            a href={ (BASE) "users" } { "People" }
            " page when it is over."
        }
        form.stack method="post" action={ (BASE) "lockdown" } {
            (ctx.csrf_field())
            fieldset {
                legend { "Whose sessions end" }
                @for (i, (org, people)) in organizations(&snap.directory).iter().enumerate() {
                    div {
                        input type="radio" id={ "org-" (i) } name="scope" value={ "org:" (org) } required;
                        " "
                        label for={ "org-" (i) } { "Everyone from " strong { (org) } }
                        " "
                        span.hint {
                            "(" (people.len()) " " (plural(people.len(), "person", "people")) ", "
                            (live(people)) " live " (plural(live(people), "session", "sessions")) ")"
                        }
                    }
                }
                div {
                    input #everyone type="radio" name="scope" value="everyone" required;
                    " "
                    label for="everyone" { "Everyone except the officers" }
                    " "
                    span.hint { "(" (others) " live " (plural(others, "session", "sessions")) ")" }
                }
            }
            p {
                input #deactivate type="checkbox" name="deactivate" value="yes";
                " "
                label for="deactivate" { "Also deactivate the organization's accounts" }
                " "
                span.hint { "(an organization only)" }
            }
            p {
                input #confirm type="checkbox" name="confirm" value="yes" required;
                " "
                label for="confirm" { "Yes, end these sessions now" }
            }
            p { button.danger type="submit" { "Lock down" } }
        }
    };
    let status = notice.status();
    ctx.page(status, Section::Lockdown, "Lock down", &notice, h)
}

/// `POST /.ward/officer/lockdown`.
pub(super) async fn lockdown(
    ctx: &Ctx<'_>,
    form: &Form,
    outcome: &mut PageOutcome,
) -> Response<Body> {
    if form.get("confirm") != "yes" {
        return lockdown_form(
            ctx,
            Notice::Problem("Nothing was done: tick the box to confirm the lock-down.".into()),
        );
    }
    let gate = &ctx.shared.gate;
    let snap = gate.accounts.snapshot();
    let scope = form.get("scope");
    if scope == "everyone" {
        let mut ended = 0;
        let mut people = std::collections::BTreeSet::new();
        for s in gate.sessions.all() {
            if !is_officer(&snap.directory, &s.user) && gate.sessions.remove_public(&s.public_id) {
                ended += 1;
                people.insert(s.user.clone());
            }
        }
        let warn = ctx
            .audit(
                outcome,
                "lock-down",
                None,
                format!(
                    "ended {ended} sessions of {} people: everyone except the officers",
                    people.len()
                ),
                |r| r,
            )
            .await;
        let mut words = format!(
            "Lock-down: {ended} sessions of {} people ended; only the officers are still signed in.",
            people.len()
        );
        if let Some(w) = warn {
            words.push('\n');
            words.push_str(&w);
        }
        return lockdown_form(ctx, Notice::Done(words));
    }
    let Some(wanted) = scope.strip_prefix("org:") else {
        return lockdown_form(
            ctx,
            Notice::Problem("Nothing was done: choose whose sessions end.".into()),
        );
    };
    let Some((org, people)) = organizations(&snap.directory)
        .into_iter()
        .find(|(o, _)| o.eq_ignore_ascii_case(wanted.trim()))
    else {
        return lockdown_form(
            ctx,
            Notice::Problem(format!(
                "Nothing was done: no account names the organization '{wanted}'."
            )),
        );
    };
    // Ending sessions only takes access away, and an incident cannot wait for a broken
    // trail: it happens first. Deactivating changes accounts, so it waits for its record.
    let mut ended = 0;
    for p in &people {
        ended += gate.sessions.remove_user(p);
    }
    let to_deactivate: Vec<String> = if form.get("deactivate") == "yes" {
        people
            .iter()
            .filter(|n| {
                snap.directory
                    .get(n)
                    .is_some_and(|a| a.status == Status::Active)
            })
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    let mut detail = format!(
        "ended {ended} sessions of the {} people of organization {org}",
        people.len()
    );
    if !to_deactivate.is_empty() {
        let _ = write!(detail, "; deactivating {}", to_deactivate.join(", "));
    }
    let org_for_record = org.clone();
    let recorded = ctx
        .record_first(outcome, "lock-down", None, detail, move |r| {
            r.org(org_for_record)
        })
        .await;
    let (warn, may_deactivate) = match recorded {
        Ok(warn) => (warn, true),
        Err(_) if to_deactivate.is_empty() => (
            Some("The sessions ended, but the audit trail could not record it. Tell the practice's IT contact.".to_string()),
            false,
        ),
        Err(_) => (
            Some(
                "The audit trail cannot record changes, so no account was deactivated. Tell the practice's IT contact, and deactivate them when it is fixed."
                    .to_string(),
            ),
            false,
        ),
    };
    let mut deactivated = Vec::new();
    let mut failed = Vec::new();
    if may_deactivate && !to_deactivate.is_empty() {
        let p = ctx.policy();
        let admin = Admin::new(&p.storage.users, gate.accounts.store().clone(), &p.practice);
        let results = blocking(move || {
            to_deactivate
                .into_iter()
                .map(|n| {
                    let r = admin.deactivate(&n).map_err(|e| e.to_string());
                    (n, r)
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        for (n, r) in results {
            match r {
                Ok(()) => deactivated.push(n),
                Err(e) => {
                    ctx.record_not_made("user-deactivated", Some(&n), &e).await;
                    failed.push(format!("{n}: {e}"));
                }
            }
        }
        ctx.reload_accounts();
        // Deactivating bumped their credentials: anything that slipped in meanwhile ends too.
        for n in &deactivated {
            gate.sessions.remove_user(n);
        }
    }
    let mut words = format!(
        "Lock-down of {org}: {ended} {} ended.",
        if ended == 1 { "session" } else { "sessions" }
    );
    if !deactivated.is_empty() {
        let _ = write!(
            words,
            " Deactivated: {}. Reactivate them on their pages when the incident is over.",
            deactivated.join(", ")
        );
    }
    let mut notice_problem = !may_deactivate && form.get("deactivate") == "yes";
    if !failed.is_empty() {
        notice_problem = true;
        let _ = write!(words, "\nNot deactivated: {}", failed.join("; "));
    }
    if let Some(w) = warn {
        words.push('\n');
        words.push_str(&w);
    }
    lockdown_form(
        ctx,
        if notice_problem {
            Notice::Problem(words)
        } else {
            Notice::Done(words)
        },
    )
}
