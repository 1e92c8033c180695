//! ward: a TLS-terminating, authenticating reverse proxy that enforces a medical
//! practice's access policy in front of its legacy web apps.

pub mod auth;
pub mod body;
pub mod config;
pub mod demo;
pub mod fsutil;
pub mod handler;
pub mod headers;
pub mod logging;
pub mod pages;
pub mod path;
pub mod policy;
pub mod proxy;
pub mod reload;
pub mod server;
pub mod target;
pub mod tls;
pub mod users;

use reload::PolicyStore;
use std::path::Path;
use std::sync::Arc;

/// Runs ward with the policy at `file` until SIGTERM or Ctrl-C.
pub async fn run(
    file: &Path,
    overrides: config::Overrides,
    demo: Option<demo::Prepared>,
) -> Result<(), String> {
    let store = Arc::new(PolicyStore::open(file, overrides).map_err(|d| d.to_string())?);
    let (listener, redirect) = server::bind(&store).await.map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(addr = %addr, policy = %file.display(), "listening");
    if let Some(redirect) = redirect {
        if let Ok(a) = redirect.local_addr() {
            tracing::info!(addr = %a, "redirecting plain HTTP to HTTPS");
        }
        tokio::spawn(server::serve_redirects(store.clone(), redirect));
    }
    if let Some(demo) = demo {
        demo.start(addr);
    }
    tokio::spawn(reload::watch(store.clone()));
    server::serve(store, listener, shutdown_signal())
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {},
        _ = tokio::signal::ctrl_c() => {},
    }
    tracing::info!("shutting down");
}
