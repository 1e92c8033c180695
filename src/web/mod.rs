//! ward's own pages under `/.ward/`: the sign-in pages, single sign-on, the
//! hand-off to app hosts, break-glass and the officer's console, built with
//! one kit (`kit`) on one shared state (`state`).

pub mod access_request;
pub mod assets;
pub mod breakglass;
pub mod console;
pub mod handoff;
pub mod kit;
pub mod launcher;
pub mod limits;
pub mod login_page;
pub mod more_time;
pub mod more_time_tickets;
pub mod page;
pub mod passkey_steps;
pub mod passkeys;
pub mod saml;
pub mod session_start;
pub mod signin;
pub mod sso;
pub mod sso_steps;
pub mod state;

use crate::body::Body;
use http::{Method, Response};
use hyper::body::Incoming;
use kit::{PageOutcome, PageRequest, read_form, same_origin};
use state::Gate;

/// Serves one of ward's sign-in, single sign-on or break-glass pages, or
/// `None` if the path is none of them.
pub async fn serve(
    gate: &Gate,
    req: PageRequest<'_>,
    body: Incoming,
    outcome: &mut PageOutcome,
) -> Option<Response<Body>> {
    // A shared session store out of reach: nobody signs in until it is back (fail closed).
    if !gate.sessions.available() && begins_a_session(req.path) {
        return Some(kit::unavailable(&req));
    }
    let get = req.method == Method::GET || req.method == Method::HEAD;
    let post = req.method == Method::POST;
    if get && let Some(file) = assets::stylesheet(req.path).or_else(|| assets::script(req.path)) {
        return Some(file);
    }
    let resp = match req.path {
        "/.ward/break-glass" if get => breakglass::form(gate, &req, None),
        "/.ward/break-glass" if post => {
            let form = read_form(body).await.unwrap_or_default();
            if !same_origin(&req) {
                return Some(breakglass::form(
                    gate,
                    &req,
                    Some("This form has expired. Please try again."),
                ));
            }
            breakglass::submit(gate, &req, &form, outcome).await
        }
        "/.ward/request" if get => access_request::serve(gate, &req, None, outcome).await,
        "/.ward/request" if post => {
            let form = read_form(body).await.unwrap_or_default();
            access_request::serve(gate, &req, Some(form), outcome).await
        }
        "/.ward/more-time" if post => {
            let form = read_form(body).await.unwrap_or_default();
            more_time::submit(gate, &req, &form, outcome).await
        }
        "/.ward/callback" if get => sso::callback(gate, &req, outcome).await,
        "/.ward/passkeys" if get => passkeys::list(gate, &req, None).await,
        "/.ward/passkeys" if post => {
            let form = read_form(body).await.unwrap_or_default();
            passkeys::change(gate, &req, &form, outcome).await
        }
        "/.ward/passkey-sign-in" if post => {
            let form = read_form(body).await.unwrap_or_default();
            passkeys::sign_in(gate, &req, &form, outcome).await
        }
        // The IdP's answer is posted from its own site: no Origin check (the RelayState,
        // its cookie and the signed InResponseTo tie it to a sign-in started here).
        "/.ward/saml/acs" if post => {
            let form = read_form(body).await.unwrap_or_default();
            saml::acs(gate, &req, &form, outcome).await
        }
        "/.ward/saml/metadata" if get => saml::metadata(gate, &req),
        "/.ward/saml/logout" if get => saml::logout(gate, &req, outcome).await,
        p if post && p.starts_with("/.ward/sso/") => {
            let form = read_form(body).await.unwrap_or_default();
            let name = &p["/.ward/sso/".len()..];
            match sso::checked_start(&req, &form) {
                Err(resp) => *resp,
                Ok(return_to) => match req.policy.login.saml.iter().find(|c| c.name == name) {
                    Some(cfg) => saml::begin(gate, &req, outcome, cfg, &return_to).await,
                    None => sso::begin(gate, &req, outcome, name, &return_to).await,
                },
            }
        }
        _ => return signin::serve(gate, req, body, outcome).await,
    };
    Some(resp)
}

/// The pages that sign someone in or start a session.
fn begins_a_session(path: &str) -> bool {
    matches!(
        path,
        "/.ward/login"
            | "/.ward/mfa"
            | "/.ward/enroll"
            | "/.ward/callback"
            | "/.ward/break-glass"
            | "/.ward/passkey-sign-in"
    ) || path.starts_with("/.ward/sso/")
        || saml::begins_a_session(path)
}
