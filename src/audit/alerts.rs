//! Alerts the officer must see: break-glass, a person signed in from two
//! places, lockouts and repeated refusals, a sign-in from a new network, a
//! vendor account used after hours; and each audit checkpoint's hash, to be
//! kept off the machine. Always to the log; to a webhook when the policy names one.

use bytes::Bytes;
use http::{Request, header};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::net::IpAddr;
use std::time::Duration;
use tokio::sync::mpsc;

/// `[alerts]`.
#[derive(Debug, Clone, Default)]
pub struct AlertSettings {
    /// POST each alert as JSON here.
    pub webhook: Option<String>,
    /// Refusals of one person within ten minutes that make an alert.
    pub denials: u32,
    /// Working hours for vendor accounts: (start hour, end hour), local time.
    pub vendor_hours: Option<(u8, u8)>,
    /// The practice's time zone for working hours (IANA name).
    pub timezone: Option<String>,
}

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

/// Sends alerts without slowing the request that raised them.
#[derive(Clone)]
pub struct Alerts {
    tx: mpsc::Sender<Alert>,
    practice: String,
}

impl Alerts {
    /// Starts the sender task (needs a tokio runtime).
    pub fn start(settings: &AlertSettings, practice: &str) -> Alerts {
        let (tx, mut rx) = mpsc::channel::<Alert>(1024);
        let webhook = settings.webhook.clone();
        tokio::spawn(async move {
            let mut http = HttpConnector::new();
            http.enforce_http(false);
            let tls = crate::tls::client_config(None).ok();
            let client = tls.map(|tls| {
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(tls)
                    .https_or_http()
                    .enable_http1()
                    .wrap_connector(http);
                Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector)
            });
            while let Some(alert) = rx.recv().await {
                let (Some(url), Some(client)) = (&webhook, &client) else {
                    continue;
                };
                let Ok(body) = serde_json::to_vec(&alert) else {
                    continue;
                };
                let req = Request::post(url.as_str())
                    .header(header::CONTENT_TYPE, "application/json")
                    .header(header::USER_AGENT, "ward-alerts")
                    .body(Full::new(Bytes::from(body)));
                let Ok(req) = req else {
                    continue;
                };
                match tokio::time::timeout(Duration::from_secs(10), client.request(req)).await {
                    Ok(Ok(resp)) if resp.status().is_success() => {}
                    Ok(Ok(resp)) => tracing::error!(
                        status = resp.status().as_u16(),
                        "the alert webhook refused an alert"
                    ),
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "cannot deliver an alert to the webhook")
                    }
                    Err(_) => tracing::error!("the alert webhook did not answer"),
                }
            }
        });
        Alerts {
            tx,
            practice: practice.to_string(),
        }
    }

    /// Raises an alert: logged at once, delivered to the webhook in the background.
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
        if self.tx.try_send(alert).is_err() {
            tracing::error!("alert queue full; the alert above went to the log only");
        }
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
