//! The officer's console under `/.ward/officer/`: people, live sessions, grants, access
//! requests, the audit
//! trail, the access review, the policy, and the incident lock-down.
//!
//! Who may use it: a fully signed-in session (second factor shown) of an account with the
//! role `officer` (from users.toml or the identity provider, never from break-glass), and,
//! when the policy has a network named `officers`, only from there. Every change is a POST
//! carrying the session's CSRF token (checked in constant time) from this origin, goes through
//! the same code as `ward user` / `ward grant`, and is written to the audit trail.
//!
//! The pages are plain HTML forms with no script, so they work with any browser and screen
//! reader, and the content security policy forbids scripts outright.

mod audit_page;
mod grant_page;
mod overview;
mod people;
mod request_page;
mod sessions;

use crate::audit::Record;
use crate::auth::codes;
use crate::body::{Body, full};
use crate::server::reload::Runtime;
use crate::session::{self, Session, Stage};
use crate::users::accounts;
use crate::web::kit::{self, Form, PageOutcome, PageRequest, read_form};
use crate::web::page;
use crate::web::state::Shared;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};
use hyper::body::Incoming;
use maud::{DOCTYPE, Markup, html};
use std::sync::Arc;

pub use crate::users::review::OFFICER_ROLE;

/// The `[networks]` entry that, when the policy has it, is the only place the console answers.
pub const OFFICERS_NETWORK: &str = "officers";

/// Where the console lives.
pub const BASE: &str = "/.ward/officer/";

/// Serves a console page: `req.path` is `/.ward/officer` or under `/.ward/officer/`.
pub async fn serve(
    shared: &Shared,
    rt: &Runtime,
    req: PageRequest<'_>,
    body: Incoming,
    outcome: &mut PageOutcome,
) -> Response<Body> {
    let ctx = match authorize(shared, rt, &req) {
        Ok(c) => c,
        Err(resp) => return *resp,
    };
    outcome.user = Some(ctx.officer.clone());
    let sub = req
        .path
        .strip_prefix("/.ward/officer")
        .unwrap_or("")
        .trim_end_matches('/');
    if req.method == Method::POST {
        let Some(form) = read_form(body).await else {
            return ctx.refuse(
                StatusCode::BAD_REQUEST,
                "Form not read",
                "The form could not be read (it may be too large). Go back and try again.",
            );
        };
        if !ctx.form_is_genuine(&form) {
            return ctx.refuse(
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form has expired or did not come from the console, so nothing was changed. Open the page again and repeat the change.",
            );
        }
        return match sub {
            "/users" => people::add(&ctx, &form, outcome).await,
            "/sessions/end" => sessions::end_one(&ctx, &form, outcome).await,
            "/sessions/end-user" => sessions::end_user(&ctx, &form, outcome).await,
            "/grants/export" => grant_page::export(&ctx, &form, outcome).await,
            "/grants/revoke" => grant_page::revoke(&ctx, &form, outcome).await,
            "/requests/approve" => request_page::approve(&ctx, &form, outcome).await,
            "/requests/deny" => request_page::deny(&ctx, &form, outcome).await,
            "/review/attest" => overview::attest(&ctx, &form, outcome).await,
            "/lockdown" => sessions::lockdown(&ctx, &form, outcome).await,
            s => match s.strip_prefix("/users/").and_then(|r| r.split_once('/')) {
                Some((name, action)) => people::action(&ctx, name, action, &form, outcome).await,
                None => ctx.not_found(),
            },
        };
    }
    if req.method != Method::GET && req.method != Method::HEAD {
        let mut resp = ctx.refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "Not allowed",
            "The console takes page loads and its own forms only.",
        );
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD, POST"));
        return resp;
    }
    drop(body);
    match sub {
        "" => overview::overview(&ctx).await,
        "/users" => people::list(&ctx, Notice::None, None).await,
        "/sessions" => sessions::list(&ctx, Notice::None),
        "/lockdown" => sessions::lockdown_form(&ctx, Notice::None),
        "/grants" => grant_page::list(&ctx, Notice::None, None),
        "/requests" => request_page::list(&ctx, Notice::None).await,
        "/audit" => audit_page::search(&ctx).await,
        "/review" => overview::review(&ctx, Notice::None).await,
        "/review.csv" => overview::review_csv(&ctx).await,
        "/review.html" => overview::review_printable(&ctx).await,
        "/policy" => overview::policy(&ctx).await,
        s => match s.strip_prefix("/users/") {
            Some(name) if !name.contains('/') => people::person(&ctx, name, Notice::None).await,
            _ => ctx.not_found(),
        },
    }
}

/// The signed-in officer and what every page needs.
pub(crate) struct Ctx<'a> {
    shared: &'a Shared,
    rt: &'a Runtime,
    req: &'a PageRequest<'a>,
    /// The officer's account name.
    officer: String,
    /// The officer's roles, for the audit trail.
    roles: Vec<String>,
    session: Arc<Session>,
}

/// Checks who is asking; the refusal or sign-in redirect if it is not an officer.
fn authorize<'a>(
    shared: &'a Shared,
    rt: &'a Runtime,
    req: &'a PageRequest<'a>,
) -> Result<Ctx<'a>, Box<Response<Body>>> {
    let policy = &rt.policy;
    let practice = &policy.practice;
    let refuse = |msg: &str| {
        Box::new(page::problem(
            StatusCode::FORBIDDEN,
            practice,
            "Officer's console",
            msg,
            req.request_id,
        ))
    };
    if let Some(nets) = policy.networks.get(OFFICERS_NETWORK)
        && !nets.contains(req.client_ip)
    {
        return Err(refuse(
            "The officer's console can only be used from the officers' network named in the practice's policy.",
        ));
    }
    let path_and_query = match &req.query {
        Some(q) => format!("{}?{q}", req.path),
        None => req.path.to_string(),
    };
    let to_sign_in = |ended: Option<&'static str>| {
        Box::new(kit::login_redirect(
            &req.method,
            &req.headers,
            &path_and_query,
            ended,
        ))
    };
    let gate = &shared.gate;
    let Some(s) = session::cookie_value(&req.headers, session::COOKIE)
        .and_then(|c| gate.sessions.get(c))
        .filter(|s| s.stage == Stage::Complete)
    else {
        return Err(to_sign_in(None));
    };
    let snap = gate.accounts.snapshot();
    let who = match accounts::identity_of(&s, &snap, policy, req.now) {
        Ok(w) => w,
        Err(why) => return Err(to_sign_in(Some(why.code()))),
    };
    if let Some(own) = &who.allow_from
        && !own.contains(req.client_ip)
    {
        return Err(refuse(
            "Your account may only be used from its own networks, and this is not one of them.",
        ));
    }
    // Emergency (break-glass) roles never open the console: only the account's own roles,
    // or those the identity provider gave this sign-in.
    let emergency: Vec<&String> =
        crate::users::grants::active_for(&snap.grants, &who.user, req.now)
            .filter_map(|g| match &g.kind {
                crate::users::grants::GrantKind::BreakGlass { roles } => Some(roles),
                _ => None,
            })
            .flatten()
            .collect();
    let own_roles = snap
        .directory
        .get(&who.user)
        .map(|a| a.roles.as_slice())
        .unwrap_or(&[]);
    let officer = own_roles.iter().any(|r| r == OFFICER_ROLE)
        || (who.roles.iter().any(|r| r == OFFICER_ROLE)
            && !emergency.iter().any(|r| *r == OFFICER_ROLE));
    if !officer {
        return Err(refuse(
            "This page is for the practice's security officer. Your account does not have the officer role.",
        ));
    }
    if !who.mfa {
        return Err(refuse(
            "The officer's console needs a sign-in with a second factor (your authenticator app). Sign out, and sign in again with your code.",
        ));
    }
    // An officer role that asks for a passkey (mfa = "phishing-resistant") asks for it here too.
    if policy.mfa_level(&who.roles) == crate::policy::Mfa::PhishingResistant && !who.passkey {
        return Err(refuse(
            "The officer's console needs a sign-in with your passkey or security key (the practice's policy asks for it). Sign out, and sign in again with your passkey.",
        ));
    }
    // Using the console is activity: it keeps the officer's session from idling out.
    s.touch(req.now);
    Ok(Ctx {
        shared,
        rt,
        req,
        officer: who.user,
        roles: who.roles,
        session: s,
    })
}

/// A message at the top of a page.
pub(crate) enum Notice {
    None,
    /// Something was done.
    Done(String),
    /// Something was refused or failed.
    Problem(String),
    /// Markup announcing something that was done (with a link to hand over).
    DoneHtml(Markup),
}

impl Notice {
    fn html(&self) -> Markup {
        html! {
            @match self {
                Notice::None => {},
                Notice::Done(t) => div.notice.ok role="status" { p { (t) } },
                Notice::Problem(t) => div.notice.problem role="alert" { p { (t) } },
                Notice::DoneHtml(h) => div.notice.ok role="status" { (h) },
            }
        }
    }

    fn is_problem(&self) -> bool {
        matches!(self, Notice::Problem(_))
    }

    /// The page's status: 400 when it reports a refusal, else 200.
    fn status(&self) -> StatusCode {
        if self.is_problem() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        }
    }
}

/// The console's sections, for the navigation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Overview,
    People,
    Sessions,
    Grants,
    Requests,
    Audit,
    Review,
    Policy,
    Lockdown,
}

const NAV: [(Section, &str, &str); 9] = [
    (Section::Overview, "", "Overview"),
    (Section::People, "users", "People"),
    (Section::Sessions, "sessions", "Sessions"),
    (Section::Grants, "grants", "Grants"),
    (Section::Requests, "requests", "Requests"),
    (Section::Audit, "audit", "Audit trail"),
    (Section::Review, "review", "Access review"),
    (Section::Policy, "policy", "Policy"),
    (Section::Lockdown, "lockdown", "Lock down"),
];

impl<'a> Ctx<'a> {
    fn policy(&self) -> &'a crate::policy::Policy {
        &self.rt.policy
    }

    fn now(&self) -> i64 {
        self.req.now
    }

    /// The hidden CSRF field every form carries.
    fn csrf_field(&self) -> Markup {
        html! { input type="hidden" name="csrf" value=(self.session.csrf); }
    }

    /// A POST from this session's own page: the token matches and `Origin`, when sent, is ours.
    fn form_is_genuine(&self, form: &Form) -> bool {
        let origin_ok = match self
            .req
            .headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
        {
            None => true,
            Some(o) => o.eq_ignore_ascii_case(&self.req.origin),
        };
        let token = form.get("csrf");
        // Both checks always run, so timing says nothing about which failed.
        let token_ok = !token.is_empty() & codes::ct_eq(&self.session.csrf, token);
        origin_ok & token_ok
    }

    /// A whole console page.
    fn page(
        &self,
        status: StatusCode,
        section: Section,
        title: &str,
        notice: &Notice,
        body: Markup,
    ) -> Response<Body> {
        let practice = page::practice_name(&self.policy().practice);
        let html = html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) " — Officer's console — " (practice) }
                    link rel="stylesheet" href="/.ward/console.css";
                }
                body {
                    header.bar {
                        span.practice { (practice) }
                        span { "Officer's console · ward" }
                        span.me { "Signed in as " strong { (self.officer) } " · " a href="/.ward/logout" { "Sign out" } }
                    }
                    nav aria-label="Officer's console" {
                        ul {
                            @for (s, path, label) in NAV {
                                li { a href={ (BASE) (path) } aria-current=[(s == section).then_some("page")] { (label) } }
                            }
                        }
                    }
                    main {
                        h1 { (title) }
                        (notice.html())
                        (body)
                    }
                }
            }
        };
        html_response(status, html.into_string())
    }

    /// A refusal inside the console's frame.
    fn refuse(&self, status: StatusCode, title: &str, message: &str) -> Response<Body> {
        let body = html! {
            p { (message) }
            p.hint { "Reference: " code { (self.req.request_id) } }
        };
        self.page(status, Section::Overview, title, &Notice::None, body)
    }

    fn not_found(&self) -> Response<Body> {
        self.refuse(
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no console page here. Use the links above.",
        )
    }

    /// Writes the audit record of an officer action (and reports it for the request log).
    /// On failure, the words to show the officer. For actions that only take access away
    /// (ending sessions, lock-down): they go ahead even when the trail cannot record them.
    async fn audit(
        &self,
        outcome: &mut PageOutcome,
        event: &'static str,
        target: Option<&str>,
        detail: String,
        extra: impl FnOnce(Record) -> Record,
    ) -> Option<String> {
        match self
            .write_record(outcome, event, target, detail, extra)
            .await
        {
            Ok(()) => None,
            Err(e) => Some(format!(
                "The change was made, but the audit trail could not record it ({e}). Tell the practice's IT contact."
            )),
        }
    }

    /// Writes the record of a change to accounts, grants or secrets BEFORE it is made.
    /// `Ok(None)`: go ahead. `Ok(Some(words))`: the record failed but the policy says
    /// `on_failure = "continue"`; go ahead and show the words. `Err(page)`: the record failed
    /// and the policy says refuse, so the change must not be made.
    async fn record_first(
        &self,
        outcome: &mut PageOutcome,
        event: &'static str,
        target: Option<&str>,
        detail: String,
        extra: impl FnOnce(Record) -> Record,
    ) -> Result<Option<String>, Response<Body>> {
        let Err(e) = self
            .write_record(outcome, event, target, detail, extra)
            .await
        else {
            return Ok(None);
        };
        match self.shared.audit.on_failure() {
            crate::audit::OnFailure::Refuse => Err(self.refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "Nothing was changed",
                &format!(
                    "Nothing was changed, because the audit trail cannot record the change ({e}). \
                     Tell the practice's IT contact, and try again when it is fixed."
                ),
            )),
            crate::audit::OnFailure::Continue => Ok(Some(format!(
                "The audit trail could not record this change ({e}); it was made anyway, as the policy allows. Tell the practice's IT contact."
            ))),
        }
    }

    /// After `record_first`: the change failed, so the trail says it was not made.
    async fn record_not_made(&self, event: &'static str, target: Option<&str>, why: &str) {
        let mut outcome = PageOutcome::default();
        let detail = format!("{event} was not made: {why}");
        if let Err(e) = self
            .write_record(&mut outcome, "change-failed", target, detail, |r| r)
            .await
        {
            tracing::error!(request_id = %self.req.request_id, error = %e, "cannot write the audit record of a failed officer action");
        }
    }

    async fn write_record(
        &self,
        outcome: &mut PageOutcome,
        event: &'static str,
        target: Option<&str>,
        detail: String,
        extra: impl FnOnce(Record) -> Record,
    ) -> Result<(), crate::audit::AuditError> {
        outcome.event = Some(event);
        if let Some(t) = target {
            outcome.user = Some(t.to_string());
        }
        let mut r = Record::officer(self.officer.clone(), event)
            .request_id(self.req.request_id)
            .client_ip(self.req.client_ip)
            .session(self.session.public_id.clone())
            .roles(self.roles.iter().cloned())
            .detail(detail);
        if let Some(t) = target {
            r = r.user(t);
        }
        let result = self.shared.audit.record(extra(r)).await;
        if let Err(e) = &result {
            tracing::error!(request_id = %self.req.request_id, error = %e, event, "cannot write the audit record of an officer action");
        }
        result
    }

    /// Makes the accounts in force again from the files, so the next request sees a change.
    fn reload_accounts(&self) {
        if let Err(problems) = self.shared.gate.accounts.reload(self.policy()) {
            tracing::warn!(
                problems = problems.len(),
                "accounts not reloaded after a console change"
            );
        }
    }

    /// The account names in force, for pickers.
    fn account_names(&self) -> Vec<String> {
        self.shared
            .gate
            .accounts
            .snapshot()
            .directory
            .accounts
            .keys()
            .cloned()
            .collect()
    }
}

/// An HTML answer with the headers all of ward's pages carry, and a stricter policy.
fn html_response(status: StatusCode, html: String) -> Response<Body> {
    let mut resp = page::html_response(
        status,
        html,
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    no_store_headers(resp.headers_mut());
    resp
}

fn no_store_headers(h: &mut http::HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    // Never send a console address to another site. (Not `no-referrer`: with it, browsers
    // send `Origin: null` on the console's own forms, which the origin check refuses.)
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
}

/// A file to download.
fn download(content_type: &'static str, file_name: &str, body: String) -> Response<Body> {
    let mut resp = Response::new(full(Bytes::from(body)));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    no_store_headers(h);
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

/// Runs blocking work (file locks, disk) off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}

/// Unix seconds as local date and time, to the minute.
fn when(secs: i64) -> String {
    match jiff::Timestamp::from_second(secs) {
        Ok(t) => t
            .to_zoned_datetime(jiff::tz::TimeZone::system())
            .strftime("%Y-%m-%d %H:%M")
            .to_string(),
        Err(_) => "?".into(),
    }
}

/// How long before `now` `then` was, in words.
fn ago(now: i64, then: i64) -> String {
    let s = (now - then).max(0);
    match s {
        0..60 => "just now".into(),
        60..7200 => format!("{} min ago", s / 60),
        7200..172_800 => format!("{} h ago", s / 3600),
        _ => format!("{} days ago", s / 86_400),
    }
}

/// A `<th>` row of column headers.
fn head_row(columns: &[&str]) -> Markup {
    html! { thead { tr { @for c in columns { th scope="col" { (c) } } } } }
}

/// The dash shown for "nothing".
fn none() -> Markup {
    html! { span.none { "—" } }
}

/// The text, or the dash when empty.
fn or_none(text: &str) -> Markup {
    if text.trim().is_empty() {
        none()
    } else {
        html! { (text) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_keep_repeated_fields() {
        let f: Vec<(String, String)> =
            serde_urlencoded::from_str("roles=a&roles=b&name=x%20y&csrf=").unwrap();
        let f = Form(f);
        assert_eq!(f.all("roles"), ["a", "b"]);
        assert_eq!(f.get("name"), "x y");
        assert_eq!(f.get("csrf"), "");
        assert_eq!(f.get("missing"), "");
        let q = Form::from_query(Some("since=7d&user=%3Cb%3E"));
        assert_eq!(q.get("user"), "<b>");
        assert!(Form::from_query(Some("%%%")).all("x").is_empty());
    }

    #[test]
    fn times_read_as_words() {
        assert_eq!(ago(1000, 990), "just now");
        assert_eq!(ago(10_000, 10_000 - 300), "5 min ago");
        assert_eq!(ago(100_000, 100_000 - 3 * 3600), "3 h ago");
        assert_eq!(ago(1_000_000, 1_000_000 - 5 * 86_400), "5 days ago");
        assert_eq!(ago(0, 50), "just now");
    }

    #[test]
    fn empty_values_show_a_dash() {
        assert_eq!(or_none(" ").into_string(), none().into_string());
        assert_eq!(or_none("<x>").into_string(), "&lt;x&gt;");
    }
}
