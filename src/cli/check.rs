//! `ward check`: load a policy file and print every problem as FILE:LINE:COL.

use crate::config::{self, Certs};
use std::path::Path;
use std::process::ExitCode;

/// Checks the policy at `file`; exit 0 when it is valid (warnings allowed), 1 when not.
pub fn run(file: &Path) -> ExitCode {
    match config::load(file, Certs::Load(&crate::tls::Files)) {
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
            let now = crate::clock::unix_now();
            for line in crate::users::review::check_officers(file, p, now) {
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
