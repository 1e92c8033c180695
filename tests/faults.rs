//! End to end: faults around ward. An app that refuses connections, resets
//! in the middle of an answer, stalls, or answers with a malformed or
//! oversized head; the audit trail's disk full; `users.toml` saved broken
//! while ward runs; the secret store unusable. In each case ward answers what
//! it can, records every answer it sends (or refuses to send one it cannot
//! record), says what is wrong, and goes on serving.

use crate::common::*;
use bytes::Bytes;
use http_body_util::Full;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Body length the misbehaving app announces before it resets.
const PROMISED: usize = 100_000;

/// An app that speaks raw HTTP/1.1, one request per connection, so it can
/// misbehave in ways no HTTP library allows; the request's path says how.
async fn raw_app() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(misbehave(tcp));
        }
    });
    url
}

async fn misbehave(mut tcp: tokio::net::TcpStream) {
    let mut head = Vec::new();
    let mut chunk = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match tcp.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
    let reply: Vec<u8> = match path.as_str() {
        "/reset-mid-body" | "/reset-chunked" => {
            let head: &[u8] = if path == "/reset-mid-body" {
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n"
            } else {
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n2710\r\n"
            };
            let _ = tcp.write_all(head).await;
            let _ = tcp.write_all(&[b'x'; 10_000]).await;
            let _ = tcp.flush().await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            // A reset (RST), not an orderly close.
            let _ = tcp.set_zero_linger();
            return;
        }
        "/stall" => {
            tokio::time::sleep(Duration::from_secs(600)).await;
            return;
        }
        "/close-early" => return,
        "/malformed" => b"HTTP/1.1 200 OK\r\nThis is no header\r\nContent-Length: 0\r\n\r\n".to_vec(),
        "/bad-status" => b"HTTP/1.1 2000 Fine\r\nContent-Length: 0\r\n\r\n".to_vec(),
        "/not-http" => b"SSH-2.0-OpenSSH_9.6\r\n\r\n".to_vec(),
        "/both-lengths" => {
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nhello".to_vec()
        }
        "/oversized-head" => {
            let mut r = b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec();
            r.extend(std::iter::repeat_n(b'a', 2 << 20));
            r.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
            r
        }
        "/many-headers" => {
            let mut r = b"HTTP/1.1 200 OK\r\n".to_vec();
            for i in 0..1000 {
                r.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
            }
            r.extend_from_slice(b"Content-Length: 0\r\n\r\n");
            r
        }
        _ => b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".to_vec(),
    };
    // ward may stop reading an oversized head; do not wait for it forever.
    let _ = tokio::time::timeout(Duration::from_secs(10), tcp.write_all(&reply)).await;
    let _ = tcp.shutdown().await;
}

/// A loopback address nothing listens on.
async fn closed_port() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    url
}

/// The raw app under `/`, an app that is not running under `/gone/`; `extra`
/// adds sections (such as `[audit]`).
fn policy(app: &str, gone: &str, extra: &str) -> String {
    format!(
        // Log lines name paths here, so each fault's line can be found by its path.
        "practice = \"Test Clinic\"\n{{server}}\n{extra}\n[log]\npaths = true\n\
         [[apps]]\nname = \"raw\"\nupstream = \"{app}\"\nresponse_timeout = \"2s\"\n\
         [[apps]]\nname = \"gone\"\nupstream = \"{gone}\"\nconnect_timeout = \"2s\"\n\
         [[routes]]\napp = \"raw\"\npath = \"/**\"\nallow = \"public\"\n\
         [[routes]]\napp = \"gone\"\npath = \"/gone/**\"\nallow = \"public\"\n"
    )
}

/// The audit trail's `access` records for `path`.
fn access_records(site: &Site, path: &str) -> Vec<serde_json::Value> {
    audit_text(site)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["kind"] == "access" && r["path"] == path)
        .collect()
}

/// ward's log line for the request to `path` (the last one).
fn log_line(ward: &Ward, path: &str) -> String {
    let needle = format!("\"path\":\"{path}\"");
    ward.proc
        .stderr
        .wait_for_all(&["\"request\"", &needle], Duration::from_secs(5))
}

/// An app that cannot be reached, or answers with a head no HTTP parser
/// should accept, gets 502 at once; one that does not answer gets 504 after
/// its `response_timeout`. Each is recorded with the status sent and logged
/// with the reason, and ward serves the next request normally.
#[tokio::test]
async fn broken_apps_get_502_or_504_recorded() {
    let app = raw_app().await;
    let gone = closed_port().await;
    let ward = Ward::start(&policy(&app, &gone, ""));
    for h2 in [false, true] {
        let client = ward.client(h2);
        for (path, want) in [
            ("/gone/x", 502),
            ("/close-early", 502),
            ("/malformed", 502),
            ("/bad-status", 502),
            ("/not-http", 502),
            ("/both-lengths", 502),
            ("/oversized-head", 502),
            ("/many-headers", 502),
            ("/stall", 504),
        ] {
            let started = Instant::now();
            let resp = client.get(ward.url(path)).send().await.unwrap();
            let took = started.elapsed();
            assert_eq!(resp.status(), want, "{path} (h2: {h2})");
            let body = resp.text().await.unwrap();
            assert!(!body.contains("x-big"), "{path}: the app's head leaked");
            if want == 504 {
                assert!(
                    took >= Duration::from_millis(1900) && took < Duration::from_secs(10),
                    "{path}: 504 after {took:?}, response_timeout is 2s"
                );
            } else {
                assert!(took < Duration::from_secs(5), "{path}: {took:?}");
            }
            let line = log_line(&ward, path);
            assert!(line.contains(&format!("\"status\":{want}")), "{line}");
            assert!(line.contains("\"error\":"), "no reason in the log: {line}");
            let ok = client.get(ward.url("/ok")).send().await.unwrap();
            assert_eq!(ok.status(), 200, "after {path}");
            assert_eq!(ok.text().await.unwrap(), "ok");
        }
    }
    for (path, want) in [("/gone/x", 502), ("/malformed", 502), ("/stall", 504)] {
        let recs = access_records(&ward.site, path);
        assert_eq!(recs.len(), 2, "{path}: one record per request: {recs:?}");
        assert!(recs.iter().all(|r| r["status"] == want), "{path}: {recs:?}");
    }
    verify_trail(&ward.site.path("audit"));
}

/// An app that resets the connection in the middle of its answer: the head
/// (200) has already gone to the client, so ward must break the client's
/// answer off (HTTP/1.1: close without the end; HTTP/2: reset the stream)
/// rather than end it as if it were whole. Both with a length and chunked.
#[tokio::test]
async fn an_answer_cut_off_by_the_app_is_cut_off_for_the_client() {
    let app = raw_app().await;
    let gone = closed_port().await;
    let ward = Ward::start(&policy(&app, &gone, ""));
    for h2 in [false, true] {
        let client = ward.client(h2);
        for path in ["/reset-mid-body", "/reset-chunked"] {
            let mut resp = client.get(ward.url(path)).send().await.unwrap();
            assert_eq!(resp.status(), 200, "{path}");
            let mut got = 0;
            let end = loop {
                match resp.chunk().await {
                    Ok(Some(c)) => got += c.len(),
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(e),
                }
            };
            assert!(
                end.is_err(),
                "{path} (h2: {h2}): the client got a complete-looking answer of {got} bytes"
            );
            assert!(got < PROMISED, "{path}: {got} bytes");
            let ok = client.get(ward.url("/ok")).send().await.unwrap();
            assert_eq!(ok.status(), 200);
        }
    }
    let recs = access_records(&ward.site, "/reset-mid-body");
    assert_eq!(recs.len(), 2, "{recs:?}");
}

/// A small tmpfs mounted for the length of a test.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (such as "256k") on `dir`. The audit tests need
    /// it to fill a disk without filling the machine's: they fail, not skip,
    /// without it.
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Tmpfs(dir.to_path_buf()),
            Ok(o) => panic!(
                "the full-disk test mounts a small tmpfs, which needs root (or CAP_SYS_ADMIN); \
                 `mount -t tmpfs` said: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => panic!("the full-disk test needs the `mount` command: {e}"),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes a file in `dir` until the file system is full.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let block = [0u8; 4096];
    while f.write_all(&block).is_ok() {}
    let _ = f.write_all(&block[..1]);
    path
}

/// The audit trail's disk fills up while ward runs (`on_failure = "refuse"`,
/// the default): every answer that cannot be recorded is refused with 503,
/// and ward says why in its log; once there is room again, ward records and
/// serves as before without a restart. Every answer the apps' users got has
/// its record, and the trail verifies.
#[tokio::test]
async fn a_full_audit_disk_refuses_rather_than_serve_unrecorded() {
    let app = raw_app().await;
    let gone = closed_port().await;
    let site = Site::new();
    let audit = site.path("audit");
    let _mount = Tmpfs::mount(&audit, "512k");
    let config = site.path("ward.toml");
    std::fs::write(
        &config,
        policy(&app, &gone, "[audit]\ndir = \"audit\"\n")
            .replace("{server}", &server_section(&site)),
    )
    .unwrap();
    let ward = Ward::start_in(site, config);
    let client = ward.client(false);
    assert_eq!(
        client
            .get(ward.url("/before"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let filler = fill(&audit);
    // What is left in the trail file's last page may take a few more records.
    let mut served = vec!["/before".to_string()];
    let mut refused = Vec::new();
    for i in 0..300 {
        let path = format!("/full-{i}");
        let status = client.get(ward.url(&path)).send().await.unwrap().status();
        match status.as_u16() {
            200 if refused.is_empty() => served.push(path),
            503 => refused.push(path),
            s => panic!("{path}: {s} after {} refusals", refused.len()),
        }
        if refused.len() == 5 {
            break;
        }
    }
    assert_eq!(
        refused.len(),
        5,
        "nothing was refused with the audit disk full"
    );
    ward.proc.stderr.wait_for_all(
        &["cannot write the audit trail", "No space left on device"],
        Duration::from_secs(5),
    );

    std::fs::remove_file(&filler).unwrap();
    for i in 0..3 {
        let path = format!("/after-{i}");
        let resp = client.get(ward.url(&path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path} once there is room again");
        served.push(path);
    }
    for path in &served {
        let recs = access_records(&ward.site, path);
        assert_eq!(recs.len(), 1, "{path} was served: {recs:?}");
        assert_eq!(recs[0]["status"], 200, "{path}");
    }
    for path in &refused {
        let recs = access_records(&ward.site, path);
        assert!(
            recs.iter().all(|r| r["status"] != 200),
            "{path} was refused but recorded as served: {recs:?}"
        );
    }
    verify_trail(&audit);
}

/// A ward in front of a small app for the `clinician` role, with `nora`
/// enrolled and signed in; returns ward and nora's browser.
async fn signed_in() -> (Ward, Browser, Vec<u8>) {
    let app =
        small_app(|_req| async { hyper::Response::new(Full::new(Bytes::from_static(b"chart"))) })
            .await;
    let site = Site::new();
    let secret = enrolled_user(&site, "nora", &["clinician"], PW, None, None);
    let config = site.path("ward.toml");
    std::fs::write(
        &config,
        format!(
            "practice = \"Test Clinic\"\n{{server}}\n[roles]\nclinician = {{}}\n\
             [sessions]\nmax_per_user = 5\n\
             [storage]\nusers = \"config/users.toml\"\nstate = \"state\"\n\
             [[apps]]\nname = \"ehr\"\nupstream = \"{app}\"\n\
             [[routes]]\napp = \"ehr\"\npath = \"/**\"\nallow_roles = [\"clinician\"]\n"
        )
        .replace("{server}", &server_section(&site)),
    )
    .unwrap();
    let ward = Ward::start_in(site, config);
    let b = Browser::new(&ward);
    assert_eq!(sign_in_with(&b, "nora", PW, &secret, 0).await, 303);
    assert_eq!(b.get("/chart").await.status(), 200);
    (ward, b, secret)
}

/// `/.ward/healthz` as asked from the server itself.
async fn health(ward: &Ward) -> serde_json::Value {
    let r = ward
        .client(false)
        .get(ward.url("/.ward/healthz"))
        .send()
        .await
        .unwrap();
    r.json().await.unwrap()
}

/// `users.toml` saved with a TOML mistake while ward runs: ward keeps the
/// accounts it had (the signed-in person goes on working, and can sign in
/// again), says `FILE:LINE:COL: …` in its log and health report, and takes
/// the file again once it is mended.
#[tokio::test]
async fn a_broken_users_file_keeps_the_last_good_accounts() {
    let (ward, b, secret) = signed_in().await;
    let users = ward.site.path("config/users.toml");
    let good = std::fs::read_to_string(&users).unwrap();
    let mistake_line = good.lines().count() + 2;
    std::fs::write(&users, format!("{good}\n[users.broken\nname = \"x\"\n")).unwrap();
    let where_ = format!("users.toml:{mistake_line}:");
    let line = ward.proc.stderr.wait_for(&where_, Duration::from_secs(5));
    assert!(
        line.contains(&format!(
            "config/users.toml:{mistake_line}:14: this is not valid TOML"
        )),
        "FILE:LINE:COL expected: {line}"
    );
    ward.proc.stderr.wait_for(
        "the accounts file has errors; still using the accounts loaded before",
        Duration::from_secs(5),
    );
    let h = health(&ward).await;
    let problems = h["accounts_problems"].to_string();
    assert!(problems.contains(&where_), "{h}");

    assert_eq!(b.get("/chart").await.status(), 200, "the session stands");
    let again = Browser::new(&ward);
    assert_eq!(sign_in_with(&again, "nora", PW, &secret, 30).await, 303);
    assert_eq!(again.get("/chart").await.status(), 200);

    std::fs::write(&users, &good).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while health(&ward).await["accounts_problems"] != serde_json::json!([]) {
        assert!(Instant::now() < deadline, "the mended file was not taken");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(b.get("/chart").await.status(), 200);
}

/// A way to make a file unusable.
type Breakage = dyn Fn(&Path);

/// The secret store becomes unusable while ward runs (readable by others,
/// damaged, or not a file): ward says what is wrong and how to mend it,
/// people already signed in go on working, and a sign-in is answered "Sign-in
/// unavailable" (503), not "wrong password", and recorded as such
/// (`login-unavailable`), until the store is mended.
#[tokio::test]
async fn an_unusable_secret_store_stops_sign_ins_and_says_why() {
    use std::os::unix::fs::PermissionsExt;
    let (ward, b, secret) = signed_in().await;
    let store = ward.site.path("state/secrets.json");
    let good = std::fs::read(&store).unwrap();
    let breakages: [(&str, &Breakage); 3] = [
        ("chmod 600", &|p| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644)).unwrap()
        }),
        ("damaged", &|p| {
            let mut f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
            std::io::Write::write_all(&mut f, b"{ not json").unwrap();
        }),
        ("Is a directory", &|p| {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::remove_file(p).unwrap();
            // Owner-only, so it fails at the read, past the permission check.
            std::fs::DirBuilder::new().mode(0o700).create(p).unwrap();
        }),
    ];
    let mut attempts = 0;
    for (says, break_it) in breakages {
        break_it(&store);
        attempts += 1;
        let other = Browser::new(&ward);
        let status = sign_in_with(&other, "nora", PW, &secret, 30).await;
        assert_eq!(status, 503, "{says}: a sign-in with the store unusable");
        let line = ward.proc.stderr.wait_for_all(
            &["cannot read ward's secret store", says],
            Duration::from_secs(5),
        );
        assert!(line.contains("secrets.json"), "{line}");
        assert_eq!(
            b.get("/chart").await.status(),
            200,
            "{says}: the session stands"
        );
        let refused = audit_text(&ward.site)
            .lines()
            .filter(|l| {
                l.contains("\"event\":\"login-unavailable\"") && l.contains("\"user\":\"nora\"")
            })
            .count();
        assert_eq!(
            refused, attempts,
            "{says}: each refused sign-in is in the audit trail"
        );

        // Mend it as the officer would.
        if store.is_dir() {
            std::fs::remove_dir(&store).unwrap();
        }
        std::fs::write(&store, &good).unwrap();
        std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o600)).unwrap();
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    let again = Browser::new(&ward);
    assert_eq!(sign_in_with(&again, "nora", PW, &secret, 30).await, 303);
}
