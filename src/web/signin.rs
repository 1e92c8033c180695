//! Signing in and out: the login, MFA, enrollment and signed-out pages, the
//! idle-warning script, and the brute-force limits around them.

use crate::auth::lockout::Strikes;
use crate::auth::{codes, password, totp};
use crate::body::{Body, full};
use crate::policy::Policy;
use crate::session::{self, COOKIE, Session, Stage};
use crate::users::accounts::{self};
use crate::users::{Purpose, UserSecrets};
use crate::web::kit::{
    CSRF_COOKIE, PageOutcome, PageRequest, current, page, query_param, read_form, redirect,
    safe_return, same_origin, unavailable, with_cookie,
};
use crate::web::login_page::{locked_page, login_form, rp_of};
use crate::web::more_time;
use crate::web::page as pages;
use crate::web::session_start::{admit, make_room_for_pending, record_login, signs_in_from_here};
use crate::web::state::Gate;
use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};
use hyper::body::Incoming;
use maud::{PreEscaped, html};
use std::sync::Arc;

/// Serves a `/.ward/` sign-in page, or `None` if the path is not one.
pub async fn serve(
    gate: &Gate,
    req: PageRequest<'_>,
    body: Incoming,
    outcome: &mut PageOutcome,
) -> Option<Response<Body>> {
    let get = req.method == Method::GET || req.method == Method::HEAD;
    let post = req.method == Method::POST;
    let resp = match req.path {
        "/.ward/login" if get => login_form(&req, None),
        "/.ward/login" if post => login_submit(gate, &req, body, outcome).await,
        "/.ward/mfa" if get => mfa_form(gate, &req, None).await,
        "/.ward/mfa" if post => mfa_submit(gate, &req, body, outcome).await,
        "/.ward/logout" if get => logout_form(gate, &req),
        "/.ward/logout" if post => logout_submit(gate, &req, body, outcome).await,
        "/.ward/logged-out" if get => logged_out(gate, &req),
        "/.ward/enroll" if get => enroll_form(gate, &req, None).await,
        "/.ward/enroll" if post => enroll_submit(gate, &req, body, outcome).await,
        "/.ward/idle.js" if get => idle_script(),
        "/.ward/session" if get => session_status(gate, &req),
        "/.ward/keepalive" if post => keepalive(gate, &req),
        _ => return None,
    };
    Some(resp)
}

// ---------- sign in ----------

const WRONG: &str = "The user name or password is not right, or this account cannot sign in. Check them and try again.";

async fn login_submit(
    gate: &Gate,
    req: &PageRequest<'_>,
    body: Incoming,
    outcome: &mut PageOutcome,
) -> Response<Body> {
    let Some(form) = read_form(body).await else {
        return login_form(req, Some("The form could not be read. Please try again."));
    };
    let cookie_csrf = session::cookie_value(&req.headers, CSRF_COOKIE).unwrap_or("");
    if !same_origin(req) || cookie_csrf.is_empty() || !codes::ct_eq(cookie_csrf, form.get("csrf")) {
        return login_form(
            req,
            Some("This sign-in form has expired. Please try again."),
        );
    }
    let name = form.get("username").trim().to_ascii_lowercase();
    let pw = form.get("password").to_string();
    // The trail names the account the attempt was for. A name that is no
    // account is left out: it may be a password typed into the wrong field.
    outcome.user =
        Some(name.clone()).filter(|n| gate.accounts.snapshot().directory.get(n).is_some());
    let return_to = safe_return(form.get("return"));

    if !gate.address_allows(req.policy, req.client_ip).await {
        outcome.event = Some("login-throttled");
        return locked_page(
            req,
            "Too many sign-in attempts from this address. Wait a minute and try again.",
        );
    }
    let snap = gate.accounts.snapshot();
    let account = snap.directory.get(&name);

    // Read straight from the store, not the periodic snapshot: attempts come faster than reloads.
    // A store ward cannot use refuses every sign-in alike, rather than call a right password wrong.
    let secrets = match gate.accounts.store().read_async().await {
        Ok(s) => s.users.get(&name).cloned(),
        Err(e) => {
            tracing::error!(error = %e, "cannot read ward's secret store; sign-in refused");
            outcome.event = Some("login-unavailable");
            return unavailable(req);
        }
    };
    // Locked (real accounts in the store, read just above; unknown names in
    // memory; one rule for both).
    let locked = match account {
        Some(_) => secrets.as_ref().is_some_and(|s| s.is_locked(req.now)),
        None => gate.unknown_failures.is_locked(&name, req.now).await,
    };
    if locked {
        outcome.event = Some("login-locked");
        return locked_page(
            req,
            "This account is locked after too many failed sign-ins. Try again later, or ask the practice's security officer to unlock it.",
        );
    }

    let stored = secrets.as_ref().and_then(|s| s.password.clone());
    let Ok(permit) = gate.hashing.acquire().await else {
        return unavailable(req);
    };
    let verified = tokio::task::spawn_blocking(move || match stored {
        Some(phc) => password::verify(&pw, &phc),
        None => {
            password::verify_dummy(&pw);
            false
        }
    })
    .await
    .unwrap_or(false);
    drop(permit);

    // A second factor that works here: the authenticator app, or a passkey made for this host.
    let has_passkey = rp_of(req).is_some_and(|rp| {
        secrets
            .as_ref()
            .is_some_and(|s| !s.passkeys_for(&rp.id).is_empty())
    });
    let has_second = has_passkey || secrets.as_ref().is_some_and(|s| s.totp.is_some());
    let today = accounts::today(req.now);
    // An account only past its end date goes on to the second step like any other, so a
    // right password alone tells nothing; after both factors it may ask for more time.
    let usable = account.is_some_and(|a| {
        (a.usable_on(today) && a.sign_in != crate::users::SignIn::Sso)
            || (has_second && a.only_ended(today))
    });
    if !verified || !usable {
        outcome.event = Some("login-failed");
        record_failure(gate, req, &name, Step::Password).await;
        if verified && !usable {
            return login_form(
                req,
                Some("This account cannot sign in. Ask the practice's security officer."),
            );
        }
        return login_form(req, Some(WRONG));
    }
    clear_failures(gate, &name, Step::Password).await;
    // A person limited to their own networks signs in only from there.
    if !signs_in_from_here(gate, req.policy, &name, req.client_ip) {
        outcome.event = Some("login-wrong-network");
        return login_form(
            req,
            Some(
                "This account cannot sign in from this network. Ask the practice's security officer.",
            ),
        );
    }

    // Password accepted: a pending session that reaches nothing until the second factor.
    let epoch = secrets.as_ref().map(|s| s.epoch).unwrap_or(0);
    let needs_mfa = has_second
        || req
            .policy
            .mfa_required(account.map(|a| a.roles.as_slice()).unwrap_or(&[]));
    if needs_mfa && !has_second {
        outcome.event = Some("login-no-mfa");
        return login_form(
            req,
            Some(
                "Your account has no authenticator set up yet. Use the enrollment link from the practice's security officer.",
            ),
        );
    }
    let stage = if needs_mfa {
        Stage::NeedsMfa
    } else {
        Stage::Complete
    };
    let Ok(session) = Session::new(
        &name,
        epoch,
        req.now,
        stage,
        false,
        req.client_ip,
        &return_to,
    ) else {
        return unavailable(req);
    };
    let Ok(cookie) = codes::random_token() else {
        return unavailable(req);
    };
    // A new session id at each step: an id planted before sign-in is worthless.
    if let Some((old, _)) = current(gate, req) {
        gate.sessions.remove(&old);
    }
    if stage == Stage::Complete {
        if let Err(resp) = admit(gate, req, &name) {
            return *resp;
        }
        outcome.event = Some("login-ok");
        record_login(gate, req, &name).await;
    } else {
        outcome.event = Some("login-password-ok");
        make_room_for_pending(gate, &name);
    }
    gate.sessions.insert(&cookie, Arc::new(session));
    let next = if stage == Stage::Complete {
        return_to
    } else {
        "/.ward/mfa".to_string()
    };
    let resp = with_cookie(redirect(&next), session::set_cookie(COOKIE, &cookie, None));
    with_cookie(resp, session::set_cookie(CSRF_COOKIE, "", Some(0)))
}

/// Which sign-in step failed: each is counted on its own, so that a right
/// password does not wipe out wrong codes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Password,
    Code,
}

/// Counts a failed step for `name`; reaching `lockout_after` locks it.
pub(crate) async fn record_failure(gate: &Gate, req: &PageRequest<'_>, name: &str, step: Step) {
    let limit = req.policy.login.lockout_after;
    let window = req.policy.login.lockout_time.as_secs() as i64;
    let now = req.now;
    if gate.accounts.snapshot().directory.get(name).is_none() {
        // Unknown names lock by the same rule, so the answers do not tell them apart.
        if !name.is_empty() && name.len() <= 64 {
            gate.unknown_failures.fail(name, now, limit, window).await;
        }
        return;
    }
    let owned = name.to_string();
    let result = gate.accounts.store().update_async(move |s| {
        let entry = s.users.entry(owned).or_default();
        let mut strikes = match step {
            Step::Password => entry.password_strikes(),
            Step::Code => entry.code_strikes(),
        };
        let locked = strikes.fail(now, limit, window);
        match step {
            Step::Password => entry.set_password_strikes(strikes),
            Step::Code => entry.set_code_strikes(strikes),
        }
        if let Some(until) = locked {
            entry.locked_until = Some(until);
        }
        locked.is_some()
    });
    if let Ok(true) = result.await {
        let what = match step {
            Step::Password => "failed sign-ins",
            Step::Code => "wrong authenticator or recovery codes",
        };
        gate.alerts.raise(
            "locked",
            name,
            format!(
                "locked after {limit} {what} in a row (last from {})",
                req.client_ip
            ),
        );
    }
}

/// Forgets the failures of a step that has now succeeded (a right code also
/// clears the password's, as the whole sign-in succeeded).
async fn clear_failures(gate: &Gate, name: &str, step: Step) {
    let name = name.to_string();
    let cleared = gate.accounts.store().update_async(move |s| {
        if let Some(entry) = s.users.get_mut(&name) {
            if entry.failed_logins != 0 {
                entry.set_password_strikes(Strikes::default());
            }
            if step == Step::Code && entry.failed_codes != 0 {
                entry.set_code_strikes(Strikes::default());
            }
        }
    });
    if let Err(e) = cleared.await {
        tracing::error!(error = %e, "cannot clear failed sign-ins");
    }
}

// ---------- second factor ----------

async fn mfa_form(gate: &Gate, req: &PageRequest<'_>, error: Option<&str>) -> Response<Body> {
    let Some((_, s)) = current(gate, req).filter(|(_, s)| s.stage == Stage::NeedsMfa) else {
        return redirect("/.ward/login");
    };
    let csrf = &s.csrf;
    let passkey = crate::web::passkeys::second_step_offer(gate, req, &s).await;
    let has_totp = gate
        .accounts
        .snapshot()
        .standing
        .get(&s.user)
        .is_some_and(|st| st.has_totp);
    // A role that asks for a passkey gets no code form once the person has one here.
    let codes = (has_totp || passkey.is_none())
        && !(passkey.is_some() && crate::web::passkeys::passkey_only(gate, req, &s).await);
    let body = html! {
        @if let Some(e) = error { p.error role="alert" { (e) } }
        @if let Some(offer) = &passkey {
            (offer)
            @if codes { p { "Or:" } }
        }
        @if codes {
        form method="post" action="/.ward/mfa" {
            input type="hidden" name="csrf" value=(csrf);
            p {
                label for="code" { "Code from your authenticator app" } br;
                input #code name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9 ]*" maxlength="8" required autofocus;
            }
            p { button type="submit" { "Continue" } }
        }
        details {
            summary { "Lost your phone?" }
            form method="post" action="/.ward/mfa" {
                input type="hidden" name="csrf" value=(csrf);
                p {
                    label for="recovery" { "One of your recovery codes" } br;
                    input #recovery name="recovery" autocomplete="off" spellcheck="false";
                }
                p { button type="submit" { "Use recovery code" } }
            }
        }
        }
    };
    let status = if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    let resp = page(req, status, "Second step", body);
    if passkey.is_some() {
        crate::web::passkeys::with_script(resp)
    } else {
        resp
    }
}

async fn mfa_submit(
    gate: &Gate,
    req: &PageRequest<'_>,
    body: Incoming,
    outcome: &mut PageOutcome,
) -> Response<Body> {
    let Some((cookie, s)) = current(gate, req).filter(|(_, s)| s.stage == Stage::NeedsMfa) else {
        return redirect("/.ward/login");
    };
    outcome.user = Some(s.user.clone());
    let Some(form) = read_form(body).await else {
        return mfa_form(
            gate,
            req,
            Some("The form could not be read. Please try again."),
        )
        .await;
    };
    if !same_origin(req) || !codes::ct_eq(&s.csrf, form.get("csrf")) {
        return mfa_form(gate, req, Some("This form has expired. Please try again.")).await;
    }
    if !gate.address_allows(req.policy, req.client_ip).await {
        outcome.event = Some("mfa-throttled");
        return locked_page(
            req,
            "Too many attempts from this address. Wait a minute and try again.",
        );
    }
    // A lock covers second steps begun before it, too.
    if gate.is_locked(&s.user, req.now).await {
        outcome.event = Some("mfa-locked");
        gate.sessions.remove(&cookie);
        return locked_page(
            req,
            "This account is locked after too many failed attempts. Try again later, or ask the practice's security officer to unlock it.",
        );
    }
    let via_passkey = !form.get("credential").is_empty();
    if !via_passkey && crate::web::passkeys::passkey_only(gate, req, &s).await {
        outcome.event = Some("mfa-passkey-needed");
        return mfa_form(
            gate,
            req,
            Some("Your role needs your passkey or security key to sign in; a code is not enough. Use the button above."),
        )
        .await;
    }
    let code = form.get("code").to_string();
    let recovery = form.get("recovery").to_string();
    let now = req.now;
    // Check and consume the code under the store's lock, so a code works once.
    let proved = if via_passkey {
        crate::web::passkeys::second_step(gate, req, &s, &form).await
    } else {
        let (user, epoch) = (s.user.clone(), s.epoch);
        let recovery_typed = recovery.clone();
        let checked = gate.accounts.store().update_async(move |secrets| {
            let Some(entry) = secrets.users.get_mut(&user) else {
                return false;
            };
            if entry.epoch != epoch {
                return false;
            }
            if !code.trim().is_empty() {
                let Some(secret) = entry.totp.as_deref().and_then(totp::decode_secret) else {
                    return false;
                };
                match totp::verify(&secret, &code, now.max(0) as u64, entry.totp_last_step) {
                    Some(step) => {
                        entry.totp_last_step = Some(step);
                        true
                    }
                    None => false,
                }
            } else if !recovery_typed.trim().is_empty() {
                match codes::match_recovery(&recovery_typed, &entry.recovery) {
                    Some(i) => {
                        entry.recovery.remove(i);
                        true
                    }
                    None => false,
                }
            } else {
                false
            }
        });
        matches!(checked.await, Ok(true))
    };
    if !proved {
        outcome.event = Some(if via_passkey {
            "mfa-failed-passkey"
        } else {
            "mfa-failed"
        });
        record_failure(gate, req, &s.user, Step::Code).await;
        if gate.is_locked(&s.user, req.now).await {
            gate.sessions.remove(&cookie);
            return locked_page(
                req,
                "This account is locked after too many failed attempts. Ask the practice's security officer.",
            );
        }
        return mfa_form(
            gate,
            req,
            Some(if via_passkey {
                "That passkey was not accepted. Try again, or use your authenticator code."
            } else {
                "That code is not right, or it was already used. Wait for the next code and try again."
            }),
        )
        .await;
    }
    clear_failures(gate, &s.user, Step::Code).await;
    // Both factors right, but the account has passed its end date: no session, only the
    // form to ask for more time.
    let ended = gate
        .accounts
        .snapshot()
        .directory
        .get(&s.user)
        .is_some_and(|a| a.only_ended(accounts::today(req.now)));
    if ended && s.idp.is_none() {
        gate.sessions.remove(&cookie);
        let form = more_time::offer(gate, req, &s.user, outcome).await;
        return with_cookie(form, session::set_cookie(COOKIE, "", Some(0)));
    }
    if let Err(resp) = admit(gate, req, &s.user) {
        gate.sessions.remove(&cookie);
        return *resp;
    }
    let Ok(mut full_session) = Session::new(
        &s.user,
        s.epoch,
        req.now,
        Stage::Complete,
        true,
        req.client_ip,
        &s.return_to,
    ) else {
        return unavailable(req);
    };
    // A single sign-on that needed ward's code keeps what the provider said.
    full_session.passkey = via_passkey;
    full_session.extra_roles = s.extra_roles.clone();
    full_session.idp = s.idp.clone();
    let Ok(new_cookie) = codes::random_token() else {
        return unavailable(req);
    };
    gate.sessions.remove(&cookie);
    gate.sessions.insert(&new_cookie, Arc::new(full_session));
    record_login(gate, req, &s.user).await;
    outcome.event = Some(if via_passkey {
        "login-ok-passkey"
    } else if recovery.trim().is_empty() {
        "login-ok"
    } else {
        "login-ok-recovery-code"
    });
    with_cookie(
        redirect(&s.return_to),
        session::set_cookie(COOKIE, &new_cookie, None),
    )
}

// ---------- sign out ----------

fn logout_form(gate: &Gate, req: &PageRequest<'_>) -> Response<Body> {
    let Some((_, s)) = current(gate, req) else {
        return redirect("/.ward/logged-out");
    };
    let body = html! {
        form method="post" action="/.ward/logout" {
            input type="hidden" name="csrf" value=(s.csrf);
            p { button type="submit" autofocus { "Sign out" } }
        }
    };
    page(req, StatusCode::OK, "Sign out", body)
}

async fn logout_submit(
    gate: &Gate,
    req: &PageRequest<'_>,
    body: Incoming,
    outcome: &mut PageOutcome,
) -> Response<Body> {
    let form = read_form(body).await.unwrap_or_default();
    let Some((cookie, s)) = current(gate, req) else {
        // No session came with this post (another site's form carries no
        // SameSite cookie): nothing to end, and the cookie is left alone.
        return redirect("/.ward/logged-out");
    };
    if !codes::ct_eq(&s.csrf, form.get("csrf")) {
        return logout_form(gate, req);
    }
    outcome.user = Some(s.user.clone());
    outcome.event = Some("logout");
    gate.sessions.remove(&cookie);
    // Signed in through a provider: sign out there too, where it offers it.
    if let Some(url) = sso_logout_target(gate, req.policy, &s) {
        return with_cookie(redirect(&url), session::set_cookie(COOKIE, "", Some(0)));
    }
    with_cookie(
        redirect("/.ward/logged-out"),
        session::set_cookie(COOKIE, "", Some(0)),
    )
}

fn logged_out(gate: &Gate, req: &PageRequest<'_>) -> Response<Body> {
    // Another site may link here: a session that still stands keeps its cookie
    // (clearing it would leave the person thinking they were signed out while
    // the session lived on); they are offered the real sign-out instead. ward's
    // own idle script comes from the same origin and always clears.
    let from_another_site = req
        .headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"));
    if from_another_site && let Some(s) = crate::web::kit::standing_session(gate, req) {
        let body = html! {
            p role="status" { "You are still signed in as " (s.user) "." }
            p { a href="/.ward/logout" { "Sign out" } }
        };
        return page(req, StatusCode::OK, "Still signed in", body);
    }
    let reason = query_param(req.query.as_deref(), "reason");
    let text = match reason.as_deref() {
        Some("idle") => accounts::Ended::Idle.explain(),
        Some("lifetime") => accounts::Ended::TooOld.explain(),
        Some("changed") => accounts::Ended::CredentialsChanged.explain(),
        Some("account") => accounts::Ended::AccountClosed.explain(),
        _ => "You are signed out.",
    };
    let body = html! {
        p role="status" { (text) }
        p { a href="/.ward/login" { "Sign in again" } }
    };
    // The cookie goes too, and the browser is told to drop everything this
    // origin left (an app's cookies, stored data, cached pages), so a shared
    // computer holds nothing of the person.
    let mut resp = with_cookie(
        page(req, StatusCode::OK, "Signed out", body),
        session::set_cookie(COOKIE, "", Some(0)),
    );
    resp.headers_mut().insert(
        "clear-site-data",
        HeaderValue::from_static("\"cache\", \"cookies\", \"storage\""),
    );
    resp
}

// ---------- idle warning ----------

/// Added to HTML pages: warns a minute before idle logoff, then clears the screen.
const IDLE_JS: &str = include_str!("idle.js");

fn idle_script() -> Response<Body> {
    let mut resp = Response::new(full(IDLE_JS));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// Seconds left before idle logoff; polling it does not count as activity.
fn session_status(gate: &Gate, req: &PageRequest<'_>) -> Response<Body> {
    let snap = gate.accounts.snapshot();
    let body = match current(gate, req).filter(|(_, s)| s.stage == Stage::Complete) {
        Some((_, s)) => match accounts::identity_of(&s, &snap, req.policy, req.now) {
            Ok(who) => {
                let limit = req.policy.idle_limit(&who.roles).as_secs() as i64;
                let idle_left = limit - (req.now - s.last_active());
                let life_left =
                    req.policy.sessions.max_lifetime.as_secs() as i64 - (req.now - s.created);
                serde_json::json!({ "signed_in": true, "remaining": idle_left.min(life_left).max(0), "keepalive": s.keepalive })
            }
            Err(why) => serde_json::json!({ "signed_in": false, "reason": why.code() }),
        },
        None => serde_json::json!({ "signed_in": false }),
    };
    pages::text(StatusCode::OK, "application/json", format!("{body}\n"))
}

fn keepalive(gate: &Gate, req: &PageRequest<'_>) -> Response<Body> {
    let token = req
        .headers
        .get("x-ward-keepalive")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let snap = gate.accounts.snapshot();
    match current(gate, req) {
        Some((_, s))
            if codes::ct_eq(&s.keepalive, token)
                && same_origin(req)
                && accounts::identity_of(&s, &snap, req.policy, req.now).is_ok() =>
        {
            s.touch(req.now);
            pages::text(StatusCode::NO_CONTENT, "text/plain", String::new())
        }
        _ => pages::text(
            StatusCode::UNAUTHORIZED,
            "text/plain",
            "signed out\n".into(),
        ),
    }
}

// ---------- enrollment ----------

/// The account and its pending enrollment for a link's token, if the link is valid now.
async fn enrollment_for(gate: &Gate, token: &str, now: i64) -> Option<(String, UserSecrets)> {
    if token.is_empty() {
        return None;
    }
    let hash = codes::token_hash(token);
    let secrets = gate.accounts.store().read_async().await.ok()?;
    secrets.users.into_iter().find(|(_, s)| {
        s.enroll
            .as_ref()
            .is_some_and(|e| codes::ct_eq(&e.token_hash, &hash) && e.expires > now)
    })
}

async fn enroll_form(gate: &Gate, req: &PageRequest<'_>, error: Option<&str>) -> Response<Body> {
    let token = query_param(req.query.as_deref(), "token").unwrap_or_default();
    let Some((name, secrets)) = enrollment_for(gate, &token, req.now).await else {
        return page(
            req,
            StatusCode::NOT_FOUND,
            "Link not valid",
            html! { p { "This enrollment link is not valid: it may have been used already or be older than 24 hours. Ask the practice's security officer for a new one." } },
        );
    };
    let Some(pending) = secrets.enroll.as_ref() else {
        return unavailable(req);
    };
    let wants_password = pending.purpose != Purpose::ResetMfa;
    let wants_totp = pending.purpose != Purpose::ResetPassword;
    // The authenticator key is made once per link, so reloading the page shows the same one.
    let key = if wants_totp {
        match pending_totp_key(gate, &name, &token).await {
            Some(k) => Some(k),
            None => return unavailable(req),
        }
    } else {
        None
    };
    let authenticator = match &key {
        None => None,
        Some(key) => {
            let issuer = req.policy.practice.replace(':', " ");
            match totp::decode_secret(key).map(|k| totp::enrollment(&k, &issuer, &name)) {
                Some(Ok(e)) => Some(e),
                _ => return unavailable(req),
            }
        }
    };
    let body = html! {
        @if let Some(e) = error { p.error role="alert" { (e) } }
        p { "Setting up the account " strong { (name) } "." }
        form method="post" action={ "/.ward/enroll?token=" (token) } {
            @if wants_password {
                h2 { "1. Choose a password" }
                p { "At least 12 characters. A few unrelated words make a strong, memorable password. Don't reuse a password from another site." }
                p {
                    label for="password" { "New password" } br;
                    input #password name="password" type="password" autocomplete="new-password" minlength="12" required autofocus;
                }
                p {
                    label for="confirm" { "The same password again" } br;
                    input #confirm name="confirm" type="password" autocomplete="new-password" minlength="12" required;
                }
            }
            @if let Some(e) = &authenticator {
                h2 { (if wants_password { 2 } else { 1 }) ". Set up your authenticator app" }
                p { "Scan this code with an authenticator app (such as Microsoft Authenticator, Google Authenticator or 1Password), or type the key below into it." }
                // Raw: the qrcode crate's SVG of the key, made here; it holds no text anyone typed.
                div.qr aria-hidden="true" { (PreEscaped(&e.qr_svg)) }
                p {
                    label for="key" { "Key (type it if you cannot scan)" } br;
                    input #key value=(e.secret_base32) readonly size="40";
                }
                p {
                    label for="code" { "The 6-digit code the app shows now" } br;
                    input #code name="code" inputmode="numeric" autocomplete="one-time-code" maxlength="8" required;
                }
            }
            p { button type="submit" { "Finish setting up" } }
        }
    };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let mut resp = page(req, status, "Set up your account", body);
    resp.headers_mut()
        .insert("referrer-policy", HeaderValue::from_static("same-origin"));
    resp
}

/// The authenticator key for a pending enrollment, made and stored on first view.
async fn pending_totp_key(gate: &Gate, name: &str, token: &str) -> Option<String> {
    let hash = codes::token_hash(token);
    let fresh = totp::new_secret().ok()?;
    let fresh = data_encoding::BASE32_NOPAD.encode(&fresh);
    let name = name.to_string();
    gate.accounts
        .store()
        .update_async(move |s| {
            let pending = s.users.get_mut(&name)?.enroll.as_mut()?;
            if !codes::ct_eq(&pending.token_hash, &hash) {
                return None;
            }
            Some(pending.pending_totp.get_or_insert(fresh).clone())
        })
        .await
        .ok()
        .flatten()
}

async fn enroll_submit(
    gate: &Gate,
    req: &PageRequest<'_>,
    body: Incoming,
    outcome: &mut PageOutcome,
) -> Response<Body> {
    let token = query_param(req.query.as_deref(), "token").unwrap_or_default();
    let Some(form) = read_form(body).await else {
        return enroll_form(
            gate,
            req,
            Some("The form could not be read. Please try again."),
        )
        .await;
    };
    if !same_origin(req) {
        return enroll_form(gate, req, Some("This form has expired. Please try again.")).await;
    }
    if !gate.address_allows(req.policy, req.client_ip).await {
        return locked_page(
            req,
            "Too many attempts from this address. Wait a minute and try again.",
        );
    }
    let Some((name, secrets)) = enrollment_for(gate, &token, req.now).await else {
        return enroll_form(gate, req, None).await;
    };
    outcome.user = Some(name.clone());
    let Some(pending) = secrets.enroll.clone() else {
        return unavailable(req);
    };
    let wants_password = pending.purpose != Purpose::ResetMfa;
    let wants_totp = pending.purpose != Purpose::ResetPassword;

    let mut new_hash = None;
    if wants_password {
        let pw = form.get("password").to_string();
        if pw != form.get("confirm") {
            return enroll_form(gate, req, Some("The two passwords are not the same.")).await;
        }
        let snap = gate.accounts.snapshot();
        let display = snap
            .directory
            .get(&name)
            .map(|a| a.display_name.clone())
            .unwrap_or_default();
        let (n, d) = (name.clone(), display);
        let Ok(_permit) = gate.hashing.acquire().await else {
            return unavailable(req);
        };
        let checked = tokio::task::spawn_blocking(move || {
            password::check_new(&pw, &[&n, &d]).map_err(|p| p.to_string())?;
            password::hash(&pw).map_err(|e| e.to_string())
        })
        .await;
        match checked {
            Ok(Ok(h)) => new_hash = Some(h),
            Ok(Err(problem)) => return enroll_form(gate, req, Some(&problem)).await,
            Err(_) => return unavailable(req),
        }
    }
    let recovery = if wants_totp {
        match codes::new_recovery_codes() {
            Ok(r) => Some(r),
            Err(_) => return unavailable(req),
        }
    } else {
        None
    };
    let code = form.get("code").to_string();
    let hash = codes::token_hash(&token);
    let now = req.now;
    let recovery_hashes = recovery.as_ref().map(|(_, h)| h.clone());
    let enrolling = name.clone();
    let saved = gate.accounts.store().update_async(move |s| {
        let Some(entry) = s.users.get_mut(&enrolling) else {
            return Err("gone");
        };
        let Some(p) = entry
            .enroll
            .as_ref()
            .filter(|p| codes::ct_eq(&p.token_hash, &hash) && p.expires > now)
        else {
            return Err("gone");
        };
        if wants_totp {
            let key = p.pending_totp.clone().ok_or("code")?;
            let secret = totp::decode_secret(&key).ok_or("code")?;
            let step = totp::verify(&secret, &code, now.max(0) as u64, None).ok_or("code")?;
            entry.totp = Some(key);
            entry.totp_last_step = Some(step);
            entry.recovery = recovery_hashes.clone().unwrap_or_default();
        }
        if let Some(h) = &new_hash {
            entry.password = Some(h.clone());
        }
        entry.enroll = None;
        entry.clear_lockout();
        // Any session from before the change ends.
        entry.epoch = entry.epoch.saturating_add(1);
        Ok(())
    });
    match saved.await {
        Ok(Ok(())) => {}
        Ok(Err("code")) => {
            return enroll_form(
                gate,
                req,
                Some(
                    "That code is not right. Check the time on your phone, wait for the next code and try again.",
                ),
            ).await;
        }
        _ => return enroll_form(gate, req, None).await,
    }
    outcome.event = Some("enrolled");
    gate.sessions.remove_user(&name);
    let body = html! {
        p role="status" { "Your account is ready." }
        @if let Some((codes_plain, _)) = &recovery {
            h2 { "Your recovery codes" }
            p { "Each code works once, if you lose your phone. Print them or write them down and keep them somewhere safe; they will not be shown again." }
            ul.codes {
                @for c in codes_plain { li { code { (c) } } }
            }
        }
        p { a href="/.ward/login" { "Sign in now" } }
    };
    let mut resp = page(req, StatusCode::OK, "Account ready", body);
    resp.headers_mut()
        .insert("referrer-policy", HeaderValue::from_static("same-origin"));
    resp
}

/// Where to send a person after ward's sign-out: their provider's sign-out, when it has one.
fn sso_logout_target(gate: &Gate, policy: &Policy, s: &Session) -> Option<String> {
    let (name, id_token) = s.idp.as_deref()?;
    if let Some(cfg) = policy
        .login
        .saml
        .iter()
        .find(|p| &p.name == name && p.rules.logout)
    {
        let hint = serde_json::from_str(id_token).ok()?;
        return crate::web::saml::logout_url(gate, policy, cfg, &hint);
    }
    let cfg = policy
        .login
        .oidc
        .iter()
        .find(|p| &p.config.name == name && p.rules.logout)?;
    let key = (
        cfg.config.name.clone(),
        cfg.config.issuer.clone(),
        cfg.config.client_id.clone(),
    );
    let provider = gate.sso.providers.lock().ok()?.get(&key).cloned()?;
    provider.logout_url(
        id_token,
        &format!("{}/.ward/logged-out", policy.server.public_url),
    )
}
