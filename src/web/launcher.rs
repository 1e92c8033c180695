//! The app launcher: after sign-in with nowhere to return to, the apps this
//! person may use and a start page in each, worked out with `decide`.

use super::handoff::origin_of;
use super::kit::{self, PageRequest};
use super::state::Gate;
use crate::body::Body;
use crate::policy::routes::{Pattern, Segment};
use crate::policy::{self, Access, Facts, Identity, Policy, Verdict};
use http::{Method, Response, StatusCode};
use maud::html;
use std::net::IpAddr;

/// One app the person may open, and where to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    /// The app's name.
    pub app: String,
    /// The app's host, when it has its own.
    pub host: Option<String>,
    /// The start page's path.
    pub path: String,
}

/// The apps whose routes name `who`'s roles (or `who`) and let them in from
/// `client_ip`, in the policy's order, each with its first allowed GET route
/// without wildcards as the start page (else the
/// fixed part of its first allowed `/…/**` route). `host` stands in for apps
/// without a host of their own.
pub fn starts(policy: &Policy, who: &Identity, client_ip: IpAddr, host: &str) -> Vec<Start> {
    let mut out = Vec::new();
    for (index, app) in policy.apps.iter().enumerate() {
        let routes: Vec<&Pattern> = policy
            .table
            .matchers()
            .iter()
            .zip(&policy.routes)
            .filter(|(_, r)| r.app == index && names(&r.access, who))
            .map(|(m, _)| &m.pattern)
            .filter(|p| p.segments.iter().all(|s| matches!(s, Segment::Literal(_))))
            .collect();
        let exact = routes.iter().filter(|p| !p.globstar);
        let under = routes.iter().filter(|p| p.globstar);
        let app_host = app.host.as_deref().unwrap_or(host);
        let start = exact
            .map(|p| literal_path(p, false))
            .chain(under.map(|p| literal_path(p, true)))
            .find(|path| opens(policy, index, who, client_ip, app_host, path));
        if let Some(path) = start {
            out.push(Start {
                app: app.name.clone(),
                host: app.host.clone(),
                path,
            });
        }
    }
    out
}

/// Whether a route is for `who` by role or by name (a public page is nobody's app).
fn names(access: &Access, who: &Identity) -> bool {
    match access {
        Access::Public => false,
        Access::Members { roles, users } => {
            users.contains(&who.user) || who.roles.iter().any(|r| roles.contains(r))
        }
    }
}

/// The pattern's literal parts as a path; `dir` ends it with `/` (for `/…/**`).
fn literal_path(pattern: &Pattern, dir: bool) -> String {
    let parts: Vec<&str> = pattern
        .segments
        .iter()
        .filter_map(|s| match s {
            Segment::Literal(l) => Some(&**l),
            Segment::Star => None,
        })
        .collect();
    let path = format!("/{}", parts.join("/"));
    if dir && !path.ends_with('/') {
        format!("{path}/")
    } else {
        path
    }
}

/// Whether a GET of `path` is allowed to `who`, by a route of app `index`.
fn opens(
    policy: &Policy,
    index: usize,
    who: &Identity,
    ip: IpAddr,
    host: &str,
    path: &str,
) -> bool {
    // A device the app asks for (the person's own) is checked when the page is opened.
    let facts = Facts::on_own_device(ip, &Method::GET, host, path, Some(who));
    let d = policy::decide(&facts, policy);
    d.verdict == Verdict::Allow
        && d.route
            .and_then(|id| policy.routes.get(id))
            .is_some_and(|r| r.app == index)
}

/// The launcher for the signed-in person behind `req`, or the sign-in page.
pub fn serve(gate: &Gate, req: &PageRequest<'_>) -> Response<Body> {
    let Some(session) = kit::standing_session(gate, req) else {
        return kit::redirect("/.ward/login");
    };
    let snap = gate.accounts.snapshot();
    match crate::users::accounts::identity_of(&session, &snap, req.policy, req.now) {
        Ok(who) => page(
            req.policy,
            &who,
            req.client_ip,
            req.host,
            req.authority,
            true,
        ),
        Err(_) => kit::redirect("/.ward/login"),
    }
}

/// The launcher page for `who`; `console` adds the officer's console link
/// (served on ward's own host only).
pub fn page(
    policy: &Policy,
    who: &Identity,
    client_ip: IpAddr,
    host: &str,
    authority: &str,
    console: bool,
) -> Response<Body> {
    let starts = starts(policy, who, client_ip, host);
    let href = |s: &Start| match &s.host {
        Some(h) => format!("{}{}", origin_of(h, authority), s.path),
        None => s.path.clone(),
    };
    let body = html! {
        p { "You are signed in as " strong { (who.user) } "." }
        @if starts.is_empty() {
            p { "Your account does not open any of the practice's systems from here. If you need one, ask the practice's security officer." }
        } @else {
            p { "The systems you may use:" }
            ul.apps {
                @for s in &starts {
                    li { a href=(href(s)) { (s.app) } }
                }
            }
        }
        ul {
            @if console {
                li { a href="/.ward/officer/" { "Officer's console" } " (officers only)" }
            }
            li { a href="/.ward/logout" { "Sign out" } }
        }
    };
    super::page::page(StatusCode::OK, &policy.practice, "Your systems", body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const POLICY: &str = r#"
practice = "Test Clinic"
[server]
listen = "127.0.0.1:0"
[networks]
office = ["203.0.113.0/24"]
[roles]
clinician = {}
biller = {}
[[apps]]
name = "ehr"
host = "ehr.example"
upstream = "http://127.0.0.1:9"
[[apps]]
name = "billing"
host = "billing.example"
upstream = "http://127.0.0.1:9"
[[apps]]
name = "lab"
host = "lab.example"
upstream = "http://127.0.0.1:9"
[[routes]]
app = "ehr"
path = "/patients/*/chart"
allow_roles = ["clinician"]
[[routes]]
app = "ehr"
path = "/logo.png"
allow = "public"
[[routes]]
app = "ehr"
path = "/home"
allow_roles = ["clinician"]
[[routes]]
app = "billing"
path = "/billing/**"
allow_roles = ["biller"]
[[routes]]
app = "lab"
path = "/**"
allow_roles = ["clinician"]
from = ["office"]
"#;

    fn who(roles: &[&str]) -> Identity {
        Identity {
            user: "p".into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            allow_from: None,
            mfa: true,
            passkey: true,
            emergency: false,
            vendor: false,
            device_required: false,
            export_grants: Vec::new(),
            access_grants: Vec::new(),
        }
    }

    fn starts_of(roles: &[&str], ip: &str) -> Vec<(String, String)> {
        let policy = match crate::config::load_str(
            Path::new("t.toml"),
            POLICY,
            crate::config::Certs::Skip,
        ) {
            Ok(l) => l.policy,
            Err(d) => panic!("{d}"),
        };
        let ip = ip.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        starts(&policy, &who(roles), ip, "localhost")
            .into_iter()
            .map(|s| (s.app, s.path))
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, p)| (a.to_string(), p.to_string()))
            .collect()
    }

    #[test]
    fn each_app_the_roles_open_with_a_start_page_without_wildcards() {
        // ehr: /patients/*/chart has a wildcard, /logo.png is public: /home.
        assert_eq!(
            starts_of(&["clinician"], "192.0.2.1"),
            pairs(&[("ehr", "/home")])
        );
        // From the office the lab opens too, at the fixed part of /**.
        assert_eq!(
            starts_of(&["clinician"], "203.0.113.9"),
            pairs(&[("ehr", "/home"), ("lab", "/")])
        );
        assert_eq!(
            starts_of(&["biller"], "192.0.2.1"),
            pairs(&[("billing", "/billing/")])
        );
        assert_eq!(
            starts_of(&["clinician", "biller"], "192.0.2.1"),
            pairs(&[("ehr", "/home"), ("billing", "/billing/")])
        );
        assert!(starts_of(&[], "192.0.2.1").is_empty());
    }
}
