//! Tickets of the "ask for more time" forms (`web::more_time`): random, single-use, bound to
//! one person, good until a given second and never longer than 15 minutes. Kept in this
//! instance's memory.

use std::time::Duration;

/// The longest a ticket lives, whatever the policy says.
pub const MOST: Duration = Duration::from_secs(15 * 60);

/// Tickets kept in memory at most (older ones are dropped first).
const MAX_TICKETS: u64 = 10_000;

/// A ticket's holder and the Unix second it stops working.
#[derive(Clone)]
pub struct Ticket {
    /// The account.
    pub user: String,
    /// The Unix second it stops working.
    pub until: i64,
}

/// Tickets issued and not yet used, by the hash of the ticket. In this instance's memory:
/// with several instances, the form goes back to the one that showed it or is refused
/// (the person signs in again).
pub struct Tickets(moka::sync::Cache<String, Ticket>);

impl Default for Tickets {
    fn default() -> Tickets {
        Tickets(
            moka::sync::Cache::builder()
                .max_capacity(MAX_TICKETS)
                .time_to_live(MOST)
                .build(),
        )
    }
}

impl Tickets {
    /// A new ticket for `user`, good until `until`; `None` if no random one can be made.
    pub fn issue(&self, user: &str, until: i64) -> Option<String> {
        let ticket = crate::auth::codes::random_token().ok()?;
        self.0.insert(
            crate::auth::codes::token_hash(&ticket),
            Ticket {
                user: user.to_string(),
                until,
            },
        );
        Some(ticket)
    }

    /// The ticket's holder, once, if it has not run out at `now`.
    pub fn take(&self, ticket: &str, now: i64) -> Option<Ticket> {
        if ticket.is_empty() || ticket.len() > 100 {
            return None;
        }
        self.0
            .remove(&crate::auth::codes::token_hash(ticket))
            .filter(|t| now <= t.until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_works_once_until_its_second_and_only_as_issued() {
        let tickets = Tickets::default();
        let t = tickets.issue("jo", 100).unwrap();
        assert!(tickets.take("forged", 50).is_none());
        assert!(tickets.take("", 50).is_none());
        assert_eq!(tickets.take(&t, 100).map(|t| t.user), Some("jo".into()));
        assert!(tickets.take(&t, 100).is_none(), "used once");
        let t = tickets.issue("jo", 100).unwrap();
        assert!(tickets.take(&t, 101).is_none(), "run out");
        assert!(tickets.take(&t, 99).is_none(), "a late try used it up");
    }
}
