//! The overview, the access review (HTML, printable, CSV), and the policy file with its state.

use super::{BASE, Ctx, Form, Notice, Section, blocking, download};
use crate::body::Body;
use crate::session::Stage;
use crate::users::Status;
use crate::users::accounts;
use crate::users::grants::GrantKind;
use crate::users::review::{self, DEFAULT_IDLE_DAYS, Review};
use crate::web::page::escape;
use http::{Response, StatusCode};
use std::collections::HashMap;
use std::fmt::Write as _;

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
    Ok(review::build(
        ctx.policy(),
        &snap.directory,
        &secrets,
        &live,
        ctx.now(),
        idle_days,
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
    let glass = in_force.len() - exports;
    let count = |n: usize, words: &str, link: &str| {
        format!("<div><strong>{n}</strong><a href=\"{BASE}{link}\">{words}</a></div>")
    };
    let mut h = String::new();
    let review = current_review(ctx, DEFAULT_IDLE_DAYS).await;
    match &review {
        Ok(r) if !r.warnings.is_empty() => {
            h.push_str("<div class=\"warnings\" role=\"alert\"><h2>Warnings</h2><ul>");
            for w in &r.warnings {
                let _ = write!(h, "<li>{}</li>", escape(w));
            }
            h.push_str("</ul></div>");
        }
        Ok(_) => {}
        Err(e) => {
            let _ = write!(
                h,
                "<div class=\"warnings\" role=\"alert\"><p>The access review could not be made: {}</p></div>",
                escape(e)
            );
        }
    }
    h.push_str("<h2>Accounts</h2><div class=\"counts\">");
    h.push_str(&count(active, "active", "users"));
    h.push_str(&count(expired, "past their end date", "users"));
    h.push_str(&count(deactivated, "deactivated", "users"));
    h.push_str(&count(terminated, "terminated", "users"));
    h.push_str("</div><h2>Now</h2><div class=\"counts\">");
    h.push_str(&count(standing, "live sessions", "sessions"));
    h.push_str(&count(people.len(), "people signed in", "sessions"));
    h.push_str(&count(emergency, "in emergency access", "sessions"));
    h.push_str(&count(exports, "export grants in force", "grants"));
    h.push_str(&count(glass, "break-glass grants in force", "grants"));
    h.push_str("</div>");
    if let Ok(r) = &review {
        h.push_str("<h2>From the access review</h2>");
        let summary = r.summary();
        if summary.is_empty() {
            h.push_str("<p>Nothing is flagged.</p>");
        } else {
            h.push_str("<ul>");
            for (_, _, words) in summary {
                let _ = write!(h, "<li>{}</li>", escape(&words));
            }
            h.push_str("</ul>");
        }
        let _ = write!(
            h,
            "<p><a href=\"{BASE}review\">Open the access review</a></p>"
        );
    }
    h.push_str(&policy_state(ctx));
    ctx.page(
        StatusCode::OK,
        Section::Overview,
        "Overview",
        &Notice::None,
        &h,
    )
}

/// Whether the policy file on disk is in force, and the accounts' problems.
fn policy_state(ctx: &Ctx<'_>) -> String {
    let rt = ctx.rt;
    let status = ctx.shared.store.status();
    let problems = ctx.shared.gate.accounts.problems();
    let loaded = humantime::format_rfc3339_seconds(rt.loaded_at).to_string();
    let mut h = format!(
        "<h2>Policy</h2><p>ward is using <code>{}</code>, loaded {} (UTC). <a href=\"{BASE}policy\">See the policy</a></p>",
        escape(&rt.policy.file.display().to_string()),
        escape(&loaded.replace('T', " ").replace('Z', "")),
    );
    match &status.stale {
        None => h.push_str("<p>The file on disk is the one in force.</p>"),
        Some(items) => {
            h.push_str("<div class=\"warnings\" role=\"alert\"><p><strong>The policy file on disk has problems</strong>, so ward is still using the version loaded before. Fix these (ward check shows them too):</p><ul>");
            for i in items {
                let _ = write!(h, "<li><code>{}</code></li>", escape(i));
            }
            h.push_str("</ul></div>");
        }
    }
    if problems.is_empty() {
        let _ = write!(
            h,
            "<p>The accounts file <code>{}</code> has no problems.</p>",
            escape(&rt.policy.storage.users.display().to_string())
        );
    } else {
        h.push_str("<div class=\"warnings\" role=\"alert\"><p><strong>The accounts file has problems:</strong></p><ul>");
        for p in problems.iter() {
            let _ = write!(h, "<li><code>{}</code></li>", escape(p));
        }
        h.push_str("</ul></div>");
    }
    h
}

/// `GET /.ward/officer/review[?idle_days=N]`.
pub(super) async fn review(ctx: &Ctx<'_>) -> Response<Body> {
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
    let h = format!(
        "<p>Every account with what it may do and how it has been used, for the periodic risk assessment. \
<a href=\"{BASE}review.csv?idle_days={days}\" download>Download as CSV</a> (for a spreadsheet) · \
<a href=\"{BASE}review.html?idle_days={days}\">Printable page</a> · from the command line: <code>ward report access</code>.</p>\
<form method=\"get\" action=\"{BASE}review\"><p><label for=\"idle_days\">Flag accounts unused for more than</label> \
<input id=\"idle_days\" name=\"idle_days\" type=\"number\" min=\"1\" max=\"3650\" value=\"{days}\" size=\"5\"> days \
<button type=\"submit\" class=\"quiet\">Update</button></p></form>{}{}",
        r.summary_html(),
        r.table_html(Some(&format!("{BASE}users/"))),
    );
    ctx.page(
        StatusCode::OK,
        Section::Review,
        "Access review",
        &Notice::None,
        &h,
    )
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
    let mut h = policy_state(ctx);
    match read {
        Some(Ok((text, warnings))) => {
            if !warnings.is_empty() {
                h.push_str("<h2>Warnings</h2><ul>");
                for w in &warnings {
                    let _ = write!(h, "<li><code>{}</code></li>", escape(w));
                }
                h.push_str("</ul>");
            }
            let _ = write!(
                h,
                "<h2>The file on disk</h2><p class=\"hint\">Edit it on the server; ward checks a saved change and uses it within a second if it has no problems. Line numbers match the places in problem messages.</p><pre class=\"file\" tabindex=\"0\" aria-label=\"The policy file, {} lines\">",
                text.lines().count()
            );
            let width = text.lines().count().to_string().len();
            for (i, line) in text.lines().enumerate() {
                let _ = writeln!(
                    h,
                    "<span class=\"ln\">{:>width$}</span>  {}",
                    i + 1,
                    escape(line)
                );
            }
            h.push_str("</pre>");
        }
        Some(Err(e)) => {
            let _ = write!(
                h,
                "<p role=\"alert\">The policy file cannot be read now: {}</p>",
                escape(&e.to_string())
            );
        }
        None => h.push_str("<p role=\"alert\">The policy file could not be read.</p>"),
    }
    ctx.page(StatusCode::OK, Section::Policy, "Policy", &Notice::None, &h)
}
