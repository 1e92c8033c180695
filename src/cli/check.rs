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

/// `ward check --diff OLD NEW`: who gains and who loses access, one line per
/// person or role; exit 0 when no one does, 1 when someone does, 2 when a
/// file cannot be read.
pub fn diff(old: &Path, new: &Path) -> ExitCode {
    let load = |file: &Path| match config::load(file, Certs::Skip) {
        Ok(loaded) => Some(loaded.policy),
        Err(d) => {
            eprintln!("{d}");
            eprintln!("{}: fix this policy first to compare it", file.display());
            None
        }
    };
    let (Some(was), Some(now)) = (load(old), load(new)) else {
        return ExitCode::from(2);
    };
    // The people as they are now, in the accounts file the new policy names.
    let people = match crate::users::directory::load(&now.storage.users) {
        Ok(people) => people,
        Err(d) => {
            eprintln!("{d}");
            return ExitCode::from(2);
        }
    };
    let changes = crate::users::diff::diff(&was, &now, &people);
    if changes.is_empty() {
        println!(
            "{} → {}: no one gains or loses access",
            old.display(),
            new.display()
        );
        return ExitCode::SUCCESS;
    }
    println!(
        "{} → {}: who gains and who loses access ({} people in {})",
        old.display(),
        new.display(),
        people.accounts.len(),
        now.storage.users.display()
    );
    for line in changes.lines() {
        println!("  {line}");
    }
    ExitCode::FAILURE
}
