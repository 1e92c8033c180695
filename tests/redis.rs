//! Two ward instances sharing sessions through a real Redis (`redis-server` on a free loopback
//! port, with a password): a sign-in through one works through the other, activity on one
//! keeps the session alive on the other, a sign-out or a terminated account ends it on both
//! within a second, and while Redis is away nobody is let in or signs in, until it is back.

use crate::common::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const COOKIE: &str = "__Host-ward-session";
const REDIS_PASSWORD: &str = "correct horse battery staple";

/// A redis-server on loopback that keeps its data (append-only file) across a restart.
struct Redis {
    proc: Option<Proc>,
    port: u16,
    dir: tempfile::TempDir,
    /// Its TLS certificate and key: then it speaks TLS only.
    tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

impl Redis {
    fn start() -> Redis {
        Redis::start_with(None)
    }

    /// A Redis that speaks TLS only, with a certificate of its own authority (`ca.crt` in its
    /// folder, for 127.0.0.1); clients need not show one.
    fn start_tls() -> Redis {
        let dir = tempfile::tempdir().unwrap().keep();
        let (cert, key) = (dir.join("ca.crt"), dir.join("redis.key"));
        ward::tls::write_self_signed(&cert, &key, &["127.0.0.1"]).unwrap();
        Redis::start_with(Some((cert, key)))
    }

    fn start_with(tls: Option<(std::path::PathBuf, std::path::PathBuf)>) -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut r = Redis {
            proc: None,
            port,
            dir: tempfile::tempdir().unwrap(),
            tls,
        };
        r.up();
        r
    }

    fn up(&mut self) {
        let found = Command::new("redis-server").arg("--version").output();
        assert!(
            found.is_ok(),
            "redis-server is not installed: apt-get install -y redis-server (tests/run does this)"
        );
        let port = self.port.to_string();
        let mut cmd = Command::new("redis-server");
        match &self.tls {
            None => cmd.args(["--port", &port]),
            Some((cert, key)) => cmd
                .args([
                    "--port",
                    "0",
                    "--tls-port",
                    &port,
                    "--tls-auth-clients",
                    "no",
                ])
                .arg("--tls-cert-file")
                .arg(cert)
                .arg("--tls-key-file")
                .arg(key)
                .arg("--tls-ca-cert-file")
                .arg(cert),
        };
        let proc = Proc::spawn(
            cmd.args(["--bind", "127.0.0.1"])
                .args(["--requirepass", REDIS_PASSWORD])
                .args([
                    "--save",
                    "",
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "always",
                ])
                .arg("--dir")
                .arg(self.dir.path()),
        );
        proc.stdout
            .wait_for("Ready to accept connections", Duration::from_secs(10));
        self.proc = Some(proc);
    }

    fn down(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }
}

fn scenario(redis: &Redis, password_file: &Path) -> Scenario {
    scenario_with(redis, password_file, "")
}

/// The `[sessions]` table for `redis`, with more lines.
fn sessions_table(redis: &Redis, password_file: &Path, more: &str) -> String {
    format!(
        "[sessions]\nstore = \"redis://127.0.0.1:{}\"\nstore_password_file = \"{}\"\nactivity_every = \"1s\"\n{more}\n",
        redis.port,
        password_file.display()
    )
}

/// The scenario with more `[sessions]` lines.
fn scenario_with(redis: &Redis, password_file: &Path, sessions: &str) -> Scenario {
    Scenario::new()
        .toml(&sessions_table(redis, password_file, sessions))
        .toml("[roles]\nclinician = {}\nfront_desk = { idle_timeout = \"4s\" }\n")
        .route(
            "/patients/**",
            "allow_roles = [\"clinician\", \"front_desk\"]",
        )
        .user("dr_lee", &["clinician"])
        .user("fran", &["front_desk"])
}

/// A second ward on the same policy, accounts and state folder as `first` (its own audit trail).
fn second(first: &Running) -> Ward {
    let site = Site::new();
    let config = site.path("ward.toml");
    let shared = first.ward.site.path("");
    let text = format!(
        "{}\n[storage]\nusers = \"{}config/users.toml\"\nstate = \"{}state\"\n",
        first.policy.replace("{server}", &server_section(&site)),
        shared.display(),
        shared.display()
    );
    std::fs::write(&config, text).unwrap();
    Ward::start_in(site, config)
}

/// A browser on `ward` holding the session cookie of `from` (a load balancer switching).
fn switched(ward: &Ward, from: &Browser) -> Browser {
    let b = Browser::on(ward, "localhost");
    b.set_cookie(COOKIE, &from.cookie(COOKIE).expect("a session cookie"));
    b
}

/// The app's `X-Ward-Session` when `b` gets through to `path`, else `None`.
async fn through(s: &Running, b: &Browser, path: &str) -> Option<String> {
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

/// Waits up to `limit` for `b` to be refused at `path`; how long it took.
async fn refused_within(s: &Running, b: &Browser, path: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    let mut n = 0;
    loop {
        n += 1;
        if through(s, b, &format!("{path}{n}")).await.is_none() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{path} still let in after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_share_sessions_through_redis() {
    let mut redis = Redis::start();
    let secrets = tempfile::tempdir().unwrap();
    let password_file = secrets.path().join("redis.password");
    std::fs::write(&password_file, format!("{REDIS_PASSWORD}\n")).unwrap();
    let s = scenario(&redis, &password_file).start().await;
    let other = second(&s);
    for w in [&s.ward, &other] {
        w.proc
            .stderr
            .wait_for("connected to the session store", Duration::from_secs(10));
    }

    // Signed in through one, used through the other: the same session.
    let one = s.browser();
    assert_eq!(s.sign_in(&one, "dr_lee").await, 303);
    let here = through(&s, &one, "/patients/1").await.expect("signed in");
    let two = switched(&other, &one);
    let there = through(&s, &two, "/patients/2").await.expect("shared");
    assert_eq!(here, there);

    // Signing out on one ends it on the other within a second.
    let form = one.get("/.ward/logout").await.text().await.unwrap();
    let r = one
        .post("/.ward/logout", &[("csrf", &input_value(&form, "csrf"))])
        .await;
    assert_eq!(r.status(), 303);
    refused_within(&s, &two, "/patients/out-", Duration::from_secs(1)).await;

    // Activity on one keeps the session alive on the other (idle limit 4 s, activity
    // written every second): eight seconds of work through the first instance...
    let fran = s.browser();
    assert_eq!(s.sign_in(&fran, "fran").await, 303);
    let fran_two = switched(&other, &fran);
    for n in 0..8 {
        assert!(
            through(&s, &fran, &format!("/patients/f{n}"))
                .await
                .is_some()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // ...and the second still honours it; then idle on both.
    assert!(through(&s, &fran_two, "/patients/f-there").await.is_some());
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(
        through(&s, &fran_two, "/patients/f-idle-two")
            .await
            .is_none()
    );
    assert!(through(&s, &fran, "/patients/f-idle-one").await.is_none());

    // Redis stops: no session is honoured and nobody signs in (fail closed), with a plain page.
    let one = s.browser();
    assert_eq!(s.sign_in(&one, "dr_lee").await, 303);
    let two = switched(&other, &one);
    assert!(through(&s, &two, "/patients/before").await.is_some());
    redis.down();
    refused_within(&s, &two, "/patients/down-", Duration::from_secs(5)).await;
    assert!(through(&s, &one, "/patients/down-one").await.is_none());
    let page = s.browser().get("/.ward/login").await;
    assert_eq!(page.status(), 503);
    assert!(page.text().await.unwrap().contains("Sign-in unavailable"));
    other
        .proc
        .stderr
        .wait_for("cannot reach the session store", Duration::from_secs(5));
    other
        .proc
        .stderr
        .wait_for_all(&["ALERT", "session-store"], Duration::from_secs(5));

    // Redis is back: both reconnect by themselves and the session carries on.
    redis.up();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut n = 0;
    while through(&s, &two, &format!("/patients/back-{n}"))
        .await
        .is_none()
    {
        assert!(Instant::now() < deadline, "not back 10 s after Redis");
        tokio::time::sleep(Duration::from_millis(200)).await;
        n += 1;
    }
    assert!(through(&s, &one, "/patients/back-one").await.is_some());
    s.assert_audit(&[("event", "session-store-down")]).await;
    s.assert_audit(&[("event", "session-store-up")]).await;
    assert_eq!(s.browser().get("/.ward/login").await.status(), 200);

    // The officer terminates the account: both instances end the session within a second.
    let out = Command::new(WARD)
        .args([
            "user",
            "--config",
            "ward.toml",
            "terminate",
            "dr_lee",
            "--yes",
        ])
        .current_dir(s.ward.site.dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    refused_within(&s, &two, "/patients/t-two-", Duration::from_secs(1)).await;
    refused_within(&s, &one, "/patients/t-one-", Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_redis_password_keeps_sign_in_closed() {
    let redis = Redis::start();
    let secrets = tempfile::tempdir().unwrap();
    let password_file = secrets.path().join("redis.password");
    std::fs::write(&password_file, "not the password\n").unwrap();
    let s = scenario(&redis, &password_file).start().await;
    s.ward
        .proc
        .stderr
        .wait_for("cannot reach the session store", Duration::from_secs(10));
    let logs = s.ward.logs().join("\n");
    assert!(
        !logs.contains("not the password"),
        "the password reached the log"
    );
    assert_eq!(s.browser().get("/.ward/login").await.status(), 503);
    let b = s.browser();
    let r = b
        .post("/.ward/login", &[("username", "dr_lee"), ("password", PW)])
        .await;
    assert_eq!(r.status(), 503);
    assert!(through(&s, &b, "/patients/1").await.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_grace_signed_in_people_carry_on_for_that_long_only() {
    let mut redis = Redis::start();
    let secrets = tempfile::tempdir().unwrap();
    let password_file = secrets.path().join("redis.password");
    std::fs::write(&password_file, REDIS_PASSWORD).unwrap();
    let s = scenario_with(&redis, &password_file, "store_down_grace = \"3s\"")
        .start()
        .await;
    s.ward
        .proc
        .stderr
        .wait_for("connected to the session store", Duration::from_secs(10));
    let b = s.browser();
    assert_eq!(s.sign_in(&b, "dr_lee").await, 303);
    redis.down();
    s.ward
        .proc
        .stderr
        .wait_for("cannot reach the session store", Duration::from_secs(5));
    let down_at = Instant::now();
    // Within the grace: the signed-in person carries on; nobody new signs in.
    assert!(through(&s, &b, "/patients/grace").await.is_some());
    assert_eq!(s.browser().get("/.ward/login").await.status(), 503);
    // After it: refused, as without a grace.
    let left = Duration::from_secs(4).saturating_sub(down_at.elapsed());
    tokio::time::sleep(left).await;
    assert!(through(&s, &b, "/patients/after-grace").await.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn max_per_user_counts_the_sessions_of_every_instance() {
    let redis = Redis::start();
    let secrets = tempfile::tempdir().unwrap();
    let password_file = secrets.path().join("redis.password");
    std::fs::write(&password_file, REDIS_PASSWORD).unwrap();
    // The default: one session per person, a new sign-in ends the oldest.
    let s = scenario(&redis, &password_file).start().await;
    let other = second(&s);
    other
        .proc
        .stderr
        .wait_for("connected to the session store", Duration::from_secs(10));
    let first = s.browser();
    assert_eq!(s.sign_in(&first, "dr_lee").await, 303);
    assert!(through(&s, &first, "/patients/1").await.is_some());
    // The same person signs in through the other instance, on another computer.
    let elsewhere = Browser::on(&other, "localhost");
    let code = s.code("dr_lee").await;
    assert_eq!(
        sign_in_with_code(&elsewhere, "dr_lee", PW, &code).await,
        303
    );
    assert!(through(&s, &elsewhere, "/patients/2").await.is_some());
    // The first session ended, on its own instance too.
    refused_within(&s, &first, "/patients/first-", Duration::from_secs(1)).await;
    assert!(through(&s, &elsewhere, "/patients/3").await.is_some());
}

/// A file holding Redis's password, in a folder kept as long as the first value lives.
fn password_file() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("redis.password");
    std::fs::write(&file, REDIS_PASSWORD).unwrap();
    (dir, file)
}

/// Both instances of `s` and `other` linked to Redis.
fn both_connected(s: &Running, other: &Ward) {
    for w in [&s.ward, other] {
        w.proc
            .stderr
            .wait_for("connected to the session store", Duration::from_secs(10));
    }
}

/// The password step with `password` in `b`; the answer's status.
async fn attempt(b: &Browser, user: &str, password: &str) -> u16 {
    let form = b.get("/.ward/login").await.text().await.unwrap();
    b.post(
        "/.ward/login",
        &[
            ("csrf", &input_value(&form, "csrf")),
            ("return", "/patients/1"),
            ("username", user),
            ("password", password),
        ],
    )
    .await
    .status()
    .as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn lockouts_and_used_codes_count_across_instances() {
    let redis = Redis::start();
    let (_dir, password_file) = password_file();
    let s = scenario(&redis, &password_file)
        .toml("[login]\nlockout_after = 3\nlockout_time = \"10m\"\n")
        .start()
        .await;
    let other = second(&s);
    both_connected(&s, &other);
    let (a, b) = (s.browser(), Browser::on(&other, "localhost"));

    // Someone alternating instances gets three tries in all, as against one instance: for a
    // name that is no account (counted in Redis) and for an account (in the shared store).
    for name in ["nobody", "fran"] {
        for (n, browser) in [&a, &b, &a].into_iter().enumerate() {
            assert_eq!(
                attempt(browser, name, "a guess").await,
                401,
                "{name} try {n}"
            );
        }
        assert_eq!(
            attempt(&b, name, PW).await,
            429,
            "{name} locked on the other"
        );
        assert_eq!(
            attempt(&a, name, PW).await,
            429,
            "{name} locked on the first"
        );
    }

    // An authenticator code used through one instance is refused through the other.
    let code = s.code("dr_lee").await;
    assert_eq!(sign_in_with_code(&a, "dr_lee", PW, &code).await, 303);
    assert_eq!(sign_in_with_code(&b, "dr_lee", PW, &code).await, 401);
    assert!(through(&s, &b, "/patients/replayed").await.is_none());
    assert!(through(&s, &a, "/patients/first").await.is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_address_limit_counts_attempts_on_every_instance() {
    let redis = Redis::start();
    let (_dir, password_file) = password_file();
    let s = scenario(&redis, &password_file)
        .toml("[login]\nattempts_per_minute = 4\n")
        .start()
        .await;
    let other = second(&s);
    both_connected(&s, &other);
    let (a, b) = (s.browser(), Browser::on(&other, "localhost"));
    // Four attempts a minute from this address, alternating instances (other names each
    // time, so no lock gets in the way): the fifth is refused on either.
    for (n, browser) in [&a, &b, &a, &b].into_iter().enumerate() {
        assert_eq!(
            attempt(browser, &format!("name{n}"), "x").await,
            401,
            "try {n}"
        );
    }
    assert_eq!(attempt(&a, "name4", "x").await, 429);
    assert_eq!(attempt(&b, "name5", "x").await, 429);
    let page = b.get("/.ward/login").await;
    assert_eq!(page.status(), 200, "the form itself is not counted");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hand_off_begun_on_one_instance_finishes_on_the_other() {
    let redis = Redis::start();
    let (_dir, password_file) = password_file();
    let s = scenario(&redis, &password_file).own_host().start().await;
    let other = second(&s);
    both_connected(&s, &other);
    let b = s.browser();
    assert_eq!(s.sign_in(&b, "dr_lee").await, 303);
    let mine = through(&s, &b, "/patients/1").await.expect("signed in");

    // The app host sends the browser to ward's host for a code, through the first instance...
    let start = b
        .get(
            &s.ward
                .url_for("localhost", "/.ward/login?return=/patients/2"),
        )
        .await;
    let go = start.headers()["location"].to_str().unwrap().to_string();
    let r = b.get(&go).await;
    let handoff = r.headers()["location"].to_str().unwrap().to_string();
    assert!(handoff.contains("/.ward/handoff?code="), "{handoff}");
    let state = b
        .cookie("__Host-ward-handoff")
        .expect("the hand-off's state cookie");

    // ...and the load balancer sends it back to the other, which takes the code.
    let on_other = handoff.replace(
        &format!(":{}/", s.ward.port()),
        &format!(":{}/", other.port()),
    );
    assert_ne!(on_other, handoff);
    let there = Browser::on(&other, "localhost");
    there.set_cookie("__Host-ward-handoff", &state);
    let r = there.get(&on_other).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/patients/2");
    assert_eq!(through(&s, &there, "/patients/2").await, Some(mine));

    // The code works once, whichever instance it is shown to.
    let again = Browser::on(&s.ward, "localhost");
    again.set_cookie("__Host-ward-handoff", &state);
    let r = again.get(&handoff).await;
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/.ward/login")
    );
    assert!(again.cookie(COOKIE).is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_grant_revoked_through_one_instance_is_refused_on_the_other_within_a_second() {
    let redis = Redis::start();
    let (_dir, password_file) = password_file();
    let s = Scenario::new()
        .toml(&sessions_table(&redis, &password_file, ""))
        .toml("[roles]\nclinician = { export = \"block\" }\n")
        .route("/reports/**", "allow_roles = [\"clinician\"]")
        .user("dr_lee", &["clinician"])
        .start()
        .await;
    let other = second(&s);
    both_connected(&s, &other);
    let dir = s.ward.site.dir.path();
    let reason = "records request from the patient's lawyer";
    grant_export(dir, "ward.toml", "dr_lee", "/reports/**", "1h", reason).await;
    let b = Browser::on(&other, "localhost");
    assert_eq!(s.sign_in(&b, "dr_lee").await, 303);
    assert!(through(&s, &b, "/reports/granted.csv").await.is_some());

    // The officer revokes it through the first instance's files; the other refuses at once.
    let grants: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.ward.site.path("state/grants.json")).unwrap())
            .unwrap();
    let id = grants["grants"][0]["id"].as_str().unwrap().to_string();
    let out = Command::new(WARD)
        .args(["grant", "--config", "ward.toml", "revoke", &id])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let start = Instant::now();
    let mut n = 0;
    loop {
        n += 1;
        let r = b.get(&format!("/reports/revoked-{n}.csv")).await;
        if r.status() == 403 {
            break;
        }
        assert_eq!(r.status(), 200);
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "the revoked grant still worked on the other instance after a second"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A policy on the TLS-only `redis` trusting the authority in `ca`.
fn over_tls(redis: &Redis, password_file: &Path, ca: &Path) -> Scenario {
    Scenario::new()
        .toml(&format!(
            "[sessions]\nstore = \"rediss://127.0.0.1:{}\"\nstore_password_file = \"{}\"\nstore_ca_file = \"{}\"\n",
            redis.port,
            password_file.display(),
            ca.display()
        ))
        .toml("[roles]\nclinician = {}\n")
        .route("/patients/**", "allow_roles = [\"clinician\"]")
        .user("dr_lee", &["clinician"])
}

#[tokio::test(flavor = "multi_thread")]
async fn rediss_with_the_practices_own_authority_and_no_other() {
    let redis = Redis::start_tls();
    let (_dir, password_file) = password_file();
    let ca = redis.tls.clone().unwrap().0;
    let s = over_tls(&redis, &password_file, &ca).start().await;
    let other = second(&s);
    both_connected(&s, &other);
    let one = s.browser();
    assert_eq!(s.sign_in(&one, "dr_lee").await, 303);
    let here = through(&s, &one, "/patients/1").await.expect("signed in");
    let there = through(&s, &switched(&other, &one), "/patients/2").await;
    assert_eq!(there, Some(here), "the session went over TLS to the other");

    // Another authority (ward's own certificate here): Redis's certificate is refused, and
    // sign-in stays closed.
    let wrong = Redis::start_tls();
    let other_ca = s.ward.site.path("certs/ward.crt");
    let s = over_tls(&wrong, &password_file, &other_ca).start().await;
    let line = s
        .ward
        .proc
        .stderr
        .wait_for("cannot reach the session store", Duration::from_secs(10));
    assert!(line.to_lowercase().contains("certificate"), "{line}");
    assert_eq!(s.browser().get("/.ward/login").await.status(), 503);

    // `ward check` names a file that holds no certificate, where it is written.
    let site = &s.ward.site;
    let policy = std::fs::read_to_string(site.path("ward.toml"))
        .unwrap()
        .replace(
            &format!("store_ca_file = \"{}\"", other_ca.display()),
            &format!("store_ca_file = \"{}\"", password_file.display()),
        );
    std::fs::write(site.path("bad.toml"), policy).unwrap();
    let out = Command::new(WARD)
        .args(["check", "--config", "bad.toml"])
        .current_dir(site.dir.path())
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    // Line 10 of the scenario's policy: the store_ca_file line, at its value.
    assert!(
        said.contains("bad.toml:10:17: cannot read CA file"),
        "{said}"
    );
    assert!(!said.contains(REDIS_PASSWORD), "{said}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_single_sign_on_begun_on_one_instance_finishes_on_the_other() {
    let redis = Redis::start();
    let (dir, password_file) = password_file();
    // The address people use (the load balancer's); the provider sends them back there.
    let public = "https://ehr.localhost:8443";
    let clients = serde_json::json!([{
        "client_id": "ward",
        "client_secret": "ward-secret",
        "redirect_uris": [format!("{public}/.ward/callback")],
    }])
    .to_string();
    let accounts = serde_json::json!({
        "alice": { "email": "alice@riverside.example", "email_verified": true, "name": "Alice",
                   "groups": ["clinicians"], "amr": ["pwd", "otp"] },
    })
    .to_string();
    let idp = crate::common::oidc::Idp::start(&clients, &accounts);
    let client_secret = dir.path().join("client.secret");
    std::fs::write(&client_secret, "ward-secret\n").unwrap();
    let s = Scenario::new()
        .server(&format!("public_url = \"{public}\""))
        .toml(&sessions_table(&redis, &password_file, ""))
        .toml(&format!(
            "[login]\n[[login.oidc]]\nname = \"idp\"\nissuer = \"{}\"\nclient_id = \"ward\"\n\
             client_secret_file = \"{}\"\nca = \"{}\"\nscopes = [\"email\", \"profile\", \"groups\"]\n\
             role_map = {{ clinicians = [\"clinician\"] }}\nallowed_domains = [\"riverside.example\"]\n\
             accounts = \"create\"\n",
            idp.issuer,
            client_secret.display(),
            idp.ca.display()
        ))
        .toml("[roles]\nclinician = {}\n")
        .route("/patients/**", "allow_roles = [\"clinician\"]")
        .start()
        .await;
    let other = second(&s);
    both_connected(&s, &other);

    // Sent to the provider by the first instance...
    let a = s.browser();
    let form = a
        .get("/.ward/login?return=/patients/1")
        .await
        .text()
        .await
        .unwrap();
    let r = a
        .post(
            "/.ward/sso/idp",
            &[
                ("csrf", &input_value(&form, "csrf")),
                ("return", "/patients/1"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let authorize = r.headers()["location"].to_str().unwrap().to_string();
    let state = a
        .cookie("__Host-ward-sso")
        .expect("the sign-in's state cookie");
    let back = idp
        .login(&crate::common::oidc::Idp::client(), &authorize, "alice")
        .await;
    let back = back.strip_prefix(public).expect("back to ward").to_string();

    // ...and back through the other, which finishes the sign-in.
    let b = Browser::on(&other, "localhost");
    b.set_cookie("__Host-ward-sso", &state);
    let r = b.get(&back).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    assert_eq!(r.headers()["location"], "/patients/1");
    assert!(through(&s, &b, "/patients/1").await.is_some());
    // The step works once: the same answer again, through either, is refused.
    let again = Browser::on(&s.ward, "localhost");
    again.set_cookie("__Host-ward-sso", &state);
    assert_eq!(again.get(&back).await.status(), 400);
}

/// A route's `rate_limit` counts one person's requests on every instance together: going
/// back and forth between instances gives no more than the limit.
#[tokio::test(flavor = "multi_thread")]
async fn a_routes_rate_limit_counts_requests_on_every_instance() {
    let redis = Redis::start();
    let (_dir, password_file) = password_file();
    let s = scenario(&redis, &password_file)
        .route(
            "/reports/**",
            "allow_roles = [\"clinician\"]\nrate_limit = \"4/minute\"",
        )
        .start()
        .await;
    let other = second(&s);
    both_connected(&s, &other);
    let one = s.browser();
    assert_eq!(s.sign_in(&one, "dr_lee").await, 303);
    let two = switched(&other, &one);
    for (n, b) in [&one, &two, &one, &two].into_iter().enumerate() {
        let r = b.get(&format!("/reports/{n}")).await;
        assert_eq!(r.status(), 200, "request {n}");
    }
    assert_eq!(one.get("/reports/4").await.status(), 429);
    assert_eq!(two.get("/reports/5").await.status(), 429);
    // Another route of the same person is not capped.
    assert_eq!(two.get("/patients/1").await.status(), 200);
}

/// A SAML sign-in begun on one instance finishes on the other (the step and the assertion's
/// one-time use are kept in Redis); the same answer is refused afterwards through either.
#[tokio::test(flavor = "multi_thread")]
async fn a_saml_sign_in_begun_on_one_instance_finishes_on_the_other() {
    use crate::common::saml::{IdpBrowser, KnownSp, Person, SamlIdp};
    let redis = Redis::start();
    let (dir, password_file) = password_file();
    let public = "https://ehr.localhost:8443";
    let (entity, acs, slo) = (
        format!("{public}/.ward/saml/metadata"),
        format!("{public}/.ward/saml/acs"),
        format!("{public}/.ward/saml/logout"),
    );
    let idp = SamlIdp::start(
        &[Person {
            user: "alice",
            mail: "alice@riverside.example",
            groups: &["clinicians"],
        }],
        &[KnownSp {
            entity_id: &entity,
            acs: &acs,
            slo: &slo,
            cert: None,
            encrypt: false,
        }],
        300,
        Some("urn:oasis:names:tc:SAML:2.0:ac:classes:TimeSyncToken"),
    );
    let metadata = idp.write_metadata(&dir.path().join("idp.xml"));
    let s = Scenario::new()
        .server(&format!("public_url = \"{public}\""))
        .toml(&sessions_table(&redis, &password_file, ""))
        .toml(&format!(
            "[login]\n[[login.saml]]\nname = \"idp\"\nidp_metadata = \"{}\"\n\
             role_map = {{ clinicians = [\"clinician\"] }}\nallowed_domains = [\"riverside.example\"]\n\
             accounts = \"create\"\n",
            metadata.display()
        ))
        .toml("[roles]\nclinician = {}\n")
        .route("/patients/**", "allow_roles = [\"clinician\"]")
        .start()
        .await;
    let other = second(&s);
    both_connected(&s, &other);

    // Sent to the IdP by the first instance...
    let a = s.browser();
    let csrf = input_value(
        &a.get("/.ward/login?return=/patients/1")
            .await
            .text()
            .await
            .unwrap(),
        "csrf",
    );
    let r = a
        .post(
            "/.ward/sso/idp",
            &[("csrf", &csrf), ("return", "/patients/1")],
        )
        .await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let to_idp = r.headers()["location"].to_str().unwrap().to_string();
    let state = a
        .cookie("__Host-ward-saml")
        .expect("the sign-in's RelayState cookie");
    let (_, response, relay) = IdpBrowser::default().login(&to_idp, "alice").await;
    let fields = [
        ("SAMLResponse", response.as_str()),
        ("RelayState", relay.as_str()),
    ];

    // ...and its answer posted to the other, which finishes the sign-in.
    let b = Browser::on(&other, "localhost");
    b.set_cookie("__Host-ward-saml", &state);
    // (The planted cookie has no SameSite=None: sent as from the same site.)
    let r = b
        .post_with_origin(&idp.base, "/.ward/saml/acs", &fields)
        .await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    assert_eq!(r.headers()["location"], "/patients/1");
    assert!(through(&s, &b, "/patients/1").await.is_some());
    // The answer works once: posted again through the first instance, it is refused.
    let again = Browser::on(&s.ward, "localhost");
    again.set_cookie("__Host-ward-saml", &state);
    let r = again
        .post_with_origin(&idp.base, "/.ward/saml/acs", &fields)
        .await;
    assert_eq!(r.status(), 400);
}

/// The passkey ceremonies under way in Redis (their keys), as `redis-cli` lists them.
fn passkey_steps_in(redis: &Redis) -> usize {
    let out = Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "--no-auth-warning"])
        .args([
            "-a",
            REDIS_PASSWORD,
            "--scan",
            "--pattern",
            "ward:passkey:*",
        ])
        .output()
        .expect("redis-cli (it comes with redis-server; tests/run installs it)");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// Issue #14: a passkey step begun on one instance is kept in Redis, and the other instance
/// takes it (once) when the browser's answer arrives there.
#[tokio::test(flavor = "multi_thread")]
async fn a_passkey_step_begun_on_one_instance_is_taken_once_on_the_other() {
    let redis = Redis::start();
    let (_dir, password_file) = password_file();
    let s = scenario(&redis, &password_file)
        .toml("[login]\npasswordless = true\n")
        .start()
        .await;
    let other = second(&s);
    both_connected(&s, &other);
    assert_eq!(passkey_steps_in(&redis), 0);
    let b = s.browser();
    let login = b.get("/.ward/login").await.text().await.unwrap();
    let csrf = input_value(&login, "csrf");
    let page = b
        .post(
            "/.ward/passkey-sign-in",
            &[("csrf", &csrf), ("return", "/")],
        )
        .await
        .text()
        .await
        .unwrap();
    let step = input_value(&page, "step");
    assert!(!step.is_empty(), "{page}");
    assert_eq!(passkey_steps_in(&redis), 1, "the step is kept in Redis");

    // The answer (a forged one) arrives at the other instance: it takes the step, and refuses.
    let there = Browser::on(&other, "localhost");
    there.set_cookie(
        "__Host-ward-csrf",
        &b.cookie("__Host-ward-csrf").unwrap_or_default(),
    );
    let r = there
        .post(
            "/.ward/passkey-sign-in",
            &[
                ("csrf", &csrf),
                ("return", "/"),
                ("step", &step),
                ("credential", "{\"id\":\"x\"}"),
            ],
        )
        .await;
    let text = r.text().await.unwrap();
    assert!(text.contains("That passkey did not sign you in"), "{text}");
    assert_eq!(
        passkey_steps_in(&redis),
        0,
        "taken once, by the other instance"
    );
    assert!(there.cookie(COOKIE).is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_more_time_form_shown_by_one_instance_is_taken_once_by_either() {
    let redis = Redis::start();
    let (_dir, password_file) = password_file();
    let s = scenario(&redis, &password_file).start().await;
    let other = second(&s);
    both_connected(&s, &other);
    let jo = enrolled_user(
        &s.ward.site,
        "acme_jo",
        &["clinician"],
        PW,
        Some("Acme Billing"),
        Some("2020-01-31"),
    );
    presets::settle().await;
    let b = Browser::on(&s.ward, "localhost");
    assert_eq!(
        presets::password_step(&b, "acme_jo", PW).await.status(),
        303
    );
    let form = b.get("/.ward/mfa").await.text().await.unwrap();
    let code = ward::auth::totp::code_at(&jo, unix_now());
    let page = b
        .post(
            "/.ward/mfa",
            &[("csrf", &input_value(&form, "csrf")), ("code", &code)],
        )
        .await
        .text()
        .await
        .unwrap();
    let ticket = input_value(&page, "ticket");
    let fields = [
        ("ticket", ticket.as_str()),
        ("reason", "Quarter-end billing run"),
        ("until", "2099-01-01"),
    ];
    // The load balancer sends the form to the other instance: the ticket is known there
    // (the day is refused, which gives a fresh ticket and uses this one up)...
    let there = Browser::on(&other, "localhost");
    let r = there.post("/.ward/more-time", &fields).await;
    let status = r.status();
    let again = r.text().await.unwrap();
    assert_eq!(status, 400, "{again}");
    assert!(again.contains("at most 90 days"), "{again}");
    // ...and used there, it is refused on the first.
    let r = b.post("/.ward/more-time", &fields).await;
    assert_eq!(r.status(), 403);
    let fresh = [
        ("ticket", input_value(&again, "ticket")),
        ("reason", "Quarter-end billing run".to_string()),
        ("until", "2020-01-01".to_string()),
    ];
    let fresh: Vec<(&str, &str)> = fresh.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // The fresh ticket works on the first instance too.
    let r = b.post("/.ward/more-time", &fresh).await;
    let status = r.status();
    let page = r.text().await.unwrap();
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("between today"), "{page}");
}
