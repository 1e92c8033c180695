//! End to end: signing in with password + TOTP over real TLS, and every way
//! around it that should fail.

mod common;

use common::*;
use std::time::Duration;
use ward::auth::totp::code_at;

const PW: &str = "maple orbit candle harbor 42";

fn policy(upstream: &str, extra: &str) -> String {
    format!(
        "practice = \"Test Clinic\"\n{{server}}\n{extra}\n\
         [login]\nlockout_after = 3\nlockout_time = \"10m\"\n\
         [roles]\nclinician = {{}}\nbiller = {{}}\nvendor_biller = {{}}\n\
         [storage]\nusers = \"config/users.toml\"\nstate = \"state\"\n\
         [[apps]]\nname = \"ehr\"\nupstream = \"{upstream}\"\n\
         [[routes]]\napp = \"ehr\"\npath = \"/**\"\nallow_roles = [\"clinician\", \"vendor_biller\"]\n\
         [[routes]]\napp = \"ehr\"\npath = \"/billing/**\"\nallow_roles = [\"biller\", \"vendor_biller\"]\n\
         [[routes]]\napp = \"ehr\"\npath = \"/logo.png\"\nallow = \"public\"\n"
    )
}

fn start(extra: &str) -> (Ehr, Ward) {
    let ehr = Ehr::start();
    let ward = Ward::start(&policy(&ehr.url(), extra));
    (ehr, ward)
}

/// Waits until ward has read the accounts file (it looks four times a second).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(700)).await;
}

/// Password step; returns the response.
async fn password_step(b: &Browser, user: &str, password: &str) -> reqwest::Response {
    let form = b
        .get("/.ward/login?return=/patients/1001/chart")
        .await
        .text()
        .await
        .unwrap();
    let csrf = input_value(&form, "csrf");
    b.post(
        "/.ward/login",
        &[
            ("csrf", &csrf),
            ("return", "/patients/1001/chart"),
            ("username", user),
            ("password", password),
        ],
    )
    .await
}

/// Second step with `code`; returns the response.
async fn code_step(b: &Browser, code: &str) -> reqwest::Response {
    let form = b.get("/.ward/mfa").await.text().await.unwrap();
    let csrf = input_value(&form, "csrf");
    b.post("/.ward/mfa", &[("csrf", &csrf), ("code", code)])
        .await
}

/// Signs in with the code for `offset` seconds from now; asserts it worked.
async fn sign_in(b: &Browser, user: &str, secret: &[u8], offset: i64) {
    let resp = password_step(b, user, PW).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/.ward/mfa");
    let code = code_at(secret, (unix_now() as i64 + offset) as u64);
    let resp = code_step(b, &code).await;
    assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap());
    assert_eq!(resp.headers()["location"], "/patients/1001/chart");
}

async fn status_of(b: &Browser, path: &str) -> u16 {
    b.get(path).await.status().as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn password_and_code_sign_in_and_the_upstream_learns_who() {
    let (_ehr, ward) = start("");
    let secret = enrolled_user(&ward.site, "dr_lee", &["clinician"], PW, None, None);
    settle().await;
    let b = Browser::new(&ward);
    // Before signing in, a page load goes to sign-in.
    let resp = b.get("/patients/1001/chart").await;
    assert_eq!(resp.status(), 303);
    assert!(
        resp.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/.ward/login?return=%2Fpatients%2F1001%2Fchart")
    );

    sign_in(&b, "dr_lee", &secret, 0).await;
    let cookie = b.cookie("__Host-ward-session").unwrap();
    assert!(cookie.len() >= 43);
    let resp = b.get("/debug/headers").await;
    assert_eq!(resp.status(), 200);
    let json: serde_json::Value = resp.json().await.unwrap();
    let seen = seen_headers(&json);
    let get = |n: &str| seen.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    assert_eq!(get("x-ward-user").as_deref(), Some("dr_lee"));
    assert_eq!(get("x-ward-roles").as_deref(), Some("clinician"));
    let session_id = get("x-ward-session").unwrap();
    assert!(
        !session_id.is_empty() && !cookie.contains(&session_id),
        "X-Ward-Session must not be the cookie"
    );
    assert!(
        get("cookie").is_none_or(|c| !c.contains("ward")),
        "ward's cookie reached the upstream"
    );
    // HTML pages carry the idle script.
    let chart = b.get("/patients/1001/chart").await.text().await.unwrap();
    assert!(chart.contains("Margaret Ellison"));
    assert!(
        chart
            .trim_end()
            .ends_with("<script src=\"/.ward/idle.js\" defer></script>")
    );
    // The clinician's roles do not open billing.
    assert_eq!(status_of(&b, "/billing").await, 403);
    // A client-sent identity header changes nothing.
    let resp = ward
        .client(true)
        .get(ward.url("/debug/headers"))
        .header("cookie", format!("__Host-ward-session={cookie}"))
        .header("x-ward-user", "officer")
        .header("x-ward-roles", "officer")
        .send()
        .await
        .unwrap();
    let json: serde_json::Value = resp.json().await.unwrap();
    let seen = seen_headers(&json);
    assert_eq!(seen.iter().filter(|(k, _)| k == "x-ward-user").count(), 1);
    assert!(seen.contains(&("x-ward-user".into(), "dr_lee".into())));

    // Sign out ends the session server-side, not just in this browser.
    let form = b.get("/.ward/logout").await.text().await.unwrap();
    let csrf = input_value(&form, "csrf");
    let resp = b.post("/.ward/logout", &[("csrf", &csrf)]).await;
    assert_eq!(resp.status(), 303);
    let replay = Browser::new(&ward);
    replay.set_cookie("__Host-ward-session", &cookie);
    assert_eq!(status_of(&replay, "/patients/1001/chart").await, 303);
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_replayed_and_missing_codes_are_refused() {
    let (_ehr, ward) = start("");
    let secret = enrolled_user(&ward.site, "dr_lee", &["clinician"], PW, None, None);
    settle().await;
    let b = Browser::new(&ward);
    assert_eq!(password_step(&b, "dr_lee", PW).await.status(), 303);
    // Password alone reaches nothing.
    assert_eq!(status_of(&b, "/patients/1001/chart").await, 303);
    assert_eq!(status_of(&b, "/logo.png").await, 200);
    // A wrong code.
    let now = unix_now();
    let good = code_at(&secret, now);
    let wrong = if good == "000000" {
        "111111".to_string()
    } else {
        "000000".to_string()
    };
    let resp = code_step(&b, &wrong).await;
    assert_eq!(resp.status(), 401);
    assert!(resp.text().await.unwrap().contains("not right"));
    // The right code works once...
    assert_eq!(code_step(&b, &good).await.status(), 303);
    assert_eq!(status_of(&b, "/patients/1001/chart").await, 200);
    // ...and never again, even on another browser with the password.
    let other = Browser::new(&ward);
    assert_eq!(password_step(&other, "dr_lee", PW).await.status(), 303);
    assert_eq!(code_step(&other, &good).await.status(), 401);
    // An earlier step than the one used is refused too.
    assert_eq!(
        code_step(&other, &code_at(&secret, now - 30))
            .await
            .status(),
        401
    );
    assert_eq!(status_of(&other, "/patients/1001/chart").await, 303);
}

#[tokio::test(flavor = "multi_thread")]
async fn closed_accounts_cannot_sign_in_and_their_sessions_end_within_a_second() {
    let (_ehr, ward) = start("[sessions]\nmax_per_user = 3");
    let lee = enrolled_user(&ward.site, "dr_lee", &["clinician"], PW, None, None);
    let kim = enrolled_user(&ward.site, "kim", &["clinician"], PW, None, None);
    let _old = enrolled_user(
        &ward.site,
        "old_vendor",
        &["vendor_biller"],
        PW,
        Some("Acme Billing"),
        Some("2020-01-31"),
    );
    settle().await;
    let store = ward::users::SecretStore::open(&ward.site.path("state")).unwrap();
    let admin = ward::users::Admin::new(&ward.site.path("config/users.toml"), store, "Test Clinic");

    // Expired vendor: refused, without saying more than that it cannot sign in.
    let b = Browser::new(&ward);
    let resp = password_step(&b, "old_vendor", PW).await;
    assert_eq!(resp.status(), 401);
    assert!(resp.text().await.unwrap().contains("cannot sign in"));

    // Deactivate by the officer's command: a live session ends.
    let b = Browser::new(&ward);
    sign_in(&b, "dr_lee", &lee, 0).await;
    assert_eq!(status_of(&b, "/patients/1001/chart").await, 200);
    admin.deactivate("dr_lee").unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let resp = b.get("/patients/1001/chart").await;
    assert_eq!(resp.status(), 303);
    let again = Browser::new(&ward);
    assert_eq!(password_step(&again, "dr_lee", PW).await.status(), 401);
    // Reactivated, the password works again.
    admin.reactivate("dr_lee").unwrap();
    settle().await;
    sign_in(&again, "dr_lee", &lee, 30).await;

    // Terminate by editing users.toml by hand: the session ends too.
    let k = Browser::new(&ward);
    sign_in(&k, "kim", &kim, 0).await;
    let users = ward.site.path("config/users.toml");
    let text = std::fs::read_to_string(&users).unwrap();
    let edited = text.replacen("[users.kim]\n", "[users.kim]\nstatus = \"terminated\"\n", 1);
    assert_ne!(text, edited);
    std::fs::write(&users, edited).unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(status_of(&k, "/patients/1001/chart").await, 303);
    assert_eq!(
        password_step(&Browser::new(&ward), "kim", PW)
            .await
            .status(),
        401
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_sessions_go_back_to_sign_in_and_polling_does_not_keep_them_alive() {
    let (_ehr, ward) =
        start("[sessions]\nidle_timeout = \"3s\"\nbackground_paths = [\"/debug/**\"]");
    let secret = enrolled_user(&ward.site, "dr_lee", &["clinician"], PW, None, None);
    settle().await;
    let b = Browser::new(&ward);
    sign_in(&b, "dr_lee", &secret, 0).await;
    // Activity keeps it alive...
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(status_of(&b, "/patients/1001/chart").await, 200);
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
    let (_ehr, ward) = start("");
    let secret = enrolled_user(&ward.site, "dr_lee", &["clinician"], PW, None, None);
    settle().await;
    let first = Browser::new(&ward);
    sign_in(&first, "dr_lee", &secret, -30).await;
    let second = Browser::h2(&ward);
    sign_in(&second, "dr_lee", &secret, 0).await;
    assert_eq!(status_of(&second, "/patients/1001/chart").await, 200);
    assert_eq!(status_of(&first, "/patients/1001/chart").await, 303);

    // No CSRF cookie, or a mismatched one: the form is refused.
    let forged = Browser::new(&ward);
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
    let planted = Browser::new(&ward);
    planted.set_cookie("__Host-ward-session", "attacker-chosen");
    sign_in(&planted, "dr_lee", &secret, 30).await;
    assert_ne!(
        planted.cookie("__Host-ward-session").as_deref(),
        Some("attacker-chosen")
    );
    // The cookie's attributes.
    let resp = password_step(&Browser::new(&ward), "dr_lee", PW).await;
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
async fn enrollment_links_set_the_password_and_authenticator_once() {
    let (_ehr, ward) = start("");
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
    settle().await;
    let b = Browser::new(&ward);
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
        let code = code_at(&secret, unix_now());
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
                ("code", &code_at(&secret, unix_now())),
            ],
        )
        .await;
    assert_eq!(resp.status(), 200);
    let done = resp.text().await.unwrap();
    assert_eq!(done.matches("<li><code>").count(), 10, "{done}");
    // The link is used up.
    assert_eq!(b.get(&path).await.status(), 404);
    // And the account signs in.
    settle().await;
    sign_in(&Browser::new(&ward), "nurse_ray", &secret, 30).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn person_attributes_reach_the_app_and_forged_ones_never_do() {
    let ehr = Ehr::start();
    let text = policy(&ehr.url(), "").replace(
        "upstream = ",
        "identity_headers = { npi = \"X-Provider-Npi\" }\nupstream = ",
    );
    let ward = Ward::start(&text);
    let secret = enrolled_user(&ward.site, "dr_lee", &["clinician"], PW, None, None);
    let users = ward.site.path("config/users.toml");
    let with_attr = std::fs::read_to_string(&users).unwrap().replacen(
        "[users.dr_lee]\n",
        "[users.dr_lee]\nattributes = { npi = \"1234567890\" }\n",
        1,
    );
    std::fs::write(&users, with_attr).unwrap();
    settle().await;
    let b = Browser::new(&ward);
    sign_in(&b, "dr_lee", &secret, 0).await;
    b.header("X-Provider-Npi", "9999999999");
    b.header("x_provider_npi", "9999999999");
    let j: serde_json::Value = b.get("/debug/headers").await.json().await.unwrap();
    let npi: Vec<String> = seen_headers(&j)
        .into_iter()
        .filter(|(k, _)| k.replace('_', "-") == "x-provider-npi")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(npi, vec!["1234567890".to_string()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_second_sign_ins_lifetimes_and_background_headers() {
    // on_too_many = "refuse": the second sign-in is refused, the first goes on.
    let (_ehr, ward) = start(
        "[sessions]\non_too_many = \"refuse\"\nmax_lifetime = \"4s\"\nidle_timeout = \"3s\"\nbackground_headers = [\"X-Requested-With: XMLHttpRequest\"]",
    );
    let secret = enrolled_user(&ward.site, "dr_lee", &["clinician"], PW, None, None);
    settle().await;
    let first = Browser::new(&ward);
    sign_in(&first, "dr_lee", &secret, -30).await;
    let second = Browser::new(&ward);
    assert_eq!(sign_in_with(&second, "dr_lee", PW, &secret, 0).await, 429);
    assert_eq!(status_of(&second, "/patients/1001/chart").await, 303);
    assert_eq!(status_of(&first, "/patients/1001/chart").await, 200);

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
    let busy = Browser::new(&ward);
    sign_in(&busy, "dr_lee", &secret, 30).await;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(status_of(&busy, "/patients/1001/chart").await, 200);
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
async fn named_people_and_a_routes_own_idle_limit() {
    let ehr = Ehr::start();
    let text = format!(
        "{}[[routes]]\napp = \"ehr\"\npath = \"/echo/named/**\"\nallow_users = [\"dr_lee\"]\n\
         [[routes]]\napp = \"ehr\"\npath = \"/echo/short/**\"\nallow_roles = [\"clinician\"]\nidle_timeout = \"2s\"\n",
        policy(&ehr.url(), "")
    );
    let ward = Ward::start(&text);
    let lee = enrolled_user(&ward.site, "dr_lee", &["biller"], PW, None, None);
    let kim = enrolled_user(&ward.site, "kim", &["clinician"], PW, None, None);
    settle().await;
    let l = Browser::new(&ward);
    assert_eq!(sign_in_with(&l, "dr_lee", PW, &lee, 0).await, 303);
    let k = Browser::new(&ward);
    assert_eq!(sign_in_with(&k, "kim", PW, &kim, 0).await, 303);
    // Named on the route: dr_lee gets in without the role; kim's role does not open it.
    assert_eq!(status_of(&l, "/echo/named/x").await, 200);
    assert_eq!(status_of(&k, "/echo/named/x").await, 403);
    // The route's own idle limit is shorter than the person's: idle 3 s there means sign in again.
    assert_eq!(status_of(&k, "/echo/short/x").await, 200);
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let resp = k.get("/echo/short/x").await;
    assert_eq!(resp.status(), 303);
    assert!(
        resp.headers()["location"]
            .to_str()
            .unwrap()
            .contains("reason=idle")
    );
}

/// The audit records of the trail so far.
fn records(ward: &Ward) -> Vec<serde_json::Value> {
    audit_text(&ward.site)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Issue #11.5: a record names the person the event is about, never the owner
/// of a cookie the browser still holds; an idle logoff names its person.
#[tokio::test(flavor = "multi_thread")]
async fn the_trail_names_the_person_each_event_is_about() {
    let ehr = Ehr::start();
    let ward = Ward::start(
        &policy(&ehr.url(), "")
            .replace("[login]\n", "[sessions]\nidle_timeout = \"3s\"\n[login]\n"),
    );
    let lee = enrolled_user(&ward.site, "dr_lee", &["clinician"], PW, None, None);
    let _kim = enrolled_user(&ward.site, "kim", &["biller"], PW, None, None);
    settle().await;
    let b = Browser::new(&ward);
    sign_in(&b, "dr_lee", &lee, 0).await;
    // At the same browser, someone types kim's name and a wrong password...
    assert_eq!(
        password_step(&b, "kim", "wrong password entirely")
            .await
            .status(),
        401
    );
    // ...and someone types a password into the name field.
    assert_eq!(
        password_step(&b, "secret words typed in the wrong box", "x")
            .await
            .status(),
        401
    );
    let failed: Vec<_> = records(&ward)
        .into_iter()
        .filter(|r| r["event"] == "login-failed")
        .collect();
    assert_eq!(failed.len(), 2, "{failed:#?}");
    assert_eq!(failed[0]["user"], "kim");
    assert_eq!(failed[0]["roles"], serde_json::json!(["biller"]));
    assert!(failed[0].get("session").is_none(), "{}", failed[0]);
    assert!(failed[1].get("user").is_none(), "{}", failed[1]);
    assert!(!audit_text(&ward.site).contains("secret words"));
    assert!(!ward.logs().join("\n").contains("secret words"));

    // Idle logoff: the next request is recorded under the person, once.
    let b = Browser::new(&ward);
    sign_in(&b, "dr_lee", &lee, 30).await;
    assert_eq!(status_of(&b, "/patients/1001/chart").await, 200);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(status_of(&b, "/patients/1001/chart").await, 303);
    assert_eq!(status_of(&b, "/patients/1001/chart").await, 303);
    let idle: Vec<_> = records(&ward)
        .into_iter()
        .filter(|r| r["event"] == "idle-logoff")
        .collect();
    assert_eq!(idle.len(), 1, "{idle:#?}");
    assert_eq!(idle[0]["user"], "dr_lee");
    let search = std::process::Command::new(WARD)
        .current_dir(ward.site.dir.path())
        .args([
            "audit",
            "search",
            "--config",
            "ward.toml",
            "--user",
            "dr_lee",
            "--event",
            "idle-logoff",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&search.stdout).contains("idle-logoff"));
}
