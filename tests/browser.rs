//! A real browser (headless Debian chromium through chromedriver) goes through what a new
//! person does: enrollment link, password and authenticator, sign-in with MFA, the chart,
//! and the screen clearing itself when the page is left alone.
//!
//! Needs `chromium` and `chromedriver` (`tests/run` installs them when missing).

use crate::common::browser::*;
use crate::common::*;
use fantoccini::{Client, Locator};
use std::process::Command;
use std::time::{Duration, Instant};
use ward::auth::totp::{code_at, decode_secret};

const PASSPHRASE: &str = "maple orbit candle harbor 42";

/// Starts ward with one clinician-only EHR, 20 s idle logoff and an empty users.toml.
fn start_ward(ehr: &Ehr) -> Ward {
    let site = Site::new();
    let policy = format!(
        r#"practice = "Test Clinic"
{server}
[sessions]
idle_timeout = "20s"

[storage]
users = "config/users.toml"
state = "state"

[roles]
clinician = {{}}

[[apps]]
name = "ehr"
upstream = "{upstream}"

[[routes]]
app = "ehr"
path = "/**"
allow_roles = ["clinician"]
"#,
        server = server_section(&site),
        upstream = ehr.url(),
    );
    let config = site.path("ward.toml");
    std::fs::write(&config, policy).unwrap();
    std::fs::create_dir_all(site.path("config")).unwrap();
    std::fs::write(site.path("config/users.toml"), "").unwrap();
    Ward::start_in(site, config)
}

/// `ward user add dr_lee` as the officer runs it; returns the enrollment link on this ward.
fn add_dr_lee(ward: &Ward) -> String {
    let out = Command::new(WARD)
        .arg("user")
        .arg("--config")
        .arg(&ward.config)
        .args(["add", "dr_lee", "--roles", "clinician"])
        .args(["--display-name", "Dr. Alex Lee"])
        .current_dir(ward.site.dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ward user add failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let link = stdout
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("https://") && l.contains("/.ward/enroll?token="))
        .unwrap_or_else(|| panic!("no enrollment link in:\n{stdout}"));
    // The printed host comes from the policy (port 0 here); the browser needs the real port.
    let token = link.split("token=").nth(1).unwrap();
    ward.url(&format!("/.ward/enroll?token={token}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_person_enrolls_signs_in_and_the_screen_clears_when_idle() {
    let started = Instant::now();
    let ehr = Ehr::start();
    let ward = start_ward(&ehr);
    let enroll_link = add_dr_lee(&ward);

    let driver = ChromeDriver::start();
    let profile = tempfile::tempdir().unwrap();
    let client = open_browser(&driver, profile.path()).await;
    println!("browser up after {:?}", started.elapsed());

    // Bounded as a whole too, so a hung WebDriver call cannot hold the test forever.
    let result = tokio::time::timeout(
        Duration::from_secs(240),
        walk_through(&client, &ward, &enroll_link),
    )
    .await;
    if result.is_err() {
        panic!(
            "the browser walk-through took over 240 s; ward's log:\n{}",
            ward.logs().join("\n")
        );
    }
    client.close().await.unwrap();
    println!("whole test took {:?}", started.elapsed());
}

async fn walk_through(client: &Client, ward: &Ward, enroll_link: &str) {
    // ---- Enrollment: password, authenticator key, first code.
    client.goto(enroll_link).await.unwrap();
    let key = client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#key"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .expect("#key has a value");
    let secret = decode_secret(&key).unwrap_or_else(|| panic!("key {key:?} is not base32"));
    fill(client, "#password", PASSPHRASE).await;
    fill(client, "#confirm", PASSPHRASE).await;
    fill(client, "#code", &code_at(&secret, unix_now())).await;
    submit(client).await;
    let ready = client
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("ul.codes"))
        .await;
    if let Err(e) = ready {
        panic!(
            "no recovery codes ({e}); the page says:\n{}",
            body_text(client).await
        );
    }
    let ready = body_text(client).await;
    assert!(ready.contains("Account ready"), "{ready}");
    let recovery = client.find_all(Locator::Css("ul.codes li")).await.unwrap();
    assert_eq!(recovery.len(), 10, "{ready}");

    // ---- Sign in where a person would start: the chart they want to see.
    let chart = ward.url("/patients/1001/chart");
    client.goto(&chart).await.unwrap();
    let login = wait_for_path(client, "/.ward/login?return=", Duration::from_secs(10)).await;
    assert!(login.contains("patients%2F1001%2Fchart"), "{login}");
    fill(client, "#username", "dr_lee").await;
    fill(client, "#password", PASSPHRASE).await;
    submit(client).await;
    wait_for_path(client, "/.ward/mfa", Duration::from_secs(20)).await;
    // The enrollment used this 30 s step; ward takes one step of drift but no step twice.
    fill(client, "#code", &code_at(&secret, unix_now() + 30)).await;
    submit(client).await;
    wait_for_path(client, "/patients/1001/chart", Duration::from_secs(20)).await;
    let signed_in_at = Instant::now();
    let page = body_text(client).await;
    assert!(page.contains("Margaret Ellison"), "{page}");
    assert!(page.contains("Signed in through ward as dr_lee"), "{page}");
    screenshot(client, "chart.png").await;

    // ---- Hands off: only WebDriver queries, which send nothing to ward.
    let mut banner_seen = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    let signed_out_url = loop {
        let url = client.current_url().await.unwrap();
        if url.path() == "/.ward/logged-out" {
            break url;
        }
        if banner_seen.is_none()
            && let Some(banner) = client
                .find_all(Locator::Css("#ward-idle-warning"))
                .await
                .unwrap()
                .into_iter()
                .next()
        {
            let text = banner.text().await.unwrap_or_default();
            println!("idle warning after {:?}: {text}", signed_in_at.elapsed());
            banner_seen = Some(signed_in_at.elapsed());
            screenshot(client, "idle-warning.png").await;
        }
        assert!(
            Instant::now() < deadline,
            "not signed out after 60 s idle (banner seen: {banner_seen:?}); still at {url}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!("signed out after {:?}", signed_in_at.elapsed());
    assert!(
        banner_seen.is_some(),
        "the page went to {signed_out_url} without first showing #ward-idle-warning"
    );
    assert_eq!(
        signed_out_url.query(),
        Some("reason=idle"),
        "{signed_out_url}"
    );
    let page = body_text(client).await;
    assert!(page.contains("signed out"), "{page}");
    assert!(!page.contains("Margaret Ellison"), "{page}");
    screenshot(client, "idle-logged-out.png").await;

    // ---- The session ended at ward too, not just on the screen.
    client.goto(&chart).await.unwrap();
    wait_for_path(client, "/.ward/login?return=", Duration::from_secs(10)).await;
    let page = body_text(client).await;
    assert!(!page.contains("Margaret Ellison"), "{page}");
}
