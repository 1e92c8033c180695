//! `ward audit verify`: reads the trail's files in order and reports the first record that
//! is unreadable, missing, out of order, changed, or a checkpoint whose signature fails.

use super::chain::{MAX_LINE, ZERO_HASH, line_hash, trail_files};
use super::key;
use super::record::Record;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// What a successful verification covered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verified {
    /// Records read.
    pub records: u64,
    /// Files read.
    pub files: usize,
    /// The first record's seq.
    pub first_seq: Option<u64>,
    /// The last record's seq.
    pub last_seq: Option<u64>,
    /// Checkpoints whose signatures were checked.
    pub checkpoints: u64,
    /// The seq of the last checkpoint.
    pub last_checkpoint: Option<u64>,
    /// Every checkpoint checked: the hash of its line and its seq, oldest first.
    pub checkpoint_hashes: Vec<(String, u64)>,
}

impl Verified {
    /// The seq of the checkpoint whose line has `hash`, if the files hold it.
    pub fn checkpoint_with_hash(&self, hash: &str) -> Option<u64> {
        let hash = hash.trim().to_ascii_lowercase();
        self.checkpoint_hashes
            .iter()
            .find(|(h, _)| *h == hash)
            .map(|(_, seq)| *seq)
    }
}

/// The first thing wrong, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file.
    pub file: PathBuf,
    /// The line (from 1), or 0 for the file as a whole.
    pub line: u64,
    /// What is wrong, in words.
    pub what: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.what)
        } else {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.what)
        }
    }
}

/// Where the files must start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// At record 0 (a whole directory).
    Beginning,
    /// Anywhere (files picked out of a trail); the first record's `prev` cannot be checked.
    Anywhere,
}

/// The public keys checkpoints are checked with, or why there are none.
pub type Keys = Result<Vec<[u8; 32]>, String>;

/// Reads the public keys from `path`, in words when that fails.
pub fn load_keys(path: &Path) -> Keys {
    match key::read_public_keys(path) {
        Ok(k) => Ok(k),
        Err(e) if !path.exists() => Err(format!(
            "there is no public key to check it with ({} is missing)",
            e.path.display()
        )),
        Err(e) => Err(format!("the public key cannot be read ({e})")),
    }
}

/// Verifies every trail file in `dir`, from record 0, with `dir/audit-key.pub`.
pub fn verify_dir(dir: &Path) -> Result<Verified, Problem> {
    let files = trail_files(dir).map_err(|e| Problem {
        file: dir.to_path_buf(),
        line: 0,
        what: format!("cannot read the audit directory: {e}"),
    })?;
    if files.is_empty() {
        return Err(Problem {
            file: dir.to_path_buf(),
            line: 0,
            what: "there are no audit files here (audit-YYYYMMDD-NNNN.jsonl)".into(),
        });
    }
    let keys = load_keys(&dir.join(key::PUBLIC_KEY_FILE));
    // Each instance's chain on its own; what they covered, together.
    let mut all = Verified::default();
    for (_, run) in super::chain::chains(&files) {
        let v = verify_files(&run, &keys, Start::Beginning)?;
        all.records += v.records;
        all.files += v.files;
        all.first_seq = all.first_seq.or(v.first_seq);
        all.last_seq = v.last_seq;
        all.checkpoints += v.checkpoints;
        all.last_checkpoint = v.last_checkpoint;
        all.checkpoint_hashes.extend(v.checkpoint_hashes);
    }
    Ok(all)
}

/// One line read from the trail.
struct Line {
    file: usize,
    number: u64,
    bytes: Vec<u8>,
    /// Ended with a newline.
    complete: bool,
}

/// Reads lines across files, one ahead.
struct Reader<'a> {
    files: &'a [PathBuf],
    at: usize,
    current: Option<BufReader<File>>,
    number: u64,
    peeked: Option<Option<Line>>,
}

impl<'a> Reader<'a> {
    fn new(files: &'a [PathBuf]) -> Reader<'a> {
        Reader {
            files,
            at: 0,
            current: None,
            number: 0,
            peeked: None,
        }
    }

    fn next(&mut self) -> Result<Option<Line>, Problem> {
        match self.peeked.take() {
            Some(l) => Ok(l),
            None => self.read(),
        }
    }

    fn peek(&mut self) -> Result<Option<&Line>, Problem> {
        if self.peeked.is_none() {
            let l = self.read()?;
            self.peeked = Some(l);
        }
        Ok(self.peeked.as_ref().and_then(|l| l.as_ref()))
    }

    fn read(&mut self) -> Result<Option<Line>, Problem> {
        // Bounded by the number of files: each turn either returns or moves to the next.
        while self.at < self.files.len() {
            let path = &self.files[self.at];
            if self.current.is_none() {
                let f = File::open(path).map_err(|e| Problem {
                    file: path.clone(),
                    line: 0,
                    what: format!("cannot be read: {e}"),
                })?;
                self.current = Some(BufReader::with_capacity(256 * 1024, f));
                self.number = 0;
            }
            let Some(reader) = self.current.as_mut() else {
                continue;
            };
            let mut bytes = Vec::with_capacity(512);
            let n = reader
                .by_ref()
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut bytes)
                .map_err(|e| Problem {
                    file: path.clone(),
                    line: self.number + 1,
                    what: format!("cannot be read: {e}"),
                })?;
            if n == 0 {
                self.current = None;
                self.at += 1;
                continue;
            }
            self.number += 1;
            let complete = bytes.last() == Some(&b'\n');
            if complete {
                bytes.pop();
            } else if bytes.len() > MAX_LINE {
                return Err(Problem {
                    file: path.clone(),
                    line: self.number,
                    what: "this line is too long to be an audit record".into(),
                });
            }
            return Ok(Some(Line {
                file: self.at,
                number: self.number,
                bytes,
                complete,
            }));
        }
        Ok(None)
    }
}

/// The seq of a line, if it has one (for looking one line ahead).
fn seq_of(bytes: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Seq {
        seq: u64,
    }
    serde_json::from_slice::<Seq>(bytes).ok().map(|s| s.seq)
}

/// Verifies `files` in the order given (sort them with `sort_trail_files` first).
pub fn verify_files(files: &[PathBuf], keys: &Keys, start: Start) -> Result<Verified, Problem> {
    let mut reader = Reader::new(files);
    let mut done = Verified {
        files: files.len(),
        ..Verified::default()
    };
    // The previous record: seq, hash of its line, file index, line number.
    let mut prev: Option<(u64, String, usize, u64)> = None;
    while let Some(line) = reader.next()? {
        let file = &files[line.file];
        let problem = |what: String| Problem {
            file: file.clone(),
            line: line.number,
            what,
        };
        if !line.complete {
            let last = reader.peek()?.is_none();
            return Err(problem(if last {
                "the last record is incomplete: ward stopped while writing it (ward removes \
                 it, and notes that it did, when it next starts)"
                    .into()
            } else {
                "this record is incomplete (the file ends in the middle of it)".into()
            }));
        }
        let r: Record = match serde_json::from_slice(&line.bytes) {
            Ok(r) => r,
            Err(e) => {
                return Err(problem(format!(
                    "this line is not a readable audit record ({e})"
                )));
            }
        };
        if r.time.parse::<jiff::Timestamp>().is_err() {
            return Err(problem(format!(
                "record {} has a time that is not a valid time",
                r.seq
            )));
        }
        let seq = r.seq;
        match &prev {
            None => {
                if seq == 0 && r.prev != ZERO_HASH {
                    return Err(problem(
                        "record 0 starts the trail, but its prev is not 64 zeros: it was changed"
                            .into(),
                    ));
                }
                if start == Start::Beginning && seq != 0 {
                    return Err(problem(if seq == 1 {
                        "record 0 is missing: the trail does not start at its beginning".into()
                    } else {
                        format!(
                            "records 0 to {} are missing: the trail does not start at its \
                             beginning",
                            seq - 1
                        )
                    }));
                }
            }
            Some((p, hash, pfile, pline)) => {
                let p = *p;
                if seq == p + 1 {
                    if r.prev != *hash {
                        return Err(problem(format!(
                            "record {seq} was changed or its predecessor was (record {p}, at {}:{pline})",
                            files[*pfile].display()
                        )));
                    }
                } else if seq == p {
                    return Err(problem(format!(
                        "record {seq} appears twice (also at {}:{pline})",
                        files[*pfile].display()
                    )));
                } else if seq < p {
                    return Err(problem(format!(
                        "records are out of order: record {seq} comes after record {p}"
                    )));
                } else {
                    let next = reader.peek()?.and_then(|l| seq_of(&l.bytes));
                    if let Some(n) = next.filter(|n| *n < seq) {
                        return Err(problem(format!(
                            "records are out of order: record {seq} comes before record {n}"
                        )));
                    }
                    return Err(problem(if seq == p + 2 {
                        format!("record {} is missing (the next one is {seq})", p + 1)
                    } else {
                        format!(
                            "records {} to {} are missing (the next one is {seq})",
                            p + 1,
                            seq - 1
                        )
                    }));
                }
            }
        }
        if r.is_checkpoint() {
            let keys = keys
                .as_ref()
                .map_err(|why| problem(format!("checkpoint {seq} cannot be checked: {why}")))?;
            let signature = r.detail.as_deref().unwrap_or("");
            if !key::verify(keys, &key::checkpoint_message(seq, &r.prev), signature) {
                return Err(problem(format!(
                    "checkpoint signature does not match (record {seq}): the records before it \
                     were changed, or the checkpoint was"
                )));
            }
            done.checkpoints += 1;
            done.last_checkpoint = Some(seq);
        }
        let hash = line_hash(&line.bytes);
        if r.is_checkpoint() {
            done.checkpoint_hashes.push((hash.clone(), seq));
        }
        done.records += 1;
        done.first_seq.get_or_insert(seq);
        done.last_seq = Some(seq);
        prev = Some((seq, hash, line.file, line.number));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::super::{Record, append_blocking};
    use super::*;

    fn trail(n: usize) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..n {
            append_blocking(
                dir.path(),
                Record::access("GET", "ehr", &format!("/patients/{i}"), "allow"),
            )
            .unwrap();
        }
        let f = trail_files(dir.path()).unwrap().remove(0);
        (dir, f)
    }

    fn edit(f: &Path, change: impl FnOnce(&mut Vec<String>)) {
        let mut lines: Vec<String> = std::fs::read_to_string(f)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        change(&mut lines);
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::write(f, text).unwrap();
    }

    fn problem(dir: &Path) -> String {
        let p = verify_dir(dir).unwrap_err();
        let name = p.file.file_name().unwrap().to_string_lossy().into_owned();
        format!("{name}:{}: {}", p.line, p.what)
    }

    #[test]
    fn a_clean_trail_verifies() {
        let (dir, _) = trail(5);
        let v = verify_dir(dir.path()).unwrap();
        assert_eq!(v.records, 6);
        assert_eq!(v.last_seq, Some(5));
    }

    #[test]
    fn an_edit_is_reported_at_the_next_record() {
        let (dir, f) = trail(5);
        edit(&f, |l| l[2] = l[2].replace("/patients/1", "/patients/9"));
        let p = problem(dir.path());
        assert!(
            p.contains(":4: record 3 was changed or its predecessor was (record 2, at"),
            "{p}"
        );
    }

    #[test]
    fn missing_swapped_and_duplicated_records_are_named() {
        let (dir, f) = trail(6);
        edit(&f, |l| {
            l.remove(3);
        });
        assert!(
            problem(dir.path()).ends_with(":4: record 3 is missing (the next one is 4)"),
            "{}",
            problem(dir.path())
        );
        let (dir, f) = trail(6);
        edit(&f, |l| l.swap(2, 3));
        assert!(
            problem(dir.path())
                .ends_with(":3: records are out of order: record 3 comes before record 2"),
            "{}",
            problem(dir.path())
        );
        let (dir, f) = trail(6);
        edit(&f, |l| {
            let last = l.len() - 1;
            l.swap(1, last)
        });
        assert!(
            problem(dir.path()).contains(":2: records are out of order"),
            "{}",
            problem(dir.path())
        );
        let (dir, f) = trail(6);
        edit(&f, |l| {
            let copy = l[2].clone();
            l.insert(3, copy)
        });
        assert!(
            problem(dir.path()).contains(":4: record 2 appears twice"),
            "{}",
            problem(dir.path())
        );
        let (dir, f) = trail(6);
        edit(&f, |l| {
            l.drain(0..2);
        });
        assert!(
            problem(dir.path()).ends_with(
                ":1: records 0 to 1 are missing: the trail does not start at its beginning"
            ),
            "{}",
            problem(dir.path())
        );
    }

    #[test]
    fn unreadable_and_torn_lines_are_reported() {
        let (dir, f) = trail(3);
        edit(&f, |l| l[1] = "{not json".into());
        assert!(
            problem(dir.path()).contains(":2: this line is not a readable audit record"),
            "{}",
            problem(dir.path())
        );
        let (dir, f) = trail(3);
        let mut text = std::fs::read(&f).unwrap();
        text.extend_from_slice(br#"{"time":"#);
        std::fs::write(&f, text).unwrap();
        assert!(
            problem(dir.path()).contains(":5: the last record is incomplete"),
            "{}",
            problem(dir.path())
        );
    }

    #[test]
    fn a_checkpoint_without_a_key_cannot_be_checked() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = super::super::chain::Chain::open(
            dir.path(),
            super::super::chain::Limits {
                max_file_bytes: u64::MAX,
                checkpoint_every: 0,
            },
        )
        .unwrap();
        c.append(vec![Record::signin("a")], true, jiff::Timestamp::now())
            .unwrap();
        assert!(verify_dir(dir.path()).is_ok());
        std::fs::remove_file(dir.path().join(key::PUBLIC_KEY_FILE)).unwrap();
        assert!(
            problem(dir.path())
                .contains(":3: checkpoint 2 cannot be checked: there is no public key"),
            "{}",
            problem(dir.path())
        );
    }
}
