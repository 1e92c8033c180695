//! `ward demo` (a sample EHR with ward in front of it) and `ward sample-ehr` (the EHR alone).

use crate::policy::LogFormat;
use std::path::Path;
use std::process::ExitCode;

/// Runs `ward demo`: makes the certificate and demo policy if absent, binds the sample EHR, and serves.
pub fn run(
    config: &Path,
    listen: Option<String>,
    ehr_listen: Option<String>,
    format: Option<LogFormat>,
) -> ExitCode {
    match crate::demo::prepare(config, listen, ehr_listen) {
        Ok(prepared) => {
            let overrides = prepared.overrides.clone();
            super::serve::run(config, overrides, format, Some(prepared))
        }
        Err(e) => {
            eprintln!("ward demo could not start: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `ward sample-ehr`: only the sample EHR, on plain HTTP at `listen`.
pub fn sample_ehr(listen: &str) -> ExitCode {
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
        crate::demo::ehr::serve(listener)
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
