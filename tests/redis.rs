//! Two ward instances sharing sessions through a real Redis (`redis-server` on a free loopback
//! port, with a password): a sign-in through one works through the other, activity on one
//! keeps the session alive on the other, a sign-out or a terminated account ends it on both
//! within a second, and while Redis is away nobody is let in or signs in, until it is back.

mod common;

use common::*;
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
}

impl Redis {
    fn start() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut r = Redis {
            proc: None,
            port,
            dir: tempfile::tempdir().unwrap(),
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
        let proc = Proc::spawn(
            Command::new("redis-server")
                .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
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

/// The scenario with more `[sessions]` lines.
fn scenario_with(redis: &Redis, password_file: &Path, sessions: &str) -> Scenario {
    Scenario::new()
        .toml(&format!(
            "[sessions]\nstore = \"redis://127.0.0.1:{}\"\nstore_password_file = \"{}\"\nactivity_every = \"1s\"\n{sessions}\n\
             [roles]\nclinician = {{}}\nfront_desk = {{ idle_timeout = \"4s\" }}\n",
            redis.port,
            password_file.display()
        ))
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
