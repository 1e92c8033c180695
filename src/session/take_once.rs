//! Short-lived values handed out under a random token and taken back once (a form's ticket, a
//! passkey ceremony under way): in this instance's memory or, with a shared session store, in
//! Redis, so that the token may come back through another instance.

use super::redis::RedisStore;
use crate::auth::codes::{random_token, token_hash};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;

/// Longest token [`TakeOnce::take`] looks up (ward's are 43 characters).
const MAX_TOKEN: usize = 100;

/// Values by the hash of their token, each good for `ttl` and taken once.
pub struct TakeOnce<T> {
    /// Redis keys: `PREFIX` + the token's hash.
    prefix: &'static str,
    /// How long a value is kept.
    ttl: Duration,
    /// Where they are kept.
    place: Place<T>,
}

/// Where [`TakeOnce`] keeps its values.
enum Place<T> {
    /// In this instance's memory.
    Local(moka::sync::Cache<String, T>),
    /// In Redis, shared by every instance.
    Shared(Arc<RedisStore>),
}

impl<T> TakeOnce<T>
where
    T: Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
{
    /// Kept in memory (at most `max_local`, older ones dropped first), or in `shared` when given.
    pub fn new(
        prefix: &'static str,
        ttl: Duration,
        max_local: u64,
        shared: Option<Arc<RedisStore>>,
    ) -> TakeOnce<T> {
        let place = match shared {
            Some(store) => Place::Shared(store),
            None => Place::Local(
                moka::sync::Cache::builder()
                    .max_capacity(max_local)
                    .time_to_live(ttl)
                    .build(),
            ),
        };
        TakeOnce { prefix, ttl, place }
    }

    /// Keeps `value`; returns its new token, or `None` if none can be made or kept.
    pub async fn put(&self, value: T) -> Option<String> {
        let token = random_token().ok()?;
        let key = token_hash(&token);
        match &self.place {
            Place::Local(cache) => cache.insert(key, value),
            Place::Shared(store) => {
                let kept = store
                    .put_json(&format!("{}{key}", self.prefix), &value, self.ttl)
                    .await;
                if !kept {
                    return None;
                }
            }
        }
        Some(token)
    }

    /// The value for `token`, once.
    pub async fn take(&self, token: &str) -> Option<T> {
        if token.is_empty() || token.len() > MAX_TOKEN {
            return None;
        }
        let key = token_hash(token);
        match &self.place {
            Place::Local(cache) => cache.remove(&key),
            Place::Shared(store) => store.take_json(&format!("{}{key}", self.prefix)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_value_is_taken_once_and_only_by_its_token() {
        let kept = TakeOnce::new("test:", Duration::from_secs(60), 10, None);
        let token = kept.put("jo".to_string()).await.unwrap();
        let other = kept.put("sam".to_string()).await.unwrap();
        assert_ne!(token, other);
        assert!(kept.take("forged").await.is_none());
        assert!(kept.take("").await.is_none());
        assert!(kept.take(&"a".repeat(MAX_TOKEN + 1)).await.is_none());
        assert_eq!(kept.take(&token).await.as_deref(), Some("jo"));
        assert!(kept.take(&token).await.is_none(), "taken once");
        assert_eq!(kept.take(&other).await.as_deref(), Some("sam"));
    }
}
