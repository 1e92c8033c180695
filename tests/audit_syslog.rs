//! Audit forwarding: every record reaches a real `rsyslogd` (Debian's rsyslog, started here
//! on loopback with its own configuration) as RFC 5424 over TCP or TLS, exactly as written
//! in the local trail (officer changes made with `ward user` included); a collector that is
//! down holds up no request, and gets the records once it is back; records it never got are
//! named in the trail.

use crate::common::*;
use std::process::Command;
use std::time::{Duration, Instant};

/// Debian's rsyslogd (in /usr/sbin, which not every PATH has).
const RSYSLOGD: &str = "/usr/sbin/rsyslogd";

/// A real rsyslogd listening on 127.0.0.1:`port` (TCP, or TLS through its OpenSSL driver),
/// writing each message received as `PRI APP-NAME PROCID MSGID MSG` to a file.
struct Rsyslog {
    _proc: Proc,
    dir: tempfile::TempDir,
}

impl Rsyslog {
    fn start(port: u16, tls: Option<&Site>) -> Rsyslog {
        let found = Command::new(RSYSLOGD).arg("-v").output();
        assert!(
            found.is_ok_and(|o| o.status.success()),
            "rsyslogd is not installed: apt-get install -y rsyslog rsyslog-openssl (tests/run does this)"
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let (global_tls, driver) = match tls {
            Some(site) => {
                let cert = site.path("certs/ward.crt");
                let key = site.path("certs/ward.key");
                (
                    format!(
                        " DefaultNetstreamDriverCAFile=\"{}\" DefaultNetstreamDriverCertFile=\"{}\" DefaultNetstreamDriverKeyFile=\"{}\"",
                        cert.display(),
                        cert.display(),
                        key.display()
                    ),
                    " StreamDriver.Name=\"ossl\" StreamDriver.Mode=\"1\" StreamDriver.AuthMode=\"anon\"",
                )
            }
            None => (String::new(), ""),
        };
        let conf = format!(
            "global(workDirectory=\"{d}\"{global_tls})\n\
             module(load=\"imtcp\"{driver})\n\
             input(type=\"imtcp\" port=\"{port}\" address=\"127.0.0.1\")\n\
             template(name=\"seen\" type=\"string\" string=\"%PRI% %APP-NAME% %PROCID% %MSGID% %msg%\\n\")\n\
             *.* action(type=\"omfile\" file=\"{d}/received.log\" template=\"seen\")\n"
        );
        let conf_path = dir.path().join("rsyslog.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let proc = Proc::spawn(
            Command::new(RSYSLOGD)
                .arg("-n")
                .arg("-f")
                .arg(&conf_path)
                .arg("-i")
                .arg(dir.path().join("rsyslogd.pid")),
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "rsyslogd did not listen on {port}: {:?}",
                proc.stderr.all()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Rsyslog { _proc: proc, dir }
    }

    fn received(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("received.log")).unwrap_or_default()
    }

    /// Waits up to 20 s for a received line containing every one of `needles`.
    async fn wait_for(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = self.received();
            if let Some(line) = text.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
                return line.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "rsyslogd got no line with {needles:?}; it got:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn scenario(audit: &str) -> Scenario {
    Scenario::new()
        .toml(&format!(
            "[audit]\n{audit}\n[metrics]\nlisten = \"127.0.0.1:0\"\n[roles]\nclinician = {{}}\n"
        ))
        .route("/**", "allow = \"public\"")
}

/// The trail's lines, as written.
fn trail(s: &Running) -> Vec<String> {
    audit_text(&s.ward.site).lines().map(String::from).collect()
}

/// Checks that the message received for each of the trail's lines mentioning `needle` is
/// that line exactly, as an RFC 5424 message from ward.
fn same_as_trail(s: &Running, rsyslog: &Rsyslog, needle: &str) {
    let received = rsyslog.received();
    let lines: Vec<String> = trail(s)
        .into_iter()
        .filter(|l| l.contains(needle))
        .collect();
    assert!(!lines.is_empty(), "no trail line has {needle}");
    for line in lines {
        let seen = received
            .lines()
            .find(|r| r.ends_with(&line))
            .unwrap_or_else(|| panic!("not received: {line}\n{received}"));
        let fields: Vec<&str> = seen.splitn(5, ' ').collect();
        // PRI 110 = facility 13 (log audit) * 8 + informational, for allowed access.
        assert_eq!(fields[0], "110", "{seen}");
        assert_eq!(fields[1], "ward", "{seen}");
        assert_eq!(fields[2], s.ward.proc.pid().to_string(), "{seen}");
        assert_eq!(fields[3], "access", "{seen}");
        assert_eq!(fields[4], line, "{seen}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn records_reach_rsyslog_over_tcp_as_written_in_the_trail() {
    let port = free_port();
    let rsyslog = Rsyslog::start(port, None);
    let mut s = scenario(&format!("syslog = \"tcp://127.0.0.1:{port}\""))
        .start()
        .await;
    let b = s.browser();
    for i in 0..5 {
        assert_eq!(b.get(&format!("/syslog-probe-{i}")).await.status(), 200);
    }
    rsyslog.wait_for(&["/syslog-probe-4"]).await;
    same_as_trail(&s, &rsyslog, "/syslog-probe-");
    // An officer's change made with another ward command while ward runs reaches the
    // collector with ward's next write, in the trail's order, with no gap.
    run_ward(
        s.ward.site.dir.path(),
        &[
            "user",
            "--config",
            "ward.toml",
            "add",
            "kpatel",
            "--roles",
            "clinician",
            "--display-name",
            "K",
        ],
    );
    let added = trail(&s)
        .into_iter()
        .find(|l| l.contains("\"user-added\""))
        .expect("the command's record");
    assert_eq!(b.get("/syslog-probe-after").await.status(), 200);
    rsyslog.wait_for(&["/syslog-probe-after"]).await;
    let received = rsyslog.received();
    let officer = received
        .lines()
        .find(|l| l.ends_with(&added))
        .unwrap_or_else(|| panic!("the officer's record was not received:\n{received}"));
    // Notice severity (13 * 8 + 5) and the record's kind.
    assert!(officer.starts_with("109 ward "), "{officer}");
    assert!(officer.contains(" officer {"), "{officer}");
    let at = |needle: &str| received.find(needle).unwrap();
    assert!(
        at("\"user-added\"") < at("/syslog-probe-after"),
        "{received}"
    );
    assert!(!received.contains("syslog-gap"), "{received}");
    // At shutdown, the closing checkpoint goes too.
    s.ward.stop();
    let last = trail(&s).last().cloned().unwrap();
    assert!(last.contains("\"checkpoint\""), "{last}");
    rsyslog.wait_for(&[&last]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn records_reach_rsyslog_over_tls_checked_against_its_authority() {
    let collector = Site::new();
    let port = free_port();
    let rsyslog = Rsyslog::start(port, Some(&collector));
    let s = scenario(&format!(
        "syslog = \"tls://127.0.0.1:{port}\"\nsyslog_ca_file = \"{}\"",
        collector.path("certs/ward.crt").display()
    ))
    .start()
    .await;
    let b = s.browser();
    for i in 0..3 {
        assert_eq!(b.get(&format!("/tls-probe-{i}")).await.status(), 200);
    }
    rsyslog.wait_for(&["/tls-probe-2"]).await;
    same_as_trail(&s, &rsyslog, "/tls-probe-");

    // A collector whose certificate is not from the named authority gets nothing.
    let impostor_site = Site::new();
    let impostor_port = free_port();
    let impostor = Rsyslog::start(impostor_port, Some(&impostor_site));
    let fooled = scenario(&format!(
        "syslog = \"tls://127.0.0.1:{impostor_port}\"\nsyslog_ca_file = \"{}\"",
        collector.path("certs/ward.crt").display()
    ))
    .start()
    .await;
    assert_eq!(fooled.browser().get("/tls-secret").await.status(), 200);
    fooled.ward.proc.stderr.wait_for(
        "cannot send audit records to the syslog collector",
        Duration::from_secs(20),
    );
    assert!(!impostor.received().contains("/tls-secret"));
}

/// The value of `ward_deliveries_total{sink="syslog",outcome=…}`.
async fn syslog_count(s: &Running, outcome: &str) -> f64 {
    let sample = format!("ward_deliveries_total{{sink=\"syslog\",outcome=\"{outcome}\"}}");
    metric(&s.ward, &sample).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_collector_holds_up_no_request_and_gets_the_records_when_back() {
    let port = free_port();
    let s = scenario(&format!("syslog = \"tcp://127.0.0.1:{port}\""))
        .start()
        .await;
    let b = s.browser();
    for i in 0..30 {
        assert_eq!(b.get(&format!("/while-down-{i}")).await.status(), 200);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while syslog_count(&s, "retried").await < 1.0 {
        assert!(Instant::now() < deadline, "no failed attempt was counted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        s.ward
            .logs()
            .join("\n")
            .contains("cannot send audit records to the syslog collector")
    );
    // Every request was answered and recorded locally meanwhile.
    assert!(trail(&s).iter().any(|l| l.contains("/while-down-29")));
    // The collector comes up: what waited in the queue arrives, in order, with no gap.
    let rsyslog = Rsyslog::start(port, None);
    rsyslog.wait_for(&["/while-down-29"]).await;
    same_as_trail(&s, &rsyslog, "/while-down-");
    assert_eq!(syslog_count(&s, "dropped").await, 0.0);
    assert!(syslog_count(&s, "sent").await >= 30.0);
    assert!(!rsyslog.received().contains("syslog-gap"));
    // It restarts: ward notices the closed connection and sends the next records to the new one.
    drop(rsyslog);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = Rsyslog::start(port, None);
    for i in 0..3 {
        assert_eq!(b.get(&format!("/after-restart-{i}")).await.status(), 200);
    }
    again.wait_for(&["/after-restart-2"]).await;
    same_as_trail(&s, &again, "/after-restart-");
}

#[tokio::test(flavor = "multi_thread")]
async fn records_still_unsent_at_shutdown_are_named_in_the_trail() {
    let port = free_port();
    let mut s = scenario(&format!("syslog = \"tcp://127.0.0.1:{port}\""))
        .start()
        .await;
    assert_eq!(s.browser().get("/never-sent").await.status(), 200);
    s.ward.stop();
    let lines = trail(&s);
    let gap = lines
        .iter()
        .find(|l| l.contains("syslog-gap"))
        .unwrap_or_else(|| panic!("no syslog-gap record:\n{}", lines.join("\n")));
    assert!(gap.contains("before ward stopped"), "{gap}");
    // It comes before the closing checkpoint, so the signature covers it.
    assert!(lines.last().unwrap().contains("\"checkpoint\""));
}
