//! Sign-in limits several instances must agree on: attempts per address and failures under
//! names that are no account. In memory for one instance; in Redis with a shared session
//! store, so someone who alternates between instances gets no more tries than against one.
//! With Redis out of reach, every attempt counts as over the limit (fail closed).
//!
//! Failures of real accounts and used authenticator steps are kept in ward's secret store
//! (`state/secrets.json`, shared by every instance and changed under its file lock), where the
//! officer's commands read and clear them.

use crate::auth::codes::{random_token, token_hash};
use crate::auth::lockout::{Strikes, address_key};
use crate::session::redis::RedisStore;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Redis keys: attempts per address, failures and locks per (hashed) unknown name.
const TRIES_PREFIX: &str = "ward:tries:";
const FAILS_PREFIX: &str = "ward:unknown-fails:";
const LOCK_PREFIX: &str = "ward:unknown-lock:";
/// Requests per person to a route with a `rate_limit`: `ward:rate:ROUTE:HASH_OF_NAME`.
const RATE_PREFIX: &str = "ward:rate:";

/// Attempts in the last window, as a sorted set of attempt times: an attempt is counted only
/// while fewer than the limit stand in the window, all in one step on the server.
const TRY_SCRIPT: &str = "\
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1";

/// One failure more (forgotten a window after the last one); the limit locks for a window and
/// starts the count afresh: the rule of `Strikes`, on the server.
const FAIL_SCRIPT: &str = "\
local n = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
if n >= tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[2])
  return 1
end
return 0";

/// Sign-in attempts per address (an IPv4 address, or an IPv6 /64).
pub enum Tries {
    /// Counted in this instance; the limiter is made afresh when the policy's limit changes.
    Local(Mutex<Option<(u32, DefaultKeyedRateLimiter<IpAddr>)>>),
    /// Counted in Redis across every instance.
    Shared(Arc<RedisStore>),
}

impl Tries {
    /// Counts in memory, or in `shared` when given.
    pub fn new(shared: Option<Arc<RedisStore>>) -> Tries {
        match shared {
            Some(store) => Tries::Shared(store),
            None => Tries::Local(Mutex::new(None)),
        }
    }

    /// Whether one more attempt from `ip` is within `per_minute`; counts it if so.
    pub async fn allows(&self, ip: IpAddr, per_minute: u32) -> bool {
        let key = address_key(ip);
        let per_minute = per_minute.max(1);
        match self {
            Tries::Local(limiter) => {
                let Ok(mut slot) = limiter.lock() else {
                    return false;
                };
                let fresh = slot.as_ref().is_none_or(|(n, _)| *n != per_minute);
                if fresh {
                    let quota =
                        Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN));
                    *slot = Some((per_minute, RateLimiter::keyed(quota)));
                }
                slot.as_ref()
                    .is_some_and(|(_, l)| l.check_key(&key).is_ok())
            }
            Tries::Shared(store) => {
                let key = format!("{TRIES_PREFIX}{key}");
                in_window(store, &key, per_minute, Duration::from_secs(60)).await
            }
        }
    }

    /// With a shared store: whether one more request by `user` to the route at `route` (its
    /// index in the policy) is within `limit` per `window` on every instance together, counting
    /// it if so. `None` without a shared store: the caller's own limiter decides.
    pub async fn route_allows(
        &self,
        route: usize,
        user: &str,
        limit: u32,
        window: Duration,
    ) -> Option<bool> {
        match self {
            Tries::Local(_) => None,
            Tries::Shared(store) => {
                let key = format!("{RATE_PREFIX}{route}:{}", token_hash(user));
                Some(in_window(store, &key, limit.max(1), window).await)
            }
        }
    }

    /// Forgets addresses that no longer matter (called periodically).
    pub fn tidy(&self) {
        if let Tries::Local(limiter) = self
            && let Ok(slot) = limiter.lock()
            && let Some((_, l)) = slot.as_ref()
        {
            l.retain_recent();
        }
    }
}

/// Whether one more event under `key` is within `limit` per `window` in Redis; counts it if
/// so. Redis away or failing: no (fail closed).
async fn in_window(store: &RedisStore, key: &str, limit: u32, window: Duration) -> bool {
    let Ok(member) = random_token() else {
        return false;
    };
    let now_ms = crate::clock::now().as_millisecond();
    let window_ms = window.as_millis().clamp(1, i64::MAX as u128) as i64;
    let cmd = redis::cmd("EVAL")
        .arg(TRY_SCRIPT)
        .arg(1)
        .arg(key)
        .arg(now_ms)
        .arg(window_ms)
        .arg(limit)
        .arg(member)
        .clone();
    matches!(store.query::<i64>(&cmd).await, Ok(1))
}

/// Failed sign-ins under a name that is not an account.
#[derive(Clone, Copy, Default)]
pub struct UnknownName {
    strikes: Strikes,
    locked_until: Option<i64>,
}

/// Failures under names that are no account, counted by the same rule as accounts' so the
/// answers do not tell which names exist.
pub enum UnknownNames {
    /// Counted in this instance.
    Local(moka::sync::Cache<String, UnknownName>),
    /// Counted in Redis across every instance (under the names' hashes).
    Shared(Arc<RedisStore>),
}

impl UnknownNames {
    /// Counts in memory (kept `keep` after the last use), or in `shared` when given.
    pub fn new(shared: Option<Arc<RedisStore>>, keep: Duration) -> UnknownNames {
        match shared {
            Some(store) => UnknownNames::Shared(store),
            None => UnknownNames::Local(
                moka::sync::Cache::builder()
                    .max_capacity(100_000)
                    .time_to_idle(keep)
                    .build(),
            ),
        }
    }

    /// Counts a failure for `name` at `now`; true when it locks the name.
    pub async fn fail(&self, name: &str, now: i64, limit: u32, window_secs: i64) -> bool {
        match self {
            UnknownNames::Local(cache) => {
                let mut u = cache.get(name).unwrap_or_default();
                let until = u.strikes.fail(now, limit, window_secs);
                if until.is_some() {
                    u.locked_until = until;
                }
                cache.insert(name.to_string(), u);
                until.is_some()
            }
            UnknownNames::Shared(store) => {
                let hash = token_hash(name);
                let cmd = redis::cmd("EVAL")
                    .arg(FAIL_SCRIPT)
                    .arg(2)
                    .arg(format!("{FAILS_PREFIX}{hash}"))
                    .arg(format!("{LOCK_PREFIX}{hash}"))
                    .arg(limit.max(1))
                    .arg(window_secs.max(1))
                    .clone();
                match store.query::<i64>(&cmd).await {
                    Ok(n) => n == 1,
                    Err(e) => {
                        tracing::warn!(error = %e, "a failed sign-in could not be counted");
                        false
                    }
                }
            }
        }
    }

    /// Whether `name` is locked at `now`; with Redis out of reach, it is.
    pub async fn is_locked(&self, name: &str, now: i64) -> bool {
        match self {
            UnknownNames::Local(cache) => cache
                .get(name)
                .and_then(|u| u.locked_until)
                .is_some_and(|t| t > now),
            UnknownNames::Shared(store) => {
                let cmd = redis::cmd("EXISTS")
                    .arg(format!("{LOCK_PREFIX}{}", token_hash(name)))
                    .clone();
                !matches!(store.query::<i64>(&cmd).await, Ok(0))
            }
        }
    }
}
