//! Settings read only when ward starts: a reload that changes one names it in the log and in
//! the audit trail's `policy-reloaded` record, so the officer knows a restart is owed; the
//! per-address sign-in limit (`attempts_per_minute`) is not one of them and applies at once.

use crate::common::*;
use std::time::Duration;

/// The password step with a wrong password in `b`; the answer's status.
async fn wrong_password(b: &Browser, name: &str) -> u16 {
    let form = b.get("/.ward/login").await.text().await.unwrap();
    b.post(
        "/.ward/login",
        &[
            ("csrf", &input_value(&form, "csrf")),
            ("return", "/"),
            ("username", name),
            ("password", "not it"),
        ],
    )
    .await
    .status()
    .as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_names_the_settings_that_wait_for_a_restart() {
    let s = Scenario::new()
        .toml("[login]\nattempts_per_minute = 100\n[roles]\nclinician = {}\n")
        .route("/patients/**", "allow_roles = [\"clinician\"]")
        .user("dr_lee", &["clinician"])
        .start()
        .await;
    let changed = s
        .policy
        .replace("attempts_per_minute = 100", "attempts_per_minute = 2")
        + "\n[audit]\nfsync_every = \"1s\"\n[sessions]\nstore = \"redis://127.0.0.1:9\"\n";
    s.ward.write_policy(&changed);
    let line = s
        .ward
        .proc
        .stderr
        .wait_for("[sessions] store changed", Duration::from_secs(10));
    assert!(line.contains("takes effect when ward restarts"), "{line}");
    s.ward
        .proc
        .stderr
        .wait_for("[audit] changed", Duration::from_secs(5));
    let record = s.assert_audit(&[("event", "policy-reloaded")]).await;
    let detail = record["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("not applied until ward restarts: [audit], [sessions] store"),
        "{detail}"
    );
    assert!(!detail.contains("attempts_per_minute"), "{detail}");
    assert!(
        !s.ward
            .logs()
            .join("\n")
            .contains("attempts_per_minute changed"),
        "the address limit applies at once"
    );

    // The new limit, two attempts a minute, is in force without a restart.
    let b = s.browser();
    assert_eq!(wrong_password(&b, "someone").await, 401);
    assert_eq!(wrong_password(&b, "someone-else").await, 401);
    assert_eq!(wrong_password(&b, "a-third").await, 429);
}
