//! The `ward` command line: parses the arguments and hands each command to `ward::cli`.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use ward::cli;
use ward::config::Overrides;
use ward::policy::LogFormat;

#[derive(Parser)]
#[command(
    name = "ward",
    version,
    about = "An authenticating reverse proxy that enforces a medical practice's access policy"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy with a policy file.
    Serve {
        /// The policy file.
        #[arg(long, default_value = "config/ward.toml")]
        config: PathBuf,
        /// Log format, overriding the policy's [log] format.
        #[arg(long, value_enum)]
        log_format: Option<Format>,
    },
    /// Run the whole thing on this machine: a sample EHR with ward in front of it.
    Demo {
        /// The demo policy file (written with the built-in demo policy if absent).
        #[arg(long, default_value = "config/demo.toml")]
        config: PathBuf,
        /// Where ward listens, overriding the demo policy (e.g. 127.0.0.1:0 for any free port).
        #[arg(long)]
        listen: Option<String>,
        /// Where the sample EHR listens, overriding the demo policy's upstream.
        #[arg(long)]
        ehr_listen: Option<String>,
        /// Log format.
        #[arg(long, value_enum)]
        log_format: Option<Format>,
    },
    /// Run only the sample EHR that `ward demo` puts behind ward (plain HTTP, for tests and trials).
    SampleEhr {
        /// Where it listens (loopback only is wise: it has no protection of its own).
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: String,
    },
    /// Show what ward would decide for a request, and why, without sending it.
    Explain {
        /// The policy file.
        #[arg(long, default_value = "config/ward.toml")]
        config: PathBuf,
        /// The signed-in person (omit for nobody).
        #[arg(long)]
        user: Option<String>,
        /// The client's address.
        #[arg(long)]
        ip: std::net::IpAddr,
        /// As if from an enrolled device (a client certificate from the device CA).
        #[arg(long)]
        device: bool,
        /// As if from an enrolled device whose certificate names this person
        /// (or `role:NAME`); may be given more than once.
        #[arg(long = "device-of", value_name = "PERSON")]
        device_of: Vec<String>,
        /// The method, such as GET.
        method: String,
        /// The URL (https://host/path) or a path.
        url: String,
    },
    /// Grant time-limited exceptions: export, break-glass; list and revoke them.
    Grant {
        /// The policy file.
        #[arg(long, default_value = "config/ward.toml", global = true)]
        config: PathBuf,
        #[command(subcommand)]
        action: cli::grant::GrantCommand,
    },
    /// Access requests people made from a refused page: list, approve (a grant), deny.
    Request {
        /// The policy file.
        #[arg(long, default_value = "config/ward.toml", global = true)]
        config: PathBuf,
        #[command(subcommand)]
        action: cli::request::RequestCommand,
    },
    /// Print the current code for an authenticator key (for trying the demo without a phone).
    TotpCode {
        /// The key, as shown when the account was set up.
        #[arg(long)]
        key: String,
    },
    /// Check a policy file; prints FILE:LINE:COL for every problem. Exit 0 valid, 1 not.
    Check {
        /// The policy file.
        #[arg(long, default_value = "config/ward.toml")]
        config: PathBuf,
        /// Instead: who gains and who loses access from policy OLD to NEW (exit 0 when no one).
        #[arg(long, num_args = 2, value_names = ["OLD", "NEW"])]
        diff: Option<Vec<PathBuf>>,
    },
    /// Write JSON Schemas of ward.toml and users.toml, for editors that complete and check TOML.
    Schema {
        /// The folder to write ward.schema.json and users.schema.json into.
        #[arg(long, default_value = "config")]
        dir: PathBuf,
    },
    /// Manage accounts: add, list, show, set-roles, deactivate, reactivate, terminate, reset-password, reset-mfa, expire, unlock
    User {
        /// The policy file (may be given before or after the action).
        #[arg(long, default_value = "config/ward.toml", global = true)]
        config: PathBuf,
        #[command(subcommand)]
        action: cli::user::UserCommand,
    },
    /// Reports for the officer: `access` (the access review: every account, what it may do, what to look at).
    Report {
        /// The policy file (may be given before or after the report's name).
        #[arg(long, default_value = "config/ward.toml", global = true)]
        config: PathBuf,
        #[command(subcommand)]
        action: cli::report::ReportCommand,
    },
    /// Check the audit trail (verify) and look things up in it (search).
    Audit {
        /// The policy file, for [audit] dir (may be given before or after the action).
        #[arg(long, default_value = "config/ward.toml", global = true)]
        config: PathBuf,
        #[command(subcommand)]
        action: cli::audit::AuditCommand,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Human,
    Json,
}

impl From<Format> for LogFormat {
    fn from(f: Format) -> LogFormat {
        match f {
            Format::Human => LogFormat::Human,
            Format::Json => LogFormat::Json,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check {
            diff: Some(files), ..
        } if files.len() == 2 => cli::check::diff(&files[0], &files[1]),
        Command::Check { config, .. } => cli::check::run(&config),
        Command::SampleEhr { listen } => cli::demo::sample_ehr(&listen),
        Command::Explain {
            config,
            user,
            ip,
            device,
            device_of,
            method,
            url,
        } => cli::explain::run(&cli::explain::Question {
            config: &config,
            user: user.as_deref(),
            ip,
            method: &method,
            url: &url,
            device: device || !device_of.is_empty(),
            device_of,
        }),
        Command::Grant { config, action } => cli::grant::run(&config, action),
        Command::Request { config, action } => cli::request::run(&config, action),
        Command::TotpCode { key } => cli::totp::run(&key),
        Command::Schema { dir } => cli::schema::run(&dir),
        Command::User { config, action } => cli::user::run(&config, action),
        Command::Audit { config, action } => cli::audit::run(&config, action),
        Command::Report { config, action } => cli::report::run(&config, action),
        Command::Serve { config, log_format } => cli::serve::run(
            &config,
            Overrides::default(),
            log_format.map(Into::into),
            None,
        ),
        Command::Demo {
            config,
            listen,
            ehr_listen,
            log_format,
        } => cli::demo::run(&config, listen, ehr_listen, log_format.map(Into::into)),
    }
}
