//! The audit trail end to end: a real chain on disk, tampered with in every way an insider
//! might, checked by the real `ward audit verify`; two writers at once; rotation; a writer
//! killed with SIGKILL mid-run; and `ward audit search`.

use crate::common::{Proc, WARD};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use ward::audit::{self, Audit, AuditSettings, Record};

/// Runs `ward audit ARGS…`.
fn ward_audit(args: &[&str]) -> Output {
    Command::new(WARD)
        .arg("audit")
        .args(args)
        .output()
        .expect("run ward")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `ward audit verify --dir DIR`: Ok(stdout) or Err(first stderr line).
fn verify_dir(dir: &Path) -> Result<String, String> {
    let out = ward_audit(&["verify", "--dir", dir.to_str().unwrap()]);
    if out.status.success() {
        Ok(text(&out.stdout))
    } else {
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        Err(text(&out.stderr).lines().next().unwrap_or("").to_string())
    }
}

/// The trail's files and their lines.
fn read_trail(dir: &Path) -> Vec<(PathBuf, Vec<String>)> {
    audit::trail_files(dir)
        .unwrap()
        .into_iter()
        .map(|f| {
            let lines = std::fs::read_to_string(&f)
                .unwrap()
                .lines()
                .map(String::from)
                .collect();
            (f, lines)
        })
        .collect()
}

fn write_lines(f: &Path, lines: &[String]) {
    let mut t = lines.join("\n");
    t.push('\n');
    std::fs::write(f, t).unwrap();
}

fn seq(line: &str) -> u64 {
    serde_json::from_str::<serde_json::Value>(line).unwrap()["seq"]
        .as_u64()
        .unwrap()
}

fn copy_dir(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.path().join(e.file_name())).unwrap();
    }
    to
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Writes `n` access records through `Audit` from 4 tasks at once.
fn write_records(settings: &AuditSettings, n: usize) {
    let audit = Audit::open(settings).unwrap();
    runtime().block_on(async {
        let mut tasks = Vec::new();
        for t in 0..4 {
            let a = audit.clone();
            tasks.push(tokio::spawn(async move {
                for i in (t..n).step_by(4) {
                    let r = Record::access("GET", "ehr.localhost", &format!("/r/{i}"), "allow")
                        .user(format!("user{}", i % 7))
                        .client_ip("203.0.113.5".parse().unwrap())
                        .status(200)
                        .bytes_out(1234)
                        .duration(Duration::from_millis(3));
                    a.record(r).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        audit.shutdown().await;
    });
}

fn name(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[test]
fn a_long_chain_verifies_and_every_kind_of_tampering_is_found() {
    let original = tempfile::tempdir().unwrap();
    let settings = AuditSettings {
        max_file_bytes: 150_000,
        checkpoint_every: 400,
        ..AuditSettings::in_dir(original.path())
    };
    write_records(&settings, 3000);
    let trail = read_trail(original.path());
    assert!(
        trail.len() >= 4,
        "expected several files, got {}",
        trail.len()
    );
    let total: usize = trail.iter().map(|(_, l)| l.len()).sum();
    let ok = verify_dir(original.path()).unwrap();
    assert!(
        ok.starts_with(&format!(
            "verified {total} records in {} files",
            trail.len()
        )),
        "{ok}"
    );

    // One byte changed in a record in the middle of the second file: the chain breaks at
    // the record after it.
    let dir = copy_dir(original.path());
    let (f, mut lines) = read_trail(dir.path()).swap_remove(1);
    let at = 10;
    assert!(lines[at].contains("\"/r/"), "{}", lines[at]);
    lines[at] = lines[at].replacen("\"/r/", "\"/x/", 1);
    write_lines(&f, &lines);
    let s = seq(&lines[at + 1]);
    let err = verify_dir(dir.path()).unwrap_err();
    assert_eq!(
        err,
        format!(
            "{}:{}: record {s} was changed or its predecessor was (record {}, at {}:{})",
            name(&f),
            at + 2,
            s - 1,
            name(&f),
            at + 1
        )
    );

    // A record deleted; checked with the files named on the command line, out of order.
    let dir = copy_dir(original.path());
    let (f, mut lines) = read_trail(dir.path()).swap_remove(1);
    let gone = seq(&lines[20]);
    lines.remove(20);
    write_lines(&f, &lines);
    let mut files: Vec<String> = read_trail(dir.path())
        .iter()
        .map(|(p, _)| name(p))
        .collect();
    files.reverse();
    let mut args = vec!["verify"];
    args.extend(files.iter().map(String::as_str));
    let out = ward_audit(&args);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).lines().next().unwrap(),
        format!(
            "{}:21: record {gone} is missing (the next one is {})",
            name(&f),
            gone + 1
        )
    );

    // Two records swapped.
    let dir = copy_dir(original.path());
    let (f, mut lines) = read_trail(dir.path()).swap_remove(2);
    lines.swap(30, 31);
    write_lines(&f, &lines);
    let err = verify_dir(dir.path()).unwrap_err();
    assert!(
        err.starts_with(&format!("{}:31: records are out of order", name(&f))),
        "{err}"
    );

    // A whole file from the middle deleted.
    let dir = copy_dir(original.path());
    let trail = read_trail(dir.path());
    std::fs::remove_file(&trail[1].0).unwrap();
    let first_missing = seq(trail[0].1.last().unwrap()) + 1;
    let next = seq(&trail[2].1[0]);
    let err = verify_dir(dir.path()).unwrap_err();
    assert_eq!(
        err,
        format!(
            "{}:1: records {first_missing} to {} are missing (the next one is {next})",
            name(&trail[2].0),
            next - 1
        )
    );

    // A checkpoint's signature altered.
    let dir = copy_dir(original.path());
    let trail = read_trail(dir.path());
    let (f, mut lines) = trail[1].clone();
    let at = lines
        .iter()
        .position(|l| l.contains(r#""event":"checkpoint""#))
        .expect("a checkpoint in the second file");
    let sig_at = lines[at].find(r#""detail":""#).unwrap() + 12;
    let mut bytes = lines[at].clone().into_bytes();
    bytes[sig_at] = if bytes[sig_at] == b'A' { b'B' } else { b'A' };
    lines[at] = String::from_utf8(bytes).unwrap();
    write_lines(&f, &lines);
    let err = verify_dir(dir.path()).unwrap_err();
    assert!(
        err.starts_with(&format!(
            "{}:{}: checkpoint signature does not match",
            name(&f),
            at + 1
        )),
        "{err}"
    );

    // The original is still intact.
    assert!(verify_dir(original.path()).is_ok());
}

#[test]
fn a_rewritten_chain_without_the_key_is_caught_by_its_checkpoints() {
    // An insider who edits a record and recomputes every hash after it still cannot sign.
    let dir = tempfile::tempdir().unwrap();
    write_records(&AuditSettings::in_dir(dir.path()), 50);
    let (f, lines) = read_trail(dir.path()).swap_remove(0);
    let mut out = Vec::new();
    let mut prev = audit::ZERO_HASH.to_string();
    for (i, l) in lines.iter().enumerate() {
        let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
        if i == 5 {
            v["user"] = "someone-else".into();
        }
        v["prev"] = prev.clone().into();
        let line = serde_json::to_string(&v).unwrap();
        prev = audit::line_hash(line.as_bytes());
        out.push(line);
    }
    write_lines(&f, &out);
    let err = verify_dir(dir.path()).unwrap_err();
    assert!(
        err.contains(&format!(
            ":{}: checkpoint signature does not match",
            lines.len()
        )),
        "{err}"
    );
}

#[test]
fn two_writers_at_once_keep_one_unbroken_chain() {
    let dir = tempfile::tempdir().unwrap();
    let settings = AuditSettings {
        max_file_bytes: 20_000,
        checkpoint_every: 64,
        ..AuditSettings::in_dir(dir.path())
    };
    let audit = Audit::open(&settings).unwrap();
    let cli_dir = dir.path().to_path_buf();
    let cli = std::thread::spawn(move || {
        for i in 0..200 {
            audit::append_blocking(
                &cli_dir,
                Record::officer("officer", "user-added").user(format!("cli{i}")),
            )
            .unwrap();
        }
    });
    runtime().block_on(async {
        for i in 0..1000 {
            audit
                .record(Record::access("GET", "ehr", &format!("/p/{i}"), "allow").user("proxy"))
                .await
                .unwrap();
            // Paced over ~0.5 s: the running writer keeps the lock for up to 100 ms while
            // records flow, so the command's records come in between such stretches.
            if i % 10 == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
        cli.join().unwrap();
        audit.shutdown().await;
    });
    let ok = verify_dir(dir.path()).unwrap();
    let trail = read_trail(dir.path());
    let all: Vec<&String> = trail.iter().flat_map(|(_, l)| l).collect();
    assert_eq!(
        all.iter().filter(|l| l.contains(r#""user":"cli"#)).count(),
        200
    );
    assert_eq!(
        all.iter()
            .filter(|l| l.contains(r#""user":"proxy""#))
            .count(),
        1000
    );
    // They really did interleave (the CLI's records are not all at one end).
    let first_cli = all.iter().position(|l| l.contains("\"cli")).unwrap();
    let last_cli = all.iter().rposition(|l| l.contains("\"cli")).unwrap();
    let proxy_between = all[first_cli..last_cli]
        .iter()
        .filter(|l| l.contains("\"proxy\""))
        .count();
    assert!(proxy_between > 0, "no interleaving: {ok}");
}

#[test]
fn rotation_by_size_keeps_the_chain_across_files() {
    let dir = tempfile::tempdir().unwrap();
    let settings = AuditSettings {
        max_file_bytes: 4_000,
        ..AuditSettings::in_dir(dir.path())
    };
    write_records(&settings, 300);
    let trail = read_trail(dir.path());
    assert!(trail.len() > 10, "{} files", trail.len());
    let today = jiff::Timestamp::now().strftime("%Y%m%d").to_string();
    for (i, (f, lines)) in trail.iter().enumerate() {
        let n = f.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(n, format!("audit-{today}-{:04}.jsonl", i + 1));
        // Every file ends with a signed checkpoint; only the newest may be empty
        // (rotation opens it when the one before is full).
        let Some(last) = lines.last() else {
            assert_eq!(i + 1, trail.len(), "{n} is empty but not the newest");
            continue;
        };
        assert!(last.contains(r#""event":"checkpoint""#), "{n}");
        if i > 0 {
            let before = trail[i - 1].1.last().unwrap();
            let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
            assert_eq!(first["prev"], audit::line_hash(before.as_bytes()).as_str());
        }
    }
    let ok = verify_dir(dir.path()).unwrap();
    assert!(ok.contains(&format!("in {} files", trail.len())), "{ok}");
    // Files are private to ward.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&trail[0].0).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn nothing_acknowledged_is_lost_when_the_writer_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let d = name(dir.path());
    let mut soak = Proc::spawn(Command::new(WARD).args([
        "audit",
        "soak",
        "--dir",
        &d,
        "--records",
        "2000000",
        "--max-file-bytes",
        "300000",
    ]));
    let deadline = Instant::now() + Duration::from_secs(60);
    while soak.stdout.all().len() < 5000 {
        assert!(
            Instant::now() < deadline,
            "soak printed too little: {:?}",
            soak.stderr.all()
        );
        assert!(
            soak.child.try_wait().unwrap().is_none(),
            "soak ended early: {:?}",
            soak.stderr.all()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // SIGKILL: no chance to flush, checkpoint or clean up.
    soak.kill();
    // The reader thread drains the pipe after the process is gone.
    let mut seen = 0;
    let settle = Instant::now() + Duration::from_secs(10);
    while Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(100));
        let n = soak.stdout.all().len();
        if n == seen {
            break;
        }
        seen = n;
    }
    let printed: Vec<u64> = soak
        .stdout
        .all()
        .iter()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    assert!(printed.len() >= 5000);
    assert!(
        printed.len() < 2_000_000,
        "soak finished before it was killed"
    );

    let mut on_disk = std::collections::HashSet::new();
    for (_, lines) in read_trail(dir.path()) {
        for l in lines {
            // A last line cut short by the kill is allowed; it was never acknowledged.
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&l)
                && let Some(s) = v["seq"].as_u64()
            {
                on_disk.insert(s);
            }
        }
    }
    let lost: Vec<u64> = printed
        .iter()
        .copied()
        .filter(|s| !on_disk.contains(s))
        .collect();
    assert!(lost.is_empty(), "acknowledged but not on disk: {lost:?}");

    // As if the kill had cut a write short (power loss): a torn last line.
    let newest = audit::trail_files(dir.path()).unwrap().pop().unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&newest)
        .unwrap();
    std::io::Write::write_all(&mut f, br#"{"time":"2026-11-01T00:00:00.0"#).unwrap();
    drop(f);
    let torn = verify_dir(dir.path()).unwrap_err();
    assert!(torn.contains("the last record is incomplete"), "{torn}");

    // Restart: the writer repairs the end, notes it, and the chain goes on.
    let out = Command::new(WARD)
        .args(["audit", "soak", "--dir", &d, "--records", "10"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), 10);
    let ok = verify_dir(dir.path()).unwrap();
    assert!(ok.starts_with("verified "), "{ok}");
    let recovered = read_trail(dir.path())
        .into_iter()
        .flat_map(|(_, l)| l)
        .filter(|l| l.contains(r#""event":"recovered""#))
        .count();
    assert_eq!(recovered, 1);
}

#[test]
fn soak_is_not_in_the_help() {
    let out = ward_audit(&["--help"]);
    let help = text(&out.stdout);
    assert!(help.contains("verify") && help.contains("search"), "{help}");
    assert!(!help.contains("soak"), "{help}");
}

/// A trail with records on three past days, each day in its own file as the writer makes
/// them (files are renamed to the day their records are from; the chain does not name files).
fn investigation_trail() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let t = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
    let days: [(&str, Vec<Record>); 3] = [
        (
            "20250301",
            vec![
                Record::signin("login-ok")
                    .user("dr_lee")
                    .client_ip("203.0.113.5".parse().unwrap())
                    .at(t("2025-03-01T08:00:00Z")),
                Record::access("GET", "ehr", "/patients/12/chart", "allow")
                    .user("dr_lee")
                    .client_ip("203.0.113.5".parse().unwrap())
                    .status(200)
                    .at(t("2025-03-01T08:01:00Z")),
                Record::access("GET", "ehr", "/billing/invoices", "deny")
                    .user("dr_lee")
                    .reason("role")
                    .client_ip("203.0.113.5".parse().unwrap())
                    .status(403)
                    .at(t("2025-03-01T08:02:00Z")),
            ],
        ),
        (
            "20250302",
            vec![
                Record::access("GET", "billing", "/billing/export", "deny")
                    .user("vendor_amy")
                    .org("Acme Billing")
                    .reason("export, \"blocked\"")
                    .client_ip("198.51.100.7".parse().unwrap())
                    .status(403)
                    .at(t("2025-03-02T22:30:00Z")),
                Record::signin("login-failed")
                    .user("vendor_amy")
                    .client_ip("198.51.100.7".parse().unwrap())
                    .at(t("2025-03-02T22:31:00Z")),
            ],
        ),
        (
            "20250303",
            vec![
                Record::officer("officer_kim", "user-deactivated")
                    .user("vendor_amy")
                    .detail("after-hours access attempts")
                    .at(t("2025-03-03T09:00:00Z")),
                Record::access("GET", "ehr", "/patients/12/chart", "allow")
                    .user("dr_lee")
                    .client_ip("203.0.113.5".parse().unwrap())
                    .status(200)
                    .at(t("2025-03-03T09:05:00Z")),
            ],
        ),
    ];
    for (day, records) in days {
        for r in records {
            audit::append_blocking(dir.path(), r).unwrap();
        }
        let today = audit::trail_files(dir.path()).unwrap().pop().unwrap();
        std::fs::rename(&today, dir.path().join(format!("audit-{day}-0001.jsonl"))).unwrap();
    }
    assert!(verify_dir(dir.path()).is_ok());
    dir
}

fn search(dir: &Path, args: &[&str]) -> Vec<String> {
    let mut all = vec!["search", "--dir", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = ward_audit(&all);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).lines().map(String::from).collect()
}

fn field(line: &str, f: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    match &v[f] {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[test]
fn search_filters_combine() {
    let dir = investigation_trail();
    let d = dir.path();

    let denied = search(d, &["--decision", "deny", "--format", "json"]);
    assert_eq!(denied.len(), 2, "{denied:?}");
    assert!(denied.iter().all(|l| field(l, "decision") == "deny"));

    let lee_denied = search(
        d,
        &["--user", "dr_lee", "--decision", "deny", "--format", "json"],
    );
    assert_eq!(lee_denied.len(), 1);
    assert_eq!(field(&lee_denied[0], "path"), "/billing/invoices");

    let charts = search(d, &["--path", "/patients/*/chart", "--format", "json"]);
    assert_eq!(charts.len(), 2);
    let billing = search(d, &["--path", "/billing/**", "--format", "json"]);
    assert_eq!(billing.len(), 2);

    // Days are UTC; --until a day includes all of it.
    let day2 = search(
        d,
        &[
            "--since",
            "2025-03-02",
            "--until",
            "2025-03-02",
            "--format",
            "json",
        ],
    );
    let users: Vec<String> = day2.iter().map(|l| field(l, "user")).collect();
    assert_eq!(users, ["vendor_amy", "vendor_amy"], "{day2:?}");
    let from_time = search(d, &["--since", "2025-03-03T09:01:00Z", "--format", "json"]);
    assert_eq!(from_time.len(), 1);

    // The officer's action is found by who did it and by whom it was about.
    let kim = search(d, &["--user", "officer_kim", "--format", "json"]);
    assert_eq!(kim.len(), 1);
    assert_eq!(field(&kim[0], "event"), "user-deactivated");
    let amy = search(d, &["--user", "vendor_amy", "--format", "json"]);
    assert_eq!(amy.len(), 3);

    let officer = search(d, &["--kind", "officer", "--format", "json"]);
    assert_eq!(officer.len(), 1);
    let failed = search(d, &["--event", "login-failed", "--format", "json"]);
    assert_eq!(failed.len(), 1);

    // Checkpoints (files were closed with one) are not results unless asked for.
    let system = search(d, &["--kind", "system", "--format", "json"]);
    assert!(
        system.iter().all(|l| field(l, "event") != "checkpoint"),
        "{system:?}"
    );
    let checkpoints = search(d, &["--event", "checkpoint", "--format", "json"]);
    assert_eq!(checkpoints.len(), 2);

    // Relative times: nothing in the last week.
    assert!(search(d, &["--since", "7d", "--format", "json"]).is_empty());

    // Bad input is explained.
    let out = ward_audit(&[
        "search",
        "--dir",
        d.to_str().unwrap(),
        "--since",
        "yesterday-ish",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--since"),
        "{}",
        text(&out.stderr)
    );
    let out = ward_audit(&[
        "search",
        "--dir",
        d.to_str().unwrap(),
        "--path",
        "billing/*",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("must start with /"),
        "{}",
        text(&out.stderr)
    );
}

/// A name typed at the sign-in page lands in the trail as it was typed; in the CSV no cell
/// may start a spreadsheet formula.
#[test]
fn search_csv_defuses_formulas() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "=HYPERLINK(\"http://x.example\")",
            "\"'=HYPERLINK(\"\"http://x.example\"\")\"",
        ),
        ("+1+1", "'+1+1"),
        ("-1+1", "'-1+1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "\"'\rx\""),
    ];
    for (typed, _) in cases {
        let r = Record::signin("login-failed")
            .user(typed)
            .client_ip("203.0.113.5".parse().unwrap());
        audit::append_blocking(dir.path(), r).unwrap();
    }
    let out = ward_audit(&[
        "search",
        "--dir",
        dir.path().to_str().unwrap(),
        "--event",
        "login-failed",
        "--format",
        "csv",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let csv = text(&out.stdout);
    assert!(csv.starts_with("time,seq,kind,user,"), "{csv}");
    for (typed, cell) in cases {
        assert!(
            csv.contains(&format!(",signin,{cell},")),
            "{typed:?} should be {cell:?} in:\n{csv}"
        );
    }
}

#[test]
fn search_prints_tables_and_csv() {
    let dir = investigation_trail();
    let d = dir.path();

    let table = search(d, &["--user", "dr_lee"]);
    assert_eq!(table.len(), 5, "{table:#?}"); // header + 4 records
    let header = &table[0];
    for col in [
        "TIME", "USER", "CLIENT", "DECISION", "METHOD", "PATH", "STATUS", "REASON",
    ] {
        assert!(header.contains(col), "{header}");
    }
    // Aligned: each column starts at the same place on every row.
    let path_col = header.find("PATH").unwrap();
    let status_col = header.find("STATUS").unwrap();
    for row in &table[2..] {
        assert_eq!(row.find('/'), Some(path_col), "{row}\n{header}");
        assert!(row[status_col..].starts_with("200") || row[status_col..].starts_with("403"));
    }
    assert!(table[1].contains("login-ok"), "{}", table[1]);
    assert!(
        table[3].contains("deny") && table[3].ends_with("role"),
        "{}",
        table[3]
    );

    let csv = search(d, &["--user", "vendor_amy", "--format", "csv"]);
    assert!(
        csv[0].starts_with("time,seq,kind,user,roles,org,"),
        "{}",
        csv[0]
    );
    assert_eq!(csv.len(), 4);
    assert!(
        csv[1].contains(r#","export, ""blocked""","#),
        "quoted: {}",
        csv[1]
    );
    assert!(csv[1].contains(",Acme Billing,"), "{}", csv[1]);

    // `--config` finds the directory when --dir is not given.
    let conf = tempfile::tempdir().unwrap();
    let policy = conf.path().join("ward.toml");
    std::fs::write(
        &policy,
        format!("practice = \"X\"\n\n[audit]\ndir = \"{}\"\n", d.display()),
    )
    .unwrap();
    let out = ward_audit(&[
        "search",
        "--config",
        policy.to_str().unwrap(),
        "--event",
        "login-failed",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), 1);
    let out = ward_audit(&["verify", "--config", policy.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}
