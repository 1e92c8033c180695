//! Prometheus metrics: what ward counts, and the text a scrape gets.
//!
//! Label values are only names from the policy (apps), route line numbers and ward's own fixed
//! words (decisions, sign-in events): never a person, a path, an address or a session, which
//! would put patient information in the metrics and give every request its own series.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::time::Duration;

/// The content type of a scrape's answer.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    app: String,
    route: String,
    decision: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppLabel {
    app: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabel {
    event: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    sink: &'static str,
    outcome: &'static str,
}

/// What the background senders did with what they were given, by sink (`webhook`, `email`,
/// `syslog`) and outcome: `sent`; `retried` (an attempt failed, another follows); `failed`
/// (given up after the last attempt); `dropped` (its queue was full). Counted whether or not
/// metrics are served; cheap to clone, all clones count together.
#[derive(Clone, Debug, Default)]
pub struct Deliveries {
    counts: Family<DeliveryLabels, Counter>,
}

impl Deliveries {
    /// Adds `n` to `sink`'s count of `outcome`.
    pub fn count(&self, sink: &'static str, outcome: &'static str, n: u64) {
        self.counts
            .get_or_create(&DeliveryLabels { sink, outcome })
            .inc_by(n);
    }

    /// The count so far of `outcome` for `sink`.
    pub fn get(&self, sink: &'static str, outcome: &'static str) -> u64 {
        self.counts
            .get_or_create(&DeliveryLabels { sink, outcome })
            .get()
    }
}

/// Seconds, from 1 ms to about 16 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// What ward counts while it serves.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<AppLabel, Histogram, fn() -> Histogram>,
    upstream_errors: Family<AppLabel, Counter>,
    sign_in: Family<EventLabel, Counter>,
    audit_write: Histogram,
    live_sessions: Gauge,
    locked_accounts: Gauge,
    policy_stale: Gauge,
    policy_loaded: Gauge,
    store_up: Gauge,
}

/// The state read when Prometheus scrapes (rather than counted on every change).
pub struct Scrape {
    /// Sessions signed in now.
    pub live_sessions: usize,
    /// Accounts locked now after failed sign-ins.
    pub locked_accounts: usize,
    /// Whether the policy file on disk has errors, so an older policy is in force.
    pub policy_stale: bool,
    /// Unix seconds when the policy in force was loaded.
    pub policy_loaded: i64,
    /// Whether the session store can be used (a shared store reaches Redis).
    pub store_up: bool,
}

/// The `app` label for requests that reached no app (ward's own pages, refusals before routing).
const NO_APP: &str = "-";

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric, registered.
    pub fn new() -> Metrics {
        Metrics::with_deliveries(&Deliveries::default())
    }

    /// Every metric, with the alert and audit senders' counts in `deliveries`.
    pub fn with_deliveries(deliveries: &Deliveries) -> Metrics {
        let mut registry = Registry::with_prefix("ward");
        registry.register(
            "deliveries",
            "Alerts (webhook, email) and audit records (syslog) sent off the machine, by sink and outcome: sent, retried, failed (given up), dropped (queue full)",
            deliveries.counts.clone(),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests by app, route (its line in the policy file) and decision",
            requests.clone(),
        );
        let latency: Family<AppLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "request_duration_seconds",
            "Time from a request's arrival to its answer's headers, by app",
            latency.clone(),
        );
        let upstream_errors = Family::<AppLabel, Counter>::default();
        registry.register(
            "upstream_errors",
            "Allowed requests the app could not answer (unreachable, too slow, broken answer)",
            upstream_errors.clone(),
        );
        let sign_in = Family::<EventLabel, Counter>::default();
        registry.register(
            "sign_in_events",
            "Sign-in events: login-ok, login-failed, mfa-failed, login-locked, sso-login-ok …",
            sign_in.clone(),
        );
        let audit_write = latency_histogram();
        registry.register(
            "audit_write_seconds",
            "Time a request waited for its audit record to be written",
            audit_write.clone(),
        );
        let live_sessions = Gauge::default();
        registry.register(
            "live_sessions",
            "Sessions signed in now",
            live_sessions.clone(),
        );
        let locked_accounts = Gauge::default();
        registry.register(
            "locked_accounts",
            "Accounts locked now after failed sign-ins",
            locked_accounts.clone(),
        );
        let policy_stale = Gauge::default();
        registry.register(
            "policy_stale",
            "1 when the policy file has errors and an older policy is in force",
            policy_stale.clone(),
        );
        let policy_loaded = Gauge::default();
        registry.register(
            "policy_loaded_timestamp_seconds",
            "When the policy in force was loaded (Unix time)",
            policy_loaded.clone(),
        );
        let store_up = Gauge::default();
        registry.register(
            "session_store_up",
            "1 when the session store can be used (with Redis: connected); 0 means sign-in is closed",
            store_up.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            upstream_errors,
            sign_in,
            audit_write,
            live_sessions,
            locked_accounts,
            policy_stale,
            policy_loaded,
            store_up,
        }
    }

    /// Counts one answered request.
    pub fn request(
        &self,
        app: Option<&str>,
        route_line: Option<usize>,
        decision: &str,
        took: Duration,
    ) {
        let app = app.unwrap_or(NO_APP).to_string();
        let route = route_line.map_or_else(|| NO_APP.to_string(), |l| l.to_string());
        self.requests
            .get_or_create(&RequestLabels {
                app: app.clone(),
                route,
                decision: decision.to_string(),
            })
            .inc();
        self.latency
            .get_or_create(&AppLabel { app })
            .observe(took.as_secs_f64());
    }

    /// Counts an allowed request the app could not answer.
    pub fn upstream_error(&self, app: &str) {
        self.upstream_errors
            .get_or_create(&AppLabel {
                app: app.to_string(),
            })
            .inc();
    }

    /// Counts a sign-in event (one of ward's fixed event names).
    pub fn sign_in(&self, event: &'static str) {
        self.sign_in
            .get_or_create(&EventLabel {
                event: event.to_string(),
            })
            .inc();
    }

    /// Notes how long a request waited for its audit record.
    pub fn audit_write(&self, took: Duration) {
        self.audit_write.observe(took.as_secs_f64());
    }

    /// The text a scrape gets, with the state read now.
    pub fn render(&self, now: &Scrape) -> String {
        self.live_sessions.set(now.live_sessions as i64);
        self.locked_accounts.set(now.locked_accounts as i64);
        self.policy_stale.set(i64::from(now.policy_stale));
        self.policy_loaded.set(now.policy_loaded);
        self.store_up.set(i64::from(now.store_up));
        let mut out = String::new();
        // Writing to a String does not fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_state_show_in_the_text() {
        let m = Metrics::new();
        m.request(Some("ehr"), Some(12), "allow", Duration::from_millis(3));
        m.request(Some("ehr"), Some(12), "allow", Duration::from_millis(3));
        m.request(None, None, "login", Duration::from_millis(1));
        m.upstream_error("ehr");
        m.sign_in("login-failed");
        m.audit_write(Duration::from_micros(200));
        let text = m.render(&Scrape {
            live_sessions: 4,
            locked_accounts: 1,
            policy_stale: true,
            policy_loaded: 1_700_000_000,
            store_up: false,
        });
        assert!(
            text.contains("ward_requests_total{app=\"ehr\",route=\"12\",decision=\"allow\"} 2"),
            "{text}"
        );
        assert!(text.contains("ward_requests_total{app=\"-\",route=\"-\",decision=\"login\"} 1"));
        assert!(text.contains("ward_upstream_errors_total{app=\"ehr\"} 1"));
        assert!(text.contains("ward_sign_in_events_total{event=\"login-failed\"} 1"));
        assert!(text.contains("ward_request_duration_seconds_count{app=\"ehr\"} 2"));
        assert!(text.contains("ward_audit_write_seconds_count 1"));
        assert!(text.contains("ward_live_sessions 4"));
        assert!(text.contains("ward_locked_accounts 1"));
        assert!(text.contains("ward_policy_stale 1"));
        assert!(text.contains("ward_policy_loaded_timestamp_seconds 1700000000"));
        assert!(text.contains("ward_session_store_up 0"));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn deliveries_counted_anywhere_show_in_the_text() {
        let d = Deliveries::default();
        let m = Metrics::with_deliveries(&d);
        d.clone().count("email", "failed", 1);
        d.count("syslog", "dropped", 5);
        assert_eq!(d.get("syslog", "dropped"), 5);
        let text = m.render(&Scrape {
            live_sessions: 0,
            locked_accounts: 0,
            policy_stale: false,
            policy_loaded: 0,
            store_up: true,
        });
        assert!(
            text.contains("ward_deliveries_total{sink=\"email\",outcome=\"failed\"} 1"),
            "{text}"
        );
        assert!(text.contains("ward_deliveries_total{sink=\"syslog\",outcome=\"dropped\"} 5"));
    }
}
