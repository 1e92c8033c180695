//! Grants: the export and break-glass grants in force (or all), a form to let a person export
//! for a while, and revoking — by the same rules as `ward grant`.

use super::{BASE, Ctx, Form, Notice, Section, blocking, head_row, when};
use crate::body::Body;
use crate::users::grants::{self, Grant, GrantKind};
use crate::web::kit::PageOutcome;
use crate::web::page::escape;
use http::{Response, StatusCode};
use std::fmt::Write as _;

/// Values of the export form, to show again after a refusal.
#[derive(Default)]
pub(super) struct ExportValues {
    user: String,
    route: String,
    duration: String,
    reason: String,
}

/// `GET /.ward/officer/grants[?all=1]`.
pub(super) fn list(ctx: &Ctx<'_>, notice: Notice, refill: Option<ExportValues>) -> Response<Body> {
    let show_all = super::Form::from_query(ctx.req.query.as_deref()).get("all") == "1";
    let snap = ctx.shared.gate.accounts.snapshot();
    let now = ctx.now();
    let shown: Vec<&Grant> = snap
        .grants
        .grants
        .iter()
        .rev()
        .filter(|g| show_all || g.active(now))
        .collect();
    let csrf = ctx.csrf_field();
    let mut h = String::from(
        "<p>Grants are time-limited exceptions: an export grant lets one person download from the pages a route pattern names; \
break-glass grants are the emergency access people start themselves. Every request under a grant is marked in the audit trail.</p>",
    );
    let _ = write!(
        h,
        "<p>{}</p><table><caption>{} ({})</caption>{}<tbody>",
        if show_all {
            format!("<a href=\"{BASE}grants\">Show only the grants in force</a>")
        } else {
            format!("<a href=\"{BASE}grants?all=1\">Show all grants, also ended ones</a>")
        },
        if show_all {
            "Every grant, newest first"
        } else {
            "Grants in force"
        },
        shown.len(),
        head_row(&[
            "Grant",
            "Person",
            "Kind",
            "What",
            "From",
            "Until",
            "Granted by",
            "Reason",
            "State",
        ])
    );
    for g in &shown {
        let (kind, what) = match &g.kind {
            GrantKind::Export { route } => ("export", route.clone()),
            GrantKind::BreakGlass { roles } => {
                ("break-glass", format!("roles {}", roles.join(", ")))
            }
        };
        let state = match g.revoked {
            Some(t) => format!("revoked {}", escape(&when(t))),
            None if g.end <= now => "ended".to_string(),
            None if g.start > now => "not started".to_string(),
            None => format!(
                "<form method=\"post\" action=\"{BASE}grants/revoke\">{csrf}<input type=\"hidden\" name=\"id\" value=\"{id}\">\
<button type=\"submit\" class=\"quiet\" aria-label=\"Revoke grant {id}\">Revoke now</button></form>",
                id = escape(&g.id)
            ),
        };
        let _ = write!(
            h,
            "<tr><th scope=\"row\"><code>{}</code></th><td><a href=\"{BASE}users/{u}\">{u}</a></td><td>{kind}</td><td>{}</td>\
<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{state}</td></tr>",
            escape(&g.id),
            escape(&what),
            escape(&when(g.start)),
            escape(&when(g.end)),
            escape(&g.granted_by),
            escape(&g.reason),
            u = escape(&g.user),
        );
    }
    if shown.is_empty() {
        h.push_str("<tr><td colspan=\"9\">No grants.</td></tr>");
    }
    h.push_str("</tbody></table>");
    h.push_str(&export_form(ctx, &refill.unwrap_or_default()));
    let status = if notice.is_problem() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    ctx.page(status, Section::Grants, "Grants", &notice, &h)
}

fn export_form(ctx: &Ctx<'_>, v: &ExportValues) -> String {
    let snap = ctx.shared.gate.accounts.snapshot();
    let today = crate::users::accounts::today(ctx.now());
    let mut people = String::from("<option value=\"\">Choose a person</option>");
    for a in snap
        .directory
        .accounts
        .values()
        .filter(|a| a.usable_on(today))
    {
        let sel = if a.name == v.user { " selected" } else { "" };
        let _ = write!(
            people,
            "<option value=\"{n}\"{sel}>{n} — {d}</option>",
            n = escape(&a.name),
            d = escape(&a.display_name)
        );
    }
    let mut routes = String::from("<datalist id=\"routes\">");
    let mut seen = Vec::new();
    for r in &ctx.policy().routes {
        if !seen.contains(&&r.path) {
            seen.push(&r.path);
            let _ = write!(routes, "<option value=\"{}\">", escape(&r.path));
        }
    }
    routes.push_str("</datalist>");
    format!(
        "<section aria-labelledby=\"export-h\"><h2 id=\"export-h\">Let a person export</h2>\
<form method=\"post\" action=\"{BASE}grants/export\" class=\"stack\">{csrf}\
<p><label for=\"user\">Person</label><br><select id=\"user\" name=\"user\" required>{people}</select></p>\
<p><label for=\"route\">Pages (a route pattern)</label><br><input id=\"route\" name=\"route\" value=\"{route}\" list=\"routes\" required size=\"40\" placeholder=\"/reports/**\" aria-describedby=\"route-hint\">{routes}\
<br><span class=\"hint\" id=\"route-hint\">As in the policy: /reports/** is everything under /reports, * is one part of the address.</span></p>\
<p><label for=\"duration\">For how long</label><br><input id=\"duration\" name=\"duration\" value=\"{duration}\" required size=\"10\" aria-describedby=\"duration-hint\">\
<br><span class=\"hint\" id=\"duration-hint\">Like 30m, 2h or 3d; at most 30 days.</span></p>\
<p><label for=\"reason\">Why (kept in the audit trail with every export)</label><br><textarea id=\"reason\" name=\"reason\" rows=\"3\" cols=\"50\" required minlength=\"{min}\">{reason}</textarea></p>\
<p><button type=\"submit\">Grant export</button></p></form></section>",
        csrf = ctx.csrf_field(),
        route = escape(&v.route),
        duration = escape(if v.duration.is_empty() {
            "2h"
        } else {
            &v.duration
        }),
        reason = escape(&v.reason),
        min = grants::MIN_REASON,
    )
}

/// `POST /.ward/officer/grants/export`.
pub(super) async fn export(
    ctx: &Ctx<'_>,
    form: &Form,
    outcome: &mut PageOutcome,
) -> Response<Body> {
    let v = ExportValues {
        user: form.get("user").trim().to_string(),
        route: form.get("route").trim().to_string(),
        duration: form.get("duration").trim().to_string(),
        reason: form.get("reason").to_string(),
    };
    let snap = ctx.shared.gate.accounts.snapshot();
    let checked = grants::check_export(
        &snap.directory,
        grants::ExportRequest {
            user: &v.user,
            route: &v.route,
            duration: &v.duration,
            reason: &v.reason,
            granted_by: &ctx.officer,
        },
        ctx.now(),
    );
    let g = match checked {
        Ok(g) => g,
        Err(e) => return list(ctx, Notice::Problem(capital(&e.to_string())), Some(v)),
    };
    let detail = format!(
        "export grant {} for {} until {}",
        g.id,
        v.route,
        crate::audit::record::time_text(
            jiff::Timestamp::from_second(g.end).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        )
    );
    let grant_text = format!("{} ({})", g.id, g.reason);
    let warn = match ctx
        .record_first(outcome, "grant-issued", Some(&g.user), detail, move |r| {
            r.grant(grant_text)
        })
        .await
    {
        Ok(warn) => warn,
        Err(refused) => return refused,
    };
    let store = ctx.shared.gate.accounts.grant_store().clone();
    let to_save = g.clone();
    let saved = match blocking(move || grants::save(&store, &to_save)).await {
        Some(Ok(())) => Ok(()),
        Some(Err(e)) => Err(capital(&e.to_string())),
        None => Err("The grant could not be saved; try again.".to_string()),
    };
    if let Err(why) = saved {
        ctx.record_not_made("grant-issued", Some(&g.user), &why)
            .await;
        return list(ctx, Notice::Problem(why), Some(v));
    }
    ctx.reload_accounts();
    let mut words = format!(
        "Granted {}: {} may export from {} until {}.",
        g.id,
        g.user,
        v.route,
        when(g.end)
    );
    if let Some(w) = warn {
        words.push('\n');
        words.push_str(&w);
    }
    list(ctx, Notice::Done(words), None)
}

/// `POST /.ward/officer/grants/revoke`.
pub(super) async fn revoke(
    ctx: &Ctx<'_>,
    form: &Form,
    outcome: &mut PageOutcome,
) -> Response<Body> {
    let id = form.get("id").trim().to_string();
    let store = ctx.shared.gate.accounts.grant_store().clone();
    let now = ctx.now();
    let (read_from, wanted) = (store.clone(), id.clone());
    let g = match blocking(move || grants::unrevoked(&read_from, &wanted)).await {
        Some(Ok(Some(g))) => g,
        Some(Ok(None)) => {
            return list(
                ctx,
                Notice::Problem(format!("There is no grant '{id}' in force.")),
                None,
            );
        }
        Some(Err(e)) => return list(ctx, Notice::Problem(capital(&e.to_string())), None),
        None => {
            return list(
                ctx,
                Notice::Problem("The grant could not be revoked; try again.".into()),
                None,
            );
        }
    };
    let what = match &g.kind {
        GrantKind::Export { route } => format!("export from {route}"),
        GrantKind::BreakGlass { roles } => format!("break-glass roles {}", roles.join(", ")),
    };
    let grant_text = format!("{} ({})", g.id, g.reason);
    let warn = match ctx
        .record_first(
            outcome,
            "grant-revoked",
            Some(&g.user),
            format!("revoked grant {} ({what})", g.id),
            move |r| r.grant(grant_text),
        )
        .await
    {
        Ok(warn) => warn,
        Err(refused) => return refused,
    };
    let wanted = id.clone();
    let revoked = match blocking(move || grants::revoke(&store, &wanted, now)).await {
        Some(Ok(Some(_))) => Ok(()),
        Some(Ok(None)) => Err(format!("There is no grant '{id}' in force.")),
        Some(Err(e)) => Err(capital(&e.to_string())),
        None => Err("The grant could not be revoked; try again.".to_string()),
    };
    if let Err(why) = revoked {
        ctx.record_not_made("grant-revoked", Some(&g.user), &why)
            .await;
        return list(ctx, Notice::Problem(why), None);
    }
    ctx.reload_accounts();
    let mut words = format!("Revoked grant {} of {} ({what}).", g.id, g.user);
    if let Some(w) = warn {
        words.push('\n');
        words.push_str(&w);
    }
    list(ctx, Notice::Done(words), None)
}

fn capital(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
