//! One alert for the officer, and what a receiver of alerts (the webhook, the mail server)
//! must do; `alerts` decides when to raise them and queues them for each receiver.

use super::retry;
use std::future::Future;

/// One alert.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Alert {
    /// Short name: `break-glass`, `two-places`, `locked`, `refusals`, `new-network`, `after-hours`,
    /// `checkpoint`.
    pub event: &'static str,
    /// The person concerned.
    pub user: String,
    /// What happened, in words.
    pub detail: String,
    /// RFC 3339 time.
    pub time: String,
    /// The practice.
    pub practice: String,
    /// For `checkpoint`: the checkpoint record's seq.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// For `checkpoint`: the hex SHA-256 of its line, for `ward audit verify --expect-checkpoint`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
}

/// Somewhere alerts are delivered to (the webhook, the mail server).
pub trait Receiver: Send + Sync + 'static {
    /// One attempt to deliver `alert`.
    fn send(&self, alert: &Alert) -> impl Future<Output = Result<(), retry::SendError>> + Send;
}
