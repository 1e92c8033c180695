//! Server-side sessions. The cookie holds only an opaque 256-bit random key;
//! the store is keyed by its SHA-256, so a dump of the store holds no cookie.

use crate::auth::codes::{RngError, random_token, token_hash};
use data_encoding::HEXLOWER;
use moka::sync::Cache;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub mod redis;
pub mod snapshot;
pub mod take_once;

/// The session cookie's name (`__Host-`: Secure, no Domain, Path=/).
pub const COOKIE: &str = "__Host-ward-session";

/// Cookies one app may keep in a session, and the longest name and value ward keeps.
const MAX_APP_COOKIES: usize = 64;
const MAX_APP_COOKIE_BYTES: usize = 4096;

/// The apps' cookies of one ward session, per app. ward keeps them instead of
/// the browser: when the ward session ends (sign-out, idle, a new sign-in, a
/// closed account), the app sessions it opened are gone with it, and the next
/// person at that browser cannot use them.
/// A short list by app rather than a hash map: a session meets few apps, and an
/// empty list is half the size (100,000 sessions, #12).
#[derive(Default)]
pub struct AppCookies {
    jars: Mutex<Vec<(String, Jar)>>,
}

/// One app's cookies: (name, value) pairs.
type Jar = Vec<(String, String)>;

impl std::fmt::Debug for AppCookies {
    // The values are the apps' session keys: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count: usize = self
            .jars
            .lock()
            .map(|j| j.iter().map(|(_, jar)| jar.len()).sum())
            .unwrap_or(0);
        write!(f, "AppCookies({count} kept)")
    }
}

impl AppCookies {
    /// The `Cookie` header for a request to `app`, if it has cookies here.
    pub fn header(&self, app: &str) -> Option<http::HeaderValue> {
        let jars = self.jars.lock().ok()?;
        let (_, jar) = jars.iter().find(|(a, j)| a == app && !j.is_empty())?;
        let text = jar
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        http::HeaderValue::from_str(&text).ok()
    }

    /// Takes every `Set-Cookie` out of an answer from `app` into this
    /// session's jar (ward's own cookie names are never kept); returns how many.
    pub fn take_from(&self, app: &str, headers: &mut http::HeaderMap, now: i64) -> usize {
        let set: Vec<String> = headers
            .get_all(http::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect();
        headers.remove(http::header::SET_COOKIE);
        let Ok(mut jars) = self.jars.lock() else {
            return 0;
        };
        if !jars.iter().any(|(a, _)| a == app) {
            jars.push((app.to_string(), Vec::new()));
        }
        let Some((_, jar)) = jars.iter_mut().find(|(a, _)| a == app) else {
            return 0;
        };
        for text in &set {
            // A cookie that does not parse is dropped, never passed to the browser.
            let Ok(c) = cookie::Cookie::parse(text.as_str()) else {
                continue;
            };
            let (name, value) = (c.name(), c.value());
            if name.is_empty()
                || name.len() + value.len() > MAX_APP_COOKIE_BYTES
                || name.to_ascii_lowercase().starts_with("__host-ward")
            {
                continue;
            }
            jar.retain(|(n, _)| n != name);
            let gone = c.max_age().is_some_and(|a| a.whole_seconds() <= 0)
                || c.expires_datetime()
                    .is_some_and(|t| t.unix_timestamp() <= now);
            if !gone && jar.len() < MAX_APP_COOKIES {
                jar.push((name.to_string(), value.to_string()));
            }
        }
        set.len()
    }
}

/// Creation order of sessions in this process.
static NEXT_ORDER: AtomicU64 = AtomicU64::new(0);

/// How far a sign-in has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Password accepted; the second factor is still owed. Reaches no upstream.
    NeedsMfa,
    /// Fully signed in.
    Complete,
}

/// One signed-in (or signing-in) person on one browser.
#[derive(Debug)]
pub struct Session {
    /// Account name.
    pub user: String,
    /// Opaque id shown to upstreams and the officer (`X-Ward-Session`), not the cookie.
    pub public_id: String,
    /// The account's credential epoch when the session began; a bump ends it.
    pub epoch: u64,
    /// Unix seconds when the session began.
    pub created: i64,
    /// Order of creation within this process (many sessions begin in one second).
    order: u64,
    /// Unix seconds of the last request that counted as activity.
    pub last_active: AtomicI64,
    /// Sign-in stage.
    pub stage: Stage,
    /// Whether a second factor was shown.
    pub mfa: bool,
    /// Whether the second factor (or a passwordless sign-in) was a passkey or security key.
    pub passkey: bool,
    /// Where the sign-in came from.
    pub client_ip: IpAddr,
    /// The per-session token ward's forms must carry. Never shown on an app's host.
    pub csrf: String,
    /// A token that only keeps the session alive, for the idle script on app
    /// pages (a script injected into an app can read it; it opens nothing).
    pub keepalive: String,
    /// Where to go once signed in.
    pub return_to: String,
    /// Roles the identity provider's groups mapped to (single sign-on only).
    pub extra_roles: Vec<String>,
    /// The provider this session came from, and its ID token (for its sign-out only).
    /// Boxed: most sessions have none, and 100,000 sessions should stay small (#12).
    pub idp: Option<Box<(String, String)>>,
    /// Its end (idle, too old) has been recorded in the audit trail.
    pub end_recorded: AtomicBool,
    /// The apps' own cookies set during this session, kept here rather than in the browser.
    pub app_cookies: AppCookies,
}

impl Session {
    /// A new session for `user`.
    pub fn new(
        user: &str,
        epoch: u64,
        now: i64,
        stage: Stage,
        mfa: bool,
        client_ip: IpAddr,
        return_to: &str,
    ) -> Result<Session, RngError> {
        Ok(Session {
            user: user.to_string(),
            public_id: random_token()?.chars().take(22).collect(),
            epoch,
            created: now,
            order: NEXT_ORDER.fetch_add(1, Ordering::Relaxed),
            last_active: AtomicI64::new(now),
            stage,
            mfa,
            passkey: false,
            client_ip,
            csrf: random_token()?,
            keepalive: random_token()?,
            return_to: return_to.to_string(),
            extra_roles: Vec::new(),
            idp: None,
            end_recorded: AtomicBool::new(false),
            app_cookies: AppCookies::default(),
        })
    }

    /// The same session, from single sign-on with `provider`.
    pub fn with_sso(mut self, roles: Vec<String>, provider: &str, id_token: String) -> Session {
        self.extra_roles = roles;
        self.idp = Some(Box::new((provider.to_string(), id_token)));
        self
    }

    /// Unix seconds of the last activity.
    pub fn last_active(&self) -> i64 {
        self.last_active.load(Ordering::Relaxed)
    }

    /// Records activity at `now`.
    pub fn touch(&self, now: i64) {
        self.last_active.fetch_max(now, Ordering::Relaxed);
    }
}

/// Where sessions live. The in-memory store serves one instance; a shared
/// store lets several instances behind a load balancer share sign-ins.
pub trait SessionStore: Send + Sync {
    /// The session for a cookie value.
    fn get(&self, cookie: &str) -> Option<Arc<Session>>;
    /// Stores a session under a new cookie value. One session may be stored
    /// under several cookies, one for each host it was handed to.
    fn insert(&self, cookie: &str, session: Arc<Session>);
    /// Ends the session behind a cookie value, on every host it reached.
    fn remove(&self, cookie: &str);
    /// Ends one session by its public id, on every host; true if there was one.
    fn remove_public(&self, public_id: &str) -> bool;
    /// Every live session of `user`, oldest first.
    fn of_user(&self, user: &str) -> Vec<Arc<Session>>;
    /// Every live session.
    fn all(&self) -> Vec<Arc<Session>>;
    /// Ends every session of `user`; how many ended.
    fn remove_user(&self, user: &str) -> usize;
    /// Whether sessions can be used now: a shared store that cannot reach its server is
    /// not, and then nobody is signed in and nobody can sign in (fail closed).
    fn available(&self) -> bool {
        true
    }
}

/// A cookie's SHA-256 as the store keeps it: 32 bytes, not 64 hex characters and a
/// heap allocation, twice per session (the cache and the per-user index).
type Key = [u8; 32];

/// The store's key for a cookie.
fn key_of_cookie(cookie: &str) -> Key {
    Sha256::digest(cookie.as_bytes()).into()
}

/// The store's key for a hex cookie hash (`token_hash`); None if it is not one.
fn key_of_hash(hash: &str) -> Option<Key> {
    let bytes = HEXLOWER.decode(hash.as_bytes()).ok()?;
    bytes.try_into().ok()
}

/// Sessions in this process's memory (moka), with a per-user index.
pub struct MemoryStore {
    sessions: Cache<Key, Arc<Session>>,
    by_user: Arc<Mutex<HashMap<String, HashSet<Key>>>>,
}

impl MemoryStore {
    /// A store that forgets sessions unused for `max_idle` (a memory bound;
    /// the policy's idle logoff is enforced on each request).
    pub fn new(max_idle: Duration) -> MemoryStore {
        let by_user: Arc<Mutex<HashMap<String, HashSet<Key>>>> = Arc::default();
        let index = by_user.clone();
        let sessions = Cache::builder()
            .max_capacity(200_000)
            .time_to_idle(max_idle)
            .eviction_listener(move |key: Arc<Key>, s: Arc<Session>, _| {
                if let Ok(mut map) = index.lock()
                    && let Some(keys) = map.get_mut(&s.user)
                {
                    keys.remove(key.as_ref());
                    if keys.is_empty() {
                        map.remove(&s.user);
                    }
                }
            })
            .build();
        MemoryStore { sessions, by_user }
    }

    /// Every cookie key of one session (it has one per host it was handed to) goes.
    fn remove_keys_of(&self, session: &Arc<Session>) {
        for k in self.keys_of(&session.user) {
            if self
                .sessions
                .get(&k)
                .is_some_and(|other| Arc::ptr_eq(&other, session))
            {
                self.sessions.invalidate(&k);
            }
        }
    }

    /// Every session with the keys (hashes of its cookies) it is stored under.
    pub fn entries(&self) -> Vec<(Vec<String>, Arc<Session>)> {
        let mut by_session: Vec<(Vec<String>, Arc<Session>)> = Vec::new();
        let mut index: HashMap<*const Session, usize> = HashMap::new();
        for (key, s) in self.sessions.iter() {
            let slot = *index.entry(Arc::as_ptr(&s)).or_insert_with(|| {
                by_session.push((Vec::new(), s.clone()));
                by_session.len() - 1
            });
            if let Some((keys, _)) = by_session.get_mut(slot) {
                keys.push(HEXLOWER.encode(key.as_ref()));
            }
        }
        by_session
    }

    /// The session with this public id.
    pub fn by_public(&self, public_id: &str) -> Option<Arc<Session>> {
        self.sessions
            .iter()
            .find(|(_, s)| crate::auth::codes::ct_eq(&s.public_id, public_id))
            .map(|(_, s)| s)
    }

    /// The session stored under a cookie's hash (hex, as `token_hash` writes it).
    pub fn get_hashed(&self, hash: &str) -> Option<Arc<Session>> {
        self.sessions.get(&key_of_hash(hash)?)
    }

    /// The hashes of the cookies `session` is stored under.
    pub fn keys_for(&self, session: &Arc<Session>) -> Vec<String> {
        let mut keys: Vec<String> = self
            .keys_of(&session.user)
            .into_iter()
            .filter(|k| {
                self.sessions
                    .get(k)
                    .is_some_and(|other| Arc::ptr_eq(&other, session))
            })
            .map(|k| HEXLOWER.encode(&k))
            .collect();
        keys.sort();
        keys
    }

    /// Stores a session under a key that is already a cookie's hash (a restored snapshot);
    /// a hash that is not 64 hex digits stores nothing.
    pub fn insert_hashed(&self, hash: String, session: Arc<Session>) {
        if let Some(key) = key_of_hash(&hash) {
            self.insert_key(key, session);
        }
    }

    fn insert_key(&self, key: Key, session: Arc<Session>) {
        if let Ok(mut map) = self.by_user.lock() {
            map.entry(session.user.clone()).or_default().insert(key);
        }
        self.sessions.insert(key, session);
    }

    fn keys_of(&self, user: &str) -> Vec<Key> {
        self.by_user
            .lock()
            .map(|m| {
                m.get(user)
                    .map(|k| k.iter().cloned().collect())
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    }
}

impl SessionStore for MemoryStore {
    fn get(&self, cookie: &str) -> Option<Arc<Session>> {
        self.sessions.get(&key_of_cookie(cookie))
    }

    fn insert(&self, cookie: &str, session: Arc<Session>) {
        self.insert_key(key_of_cookie(cookie), session);
    }

    fn remove(&self, cookie: &str) {
        let key = key_of_cookie(cookie);
        match self.sessions.get(&key) {
            Some(s) => self.remove_keys_of(&s),
            None => self.sessions.invalidate(&key),
        }
    }

    fn remove_public(&self, public_id: &str) -> bool {
        match self.by_public(public_id) {
            Some(s) => {
                self.remove_keys_of(&s);
                true
            }
            None => false,
        }
    }

    fn of_user(&self, user: &str) -> Vec<Arc<Session>> {
        let list = self
            .keys_of(user)
            .iter()
            .filter_map(|k| self.sessions.get(k))
            .collect();
        distinct(list)
    }

    fn all(&self) -> Vec<Arc<Session>> {
        distinct(self.sessions.iter().map(|(_, s)| s).collect())
    }

    fn remove_user(&self, user: &str) -> usize {
        let sessions = self.of_user(user);
        for k in self.keys_of(user) {
            self.sessions.invalidate(&k);
        }
        sessions.len()
    }
}

/// Each session once (a session handed to several hosts is stored under several
/// keys), oldest first.
fn distinct(mut list: Vec<Arc<Session>>) -> Vec<Arc<Session>> {
    list.sort_by_key(|s| (s.created, s.order));
    list.dedup_by(|a, b| Arc::ptr_eq(a, b));
    list
}

/// How long a hand-off code is good for.
const CODE_LIFETIME: Duration = Duration::from_secs(60);

/// Redis keys of hand-off codes: `ward:handoff:HASH_OF_CODE`.
const HANDOFF_PREFIX: &str = "ward:handoff:";

/// One hand-off under way: a session on its way to an app host.
#[derive(Clone)]
pub struct Handoff {
    /// The session handed over.
    pub session: Arc<Session>,
    /// The app host it is for.
    pub host: String,
    /// SHA-256 of the state cookie the app host set when the hand-off began.
    pub state_hash: String,
}

/// A hand-off as kept in Redis: the session by its public id.
#[derive(serde::Serialize, serde::Deserialize)]
struct SharedHandoff {
    session: String,
    host: String,
    state_hash: String,
}

/// Hand-off codes issued and not yet used (kept by their hash, for a minute): see
/// `web::handoff`. With Redis they are kept there, so the app host's instance need not be
/// the one that issued the code.
pub enum Handoffs {
    /// In this instance's memory.
    Local(moka::sync::Cache<String, Handoff>),
    /// In Redis, shared by every instance.
    Shared(Arc<redis::RedisStore>),
}

impl Handoffs {
    /// Codes kept in memory.
    pub fn local() -> Handoffs {
        Handoffs::Local(
            moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(CODE_LIFETIME)
                .build(),
        )
    }

    /// A new one-time code for `handoff`; `None` when none can be made or kept.
    pub async fn issue(&self, handoff: Handoff) -> Option<String> {
        let code = random_token().ok()?;
        match self {
            Handoffs::Local(codes) => codes.insert(token_hash(&code), handoff),
            Handoffs::Shared(store) => {
                // The session must be in Redis before another instance is sent to find it.
                if !store.written().await {
                    return None;
                }
                let kept = SharedHandoff {
                    session: handoff.session.public_id.clone(),
                    host: handoff.host,
                    state_hash: handoff.state_hash,
                };
                let key = format!("{HANDOFF_PREFIX}{}", token_hash(&code));
                if !store.put_json(&key, &kept, CODE_LIFETIME).await {
                    return None;
                }
            }
        }
        Some(code)
    }

    /// The hand-off for a code, once.
    pub async fn take(&self, code: &str) -> Option<Handoff> {
        match self {
            Handoffs::Local(codes) => codes.remove(&token_hash(code)),
            Handoffs::Shared(store) => {
                let key = format!("{HANDOFF_PREFIX}{}", token_hash(code));
                let kept: SharedHandoff = store.take_json(&key).await?;
                let session = store.session(&kept.session).await.ok()??;
                Some(Handoff {
                    session,
                    host: kept.host,
                    state_hash: kept.state_hash,
                })
            }
        }
    }
}

/// The value of the session cookie in a request's `Cookie` headers, if any.
pub fn cookie_value<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .and_then(|c| c.value_raw())
}

/// A `Set-Cookie` value for a `__Host-` cookie (`max_age` 0 deletes it).
pub fn set_cookie(name: &str, value: &str, max_age: Option<u64>) -> String {
    let mut c = cookie::Cookie::build((name, value))
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(cookie::SameSite::Lax);
    if let Some(age) = max_age {
        c = c.max_age(cookie::time::Duration::seconds(
            i64::try_from(age).unwrap_or(i64::MAX),
        ));
    }
    c.build().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_and_its_hex_hash_name_the_same_session() {
        let store = MemoryStore::new(Duration::from_secs(60));
        let s = Arc::new(
            Session::new(
                "dr_lee",
                1,
                0,
                Stage::Complete,
                true,
                [127, 0, 0, 1].into(),
                "/",
            )
            .unwrap(),
        );
        store.insert("cookie-1", s.clone());
        let hash = token_hash("cookie-1");
        assert!(store.get_hashed(&hash).is_some_and(|t| Arc::ptr_eq(&t, &s)));
        assert_eq!(store.keys_for(&s), vec![hash.clone()]);
        assert_eq!(store.entries()[0].0, vec![hash]);
        // Not a hash: nothing stored, nothing found, no panic.
        store.insert_hashed("not-hex".into(), s.clone());
        assert!(store.get_hashed("not-hex").is_none());
        assert_eq!(store.all().len(), 1);
    }

    fn session(user: &str, created: i64) -> Arc<Session> {
        Arc::new(
            Session::new(
                user,
                0,
                created,
                Stage::Complete,
                true,
                "127.0.0.1".parse().unwrap(),
                "/",
            )
            .unwrap(),
        )
    }

    #[test]
    fn store_finds_by_cookie_and_user() {
        let store = MemoryStore::new(Duration::from_secs(3600));
        store.insert("cookie-a", session("lee", 1));
        store.insert("cookie-b", session("lee", 2));
        store.insert("cookie-c", session("kim", 3));
        assert_eq!(store.get("cookie-a").unwrap().user, "lee");
        assert!(store.get("cookie-z").is_none());
        assert_eq!(store.of_user("lee").len(), 2);
        assert_eq!(store.of_user("lee")[0].created, 1);
        assert_eq!(store.remove_user("lee"), 2);
        assert!(store.get("cookie-a").is_none());
        assert!(store.get("cookie-c").is_some());
        let public = store.get("cookie-c").unwrap().public_id.clone();
        assert!(store.remove_public(&public));
        assert!(store.get("cookie-c").is_none());
    }

    #[test]
    fn a_session_on_several_hosts_is_one_session_and_ends_everywhere() {
        let store = MemoryStore::new(Duration::from_secs(3600));
        let s = session("lee", 1);
        store.insert("on-ward-host", s.clone());
        store.insert("on-ehr", s.clone());
        store.insert("on-billing", s.clone());
        store.insert("other", session("lee", 2));
        assert_eq!(store.of_user("lee").len(), 2);
        assert_eq!(store.all().len(), 2);
        store.insert("kim", session("kim", 4));
        store.insert("kim-ehr", store.get("kim").unwrap());
        assert_eq!(store.remove_user("kim"), 1, "sessions, not cookies");
        store.remove("on-ehr");
        assert!(store.get("on-ward-host").is_none());
        assert!(store.get("on-billing").is_none());
        assert!(store.get("other").is_some());
        let t = session("lee", 3);
        store.insert("a", t.clone());
        store.insert("b", t.clone());
        assert!(store.remove_public(&t.public_id));
        assert!(store.get("a").is_none() && store.get("b").is_none());
        assert!(store.get("other").is_some());
    }

    #[test]
    fn sessions_are_unguessable_and_distinct() {
        let a = session("lee", 1);
        let b = session("lee", 1);
        assert_ne!(a.public_id, b.public_id);
        assert_ne!(a.csrf, b.csrf);
        assert!(a.csrf.len() >= 43);
    }

    #[test]
    fn cookies_parse_and_set() {
        let mut h = http::HeaderMap::new();
        h.append("cookie", "a=1; __Host-ward-session=abc".parse().unwrap());
        h.append("cookie", "b=2".parse().unwrap());
        assert_eq!(cookie_value(&h, COOKIE), Some("abc"));
        assert_eq!(cookie_value(&h, "b"), Some("2"));
        assert_eq!(cookie_value(&h, "__Host-ward"), None);
        let set = set_cookie(COOKIE, "v", None);
        assert_eq!(
            set,
            "__Host-ward-session=v; HttpOnly; SameSite=Lax; Secure; Path=/"
        );
        assert!(!set.contains("Domain"));
        assert!(set_cookie(COOKIE, "", Some(0)).ends_with("; Max-Age=0"));
    }
}
