//! End to end: what an outside tester got past ward (issue 16, items 1-8), each
//! sent over real TLS to a real ward in front of the sample EHR, which answers
//! every request it receives with `x-upstream-target` (so a refusal can be
//! told from a forwarded request) and echoes what it received under `/echo/`.

mod common;

use common::*;
use std::time::Duration;

const PW: &str = "maple orbit candle harbor 42";
const PUBLIC: &str = "clinic.example";

/// `/billing/**` is for officers only; the vendor may read but not change
/// `/echo/settings/**`; `/legacy/**` is public; `extra` goes under `[sessions]`.
fn policy(upstream: &str, sessions: &str) -> String {
    format!(
        "practice = \"Test Clinic\"\n{{server}}public_url = \"https://{PUBLIC}\"\npublic_port = 8443\n\
         redirect_http = \"127.0.0.1:0\"\n\
         [sessions]\n{sessions}\n\
         [roles]\nvendor_biller = {{}}\nofficer = {{}}\n\
         [storage]\nusers = \"config/users.toml\"\nstate = \"state\"\n\
         [[apps]]\nname = \"ehr\"\nupstream = \"{upstream}\"\n\
         [[routes]]\napp = \"ehr\"\npath = \"/**\"\nallow_roles = [\"vendor_biller\", \"officer\"]\n\
         [[routes]]\napp = \"ehr\"\npath = \"/billing/**\"\nallow_roles = [\"officer\"]\n\
         [[routes]]\napp = \"ehr\"\npath = \"/echo/settings/**\"\nallow_roles = [\"vendor_biller\", \"officer\"]\nno_body_for = [\"vendor_biller\"]\n\
         [[routes]]\napp = \"ehr\"\npath = \"/legacy/**\"\nallow = \"public\"\n"
    )
}

/// A ward with a signed-in vendor; returns it, the browser and the session cookie.
async fn start(ehr: &Ehr, sessions: &str) -> (Ward, Browser, String) {
    let site = Site::new();
    let secret = enrolled_user(
        &site,
        "vic",
        &["vendor_biller"],
        PW,
        Some("Acme Billing"),
        Some("2099-12-31"),
    );
    let config = site.path("ward.toml");
    std::fs::write(
        &config,
        policy(&ehr.url(), sessions).replace("{server}", &server_section(&site)),
    )
    .unwrap();
    let ward = Ward::start_in(site, config);
    let b = Browser::new(&ward);
    assert_eq!(sign_in_with(&b, "vic", PW, &secret, 0).await, 303);
    let sid = b.cookie("__Host-ward-session").expect("session cookie");
    (ward, b, sid)
}

/// A raw HTTP/1.1 exchange: `{host}` and `{sid}` filled in; returns status and the reply.
async fn raw(ward: &Ward, sid: &str, text: &str) -> (u16, String) {
    let text = text
        .replace("{host}", &format!("localhost:{}", ward.port()))
        .replace("{sid}", sid);
    let reply = raw_exchange(ward, text.as_bytes(), Duration::from_secs(5)).await;
    let status = reply
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, reply)
}

/// The header names the upstream echoed, lower case, from a raw reply.
fn echoed_names(reply: &str) -> Vec<String> {
    let body = &reply[reply.find("\r\n\r\n").expect("a head") + 4..];
    let start = body.find('{').expect("a JSON echo");
    let end = body.rfind('}').expect("a JSON echo");
    let json: serde_json::Value = serde_json::from_str(&body[start..=end]).unwrap();
    seen_headers(&json)
        .into_iter()
        .map(|(k, _)| k.to_ascii_lowercase())
        .collect()
}

fn reached_upstream(reply: &str) -> bool {
    reply.to_ascii_lowercase().contains("x-upstream-target")
}

const SESSION: &str = "Host: {host}\r\nCookie: __Host-ward-session={sid}\r\n";

/// A body sent as a stream, so the HTTP/2 client gives no `content-length`
/// and sends the bytes as DATA frames after the headers.
fn streamed(text: &'static str) -> reqwest::Body {
    let chunks: Vec<Result<&'static str, std::io::Error>> = vec![Ok(text)];
    reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))
}

#[tokio::test(flavor = "multi_thread")]
async fn item1_http2_bodies_are_seen_without_length_headers() {
    let ehr = Ehr::start();
    let (ward, _b, sid) = start(&ehr, "").await;
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

#[tokio::test(flavor = "multi_thread")]
async fn item2_unicode_look_alikes_of_denied_paths_are_refused() {
    let ehr = Ehr::start();
    let (ward, _b, sid) = start(&ehr, "").await;

    // Control: the session reaches the app, and /billing is the officer's.
    let (status, reply) = raw(
        &ward,
        &sid,
        &format!("GET /echo/a HTTP/1.1\r\n{SESSION}Connection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let (status, _) = raw(
        &ward,
        &sid,
        &format!("GET /billing/x HTTP/1.1\r\n{SESSION}Connection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 403);

    // 2. Unicode look-alikes of /billing: refused, never passed on.
    for path in [
        "/%EF%BD%82illing/x",
        "/%F0%9D%90%9Billing/x",
        "/%E1%B5%87illing/x",
        "/b%C4%ABlling/x",
        "/bil%C2%ADling/x",
        "/bil%E2%80%8Bling/x",
        "/b%CC%B2illing/x",
    ] {
        let (status, reply) = raw(
            &ward,
            &sid,
            &format!("GET {path} HTTP/1.1\r\n{SESSION}Connection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(status, 400, "{path}: {reply}");
        assert!(!reached_upstream(&reply), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn items3_and_4_underscore_spellings_and_trusted_address_headers_never_reach_the_app() {
    let ehr = Ehr::start();
    let (ward, _b, sid) = start(&ehr, "").await;
    let (status, reply) = raw(
        &ward,
        &sid,
        &format!(
            "POST /echo/a HTTP/1.1\r\n{SESSION}Content-Length: 5\r\nContent_Length: 0\r\n\
             Transfer_Encoding: chunked\r\nX-Original-URI: /billing/x\r\nX-Client-IP: 10.0.0.1\r\n\
             True-Client-IP: 10.0.0.1\r\nX_Custom: 1\r\nConnection: close\r\n\r\nhello"
        ),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let names = echoed_names(&reply);
    for bad in ["x-original-uri", "x-client-ip", "true-client-ip"] {
        assert!(!names.iter().any(|n| n == bad), "{bad} reached the app");
    }
    assert!(
        !names.iter().any(|n| n.contains('_')),
        "underscore names reached the app: {names:?}"
    );
    assert!(names.iter().any(|n| n == "content-length"));
}

#[tokio::test(flavor = "multi_thread")]
async fn item5_content_length_beside_transfer_encoding_is_refused() {
    let ehr = Ehr::start();
    let (ward, _b, sid) = start(&ehr, "").await;
    // In either order: 400, nothing upstream.
    for head in [
        "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
    ] {
        let (status, reply) = raw(
            &ward,
            &sid,
            &format!("POST /echo/a HTTP/1.1\r\n{SESSION}{head}Connection: close\r\n\r\n0\r\n\r\n"),
        )
        .await;
        assert_eq!(status, 400, "{head}: {reply}");
        assert!(!reached_upstream(&reply), "{head}");
    }
    // A chunked body alone still goes through, after a pipelined request with a body.
    let (status, reply) = raw(
        &ward,
        &sid,
        &format!(
            "POST /echo/a HTTP/1.1\r\n{SESSION}Content-Length: 5\r\n\r\nhelloPOST /echo/b HTTP/1.1\r\n{SESSION}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        ),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply.matches("HTTP/1.1 200").count(), 2, "{reply}");
}

#[tokio::test(flavor = "multi_thread")]
async fn item6_an_upgrade_naming_more_than_websocket_is_not_passed_on() {
    let ehr = Ehr::start();
    let (ward, _b, sid) = start(&ehr, "").await;
    let (status, reply) = raw(
        &ward,
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

#[tokio::test(flavor = "multi_thread")]
async fn item7_redirects_name_configured_hosts_only() {
    let ehr = Ehr::start();
    let (ward, _b, sid) = start(&ehr, "").await;
    let port = ward.port();
    // A host the certificate names is kept; any other becomes the public address.
    for (host, want) in [
        (
            format!("localhost:{port}"),
            format!("https://localhost:{port}/"),
        ),
        (
            format!("ehr.localhost:{port}"),
            format!("https://ehr.localhost:{port}/"),
        ),
        ("evil.example".to_string(), format!("https://{PUBLIC}/")),
        (format!("evil.example:{port}"), format!("https://{PUBLIC}/")),
    ] {
        let (status, reply) = raw(
            &ward,
            &sid,
            &format!("GET /legacy/login HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(status, 302, "{host}: {reply}");
        let location = reply
            .lines()
            .find_map(|l| l.strip_prefix("location: "))
            .unwrap_or_default();
        assert_eq!(location, want, "{host}");
    }
    // Nor does the app hear of the client's host.
    let (_, reply) = raw(
        &ward,
        &sid,
        "GET /echo/a HTTP/1.1\r\nHost: evil.example\r\nCookie: __Host-ward-session={sid}\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(!reply.contains("evil.example"), "{reply}");
    assert!(reply.contains(PUBLIC), "{reply}");

    // The plain-HTTP listener does the same.
    let line = ward
        .proc
        .stderr
        .wait_for("redirecting plain HTTP", Duration::from_secs(5));
    let addr: std::net::SocketAddr = json_field(&line, "addr").parse().unwrap();
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for (host, want) in [
        ("evil.example", format!("https://{PUBLIC}/x?y=1")),
        (
            "ehr.localhost",
            "https://ehr.localhost:8443/x?y=1".to_string(),
        ),
        (PUBLIC, format!("https://{PUBLIC}:8443/x?y=1")),
    ] {
        let resp = c
            .get(format!("http://{addr}/x?y=1"))
            .header("host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 308, "{host}");
        assert_eq!(resp.headers()["location"], want.as_str(), "{host}");
    }
}

/// GET `/echo/a` with the session from `local` (a loopback address of its own).
async fn from_address(ward: &Ward, sid: &str, local: &str) -> u16 {
    let client = client_from(ward, local.parse().unwrap());
    client
        .get(ward.url("/echo/a"))
        .header("cookie", format!("__Host-ward-session={sid}"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn item8_sessions_can_be_bound_to_the_sign_in_address_or_network() {
    let ehr = Ehr::start();
    // The default: a session works from any address.
    let (ward, _b, sid) = start(&ehr, "").await;
    assert_eq!(from_address(&ward, &sid, "127.0.0.1").await, 200);
    assert_eq!(from_address(&ward, &sid, "127.0.9.9").await, 200);
    drop(ward);

    let (ward, _b, sid) = start(&ehr, "bind_to = \"address\"").await;
    assert_eq!(from_address(&ward, &sid, "127.0.0.1").await, 200);
    assert_eq!(from_address(&ward, &sid, "127.0.0.2").await, 303);
    // The owner keeps the session.
    assert_eq!(from_address(&ward, &sid, "127.0.0.1").await, 200);
    assert!(
        ward.logs()
            .iter()
            .any(|l| l.contains("away from where it was signed in")),
        "not logged"
    );
    drop(ward);

    let (ward, _b, sid) = start(&ehr, "bind_to = \"network\"").await;
    assert_eq!(from_address(&ward, &sid, "127.0.0.2").await, 200);
    assert_eq!(from_address(&ward, &sid, "127.0.1.2").await, 303);
    drop(ward);

    // A value ward does not know stops the policy from loading.
    let site = Site::new();
    let config = site.path("ward.toml");
    std::fs::write(
        &config,
        policy(&ehr.url(), "bind_to = \"cookie\"").replace("{server}", &server_section(&site)),
    )
    .unwrap();
    let out = std::process::Command::new(WARD)
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("bind_to must be")
            || String::from_utf8_lossy(&out.stderr).contains("bind_to must be")
    );
}
