//! End to end: a real ward over real TLS in front of a real sample EHR.

use crate::common::*;
use futures_util::{SinkExt, StreamExt};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn serves_over_http1_and_http2_with_hsts_and_request_ids() {
    let ehr = Ehr::start();
    let ward = Ward::start(&open_policy(&ehr.url()));
    for h2 in [false, true] {
        let resp = ward.client(h2).get(ward.url("/")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let want = if h2 {
            reqwest::Version::HTTP_2
        } else {
            reqwest::Version::HTTP_11
        };
        assert_eq!(resp.version(), want);
        assert_eq!(
            resp.headers()["strict-transport-security"],
            "max-age=31536000; includeSubDomains"
        );
        let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
        assert_eq!(id.len(), 16);
        assert!(resp.text().await.unwrap().contains("Margaret Ellison"));
        // One log line per request, carrying the id.
        let line = ward.proc.stderr.wait_for(&id, Duration::from_secs(5));
        assert_eq!(json_field(&line, "status"), "200");
        // The path stays out of the journal (it may name a patient); the route line is there.
        assert_eq!(json_field(&line, "path"), "null", "{line}");
        assert_ne!(json_field(&line, "route_line"), "null", "{line}");
    }
    // Refusals carry HSTS too.
    let resp = ward
        .client(true)
        .get(ward.url("/.ward/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert!(resp.headers().contains_key("strict-transport-security"));
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_and_methods_reach_the_upstream_as_sent() {
    for tls in [false, true] {
        let s = Scenario::new()
            .https(tls)
            .route("/**", "allow = \"public\"")
            .start()
            .await;
        let (ward, up) = (&s.ward, &s.up);
        for h2 in [false, true] {
            up.clear();
            let c = ward.client(h2);
            let r = c
                .post(ward.url("/notes?patient=1001"))
                .body(vec![b'x'; 70_000])
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let r = c.delete(ward.url("/notes/7")).send().await.unwrap();
            assert_eq!(r.status(), 200);
            let seen = up.wait_for(2).await;
            let got: Vec<_> = seen
                .iter()
                .map(|s| (s.method.as_str(), s.target.as_str(), s.body_len, s.tls))
                .collect();
            assert_eq!(
                got,
                vec![
                    ("POST", "/notes?patient=1001", 70_000, tls),
                    ("DELETE", "/notes/7", 0, tls)
                ],
                "h2={h2}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn legacy_redirects_and_cookies_are_rewritten_to_the_public_address() {
    let ehr = Ehr::start();
    let ward = Ward::start(&open_policy(&ehr.url()));
    let resp = ward
        .client(false)
        .get(ward.url("/legacy/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    let h = resp.headers();
    let public = format!("https://localhost:{}", ward.port());
    assert_eq!(h["location"], format!("{public}/"));
    assert_eq!(h["content-location"], format!("{public}/legacy/login"));
    assert_eq!(h["refresh"], format!("5; url={public}/"));
    assert_eq!(h["set-cookie"], "LEGACYSESSION=s3ss10n; Path=/; Secure");
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_echoes_through_ward() {
    let ehr = Ehr::start();
    let ward = Ward::start(&open_policy(&ehr.url()));
    let tls = raw_tls(&ward, &[b"http/1.1"]).await;
    let url = format!("wss://localhost:{}/ws/notifications", ward.port());
    let (mut ws, resp) = tokio_tungstenite::client_async(url, tls).await.unwrap();
    assert_eq!(resp.status(), 101);
    let first = ws.next().await.unwrap().unwrap();
    assert_eq!(first.to_text().unwrap(), "notifications: connected");
    for text in ["hi", "second message"] {
        ws.send(tokio_tungstenite::tungstenite::Message::text(text))
            .await
            .unwrap();
        let echo = ws.next().await.unwrap().unwrap();
        assert_eq!(echo.to_text().unwrap(), format!("echo: {text}"));
    }
    ws.close(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gigabyte_streams_through_with_flat_memory() {
    let ehr = Ehr::start();
    let ward = Ward::start(&open_policy(&ehr.url()));
    let size: u64 = 1 << 30;
    let mut resp = ward
        .client(false)
        .get(ward.url(&format!("/stream?bytes={size}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut got = 0u64;
    let mut max_rss = 0u64;
    let mut last_sample = Instant::now();
    while let Some(chunk) = resp.chunk().await.unwrap() {
        got += chunk.len() as u64;
        if last_sample.elapsed() > Duration::from_millis(100) {
            max_rss = max_rss.max(ward.proc.rss_kib());
            last_sample = Instant::now();
        }
    }
    max_rss = max_rss.max(ward.proc.rss_kib());
    assert_eq!(got, size);
    assert!(max_rss > 0, "could not read ward's memory use");
    assert!(max_rss < 100 * 1024, "ward's RSS reached {max_rss} KiB");
    eprintln!("1 GiB download: ward's peak RSS {max_rss} KiB");

    // And uploads stream the other way.
    let upload: u64 = 256 << 20;
    let chunks = futures_util::stream::iter(
        (0..upload / 65536).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'x'; 65536]))),
    );
    let resp = ward
        .client(true)
        .post(ward.url("/echo/upload"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let json: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(json["body_len"].as_u64(), Some(upload));
    assert!(ward.proc.rss_kib() < 100 * 1024);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_upstream_gives_502_with_a_request_id_and_other_apps_keep_working() {
    let ehr = Ehr::start();
    let mut billing = Ehr::start();
    let policy = format!(
        "practice = \"Test Clinic\"\n{{server}}\n\
         [[apps]]\nname = \"ehr\"\nupstream = \"{}\"\nhost = \"ehr.localhost\"\n\
         [[apps]]\nname = \"billing\"\nupstream = \"{}\"\nhost = \"billing.localhost\"\n\
         [[routes]]\napp = \"ehr\"\npath = \"/**\"\nallow = \"public\"\n\
         [[routes]]\napp = \"billing\"\npath = \"/**\"\nallow = \"public\"\n",
        ehr.url(),
        billing.url()
    );
    let ward = Ward::start(&policy);
    let c = ward.client(true);
    assert_eq!(
        c.get(ward.url_for("billing.localhost", "/billing"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // A host no app answers for matches no route.
    assert_eq!(
        c.get(ward.url("/billing")).send().await.unwrap().status(),
        403
    );
    billing.proc.kill();
    let resp = c
        .get(ward.url_for("billing.localhost", "/billing"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(resp.text().await.unwrap().contains(&id));
    let line = ward.proc.stderr.wait_for_all(
        &[
            &format!("\"request_id\":\"{id}\""),
            "\"message\":\"request\"",
        ],
        Duration::from_secs(5),
    );
    assert!(line.contains("\"status\":502"), "{line}");
    for _ in 0..5 {
        assert_eq!(
            c.get(ward.url_for("ehr.localhost", "/"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_upstream_gives_504() {
    let ehr = Ehr::start();
    let policy =
        open_policy(&ehr.url()).replace("upstream =", "response_timeout = \"1s\"\nupstream =");
    let ward = Ward::start(&policy);
    let started = Instant::now();
    let resp = ward
        .client(false)
        .get(ward.url("/slow?ms=5000"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 504);
    assert!(started.elapsed() < Duration::from_secs(4));
    assert!(resp.headers().contains_key("x-request-id"));
    // The next request is fine.
    assert_eq!(
        ward.client(false)
            .get(ward.url("/slow?ms=10"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_only_redirects() {
    let ehr = Ehr::start();
    let policy = open_policy(&ehr.url()).replace(
        "{server}",
        "{server}redirect_http = \"127.0.0.1:0\"\npublic_port = 8443\n",
    );
    let ward = Ward::start(&policy);
    let line = ward
        .proc
        .stderr
        .wait_for("redirecting plain HTTP", Duration::from_secs(5));
    let addr: std::net::SocketAddr = json_field(&line, "addr").parse().unwrap();
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = c
        .get(format!("http://{addr}/debug/headers?x=1"))
        .header("Host", "ehr.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 308);
    // A name the certificate covers; others go to public_url (tests/attack_csrf_redirects.rs).
    assert_eq!(
        resp.headers()["location"],
        "https://ehr.localhost:8443/debug/headers?x=1"
    );
    assert!(!resp.headers().contains_key("x-upstream-target"));
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /%2e%2e/x HTTP/1.1\r\nHost: ehr.example\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    tcp.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
}

/// Over HTTP/2 an answer of any size arrives whole, several at once on one connection:
/// the small ones kept for the end of the connection's turn (`server::batch`), the large
/// ones written through, and one read slowly, so ward meets a full socket on the way.
#[tokio::test(flavor = "multi_thread")]
async fn http2_answers_of_every_size_arrive_whole() {
    let ehr = Ehr::start();
    let ward = Ward::start(&open_policy(&ehr.url()));
    let client = ward.client(true);
    let sizes: [u64; 9] = [
        0, 1, 300, 3_000, 16_383, 16_384, 70_000, 3_000_000, 8_000_000,
    ];
    let fetches = sizes.iter().map(|&n| {
        let client = client.clone();
        let url = ward.url(&format!(
            "/files/f?type=application%2Foctet-stream&bytes={n}"
        ));
        async move {
            let resp = client.get(url).send().await.unwrap();
            assert_eq!(resp.version(), reqwest::Version::HTTP_2);
            assert_eq!(resp.status(), 200);
            let mut body = resp.bytes_stream();
            let (mut len, mut wrong) = (0u64, 0u64);
            while let Some(chunk) = body.next().await {
                let chunk = chunk.unwrap();
                len += chunk.len() as u64;
                wrong += chunk.iter().filter(|b| **b != b'a').count() as u64;
                if n == 8_000_000 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            (len, wrong)
        }
    });
    let all = futures_util::future::join_all(fetches);
    let got = tokio::time::timeout(Duration::from_secs(60), all)
        .await
        .expect("an answer over HTTP/2 never ended");
    for (n, (len, wrong)) in sizes.iter().zip(got) {
        assert_eq!((len, wrong), (*n, 0), "{n} bytes asked for");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn header_limits_and_slow_clients() {
    let ehr = Ehr::start();
    let policy = open_policy(&ehr.url()).replace(
        "{server}",
        "{server}max_headers = 20\nmax_header_bytes = 8192\nheader_read_timeout = \"2s\"\n",
    );
    let ward = Ward::start(&policy);
    let port = ward.port();
    // Too many headers.
    let many: String = (0..40).map(|i| format!("X-H{i}: v\r\n")).collect();
    let reply = raw_exchange(
        &ward,
        format!("GET / HTTP/1.1\r\nHost: localhost:{port}\r\n{many}\r\n").as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
    // The default, 100 (hyper's own limit, left to it): 100 header fields reach ward's
    // pipeline (its answer, whatever the app makes of them, carries a request id); 101 are
    // refused by the parser before it.
    let plain = Ward::start(&open_policy(&ehr.url()));
    for (fields, parsed) in [(100, true), (101, false)] {
        // Host and Connection, and the rest made up.
        let many: String = (2..fields).map(|i| format!("X-H{i}: v\r\n")).collect();
        let head = format!(
            "GET / HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n{many}\r\n",
            plain.port()
        );
        let reply = raw_exchange(&plain, head.as_bytes(), Duration::from_secs(5)).await;
        let reply = reply.to_ascii_lowercase();
        assert_eq!(
            reply.contains("x-request-id:"),
            parsed,
            "{fields} fields: {reply}"
        );
        if !parsed {
            assert!(reply.starts_with("http/1.1 431"), "{reply}");
        }
    }
    // A header block larger than the limit.
    let big = "a".repeat(20_000);
    let reply = raw_exchange(
        &ward,
        format!("GET / HTTP/1.1\r\nHost: localhost:{port}\r\nX-Big: {big}\r\n\r\n").as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
    // Slowloris: headers that never finish are cut off after header_read_timeout.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = raw_tls(&ward, &[b"http/1.1"]).await;
    let started = Instant::now();
    s.write_all(format!("GET / HTTP/1.1\r\nHost: localhost:{port}\r\n").as_bytes())
        .await
        .unwrap();
    let trickle = async {
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if s.write_all(b"X-A: b\r\n").await.is_err() {
                break;
            }
        }
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf).await;
    };
    tokio::time::timeout(Duration::from_secs(8), trickle)
        .await
        .expect("slow client was not cut off");
    assert!(started.elapsed() < Duration::from_secs(6));
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_over_the_cap_wait_for_a_free_slot() {
    let ehr = Ehr::start();
    let policy = open_policy(&ehr.url()).replace("{server}", "{server}max_connections = 2\n");
    let ward = Ward::start(&policy);
    let a = raw_tls(&ward, &[b"http/1.1"]).await;
    let b = raw_tls(&ward, &[b"http/1.1"]).await;
    // The third is not served while two are open...
    let third = tokio::time::timeout(
        Duration::from_millis(1500),
        ward.client(false).get(ward.url("/")).send(),
    )
    .await;
    assert!(
        third.is_err(),
        "a third connection was served beyond max_connections = 2"
    );
    // ...and is once one closes.
    drop(a);
    let resp = tokio::time::timeout(
        Duration::from_secs(10),
        ward.client(false).get(ward.url("/")).send(),
    )
    .await;
    assert_eq!(
        resp.expect("served after a slot freed").unwrap().status(),
        200
    );
    drop(b);
}

#[tokio::test(flavor = "multi_thread")]
async fn open_websocket_tunnels_count_against_max_connections() {
    let ehr = Ehr::start();
    let policy = open_policy(&ehr.url()).replace("{server}", "{server}max_connections = 2\n");
    let ward = Ward::start(&policy);
    let url = format!("wss://localhost:{}/ws/notifications", ward.port());
    let mut tunnels = Vec::new();
    for _ in 0..2 {
        let tls = raw_tls(&ward, &[b"http/1.1"]).await;
        let (mut ws, resp) = tokio_tungstenite::client_async(url.clone(), tls)
            .await
            .unwrap();
        assert_eq!(resp.status(), 101);
        assert_eq!(
            ws.next().await.unwrap().unwrap().to_text().unwrap(),
            "notifications: connected"
        );
        tunnels.push(ws);
    }
    // Two tunnels are open: the upgraded connections are gone, the tunnels are not.
    let third = tokio::time::timeout(
        Duration::from_millis(1500),
        ward.client(false).get(ward.url("/")).send(),
    )
    .await;
    assert!(
        third.is_err(),
        "a request was served while two tunnels held both of max_connections = 2"
    );
    let mut first = tunnels.remove(0);
    first.close(None).await.unwrap();
    drop(first);
    let resp = tokio::time::timeout(
        Duration::from_secs(10),
        ward.client(false).get(ward.url("/")).send(),
    )
    .await;
    assert_eq!(
        resp.expect("served after a tunnel closed")
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_keepalive_connections_are_closed() {
    let ehr = Ehr::start();
    let policy =
        open_policy(&ehr.url()).replace("{server}", "{server}keepalive_timeout = \"1s\"\n");
    let ward = Ward::start(&policy);
    use tokio::io::AsyncReadExt;
    let mut s = raw_tls(&ward, &[b"h2"]).await;
    let mut buf = vec![0u8; 4096];
    let started = Instant::now();
    // An h2 connection that never sends anything is closed by the idle watchdog.
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "idle connection stayed open");
    assert!(started.elapsed() >= Duration::from_millis(900));
    // A request waiting on a slow upstream is not "idle", on either protocol.
    for h2 in [false, true] {
        let resp = ward
            .client(h2)
            .get(ward.url("/slow?ms=3000"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.unwrap(), "slow done");
    }
}
