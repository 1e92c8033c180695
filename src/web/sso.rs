//! Single sign-on with the practice's identity provider (OpenID Connect here, SAML in
//! `saml.rs`): sending people to the provider, and taking them back — with ward's own rules
//! applied to what it says ([`admit_verified`], shared by both).

use crate::auth::codes;
use crate::auth::oidc::{OidcError, Provider, Verified};
use crate::body::Body;
use crate::policy::{OidcProvider, SsoRules, WithoutMfa};
use crate::session::{self, COOKIE, Session, Stage};
use crate::users::accounts;
use crate::users::{Admin, NewAccount, SignIn, SsoLink};
use crate::web::kit::{self, PageOutcome, PageRequest};
use crate::web::login_page::login_form;
use crate::web::session_start;
use crate::web::state::Gate;
use http::{Response, StatusCode};
use maud::html;
use std::collections::HashMap;
use std::sync::Arc;

/// The cookie that ties a sign-in at the provider to this browser.
const STATE_COOKIE: &str = "__Host-ward-sso";

/// The provider, discovered on first use (an identity provider that is down
/// when ward starts does not stop ward).
async fn provider(gate: &Gate, cfg: &OidcProvider) -> Result<Provider, OidcError> {
    let key = (
        cfg.config.name.clone(),
        cfg.config.issuer.clone(),
        cfg.config.client_id.clone(),
    );
    if let Some(p) = gate
        .sso
        .providers
        .lock()
        .ok()
        .and_then(|m| m.get(&key).cloned())
    {
        return Ok(p);
    }
    let p = gate
        .sso
        .oidc_failures
        .guard(&key, Provider::discover(cfg.config.clone()))
        .await?;
    if let Ok(mut m) = gate.sso.providers.lock() {
        m.insert(key, p.clone());
    }
    Ok(p)
}

/// The page for a sign-in that did not work.
pub(crate) fn failed(req: &PageRequest<'_>, status: StatusCode, message: &str) -> Response<Body> {
    let body = html! {
        p role="alert" { (message) }
        p { "If this keeps happening, tell the practice's IT contact this reference: " code { (req.request_id) } }
        p { a href="/.ward/login" { "Back to sign in" } }
    };
    kit::page(req, status, "Single sign-on did not work", body)
}

/// Checks a posted `/.ward/sso/NAME` form (this site's, not expired) and gives the
/// address to return to after the sign-in, or the sign-in page to show again.
pub fn checked_start(
    req: &PageRequest<'_>,
    form: &kit::Form,
) -> Result<String, Box<Response<Body>>> {
    let cookie_csrf = session::cookie_value(&req.headers, kit::CSRF_COOKIE).unwrap_or("");
    let form_csrf = form.get("csrf");
    if !kit::same_origin(req) || cookie_csrf.is_empty() || !codes::ct_eq(cookie_csrf, form_csrf) {
        return Err(Box::new(login_form(
            req,
            Some("This sign-in form has expired. Please try again."),
        )));
    }
    Ok(kit::safe_return(match form.get("return") {
        "" => "/",
        r => r,
    }))
}

/// `POST /.ward/sso/NAME` for an OpenID Connect provider (the form already checked by
/// `checked_start`): sends the person to the provider.
pub async fn begin(
    gate: &Gate,
    req: &PageRequest<'_>,
    outcome: &mut PageOutcome,
    name: &str,
    return_to: &str,
) -> Response<Body> {
    let Some(cfg) = req.policy.login.oidc.iter().find(|p| p.config.name == name) else {
        return failed(
            req,
            StatusCode::NOT_FOUND,
            "There is no such sign-in provider.",
        );
    };
    let p = match provider(gate, cfg).await {
        Ok(p) => p,
        Err(e) => {
            outcome.event = Some("sso-failed");
            tracing::warn!(provider = %name, error = %e, code = e.code(), "single sign-on: provider unavailable");
            return failed(
                req,
                StatusCode::BAD_GATEWAY,
                &format!("ward could not reach {}: {e}", cfg.rules.label),
            );
        }
    };
    let (url, pending) = match p.begin(return_to, req.now) {
        Ok(x) => x,
        Err(e) => return failed(req, StatusCode::BAD_GATEWAY, &e.to_string()),
    };
    let cookie = session::set_cookie(STATE_COOKIE, &pending.state, Some(600));
    send_to_provider(gate, req, outcome, &url, pending, cookie).await
}

/// Keeps the sign-in under way and sends the person to the provider's `url`, with `cookie`
/// tying the sign-in to this browser.
pub(crate) async fn send_to_provider(
    gate: &Gate,
    req: &PageRequest<'_>,
    outcome: &mut PageOutcome,
    url: &str,
    pending: crate::auth::oidc::Pending,
    cookie: String,
) -> Response<Body> {
    if !gate.sso_steps.put(pending).await {
        return kit::unavailable(req);
    }
    outcome.event = Some("sso-started");
    kit::with_cookie(kit::redirect(url), cookie)
}

/// `GET /.ward/callback`: the provider sends the person back.
pub async fn callback(
    gate: &Gate,
    req: &PageRequest<'_>,
    outcome: &mut PageOutcome,
) -> Response<Body> {
    let query: HashMap<String, String> = req
        .query
        .as_deref()
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default();
    let state = query.get("state").map(String::as_str).unwrap_or("");
    let cookie_state = session::cookie_value(&req.headers, STATE_COOKIE).unwrap_or("");
    let clear_state = session::set_cookie(STATE_COOKIE, "", Some(0));
    // The sign-in must come back to the browser that started it.
    let pending = if !state.is_empty() && codes::ct_eq(state, cookie_state) {
        gate.sso_steps.take(state).await
    } else {
        None
    };
    let Some(pending) = pending else {
        outcome.event = Some("sso-failed");
        tracing::warn!(client = %req.client_ip, "single sign-on: unknown or forged state");
        // The cookie stays: a forged callback must not spoil the real one still to come.
        return failed(
            req,
            StatusCode::BAD_REQUEST,
            "This sign-in could not be matched to one started here (it may have expired or been tampered with). Please start again.",
        );
    };
    let Some(cfg) = req
        .policy
        .login
        .oidc
        .iter()
        .find(|p| p.config.name == pending.provider)
    else {
        return failed(
            req,
            StatusCode::BAD_REQUEST,
            "The sign-in provider is no longer configured.",
        );
    };
    let verified = match provider(gate, cfg).await {
        Ok(p) => p.finish(&pending, &query).await,
        Err(e) => Err(e),
    };
    let verified = match verified {
        Ok(v) => v,
        Err(e) => {
            outcome.event = Some("sso-failed");
            tracing::warn!(provider = %cfg.config.name, code = e.code(), error = %e, "single sign-on failed");
            let status = match e {
                OidcError::Unreachable(_) | OidcError::Discovery(_) => StatusCode::BAD_GATEWAY,
                _ => StatusCode::BAD_REQUEST,
            };
            return kit::with_cookie(failed(req, status, &e.to_string()), clear_state);
        }
    };
    let who = Provided {
        name: &cfg.config.name,
        issuer: &cfg.config.issuer,
        rules: &cfg.rules,
        username_claim: &cfg.rules.username_claim,
    };
    let resp = admit_verified(gate, req, &who, verified, &pending.return_to, outcome).await;
    kit::with_cookie(resp, clear_state)
}

/// The provider a verified sign-in comes from, and the officer's rules for it.
pub(crate) struct Provided<'a> {
    /// The policy's name for the provider.
    pub name: &'a str,
    /// Whose subjects the account links hold: the OIDC issuer or the SAML IdP's entity id.
    pub issuer: &'a str,
    pub rules: &'a SsoRules,
    /// `email` (the part before @) or `preferred_username`.
    pub username_claim: &'a str,
}

/// The account name a provider's claims stand for.
fn account_name(cfg: &Provided<'_>, v: &Verified) -> Result<String, &'static str> {
    let email = v.email.as_deref().map(str::to_ascii_lowercase);
    if !cfg.rules.allowed_domains.is_empty() {
        let Some(email) = &email else {
            return Err("The provider did not say which e-mail address you signed in with.");
        };
        let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
        if !cfg.rules.allowed_domains.iter().any(|d| d == domain) {
            return Err("Accounts from that e-mail domain may not sign in here.");
        }
        // An address the provider has not verified may be anyone's.
        if v.email_verified != Some(true) {
            return Err("The provider has not verified your e-mail address.");
        }
    }
    let raw = match cfg.username_claim {
        "preferred_username" => v.preferred_username.clone().map(|u| u.to_ascii_lowercase()),
        _ => email.and_then(|e| e.split_once('@').map(|(local, _)| local.to_string())),
    };
    let name = raw.ok_or("The provider did not say who you are.")?;
    crate::users::directory::check_name(&name)
        .map_err(|_| "Your user name at the provider cannot be used here.")?;
    Ok(name)
}

/// Signs in (or refuses) the person a provider vouched for, by ward's own rules: the
/// account and its links, the officer's role map, MFA, the account's state and networks.
pub(crate) async fn admit_verified(
    gate: &Gate,
    req: &PageRequest<'_>,
    cfg: &Provided<'_>,
    v: Verified,
    return_to: &str,
    outcome: &mut PageOutcome,
) -> Response<Body> {
    let refuse = |outcome: &mut PageOutcome, why: &str| {
        outcome.event = Some("sso-refused");
        tracing::warn!(provider = %cfg.name, user = outcome.user.as_deref(), reason = why, "single sign-on refused");
        failed(req, StatusCode::FORBIDDEN, why)
    };
    // The account linked to this identity at this provider decides; claims only
    // find the account for a first sign-in, which then links it.
    let issuer = cfg.issuer;
    let links = gate
        .accounts
        .store()
        .read_async()
        .await
        .map(|s| s.users)
        .unwrap_or_default();
    let linked = links.iter().find_map(|(n, u)| {
        u.sso_links
            .iter()
            .any(|l| l.issuer == issuer && codes::ct_eq(&l.subject, &v.subject))
            .then(|| n.clone())
    });
    let name = match (&linked, account_name(cfg, &v)) {
        (Some(n), _) => n.clone(),
        (None, Ok(n)) => n,
        (None, Err(why)) => return refuse(outcome, why),
    };
    outcome.user = Some(name.clone());
    if linked.is_none() {
        // Another identity at this provider holds the account: the claims that
        // point here (a reused e-mail name, another domain) do not take it over.
        if links
            .get(&name)
            .is_some_and(|u| u.sso_links.iter().any(|l| l.issuer == issuer))
        {
            return refuse(
                outcome,
                "This account is linked to another person at the sign-in provider. Ask the practice's security officer.",
            );
        }
        // Officers sign in with ward's own password and code, unless their
        // account was set to single sign-on on purpose.
        let snap = gate.accounts.snapshot();
        if snap.directory.get(&name).is_some_and(|a| {
            a.roles
                .iter()
                .any(|r| r == crate::users::review::OFFICER_ROLE)
                && a.sign_in != SignIn::Sso
        }) {
            return refuse(
                outcome,
                "Officer accounts sign in with their ward password and code. The officer's account can be set to single sign-on on purpose (sign_in = \"sso\" in users.toml).",
            );
        }
    }
    // Roles come from the provider's groups through the officer's map; none by default.
    let mut roles: Vec<String> = Vec::new();
    for g in &v.groups {
        for r in cfg.rules.role_map.get(g).into_iter().flatten() {
            if !roles.contains(r) {
                roles.push(r.clone());
            }
        }
    }
    let mut snap = gate.accounts.snapshot();
    if snap.directory.get(&name).is_none() {
        if !cfg.rules.create_accounts {
            return refuse(
                outcome,
                "There is no account for you here. Ask the practice's security officer to add you.",
            );
        }
        if roles.is_empty() {
            return refuse(
                outcome,
                "Your groups at the sign-in provider give you no access here.",
            );
        }
        let store = gate.accounts.store().clone();
        let admin = Admin::new(gate.accounts.users_file(), store, &req.policy.practice);
        let new = NewAccount {
            name: name.clone(),
            display_name: v.name.clone().unwrap_or_else(|| name.clone()),
            roles: Vec::new(),
            org: None,
            expires: None,
            sponsor: None,
            allow_from: Vec::new(),
        };
        let now = req.now;
        let added =
            tokio::task::spawn_blocking(move || admin.add(new, now).map_err(|e| e.to_string()))
                .await
                .unwrap_or_else(|_| Err("ward is stopping".to_string()));
        if let Err(e) = added {
            tracing::warn!(user = %name, error = %e, "single sign-on: could not create the account");
            return refuse(
                outcome,
                "ward could not create your account. Ask the practice's security officer.",
            );
        }
        // No enrollment link for a person who signs in through the provider.
        let created = name.clone();
        let no_link = gate.accounts.store().update_async(move |s| {
            if let Some(u) = s.users.get_mut(&created) {
                u.enroll = None;
            }
        });
        if let Err(e) = no_link.await {
            tracing::warn!(user = %name, error = %e, "single sign-on: could not void the new account's enrollment link");
        }
        let _ = gate.accounts.reload(req.policy);
        snap = gate.accounts.snapshot();
        outcome.event = Some("sso-account-created");
    }
    let Some(account) = snap.directory.get(&name) else {
        return refuse(outcome, "There is no account for you here.");
    };
    // The officer's word outranks the provider's: closed accounts stay closed.
    if !account.usable_on(accounts::today(req.now)) {
        return refuse(
            outcome,
            "This account cannot sign in. Ask the practice's security officer.",
        );
    }
    if !session_start::signs_in_from_here(gate, req.policy, &name, req.client_ip) {
        return refuse(
            outcome,
            "This account cannot sign in from this network. Ask the practice's security officer.",
        );
    }
    // A lock (wrong passwords or codes) holds whichever way the person signs in.
    if gate.is_locked(&name, req.now).await {
        return refuse(
            outcome,
            "This account is locked after too many failed attempts. Try again later, or ask the practice's security officer to unlock it.",
        );
    }
    if account.sign_in == SignIn::Password {
        return refuse(
            outcome,
            "This account signs in with its ward password, not single sign-on.",
        );
    }
    if linked.is_none() {
        let link = SsoLink {
            issuer: issuer.to_string(),
            subject: v.subject.clone(),
        };
        let linking = name.clone();
        let saved = gate.accounts.store().update_async(move |s| {
            let u = s.users.entry(linking).or_default();
            if !u.sso_links.iter().any(|l| l.issuer == link.issuer) {
                u.sso_links.push(link);
            }
        });
        if saved.await.is_err() {
            return refuse(outcome, "ward cannot sign anyone in right now.");
        }
        outcome.event = Some(outcome.event.unwrap_or("sso-linked"));
    }
    let mut all_roles = account.roles.clone();
    all_roles.extend(roles.iter().cloned());
    if all_roles.is_empty() {
        return refuse(
            outcome,
            "Your groups at the sign-in provider give you no access here.",
        );
    }
    let shown_mfa = v.amr.iter().any(|a| cfg.rules.mfa_amr.contains(a))
        || v.acr
            .as_ref()
            .is_some_and(|a| cfg.rules.mfa_acr.contains(a));
    let needs_mfa = req.policy.mfa_required(&all_roles);
    let standing = snap.standing.get(&name).cloned().unwrap_or_default();
    let stage = if needs_mfa && !shown_mfa {
        match (cfg.rules.without_mfa, standing.has_totp) {
            (WithoutMfa::WardTotp, true) => Stage::NeedsMfa,
            (WithoutMfa::WardTotp, false) => {
                return refuse(
                    outcome,
                    "Your sign-in did not include a second factor, and you have no ward authenticator set up. Sign in again with your provider's second factor, or ask the security officer.",
                );
            }
            (WithoutMfa::Refuse, _) => {
                return refuse(
                    outcome,
                    "Your sign-in did not include a second factor (such as an authenticator app), which this practice requires. Sign in again with it.",
                );
            }
        }
    } else {
        Stage::Complete
    };
    let Ok(session) = Session::new(
        &name,
        standing.epoch,
        req.now,
        stage,
        shown_mfa,
        req.client_ip,
        return_to,
    ) else {
        return refuse(outcome, "ward cannot sign anyone in right now.");
    };
    let session = session.with_sso(roles, cfg.name, v.id_token.clone());
    let Ok(cookie) = codes::random_token() else {
        return refuse(outcome, "ward cannot sign anyone in right now.");
    };
    if let Some(old) = session::cookie_value(&req.headers, COOKIE) {
        gate.sessions.remove(old);
    }
    if stage == Stage::Complete {
        if let Err(resp) = session_start::admit(gate, req, &name) {
            return *resp;
        }
        session_start::record_login(gate, req, &name).await;
        outcome.event = Some(outcome.event.unwrap_or("sso-login-ok"));
    } else {
        session_start::make_room_for_pending(gate, &name);
    }
    gate.sessions.insert(&cookie, Arc::new(session));
    let next = if stage == Stage::Complete {
        return_to.to_string()
    } else {
        "/.ward/mfa".to_string()
    };
    kit::with_cookie(
        kit::redirect(&next),
        session::set_cookie(COOKIE, &cookie, None),
    )
}
