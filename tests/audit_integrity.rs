//! Attacks on the audit trail's integrity and on what it records, end to end against a real
//! ward: a change made while the trail cannot record it, a signing key removed from under
//! the trail, a trail re-signed with a key of the attacker's own, a trail cut back to an
//! earlier checkpoint, and a password typed into the user-name field.

use crate::common::*;
use http_body_util::BodyExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use ward::audit::key;

const PW: &str = "maple orbit candle harbor 42";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `ward ARGS…` in `dir`.
fn ward_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(WARD)
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run ward")
}

/// A real HTTP server on loopback that keeps every JSON body posted to it.
async fn receiver() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let got: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://127.0.0.1:{}/ward-alerts",
        listener.local_addr().unwrap().port()
    );
    let sink = got.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let sink = sink.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let sink = sink.clone();
                        async move {
                            let body = req.into_body().collect().await.unwrap().to_bytes();
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

/// The trail's lines, oldest first.
fn trail_lines(dir: &Path) -> Vec<String> {
    ward::audit::trail_files(dir)
        .unwrap()
        .iter()
        .filter(|f| f.is_file())
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn records(dir: &Path) -> Vec<serde_json::Value> {
    trail_lines(dir)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Makes the trail impossible to append to, for ward and for the commands alike: a folder
/// named as the newest trail file. A running ward notices when its own file was replaced
/// (same content, another inode), as after any other writer; then it reads the folder.
/// Done under the trail's lock, as every writer works: a ward that holds the lock while
/// records flow looks at the files again only once it has had to take the lock anew.
fn break_trail(dir: &Path) -> std::path::PathBuf {
    let lock = std::fs::File::open(dir.join(".lock")).unwrap();
    lock.lock().unwrap();
    let current = ward::audit::trail_files(dir).unwrap().pop().unwrap();
    let blocker = dir.join("audit-29991231-0001.jsonl");
    std::fs::create_dir(&blocker).unwrap();
    let copy = dir.join("copy.tmp");
    std::fs::copy(&current, &copy).unwrap();
    std::fs::rename(&copy, &current).unwrap();
    lock.unlock().unwrap();
    blocker
}

/// A policy with the officer's console on ward's own host and one app.
fn console_policy(upstream: &str, extra: &str) -> String {
    format!(
        "practice = \"Test Clinic\"\n{{server}}\nward_host = \"{WARD_HOST}\"\n{extra}\n\
         [roles]\nofficer = {{}}\nclinician = {{}}\n\
         [storage]\nusers = \"config/users.toml\"\nstate = \"state\"\n\
         [[apps]]\nname = \"ehr\"\nhost = \"localhost\"\nupstream = \"{upstream}\"\n\
         [[routes]]\napp = \"ehr\"\npath = \"/reports/**\"\nallow_roles = [\"clinician\"]\n\
         [[routes]]\napp = \"ehr\"\npath = \"/**\"\nallow_roles = [\"clinician\", \"officer\"]\n"
    )
}

async fn sign_in(b: &Browser, user: &str, secret: &[u8]) {
    for offset in [0i64, 30, -30] {
        if sign_in_with(b, user, PW, secret, offset).await == 303 {
            return;
        }
    }
    panic!("{user} could not sign in");
}

/// POSTs a console form with the officer's CSRF token from the page at `from`.
async fn act(b: &Browser, from: &str, to: &str, fields: &[(&str, &str)]) -> (u16, String) {
    let resp = b.get(from).await;
    assert_eq!(resp.status(), 200, "{from}");
    let csrf = input_value(&resp.text().await.unwrap(), "csrf");
    let mut all = vec![("csrf", csrf.as_str())];
    all.extend_from_slice(fields);
    let resp = b.post(to, &all).await;
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

fn users_toml(ward: &Ward) -> String {
    std::fs::read_to_string(ward.site.path("config/users.toml")).unwrap()
}

fn grants_json(ward: &Ward) -> String {
    std::fs::read_to_string(ward.site.path("state/grants.json")).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn no_officer_change_is_made_that_the_trail_cannot_record() {
    let ehr = Ehr::start();
    let ward = Ward::start(&console_policy(&ehr.url(), ""));
    let boss = enrolled_user(&ward.site, "boss", &["officer"], PW, None, None);
    enrolled_user(&ward.site, "dr_lee", &["clinician"], PW, None, None);
    let end = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date()
        .checked_add(jiff::Span::new().days(60))
        .unwrap()
        .to_string();
    let jo = enrolled_user(
        &ward.site,
        "acme_jo",
        &["clinician"],
        PW,
        Some("Acme Billing"),
        Some(&end),
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    let officer = Browser::new(&ward).pages_on(&ward, WARD_HOST);
    sign_in(&officer, "boss", &boss).await;
    let vendor = Browser::new(&ward).pages_on(&ward, WARD_HOST);
    sign_in(&vendor, "acme_jo", &jo).await;
    assert_eq!(vendor.get("/patients/1001/chart").await.status(), 200);
    let person = "/.ward/officer/users/dr_lee";
    let audit = ward.site.path("audit");
    let users_before = users_toml(&ward);
    let grants_before = grants_json(&ward);

    // Records of the sign-ins land first, so copying the file loses none.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let blocker = break_trail(&audit);
    let lines_before = trail_lines(&audit).len();

    // The console: deactivating, and granting an export, are refused and change nothing.
    let (status, html) = act(
        &officer,
        person,
        "/.ward/officer/users/dr_lee/deactivate",
        &[],
    )
    .await;
    assert_eq!(status, 503, "{html}");
    assert!(html.contains("Nothing was changed"), "{html}");
    let (status, html) = act(
        &officer,
        "/.ward/officer/grants",
        "/.ward/officer/grants/export",
        &[
            ("user", "dr_lee"),
            ("route", "/reports/**"),
            ("duration", "2h"),
            ("reason", "quarterly quality report for the county"),
        ],
    )
    .await;
    assert_eq!(status, 503, "{html}");
    // The command line: the same.
    let out = ward_in(
        ward.site.dir.path(),
        &["user", "--config", "ward.toml", "deactivate", "dr_lee"],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("nothing was changed"),
        "{}",
        text(&out.stderr)
    );
    let out = ward_in(
        ward.site.dir.path(),
        &[
            "grant",
            "--config",
            "ward.toml",
            "export",
            "--user",
            "dr_lee",
            "--route",
            "/reports/**",
            "--for",
            "2h",
            "--reason",
            "quarterly quality report for the county",
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("nothing was changed"),
        "{}",
        text(&out.stderr)
    );
    // A lock-down still ends the sessions (it only takes access away), but deactivates no one.
    let (status, html) = act(
        &officer,
        "/.ward/officer/lockdown",
        "/.ward/officer/lockdown",
        &[
            ("scope", "org:Acme Billing"),
            ("deactivate", "yes"),
            ("confirm", "yes"),
        ],
    )
    .await;
    assert_eq!(status, 400, "{html}");
    assert!(html.contains("no account was deactivated"), "{html}");
    // (Nothing is served unrecorded meanwhile.)
    assert_eq!(vendor.get("/patients/1001/chart").await.status(), 503);
    assert_eq!(users_toml(&ward), users_before);
    assert_eq!(grants_json(&ward), grants_before);
    assert_eq!(trail_lines(&audit).len(), lines_before);

    // Once the trail can be written again, the same change goes through, its record first.
    std::fs::remove_dir(&blocker).unwrap();
    assert_eq!(vendor.get("/patients/1001/chart").await.status(), 303);
    let (status, html) = act(
        &officer,
        person,
        "/.ward/officer/users/dr_lee/deactivate",
        &[],
    )
    .await;
    assert_eq!(status, 200, "{html}");
    assert!(users_toml(&ward).contains("status = \"deactivated\""));
    let all = records(&audit);
    assert!(
        all.iter()
            .any(|r| r["event"] == "user-deactivated" && r["user"] == "dr_lee"),
        "{all:?}"
    );

    // A change that fails after its record is written says so in the trail.
    let (status, html) = act(
        &officer,
        person,
        "/.ward/officer/users/dr_lee/terminate",
        &[("confirm", "yes")],
    )
    .await;
    assert_eq!(status, 200, "{html}");
    // (A terminated person's page has no forms; the people list has the token.)
    let (status, html) = act(
        &officer,
        "/.ward/officer/users",
        "/.ward/officer/users/dr_lee/reactivate",
        &[],
    )
    .await;
    assert_eq!(status, 400, "{html}");
    let out = ward_in(
        ward.site.dir.path(),
        &["user", "--config", "ward.toml", "reactivate", "nobody_here"],
    );
    assert!(!out.status.success());
    let all = records(&audit);
    let failed: Vec<_> = all
        .iter()
        .filter(|r| r["event"] == "change-failed")
        .collect();
    assert_eq!(failed.len(), 2, "{all:?}");
    assert!(
        failed
            .iter()
            .all(|r| { r["detail"].as_str().unwrap().contains("was not made") })
    );
    let out = ward_in(ward.site.dir.path(), &["audit", "verify", "--dir", "audit"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn with_on_failure_continue_the_change_is_made_and_the_officer_told() {
    let ehr = Ehr::start();
    let ward = Ward::start(&console_policy(
        &ehr.url(),
        "[audit]\non_failure = \"continue\"",
    ));
    let boss = enrolled_user(&ward.site, "boss", &["officer"], PW, None, None);
    enrolled_user(&ward.site, "dr_lee", &["clinician"], PW, None, None);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let officer = Browser::new(&ward).pages_on(&ward, WARD_HOST);
    sign_in(&officer, "boss", &boss).await;
    let blocker = break_trail(&ward.site.path("audit"));
    let (status, html) = act(
        &officer,
        "/.ward/officer/users/dr_lee",
        "/.ward/officer/users/dr_lee/deactivate",
        &[],
    )
    .await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("could not record this change"), "{html}");
    assert!(users_toml(&ward).contains("status = \"deactivated\""));
    std::fs::remove_dir(&blocker).unwrap();
}

/// Starts `ward serve` and returns its output once it exits, or `None` if it is still
/// running after `wait` (then it is killed).
fn serve_until_exit(site: &Site, wait: Duration) -> Option<(bool, String)> {
    let mut child = Command::new(WARD)
        .current_dir(site.dir.path())
        .args(["serve", "--config", "ward.toml"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            return Some((status.success(), text(&out.stderr)));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signing_key_removed_from_under_the_trail_is_not_made_anew() {
    let ehr = Ehr::start();
    let mut ward = Ward::start(&open_policy(&ehr.url()));
    let client = ward.client(false);
    for i in 0..5 {
        let resp = client
            .get(ward.url(&format!("/p/{i}")))
            .send()
            .await
            .unwrap();
        // The sample EHR has no such page: its own answer, passed through.
        assert_eq!(resp.status(), 404);
    }
    ward.proc.kill();
    let audit = ward.site.path("audit");
    let old_public = std::fs::read_to_string(audit.join(key::PUBLIC_KEY_FILE)).unwrap();
    std::fs::remove_file(audit.join(key::PRIVATE_KEY_FILE)).unwrap();
    let lines_before = trail_lines(&audit).len();

    // ward refuses to start, says why and what to do, and makes no key.
    let (ok, stderr) = serve_until_exit(&ward.site, Duration::from_secs(20))
        .expect("ward started although its signing key was gone");
    assert!(!ok);
    assert!(stderr.contains("signing key is missing"), "{stderr}");
    assert!(stderr.contains("ward audit new-key"), "{stderr}");
    assert!(!audit.join(key::PRIVATE_KEY_FILE).exists());
    assert_eq!(trail_lines(&audit).len(), lines_before);

    // The officer's explicit command makes one, on the record; the old public key stays.
    let out = ward_in(
        ward.site.dir.path(),
        &["audit", "new-key", "--dir", "audit"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(audit.join(key::PRIVATE_KEY_FILE).exists());
    let public = std::fs::read_to_string(audit.join(key::PUBLIC_KEY_FILE)).unwrap();
    assert!(public.starts_with(&old_public));
    let all = records(&audit);
    let events: Vec<&str> = all[lines_before..]
        .iter()
        .map(|r| r["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        ["audit-key-created", "audit-key-replaced", "checkpoint"]
    );
    let out = ward_in(ward.site.dir.path(), &["audit", "verify", "--dir", "audit"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(serve_until_exit(&ward.site, Duration::from_secs(3)).is_none());
}

/// What an insider with write access to the audit folder can do: change a record, re-chain
/// everything after it, and re-sign every checkpoint with a key of their own, put beside
/// the trail in place of ward's.
fn resign_with_own_key(audit: &Path) {
    let forger = tempfile::tempdir().unwrap();
    let k = key::load_or_create(forger.path(), key::IfMissing::Create).unwrap();
    let mut prev = ward::audit::ZERO_HASH.to_string();
    for f in ward::audit::trail_files(audit).unwrap() {
        let mut out = String::new();
        for line in std::fs::read_to_string(&f).unwrap().lines() {
            let mut r: serde_json::Value = serde_json::from_str(line).unwrap();
            if r["path"] == "/p/3" {
                r["path"] = "/p/nothing-to-see".into();
            }
            r["prev"] = prev.clone().into();
            if r["event"] == "checkpoint" {
                let seq = r["seq"].as_u64().unwrap();
                r["detail"] = k.sign(&key::checkpoint_message(seq, &prev)).into();
            }
            let line = serde_json::to_string(&r).unwrap();
            prev = ward::audit::line_hash(line.as_bytes());
            out.push_str(&line);
            out.push('\n');
        }
        std::fs::write(&f, out).unwrap();
    }
    std::fs::copy(
        forger.path().join(key::PUBLIC_KEY_FILE),
        audit.join(key::PUBLIC_KEY_FILE),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_says_which_key_it_trusted_and_a_key_kept_elsewhere_catches_a_re_signed_trail() {
    let ehr = Ehr::start();
    let mut ward = Ward::start(&format!(
        "{}\n[audit]\ncheckpoint_every = 10\n",
        open_policy(&ehr.url())
    ));
    let client = ward.client(false);
    for i in 0..25 {
        let resp = client
            .get(ward.url(&format!("/p/{i}")))
            .send()
            .await
            .unwrap();
        // The sample EHR has no such page: its own answer, passed through.
        assert_eq!(resp.status(), 404);
    }
    ward.proc.kill();
    let site = ward.site.dir.path();
    // The officer keeps a copy of the public key away from the server.
    let kept = tempfile::tempdir().unwrap();
    let kept_key = kept.path().join("ward-audit-key.pub");
    std::fs::copy(
        ward.site.path("audit").join(key::PUBLIC_KEY_FILE),
        &kept_key,
    )
    .unwrap();

    let out = ward_in(site, &["audit", "verify", "--dir", "audit"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.contains("the key beside the trail"), "{said}");
    let out = ward_in(
        site,
        &[
            "audit",
            "verify",
            "--dir",
            "audit",
            "--key",
            kept_key.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains("beside the trail"));

    resign_with_own_key(&ward.site.path("audit"));
    // The key beside the trail is the forger's now: verify passes, and says what that is worth.
    let out = ward_in(site, &["audit", "verify", "--dir", "audit"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("the key beside the trail"));
    // The officer's copy is not fooled.
    let out = ward_in(
        site,
        &[
            "audit",
            "verify",
            "--dir",
            "audit",
            "--key",
            kept_key.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("checkpoint signature does not match"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn checkpoint_hashes_leave_the_machine_and_show_a_trail_cut_back() {
    let (url, got) = receiver().await;
    let ehr = Ehr::start();
    let mut ward = Ward::start(&format!(
        "{}\n[audit]\ncheckpoint_every = 10\n[alerts]\nwebhook = \"{url}\"\n",
        open_policy(&ehr.url())
    ));
    let client = ward.client(false);
    for i in 0..35 {
        let resp = client
            .get(ward.url(&format!("/p/{i}")))
            .send()
            .await
            .unwrap();
        // The sample EHR has no such page: its own answer, passed through.
        assert_eq!(resp.status(), 404);
    }
    // Each checkpoint's seq and hash reach the webhook, and ward's log.
    let deadline = Instant::now() + Duration::from_secs(10);
    let sent: Vec<(u64, String)> = loop {
        let sent: Vec<(u64, String)> = got
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a["event"] == "checkpoint")
            .map(|a| {
                (
                    a["seq"].as_u64().unwrap(),
                    a["hash"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        if sent.len() >= 3 {
            break sent;
        }
        assert!(Instant::now() < deadline, "checkpoints sent: {sent:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    ward.proc
        .stderr
        .wait_for(&sent[2].1, Duration::from_secs(5));
    ward.proc.kill();
    let audit = ward.site.path("audit");
    let lines = trail_lines(&audit);
    for (seq, hash) in &sent {
        assert_eq!(
            ward::audit::line_hash(lines[*seq as usize].as_bytes()),
            *hash
        );
    }

    // The insider cuts the trail back to just after the first checkpoint: what is left is a
    // well-formed, signed trail, and verify alone cannot tell.
    let (first, _) = sent[0];
    let f = ward::audit::trail_files(&audit).unwrap().pop().unwrap();
    let mut kept = lines[..=first as usize].join("\n");
    kept.push('\n');
    std::fs::write(&f, kept).unwrap();
    let site = ward.site.dir.path();
    let out = ward_in(site, &["audit", "verify", "--dir", "audit"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The hash the officer kept shows it.
    let out = ward_in(
        site,
        &[
            "audit",
            "verify",
            "--dir",
            "audit",
            "--expect-checkpoint",
            &sent[0].1,
            "--expect-checkpoint",
            &sent[2].1,
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&sent[2].1) && err.contains("not in the trail"),
        "{err}"
    );
    assert!(!err.contains(&sent[0].1), "{err}");
    let out = ward_in(
        site,
        &[
            "audit",
            "verify",
            "--dir",
            "audit",
            "--expect-checkpoint",
            &sent[0].1,
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&format!("record {first}")));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_password_typed_as_the_user_name_reaches_neither_log_nor_trail() {
    let ehr = Ehr::start();
    let ward = Ward::start(&format!(
        "practice = \"Test Clinic\"\n{{server}}\n\
         [login]\nlockout_after = 3\n\
         [roles]\nclinician = {{}}\n\
         [storage]\nusers = \"config/users.toml\"\nstate = \"state\"\n\
         [[apps]]\nname = \"ehr\"\nupstream = \"{}\"\n\
         [[routes]]\napp = \"ehr\"\npath = \"/**\"\nallow_roles = [\"clinician\"]\n",
        ehr.url()
    ));
    let secret = enrolled_user(&ward.site, "dr_lee", &["clinician"], PW, None, None);
    tokio::time::sleep(Duration::from_millis(700)).await;
    // The password in the name field (and the name in the password field), past the lockout.
    let typed = "Maple-Orbit-Candle-4711";
    let b = Browser::new(&ward);
    for _ in 0..5 {
        assert_ne!(sign_in_with(&b, typed, "dr_lee", &[], 0).await, 303);
    }
    // The person then signs in properly, so the trail and log have lines about them.
    let b = Browser::new(&ward);
    assert_eq!(sign_in_with(&b, "dr_lee", PW, &secret, 0).await, 303);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = ward.logs().join("\n");
    let trail = audit_text(&ward.site);
    assert!(
        trail.contains("login-failed") && trail.contains("login-ok"),
        "{trail}"
    );
    for t in [typed.to_string(), typed.to_ascii_lowercase()] {
        assert!(!log.contains(&t), "{t} in the log:\n{log}");
        assert!(!trail.contains(&t), "{t} in the trail:\n{trail}");
    }
}
