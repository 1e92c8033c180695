//! The small kit every page of ward's is built with: the request as a page sees
//! it, forms (bounded, timed), the origin check, redirects and cookies, safe
//! return addresses, and the sign-in redirect for requests without a session.

use crate::body::{Body, full};
use crate::policy::Policy;
use crate::session::{self, COOKIE, Session};
use crate::web::page;
use crate::web::state::Gate;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// ward's reserved path prefix; nothing under it reaches an upstream.
pub const WARD_PREFIX: &str = "/.ward/";

/// True for `/.ward/…` in any letter case, so no spelling of it reaches an upstream.
pub fn is_ward_path(canonical: &str) -> bool {
    canonical
        .get(..WARD_PREFIX.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(WARD_PREFIX))
        || canonical.eq_ignore_ascii_case("/.ward")
}

/// The pre-sign-in cookie that carries the login form's CSRF token.
pub const CSRF_COOKIE: &str = "__Host-ward-csrf";

/// Largest form ward reads.
pub(crate) const MAX_FORM: usize = 64 * 1024;

/// Longest a form may take to arrive.
const FORM_TIME: Duration = Duration::from_secs(10);

/// The request as the sign-in pages need it.
pub struct PageRequest<'a> {
    /// The policy in force.
    pub policy: &'a Policy,
    /// Canonical path under `/.ward/`.
    pub path: &'a str,
    /// Request method.
    pub method: Method,
    /// Query string, if any.
    pub query: Option<String>,
    /// Request headers.
    pub headers: HeaderMap,
    /// Believed client address.
    pub client_ip: IpAddr,
    /// The host the request is for (lower case, no port).
    pub host: &'a str,
    /// `host[:port]` as the client wrote it.
    pub authority: &'a str,
    /// `https://host[:port]` the client used.
    pub origin: String,
    /// Request id for pages and logs.
    pub request_id: &'a str,
    /// Unix seconds now.
    pub now: i64,
}

/// What a sign-in page did, for the log and the audit trail.
#[derive(Debug, Default, Clone)]
pub struct PageOutcome {
    /// The person concerned, if known.
    pub user: Option<String>,
    /// A short event name (`login-ok`, `login-failed`, `mfa-ok`, …).
    pub event: Option<&'static str>,
    /// A grant the event started, as (id, reason), for the audit trail only.
    pub grant: Option<(String, String)>,
}

/// A form's fields, in order, repeats kept (checkboxes).
#[derive(Debug, Default)]
pub struct Form(pub(crate) Vec<(String, String)>);

impl Form {
    /// The first value of `name`, or "".
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The fields of a query string.
    pub fn from_query(query: Option<&str>) -> Form {
        Form(
            query
                .and_then(|q| serde_urlencoded::from_str(q).ok())
                .unwrap_or_default(),
        )
    }
}

/// One of ward's pages, in the practice's name.
pub(crate) fn page(
    req: &PageRequest<'_>,
    status: StatusCode,
    title: &str,
    body: maud::Markup,
) -> Response<Body> {
    page::page(status, &req.policy.practice, title, body)
}

/// A 303 to `location`, never cached.
pub(crate) fn redirect(location: &str) -> Response<Body> {
    let mut resp = Response::new(full(Bytes::new()));
    *resp.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The answer with one more `Set-Cookie`.
pub(crate) fn with_cookie(mut resp: Response<Body>, cookie: String) -> Response<Body> {
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// The value of `name` in a query string.
pub(crate) fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    let pairs: HashMap<String, String> = serde_urlencoded::from_str(query?).ok()?;
    pairs.get(name).cloned()
}

/// Reads a form post: at most `MAX_FORM` bytes, within `FORM_TIME` (a slow
/// sender must not hold a connection), in field order with repeats kept.
pub(crate) async fn read_form(body: Incoming) -> Option<Form> {
    let collected = tokio::time::timeout(FORM_TIME, Limited::new(body, MAX_FORM).collect())
        .await
        .ok()?
        .ok()?;
    serde_urlencoded::from_bytes(&collected.to_bytes())
        .ok()
        .map(Form)
}

/// A form post must come from ward's own pages: `Origin`, when sent, is this origin.
pub(crate) fn same_origin(req: &PageRequest<'_>) -> bool {
    match req
        .headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    {
        None => true,
        Some(o) => o.eq_ignore_ascii_case(&req.origin),
    }
}

/// The current session from the cookie, if any (any stage).
pub(crate) fn current(gate: &Gate, req: &PageRequest<'_>) -> Option<(String, Arc<Session>)> {
    let cookie = session::cookie_value(&req.headers, COOKIE)?;
    gate.sessions.get(cookie).map(|s| (cookie.to_string(), s))
}

/// The session behind this browser's cookie, if it is complete and still stands
/// (not idle, not too old, the account still usable under the policy).
pub(crate) fn standing_session(gate: &Gate, req: &PageRequest<'_>) -> Option<Arc<Session>> {
    let snap = gate.accounts.snapshot();
    current(gate, req).map(|(_, s)| s).filter(|s| {
        s.stage == crate::session::Stage::Complete
            && crate::users::accounts::identity_of(s, &snap, req.policy, req.now).is_ok()
    })
}

/// Whether `session` is still one of the live sessions and still stands under
/// `policy` at `now` (not idle, not too old, the account still usable).
pub(crate) fn still_stands(gate: &Gate, session: &Arc<Session>, policy: &Policy, now: i64) -> bool {
    gate.sessions
        .of_user(&session.user)
        .iter()
        .any(|s| Arc::ptr_eq(s, session))
        && crate::users::accounts::identity_of(session, &gate.accounts.snapshot(), policy, now)
            .is_ok()
}

/// A safe place to return to after sign-in: a path on this host, or `/`.
/// Refuses anything a browser could read as another host (`//evil`, `/\evil`,
/// `/%09/evil`, `https:evil`, `javascript:` …), also after one decoding.
pub fn safe_return(raw: &str) -> String {
    let ok = |s: &str| {
        s.starts_with('/')
            && !s.starts_with("//")
            && !s.contains('\\')
            && !s.chars().any(|c| c.is_control() || c.is_whitespace())
    };
    let decoded: String = percent_decode(raw);
    if !ok(raw) || !ok(&decoded) {
        return "/".into();
    }
    let (path, query) = match raw.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (raw, None),
    };
    match crate::path::canonicalize(path) {
        // ward's own pages are no place to return to, but for the hand-off to an app host.
        Ok(p) if !is_ward_path(&p) || p == "/.ward/go" => match query {
            Some(q) if !q.contains('#') => format!("{p}?{q}"),
            Some(_) => "/".into(),
            None => p,
        },
        _ => "/".into(),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes.get(i),
            bytes.get(i + 1).and_then(|b| hex(*b)),
            bytes.get(i + 2).and_then(|b| hex(*b)),
        ) {
            (Some(b'%'), Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (Some(b), _, _) => {
                out.push(*b);
                i += 1;
            }
            (None, _, _) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `s` with its first letter in upper case (error words as a sentence on a page).
pub(crate) fn capital(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

pub(crate) fn unavailable(req: &PageRequest<'_>) -> Response<Body> {
    page::problem(
        StatusCode::SERVICE_UNAVAILABLE,
        &req.policy.practice,
        "Sign-in unavailable",
        "ward cannot sign anyone in right now. Please try again in a moment.",
        req.request_id,
    )
}

/// Where a request without a valid session goes: the sign-in page for page
/// loads, 401 for anything else (an app's scripts cannot follow a redirect usefully).
pub fn login_redirect(
    method: &Method,
    headers: &HeaderMap,
    path_and_query: &str,
    ended: Option<&'static str>,
) -> Response<Body> {
    let navigation = (method == Method::GET || method == Method::HEAD)
        && headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|a| a.contains("text/html") || a.contains("*/*"));
    if !navigation {
        let mut resp = page::text(
            StatusCode::UNAUTHORIZED,
            "text/plain; charset=utf-8",
            "sign-in required\n".into(),
        );
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("ward"));
        return resp;
    }
    let ret: String = serde_urlencoded::to_string([("return", path_and_query)]).unwrap_or_default();
    let reason = ended.map(|r| format!("&reason={r}")).unwrap_or_default();
    redirect(&format!("/.ward/login?{ret}{reason}"))
}

#[cfg(test)]
mod tests {
    use super::safe_return;

    #[test]
    fn return_urls_stay_on_this_host() {
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "/ /evil.example",
            " /evil",
            "/%09/evil.example",
            "/%2F/evil.example",
            "/%2f%2fevil.example",
            "/%5cevil.example",
            "/%5Cevil.example",
            "https:evil.example",
            "https://evil.example/",
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "data:text/html,hi",
            "\t/evil",
            "/\t/evil",
            "%2F%2Fevil.example",
            "/.ward/login",
            "/..",
            "",
            "evil",
            "/a\r\nSet-Cookie: x=1",
            "/a#frag",
            "/a?b#frag",
        ] {
            assert_eq!(safe_return(bad), "/", "{bad:?}");
        }
        assert_eq!(safe_return("/patients/1001/chart"), "/patients/1001/chart");
        assert_eq!(safe_return("/a/../b?x=1"), "/b?x=1");
        assert_eq!(
            safe_return("/billing?from=%2F%2Fx"),
            "/billing?from=%2F%2Fx"
        );
    }
}
