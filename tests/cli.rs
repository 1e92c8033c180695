//! The commands as an officer runs them: `ward check` and `ward demo`.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

fn shipped(name: &str) -> String {
    std::fs::read_to_string(format!("{}/config/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Runs `ward check` on `text` saved as config/ward.toml in a site with certificates.
fn check(text: &str) -> (bool, String) {
    let site = Site::new();
    std::fs::create_dir_all(site.path("config")).unwrap();
    std::fs::write(site.path("config/ward.toml"), text).unwrap();
    let out = Command::new(WARD)
        .args(["check", "--config", "config/ward.toml"])
        .current_dir(site.dir.path())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// 1-based line and column of the first `needle` in `text`.
fn place(text: &str, needle: &str) -> String {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} not in text"));
    let line = text[..at].matches('\n').count() + 1;
    let col = at - text[..at].rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    format!("config/ward.toml:{line}:{col}:")
}

#[test]
fn the_shipped_policies_are_valid() {
    for name in ["ward.toml", "demo.toml"] {
        let (ok, out) = check(&shipped(name));
        assert!(ok, "{name}: {out}");
        assert!(out.contains("the policy is valid"), "{out}");
    }
}

#[test]
fn a_broken_copy_names_every_error_with_line_and_column() {
    let good = shipped("ward.toml");
    let bad = good
        .replacen("\nlisten =", "\nlisten_on =", 1)
        .replacen("/24\"", "/33\"", 1);
    // An unknown app in the first route.
    let route_at = bad.find("[[routes]]").unwrap();
    let app_at = route_at + bad[route_at..].find("app = \"").unwrap() + "app = \"".len();
    let bad = format!(
        "{}emr-typo{}",
        &bad[..app_at],
        &bad[app_at + bad[app_at..].find('"').unwrap()..]
    );

    let (ok, out) = check(&bad);
    assert!(!ok, "{out}");
    let typo = format!(
        "{} unknown setting 'listen_on' in [server]; did you mean 'listen'?",
        place(&bad, "listen_on =")
    );
    assert!(out.contains(&typo), "wanted {typo:?} in:\n{out}");
    let cidr_at = bad.find("/33\"").unwrap();
    let cidr_start = bad[..cidr_at].rfind('"').unwrap();
    let cidr = format!("{} '", place(&bad[..], &bad[cidr_start..cidr_at + 4]));
    assert!(out.contains(&cidr), "wanted {cidr:?} in:\n{out}");
    assert!(out.contains("is not a network address"), "{out}");
    let app = format!("{} unknown app 'emr-typo'", place(&bad, "\"emr-typo\""));
    assert!(out.contains(&app), "wanted {app:?} in:\n{out}");
    assert!(out.contains("3 problems to fix"), "{out}");
}

#[test]
fn a_missing_certificate_is_reported_at_its_line() {
    let site_less = shipped("ward.toml").replacen(
        "cert = \"certs/ward.crt\"",
        "cert = \"certs/missing.crt\"",
        1,
    );
    let (ok, out) = check(&site_less);
    assert!(!ok);
    let want = format!(
        "{} cannot read certificate file certs/missing.crt",
        place(&site_less, "\"certs/missing.crt\"")
    );
    assert!(out.contains(&want), "wanted {want:?} in:\n{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_runs_the_sample_ehr_behind_ward() {
    let dir = tempfile::tempdir().unwrap();
    let proc = Proc::spawn(
        Command::new(WARD)
            .args([
                "demo",
                "--config",
                "config/demo.toml",
                "--listen",
                "127.0.0.1:0",
                "--ehr-listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
            ])
            .current_dir(dir.path()),
    );
    let line = proc
        .stderr
        .wait_for("\"listening\"", Duration::from_secs(20));
    let addr: std::net::SocketAddr = json_field(&line, "addr").parse().unwrap();
    proc.stdout
        .wait_for("ward demo is running", Duration::from_secs(5));
    assert!(dir.path().join("certs/ward.crt").exists());
    assert!(dir.path().join("config/demo.toml").exists());
    let cert = std::fs::read(dir.path().join("certs/ward.crt")).unwrap();
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(tls_client(&cert, &[b"h2"]))
        .resolve("localhost", addr)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // The sample EHR's logo is public; its pages send a visitor to sign in.
    let logo = client
        .get(format!("https://localhost:{}/logo.png", addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(logo.status(), 200);
    assert_eq!(logo.version(), reqwest::Version::HTTP_2);
    assert_eq!(logo.headers()["content-type"], "image/png");
    let home = client
        .get(format!("https://localhost:{}/", addr.port()))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(home.status(), 303);
    let login = client
        .get(format!("https://localhost:{}/.ward/login", addr.port()))
        .send()
        .await
        .unwrap();
    assert!(
        login
            .text()
            .await
            .unwrap()
            .contains("Riverside Family Clinic (demo)")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_accounts_sign_in_with_the_printed_password_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let proc = Proc::spawn(
        Command::new(WARD)
            .args([
                "demo",
                "--listen",
                "127.0.0.1:0",
                "--ehr-listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
            ])
            .current_dir(dir.path()),
    );
    let line = proc
        .stderr
        .wait_for("\"listening\"", Duration::from_secs(20));
    let addr: std::net::SocketAddr = json_field(&line, "addr").parse().unwrap();
    let banner = proc.stdout.wait_for("dr_lee", Duration::from_secs(5));
    let key = banner.split("key ").nth(1).unwrap().trim().to_string();
    let cert = std::fs::read(dir.path().join("certs/ward.crt")).unwrap();
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(tls_client(&cert, &[b"h2"]))
        .resolve("localhost", addr)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("https://localhost:{}", addr.port());
    // Page loads need sign-in.
    let resp = client
        .get(format!("{base}/patients/1001/chart"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    // Sign in as the clinician with the printed password and key.
    let form = client
        .get(format!("{base}/.ward/login"))
        .send()
        .await
        .unwrap();
    let csrf_cookie = form.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let html = form.text().await.unwrap();
    let csrf = input_value(&html, "csrf");
    let body = serde_urlencoded::to_string([
        ("csrf", csrf.as_str()),
        ("username", "dr_lee"),
        ("password", ward::demo::DEMO_PASSWORD),
        ("return", "/"),
    ])
    .unwrap();
    let resp = client
        .post(format!("{base}/.ward/login"))
        .header("cookie", &csrf_cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let session = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|c| c.starts_with("__Host-ward-session="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let mfa = client
        .get(format!("{base}/.ward/mfa"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = input_value(&mfa, "csrf");
    let code =
        ward::auth::totp::code_at(&ward::auth::totp::decode_secret(&key).unwrap(), unix_now());
    let body =
        serde_urlencoded::to_string([("csrf", csrf.as_str()), ("code", code.as_str())]).unwrap();
    let resp = client
        .post(format!("{base}/.ward/mfa"))
        .header("cookie", &session)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let session = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|c| c.starts_with("__Host-ward-session="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let chart = client
        .get(format!("{base}/patients/1001/chart"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(chart.status(), 200);
    assert!(
        chart
            .text()
            .await
            .unwrap()
            .contains("Signed in through ward as <strong>dr_lee</strong>")
    );
    // The clinician is not a biller.
    let billing = client
        .get(format!("{base}/billing"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(billing.status(), 403);
}
