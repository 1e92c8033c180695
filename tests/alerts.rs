//! Alerts reach the officer's webhook: break-glass (page or command line), a
//! lockout, a sign-in from a second place.

mod common;

use common::*;
use http_body_util::BodyExt;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A real HTTP server on loopback that keeps every JSON body posted to it.
async fn receiver() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let got: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://127.0.0.1:{}/ward-alerts",
        listener.local_addr().unwrap().port()
    );
    let sink = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                break;
            };
            let sink = sink.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let sink = sink.clone();
                        async move {
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            if let Ok(v) = serde_json::from_slice(&body) {
                                sink.lock().unwrap().push(v);
                            }
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(
                                http_body_util::Full::new(bytes::Bytes::from_static(b"ok")),
                            ))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (url, got)
}

async fn wait_for(got: &Arc<Mutex<Vec<serde_json::Value>>>, event: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = got.lock().unwrap().iter().find(|v| v["event"] == event) {
            return v.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no {event} alert; got {:?}",
            got.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn sign_in(
    ward: &Ward,
    user: &str,
    pw: &str,
    secret: &[u8],
    offset: i64,
    ip: &str,
) -> (Browser, u16) {
    let b = Browser::new(ward);
    b.header("x-forwarded-for", ip);
    let status = sign_in_with(&b, user, pw, secret, offset).await;
    (b, status)
}

#[tokio::test(flavor = "multi_thread")]
async fn officer_alerts_reach_the_webhook() {
    let (url, got) = receiver().await;
    let ehr = Ehr::start();
    let policy = format!(
        "practice = \"Test Clinic\"\n{{server}}trusted_proxies = [\"127.0.0.1/32\"]\n\
         [alerts]\nwebhook = \"{url}\"\ndenials = 3\n\
         [login]\nlockout_after = 2\n\
         [sessions]\nmax_per_user = 3\n\
         [roles]\nclinician = {{}}\nemergency = {{}}\nauditor = {{}}\n\
         [break_glass]\nallowed_roles = [\"clinician\"]\nemergency_roles = [\"emergency\"]\n\
         [storage]\nusers = \"config/users.toml\"\nstate = \"state\"\n\
         [[apps]]\nname = \"ehr\"\nupstream = \"{}\"\n\
         [[routes]]\napp = \"ehr\"\npath = \"/**\"\nallow_roles = [\"clinician\"]\n\
         [[routes]]\napp = \"ehr\"\npath = \"/admin/**\"\nallow_roles = [\"auditor\"]\n",
        ehr.url()
    );
    let ward = Ward::start(&policy);
    let lee = enrolled_user(&ward.site, "dr_lee", &["clinician"], PW, None, None);
    let _kim = enrolled_user(&ward.site, "kim", &["clinician"], PW, None, None);
    tokio::time::sleep(Duration::from_millis(700)).await;

    // Signed in at the office, then from somewhere else at the same time.
    let (office, s) = sign_in(&ward, "dr_lee", PW, &lee, -30, "203.0.113.5").await;
    assert_eq!(s, 303);
    let (_home, s) = sign_in(&ward, "dr_lee", PW, &lee, 0, "198.51.100.20").await;
    assert_eq!(s, 303);
    let a = wait_for(&got, "two-places").await;
    assert_eq!(a["user"], "dr_lee");
    assert_eq!(a["practice"], "Test Clinic");
    let a = wait_for(&got, "new-network").await;
    assert!(a["detail"].as_str().unwrap().contains("198.51.100.20"));

    // A lockout.
    for _ in 0..2 {
        let _ = sign_in(
            &ward,
            "kim",
            "not the password at all",
            &[],
            0,
            "203.0.113.5",
        )
        .await;
    }
    assert_eq!(wait_for(&got, "locked").await["user"], "kim");

    // Break-glass from the command line.
    let out = Command::new(WARD)
        .current_dir(ward.site.dir.path())
        .args([
            "grant",
            "--config",
            "ward.toml",
            "break-glass",
            "--user",
            "dr_lee",
            "--reason",
            "code blue, chart locked",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a = wait_for(&got, "break-glass").await;
    assert_eq!(a["user"], "dr_lee");
    // The reason may name a patient: it stays in the audit trail, out of the alert.
    assert!(!a["detail"].as_str().unwrap().contains("code blue"));

    // Door after door: the alert names the route, not the path (which holds a patient's number).
    for _ in 0..3 {
        assert_eq!(
            office.get("/admin/patients/4471-22/export").await.status(),
            403
        );
    }
    let a = wait_for(&got, "refusals").await;
    let detail = a["detail"].as_str().unwrap();
    assert!(detail.contains("/admin/**"), "{detail}");
    assert!(!detail.contains("4471"), "{detail}");
}
