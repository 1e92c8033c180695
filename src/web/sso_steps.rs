//! Single sign-on steps under way (sent to the provider, not yet back), kept in this
//! instance's memory or, with a shared session store, in Redis so that the person may come
//! back through another instance than the one they left from.

use crate::auth::oidc::{PENDING_TTL, Pending, PendingStore};
use std::sync::Arc;

/// Redis keys of sign-ins under way: `ward:sso:HASH_OF_STATE`.
const STEP_PREFIX: &str = "ward:sso:";

/// Sign-ins sent to the provider and not yet back, by their `state`. With Redis they are kept
/// there, so the person may come back through another instance than the one they left from.
pub enum SsoSteps {
    /// In this instance's memory.
    Local(PendingStore),
    /// In Redis, shared by every instance.
    Shared(Arc<crate::session::redis::RedisStore>),
}

impl SsoSteps {
    /// Kept in memory, or in `shared` when given.
    pub fn new(shared: Option<Arc<crate::session::redis::RedisStore>>) -> SsoSteps {
        match shared {
            Some(store) => SsoSteps::Shared(store),
            None => SsoSteps::Local(PendingStore::new()),
        }
    }

    /// Keeps a sign-in under way; false if it could not be kept.
    pub async fn put(&self, pending: Pending) -> bool {
        match self {
            SsoSteps::Local(store) => {
                store.put(pending);
                true
            }
            SsoSteps::Shared(store) => {
                let Ok(json) = serde_json::to_string(&pending) else {
                    return false;
                };
                let set = redis::cmd("SET")
                    .arg(format!(
                        "{STEP_PREFIX}{}",
                        crate::auth::codes::token_hash(&pending.state)
                    ))
                    .arg(json)
                    .arg("EX")
                    .arg(PENDING_TTL.as_secs())
                    .clone();
                store.query::<()>(&set).await.is_ok()
            }
        }
    }

    /// The sign-in under way for `state`, once.
    pub async fn take(&self, state: &str) -> Option<Pending> {
        match self {
            SsoSteps::Local(store) => store.take(state),
            SsoSteps::Shared(store) => {
                let get = redis::cmd("GETDEL")
                    .arg(format!(
                        "{STEP_PREFIX}{}",
                        crate::auth::codes::token_hash(state)
                    ))
                    .clone();
                let json: Option<String> = store.query(&get).await.ok()?;
                serde_json::from_str(&json?).ok()
            }
        }
    }
}
