//! A bounded soak over loopback: thousands of connections (HTTP/1.1 and
//! HTTP/2, a new one per request), people signing in again and again, an
//! address guessing passwords, an account being locked, and slow clients
//! that never finish, all at once, in two rounds. Every answer must be the
//! right one, slow clients must be cut off by ward's timeouts while the others
//! are served, the sign-in rate limit and lockout must hold, and ward's memory
//! must not grow from the first round to the second.
//!
//! Each round lasts `WARD_SOAK_SECS` seconds (default 20, so about 40 s of
//! load). For a long run: `WARD_SOAK_SECS=1800 cargo test --release --test soak -- --nocapture`.

mod common;

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// People who sign in over and over, each from an address of their own.
const PEOPLE: u8 = 4;
/// `[login] attempts_per_minute` in the soak's policy: low, so that the
/// guesser runs into it early even on a slow machine.
const PER_MINUTE: u64 = 20;
/// `[login] lockout_after`.
const LOCKOUT_AFTER: usize = 5;
const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);
const KEEPALIVE: Duration = Duration::from_secs(4);
/// How late a timeout may fire on a busy 2-core machine.
const SLACK: Duration = Duration::from_secs(5);

const WRONG_PASSWORD: &str = "The user name or password is not right";
const THROTTLED: &str = "Too many sign-in attempts from this address";
const LOCKED: &str = "locked after too many failed sign-ins";

fn round_length() -> Duration {
    let secs = std::env::var("WARD_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    Duration::from_secs(secs)
}

/// Counts, shared by the load's tasks.
#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    wrong: AtomicU64,
    failed: AtomicU64,
    sign_ins: AtomicU64,
    guesses_heard: AtomicU64,
    guesses_throttled: AtomicU64,
    slow_clients: AtomicU64,
}

impl Tally {
    fn add(n: &AtomicU64) {
        n.fetch_add(1, Ordering::Relaxed);
    }
}

fn get(n: &AtomicU64) -> u64 {
    n.load(Ordering::Relaxed)
}

/// An account that signs in with a password alone (the soak's policy makes
/// the second factor optional), so sign-ins are not limited by one
/// authenticator code per 30 seconds.
fn password_only(site: &Site, name: &str) {
    enrolled_user(site, name, &["clinician"], PW, None, None);
    let store = ward::users::SecretStore::open(&site.path("state")).unwrap();
    store
        .update(|s| s.users.get_mut(name).unwrap().totp = None)
        .unwrap();
}

/// Ward in front of an app that answers every request with its path.
async fn start() -> Ward {
    let app = small_app(|req: hyper::Request<hyper::body::Incoming>| async move {
        hyper::Response::new(Full::new(Bytes::from(req.uri().path().to_string())))
    })
    .await;
    let site = Site::new();
    for i in 0..PEOPLE {
        password_only(&site, &format!("person{i}"));
    }
    password_only(&site, "lockme");
    let config = site.path("ward.toml");
    let policy = format!(
        "practice = \"Test Clinic\"\n{{server}}\
         header_read_timeout = \"{}s\"\nhandshake_timeout = \"{}s\"\nkeepalive_timeout = \"{}s\"\n\
         [login]\nmfa = \"optional\"\nattempts_per_minute = {PER_MINUTE}\nlockout_after = {LOCKOUT_AFTER}\n\
         [sessions]\nmax_per_user = 1\n\
         [roles]\nclinician = {{}}\n\
         [storage]\nusers = \"config/users.toml\"\nstate = \"state\"\n\
         [[apps]]\nname = \"ehr\"\nupstream = \"{app}\"\n\
         [[routes]]\napp = \"ehr\"\npath = \"/**\"\nallow_roles = [\"clinician\"]\n\
         [[routes]]\napp = \"ehr\"\npath = \"/public/**\"\nallow = \"public\"\n",
        HEADER_TIMEOUT.as_secs(),
        HANDSHAKE_TIMEOUT.as_secs(),
        KEEPALIVE.as_secs(),
    );
    std::fs::write(&config, policy.replace("{server}", &server_section(&site))).unwrap();
    Ward::start_in(site, config)
}

/// A client that opens a new connection for every request.
fn fresh_connections(ward: &Ward, h2: bool) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .use_preconfigured_tls(tls_client(
            &ward.site.cert_pem(),
            if h2 { &[b"h2"] } else { &[b"http/1.1"] },
        ))
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .resolve("localhost", ward.addr);
    b = if h2 {
        b.http2_prior_knowledge()
    } else {
        b.http1_only()
    };
    b.build().unwrap()
}

/// Public pages, a new connection each, until `until`; each answer must be the app's echo of its own path.
async fn visitor(ward: Arc<Ward>, tally: Arc<Tally>, n: usize, until: Instant) {
    let client = fresh_connections(&ward, n % 2 == 1);
    let mut i = 0u64;
    while Instant::now() < until {
        i += 1;
        let path = format!("/public/v{n}/{i}");
        Tally::add(&tally.requests);
        match client.get(ward.url(&path)).send().await {
            Ok(r) if r.status() == 200 => match r.text().await {
                Ok(body) if body == path => {}
                _ => Tally::add(&tally.wrong),
            },
            Ok(r) => {
                eprintln!("{path}: {}", r.status());
                Tally::add(&tally.wrong)
            }
            Err(e) => {
                eprintln!("{path}: {e}");
                Tally::add(&tally.failed)
            }
        }
    }
}

/// Signs `name` in with a password alone; the status of the POST.
async fn password_sign_in(b: &Browser, name: &str, password: &str) -> (u16, String) {
    let form = b.get("/.ward/login").await.text().await.unwrap();
    let csrf = input_value(&form, "csrf");
    let r = b
        .post(
            "/.ward/login",
            &[
                ("csrf", &csrf),
                ("return", "/"),
                ("username", name),
                ("password", password),
            ],
        )
        .await;
    let status = r.status().as_u16();
    (status, r.text().await.unwrap_or_default())
}

/// One person signing in again and again (from a new address each time, so
/// the per-address limit is the guesser's alone), using the apps in between:
/// each new sign-in ends the one before (`max_per_user = 1`), whose cookie
/// must then be refused.
async fn person(ward: Arc<Ward>, tally: Arc<Tally>, n: u8, until: Instant) {
    let name = format!("person{n}");
    let mut old: Option<String> = None;
    let mut round = 0;
    while Instant::now() < until {
        round += 1;
        let addr: IpAddr = format!("127.1.{n}.{}", round % 250 + 1).parse().unwrap();
        let b = Browser::with_client(client_from(&ward, addr), ward.url(""));
        let (status, page) = password_sign_in(&b, &name, PW).await;
        Tally::add(&tally.requests);
        if status != 303 {
            eprintln!("{name} sign-in {round}: {status}: {page}");
            Tally::add(&tally.wrong);
            continue;
        }
        Tally::add(&tally.sign_ins);
        let cookie = b.cookie("__Host-ward-session").unwrap_or_default();
        for i in 0..10 {
            let path = format!("/chart/{name}/{round}/{i}");
            Tally::add(&tally.requests);
            let r = b.get(&path).await;
            if r.status() != 200 || r.text().await.unwrap_or_default() != path {
                Tally::add(&tally.wrong);
            }
        }
        if let Some(old_cookie) = old.replace(cookie) {
            let stale = Browser::with_client(client_from(&ward, addr), ward.url(""));
            stale.set_cookie("__Host-ward-session", &old_cookie);
            Tally::add(&tally.requests);
            if stale.get("/chart/old").await.status() == 200 {
                eprintln!("{name}: an ended session still reached the app");
                Tally::add(&tally.wrong);
            }
        }
    }
}

/// Wrong passwords from one address as fast as ward answers; the rate limit
/// must hear at most `PER_MINUTE` at once, then one more every 60/`PER_MINUTE` seconds.
async fn guesser(ward: Arc<Ward>, tally: Arc<Tally>, until: Instant) {
    let b = Browser::with_client(
        client_from(&ward, "127.0.9.1".parse().unwrap()),
        ward.url(""),
    );
    let mut i = 0;
    while Instant::now() < until {
        i += 1;
        // A new unknown name each time, so the name's own lockout never answers first.
        let (status, page) = password_sign_in(&b, &format!("nobody{i}"), "guess").await;
        match status {
            401 if page.contains(WRONG_PASSWORD) => Tally::add(&tally.guesses_heard),
            429 if page.contains(THROTTLED) => Tally::add(&tally.guesses_throttled),
            s => {
                eprintln!("guess {i}: {s}: {page}");
                Tally::add(&tally.wrong)
            }
        }
    }
}

/// Locks `lockme` with wrong passwords from different addresses, then tries
/// the right one from yet others until `until`: never signed in.
async fn locker(ward: Arc<Ward>, tally: Arc<Tally>, until: Instant) {
    let mut i = 0u8;
    let mut from = || {
        i = i.wrapping_add(1);
        let addr: IpAddr = format!("127.0.8.{}", i.max(1)).parse().unwrap();
        Browser::with_client(client_from(&ward, addr), ward.url(""))
    };
    for k in 0..LOCKOUT_AFTER {
        let (status, page) = password_sign_in(&from(), "lockme", "not it").await;
        let expected = if k + 1 < LOCKOUT_AFTER {
            status == 401 && page.contains(WRONG_PASSWORD)
        } else {
            // The attempt that locks may be told either way.
            status == 401 || status == 429
        };
        if !expected {
            eprintln!("lockme wrong password {k}: {status}: {page}");
            Tally::add(&tally.wrong);
        }
    }
    while Instant::now() < until {
        let (status, page) = password_sign_in(&from(), "lockme", PW).await;
        if !(status == 429 && page.contains(LOCKED)) {
            eprintln!("lockme, locked, right password: {status}: {page}");
            Tally::add(&tally.wrong);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How long ward took to close a slow client's connection, or `None` if it
/// was still open after `limit`.
async fn closed_within(
    tls: &mut (impl AsyncReadExt + AsyncWriteExt + Unpin),
    start: Instant,
    limit: Duration,
    drip: &[u8],
) -> Option<Duration> {
    let mut buf = [0u8; 4096];
    loop {
        if start.elapsed() > limit {
            return None;
        }
        // Keep dripping bytes that never finish the head; stop when ward hangs up.
        if !drip.is_empty() && tls.write_all(drip).await.is_err() {
            return Some(start.elapsed());
        }
        match tokio::time::timeout(Duration::from_millis(500), tls.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            // ward may answer before closing (a 408, a GOAWAY): keep reading.
            Ok(Ok(_)) | Err(_) => {}
        }
    }
}

/// A slow client of one kind; panics (via the tally) if ward keeps it past its timeout.
async fn slow_client(ward: Arc<Ward>, tally: Arc<Tally>, kind: u8) {
    let start = Instant::now();
    let outcome = match kind {
        // Partial request head, a byte at a time: `header_read_timeout`.
        0 => {
            let mut tls = raw_tls(&ward, &[b"http/1.1"]).await;
            let _ = tls
                .write_all(b"GET /public/slow HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
                .await;
            closed_within(&mut tls, start, HEADER_TIMEOUT + SLACK, b"a").await
        }
        // TCP only, no TLS handshake: `handshake_timeout`.
        1 => {
            let mut tcp = tokio::net::TcpStream::connect(ward.addr).await.unwrap();
            closed_within(&mut tcp, start, HANDSHAKE_TIMEOUT + SLACK, b"").await
        }
        // HTTP/2, a header block that never ends: `keepalive_timeout`
        // (a GOAWAY, then the connection dropped if still silent).
        _ => {
            let mut tls = raw_tls(&ward, &[b"h2"]).await;
            let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
            hello.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
            // HEADERS on stream 1 without END_HEADERS, one literal field.
            hello.extend_from_slice(&[0, 0, 3, 1, 0, 0, 0, 0, 1, 0x00, 0x01, b'x']);
            let _ = tls.write_all(&hello).await;
            closed_within(&mut tls, start, KEEPALIVE * 2 + SLACK, b"").await
        }
    };
    match outcome {
        Some(_) => Tally::add(&tally.slow_clients),
        None => {
            eprintln!(
                "slow client of kind {kind} still connected after {:?}",
                start.elapsed()
            );
            Tally::add(&tally.wrong)
        }
    }
}

/// One round of load for `length`; returns the counts.
async fn round(ward: &Arc<Ward>, length: Duration, lock: bool) -> Arc<Tally> {
    let tally = Arc::new(Tally::default());
    let until = Instant::now() + length;
    let mut tasks = Vec::new();
    for n in 0..12 {
        tasks.push(tokio::spawn(visitor(ward.clone(), tally.clone(), n, until)));
    }
    for n in 0..PEOPLE {
        tasks.push(tokio::spawn(person(ward.clone(), tally.clone(), n, until)));
    }
    tasks.push(tokio::spawn(guesser(ward.clone(), tally.clone(), until)));
    if lock {
        tasks.push(tokio::spawn(locker(ward.clone(), tally.clone(), until)));
    }
    // Waves of slow clients through the round.
    let waves = ward.clone();
    let slow_tally = tally.clone();
    tasks.push(tokio::spawn(async move {
        let mut wave = Vec::new();
        while Instant::now() + HEADER_TIMEOUT + SLACK < until || wave.is_empty() {
            for i in 0..60u8 {
                wave.push(tokio::spawn(slow_client(
                    waves.clone(),
                    slow_tally.clone(),
                    i % 3,
                )));
            }
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        for w in wave {
            w.await.unwrap();
        }
    }));
    for t in tasks {
        t.await.expect("a load task panicked");
    }
    tally
}

/// What the round did, for the test's output.
fn summary(t: &Tally) -> String {
    format!(
        "{} requests ({} wrong, {} failed), {} sign-ins, guesses {} heard / {} throttled, {} slow clients cut off",
        get(&t.requests),
        get(&t.wrong),
        get(&t.failed),
        get(&t.sign_ins),
        get(&t.guesses_heard),
        get(&t.guesses_throttled),
        get(&t.slow_clients)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak() {
    let length = round_length();
    let ward = Arc::new(start().await);
    let at_start = ward.proc.rss_kib();
    let started = Instant::now();

    let first = round(&ward, length, true).await;
    tokio::time::sleep(KEEPALIVE + Duration::from_secs(1)).await;
    let after_first = ward.proc.rss_kib();
    let second = round(&ward, length, false).await;
    tokio::time::sleep(KEEPALIVE + Duration::from_secs(1)).await;
    let after_second = ward.proc.rss_kib();
    let elapsed = started.elapsed().as_secs();
    eprintln!("round 1: {}", summary(&first));
    eprintln!("round 2: {}", summary(&second));
    eprintln!(
        "ward's memory: {at_start} KiB at start, {after_first} KiB after round 1, {after_second} KiB after round 2"
    );

    for t in [&first, &second] {
        assert_eq!(get(&t.wrong), 0, "wrong answers: {}", summary(t));
        assert_eq!(get(&t.failed), 0, "requests lost: {}", summary(t));
        assert!(
            get(&t.requests) >= 1000,
            "too little load to judge: {}",
            summary(t)
        );
        assert!(get(&t.sign_ins) >= PEOPLE as u64, "{}", summary(t));
        assert!(get(&t.slow_clients) >= 60, "{}", summary(t));
    }
    // governor: a burst of PER_MINUTE, then one more every 60/PER_MINUTE s.
    let heard = get(&first.guesses_heard) + get(&second.guesses_heard);
    let throttled = get(&first.guesses_throttled) + get(&second.guesses_throttled);
    assert!(throttled > 0, "the guesser was never throttled");
    let allowed = PER_MINUTE + elapsed * PER_MINUTE / 60 + 1;
    assert!(
        heard <= allowed,
        "{heard} guesses heard from one address in {elapsed} s"
    );
    // Allocators keep what a burst used; a leak grows on with every round.
    let growth = after_second.saturating_sub(after_first);
    let bound = (after_first / 5).max(16 * 1024);
    assert!(
        growth <= bound,
        "ward's memory grew by {growth} KiB in round 2 (from {after_first} KiB)"
    );
}
