//! End to end: signing in with password and authenticator code over real TLS in front of the
//! sample EHR, what the app learns of the person, a route named for people or with its own
//! idle limit, and whom the trail names. The ways around sign-in are in `attack_*.rs`.

use crate::common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn password_and_code_sign_in_and_the_upstream_learns_who() {
    let s = presets::clinic_scenario("")
        .sample_ehr()
        .user("dr_lee", &["clinician"])
        .start()
        .await;
    let ward = &s.ward;
    let b = s.browser();
    // Before signing in, a page load goes to sign-in.
    let resp = b.get("/patients/1001/chart").await;
    assert_eq!(resp.status(), 303);
    assert!(
        resp.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/.ward/login?return=%2Fpatients%2F1001%2Fchart")
    );

    presets::sign_in_to_chart(&s, &b, "dr_lee").await;
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
    assert_eq!(presets::status_of(&b, "/billing").await, 403);
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
    let replay = s.browser();
    replay.set_cookie("__Host-ward-session", &cookie);
    assert_eq!(
        presets::status_of(&replay, "/patients/1001/chart").await,
        303
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn named_people_and_a_routes_own_idle_limit() {
    let s = presets::clinic_scenario("")
        .sample_ehr()
        .route("/echo/named/**", "allow_users = [\"dr_lee\"]")
        .route(
            "/echo/short/**",
            "allow_roles = [\"clinician\"]\nidle_timeout = \"2s\"",
        )
        .user("dr_lee", &["biller"])
        .user("kim", &["clinician"])
        .start()
        .await;
    let l = s.browser();
    assert_eq!(s.sign_in(&l, "dr_lee").await, 303);
    let k = s.browser();
    assert_eq!(s.sign_in(&k, "kim").await, 303);
    // Named on the route: dr_lee gets in without the role; kim's role does not open it.
    assert_eq!(presets::status_of(&l, "/echo/named/x").await, 200);
    assert_eq!(presets::status_of(&k, "/echo/named/x").await, 403);
    // The route's own idle limit is shorter than the person's: idle 3 s there means sign in again.
    assert_eq!(presets::status_of(&k, "/echo/short/x").await, 200);
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

/// The audit records of the trail so far (every line must parse).
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
    let s = presets::clinic_scenario("[sessions]\nidle_timeout = \"3s\"")
        .sample_ehr()
        .user("dr_lee", &["clinician"])
        .user("kim", &["biller"])
        .start()
        .await;
    let ward = &s.ward;
    let b = s.browser();
    presets::sign_in_to_chart(&s, &b, "dr_lee").await;
    // At the same browser, someone types kim's name and a wrong password...
    assert_eq!(
        presets::password_step(&b, "kim", "wrong password entirely")
            .await
            .status(),
        401
    );
    // ...and someone types a password into the name field.
    assert_eq!(
        presets::password_step(&b, "secret words typed in the wrong box", "x")
            .await
            .status(),
        401
    );
    let failed: Vec<_> = records(ward)
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
    let b = s.browser();
    presets::sign_in_to_chart(&s, &b, "dr_lee").await;
    assert_eq!(presets::status_of(&b, "/patients/1001/chart").await, 200);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(presets::status_of(&b, "/patients/1001/chart").await, 303);
    assert_eq!(presets::status_of(&b, "/patients/1001/chart").await, 303);
    let idle: Vec<_> = records(ward)
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

/// Issue #14: a passkey alone signs nobody in unless `[login] passwordless = true`: the
/// sign-in page does not offer it, and a post to its address starts nothing. A person without
/// passkeys is not offered one at the second step either.
#[tokio::test(flavor = "multi_thread")]
async fn a_passkey_alone_signs_in_only_where_the_officer_allows_it() {
    let s = presets::clinic_scenario("")
        .user("dr_lee", &["clinician"])
        .start()
        .await;
    let b = s.browser();
    let login = b.get("/.ward/login").await.text().await.unwrap();
    assert!(!login.contains("passkey-sign-in"), "{login}");
    let csrf = input_value(&login, "csrf");
    let resp = b
        .post(
            "/.ward/passkey-sign-in",
            &[("csrf", &csrf), ("return", "/")],
        )
        .await;
    assert_eq!(resp.status(), 401);
    let text = resp.text().await.unwrap();
    assert!(text.contains("not offered here"), "{text}");
    assert!(!text.contains("passkey-form"), "{text}");
    // The second step offers the code only.
    let resp = presets::password_step(&b, "dr_lee", PW).await;
    assert_eq!(resp.status(), 303);
    let mfa = b.get("/.ward/mfa").await.text().await.unwrap();
    assert!(
        !mfa.contains("passkey-form") && mfa.contains("name=\"code\""),
        "{mfa}"
    );
    // A forged passkey answer at the second step is a failed second step, not a pass.
    let resp = b
        .post(
            "/.ward/mfa",
            &[
                ("csrf", &input_value(&mfa, "csrf")),
                ("step", "made-up"),
                ("credential", "{\"id\":\"x\"}"),
            ],
        )
        .await;
    assert_eq!(resp.status(), 401);
    assert!(b.get("/patients/1001/chart").await.status() != 200);
    s.assert_audit(&[("event", "mfa-failed-passkey"), ("user", "dr_lee")])
        .await;
}

/// Issue #14: a role with `mfa = "phishing-resistant"` finishes sign-in with the person's
/// passkey only: the second step offers no code, and a code or recovery code sent anyway opens
/// nothing. The key is a real one from Chromium's virtual authenticator, made for ward's own
/// host (`tests/fixtures/passkey.json`).
#[tokio::test(flavor = "multi_thread")]
async fn a_role_that_needs_a_passkey_is_not_signed_in_with_a_code() {
    let s = Scenario::new()
        .own_host()
        .toml("[roles]\nofficer = { mfa = \"phishing-resistant\" }\n")
        .route("/**", "allow_roles = [\"officer\"]")
        .user("boss", &["officer"])
        .start()
        .await;
    let (_, entry) = chromium_passkey();
    ward::users::SecretStore::open(&s.ward.site.path("state"))
        .unwrap()
        .update(|st| st.users.get_mut("boss").unwrap().passkeys.push(entry))
        .unwrap();
    presets::settle().await;
    let b = s.browser();
    let resp = presets::password_step(&b, "boss", PW).await;
    assert_eq!(resp.status(), 303);
    let mfa = b.get("/.ward/mfa").await.text().await.unwrap();
    assert!(mfa.contains("passkey-form"), "{mfa}");
    assert!(
        !mfa.contains("name=\"code\"") && !mfa.contains("name=\"recovery\""),
        "{mfa}"
    );
    let csrf = input_value(&mfa, "csrf");
    for (field, value) in [
        ("code", s.code("boss").await),
        ("recovery", "AAAA-BBBB".into()),
    ] {
        let resp = b
            .post(
                "/.ward/mfa",
                &[("csrf", csrf.as_str()), (field, value.as_str())],
            )
            .await;
        assert_eq!(resp.status(), 401, "{field}");
        let text = resp.text().await.unwrap();
        assert!(text.contains("a code is not enough"), "{text}");
    }
    s.assert_audit(&[("event", "mfa-passkey-needed"), ("user", "boss")])
        .await;
    // Still only half signed in: nothing opens.
    assert!(b.get("/patients/1").await.status() != 200);
}
