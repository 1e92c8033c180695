//! Restarts: sessions saved in the state folder carry a signed-in browser across a restart; a
//! damaged snapshot, or one sealed with another key, is refused with a plain log line; SIGTERM
//! lets the requests under way on every core finish before ward exits, and no core takes new ones.

use crate::common::*;
use std::time::{Duration, Instant};

fn scenario() -> Scenario {
    Scenario::new()
        .own_host()
        .toml("[roles]\nclinician = {}\n")
        .route("/patients/**", "allow_roles = [\"clinician\"]")
        .user("dr_lee", &["clinician"])
}

/// Whether `b` gets through to the app at `path`, by the upstream's record; the
/// `X-Ward-Session` the app saw when it did.
async fn reaches(s: &Running, b: &Browser, path: &str) -> Option<String> {
    let before = s.up.saw(path).len();
    let r = b.get(path).await;
    let seen = s.up.saw(path);
    let arrived = seen.len() > before;
    assert_eq!(r.status() == 200, arrived, "{path}: {}", r.status());
    arrived.then(|| {
        seen.last()
            .and_then(|x| x.header("x-ward-session"))
            .unwrap_or_default()
            .to_string()
    })
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_in_browser_carries_on_after_a_restart() {
    let mut s = scenario().start().await;
    let b = s.browser();
    assert_eq!(s.sign_in(&b, "dr_lee").await, 303);
    let before = reaches(&s, &b, "/patients/1").await.expect("signed in");

    let old_logs = s.ward.restart();
    let old = old_logs.join("\n");
    assert!(old.contains("sessions saved"), "{old}");
    let snapshot = s.ward.site.path("state/sessions.snapshot");
    assert_eq!(mode(&snapshot), 0o600);
    assert_eq!(mode(&s.ward.site.path("state/sessions.key")), 0o600);
    s.ward
        .proc
        .stderr
        .wait_for("sessions of the last run restored", Duration::from_secs(5));

    // The same browser, the same session, no new sign-in.
    let after = reaches(&s, &b, "/patients/2")
        .await
        .expect("still signed in");
    assert_eq!(after, before, "the app sees the same session");
    // The session was handed to the app host from ward's own host: it is still one session
    // (with its form token), so signing out on ward's host ends it on the app host too.
    let out = s.ward.url_for(WARD_HOST, "/.ward/logout");
    let form = b.get(&out).await.text().await.unwrap();
    let r = b.post(&out, &[("csrf", &input_value(&form, "csrf"))]).await;
    assert_eq!(r.status(), 303);
    assert!(reaches(&s, &b, "/patients/3").await.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_or_foreign_snapshot_is_refused_and_the_log_says_why() {
    let mut s = scenario().start().await;
    let snapshot = s.ward.site.path("state/sessions.snapshot");
    let key = s.ward.site.path("state/sessions.key");

    // One changed byte.
    let b = s.browser();
    assert_eq!(s.sign_in(&b, "dr_lee").await, 303);
    assert!(reaches(&s, &b, "/patients/1").await.is_some());
    s.ward.stop();
    let mut bytes = std::fs::read(&snapshot).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x20;
    std::fs::write(&snapshot, bytes).unwrap();
    s.ward.start_again();
    s.ward.proc.stderr.wait_for_all(
        &[
            "saved sessions were not restored",
            "damaged",
            "everyone signs in again",
        ],
        Duration::from_secs(5),
    );
    assert!(reaches(&s, &b, "/patients/2").await.is_none());

    // Sealed with another key (a snapshot copied from elsewhere, or the key replaced).
    let b = s.browser();
    assert_eq!(s.sign_in(&b, "dr_lee").await, 303);
    assert!(reaches(&s, &b, "/patients/3").await.is_some());
    s.ward.stop();
    std::fs::write(&key, [7u8; 32]).unwrap();
    s.ward.start_again();
    s.ward
        .proc
        .stderr
        .wait_for("another key", Duration::from_secs(5));
    assert!(reaches(&s, &b, "/patients/4").await.is_none());
    // And ward carries on: a new sign-in works and survives the next restart.
    assert_eq!(s.sign_in(&b, "dr_lee").await, 303);
    assert!(reaches(&s, &b, "/patients/5").await.is_some());
    s.ward.restart();
    assert!(reaches(&s, &b, "/patients/6").await.is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_password_step_without_its_code_does_not_survive_a_restart() {
    // Sign-in on the app host itself, so the half-signed-in cookie is the one the app sees.
    let mut s = Scenario::new()
        .toml("[roles]\nclinician = {}\n")
        .route("/patients/**", "allow_roles = [\"clinician\"]")
        .user("dr_lee", &["clinician"])
        .start()
        .await;
    let b = s.browser();
    let login = s.ward.url("/.ward/login");
    let form = b.get(&login).await.text().await.unwrap();
    let r = b
        .post(
            &login,
            &[
                ("csrf", &input_value(&form, "csrf")),
                ("return", "/"),
                ("username", "dr_lee"),
                ("password", PW),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let mfa = s.ward.url("/.ward/mfa");
    let form = b.get(&mfa).await.text().await.unwrap();
    let csrf = input_value(&form, "csrf");
    s.ward.restart();
    // The code step is gone: the code is not taken, and the person starts again.
    let code = s.code("dr_lee").await;
    let r = b.post(&mfa, &[("csrf", &csrf), ("code", &code)]).await;
    let to = r
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string());
    assert_eq!(
        (r.status().as_u16(), to.as_deref()),
        (303, Some("/.ward/login")),
        "a second step carried across a restart"
    );
    assert!(reaches(&s, &b, "/patients/1").await.is_none());
}

/// An app answering "done", after two seconds at `/slow`.
async fn slow_app() -> String {
    small_app(|req| async move {
        if req.uri().path() == "/slow" {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from("done")))
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_a_request_under_way_finish_and_takes_no_new_ones() {
    let app = slow_app().await;
    let mut ward = Ward::start(&open_policy(&app));
    let client = ward.client(false);
    let slow = tokio::spawn(client.get(ward.url("/slow")).send());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let pid = ward.proc.pid().to_string();
    let stopper = std::thread::spawn(move || {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        sent.map(|s| s.success()).unwrap_or(false)
    });
    assert!(stopper.join().unwrap());
    ward.proc
        .stderr
        .wait_for("stopped accepting", Duration::from_secs(5));
    // A new connection is not served.
    let fresh = ward.client(false).get(ward.url("/fast")).send().await;
    assert!(fresh.is_err(), "a request was taken after SIGTERM");
    let r = slow.await.unwrap().expect("the request under way finished");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "done");
    let logs = ward.wait_stopped();
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "drain took the whole bound"
    );
    let all = logs.join("\n");
    assert!(all.contains("\"stopped\""), "{all}");
}

/// The names of `pid`'s threads.
fn thread_names(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_core_serves_and_every_core_stops_taking_connections_at_sigterm() {
    let app = slow_app().await;
    let mut ward = Ward::start(&open_policy(&app));
    // One accepting worker per core: serve's own thread and one more for each further core.
    let cores = std::thread::available_parallelism().unwrap().get();
    let workers = thread_names(ward.proc.pid())
        .iter()
        .filter(|n| n.starts_with("ward-worker-"))
        .count();
    assert_eq!(workers, cores - 1, "{:?}", thread_names(ward.proc.pid()));
    // Requests under way on many connections, so every worker holds some.
    let slow: Vec<_> = (0..12)
        .map(|_| tokio::spawn(ward.client(false).get(ward.url("/slow")).send()))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = ward.proc.pid().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    ward.proc
        .stderr
        .wait_for("stopped accepting", Duration::from_secs(5));
    // No worker listens any more: the kernel itself refuses a new connection (a worker still
    // listening would let it in, even if only to close it).
    let closed_by = Instant::now() + Duration::from_secs(1);
    loop {
        match std::net::TcpStream::connect(ward.addr) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            other => assert!(
                Instant::now() < closed_by,
                "ward still listens a second after it stopped accepting: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for r in slow {
        let r = r.await.unwrap().expect("a request under way finished");
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "done");
    }
    let logs = ward.wait_stopped().join("\n");
    assert!(logs.contains("\"stopped\""), "{logs}");
}
