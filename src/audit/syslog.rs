//! Audit forwarding to a SIEM: every line written to the trail is also sent, in order, as
//! an RFC 5424 syslog message over TCP (octet-counting framing, RFC 6587) or TLS (RFC 5425)
//! to the collector in `[audit] syslog`.
//!
//! The message is `<PRI>1 TIME HOST ward PID KIND - LINE`: TIME is the record's own time,
//! KIND its kind (`access`, `signin`, `officer`, `system`), no structured data, and the MSG
//! is the record's JSON line exactly as in the trail, `seq` and `prev` included, so the
//! collector's copy can be checked against the chain. Facility 13 (log audit).
//!
//! The trail stays the source of truth: the writer hands each written batch over a bounded
//! queue without waiting, and drops it (counted) when the queue is full. A background task
//! sends, reconnecting with back-off while the collector is away. Lines another process (a
//! `ward user` command) appended are picked up by the writer with its next write. What never
//! reached the collector is found by the gap in `seq` and noted in the trail with a
//! `syslog-gap` record once the collector is reached again, or, for what is still queued when
//! ward stops, at shutdown. Delivery is at least once: a batch cut off mid-send is sent again
//! whole.

use super::Record;
use crate::metrics::Deliveries;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

/// How records travel to the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Plain TCP: only inside a network the practice trusts.
    Tcp,
    /// TLS, the collector's certificate checked.
    Tls,
}

/// `[audit] syslog` and `syslog_ca_file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogSettings {
    /// TCP or TLS.
    pub transport: Transport,
    /// The collector's host name or address (checked against its certificate with TLS).
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The authority (PEM file) the collector's certificate must come from; none: the
    /// public ones.
    pub ca: Option<PathBuf>,
}

/// Batches of lines (one per write to the trail) waiting for the collector.
const QUEUE: usize = 4096;

/// Facility 13: log audit.
const FACILITY: u8 = 13;

/// The longest a connection attempt or one batch's send may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The longest wait between reconnection attempts.
const MAX_WAIT: Duration = Duration::from_secs(30);

enum Msg {
    Lines(Vec<u8>),
    Flush(oneshot::Sender<()>),
}

/// Hands written lines to the sender task.
pub(crate) struct Forwarder {
    tx: mpsc::Sender<Msg>,
    deliveries: Deliveries,
    /// The seq after the last record the collector took (`NONE_SENT` before the first).
    sent_up_to: Arc<AtomicU64>,
}

/// `sent_up_to` before anything was sent.
const NONE_SENT: u64 = u64::MAX;

/// What the sender task calls to note a gap in the trail.
pub(crate) type Note = Box<dyn Fn(Record) + Send + Sync>;

impl Forwarder {
    /// Starts the sender task on the current tokio runtime; `None` without one.
    pub(crate) fn start(
        settings: &SyslogSettings,
        hostname: String,
        deliveries: Deliveries,
        note: Note,
    ) -> Option<Forwarder> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let sent_up_to = Arc::new(AtomicU64::new(NONE_SENT));
        let task = Sender {
            sent_up_to: sent_up_to.clone(),
            settings: settings.clone(),
            tls: None,
            hostname: header_word(&hostname, 255),
            pid: std::process::id(),
            deliveries: deliveries.clone(),
            note,
        };
        runtime.spawn(task.run(rx));
        Some(Forwarder {
            tx,
            deliveries,
            sent_up_to,
        })
    }

    /// Queues `lines` (whole trail lines, each ending in a newline) without waiting.
    pub(crate) fn send(&self, lines: Vec<u8>) {
        if lines.is_empty() {
            return;
        }
        let n = lines.iter().filter(|b| **b == b'\n').count() as u64;
        if self.tx.try_send(Msg::Lines(lines)).is_err() {
            self.deliveries.count("syslog", "dropped", n);
        }
    }

    /// Waits, at most `within`, until what was queued before has been sent; whether it was.
    pub(crate) async fn flush(&self, within: Duration) -> bool {
        let (done, wait) = oneshot::channel();
        self.tx.try_send(Msg::Flush(done)).is_ok()
            && matches!(tokio::time::timeout(within, wait).await, Ok(Ok(())))
    }

    /// The record noting, in the trail, what was left unsent when ward stopped.
    pub(crate) fn unsent(&self) -> Record {
        let detail = match self.sent_up_to.load(Ordering::Relaxed) {
            NONE_SENT => "no record was sent to the syslog collector before ward stopped (it could not be reached); they are in this trail".to_string(),
            from => format!(
                "records from {from} on were not sent to the syslog collector before ward stopped (it could not be reached); they are in this trail"
            ),
        };
        tracing::error!("{detail}");
        Record::system("syslog-gap", detail)
    }
}

type Conn = Box<dyn Link>;

/// A connection to the collector, plain or TLS.
trait Link: AsyncWrite + Unpin + Send {
    /// Whether the collector has closed its side (it never sends anything otherwise).
    fn closed(&self) -> bool;
}

fn closed(tcp: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    !matches!(tcp.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

impl Link for TcpStream {
    fn closed(&self) -> bool {
        closed(self)
    }
}

impl Link for tokio_rustls::client::TlsStream<TcpStream> {
    fn closed(&self) -> bool {
        // Anything arriving (a close_notify) or the end of the stream: start afresh.
        closed(self.get_ref().0)
    }
}

/// The sender task's state.
struct Sender {
    sent_up_to: Arc<AtomicU64>,
    settings: SyslogSettings,
    tls: Option<tokio_rustls::TlsConnector>,
    hostname: String,
    pid: u32,
    deliveries: Deliveries,
    note: Note,
}

/// Why the collector could not be reached.
#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error("cannot connect to {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("TLS with {0} failed: {1}")]
    Tls(String, std::io::Error),
    #[error("the CA file cannot be used: {0}")]
    Ca(#[from] crate::tls::TlsError),
    #[error("'{0}' is not a name a certificate can carry")]
    Name(String),
    #[error("no answer from {0} within {secs} s", secs = TIMEOUT.as_secs())]
    Timeout(String),
}

impl Sender {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let mut conn: Option<Conn> = None;
        let mut next_seq: Option<u64> = None;
        let mut down = false;
        while let Some(msg) = rx.recv().await {
            let lines = match msg {
                Msg::Lines(lines) => lines,
                Msg::Flush(done) => {
                    let _ = done.send(());
                    continue;
                }
            };
            let batch = self.frames(&lines);
            let mut wait = Duration::from_secs(1);
            loop {
                if conn.as_ref().is_some_and(|c| c.closed()) {
                    conn = None;
                }
                let result = match conn.as_mut() {
                    Some(c) => write(c, &batch.bytes).await,
                    None => match self.connect().await {
                        Ok(mut c) => {
                            let r = write(&mut c, &batch.bytes).await;
                            conn = Some(c);
                            r
                        }
                        Err(e) => Err(e.to_string()),
                    },
                };
                match result {
                    Ok(()) => break,
                    Err(why) => {
                        conn = None;
                        self.deliveries.count("syslog", "retried", 1);
                        if !down {
                            down = true;
                            tracing::error!(
                                error = %why,
                                "cannot send audit records to the syslog collector; trying again with back-off (they stay in the local trail)"
                            );
                        }
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(MAX_WAIT);
                    }
                }
            }
            if down {
                down = false;
                tracing::info!("sending audit records to the syslog collector again");
            }
            self.deliveries.count("syslog", "sent", batch.count);
            if let (Some(expected), Some(first)) = (next_seq, batch.first)
                && first > expected
            {
                self.gap(expected, first - 1);
            }
            if let Some(last) = batch.last {
                next_seq = Some(last + 1);
                self.sent_up_to.store(last + 1, Ordering::Relaxed);
            }
        }
    }

    /// Notes in the trail (and so, next, at the collector) which records never reached it.
    fn gap(&self, from: u64, to: u64) {
        let detail = format!(
            "records {from} to {to} were not sent to the syslog collector (dropped while it \
             could not be reached, or written by another ward command); they are in this trail"
        );
        tracing::error!("{detail}");
        (self.note)(Record::system("syslog-gap", detail));
    }

    async fn connect(&mut self) -> Result<Conn, LinkError> {
        let addr = format!("{}:{}", self.settings.host, self.settings.port);
        let tcp = tokio::time::timeout(TIMEOUT, TcpStream::connect(&addr))
            .await
            .map_err(|_| LinkError::Timeout(addr.clone()))?
            .map_err(|e| LinkError::Connect(addr.clone(), e))?;
        let _ = tcp.set_nodelay(true);
        if self.settings.transport == Transport::Tcp {
            return Ok(Box::new(tcp));
        }
        let connector = match &self.tls {
            Some(c) => c.clone(),
            None => {
                let config = crate::tls::client_config(self.settings.ca.as_deref())?;
                let c = tokio_rustls::TlsConnector::from(Arc::new(config));
                self.tls = Some(c.clone());
                c
            }
        };
        let name = rustls_pki_types::ServerName::try_from(self.settings.host.clone())
            .map_err(|_| LinkError::Name(self.settings.host.clone()))?;
        let tls = tokio::time::timeout(TIMEOUT, connector.connect(name, tcp))
            .await
            .map_err(|_| LinkError::Timeout(addr.clone()))?
            .map_err(|e| LinkError::Tls(addr, e))?;
        Ok(Box::new(tls))
    }

    /// The batch's lines as framed messages, with their seqs.
    fn frames(&self, lines: &[u8]) -> Batch {
        let mut batch = Batch {
            bytes: Vec::with_capacity(lines.len() * 11 / 10 + 64),
            first: None,
            last: None,
            count: 0,
        };
        for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let head = Head::of(line);
            if let Some(seq) = head.seq {
                batch.first.get_or_insert(seq);
                batch.last = Some(seq);
            }
            let message = message(&head, &self.hostname, self.pid, line);
            batch
                .bytes
                .extend_from_slice(format!("{} ", message.len()).as_bytes());
            batch.bytes.extend_from_slice(&message);
            batch.count += 1;
        }
        batch
    }
}

async fn write(conn: &mut Conn, bytes: &[u8]) -> Result<(), String> {
    let send = async {
        conn.write_all(bytes).await?;
        conn.flush().await
    };
    match tokio::time::timeout(TIMEOUT, send).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("the connection to the syslog collector broke: {e}")),
        Err(_) => Err("the syslog collector did not take the records in time".into()),
    }
}

/// Framed messages ready to write, and the seqs they carry.
struct Batch {
    bytes: Vec<u8>,
    first: Option<u64>,
    last: Option<u64>,
    count: u64,
}

/// The fields of a record the syslog header uses.
#[derive(serde::Deserialize, Default)]
struct Head {
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default)]
    time: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    decision: Option<String>,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    emergency: bool,
}

impl Head {
    fn of(line: &[u8]) -> Head {
        serde_json::from_slice(line).unwrap_or_default()
    }

    /// Warning for emergency access and the trail's own troubles; notice for refusals,
    /// failed sign-ins and officer actions; informational for the rest.
    fn severity(&self) -> u8 {
        let event = self.event.as_deref().unwrap_or("");
        if self.emergency || matches!(event, "recovered" | "syslog-gap") {
            4
        } else if self.kind == "officer"
            || self.decision.as_deref().is_some_and(|d| d != "allow")
            || event.contains("failed")
            || event.contains("locked")
        {
            5
        } else {
            6
        }
    }
}

/// `<PRI>1 TIME HOST ward PID KIND - LINE`.
fn message(head: &Head, hostname: &str, pid: u32, line: &[u8]) -> Vec<u8> {
    let pri = u16::from(FACILITY) * 8 + u16::from(head.severity());
    let mut m = format!(
        "<{pri}>1 {} {hostname} ward {pid} {} - ",
        header_word(&head.time, 64),
        header_word(&head.kind, 32),
    )
    .into_bytes();
    m.extend_from_slice(line);
    m
}

/// `s` if it is a header field RFC 5424 allows (printable ASCII without spaces, at most
/// `max` long), else `-` (its NILVALUE).
fn header_word(s: &str, max: usize) -> String {
    if !s.is_empty() && s.len() <= max && s.bytes().all(|b| (33..=126).contains(&b)) {
        s.to_string()
    } else {
        "-".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sender() -> Sender {
        Sender {
            sent_up_to: Arc::default(),
            settings: SyslogSettings {
                transport: Transport::Tcp,
                host: "127.0.0.1".into(),
                port: 1,
                ca: None,
            },
            tls: None,
            hostname: "ward-a".into(),
            pid: 42,
            deliveries: Deliveries::default(),
            note: Box::new(|_| {}),
        }
    }

    #[test]
    fn each_line_is_one_framed_rfc5424_message() {
        let lines = concat!(
            r#"{"time":"2026-11-30T06:00:00.123Z","seq":7,"prev":"ab","kind":"access","user":"dr_lee","decision":"allow"}"#,
            "\n",
            r#"{"time":"2026-11-30T06:00:01.000Z","seq":8,"prev":"cd","kind":"access","decision":"deny"}"#,
            "\n"
        );
        let batch = sender().frames(lines.as_bytes());
        assert_eq!(
            (batch.first, batch.last, batch.count),
            (Some(7), Some(8), 2)
        );
        let text = String::from_utf8(batch.bytes).unwrap();
        let first = lines.lines().next().unwrap();
        let msg = format!("<110>1 2026-11-30T06:00:00.123Z ward-a ward 42 access - {first}");
        assert!(text.starts_with(&format!("{} {msg}", msg.len())), "{text}");
        // Octet counting: the second frame starts right after the first.
        let rest = &text[format!("{} ", msg.len()).len() + msg.len()..];
        assert!(
            rest.starts_with(&format!(
                "{} <109>1 ",
                rest.len() - rest.find(' ').unwrap() - 1
            )),
            "{rest}"
        );
    }

    #[test]
    fn hostile_header_fields_become_nil() {
        assert_eq!(header_word("two words", 255), "-");
        assert_eq!(header_word("", 255), "-");
        assert_eq!(header_word("é", 255), "-");
        assert_eq!(header_word(&"a".repeat(256), 255), "-");
        assert_eq!(
            header_word("ward.riverside.example", 255),
            "ward.riverside.example"
        );
        let head = Head::of(br#"{"time":"2026 11 30","kind":"access\n<1>"}"#);
        let m = message(&head, "h", 1, b"{}");
        assert_eq!(m, b"<110>1 - h ward 1 - - {}");
    }

    #[test]
    fn severity_follows_what_the_record_says() {
        let sev = |line: &str| Head::of(line.as_bytes()).severity();
        assert_eq!(sev(r#"{"kind":"access","decision":"allow"}"#), 6);
        assert_eq!(sev(r#"{"kind":"access","decision":"deny"}"#), 5);
        assert_eq!(
            sev(r#"{"kind":"access","decision":"allow","emergency":true}"#),
            4
        );
        assert_eq!(sev(r#"{"kind":"signin","event":"login-failed"}"#), 5);
        assert_eq!(sev(r#"{"kind":"officer","event":"user-added"}"#), 5);
        assert_eq!(sev(r#"{"kind":"system","event":"recovered"}"#), 4);
        assert_eq!(sev("not json"), 6);
    }

    #[tokio::test]
    async fn a_jump_in_seq_is_named_once_the_records_after_it_are_sent() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let collector = tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut got = String::new();
            tcp.read_to_string(&mut got).await.unwrap();
            got
        });
        let notes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut s = sender();
        s.settings.port = port;
        let kept = notes.clone();
        s.note = Box::new(move |r| kept.lock().unwrap().push(r.detail.unwrap_or_default()));
        let (tx, rx) = mpsc::channel(8);
        let task = tokio::spawn(s.run(rx));
        for lines in [
            "{\"seq\":1}\n{\"seq\":2}\n",
            "{\"seq\":5}\n",
            "{\"seq\":6}\n",
        ] {
            tx.send(Msg::Lines(lines.as_bytes().to_vec()))
                .await
                .unwrap();
        }
        let (done, wait) = oneshot::channel();
        tx.send(Msg::Flush(done)).await.unwrap();
        wait.await.unwrap();
        drop(tx);
        task.await.unwrap();
        let got = collector.await.unwrap();
        assert_eq!(got.matches(" ward 42 - - {\"seq\":").count(), 4, "{got}");
        let notes = notes.lock().unwrap();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].starts_with("records 3 to 4 were not sent"),
            "{notes:?}"
        );
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_without_waiting() {
        let (tx, _rx) = mpsc::channel(1);
        let f = Forwarder {
            tx,
            deliveries: Deliveries::default(),
            sent_up_to: Arc::new(AtomicU64::new(NONE_SENT)),
        };
        f.send(b"{\"seq\":1}\n{\"seq\":2}\n".to_vec());
        f.send(b"{\"seq\":3}\n{\"seq\":4}\n{\"seq\":5}\n".to_vec());
        assert_eq!(f.deliveries.get("syslog", "dropped"), 3);
    }
}
