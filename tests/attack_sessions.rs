//! Attacks on sessions: a planted or stolen session id, a session outliving its role's idle
//! limit, and a session or link outliving a password or MFA reset. What reached the app is
//! read from the recording upstream and what happened from the audit trail.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

const COOKIE: &str = "__Host-ward-session";

fn scenario() -> Scenario {
    Scenario::new()
        .own_host()
        .toml(
            "[sessions]\nidle_timeout = \"15m\"\n\
             [roles]\nclinician = {}\nbiller = {}\nfront_desk = { idle_timeout = \"3s\" }\n",
        )
        .route(
            "/patients/**",
            "allow_roles = [\"clinician\", \"front_desk\"]",
        )
        .route("/billing/**", "allow_roles = [\"biller\"]")
        .user("dr_lee", &["clinician"])
        .user("bo", &["biller"])
        .user("fran", &["front_desk"])
}

/// A browser on the app host holding only `cookie` as its session (a stolen or planted id).
fn thief(s: &Running, cookie: &str) -> Browser {
    let t = s.browser();
    t.set_cookie(COOKIE, cookie);
    t
}

/// Whether `b` gets through to the app at `path`; checked against the upstream's record.
async fn reaches(s: &Running, b: &Browser, path: &str) -> bool {
    let before = s.up.saw(path).len();
    let r = b.get(path).await;
    let arrived = s.up.saw(path).len() > before;
    assert_eq!(r.status() == 200, arrived, "{path}: {}", r.status());
    arrived
}

#[tokio::test(flavor = "multi_thread")]
async fn the_session_id_changes_at_each_step_and_old_ones_are_worthless() {
    let s = scenario().start().await;
    let ward_page = |p: &str| s.ward.url_for(WARD_HOST, p);
    let b = s.browser();
    // An attacker plants an id on ward's host before the person signs in.
    let planted = "a".repeat(43);
    b.set_cookie_at(&ward_page("/"), COOKIE, &planted);
    let form = b
        .get_following(
            &s.ward
                .url_for("localhost", "/.ward/login?return=/patients/1"),
        )
        .await;
    assert_eq!(form.url().host_str(), Some(WARD_HOST));
    let form = form.text().await.unwrap();
    let r = b
        .post(
            "/.ward/login",
            &[
                ("csrf", &input_value(&form, "csrf")),
                ("return", &input_value(&form, "return")),
                ("username", "dr_lee"),
                ("password", PW),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let pending = b
        .cookie_at(&ward_page("/"), COOKIE)
        .expect("a session after the password step");
    assert_ne!(pending, planted);
    // The half-signed-in id reaches nothing.
    assert!(!reaches(&s, &thief(&s, &pending), "/patients/1").await);

    let mfa = b.get("/.ward/mfa").await.text().await.unwrap();
    let code = s.code("dr_lee").await;
    let r = b
        .post(
            "/.ward/mfa",
            &[("csrf", &input_value(&mfa, "csrf")), ("code", &code)],
        )
        .await;
    assert_eq!(r.status(), 303);
    let full = b
        .cookie_at(&ward_page("/"), COOKIE)
        .expect("a session after the code step");
    assert_ne!(full, pending, "the id did not change at the second step");
    // Through the hand-off to the app host, which gets its own id.
    let mut r = b
        .get(
            r.url()
                .join(r.headers()["location"].to_str().unwrap())
                .unwrap()
                .as_str(),
        )
        .await;
    while r.status().is_redirection() {
        let next = r
            .url()
            .join(r.headers()["location"].to_str().unwrap())
            .unwrap();
        r = b.get(next.as_str()).await;
    }
    let app = b.cookie(COOKIE).expect("a session on the app host");
    assert!(app != full && app != pending && app != planted);

    // The pending id is dead for good, and so is the planted one.
    for old in [&pending, &planted] {
        assert!(!reaches(&s, &thief(&s, old), "/patients/1").await);
    }
    // The control: the person's own id works (and a stolen copy of it would: that is what
    // HttpOnly, Secure and host-only are for).
    assert!(reaches(&s, &b, "/patients/1").await);
    assert!(reaches(&s, &thief(&s, &app), "/patients/1").await);
    let seen = s.up.saw("/patients/1");
    assert!(
        seen.iter()
            .all(|r| r.header("x-ward-user") == Some("dr_lee")),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_roles_idle_limit_ends_the_session() {
    let s = scenario().start().await;
    let fran = s.browser();
    let lee = s.browser();
    assert_eq!(s.sign_in(&fran, "fran").await, 303);
    assert_eq!(s.sign_in(&lee, "dr_lee").await, 303);
    assert!(reaches(&s, &fran, "/patients/1").await);
    assert!(reaches(&s, &lee, "/patients/1").await);
    tokio::time::sleep(Duration::from_secs(5)).await;
    // fran's role allows 3 s of idleness; the session is over, also for a copy of the cookie.
    let cookie = fran.cookie(COOKIE).unwrap();
    let r = fran.get("/patients/2").await;
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()["location"].to_str().unwrap().contains("login"),
        "{:?}",
        r.headers()
    );
    assert!(!reaches(&s, &thief(&s, &cookie), "/patients/2").await);
    assert!(s.up.saw("/patients/2").is_empty());
    s.assert_audit(&[("user", "fran"), ("event", "idle-logoff")])
        .await;
    // The control: the [sessions] limit (15m) still holds for dr_lee after the same pause.
    assert!(reaches(&s, &lee, "/patients/2").await);
}

/// Runs `ward user --config ward.toml ARGS…` in the scenario's folder; returns stdout.
fn ward_user(s: &Running, args: &[&str]) -> String {
    let out = Command::new(WARD)
        .current_dir(s.ward.site.dir.path())
        .args(["user", "--config", "ward.toml"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The one-time link's token in `ward user` output.
fn token(out: &str) -> String {
    let at = out
        .find("token=")
        .unwrap_or_else(|| panic!("no link in {out}"))
        + 6;
    out[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn resets_end_live_sessions_and_void_old_links() {
    let s = scenario().start().await;
    let enroll = |t: &str| {
        s.ward
            .url_for(WARD_HOST, &format!("/.ward/enroll?token={t}"))
    };
    for (command, event) in [
        ("reset-password", "password-reset"),
        ("reset-mfa", "mfa-reset"),
    ] {
        let b = s.browser();
        let bystander = s.browser();
        assert_eq!(s.sign_in(&b, "bo").await, 303, "{command}");
        assert_eq!(s.sign_in(&bystander, "dr_lee").await, 303);
        assert!(reaches(&s, &b, "/billing/claims").await);
        let cookie = b.cookie(COOKIE).unwrap();

        let first = token(&ward_user(&s, &[command, "bo"]));
        let second = token(&ward_user(&s, &[command, "bo"]));
        assert_ne!(first, second);
        // ward picks the change up within a second.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        s.up.clear();
        assert!(!reaches(&s, &b, "/billing/claims").await, "{command}");
        assert!(!reaches(&s, &thief(&s, &cookie), "/billing/claims").await);
        s.up.assert_nothing(command);
        s.assert_audit(&[("user", "bo"), ("event", event)]).await;
        // The first link died with the second; the second works (the control).
        let r = Browser::on(&s.ward, WARD_HOST).get(&enroll(&first)).await;
        assert_eq!(r.status(), 404, "{command}: the replaced link still works");
        let r = Browser::on(&s.ward, WARD_HOST).get(&enroll(&second)).await;
        assert_eq!(r.status(), 200, "{command}");
        // Someone else's session is untouched.
        assert!(reaches(&s, &bystander, "/patients/1").await);
        // Give bo a way back in for the next round.
        let store = ward::users::SecretStore::open(&s.ward.site.path("state")).unwrap();
        let hash = ward::auth::password::hash(PW).unwrap();
        let key = data_encoding::BASE32_NOPAD.encode(&s.secrets["bo"]);
        store
            .update(|x| {
                let u = x.users.get_mut("bo").unwrap();
                u.password = Some(hash);
                u.totp = Some(key);
                u.enroll = None;
            })
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
}
