//! Memory for live sessions in the embedded store: resident memory before and after
//! 100,000 signed-in sessions (the #12 target: under 100 MB). Linux only (reads
//! /proc/self/status). Run: `cargo bench --bench sessions_memory`.

use std::net::IpAddr;
use std::sync::Arc;
use ward::session::{MemoryStore, Session, SessionStore, Stage};

const SESSIONS: usize = 100_000;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing and wants no run.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let ip: IpAddr = IpAddr::from([10, 1, 2, 3]);
    let before = rss_kib();
    let store = MemoryStore::new(std::time::Duration::from_secs(24 * 3600));
    for i in 0..SESSIONS {
        // As a browser's session: a 43-character cookie, a user name, a return address.
        let cookie = format!("{i:043}");
        let session = Session::new(
            &format!("user{:05}", i % 5_000),
            1,
            1_700_000_000,
            Stage::Complete,
            true,
            ip,
            "/patients/1001/chart",
        )
        .expect("randomness");
        store.insert(&cookie, Arc::new(session));
    }
    let live = store.all().len();
    let after = rss_kib();
    let per = (after.saturating_sub(before)) as f64 * 1024.0 / SESSIONS as f64;
    println!(
        "sessions_memory: {live} live sessions: resident memory {:.1} MiB before, {:.1} MiB after \
         ({:.1} MiB for the sessions, {per:.0} bytes each; target: under 100 MB)",
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        after.saturating_sub(before) as f64 / 1024.0,
    );
}
