//! The audit trail: one JSON line per access decision, sign-in event and officer action,
//! in a hash chain with signed checkpoints, so that a changed, missing or reordered record
//! is found by `ward audit verify`.
//!
//! On disk (`DIR` is `[audit] dir`, default `audit`):
//! - `DIR/audit-YYYYMMDD-NNNN.jsonl`: the records, oldest file first by name. A new file is
//!   started when the current one passes `max_file_bytes` or the UTC day changes. `seq` runs
//!   on across files and the first record of a file chains to the last line of the one before.
//! - `DIR/.audit-key`: the Ed25519 key that signs checkpoints (PKCS#8, 0600, made with a new
//!   trail; never made anew on its own once the trail has records).
//! - `DIR/audit-key.pub`: its public key, for auditors (keep a copy elsewhere).
//! - `DIR/.lock`: locked by whoever is appending.
//!
//! A record's `prev` is the hex SHA-256 of the previous record's line without its newline.
//! A checkpoint is a `system` record with `event: "checkpoint"` whose `detail` is the base64
//! Ed25519 signature of `SEQ|PREV` (its own `seq` and `prev`); one is written every
//! `checkpoint_every` records, when a file is closed, and at shutdown.
//!
//! Durability: `Audit::record` returns once the line has been handed to the kernel with
//! write(2), so it survives the process being killed; fsync follows within `fsync_every`
//! (and at shutdown). A line cut short by a power cut or a full disk is removed, and noted
//! in a `recovered` record, by the next writer.

pub mod alerts;

mod chain;
pub mod key;
pub mod record;
pub mod search;
pub mod verify;

pub use chain::{
    Checkpoint, ZERO_HASH, chains, host_instance, instance_of, line_hash, sort_trail_files,
    trail_files, valid_instance,
};
pub use record::{Kind, Record, Text};

use chain::{Chain, Limits};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How many records may wait for the writer before `record` waits for room.
pub const QUEUE: usize = 8192;

/// The most records written with one write.
const MAX_BATCH: usize = 4096;

/// What to do with a request when its audit record cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFailure {
    /// Refuse the request (HIPAA's safer choice: nothing happens unaudited).
    #[default]
    Refuse,
    /// Let it through and log the failure.
    Continue,
}

/// `[audit]` in the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    /// Where the trail lives.
    pub dir: PathBuf,
    /// What the proxy does when a record cannot be written.
    pub on_failure: OnFailure,
    /// Start a new file once the current one is this large.
    pub max_file_bytes: u64,
    /// The longest a written record waits for fsync.
    pub fsync_every: Duration,
    /// A signed checkpoint after this many records (0: only at rotation and shutdown).
    pub checkpoint_every: u64,
    /// This instance's name, in its files' names and records, when several instances keep
    /// trails (`[audit] instance`); none: the one unnamed chain.
    pub instance: Option<String>,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            dir: PathBuf::from("audit"),
            on_failure: OnFailure::Refuse,
            max_file_bytes: 100 * 1024 * 1024,
            fsync_every: Duration::from_millis(200),
            checkpoint_every: 1000,
            instance: None,
        }
    }
}

impl AuditSettings {
    /// The defaults, with the trail in `dir`.
    pub fn in_dir(dir: impl Into<PathBuf>) -> AuditSettings {
        AuditSettings {
            dir: dir.into(),
            ..AuditSettings::default()
        }
    }

    fn limits(&self) -> Limits {
        Limits {
            max_file_bytes: self.max_file_bytes.max(1),
            checkpoint_every: self.checkpoint_every,
        }
    }
}

/// Why a record was not written.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    /// Reading or writing a file failed.
    #[error("cannot write the audit trail ({path}): {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The files are not in a state the chain can continue from.
    #[error("the audit trail cannot be continued: {0}")]
    Corrupt(String),
    /// The checkpoint key cannot be read or made.
    #[error("the audit trail's signing key cannot be used: {0}")]
    Key(#[from] key::KeyError),
    /// The writer has stopped (ward is shutting down).
    #[error("the audit trail is closed (ward is stopping)")]
    Closed,
}

impl AuditError {
    fn io(path: &Path, e: std::io::Error) -> AuditError {
        AuditError::Io {
            path: path.to_path_buf(),
            source: Arc::new(e),
        }
    }
}

// Records are the common case; boxing them would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
enum Msg {
    Record(Record, oneshot::Sender<Result<u64, AuditError>>),
    Shutdown(oneshot::Sender<()>),
}

/// The audit writer: cheap to clone, one per process. Records go over a bounded channel to a
/// writer thread that writes each waiting batch with one write(2) under the directory lock.
#[derive(Clone)]
pub struct Audit {
    tx: mpsc::Sender<Msg>,
    settings: Arc<AuditSettings>,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audit")
            .field("dir", &self.settings.dir)
            .finish_non_exhaustive()
    }
}

impl Audit {
    /// Opens the trail in `settings.dir` (made, owner-only, if absent), resumes the chain from
    /// the newest file (cutting away a torn last line and noting it), makes the signing key
    /// on first use, and starts the writer thread. Blocking; call once at start-up. Works
    /// with or without a tokio runtime.
    pub fn open(settings: &AuditSettings) -> Result<Audit, AuditError> {
        Audit::open_reporting(settings, |_| {})
    }

    /// `open`, calling `report` (on the writer thread) for every checkpoint written, so its
    /// hash can be sent off the machine.
    pub fn open_reporting(
        settings: &AuditSettings,
        report: impl Fn(Checkpoint) + Send + 'static,
    ) -> Result<Audit, AuditError> {
        let mut chain =
            Chain::open(&settings.dir, settings.limits())?.named(settings.instance.as_deref());
        // Resume now, so a broken trail is reported at start-up, not on the first request.
        chain.append(Vec::new(), false, crate::clock::now())?;
        chain.sync()?;
        chain.take_checkpoints().into_iter().for_each(&report);
        let (tx, rx) = mpsc::channel(QUEUE);
        let fsync_every = settings.fsync_every;
        let report: Report = Box::new(report);
        std::thread::Builder::new()
            .name("ward-audit".into())
            .spawn(move || writer_thread(chain, rx, fsync_every, report))
            .map_err(|e| AuditError::io(&settings.dir, e))?;
        Ok(Audit {
            tx,
            settings: Arc::new(settings.clone()),
        })
    }

    /// Writes `r` (assigning `seq` and `prev`); returns once its line is in the file.
    pub async fn record(&self, r: Record) -> Result<(), AuditError> {
        self.record_seq(r).await.map(|_| ())
    }

    /// Like `record`, returning the record's `seq`.
    pub async fn record_seq(&self, r: Record) -> Result<u64, AuditError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Msg::Record(r, ack))
            .await
            .map_err(|_| AuditError::Closed)?;
        done.await.map_err(|_| AuditError::Closed)?
    }

    /// Writes a final checkpoint, fsyncs and stops the writer; later records get `Closed`.
    /// Records sent before this are written first. Safe to call more than once.
    pub async fn shutdown(&self) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Msg::Shutdown(ack)).await.is_ok() {
            let _ = done.await;
        }
    }

    /// The settings the trail was opened with (`on_failure` is the caller's to apply).
    pub fn settings(&self) -> &AuditSettings {
        &self.settings
    }

    /// What to do with a request whose record failed.
    pub fn on_failure(&self) -> OnFailure {
        self.settings.on_failure
    }
}

/// Appends one record from a short-lived command (`ward user …`, `ward grant …`) with the same
/// lock and chain as the running ward, and fsyncs it before returning. Blocking.
pub fn append_blocking(dir: &Path, r: Record) -> Result<(), AuditError> {
    append_blocking_with(&AuditSettings::in_dir(dir), r)
}

/// `append_blocking` with the policy's rotation settings.
pub fn append_blocking_with(settings: &AuditSettings, r: Record) -> Result<(), AuditError> {
    let mut chain = Chain::open(&settings.dir, settings.limits())?;
    chain.append(vec![r], false, crate::clock::now())?;
    chain.sync()
}

/// For `ward audit new-key`: makes a new signing key if the old one is missing (even under
/// a trail with records), writes `r` and a checkpoint signed with the key, and returns
/// whether a key was made. Blocking.
pub fn replace_lost_key(dir: &Path, r: Record) -> Result<bool, AuditError> {
    let made = !dir.join(key::PRIVATE_KEY_FILE).exists();
    let mut chain = Chain::open(dir, AuditSettings::in_dir(dir).limits())?;
    chain.allow_replacing_a_lost_key();
    chain.append(
        if made { vec![r] } else { Vec::new() },
        made,
        crate::clock::now(),
    )?;
    chain.sync()?;
    Ok(made)
}

/// What the writer calls for each checkpoint it wrote.
type Report = Box<dyn Fn(Checkpoint) + Send>;

fn writer_thread(chain: Chain, rx: mpsc::Receiver<Msg>, fsync_every: Duration, report: Report) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "the audit writer could not start");
            return;
        }
    };
    rt.block_on(writer_loop(chain, rx, fsync_every, report));
}

async fn writer_loop(
    mut chain: Chain,
    mut rx: mpsc::Receiver<Msg>,
    fsync_every: Duration,
    report: Report,
) {
    let mut deadline: Option<tokio::time::Instant> = None;
    let mut batch = Vec::with_capacity(64);
    loop {
        let first = match deadline {
            Some(d) => match tokio::time::timeout_at(d, rx.recv()).await {
                Ok(m) => m,
                Err(_) => {
                    sync(&mut chain);
                    deadline = None;
                    continue;
                }
            },
            None => rx.recv().await,
        };
        let Some(first) = first else {
            // Every `Audit` was dropped without `shutdown`: close the trail properly anyway.
            finish(&mut chain);
            chain.take_checkpoints().into_iter().for_each(&report);
            return;
        };
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let mut records = Vec::with_capacity(batch.len());
        let mut acks = Vec::with_capacity(batch.len());
        let mut stops = Vec::new();
        for m in batch.drain(..) {
            match m {
                Msg::Record(r, ack) if stops.is_empty() => {
                    records.push(r);
                    acks.push(ack);
                }
                Msg::Record(_, ack) => {
                    let _ = ack.send(Err(AuditError::Closed));
                }
                Msg::Shutdown(done) => stops.push(done),
            }
        }
        let stopping = !stops.is_empty();
        if !records.is_empty() || stopping {
            match chain.append(records, stopping, crate::clock::now()) {
                Ok(seqs) => {
                    for (ack, seq) in acks.into_iter().zip(seqs) {
                        let _ = ack.send(Ok(seq));
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "audit records could not be written");
                    for ack in acks {
                        let _ = ack.send(Err(e.clone()));
                    }
                }
            }
            chain.take_checkpoints().into_iter().for_each(&report);
        }
        if stopping {
            sync(&mut chain);
            rx.close();
            // Bounded: the channel is closed and holds at most QUEUE messages.
            while let Some(m) = rx.recv().await {
                match m {
                    Msg::Record(_, ack) => {
                        let _ = ack.send(Err(AuditError::Closed));
                    }
                    Msg::Shutdown(done) => stops.push(done),
                }
            }
            for done in stops {
                let _ = done.send(());
            }
            return;
        }
        if chain.dirty() {
            if fsync_every.is_zero() {
                sync(&mut chain);
            } else if deadline.is_none() {
                deadline = Some(tokio::time::Instant::now() + fsync_every);
            }
        }
    }
}

fn sync(chain: &mut Chain) {
    if let Err(e) = chain.sync() {
        tracing::error!(error = %e, "the audit trail could not be flushed to disk");
    }
}

fn finish(chain: &mut Chain) {
    if let Err(e) = chain.append(Vec::new(), true, crate::clock::now()) {
        tracing::error!(error = %e, "the closing audit checkpoint could not be written");
    }
    sync(chain);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &Path) -> AuditSettings {
        AuditSettings {
            fsync_every: Duration::from_millis(5),
            checkpoint_every: 50,
            ..AuditSettings::in_dir(dir)
        }
    }

    #[tokio::test]
    async fn records_are_in_the_file_when_record_returns() {
        let dir = tempfile::tempdir().unwrap();
        let audit = Audit::open(&settings(dir.path())).unwrap();
        let seq = audit
            .record_seq(Record::signin("login-ok").user("dr_lee"))
            .await
            .unwrap();
        let files = trail_files(dir.path()).unwrap();
        let text = std::fs::read_to_string(&files[0]).unwrap();
        assert!(text.contains(&format!(r#""seq":{seq},"#)), "{text}");
        assert!(text.contains("dr_lee"));
        audit.shutdown().await;
        assert!(matches!(
            audit.record(Record::signin("late")).await,
            Err(AuditError::Closed)
        ));
        audit.shutdown().await;
        let report = verify::verify_dir(dir.path()).unwrap();
        assert_eq!(report.records, 3); // key made, login, closing checkpoint
    }

    #[tokio::test]
    async fn concurrent_records_get_distinct_consecutive_seqs() {
        let dir = tempfile::tempdir().unwrap();
        let audit = Audit::open(&settings(dir.path())).unwrap();
        let mut tasks = Vec::new();
        for t in 0..8 {
            let a = audit.clone();
            tasks.push(tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..200 {
                    let r = Record::access("GET", "ehr", &format!("/p/{t}/{i}"), "allow");
                    seqs.push(a.record_seq(r).await.unwrap());
                }
                seqs
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 1600);
        audit.shutdown().await;
        let report = verify::verify_dir(dir.path()).unwrap();
        assert!(report.checkpoints >= 32, "{report:?}");
    }

    #[test]
    fn append_blocking_continues_a_closed_trail() {
        let dir = tempfile::tempdir().unwrap();
        append_blocking(
            dir.path(),
            Record::officer("officer", "user-added").user("a"),
        )
        .unwrap();
        append_blocking(
            dir.path(),
            Record::officer("officer", "user-added").user("b"),
        )
        .unwrap();
        let report = verify::verify_dir(dir.path()).unwrap();
        assert_eq!(report.records, 3);
    }

    #[test]
    fn an_unwritable_directory_is_an_error_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let err = Audit::open(&AuditSettings::in_dir(&file)).unwrap_err();
        assert!(matches!(err, AuditError::Io { .. }), "{err}");
    }
}
