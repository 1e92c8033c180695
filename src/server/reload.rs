//! The policy in force, swapped whole and atomically on reload.
//!
//! Requests take an `Arc` of the current runtime when they start, so in-flight
//! requests finish under the policy they began with. A file with errors never
//! replaces a good policy: the old one stays and the health page says it is stale.

use crate::config::{self, Certs, Overrides, diag::Diagnostics};
use crate::policy::Policy;
use crate::proxy::Upstream;
use arc_swap::ArcSwap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A loaded policy with what serving it needs.
pub struct Runtime {
    /// The policy.
    pub policy: Policy,
    /// One client per app, by app index.
    pub upstreams: Vec<Upstream>,
    /// When it was loaded.
    pub loaded_at: SystemTime,
    /// Per route with a `rate_limit`: requests per person.
    pub rate_limits: Vec<Option<governor::DefaultKeyedRateLimiter<String>>>,
}

impl Runtime {
    fn build(policy: Policy) -> Result<Runtime, crate::tls::TlsError> {
        let upstreams = policy
            .apps
            .iter()
            .map(Upstream::new)
            .collect::<Result<Vec<_>, _>>()?;
        let rate_limits = policy
            .routes
            .iter()
            .map(|r| {
                let (n, per) = r.rate_limit?;
                let n = std::num::NonZeroU32::new(n)?;
                let quota = governor::Quota::with_period(per / n.get())?.allow_burst(n);
                Some(governor::RateLimiter::keyed(quota))
            })
            .collect();
        Ok(Runtime {
            policy,
            upstreams,
            loaded_at: crate::clock::system_now(),
            rate_limits,
        })
    }
}

/// Whether the file on disk is what is being served.
#[derive(Debug, Clone, Default)]
pub struct Status {
    /// Why the file on disk was not loaded, if it was not: every problem as `FILE:LINE:COL: …`.
    pub stale: Option<Vec<String>>,
}

/// The current runtime and reload status.
pub struct PolicyStore {
    file: PathBuf,
    overrides: Overrides,
    current: ArcSwap<Runtime>,
    status: ArcSwap<Status>,
}

impl PolicyStore {
    /// Loads the policy at `file` (with `overrides`, used by `ward demo`).
    pub fn open(file: &Path, overrides: Overrides) -> Result<PolicyStore, Diagnostics> {
        let runtime = load_runtime(file, &overrides)?;
        Ok(PolicyStore {
            file: file.to_path_buf(),
            overrides,
            current: ArcSwap::from_pointee(runtime),
            status: ArcSwap::from_pointee(Status::default()),
        })
    }

    /// The runtime in force now.
    pub fn current(&self) -> Arc<Runtime> {
        self.current.load_full()
    }

    /// The reload status.
    pub fn status(&self) -> Arc<Status> {
        self.status.load_full()
    }

    /// The policy file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Loads the file again; on success it replaces the current runtime, and names the
    /// changed settings that wait for a restart.
    pub fn reload(&self) -> Result<Vec<&'static str>, Diagnostics> {
        match load_runtime(&self.file, &self.overrides) {
            Ok(runtime) => {
                let old = self.current.load();
                let (was, now) = (&old.policy, &runtime.policy);
                let restart_only = [
                    ("listen", was.server.listen != now.server.listen),
                    (
                        "redirect_http",
                        was.server.redirect_http != now.server.redirect_http,
                    ),
                    (
                        "max_connections",
                        was.server.max_connections != now.server.max_connections,
                    ),
                    ("[log]", was.log != now.log),
                    (
                        "[storage]",
                        was.storage.users != now.storage.users
                            || was.storage.state != now.storage.state,
                    ),
                    ("[audit]", was.audit != now.audit),
                    ("[alerts] webhook", was.alerts.webhook != now.alerts.webhook),
                    ("[alerts] e-mail", was.alerts.email != now.alerts.email),
                    ("[metrics]", was.metrics != now.metrics),
                    ("[sessions] store", was.sessions.store != now.sessions.store),
                ];
                let waiting: Vec<&'static str> = restart_only
                    .into_iter()
                    .filter_map(|(what, changed)| changed.then_some(what))
                    .collect();
                for what in &waiting {
                    tracing::warn!(
                        "{what} changed in {}; it takes effect when ward restarts",
                        self.file.display()
                    );
                }
                self.current.store(Arc::new(runtime));
                self.status.store(Arc::new(Status::default()));
                tracing::info!(file = %self.file.display(), "policy reloaded");
                Ok(waiting)
            }
            Err(d) => {
                for item in d.items.iter() {
                    tracing::error!("{}", d.format(item));
                }
                tracing::error!(
                    file = %self.file.display(),
                    "the policy file has errors; still serving the policy loaded before"
                );
                self.status.store(Arc::new(Status {
                    stale: Some(d.items.iter().map(|i| d.format(i)).collect()),
                }));
                Err(d)
            }
        }
    }
}

fn load_runtime(file: &Path, overrides: &Overrides) -> Result<Runtime, Diagnostics> {
    let loaded = config::load_with(file, Certs::Load(&crate::tls::Files), overrides)?;
    for item in loaded.warnings.items.iter() {
        tracing::warn!("{}", loaded.warnings.format(item));
    }
    Runtime::build(loaded.policy).map_err(|e| {
        let mut c = config::diag::Collector::new(file, "");
        c.error(0..0, e.to_string());
        c.finish()
    })
}

/// How long a changed policy file must stay the same before it is read as the new policy.
const SETTLE: Duration = Duration::from_millis(500);

/// The policy file's contents and those of the revoked-devices file (CRL) it
/// names: a device the officer revokes is refused once the CRL changes, with
/// no edit to the policy.
fn watched(store: &PolicyStore) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    let crl = store
        .current()
        .policy
        .server
        .device_crl
        .as_ref()
        .and_then(|p| std::fs::read(p).ok());
    (std::fs::read(store.file()).ok(), crl)
}

/// Where `watch` starts: SIGHUP caught and the policy file (and its CRL) as they
/// were read at start-up. Made before ward says it is listening, so that a SIGHUP
/// or an edit right after that is not lost (an uncaught SIGHUP would end the process).
pub struct WatchStart {
    last: (Option<Vec<u8>>, Option<Vec<u8>>),
    hangup: Option<tokio::signal::unix::Signal>,
}

impl WatchStart {
    /// Catches SIGHUP and reads the files now. Needs a tokio runtime.
    pub fn now(store: &PolicyStore) -> WatchStart {
        let hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; reloading on file change only");
                None
            }
        };
        WatchStart {
            last: watched(store),
            hangup,
        }
    }
}

/// Reloads on SIGHUP and whenever the file's contents (or its CRL's) change
/// (checked every second, taken once they have stayed the same for `SETTLE`);
/// each reload, taken or refused, goes in the audit trail.
pub async fn watch(store: Arc<PolicyStore>, audit: crate::audit::Audit, start: WatchStart) {
    let WatchStart {
        mut last,
        mut hangup,
    } = start;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let by_signal = tokio::select! {
            _ = tick.tick() => false,
            Some(()) = async {
                match hangup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            } => true,
        };
        let now = watched(&store);
        if !by_signal && now.0.is_some() && now != last {
            // An editor that writes in place can be caught mid-write, and the first part of a
            // policy can be a valid, looser one (a route without its `from`). Take the file
            // only once it has stopped changing; `last` stays, so the next tick looks again.
            tokio::time::sleep(SETTLE).await;
            if watched(&store) != now {
                continue;
            }
        }
        if by_signal || (now.0.is_some() && now != last) {
            if by_signal {
                tracing::info!("SIGHUP: reloading the policy");
            }
            last = now;
            let how = if by_signal { "SIGHUP" } else { "file changed" };
            let before = store.current();
            let record = match store.reload() {
                Ok(waiting) if waiting.is_empty() => crate::audit::Record::system(
                    "policy-reloaded",
                    format!(
                        "{} ({how}): {}",
                        store.file().display(),
                        who_gains_and_loses(before, store.current()).await
                    ),
                ),
                Ok(waiting) => crate::audit::Record::system(
                    "policy-reloaded",
                    format!(
                        "{} ({how}); changed but not applied until ward restarts: {}",
                        store.file().display(),
                        waiting.join(", ")
                    ),
                ),
                Err(d) => crate::audit::Record::system(
                    "policy-rejected",
                    format!(
                        "{} ({how}): {}",
                        store.file().display(),
                        d.items.first().map(|i| d.format(i)).unwrap_or_default()
                    ),
                ),
            };
            if let Err(e) = audit.record(record).await {
                tracing::error!(error = %e, "cannot record the policy reload in the audit trail");
            }
        }
    }
}

/// The reload's `ward check --diff` summary, kept short for the audit record.
async fn who_gains_and_loses(before: Arc<Runtime>, after: Arc<Runtime>) -> String {
    // Reads users.toml and asks `decide` many times: kept off the request threads.
    let work = tokio::task::spawn_blocking(move || {
        match crate::users::directory::load(&after.policy.storage.users) {
            Ok(people) => crate::users::diff::diff(&before.policy, &after.policy, &people)
                .summary(SUMMARY_BYTES),
            Err(_) => "who gains and loses access is unknown: the accounts file has errors".into(),
        }
    });
    work.await
        .unwrap_or_else(|_| "who gains and loses access could not be worked out".into())
}

/// Room for the summary in the audit record's `detail` (which holds 1024 bytes).
const SUMMARY_BYTES: usize = 900;
