//! Smuggling and framing: requests two servers could read differently (a body framed two
//! ways, pipelined and smuggled requests, control bytes and CRLF in the target, absolute-form
//! targets, conflicting `Host`s, odd methods, method overrides in the query or a form, bodies
//! without a length over HTTP/2, protocol upgrades, `Range` on a capped route). Each is
//! refused before any decision, or forwarded so that the app sees only what ward decided on.
//! The smuggled part always asks for a denied route.

use crate::common::wire::*;
use crate::common::*;
use std::time::Duration;

/// Framing tricks in one request: control bytes, absolute-form targets, `Host` conflicts and
/// methods, for the clinician of `common::wire::scenario`.
fn cases() -> Vec<Case> {
    use Expect::*;
    let mut c = vec![
        // --- NUL, control bytes, CRLF injection ---------------------------------------------------
        case(
            "ctl: literal NUL",
            get_bytes(b"/admin\x00/x", "", true),
            Refused(BAD),
        ),
        case("ctl: %00", get("/patients%00/../admin"), Refused(BAD)),
        case(
            "ctl: %0d%0a header injection",
            get("/patients/1001/chart%0d%0aX-Ward-User:%20officer"),
            Refused(BAD),
        ),
        case(
            "ctl: %0a Host injection",
            get("/patients%0aHost:%20billing"),
            Refused(BAD),
        ),
        case(
            "ctl: literal tab",
            get_bytes(b"/admin\t/x", "", true),
            Refused(BAD),
        ),
        case(
            "ctl: literal DEL",
            get_bytes(b"/patients/\x7f/../../admin", "", true),
            Refused(BAD),
        ),
        case("ctl: %09", get("/patients%09/../admin"), Refused(BAD)),
        case("ctl: %7f", get("/patients/%7f/../../admin"), Refused(BAD)),
        checked(
            "ctl: CRLF in the query stays encoded and injects nothing",
            get("/echo/q?q=%0d%0aX-Ward-User:%20officer"),
            fwd("/echo/q?q=%0d%0aX-Ward-User:%20officer"),
            upstream_saw_only_ward_identity,
        ),
        case("h2 ctl: %00", h2get("/patients%00/../admin"), Refused(BAD)),
        case(
            "h2 ctl: %0d%0a",
            h2get("/x%0d%0aX-Ward-User:%20officer"),
            Refused(BAD),
        ),
        case("h2 ctl: literal NUL", h2get("/admin\u{0}/x"), Unsendable),
        // --- Absolute-form URLs ---------------------------------------------------------------------
        case(
            "absolute: other host to admin",
            raw(&format!(
                "GET https://evil.example/admin/x HTTP/1.1\r\n{SESSION}Connection: close\r\n\r\n"
            )),
            Refused(BAD),
        ),
        case(
            "absolute: other host to an allowed path",
            raw(&format!(
                "GET https://evil.example/patients/1001/chart HTTP/1.1\r\n{SESSION}Connection: close\r\n\r\n"
            )),
            Refused(BAD),
        ),
        case(
            "absolute: same host still decided on the path",
            raw(&format!(
                "GET https://{{host}}/admin/x HTTP/1.1\r\n{SESSION}Connection: close\r\n\r\n"
            )),
            Refused(DENIED),
        ),
        case(
            "absolute: same host, encoded dots",
            raw(&format!(
                "GET http://{{host}}/patients/%2e%2e/admin HTTP/1.1\r\n{SESSION}Connection: close\r\n\r\n"
            )),
            Refused(DENIED),
        ),
        case(
            "absolute: userinfo",
            raw(&format!(
                "GET https://officer@{{host}}/patients/1001/chart HTTP/1.1\r\n{SESSION}Connection: close\r\n\r\n"
            )),
            Refused(BAD),
        ),
        case(
            "absolute: other port",
            raw(&format!(
                "GET https://localhost:1/patients/1001/chart HTTP/1.1\r\n{SESSION}Connection: close\r\n\r\n"
            )),
            Refused(BAD),
        ),
        case(
            "absolute: no Host header, still decided on the path",
            raw(
                "GET https://evil.example/admin/x HTTP/1.1\r\nCookie: __Host-ward-session={sid}\r\nConnection: close\r\n\r\n",
            ),
            Refused(&[400, 403]),
        ),
        // --- Host conflicts -------------------------------------------------------------------------
        case(
            "host: two identical Host headers",
            raw(&format!(
                "GET /patients/1001/chart HTTP/1.1\r\n{SESSION}Host: {{host}}\r\nConnection: close\r\n\r\n"
            )),
            Refused(BAD),
        ),
        case(
            "host: two different Host headers",
            raw(&format!(
                "GET /patients/1001/chart HTTP/1.1\r\n{SESSION}Host: billing.localhost\r\nConnection: close\r\n\r\n"
            )),
            Refused(BAD),
        ),
        case(
            "host: comma list",
            raw(
                "GET /patients/1001/chart HTTP/1.1\r\nHost: {host}, billing.localhost\r\nCookie: __Host-ward-session={sid}\r\nConnection: close\r\n\r\n",
            ),
            Refused(BAD),
        ),
        case(
            "host: empty",
            raw(
                "GET /patients/1001/chart HTTP/1.1\r\nHost: \r\nCookie: __Host-ward-session={sid}\r\nConnection: close\r\n\r\n",
            ),
            Refused(BAD),
        ),
        case(
            "host: userinfo",
            raw(
                "GET /patients/1001/chart HTTP/1.1\r\nHost: officer@{host}\r\nCookie: __Host-ward-session={sid}\r\nConnection: close\r\n\r\n",
            ),
            Refused(BAD),
        ),
        case(
            "host: none on HTTP/1.0",
            raw("GET /patients/1001/chart HTTP/1.0\r\nCookie: __Host-ward-session={sid}\r\n\r\n"),
            Refused(BAD),
        ),
        case(
            "h2 host: :authority vs Host",
            h2(
                "GET",
                "/patients/1001/chart",
                &[("host", "billing.localhost")],
            ),
            Refused(BAD),
        ),
        case(
            "h2 body: content-length longer than the data",
            h2("POST", "/echo/a", &[("content-length", "100")]),
            Refused(BAD),
        ),
        // --- Methods ----------------------------------------------------------------------------------
        case(
            "method: get",
            raw(&format!(
                "get /admin/x HTTP/1.1\r\n{SESSION}Connection: close\r\n\r\n"
            )),
            Refused(BAD),
        ),
        case(
            "method: GeT on an allowed path",
            raw(&format!(
                "GeT /patients/1001/chart HTTP/1.1\r\n{SESSION}Connection: close\r\n\r\n"
            )),
            Refused(BAD),
        ),
        case(
            "method: TRACE",
            raw(&format!(
                "TRACE /patients/1001/chart HTTP/1.1\r\n{SESSION}Connection: close\r\n\r\n"
            )),
            Refused(BAD),
        ),
        case(
            "method: CONNECT",
            raw(&format!(
                "CONNECT {{host}} HTTP/1.1\r\n{SESSION}Connection: close\r\n\r\n"
            )),
            Refused(BAD),
        ),
        case(
            "method: FOO on admin",
            raw(&format!(
                "FOO /admin/x HTTP/1.1\r\n{SESSION}Connection: close\r\n\r\n"
            )),
            Refused(DENIED),
        ),
        checked(
            "method: FOO on an allowed path is forwarded as FOO",
            raw(&format!(
                "FOO /echo/m HTTP/1.1\r\n{SESSION}Connection: close\r\n\r\n"
            )),
            fwd("/echo/m"),
            upstream_saw_foo,
        ),
        case(
            "method: POST on a GET-only route",
            raw(&format!(
                "POST /echo/readonly/x HTTP/1.1\r\n{SESSION}Content-Length: 0\r\nConnection: close\r\n\r\n"
            )),
            Refused(DENIED),
        ),
        case(
            "method: OPTIONS *",
            raw(&format!(
                "OPTIONS * HTTP/1.1\r\n{SESSION}Connection: close\r\n\r\n"
            )),
            Refused(BAD),
        ),
        case(
            "target: GET *",
            raw(&format!(
                "GET * HTTP/1.1\r\n{SESSION}Connection: close\r\n\r\n"
            )),
            Refused(BAD),
        ),
        case(
            "target: authority-form on GET",
            raw(&format!(
                "GET {{host}} HTTP/1.1\r\n{SESSION}Connection: close\r\n\r\n"
            )),
            Refused(BAD),
        ),
        case(
            "target: HTTP/0.9 style",
            raw("GET /admin/x\r\n\r\n"),
            Refused(BAD),
        ),
        case(
            "target: too many headers",
            get_with("/admin/x", &"X-Ward-User: officer\r\n".repeat(150)),
            Refused(&[400, 431]),
        ),
        case(
            "h2 method: get",
            h2("get", "/patients/1001/chart", &[]),
            Refused(BAD),
        ),
        case(
            "h2 method: TRACE",
            h2("TRACE", "/patients/1001/chart", &[]),
            Refused(BAD),
        ),
        case(
            "h2 method: FOO on admin",
            h2("FOO", "/admin/x", &[]),
            Refused(DENIED),
        ),
    ];
    c.extend(smuggling_cases());
    c
}

/// HTTP/1.1 framing tricks. The smuggled part always asks for `/admin/…`; the
/// upstream must only ever see the `/echo/…` requests.
fn smuggling_cases() -> Vec<Case> {
    use Expect::*;
    let admin = "GET /admin/x HTTP/1.1\r\nHost: {host}\r\nCookie: __Host-ward-session={sid}\r\nConnection: close\r\n\r\n";
    let targets = |t: &[&str]| Targets(t.iter().map(|s| s.to_string()).collect());
    vec![
        case(
            "smuggle: CL then TE",
            raw(&format!(
                "POST /echo/a HTTP/1.1\r\n{SESSION}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{admin}"
            )),
            Refused(BAD),
        ),
        case(
            "smuggle: TE then CL covering the smuggled request",
            raw(&format!(
                "POST /echo/a HTTP/1.1\r\n{SESSION}Transfer-Encoding: chunked\r\nContent-Length: {{bodylen}}\r\n\r\n0\r\n\r\n{admin}"
            )),
            Refused(BAD),
        ),
        case(
            "smuggle: CL.TE classic, chunk hides the request",
            raw(&format!(
                "POST /echo/a HTTP/1.1\r\n{SESSION}Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG{admin}"
            )),
            Refused(BAD),
        ),
        case(
            "smuggle: two different Content-Length",
            raw(&format!(
                "POST /echo/a HTTP/1.1\r\n{SESSION}Content-Length: 0\r\nContent-Length: {{bodylen}}\r\n\r\n{admin}"
            )),
            Refused(BAD),
        ),
        case(
            "smuggle: two equal Content-Length, then a pipelined admin request",
            raw(&format!(
                "POST /echo/a HTTP/1.1\r\n{SESSION}Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello{admin}"
            )),
            targets(&["/echo/a"]),
        ),
        case(
            "smuggle: Content-Length list",
            raw(&format!(
                "POST /echo/a HTTP/1.1\r\n{SESSION}Content-Length: 5, 0\r\n\r\nhello{admin}"
            )),
            Refused(BAD),
        ),
        case(
            "smuggle: TE chunked, identity",
            raw(&format!(
                "POST /echo/a HTTP/1.1\r\n{SESSION}Transfer-Encoding: chunked, identity\r\nContent-Length: 5\r\n\r\n0\r\n\r\n{admin}"
            )),
            Refused(BAD),
        ),
        case(
            "smuggle: TE identity, chunked",
            raw(&format!(
                "POST /echo/a HTTP/1.1\r\n{SESSION}Transfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n{admin}"
            )),
            targets(&["/echo/a"]),
        ),
        case(
            "smuggle: TE xchunked",
            raw(&format!(
                "POST /echo/a HTTP/1.1\r\n{SESSION}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n{admin}"
            )),
            Refused(BAD),
        ),
        case(
            "smuggle: TE with a space before the colon",
            raw(&format!(
                "POST /echo/a HTTP/1.1\r\n{SESSION}Transfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n{admin}"
            )),
            Refused(BAD),
        ),
        case(
            "smuggle: obs-fold continuation of Transfer-Encoding",
            raw(&format!(
                "POST /echo/a HTTP/1.1\r\n{SESSION}Transfer-Encoding: identity\r\n chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n{admin}"
            )),
            Refused(BAD),
        ),
        case(
            "smuggle: obs-fold continuation of X-Ward-User",
            raw(&format!(
                "GET /echo/a HTTP/1.1\r\n{SESSION}X-Ward-User: dr_lee\r\n officer\r\nConnection: close\r\n\r\n"
            )),
            Refused(BAD),
        ),
        case(
            "smuggle: obs-fold continuation of Host",
            raw(
                "GET /admin/x HTTP/1.1\r\nHost: billing.localhost\r\n\t{host}\r\nCookie: __Host-ward-session={sid}\r\nConnection: close\r\n\r\n",
            ),
            Refused(BAD),
        ),
        case(
            "smuggle: TE on HTTP/1.0",
            raw(&format!(
                "POST /echo/a HTTP/1.0\r\n{SESSION}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n{admin}"
            )),
            Refused(BAD),
        ),
        case(
            "smuggle: negative Content-Length",
            raw(&format!(
                "POST /echo/a HTTP/1.1\r\n{SESSION}Content-Length: -1\r\n\r\n{admin}"
            )),
            Refused(BAD),
        ),
        case(
            "smuggle: Content-Length with a plus sign",
            raw(&format!(
                "POST /echo/a HTTP/1.1\r\n{SESSION}Content-Length: +5\r\n\r\nhello{admin}"
            )),
            Refused(BAD),
        ),
        case(
            "smuggle: Transfer-Encoding split over two lines",
            raw(&format!(
                "POST /echo/a HTTP/1.1\r\n{SESSION}Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n{admin}"
            )),
            Refused(BAD),
        ),
        case(
            "smuggle: chunk size overflow",
            raw(&format!(
                "POST /echo/a HTTP/1.1\r\n{SESSION}Transfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\n{admin}"
            )),
            Refused(BAD),
        ),
        case(
            "smuggle: body shorter than Content-Length, then end of stream",
            Wire::H1Eof(
                format!("POST /echo/a HTTP/1.1\r\n{SESSION}Content-Length: 500\r\n\r\n{admin}")
                    .into_bytes(),
            ),
            Refused(BAD),
        ),
        case(
            "smuggle: pipelined allowed, admin, allowed",
            raw(&format!(
                "GET /echo/a HTTP/1.1\r\n{SESSION}\r\nGET /admin/x HTTP/1.1\r\n{SESSION}\r\nGET /echo/b HTTP/1.1\r\n{SESSION}Connection: close\r\n\r\n"
            )),
            targets(&["/echo/a", "/echo/b"]),
        ),
        case(
            "smuggle: a GET with a body is refused (CL.0 on pooled connections)",
            raw(&format!(
                "GET /echo/a HTTP/1.1\r\n{SESSION}Content-Length: {{bodylen}}\r\nConnection: close\r\n\r\n{admin}"
            )),
            Refused(BAD),
        ),
        case(
            "smuggle: bare LF line ends",
            raw(
                "GET /admin/x HTTP/1.1\nHost: {host}\nCookie: __Host-ward-session={sid}\nConnection: close\n\n",
            ),
            Refused(&[400, 403]),
        ),
        case(
            "smuggle: chunked body with bare LF framing",
            raw(&format!(
                "POST /echo/a HTTP/1.1\r\n{SESSION}Transfer-Encoding: chunked\r\n\r\n0\n\n{admin}"
            )),
            Refused(BAD),
        ),
        checked(
            "smuggle: h2c upgrade is not passed on",
            raw(&format!(
                "GET /echo/h2c HTTP/1.1\r\n{SESSION}Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nConnection: Upgrade, HTTP2-Settings, close\r\n\r\n"
            )),
            fwd("/echo/h2c"),
            upstream_saw_no_upgrade,
        ),
        case(
            "smuggle: websocket upgrade to admin",
            raw(&format!(
                "GET /admin/x HTTP/1.1\r\n{SESSION}Upgrade: websocket\r\nConnection: Upgrade, close\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )),
            Refused(DENIED),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn smuggling_and_framing_variants_are_refused_or_forwarded_canonical() {
    let (s, sid) = start(false).await;
    run_at_least(&s, &sid, cases(), false, 67).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ambiguous_requests_are_refused_before_any_decision() {
    let s = Scenario::new()
        .route("/**", "allow = \"public\"")
        .start()
        .await;
    let (ward, up) = (&s.ward, &s.up);
    let port = ward.port();
    let cases: Vec<String> = vec![
        format!("GET /%2e%2e/etc HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n"),
        format!("GET /a%2fb HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n"),
        format!("GET /a%5cb HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n"),
        format!("GET /admin;x/y HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n"),
        format!("get / HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n"),
        format!("TRACE / HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n"),
        format!("GET / HTTP/1.1\r\nHost: localhost:{port}\r\nHost: other\r\n\r\n"),
        format!("GET http://other.example/ HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n"),
        "GET / HTTP/1.1\r\n\r\n".to_string(),
        format!("GET /%252e%252e/x HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n"),
    ];
    // The control: the same framing with an ordinary path is forwarded.
    let control = format!("GET /fine HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n");
    for req in cases.iter().chain([&control]) {
        assert!(req.ends_with("\r\n\r\n"));
        // Ask ward to close after answering, so the read ends at once, not at a timeout.
        let closing = format!(
            "{}\r\nConnection: close\r\n\r\n",
            req.trim_end_matches("\r\n")
        );
        let reply = raw_exchange(ward, closing.as_bytes(), Duration::from_secs(20)).await;
        assert!(
            reply
                .to_ascii_lowercase()
                .contains("\r\nconnection: close\r\n"),
            "ward did not close after {req:?}: {reply}"
        );
        let status = reply.split_whitespace().nth(1).unwrap_or("");
        let want = if *req == control { "200" } else { "400" };
        assert_eq!(status, want, "{req:?} -> {reply}");
    }
    let seen = up.received();
    assert_eq!(
        seen.iter().map(|s| s.target.as_str()).collect::<Vec<_>>(),
        vec!["/fine"],
        "only the control reached the upstream"
    );
}

/// A body sent as a stream, so the HTTP/2 client gives no `content-length`
/// and sends the bytes as DATA frames after the headers.
fn streamed(text: &'static str) -> reqwest::Body {
    let chunks: Vec<Result<&'static str, std::io::Error>> = vec![Ok(text)];
    reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))
}

/// An outside tester's finding (issue 16, item 1).
#[tokio::test(flavor = "multi_thread")]
async fn http2_bodies_are_seen_without_length_headers() {
    let (s, _b, sid) = presets::start_vendor("").await;
    let ward = &s.ward;
    let h2 = ward.client(true);
    let cookie = format!("__Host-ward-session={sid}");

    // The vendor may read the forwarding settings...
    let r = h2
        .get(ward.url("/echo/settings/forwarding"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    // ...but not change them, with or without a declared length.
    for (method, body) in [
        (reqwest::Method::POST, streamed("to=evil@example.com")),
        (reqwest::Method::PUT, streamed("to=evil@example.com")),
        (reqwest::Method::POST, reqwest::Body::from("to=x")),
    ] {
        let r = h2
            .request(method.clone(), ward.url("/echo/settings/forwarding"))
            .header("cookie", &cookie)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{method}");
        assert!(!r.headers().contains_key("x-upstream-target"), "{method}");
    }
    // A GET whose stream carries DATA frames is refused like one with a length.
    let r = h2
        .get(ward.url("/echo/a"))
        .header("cookie", &cookie)
        .body(streamed("GET /billing/x HTTP/1.1\r\n\r\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(!r.headers().contains_key("x-upstream-target"));
    // The same POST elsewhere goes through with its body.
    let r = h2
        .post(ward.url("/echo/other"))
        .header("cookie", &cookie)
        .body(streamed("hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["body_len"], 5);
}

/// An outside tester's finding (issue 16, item 5).
#[tokio::test(flavor = "multi_thread")]
async fn content_length_beside_transfer_encoding_is_refused() {
    let (s, _b, sid) = presets::start_vendor("").await;
    // In either order: 400, nothing upstream.
    for head in [
        "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
    ] {
        let (status, reply) = s
            .raw(
                &sid,
                &format!(
                    "POST /echo/a HTTP/1.1\r\n{SESSION}{head}Connection: close\r\n\r\n0\r\n\r\n"
                ),
            )
            .await;
        assert_eq!(status, 400, "{head}: {reply}");
        assert!(!reached_upstream(&reply), "{head}");
    }
    // A chunked body alone still goes through, after a pipelined request with a body.
    let (status, reply) = s.raw(
        &sid,
        &format!(
            "POST /echo/a HTTP/1.1\r\n{SESSION}Content-Length: 5\r\n\r\nhelloPOST /echo/b HTTP/1.1\r\n{SESSION}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        ),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply.matches("HTTP/1.1 200").count(), 2, "{reply}");
}

/// An outside tester's finding (issue 16, item 6).
#[tokio::test(flavor = "multi_thread")]
async fn an_upgrade_naming_more_than_websocket_is_not_passed_on() {
    let (s, _b, sid) = presets::start_vendor("").await;
    let (status, reply) = s.raw(
        &sid,
        &format!(
            "GET /echo/ws HTTP/1.1\r\n{SESSION}Upgrade: websocket, h2c\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let names = echoed_names(&reply);
    assert!(
        !names.iter().any(|n| n == "upgrade"),
        "Upgrade reached the app: {names:?}"
    );
}

/// Security review #20, findings 8 and 9: `GET`/`POST` only on `/patients/**`, any method on
/// `/notes/**`, a size cap on `/debug/**`.
fn overrides_scenario() -> Scenario {
    Scenario::new()
        .toml("[roles]\nclinician = {}\n")
        .route(
            "/patients/**",
            "methods = [\"GET\", \"POST\"]\nallow_roles = [\"clinician\"]",
        )
        .route("/notes/**", "allow_roles = [\"clinician\"]")
        .route(
            "/debug/**",
            "max_response = \"1MB\"\nallow_roles = [\"clinician\"]",
        )
        .user("dr_lee", &["clinician"])
}

/// A `_method` override in the query would let the app run a method ward never decided on;
/// `Range` would let a capped answer be fetched in slices under the cap.
#[tokio::test(flavor = "multi_thread")]
async fn method_overrides_are_refused_and_ranges_dropped_on_capped_routes() {
    let s = overrides_scenario().start().await;
    let (b, _sid) = s.signed_in("dr_lee").await;
    assert_eq!(b.get("/patients/1001/chart").await.status(), 200);
    for q in [
        "_method=DELETE",
        "_METHOD=delete",
        "%5Fmethod=DELETE",
        "%5fMethod=PUT",
        "a=1&_method=DELETE",
        "_method",
    ] {
        let r = b
            .post(&format!("/patients/1001/chart?{q}"), &[("note", "x")])
            .await;
        assert_eq!(r.status(), 400, "{q}");
        assert_eq!(
            b.get(&format!("/patients/1001/chart?{q}")).await.status(),
            400,
            "{q}"
        );
    }
    // A lookalike that is not an override passes.
    assert_eq!(
        b.get("/patients/1001/chart?my_method=x").await.status(),
        200
    );

    // Range and If-Range never reach the app on a route with a size cap.
    b.header("range", "bytes=0-99");
    b.header("if-range", "\"etag\"");
    assert_eq!(b.get("/debug/headers").await.status(), 200);
    let seen = s.up.last();
    assert_eq!(seen.path, "/debug/headers");
    assert!(seen.header("range").is_none(), "{seen:?}");
    assert!(seen.header("if-range").is_none(), "{seen:?}");
}

/// A `_method` field in a posted form asks the app (Rails, Laravel, Symfony) to
/// run another method: ward decides that method too.
#[tokio::test(flavor = "multi_thread")]
async fn a_form_method_override_must_be_allowed_as_well() {
    let s = overrides_scenario().start().await;
    let (b, _sid) = s.signed_in("dr_lee").await;
    // The route allows GET and POST only: a POST that says DELETE is refused,
    // however the field is spelled, and the app never sees it.
    for (name, value) in [
        ("_method", "DELETE"),
        ("_method", "delete"),
        ("_METHOD", " put "),
        ("_method", "PATCH"),
    ] {
        let r = b
            .post("/patients/1001/chart", &[("note", "x"), (name, value)])
            .await;
        assert!(
            r.status() == 403 || r.status() == 400,
            "{name}={value}: {}",
            r.status()
        );
        assert!(
            r.headers().get("x-upstream-target").is_none(),
            "{name}={value} reached the app"
        );
    }
    // Not a method at all: refused, not guessed at.
    let r = b
        .post("/patients/1001/chart", &[("_method", "DE LETE")])
        .await;
    assert_eq!(r.status(), 400);
    // An override to a method the route allows passes, with the form as sent.
    let r = b
        .post(
            "/patients/1001/chart",
            &[("note", "x"), ("_method", "post")],
        )
        .await;
    assert!(
        r.headers().get("x-upstream-target").is_some(),
        "{}",
        r.status()
    );
    // On a route open to every method, the override passes.
    let r = b
        .post("/notes/7", &[("note", "x"), ("_method", "DELETE")])
        .await;
    assert!(
        r.headers().get("x-upstream-target").is_some(),
        "{}",
        r.status()
    );
}
