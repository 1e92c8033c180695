//! Single sign-on steps under way (sent to the provider, not yet back), kept in this
//! instance's memory or, with a shared session store, in Redis so that the person may come
//! back through another instance than the one they left from.

use crate::auth::oidc::{OidcError, PENDING_TTL, Pending, PendingStore, Provider};
use crate::auth::saml::SamlError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a provider whose discovery or metadata could not be had is not asked again.
pub const RETRY_AFTER: Duration = Duration::from_secs(30);

/// OpenID providers already discovered, and SAML identity providers whose metadata came
/// from their address, kept between sign-ins.
#[derive(Default)]
pub struct SsoState {
    /// By (name, issuer, client).
    pub(crate) providers: Mutex<HashMap<(String, String, String), Provider>>,
    /// By (name, address), with when it was fetched.
    pub(crate) saml: Mutex<HashMap<(String, String), (crate::auth::saml::Idp, Instant)>>,
    /// ward's SAML signing key, with the files it came from.
    pub(crate) saml_key: Mutex<
        Option<(
            crate::policy::SamlSigning,
            Arc<crate::auth::saml_key::SpKey>,
        )>,
    >,
    /// OpenID discoveries that failed lately, keyed as `providers`.
    pub(crate) oidc_failures: Failures<(String, String, String), OidcError>,
    /// SAML metadata fetches that failed lately, keyed as `saml`.
    pub(crate) saml_failures: Failures<(String, String), SamlError>,
}

/// Fetches from providers that failed lately, by the key naming the provider: while a
/// provider is down, sign-ins fail at once instead of each waiting for it, and no client can
/// make ward call it over and over.
pub struct Failures<K, E> {
    /// The error of each provider's last fetch, for as long as it stands.
    recent: moka::sync::Cache<K, E>,
}

impl<K, E> Default for Failures<K, E>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
{
    fn default() -> Self {
        Failures::standing_for(RETRY_AFTER)
    }
}

impl<K, E> Failures<K, E>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
{
    /// A failure stands for `retry_after`.
    fn standing_for(retry_after: Duration) -> Self {
        Failures {
            recent: moka::sync::Cache::builder()
                .time_to_live(retry_after)
                .build(),
        }
    }

    /// Runs `fetch`, unless the fetch for `key` failed less than the time ago: then its error
    /// again, without asking.
    pub async fn guard<T>(
        &self,
        key: &K,
        fetch: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        if let Some(e) = self.recent.get(key) {
            return Err(e);
        }
        let result = fetch.await;
        match &result {
            Ok(_) => self.recent.invalidate(key),
            Err(e) => self.recent.insert(key.clone(), e.clone()),
        }
        result
    }
}

/// Redis keys of sign-ins under way: `ward:sso:HASH_OF_STATE`.
const STEP_PREFIX: &str = "ward:sso:";
/// Redis keys of SAML assertions already used: `ward:saml-seen:HASH_OF_ID`.
const SEEN_PREFIX: &str = "ward:saml-seen:";
/// The longest an assertion ID is remembered (an assertion valid longer than this is refused
/// by its conditions long before: IdPs issue them for minutes).
const SEEN_MAX: u64 = 24 * 3600;

/// Sign-ins sent to the provider and not yet back, by their `state`. With Redis they are kept
/// there, so the person may come back through another instance than the one they left from.
pub enum SsoSteps {
    /// In this instance's memory (with the SAML assertion IDs already used).
    Local(PendingStore, moka::sync::Cache<String, ()>),
    /// In Redis, shared by every instance.
    Shared(Arc<crate::session::redis::RedisStore>),
}

impl SsoSteps {
    /// Kept in memory, or in `shared` when given.
    pub fn new(shared: Option<Arc<crate::session::redis::RedisStore>>) -> SsoSteps {
        match shared {
            Some(store) => SsoSteps::Shared(store),
            None => SsoSteps::Local(
                PendingStore::new(),
                moka::sync::Cache::builder()
                    .max_capacity(1_000_000)
                    .time_to_live(std::time::Duration::from_secs(SEEN_MAX))
                    .build(),
            ),
        }
    }

    /// Keeps a sign-in under way; false if it could not be kept.
    pub async fn put(&self, pending: Pending) -> bool {
        match self {
            SsoSteps::Local(store, _) => {
                store.put(pending);
                true
            }
            SsoSteps::Shared(store) => {
                let key = crate::auth::codes::token_hash(&pending.state);
                store
                    .put_json(&format!("{STEP_PREFIX}{key}"), &pending, PENDING_TTL)
                    .await
            }
        }
    }

    /// The sign-in under way for `state`, once.
    pub async fn take(&self, state: &str) -> Option<Pending> {
        match self {
            SsoSteps::Local(store, _) => store.take(state),
            SsoSteps::Shared(store) => {
                let key = crate::auth::codes::token_hash(state);
                store.take_json(&format!("{STEP_PREFIX}{key}")).await
            }
        }
    }

    /// Records that the assertion `id` (valid until `expires`, Unix seconds) has been used;
    /// false if it was used before, or if that cannot be known (fail closed).
    pub async fn first_use(&self, id: &str, expires: i64, now: i64) -> bool {
        let ttl = u64::try_from(expires.saturating_sub(now))
            .unwrap_or(0)
            .clamp(60, SEEN_MAX);
        let key = crate::auth::codes::token_hash(id);
        match self {
            SsoSteps::Local(_, seen) => {
                let entry = seen.entry(key).or_insert(());
                entry.is_fresh()
            }
            SsoSteps::Shared(store) => {
                let set = redis::cmd("SET")
                    .arg(format!("{SEEN_PREFIX}{key}"))
                    .arg(1)
                    .arg("NX")
                    .arg("EX")
                    .arg(ttl)
                    .clone();
                // NX answers nil when the key was already there.
                matches!(store.query::<Option<String>>(&set).await, Ok(Some(_)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_failed_fetch_is_not_repeated_until_its_time_is_up() {
        let failures = Failures::<&str, String>::standing_for(Duration::from_millis(200));
        let asked = AtomicUsize::new(0);
        let fetch = |ok: bool| {
            let asked = &asked;
            async move {
                asked.fetch_add(1, Ordering::SeqCst);
                if ok { Ok(1) } else { Err("down".to_string()) }
            }
        };
        assert_eq!(failures.guard(&"a", fetch(false)).await, Err("down".into()));
        // Within the time: the same error, without asking.
        assert_eq!(failures.guard(&"a", fetch(true)).await, Err("down".into()));
        assert_eq!(asked.load(Ordering::SeqCst), 1);
        // Another provider is asked.
        assert_eq!(failures.guard(&"b", fetch(true)).await, Ok(1));
        assert_eq!(asked.load(Ordering::SeqCst), 2);
        // After it, asked again; a success clears the failure.
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(failures.guard(&"a", fetch(true)).await, Ok(1));
        assert_eq!(failures.guard(&"a", fetch(false)).await, Err("down".into()));
        assert_eq!(asked.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn an_assertion_id_is_used_once() {
        let steps = SsoSteps::new(None);
        assert!(steps.first_use("a", 100, 0).await);
        assert!(!steps.first_use("a", 100, 0).await);
        assert!(steps.first_use("b", 100, 0).await);
    }
}
