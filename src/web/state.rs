//! What every connection shares: the policy in force, sign-in state (sessions,
//! accounts, limits, single sign-on and hand-offs under way) and the audit trail.

use crate::policy::Policy;
use crate::server::reload::PolicyStore;
use crate::session::SessionStore;
use crate::session::redis::RedisStore;
use crate::users::accounts::Accounts;
use crate::web::limits::{Tries, UnknownNames};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// State shared by every connection.
pub struct Shared {
    /// The policy in force.
    pub store: Arc<PolicyStore>,
    /// Sessions, accounts and sign-in limits.
    pub gate: Gate,
    /// The audit trail.
    pub audit: crate::audit::Audit,
    /// What is counted for Prometheus, when `[metrics] listen` is set.
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
    pub(crate) ids: RequestIds,
}

impl Shared {
    /// Shared state around a policy store, a sign-in gate and the audit trail.
    pub fn new(store: Arc<PolicyStore>, gate: Gate, audit: crate::audit::Audit) -> Shared {
        let metrics = store.current().policy.metrics.listen.map(|_| {
            Arc::new(crate::metrics::Metrics::with_deliveries(
                gate.alerts.deliveries(),
            ))
        });
        Shared {
            store,
            gate,
            audit,
            metrics,
            ids: RequestIds::new(),
        }
    }
}

/// Request ids: unique within a process, unlikely to repeat across restarts.
pub(crate) struct RequestIds {
    base: u64,
    next: AtomicU64,
}

impl RequestIds {
    fn new() -> RequestIds {
        let mut seed = [0u8; 8];
        // A fixed base only makes ids repeat across restarts; never fatal.
        let _ = getrandom::fill(&mut seed);
        RequestIds {
            base: u64::from_le_bytes(seed),
            next: AtomicU64::new(0),
        }
    }

    pub(crate) fn next(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        // Sixteen lower-case hex digits, without the formatting machinery.
        data_encoding::HEXLOWER.encode(&self.base.wrapping_add(n).to_be_bytes())
    }
}

/// Sign-in state shared by all connections.
pub struct Gate {
    /// Live sessions.
    pub sessions: Arc<dyn SessionStore>,
    /// Accounts in force.
    pub accounts: Arc<Accounts>,
    /// Sign-in attempts per address (IPv4, or IPv6 /64: see `lockout::address_key`).
    pub(crate) per_ip: Tries,
    /// Requests per person to routes with a `rate_limit`, when instances share a store
    /// (otherwise each policy's own limiters count them).
    pub(crate) per_route: Tries,
    /// Failures for names that are not accounts, counted by the same rule as real ones.
    pub(crate) unknown_failures: UnknownNames,
    /// Single sign-on: discovered providers.
    pub sso: super::sso_steps::SsoState,
    /// Single sign-on: sign-ins under way.
    pub sso_steps: crate::web::sso_steps::SsoSteps,
    /// Passkey ceremonies under way.
    pub passkey_steps: crate::web::passkey_steps::PasskeySteps,
    /// Alerts for the officer.
    pub alerts: crate::audit::alerts::Alerts,
    /// The audit trail, for sign-in events that are not a request's own outcome.
    pub audit: crate::audit::Audit,
    /// Refusals per person in the last ten minutes, for the repeated-refusals alert.
    pub refusals: moka::sync::Cache<String, u32>,
    /// Password hashing at once: each takes ~20 MiB and a core for a moment,
    /// so a flood of sign-ins waits here instead of starving the proxy.
    pub hashing: tokio::sync::Semaphore,
    /// Sign-ins on their way from ward's own host to an app's host.
    pub handoffs: crate::session::Handoffs,
    /// Tickets of the "ask for more time" forms shown to accounts past their end date.
    pub more_time: crate::web::more_time_tickets::Tickets,
}

impl Gate {
    /// A gate with the policy's limits. With `shared` (Redis), limits, hand-offs and single
    /// sign-on steps are kept there, for every instance.
    pub fn new(
        policy: &Policy,
        sessions: Arc<dyn SessionStore>,
        shared: Option<Arc<RedisStore>>,
        accounts: Arc<Accounts>,
        audit: crate::audit::Audit,
        alerts: crate::audit::alerts::Alerts,
    ) -> Gate {
        Gate {
            sessions,
            accounts,
            per_ip: Tries::new(shared.clone()),
            per_route: Tries::new(shared.clone()),
            // Kept longer than any window or lock; `Strikes` decides what still counts.
            unknown_failures: UnknownNames::new(
                shared.clone(),
                policy.login.lockout_time * 2 + std::time::Duration::from_secs(60),
            ),
            sso: super::sso_steps::SsoState::default(),
            sso_steps: crate::web::sso_steps::SsoSteps::new(shared.clone()),
            more_time: crate::web::more_time_tickets::Tickets::new(shared.clone()),
            passkey_steps: crate::web::passkey_steps::PasskeySteps::new(shared.clone()),
            alerts,
            audit,
            refusals: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(std::time::Duration::from_secs(600))
                .build(),
            handoffs: match shared {
                Some(store) => crate::session::Handoffs::Shared(store),
                None => crate::session::Handoffs::local(),
            },
            hashing: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 4)),
            ),
        }
    }

    /// Forgets rate-limit state that no longer matters (called periodically).
    pub fn tidy(&self) {
        self.per_ip.tidy();
    }

    /// Whether one more attempt from `ip` is within the policy's per-address limit.
    pub(crate) async fn address_allows(&self, policy: &Policy, ip: IpAddr) -> bool {
        self.per_ip
            .allows(ip, policy.login.attempts_per_minute)
            .await
    }

    /// Whether `name` (a real account or not) is locked at `now`.
    pub(crate) async fn is_locked(&self, name: &str, now: i64) -> bool {
        if self.accounts.snapshot().directory.get(name).is_some() {
            // Straight from the store: attempts come faster than the snapshot reloads.
            return self
                .accounts
                .store()
                .read_async()
                .await
                .ok()
                .and_then(|s| s.users.get(name).map(|u| u.is_locked(now)))
                .unwrap_or(false);
        }
        self.unknown_failures.is_locked(name, now).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_sixteen_hex_digits_that_count_up() {
        let ids = RequestIds {
            base: 0x00ab_cdef_0123_45fe,
            next: AtomicU64::new(0),
        };
        assert_eq!(ids.next(), "00abcdef012345fe");
        assert_eq!(ids.next(), "00abcdef012345ff");
        assert_eq!(ids.next(), "00abcdef01234600");
        let wraps = RequestIds {
            base: u64::MAX,
            next: AtomicU64::new(0),
        };
        assert_eq!(wraps.next(), "ffffffffffffffff");
        assert_eq!(wraps.next(), "0000000000000000");
    }
}
