//! `ward report …`: the officer's reports; today `access`, the access review printed or written
//! as HTML or CSV (the model and its rendering are in `users::review`).

use crate::config::diag::Diagnostics;
use crate::config::{self, Certs};
use crate::users::attestations::AttestationStore;
use crate::users::review::{DEFAULT_IDLE_DAYS, build};
use crate::users::{SecretStore, StoreError, directory};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `ward report …`.
#[derive(clap::Subcommand)]
pub enum ReportCommand {
    /// Every account with status, roles, organization, sponsor, MFA, last sign-in and
    /// activity, end date, and flags for what to look at (for the periodic risk assessment).
    Access {
        /// Printable HTML, or CSV for a spreadsheet.
        #[arg(long, value_enum, default_value = "html")]
        format: ReportFormat,
        /// Flag accounts unused for more than this many days.
        #[arg(long, default_value_t = DEFAULT_IDLE_DAYS, value_name = "N")]
        idle_days: u32,
        /// Write the report to this file (readable by you alone) instead of printing it.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

/// `--format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// A printable web page.
    Html,
    /// CSV with a header row.
    Csv,
}

/// Why `ward report access` made no report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The policy file does not load.
    #[error(
        "the policy {} has problems; fix them first (ward check --config {}):\n{diag}",
        .file.display(),
        .file.display()
    )]
    Policy {
        /// The policy file as given.
        file: PathBuf,
        /// Its problems.
        diag: Diagnostics,
    },
    /// The accounts file does not load.
    #[error("the accounts file has problems; fix them first:\n{0}")]
    Accounts(Diagnostics),
    /// The secret store (sign-in times, MFA) cannot be read.
    #[error(transparent)]
    Secrets(#[from] StoreError),
    /// The `--output` file cannot be written.
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Standard output cannot be written.
    #[error("cannot print the report: {0}")]
    Print(std::io::Error),
}

/// Runs `ward report …` against the policy at `config`.
pub fn run(config: &Path, cmd: ReportCommand) -> ExitCode {
    match cmd {
        ReportCommand::Access {
            format,
            idle_days,
            output,
        } => match access(config, format, idle_days, output.as_deref()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ward report access: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn access(
    config: &Path,
    format: ReportFormat,
    idle_days: u32,
    output: Option<&Path>,
) -> Result<(), ReportError> {
    let policy = config::load(config, Certs::Skip)
        .map_err(|diag| ReportError::Policy {
            file: config.to_path_buf(),
            diag,
        })?
        .policy;
    let dir = directory::load(&policy.storage.users).map_err(ReportError::Accounts)?;
    let secrets = SecretStore::open(&policy.storage.state).and_then(|s| s.read())?;
    let now = crate::clock::unix_now();
    let signed = AttestationStore::open(&policy.storage.state).and_then(|s| s.read())?;
    let review = build(&policy, &dir, &secrets, &HashMap::new(), now, idle_days).with_attestations(
        &signed,
        policy.review.period.as_secs() as i64,
        &dir,
    );
    let text = match format {
        ReportFormat::Html => review.standalone_html(crate::users::review::Styles::Inline),
        ReportFormat::Csv => review.csv(),
    };
    match output {
        Some(path) => {
            crate::fsutil::write_private(path, text.as_bytes()).map_err(|source| {
                ReportError::Write {
                    path: path.to_path_buf(),
                    source,
                }
            })?;
            eprintln!(
                "Wrote the access review of {} accounts to {}.",
                review.rows.len(),
                path.display()
            );
        }
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .map_err(ReportError::Print)?;
        }
    }
    for w in &review.warnings {
        eprintln!("warning: {w}");
    }
    Ok(())
}
