//! The commands as an officer runs them: `ward check` and `ward demo`.

use crate::common::*;
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
        .wait_for("Stop with Ctrl-C", Duration::from_secs(5));
    // Its commands use the release build just made, not a second (debug) build.
    let printed = proc.stdout.all().join("\n");
    assert!(
        printed.contains("cargo run --release -- totp-code --key KEY"),
        "{printed}"
    );
    assert!(!printed.contains("cargo run -- "), "{printed}");
    assert!(printed.contains("https://ward.localhost:"), "{printed}");
    assert!(dir.path().join("certs/ward.crt").exists());
    assert!(dir.path().join("config/demo.toml").exists());
    let cert = std::fs::read(dir.path().join("certs/ward.crt")).unwrap();
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(tls_client(&cert, &[b"h2"]))
        .resolve("localhost", addr)
        .resolve("ward.localhost", addr)
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
    // Sign-in is on ward's own host.
    let login = client
        .get(format!("https://localhost:{}/.ward/login", addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303);
    let go = login.headers()["location"].to_str().unwrap().to_string();
    assert!(
        go.starts_with(&format!("https://ward.localhost:{}/.ward/go?", addr.port())),
        "{go}"
    );
    let login = client
        .get(format!(
            "https://ward.localhost:{}/.ward/login",
            addr.port()
        ))
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

/// Signs a demo account in with the demo password and its printed key, on ward's own
/// host and handed back to the app's; returns the app host's session cookie pair.
async fn demo_sign_in(
    client: &reqwest::Client,
    base: &str,
    user: &str,
    key: &str,
    offset: i64,
) -> String {
    let b = Browser::with_client(client.clone(), base.to_string());
    let secret = ward::auth::totp::decode_secret(key).unwrap();
    let status = sign_in_with(&b, user, ward::demo::DEMO_PASSWORD, &secret, offset).await;
    assert_eq!(status, 303, "{user}");
    format!(
        "__Host-ward-session={}",
        b.cookie("__Host-ward-session").unwrap()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_accounts_sign_in_and_the_demo_shows_a_blocked_and_a_granted_export() {
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
    let key_of = |user: &str| {
        let line = proc
            .stdout
            .wait_for(&format!("    {user} "), Duration::from_secs(5));
        line.split("key ").nth(1).unwrap().trim().to_string()
    };
    let cert = std::fs::read(dir.path().join("certs/ward.crt")).unwrap();
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(tls_client(&cert, &[b"h2"]))
        .resolve("localhost", addr)
        .resolve("ward.localhost", addr)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("https://localhost:{}", addr.port());
    let get = |session: String, path: &'static str| {
        let client = client.clone();
        let base = base.clone();
        async move {
            client
                .get(format!("{base}{path}"))
                .header("cookie", session)
                .send()
                .await
                .unwrap()
        }
    };
    // Page loads need sign-in.
    let resp = client
        .get(format!("{base}/patients/1001/chart"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);

    // The clinician reads a chart, and is not a biller.
    let lee = demo_sign_in(&client, &base, "dr_lee", &key_of("dr_lee"), 0).await;
    let chart = get(lee.clone(), "/patients/1001/chart").await;
    assert_eq!(chart.status(), 200);
    assert!(
        chart
            .text()
            .await
            .unwrap()
            .contains("Signed in through ward as <strong>dr_lee</strong>")
    );
    assert_eq!(get(lee, "/billing").await.status(), 403);

    // The biller's CSV export is refused until the officer grants it.
    let bea = demo_sign_in(&client, &base, "billing_bea", &key_of("billing_bea"), 0).await;
    assert_eq!(get(bea.clone(), "/billing").await.status(), 200);
    let refused = get(bea.clone(), "/reports/patients.csv").await;
    assert_eq!(refused.status(), 403);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("Download not permitted")
    );
    grant_export(
        dir.path(),
        "config/demo.toml",
        "billing_bea",
        "/reports/**",
        "1h",
        "quarterly audit",
    )
    .await;
    let granted = get(bea, "/reports/patients.csv").await;
    assert_eq!(granted.status(), 200);
    assert!(granted.text().await.unwrap().contains("Ellison"));
}
