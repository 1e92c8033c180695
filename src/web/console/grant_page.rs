//! Grants: the export and break-glass grants in force (or all), a form to let a person export
//! for a while, and revoking — by the same rules as `ward grant`.

use super::{BASE, Ctx, Form, Notice, Section, blocking, head_row, when};
use crate::body::Body;
use crate::users::grants::{self, Grant, GrantKind};
use crate::web::kit::{PageOutcome, capital};
use http::Response;
use maud::{Markup, html};

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
    let h = html! {
        p {
            "Grants are time-limited exceptions: an export grant lets one person download from the pages a route pattern names; an access grant (an approved access request) opens pages of an app the person's roles do not include; break-glass grants are the emergency access people start themselves. Every request under a grant is marked in the audit trail."
        }
        p {
            @if show_all {
                a href={ (BASE) "grants" } { "Show only the grants in force" }
            } @else {
                a href={ (BASE) "grants?all=1" } { "Show all grants, also ended ones" }
            }
        }
        table {
            caption {
                (if show_all { "Every grant, newest first" } else { "Grants in force" })
                " (" (shown.len()) ")"
            }
            (head_row(&["Grant", "Person", "Kind", "What", "From", "Until", "Granted by", "Reason", "State"]))
            tbody {
                @for g in &shown {
                    @let (kind, what) = g.kind.describe();
                    tr {
                        th scope="row" { code { (g.id) } }
                        td { a href={ (BASE) "users/" (g.user) } { (g.user) } }
                        td { (kind) }
                        td { (what) }
                        td { (when(g.start)) }
                        td { (when(g.end)) }
                        td { (g.granted_by) }
                        td { (g.reason) }
                        td {
                            @match g.revoked {
                                Some(t) => { "revoked " (when(t)) },
                                None if g.end <= now => "ended",
                                None if g.start > now => "not started",
                                None => form method="post" action={ (BASE) "grants/revoke" } {
                                    (csrf)
                                    input type="hidden" name="id" value=(g.id);
                                    button.quiet type="submit" aria-label={ "Revoke grant " (g.id) } { "Revoke now" }
                                },
                            }
                        }
                    }
                }
                @if shown.is_empty() {
                    tr { td colspan="9" { "No grants." } }
                }
            }
        }
        (export_form(ctx, &refill.unwrap_or_default()))
    };
    let status = notice.status();
    ctx.page(status, Section::Grants, "Grants", &notice, h)
}

fn export_form(ctx: &Ctx<'_>, v: &ExportValues) -> Markup {
    let snap = ctx.shared.gate.accounts.snapshot();
    let today = crate::users::accounts::today(ctx.now());
    let mut routes: Vec<&String> = Vec::new();
    for r in &ctx.policy().routes {
        if !routes.contains(&&r.path) {
            routes.push(&r.path);
        }
    }
    let duration = if v.duration.is_empty() {
        "2h"
    } else {
        &v.duration
    };
    html! {
        section aria-labelledby="export-h" {
            h2 #export-h { "Let a person export" }
            form.stack method="post" action={ (BASE) "grants/export" } {
                (ctx.csrf_field())
                p {
                    label for="user" { "Person" } br;
                    select #user name="user" required {
                        option value="" { "Choose a person" }
                        @for a in snap.directory.accounts.values().filter(|a| a.usable_on(today)) {
                            option value=(a.name) selected[a.name == v.user] { (a.name) " — " (a.display_name) }
                        }
                    }
                }
                p {
                    label for="route" { "Pages (a route pattern)" } br;
                    input #route name="route" value=(v.route) list="routes" required size="40" placeholder="/reports/**" aria-describedby="route-hint";
                    datalist #routes { @for r in &routes { option value=(r); } }
                    br;
                    span.hint #route-hint { "As in the policy: /reports/** is everything under /reports, * is one part of the address." }
                }
                p {
                    label for="duration" { "For how long" } br;
                    input #duration name="duration" value=(duration) required size="10" aria-describedby="duration-hint";
                    br;
                    span.hint #duration-hint { "Like 30m, 2h or 3d; at most 30 days." }
                }
                p {
                    label for="reason" { "Why (kept in the audit trail with every export)" } br;
                    textarea #reason name="reason" rows="3" cols="50" required minlength=(grants::MIN_REASON) { (v.reason) }
                }
                p { button type="submit" { "Grant export" } }
            }
        }
    }
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
        GrantKind::Access { app, route } => format!("access to {app} {route}"),
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
