//! Live reload: a broken file never replaces a good policy, a fixed one applies
//! without a restart and without failing requests, in-flight requests finish
//! under the policy they started with.

use crate::common::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn policy(upstream: &str, admin: &str) -> String {
    format!(
        "practice = \"Test Clinic\"\n{{server}}\n[roles]\nofficer = {{}}\n[[apps]]\nname = \"ehr\"\nupstream = \"{upstream}\"\n\n\
         [[routes]]\napp = \"ehr\"\npath = \"/**\"\nallow = \"public\"\n\n\
         [[routes]]\napp = \"ehr\"\npath = \"/admin/**\"\n{admin}\n"
    )
}

async fn status_of(c: &reqwest::Client, url: &str) -> u16 {
    c.get(url)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

async fn wait_until<F: std::future::Future<Output = bool>>(
    mut check: impl FnMut() -> F,
    timeout: Duration,
) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_policy_keeps_the_old_one_and_a_fix_applies_under_load() {
    let ehr = Ehr::start();
    let ward = Ward::start(&policy(&ehr.url(), "allow_roles = [\"officer\"]"));
    let c = ward.client(true);
    assert_eq!(status_of(&c, &ward.url("/admin/x")).await, 303);

    // A steady load for the whole change.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut load = Vec::new();
    for i in 0..4 {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        let client = ward.client(i % 2 == 0);
        let url = ward.url("/patients/1001/chart");
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let good = match client.get(&url).send().await {
                    Ok(r) => r.status() == 200 && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                let counter = if good { &ok } else { &failed };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    // Broken: a typo in a key.
    ward.write_policy(&policy(&ehr.url(), "alow = \"public\""));
    let health = ward.url("/.ward/healthz");
    let stale = wait_until(
        || async {
            c.get(&health)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
                .contains("\"stale\"")
        },
        Duration::from_secs(10),
    )
    .await;
    assert!(stale, "healthz never reported the stale policy");
    let json: serde_json::Value = c.get(&health).send().await.unwrap().json().await.unwrap();
    let problems = json["problems"].to_string();
    assert!(
        problems.contains(
            "ward.toml:21:1: unknown setting 'alow' in [[routes]]; did you mean 'allow'?"
        ),
        "{problems}"
    );
    ward.proc
        .stderr
        .wait_for("ward.toml:21:1", Duration::from_secs(5));
    // The old policy still rules.
    assert_eq!(status_of(&c, &ward.url("/admin/x")).await, 303);

    // Fixed: /admin becomes public; applied without a restart.
    ward.write_policy(&policy(&ehr.url(), "allow = \"public\""));
    let applied = wait_until(
        || async { status_of(&c, &ward.url("/admin/x")).await == 404 },
        Duration::from_secs(10),
    )
    .await;
    assert!(applied, "the fixed policy was not applied");
    let json: serde_json::Value = c.get(&health).send().await.unwrap().json().await.unwrap();
    assert_eq!(json["status"], "ok");

    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    // Both the refused and the taken reload are in the audit trail.
    let trail = audit_text(&ward.site);
    assert!(
        trail.contains("policy-rejected") && trail.contains("policy-reloaded"),
        "reloads not audited"
    );
    eprintln!("load during reloads: {ok} ok, {failed} failed");
    assert!(ok > 100, "too little load to mean anything: {ok}");
    assert_eq!(failed, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn in_flight_requests_finish_under_the_policy_they_started_with() {
    let ehr = Ehr::start();
    let ward = Ward::start(&policy(&ehr.url(), "allow_roles = [\"officer\"]"));
    let c = ward.client(false);
    let slow = tokio::spawn({
        let c = c.clone();
        let url = ward.url("/slow?ms=3000");
        async move { c.get(url).send().await.unwrap().status().as_u16() }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The new policy refuses everything but /admin.
    let closed = format!(
        "practice = \"Test Clinic\"\n{{server}}\n[roles]\nofficer = {{}}\n[[apps]]\nname = \"ehr\"\nupstream = \"{}\"\n\n\
         [[routes]]\napp = \"ehr\"\npath = \"/admin/**\"\nallow = \"public\"\n",
        ehr.url()
    );
    ward.write_policy(&closed);
    let applied = wait_until(
        || async { status_of(&c, &ward.url("/patients/1001/chart")).await == 403 },
        Duration::from_secs(10),
    )
    .await;
    assert!(applied);
    assert_eq!(
        slow.await.unwrap(),
        200,
        "the in-flight request was cut off by the reload"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads() {
    let ehr = Ehr::start();
    let ward = Ward::start(&policy(&ehr.url(), "allow_roles = [\"officer\"]"));
    ward.write_policy(&policy(&ehr.url(), "allow = \"public\""));
    let pid = ward.proc.pid().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    ward.proc
        .stderr
        .wait_for("policy reloaded", Duration::from_secs(5));
    assert_eq!(
        status_of(&ward.client(true), &ward.url("/admin/x")).await,
        404
    );
}

/// A taken reload says in the audit trail who gains and who loses access, as
/// `ward check --diff` would, worked out over the people in users.toml.
#[tokio::test(flavor = "multi_thread")]
async fn a_reload_records_who_gains_and_loses_access() {
    let s = Scenario::new()
        .toml("[roles]\nclinician = {}\nbiller = {}\n")
        .route("/patients/**", "allow_roles = [\"clinician\"]")
        .route("/billing/**", "allow_roles = [\"biller\"]")
        .user("dr_lee", &["clinician"])
        .user("bo", &["biller"])
        .start()
        .await;
    let new = s.policy.replace(
        "allow_roles = [\"biller\"]",
        "allow_roles = [\"biller\", \"clinician\"]",
    );
    assert_ne!(new, s.policy);
    s.ward.write_policy(&new);
    let record = s.assert_audit(&[("event", "policy-reloaded")]).await;
    let detail = record["detail"].as_str().unwrap_or_default();
    assert!(
        detail.ends_with(
            "(file changed): dr_lee (clinician): gains GET /billing/** on ehr (from any network) \
             | role clinician: gains GET /billing/** on ehr (from any network)"
        ),
        "{detail}"
    );
    // bo's access is the same: bo is not named.
    assert!(!detail.contains("bo ("), "{detail}");
}
