//! Time-limited exceptions the officer (or, for emergencies, a permitted
//! person) grants: exporting from named routes, opening a route one's roles do
//! not include (an approved access request), and break-glass access.
//! Kept in `state/grants.json`, owner-only, next to the secrets.

use crate::auth::codes;
use crate::policy::routes::{Matcher, Pattern, RouteTable};
use crate::users::{Directory, Store, StoreFile, directory};
use serde::{Deserialize, Serialize};

/// What a grant allows.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum GrantKind {
    /// Exports pass on paths matching this route pattern.
    Export {
        /// A route pattern such as `/reports/**`.
        route: String,
    },
    /// Access to an app's pages matching this route pattern, which the person's roles
    /// do not give them (an approved access request). Network, device and MFA rules
    /// still apply.
    Access {
        /// The app's name (a pattern alone would open every app's pages that match it).
        app: String,
        /// A route pattern such as `/billing/**`.
        route: String,
    },
    /// Emergency access: these roles are added for the grant's time.
    BreakGlass {
        /// Roles added.
        roles: Vec<String>,
    },
}

/// One grant.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// Short id, for revoking.
    pub id: String,
    /// The person it is for.
    pub user: String,
    /// What it allows.
    pub kind: GrantKind,
    /// Why, in the grantor's words (shown in the audit trail).
    pub reason: String,
    /// Who granted it.
    pub granted_by: String,
    /// Unix seconds it starts.
    pub start: i64,
    /// Unix seconds it ends.
    pub end: i64,
    /// Unix seconds it was revoked, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<i64>,
}

impl Grant {
    /// In force at `now`.
    pub fn active(&self, now: i64) -> bool {
        self.revoked.is_none() && self.start <= now && now < self.end
    }

    /// For an export or access grant: whether it covers `path` (canonical).
    pub fn covers(&self, path: &str) -> bool {
        match &self.kind {
            GrantKind::Export { route } | GrantKind::Access { route, .. } => {
                match Pattern::parse(route, false) {
                    Ok(pattern) => RouteTable::new(vec![Matcher {
                        pattern,
                        host: None,
                        methods: None,
                        fold_case: false,
                    }])
                    .lookup("", &http::Method::GET, path)
                    .route()
                    .is_some(),
                    Err(_) => false,
                }
            }
            GrantKind::BreakGlass { .. } => false,
        }
    }
}

impl GrantKind {
    /// A short name of the kind and what it covers, in words: (`export`, `/reports/**`).
    pub fn describe(&self) -> (&'static str, String) {
        match self {
            GrantKind::Export { route } => ("export", route.clone()),
            GrantKind::Access { app, route } => ("access", format!("{app} {route}")),
            GrantKind::BreakGlass { roles } => {
                ("break-glass", format!("roles {}", roles.join(", ")))
            }
        }
    }
}

/// Every grant ever made (revoked and expired ones stay, for the record).
#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq, Eq)]
#[serde(default)]
pub struct Grants {
    /// Oldest first.
    pub grants: Vec<Grant>,
}

impl StoreFile for Grants {
    const FILE: &'static str = "grants.json";
}

/// The store of grants.
pub type GrantStore = Store<Grants>;

/// A new grant id: short, random, easy to type.
pub fn new_id() -> Result<String, codes::RngError> {
    Ok(codes::random_token()?
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(8)
        .collect())
}

/// The active grants of `user` at `now`.
pub fn active_for<'a>(
    grants: &'a Grants,
    user: &'a str,
    now: i64,
) -> impl Iterator<Item = &'a Grant> + 'a {
    grants
        .grants
        .iter()
        .filter(move |g| g.user == user && g.active(now))
}

/// Shortest reason a grant takes: "export" alone tells an auditor nothing.
pub const MIN_REASON: usize = 10;

/// Longest a grant may last.
pub const MAX_SPAN_SECS: i64 = 30 * 24 * 3600;

/// Why a grant could not be made, read or changed.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    /// The person cannot sign in now.
    #[error("{0} cannot sign in (deactivated, terminated or past the end date)")]
    CannotSignIn(String),
    /// No such account.
    #[error("there is no account named '{0}'")]
    NoAccount(String),
    /// A reason that says too little for an auditor.
    #[error("give a reason of a few words (it goes in the audit trail)")]
    ShortReason,
    /// Not a duration.
    #[error("'{0}' is not a length of time; write it like 30m or 2h")]
    NotASpan(String),
    /// Zero, or longer than 30 days.
    #[error("a grant lasts more than zero and at most 30 days")]
    SpanOutOfRange,
    /// The route pattern does not read.
    #[error("route: {0}")]
    Route(crate::policy::routes::PatternError),
    /// No randomness for the grant's id.
    #[error(transparent)]
    Random(#[from] codes::RngError),
    /// The grants file.
    #[error(transparent)]
    Store(#[from] crate::users::secrets::StoreError),
}

/// The person a grant is for must exist and be able to sign in at `now`.
pub fn check_grantee(users: &Directory, name: &str, now: i64) -> Result<(), GrantError> {
    match users.get(name) {
        Some(a) if a.usable_on(directory::today(now)) => Ok(()),
        Some(_) => Err(GrantError::CannotSignIn(name.to_string())),
        None => Err(GrantError::NoAccount(name.to_string())),
    }
}

/// A grant's reason, trimmed and cut to 500 characters; refused when it says too little.
pub fn check_reason(reason: &str) -> Result<String, GrantError> {
    let r = reason.trim();
    if r.chars().count() < MIN_REASON {
        return Err(GrantError::ShortReason);
    }
    Ok(r.chars().take(500).collect())
}

/// How long a grant lasts, written like `30m` or `2h`: more than zero, at most 30 days.
pub fn parse_span(text: &str) -> Result<i64, GrantError> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|_| GrantError::NotASpan(text.to_string()))?;
    if d.is_zero() || d.as_secs() as i64 > MAX_SPAN_SECS {
        return Err(GrantError::SpanOutOfRange);
    }
    Ok(d.as_secs() as i64)
}

/// A new grant for `user` from `now` for `secs` seconds, with a fresh id; not saved yet, so
/// its audit record can be written first.
pub fn new_grant(
    user: &str,
    kind: GrantKind,
    reason: String,
    granted_by: &str,
    now: i64,
    secs: i64,
) -> Result<Grant, GrantError> {
    Ok(Grant {
        id: new_id()?,
        user: user.to_string(),
        kind,
        reason,
        granted_by: granted_by.to_string(),
        start: now,
        end: now + secs,
        revoked: None,
    })
}

/// Saves a grant made by `new_grant`.
pub fn save(store: &GrantStore, grant: &Grant) -> Result<(), GrantError> {
    Ok(store.update(|g| g.grants.push(grant.clone()))?)
}

/// Makes and saves a new grant for `user` from `now` for `secs` seconds.
pub fn issue(
    store: &GrantStore,
    user: &str,
    kind: GrantKind,
    reason: String,
    granted_by: &str,
    now: i64,
    secs: i64,
) -> Result<Grant, GrantError> {
    let grant = new_grant(user, kind, reason, granted_by, now, secs)?;
    save(store, &grant)?;
    Ok(grant)
}

/// An export grant as the officer asks for it (`ward grant export` or the console).
#[derive(Debug, Clone, Copy)]
pub struct ExportRequest<'a> {
    /// The person.
    pub user: &'a str,
    /// A route pattern such as `/reports/**`.
    pub route: &'a str,
    /// How long, such as `2h`.
    pub duration: &'a str,
    /// Why.
    pub reason: &'a str,
    /// Who grants it.
    pub granted_by: &'a str,
}

/// Checks an export grant by the same rules everywhere and makes it (not saved yet: see
/// `save`). Errors name the field at fault in words (`route: …`).
pub fn check_export(
    users: &Directory,
    req: ExportRequest<'_>,
    now: i64,
) -> Result<Grant, GrantError> {
    check_grantee(users, req.user, now)?;
    let route = req.route.trim();
    Pattern::parse(route, false).map_err(GrantError::Route)?;
    let reason = check_reason(req.reason)?;
    let secs = parse_span(req.duration)?;
    new_grant(
        req.user,
        GrantKind::Export {
            route: route.to_string(),
        },
        reason,
        req.granted_by,
        now,
        secs,
    )
}

/// The unrevoked grant `id`, if there is one (read before revoking, for its audit record).
pub fn unrevoked(store: &GrantStore, id: &str) -> Result<Option<Grant>, GrantError> {
    Ok(store
        .read()?
        .grants
        .into_iter()
        .find(|g| g.id == id && g.revoked.is_none()))
}

/// Ends the grant `id` at `now`; the grant as it now stands, or `None` if there is no
/// unrevoked grant with that id.
pub fn revoke(store: &GrantStore, id: &str, now: i64) -> Result<Option<Grant>, GrantError> {
    Ok(store.update(|g| {
        g.grants
            .iter_mut()
            .find(|x| x.id == id && x.revoked.is_none())
            .map(|x| {
                x.revoked = Some(now);
                x.clone()
            })
    })?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(kind: GrantKind, start: i64, end: i64) -> Grant {
        Grant {
            id: "g1".into(),
            user: "lee".into(),
            kind,
            reason: "r".into(),
            granted_by: "officer".into(),
            start,
            end,
            revoked: None,
        }
    }

    #[test]
    fn grants_cover_their_time_and_routes() {
        let g = grant(
            GrantKind::Export {
                route: "/reports/**".into(),
            },
            100,
            200,
        );
        assert!(!g.active(99));
        assert!(g.active(100));
        assert!(!g.active(200));
        assert!(g.covers("/reports/patients.csv"));
        assert!(!g.covers("/billing/x"));
        let mut revoked = g.clone();
        revoked.revoked = Some(150);
        assert!(!revoked.active(120));
        let bg = grant(
            GrantKind::BreakGlass {
                roles: vec!["emergency".into()],
            },
            0,
            10,
        );
        assert!(!bg.covers("/reports/x"));
    }

    #[test]
    fn store_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = GrantStore::open(dir.path()).unwrap();
        store
            .update(|g| {
                g.grants.push(grant(
                    GrantKind::Export {
                        route: "/x/**".into(),
                    },
                    0,
                    10,
                ))
            })
            .unwrap();
        let read = store.read().unwrap();
        assert_eq!(read.grants.len(), 1);
        assert_eq!(active_for(&read, "lee", 5).count(), 1);
        assert_eq!(active_for(&read, "kim", 5).count(), 0);
        assert!(new_id().unwrap().len() == 8);
    }
}
