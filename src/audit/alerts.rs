//! Alerts the officer must see: break-glass, a person signed in from two
//! places, lockouts and repeated refusals, a sign-in from a new network, a
//! vendor account used after hours; and each audit checkpoint's hash, to be
//! kept off the machine. Always to the log; to a webhook and by e-mail when the policy
//! names them. Each of those has its own queue and background task, which tries again
//! with back-off (`retry`), so a slow or dead receiver never holds up a request.

pub use super::alert::Alert;
use super::alert::Receiver;
use super::email::{Email, EmailSettings};
use super::retry;
use super::webhook::Webhook;
use crate::metrics::Deliveries;
use std::net::IpAddr;
use tokio::sync::mpsc;

/// `[alerts]`.
#[derive(Debug, Clone, Default)]
pub struct AlertSettings {
    /// POST each alert as JSON here.
    pub webhook: Option<String>,
    /// E-mail each alert (not checkpoints) through this SMTP server.
    pub email: Option<EmailSettings>,
    /// Refusals of one person within ten minutes that make an alert.
    pub denials: u32,
    /// Working hours for vendor accounts: (start hour, end hour), local time.
    pub vendor_hours: Option<(u8, u8)>,
    /// The practice's time zone for working hours (IANA name).
    pub timezone: Option<String>,
}

/// Alerts waiting for one receiver (a queue per receiver, so one that is down does not delay
/// the others).
const QUEUE: usize = 1024;

/// One receiver's queue.
#[derive(Clone)]
struct Sink {
    name: &'static str,
    tx: mpsc::Sender<Alert>,
    /// Whether checkpoints go here too (they come every `checkpoint_every` records: too
    /// many for a mailbox).
    checkpoints: bool,
}

/// Sends alerts without slowing the request that raised them.
#[derive(Clone)]
pub struct Alerts {
    sinks: Vec<Sink>,
    practice: String,
    deliveries: Deliveries,
}

impl Alerts {
    /// Starts a sender task for each receiver the policy names (needs a tokio runtime). A
    /// receiver that cannot be set up is logged and left out: the log still has every alert.
    pub fn start(settings: &AlertSettings, practice: &str, deliveries: Deliveries) -> Alerts {
        let mut sinks = Vec::new();
        match settings.webhook.as_deref().map(Webhook::new) {
            Some(Ok(hook)) => sinks.push(spawn("webhook", true, &deliveries, hook)),
            Some(Err(e)) => {
                tracing::error!(error = %e, "cannot set up the alert webhook; alerts go to the log only")
            }
            None => {}
        }
        match settings.email.as_ref().map(Email::new) {
            Some(Ok(mail)) => sinks.push(spawn("email", false, &deliveries, mail)),
            Some(Err(e)) => {
                tracing::error!(error = %e, "cannot set up alert e-mail; alerts go to the log only")
            }
            None => {}
        }
        Alerts {
            sinks,
            practice: practice.to_string(),
            deliveries,
        }
    }

    /// What the senders have done so far.
    pub fn deliveries(&self) -> &Deliveries {
        &self.deliveries
    }

    /// Raises an alert: logged at once, delivered to the webhook and by e-mail in the
    /// background.
    pub fn raise(&self, event: &'static str, user: &str, detail: String) {
        tracing::warn!(alert = event, user = %user, detail = %detail, "ALERT");
        self.send(self.alert(event, user, detail));
    }

    /// Sends a checkpoint's hash off the machine (the log, the webhook): a copy kept
    /// elsewhere shows later whether the trail was cut back to before it. Not an alarm, so
    /// logged at info. Callable from any thread.
    pub fn checkpoint(&self, c: crate::audit::Checkpoint) {
        tracing::info!(seq = c.seq, hash = %c.hash, "audit checkpoint");
        let mut alert = self.alert(
            "checkpoint",
            "",
            format!("audit checkpoint at record {}: {}", c.seq, c.hash),
        );
        alert.seq = Some(c.seq);
        alert.hash = Some(c.hash);
        self.send(alert);
    }

    fn alert(&self, event: &'static str, user: &str, detail: String) -> Alert {
        Alert {
            event,
            user: user.to_string(),
            detail,
            time: humantime::format_rfc3339_seconds(crate::clock::system_now()).to_string(),
            practice: self.practice.clone(),
            seq: None,
            hash: None,
        }
    }

    fn send(&self, alert: Alert) {
        for sink in &self.sinks {
            if alert.event == "checkpoint" && !sink.checkpoints {
                continue;
            }
            // Never waits: a full queue means the receiver has been failing for a while.
            if sink.tx.try_send(alert.clone()).is_err() {
                self.deliveries.count(sink.name, "dropped", 1);
                tracing::error!(
                    sink = sink.name,
                    alert = alert.event,
                    "the alert queue is full (the receiver keeps failing); this alert is in the log only"
                );
            }
        }
    }
}

/// Starts the task that hands `name`'s alerts, one at a time, to `receiver`, with back-off.
fn spawn(
    name: &'static str,
    checkpoints: bool,
    deliveries: &Deliveries,
    receiver: impl Receiver,
) -> Sink {
    let (tx, mut rx) = mpsc::channel::<Alert>(QUEUE);
    let deliveries = deliveries.clone();
    tokio::spawn(async move {
        while let Some(alert) = rx.recv().await {
            retry::deliver(name, &deliveries, alert.event, || receiver.send(&alert)).await;
        }
    });
    Sink {
        name,
        tx,
        checkpoints,
    }
}

/// Whether two addresses are on different networks (IPv4 /24, IPv6 /48).
pub fn different_network(a: IpAddr, b: IpAddr) -> bool {
    match (
        crate::policy::net::normalize(a),
        crate::policy::net::normalize(b),
    ) {
        (IpAddr::V4(x), IpAddr::V4(y)) => x.octets()[..3] != y.octets()[..3],
        (IpAddr::V6(x), IpAddr::V6(y)) => x.segments()[..3] != y.segments()[..3],
        _ => true,
    }
}

/// Whether `now` (unix seconds) is outside working hours in the practice's time zone.
pub fn after_hours(settings: &AlertSettings, now: i64) -> bool {
    let Some((start, end)) = settings.vendor_hours else {
        return false;
    };
    let tz = settings
        .timezone
        .as_deref()
        .and_then(|name| jiff::tz::TimeZone::get(name).ok())
        .unwrap_or(jiff::tz::TimeZone::UTC);
    let Ok(t) = jiff::Timestamp::from_second(now) else {
        return false;
    };
    let local = t.to_zoned_datetime(tz);
    let weekend = matches!(
        local.weekday(),
        jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday
    );
    let hour = local.hour() as u8;
    weekend || hour < start || hour >= end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_differ_by_prefix() {
        let a: IpAddr = "203.0.113.5".parse().unwrap();
        assert!(!different_network(a, "203.0.113.200".parse().unwrap()));
        assert!(different_network(a, "198.51.100.7".parse().unwrap()));
        assert!(!different_network(a, "::ffff:203.0.113.9".parse().unwrap()));
        assert!(different_network(a, "2001:db8::1".parse().unwrap()));
    }

    #[test]
    fn hours_are_local_and_weekends_count() {
        let s = AlertSettings {
            vendor_hours: Some((7, 19)),
            timezone: Some("UTC".into()),
            ..AlertSettings::default()
        };
        // 2026-11-23 was a Monday.
        let monday_noon = jiff::Timestamp::from_second(1_795_435_200)
            .unwrap()
            .as_second();
        assert!(!after_hours(&s, monday_noon));
        assert!(after_hours(&s, monday_noon + 9 * 3600));
        assert!(after_hours(&s, monday_noon + 5 * 86400));
        assert!(!after_hours(
            &AlertSettings::default(),
            monday_noon + 9 * 3600
        ));
    }
}
