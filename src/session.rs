//! Server-side sessions. The cookie holds only an opaque 256-bit random key;
//! the store is keyed by its SHA-256, so a dump of the store holds no cookie.

use crate::auth::codes::{RngError, random_token, token_hash};
use moka::sync::Cache;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The session cookie's name (`__Host-`: Secure, no Domain, Path=/).
pub const COOKIE: &str = "__Host-ward-session";

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
    /// Unix seconds of the last request that counted as activity.
    pub last_active: AtomicI64,
    /// Sign-in stage.
    pub stage: Stage,
    /// Whether a second factor was shown.
    pub mfa: bool,
    /// Where the sign-in came from.
    pub client_ip: IpAddr,
    /// The per-session token forms must carry.
    pub csrf: String,
    /// Where to go once signed in.
    pub return_to: String,
    /// Roles the identity provider's groups mapped to (single sign-on only).
    pub extra_roles: Vec<String>,
    /// The provider this session came from, and its ID token (for its sign-out only).
    pub idp: Option<(String, String)>,
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
            last_active: AtomicI64::new(now),
            stage,
            mfa,
            client_ip,
            csrf: random_token()?,
            return_to: return_to.to_string(),
            extra_roles: Vec::new(),
            idp: None,
        })
    }

    /// The same session, from single sign-on with `provider`.
    pub fn with_sso(mut self, roles: Vec<String>, provider: &str, id_token: String) -> Session {
        self.extra_roles = roles;
        self.idp = Some((provider.to_string(), id_token));
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
    /// Stores a session under a new cookie value.
    fn insert(&self, cookie: &str, session: Arc<Session>);
    /// Ends the session for a cookie value.
    fn remove(&self, cookie: &str);
    /// Ends one session by its public id; true if there was one.
    fn remove_public(&self, public_id: &str) -> bool;
    /// Every live session of `user`, oldest first.
    fn of_user(&self, user: &str) -> Vec<Arc<Session>>;
    /// Every live session.
    fn all(&self) -> Vec<Arc<Session>>;
    /// Ends every session of `user`; how many ended.
    fn remove_user(&self, user: &str) -> usize;
}

/// Sessions in this process's memory (moka), with a per-user index.
pub struct MemoryStore {
    sessions: Cache<String, Arc<Session>>,
    by_user: Arc<Mutex<HashMap<String, HashSet<String>>>>,
}

impl MemoryStore {
    /// A store that forgets sessions unused for `max_idle` (a memory bound;
    /// the policy's idle logoff is enforced on each request).
    pub fn new(max_idle: Duration) -> MemoryStore {
        let by_user: Arc<Mutex<HashMap<String, HashSet<String>>>> = Arc::default();
        let index = by_user.clone();
        let sessions = Cache::builder()
            .max_capacity(200_000)
            .time_to_idle(max_idle)
            .eviction_listener(move |key: Arc<String>, s: Arc<Session>, _| {
                if let Ok(mut map) = index.lock()
                    && let Some(keys) = map.get_mut(&s.user)
                {
                    keys.remove(key.as_str());
                    if keys.is_empty() {
                        map.remove(&s.user);
                    }
                }
            })
            .build();
        MemoryStore { sessions, by_user }
    }

    fn keys_of(&self, user: &str) -> Vec<String> {
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
        self.sessions.get(&token_hash(cookie))
    }

    fn insert(&self, cookie: &str, session: Arc<Session>) {
        let key = token_hash(cookie);
        if let Ok(mut map) = self.by_user.lock() {
            map.entry(session.user.clone())
                .or_default()
                .insert(key.clone());
        }
        self.sessions.insert(key, session);
    }

    fn remove(&self, cookie: &str) {
        self.sessions.invalidate(&token_hash(cookie));
    }

    fn remove_public(&self, public_id: &str) -> bool {
        let found = self
            .sessions
            .iter()
            .find(|(_, s)| crate::auth::codes::ct_eq(&s.public_id, public_id))
            .map(|(k, _)| k);
        match found {
            Some(key) => {
                self.sessions.invalidate(key.as_str());
                true
            }
            None => false,
        }
    }

    fn of_user(&self, user: &str) -> Vec<Arc<Session>> {
        let mut list: Vec<Arc<Session>> = self
            .keys_of(user)
            .iter()
            .filter_map(|k| self.sessions.get(k))
            .collect();
        list.sort_by_key(|s| s.created);
        list
    }

    fn all(&self) -> Vec<Arc<Session>> {
        let mut list: Vec<Arc<Session>> = self.sessions.iter().map(|(_, s)| s).collect();
        list.sort_by_key(|s| s.created);
        list
    }

    fn remove_user(&self, user: &str) -> usize {
        let keys = self.keys_of(user);
        for k in &keys {
            self.sessions.invalidate(k);
        }
        keys.len()
    }
}

/// The value of the session cookie in a request's `Cookie` headers, if any.
pub fn cookie_value<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// A `Set-Cookie` value for a `__Host-` cookie (`max_age` 0 deletes it).
pub fn set_cookie(name: &str, value: &str, max_age: Option<u64>) -> String {
    let mut c = format!("{name}={value}; Path=/; Secure; HttpOnly; SameSite=Lax");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

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
            "__Host-ward-session=v; Path=/; Secure; HttpOnly; SameSite=Lax"
        );
        assert!(!set.contains("Domain"));
    }
}
