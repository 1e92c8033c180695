//! Brute force and replay: wrong authenticator codes lock the account (every way in), the
//! lock ends when its time is up, and a recovery code works once. What reached the app is read
//! from the recording upstream and what happened from the audit trail.

mod common;

use common::*;
use std::time::Duration;

fn scenario() -> Scenario {
    Scenario::new()
        .toml(
            "[login]\nlockout_after = 3\nlockout_time = \"4s\"\n\
             [roles]\nclinician = {}\n",
        )
        .route("/patients/**", "allow_roles = [\"clinician\"]")
        .user("dr_lee", &["clinician"])
        .user("dr_ray", &["clinician"])
}

/// The password step in a fresh browser; returns it and the code form's token.
async fn password_step(s: &Running, user: &str) -> (Browser, u16, String) {
    let b = s.browser();
    let form = b.get("/.ward/login").await.text().await.unwrap();
    let r = b
        .post(
            "/.ward/login",
            &[
                ("csrf", &input_value(&form, "csrf")),
                ("return", "/patients/1"),
                ("username", user),
                ("password", PW),
            ],
        )
        .await;
    let status = r.status().as_u16();
    let page = b.get("/.ward/mfa").await.text().await.unwrap();
    let csrf = if page.contains("name=\"csrf\"") {
        input_value(&page, "csrf")
    } else {
        String::new()
    };
    (b, status, csrf)
}

/// Posts `field` = `value` to the code step; true when it signs in.
async fn code_step(b: &Browser, csrf: &str, field: &str, value: &str) -> bool {
    let r = b
        .post("/.ward/mfa", &[("csrf", csrf), (field, value)])
        .await;
    r.status() == 303
        && r.headers()["location"]
            .to_str()
            .is_ok_and(|l| !l.contains("/.ward/"))
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_codes_lock_every_way_in_until_the_lock_ends() {
    let s = scenario().start().await;
    // A second step begun before the lock...
    let (early, status, early_csrf) = password_step(&s, "dr_lee").await;
    assert_eq!(status, 303);
    let (b, status, csrf) = password_step(&s, "dr_lee").await;
    assert_eq!(status, 303);
    for wrong in ["000000", "111111", "222222"] {
        assert!(!code_step(&b, &csrf, "code", wrong).await);
    }
    assert_eq!(s.audit_where(&[("event", "mfa-failed")]).await.len(), 3);
    // ...is covered by it: the right code there does not open it.
    let code = s.code("dr_lee").await;
    assert!(
        !code_step(&early, &early_csrf, "code", &code).await,
        "a second step begun before the lock got through"
    );
    s.assert_audit(&[("user", "dr_lee"), ("event", "mfa-locked")])
        .await;

    // Locked: a fresh sign-in with the right password and the right code gets nowhere.
    let (b, _, csrf) = password_step(&s, "dr_lee").await;
    let code = s.code("dr_lee").await;
    if !csrf.is_empty() {
        assert!(
            !code_step(&b, &csrf, "code", &code).await,
            "the right code opened a lock"
        );
    }
    assert_eq!(b.get("/patients/1").await.status(), 303);
    s.assert_audit(&[("user", "dr_lee"), ("event", "login-locked")])
        .await;
    // Someone else is not locked out with them.
    let other = s.browser();
    assert_eq!(s.sign_in(&other, "dr_ray").await, 303);
    assert_eq!(other.get("/patients/7").await.status(), 200);
    assert!(s.up.saw("/patients/1").is_empty());

    // The lock ends after lockout_time (4 s); then the right password and code work again.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (b, status, csrf) = password_step(&s, "dr_lee").await;
    assert_eq!(status, 303);
    let code = s.code("dr_lee").await;
    assert!(code_step(&b, &csrf, "code", &code).await);
    assert_eq!(b.get("/patients/1").await.status(), 200);
    let seen = s.up.saw("/patients/1");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("x-ward-user"), Some("dr_lee"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recovery_code_works_once() {
    let s = scenario().start().await;
    let (codes, hashes) = ward::auth::codes::new_recovery_codes().unwrap();
    let store = ward::users::SecretStore::open(&s.ward.site.path("state")).unwrap();
    store
        .update(|x| x.users.get_mut("dr_lee").unwrap().recovery = hashes)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let (b, _, csrf) = password_step(&s, "dr_lee").await;
    assert!(code_step(&b, &csrf, "recovery", &codes[0]).await);
    assert_eq!(b.get("/patients/1").await.status(), 200);
    s.assert_audit(&[("user", "dr_lee"), ("event", "login-ok-recovery-code")])
        .await;

    // The same code again, in another browser (also written differently): refused.
    for spelling in [codes[0].clone(), codes[0].to_uppercase().replace('-', " ")] {
        let (thief, _, csrf) = password_step(&s, "dr_lee").await;
        assert!(
            !code_step(&thief, &csrf, "recovery", &spelling).await,
            "a used recovery code worked again"
        );
        assert_eq!(thief.get("/patients/2").await.status(), 303);
    }
    assert!(s.up.saw("/patients/2").is_empty());
    assert_eq!(s.audit_where(&[("event", "mfa-failed")]).await.len(), 2);
    // The control: an unused code still works.
    let (b, _, csrf) = password_step(&s, "dr_lee").await;
    assert!(code_step(&b, &csrf, "recovery", &codes[1]).await);
    assert_eq!(b.get("/patients/2").await.status(), 200);
    assert_eq!(s.up.saw("/patients/2").len(), 1);
}
