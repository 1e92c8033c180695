//! ward's own host (`[server] ward_host`): which of ward's pages live there and
//! which on the apps' hosts, and handing a sign-in made there to an app's host.
//!
//! Why: a script in an app page (an XSS in a legacy EHR) runs in the app's
//! origin. If ward's sign-in pages, console or break-glass page shared that
//! origin, the script could read their form tokens and post them. On a host of
//! ward's own, the browser keeps app scripts out. A person signs in once there;
//! each app host then gets its own cookie for the same session:
//!
//! 1. app host `/.ward/login` sets a random state cookie on the app host and
//!    sends the browser to ward's host `/.ward/go?to=APP&state=HASH&return=PATH`;
//! 2. ward's host signs the person in if needed, then issues a one-time code
//!    (60 s) bound to that app host and state, and sends the browser to
//!    `APP/.ward/handoff?code=CODE&return=PATH`;
//! 3. the app host takes the code once, checks the state cookie, and sets its
//!    own session cookie for the same session. Ending the session ends it on
//!    every host.

use crate::auth::codes;
use crate::body::Body;
use crate::session::{self, COOKIE, Handoff};
use crate::web::kit::{self, PageOutcome, PageRequest, redirect, with_cookie};
use crate::web::state::Gate;
use http::{Method, Response, StatusCode};
use maud::html;
use std::sync::Arc;

/// The state cookie an app host sets while a sign-in is handed to it.
pub const STATE_COOKIE: &str = "__Host-ward-handoff";

/// Where one of ward's pages is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Only on ward's own host: everything that holds a form token or a secret.
    WardHost,
    /// Only on the apps' hosts: what app pages need (idle script, hand-off).
    AppHost,
    /// On every host.
    Anywhere,
}

/// Where the page at `path` (canonical, under `/.ward/`) is served when ward has its own host.
pub fn place(path: &str) -> Place {
    match path {
        "/.ward/healthz" | "/.ward/logged-out" | "/.ward/login" => Place::Anywhere,
        // Refusal pages on app hosts use these too.
        "/.ward/ward.css" | "/.ward/console.css" | "/.ward/review.css" => Place::Anywhere,
        // On the apps' pages (proxy::marks).
        "/.ward/watermark.css" => Place::AppHost,
        "/.ward/handoff" | "/.ward/idle.js" | "/.ward/session" | "/.ward/keepalive" => {
            Place::AppHost
        }
        _ => Place::WardHost,
    }
}

/// Pages that hold form tokens an app's script must never read: served only on
/// ward's own host, and not at all when the policy has none.
pub fn needs_own_host(path: &str) -> bool {
    path == "/.ward/break-glass"
        || path == "/.ward/request"
        || path == "/.ward/officer"
        || path.starts_with("/.ward/officer/")
}

/// `https://HOST[:PORT]`, with the port the request came in on.
pub fn origin_of(host: &str, request_authority: &str) -> String {
    match request_authority.rsplit_once(':') {
        Some((_, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            format!("https://{host}:{port}")
        }
        _ => format!("https://{host}"),
    }
}

/// On an app host, a page that lives on ward's host: page loads go there, anything else is refused.
pub fn elsewhere(req: &PageRequest<'_>, ward_host: &str) -> Response<Body> {
    let there = origin_of(ward_host, req.authority);
    if req.method == Method::GET || req.method == Method::HEAD {
        let query = req
            .query
            .as_deref()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        return redirect(&format!("{there}{}{query}", req.path));
    }
    kit::page(
        req,
        StatusCode::NOT_FOUND,
        "Not here",
        html! { p { "This page of ward's is at " a href={ (there) "/.ward/login" } { (there) } "." } },
    )
}

/// App host `GET /.ward/login`: start a hand-off from ward's host.
pub fn start(req: &PageRequest<'_>, ward_host: &str) -> Response<Body> {
    let authority = req.authority;
    let Ok(state) = codes::random_token() else {
        return kit::unavailable(req);
    };
    let return_to = kit::safe_return(
        &kit::query_param(req.query.as_deref(), "return").unwrap_or_else(|| "/".into()),
    );
    let mut query = vec![
        ("to", authority.to_string()),
        ("state", codes::token_hash(&state)),
        ("return", return_to),
    ];
    if let Some(reason) = kit::query_param(req.query.as_deref(), "reason") {
        query.push(("reason", reason));
    }
    let query = serde_urlencoded::to_string(&query).unwrap_or_default();
    with_cookie(
        redirect(&format!(
            "{}/.ward/go?{query}",
            origin_of(ward_host, authority)
        )),
        session::set_cookie(STATE_COOKIE, &state, Some(600)),
    )
}

/// Ward's host `GET /.ward/go`: sign in if needed, then hand the session to the app host.
pub async fn go(gate: &Gate, req: &PageRequest<'_>, outcome: &mut PageOutcome) -> Response<Body> {
    let authority = req.authority;
    let q = |name| kit::query_param(req.query.as_deref(), name);
    let (Some(to), Some(state_hash)) = (q("to"), q("state")) else {
        return bad(req);
    };
    let return_to = kit::safe_return(&q("return").unwrap_or_else(|| "/".into()));
    let to = to.to_ascii_lowercase();
    // Only to an app's host, on the port this request came in on: never an open redirect.
    let (to_host, to_port) = match to.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (to.as_str(), None),
    };
    let own_port = authority.rsplit_once(':').map(|(_, p)| p);
    let is_app = req
        .policy
        .apps
        .iter()
        .any(|a| a.host.as_deref() == Some(to_host));
    if !is_app || to_port != own_port || state_hash.len() != 64 {
        return bad(req);
    }
    let Some(s) = kit::standing_session(gate, req) else {
        // Sign in here first; the sign-in returns to this very page.
        let here = format!("/.ward/go?{}", req.query.as_deref().unwrap_or(""));
        let mut query = vec![("return", here)];
        if let Some(reason) = q("reason") {
            query.push(("reason", reason));
        }
        let query = serde_urlencoded::to_string(&query).unwrap_or_default();
        return redirect(&format!("/.ward/login?{query}"));
    };
    let Some(code) = gate
        .handoffs
        .issue(Handoff {
            session: s.clone(),
            host: to_host.to_string(),
            state_hash,
        })
        .await
    else {
        return kit::unavailable(req);
    };
    outcome.user = Some(s.user.clone());
    let query =
        serde_urlencoded::to_string([("code", code.as_str()), ("return", return_to.as_str())])
            .unwrap_or_default();
    redirect(&format!("https://{to}/.ward/handoff?{query}"))
}

/// App host `GET /.ward/handoff`: take the code once and set this host's session cookie.
pub async fn accept(
    gate: &Gate,
    req: &PageRequest<'_>,
    outcome: &mut PageOutcome,
) -> Response<Body> {
    let host = req.host;
    let q = |name| kit::query_param(req.query.as_deref(), name);
    let return_to = kit::safe_return(&q("return").unwrap_or_else(|| "/".into()));
    let restart = || {
        let query =
            serde_urlencoded::to_string([("return", return_to.as_str())]).unwrap_or_default();
        with_cookie(
            redirect(&format!("/.ward/login?{query}")),
            session::set_cookie(STATE_COOKIE, "", Some(0)),
        )
    };
    let taken = match q("code") {
        Some(c) => gate.handoffs.take(&c).await,
        None => None,
    };
    let Some(pending) = taken else {
        return restart();
    };
    let state = session::cookie_value(&req.headers, STATE_COOKIE).unwrap_or("");
    let bound_here = pending.host == host
        && !state.is_empty()
        && codes::ct_eq(&codes::token_hash(state), &pending.state_hash);
    let s = pending.session;
    // The session must still stand: not ended, idle, or closed since the code was issued.
    let live = kit::still_stands(gate, &s, req.policy, req.now);
    outcome.user = Some(s.user.clone());
    if !bound_here || !live {
        outcome.event = Some("handoff-refused");
        return restart();
    }
    let Ok(cookie) = codes::random_token() else {
        return kit::unavailable(req);
    };
    // A cookie this browser held here before (another person's, say) ends with this one.
    if let Some((old, other)) = kit::current(gate, req)
        && !Arc::ptr_eq(&other, &s)
    {
        gate.sessions.remove(&old);
    }
    gate.sessions.insert(&cookie, s);
    outcome.event = Some("handoff");
    let resp = with_cookie(
        redirect(&return_to),
        session::set_cookie(COOKIE, &cookie, None),
    );
    with_cookie(resp, session::set_cookie(STATE_COOKIE, "", Some(0)))
}

fn bad(req: &PageRequest<'_>) -> Response<Body> {
    kit::page(
        req,
        StatusCode::BAD_REQUEST,
        "Link not valid",
        html! { p { "This sign-in link is not valid. Open the system you want to use again." } },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_with_tokens_live_on_wards_host_only() {
        for p in [
            "/.ward/mfa",
            "/.ward/enroll",
            "/.ward/logout",
            "/.ward/break-glass",
            "/.ward/officer/",
            "/.ward/officer/users",
            "/.ward/callback",
            "/.ward/sso/corp",
            "/.ward/go",
            "/.ward/passkeys",
            "/.ward/passkey-sign-in",
            "/.ward/passkey.js",
            "/.ward/anything-new",
        ] {
            assert_eq!(place(p), Place::WardHost, "{p}");
        }
        for p in [
            "/.ward/handoff",
            "/.ward/session",
            "/.ward/keepalive",
            "/.ward/idle.js",
        ] {
            assert_eq!(place(p), Place::AppHost, "{p}");
        }
        assert!(needs_own_host("/.ward/officer"));
        assert!(needs_own_host("/.ward/officer/grants"));
        assert!(needs_own_host("/.ward/break-glass"));
        assert!(!needs_own_host("/.ward/officers"));
    }

    #[test]
    fn origins_keep_the_requests_port() {
        assert_eq!(
            origin_of("ward.example", "ehr.example:8443"),
            "https://ward.example:8443"
        );
        assert_eq!(
            origin_of("ward.example", "ehr.example"),
            "https://ward.example"
        );
        assert_eq!(
            origin_of("ward.example", "ehr.example:"),
            "https://ward.example"
        );
    }
}
