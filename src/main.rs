//! The `ward` command: serve, demo, check, user.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use ward::config::{self, Certs, Overrides};
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
        action: ward::grantcmd::GrantCommand,
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
    },
    /// Manage accounts: add, list, show, set-roles, deactivate, reactivate, terminate, reset-password, reset-mfa, expire, unlock
    User {
        /// The policy file (may be given before or after the action).
        #[arg(long, default_value = "config/ward.toml", global = true)]
        config: PathBuf,
        #[command(subcommand)]
        action: ward::usercmd::UserCommand,
    },
    /// Reports for the officer: `access` (the access review: every account, what it may do, what to look at).
    Report {
        /// The policy file (may be given before or after the report's name).
        #[arg(long, default_value = "config/ward.toml", global = true)]
        config: PathBuf,
        #[command(subcommand)]
        action: ward::review::ReportCommand,
    },
    /// Check the audit trail (verify) and look things up in it (search).
    Audit {
        /// The policy file, for [audit] dir (may be given before or after the action).
        #[arg(long, default_value = "config/ward.toml", global = true)]
        config: PathBuf,
        #[command(subcommand)]
        action: ward::auditcmd::AuditCommand,
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
        Command::Check { config } => check(&config),
        Command::SampleEhr { listen } => sample_ehr(&listen),
        Command::Explain {
            config,
            user,
            ip,
            device,
            method,
            url,
        } => ward::explain::run(&ward::explain::Question {
            config: &config,
            user: user.as_deref(),
            ip,
            method: &method,
            url: &url,
            device,
        }),
        Command::Grant { config, action } => ward::grantcmd::run(&config, action),
        Command::TotpCode { key } => match ward::auth::totp::decode_secret(&key) {
            Some(secret) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                println!("{}", ward::auth::totp::code_at(&secret, now));
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("ward totp-code: that is not an authenticator key");
                ExitCode::FAILURE
            }
        },
        Command::User { config, action } => ward::usercmd::run(&config, action),
        Command::Audit { config, action } => ward::auditcmd::run(&config, action),
        Command::Report { config, action } => ward::review::run(&config, action),
        Command::Serve { config, log_format } => {
            serve(&config, Overrides::default(), log_format, None)
        }
        Command::Demo {
            config,
            listen,
            ehr_listen,
            log_format,
        } => match ward::demo::prepare(&config, listen, ehr_listen) {
            Ok(prepared) => {
                let overrides = prepared.overrides.clone();
                serve(&config, overrides, log_format, Some(prepared))
            }
            Err(e) => {
                eprintln!("ward demo could not start: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn sample_ehr(listen: &str) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("the sample EHR did not start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: Result<(), String> = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        println!("sample EHR listening on http://{addr}");
        ward::demo::ehr::serve(listener)
            .await
            .map_err(|e| e.to_string())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("the sample EHR stopped: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check(file: &std::path::Path) -> ExitCode {
    match config::load(file, Certs::Load) {
        Ok(loaded) => {
            if !loaded.warnings.items.is_empty() {
                eprintln!("{}", loaded.warnings);
            }
            let p = &loaded.policy;
            println!(
                "{}: the policy is valid ({} apps, {} routes, {} roles, {} networks)",
                file.display(),
                p.apps.len(),
                p.routes.len(),
                p.roles.len(),
                p.networks.len()
            );
            // Two officers (one a backup) is the normal case; say so, but the policy is valid.
            let now = jiff::Timestamp::now().as_second();
            for line in ward::review::check_officers(file, p, now) {
                eprintln!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(d) => {
            eprintln!("{d}");
            let errors = d
                .items
                .iter()
                .filter(|i| i.severity == config::diag::Severity::Error)
                .count();
            eprintln!(
                "{}: {errors} problem{} to fix; ward will not load this policy until then",
                file.display(),
                if errors == 1 { "" } else { "s" }
            );
            ExitCode::FAILURE
        }
    }
}

fn serve(
    file: &std::path::Path,
    overrides: Overrides,
    format: Option<Format>,
    demo: Option<ward::demo::Prepared>,
) -> ExitCode {
    // Read the log settings first so that everything after is logged as the officer asked.
    let settings = match config::load_with(file, Certs::Load, &overrides) {
        Ok(loaded) => loaded.policy.log.clone(),
        Err(d) => {
            eprintln!("{d}");
            eprintln!(
                "ward did not start: fix the policy file above and try again (ward check --config {}).",
                file.display()
            );
            return ExitCode::FAILURE;
        }
    };
    ward::logging::init(
        format.map(Into::into).unwrap_or(settings.format),
        settings.level,
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ward did not start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(ward::run(file, overrides, demo)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ward stopped: {e}");
            ExitCode::FAILURE
        }
    }
}
