//! Tampering with timing: a policy file written in place (as editors that do not rename do)
//! can be read half-written, and the first part of a policy may be a valid, looser one (here,
//! a route without its `from`). ward must never serve that half. What reached the app is read
//! from the recording upstream and the reloads from the audit trail.

use crate::common::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn a_half_written_policy_is_never_served() {
    let s = Scenario::new()
        .toml("[networks]\noffice = [\"203.0.113.0/24\"]\n[roles]\nbiller = {}\n")
        .route(
            "/billing/**",
            "allow_roles = [\"biller\"]\nfrom = [\"office\"]",
        )
        .user("bo", &["biller"])
        .start()
        .await;
    let b = s.browser();
    assert_eq!(s.sign_in(&b, "bo").await, 303);
    assert_eq!(
        b.get("/billing/x").await.status(),
        403,
        "not from the office"
    );

    let full = std::fs::read_to_string(&s.ward.config).unwrap();
    let cut = full.rfind("from = [\"office\"]").unwrap();
    let torn = &full[..cut];
    // The half is itself a valid policy, and a looser one: that is what makes it dangerous.
    let check = s.ward.site.path("torn.toml");
    std::fs::write(&check, torn).unwrap();
    let out = std::process::Command::new(WARD)
        .current_dir(s.ward.site.dir.path())
        .args(["check", "--config", "torn.toml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let reloads = |s: &Running| {
        s.audit()
            .iter()
            .filter(|r| r["event"] == "policy-reloaded")
            .count()
    };
    let before = reloads(&s);
    let done = AtomicBool::new(false);
    let writer = async {
        // An editor writing in place, caught between its first and second write, many times.
        for _ in 0..12 {
            std::fs::write(&s.ward.config, torn).unwrap();
            tokio::time::sleep(Duration::from_millis(250)).await;
            std::fs::write(&s.ward.config, &full).unwrap();
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
        done.store(true, Ordering::SeqCst);
    };
    let prober = async {
        let mut let_through = 0;
        while !done.load(Ordering::SeqCst) {
            if b.get("/billing/x").await.status() != 403 {
                let_through += 1;
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        let_through
    };
    let ((), let_through) = tokio::join!(writer, prober);
    assert_eq!(let_through, 0, "the half-written policy was served");
    assert!(s.up.saw("/billing/x").is_empty());
    assert_eq!(reloads(&s), before, "a half-written policy was loaded");

    // The control: a finished edit written in place is taken.
    let edited = full.replace(
        "from = [\"office\"]",
        "from = [\"office\"]\n\n[[routes]]\napp = \"ehr\"\npath = \"/news/**\"\nallow = \"public\"",
    );
    std::fs::write(&s.ward.config, edited).unwrap();
    let mut status = 0;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        status = b.get("/news/today").await.status().as_u16();
        if status == 200 {
            break;
        }
    }
    assert_eq!(status, 200, "an edit written in place was never taken");
    assert_eq!(reloads(&s), before + 1);
    assert_eq!(b.get("/billing/x").await.status(), 403);
}
