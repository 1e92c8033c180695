//! Brute force and replay: wrong authenticator codes lock the account (every way in), the
//! lock ends when its time is up, a code works once and an earlier one never, and a recovery
//! code works once. What reached the app is read
//! from the recording upstream and what happened from the audit trail.

use crate::common::*;
use std::time::Duration;

fn scenario() -> Scenario {
    with_login("lockout_after = 3\nlockout_time = \"4s\"")
}

/// The accounts and routes of these tests, with these `[login]` keys.
fn with_login(keys: &str) -> Scenario {
    Scenario::new()
        .toml(&format!("[login]\n{keys}\n[roles]\nclinician = {{}}\n"))
        .route("/patients/**", "allow_roles = [\"clinician\"]")
        .user("dr_lee", &["clinician"])
        .user("dr_ray", &["clinician"])
}

/// Waits for ward to read a change to the account files.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(700)).await;
}

/// The password step with `password` in `b`; returns the answer.
async fn attempt(b: &Browser, user: &str, password: &str) -> reqwest::Response {
    let form = b.get("/.ward/login").await.text().await.unwrap();
    b.post(
        "/.ward/login",
        &[
            ("csrf", &input_value(&form, "csrf")),
            ("return", "/patients/1"),
            ("username", user),
            ("password", password),
        ],
    )
    .await
}

/// The code step with `code` in `b` (after a password step); returns the answer.
async fn code_answer(b: &Browser, code: &str) -> reqwest::Response {
    let form = b.get("/.ward/mfa").await.text().await.unwrap();
    b.post(
        "/.ward/mfa",
        &[("csrf", &input_value(&form, "csrf")), ("code", code)],
    )
    .await
}

/// The officer unlocks `user`, as `ward user unlock` does.
async fn unlock(s: &Running, user: &str) {
    let store = ward::users::SecretStore::open(&s.ward.site.path("state")).unwrap();
    ward::users::Admin::new(&s.ward.site.path("config/users.toml"), store, "Test Clinic")
        .unlock(user)
        .unwrap();
    settle().await;
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

#[tokio::test(flavor = "multi_thread")]
async fn repeated_failures_lock_real_and_unknown_names_alike_and_the_officer_unlocks() {
    let s = with_login("lockout_after = 3\nlockout_time = \"10m\"")
        .start()
        .await;
    let b = s.browser();
    let mut real = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..4 {
        let r = attempt(&b, "dr_lee", "wrong password entirely").await;
        real.push((
            r.status().as_u16(),
            r.text().await.unwrap().contains("locked"),
        ));
        let r = attempt(&b, "nobody_here", "wrong password entirely").await;
        unknown.push((
            r.status().as_u16(),
            r.text().await.unwrap().contains("locked"),
        ));
    }
    // The same answers whether or not the account exists.
    assert_eq!(real, unknown);
    assert_eq!(real.last(), Some(&(429, true)));
    // Locked: even the right password is refused.
    assert_eq!(attempt(&b, "dr_lee", PW).await.status(), 429);
    s.up.assert_nothing("while locked");
    unlock(&s, "dr_lee").await;
    assert_eq!(s.sign_in(&b, "dr_lee").await, 303);
}

fn wrong_code(good: &str) -> String {
    if good == "000000" { "111111" } else { "000000" }.to_string()
}

/// Security review #20, high 1: wrong codes count on their own (a right
/// password does not clear them), a lock stops codes too, even in a second step
/// begun before it, and one account cannot hold many second steps open.
#[tokio::test(flavor = "multi_thread")]
async fn authenticator_codes_cannot_be_guessed_around_the_lockout() {
    let s = with_login("lockout_after = 3\nlockout_time = \"10m\"")
        .user("kim", &["clinician"])
        .start()
        .await;
    // A second step opened before the lock.
    let early = s.browser();
    assert_eq!(attempt(&early, "dr_lee", PW).await.status(), 303);

    // The attacker knows the password and guesses codes, signing in again
    // with the password between guesses (lockout_after = 3).
    let attacker = s.browser();
    let wrong = wrong_code(&s.code("dr_lee").await);
    assert_eq!(attempt(&attacker, "dr_lee", PW).await.status(), 303);
    assert_eq!(code_answer(&attacker, &wrong).await.status(), 401);
    assert_eq!(code_answer(&attacker, &wrong).await.status(), 401);
    assert_eq!(attempt(&attacker, "dr_lee", PW).await.status(), 303);
    let third = code_answer(&attacker, &wrong).await;
    assert_eq!(third.status(), 429);
    assert!(third.text().await.unwrap().contains("locked"));

    // Locked: the right code is refused in the early second step, and the
    // password step too.
    let good = s.code("dr_lee").await;
    let resp = code_answer(&early, &good).await;
    assert_eq!(resp.status(), 429, "a second step begun before the lock");
    assert_eq!(early.get("/patients/1").await.status(), 303);
    assert_eq!(attempt(&attacker, "dr_lee", PW).await.status(), 429);
    s.up.assert_nothing("while locked");

    // The officer unlocks; the person signs in.
    unlock(&s, "dr_lee").await;
    assert_eq!(s.sign_in(&s.browser(), "dr_lee").await, 303);

    // Second steps held open at once: only the newest three stand.
    let mut browsers = Vec::new();
    for _ in 0..5 {
        let b = s.browser();
        assert_eq!(attempt(&b, "kim", PW).await.status(), 303);
        browsers.push(b);
    }
    let mut open = Vec::new();
    for b in &browsers {
        open.push(b.get("/.ward/mfa").await.status().as_u16());
    }
    assert_eq!(open, [303, 303, 200, 200, 200]);
}

/// Security review #20, high 1: the per-address limit counts an IPv6 /64 as
/// one address, so rotating addresses inside it does not reset it.
#[tokio::test(flavor = "multi_thread")]
async fn the_address_limit_counts_an_ipv6_64_as_one() {
    // The test client is the trusted proxy; the address it forwards is the client's.
    let s = with_login("attempts_per_minute = 4")
        .server("trusted_proxies = [\"127.0.0.1/32\"]")
        .start()
        .await;
    let mut statuses = Vec::new();
    for i in 1..=6 {
        let b = s.browser();
        b.header("x-forwarded-for", &format!("2001:db8:7:7:{i:x}::{i:x}"));
        let r = attempt(&b, &format!("nobody{i}"), "wrong password entirely").await;
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 401, 429, 429]);
    // Another /64 is another address.
    let b = s.browser();
    b.header("x-forwarded-for", "2001:db8:7:8::1");
    let r = attempt(&b, "nobody9", "wrong password entirely").await;
    assert_eq!(r.status(), 401);
}

/// Security review #20, finding 5: failures of real and unknown names decay
/// after the same window, so that a few late tries cannot tell them apart.
#[tokio::test(flavor = "multi_thread")]
async fn old_failures_decay_alike_for_real_and_unknown_names() {
    let s = with_login("lockout_after = 3\nlockout_time = \"2s\"")
        .start()
        .await;
    let b = s.browser();
    let tries = |rounds: usize| {
        let b = &b;
        async move {
            let mut seen = Vec::new();
            for _ in 0..rounds {
                for name in ["dr_lee", "nobody_here"] {
                    let r = attempt(b, name, "wrong password entirely").await;
                    seen.push((name, r.status().as_u16()));
                }
            }
            seen
        }
    };
    assert_eq!(
        tries(2).await,
        [
            ("dr_lee", 401),
            ("nobody_here", 401),
            ("dr_lee", 401),
            ("nobody_here", 401)
        ]
    );
    // The window passes: both start afresh (the real one used to lock here).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        tries(2).await,
        [
            ("dr_lee", 401),
            ("nobody_here", 401),
            ("dr_lee", 401),
            ("nobody_here", 401)
        ]
    );
    // The third in the window locks both; the next try is refused as locked.
    assert_eq!(tries(1).await, [("dr_lee", 401), ("nobody_here", 401)]);
    assert_eq!(tries(1).await, [("dr_lee", 429), ("nobody_here", 429)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_replayed_and_missing_codes_are_refused() {
    let s = presets::clinic_scenario("")
        .user("dr_lee", &["clinician"])
        .start()
        .await;
    let secret = &s.secrets["dr_lee"];
    let b = s.browser();
    assert_eq!(presets::password_step(&b, "dr_lee", PW).await.status(), 303);
    // Password alone reaches nothing.
    assert_eq!(presets::status_of(&b, "/patients/1001/chart").await, 303);
    assert_eq!(presets::status_of(&b, "/logo.png").await, 200);
    // A wrong code.
    let now = unix_now();
    let good = ward::auth::totp::code_at(secret, now);
    let wrong = if good == "000000" {
        "111111".to_string()
    } else {
        "000000".to_string()
    };
    let resp = presets::code_step(&b, &wrong).await;
    assert_eq!(resp.status(), 401);
    assert!(resp.text().await.unwrap().contains("not right"));
    // The right code works once...
    assert_eq!(presets::code_step(&b, &good).await.status(), 303);
    assert_eq!(presets::status_of(&b, "/patients/1001/chart").await, 200);
    // ...and never again, even on another browser with the password.
    let other = s.browser();
    assert_eq!(
        presets::password_step(&other, "dr_lee", PW).await.status(),
        303
    );
    assert_eq!(presets::code_step(&other, &good).await.status(), 401);
    // An earlier step than the one used is refused too.
    assert_eq!(
        presets::code_step(&other, &ward::auth::totp::code_at(secret, now - 30))
            .await
            .status(),
        401
    );
    assert_eq!(
        presets::status_of(&other, "/patients/1001/chart").await,
        303
    );
}
