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

pub mod alert;
pub mod alerts;
pub mod email;
pub mod retry;
pub mod syslog;
mod webhook;

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
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::{Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// The longest the running ward keeps the trail's directory lock while records flow: what a
/// `ward user …` or `ward grant …` command may wait for it. Held, the lock costs nothing per
/// record; taken per batch, it costs two flock(2) and a stat of the file.
const LOCK_HOLD: Duration = Duration::from_millis(100);

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
    /// Where every record is also sent, as syslog (`[audit] syslog`).
    pub syslog: Option<syslog::SyslogSettings>,
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
            syslog: None,
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
    /// `[audit] syslog` was asked for outside ward's runtime.
    #[error("forwarding the audit trail to syslog needs a running ward")]
    NoRuntime,
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

/// The audit writer: cheap to clone, one per process. There is no writer thread: the task
/// of the request writes the records itself (group commit). Each record joins a queue; the
/// task that then takes the chain writes everything queued with one write(2), and those
/// whose records it wrote find their result when they get the chain in turn. So a record
/// is in the file before `record` returns, without a hand-over to another thread and back
/// for every request. While records flow, the writer keeps the directory lock between
/// batches (for `LOCK_HOLD` at most), so a record costs one write(2) and no lock or stat. A
/// background thread fsyncs every `fsync_every` and releases a lock kept too long.
#[derive(Clone)]
pub struct Audit {
    writer: Arc<Writer>,
    settings: Arc<AuditSettings>,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audit")
            .field("dir", &self.settings.dir)
            .finish_non_exhaustive()
    }
}

/// What the writer calls for each checkpoint it wrote.
type Report = Box<dyn Fn(Checkpoint) + Send + Sync>;

/// Records waiting for the chain, each with its ticket (the order they came in).
struct Queue {
    waiting: Vec<(u64, Record)>,
    next_ticket: u64,
    closed: bool,
}

/// The chain, and what happened to the records written for others.
struct Written {
    chain: Chain,
    /// Every ticket up to here has been written (or failed).
    done: u64,
    /// Results not yet collected by their records' tasks.
    results: HashMap<u64, Result<u64, AuditError>>,
    closed: bool,
    /// The queue's vector from the last batch, emptied, and the tickets of the last batch:
    /// kept for their capacity.
    spare: Vec<(u64, Record)>,
    tickets: Vec<u64>,
}

struct Writer {
    queue: Mutex<Queue>,
    written: Mutex<Written>,
    report: Report,
    fsync_every: Duration,
    /// Sends written lines to the syslog collector, when there is one.
    forward: Option<syslog::Forwarder>,
}

impl Writer {
    fn queue(&self) -> Result<MutexGuard<'_, Queue>, AuditError> {
        // A poisoned lock means a writer panicked mid-write: refuse rather than guess.
        self.queue.lock().map_err(|_| AuditError::Closed)
    }

    fn written(&self) -> Result<MutexGuard<'_, Written>, AuditError> {
        self.written.lock().map_err(|_| AuditError::Closed)
    }

    /// Writes `r`, with whatever else is queued when this task gets the chain.
    fn record(&self, r: Record) -> Result<u64, AuditError> {
        let ticket = self.enqueue(r)?;
        self.finish(ticket)
    }

    /// Puts `r` in the queue; its ticket is for [`Writer::finish`].
    fn enqueue(&self, r: Record) -> Result<u64, AuditError> {
        let mut q = self.queue()?;
        if q.closed {
            return Err(AuditError::Closed);
        }
        q.next_ticket += 1;
        let t = q.next_ticket;
        q.waiting.push((t, r));
        Ok(t)
    }

    /// Writes everything queued, unless another task already wrote `ticket`'s record, and
    /// returns that record's result.
    fn finish(&self, ticket: u64) -> Result<u64, AuditError> {
        let mut w = self.written()?;
        if w.done < ticket {
            // The queue gets the last batch's emptied vector, so neither allocates.
            let mut batch = std::mem::take(&mut w.spare);
            std::mem::swap(&mut batch, &mut self.queue()?.waiting);
            self.write(&mut w, &mut batch, false);
            w.spare = batch;
        }
        let result = w.results.remove(&ticket).unwrap_or(Err(AuditError::Closed));
        self.forward_written(&mut w);
        let checkpoints = w.chain.take_checkpoints();
        if self.fsync_every.is_zero() {
            sync(&mut w.chain);
        }
        drop(w);
        checkpoints.into_iter().for_each(&self.report);
        result
    }

    /// Writes `batch` (emptying it) as one append and files each record's result under its
    /// ticket.
    fn write(&self, w: &mut Written, batch: &mut Vec<(u64, Record)>, end_with_checkpoint: bool) {
        let mut tickets = std::mem::take(&mut w.tickets);
        tickets.clear();
        tickets.extend(batch.iter().map(|(t, _)| *t));
        if let Some(last) = tickets.last() {
            w.done = w.done.max(*last);
        }
        let records = batch.drain(..).map(|(_, r)| r);
        let result = if w.closed {
            Err(AuditError::Closed)
        } else {
            w.chain
                .append(records, end_with_checkpoint, crate::clock::now())
        };
        match result {
            Ok(seqs) => {
                for (t, seq) in tickets.iter().zip(seqs) {
                    w.results.insert(*t, Ok(seq));
                }
            }
            Err(e) => {
                if !w.closed {
                    tracing::error!(error = %e, "audit records could not be written");
                }
                for t in &tickets {
                    w.results.insert(*t, Err(e.clone()));
                }
            }
        }
        w.tickets = tickets;
    }

    /// Writes what is queued and a closing checkpoint, fsyncs, and takes no more records.
    fn close(&self) {
        let Ok(mut q) = self.queue() else { return };
        q.closed = true;
        let mut batch = std::mem::take(&mut q.waiting);
        drop(q);
        let Ok(mut w) = self.written() else { return };
        if w.closed {
            return;
        }
        self.write(&mut w, &mut batch, true);
        w.closed = true;
        w.chain.release_lock();
        self.forward_written(&mut w);
        sync(&mut w.chain);
        let checkpoints = w.chain.take_checkpoints();
        drop(w);
        checkpoints.into_iter().for_each(&self.report);
    }

    /// Hands the lines just written to the syslog sender, under the writer's lock so that
    /// batches leave in the order they were written. Never waits.
    fn forward_written(&self, w: &mut Written) {
        if let Some(f) = &self.forward {
            f.send(w.chain.take_lines());
        }
    }

    /// Releases the directory lock if the chain has kept it for `LOCK_HOLD`, so that a
    /// `ward user …` command waits no longer than that. Returns false once the trail is closed.
    fn release_lock_if_due(&self) -> bool {
        let Ok(mut w) = self.written() else {
            return false;
        };
        w.chain.release_lock_if_due();
        !w.closed
    }

    /// fsyncs what was written since the last time, outside the writer's lock so that
    /// requests keep writing meanwhile. Returns false once the trail is closed.
    fn sync_now(&self) -> bool {
        let Ok(mut w) = self.written() else {
            return false;
        };
        if w.closed {
            return false;
        }
        let Some((path, file)) = w.chain.unsynced() else {
            return true;
        };
        drop(w);
        if let Err(e) = file.sync_data() {
            tracing::error!(error = %AuditError::io(&path, e), "the audit trail could not be flushed to disk");
            if let Ok(mut w) = self.written() {
                w.chain.mark_unsynced();
            }
        }
        true
    }
}

impl Drop for Writer {
    // Every `Audit` was dropped without `shutdown`: close the trail properly anyway.
    fn drop(&mut self) {
        self.close();
    }
}

impl Audit {
    /// Opens the trail in `settings.dir` (made, owner-only, if absent), resumes the chain from
    /// the newest file (cutting away a torn last line and noting it), makes the signing key
    /// on first use, and starts the fsync thread. Blocking; call once at start-up. Works
    /// with or without a tokio runtime.
    pub fn open(settings: &AuditSettings) -> Result<Audit, AuditError> {
        Audit::open_reporting(settings, |_| {}, crate::metrics::Deliveries::default())
    }

    /// `open`, calling `report` for every checkpoint written (on the task that wrote it), so
    /// its hash can be sent off the machine, and with `settings.syslog` starting the sender
    /// that forwards every line (which needs a tokio runtime), counting in `deliveries`.
    pub fn open_reporting(
        settings: &AuditSettings,
        report: impl Fn(Checkpoint) + Send + Sync + 'static,
        deliveries: crate::metrics::Deliveries,
    ) -> Result<Audit, AuditError> {
        if settings.syslog.is_some() && tokio::runtime::Handle::try_current().is_err() {
            return Err(AuditError::NoRuntime);
        }
        let mut chain = Chain::open(&settings.dir, settings.limits())?
            .named(settings.instance.as_deref())
            .keep_lines(settings.syslog.is_some())
            .hold_lock(LOCK_HOLD);
        // Resume now, so a broken trail is reported at start-up, not on the first request.
        chain.append(Vec::new(), false, crate::clock::now())?;
        chain.sync()?;
        chain.take_checkpoints().into_iter().for_each(&report);
        let first_lines = chain.take_lines();
        let writer = Arc::new_cyclic(|weak: &Weak<Writer>| {
            Writer {
            forward: settings.syslog.as_ref().and_then(|s| {
                let weak = weak.clone();
                let note: syslog::Note = Box::new(move |r| {
                    if let Some(w) = weak.upgrade()
                        && let Err(e) = w.record(r)
                    {
                        tracing::error!(error = %e, "cannot note the syslog gap in the audit trail");
                    }
                });
                let host = settings
                    .instance
                    .clone()
                    .or_else(host_instance)
                    .unwrap_or_default();
                syslog::Forwarder::start(s, host, deliveries.clone(), note)
            }),
            queue: Mutex::new(Queue {
                waiting: Vec::new(),
                next_ticket: 0,
                closed: false,
            }),
            written: Mutex::new(Written {
                chain,
                done: 0,
                results: HashMap::new(),
                closed: false,
                spare: Vec::new(),
                tickets: Vec::new(),
            }),
            report: Box::new(report),
            fsync_every: settings.fsync_every,
        }
        });
        if let Some(f) = &writer.forward {
            f.send(first_lines);
        }
        let weak = Arc::downgrade(&writer);
        let every = settings.fsync_every;
        std::thread::Builder::new()
            .name("ward-audit-sync".into())
            .spawn(move || fsync_loop(weak, every))
            .map_err(|e| AuditError::io(&settings.dir, e))?;
        Ok(Audit {
            writer,
            settings: Arc::new(settings.clone()),
        })
    }

    /// Writes `r` (assigning `seq` and `prev`); returns once its line is in the file.
    pub async fn record(&self, r: Record) -> Result<(), AuditError> {
        self.record_seq(r).await.map(|_| ())
    }

    /// Like `record`, returning the record's `seq`.
    pub async fn record_seq(&self, r: Record) -> Result<u64, AuditError> {
        // Written here, on the caller's thread: a write(2) of a few hundred bytes into the
        // page cache is shorter than handing the record to another thread and waiting.
        let ticket = Ticket {
            writer: &self.writer,
            number: self.writer.enqueue(r)?,
            finished: false,
        };
        // First the other requests this thread has ready queue theirs, so that one write(2)
        // serves them all (each worker runs its requests on one thread).
        after_ready_tasks().await;
        ticket.finish()
    }

    /// Writes a final checkpoint, fsyncs and stops the writer; later records get `Closed`.
    /// Records handed over before this are written first. Safe to call more than once.
    pub async fn shutdown(&self) {
        // What waits for the syslog collector goes first (for 2 s at most); what it did
        // not take is noted in the trail before the trail closes.
        if let Some(f) = &self.writer.forward
            && !f.flush(Duration::from_secs(2)).await
            && let Err(e) = self.writer.record(f.unsent())
        {
            tracing::error!(error = %e, "cannot note the unsent records in the audit trail");
        }
        self.writer.close();
        if let Some(f) = &self.writer.forward {
            // The closing checkpoint, if the collector takes it soon.
            f.flush(Duration::from_secs(2)).await;
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

/// Lets the tasks this thread already has ready run first. Not tokio's `yield_now`: that
/// polls for new I/O before coming back, one more system call at every turn.
async fn after_ready_tasks() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await
}

/// A queued record's place. Dropped unfinished (its request was dropped while waiting), the
/// record is still written and its result collected, so that none is left behind.
struct Ticket<'a> {
    writer: &'a Writer,
    number: u64,
    finished: bool,
}

impl Ticket<'_> {
    /// The record's `seq` once it is in the file.
    fn finish(mut self) -> Result<u64, AuditError> {
        self.finished = true;
        self.writer.finish(self.number)
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.writer.finish(self.number);
        }
    }
}

/// fsyncs the trail every `every` (zero: the writer fsyncs each batch itself) and releases
/// the directory lock kept longer than `LOCK_HOLD`, while the trail is open (and its writer
/// alive).
fn fsync_loop(writer: Weak<Writer>, every: Duration) {
    let tick = if every.is_zero() {
        LOCK_HOLD
    } else {
        every.min(LOCK_HOLD)
    };
    let mut next_sync = Instant::now() + every;
    loop {
        std::thread::sleep(tick);
        let Some(w) = writer.upgrade() else { return };
        if !w.release_lock_if_due() {
            return;
        }
        if !every.is_zero() && Instant::now() >= next_sync {
            next_sync = Instant::now() + every;
            if !w.sync_now() {
                return;
            }
        }
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

fn sync(chain: &mut Chain) {
    if let Err(e) = chain.sync() {
        tracing::error!(error = %e, "the audit trail could not be flushed to disk");
    }
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
    async fn a_record_whose_request_is_dropped_while_it_waits_is_still_written() {
        let dir = tempfile::tempdir().unwrap();
        let audit = Audit::open(&settings(dir.path())).unwrap();
        {
            let mut waiting = std::pin::pin!(audit.record_seq(Record::signin("x").user("dr_kim")));
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            // Queued, and waiting for the thread's other ready tasks: then dropped.
            assert!(waiting.as_mut().poll(&mut cx).is_pending());
        }
        let files = trail_files(dir.path()).unwrap();
        assert!(
            std::fs::read_to_string(&files[0])
                .unwrap()
                .contains("dr_kim")
        );
        // Its result was collected, not left behind.
        assert!(audit.writer.written().unwrap().results.is_empty());
        audit.shutdown().await;
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
