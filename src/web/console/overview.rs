//! The overview, the access review (HTML, printable, CSV), and the policy file with its state.

use super::{BASE, Ctx, Form, Notice, Section, blocking, download};
use crate::body::Body;
use crate::session::Stage;
use crate::users::Status;
use crate::users::accounts;
use crate::users::attestations::{self, AttestationStore};
use crate::users::grants::GrantKind;
use crate::users::review::{self, DEFAULT_IDLE_DAYS, Review};
use crate::web::kit::{PageOutcome, capital};
use http::{Response, StatusCode};
use maud::{Markup, html};
use std::collections::HashMap;

/// The review as of now, with live sessions counted as activity.
async fn current_review(ctx: &Ctx<'_>, idle_days: u32) -> Result<Review, String> {
    let snap = ctx.shared.gate.accounts.snapshot();
    let store = ctx.shared.gate.accounts.store().clone();
    let secrets = blocking(move || store.read())
        .await
        .ok_or("the secret store could not be read")?
        .map_err(|e| e.to_string())?;
    let mut live: HashMap<String, i64> = HashMap::new();
    for s in ctx.shared.gate.sessions.all() {
        if s.stage == Stage::Complete {
            let t = live.entry(s.user.clone()).or_default();
            *t = (*t).max(s.last_active());
        }
    }
    let signed = AttestationStore::open(&ctx.policy().storage.state)
        .map_err(|e| e.to_string())?
        .read_async()
        .await
        .map_err(|e| e.to_string())?;
    Ok(review::build(
        ctx.policy(),
        &snap.directory,
        &secrets,
        &live,
        ctx.now(),
        idle_days,
    )
    .with_attestations(
        &signed,
        ctx.policy().review.period.as_secs() as i64,
        &snap.directory,
    ))
}

/// `?idle_days=N` (1 to 3650), else the default.
fn idle_days(ctx: &Ctx<'_>) -> u32 {
    Form::from_query(ctx.req.query.as_deref())
        .get("idle_days")
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=3650).contains(n))
        .unwrap_or(DEFAULT_IDLE_DAYS)
}

/// `GET /.ward/officer/`.
pub(super) async fn overview(ctx: &Ctx<'_>) -> Response<Body> {
    let gate = &ctx.shared.gate;
    let snap = gate.accounts.snapshot();
    let policy = ctx.policy();
    let now = ctx.now();
    let today = accounts::today(now);
    let (mut active, mut expired, mut deactivated, mut terminated) = (0, 0, 0, 0);
    for a in snap.directory.accounts.values() {
        match a.status {
            Status::Active if a.usable_on(today) => active += 1,
            Status::Active => expired += 1,
            Status::Deactivated => deactivated += 1,
            Status::Terminated => terminated += 1,
        }
    }
    let sessions = gate.sessions.all();
    let mut standing = 0;
    let mut emergency = 0;
    let mut people = std::collections::BTreeSet::new();
    for s in &sessions {
        if s.stage != Stage::Complete {
            continue;
        }
        if let Ok(who) = accounts::identity_of(s, &snap, policy, now) {
            standing += 1;
            people.insert(who.user.clone());
            if who.emergency {
                emergency += 1;
            }
        }
    }
    let in_force: Vec<_> = snap
        .grants
        .grants
        .iter()
        .filter(|g| g.active(now))
        .collect();
    let exports = in_force
        .iter()
        .filter(|g| matches!(g.kind, GrantKind::Export { .. }))
        .count();
    let glass = in_force
        .iter()
        .filter(|g| matches!(g.kind, GrantKind::BreakGlass { .. }))
        .count();
    let access = in_force.len() - exports - glass;
    let count = |n: usize, words: &str, link: &str| {
        html! { div { strong { (n) } a href={ (BASE) (link) } { (words) } } }
    };
    let review = current_review(ctx, DEFAULT_IDLE_DAYS).await;
    let waiting = gate
        .accounts
        .request_store()
        .read_async()
        .await
        .map(|all| crate::users::requests::pending(&all).count())
        .unwrap_or(0);
    let overdue = review.as_ref().map_or(0, |r| {
        r.rows
            .iter()
            .filter(|row| row.flags.iter().any(|f| f.code() == "review-overdue"))
            .count()
    });
    let h = html! {
        @match &review {
            Ok(r) if !r.warnings.is_empty() => div.warnings role="alert" {
                h2 { "Warnings" }
                ul { @for w in &r.warnings { li { (w) } } }
            },
            Ok(_) => {},
            Err(e) => div.warnings role="alert" { p { "The access review could not be made: " (e) } },
        }
        h2 { "Accounts" }
        div.counts {
            (count(active, "active", "users"))
            (count(expired, "past their end date", "users"))
            (count(deactivated, "deactivated", "users"))
            (count(terminated, "terminated", "users"))
        }
        h2 { "Now" }
        div.counts {
            (count(standing, "live sessions", "sessions"))
            (count(people.len(), "people signed in", "sessions"))
            (count(emergency, "in emergency access", "sessions"))
            (count(exports, "export grants in force", "grants"))
            (count(access, "access grants in force", "grants"))
            (count(glass, "break-glass grants in force", "grants"))
            (count(waiting, "access requests waiting", "requests"))
            (count(overdue, "people whose access review is overdue", "review"))
        }
        @if let Ok(r) = &review {
            h2 { "From the access review" }
            @let summary = r.summary();
            @if summary.is_empty() {
                p { "Nothing is flagged." }
            } @else {
                ul { @for (_, _, words) in &summary { li { (words) } } }
            }
            p { a href={ (BASE) "review" } { "Open the access review" } }
        }
        (policy_state(ctx))
    };
    ctx.page(
        StatusCode::OK,
        Section::Overview,
        "Overview",
        &Notice::None,
        h,
    )
}

/// Whether the policy file on disk is in force, and the accounts' problems.
fn policy_state(ctx: &Ctx<'_>) -> Markup {
    let rt = ctx.rt;
    let status = ctx.shared.store.status();
    let problems = ctx.shared.gate.accounts.problems();
    let loaded = humantime::format_rfc3339_seconds(rt.loaded_at).to_string();
    html! {
        h2 { "Policy" }
        p {
            "ward is using " code { (rt.policy.file.display()) } ", loaded "
            (loaded.replace('T', " ").replace('Z', "")) " (UTC). "
            a href={ (BASE) "policy" } { "See the policy" }
        }
        @match &status.stale {
            None => p { "The file on disk is the one in force." },
            Some(items) => div.warnings role="alert" {
                p {
                    strong { "The policy file on disk has problems" }
                    ", so ward is still using the version loaded before. Fix these (ward check shows them too):"
                }
                ul { @for i in items { li { code { (i) } } } }
            },
        }
        @if problems.is_empty() {
            p { "The accounts file " code { (rt.policy.storage.users.display()) } " has no problems." }
        } @else {
            div.warnings role="alert" {
                p { strong { "The accounts file has problems:" } }
                ul { @for p in problems.iter() { li { code { (p) } } } }
            }
        }
    }
}

/// `GET /.ward/officer/review[?idle_days=N]`.
pub(super) async fn review(ctx: &Ctx<'_>, notice: Notice) -> Response<Body> {
    let days = idle_days(ctx);
    let r = match current_review(ctx, days).await {
        Ok(r) => r,
        Err(e) => {
            return ctx.refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "Access review",
                &format!("The access review could not be made: {e}"),
            );
        }
    };
    let h = html! {
        p {
            "Every account with what it may do and how it has been used, for the periodic risk assessment. "
            a href={ (BASE) "review.csv?idle_days=" (days) } download { "Download as CSV" }
            " (for a spreadsheet) · "
            a href={ (BASE) "review.html?idle_days=" (days) } { "Printable page" }
            " · from the command line: " code { "ward report access" } "."
        }
        form method="get" action={ (BASE) "review" } {
            p {
                label for="idle_days" { "Flag accounts unused for more than" }
                " "
                input #idle_days name="idle_days" type="number" min="1" max="3650" value=(days) size="5";
                " days "
                button.quiet type="submit" { "Update" }
            }
        }
        (r.summary_html())
        (r.table_html(Some(&format!("{BASE}users/"))))
        (sign_off_form(ctx, &r))
    };
    let status = notice.status();
    ctx.page(status, Section::Review, "Access review", &notice, h)
}

/// The form that signs off one person's access: keep, change or remove, with a note.
fn sign_off_form(ctx: &Ctx<'_>, r: &Review) -> Markup {
    let days = ctx.policy().review.period.as_secs() / 86_400;
    html! {
        section aria-labelledby="signoff-h" {
            h2 #signoff-h { "Sign off a person's access" }
            p { "Review each person at least every " (days) " days (the policy's [review] period): keep their access as it is, or note what must change or that it must go, then make the change on their page. Each sign-off is recorded with your name and the time, in the audit trail and on the printable review." }
            form.stack method="post" action={ (BASE) "review/attest" } {
                (ctx.csrf_field())
                p {
                    label for="attest-user" { "Person" } br;
                    select #attest-user name="user" required {
                        option value="" { "Choose a person" }
                        @for row in r.rows.iter().filter(|row| row.status == "active") {
                            option value=(row.name) { (row.name) " — " (row.display_name) }
                        }
                    }
                }
                fieldset {
                    legend { "Decision" }
                    @for (value, words) in [("keep", "Keep as it is"), ("change", "Change"), ("remove", "Remove")] {
                        label { input type="radio" name="decision" value=(value) required; " " (words) } " "
                    }
                }
                p {
                    label for="attest-note" { "Note (what to change, or why it goes)" } br;
                    textarea #attest-note name="note" rows="2" cols="50" maxlength="500" {}
                }
                p { button type="submit" { "Record the sign-off" } }
            }
        }
    }
}

/// `POST /.ward/officer/review/attest`.
pub(super) async fn attest(
    ctx: &Ctx<'_>,
    form: &Form,
    outcome: &mut PageOutcome,
) -> Response<Body> {
    let snap = ctx.shared.gate.accounts.snapshot();
    let user = form.get("user").trim().to_string();
    let a = match attestations::check(
        &snap.directory,
        &user,
        &ctx.officer,
        form.get("decision"),
        form.get("note"),
        ctx.now(),
    ) {
        Ok(a) => a,
        Err(e) => return review(ctx, Notice::Problem(capital(&e.to_string()))).await,
    };
    let detail = if a.note.is_empty() {
        format!("access review: {}", a.decision.as_str())
    } else {
        format!("access review: {}: {}", a.decision.as_str(), a.note)
    };
    let warn = match ctx
        .record_first(outcome, "access-attested", Some(&a.user), detail, |x| x)
        .await
    {
        Ok(warn) => warn,
        Err(refused) => return refused,
    };
    let state = ctx.policy().storage.state.clone();
    let saving = a.clone();
    let saved = blocking(move || {
        AttestationStore::open(&state)
            .map_err(attestations::AttestError::from)
            .and_then(|s| attestations::save(&s, &saving))
    })
    .await;
    let why = match saved {
        Some(Ok(())) => None,
        Some(Err(e)) => Some(capital(&e.to_string())),
        None => Some("The sign-off could not be saved; try again.".to_string()),
    };
    if let Some(why) = why {
        ctx.record_not_made("access-attested", Some(&a.user), &why)
            .await;
        return review(ctx, Notice::Problem(why)).await;
    }
    let mut words = format!(
        "Recorded: {} — {} (signed off by {}).",
        a.user,
        a.decision.as_str(),
        a.by
    );
    if a.decision != attestations::Decision::Keep {
        words.push_str(" Now make the change on their page.");
    }
    if let Some(w) = warn {
        words.push('\n');
        words.push_str(&w);
    }
    review(ctx, Notice::Done(words)).await
}

/// `GET /.ward/officer/review.csv`.
pub(super) async fn review_csv(ctx: &Ctx<'_>) -> Response<Body> {
    match current_review(ctx, idle_days(ctx)).await {
        Ok(r) => {
            let day = accounts::today(ctx.now());
            download(
                "text/csv; charset=utf-8",
                &format!("access-review-{day}.csv"),
                r.csv(),
            )
        }
        Err(e) => ctx.refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "Access review",
            &format!("The access review could not be made: {e}"),
        ),
    }
}

/// `GET /.ward/officer/review.html`: the standalone, printable review.
pub(super) async fn review_printable(ctx: &Ctx<'_>) -> Response<Body> {
    match current_review(ctx, idle_days(ctx)).await {
        Ok(r) => super::html_response(StatusCode::OK, r.standalone_html(review::Styles::Served)),
        Err(e) => ctx.refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "Access review",
            &format!("The access review could not be made: {e}"),
        ),
    }
}

/// `GET /.ward/officer/policy`: the file's text and its validation state.
pub(super) async fn policy(ctx: &Ctx<'_>) -> Response<Body> {
    let file = ctx.policy().file.clone();
    let read = blocking(move || {
        let text = std::fs::read_to_string(&file)?;
        // The warnings a load would print (certificates are not needed for those).
        let warnings = match crate::config::load_str(&file, &text, crate::config::Certs::Skip) {
            Ok(l) => l
                .warnings
                .items
                .iter()
                .map(|i| l.warnings.format(i))
                .collect(),
            Err(_) => Vec::new(),
        };
        Ok::<_, std::io::Error>((text, warnings))
    })
    .await;
    let h = html! {
        (policy_state(ctx))
        @match read {
            Some(Ok((text, warnings))) => {
                @if !warnings.is_empty() {
                    h2 { "Warnings" }
                    ul { @for w in &warnings { li { code { (w) } } } }
                }
                h2 { "The file on disk" }
                p.hint { "Edit it on the server; ward checks a saved change and uses it within a second if it has no problems. Line numbers match the places in problem messages." }
                @let width = text.lines().count().to_string().len();
                pre.file tabindex="0" aria-label={ "The policy file, " (text.lines().count()) " lines" } {
                    @for (i, line) in text.lines().enumerate() {
                        span.ln { (format!("{:>width$}", i + 1)) }
                        "  " (line) "\n"
                    }
                }
            },
            Some(Err(e)) => p role="alert" { "The policy file cannot be read now: " (e) },
            None => p role="alert" { "The policy file could not be read." },
        }
    };
    ctx.page(StatusCode::OK, Section::Policy, "Policy", &Notice::None, h)
}
