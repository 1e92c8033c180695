//! Several instances, one audit folder: each instance keeps its own chain (`[audit] instance`
//! in its files' names and in every record), a trail written before instances were named
//! stays readable beside them, and `ward audit verify` and `ward audit search` read every
//! chain, search in time order across them.

use crate::common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A ward (sharing `first`'s upstream and policy) writing its trail to `dir` as `instance`.
fn instance(first: &Running, dir: &Path, instance: Option<&str>) -> Ward {
    let site = Site::new();
    let config = site.path("ward.toml");
    let name = instance
        .map(|n| format!("instance = \"{n}\"\n"))
        .unwrap_or_default();
    let text = format!(
        "{}\n[audit]\ndir = \"{}\"\n{name}",
        first.policy.replace("{server}", &server_section(&site)),
        dir.display()
    );
    std::fs::write(&config, text).unwrap();
    Ward::start_in(site, config)
}

/// `ward audit ARGS…`: exit code and everything it printed.
fn audit_command(args: &[&str]) -> (i32, String) {
    let out = Command::new(WARD).arg("audit").args(args).output().unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), said)
}

#[tokio::test(flavor = "multi_thread")]
async fn each_instance_keeps_its_own_chain_and_the_commands_read_them_all_in_time_order() {
    let s = Scenario::new()
        .route("/open/**", "allow = \"public\"")
        .start()
        .await;
    let shared = tempfile::tempdir().unwrap();
    let dir = shared.path().join("audit");
    let dir_text = dir.display().to_string();

    // A trail from before instances had names: one unnamed chain.
    let mut old = instance(&s, &dir, None);
    let b = Browser::new(&old);
    assert_eq!(b.get("/open/old").await.status(), 200);
    old.stop();

    // Two named instances, taking turns.
    let (one, two) = (
        instance(&s, &dir, Some("ward-a")),
        instance(&s, &dir, Some("ward-b")),
    );
    let (a, b) = (Browser::new(&one), Browser::new(&two));
    for n in 1..=3 {
        assert_eq!(a.get(&format!("/open/a{n}")).await.status(), 200);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(b.get(&format!("/open/b{n}")).await.status(), 200);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The names are in the files' names and in the records.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".jsonl"))
        .collect();
    for prefix in ["audit-ward-a-", "audit-ward-b-"] {
        assert!(names.iter().any(|n| n.starts_with(prefix)), "{names:?}");
    }
    assert!(
        names
            .iter()
            .any(|n| n.len() == "audit-20261101-0001.jsonl".len()),
        "the unnamed chain's file: {names:?}"
    );
    let (code, found) = audit_command(&[
        "search", "--dir", &dir_text, "--path", "/open/**", "--format", "json",
    ]);
    assert_eq!(code, 0, "{found}");
    let records: Vec<serde_json::Value> = found
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let seen: Vec<(&str, &str)> = records
        .iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap_or_default(),
                r["instance"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    // In time order across the chains, each record naming its instance.
    assert_eq!(
        seen,
        [
            ("/open/old", "-"),
            ("/open/a1", "ward-a"),
            ("/open/b1", "ward-b"),
            ("/open/a2", "ward-a"),
            ("/open/b2", "ward-b"),
            ("/open/a3", "ward-a"),
            ("/open/b3", "ward-b"),
        ]
    );

    // Every chain verifies on its own: seq and prev run per instance.
    let (code, said) = audit_command(&["verify", "--dir", &dir_text]);
    assert_eq!(code, 0, "{said}");
    assert!(said.contains("instance ward-a: verified"), "{said}");
    assert!(said.contains("instance ward-b: verified"), "{said}");
    assert!(
        said.lines().any(|l| l.starts_with("verified ")),
        "the unnamed chain: {said}"
    );

    // A record changed in one instance's chain is found, in that instance's file.
    drop((one, two));
    let b_file = names
        .iter()
        .find(|n| n.starts_with("audit-ward-b-"))
        .unwrap();
    let path = dir.join(b_file);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("/open/b2", "/open/b9")).unwrap();
    let (code, said) = audit_command(&["verify", "--dir", &dir_text]);
    assert_eq!(code, 1, "{said}");
    assert!(said.contains(b_file.as_str()), "{said}");
    assert!(said.contains("NOT intact"), "{said}");
}
