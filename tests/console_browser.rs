//! The officer's console in a real browser (headless Debian chromium through chromedriver):
//! the officer signs in with password and authenticator code, adds a vendor, ends the live
//! session of a clinician signed in elsewhere (whose next request goes to sign-in), issues an
//! export grant, and a clinician is refused the console. Every console page is saved as a
//! screenshot in `target/screenshots/console/` (named in the README).
//!
//! Needs `chromium` and `chromedriver` (`tests/run` installs them when missing).

use crate::common::browser::*;
use crate::common::*;
use fantoccini::{Client, Locator};
use std::time::{Duration, Instant};
use ward::auth::totp::code_at;

fn start() -> (Ehr, Ward) {
    let ehr = Ehr::start();
    let site = Site::new();
    std::fs::create_dir_all(site.path("config")).unwrap();
    std::fs::write(
        site.path("config/users.toml"),
        "# Test Clinic's people. (The officer's own notes stay when ward edits this file.)\n",
    )
    .unwrap();
    let policy = format!(
        r#"practice = "Test Clinic"
{server}ward_host = "{ward_host}"
[storage]
users = "config/users.toml"
state = "state"

[roles]
officer = {{ description = "Security officer" }}
clinician = {{ description = "Doctors and nurses" }}
vendor_biller = {{ description = "Acme Billing staff", export = "block" }}
reports = {{ description = "Runs the monthly reports", export = "allow" }}

[break_glass]
allowed_roles = ["clinician"]
emergency_roles = ["reports"]

[[apps]]
name = "ehr"
host = "localhost"
upstream = "{upstream}"

[[routes]]
app = "ehr"
path = "/**"
allow_roles = ["clinician", "vendor_biller", "officer"]
"#,
        server = server_section(&site),
        upstream = ehr.url(),
        ward_host = WARD_HOST,
    );
    let config = site.path("ward.toml");
    std::fs::write(&config, policy).unwrap();
    let ward = Ward::start_in(site, config);
    (ehr, ward)
}

/// A screenshot of the whole page (the window is stretched to the page's height first).
async fn page_shot(client: &Client, name: &str) {
    let height = client
        .execute(
            "return Math.max(document.documentElement.scrollHeight, document.body.scrollHeight);",
            vec![],
        )
        .await
        .ok()
        .and_then(|v| v.as_u64())
        .unwrap_or(900);
    let height = height.clamp(700, 4000) as u32;
    client.set_window_size(1280, height + 140).await.unwrap();
    screenshot(client, &format!("console/{name}.png")).await;
    client.set_window_size(1280, 900).await.unwrap();
}

/// Signs `user` in over plain HTTP (the person at another desk).
async fn sign_in_http(b: &Browser, user: &str, secret: &[u8]) {
    assert_eq!(sign_in_with(b, user, PW, secret, 0).await, 303, "{user}");
}

async fn open(client: &Client, ward: &Ward, path: &str, heading: &str) {
    client.goto(&ward.url_for(WARD_HOST, path)).await.unwrap();
    let h1 = client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("main h1"))
        .await
        .unwrap_or_else(|e| panic!("{path}: no heading ({e})"))
        .text()
        .await
        .unwrap();
    assert_eq!(h1, heading, "{path}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_officer_uses_the_console_in_a_real_browser() {
    let started = Instant::now();
    let (_ehr, ward) = start();
    let boss = enrolled_user(&ward.site, "boss", &["officer"], PW, None, None);
    enrolled_user(&ward.site, "deputy", &["officer"], PW, None, None);
    let lee = enrolled_user(&ward.site, "dr_lee", &["clinician"], PW, None, None);
    let kim = enrolled_user(
        &ward.site,
        "nurse_kim",
        &["clinician", "reports"],
        PW,
        None,
        None,
    );
    enrolled_user(
        &ward.site,
        "acme_jo",
        &["vendor_biller"],
        PW,
        Some("Acme Billing"),
        Some("2031-06-30"),
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    // A clinician signed in at another desk.
    let clinician = Browser::new(&ward);
    sign_in_http(&clinician, "dr_lee", &lee).await;
    assert_eq!(clinician.get("/patients/1001/chart").await.status(), 200);

    let driver = ChromeDriver::start();
    let profile = tempfile::tempdir().unwrap();
    let client = open_browser(&driver, profile.path()).await;
    let result = tokio::time::timeout(
        Duration::from_secs(240),
        walk_through(&client, &ward, &boss, &kim, &clinician),
    )
    .await;
    if result.is_err() {
        panic!(
            "the console walk-through took over 240 s; ward's log:\n{}",
            ward.logs().join("\n")
        );
    }
    client.close().await.unwrap();
    println!("whole test took {:?}", started.elapsed());
}

async fn walk_through(client: &Client, ward: &Ward, boss: &[u8], kim: &[u8], clinician: &Browser) {
    // ---- Not signed in: the console sends the browser to sign in.
    client
        .goto(&ward.url_for(WARD_HOST, "/.ward/officer/"))
        .await
        .unwrap();
    wait_for_path(client, "/.ward/login", Duration::from_secs(10)).await;

    // ---- The officer signs in with password and authenticator code.
    sign_in_on_ward_host(client, ward, "boss", &code_at(boss, unix_now())).await;
    open(client, ward, "/.ward/officer/", "Overview").await;
    let text = body_text(client).await;
    assert!(text.contains("Signed in as boss"), "{text}");
    assert!(text.contains("live sessions"), "{text}");
    page_shot(client, "overview").await;

    // ---- Add a vendor: the one-time link is shown once.
    open(client, ward, "/.ward/officer/users", "People").await;
    page_shot(client, "users").await;
    add_vendor_in_console(client, "Pat Okafor (Acme Billing)", "Acme Billing").await;
    let found = client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#link"))
        .await;
    let Ok(field) = found else {
        page_shot(client, "failed-add").await;
        panic!(
            "no one-time link; the page says:\n{}",
            body_text(client).await
        );
    };
    let link = field
        .prop("value")
        .await
        .unwrap()
        .expect("the link has a value");
    assert!(link.contains("/.ward/enroll?token="), "{link}");
    let text = body_text(client).await;
    assert!(text.contains("Added acme_pat"), "{text}");
    page_shot(client, "user-added").await;
    let users = std::fs::read_to_string(ward.site.path("config/users.toml")).unwrap();
    assert!(users.starts_with("# Test Clinic's people."), "{users}");
    assert!(users.contains("[users.acme_pat]"), "{users}");
    assert!(users.contains("expires = 2031-06-30"), "{users}");

    open(client, ward, "/.ward/officer/users/dr_lee", "Test dr_lee").await;
    page_shot(client, "person").await;

    // ---- End the clinician's live session: their next request goes to sign-in.
    open(client, ward, "/.ward/officer/sessions", "Live sessions").await;
    page_shot(client, "sessions").await;
    click(client, "button[aria-label='End this session of dr_lee']").await;
    let notice = client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(".notice"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        notice.contains("The session of dr_lee has ended"),
        "{notice}"
    );
    page_shot(client, "session-ended").await;
    let resp = clinician.get("/patients/1001/chart").await;
    assert_eq!(resp.status(), 303);
    assert!(
        resp.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/.ward/login?return=")
    );

    // ---- Grant an export.
    open(client, ward, "/.ward/officer/grants", "Grants").await;
    client
        .find(Locator::Css("#user"))
        .await
        .unwrap()
        .select_by_value("acme_jo")
        .await
        .unwrap();
    fill(client, "#route", "/reports/**").await;
    fill(client, "#duration", "4h").await;
    fill(client, "#reason", "Year-end statements for the auditors").await;
    click(
        client,
        "form[action='/.ward/officer/grants/export'] button[type=submit]",
    )
    .await;
    let notice = client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(".notice"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        notice.contains("acme_jo may export from /reports/**"),
        "{notice}"
    );
    page_shot(client, "grants").await;

    // ---- The other pages.
    open(
        client,
        ward,
        "/.ward/officer/audit?since=1h&kind=officer",
        "Audit trail",
    )
    .await;
    let text = body_text(client).await;
    assert!(
        text.contains("user-added") && text.contains("session-ended"),
        "{text}"
    );
    page_shot(client, "audit").await;
    open(client, ward, "/.ward/officer/review", "Access review").await;
    let text = body_text(client).await;
    assert!(text.contains("a role grants export (reports)"), "{text}");
    page_shot(client, "review").await;
    client
        .goto(&ward.url_for(WARD_HOST, "/.ward/officer/review.html"))
        .await
        .unwrap();
    let title = client.title().await.unwrap();
    assert!(title.starts_with("Access review — Test Clinic"), "{title}");
    page_shot(client, "review-printable").await;
    open(client, ward, "/.ward/officer/policy", "Policy").await;
    page_shot(client, "policy").await;
    open(client, ward, "/.ward/officer/lockdown", "Lock down").await;
    let text = body_text(client).await;
    assert!(text.contains("Everyone from Acme Billing"), "{text}");
    page_shot(client, "lockdown").await;

    // ---- A clinician is refused the console.
    client
        .goto(&ward.url_for(WARD_HOST, "/.ward/logout"))
        .await
        .unwrap();
    submit(client).await;
    wait_for_path(client, "/.ward/logged-out", Duration::from_secs(10)).await;
    sign_in_on_ward_host(client, ward, "nurse_kim", &code_at(kim, unix_now())).await;
    client
        .goto(&ward.url_for(WARD_HOST, "/.ward/officer/"))
        .await
        .unwrap();
    let text = body_text(client).await;
    assert!(
        text.contains("Your account does not have the officer role"),
        "{text}"
    );
    assert!(!text.contains("Live sessions"), "{text}");
    page_shot(client, "refused").await;
}
