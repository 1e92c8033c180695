//! `ward explain`: what ward would decide for a request, and every check
//! behind it, without sending anything. Uses the proxy's own code.

use crate::policy::{self, Check, Facts, Identity, Verdict};
use crate::users::accounts::{self, Accounts};
use std::net::IpAddr;
use std::path::Path;
use std::process::ExitCode;

/// The question `ward explain` answers.
pub struct Question<'a> {
    /// The policy file.
    pub config: &'a Path,
    /// The person, or nobody signed in.
    pub user: Option<&'a str>,
    /// The client address.
    pub ip: IpAddr,
    /// The method.
    pub method: &'a str,
    /// A full URL (`https://ehr.example/x`) or a path.
    pub url: &'a str,
    /// As if from an enrolled device.
    pub device: bool,
    /// The people (or `role:NAME`) that device's certificate names.
    pub device_of: Vec<String>,
}

/// Prints the decision and its checks; exit 0 when explained, 1 when the question is malformed.
pub fn run(q: &Question<'_>) -> ExitCode {
    match explain(q) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ward explain: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Why a question could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// The policy file does not load.
    #[error("the policy has problems:\n{0}")]
    Policy(crate::config::diag::Diagnostics),
    /// The method is not an HTTP method.
    #[error("'{0}' is not a method")]
    Method(String),
    /// The URL starts with `/` but is not a path.
    #[error("'{0}' is not a path")]
    Path(String),
    /// The URL is not a URL.
    #[error("'{0}' is not a URL")]
    Url(String),
    /// The URL names no host.
    #[error("the URL has no host")]
    NoHost,
    /// The accounts could not be opened.
    #[error(transparent)]
    Accounts(#[from] crate::users::accounts::OpenError),
    /// No session could be made to try the person's identity.
    #[error(transparent)]
    Random(#[from] crate::auth::codes::RngError),
}

/// The explanation as text.
pub fn explain(q: &Question<'_>) -> Result<String, ExplainError> {
    let policy = crate::config::load(q.config, crate::config::Certs::Skip)
        .map_err(ExplainError::Policy)?
        .policy;
    let method = http::Method::from_bytes(q.method.as_bytes())
        .map_err(|_| ExplainError::Method(q.method.to_string()))?;
    let (uri, host): (http::Uri, String) = if q.url.starts_with('/') {
        let host = policy
            .apps
            .iter()
            .find_map(|a| a.host.clone())
            .unwrap_or_else(|| "localhost".into());
        (
            q.url
                .parse()
                .map_err(|_| ExplainError::Path(q.url.to_string()))?,
            host,
        )
    } else {
        let uri: http::Uri = q
            .url
            .parse()
            .map_err(|_| ExplainError::Url(q.url.to_string()))?;
        let host = uri
            .authority()
            .map(|a| a.to_string())
            .ok_or(ExplainError::NoHost)?;
        (uri, host)
    };
    let mut headers = http::HeaderMap::new();
    if let Ok(v) = http::HeaderValue::from_str(&host) {
        headers.insert(http::header::HOST, v);
    }
    let mut checks: Vec<Check> = Vec::new();
    let target = match crate::request::target::read(&method, &uri, &headers) {
        Ok(t) => t,
        Err(e) => {
            return Ok(format!(
                "Decision: REFUSED (400 Bad Request)\n  ward refuses the request itself: {e}\n"
            ));
        }
    };
    checks.push(Check {
        name: "request",
        passed: true,
        detail: format!("well-formed; canonical path {}", target.path),
    });
    let now = crate::clock::unix_now();
    let mut identity: Option<Identity> = None;
    if let Some(name) = q.user {
        let accounts = Accounts::open(&policy).map_err(ExplainError::Accounts)?;
        let snap = accounts.snapshot();
        match snap.directory.get(name) {
            None => checks.push(Check {
                name: "account",
                passed: false,
                detail: format!("there is no account named '{name}'"),
            }),
            Some(a) => {
                let usable = a.usable_on(crate::users::directory::today(now));
                checks.push(Check {
                    name: "account",
                    passed: usable,
                    detail: format!(
                        "{name} is {}{}",
                        a.status.as_str(),
                        a.expires
                            .map(|d| format!(", end date {d}"))
                            .unwrap_or_default()
                    ),
                });
                let standing = snap.standing.get(name).cloned().unwrap_or_default();
                checks.push(Check {
                    name: "MFA enrolled",
                    passed: standing.has_totp,
                    detail: if standing.has_totp {
                        "an authenticator is set up".into()
                    } else {
                        "no authenticator yet: cannot sign in".into()
                    },
                });
                let has_passkey = !standing.passkeys.is_empty();
                checks.push(Check {
                    name: "passkeys",
                    passed: true,
                    detail: if has_passkey {
                        format!(
                            "{} enrolled ({}): decided as for a sign-in with one",
                            standing.passkeys.len(),
                            standing.passkeys.join(", ")
                        )
                    } else {
                        "none: decided as for a sign-in with the authenticator code".into()
                    },
                });
                if usable && standing.has_password && standing.has_totp {
                    // The identity a signed-in session of this person would have now.
                    let mut probe = crate::session::Session::new(
                        name,
                        standing.epoch,
                        now,
                        crate::session::Stage::Complete,
                        true,
                        q.ip,
                        "/",
                    )?;
                    probe.passkey = has_passkey;
                    match accounts::identity_of(&probe, &snap, &policy, now) {
                        Ok(who) => {
                            if who.emergency {
                                checks.push(Check {
                                    name: "break-glass",
                                    passed: true,
                                    detail: "emergency access is in force: its roles are added"
                                        .into(),
                                });
                            }
                            identity = Some(who);
                        }
                        Err(why) => checks.push(Check {
                            name: "session",
                            passed: false,
                            detail: why.explain().into(),
                        }),
                    }
                }
            }
        }
    }
    // Query conditions are read from the URL; form conditions are not asked
    // about here (no body is sent), so a route that needs a form field is not chosen.
    let query: Vec<(String, String)> = uri
        .query()
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default();
    let facts = Facts {
        client_ip: q.ip,
        method: &method,
        host: &target.host,
        path: &target.path,
        identity: identity.as_ref(),
        device: q.device,
        device_people: &q.device_of,
        // Revocation is about one certificate on one connection: not asked here.
        device_revoked: false,
        query: &query,
        form: &[],
    };
    let decision = policy::decide_traced(&facts, &policy, &mut checks);
    let mut out = String::new();
    let verdict = match decision.verdict {
        Verdict::Allow => "ALLOW".to_string(),
        Verdict::Login => {
            if q.user.is_some() && identity.is_none() {
                "SIGN-IN REFUSED (the person cannot sign in)".to_string()
            } else {
                "SIGN IN FIRST".to_string()
            }
        }
        Verdict::Deny(r) => format!("DENY ({}) — {}", r.code(), r.explain()),
    };
    out.push_str(&format!("Decision: {verdict}\n"));
    match decision.route.and_then(|id| policy.routes.get(id)) {
        Some(r) => {
            let app = policy
                .apps
                .get(r.app)
                .map(|a| a.name.as_str())
                .unwrap_or("?");
            out.push_str(&format!(
                "Route:    {}:{} (app \"{app}\", path \"{}\")\n",
                policy.file.display(),
                r.line,
                r.path
            ));
        }
        None => out.push_str("Route:    none\n"),
    }
    out.push_str(&format!(
        "Request:  {} https://{}{} from {}\n",
        method, target.authority, target.path, q.ip
    ));
    out.push_str(&format!(
        "Person:   {}\n",
        q.user.unwrap_or("nobody signed in")
    ));
    out.push_str("Checks:\n");
    for c in &checks {
        out.push_str(&format!(
            "  [{}] {}: {}\n",
            if c.passed { "pass" } else { "FAIL" },
            c.name,
            c.detail
        ));
    }
    if decision.verdict == Verdict::Allow
        && let Some(route) = decision.route.and_then(|id| policy.routes.get(id))
    {
        out.push_str("While allowed, ward also enforces:\n");
        for (name, value) in enforced(&decision, route) {
            out.push_str(&format!("  {name:<15} {value}\n"));
        }
    }
    Ok(out)
}

/// The route's field rules for this person, each as `what` names it (its selector
/// on pages, its column / field name in CSV and JSON) and what is left of it.
fn field_rules(
    d: &policy::Decision<'_>,
    route: &policy::Route,
    what: impl Fn(&policy::FieldRule) -> Option<&str>,
) -> String {
    if !d.hide {
        return "none".into();
    }
    let rules: Vec<String> = route
        .fields
        .iter()
        .filter_map(|r| {
            let name = what(r)?;
            Some(match r.show {
                policy::Show::Nothing => format!("{name} hidden"),
                show => format!("{name} masked ({})", show.as_str()),
            })
        })
        .collect();
    if rules.is_empty() {
        return "none named (other answers are refused)".into();
    }
    format!("{} (other answers are refused)", rules.join(", "))
}

/// What the proxy carries out on an allowed request, from the same `Decision`.
fn enforced(d: &policy::Decision<'_>, route: &policy::Route) -> Vec<(&'static str, String)> {
    let plain = |d: std::time::Duration| humantime::format_duration(d).to_string();
    vec![
        (
            "second factor:",
            if d.passkey_needed {
                "a passkey or security key required (phishing-resistant), and this sign-in used one"
                    .into()
            } else if d.mfa_needed {
                "required, and this sign-in had one".into()
            } else {
                "not required".into()
            },
        ),
        (
            "idle logoff:",
            match d.idle_limit {
                Some(limit) => format!("after {} without use", plain(limit)),
                None => "none (nobody is signed in)".into(),
            },
        ),
        (
            "exports:",
            match d.export {
                policy::ExportRule::Allowed => "allowed".into(),
                policy::ExportRule::Granted(g) => {
                    format!("allowed under grant {} (\"{}\")", g.id, g.reason)
                }
                policy::ExportRule::Blocked(why) => format!(
                    "blocked: {}{}",
                    why.explain(),
                    if d.export_endpoint {
                        "; every answer of this route is an export"
                    } else {
                        ""
                    }
                ),
            },
        ),
        (
            "size cap:",
            match d.max_response {
                Some(n) => format!("answers over {n} bytes are refused"),
                None => "none".into(),
            },
        ),
        (
            "rate cap:",
            match d.rate_limit {
                Some((n, per)) => format!("{n} requests per {} per person", plain(per)),
                None => "none".into(),
            },
        ),
        (
            "redaction:",
            if d.redact {
                format!("JSON fields masked: {}", route.redact_fields.join(", "))
            } else {
                "none".into()
            },
        ),
        (
            "fields on pages:",
            field_rules(d, route, |r| Some(&r.selector)),
        ),
        (
            "CSV/JSON fields:",
            field_rules(d, route, |r| r.name.as_deref()),
        ),
        (
            "request bodies:",
            if d.no_body {
                "refused for this person (the page controls where data is sent)".into()
            } else {
                "allowed".into()
            },
        ),
        (
            "on pages:",
            match (route.watermark, route.print_blocked) {
                (true, true) => "watermark with the person, time and request; printing blocked",
                (true, false) => "watermark with the person, time and request",
                (false, true) => "printing blocked",
                (false, false) => "nothing added",
            }
            .into(),
        ),
    ]
}
