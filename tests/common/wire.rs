//! The table-driven attack harness: a request built to get past ward (raw HTTP/1.1 bytes, or an
//! HTTP/2 request through hyper's low-level client, which lets a test set any `:path`,
//! `:authority` and headers that `http` can represent), what must happen to it, and a judge that
//! checks both what ward answered and what, if anything, reached the app.
//!
//! The app is the sample EHR, which answers every request with `x-upstream-target` (the exact
//! target it received) and echoes what it received under `/echo/…`. For every case:
//! - a refusal never carries `x-upstream-target`;
//! - a forwarded request reached the app with exactly the canonical path ward decided on
//!   (cross-checked against ward's audit record of the request);
//! - no response at all carries a target under a denied prefix.
//!
//! Used by `attack_path_confusion`, `attack_smuggling` and `attack_identity_spoofing`.

use super::{Running, Scenario, Ward, audit_text, json_field, raw_tls, seen_headers};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::time::{Duration, Instant};

/// The signed-in clinician of [`scenario`].
pub const USER: &str = "dr_lee";

/// The harness's policy: `/admin/**` officer, `/billing/**` biller, `/patients/**`,
/// `/` and everything else clinician, `/public/**` and `/logo.png` public, plus
/// `/echo/…` routes that show what the app received; the app is case-insensitive
/// (legacy IIS) when `case_insensitive`.
pub fn scenario(case_insensitive: bool) -> Scenario {
    Scenario::new()
        .sample_ehr()
        .toml("[networks]\noffice = [\"203.0.113.0/24\"]\n[roles]\nclinician = {}\nbiller = {}\nofficer = {}\n")
        .app(&format!("case_insensitive = {case_insensitive}"))
        .route("/**", "allow_roles = [\"clinician\"]")
        .route("/", "allow_roles = [\"clinician\"]")
        .route("/patients/**", "allow_roles = [\"clinician\"]")
        .route("/admin/**", "allow_roles = [\"officer\"]")
        .route("/billing/**", "allow_roles = [\"biller\"]")
        .route("/public/**", "allow = \"public\"")
        .route("/logo.png", "allow = \"public\"")
        .route("/echo/public/**", "allow = \"public\"")
        .route(
            "/echo/office/**",
            "allow_roles = [\"clinician\"]\nfrom = [\"office\"]",
        )
        .route(
            "/echo/readonly/**",
            "allow_roles = [\"clinician\"]\nmethods = [\"GET\"]",
        )
        .user(USER, &["clinician"])
}

/// Starts [`scenario`] with the clinician signed in; returns it and the session cookie, once
/// the session is seen to reach the app (so a refusal in a table is the policy's, not a broken
/// sign-in).
pub async fn start(case_insensitive: bool) -> (Running, String) {
    let s = scenario(case_insensitive).start().await;
    let (_b, sid) = s.signed_in(USER).await;
    let host = format!("localhost:{}", s.ward.port());
    let ok = send(&s.ward, &get("/patients/1001/chart"), &host, &sid).await;
    let Outcome::Replies(r) = ok else {
        panic!("{ok:?}")
    };
    assert_eq!(r[0].status, 200, "{}", r[0].body_text());
    (s, sid)
}

/// Runs `cases` against `s` (at least `min` of them, so a table cannot shrink unseen).
pub async fn run_at_least(s: &Running, sid: &str, cases: Vec<Case>, fold: bool, min: usize) {
    let n = run(&s.ward, sid, cases, fold).await;
    assert!(n >= min, "only {n} variants");
}

/// How a variant goes on the wire.
pub enum Wire {
    /// Raw HTTP/1.1 bytes; `{host}` becomes `localhost:PORT`, `{sid}` the session cookie
    /// and `{bodylen}` the length of everything after the first blank line.
    H1(Vec<u8>),
    /// Like `H1`, then the client ends its side of the stream (TLS close_notify).
    H1Eof(Vec<u8>),
    /// An HTTP/2 request through hyper's client.
    H2(H2),
}

/// An HTTP/2 request. `uri` is absolute (`https://{host}/…`, which becomes `:scheme`,
/// `:authority` and `:path`); `cookie` adds the clinician's session.
pub struct H2 {
    pub method: &'static str,
    pub uri: String,
    pub headers: Vec<(&'static str, &'static str)>,
    pub cookie: bool,
}

/// What must happen.
pub enum Expect {
    /// Every response has one of these statuses and none came from the upstream.
    Refused(&'static [u16]),
    /// One response, from the upstream, which received exactly this target.
    Forwarded(String),
    /// Refused with one of these statuses, or forwarded with exactly this target.
    RefusedOr(&'static [u16], String),
    /// Several requests on one connection: the upstream received exactly these
    /// targets, in order; every other response is a refusal.
    Targets(Vec<String>),
    /// Answered by ward's own pages; nothing reached the upstream.
    WardPage,
    /// The HTTP/2 client cannot express this request (covered over HTTP/1.1).
    Unsendable,
}

/// An extra check on the responses (for example, what the upstream saw).
pub type Check = fn(&[Reply]) -> Result<(), String>;

pub struct Case {
    pub name: String,
    pub send: Wire,
    pub expect: Expect,
    pub check: Option<Check>,
}

/// Statuses for a request refused before any decision.
pub const BAD: &[u16] = &[400];
/// The policy refused it.
pub const DENIED: &[u16] = &[403];
/// Sent to sign in (a page load without a session).
pub const LOGIN: &[u16] = &[303];
/// Too large to parse.
pub const TOO_LONG: &[u16] = &[400, 414, 431];
/// Refused at the HTTP layer or by ward: anything 4xx that is not from the upstream.
pub const ANY_REFUSAL: &[u16] = &[400, 403, 404, 405, 411, 413, 414, 431, 501];

pub fn case(name: impl Into<String>, send: Wire, expect: Expect) -> Case {
    Case {
        name: name.into(),
        send,
        expect,
        check: None,
    }
}

pub fn checked(name: impl Into<String>, send: Wire, expect: Expect, check: Check) -> Case {
    Case {
        check: Some(check),
        ..case(name, send, expect)
    }
}

/// A GET for `target` with the clinician's session and `extra` header lines.
pub fn get_with(target: &str, extra: &str) -> Wire {
    get_bytes(target.as_bytes(), extra, true)
}

pub fn get(target: &str) -> Wire {
    get_with(target, "")
}

/// A GET with no session at all.
pub fn anon(target: &str, extra: &str) -> Wire {
    get_bytes(target.as_bytes(), extra, false)
}

pub fn get_bytes(target: &[u8], extra: &str, session: bool) -> Wire {
    let mut out = b"GET ".to_vec();
    out.extend_from_slice(target);
    out.extend_from_slice(b" HTTP/1.1\r\nHost: {host}\r\nAccept: text/html\r\n");
    if session {
        out.extend_from_slice(b"Cookie: __Host-ward-session={sid}\r\n");
    }
    out.extend_from_slice(extra.as_bytes());
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    Wire::H1(out)
}

/// Raw request text, sent as is (after placeholder substitution).
pub fn raw(text: &str) -> Wire {
    Wire::H1(text.as_bytes().to_vec())
}

pub fn h2(method: &'static str, path: &str, headers: &[(&'static str, &'static str)]) -> Wire {
    Wire::H2(H2 {
        method,
        uri: format!("https://{{host}}{path}"),
        headers: headers.to_vec(),
        cookie: true,
    })
}

pub fn h2get(path: &str) -> Wire {
    h2("GET", path, &[])
}

pub fn fwd(target: &str) -> Expect {
    Expect::Forwarded(target.to_string())
}

/// The standard session lines for raw requests.
pub const SESSION: &str = "Host: {host}\r\nCookie: __Host-ward-session={sid}\r\n";

// ---------------------------------------------------------------------------------------------
// Checks on what the upstream saw (the sample EHR's `/echo/…` JSON).

pub fn echoed(replies: &[Reply]) -> Result<Vec<(String, String)>, String> {
    let r = replies.first().ok_or("no response")?;
    let json: serde_json::Value = serde_json::from_slice(&r.body)
        .map_err(|e| format!("echo body is not JSON ({e}): {}", r.body_text()))?;
    Ok(seen_headers(&json))
}

/// Exactly one `X-Ward-User` (the clinician), `X-Ward-Roles` and `X-Ward-Session`,
/// no other `X-Ward-*` or path-override header in any spelling, and ward's own
/// `X-Forwarded-For`.
pub fn upstream_saw_only_ward_identity(replies: &[Reply]) -> Result<(), String> {
    let seen = echoed(replies)?;
    let count = |n: &str| {
        seen.iter()
            .filter(|(k, _)| k.replace('_', "-").eq_ignore_ascii_case(n))
            .count()
    };
    let value = |n: &str| {
        seen.iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    for name in [
        "x-ward-user",
        "x-ward-roles",
        "x-ward-session",
        "x-forwarded-for",
        // ward's own (RFC 7239, #11.6); a client's never passes.
        "forwarded",
    ] {
        if count(name) != 1 {
            return Err(format!(
                "upstream saw {name} {} times: {seen:?}",
                count(name)
            ));
        }
    }
    if value("x-ward-user") != USER || value("x-ward-roles") != "clinician" {
        return Err(format!("upstream saw a forged identity: {seen:?}"));
    }
    if value("x-ward-session") == "forged" {
        return Err(format!("forged session id passed: {seen:?}"));
    }
    if value("x-forwarded-for") != "127.0.0.1" {
        return Err(format!("forged client address passed: {seen:?}"));
    }
    if value("x-forwarded-host").contains("billing") {
        return Err(format!("forged X-Forwarded-Host passed: {seen:?}"));
    }
    if !value("forwarded").starts_with("for=127.0.0.1;proto=https;")
        || value("forwarded").contains("billing")
    {
        return Err(format!("forged Forwarded passed: {seen:?}"));
    }
    let forbidden = [
        "x-original-url",
        "x-rewrite-url",
        "x-forwarded-uri",
        "x-forwarded-prefix",
        "x-real-ip",
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
        "x-script-name",
    ];
    for (k, v) in &seen {
        let folded = k.replace('_', "-").to_ascii_lowercase();
        if forbidden.contains(&folded.as_str())
            || (folded.starts_with("x-ward-") && k.contains('_'))
        {
            return Err(format!("upstream saw {k}: {v}"));
        }
        if v.contains("officer") {
            return Err(format!("a forged value reached the upstream in {k}: {v}"));
        }
    }
    Ok(())
}

/// Nobody signed in: no identity header of any spelling reaches the upstream.
pub fn upstream_saw_no_identity(replies: &[Reply]) -> Result<(), String> {
    let seen = echoed(replies)?;
    match seen.iter().find(|(k, _)| {
        k.replace('_', "-")
            .to_ascii_lowercase()
            .starts_with("x-ward-")
    }) {
        Some(h) => Err(format!("upstream saw {h:?}")),
        None => Ok(()),
    }
}

pub fn upstream_saw_foo(replies: &[Reply]) -> Result<(), String> {
    let r = replies.first().ok_or("no response")?;
    let json: serde_json::Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
    match json["method"].as_str() {
        Some("FOO") => Ok(()),
        other => Err(format!("upstream saw method {other:?}")),
    }
}

pub fn upstream_saw_no_upgrade(replies: &[Reply]) -> Result<(), String> {
    let r = replies.first().ok_or("no response")?;
    if r.status == 101 {
        return Err("the upstream switched protocols".into());
    }
    let seen = echoed(replies)?;
    match seen
        .iter()
        .find(|(k, _)| matches!(k.as_str(), "upgrade" | "http2-settings" | "connection"))
    {
        Some(h) => Err(format!("upstream saw {h:?}")),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// Sending and reading.

/// One response as the client saw it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn upstream_target(&self) -> Option<&str> {
        self.header("x-upstream-target")
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body)
            .chars()
            .take(300)
            .collect()
    }
}

/// What came back.
#[derive(Debug)]
pub enum Outcome {
    Replies(Vec<Reply>),
    /// HTTP/2: the server reset the stream or connection instead of answering.
    Reset(String),
    /// HTTP/2: the client refused to build or send it.
    Unsendable(String),
}

pub fn substitute(bytes: &[u8], host: &str, sid: &str) -> Vec<u8> {
    let out = substitute_names(bytes, host, sid);
    let Some(head_end) = find(&out, b"\r\n\r\n") else {
        return out;
    };
    let body_len = (out.len() - head_end - 4).to_string();
    let Some(at) = find(&out[..head_end], b"{bodylen}") else {
        return out;
    };
    let mut fixed = out[..at].to_vec();
    fixed.extend_from_slice(body_len.as_bytes());
    fixed.extend_from_slice(&out[at + b"{bodylen}".len()..]);
    fixed
}

pub fn substitute_names(bytes: &[u8], host: &str, sid: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 64);
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"{host}") {
            out.extend_from_slice(host.as_bytes());
            i += 6;
        } else if bytes[i..].starts_with(b"{sid}") {
            out.extend_from_slice(sid.as_bytes());
            i += 5;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

pub async fn send_h1(ward: &Ward, request: &[u8], eof: bool) -> Outcome {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = raw_tls(ward, &[b"http/1.1"]).await;
    // The server may answer and close before reading everything (a refused head).
    let _ = s.write_all(request).await;
    let _ = s.flush().await;
    if eof {
        let _ = s.shutdown().await;
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut out)).await;
    Outcome::Replies(parse_h1(&out))
}

/// Splits an HTTP/1.1 byte stream into responses.
pub fn parse_h1(mut buf: &[u8]) -> Vec<Reply> {
    let mut out = Vec::new();
    while let Some(end) = find(buf, b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf = &buf[end + 4..];
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let body = if (100..200).contains(&status) || status == 204 || status == 304 {
            Vec::new()
        } else if let Some(len) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
            let n = len.min(buf.len());
            let b = buf[..n].to_vec();
            buf = &buf[n..];
            b
        } else if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            let mut body = Vec::new();
            loop {
                let Some(eol) = find(buf, b"\r\n") else {
                    buf = &[];
                    break;
                };
                let size_text = String::from_utf8_lossy(&buf[..eol]).into_owned();
                let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
                    .unwrap_or(0);
                buf = &buf[eol + 2..];
                if size == 0 {
                    // Trailers end with an empty line.
                    let end = find(buf, b"\r\n").map(|i| i + 2).unwrap_or(buf.len());
                    buf = &buf[end..];
                    break;
                }
                let n = size.min(buf.len());
                body.extend_from_slice(&buf[..n]);
                buf = &buf[(n + 2).min(buf.len())..];
            }
            body
        } else {
            let b = buf.to_vec();
            buf = &[];
            b
        };
        out.push(Reply {
            status,
            headers,
            body,
        });
    }
    out
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

pub async fn send_h2(ward: &Ward, req: &H2, host: &str, sid: &str) -> Outcome {
    let uri = req.uri.replace("{host}", host);
    let mut builder = http::Request::builder()
        .method(req.method)
        .uri(uri.as_str());
    for (k, v) in &req.headers {
        builder = builder.header(*k, *v);
    }
    if req.cookie {
        builder = builder.header("cookie", format!("__Host-ward-session={sid}"));
    }
    let request = match builder.body(Empty::<Bytes>::new()) {
        Ok(r) => r,
        Err(e) => return Outcome::Unsendable(e.to_string()),
    };
    let tls = raw_tls(ward, &[b"h2"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let sent = tokio::time::timeout(Duration::from_secs(5), sender.send_request(request)).await;
    let resp = match sent {
        Err(_) => return Outcome::Reset("timed out".into()),
        Ok(Err(e)) if e.is_user() => return Outcome::Unsendable(e.to_string()),
        Ok(Err(e)) => return Outcome::Reset(format!("{e:?}")),
        Ok(Ok(resp)) => resp,
    };
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = match resp.into_body().collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(e) => return Outcome::Reset(format!("body: {e}")),
    };
    Outcome::Replies(vec![Reply {
        status,
        headers,
        body,
    }])
}

/// True when `path` (no query) is `prefix` or below it.
pub fn under(path: &str, prefix: &str, fold: bool) -> bool {
    let (p, x) = if fold {
        (path.to_ascii_lowercase(), prefix.to_ascii_lowercase())
    } else {
        (path.to_string(), prefix.to_string())
    };
    p == x || p.starts_with(&format!("{x}/"))
}

/// Checks one outcome against its expectation; `Err` says what went wrong.
pub fn judge(
    ward: &Ward,
    case: &Case,
    outcome: &Outcome,
    fold: bool,
) -> Result<&'static str, String> {
    let replies = match outcome {
        Outcome::Replies(r) => r,
        Outcome::Unsendable(why) => {
            return match case.expect {
                Expect::Unsendable => Ok("unsendable over h2 (covered over HTTP/1.1)"),
                _ => Err(format!("the h2 client could not send it: {why}")),
            };
        }
        Outcome::Reset(why) => {
            return match case.expect {
                Expect::Refused(_) => Ok("reset by ward's HTTP/2 layer"),
                _ => Err(format!("stream reset: {why}")),
            };
        }
    };
    if matches!(case.expect, Expect::Unsendable) {
        return Err(format!(
            "expected the h2 client to refuse it, but it was sent: {replies:?}"
        ));
    }
    if replies.is_empty() {
        return Err("no response at all".into());
    }
    // Whatever the expectation: no 5xx, nothing under a denied prefix upstream.
    for r in replies {
        if r.status >= 500 || r.status == 0 {
            return Err(format!("status {}: {}", r.status, r.body_text()));
        }
        if let Some(t) = r.upstream_target() {
            let path = t.split('?').next().unwrap_or(t);
            for denied in ["/admin", "/billing", "/.ward"] {
                if under(path, denied, fold) {
                    return Err(format!("the upstream received {t:?}"));
                }
            }
        }
    }
    let refused = |r: &Reply, allowed: &[u16]| -> Result<(), String> {
        if let Some(t) = r.upstream_target() {
            return Err(format!(
                "status {} but the upstream received {t:?}",
                r.status
            ));
        }
        if !allowed.contains(&r.status) {
            return Err(format!(
                "status {}, want one of {allowed:?}: {}",
                r.status,
                r.body_text()
            ));
        }
        if r.status == 303
            && !r
                .header("location")
                .is_some_and(|l| l.starts_with("/.ward/login"))
        {
            return Err(format!(
                "303 elsewhere than sign-in: {:?}",
                r.header("location")
            ));
        }
        Ok(())
    };
    let forwarded = |r: &Reply, want: &str| -> Result<(), String> {
        match r.upstream_target() {
            None => Err(format!(
                "not forwarded (status {}): {}",
                r.status,
                r.body_text()
            )),
            Some(t) if t != want => Err(format!("upstream received {t:?}, want {want:?}")),
            Some(t) => same_as_ward_decided(ward, r, t),
        }
    };
    match &case.expect {
        Expect::Refused(allowed) => {
            for r in replies {
                refused(r, allowed)?;
            }
        }
        Expect::Forwarded(want) => {
            if replies.len() != 1 {
                return Err(format!("{} responses: {replies:?}", replies.len()));
            }
            forwarded(&replies[0], want)?;
        }
        Expect::RefusedOr(allowed, want) => {
            if replies.len() != 1 {
                return Err(format!("{} responses: {replies:?}", replies.len()));
            }
            let r = &replies[0];
            if r.upstream_target().is_some() {
                forwarded(r, want)?;
            } else {
                refused(r, allowed)?;
            }
        }
        Expect::Targets(want) => {
            let got: Vec<&str> = replies.iter().filter_map(|r| r.upstream_target()).collect();
            if got != *want {
                return Err(format!("upstream received {got:?}, want {want:?}"));
            }
            for r in replies {
                match r.upstream_target() {
                    Some(t) => same_as_ward_decided(ward, r, t)?,
                    None => refused(r, ANY_REFUSAL)?,
                }
            }
        }
        Expect::WardPage => {
            for r in replies {
                if let Some(t) = r.upstream_target() {
                    return Err(format!("ward's page reached the upstream as {t:?}"));
                }
                if ![200, 303, 404, 405].contains(&r.status) {
                    return Err(format!("status {}", r.status));
                }
            }
        }
        Expect::Unsendable => unreachable!(),
    }
    if let Some(check) = case.check {
        check(replies)?;
    }
    Ok("")
}

/// The path ward recorded for this request (by `x-request-id`, in the audit
/// trail) is the path the upstream received.
pub fn same_as_ward_decided(ward: &Ward, r: &Reply, target: &str) -> Result<(), String> {
    let id = r.header("x-request-id").ok_or("no x-request-id")?;
    let path = target.split('?').next().unwrap_or(target);
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let trail = audit_text(&ward.site);
        let line = trail
            .lines()
            .find(|l| l.contains(&format!("\"request_id\":\"{id}\"")));
        if let Some(line) = line {
            let decided = json_field(line, "path");
            let decision = json_field(line, "decision");
            if decided != path || decision != "allow" {
                return Err(format!(
                    "ward decided {decision} on {decided:?} but the upstream received {target:?}"
                ));
            }
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("no audit record for request {id}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub async fn send(ward: &Ward, wire: &Wire, host: &str, sid: &str) -> Outcome {
    match wire {
        Wire::H1(bytes) => send_h1(ward, &substitute(bytes, host, sid), false).await,
        Wire::H1Eof(bytes) => send_h1(ward, &substitute(bytes, host, sid), true).await,
        Wire::H2(req) => send_h2(ward, req, host, sid).await,
    }
}

pub async fn run(ward: &Ward, sid: &str, cases: Vec<Case>, fold: bool) -> usize {
    let host = format!("localhost:{}", ward.port());
    let mut failures = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    for case in &cases {
        assert!(
            names.insert(case.name.clone()),
            "duplicate case {}",
            case.name
        );
        let outcome = send(ward, &case.send, &host, sid).await;
        match judge(ward, case, &outcome, fold) {
            Ok(note) if !note.is_empty() => eprintln!("{}: {note}", case.name),
            Ok(_) => {}
            Err(why) => failures.push(format!("{}: {why}", case.name)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} variants failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    cases.len()
}
