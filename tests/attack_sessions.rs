//! Attacks on sessions: a planted or stolen session id; a session outliving its role's idle
//! limit, its lifetime, its account (deactivated, terminated by hand) or a password or MFA
//! reset; background polling that would keep it alive; a second sign-in beside the first;
//! forged sign-in forms; an enrollment or reset link used twice; an app's own session (its
//! cookies) or WebSocket outliving the ward session that opened it; a copied session used from
//! another address where the policy binds sessions; the hand-off from ward's own host to an
//! app's replayed, moved or planted. What reached the app is read from the recording upstream
//! and what happened from the audit trail.

use crate::common::*;
use http_body_util::BodyExt;
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

        let first = token(&s.ward_user(&[command, "bo"]));
        let second = token(&s.ward_user(&[command, "bo"]));
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

/// GET `/echo/a` with the session from `local` (a loopback address of its own).
async fn from_address(ward: &Ward, sid: &str, local: &str) -> u16 {
    let client = client_from(ward, local.parse().unwrap());
    client
        .get(ward.url("/echo/a"))
        .header("cookie", format!("{COOKIE}={sid}"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A copied cookie used from elsewhere (an outside tester's finding, issue 16, item 8).
#[tokio::test(flavor = "multi_thread")]
async fn sessions_can_be_bound_to_the_sign_in_address_or_network() {
    // The default: a session works from any address.
    let (s, _b, sid) = presets::start_vendor("").await;
    assert_eq!(from_address(&s.ward, &sid, "127.0.0.1").await, 200);
    assert_eq!(from_address(&s.ward, &sid, "127.0.9.9").await, 200);
    drop(s);

    let (s, _b, sid) = presets::start_vendor("bind_to = \"address\"").await;
    assert_eq!(from_address(&s.ward, &sid, "127.0.0.1").await, 200);
    assert_eq!(from_address(&s.ward, &sid, "127.0.0.2").await, 303);
    // The owner keeps the session.
    assert_eq!(from_address(&s.ward, &sid, "127.0.0.1").await, 200);
    assert!(
        s.ward
            .logs()
            .iter()
            .any(|l| l.contains("away from where it was signed in")),
        "not logged"
    );
    drop(s);

    let (s, _b, sid) = presets::start_vendor("bind_to = \"network\"").await;
    assert_eq!(from_address(&s.ward, &sid, "127.0.0.2").await, 200);
    assert_eq!(from_address(&s.ward, &sid, "127.0.1.2").await, 303);

    // A value ward does not know stops the policy from loading.
    let site = &s.ward.site;
    let config = site.path("cookie.toml");
    let policy = s
        .policy
        .replace("bind_to = \"network\"", "bind_to = \"cookie\"");
    assert!(policy.contains("bind_to = \"cookie\""));
    std::fs::write(&config, policy.replace("{server}", &server_section(site))).unwrap();
    let out = Command::new(WARD)
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

#[tokio::test(flavor = "multi_thread")]
async fn the_hand_off_cannot_be_replayed_moved_or_planted() {
    let s = presets::own_host_scenario("[sessions]\nmax_per_user = 1\n")
        .user("dr_lee", &["clinician"])
        .start()
        .await;
    let ward = &s.ward;
    let own = ward.url_for(WARD_HOST, "");

    // One sign-in covers both app hosts, and counts once against max_per_user = 1.
    let b = Browser::new(ward);
    assert_eq!(s.sign_in(&b, "dr_lee").await, 303);
    assert_eq!(b.get("/patients/1001/chart").await.status(), 200);
    let billing = ward.url_for("billing.localhost", "/patients/1001/chart");
    let r = b.get_following(&billing).await;
    assert_eq!(r.status(), 200, "{}", r.url());
    assert_eq!(r.url().host_str(), Some("billing.localhost"));
    assert_eq!(
        b.get("/patients/1001/chart").await.status(),
        200,
        "still signed in"
    );

    // A code, caught on its way, for the app host.
    let start = b.get("/.ward/login?return=/patients/1001/chart").await;
    let go = start.headers()["location"].to_str().unwrap().to_string();
    let r = b.get(&go).await;
    let handoff = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        handoff.starts_with(&ward.url("/.ward/handoff?code=")),
        "{handoff}"
    );

    // Planted in another browser (without the state cookie set by the real start): refused.
    let victim = Browser::new(ward);
    let r = victim.get(&handoff).await;
    assert_eq!(r.status(), 303);
    assert!(victim.cookie("__Host-ward-session").is_none());
    assert_eq!(victim.get("/patients/1001/chart").await.status(), 303);
    // ... and the code is used up, also for its own browser.
    let r = b.get(&handoff).await;
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/.ward/login")
    );

    // Moved to another app's host: refused.
    let start = b.get("/.ward/login?return=/").await;
    let go = start.headers()["location"].to_str().unwrap().to_string();
    let handoff = b.get(&go).await.headers()["location"]
        .to_str()
        .unwrap()
        .to_string();
    let moved = handoff.replace("://localhost:", "://billing.localhost:");
    assert_ne!(moved, handoff);
    let other = Browser::new(ward);
    let r = other.get(&moved).await;
    assert_eq!(r.status(), 303);
    assert!(other.cookie("__Host-ward-session").is_none());

    // Never to a host that is not an app's: no open redirect from ward's host.
    for to in [
        "evil.example",
        "evil.example:443",
        "localhost.evil.example",
        "localhost:1",
        "ward.localhost",
    ] {
        let q =
            serde_urlencoded::to_string([("to", to), ("state", &"a".repeat(64)), ("return", "/")])
                .unwrap();
        let r = b.get(&format!("{own}/.ward/go?{q}")).await;
        assert_eq!(r.status(), 400, "{to}");
    }

    // Signing out on ward's host ends the session on every host.
    let logout = b
        .get(&format!("{own}/.ward/logout"))
        .await
        .text()
        .await
        .unwrap();
    let csrf = input_value(&logout, "csrf");
    assert_eq!(
        b.post(&format!("{own}/.ward/logout"), &[("csrf", &csrf)])
            .await
            .status(),
        303
    );
    assert_eq!(b.get("/patients/1001/chart").await.status(), 303);
    assert_eq!(b.get(&billing).await.status(), 303);
}

#[tokio::test(flavor = "multi_thread")]
async fn closed_accounts_cannot_sign_in_and_their_sessions_end_within_a_second() {
    let s = presets::clinic_scenario("[sessions]\nmax_per_user = 3")
        .user("dr_lee", &["clinician"])
        .user("kim", &["clinician"])
        .start()
        .await;
    let ward = &s.ward;
    // An account whose end date has passed (the scenario gives vendors a future one).
    let _old = enrolled_user(
        &ward.site,
        "old_vendor",
        &["vendor_biller"],
        PW,
        Some("Acme Billing"),
        Some("2020-01-31"),
    );
    presets::settle().await;
    let store = ward::users::SecretStore::open(&ward.site.path("state")).unwrap();
    let admin = ward::users::Admin::new(&ward.site.path("config/users.toml"), store, "Test Clinic");

    // Expired vendor: the right password leads to the second step as on any account (so it
    // alone tells nothing), and that pending sign-in opens nothing; after the code it gets
    // only the form to ask for more time, never a session (tests/more_time.rs).
    let b = s.browser();
    let resp = presets::password_step(&b, "old_vendor", PW).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/.ward/mfa");
    assert_ne!(presets::status_of(&b, "/patients/1001/chart").await, 200);

    // Deactivate by the officer's command: a live session ends.
    let b = s.browser();
    presets::sign_in_to_chart(&s, &b, "dr_lee").await;
    assert_eq!(presets::status_of(&b, "/patients/1001/chart").await, 200);
    admin.deactivate("dr_lee").unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let resp = b.get("/patients/1001/chart").await;
    assert_eq!(resp.status(), 303);
    let again = s.browser();
    assert_eq!(
        presets::password_step(&again, "dr_lee", PW).await.status(),
        401
    );
    // Reactivated, the password works again.
    admin.reactivate("dr_lee").unwrap();
    presets::settle().await;
    presets::sign_in_to_chart(&s, &again, "dr_lee").await;

    // Terminate by editing users.toml by hand: the session ends too.
    let k = s.browser();
    presets::sign_in_to_chart(&s, &k, "kim").await;
    let users = ward.site.path("config/users.toml");
    let text = std::fs::read_to_string(&users).unwrap();
    let edited = text.replacen("[users.kim]\n", "[users.kim]\nstatus = \"terminated\"\n", 1);
    assert_ne!(text, edited);
    std::fs::write(&users, edited).unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(presets::status_of(&k, "/patients/1001/chart").await, 303);
    assert_eq!(
        presets::password_step(&s.browser(), "kim", PW)
            .await
            .status(),
        401
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_sessions_go_back_to_sign_in_and_polling_does_not_keep_them_alive() {
    let s = presets::clinic_scenario(
        "[sessions]\nidle_timeout = \"3s\"\nbackground_paths = [\"/debug/**\"]",
    )
    .user("dr_lee", &["clinician"])
    .start()
    .await;
    let b = s.browser();
    presets::sign_in_to_chart(&s, &b, "dr_lee").await;
    // Activity keeps it alive...
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(presets::status_of(&b, "/patients/1001/chart").await, 200);
    }
    // ...an app's background polling does not.
    // The polls reach the app while the session stands (the first comes 1 s after the last
    // activity, well inside the 3 s), so they were served, only not counted.
    let mut polls = Vec::new();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        polls.push(b.get("/debug/headers").await.status().as_u16());
    }
    assert_eq!(polls[0], 200, "{polls:?}");
    assert!(polls.iter().all(|s| [200, 303].contains(s)), "{polls:?}");
    let resp = b.get("/patients/1001/chart").await;
    assert_eq!(resp.status(), 303);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(location.contains("reason=idle"), "{location}");
    let page = b.get(&location).await.text().await.unwrap();
    assert!(page.contains("not used for a while"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_sign_in_ends_the_first_and_forged_forms_are_refused() {
    let s = presets::clinic_scenario("")
        .user("dr_lee", &["clinician"])
        .start()
        .await;
    let first = s.browser();
    presets::sign_in_to_chart(&s, &first, "dr_lee").await;
    let second = Browser::h2(&s.ward);
    presets::sign_in_to_chart(&s, &second, "dr_lee").await;
    assert_eq!(
        presets::status_of(&second, "/patients/1001/chart").await,
        200
    );
    assert_eq!(
        presets::status_of(&first, "/patients/1001/chart").await,
        303
    );

    // No CSRF cookie, or a mismatched one: the form is refused.
    let forged = s.browser();
    let resp = forged
        .post(
            "/.ward/login",
            &[("csrf", "x"), ("username", "dr_lee"), ("password", PW)],
        )
        .await;
    assert_eq!(resp.status(), 401);
    assert!(forged.cookie("__Host-ward-session").is_none());
    forged.set_cookie("__Host-ward-csrf", "y");
    let resp = forged
        .post(
            "/.ward/login",
            &[("csrf", "x"), ("username", "dr_lee"), ("password", PW)],
        )
        .await;
    assert_eq!(resp.status(), 401);
    assert!(forged.cookie("__Host-ward-session").is_none());
    // A session id planted before sign-in is not kept.
    let planted = s.browser();
    planted.set_cookie("__Host-ward-session", "attacker-chosen");
    presets::sign_in_to_chart(&s, &planted, "dr_lee").await;
    assert_ne!(
        planted.cookie("__Host-ward-session").as_deref(),
        Some("attacker-chosen")
    );
    // The cookie's attributes.
    let resp = presets::password_step(&s.browser(), "dr_lee", PW).await;
    let set = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect::<Vec<_>>();
    let session_cookie = set
        .iter()
        .find(|c| c.starts_with("__Host-ward-session="))
        .unwrap();
    for attr in ["Path=/", "Secure", "HttpOnly", "SameSite=Lax"] {
        assert!(session_cookie.contains(attr), "{session_cookie}");
    }
    assert!(!session_cookie.to_ascii_lowercase().contains("domain"));
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_second_sign_ins_lifetimes_and_background_headers() {
    // on_too_many = "refuse": the second sign-in is refused, the first goes on.
    let s = presets::clinic_scenario(
        "[sessions]\non_too_many = \"refuse\"\nmax_lifetime = \"4s\"\nidle_timeout = \"3s\"\nbackground_headers = [\"X-Requested-With: XMLHttpRequest\"]",
    )
    .user("dr_lee", &["clinician"])
    .start()
    .await;
    let ward = &s.ward;
    let first = s.browser();
    presets::sign_in_to_chart(&s, &first, "dr_lee").await;
    let second = s.browser();
    assert_eq!(s.sign_in(&second, "dr_lee").await, 429);
    assert_eq!(
        presets::status_of(&second, "/patients/1001/chart").await,
        303
    );
    assert_eq!(
        presets::status_of(&first, "/patients/1001/chart").await,
        200
    );

    // An app's XHR polling, marked by its header, does not count as activity.
    first.header("X-Requested-With", "XMLHttpRequest");
    let mut polls = Vec::new();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        polls.push(first.get("/debug/headers").await.status().as_u16());
    }
    assert_eq!(polls[0], 200, "polling was not served: {polls:?}");
    assert!(polls.iter().all(|s| [200, 303].contains(s)), "{polls:?}");
    let resp = first.get("/patients/1001/chart").await;
    assert_eq!(resp.status(), 303, "polling kept the session alive");

    // max_lifetime ends a session however busy it is.
    let busy = s.browser();
    presets::sign_in_to_chart(&s, &busy, "dr_lee").await;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(presets::status_of(&busy, "/patients/1001/chart").await, 200);
    }
    // Whole seconds: 4 s after the start is not yet "more than 4 s".
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let resp = busy.get("/patients/1001/chart").await;
    assert_eq!(resp.status(), 303);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.contains("reason=lifetime"),
        "{location}\n{}",
        ward.logs().join("\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn enrollment_links_set_the_password_and_authenticator_once() {
    let s = presets::clinic_scenario("").start().await;
    let ward = &s.ward;
    let store = ward::users::SecretStore::open(&ward.site.path("state")).unwrap();
    let admin = ward::users::Admin::new(&ward.site.path("config/users.toml"), store, "Test Clinic");
    let link = admin
        .add(
            ward::users::NewAccount {
                name: "nurse_ray".into(),
                display_name: "Ray Ortiz".into(),
                roles: vec!["clinician".into()],
                org: None,
                expires: None,
                sponsor: None,
                allow_from: Vec::new(),
            },
            unix_now() as i64,
        )
        .unwrap();
    presets::settle().await;
    let b = s.browser();
    let path = format!("/.ward/enroll?token={}", link.token);
    let page = b.get(&path).await.text().await.unwrap();
    assert!(page.contains("<svg"), "no QR code");
    let key = input_value(&page, "key");
    // Reloading shows the same key.
    assert_eq!(
        input_value(&b.get(&path).await.text().await.unwrap(), "key"),
        key
    );
    let secret = ward::auth::totp::decode_secret(&key).unwrap();
    // Weak, name-bearing and mismatched passwords are refused with a reason.
    for (pw, confirm, why) in [
        ("short", "short", "at least 12"),
        ("password1234", "password1234", "common"),
        ("ray ortiz is great 1", "ray ortiz is great 1", "name"),
        (PW, "something else entirely", "not the same"),
    ] {
        let code = ward::auth::totp::code_at(&secret, unix_now());
        let resp = b
            .post(
                &path,
                &[("password", pw), ("confirm", confirm), ("code", &code)],
            )
            .await;
        assert_eq!(resp.status(), 400, "{pw}");
        let text = resp.text().await.unwrap();
        assert!(text.to_lowercase().contains(why), "{pw}: {text}");
    }
    let resp = b
        .post(
            &path,
            &[
                ("password", PW),
                ("confirm", PW),
                ("code", &ward::auth::totp::code_at(&secret, unix_now())),
            ],
        )
        .await;
    assert_eq!(resp.status(), 200);
    let done = resp.text().await.unwrap();
    assert_eq!(done.matches("<li><code>").count(), 10, "{done}");
    // The link is used up.
    assert_eq!(b.get(&path).await.status(), 404);
    // And the account signs in.
    presets::settle().await;
    let b = s.browser();
    let resp = presets::password_step(&b, "nurse_ray", PW).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/.ward/mfa");
    let code = ward::auth::totp::code_at(&secret, unix_now() + 30);
    let resp = presets::code_step(&b, &code).await;
    assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap());
    assert_eq!(resp.headers()["location"], "/patients/1001/chart");
}

/// Issue #11.3: an app's own session must not outlive the ward session that opened it. ward's
/// own host; a cookie-login app on `localhost` whose cookies ward keeps in the ward session, and
/// the same app on `billing.localhost` left to the browser (`ward_keeps_cookies = false`);
/// sessions idle out after `idle`.
fn app_cookie_scenario(idle: &str) -> Scenario {
    Scenario::new()
        .own_host()
        .toml(&format!(
            "[sessions]\nidle_timeout = \"{idle}\"\n[roles]\nclinician = {{}}\n"
        ))
        .other_app_with("legacy", "billing.localhost", "ward_keeps_cookies = false")
        .route("/**", "allow_roles = [\"clinician\"]")
        .route_of("legacy", "/**", "allow_roles = [\"clinician\"]")
        .user("ann", &["clinician"])
        .user("ben", &["clinician"])
}

/// An app with a cookie login of its own: `/login?as=NAME` sets its session
/// cookie, `/logout` deletes it, `/whoami` says whose app session the cookie is.
async fn cookie_app() -> String {
    small_app(|req: hyper::Request<hyper::body::Incoming>| async move {
        let cookies = req
            .headers()
            .get_all("cookie")
            .iter()
            .map(|v| v.to_str().unwrap_or("").to_string())
            .collect::<Vec<_>>()
            .join("; ");
        let query = req.uri().query().unwrap_or("").to_string();
        let path = req.uri().path().to_string();
        let _ = req.into_body().collect().await;
        let mut resp = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(
            format!("cookies: [{cookies}]\n"),
        )));
        let h = resp.headers_mut();
        h.insert("content-type", "text/plain".parse().unwrap());
        match path.as_str() {
            "/login" => {
                let who = query.strip_prefix("as=").unwrap_or("nobody");
                h.append(
                    "set-cookie",
                    format!("app_sid=session-of-{who}; Path=/; HttpOnly")
                        .parse()
                        .unwrap(),
                );
                h.append("set-cookie", "app_theme=dark; Path=/".parse().unwrap());
            }
            "/logout" => {
                h.append("set-cookie", "app_sid=; Path=/; Max-Age=0".parse().unwrap());
            }
            _ => {}
        }
        resp
    })
    .await
}

async fn text(b: &Browser, path: &str) -> String {
    b.get(path).await.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_people_at_one_browser_never_share_an_app_session() {
    let app = cookie_app().await;
    let s = app_cookie_scenario("3s").app_at(&app).start().await;
    let ward = &s.ward;
    let b = Browser::new(ward);

    // Ann signs in to ward, then to the app; the app's cookies stay with ward.
    assert_eq!(s.sign_in(&b, "ann").await, 303);
    let r = b.get("/login?as=ann").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("set-cookie").is_none(), "{:?}", r.headers());
    assert!(b.cookie("app_sid").is_none());
    let seen = text(&b, "/whoami").await;
    assert!(seen.contains("app_sid=session-of-ann"), "{seen}");
    assert!(seen.contains("app_theme=dark"), "{seen}");
    assert!(!seen.contains("__Host-ward"), "{seen}");

    // Ann walks away: the idle logoff ends her ward session.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(b.get("/whoami").await.status(), 303);

    // Ben signs in at the same browser: the app never sees Ann's session.
    assert_eq!(s.sign_in(&b, "ben").await, 303);
    let seen = text(&b, "/whoami").await;
    assert!(!seen.contains("session-of-ann"), "{seen}");
    assert_eq!(seen.trim(), "cookies: []");
    // Cookies the browser itself sends (planted, or left from elsewhere) never reach the app.
    b.set_cookie("app_sid", "session-of-ann");
    let seen = text(&b, "/whoami").await;
    assert!(!seen.contains("session-of-ann"), "{seen}");
    // Ben's own app session works, and the app can end it.
    text(&b, "/login?as=ben").await;
    assert!(text(&b, "/whoami").await.contains("app_sid=session-of-ben"));
    text(&b, "/logout").await;
    let seen = text(&b, "/whoami").await;
    assert!(!seen.contains("app_sid"), "{seen}");
    assert!(seen.contains("app_theme=dark"), "{seen}");

    // An app the officer left to the browser (ward_keeps_cookies = false) gets its cookies there.
    let legacy = ward.url_for("billing.localhost", "/login?as=ben");
    let r = b.get_following(&legacy).await;
    assert_eq!(r.url().host_str(), Some("billing.localhost"));
    let r = b.get(&legacy).await;
    assert!(
        r.headers()
            .get_all("set-cookie")
            .iter()
            .any(|v| v.to_str().unwrap().starts_with("app_sid=session-of-ben")),
        "{:?}",
        r.headers()
    );

    // The signed-out page tells the browser to drop what the origin left.
    let r = b.get("/.ward/logged-out?reason=idle").await;
    assert_eq!(
        r.headers()["clear-site-data"],
        "\"cache\", \"cookies\", \"storage\""
    );
}

/// Security review #20, finding 7: a WebSocket does not outlive the session that
/// opened it: signing out (or an idle logoff, a closed account) closes it.
#[tokio::test(flavor = "multi_thread")]
async fn a_websocket_closes_when_its_session_ends() {
    use futures_util::{SinkExt, StreamExt};
    let s = app_cookie_scenario("15m").sample_ehr().start().await;
    let ward = &s.ward;
    let b = Browser::new(ward);
    assert_eq!(s.sign_in(&b, "ann").await, 303);
    let cookie = format!(
        "__Host-ward-session={}",
        b.cookie("__Host-ward-session").unwrap()
    );

    let open = || async {
        let tls = raw_tls(ward, &[b"http/1.1"]).await;
        let mut request =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                format!("wss://localhost:{}/ws/notifications", ward.port()),
            )
            .unwrap();
        request
            .headers_mut()
            .insert("cookie", cookie.parse().unwrap());
        let (mut ws, resp) = tokio_tungstenite::client_async(request, tls).await.unwrap();
        assert_eq!(resp.status(), 101);
        let first = ws.next().await.unwrap().unwrap();
        assert_eq!(first.to_text().unwrap(), "notifications: connected");
        ws
    };
    let mut ws = open().await;
    ws.send(tokio_tungstenite::tungstenite::Message::text("hi"))
        .await
        .unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap().to_text().unwrap(),
        "echo: hi"
    );

    // Ann signs out on ward's own host.
    let own = ward.url_for(WARD_HOST, "/.ward/logout");
    let form = b.get(&own).await.text().await.unwrap();
    let csrf = input_value(&form, "csrf");
    assert_eq!(b.post(&own, &[("csrf", &csrf)]).await.status(), 303);
    // The tunnel closes within a few seconds, whatever the app does.
    let closed = tokio::time::timeout(Duration::from_secs(8), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) => return,
                Some(Ok(m)) if m.is_close() => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the WebSocket stayed open after sign-out");
}

/// Signs `user` in from the app page the browser is on (it is sent to ward's own
/// host, then back), in real Chromium.
async fn sign_in_in_chromium(client: &fantoccini::Client, user: &str, code: &str, back_to: &str) {
    use crate::common::browser::*;
    wait_for_path(client, "/.ward/login", Duration::from_secs(20)).await;
    fill(client, "#username", user).await;
    fill(client, "#password", PW).await;
    submit(client).await;
    wait_for_path(client, "/.ward/mfa", Duration::from_secs(20)).await;
    fill(client, "#code", code).await;
    submit(client).await;
    wait_for_path(client, back_to, Duration::from_secs(20)).await;
}

/// Issue #11.3 in a real browser: Ann uses the app, walks away; Ben signs in at
/// the same Chromium and never lands in Ann's app session.
#[tokio::test(flavor = "multi_thread")]
async fn two_people_at_one_chromium_never_share_an_app_session() {
    use crate::common::browser::*;
    let app = cookie_app().await;
    let s = app_cookie_scenario("3s").app_at(&app).start().await;
    let ward = &s.ward;
    let driver = ChromeDriver::start();
    let profile = tempfile::tempdir().unwrap();
    let client = open_browser(&driver, profile.path()).await;

    // Ann opens the app and logs in to it.
    client.goto(&ward.url("/login?as=ann")).await.unwrap();
    sign_in_in_chromium(&client, "ann", &s.code("ann").await, "/login").await;
    client.goto(&ward.url("/whoami")).await.unwrap();
    let seen = body_text(&client).await;
    assert!(seen.contains("app_sid=session-of-ann"), "{seen}");
    // The browser itself holds no cookie of the app's.
    let cookies = client.get_all_cookies().await.unwrap();
    assert!(
        cookies.iter().all(|c| !c.name().starts_with("app_")),
        "{:?}",
        cookies
            .iter()
            .map(|c| c.name().to_string())
            .collect::<Vec<_>>()
    );

    // Ann walks away: idle logoff (3 s here; the idle script clears the screen).
    tokio::time::sleep(Duration::from_secs(5)).await;

    // Ben sits down at the same browser and signs in.
    client.goto(&ward.url("/whoami")).await.unwrap();
    sign_in_in_chromium(&client, "ben", &s.code("ben").await, "/whoami").await;
    let seen = body_text(&client).await;
    assert!(!seen.contains("session-of-ann"), "{seen}");
    assert!(seen.contains("cookies: []"), "{seen}");
    let _ = client.close().await;
}
