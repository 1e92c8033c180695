//! The chain on disk: the files, the directory lock, resuming after a restart or a crash,
//! rotation and signed checkpoints. Blocking I/O; the async writer runs it on its own thread.
//!
//! Every process that appends (the running ward, `ward user …` commands) takes an exclusive
//! `flock` on `DIR/.lock` around each batch. Under the lock a writer checks that the file it
//! last wrote still has the length it left it at; if not (another process appended, rotated,
//! or crashed mid-line), it re-reads the newest file's last line to learn `seq` and `prev`.
//! Rotation always appends a checkpoint to the old file first, so "same file, same length"
//! really means nobody else wrote since. The running ward keeps the lock between batches
//! while records flow (`Chain::hold_lock`), for a bounded time, and needs no look while it
//! holds it; the commands take it around their one batch.

use super::AuditError;
use super::key::{self, SigningKey};
use super::record::{Kind, Record, now_text, time_text};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `prev` of record 0.
pub const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The longest line the reader accepts (records are far shorter: fields are bounded).
pub const MAX_LINE: usize = 1 << 20;

/// The lock file every appender holds around a batch.
pub const LOCK_FILE: &str = ".lock";

/// Hex SHA-256 of a line (without its newline).
pub fn line_hash(line: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(&Sha256::digest(line))
}

/// `(instance, day as YYYYMMDD, number)` from a name like `audit-20261101-0003.jsonl` (one
/// instance: its name is empty) or `audit-ward-a-20261101-0003.jsonl` (instance `ward-a`).
pub fn parse_file_name(name: &str) -> Option<(String, u32, u32)> {
    let rest = name.strip_prefix("audit-")?.strip_suffix(".jsonl")?;
    // From the right: an instance's name may itself hold `-`.
    let (rest, number) = rest.rsplit_once('-')?;
    let (instance, day) = match rest.rsplit_once('-') {
        Some((instance, day)) if valid_instance(instance) => (instance, day),
        Some(_) => return None,
        None => ("", rest),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if day.len() != 8 || !all_digits(day) || number.len() < 4 || !all_digits(number) {
        return None;
    }
    Some((
        instance.to_string(),
        day.parse().ok()?,
        number.parse().ok()?,
    ))
}

/// Whether `name` may name an instance: 1 to 40 letters, digits, `-` and `_`.
pub fn valid_instance(name: &str) -> bool {
    (1..=40).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// This machine's host name (its first label, as an instance name), if it makes one.
pub fn host_instance() -> Option<String> {
    let text = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = text.trim().split('.').next().unwrap_or("").to_string();
    valid_instance(&name).then_some(name)
}

/// The trail's files in `dir`, every instance's: by instance, then oldest first (by day, then
/// number).
pub fn trail_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if let Some(key) = name.to_str().and_then(parse_file_name) {
            found.push((key, entry.path()));
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, p)| p).collect())
}

/// The instance whose chain a trail file is part of (empty: the one unnamed chain).
pub fn instance_of(path: &Path) -> String {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(parse_file_name)
        .map(|(instance, _, _)| instance)
        .unwrap_or_default()
}

/// Splits sorted trail files into one run per instance (each run one chain).
pub fn chains(files: &[PathBuf]) -> Vec<(String, Vec<PathBuf>)> {
    let mut runs: Vec<(String, Vec<PathBuf>)> = Vec::new();
    for f in files {
        let instance = instance_of(f);
        match runs.last_mut() {
            Some((name, run)) if *name == instance => run.push(f.clone()),
            _ => runs.push((instance, vec![f.clone()])),
        }
    }
    runs
}

/// The files of one instance's chain in `dir`, oldest first.
fn chain_files(dir: &Path, instance: &str) -> std::io::Result<Vec<PathBuf>> {
    let mut files = trail_files(dir)?;
    files.retain(|f| instance_of(f) == instance);
    Ok(files)
}

/// Sorts paths of trail files by instance, day and number (others by name, after them).
pub fn sort_trail_files(files: &mut [PathBuf]) {
    files.sort_by_key(|p| {
        let key = p
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(parse_file_name);
        (key.is_none(), key, p.clone())
    });
}

fn day_key(ts: Timestamp) -> u32 {
    let d = ts.to_zoned_datetime(TimeZone::UTC).date();
    // Years are 4 digits for the next 8000 years.
    (d.year() as u32) * 10_000 + (d.month() as u32) * 100 + d.day() as u32
}

fn io_err(path: &Path, e: std::io::Error) -> AuditError {
    AuditError::io(path, e)
}

/// Where the chain stands: what the next record gets.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Head {
    next_seq: u64,
    prev: String,
    since_checkpoint: u64,
    last_is_checkpoint: bool,
}

impl Head {
    fn start() -> Head {
        Head {
            next_seq: 0,
            prev: ZERO_HASH.to_string(),
            since_checkpoint: 0,
            last_is_checkpoint: false,
        }
    }
}

/// The file this writer appends to, as it left it.
struct Current {
    path: PathBuf,
    // Shared so the fsync can run without holding the writer (`Chain::unsynced`).
    file: Arc<File>,
    len: u64,
    dev: u64,
    ino: u64,
    day: u32,
}

/// Limits for one writer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_file_bytes: u64,
    pub checkpoint_every: u64,
}

/// One appender's view of the chain in a directory.
pub(crate) struct Chain {
    dir: PathBuf,
    /// The instance whose chain this is (empty: the one unnamed chain).
    instance: String,
    limits: Limits,
    lock: File,
    cur: Option<Current>,
    head: Head,
    /// Records the writer owes the trail (crash recovered, key made), written first.
    pending: Vec<Record>,
    key: Option<SigningKey>,
    /// Whether a missing key may be made although the trail has records (`ward audit new-key`).
    replace_lost_key: bool,
    /// Checkpoints written since `take_checkpoints` was last called.
    written: Vec<Checkpoint>,
    /// Written but not yet fsynced.
    dirty: bool,
    /// Whether written lines are kept for `take_lines` (when they are forwarded).
    keep_lines: bool,
    /// Lines written since `take_lines` was last called.
    lines: Vec<u8>,
    /// How long the lock may be kept between batches (zero: not at all).
    hold: Duration,
    /// Since when this writer has kept the lock, if it has.
    held_since: Option<Instant>,
    /// Until when batches take and release the lock each, after it was kept.
    rest_until: Option<Instant>,
    /// The buffer of the last batch, kept for its capacity.
    scratch: Vec<u8>,
}

/// A checkpoint as written: its seq and the hash of its line, which the next record's `prev`
/// repeats. Kept off the machine, it shows later whether the trail was cut back before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The checkpoint record's seq.
    pub seq: u64,
    /// Hex SHA-256 of its line.
    pub hash: String,
}

/// The last line of a record file, parsed as far as resuming needs.
#[derive(serde::Deserialize)]
struct Tail {
    seq: u64,
    kind: Kind,
    #[serde(default)]
    event: Option<String>,
}

impl Chain {
    /// Opens (creating, owner-only) the directory and its lock file. Reads nothing yet:
    /// the chain is found under the lock on the first append.
    pub fn open(dir: &Path, limits: Limits) -> Result<Chain, AuditError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| io_err(dir, e))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| io_err(&lock_path, e))?;
        Ok(Chain {
            dir: dir.to_path_buf(),
            instance: String::new(),
            limits,
            lock,
            cur: None,
            head: Head::start(),
            pending: Vec::new(),
            key: None,
            replace_lost_key: false,
            written: Vec::new(),
            dirty: false,
            keep_lines: false,
            lines: Vec::new(),
            hold: Duration::ZERO,
            held_since: None,
            rest_until: None,
            scratch: Vec::new(),
        })
    }

    /// This chain, as `instance`'s own: its files are named for it and its records carry it.
    pub fn named(mut self, instance: Option<&str>) -> Chain {
        self.instance = instance.unwrap_or_default().to_string();
        self
    }

    /// Lets this writer make a new signing key although the trail has records: only for
    /// the officer's explicit `ward audit new-key`.
    pub fn allow_replacing_a_lost_key(&mut self) {
        self.replace_lost_key = true;
    }

    /// Keeps every line written from now on for `take_lines`.
    pub fn keep_lines(mut self, keep: bool) -> Chain {
        self.keep_lines = keep;
        self
    }

    /// The lines written since the last call, each with its newline (empty unless kept).
    pub fn take_lines(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.lines)
    }

    /// The checkpoints written since the last call.
    pub fn take_checkpoints(&mut self) -> Vec<Checkpoint> {
        std::mem::take(&mut self.written)
    }

    /// Appends `records` as one write (plus any checkpoints due), returning their seqs.
    /// With `end_with_checkpoint`, finishes with a checkpoint unless the trail already ends
    /// with one. `now` decides the day for rotation and stamps the writer's own records.
    pub fn append(
        &mut self,
        records: impl IntoIterator<Item = Record>,
        end_with_checkpoint: bool,
        now: Timestamp,
    ) -> Result<Vec<u64>, AuditError> {
        let started = Instant::now();
        let held = self.held_since.is_some();
        if !held {
            self.lock
                .lock()
                .map_err(|e| io_err(&self.dir.join(LOCK_FILE), e))?;
        }
        // Held since the last batch: nobody else can have written, so the file needs no look.
        let look = !held || self.cur.is_none();
        let result = self.append_locked(records, end_with_checkpoint, now, look);
        let keep = result.is_ok()
            && !self.hold.is_zero()
            && match self.held_since {
                Some(since) => started.duration_since(since) < self.hold,
                None => self.rest_until.is_none_or(|t| started >= t),
            };
        if keep {
            self.held_since.get_or_insert(started);
        } else {
            self.release_lock();
        }
        result
    }

    /// Keeps the directory lock between batches for up to `hold` (zero: releases it after
    /// each batch), saving the lock and the look at the file per batch while records flow.
    /// Whoever owns the chain must call `release_lock_if_due` at least every `hold`, so
    /// that another process waits about `hold` at most.
    pub fn hold_lock(mut self, hold: Duration) -> Chain {
        self.hold = hold;
        self
    }

    /// Releases the lock if it has been kept for `hold` or longer.
    pub fn release_lock_if_due(&mut self) {
        if self
            .held_since
            .is_some_and(|since| since.elapsed() >= self.hold)
        {
            self.release_lock();
        }
    }

    /// Releases the directory lock now. After a kept lock is released, batches take and
    /// release it each for `hold / 20`, so a process waiting for it gets in between them
    /// (flock hands the lock to no one in particular: a writer that took it straight back
    /// could keep a waiting `ward user` out for as long as requests flow).
    pub fn release_lock(&mut self) {
        if self.held_since.take().is_some() {
            self.rest_until = Some(Instant::now() + self.hold / 20);
        }
        let _ = self.lock.unlock();
    }

    /// fsyncs what this writer wrote.
    pub fn sync(&mut self) -> Result<(), AuditError> {
        if !self.dirty {
            return Ok(());
        }
        if let Some(cur) = &self.cur {
            cur.file.sync_data().map_err(|e| io_err(&cur.path, e))?;
        }
        self.dirty = false;
        Ok(())
    }

    /// The file written since the last fsync, to fsync outside the writer's lock; marks it
    /// synced (`mark_unsynced` puts that back if the fsync fails). Rotation fsyncs the file it
    /// leaves itself, so only the current file can be owed one.
    pub fn unsynced(&mut self) -> Option<(PathBuf, Arc<File>)> {
        if !self.dirty {
            return None;
        }
        self.dirty = false;
        self.cur.as_ref().map(|c| (c.path.clone(), c.file.clone()))
    }

    /// After a failed fsync: the next round tries again.
    pub fn mark_unsynced(&mut self) {
        self.dirty = true;
    }

    /// `append` under the lock; `look`: check first whether another writer changed the file.
    fn append_locked(
        &mut self,
        records: impl IntoIterator<Item = Record>,
        end_with_checkpoint: bool,
        now: Timestamp,
        look: bool,
    ) -> Result<Vec<u64>, AuditError> {
        self.ensure_key()?;
        if look {
            self.sync_with_disk()?;
        }
        let today = day_key(now);
        let rotate = self
            .cur
            .as_ref()
            .is_some_and(|c| c.len >= self.limits.max_file_bytes || c.day != today);
        if rotate {
            self.rotate(now)?;
        }
        if self.cur.is_none() {
            self.create_file(today)?;
        }

        let mut head = self.head.clone();
        // The last batch's buffer, for its capacity.
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        for r in &self.pending {
            let mut r = r.clone();
            encode(&mut head, &self.instance, &mut r, &mut buf)?;
        }
        let records = records.into_iter();
        let mut seqs = Vec::with_capacity(records.size_hint().0);
        let mut checkpoints = Vec::new();
        let every = self.limits.checkpoint_every;
        for mut r in records {
            r.clamp();
            encode(&mut head, &self.instance, &mut r, &mut buf)?;
            seqs.push(r.seq);
            if every > 0 && head.since_checkpoint >= every {
                checkpoints.push(self.encode_checkpoint(&mut head, &mut buf, now)?);
            }
        }
        if end_with_checkpoint && !head.last_is_checkpoint {
            checkpoints.push(self.encode_checkpoint(&mut head, &mut buf, now)?);
        }
        if buf.is_empty() {
            self.scratch = buf;
            return Ok(seqs);
        }
        self.write(&buf)?;
        self.scratch = buf;
        self.written.extend(checkpoints);
        self.pending.clear();
        self.head = head;
        Ok(seqs)
    }

    /// Writes `buf` at the end of the current file with one write (more only if the kernel
    /// takes less). On failure the file's state is unknown: the next batch re-reads it.
    fn write(&mut self, buf: &[u8]) -> Result<(), AuditError> {
        let Some(cur) = &mut self.cur else {
            return Err(AuditError::Corrupt("no audit file is open".into()));
        };
        self.dirty = true;
        if let Err(e) = (&*cur.file).write_all(buf) {
            let path = cur.path.clone();
            self.cur = None;
            return Err(io_err(&path, e));
        }
        cur.len += buf.len() as u64;
        if self.keep_lines {
            self.lines.extend_from_slice(buf);
        }
        Ok(())
    }

    fn encode_checkpoint(
        &self,
        head: &mut Head,
        buf: &mut Vec<u8>,
        now: Timestamp,
    ) -> Result<Checkpoint, AuditError> {
        let Some(key) = &self.key else {
            return Err(AuditError::Corrupt("the signing key is not loaded".into()));
        };
        let signature = key.sign(&key::checkpoint_message(head.next_seq, &head.prev));
        let mut r = Record::system("checkpoint", signature);
        r.time = time_text(now);
        encode(head, &self.instance, &mut r, buf)?;
        Ok(Checkpoint {
            seq: r.seq,
            hash: head.prev.clone(),
        })
    }

    fn ensure_key(&mut self) -> Result<(), AuditError> {
        if self.key.is_some() {
            return Ok(());
        }
        let has_records = !trail_files(&self.dir)
            .map_err(|e| io_err(&self.dir, e))?
            .is_empty();
        let if_missing = if has_records && !self.replace_lost_key {
            key::IfMissing::Refuse
        } else {
            key::IfMissing::Create
        };
        let k = key::load_or_create(&self.dir, if_missing)?;
        if k.created {
            self.pending.push(Record::system(
                "audit-key-created",
                format!(
                    "new checkpoint signing key; public key {} (also in {})",
                    k.public_base64(),
                    key::PUBLIC_KEY_FILE
                ),
            ));
        }
        self.key = Some(k);
        Ok(())
    }

    /// Re-reads the chain's end unless the file is as this writer left it.
    fn sync_with_disk(&mut self) -> Result<(), AuditError> {
        if let Some(cur) = &self.cur
            && let Ok(m) = std::fs::metadata(&cur.path)
            && m.dev() == cur.dev
            && m.ino() == cur.ino
        {
            if m.len() == cur.len {
                return Ok(());
            }
            if self.keep_lines && m.len() > cur.len {
                self.keep_appended(cur.len, m.len());
            }
        }
        self.rescan()
    }

    /// Keeps, for `take_lines`, the whole lines another writer (a `ward user` command)
    /// appended to the current file between `from` and `to`, when they are few; otherwise
    /// they are left out, and the forwarder names the gap.
    fn keep_appended(&mut self, from: u64, to: u64) {
        let Some(cur) = &self.cur else { return };
        if to - from > MAX_LINE as u64 {
            return;
        }
        let mut added = vec![0u8; (to - from) as usize];
        if read_at(&cur.file, from, &mut added).is_err() {
            return;
        }
        // Only complete lines: a torn one is cut away by the rescan that follows.
        if let Some(end) = added.iter().rposition(|&b| b == b'\n') {
            self.lines.extend_from_slice(&added[..=end]);
        }
    }

    /// Finds the newest file and its last record; cuts away a torn last line.
    fn rescan(&mut self) -> Result<(), AuditError> {
        if self.dirty {
            // What this writer wrote to the file it is leaving reaches the disk first.
            let _ = self.sync();
        }
        self.cur = None;
        self.dirty = false;
        let files = chain_files(&self.dir, &self.instance).map_err(|e| io_err(&self.dir, e))?;
        let Some(newest) = files.last() else {
            self.head = Head::start();
            return Ok(());
        };
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(newest)
            .map_err(|e| io_err(newest, e))?;
        let removed = repair_tail(&file).map_err(|e| io_err(newest, e))?;
        if removed > 0 {
            let name = newest.file_name().unwrap_or_default().to_string_lossy();
            let mut r = Record::system(
                "recovered",
                format!(
                    "removed an incomplete record ({removed} bytes) at the end of {name}: \
                     ward stopped while writing it"
                ),
            );
            r.time = now_text();
            self.pending.push(r);
        }
        let meta = file.metadata().map_err(|e| io_err(newest, e))?;
        let mut head = Head::start();
        // The newest file may be empty (made just before a crash): look further back.
        for path in files.iter().rev() {
            let line = if path == newest {
                last_line(&file)
            } else {
                File::open(path).and_then(|f| last_line(&f))
            }
            .map_err(|e| io_err(path, e))?;
            let Some(line) = line else { continue };
            let tail: Tail = serde_json::from_slice(&line).map_err(|_| {
                AuditError::Corrupt(format!(
                    "the last record in {} cannot be read, so the chain cannot be continued; \
                     run `ward audit verify`",
                    path.display()
                ))
            })?;
            head = Head {
                next_seq: tail.seq.saturating_add(1),
                prev: line_hash(&line),
                since_checkpoint: 0,
                last_is_checkpoint: tail.kind == Kind::System
                    && tail.event.as_deref() == Some("checkpoint"),
            };
            break;
        }
        let day = newest
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(parse_file_name)
            .map(|(_, d, _)| d)
            .unwrap_or(0);
        self.head = head;
        self.cur = Some(Current {
            path: newest.clone(),
            file: Arc::new(file),
            len: meta.len(),
            dev: meta.dev(),
            ino: meta.ino(),
            day,
        });
        Ok(())
    }

    /// Ends the current file with a checkpoint (unless it ends with one), fsyncs it, and
    /// starts the next.
    fn rotate(&mut self, now: Timestamp) -> Result<(), AuditError> {
        if !self.head.last_is_checkpoint {
            let mut head = self.head.clone();
            let mut buf = Vec::new();
            for r in &self.pending {
                let mut r = r.clone();
                encode(&mut head, &self.instance, &mut r, &mut buf)?;
            }
            let checkpoint = self.encode_checkpoint(&mut head, &mut buf, now)?;
            self.write(&buf)?;
            self.written.push(checkpoint);
            self.pending.clear();
            self.head = head;
        }
        self.sync()?;
        self.cur = None;
        self.create_file(day_key(now))
    }

    /// Makes the next file for `day` (numbered after the newest file of that day).
    fn create_file(&mut self, day: u32) -> Result<(), AuditError> {
        let files = chain_files(&self.dir, &self.instance).map_err(|e| io_err(&self.dir, e))?;
        let mut number = files
            .last()
            .and_then(|p| p.file_name()?.to_str().and_then(parse_file_name))
            .filter(|(_, d, _)| *d == day)
            .map(|(_, _, n)| n + 1)
            .unwrap_or(1);
        let prefix = match self.instance.as_str() {
            "" => "audit-".to_string(),
            name => format!("audit-{name}-"),
        };
        for _ in 0..1000 {
            let path = self.dir.join(format!("{prefix}{day:08}-{number:04}.jsonl"));
            match OpenOptions::new()
                .read(true)
                .append(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(file) => {
                    if let Ok(d) = File::open(&self.dir) {
                        let _ = d.sync_all();
                    }
                    let meta = file.metadata().map_err(|e| io_err(&path, e))?;
                    self.cur = Some(Current {
                        path,
                        file: Arc::new(file),
                        len: 0,
                        dev: meta.dev(),
                        ino: meta.ino(),
                        day,
                    });
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => number += 1,
                Err(e) => return Err(io_err(&path, e)),
            }
        }
        Err(AuditError::Corrupt(format!(
            "cannot find a free file name for day {day} in {}",
            self.dir.display()
        )))
    }
}

/// Gives `r` the next seq and prev and appends its line to `buf`.
fn encode(
    head: &mut Head,
    instance: &str,
    r: &mut Record,
    buf: &mut Vec<u8>,
) -> Result<(), AuditError> {
    r.seq = head.next_seq;
    if !instance.is_empty() {
        r.instance = Some(instance.to_string());
    }
    // Moved rather than copied, and the string reused for the new hash: no allocation.
    r.prev = std::mem::take(&mut head.prev);
    let start = buf.len();
    let written = serde_json::to_writer(&mut *buf, r);
    let mut prev = std::mem::take(&mut r.prev);
    if let Err(e) = written {
        head.prev = prev;
        return Err(AuditError::Corrupt(format!(
            "a record could not be written: {e}"
        )));
    }
    prev.clear();
    data_encoding::HEXLOWER.encode_append(&Sha256::digest(&buf[start..]), &mut prev);
    head.prev = prev;
    buf.push(b'\n');
    head.next_seq += 1;
    head.last_is_checkpoint = r.is_checkpoint();
    if head.last_is_checkpoint {
        head.since_checkpoint = 0;
    } else {
        head.since_checkpoint += 1;
    }
    Ok(())
}

/// Cuts a last line that has no newline (a write cut short by a crash); returns the bytes
/// removed.
fn repair_tail(file: &File) -> std::io::Result<u64> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(0);
    }
    let mut last = [0u8; 1];
    read_at(file, len - 1, &mut last)?;
    if last[0] == b'\n' {
        return Ok(0);
    }
    let keep = match rfind_newline(file, len, MAX_LINE as u64 + 1)? {
        Some(pos) => pos + 1,
        None if len <= MAX_LINE as u64 => 0,
        None => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the file ends in a line too long to be an audit record",
            ));
        }
    };
    file.set_len(keep)?;
    file.sync_data()?;
    Ok(len - keep)
}

/// The last complete line of `file` (without its newline), if any.
fn last_line(file: &File) -> std::io::Result<Option<Vec<u8>>> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(None);
    }
    let mut last = [0u8; 1];
    read_at(file, len - 1, &mut last)?;
    if last[0] != b'\n' {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the file does not end with a complete line",
        ));
    }
    let end = len - 1;
    let start = match rfind_newline(file, end, MAX_LINE as u64 + 1)? {
        Some(pos) => pos + 1,
        None if end <= MAX_LINE as u64 => 0,
        None => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the last line is too long to be an audit record",
            ));
        }
    };
    let mut line = vec![0u8; (end - start) as usize];
    read_at(file, start, &mut line)?;
    Ok(Some(line))
}

/// The position of the last `\n` before `end`, looking back at most `limit` bytes.
fn rfind_newline(file: &File, end: u64, limit: u64) -> std::io::Result<Option<u64>> {
    const CHUNK: u64 = 64 * 1024;
    let floor = end.saturating_sub(limit);
    let mut hi = end;
    let mut chunk = vec![0u8; CHUNK as usize];
    while hi > floor {
        let lo = hi.saturating_sub(CHUNK).max(floor);
        let part = &mut chunk[..(hi - lo) as usize];
        read_at(file, lo, part)?;
        if let Some(i) = part.iter().rposition(|&b| b == b'\n') {
            return Ok(Some(lo + i as u64));
        }
        hi = lo;
    }
    Ok(None)
}

fn read_at(file: &File, pos: u64, buf: &mut [u8]) -> std::io::Result<()> {
    let mut f = file;
    f.seek(SeekFrom::Start(pos))?;
    f.read_exact(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: u64, every: u64) -> Limits {
        Limits {
            max_file_bytes: max,
            checkpoint_every: every,
        }
    }

    fn day(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn lines(dir: &Path) -> Vec<(PathBuf, Record, String)> {
        let mut out = Vec::new();
        for f in trail_files(dir).unwrap() {
            for l in std::fs::read_to_string(&f).unwrap().lines() {
                out.push((f.clone(), serde_json::from_str(l).unwrap(), l.to_string()));
            }
        }
        out
    }

    fn assert_chain(dir: &Path) {
        let mut prev = ZERO_HASH.to_string();
        for (i, (f, r, l)) in lines(dir).iter().enumerate() {
            assert_eq!(r.seq, i as u64, "{}", f.display());
            assert_eq!(r.prev, prev, "{}: {l}", f.display());
            prev = line_hash(l.as_bytes());
        }
    }

    #[test]
    fn file_names_sort_by_day_then_number() {
        assert_eq!(
            parse_file_name("audit-20261101-0003.jsonl"),
            Some((String::new(), 20261101, 3))
        );
        assert_eq!(
            parse_file_name("audit-20261101-12345.jsonl"),
            Some((String::new(), 20261101, 12345))
        );
        assert_eq!(
            parse_file_name("audit-ward-a-20261101-0003.jsonl"),
            Some(("ward-a".to_string(), 20261101, 3))
        );
        assert_eq!(parse_file_name("audit-a.b-20261101-0003.jsonl"), None);
        assert_eq!(parse_file_name("audit-2026110-0003.jsonl"), None);
        assert_eq!(parse_file_name("audit-20261101-003.jsonl"), None);
        assert_eq!(parse_file_name("audit-20261101-0003.jsonl.bak"), None);
        let mut v: Vec<PathBuf> = [
            "audit-20261101-10000.jsonl",
            "audit-20261101-9999.jsonl",
            "audit-20261031-0002.jsonl",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        sort_trail_files(&mut v);
        assert_eq!(
            v,
            [
                "audit-20261031-0002.jsonl",
                "audit-20261101-9999.jsonl",
                "audit-20261101-10000.jsonl"
            ]
            .iter()
            .map(PathBuf::from)
            .collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_new_day_starts_a_new_file_and_the_chain_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Chain::open(dir.path(), limits(u64::MAX, 0)).unwrap();
        let t1 = day("2026-11-01T23:59:59Z");
        let t2 = day("2026-11-02T00:00:01Z");
        c.append(vec![Record::signin("login-ok")], false, t1)
            .unwrap();
        c.append(vec![Record::signin("logout")], false, t2).unwrap();
        let names: Vec<String> = trail_files(dir.path())
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["audit-20261101-0001.jsonl", "audit-20261102-0001.jsonl"]
        );
        let all = lines(dir.path());
        // key made, login, checkpoint closing the first day, logout
        let events: Vec<_> = all
            .iter()
            .map(|(_, r, _)| r.event.clone().unwrap())
            .collect();
        assert_eq!(
            events,
            ["audit-key-created", "login-ok", "checkpoint", "logout"]
        );
        assert_eq!(all[2].0, all[0].0);
        assert_chain(dir.path());
    }

    #[test]
    fn checkpoints_come_every_n_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Chain::open(dir.path(), limits(u64::MAX, 10)).unwrap();
        let now = Timestamp::now();
        let batch: Vec<Record> = (0..25).map(|_| Record::signin("login-ok")).collect();
        let seqs = c.append(batch, true, now).unwrap();
        assert_eq!(seqs.len(), 25);
        let all = lines(dir.path());
        let checkpoints: Vec<u64> = all
            .iter()
            .filter(|(_, r, _)| r.is_checkpoint())
            .map(|(_, r, _)| r.seq)
            .collect();
        // seq 0 is the key record, so ten records end at seq 10.
        assert_eq!(checkpoints, [10, 21, 28]);
        // Each one is reported with the hash of its line, for keeping off the machine.
        let reported = c.take_checkpoints();
        let expected: Vec<Checkpoint> = all
            .iter()
            .filter(|(_, r, _)| r.is_checkpoint())
            .map(|(_, r, l)| Checkpoint {
                seq: r.seq,
                hash: line_hash(l.as_bytes()),
            })
            .collect();
        assert_eq!(reported, expected);
        assert!(c.take_checkpoints().is_empty());
        // A second shutdown checkpoint is not written when nothing happened since.
        c.append(vec![], true, now).unwrap();
        assert_eq!(lines(dir.path()).len(), all.len());
        assert_chain(dir.path());
    }

    #[test]
    fn a_lost_key_is_not_made_anew_under_a_trail_unless_asked() {
        let dir = tempfile::tempdir().unwrap();
        let now = Timestamp::now();
        Chain::open(dir.path(), limits(u64::MAX, 0))
            .unwrap()
            .append(vec![Record::signin("a")], true, now)
            .unwrap();
        std::fs::remove_file(dir.path().join(key::PRIVATE_KEY_FILE)).unwrap();
        let before = lines(dir.path()).len();
        let mut c = Chain::open(dir.path(), limits(u64::MAX, 0)).unwrap();
        let err = c.append(vec![Record::signin("b")], false, now).unwrap_err();
        assert!(matches!(err, AuditError::Key(_)), "{err}");
        assert!(!dir.path().join(key::PRIVATE_KEY_FILE).exists());
        assert_eq!(lines(dir.path()).len(), before);
        c.allow_replacing_a_lost_key();
        c.append(vec![Record::signin("b")], true, now).unwrap();
        let all = lines(dir.path());
        assert_eq!(all[before].1.event.as_deref(), Some("audit-key-created"));
        assert_chain(dir.path());
    }

    #[test]
    fn a_torn_last_line_is_cut_and_noted() {
        let dir = tempfile::tempdir().unwrap();
        let now = Timestamp::now();
        {
            let mut c = Chain::open(dir.path(), limits(u64::MAX, 0)).unwrap();
            c.append(vec![Record::signin("a"), Record::signin("b")], false, now)
                .unwrap();
        }
        let f = trail_files(dir.path()).unwrap().pop().unwrap();
        let mut file = OpenOptions::new().append(true).open(&f).unwrap();
        file.write_all(br#"{"time":"2026-11-01T00:00:00.000Z","seq":3,"pr"#)
            .unwrap();
        let mut c = Chain::open(dir.path(), limits(u64::MAX, 0)).unwrap();
        let seqs = c.append(vec![Record::signin("c")], false, now).unwrap();
        assert_eq!(seqs, [4]);
        let all = lines(dir.path());
        assert_eq!(all[3].1.event.as_deref(), Some("recovered"));
        assert!(all[3].1.detail.as_ref().unwrap().contains("bytes"));
        assert_chain(dir.path());
    }

    #[test]
    fn two_appenders_in_one_directory_keep_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        let now = Timestamp::now();
        let mut a = Chain::open(dir.path(), limits(600, 0)).unwrap();
        let mut b = Chain::open(dir.path(), limits(600, 0)).unwrap();
        for i in 0..50 {
            let (w, name) = if i % 3 == 0 {
                (&mut a, "a")
            } else {
                (&mut b, "b")
            };
            w.append(vec![Record::signin(name)], false, now).unwrap();
        }
        assert!(trail_files(dir.path()).unwrap().len() > 3);
        let last = a.append(vec![Record::signin("a")], false, now).unwrap();
        assert_eq!(last[0], lines(dir.path()).len() as u64 - 1);
        assert_chain(dir.path());
    }

    #[test]
    fn kept_lines_include_what_another_writer_appended_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let now = Timestamp::now();
        let mut a = Chain::open(dir.path(), limits(u64::MAX, 0))
            .unwrap()
            .keep_lines(true);
        let mut b = Chain::open(dir.path(), limits(u64::MAX, 0)).unwrap();
        a.append(vec![Record::signin("a1")], false, now).unwrap();
        let first = a.take_lines();
        b.append(vec![Record::officer("officer", "b1")], false, now)
            .unwrap();
        a.append(vec![Record::signin("a2")], false, now).unwrap();
        assert!(b.take_lines().is_empty());
        let kept = String::from_utf8(a.take_lines()).unwrap();
        let all = lines(dir.path());
        let tail: Vec<&str> = kept.lines().collect();
        assert_eq!(tail.len(), 2, "{kept}");
        assert_eq!(
            tail,
            [all[all.len() - 2].2.as_str(), all[all.len() - 1].2.as_str()]
        );
        assert!(
            tail[0].contains("\"b1\"") && tail[1].contains("\"a2\""),
            "{kept}"
        );
        assert!(String::from_utf8(first).unwrap().contains("\"a1\""));
        assert_chain(dir.path());
    }

    #[test]
    fn a_kept_lock_shuts_others_out_until_released_and_they_are_chained_after() {
        let dir = tempfile::tempdir().unwrap();
        let now = Timestamp::now();
        let mut a = Chain::open(dir.path(), limits(u64::MAX, 0))
            .unwrap()
            .hold_lock(Duration::from_secs(3600));
        a.append(vec![Record::signin("a1")], false, now).unwrap();
        a.append(vec![Record::signin("a2")], false, now).unwrap();
        let other = File::open(dir.path().join(LOCK_FILE)).unwrap();
        assert!(
            other.try_lock().is_err(),
            "the lock is kept between batches"
        );
        a.release_lock_if_due();
        assert!(other.try_lock().is_err(), "not due for an hour");
        a.release_lock();
        other.try_lock().unwrap();
        other.unlock().unwrap();
        // Another process's record, then ours: the chain goes on through both.
        Chain::open(dir.path(), limits(u64::MAX, 0))
            .unwrap()
            .append(vec![Record::officer("officer", "b1")], false, now)
            .unwrap();
        // Just after a release the writer takes the lock per batch, so waiters get in.
        let seqs = a.append(vec![Record::signin("a3")], false, now).unwrap();
        assert_eq!(seqs, [4]);
        other.try_lock().unwrap();
        other.unlock().unwrap();
        assert_chain(dir.path());
    }

    #[test]
    fn a_kept_lock_is_released_once_due() {
        let dir = tempfile::tempdir().unwrap();
        let now = Timestamp::now();
        let mut a = Chain::open(dir.path(), limits(u64::MAX, 0))
            .unwrap()
            .hold_lock(Duration::from_millis(20));
        a.append(vec![Record::signin("a1")], false, now).unwrap();
        let other = File::open(dir.path().join(LOCK_FILE)).unwrap();
        assert!(other.try_lock().is_err());
        std::thread::sleep(Duration::from_millis(30));
        a.release_lock_if_due();
        other.try_lock().unwrap();
        other.unlock().unwrap();
        // Without `hold_lock` (the commands) the lock is never kept.
        let mut b = Chain::open(dir.path(), limits(u64::MAX, 0)).unwrap();
        b.append(vec![Record::officer("officer", "b1")], false, now)
            .unwrap();
        other.try_lock().unwrap();
    }

    #[test]
    fn an_empty_newest_file_continues_from_the_one_before() {
        let dir = tempfile::tempdir().unwrap();
        let now = day("2026-11-01T10:00:00Z");
        {
            let mut c = Chain::open(dir.path(), limits(u64::MAX, 0)).unwrap();
            c.append(vec![Record::signin("a")], false, now).unwrap();
        }
        File::create(dir.path().join("audit-20261101-0002.jsonl")).unwrap();
        let mut c = Chain::open(dir.path(), limits(u64::MAX, 0)).unwrap();
        assert_eq!(
            c.append(vec![Record::signin("b")], false, now).unwrap(),
            [2]
        );
        assert_chain(dir.path());
    }
}
