//! Tickets of the "ask for more time" forms (`web::more_time`): random, single-use, bound to
//! one person, good until a given second and never longer than 15 minutes. In this instance's
//! memory or, with a shared session store, in Redis, so that the form may come back through
//! another instance.

use crate::session::redis::RedisStore;
use crate::session::take_once::TakeOnce;
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
pub struct Tickets(TakeOnce<Ticket>);

impl Tickets {
    /// Kept in memory, or in `shared` when given.
    pub fn new(shared: Option<Arc<RedisStore>>) -> Tickets {
        Tickets(TakeOnce::new(TICKET_PREFIX, MOST, MAX_TICKETS, shared))
    }

    /// A new ticket for `user`, good until `until`; `None` if none can be made or kept.
    pub async fn issue(&self, user: &str, until: i64) -> Option<String> {
        let held = Ticket {
            user: user.to_string(),
            until,
        };
        self.0.put(held).await
    }

    /// The ticket's holder, once, if it has not run out at `now`.
    pub async fn take(&self, ticket: &str, now: i64) -> Option<Ticket> {
        self.0.take(ticket).await.filter(|t| now <= t.until)
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
