//! Alerts reach the officer's webhook: break-glass (page or command line), a
//! lockout, a sign-in from a second place; and by e-mail through a real SMTP server
//! (tests/smtp_server.py on Debian's python3-aiosmtpd) over STARTTLS or TLS. A receiver that
//! is down holds up no request, is tried again with back-off, and gets the alert once back.

use crate::common::*;
use http_body_util::BodyExt;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A real HTTP server on loopback that keeps every JSON body posted to it.
async fn receiver() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    receiver_on(0).await
}

/// [`receiver`] on `port` (0: any free one).
async fn receiver_on(port: u16) -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let got: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let url = format!(
        "http://127.0.0.1:{}/ward-alerts",
        listener.local_addr().unwrap().port()
    );
    let sink = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                break;
            };
            let sink = sink.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let sink = sink.clone();
                        async move {
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            if let Ok(v) = serde_json::from_slice(&body) {
                                sink.lock().unwrap().push(v);
                            }
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(
                                http_body_util::Full::new(bytes::Bytes::from_static(b"ok")),
                            ))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (url, got)
}

async fn wait_for(got: &Arc<Mutex<Vec<serde_json::Value>>>, event: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = got.lock().unwrap().iter().find(|v| v["event"] == event) {
            return v.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no {event} alert; got {:?}",
            got.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn sign_in(
    ward: &Ward,
    user: &str,
    pw: &str,
    secret: &[u8],
    offset: i64,
    ip: &str,
) -> (Browser, u16) {
    let b = Browser::new(ward);
    b.header("x-forwarded-for", ip);
    let status = sign_in_with(&b, user, pw, secret, offset).await;
    (b, status)
}

#[tokio::test(flavor = "multi_thread")]
async fn officer_alerts_reach_the_webhook() {
    let (url, got) = receiver().await;
    let ehr = Ehr::start();
    let policy = format!(
        "practice = \"Test Clinic\"\n{{server}}trusted_proxies = [\"127.0.0.1/32\"]\n\
         [alerts]\nwebhook = \"{url}\"\ndenials = 3\n\
         [login]\nlockout_after = 2\n\
         [sessions]\nmax_per_user = 3\n\
         [roles]\nclinician = {{}}\nemergency = {{}}\nauditor = {{}}\n\
         [break_glass]\nallowed_roles = [\"clinician\"]\nemergency_roles = [\"emergency\"]\n\
         [storage]\nusers = \"config/users.toml\"\nstate = \"state\"\n\
         [[apps]]\nname = \"ehr\"\nupstream = \"{}\"\n\
         [[routes]]\napp = \"ehr\"\npath = \"/**\"\nallow_roles = [\"clinician\"]\n\
         [[routes]]\napp = \"ehr\"\npath = \"/admin/**\"\nallow_roles = [\"auditor\"]\n",
        ehr.url()
    );
    let ward = Ward::start(&policy);
    let lee = enrolled_user(&ward.site, "dr_lee", &["clinician"], PW, None, None);
    let _kim = enrolled_user(&ward.site, "kim", &["clinician"], PW, None, None);
    tokio::time::sleep(Duration::from_millis(700)).await;

    // Signed in at the office, then from somewhere else at the same time.
    let (office, s) = sign_in(&ward, "dr_lee", PW, &lee, -30, "203.0.113.5").await;
    assert_eq!(s, 303);
    let (_home, s) = sign_in(&ward, "dr_lee", PW, &lee, 0, "198.51.100.20").await;
    assert_eq!(s, 303);
    let a = wait_for(&got, "two-places").await;
    assert_eq!(a["user"], "dr_lee");
    assert_eq!(a["practice"], "Test Clinic");
    let a = wait_for(&got, "new-network").await;
    assert!(a["detail"].as_str().unwrap().contains("198.51.100.20"));

    // A lockout.
    for _ in 0..2 {
        let _ = sign_in(
            &ward,
            "kim",
            "not the password at all",
            &[],
            0,
            "203.0.113.5",
        )
        .await;
    }
    assert_eq!(wait_for(&got, "locked").await["user"], "kim");

    // Break-glass from the command line.
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
            "code blue, chart locked",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a = wait_for(&got, "break-glass").await;
    assert_eq!(a["user"], "dr_lee");
    // The reason may name a patient: it stays in the audit trail, out of the alert.
    assert!(!a["detail"].as_str().unwrap().contains("code blue"));

    // Door after door: the alert names the route, not the path (which holds a patient's number).
    for _ in 0..3 {
        assert_eq!(
            office.get("/admin/patients/4471-22/export").await.status(),
            403
        );
    }
    let a = wait_for(&got, "refusals").await;
    let detail = a["detail"].as_str().unwrap();
    assert!(detail.contains("/admin/**"), "{detail}");
    assert!(!detail.contains("4471"), "{detail}");
}

/// A real SMTP server: tests/smtp_server.py (Debian's python3-aiosmtpd) on 127.0.0.1.
struct Smtp {
    _proc: Proc,
    out: tempfile::TempDir,
}

impl Smtp {
    /// `tls` is "none", "starttls" or "tls" (with `site`'s certificate, which names
    /// 127.0.0.1); `login` is the account it requires.
    fn start(port: u16, tls: &str, site: &Site, login: Option<(&str, &str)>) -> Smtp {
        let found = Command::new("/usr/bin/python3")
            .args(["-c", "import aiosmtpd"])
            .output();
        assert!(
            found.is_ok_and(|o| o.status.success()),
            "python3-aiosmtpd is not installed: apt-get install -y python3-aiosmtpd (tests/run does this)"
        );
        let out = tempfile::tempdir().unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp_server.py");
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.arg(script)
            .args(["--port", &port.to_string(), "--tls", tls])
            .arg("--cert")
            .arg(site.path("certs/ward.crt"))
            .arg("--key")
            .arg(site.path("certs/ward.key"))
            .arg("--out")
            .arg(out.path());
        if let Some((user, password)) = login {
            cmd.args(["--user", user, "--password", password]);
        }
        let proc = Proc::spawn(&mut cmd);
        proc.stdout.wait_for("ready", Duration::from_secs(20));
        Smtp { _proc: proc, out }
    }

    /// The first message received (envelope recipients and login first), waiting up to `within`.
    async fn first_mail(&self, within: Duration) -> String {
        let path = self.out.path().join("1.eml");
        let deadline = Instant::now() + within;
        loop {
            if let Ok(text) = std::fs::read_to_string(&path) {
                return text;
            }
            assert!(Instant::now() < deadline, "no e-mail arrived in {within:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A policy with `alerts` under `[alerts]`, a lockout after two failures and kim's account.
fn locking_policy(alerts: &str, ehr: &Ehr) -> String {
    format!(
        "practice = \"Test Clinic\"\n{{server}}trusted_proxies = [\"127.0.0.1/32\"]\n\
         [alerts]\n{alerts}\n\
         [metrics]\nlisten = \"127.0.0.1:0\"\n\
         [login]\nlockout_after = 2\n\
         [roles]\nclinician = {{}}\n\
         [storage]\nusers = \"config/users.toml\"\nstate = \"state\"\n\
         [[apps]]\nname = \"ehr\"\nupstream = \"{}\"\n\
         [[routes]]\napp = \"ehr\"\npath = \"/**\"\nallow_roles = [\"clinician\"]\n",
        ehr.url()
    )
}

/// Locks kim's account (two wrong passwords), which raises a `locked` alert.
async fn lock_kim(ward: &Ward) {
    for _ in 0..2 {
        let _ = sign_in(
            ward,
            "kim",
            "not the password at all",
            &[],
            0,
            "203.0.113.5",
        )
        .await;
    }
}

/// The policy's password file for the SMTP account, readable by ward alone.
fn smtp_password_file(site: &Site, password: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = site.path("smtp-password");
    std::fs::write(&path, format!("{password}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn alerts_are_emailed_over_starttls_with_a_login() {
    let mail_site = Site::new();
    let port = free_port();
    let smtp = Smtp::start(port, "starttls", &mail_site, Some(("ward", "mail pw 7")));
    let ehr = Ehr::start();
    let alerts = format!(
        "email_to = [\"officer@clinic.example\", \"Dr Lee <lee@clinic.example>\"]\n\
         email_from = \"ward@clinic.example\"\n\
         smtp = \"127.0.0.1:{port}\"\nsmtp_tls = \"starttls\"\nsmtp_user = \"ward\"\n\
         smtp_password_file = \"{}\"\nsmtp_ca_file = \"{}\"",
        smtp_password_file(&mail_site, "mail pw 7").display(),
        mail_site.path("certs/ward.crt").display()
    );
    let ward = Ward::start(&locking_policy(&alerts, &ehr));
    let _kim = enrolled_user(&ward.site, "kim", &["clinician"], PW, None, None);
    tokio::time::sleep(Duration::from_millis(700)).await;
    lock_kim(&ward).await;
    let mail = smtp.first_mail(Duration::from_secs(20)).await;
    assert!(
        mail.contains("X-Envelope-To: officer@clinic.example, lee@clinic.example"),
        "{mail}"
    );
    // The server takes the login only after STARTTLS.
    assert!(mail.contains("X-Authenticated: True"), "{mail}");
    assert!(mail.contains("From: ward@clinic.example"), "{mail}");
    assert!(
        mail.contains("Subject: ward alert: locked (Test Clinic)"),
        "{mail}"
    );
    assert!(mail.contains("Person: kim"), "{mail}");
    assert!(mail.contains("locked after 2 failed sign-ins"), "{mail}");
    // Only the alert was mailed, not the checkpoints the trail writes.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!smtp.out.path().join("2.eml").exists());
    assert!(!ward.logs().join("\n").contains("mail pw 7"));
}

#[tokio::test(flavor = "multi_thread")]
async fn alerts_are_emailed_over_tls_and_a_wrong_authority_is_refused() {
    let mail_site = Site::new();
    let other_site = Site::new();
    let good_port = free_port();
    let smtp = Smtp::start(good_port, "tls", &mail_site, None);
    let bad_port = free_port();
    // Same server software, but its certificate comes from an authority ward does not trust.
    let impostor = Smtp::start(bad_port, "tls", &other_site, None);
    let ehr = Ehr::start();
    let mail = |port: u16| {
        format!(
            "email_to = [\"officer@clinic.example\"]\nemail_from = \"ward@clinic.example\"\n\
             smtp = \"127.0.0.1:{port}\"\nsmtp_tls = \"tls\"\nsmtp_ca_file = \"{}\"",
            mail_site.path("certs/ward.crt").display()
        )
    };
    let ward = Ward::start(&locking_policy(&mail(good_port), &ehr));
    let _kim = enrolled_user(&ward.site, "kim", &["clinician"], PW, None, None);
    let fooled = Ward::start(&locking_policy(&mail(bad_port), &ehr));
    let _kim2 = enrolled_user(&fooled.site, "kim", &["clinician"], PW, None, None);
    tokio::time::sleep(Duration::from_millis(700)).await;
    lock_kim(&ward).await;
    lock_kim(&fooled).await;
    let got = smtp.first_mail(Duration::from_secs(20)).await;
    assert!(
        got.contains("Subject: ward alert: locked (Test Clinic)"),
        "{got}"
    );
    fooled
        .proc
        .stderr
        .wait_for("cannot deliver an alert", Duration::from_secs(20));
    assert!(!impostor.out.path().join("1.eml").exists());
}

/// Waits until `ward_deliveries_total{sink=SINK,outcome=OUTCOME}` is at least `want`.
async fn wait_deliveries(ward: &Ward, sink: &str, outcome: &str, want: f64) {
    let sample = format!("ward_deliveries_total{{sink=\"{sink}\",outcome=\"{outcome}\"}}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric(ward, &sample).await < want {
        assert!(Instant::now() < deadline, "{sample} never reached {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_mail_server_and_webhook_hold_up_nothing_and_get_the_alert_when_back() {
    let mail_port = free_port();
    let hook_port = free_port();
    let ehr = Ehr::start();
    let alerts = format!(
        "webhook = \"http://127.0.0.1:{hook_port}/ward-alerts\"\n\
         email_to = [\"officer@clinic.example\"]\nemail_from = \"ward@clinic.example\"\n\
         smtp = \"127.0.0.1:{mail_port}\"\nsmtp_tls = \"none\""
    );
    let ward = Ward::start(&locking_policy(&alerts, &ehr));
    let _kim = enrolled_user(&ward.site, "kim", &["clinician"], PW, None, None);
    tokio::time::sleep(Duration::from_millis(700)).await;
    lock_kim(&ward).await;
    // Both receivers are down: the attempts fail and are counted, and ward goes on serving.
    wait_deliveries(&ward, "email", "retried", 1.0).await;
    wait_deliveries(&ward, "webhook", "retried", 1.0).await;
    let b = Browser::new(&ward);
    for _ in 0..20 {
        assert_eq!(b.get("/.ward/login").await.status(), 200);
    }
    let logs = ward.logs().join("\n");
    assert!(
        logs.contains("cannot deliver an alert; trying again"),
        "{logs}"
    );
    // Back within the back-off: the alert arrives after all.
    let site = Site::new();
    let smtp = Smtp::start(mail_port, "none", &site, None);
    let (_, got) = receiver_on(hook_port).await;
    let mail = smtp.first_mail(Duration::from_secs(40)).await;
    assert!(
        mail.contains("Subject: ward alert: locked (Test Clinic)"),
        "{mail}"
    );
    assert_eq!(wait_for(&got, "locked").await["user"], "kim");
    wait_deliveries(&ward, "email", "sent", 1.0).await;
    wait_deliveries(&ward, "webhook", "sent", 1.0).await;
    let failed = "ward_deliveries_total{sink=\"email\",outcome=\"failed\"}";
    assert_eq!(metric(&ward, failed).await, 0.0);
}
