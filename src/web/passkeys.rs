//! Passkeys and security keys on ward's pages: a person's own list (add, name, remove) at
//! `/.ward/passkeys`, the passkey as the second sign-in step (`/.ward/mfa`), and, where the
//! officer allows it (`[login] passwordless`), a sign-in with the passkey alone
//! (`/.ward/passkey-sign-in`). The browser's part is `/.ward/passkey.js` (served by
//! `assets`): the pages carry no inline script.

use crate::auth::codes;
use crate::auth::passkey::{self, Rp};
use crate::body::Body;
use crate::session::{self, COOKIE, Session, Stage};
use crate::users::PasskeyEntry;
use crate::users::accounts;
use crate::web::kit::{
    CSRF_COOKIE, Form, PageOutcome, PageRequest, current, page, redirect, safe_return, same_origin,
    standing_session, unavailable, with_cookie,
};
use crate::web::login_page::{self, login_form, rp_of};
use crate::web::passkey_steps::Ceremony;
use crate::web::session_start;
use crate::web::state::Gate;
use http::header::HeaderValue;
use http::{Response, StatusCode};
use maud::{Markup, html};
use std::sync::Arc;

/// The pages that run `passkey.js`: ward's own script, nothing else, nothing inline.
const SCRIPT_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A session must be this fresh (seconds) to add a passkey: a stolen cookie must not be
/// able to leave a lasting way in.
const FRESH_SIGN_IN: i64 = 15 * 60;

/// Longest name a person may give a key.
const MAX_KEY_NAME: usize = 60;

/// What the person does on a page that asks the authenticator.
const FOLLOW_THE_BROWSER: &str = "Press the button, then follow your browser: it may ask for your fingerprint, face, screen lock or PIN, or ask you to touch your security key.";

/// Keys one account may hold.
const MAX_KEYS: usize = 20;

/// The form that `passkey.js` completes: `options` for the browser, `hidden` fields, and a
/// button that starts it. `create` makes a new passkey; otherwise one signs in.
pub(crate) fn ceremony_form(
    action: &str,
    options: &serde_json::Value,
    create: bool,
    hidden: &[(&str, &str)],
    button: &str,
) -> Markup {
    html! {
        form #passkey-form method="post" action=(action)
            data-options=(options.to_string())
            data-ceremony=(if create { "create" } else { "get" }) {
            @for (name, value) in hidden {
                input type="hidden" name=(name) value=(value);
            }
            input type="hidden" name="credential" value="";
            p { button #passkey-go type="button" { (button) } }
            p #passkey-status role="status" {}
        }
        script src="/.ward/passkey.js" defer {}
    }
}

/// A page whose body holds a `ceremony_form`: its policy lets ward's script run.
pub(crate) fn with_script(mut resp: Response<Body>) -> Response<Body> {
    resp.headers_mut().insert(
        "content-security-policy",
        HeaderValue::from_static(SCRIPT_CSP),
    );
    resp
}

// ---------- the person's own keys ----------

/// `/.ward/passkeys`: the signed-in person's keys, and a form to add one.
pub async fn list(gate: &Gate, req: &PageRequest<'_>, notice: Option<&str>) -> Response<Body> {
    let Some(s) = standing_session(gate, req) else {
        return redirect("/.ward/login?return=/.ward/passkeys");
    };
    let Some(rp) = rp_of(req) else {
        return not_here(req);
    };
    let keys = match gate.accounts.store().read_async().await {
        Ok(store) => store
            .users
            .get(&s.user)
            .map(|u| u.passkeys.clone())
            .unwrap_or_default(),
        Err(_) => return unavailable(req),
    };
    let body = html! {
        @if let Some(n) = notice { p role="status" { (n) } }
        p { "A passkey (on this computer or your phone) or a security key (such as a YubiKey) signs you in without a code to type, and cannot be used on a fake copy of this site." }
        @if keys.is_empty() {
            p { "You have no passkeys yet." }
        } @else {
            table {
                thead { tr { th { "Name" } th { "Works on" } th { "Added" } th { "Last used" } th {} } }
                tbody {
                    @for k in &keys {
                        tr {
                            td { (k.name) }
                            td { (k.rp_id) }
                            td { (day(k.added)) }
                            td { (k.last_used.map(day).unwrap_or_else(|| "never".into())) }
                            td {
                                form method="post" action="/.ward/passkeys" {
                                    input type="hidden" name="csrf" value=(s.csrf);
                                    input type="hidden" name="action" value="remove";
                                    input type="hidden" name="key" value=(k.id_text());
                                    button type="submit" { "Remove" }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Add a passkey or security key" }
        form method="post" action="/.ward/passkeys" {
            input type="hidden" name="csrf" value=(s.csrf);
            input type="hidden" name="action" value="add";
            p {
                label for="key-name" { "A name for it, so you can tell your keys apart" } br;
                input #key-name name="name" maxlength=(MAX_KEY_NAME) required placeholder="office laptop";
            }
            p { button type="submit" { "Add" } }
        }
        p.who { "Passkeys made here work for " strong { (rp.id) } "." }
    };
    page(req, StatusCode::OK, "Your passkeys", body)
}

fn day(t: i64) -> String {
    jiff::Timestamp::from_second(t)
        .map(|ts| ts.strftime("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

fn not_here(req: &PageRequest<'_>) -> Response<Body> {
    page(
        req,
        StatusCode::NOT_FOUND,
        "Passkeys",
        html! { p { "Passkeys cannot be used at this address. Open this page at the address you sign in on." } },
    )
}

/// A post to `/.ward/passkeys`: add (start), finish adding, or remove one's own key.
pub async fn change(
    gate: &Gate,
    req: &PageRequest<'_>,
    form: &Form,
    outcome: &mut PageOutcome,
) -> Response<Body> {
    let Some(s) = standing_session(gate, req) else {
        return redirect("/.ward/login?return=/.ward/passkeys");
    };
    outcome.user = Some(s.user.clone());
    if !same_origin(req) || !codes::ct_eq(&s.csrf, form.get("csrf")) {
        return list(gate, req, Some("This form has expired. Please try again.")).await;
    }
    let Some(rp) = rp_of(req) else {
        return not_here(req);
    };
    match form.get("action") {
        "add" => add_start(gate, req, &s, &rp, form.get("name")).await,
        "finish" => add_finish(gate, req, &s, &rp, form, outcome).await,
        "remove" => remove_own(gate, req, &s, form.get("key")).await,
        _ => list(gate, req, None).await,
    }
}

async fn add_start(
    gate: &Gate,
    req: &PageRequest<'_>,
    s: &Session,
    rp: &Rp,
    name: &str,
) -> Response<Body> {
    let name: String = name.trim().chars().filter(|c| !c.is_control()).collect();
    if name.is_empty() || name.chars().count() > MAX_KEY_NAME {
        return list(
            gate,
            req,
            Some("Give the key a name of up to 60 characters, like \"office laptop\"."),
        )
        .await;
    }
    if req.now - s.created > FRESH_SIGN_IN {
        return list(
            gate,
            req,
            Some("To add a passkey, sign out and sign in again first (it must be done within 15 minutes of signing in)."),
        )
        .await;
    }
    // The account's handle for passkeys is made once, with its first key.
    let Ok(fresh) = passkey::new_user_handle() else {
        return unavailable(req);
    };
    let user = s.user.clone();
    let handle = gate.accounts.store().update_async(move |store| {
        let entry = store.users.entry(user).or_default();
        let handle = *entry.passkey_user.get_or_insert(fresh);
        (handle, entry.passkeys.clone())
    });
    let Ok((handle, existing)) = handle.await else {
        return unavailable(req);
    };
    if existing.len() >= MAX_KEYS {
        return list(
            gate,
            req,
            Some("You have as many passkeys as ward keeps (20). Remove one first."),
        )
        .await;
    }
    let display = gate
        .accounts
        .snapshot()
        .directory
        .get(&s.user)
        .map(|a| a.display_name.clone())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| s.user.clone());
    let keys: Vec<_> = existing.iter().map(|k| k.key.clone()).collect();
    let Ok((options, state)) = rp.start_registration(handle, &s.user, &display, &keys) else {
        return unavailable(req);
    };
    let ceremony = Ceremony::Register {
        user: s.user.clone(),
        session: s.public_id.clone(),
        name: name.clone(),
        rp: rp.id.clone(),
        state,
    };
    let Some(step) = gate.passkey_steps.put(ceremony).await else {
        return unavailable(req);
    };
    let body = html! {
        p { "Adding " strong { (name) } ". " (FOLLOW_THE_BROWSER) }
        (ceremony_form("/.ward/passkeys", &options, true, &[("csrf", &s.csrf), ("action", "finish"), ("step", &step)], "Create the passkey"))
        p { a href="/.ward/passkeys" { "Cancel" } }
    };
    with_script(page(req, StatusCode::OK, "Add a passkey", body))
}

async fn add_finish(
    gate: &Gate,
    req: &PageRequest<'_>,
    s: &Session,
    rp: &Rp,
    form: &Form,
    outcome: &mut PageOutcome,
) -> Response<Body> {
    let failed = "The passkey was not added. Please try again.";
    let Some(Ceremony::Register {
        user,
        session,
        name,
        rp: rp_id,
        state,
    }) = gate.passkey_steps.take(form.get("step")).await
    else {
        return list(gate, req, Some(failed)).await;
    };
    // Begun by this session, for this person, on this relying party; nothing else.
    if user != s.user || session != s.public_id || rp_id != rp.id {
        return list(gate, req, Some(failed)).await;
    }
    let key = match rp.finish_registration(form.get("credential"), &state) {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!(user = %s.user, error = %e, "a passkey was not added");
            outcome.event = Some("passkey-add-failed");
            return list(gate, req, Some(failed)).await;
        }
    };
    let (owner, epoch, now) = (s.user.clone(), s.epoch, req.now);
    let entry = PasskeyEntry {
        name: name.clone(),
        rp_id: rp.id.clone(),
        added: now,
        last_used: None,
        key,
    };
    let saved = gate.accounts.store().update_async(move |store| {
        // A key already held by any account (its id) is not added twice.
        let taken = store.users.values().any(|u| {
            u.passkeys
                .iter()
                .any(|k| k.key.cred_id() == entry.key.cred_id())
        });
        let Some(u) = store.users.get_mut(&owner) else {
            return false;
        };
        if taken || u.epoch != epoch || u.passkeys.len() >= MAX_KEYS {
            return false;
        }
        u.passkeys.push(entry);
        true
    });
    if !matches!(saved.await, Ok(true)) {
        return list(gate, req, Some(failed)).await;
    }
    audit(gate, req, "passkey-added", &s.user, &s.user, &name).await;
    list(gate, req, Some(&format!("Added the passkey \"{name}\"."))).await
}

async fn remove_own(gate: &Gate, req: &PageRequest<'_>, s: &Session, key: &str) -> Response<Body> {
    let (owner, key) = (s.user.clone(), key.to_string());
    let removed = gate.accounts.store().update_async(move |store| {
        let u = store.users.get_mut(&owner)?;
        let i = u.passkeys.iter().position(|k| k.id_text() == key)?;
        Some(u.passkeys.remove(i).name)
    });
    match removed.await {
        Ok(Some(name)) => {
            audit(gate, req, "passkey-removed", &s.user, &s.user, &name).await;
            list(gate, req, Some(&format!("Removed the passkey \"{name}\"."))).await
        }
        Ok(None) => list(gate, req, Some("That passkey was already removed.")).await,
        Err(_) => unavailable(req),
    }
}

/// Records an added or removed key: whose, by whom, and its name (never key material). The
/// page's own outcome carries no event for these, so this is the one record.
async fn audit(
    gate: &Gate,
    req: &PageRequest<'_>,
    event: &'static str,
    user: &str,
    actor: &str,
    name: &str,
) {
    let record = crate::audit::Record::signin(event)
        .user(user)
        .actor(actor)
        .client_ip(req.client_ip)
        .request_id(req.request_id)
        .detail(format!("key \"{name}\""));
    if let Err(e) = gate.audit.record(record).await {
        tracing::error!(error = %e, "cannot record a passkey change in the audit trail");
    }
}

// ---------- the second step ----------

/// The passkey part of the second-step page for `s`, if the person has a key here.
pub(crate) async fn second_step_offer(
    gate: &Gate,
    req: &PageRequest<'_>,
    s: &Session,
) -> Option<Markup> {
    let rp = rp_of(req)?;
    let keys = gate
        .accounts
        .store()
        .read_async()
        .await
        .ok()?
        .users
        .get(&s.user)?
        .passkeys_for(&rp.id);
    if keys.is_empty() {
        return None;
    }
    let (options, state) = rp.start_authentication(&keys).ok()?;
    let step = gate
        .passkey_steps
        .put(Ceremony::SecondFactor {
            user: s.user.clone(),
            session: s.public_id.clone(),
            rp: rp.id.clone(),
            state,
        })
        .await?;
    Some(ceremony_form(
        "/.ward/mfa",
        &options,
        false,
        &[("csrf", &s.csrf), ("step", &step)],
        "Use a passkey or security key",
    ))
}

/// Whether `s`'s sign-in may finish only with a passkey: the person's roles ask for one
/// (`mfa = "phishing-resistant"`) and they have one that works here. Without one they may
/// still use their code, to reach `/.ward/passkeys` and add one.
pub(crate) async fn passkey_only(gate: &Gate, req: &PageRequest<'_>, s: &Session) -> bool {
    let mut roles = gate
        .accounts
        .snapshot()
        .directory
        .get(&s.user)
        .map(|a| a.roles.clone())
        .unwrap_or_default();
    roles.extend(s.extra_roles.iter().cloned());
    if req.policy.mfa_level(&roles) != crate::policy::Mfa::PhishingResistant {
        return false;
    }
    let Some(rp) = rp_of(req) else {
        return false;
    };
    match gate.accounts.store().read_async().await {
        Ok(store) => store
            .users
            .get(&s.user)
            .is_some_and(|u| !u.passkeys_for(&rp.id).is_empty()),
        // In doubt, no code: the person can still use the passkey.
        Err(_) => true,
    }
}

/// Checks a passkey answer as the second step of `s`'s sign-in; true if it proves it.
pub(crate) async fn second_step(
    gate: &Gate,
    req: &PageRequest<'_>,
    s: &Session,
    form: &Form,
) -> bool {
    let Some(rp) = rp_of(req) else {
        return false;
    };
    let Some(Ceremony::SecondFactor {
        user,
        session,
        rp: rp_id,
        state,
    }) = gate.passkey_steps.take(form.get("step")).await
    else {
        return false;
    };
    if user != s.user || session != s.public_id || rp_id != rp.id {
        return false;
    }
    let Ok(answer) = passkey::read_answer(form.get("credential")) else {
        return false;
    };
    let result = match rp.finish_authentication(&answer, &state) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(user = %s.user, error = %e, "a passkey was not accepted");
            return false;
        }
    };
    let (owner, epoch, rp_id, now) = (s.user.clone(), s.epoch, rp.id.clone(), req.now);
    let used = gate.accounts.store().update_async(move |store| {
        let u = store.users.get_mut(&owner)?;
        if u.epoch != epoch {
            return None;
        }
        record_use(u, &rp_id, &result, now).then_some(())
    });
    matches!(used.await, Ok(Some(())))
}

/// Counts a sign-in with one of `u`'s keys on `rp_id`: its new signature counter and last use.
/// False when it is no longer one of theirs: a key removed since the page was shown counts
/// for nothing.
fn record_use(
    u: &mut crate::users::UserSecrets,
    rp_id: &str,
    result: &webauthn_rs::prelude::AuthenticationResult,
    now: i64,
) -> bool {
    let Some(k) = u
        .passkeys
        .iter_mut()
        .find(|k| k.rp_id == rp_id && k.key.cred_id() == result.cred_id())
    else {
        return false;
    };
    k.key.update_credential(result);
    k.last_used = Some(now);
    true
}

// ---------- sign-in with the passkey alone ----------

/// A post to `/.ward/passkey-sign-in`: without an answer, the page that asks the browser;
/// with one, the sign-in.
pub async fn sign_in(
    gate: &Gate,
    req: &PageRequest<'_>,
    form: &Form,
    outcome: &mut PageOutcome,
) -> Response<Body> {
    let cookie_csrf = session::cookie_value(&req.headers, CSRF_COOKIE).unwrap_or("");
    if !same_origin(req) || cookie_csrf.is_empty() || !codes::ct_eq(cookie_csrf, form.get("csrf")) {
        return login_form(
            req,
            Some("This sign-in form has expired. Please try again."),
        );
    }
    let (Some(rp), true) = (rp_of(req), req.policy.login.passwordless) else {
        return login_form(
            req,
            Some("Sign-in with a passkey alone is not offered here."),
        );
    };
    if !gate.address_allows(req.policy, req.client_ip).await {
        outcome.event = Some("login-throttled");
        return login_page::locked_page(
            req,
            "Too many sign-in attempts from this address. Wait a minute and try again.",
        );
    }
    let return_to = safe_return(form.get("return"));
    if form.get("credential").is_empty() {
        let Ok((options, state)) = rp.start_discoverable() else {
            return unavailable(req);
        };
        let Some(step) = gate
            .passkey_steps
            .put(Ceremony::SignIn {
                rp: rp.id.clone(),
                state,
            })
            .await
        else {
            return unavailable(req);
        };
        let body = html! {
            p { (FOLLOW_THE_BROWSER) }
            (ceremony_form("/.ward/passkey-sign-in", &options, false, &[("csrf", cookie_csrf), ("return", &return_to), ("step", &step)], "Use my passkey"))
            p { a href="/.ward/login" { "Sign in with your password instead" } }
        };
        return with_script(page(req, StatusCode::OK, "Sign in with a passkey", body));
    }
    match finish_sign_in(gate, req, &rp, form).await {
        Ok(name) => admit_passkey_session(gate, req, &name, &return_to, outcome).await,
        Err(name) => {
            outcome.user = name;
            outcome.event = Some("login-failed-passkey");
            login_form(
                req,
                Some(
                    "That passkey did not sign you in. Use your password, or ask the practice's security officer.",
                ),
            )
        }
    }
}

/// Checks a name-less answer; the account it signs in, or (in the error) the account it
/// named, if any.
async fn finish_sign_in(
    gate: &Gate,
    req: &PageRequest<'_>,
    rp: &Rp,
    form: &Form,
) -> Result<String, Option<String>> {
    let Some(Ceremony::SignIn { rp: rp_id, state }) =
        gate.passkey_steps.take(form.get("step")).await
    else {
        return Err(None);
    };
    if rp_id != rp.id {
        return Err(None);
    }
    let answer = passkey::read_answer(form.get("credential")).map_err(|_| None)?;
    let (handle, cred_id) = passkey::identify(&answer).ok_or(None)?;
    let store = gate.accounts.store().read_async().await.map_err(|_| None)?;
    let (name, key) = store
        .users
        .iter()
        .filter(|(_, u)| u.passkey_user == Some(handle))
        .find_map(|(n, u)| {
            u.passkeys
                .iter()
                .find(|k| {
                    k.rp_id == rp.id && AsRef::<[u8]>::as_ref(k.key.cred_id()) == cred_id.as_slice()
                })
                .map(|k| (n.clone(), k.key.clone()))
        })
        .ok_or(None)?;
    let result = rp
        .finish_discoverable(&answer, state, &key)
        .map_err(|_| Some(name.clone()))?;
    let snap = gate.accounts.snapshot();
    let usable = snap.directory.get(&name).is_some_and(|a| {
        a.usable_on(accounts::today(req.now)) && a.sign_in != crate::users::SignIn::Sso
    });
    if !usable || gate.is_locked(&name, req.now).await {
        return Err(Some(name));
    }
    if !session_start::signs_in_from_here(gate, req.policy, &name, req.client_ip) {
        return Err(Some(name));
    }
    let (owner, rp_id, now) = (name.clone(), rp.id.clone(), req.now);
    let used = gate.accounts.store().update_async(move |store| {
        let u = store.users.get_mut(&owner)?;
        record_use(u, &rp_id, &result, now).then_some(u.epoch)
    });
    match used.await {
        Ok(Some(_)) => Ok(name),
        _ => Err(Some(name)),
    }
}

/// Opens a complete session for `name`, signed in with a passkey alone.
async fn admit_passkey_session(
    gate: &Gate,
    req: &PageRequest<'_>,
    name: &str,
    return_to: &str,
    outcome: &mut PageOutcome,
) -> Response<Body> {
    outcome.user = Some(name.to_string());
    if let Err(resp) = session_start::admit(gate, req, name) {
        return *resp;
    }
    // The store, not the snapshot: attempts come faster than the snapshot reloads.
    let epoch = match gate.accounts.store().read_async().await {
        Ok(store) => match store.users.get(name) {
            Some(u) => u.epoch,
            None => return unavailable(req),
        },
        Err(_) => return unavailable(req),
    };
    let Ok(mut s) = Session::new(
        name,
        epoch,
        req.now,
        Stage::Complete,
        true,
        req.client_ip,
        return_to,
    ) else {
        return unavailable(req);
    };
    s.passkey = true;
    let Ok(cookie) = codes::random_token() else {
        return unavailable(req);
    };
    if let Some((old, _)) = current(gate, req) {
        gate.sessions.remove(&old);
    }
    gate.sessions.insert(&cookie, Arc::new(s));
    session_start::record_login(gate, req, name).await;
    outcome.event = Some("login-ok-passkey");
    let resp = with_cookie(
        redirect(return_to),
        session::set_cookie(COOKIE, &cookie, None),
    );
    with_cookie(resp, session::set_cookie(CSRF_COOKIE, "", Some(0)))
}
