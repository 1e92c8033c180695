//! One line of the audit trail.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::net::IpAddr;
use std::time::Duration;

/// Short text that is usually a fixed word ("allow", "login-ok"): no allocation for those.
pub type Text = Cow<'static, str>;

/// What a record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A request and the access decision made about it.
    Access,
    /// Sign-in, MFA, sign-out, lockout, session ended.
    Signin,
    /// Something the security officer did (account changes, grants, lock-down).
    Officer,
    /// ward itself: started, policy reloaded, checkpoint, recovered after a crash.
    System,
}

impl Kind {
    /// The word used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Access => "access",
            Kind::Signin => "signin",
            Kind::Officer => "officer",
            Kind::System => "system",
        }
    }
}

/// Events only the audit writer itself may write; a caller's record using one is renamed.
pub(crate) const RESERVED_EVENTS: [&str; 3] = ["checkpoint", "recovered", "audit-key-created"];

/// One audit record: one JSON object on one line of `DIR/audit-YYYYMMDD-NNNN.jsonl`.
///
/// **What never goes in a record**: request or response bodies, passwords, TOTP or recovery
/// codes, session cookies, OIDC or other tokens, enrollment links, query strings (they can
/// hold any of those, and patient identifiers). `session` is the opaque public session id
/// (the one sent upstream as `X-Ward-Session`), never the cookie; `path` is the canonical
/// path only (the writer cuts anything from `?` or `#` on, in case a caller forgets);
/// `detail` is a short description written by ward, never text copied from a request.
///
/// `time`, `seq`, `prev` and `kind` are always present; every other field is left out of
/// the line when it is not set. `seq` and `prev` are assigned by the writer: whatever a
/// caller puts there is replaced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// When it happened: RFC 3339 in UTC with milliseconds, `2026-11-01T14:03:07.123Z`.
    pub time: String,
    /// Position in the whole trail, counting from 0, with no gaps across files.
    #[serde(default)]
    pub seq: u64,
    /// Hex SHA-256 of the previous record's line (without its newline); 64 zeros for record 0.
    #[serde(default)]
    pub prev: String,
    /// What the record is about.
    pub kind: Kind,
    /// The instance that wrote it, when several share the trail (`[audit] instance`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The request id ward gave the request (also in ward's log and on error pages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The account name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The account's roles at the time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    /// The account's organisation (vendors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// The opaque public session id (never the cookie).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The client's address (after trusted proxies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<IpAddr>,
    /// HTTP method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The app host asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The canonical path, never the query string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The policy rule that decided, as `FILE:LINE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// "allow", "deny", "login", …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Text>,
    /// Why, as a short code ("network", "role", "no-route", …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Text>,
    /// The HTTP status sent to the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Response bytes sent to the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_out: Option<u64>,
    /// From the request arriving to the response ending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Emergency (break-glass) access.
    #[serde(default, skip_serializing_if = "is_false")]
    pub emergency: bool,
    /// The officer's grant that allowed this (export, break-glass), by its reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
    /// What happened, for non-access records: "login-ok", "user-added", "policy-reloaded", …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<Text>,
    /// Who did an officer action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// A short description written by ward (for checkpoints: the signature).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The field rules applied to the answer (`hide td.diagnosis`, `mask #ssn last4`), never values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The time now, as records write it.
pub fn now_text() -> String {
    time_text(crate::clock::now())
}

/// `ts` as records write it: RFC 3339, UTC, milliseconds.
pub fn time_text(ts: Timestamp) -> String {
    use std::fmt::Write as _;
    // Sized for `2026-11-01T14:03:07.123Z`, so it is made once rather than grown.
    let mut out = String::with_capacity(24);
    let _ = write!(out, "{ts:.3}"); // writing to a String cannot fail
    out
}

impl Record {
    /// An empty record of `kind`, stamped with the time now.
    pub fn new(kind: Kind) -> Record {
        Record {
            time: now_text(),
            seq: 0,
            prev: String::new(),
            kind,
            instance: None,
            request_id: None,
            user: None,
            roles: None,
            org: None,
            session: None,
            client_ip: None,
            method: None,
            host: None,
            path: None,
            route: None,
            decision: None,
            reason: None,
            status: None,
            bytes_out: None,
            duration_ms: None,
            emergency: false,
            grant: None,
            event: None,
            actor: None,
            detail: None,
            fields: None,
        }
    }

    /// An access decision about a request. `path` is cut at `?` or `#`.
    pub fn access(
        method: impl Into<String>,
        host: impl Into<String>,
        path: &str,
        decision: impl Into<Text>,
    ) -> Record {
        let mut r = Record::new(Kind::Access);
        r.method = Some(method.into());
        r.host = Some(host.into());
        r.path = Some(without_query(path).to_string());
        r.decision = Some(decision.into());
        r
    }

    /// A sign-in event ("login-ok", "login-failed", "mfa-failed", "logout", "locked-out",
    /// "session-ended", …). Set `user` when it is known.
    pub fn signin(event: impl Into<Text>) -> Record {
        let mut r = Record::new(Kind::Signin);
        r.event = Some(event.into());
        r
    }

    /// Something the officer `actor` did ("user-added", "roles-changed", "user-terminated",
    /// "grant-issued", "break-glass", "lock-down", …); `user` is the account it was done to.
    pub fn officer(actor: impl Into<String>, event: impl Into<Text>) -> Record {
        let mut r = Record::new(Kind::Officer);
        r.actor = Some(actor.into());
        r.event = Some(event.into());
        r
    }

    /// ward itself ("started", "stopped", "policy-reloaded", …).
    pub fn system(event: impl Into<Text>, detail: impl Into<String>) -> Record {
        let mut r = Record::new(Kind::System);
        r.event = Some(event.into());
        r.detail = Some(detail.into());
        r
    }

    /// Sets the time (default: when the record was made).
    pub fn at(mut self, ts: Timestamp) -> Record {
        self.time = time_text(ts);
        self
    }
    /// Sets `request_id`.
    pub fn request_id(mut self, v: impl Into<String>) -> Record {
        self.request_id = Some(v.into());
        self
    }
    /// Sets `user`.
    pub fn user(mut self, v: impl Into<String>) -> Record {
        self.user = Some(v.into());
        self
    }
    /// Sets `roles`.
    pub fn roles<I, S>(mut self, roles: I) -> Record
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.roles = Some(roles.into_iter().map(Into::into).collect());
        self
    }
    /// Sets `org`.
    pub fn org(mut self, v: impl Into<String>) -> Record {
        self.org = Some(v.into());
        self
    }
    /// Sets `session` (the opaque public id, never the cookie).
    pub fn session(mut self, v: impl Into<String>) -> Record {
        self.session = Some(v.into());
        self
    }
    /// Sets `client_ip`.
    pub fn client_ip(mut self, v: IpAddr) -> Record {
        self.client_ip = Some(v);
        self
    }
    /// Sets `method`.
    pub fn method(mut self, v: impl Into<String>) -> Record {
        self.method = Some(v.into());
        self
    }
    /// Sets `host`.
    pub fn host(mut self, v: impl Into<String>) -> Record {
        self.host = Some(v.into());
        self
    }
    /// Sets `path` (cut at `?` or `#`).
    pub fn path(mut self, v: &str) -> Record {
        self.path = Some(without_query(v).to_string());
        self
    }
    /// Sets `route` (`FILE:LINE`).
    pub fn route(mut self, v: impl Into<String>) -> Record {
        self.route = Some(v.into());
        self
    }
    /// Sets `decision`.
    pub fn decision(mut self, v: impl Into<Text>) -> Record {
        self.decision = Some(v.into());
        self
    }
    /// Sets `reason`.
    pub fn reason(mut self, v: impl Into<Text>) -> Record {
        self.reason = Some(v.into());
        self
    }
    /// Sets `status`.
    pub fn status(mut self, v: u16) -> Record {
        self.status = Some(v);
        self
    }
    /// Sets `bytes_out`.
    pub fn bytes_out(mut self, v: u64) -> Record {
        self.bytes_out = Some(v);
        self
    }
    /// Sets `duration_ms` from a duration.
    pub fn duration(mut self, v: Duration) -> Record {
        self.duration_ms = Some(u64::try_from(v.as_millis()).unwrap_or(u64::MAX));
        self
    }
    /// Marks emergency (break-glass) access.
    pub fn emergency(mut self, v: bool) -> Record {
        self.emergency = v;
        self
    }
    /// Sets `grant` (the grant's reason).
    pub fn grant(mut self, v: impl Into<String>) -> Record {
        self.grant = Some(v.into());
        self
    }
    /// Sets `event`.
    pub fn event(mut self, v: impl Into<Text>) -> Record {
        self.event = Some(v.into());
        self
    }
    /// Sets `actor`.
    pub fn actor(mut self, v: impl Into<String>) -> Record {
        self.actor = Some(v.into());
        self
    }
    /// Sets `detail` (short, written by ward; never request content or secrets).
    pub fn detail(mut self, v: impl Into<String>) -> Record {
        self.detail = Some(v.into());
        self
    }

    /// Whether this is a checkpoint written by the audit writer.
    pub fn is_checkpoint(&self) -> bool {
        self.kind == Kind::System && self.event.as_deref() == Some("checkpoint")
    }

    /// Bounds every field before the record is written: paths lose any query, long text is
    /// cut, and events the writer reserves for itself are renamed.
    pub(crate) fn clamp(&mut self) {
        if let Some(p) = &mut self.path {
            let cut = without_query(p).len();
            p.truncate(cut);
        }
        if self.time.len() > 40 {
            cut(&mut self.time, 40);
        }
        for (field, max) in [
            (&mut self.request_id, 128),
            (&mut self.user, 256),
            (&mut self.org, 256),
            (&mut self.session, 128),
            (&mut self.method, 32),
            (&mut self.host, 256),
            (&mut self.path, 4096),
            (&mut self.route, 512),
            (&mut self.grant, 512),
            (&mut self.actor, 256),
            (&mut self.detail, 1024),
        ] {
            if let Some(s) = field {
                cut(s, max);
            }
        }
        for (field, max) in [
            (&mut self.decision, 64),
            (&mut self.reason, 256),
            (&mut self.event, 64),
        ] {
            if let Some(s) = field
                && s.len() > max
            {
                cut(s.to_mut(), max);
            }
        }
        if let Some(roles) = &mut self.roles {
            roles.truncate(64);
            for r in roles.iter_mut() {
                cut(r, 128);
            }
        }
        if let Some(e) = &self.event
            && RESERVED_EVENTS.contains(&e.as_ref())
        {
            self.event = Some(format!("caller-{e}").into());
        }
    }
}

/// `path` without anything from the first `?` or `#`.
fn without_query(path: &str) -> &str {
    // A byte scan: `str::find` with a set of chars costs about ten times as much on a
    // short path, and this runs for every request. Both are ASCII, so `i` is a boundary.
    match path.bytes().position(|b| b == b'?' || b == b'#') {
        Some(i) => &path[..i],
        None => path,
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary, marking the cut with `…`.
fn cut(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push('…');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_fields_are_left_out() {
        let r = Record::signin("login-ok")
            .user("dr_lee")
            .at(Timestamp::UNIX_EPOCH);
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(
            line,
            r#"{"time":"1970-01-01T00:00:00.000Z","seq":0,"prev":"","kind":"signin","user":"dr_lee","event":"login-ok"}"#
        );
        let back: Record = serde_json::from_str(&line).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn time_has_milliseconds_in_utc() {
        let t = now_text();
        assert_eq!(t.len(), "2026-11-01T14:03:07.123Z".len(), "{t}");
        assert!(t.ends_with('Z'));
    }

    #[test]
    fn queries_never_reach_the_path() {
        let r = Record::access("GET", "ehr", "/patients/1?token=secret", "allow");
        assert_eq!(r.path.as_deref(), Some("/patients/1"));
        let mut r = Record::new(Kind::Access);
        r.path = Some("/a#frag?x".into());
        r.clamp();
        assert_eq!(r.path.as_deref(), Some("/a"));
        let r = Record::access("GET", "ehr", "/ärzte/é?q=1", "allow");
        assert_eq!(r.path.as_deref(), Some("/ärzte/é"));
    }

    #[test]
    fn long_fields_are_cut_on_char_boundaries() {
        let mut r = Record::system("x", "é".repeat(2000));
        r.user = Some("u".repeat(10_000));
        r.clamp();
        assert!(r.detail.as_ref().unwrap().len() <= 1024);
        assert!(r.detail.as_ref().unwrap().ends_with('…'));
        assert!(r.user.as_ref().unwrap().len() <= 256);
    }

    #[test]
    fn callers_cannot_write_checkpoints() {
        let mut r = Record::system("checkpoint", "forged");
        r.clamp();
        assert_eq!(r.event.as_deref(), Some("caller-checkpoint"));
        assert!(!r.is_checkpoint());
    }

    #[test]
    fn kinds_and_addresses_are_plain_words() {
        let r = Record::access("GET", "h", "/", "deny").client_ip("203.0.113.9".parse().unwrap());
        let line = serde_json::to_string(&r).unwrap();
        assert!(line.contains(r#""kind":"access""#), "{line}");
        assert!(line.contains(r#""client_ip":"203.0.113.9""#), "{line}");
    }
}
