//! No audit record is lost when ward is killed with SIGKILL under load: every
//! answer a client received has its record, and the chain verifies after the
//! next start (which trims a torn last line).

use crate::common::*;
use std::collections::HashSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn trail_ids(dir: &std::path::Path) -> HashSet<String> {
    let mut ids = HashSet::new();
    for f in std::fs::read_dir(dir).unwrap() {
        let p = f.unwrap().path();
        if p.extension().is_some_and(|e| e == "jsonl") {
            for line in std::fs::read_to_string(&p).unwrap().lines() {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
                    && let Some(id) = v["request_id"].as_str()
                {
                    ids.insert(id.to_string());
                }
            }
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_under_load_loses_no_record_of_an_answer_sent() {
    let ehr = Ehr::start();
    let mut ward = Ward::start(&open_policy(&ehr.url()));
    let received: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for i in 0..6 {
        let client = ward.client(i % 2 == 0);
        let url = ward.url("/logo.png");
        let (received, stop) = (received.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            for _ in 0..20_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(resp) = client.get(&url).send().await else {
                    break;
                };
                let id = resp
                    .headers()
                    .get("x-request-id")
                    .map(|v| v.to_str().unwrap().to_string());
                // Only answers that arrived whole count as received.
                if resp.status() == 200
                    && resp.bytes().await.is_ok()
                    && let Some(id) = id
                {
                    received.lock().unwrap().push(id);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(2000)).await;
    ward.proc.kill(); // SIGKILL
    stop.store(true, Ordering::Relaxed);
    for t in load {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    let received = received.lock().unwrap().clone();
    assert!(
        received.len() > 100,
        "too little load to mean anything: {}",
        received.len()
    );
    let trail = trail_ids(&ward.site.path("audit"));
    let missing: Vec<&String> = received.iter().filter(|id| !trail.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} answers have no audit record, e.g. {:?}",
        missing.len(),
        received.len(),
        missing.first()
    );
    eprintln!(
        "{} answers received before SIGKILL, all recorded",
        received.len()
    );

    // The next start repairs a torn last line; then the whole chain verifies.
    let site = std::mem::replace(&mut ward.site, Site::new());
    let config = site.path("ward.toml");
    let restarted = Ward::start_in(site, config);
    assert_eq!(
        restarted
            .client(true)
            .get(restarted.url("/logo.png"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let pid = restarted.proc.pid().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    verify_trail(&restarted.site.path("audit"));
}

/// ward keeps the trail's lock while records flow (it saves a lock and a look at the file
/// per request) but lets it go at least every 100 ms: an officer's `ward user …` under
/// steady load finishes promptly, and its record sits in the one chain with the requests'.
#[tokio::test(flavor = "multi_thread")]
async fn a_ward_user_command_gets_into_the_trail_promptly_under_load() {
    let mut s = Scenario::new()
        .route("/**", "allow = \"public\"")
        .user("bo", &["clinician"])
        .start()
        .await;
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut load = Vec::new();
    for i in 0..4 {
        let client = s.ward.client(i % 2 == 0);
        let url = s.ward.url("/page");
        let (stop, served) = (stop.clone(), served.clone());
        load.push(tokio::spawn(async move {
            // Bounded: the command below must not depend on the load ending.
            let until = std::time::Instant::now() + Duration::from_secs(60);
            while !stop.load(Ordering::Relaxed) && std::time::Instant::now() < until {
                if let Ok(r) = client.get(&url).send().await
                    && r.status() == 200
                {
                    served.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = served.load(Ordering::Relaxed);
    let took = std::time::Instant::now();
    // The command blocks on the lock: run it off the runtime's threads.
    let dir = s.ward.site.dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(WARD)
            .current_dir(dir)
            .args(["user", "--config", "ward.toml", "deactivate", "bo"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let took = took.elapsed();
    let during = served.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    for t in load {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        during > 0,
        "the load had stopped while the command ran ({during} requests)"
    );
    // Generous for a busy machine; a lock never let go would keep it waiting for the
    // whole minute of load.
    assert!(took < Duration::from_secs(10), "ward user took {took:?}");
    let trail = s.audit();
    assert!(
        trail
            .iter()
            .any(|r| r["user"] == "bo" && r["kind"] == "officer"),
        "no record of the deactivation"
    );
    let access = trail.iter().filter(|r| r["kind"] == "access").count();
    assert!(access > 100, "{access} access records");
    s.ward.stop();
    verify_trail(&s.ward.site.path("audit"));
    eprintln!("ward user took {took:?} while ward served {during} requests");
}
