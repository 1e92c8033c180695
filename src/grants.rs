//! Time-limited exceptions the officer (or, for emergencies, a permitted
//! person) grants: exporting from named routes, and break-glass access.
//! Kept in `state/grants.json`, owner-only, next to the secrets.

use crate::auth::codes;
use crate::policy::routes::{Matcher, Pattern, RouteTable};
use crate::users::{Store, StoreFile};
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

    /// For an export grant: whether it covers `path` (canonical).
    pub fn covers(&self, path: &str) -> bool {
        match &self.kind {
            GrantKind::Export { route } => match Pattern::parse(route, false) {
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
            },
            GrantKind::BreakGlass { .. } => false,
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
