//! `ward serve`: read the log settings, start logging and the runtime, and run the proxy.

use crate::config::{self, Certs, Overrides};
use crate::policy::LogFormat;
use std::path::Path;
use std::process::ExitCode;

/// Runs ward with the policy at `file` until it is stopped; `format` overrides the policy's
/// `[log] format`; `demo` is the sample EHR to start once ward listens (`ward demo`).
pub fn run(
    file: &Path,
    overrides: Overrides,
    format: Option<LogFormat>,
    demo: Option<crate::demo::Prepared>,
) -> ExitCode {
    // Read the log settings first so that everything after is logged as the officer asked.
    let settings = match config::load_with(file, Certs::Load(&crate::tls::Files), &overrides) {
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
    crate::logging::init(format.unwrap_or(settings.format), settings.level);
    keep_large_blocks_mapped();
    // Single-threaded: this thread is the first of the per-core workers (`server::serve`).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ward did not start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(crate::run(file, overrides, demo)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ward stopped: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Every password check uses a 19 MiB block. glibc raises its mmap threshold
/// when the first such block is freed, and from then on serves them from heap
/// arenas that keep the memory after use, one per thread that hashed: ward's
/// memory then grows with the sign-ins it has seen at once (a soak test saw
/// 30 MB become 400 MB). A fixed threshold keeps large blocks mapped, so each
/// goes back to the system when the check ends.
fn keep_large_blocks_mapped() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tuning value of the C allocator; it is called
    // before the runtime starts its threads, and any value is memory-safe.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
