//! Tickets of the "ask for more time" forms (`web::more_time`): random, single-use, bound to
//! one person, good until a given second and never longer than 15 minutes. In this instance's
//! memory or, with a shared session store, in Redis, so that the form may come back through
//! another instance.

use crate::session::redis::RedisStore;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// The longest a ticket lives, whatever the policy says.
pub const MOST: Duration = Duration::from_secs(15 * 60);

/// Tickets kept in memory at most (older ones are dropped first).
const MAX_TICKETS: u64 = 10_000;

/// Redis keys of tickets: `ward:more-time:HASH_OF_TICKET`.
const TICKET_PREFIX: &str = "ward:more-time:";

/// A ticket's holder and the Unix second it stops working.
#[derive(Clone, Serialize, Deserialize)]
pub struct Ticket {
    /// The account.
    pub user: String,
    /// The Unix second it stops working.
    pub until: i64,
}

/// Tickets issued and not yet used, by the hash of the ticket.
pub enum Tickets {
    /// In this instance's memory.
    Local(moka::sync::Cache<String, Ticket>),
    /// In Redis, shared by every instance.
    Shared(Arc<RedisStore>),
}

impl Tickets {
    /// Kept in memory, or in `shared` when given.
    pub fn new(shared: Option<Arc<RedisStore>>) -> Tickets {
        match shared {
            Some(store) => Tickets::Shared(store),
            None => Tickets::Local(
                moka::sync::Cache::builder()
                    .max_capacity(MAX_TICKETS)
                    .time_to_live(MOST)
                    .build(),
            ),
        }
    }

    /// A new ticket for `user`, good until `until`; `None` if none can be made or kept.
    pub async fn issue(&self, user: &str, until: i64) -> Option<String> {
        let ticket = crate::auth::codes::random_token().ok()?;
        let key = crate::auth::codes::token_hash(&ticket);
        let held = Ticket {
            user: user.to_string(),
            until,
        };
        match self {
            Tickets::Local(cache) => cache.insert(key, held),
            Tickets::Shared(store) => {
                let json = serde_json::to_string(&held).ok()?;
                let set = redis::cmd("SET")
                    .arg(format!("{TICKET_PREFIX}{key}"))
                    .arg(json)
                    .arg("EX")
                    .arg(MOST.as_secs())
                    .clone();
                store.query::<()>(&set).await.ok()?;
            }
        }
        Some(ticket)
    }

    /// The ticket's holder, once, if it has not run out at `now`.
    pub async fn take(&self, ticket: &str, now: i64) -> Option<Ticket> {
        if ticket.is_empty() || ticket.len() > 100 {
            return None;
        }
        let key = crate::auth::codes::token_hash(ticket);
        let held = match self {
            Tickets::Local(cache) => cache.remove(&key),
            Tickets::Shared(store) => {
                let get = redis::cmd("GETDEL")
                    .arg(format!("{TICKET_PREFIX}{key}"))
                    .clone();
                let json: Option<String> = store.query(&get).await.ok()?;
                serde_json::from_str(&json?).ok()
            }
        };
        held.filter(|t| now <= t.until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_works_once_until_its_second_and_only_as_issued() {
        let tickets = Tickets::new(None);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let t = tickets.issue("jo", 100).await.unwrap();
            assert!(tickets.take("forged", 50).await.is_none());
            assert!(tickets.take("", 50).await.is_none());
            assert_eq!(
                tickets.take(&t, 100).await.map(|t| t.user),
                Some("jo".into())
            );
            assert!(tickets.take(&t, 100).await.is_none(), "used once");
            let t = tickets.issue("jo", 100).await.unwrap();
            assert!(tickets.take(&t, 101).await.is_none(), "run out");
            assert!(
                tickets.take(&t, 99).await.is_none(),
                "a late try used it up"
            );
        });
    }
}
