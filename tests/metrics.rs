//! Prometheus metrics on their own listener: the counters move as requests are made, and
//! no person, path or session ever shows in them.

use crate::common::*;
use std::time::{Duration, Instant};

fn scenario() -> Scenario {
    Scenario::new()
        .toml(
            "[metrics]\nlisten = \"127.0.0.1:0\"\n\
             [login]\nlockout_after = 2\n\
             [roles]\nclinician = {}\n",
        )
        .route("/patients/**", "allow_roles = [\"clinician\"]")
        .user("dr_lee", &["clinician"])
        .user("bo_intruded", &["clinician"])
}

/// The metrics listener's address, from ward's log.
fn metrics_addr(s: &Running) -> String {
    let line = s
        .ward
        .proc
        .stderr
        .wait_for("serving metrics", Duration::from_secs(5));
    json_field(&line, "addr")
}

async fn scrape(addr: &str) -> String {
    let r = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let kind = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    r.text().await.unwrap()
}

/// The value of the sample whose line starts with `name{` and holds every label given
/// (0 when there is none yet).
fn sample(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| labels.iter().all(|lab| l.contains(lab)))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

async fn wait_for_sample(addr: &str, name: &str, labels: &[&str], want: f64) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = scrape(addr).await;
        if sample(&text, name, labels) == want {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{name}{labels:?} never became {want}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn counters_move_as_requests_are_made() {
    let s = scenario().start().await;
    let addr = metrics_addr(&s);
    let allowed = ["app=\"ehr\"", "decision=\"allow\""];
    let before = scrape(&addr).await;
    assert_eq!(sample(&before, "ward_requests_total", &allowed), 0.0);
    assert_eq!(sample(&before, "ward_live_sessions", &[]), 0.0);
    assert_eq!(sample(&before, "ward_policy_stale", &[]), 0.0);
    assert_eq!(sample(&before, "ward_session_store_up", &[]), 1.0);

    let b = s.browser();
    assert_eq!(s.sign_in(&b, "dr_lee").await, 303);
    for n in 1..=3 {
        assert_eq!(b.get(&format!("/patients/{n}")).await.status(), 200);
    }
    // Not signed in: sent to sign in, counted as such.
    let stranger = s.browser();
    assert_eq!(stranger.get("/patients/9").await.status(), 303);

    let text = scrape(&addr).await;
    assert_eq!(
        sample(&text, "ward_requests_total", &allowed),
        3.0,
        "{text}"
    );
    assert!(sample(&text, "ward_requests_total", &["decision=\"login\""]) >= 1.0);
    assert_eq!(
        sample(
            &text,
            "ward_request_duration_seconds_count",
            &["app=\"ehr\""]
        ),
        3.0
    );
    assert!(sample(&text, "ward_audit_write_seconds_count", &[]) >= 4.0);
    assert_eq!(
        sample(&text, "ward_sign_in_events_total", &["event=\"login-ok\""]),
        1.0
    );
    assert_eq!(sample(&text, "ward_live_sessions", &[]), 1.0);

    // Wrong passwords: failures counted, and the account locked after two.
    for _ in 0..2 {
        let other = s.browser();
        let code = s.code("bo_intruded").await;
        sign_in_with_code(&other, "bo_intruded", "not the password", &code).await;
    }
    let text = wait_for_sample(&addr, "ward_locked_accounts", &[], 1.0).await;
    assert_eq!(
        sample(
            &text,
            "ward_sign_in_events_total",
            &["event=\"login-failed\""]
        ),
        2.0,
        "{text}"
    );

    // A broken policy file: the old one stays in force, and the metrics say so.
    std::fs::write(&s.ward.config, "practice = \n").unwrap();
    wait_for_sample(&addr, "ward_policy_stale", &[], 1.0).await;

    // Labels name apps, routes and decisions, never a person, a path or a session.
    let seen = s.up.saw("/patients/1");
    let session = seen[0].header("x-ward-session").unwrap();
    let text = scrape(&addr).await;
    for secret in ["dr_lee", "bo_intruded", "/patients", session, "127.0.0.1"] {
        assert!(!text.contains(secret), "{secret} in the metrics:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_are_only_on_their_own_listener() {
    let s = scenario().start().await;
    let addr = metrics_addr(&s);
    // The proxy's listener does not answer /metrics itself: it is a path like any other.
    let r = s.browser().get("/metrics").await;
    assert_ne!(r.status(), 200);
    assert!(!r.text().await.unwrap().contains("ward_requests_total"));
    // The metrics listener answers nothing else.
    let r = reqwest::get(format!("http://{addr}/")).await.unwrap();
    assert_eq!(r.status(), 404);
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Without [metrics] there is no listener.
    let plain = Scenario::new()
        .route("/**", "allow = \"public\"")
        .start()
        .await;
    assert_eq!(plain.browser().get("/x").await.status(), 200);
    assert!(
        !plain
            .ward
            .logs()
            .iter()
            .any(|l| l.contains("serving metrics")),
        "a metrics listener without [metrics]"
    );
}
