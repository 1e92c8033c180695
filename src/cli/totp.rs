//! `ward totp-code`: print the current code for an authenticator key (for trying the demo).

use crate::auth::totp;
use std::process::ExitCode;

/// Prints the code for `key` at the time now; exit 1 when `key` is not an authenticator key.
pub fn run(key: &str) -> ExitCode {
    match totp::decode_secret(key) {
        Some(secret) => {
            let now = u64::try_from(crate::clock::unix_now()).unwrap_or(0);
            println!("{}", totp::code_at(&secret, now));
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("ward totp-code: that is not an authenticator key");
            ExitCode::FAILURE
        }
    }
}
