//! The `ward` command's subcommands, one file each; `main.rs` parses and dispatches to them.

pub mod audit;
pub mod check;
pub mod demo;
pub mod explain;
pub mod grant;
pub mod report;
pub mod schema;
pub mod serve;
pub mod totp;
pub mod user;

/// Who is acting (granting, changing an account), as the operating system knows them.
pub fn cli_actor() -> String {
    let who = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into());
    format!("officer (command line, {who})")
}
