//! SAML 2.0 single sign-on pages: sending people to the identity provider, taking its answer
//! at `/.ward/saml/acs`, ward's metadata at `/.ward/saml/metadata`, and the IdP's return
//! from single logout, or its own logout request, at `/.ward/saml/logout`. What the IdP vouched for goes through the same
//! rules as OpenID Connect ([`sso::admit_verified`]).

use crate::auth::codes;
use crate::auth::oidc::Verified;
use crate::auth::saml::{Asserted, Idp, LogoutHint, SamlError};
use crate::auth::saml_key::SpKey;
use crate::auth::saml_redirect;
use crate::body::Body;
use crate::policy::{Policy, SamlProvider, SamlSigning, SamlSource};
use crate::session;
use crate::web::kit::{self, PageOutcome, PageRequest};
use crate::web::sso::{self, Provided, failed};
use crate::web::state::Gate;
use http::{HeaderValue, Response, StatusCode, header};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The cookie that ties a sign-in at the IdP to this browser. The IdP posts its answer from
/// its own site, so this cookie (unlike ward's others) is `SameSite=None`; it holds only the
/// random RelayState, is `Secure`, `HttpOnly`, `__Host-`, and lives ten minutes.
const STATE_COOKIE: &str = "__Host-ward-saml";

fn state_cookie(value: &str, max_age: u64) -> String {
    format!("{STATE_COOKIE}={value}; Path=/; Max-Age={max_age}; Secure; HttpOnly; SameSite=None")
}

/// How long metadata fetched from the IdP's address is used before it is fetched again
/// (IdPs publish a new signing certificate there before they switch to it).
const METADATA_TTL: Duration = Duration::from_secs(24 * 3600);

/// The IdP of `cfg`: from its metadata file, or from its address (fetched on first use, kept
/// a day; a failed refresh keeps the copy in hand, and a failed fetch is not tried again for
/// `sso_steps::RETRY_AFTER`).
async fn idp(gate: &Gate, cfg: &SamlProvider) -> Result<Idp, SamlError> {
    let url = match &cfg.source {
        SamlSource::File(idp) => return Ok(idp.as_ref().clone()),
        SamlSource::Url(url) => url,
    };
    let key = (cfg.name.clone(), url.clone());
    let cached = gate.sso.saml.lock().ok().and_then(|m| m.get(&key).cloned());
    if let Some((idp, at)) = &cached
        && at.elapsed() < METADATA_TTL
    {
        return Ok(idp.clone());
    }
    let fetch = async {
        let xml = crate::auth::oidc::fetch_text(url)
            .await
            .map_err(|e| SamlError::Metadata(e.to_string()))?;
        let (entity, acs, slo) = &cfg.sp;
        Idp::from_metadata(&xml, entity, acs, slo, cfg.clock_skew)
    };
    let fetched = gate.sso.saml_failures.guard(&key, fetch).await;
    match (fetched, cached) {
        (Ok(idp), _) => {
            if let Ok(mut m) = gate.sso.saml.lock() {
                m.insert(key, (idp.clone(), Instant::now()));
            }
            Ok(idp)
        }
        (Err(e), Some((idp, _))) => {
            tracing::warn!(provider = %cfg.name, error = %e, "single sign-on: could not refresh the IdP's metadata; using the copy in hand");
            Ok(idp)
        }
        (Err(e), None) => Err(e),
    }
}

/// The IdP of `cfg` when it is at hand without fetching (for sign-out).
pub fn idp_at_hand(gate: &Gate, cfg: &SamlProvider) -> Option<Idp> {
    match &cfg.source {
        SamlSource::File(idp) => Some(idp.as_ref().clone()),
        SamlSource::Url(url) => gate
            .sso
            .saml
            .lock()
            .ok()?
            .get(&(cfg.name.clone(), url.clone()))
            .map(|(idp, _)| idp.clone()),
    }
}

/// Sends the person to the IdP (`POST /.ward/sso/NAME`, the form already checked).
pub async fn begin(
    gate: &Gate,
    req: &PageRequest<'_>,
    outcome: &mut PageOutcome,
    cfg: &SamlProvider,
    return_to: &str,
) -> Response<Body> {
    let idp = match idp(gate, cfg).await {
        Ok(idp) => idp,
        Err(e) => {
            outcome.event = Some("sso-failed");
            tracing::warn!(provider = %cfg.name, code = e.code(), error = %e, "single sign-on: IdP metadata unavailable");
            return failed(req, StatusCode::BAD_GATEWAY, &e.to_string());
        }
    };
    let key = match request_key(gate, req.policy, cfg) {
        Ok(k) => k,
        Err(e) => {
            outcome.event = Some("sso-failed");
            tracing::warn!(provider = %cfg.name, code = e.code(), error = %e, "single sign-on: ward's SAML signing key cannot be used");
            return failed(req, StatusCode::INTERNAL_SERVER_ERROR, &e.to_string());
        }
    };
    let (url, pending) = match idp.begin(&cfg.name, return_to, req.now, key.as_deref()) {
        Ok(x) => x,
        Err(e) => return failed(req, StatusCode::BAD_GATEWAY, &e.to_string()),
    };
    let cookie = state_cookie(&pending.state, 600);
    sso::send_to_provider(gate, req, outcome, &url, pending, cookie).await
}

/// `POST /.ward/saml/acs`: the IdP's answer (HTTP-POST binding).
pub async fn acs(
    gate: &Gate,
    req: &PageRequest<'_>,
    form: &kit::Form,
    outcome: &mut PageOutcome,
) -> Response<Body> {
    let relay = form.get("RelayState");
    let cookie_state = session::cookie_value(&req.headers, STATE_COOKIE).unwrap_or("");
    // The answer must come back to the browser that started the sign-in (no IdP-initiated
    // sign-ins: nothing would tie them to a request ward made).
    let pending = if !relay.is_empty() && codes::ct_eq(relay, cookie_state) {
        gate.sso_steps.take(relay).await
    } else {
        None
    };
    let Some(pending) = pending else {
        outcome.event = Some("sso-failed");
        tracing::warn!(client = %req.client_ip, code = "saml_unknown_state", "single sign-on: unknown or forged RelayState");
        return failed(
            req,
            StatusCode::BAD_REQUEST,
            "This sign-in could not be matched to one started here (it may have expired, been used already, or been tampered with). Please start again.",
        );
    };
    let clear_state = state_cookie("", 0);
    let Some(cfg) = req
        .policy
        .login
        .saml
        .iter()
        .find(|p| p.name == pending.provider)
    else {
        return failed(
            req,
            StatusCode::BAD_REQUEST,
            "The sign-in provider is no longer configured.",
        );
    };
    let refused = |outcome: &mut PageOutcome, e: SamlError| {
        outcome.event = Some("sso-failed");
        tracing::warn!(provider = %cfg.name, code = e.code(), error = %e, "single sign-on failed");
        kit::with_cookie(
            failed(req, StatusCode::BAD_REQUEST, &e.to_string()),
            state_cookie("", 0),
        )
    };
    let idp = match idp(gate, cfg).await {
        Ok(idp) => idp,
        Err(e) => return refused(outcome, e),
    };
    let decrypt_with = if req.policy.login.saml_signing.decrypt {
        match signing_key(gate, &req.policy.login.saml_signing) {
            Ok(k) => Some(k),
            Err(e) => return refused(outcome, e),
        }
    } else {
        None
    };
    let asserted = match idp.finish(&pending, form.get("SAMLResponse"), decrypt_with.as_deref()) {
        Ok(a) => a,
        Err(e) => return refused(outcome, e),
    };
    // One-time use: an assertion seen before is refused, whichever instance saw it.
    if !gate
        .sso_steps
        .first_use(&asserted.id, asserted.expires, req.now)
        .await
    {
        return refused(outcome, SamlError::Replayed);
    }
    let (verified, username_claim) = verified(cfg, asserted);
    let who = Provided {
        name: &cfg.name,
        issuer: idp.entity_id(),
        rules: &cfg.rules,
        username_claim,
    };
    let resp = sso::admit_verified(gate, req, &who, verified, &pending.return_to, outcome).await;
    kit::with_cookie(resp, clear_state)
}

/// What the IdP vouched for, in the shape ward's sign-in rules read, and the claim that
/// names the account (`email` when the name is an address, else `preferred_username`).
fn verified(cfg: &SamlProvider, a: Asserted) -> (Verified, &'static str) {
    let username = if cfg.username_attribute.is_empty() {
        Some(a.name_id.clone())
    } else {
        a.values(&cfg.username_attribute).into_iter().next()
    };
    let is_email = username.as_deref().is_some_and(|u| u.contains('@'));
    let hint = LogoutHint {
        name_id: a.name_id.clone(),
        name_id_format: a.name_id_format.clone(),
        session_index: a.session_index.clone(),
    };
    let v = Verified {
        subject: a.name_id.clone(),
        email: username.clone().filter(|_| is_email),
        // The IdP is the practice's own directory: the address it asserts is the person's.
        email_verified: Some(true),
        preferred_username: username.filter(|_| !is_email),
        name: if cfg.name_attribute.is_empty() {
            None
        } else {
            a.values(&cfg.name_attribute).into_iter().next()
        },
        groups: a.values(&cfg.groups_attribute),
        amr: Vec::new(),
        acr: a.authn_context.clone(),
        id_token: serde_json::to_string(&hint).unwrap_or_default(),
    };
    (
        v,
        if is_email {
            "email"
        } else {
            "preferred_username"
        },
    )
}

/// ward's SAML signing key: the officer's files, or ward's own in the state folder, made
/// when first needed. Read once and kept (a new file is read when the policy names another).
pub fn signing_key(gate: &Gate, signing: &SamlSigning) -> Result<Arc<SpKey>, SamlError> {
    let mut held = gate
        .sso
        .saml_key
        .lock()
        .map_err(|_| SamlError::Request("the signing key is unavailable".into()))?;
    if let Some((at, key)) = held.as_ref()
        && at == signing
    {
        return Ok(key.clone());
    }
    let loaded = if signing.given {
        SpKey::load(&signing.key, &signing.cert)
    } else {
        SpKey::load_or_create(&signing.key, &signing.cert)
    }
    .map_err(|e| SamlError::Request(format!("ward's SAML signing key: {e}")))?;
    let key = Arc::new(loaded);
    *held = Some((signing.clone(), key.clone()));
    Ok(key)
}

/// The key to sign requests to `cfg`'s IdP with, or None when it is set not to sign.
fn request_key(
    gate: &Gate,
    policy: &Policy,
    cfg: &SamlProvider,
) -> Result<Option<Arc<SpKey>>, SamlError> {
    if !cfg.sign_requests {
        return Ok(None);
    }
    signing_key(gate, &policy.login.saml_signing).map(Some)
}

/// Where to send a person whose session came from `cfg`'s IdP after ward's sign-out: the
/// IdP's single logout, with a (signed) `LogoutRequest` for `hint`.
pub fn logout_url(
    gate: &Gate,
    policy: &Policy,
    cfg: &SamlProvider,
    hint: &LogoutHint,
) -> Option<String> {
    let idp = idp_at_hand(gate, cfg)?;
    let key = match request_key(gate, policy, cfg) {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!(provider = %cfg.name, error = %e, "single logout at the IdP skipped");
            return None;
        }
    };
    idp.logout_url(hint, key.as_deref())
}

/// `GET /.ward/saml/metadata`: ward's service-provider metadata, for the IdP's administrator.
pub fn metadata(gate: &Gate, req: &PageRequest<'_>) -> Response<Body> {
    let (entity, acs, slo) =
        crate::auth::saml::sp_addresses(req.policy.server.public_url.trim_end_matches('/'));
    let saml = &req.policy.login.saml;
    let cert = if saml.is_empty() {
        None
    } else {
        match signing_key(gate, &req.policy.login.saml_signing) {
            Ok(k) => Some(k.certificate_base64()),
            Err(e) => {
                tracing::warn!(error = %e, "ward's SAML metadata is served without its signing certificate");
                None
            }
        }
    };
    let all_signed = !saml.is_empty() && saml.iter().all(|p| p.sign_requests);
    let xml = crate::auth::saml::sp_metadata(
        &entity,
        &acs,
        &slo,
        cert.as_deref(),
        all_signed,
        req.policy.login.saml_signing.decrypt,
    );
    let mut resp = Response::new(crate::body::full(xml));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/samlmetadata+xml"),
    );
    resp
}

/// `GET /.ward/saml/logout`. With a `SAMLRequest`: an IdP ends the person's sessions there
/// (IdP-initiated logout); with anything else: the IdP's return from the single logout ward
/// started, after ward's own session already ended, so the signed-out page.
pub async fn logout(
    gate: &Gate,
    req: &PageRequest<'_>,
    outcome: &mut PageOutcome,
) -> Response<Body> {
    let query = req.query.as_deref().unwrap_or("");
    if !query.split('&').any(|p| p.starts_with("SAMLRequest=")) {
        return kit::redirect("/.ward/logged-out");
    }
    match idp_logout(gate, req, query).await {
        Ok((users, answer)) => {
            outcome.event = Some("sso-logout");
            outcome.user = users.first().cloned();
            tracing::info!(
                sessions = users.len(),
                "single logout started by the identity provider"
            );
            match answer {
                Some(url) => kit::redirect(&url),
                None => kit::redirect("/.ward/logged-out"),
            }
        }
        Err(e) => {
            outcome.event = Some("sso-logout-refused");
            tracing::warn!(client = %req.client_ip, code = e.code(), error = %e, "single logout request from an identity provider refused");
            failed(req, StatusCode::BAD_REQUEST, &e.to_string())
        }
    }
}

/// Checks an IdP's `LogoutRequest`, ends the sessions it names, and gives the address of the
/// answer to the IdP (None when the IdP offers no logout address).
async fn idp_logout(
    gate: &Gate,
    req: &PageRequest<'_>,
    query: &str,
) -> Result<(Vec<String>, Option<String>), SamlError> {
    let msg = saml_redirect::receive(query, "SAMLRequest")?;
    let issuer = crate::auth::saml::claimed_issuer(&msg.xml)?;
    // The providers whose IdP has the entity id the request claims (two may share one);
    // the request stands if one's certificates bear it out.
    let mut names = Vec::new();
    let mut checked = None;
    let mut refusal =
        SamlError::Refused("the logout request is from no identity provider ward knows".into());
    for cfg in &req.policy.login.saml {
        let Ok(idp) = idp(gate, cfg).await else {
            continue;
        };
        if idp.entity_id() != issuer {
            continue;
        }
        names.push(cfg.name.as_str());
        if checked.is_none() {
            match idp.check_logout_request(&msg, req.now) {
                Ok(logout) => checked = Some((cfg, idp, logout)),
                Err(e) => refusal = e,
            }
        }
    }
    let (cfg, idp, logout) = checked.ok_or(refusal)?;
    if !gate
        .sso_steps
        .first_use(&format!("logout:{}", logout.id), logout.expires, req.now)
        .await
    {
        return Err(SamlError::Refused(
            "this logout request was already used".into(),
        ));
    }
    let mut ended = Vec::new();
    for s in gate.sessions.all() {
        let Some((name, token)) = s.idp.as_deref() else {
            continue;
        };
        let Ok(hint) = serde_json::from_str::<LogoutHint>(token) else {
            continue;
        };
        if names.contains(&name.as_str())
            && logout.ends(&hint)
            && gate.sessions.remove_public(&s.public_id)
        {
            ended.push(s.user.clone());
        }
    }
    let key = request_key(gate, req.policy, cfg)?;
    let answer = idp.logout_response_url(&logout.id, msg.relay.as_deref(), key.as_deref());
    Ok((ended, answer))
}

/// Whether `path` is one of the SAML pages that start or finish a sign-in.
pub fn begins_a_session(path: &str) -> bool {
    path == "/.ward/saml/acs"
}
