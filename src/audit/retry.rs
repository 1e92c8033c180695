//! Delivery with back-off, for the background senders (webhook, e-mail): a failed attempt is
//! tried again after a growing wait, a bounded number of times, then given up and counted.

use crate::metrics::Deliveries;
use std::future::Future;
use std::time::Duration;

/// The waits before the second, third … attempt: six attempts over about half a minute, so a
/// receiver that restarts misses nothing, and one that is down holds up its queue only briefly.
pub const BACK_OFF: [Duration; 5] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
    Duration::from_secs(16),
];

/// Why one attempt to deliver failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The receiver could not be reached, or the connection broke.
    #[error("cannot reach it: {0}")]
    Unreachable(String),
    /// The receiver answered, and refused.
    #[error("it refused: {0}")]
    Refused(String),
    /// No answer in time.
    #[error("no answer within {} s", .0.as_secs())]
    Timeout(Duration),
    /// The message itself cannot be sent; trying again would not help.
    #[error("the message cannot be built: {0}")]
    Message(String),
}

/// Runs `attempt` until it succeeds or the back-off is used up, counting each outcome for
/// `sink` and logging each failure (with `what`, which names the alert, never its detail).
/// Returns whether it was delivered.
pub async fn deliver<F, Fut>(
    sink: &'static str,
    deliveries: &Deliveries,
    what: &str,
    mut attempt: F,
) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), SendError>>,
{
    let mut waits = BACK_OFF.iter();
    loop {
        let err = match attempt().await {
            Ok(()) => {
                deliveries.count(sink, "sent", 1);
                return true;
            }
            Err(e) => e,
        };
        let again = match err {
            SendError::Message(_) => None,
            _ => waits.next(),
        };
        match again {
            Some(wait) => {
                deliveries.count(sink, "retried", 1);
                tracing::warn!(sink, alert = what, error = %err, "cannot deliver an alert; trying again in {} s", wait.as_secs());
                tokio::time::sleep(*wait).await;
            }
            None => {
                deliveries.count(sink, "failed", 1);
                tracing::error!(sink, alert = what, error = %err, "gave up delivering an alert; it is in the log only");
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn tries_again_after_waiting_then_gives_up() {
        let d = Deliveries::default();
        let tries = AtomicU32::new(0);
        let start = tokio::time::Instant::now();
        let ok = deliver("webhook", &d, "test", || async {
            tries.fetch_add(1, Ordering::Relaxed);
            Err(SendError::Unreachable("refused".into()))
        })
        .await;
        assert!(!ok);
        assert_eq!(tries.load(Ordering::Relaxed), 6);
        assert_eq!(start.elapsed(), Duration::from_secs(31));
        assert_eq!(d.get("webhook", "retried"), 5);
        assert_eq!(d.get("webhook", "failed"), 1);
        assert_eq!(d.get("webhook", "sent"), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_later_success_is_sent_once() {
        let d = Deliveries::default();
        let tries = AtomicU32::new(0);
        let ok = deliver("email", &d, "test", || async {
            if tries.fetch_add(1, Ordering::Relaxed) < 2 {
                Err(SendError::Timeout(Duration::from_secs(10)))
            } else {
                Ok(())
            }
        })
        .await;
        assert!(ok);
        assert_eq!(d.get("email", "retried"), 2);
        assert_eq!(d.get("email", "sent"), 1);
        assert_eq!(d.get("email", "failed"), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_message_that_cannot_be_built_is_not_retried() {
        let d = Deliveries::default();
        let ok = deliver("email", &d, "test", || async {
            Err(SendError::Message("bad".into()))
        })
        .await;
        assert!(!ok);
        assert_eq!(d.get("email", "retried"), 0);
        assert_eq!(d.get("email", "failed"), 1);
    }
}
