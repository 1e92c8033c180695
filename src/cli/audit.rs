//! `ward audit …`: check the audit trail (`verify`) and look things up in it (`search`).

use crate::audit::search::{self, Format, PathFilter, Query};
use crate::audit::verify::{self, Start};
use crate::audit::{self, Audit, AuditSettings, Kind, Record, key};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `ward audit …`.
#[derive(clap::Subcommand)]
pub enum AuditCommand {
    /// Check that no record was changed, removed or reordered; prints the first problem as
    /// FILE:LINE. Exit 0 when the trail is intact, 1 when not.
    Verify {
        /// The audit directory (default: [audit] dir in the policy file, else "audit").
        #[arg(long, conflicts_with = "files")]
        dir: Option<PathBuf>,
        /// The public key to check checkpoints with (default: audit-key.pub next to the files).
        /// Best: a copy kept away from the server.
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// A checkpoint hash kept off the machine (from the alert webhook, the log, or an
        /// earlier verify): fail unless the trail still holds that checkpoint. Repeatable.
        #[arg(long, value_name = "HASH")]
        expect_checkpoint: Vec<String>,
        /// Check only these files (in the order of their names); the first need not be the
        /// start of the trail.
        #[arg(value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Find records: who did what, when, from where. All the conditions given must hold.
    Search {
        /// The audit directory (default: [audit] dir in the policy file, else "audit").
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Records about or by this account.
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        /// From: how long ago (7d, 12h, 30m), a day (2026-11-01, UTC) or a time (RFC 3339).
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
        /// Until: as --since; a day means up to its end.
        #[arg(long, value_name = "WHEN")]
        until: Option<String>,
        /// Paths matching a route pattern, such as /patients/*/chart or /billing/**.
        #[arg(long, value_name = "PATTERN")]
        path: Option<String>,
        /// Only this decision: allow, deny, login, …
        #[arg(long)]
        decision: Option<String>,
        /// Only this kind of record.
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
        /// Only this event: login-ok, login-failed, user-added, break-glass, …
        #[arg(long)]
        event: Option<String>,
        /// Output: an aligned table, JSON lines, or CSV for a spreadsheet.
        #[arg(long, value_enum, default_value = "table")]
        format: FormatArg,
    },
    /// Make a new checkpoint signing key when the old one (.audit-key) is lost for good.
    /// ward refuses to start without it; the new key is recorded in the trail, and the old
    /// public key stays in audit-key.pub for the checkpoints it signed.
    NewKey {
        /// The audit directory (default: [audit] dir in the policy file, else "audit").
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Test aid: write records as fast as possible, printing each seq once it is written.
    #[command(hide = true)]
    Soak {
        /// The audit directory.
        #[arg(long)]
        dir: PathBuf,
        /// How many records.
        #[arg(long)]
        records: u64,
        /// How many writers at once.
        #[arg(long, default_value_t = 32)]
        concurrency: u64,
        /// Rotate files at this size.
        #[arg(long)]
        max_file_bytes: Option<u64>,
    },
}

/// `--kind`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum KindArg {
    /// Requests and access decisions.
    Access,
    /// Sign-in, MFA, sign-out, lockouts.
    Signin,
    /// The officer's actions.
    Officer,
    /// ward itself.
    System,
}

impl From<KindArg> for Kind {
    fn from(k: KindArg) -> Kind {
        match k {
            KindArg::Access => Kind::Access,
            KindArg::Signin => Kind::Signin,
            KindArg::Officer => Kind::Officer,
            KindArg::System => Kind::System,
        }
    }
}

/// `--format`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum FormatArg {
    /// Aligned columns.
    Table,
    /// One JSON record per line.
    Json,
    /// CSV with a header row.
    Csv,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Table => Format::Table,
            FormatArg::Json => Format::Json,
            FormatArg::Csv => Format::Csv,
        }
    }
}

/// Runs `ward audit …`; `config` is the policy file (for `[audit] dir`).
pub fn run(config: &Path, cmd: AuditCommand) -> ExitCode {
    match cmd {
        AuditCommand::Verify {
            dir,
            key,
            expect_checkpoint,
            files,
        } => {
            let dir = if files.is_empty() {
                match audit_dir(config, dir) {
                    Ok(d) => Some(d),
                    Err(e) => return fail("verify", &e.to_string()),
                }
            } else {
                None
            };
            run_verify(dir, key, &expect_checkpoint, files)
        }
        AuditCommand::NewKey { dir } => match audit_dir(config, dir) {
            Ok(d) => new_key(&d),
            Err(e) => fail("new-key", &e.to_string()),
        },
        AuditCommand::Search {
            dir,
            user,
            since,
            until,
            path,
            decision,
            kind,
            event,
            format,
        } => {
            let dir = match audit_dir(config, dir) {
                Ok(d) => d,
                Err(e) => return fail("search", &e.to_string()),
            };
            let now = crate::clock::now();
            let mut query = Query {
                user,
                decision,
                event,
                kind: kind.map(Into::into),
                ..Query::default()
            };
            if let Some(s) = since {
                match search::parse_when(&s, now, false) {
                    Ok(t) => query.since = Some(t),
                    Err(e) => return fail("search", &format!("--since: {e}")),
                }
            }
            if let Some(u) = until {
                match search::parse_when(&u, now, true) {
                    Ok(t) => query.until = Some(t),
                    Err(e) => return fail("search", &format!("--until: {e}")),
                }
            }
            if let Some(p) = path {
                match PathFilter::parse(&p) {
                    Ok(f) => query.path = Some(f),
                    Err(e) => return fail("search", &format!("--path {p}: {e}")),
                }
            }
            run_search(&dir, &query, format.into())
        }
        AuditCommand::Soak {
            dir,
            records,
            concurrency,
            max_file_bytes,
        } => soak(&dir, records, concurrency, max_file_bytes),
    }
}

fn fail(what: &str, message: &str) -> ExitCode {
    eprintln!("ward audit {what}: {message}");
    ExitCode::FAILURE
}

/// Why the audit directory could not be read from the policy file.
#[derive(Debug, thiserror::Error)]
pub enum AuditDirError {
    /// The policy file exists but cannot be read.
    #[error("cannot read {}: {source}", .file.display())]
    Read {
        /// The policy file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The policy file is not TOML.
    #[error(
        "cannot read [audit] dir from {} ({source}); give the directory with --dir",
        .file.display()
    )]
    Parse {
        /// The policy file.
        file: PathBuf,
        /// Why.
        source: toml::de::Error,
    },
    /// `[audit] dir` is not a string.
    #[error("{}: [audit] dir must be a folder name in quotes", .0.display())]
    NotText(PathBuf),
}

/// `--dir`, else `[audit] dir` from the policy file, else `audit`.
pub fn audit_dir(config: &Path, dir: Option<PathBuf>) -> Result<PathBuf, AuditDirError> {
    if let Some(d) = dir {
        return Ok(d);
    }
    let text = match std::fs::read_to_string(config) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(AuditSettings::default().dir);
        }
        Err(source) => {
            return Err(AuditDirError::Read {
                file: config.to_path_buf(),
                source,
            });
        }
    };
    let table: toml::Table = text.parse().map_err(|source| AuditDirError::Parse {
        file: config.to_path_buf(),
        source,
    })?;
    match table.get("audit").and_then(|a| a.get("dir")) {
        None => Ok(AuditSettings::default().dir),
        Some(toml::Value::String(s)) => Ok(PathBuf::from(s)),
        Some(_) => Err(AuditDirError::NotText(config.to_path_buf())),
    }
}

fn new_key(dir: &Path) -> ExitCode {
    let r = Record::officer(super::cli_actor(), "audit-key-replaced")
        .detail("the checkpoint signing key was missing; a new one was made".to_string());
    match audit::replace_lost_key(dir, r) {
        Ok(true) => {
            println!(
                "Made a new checkpoint signing key in {}. Its public key is added to {}: \
                 give a copy to whoever keeps the old one.",
                dir.display(),
                key::PUBLIC_KEY_FILE
            );
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!(
                "The signing key {} is there; nothing was changed.",
                dir.join(key::PRIVATE_KEY_FILE).display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail("new-key", &e.to_string()),
    }
}

fn run_verify(
    dir: Option<PathBuf>,
    key_file: Option<PathBuf>,
    expected: &[String],
    mut files: Vec<PathBuf>,
) -> ExitCode {
    let start = match &dir {
        Some(d) => {
            files = match audit::trail_files(d) {
                Ok(f) => f,
                Err(e) => {
                    return fail("verify", &format!("cannot read {}: {e}", d.display()));
                }
            };
            if files.is_empty() {
                return fail(
                    "verify",
                    &format!(
                        "{}: there are no audit files here (audit-YYYYMMDD-NNNN.jsonl)",
                        d.display()
                    ),
                );
            }
            Start::Beginning
        }
        None => {
            audit::sort_trail_files(&mut files);
            Start::Anywhere
        }
    };
    let beside_the_trail = key_file.is_none();
    let key_file = key_file.unwrap_or_else(|| {
        let base = match &dir {
            Some(d) => d.clone(),
            None => files
                .first()
                .and_then(|f| f.parent())
                .map(Path::to_path_buf)
                .unwrap_or_default(),
        };
        base.join(key::PUBLIC_KEY_FILE)
    });
    let keys = verify::load_keys(&key_file);
    // Each instance's files are a chain of their own, checked on its own.
    let mut verified = Vec::new();
    for (instance, run) in audit::chains(&files) {
        match verify::verify_files(&run, &keys, start) {
            Ok(v) => verified.push((instance, v)),
            Err(p) => {
                eprintln!("{p}");
                eprintln!(
                    "ward audit verify: the audit trail is NOT intact (the first problem is above)"
                );
                return ExitCode::FAILURE;
            }
        }
    }
    let missing: Vec<&String> = expected
        .iter()
        .filter(|h| {
            verified
                .iter()
                .all(|(_, v)| v.checkpoint_with_hash(h).is_none())
        })
        .collect();
    if !missing.is_empty() {
        for h in &missing {
            eprintln!(
                "checkpoint {h} is not in the trail: records were removed or rewritten \
                 after it was made (the trail was cut back, or replaced)"
            );
        }
        eprintln!("ward audit verify: the audit trail is NOT the one whose checkpoints you kept");
        return ExitCode::FAILURE;
    }
    for (instance, v) in &verified {
        print_verified(instance, v, expected);
    }
    if verified.iter().any(|(_, v)| v.checkpoints > 0) {
        if beside_the_trail {
            println!(
                "checkpoints checked with {}, the key beside the trail: this proves \
                 the trail intact only against someone who could not also replace that \
                 file; give --key a copy kept elsewhere",
                key_file.display()
            );
        } else {
            println!("checkpoints checked with the key in {}", key_file.display());
        }
    }
    ExitCode::SUCCESS
}

/// What one chain's verification covered (`instance` empty: the one unnamed chain).
fn print_verified(instance: &str, v: &verify::Verified, expected: &[String]) {
    let whose = match instance {
        "" => String::new(),
        name => format!("instance {name}: "),
    };
    let range = match (v.first_seq, v.last_seq) {
        (Some(a), Some(b)) => format!(" (records {a} to {b})"),
        _ => String::new(),
    };
    let signed = match v.last_checkpoint {
        Some(c) if Some(c) == v.last_seq => {
            format!(
                "; {} signed checkpoints, the last one ends the trail",
                v.checkpoints
            )
        }
        Some(c) => format!(
            "; {} signed checkpoints, the last at record {c} (later records are chained \
             but not yet signed)",
            v.checkpoints
        ),
        None => "; no signed checkpoint yet".into(),
    };
    println!(
        "{whose}verified {} record{} in {} file{}{range}{signed}",
        v.records,
        if v.records == 1 { "" } else { "s" },
        v.files,
        if v.files == 1 { "" } else { "s" },
    );
    for h in expected {
        if let Some(seq) = v.checkpoint_with_hash(h) {
            println!(
                "{whose}found the kept checkpoint {} (record {seq})",
                h.trim()
            );
        }
    }
    if let Some((hash, seq)) = v.checkpoint_hashes.last() {
        println!(
            "{whose}the last checkpoint (record {seq}) has the hash {hash}; keep it off this \
             machine to check later with --expect-checkpoint"
        );
    }
}

fn run_search(dir: &Path, query: &Query, format: Format) -> ExitCode {
    let files = match audit::trail_files(dir) {
        Ok(f) => f,
        Err(e) => return fail("search", &format!("cannot read {}: {e}", dir.display())),
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match search::search(&files, query, format, &mut out) {
        Ok(stats) => {
            drop(out);
            if let Some(first) = &stats.first_unreadable {
                eprintln!(
                    "ward audit search: {} line{} could not be read and {} skipped (the first at \
                     {first}); run ward audit verify",
                    stats.unreadable,
                    if stats.unreadable == 1 { "" } else { "s" },
                    if stats.unreadable == 1 { "was" } else { "were" },
                );
            }
            if format == Format::Table {
                eprintln!(
                    "{} record{} matched ({} file{} read)",
                    stats.matched,
                    if stats.matched == 1 { "" } else { "s" },
                    stats.files,
                    if stats.files == 1 { "" } else { "s" },
                );
            }
            ExitCode::SUCCESS
        }
        // `ward audit search … | head` closes the pipe early: that is not a failure.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => fail("search", &e.to_string()),
    }
}

fn soak(dir: &Path, records: u64, concurrency: u64, max_file_bytes: Option<u64>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail("soak", &e.to_string()),
    };
    let mut settings = AuditSettings::in_dir(dir);
    if let Some(m) = max_file_bytes {
        settings.max_file_bytes = m;
    }
    let audit = match Audit::open(&settings) {
        Ok(a) => a,
        Err(e) => return fail("soak", &e.to_string()),
    };
    let result: Result<u64, String> = runtime.block_on(async move {
        let workers = concurrency.clamp(1, 1024);
        let mut tasks = Vec::new();
        for w in 0..workers {
            let audit = audit.clone();
            let share = records / workers + u64::from(w < records % workers);
            tasks.push(tokio::spawn(async move {
                for i in 0..share {
                    let r =
                        Record::access("GET", "ehr.localhost", &format!("/soak/{w}/{i}"), "allow")
                            .user(format!("soak{w}"))
                            .status(200);
                    let seq = audit.record_seq(r).await.map_err(|e| e.to_string())?;
                    let mut out = std::io::stdout().lock();
                    if writeln!(out, "{seq}").and_then(|_| out.flush()).is_err() {
                        return Err("stdout closed".to_string());
                    }
                }
                Ok::<u64, String>(share)
            }));
        }
        let mut written = 0;
        for t in tasks {
            written += t.await.map_err(|e| e.to_string())??;
        }
        audit.shutdown().await;
        Ok(written)
    });
    match result {
        Ok(n) => {
            eprintln!("soak: wrote {n} records");
            ExitCode::SUCCESS
        }
        Err(e) => fail("soak", &e),
    }
}
