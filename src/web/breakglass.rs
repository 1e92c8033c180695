//! Break-glass: the HIPAA emergency access procedure. A person whose role the
//! policy permits states a reason and gets the policy's emergency roles for a
//! fixed time; every request meanwhile is marked as emergency and the officer
//! is alerted.

use crate::body::Body;
use crate::users::accounts;
use crate::users::grants::{self, Grant, GrantKind};
use crate::web::kit::{self, PageOutcome, PageRequest};
use crate::web::page;
use crate::web::state::Gate;
use http::{Response, StatusCode};
use maud::html;

/// Shortest reason accepted: "emergency" alone tells the officer nothing.
const MIN_REASON: usize = 10;

/// `GET /.ward/break-glass`.
pub fn form(gate: &Gate, req: &PageRequest<'_>, error: Option<&str>) -> Response<Body> {
    let (s, _who, bg) = match permitted(gate, req) {
        Ok(p) => p,
        Err(resp) => return *resp,
    };
    let body = html! {
        @if let Some(e) = error { p.error role="alert" { (e) } }
        p {
            "Emergency access gives you the roles " strong { (bg.emergency_roles.join(", ")) }
            " for " (bg.duration.as_secs() / 60) " minutes. Everything you open meanwhile is recorded as emergency access, and the security officer is told at once."
        }
        form method="post" action="/.ward/break-glass" {
            input type="hidden" name="csrf" value=(s.csrf);
            p {
                label for="reason" { "Why you need emergency access (the patient, the situation)" } br;
                textarea #reason name="reason" rows="4" cols="50" required minlength=(MIN_REASON) autofocus {}
            }
            p { button type="submit" { "Start emergency access" } }
        }
    };
    page::page(
        if error.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        },
        &req.policy.practice,
        "Emergency access",
        body,
    )
}

/// `POST /.ward/break-glass`.
pub async fn submit(
    gate: &Gate,
    req: &PageRequest<'_>,
    form_fields: &kit::Form,
    outcome: &mut PageOutcome,
) -> Response<Body> {
    let (s, who, bg) = match permitted(gate, req) {
        Ok(p) => p,
        Err(resp) => return *resp,
    };
    outcome.user = Some(who.user.clone());
    let csrf = form_fields.get("csrf");
    if !crate::auth::codes::ct_eq(&s.csrf, csrf) {
        return form(gate, req, Some("This form has expired. Please try again."));
    }
    let reason = form_fields.get("reason").trim().to_string();
    if reason.chars().count() < MIN_REASON {
        return form(
            gate,
            req,
            Some("Say briefly why you need emergency access: the patient and the situation."),
        );
    }
    let Ok(id) = grants::new_id() else {
        return refuse(req, "ward cannot start emergency access right now.");
    };
    let grant = Grant {
        id,
        user: who.user.clone(),
        kind: GrantKind::BreakGlass {
            roles: bg.emergency_roles.clone(),
        },
        reason: reason.chars().take(500).collect(),
        granted_by: who.user.clone(),
        start: req.now,
        end: req.now + bg.duration.as_secs() as i64,
        revoked: None,
    };
    let saving = grant.clone();
    if gate
        .accounts
        .grant_store()
        .update_async(move |g| g.grants.push(saving))
        .await
        .is_err()
    {
        return refuse(
            req,
            "ward cannot record emergency access right now, so it cannot start it.",
        );
    }
    // Take effect on the very next request, not at the next reload tick.
    gate.accounts.reload(req.policy).ok();
    outcome.event = Some("break-glass");
    // The reason may name a patient: it goes to the audit trail, never to the log.
    outcome.grant = Some((grant.id.clone(), grant.reason.clone()));
    tracing::warn!(
        user = %who.user,
        client = %req.client_ip,
        grant = %grant.id,
        until = grant.end,
        "BREAK-GLASS: emergency access started (the reason is in the audit trail)"
    );
    let until = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(grant.end.max(0) as u64),
    );
    let body = html! {
        p role="status" { "Emergency access is on until " (until) ". The security officer has been told." }
        p { a href="/" { "Continue" } }
    };
    page::page(
        StatusCode::OK,
        &req.policy.practice,
        "Emergency access on",
        body,
    )
}

/// A person allowed to invoke emergency access: their session, who they are, the procedure.
type Permit<'a> = (
    std::sync::Arc<crate::session::Session>,
    crate::policy::Identity,
    &'a crate::policy::BreakGlass,
);

/// The session, the person and the practice's procedure when this person may
/// invoke emergency access; otherwise the answer to give (sign in, or refusal).
fn permitted<'a>(gate: &Gate, req: &PageRequest<'a>) -> Result<Permit<'a>, Box<Response<Body>>> {
    let Some((s, who)) = signed_in(gate, req) else {
        return Err(Box::new(crate::web::kit::login_redirect(
            &req.method,
            &req.headers,
            "/.ward/break-glass",
            None,
        )));
    };
    let Some(bg) = &req.policy.break_glass else {
        return Err(Box::new(refuse(
            req,
            "This practice has not set up emergency access in ward.",
        )));
    };
    if !who.roles.iter().any(|r| bg.allowed_roles.contains(r)) {
        return Err(Box::new(refuse(
            req,
            "Your roles do not include emergency access. Call the practice's security officer.",
        )));
    }
    Ok((s, who, bg))
}

fn signed_in(
    gate: &Gate,
    req: &PageRequest<'_>,
) -> Option<(
    std::sync::Arc<crate::session::Session>,
    crate::policy::Identity,
)> {
    let cookie = crate::session::cookie_value(&req.headers, crate::session::COOKIE)?;
    let s = gate.sessions.get(cookie)?;
    if s.stage != crate::session::Stage::Complete {
        return None;
    }
    let who = accounts::identity_of(&s, &gate.accounts.snapshot(), req.policy, req.now).ok()?;
    Some((s, who))
}

fn refuse(req: &PageRequest<'_>, message: &str) -> Response<Body> {
    page::problem(
        StatusCode::FORBIDDEN,
        &req.policy.practice,
        "Emergency access",
        message,
        req.request_id,
    )
}
