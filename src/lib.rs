//! ward: a TLS-terminating, authenticating reverse proxy that enforces a medical
//! practice's access policy in front of its legacy web apps.

pub mod audit;
pub mod auth;
pub mod body;
pub mod certs;
pub mod cli;
pub mod clock;
pub mod config;
pub mod csv;
pub mod demo;
pub mod fsutil;
pub mod logging;
pub mod metrics;
pub mod path;
pub mod policy;
pub mod proxy;
pub mod request;
pub mod server;
pub mod session;
pub mod suggest;
pub mod tls;
pub mod users;
pub mod web;

use server::reload::PolicyStore;
use std::path::Path;
use std::sync::Arc;

/// Why ward could not start, or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The policy file has mistakes (each as FILE:LINE:COL).
    #[error("{0}")]
    Policy(#[from] config::diag::Diagnostics),
    /// The audit trail cannot be opened; ward does not serve unrecorded.
    #[error("cannot open the audit trail in {}: {source}", dir.display())]
    Audit {
        /// The trail's folder.
        dir: std::path::PathBuf,
        /// Why.
        source: audit::AuditError,
    },
    /// users.toml or the secret store cannot be read.
    #[error("cannot open the accounts ({}): {why}", file.display())]
    Accounts {
        /// users.toml.
        file: std::path::PathBuf,
        /// Why.
        why: users::accounts::OpenError,
    },
    /// The listeners.
    #[error(transparent)]
    Serve(#[from] server::ServeError),
    /// The shared session store cannot be set up.
    #[error(transparent)]
    SessionStore(session::redis::RedisSetupError),
    /// The listener's own address could not be read.
    #[error("cannot read the listening address: {0}")]
    Address(std::io::Error),
}

/// Runs ward with the policy at `file` until SIGTERM or Ctrl-C.
pub async fn run(
    file: &Path,
    overrides: config::Overrides,
    demo: Option<demo::Prepared>,
) -> Result<(), StartError> {
    let store = Arc::new(PolicyStore::open(file, overrides)?);
    let audit_settings = store.current().policy.audit.clone();
    let deliveries = metrics::Deliveries::default();
    let alerts = {
        let p = &store.current().policy;
        audit::alerts::Alerts::start(&p.alerts, &p.practice, deliveries.clone())
    };
    let to_alerts = alerts.clone();
    let audit = audit::Audit::open_reporting(
        &audit_settings,
        move |c| to_alerts.checkpoint(c),
        deliveries,
    )
    .map_err(|source| StartError::Audit {
        dir: audit_settings.dir.clone(),
        source,
    })?;
    let (gate, saver, shared_store) = open_gate(&store, audit.clone(), alerts)?;
    let shared = Arc::new(web::state::Shared::new(store.clone(), gate, audit.clone()));
    let watch_start = server::reload::WatchStart::now(&store);
    let (listener, redirect) = server::bind(&store).await?;
    let addr = listener.local_addr().map_err(StartError::Address)?;
    tracing::info!(addr = %addr, policy = %file.display(), "listening");
    if let Some(redirect) = redirect {
        if let Ok(a) = redirect.local_addr() {
            tracing::info!(addr = %a, "redirecting plain HTTP to HTTPS");
        }
        tokio::spawn(server::serve_redirects(store.clone(), redirect));
    }
    if let (Some(addr), Some(metrics)) = (store.current().policy.metrics.listen, &shared.metrics) {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| server::ServeError::Bind { addr, source })?;
        if let Ok(a) = listener.local_addr() {
            tracing::info!(addr = %a, "serving metrics");
        }
        tokio::spawn(server::metrics::serve(
            shared.clone(),
            metrics.clone(),
            listener,
        ));
    }
    if let Some(demo) = demo {
        demo.start(addr);
    }
    tokio::spawn(server::reload::watch(
        store.clone(),
        audit.clone(),
        watch_start,
    ));
    tokio::spawn(watch_accounts(shared.clone()));
    if let Some(saver) = &saver {
        tokio::spawn(save_sessions(saver.clone()));
    }
    server::serve(shared, listener, shutdown_signal()).await?;
    // Everyone stays signed in across the restart.
    if let Some(saver) = &saver {
        match save_now(saver).await {
            Ok(()) => tracing::info!(file = %saver.file().display(), "sessions saved"),
            Err(e) => tracing::warn!(
                file = %saver.file().display(),
                error = %e,
                "cannot save the sessions; everyone signs in again after the restart"
            ),
        }
    }
    if let Some(redis) = &shared_store
        && !redis.flush(std::time::Duration::from_secs(2)).await
    {
        tracing::warn!("some session changes (sign-outs) did not reach Redis before ward stopped");
    }
    // The last records reach the disk, with a signed checkpoint.
    audit.shutdown().await;
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

fn open_gate(
    store: &PolicyStore,
    audit: audit::Audit,
    alerts: audit::alerts::Alerts,
) -> Result<Opened, StartError> {
    let rt = store.current();
    let policy = &rt.policy;
    let accounts = users::accounts::Accounts::open(policy).map_err(|why| StartError::Accounts {
        file: policy.storage.users.clone(),
        why,
    })?;
    let mut shared_store = None;
    let (sessions, saver): (Arc<dyn session::SessionStore>, _) = match &policy.sessions.store {
        policy::SessionStoreKind::Memory => {
            // Sessions unused for a day are forgotten even if the policy allows longer idle.
            let memory = Arc::new(session::MemoryStore::new(std::time::Duration::from_secs(
                24 * 3600,
            )));
            let saver = open_snapshot(policy, memory.clone());
            (memory, saver)
        }
        policy::SessionStoreKind::Redis(redis) => {
            let store = session::redis::RedisStore::start(
                redis,
                policy.sessions.max_lifetime,
                store_changes(alerts.clone(), audit.clone()),
            )
            .map_err(StartError::SessionStore)?;
            shared_store = Some(store.clone());
            (store, None)
        }
    };
    let gate = web::state::Gate::new(
        policy,
        sessions,
        shared_store.clone(),
        Arc::new(accounts),
        audit,
        alerts,
    );
    // ward's SAML signing key is made at the first start rather than the first sign-in: the
    // officer gives its certificate (in ward's metadata) to the IdPs before anyone signs in.
    if !policy.login.saml.is_empty()
        && let Err(e) = web::saml::signing_key(&gate, &policy.login.saml_signing)
    {
        tracing::warn!("SAML sign-ins that sign their requests will fail: {e}");
    }
    Ok((gate, saver, shared_store))
}

/// The gate, and the session store's parts to flush at shutdown.
type Opened = (
    web::state::Gate,
    Option<Arc<session::snapshot::Saver>>,
    Option<Arc<session::redis::RedisStore>>,
);

/// Tells the log, the audit trail and the officer when the shared session store comes and goes.
fn store_changes(alerts: audit::alerts::Alerts, trail: audit::Audit) -> session::redis::OnChange {
    let was_down = std::sync::atomic::AtomicBool::new(false);
    Box::new(move |up, why| {
        use std::sync::atomic::Ordering;
        let record = |event: &'static str, detail: String| {
            let trail = trail.clone();
            tokio::spawn(async move {
                if let Err(e) = trail.record(audit::Record::system(event, detail)).await {
                    tracing::error!(error = %e, "cannot record the session store's state in the audit trail");
                }
            });
        };
        if up {
            tracing::info!("connected to the session store (Redis); sign-in is open");
            if was_down.swap(false, Ordering::Relaxed) {
                record("session-store-up", "sign-in is open again".into());
                alerts.raise(
                    "session-store",
                    "-",
                    "the session store (Redis) is back; sign-in is open again".into(),
                );
            }
        } else {
            let why = why.unwrap_or_default();
            tracing::warn!(
                "cannot reach the session store (Redis): {why}; nobody can sign in or use a session until it is back"
            );
            was_down.store(true, Ordering::Relaxed);
            record("session-store-down", format!("{why}; sign-in is closed"));
            alerts.raise(
                "session-store",
                "-",
                format!("the session store (Redis) cannot be reached ({why}); sign-in is closed"),
            );
        }
    })
}

/// How often the sessions are saved (when they changed).
const SAVE_SESSIONS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The session snapshot's saver, after putting back the sessions of the last run. Any
/// trouble is logged and leaves ward running, with everyone signing in again.
fn open_snapshot(
    policy: &policy::Policy,
    sessions: Arc<session::MemoryStore>,
) -> Option<Arc<session::snapshot::Saver>> {
    use session::snapshot::{Saver, SnapshotKey};
    let dir = &policy.storage.state;
    let key = match SnapshotKey::load_or_create(dir) {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!("sessions will not survive a restart: {e}");
            return None;
        }
    };
    let saver = Saver::new(sessions, key, dir);
    match saver.restore(policy.sessions.max_lifetime, clock::unix_now()) {
        Ok(None) => {}
        Ok(Some(n)) => tracing::info!(sessions = n, "sessions of the last run restored"),
        Err(e) => tracing::warn!(
            file = %saver.file().display(),
            "the saved sessions were not restored: {e}; everyone signs in again"
        ),
    }
    Some(Arc::new(saver))
}

/// Saves the sessions every few seconds when they changed; a failure is logged once.
async fn save_sessions(saver: Arc<session::snapshot::Saver>) {
    let mut tick = tokio::time::interval(SAVE_SESSIONS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        match save_now(&saver).await {
            Ok(()) if failing => {
                tracing::info!(file = %saver.file().display(), "sessions are saved again");
                failing = false;
            }
            Err(e) if !failing => {
                tracing::warn!(
                    file = %saver.file().display(),
                    error = %e,
                    "cannot save the sessions; a restart now would sign everyone out"
                );
                failing = true;
            }
            _ => {}
        }
    }
}

/// Saves the sessions now, off the async workers.
async fn save_now(saver: &Arc<session::snapshot::Saver>) -> std::io::Result<()> {
    let s = saver.clone();
    tokio::task::spawn_blocking(move || s.save(clock::unix_now()))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
        .map(|_| ())
}

/// Reloads the accounts when `users.toml` or the secret store change (checked
/// four times a second) and ends the sessions that no longer stand.
async fn watch_accounts(shared: Arc<web::state::Shared>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
    let mut last_policy = shared.store.current();
    // Break-glass grants already known at start; new ones (page or command line) raise an alert.
    let mut seen_emergencies: std::collections::HashSet<String> =
        break_glass_ids(&shared.gate.accounts.snapshot());
    let mut rounds: u64 = 0;
    loop {
        tick.tick().await;
        rounds += 1;
        let rt = shared.store.current();
        let policy_changed = !Arc::ptr_eq(&rt, &last_policy);
        let gate = &shared.gate;
        if policy_changed {
            last_policy = rt.clone();
        }
        // Reading the files is blocking work: off the async workers.
        let (accounts, policy) = (gate.accounts.clone(), rt.clone());
        let changed = tokio::task::spawn_blocking(move || {
            if policy_changed {
                accounts.reload(&policy.policy).is_ok()
            } else {
                accounts.refresh(&policy.policy)
            }
        })
        .await
        .unwrap_or(false);
        {
            // Every tick: a grant made through the page reloads the accounts itself.
            let snap = shared.gate.accounts.snapshot();
            for g in &snap.grants.grants {
                if matches!(g.kind, users::grants::GrantKind::BreakGlass { .. })
                    && seen_emergencies.insert(g.id.clone())
                {
                    shared.gate.alerts.raise(
                        "break-glass",
                        &g.user,
                        // The reason may name a patient: it stays in the audit trail, not in alerts.
                        format!(
                            "emergency access until {} (grant {}, granted by {}); the reason is in the audit trail",
                            jiff::Timestamp::from_second(g.end)
                                .map(|t| t.to_string())
                                .unwrap_or_default(),
                            g.id,
                            g.granted_by
                        ),
                    );
                }
            }
        }
        // Every few seconds: people whose access review fell due (alerted once per period).
        if rounds % 20 == 1 {
            overdue_reviews(&shared, &rt.policy).await;
        }
        // Every change, and every few seconds for idle sessions.
        if changed || rounds.is_multiple_of(20) {
            let now = clock::unix_now();
            let snap = gate.accounts.snapshot();
            for (user, why) in
                users::accounts::sweep(gate.sessions.as_ref(), &snap, &rt.policy, now)
            {
                tracing::info!(user = %user, reason = why.code(), "session ended");
            }
            gate.tidy();
        }
    }
}

/// Alerts the officer about each person whose access review is overdue, once per review
/// period (the attestations file remembers, so a restart or another instance does not repeat it).
async fn overdue_reviews(shared: &web::state::Shared, policy: &policy::Policy) {
    let snap = shared.gate.accounts.snapshot();
    let (state, period) = (
        policy.storage.state.clone(),
        policy.review.period.as_secs() as i64,
    );
    let now = clock::unix_now();
    let due = tokio::task::spawn_blocking(move || {
        let store = users::attestations::AttestationStore::open(&state)?;
        users::attestations::take_overdue_alerts(&store, &snap.directory, period, now)
    })
    .await;
    let due = match due {
        Ok(Ok(due)) => due,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot check for overdue access reviews");
            return;
        }
        Err(_) => return,
    };
    for (user, since) in due {
        let words = match since {
            Some(t) => format!(
                "the access review of {user} is overdue since {}; sign it off in the console's Access review page",
                jiff::Timestamp::from_second(t)
                    .map(|t| t.to_string())
                    .unwrap_or_default()
            ),
            None => format!(
                "the access of {user} has never been reviewed; sign it off in the console's Access review page"
            ),
        };
        shared.gate.alerts.raise("review-overdue", &user, words);
    }
}

fn break_glass_ids(snap: &users::accounts::Snapshot) -> std::collections::HashSet<String> {
    snap.grants
        .grants
        .iter()
        .filter(|g| matches!(g.kind, users::grants::GrantKind::BreakGlass { .. }))
        .map(|g| g.id.clone())
        .collect()
}
