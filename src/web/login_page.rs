//! The sign-in page and what it offers: the password form, the passkey and
//! single sign-on buttons, and the page for a locked sign-in. Every way of
//! signing in shows these; none of them is owned by one way.

use crate::auth::codes;
use crate::auth::passkey::Rp;
use crate::body::Body;
use crate::policy::Policy;
use crate::session;
use crate::web::kit::{
    CSRF_COOKIE, PageRequest, page, query_param, safe_return, unavailable, with_cookie,
};
use http::{Response, StatusCode};
use maud::{Markup, html};

/// The sign-in page, with `error` shown if given.
pub fn login_form(req: &PageRequest<'_>, error: Option<&str>) -> Response<Body> {
    let return_to =
        safe_return(&query_param(req.query.as_deref(), "return").unwrap_or_else(|| "/".into()));
    let csrf = match codes::random_token() {
        Ok(t) => t,
        Err(_) => return unavailable(req),
    };
    let reason = query_param(req.query.as_deref(), "reason");
    let body = html! {
        @match (error, reason.as_deref()) {
            (Some(e), _) => p.error role="alert" { (e) },
            (None, Some("idle")) => p role="status" { "You were signed out because the page was not used for a while. Please sign in again." },
            (None, Some(_)) => p role="status" { "Please sign in again." },
            (None, None) => {},
        }
        form method="post" action="/.ward/login" {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="return" value=(return_to);
            p {
                label for="username" { "User name" } br;
                input #username name="username" autocomplete="username" autocapitalize="none" spellcheck="false" required autofocus;
            }
            p {
                label for="password" { "Password" } br;
                input #password name="password" type="password" autocomplete="current-password" required;
            }
            p { button type="submit" { "Sign in" } }
        }
        (sign_in_button(req, &csrf, &return_to))
        (sso_buttons(req.policy, &csrf, &return_to))
        p.who { "Use only your own account. Forgot your password or lost your authenticator? Ask the practice's security officer." }
    };
    let status = if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    with_cookie(
        page(req, status, "Sign in", body),
        session::set_cookie(CSRF_COOKIE, &csrf, None),
    )
}

/// The page for a sign-in refused for a while (too many attempts, or signed in elsewhere).
pub(crate) fn locked_page(req: &PageRequest<'_>, message: &str) -> Response<Body> {
    let body = html! {
        p role="alert" { (message) }
        p { a href="/.ward/login" { "Back to sign in" } }
    };
    page(req, StatusCode::TOO_MANY_REQUESTS, "Sign-in locked", body)
}

/// The sign-in page's single sign-on buttons, one form per provider.
fn sso_buttons(policy: &Policy, csrf: &str, return_to: &str) -> Markup {
    html! {
        @if !policy.login.oidc.is_empty() || !policy.login.saml.is_empty() {
            p { "Or:" }
            @for (name, label) in policy.login.oidc.iter().map(|p| (&p.config.name, &p.rules.label))
                .chain(policy.login.saml.iter().map(|p| (&p.name, &p.rules.label))) {
                form method="post" action={ "/.ward/sso/" (name) } {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="return" value=(return_to);
                    p { button type="submit" { (label) } }
                }
            }
        }
    }
}

/// The relying party the page's host speaks for, if passkeys can be used there.
pub(crate) fn rp_of(req: &PageRequest<'_>) -> Option<Rp> {
    Rp::for_page(
        req.policy.login.passkey_domain.as_deref(),
        req.host,
        &req.origin,
        crate::web::page::practice_name(&req.policy.practice),
    )
}

/// The sign-in page's button for a passkey alone, where the officer allows it and passkeys
/// work on this host.
pub(crate) fn sign_in_button(req: &PageRequest<'_>, csrf: &str, return_to: &str) -> Markup {
    if !req.policy.login.passwordless || rp_of(req).is_none() {
        return html! {};
    }
    html! {
        form method="post" action="/.ward/passkey-sign-in" {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="return" value=(return_to);
            p { button #passkey-sign-in type="submit" { "Sign in with a passkey" } }
        }
    }
}
