//! `ward demo`: a self-signed certificate, the sample EHR on loopback, and ward
//! in front of it, with nothing to set up.

pub mod ehr;

use crate::config::{self, Certs, Overrides};
use std::net::SocketAddr;
use std::path::Path;

/// The built-in demo policy, written to `config/demo.toml` when that file is absent.
pub const DEMO_POLICY: &str = include_str!("../../config/demo.toml");

/// Everything the demo set up before ward starts serving.
pub struct Prepared {
    /// Ports moved by the command line.
    pub overrides: Overrides,
    ehr: std::net::TcpListener,
    ehr_addr: SocketAddr,
}

/// Makes the certificate and demo policy if absent and binds the sample EHR.
pub fn prepare(
    file: &Path,
    listen: Option<String>,
    ehr_listen: Option<String>,
) -> Result<Prepared, String> {
    if !file.exists() {
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::write(file, DEMO_POLICY).map_err(|e| format!("{}: {e}", file.display()))?;
        println!("Wrote the demo policy to {}", file.display());
    }
    let cert = Path::new("certs/ward.crt");
    let key = Path::new("certs/ward.key");
    if !cert.exists() || !key.exists() {
        crate::tls::write_self_signed(cert, key, &["localhost", "127.0.0.1", "::1"])?;
        println!(
            "Made a self-signed certificate for localhost in certs/ (your browser will warn about it)"
        );
    }
    let loaded = config::load(file, Certs::Skip).map_err(|d| d.to_string())?;
    let app = loaded
        .policy
        .apps
        .iter()
        .find(|a| a.name == "ehr")
        .ok_or("the demo policy has no app named \"ehr\"")?;
    let ehr_at = ehr_listen.unwrap_or_else(|| app.authority.to_string());
    let ehr = std::net::TcpListener::bind(&ehr_at)
        .map_err(|e| format!("the sample EHR cannot listen on {ehr_at}: {e}"))?;
    ehr.set_nonblocking(true).map_err(|e| e.to_string())?;
    let ehr_addr = ehr.local_addr().map_err(|e| e.to_string())?;
    let overrides = Overrides {
        listen,
        upstreams: vec![("ehr".into(), format!("http://{ehr_addr}"))],
    };
    Ok(Prepared {
        overrides,
        ehr,
        ehr_addr,
    })
}

impl Prepared {
    /// Starts the sample EHR and prints what to open.
    pub fn start(self, ward_addr: SocketAddr) {
        match tokio::net::TcpListener::from_std(self.ehr) {
            Ok(listener) => {
                tokio::spawn(async move {
                    if let Err(e) = ehr::serve(listener).await {
                        tracing::error!(error = %e, "the sample EHR stopped");
                    }
                });
            }
            Err(e) => tracing::error!(error = %e, "the sample EHR could not start"),
        }
        let url = format!("https://localhost:{}/", ward_addr.port());
        println!();
        println!("ward demo is running.");
        println!("  Open {url} (the certificate is self-signed: accept the browser's warning).");
        println!(
            "  Sample EHR (reachable only through ward): http://{}",
            self.ehr_addr
        );
        println!("  Try: {url}patients/1001/chart, {url}billing, {url}notifications (WebSocket)");
        println!("  Needs sign-in: {url}admin/ (the route allows officers only)");
        println!("  ward's health: {url}.ward/healthz");
        println!("  Stop with Ctrl-C.");
        println!();
    }
}
