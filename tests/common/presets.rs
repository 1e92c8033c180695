//! Scenarios that more than one attack file starts from.

use super::{Browser, PW, Running, Scenario, input_value};
use std::time::Duration;

/// The public name ward gives itself in [`vendor_scenario`].
pub const PUBLIC: &str = "clinic.example";

/// The outside tester's set-up (issue 16): the sample EHR, whose `/echo/…` shows what
/// arrived; `/billing/**` for officers only; the vendor `vic` may read but not change
/// `/echo/settings/**` (`no_body_for`); `/legacy/**` is public; a public address and a
/// plain-HTTP listener that only redirects. `sessions` goes under `[sessions]`.
pub fn vendor_scenario(sessions: &str) -> Scenario {
    Scenario::new()
        .sample_ehr()
        .server(&format!(
            "public_url = \"https://{PUBLIC}\"\npublic_port = 8443\nredirect_http = \"127.0.0.1:0\""
        ))
        .toml(&format!(
            "[sessions]\n{sessions}\n[roles]\nvendor_biller = {{}}\nofficer = {{}}\n"
        ))
        .route("/**", "allow_roles = [\"vendor_biller\", \"officer\"]")
        .route("/billing/**", "allow_roles = [\"officer\"]")
        .route(
            "/echo/settings/**",
            "allow_roles = [\"vendor_biller\", \"officer\"]\nno_body_for = [\"vendor_biller\"]",
        )
        .route("/legacy/**", "allow = \"public\"")
        .person("vic", &["vendor_biller"], Some("Acme Billing"), &[])
}

/// [`vendor_scenario`] started with `vic` signed in: the scenario, the browser and the
/// session cookie.
pub async fn start_vendor(sessions: &str) -> (Running, Browser, String) {
    let s = vendor_scenario(sessions).start().await;
    let (b, sid) = s.signed_in("vic").await;
    (s, b, sid)
}

/// ward's pages on a host of their own (`ward.localhost`, security review #20, high 2) in
/// front of two apps, `ehr` on `localhost` and `billing` on `billing.localhost`, open to
/// clinicians and officers; both may start break-glass (to the role `emergency`). `extra`
/// holds more tables (`[sessions]` …).
pub fn own_host_scenario(extra: &str) -> Scenario {
    Scenario::new()
        .own_host()
        .server("trusted_proxies = []")
        .toml(extra)
        .toml(
            "[roles]\nofficer = {}\nclinician = {}\nemergency = {}\n\
             [break_glass]\nallowed_roles = [\"clinician\", \"officer\"]\nemergency_roles = [\"emergency\"]\n",
        )
        .other_app("billing", "billing.localhost")
        .route("/**", "allow_roles = [\"clinician\", \"officer\"]")
        .route_of("billing", "/**", "allow_roles = [\"clinician\", \"officer\"]")
}

/// The break-glass grants file of a running scenario (empty when none).
pub fn grants(s: &Running) -> String {
    std::fs::read_to_string(s.ward.site.path("state/grants.json")).unwrap_or_default()
}

/// The accounts file of a running scenario.
pub fn users_toml(s: &Running) -> String {
    std::fs::read_to_string(s.ward.site.path("config/users.toml")).unwrap_or_default()
}

/// The sign-in set-up: an app open to clinicians and vendor billers, `/billing/**` to
/// billers, `/logo.png` public; three wrong tries lock an account for ten minutes. `extra`
/// holds more tables (`[sessions]` …).
pub fn clinic_scenario(extra: &str) -> Scenario {
    Scenario::new()
        .toml(extra)
        .toml(
            "[login]\nlockout_after = 3\nlockout_time = \"10m\"\n\
             [roles]\nclinician = {}\nbiller = {}\nvendor_biller = {}\n",
        )
        .route("/**", "allow_roles = [\"clinician\", \"vendor_biller\"]")
        .route(
            "/billing/**",
            "allow_roles = [\"biller\", \"vendor_biller\"]",
        )
        .route("/logo.png", "allow = \"public\"")
}

/// Waits until ward has read a change to the account files (it looks four times a second).
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(700)).await;
}

/// The single sign-on tests' policy after `[login]`: roles clinician, biller and officer, the
/// EHR at `upstream`, `/**` for clinicians and `/billing/**` for billers.
pub fn sso_clinic(upstream: &str) -> String {
    format!(
        "[roles]\nclinician = {{}}\nbiller = {{}}\nofficer = {{}}\n\
         [storage]\nusers = \"config/users.toml\"\nstate = \"state\"\n\
         [[apps]]\nname = \"ehr\"\nupstream = \"{upstream}\"\n\
         [[routes]]\napp = \"ehr\"\npath = \"/**\"\nallow_roles = [\"clinician\"]\n\
         [[routes]]\napp = \"ehr\"\npath = \"/billing/**\"\nallow_roles = [\"biller\"]\n"
    )
}

/// The sign-in page, begun at `/patients/1001/chart`.
pub async fn login_page(b: &Browser) -> String {
    b.get("/.ward/login?return=/patients/1001/chart")
        .await
        .text()
        .await
        .unwrap()
}

/// What the app saw of `b`'s request for `/debug/headers` names `user` with `roles`.
pub async fn assert_upstream_identity(b: &Browser, user: &str, roles: &str) {
    let j: serde_json::Value = b.get("/debug/headers").await.json().await.unwrap();
    let seen = super::seen_headers(&j);
    assert!(
        seen.contains(&("x-ward-user".into(), user.into())),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("x-ward-roles".into(), roles.into())),
        "{seen:?}"
    );
}

/// The password step of a sign-in begun at `/patients/1001/chart`; the answer.
pub async fn password_step(b: &Browser, user: &str, password: &str) -> reqwest::Response {
    let csrf = input_value(&login_page(b).await, "csrf");
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

/// Presses the single sign-on button labelled `label` (provider `provider`) on a sign-in page
/// begun at `/patients/1001/chart`; returns where ward sends the browser (the provider).
pub async fn start_sso(b: &Browser, provider: &str, label: &str) -> String {
    let form = login_page(b).await;
    assert!(form.contains(label), "no button '{label}' in {form}");
    let csrf = input_value(&form, "csrf");
    let r = b
        .post(
            &format!("/.ward/sso/{provider}"),
            &[("csrf", &csrf), ("return", "/patients/1001/chart")],
        )
        .await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    r.headers()["location"].to_str().unwrap().to_string()
}

/// The authenticator step with `code`; the answer.
pub async fn code_step(b: &Browser, code: &str) -> reqwest::Response {
    let form = b.get("/.ward/mfa").await.text().await.unwrap();
    let csrf = input_value(&form, "csrf");
    b.post("/.ward/mfa", &[("csrf", &csrf), ("code", code)])
        .await
}

/// Signs `user` in at `/patients/1001/chart` with a fresh code, asserting that each step
/// leads on and the last back to the chart.
pub async fn sign_in_to_chart(s: &Running, b: &Browser, user: &str) {
    let resp = password_step(b, user, PW).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/.ward/mfa");
    let resp = code_step(b, &s.code(user).await).await;
    assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap());
    assert_eq!(resp.headers()["location"], "/patients/1001/chart");
}

/// The status of a GET of `path` in `b`.
pub async fn status_of(b: &Browser, path: &str) -> u16 {
    b.get(path).await.status().as_u16()
}
