//! `ward explain` agrees with the proxy: the same table of requests goes to a
//! running ward (through a trusted proxy hop, so the client address can vary)
//! and to `ward explain`, and both must give the same answer.

use crate::common::*;
use std::process::Command;
use std::time::Duration;

fn policy(upstream: &str) -> String {
    format!(
        "practice = \"Test Clinic\"\nallow_from = [\"office\", \"vendor_vpn\"]\n{{server}}trusted_proxies = [\"127.0.0.1/32\"]\nward_host = \"{WARD_HOST}\"\n\
         [networks]\noffice = [\"203.0.113.0/24\"]\nvendor_vpn = [\"198.51.100.7/32\"]\n\
         [roles]\nclinician = {{}}\nofficer = {{}}\nvendor_biller = {{}}\nemergency = {{}}\n\
         [break_glass]\nallowed_roles = [\"clinician\"]\nemergency_roles = [\"emergency\"]\nduration = \"1h\"\n\
         [storage]\nusers = \"config/users.toml\"\nstate = \"state\"\n\
         [[apps]]\nname = \"ehr\"\nhost = \"ehr.localhost\"\nupstream = \"{upstream}\"\n\
         [[routes]]\napp = \"ehr\"\npath = \"/patients/**\"\nallow_roles = [\"clinician\"]\n\
         [[routes]]\napp = \"ehr\"\npath = \"/billing/**\"\nallow_roles = [\"vendor_biller\"]\n\
         [[routes]]\napp = \"ehr\"\npath = \"/admin/**\"\nmethods = [\"GET\"]\nallow_roles = [\"clinician\", \"officer\"]\n\
         [[routes]]\napp = \"ehr\"\npath = \"/echo/emergency/**\"\nallow_roles = [\"emergency\"]\n\
         [[routes]]\napp = \"ehr\"\npath = \"/logo.png\"\nallow = \"public\"\n"
    )
}

/// What the proxy did, in `ward explain`'s words: a refusal with the reason its audit record
/// gives, so that explain's reason is compared too, not only allow or deny. The upstream is the
/// recording one, which answers 200 to everything it gets.
fn proxy_words(ward: &Ward, resp: &reqwest::Response) -> String {
    match resp.status().as_u16() {
        200 => "ALLOW".into(),
        303 => "SIGN IN FIRST".into(),
        403 => {
            let rec = audit_of(&ward.site, &request_id(resp));
            format!("DENY ({})", rec["reason"].as_str().unwrap_or("?"))
        }
        other => format!("OTHER {other}"),
    }
}

fn explain(ward: &Ward, user: Option<&str>, ip: &str, method: &str, path: &str) -> String {
    let mut cmd = Command::new(WARD);
    cmd.current_dir(ward.site.dir.path())
        .args(["explain", "--config", "ward.toml", "--ip", ip]);
    if let Some(u) = user {
        cmd.args(["--user", u]);
    }
    let out = cmd
        .args([method, &format!("https://ehr.localhost{path}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn sign_in(ward: &Ward, user: &str, secret: &[u8], offset: i64, ip: &str) -> Browser {
    let b = Browser::on(ward, "ehr.localhost");
    b.header("x-forwarded-for", ip);
    assert_eq!(
        sign_in_with(&b, user, PW, secret, offset).await,
        303,
        "{user}"
    );
    b
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_agrees_with_the_proxy() {
    let up = Upstream::http().await;
    let ward = Ward::start(&policy(&up.url));
    let lee = enrolled_user(&ward.site, "dr_lee", &["clinician"], PW, None, None);
    let vic = enrolled_user_from(
        &ward.site,
        "vic",
        &["vendor_biller"],
        PW,
        Some("Acme Billing"),
        Some("2099-12-31"),
        &["vendor_vpn"],
    );
    let _old = enrolled_user(
        &ward.site,
        "old_vendor",
        &["vendor_biller"],
        PW,
        Some("Acme Billing"),
        Some("2020-01-31"),
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    let office = "203.0.113.5";
    let vpn = "198.51.100.7";
    let lee_b = sign_in(&ward, "dr_lee", &lee, 0, office).await;
    let vic_b = sign_in(&ward, "vic", &vic, 0, vpn).await;
    let nobody = Browser::on(&ward, "ehr.localhost");

    // (who, browser, client address, method, path, expected decision)
    type Case<'a> = (
        Option<&'a str>,
        &'a Browser,
        &'a str,
        &'a str,
        &'a str,
        &'a str,
    );
    let table: Vec<Case> = vec![
        (
            Some("dr_lee"),
            &lee_b,
            office,
            "GET",
            "/patients/1001/chart",
            "ALLOW",
        ),
        (
            Some("dr_lee"),
            &lee_b,
            office,
            "GET",
            "/billing",
            "DENY (role)",
        ),
        (
            Some("dr_lee"),
            &lee_b,
            office,
            "POST",
            "/admin/x",
            "DENY (method)",
        ),
        (
            Some("dr_lee"),
            &lee_b,
            "192.0.2.50",
            "GET",
            "/patients/1001/chart",
            "DENY (network)",
        ),
        (Some("vic"), &vic_b, vpn, "GET", "/billing", "ALLOW"),
        (
            Some("vic"),
            &vic_b,
            office,
            "GET",
            "/billing",
            "DENY (network)",
        ),
        (None, &nobody, office, "GET", "/logo.png", "ALLOW"),
        (
            None,
            &nobody,
            office,
            "GET",
            "/patients/1001/chart",
            "SIGN IN FIRST",
        ),
        (
            None,
            &nobody,
            office,
            "GET",
            "/nothing/here",
            "DENY (no-route)",
        ),
        (
            Some("dr_lee"),
            &lee_b,
            office,
            "GET",
            "/echo/emergency/chart",
            "DENY (role)",
        ),
    ];
    for (who, browser, ip, method, path, want) in &table {
        let text = explain(&ward, *who, ip, method, path);
        assert!(
            text.starts_with(&format!("Decision: {want}")),
            "explain {who:?} {method} {path} from {ip}:\n{text}"
        );
        browser.header("x-forwarded-for", ip);
        let resp = if *method == "GET" {
            browser.get(path).await
        } else {
            browser.post(path, &[]).await
        };
        assert_eq!(
            proxy_words(&ward, &resp),
            *want,
            "proxy {who:?} {method} {path} from {ip}, explain says {want}"
        );
    }

    // An expired vendor cannot sign in; explain says so too.
    let text = explain(&ward, Some("old_vendor"), vpn, "GET", "/billing");
    assert!(
        text.contains("[FAIL] account: old_vendor is active, end date 2020-01-31"),
        "{text}"
    );
    assert!(!text.starts_with("Decision: ALLOW"));

    // Break-glass: the officer grants emergency access; both now allow, then both refuse after it ends.
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
            "patient arrested in waiting room",
            "--for",
            "3s",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    lee_b.header("x-forwarded-for", office);
    let text = explain(
        &ward,
        Some("dr_lee"),
        office,
        "GET",
        "/echo/emergency/chart",
    );
    assert!(text.starts_with("Decision: ALLOW"), "{text}");
    assert!(text.contains("break-glass"), "{text}");
    assert_eq!(lee_b.get("/echo/emergency/chart").await.status(), 200);
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let text = explain(
        &ward,
        Some("dr_lee"),
        office,
        "GET",
        "/echo/emergency/chart",
    );
    assert!(text.starts_with("Decision: DENY (role)"), "{text}");
    assert_eq!(lee_b.get("/echo/emergency/chart").await.status(), 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn break_glass_from_the_page_is_recorded_and_limited_to_permitted_roles() {
    let ehr = Ehr::start();
    let ward = Ward::start(&policy(&ehr.url()));
    let lee = enrolled_user(&ward.site, "dr_lee", &["clinician"], PW, None, None);
    let vic = enrolled_user_from(
        &ward.site,
        "vic",
        &["vendor_biller"],
        PW,
        Some("Acme Billing"),
        Some("2099-12-31"),
        &["vendor_vpn"],
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    let b = sign_in(&ward, "dr_lee", &lee, 0, "203.0.113.5").await;
    assert_eq!(b.get("/echo/emergency/x").await.status(), 403);
    // The break-glass page is on ward's own host.
    let page = ward.url_for(WARD_HOST, "/.ward/break-glass");
    let form = b.get(&page).await.text().await.unwrap();
    let csrf = input_value(&form, "csrf");
    // A reason is required.
    assert_eq!(
        b.post(&page, &[("csrf", &csrf), ("reason", "now")])
            .await
            .status(),
        400
    );
    let r = b
        .post(
            &page,
            &[
                ("csrf", &csrf),
                ("reason", "unconscious patient, chart needed"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = b.get("/echo/emergency/x").await;
    assert_eq!(r.status(), 200);
    // Every request under it is marked as emergency access in the audit trail.
    let rec = audit_of(&ward.site, &request_id(&r));
    assert_eq!(rec["emergency"], true, "{rec}");
    ward.proc
        .stderr
        .wait_for("BREAK-GLASS", Duration::from_secs(5));
    let grants = std::fs::read_to_string(ward.site.path("state/grants.json")).unwrap();
    assert!(grants.contains("unconscious patient, chart needed"));
    // The audit trail (not only the editable grants.json) holds the grant and its reason.
    let id = serde_json::from_str::<serde_json::Value>(&grants).unwrap()["grants"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let trail = audit_text(&ward.site);
    let record = trail
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r["event"] == "break-glass")
        .unwrap_or_else(|| panic!("no break-glass record in:\n{trail}"));
    assert_eq!(record["user"], "dr_lee");
    let grant = record["grant"].as_str().unwrap();
    assert!(grant.contains(&id), "{record}");
    assert!(
        grant.contains("unconscious patient, chart needed"),
        "{record}"
    );
    // ...and ward's log does not.
    let leaked: Vec<String> = ward
        .logs()
        .into_iter()
        .filter(|l| l.contains("unconscious patient"))
        .collect();
    assert!(leaked.is_empty(), "{leaked:#?}");
    // A vendor's role does not permit it.
    let v = sign_in(&ward, "vic", &vic, 0, "198.51.100.7").await;
    assert_eq!(v.get(&page).await.status(), 403);
    // On the app's host it is not served: page loads go to ward's own host.
    let r = v.get("/.ward/break-glass").await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], page.as_str());
}

/// A policy whose routes carry what the proxy enforces after allowing: exports,
/// caps, redaction, body rules and idle limits.
fn enforcing_policy(upstream: &str) -> String {
    format!(
        "practice = \"Test Clinic\"\nallow_from = [\"office\", \"vendor_vpn\"]\n{{server}}trusted_proxies = [\"127.0.0.1/32\"]\nward_host = \"{WARD_HOST}\"\n\
         [networks]\noffice = [\"203.0.113.0/24\"]\nvendor_vpn = [\"198.51.100.7/32\"]\n\
         [export]\nvendors = \"block\"\n\
         [roles]\nclinician = {{ idle_timeout = \"30m\" }}\nbiller = {{ export = \"block\" }}\nvendor_biller = {{}}\n\
         [storage]\nusers = \"config/users.toml\"\nstate = \"state\"\n\
         [[apps]]\nname = \"ehr\"\nhost = \"ehr.localhost\"\nupstream = \"{upstream}\"\n\
         [[routes]]\napp = \"ehr\"\npath = \"/patients/**\"\nallow_roles = [\"clinician\"]\n\
         [[routes]]\napp = \"ehr\"\npath = \"/patients/*/chart\"\nallow_roles = [\"clinician\"]\nidle_timeout = \"2s\"\n\
         [[routes]]\napp = \"ehr\"\npath = \"/reports/**\"\nallow_roles = [\"biller\", \"clinician\", \"vendor_biller\"]\nmax_response = \"1MB\"\nrate_limit = \"3/minute\"\n\
         [[routes]]\napp = \"ehr\"\npath = \"/echo/forwarding/**\"\nallow_roles = [\"clinician\", \"vendor_biller\"]\nno_body_for = [\"vendor_biller\"]\n"
    )
}

/// The value `ward explain` gives for one enforced rule (`exports:`, `idle logoff:` …).
fn enforced(text: &str, name: &str) -> String {
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix(name))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no '{name}' in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_states_exports_caps_bodies_and_idle_limits_as_the_proxy_enforces_them() {
    let ehr = Ehr::start();
    let ward = Ward::start(&enforcing_policy(&ehr.url()));
    let lee = enrolled_user(&ward.site, "dr_lee", &["clinician"], PW, None, None);
    let bea = enrolled_user(&ward.site, "bea", &["biller"], PW, None, None);
    let vic = enrolled_user(
        &ward.site,
        "vic",
        &["vendor_biller"],
        PW,
        Some("Acme Billing"),
        Some("2099-12-31"),
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    let office = "203.0.113.5";
    let vpn = "198.51.100.7";

    // Exports: blocked for the biller's role, then allowed under a grant.
    let text = explain(&ward, Some("bea"), office, "GET", "/reports/patients.csv");
    assert!(text.starts_with("Decision: ALLOW"), "{text}");
    assert_eq!(
        enforced(&text, "exports:"),
        "blocked: a role of the person blocks exports"
    );
    assert_eq!(
        enforced(&text, "size cap:"),
        "answers over 1000000 bytes are refused"
    );
    assert_eq!(enforced(&text, "rate cap:"), "3 requests per 1m per person");
    let b = sign_in(&ward, "bea", &bea, 0, office).await;
    assert_eq!(b.get("/reports/patients.csv").await.status(), 403);
    grant_export(
        ward.site.dir.path(),
        "ward.toml",
        "bea",
        "/reports/**",
        "1h",
        "quarterly audit",
    )
    .await;
    let text = explain(&ward, Some("bea"), office, "GET", "/reports/patients.csv");
    let exports = enforced(&text, "exports:");
    assert!(exports.starts_with("allowed under grant "), "{text}");
    assert_eq!(b.get("/reports/patients.csv").await.status(), 200);
    // The rate cap: three requests in the minute, then no more.
    assert_eq!(b.get("/reports/patients.csv").await.status(), 200);
    assert_eq!(b.get("/reports/patients.csv").await.status(), 429);

    // Vendor staff: the vendor default blocks; the proxy agrees.
    let text = explain(&ward, Some("vic"), vpn, "GET", "/reports/patients.csv");
    assert_eq!(
        enforced(&text, "exports:"),
        "blocked: vendor staff may not export unless a role or the route allows it"
    );
    let v = sign_in(&ward, "vic", &vic, 0, vpn).await;
    assert_eq!(v.get("/reports/patients.csv").await.status(), 403);

    // Request bodies: refused to the vendor on the sharing settings, not to the clinician.
    let text = explain(&ward, Some("vic"), vpn, "POST", "/echo/forwarding/rules");
    assert!(
        enforced(&text, "request bodies:").starts_with("refused"),
        "{text}"
    );
    assert_eq!(
        v.post("/echo/forwarding/rules", &[("to", "x@example.org")])
            .await
            .status(),
        403
    );
    let text = explain(
        &ward,
        Some("dr_lee"),
        office,
        "POST",
        "/echo/forwarding/rules",
    );
    assert_eq!(enforced(&text, "request bodies:"), "allowed");
    let l = sign_in(&ward, "dr_lee", &lee, 0, office).await;
    assert_eq!(
        l.post("/echo/forwarding/rules", &[("to", "x@example.org")])
            .await
            .status(),
        200
    );

    // Idle limits: the clinician's 30 minutes, the chart's own 2 seconds.
    let text = explain(&ward, Some("dr_lee"), office, "GET", "/patients/1001");
    assert_eq!(enforced(&text, "idle logoff:"), "after 30m without use");
    let text = explain(&ward, Some("dr_lee"), office, "GET", "/patients/1001/chart");
    assert_eq!(enforced(&text, "idle logoff:"), "after 2s without use");
    assert_eq!(l.get("/patients/1001/chart").await.status(), 200);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let r = l.get("/patients/1001/chart").await;
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .contains("reason=idle"),
        "{:?}",
        r.headers()
    );
}

/// Issue #11.7: a person's own networks (`--allow-from`) hold at sign-in, as
/// `ward user` says, not only for app use.
#[tokio::test(flavor = "multi_thread")]
async fn a_person_limited_to_their_networks_cannot_sign_in_from_elsewhere() {
    let ehr = Ehr::start();
    let ward = Ward::start(&policy(&ehr.url()));
    let vic = enrolled_user_from(
        &ward.site,
        "vic",
        &["vendor_biller"],
        PW,
        Some("Acme Billing"),
        Some("2099-12-31"),
        &["vendor_vpn"],
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    // From the practice's office network, which is allowed for ward but not for vic.
    let b = Browser::on(&ward, "ehr.localhost");
    b.header("x-forwarded-for", "203.0.113.5");
    assert_eq!(sign_in_with(&b, "vic", PW, &vic, 0).await, 401);
    assert!(b.cookie("__Host-ward-session").is_none());
    let trail = audit_text(&ward.site);
    assert!(trail.contains("login-wrong-network"), "{trail}");
    // From vic's own network: signed in.
    let b = sign_in(&ward, "vic", &vic, 30, "198.51.100.7").await;
    assert_eq!(b.get("/billing/x").await.status(), 404);
}

/// Issue #11.7: a person with one role that allows exports and one that blocks
/// them is blocked, and the proxy, `ward explain` and the access review say so alike.
#[tokio::test(flavor = "multi_thread")]
async fn mixed_export_roles_are_stated_alike_by_the_proxy_explain_and_the_review() {
    let ehr = Ehr::start();
    let ward = Ward::start(
        &enforcing_policy(&ehr.url())
            .replace(
                "vendor_biller = {}\n",
                "vendor_biller = {}\nreports = { export = \"allow\" }\n",
            )
            .replace(
                "allow_roles = [\"biller\", \"clinician\", \"vendor_biller\"]",
                "allow_roles = [\"biller\", \"clinician\", \"vendor_biller\", \"reports\"]",
            ),
    );
    let mixed = enrolled_user(&ward.site, "mo", &["biller", "reports"], PW, None, None);
    let rita = enrolled_user(&ward.site, "rita", &["reports"], PW, None, None);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let office = "203.0.113.5";

    let text = explain(&ward, Some("mo"), office, "GET", "/reports/patients.csv");
    assert_eq!(
        enforced(&text, "exports:"),
        "blocked: a role of the person blocks exports"
    );
    let text = explain(&ward, Some("rita"), office, "GET", "/reports/patients.csv");
    assert_eq!(enforced(&text, "exports:"), "allowed");
    let b = sign_in(&ward, "mo", &mixed, 0, office).await;
    assert_eq!(b.get("/reports/patients.csv").await.status(), 403);
    let b = sign_in(&ward, "rita", &rita, 0, office).await;
    assert_eq!(b.get("/reports/patients.csv").await.status(), 200);

    let out = Command::new(WARD)
        .current_dir(ward.site.dir.path())
        .args([
            "report",
            "access",
            "--config",
            "ward.toml",
            "--format",
            "csv",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = String::from_utf8(out.stdout).unwrap();
    let line = |name: &str| {
        csv.lines()
            .find(|l| l.starts_with(&format!("{name},")))
            .unwrap_or_else(|| panic!("no {name} in:\n{csv}"))
            .to_string()
    };
    assert!(!line("mo").contains("grants export"), "{csv}");
    assert!(line("rita").contains("a role grants export"), "{csv}");
}

/// Issue #14: a `phishing-resistant` route refuses a code sign-in; the proxy and `ward
/// explain` say so alike, and explain says which sign-in it assumed.
#[tokio::test(flavor = "multi_thread")]
async fn a_phishing_resistant_route_is_explained_as_the_proxy_refuses_it() {
    let ehr = Ehr::start();
    let text = format!(
        "{}[[routes]]\napp = \"ehr\"\npath = \"/controlled/**\"\nallow_roles = [\"clinician\"]\nmfa = \"phishing-resistant\"\n",
        policy(&ehr.url())
    );
    let ward = Ward::start(&text);
    let lee = enrolled_user(&ward.site, "dr_lee", &["clinician"], PW, None, None);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let b = sign_in(&ward, "dr_lee", &lee, 0, "203.0.113.5").await;
    let resp = b.get("/controlled/1").await;
    let proxy = proxy_words(&ward, &resp);
    assert_eq!(proxy, "DENY (passkey-needed)");
    let out = explain(&ward, Some("dr_lee"), "203.0.113.5", "GET", "/controlled/1");
    assert!(
        out.contains("Decision: DENY (passkey-needed)"),
        "explain must agree with the proxy ({proxy}):\n{out}"
    );
    assert!(
        out.contains("none: decided as for a sign-in with the authenticator code"),
        "{out}"
    );
    // The ordinary page is open to the same sign-in (the sample EHR answers it itself).
    let resp = b.get("/patients/1").await;
    assert_ne!(resp.status(), 403, "{}", resp.text().await.unwrap());
}
