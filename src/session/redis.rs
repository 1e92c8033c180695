//! The shared store: sessions in Redis, so several instances behind a load balancer share
//! sign-ins.
//!
//! Each instance also keeps every session in memory, so the request path never waits for
//! Redis. Changes travel through Redis pub/sub: a new or changed session, or an ended one,
//! reaches every instance within milliseconds, and an instance that (re)connects reads every
//! session afresh. Last activity is written at most every `activity_every` per session, so
//! idle logoff is the same on every instance to that granularity. While Redis cannot be
//! reached, the store is unavailable: no session is honoured and nobody can sign in (fail
//! closed); it reconnects by itself, and changes made meanwhile (sign-outs) are written first.

use super::snapshot::SavedSession;
use super::{MemoryStore, Session, SessionStore};
use arc_swap::ArcSwapOption;
use futures_util::StreamExt;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Redis keys of sessions: `ward:session:PUBLIC_ID`.
const KEY_PREFIX: &str = "ward:session:";
/// The pub/sub channel for changes.
const CHANNEL: &str = "ward:sessions";
/// How long one Redis command may take before the link counts as broken.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a quiet link is checked.
const PING_EVERY: Duration = Duration::from_millis(500);

/// Why the store could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("the Redis address in [sessions] store cannot be used: {0}")]
pub struct RedisSetupError(String);

/// Why a command on the shared link did not happen: the caller refuses (fail closed).
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    /// Redis cannot be reached now.
    #[error("the session store (Redis) cannot be reached")]
    Unreachable,
    /// Redis answered with an error, or not in time.
    #[error("the session store (Redis) failed: {0}")]
    Failed(LinkError),
}

/// Why the link to Redis broke, or a command on it failed (logged, audited and alerted
/// in words by `OnChange`).
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Redis answered with an error, or the connection failed.
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    /// Redis did not answer within the command timeout.
    #[error("Redis did not answer in time")]
    Timeout,
    /// Redis closed the connection (its messages stopped).
    #[error("the connection to Redis closed")]
    Closed,
    /// ward is shutting down.
    #[error("ward is stopping")]
    Stopping,
    /// A session could not be written as JSON.
    #[error("a session could not be encoded: {0}")]
    Encode(#[from] serde_json::Error),
}

/// A change to write to Redis and tell the other instances.
enum Op {
    Put(String, Box<SavedSession>),
    Del(String),
    /// Every change before this one is written: tell the waiter.
    Mark(Option<oneshot::Sender<()>>),
}

/// Sessions in Redis, mirrored in memory.
pub struct RedisStore {
    local: MemoryStore,
    up: AtomicBool,
    /// Unix seconds since Redis has been out of reach (0: reachable, or never reached).
    down_since: AtomicI64,
    /// How long signed-in sessions carry on while it is.
    grace: Duration,
    ops: mpsc::UnboundedSender<Op>,
    /// Last activity already written, per session (public id).
    written: Mutex<HashMap<String, i64>>,
    /// This instance's name on the channel, so it skips its own messages.
    instance: String,
    /// Changes not yet written to Redis.
    unwritten: AtomicUsize,
    /// The link while it is up, for commands whose answer the request waits for.
    conn: ArcSwapOption<redis::aio::MultiplexedConnection>,
}

/// Where the Redis link is, for the log, the alerts and the metrics.
pub type OnChange = Box<dyn Fn(bool, Option<String>) + Send + Sync>;

impl RedisStore {
    /// Starts the store and its link to Redis (`settings`). Sessions are kept in Redis for at
    /// most `lifetime`.
    pub fn start(
        settings: &crate::policy::RedisStoreSettings,
        lifetime: Duration,
        on_change: OnChange,
    ) -> Result<Arc<RedisStore>, RedisSetupError> {
        use redis::IntoConnectionInfo;
        let (url, password) = (settings.url.as_str(), settings.password.as_deref());
        // rediss:// needs a process-wide rustls provider: ward's own (aws-lc-rs).
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let mut info = url
            .into_connection_info()
            .map_err(|e| RedisSetupError(e.to_string()))?;
        if let Some(p) = password {
            let auth = info.redis_settings().clone().set_password(p);
            info = info.set_redis_settings(auth);
        }
        let client = match &settings.ca {
            // The practice's own authority, instead of the system's.
            Some(pem) => redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                },
            ),
            None => redis::Client::open(info),
        }
        .map_err(|e| RedisSetupError(e.to_string()))?;
        let instance = crate::auth::codes::random_token()
            .map_err(|e| RedisSetupError(e.to_string()))?
            .chars()
            .take(16)
            .collect();
        let (tx, rx) = mpsc::unbounded_channel();
        let store = Arc::new(RedisStore {
            local: MemoryStore::new(lifetime.max(Duration::from_secs(3600))),
            up: AtomicBool::new(false),
            down_since: AtomicI64::new(0),
            grace: settings.down_grace,
            ops: tx,
            written: Mutex::default(),
            instance,
            unwritten: AtomicUsize::new(0),
            conn: ArcSwapOption::empty(),
        });
        tokio::spawn(link(store.clone(), client, rx, lifetime, on_change));
        tokio::spawn(write_activity(store.clone(), settings.activity_every));
        Ok(store)
    }

    fn send(&self, op: Op) {
        self.unwritten.fetch_add(1, Ordering::Relaxed);
        // The link task lives as long as the store; a send fails only at shutdown.
        if self.ops.send(op).is_err() {
            self.unwritten.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Waits (up to `within`) for the changes made here to reach Redis, so a sign-out just
    /// before ward stops is not lost; false if some did not.
    pub async fn flush(&self, within: Duration) -> bool {
        let start = std::time::Instant::now();
        while self.unwritten.load(Ordering::Relaxed) > 0 {
            if start.elapsed() >= within {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Waits (up to [`COMMAND_TIMEOUT`]) until every change made here so far is in Redis,
    /// so another instance that is sent a session's way finds it there; false if not.
    pub async fn written(&self) -> bool {
        let (tx, rx) = oneshot::channel();
        self.send(Op::Mark(Some(tx)));
        matches!(tokio::time::timeout(COMMAND_TIMEOUT, rx).await, Ok(Ok(())))
    }

    /// One command whose answer several instances must agree on at once (a code that works
    /// once, a count across instances). Fails while Redis is away.
    pub async fn query<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> Result<T, SharedError> {
        let conn = self
            .conn
            .load_full()
            .filter(|_| self.available())
            .ok_or(SharedError::Unreachable)?;
        let mut conn = (*conn).clone();
        timed(cmd.query_async::<T>(&mut conn))
            .await
            .map_err(SharedError::Failed)
    }

    /// Keeps `value` (as JSON) under `key` for `ttl`; false if it could not be kept.
    pub async fn put_json<T: serde::Serialize>(&self, key: &str, value: &T, ttl: Duration) -> bool {
        let Ok(json) = serde_json::to_string(value) else {
            return false;
        };
        let set = redis::cmd("SET")
            .arg(key)
            .arg(json)
            .arg("EX")
            .arg(ttl.as_secs().max(1))
            .clone();
        self.query::<()>(&set).await.is_ok()
    }

    /// The value kept under `key`, removed in the same step so that only one caller of all
    /// instances gets it.
    pub async fn take_json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Option<T> {
        let get = redis::cmd("GETDEL").arg(key).clone();
        let json: Option<String> = self.query(&get).await.ok()?;
        serde_json::from_str(&json?).ok()
    }

    /// The session with this public id: from memory, or read from Redis when the news of it
    /// has not arrived here yet.
    pub async fn session(&self, public_id: &str) -> Result<Option<Arc<Session>>, SharedError> {
        if let Some(s) = self.local.by_public(public_id) {
            return Ok(Some(s));
        }
        let json: Option<String> = self
            .query(redis::cmd("GET").arg(format!("{KEY_PREFIX}{public_id}")))
            .await?;
        let Some(saved) = json.and_then(|j| serde_json::from_str::<SavedSession>(&j).ok()) else {
            return Ok(None);
        };
        self.apply_put(saved);
        Ok(self.local.by_public(public_id))
    }

    fn put(&self, session: &Arc<Session>) {
        let saved = SavedSession::of(self.local.keys_for(session), session);
        if let Ok(mut w) = self.written.lock() {
            w.insert(session.public_id.clone(), saved.last_active);
        }
        self.send(Op::Put(session.public_id.clone(), Box::new(saved)));
    }

    fn del(&self, public_id: &str) {
        if let Ok(mut w) = self.written.lock() {
            w.remove(public_id);
        }
        self.send(Op::Del(public_id.to_string()));
    }

    /// A session from Redis or another instance, into memory.
    fn apply_put(&self, saved: SavedSession) {
        if let Ok(mut w) = self.written.lock() {
            let seen = w.entry(saved.public_id.clone()).or_default();
            *seen = (*seen).max(saved.last_active);
        }
        let existing = saved
            .keys
            .iter()
            .find_map(|k| self.local.get_hashed(k))
            .filter(|s| s.public_id == saved.public_id);
        match existing {
            Some(s) => {
                s.touch(saved.last_active);
                if saved.end_recorded {
                    s.end_recorded.store(true, Ordering::Relaxed);
                }
                if let Ok(mut jars) = s.app_cookies.jars.lock() {
                    *jars = saved.app_cookies.into_iter().collect();
                }
                for k in saved.keys {
                    if self.local.get_hashed(&k).is_none() {
                        self.local.insert_hashed(k, s.clone());
                    }
                }
            }
            None => {
                let (keys, session) = saved.into_session();
                let session = Arc::new(session);
                for k in keys {
                    self.local.insert_hashed(k, session.clone());
                }
            }
        }
    }

    /// Whether Redis has been away for less than the grace the policy gives signed-in sessions.
    fn in_grace(&self, now: i64) -> bool {
        let since = self.down_since.load(Ordering::Relaxed);
        since > 0 && now.saturating_sub(since) < self.grace.as_secs() as i64
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Relaxed);
        if up {
            self.down_since.store(0, Ordering::Relaxed);
        } else if self.down_since.load(Ordering::Relaxed) == 0 {
            self.down_since
                .store(crate::clock::unix_now(), Ordering::Relaxed);
        }
    }

    fn apply_del(&self, public_id: &str) {
        if let Ok(mut w) = self.written.lock() {
            w.remove(public_id);
        }
        self.local.remove_public(public_id);
    }

    /// A message on the channel: `INSTANCE put JSON` or `INSTANCE del ID`.
    fn apply_message(&self, text: &str) {
        let mut parts = text.splitn(3, ' ');
        let (Some(from), Some(what), Some(rest)) = (parts.next(), parts.next(), parts.next())
        else {
            return;
        };
        if from == self.instance {
            return;
        }
        match what {
            "put" => {
                if let Ok(saved) = serde_json::from_str::<SavedSession>(rest) {
                    self.apply_put(saved);
                }
            }
            "del" => self.apply_del(rest),
            _ => {}
        }
    }
}

impl SessionStore for RedisStore {
    fn get(&self, cookie: &str) -> Option<Arc<Session>> {
        if !self.available() && !self.in_grace(crate::clock::unix_now()) {
            return None;
        }
        self.local.get(cookie)
    }

    fn insert(&self, cookie: &str, session: Arc<Session>) {
        self.local.insert(cookie, session.clone());
        self.put(&session);
    }

    fn remove(&self, cookie: &str) {
        let gone = self.local.get(cookie);
        self.local.remove(cookie);
        if let Some(s) = gone {
            self.del(&s.public_id);
        }
    }

    fn remove_public(&self, public_id: &str) -> bool {
        let here = self.local.remove_public(public_id);
        self.del(public_id);
        here
    }

    fn of_user(&self, user: &str) -> Vec<Arc<Session>> {
        self.local.of_user(user)
    }

    fn all(&self) -> Vec<Arc<Session>> {
        self.local.all()
    }

    fn remove_user(&self, user: &str) -> usize {
        let sessions = self.local.of_user(user);
        self.local.remove_user(user);
        for s in &sessions {
            self.del(&s.public_id);
        }
        sessions.len()
    }

    fn available(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }
}

/// Writes sessions whose last activity changed, every `every`.
async fn write_activity(store: Arc<RedisStore>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if !store.available() {
            continue;
        }
        let changed: Vec<Arc<Session>> = {
            let Ok(written) = store.written.lock() else {
                continue;
            };
            store
                .local
                .all()
                .into_iter()
                .filter(|s| {
                    written
                        .get(&s.public_id)
                        .is_none_or(|w| s.last_active() > *w)
                })
                .collect()
        };
        for s in changed {
            store.put(&s);
        }
    }
}

/// Keeps the link to Redis: connects, writes what changed meanwhile, reads every session,
/// then writes changes and applies the other instances' until the link breaks; and again.
async fn link(
    store: Arc<RedisStore>,
    client: redis::Client,
    mut ops: mpsc::UnboundedReceiver<Op>,
    lifetime: Duration,
    on_change: OnChange,
) {
    let mut pending: Vec<Op> = Vec::new();
    let mut last_error: Option<String> = None;
    let mut ever_up = false;
    loop {
        let why = match connect(&client).await {
            Ok((mut conn, pubsub)) => {
                let mut messages = pubsub.into_on_message();
                let ready = async {
                    // Changes made while Redis was away (sign-outs) go first, so reading
                    // the sessions does not bring back one that was ended.
                    while let Ok(op) = ops.try_recv() {
                        pending.push(op);
                    }
                    while let Some(op) = pending.first_mut() {
                        write(&mut conn, &store.instance, op, lifetime).await?;
                        pending.remove(0);
                        store.unwritten.fetch_sub(1, Ordering::Relaxed);
                    }
                    resync(&store, &mut conn).await
                };
                match ready.await {
                    Err(e) => e.to_string(),
                    Ok(()) => {
                        store.conn.store(Some(Arc::new(conn.clone())));
                        store.set_up(true);
                        last_error = None;
                        ever_up = true;
                        on_change(true, None);
                        let why = serve(
                            &store,
                            &mut conn,
                            &mut messages,
                            &mut ops,
                            &mut pending,
                            lifetime,
                        )
                        .await;
                        store.set_up(false);
                        store.conn.store(None);
                        why.to_string()
                    }
                }
            }
            Err(e) => e.to_string(),
        };
        // Tell each new kind of trouble once, not every retry.
        if last_error.as_deref() != Some(why.as_str()) {
            on_change(false, Some(why.clone()));
            last_error = Some(why);
        }
        let pause = if ever_up { 500 } else { 1000 };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

async fn connect(
    client: &redis::Client,
) -> Result<(redis::aio::MultiplexedConnection, redis::aio::PubSub), LinkError> {
    let both = async {
        let conn = client.get_multiplexed_async_connection().await?;
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(CHANNEL).await?;
        Ok::<_, redis::RedisError>((conn, pubsub))
    };
    match tokio::time::timeout(COMMAND_TIMEOUT * 2, both).await {
        Ok(Ok(pair)) => Ok(pair),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(LinkError::Timeout),
    }
}

/// Writes changes and applies messages until the link breaks; why it broke.
async fn serve(
    store: &RedisStore,
    conn: &mut redis::aio::MultiplexedConnection,
    messages: &mut redis::aio::PubSubStream,
    ops: &mut mpsc::UnboundedReceiver<Op>,
    pending: &mut Vec<Op>,
    lifetime: Duration,
) -> LinkError {
    let mut ping = tokio::time::interval(PING_EVERY);
    loop {
        tokio::select! {
            msg = messages.next() => match msg {
                Some(m) => {
                    if let Ok(text) = m.get_payload::<String>() {
                        store.apply_message(&text);
                    }
                }
                None => return LinkError::Closed,
            },
            op = ops.recv() => {
                let Some(mut op) = op else {
                    return LinkError::Stopping;
                };
                if let Err(e) = write(conn, &store.instance, &mut op, lifetime).await {
                    pending.push(op);
                    return e;
                }
                store.unwritten.fetch_sub(1, Ordering::Relaxed);
            }
            _ = ping.tick() => {
                let pong = timed(redis::cmd("PING").query_async::<String>(conn)).await;
                if let Err(e) = pong {
                    return e;
                }
            }
        }
    }
}

/// A command with [`COMMAND_TIMEOUT`].
async fn timed<T>(
    f: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, LinkError> {
    match tokio::time::timeout(COMMAND_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(LinkError::Timeout),
    }
}

/// One change: stored (or deleted) and announced.
async fn write(
    conn: &mut redis::aio::MultiplexedConnection,
    instance: &str,
    op: &mut Op,
    lifetime: Duration,
) -> Result<(), LinkError> {
    let mut pipe = redis::pipe();
    match op {
        Op::Mark(tx) => {
            // Ops are written in order: everything before the mark is in Redis.
            if let Some(tx) = tx.take() {
                let _ = tx.send(());
            }
            return Ok(());
        }
        Op::Put(id, saved) => {
            let json = serde_json::to_string(saved)?;
            let left = (saved.created + lifetime.as_secs() as i64) - crate::clock::unix_now();
            pipe.cmd("SET")
                .arg(format!("{KEY_PREFIX}{id}"))
                .arg(&json)
                .arg("EX")
                .arg(left.max(1))
                .ignore()
                .cmd("PUBLISH")
                .arg(CHANNEL)
                .arg(format!("{instance} put {json}"))
                .ignore();
        }
        Op::Del(id) => {
            pipe.cmd("DEL")
                .arg(format!("{KEY_PREFIX}{id}"))
                .ignore()
                .cmd("PUBLISH")
                .arg(CHANNEL)
                .arg(format!("{instance} del {id}"))
                .ignore();
        }
    }
    timed(pipe.query_async::<()>(conn)).await
}

/// Reads every session in Redis into memory; sessions no longer there end here too.
async fn resync(
    store: &RedisStore,
    conn: &mut redis::aio::MultiplexedConnection,
) -> Result<(), LinkError> {
    let mut cursor: u64 = 0;
    let mut keys: Vec<String> = Vec::new();
    loop {
        let (next, batch): (u64, Vec<String>) = timed(
            redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{KEY_PREFIX}*"))
                .arg("COUNT")
                .arg(1000)
                .query_async(conn),
        )
        .await?;
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let mut there: HashSet<String> = HashSet::new();
    for chunk in keys.chunks(500) {
        let values: Vec<Option<String>> =
            timed(redis::cmd("MGET").arg(chunk).query_async(conn)).await?;
        for json in values.into_iter().flatten() {
            if let Ok(saved) = serde_json::from_str::<SavedSession>(&json) {
                there.insert(saved.public_id.clone());
                store.apply_put(saved);
            }
        }
    }
    for s in store.local.all() {
        if !there.contains(&s.public_id) {
            store.apply_del(&s.public_id);
        }
    }
    Ok(())
}
