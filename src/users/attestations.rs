//! The officer's sign-off in the periodic access review: for each person, keep, change or
//! remove their access, who decided and when. A person not reviewed within the policy's
//! `[review] period` is overdue. Kept in `state/attestations.json`, owner-only.

use crate::users::directory::{Directory, today};
use crate::users::{Store, StoreFile};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The officer's decision about one person's access.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The access is right as it is.
    Keep,
    /// The access must change (roles, networks, end date).
    Change,
    /// The access must go (deactivate or terminate).
    Remove,
}

impl Decision {
    /// The word on forms, in the trail and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Keep => "keep",
            Decision::Change => "change",
            Decision::Remove => "remove",
        }
    }

    /// `keep`, `change` or `remove`.
    pub fn parse(s: &str) -> Option<Decision> {
        match s.trim() {
            "keep" => Some(Decision::Keep),
            "change" => Some(Decision::Change),
            "remove" => Some(Decision::Remove),
            _ => None,
        }
    }
}

/// One attestation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Attestation {
    /// The person whose access was reviewed.
    pub user: String,
    /// The officer who reviewed it.
    pub by: String,
    /// Unix seconds.
    pub at: i64,
    /// What the officer decided.
    pub decision: Decision,
    /// The officer's note (what to change, why remove).
    #[serde(default)]
    pub note: String,
}

/// Every attestation (oldest first) and when each person was last alerted as overdue.
#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq, Eq)]
#[serde(default)]
pub struct Attestations {
    /// Oldest first.
    pub attestations: Vec<Attestation>,
    /// Per person, unix seconds of the last "review overdue" alert.
    pub overdue_alerted: BTreeMap<String, i64>,
    /// Unix seconds ward began watching reviews: a person never reviewed falls due one
    /// period after it (so a new installation does not flag and alert everyone at once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracking_since: Option<i64>,
}

impl StoreFile for Attestations {
    const FILE: &'static str = "attestations.json";
}

/// The store of attestations.
pub type AttestationStore = Store<Attestations>;

/// Longest note kept.
const MAX_NOTE: usize = 500;

/// Why an attestation was not taken.
#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    /// Not keep, change or remove.
    #[error("choose keep, change or remove")]
    NoDecision,
    /// Change or remove without saying what.
    #[error("say in the note what must change, or why the access goes")]
    NoNote,
    /// No such account.
    #[error("there is no account named '{0}'")]
    NoAccount(String),
    /// The file.
    #[error(transparent)]
    Store(#[from] crate::users::secrets::StoreError),
}

/// Checks an attestation by `officer` of `user`'s access (not saved: record it first).
pub fn check(
    users: &Directory,
    user: &str,
    officer: &str,
    decision: &str,
    note: &str,
    now: i64,
) -> Result<Attestation, AttestError> {
    if users.get(user).is_none() {
        return Err(AttestError::NoAccount(user.to_string()));
    }
    let decision = Decision::parse(decision).ok_or(AttestError::NoDecision)?;
    let note: String = note.trim().chars().take(MAX_NOTE).collect();
    if decision != Decision::Keep && note.is_empty() {
        return Err(AttestError::NoNote);
    }
    Ok(Attestation {
        user: user.to_string(),
        by: officer.to_string(),
        at: now,
        decision,
        note,
    })
}

/// Saves an attestation made by `check`.
pub fn save(store: &AttestationStore, a: &Attestation) -> Result<(), AttestError> {
    Ok(store.update(|all| all.attestations.push(a.clone()))?)
}

impl Attestations {
    /// The latest attestation of `user`, if any.
    pub fn last_for(&self, user: &str) -> Option<&Attestation> {
        self.attestations.iter().rev().find(|a| a.user == user)
    }

    /// The accounts that can sign in and are not reviewed within `period` seconds at `now`,
    /// each with when the review fell due (`None`: never reviewed, and one period has passed
    /// since ward began watching reviews).
    pub fn overdue(&self, users: &Directory, period: i64, now: i64) -> Vec<(String, Option<i64>)> {
        let day = today(now);
        let first_due = self.tracking_since.unwrap_or(now) + period;
        users
            .accounts
            .values()
            .filter(|a| a.usable_on(day))
            .filter_map(|a| match self.last_for(&a.name) {
                Some(last) if now - last.at <= period => None,
                Some(last) => Some((a.name.clone(), Some(last.at + period))),
                None if now > first_due => Some((a.name.clone(), None)),
                None => None,
            })
            .collect()
    }
}

/// The overdue people not alerted within the last `period`, now marked alerted (so each is
/// alerted once per period, whichever instance looks first).
pub fn take_overdue_alerts(
    store: &AttestationStore,
    users: &Directory,
    period: i64,
    now: i64,
) -> Result<Vec<(String, Option<i64>)>, AttestError> {
    Ok(store.update(|all| {
        all.tracking_since.get_or_insert(now);
        let due: Vec<(String, Option<i64>)> = all
            .overdue(users, period, now)
            .into_iter()
            .filter(|(u, _)| all.overdue_alerted.get(u).is_none_or(|t| now - t >= period))
            .collect();
        for (u, _) in &due {
            all.overdue_alerted.insert(u.clone(), now);
        }
        due
    })?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> Directory {
        crate::users::directory::parse(
            std::path::Path::new("users.toml"),
            "[users.jo]\ndisplay_name = \"Jo\"\nroles = [\"vendor\"]\n\
             [users.kim]\ndisplay_name = \"Kim\"\nroles = [\"clinician\"]\n\
             [users.old]\ndisplay_name = \"Old\"\nroles = []\nstatus = \"terminated\"\n",
        )
        .unwrap()
    }

    #[test]
    fn decisions_need_a_note_unless_kept() {
        let u = users();
        assert!(check(&u, "jo", "boss", "keep", "", 0).is_ok());
        assert!(matches!(
            check(&u, "jo", "boss", "remove", " ", 0),
            Err(AttestError::NoNote)
        ));
        assert!(matches!(
            check(&u, "jo", "boss", "delete", "x", 0),
            Err(AttestError::NoDecision)
        ));
        assert!(matches!(
            check(&u, "nobody", "boss", "keep", "", 0),
            Err(AttestError::NoAccount(_))
        ));
    }

    #[test]
    fn overdue_after_the_period_and_alerted_once_per_period() {
        let u = users();
        let dir = tempfile::tempdir().unwrap();
        let store = AttestationStore::open(dir.path()).unwrap();
        let period = 100;
        save(&store, &check(&u, "jo", "boss", "keep", "", 1000).unwrap()).unwrap();
        // Never reviewed is not overdue until ward has watched reviews for a period.
        assert!(store.read().unwrap().overdue(&u, period, 1050).is_empty());
        assert!(
            take_overdue_alerts(&store, &u, period, 950)
                .unwrap()
                .is_empty()
        );
        let all = store.read().unwrap();
        assert_eq!(all.tracking_since, Some(950));
        // kim was never reviewed; a terminated account needs no review.
        assert_eq!(
            all.overdue(&u, period, 1051),
            vec![("kim".to_string(), None)]
        );
        assert_eq!(
            all.overdue(&u, period, 1101),
            vec![("jo".to_string(), Some(1100)), ("kim".to_string(), None)]
        );
        assert_eq!(
            take_overdue_alerts(&store, &u, period, 1101).unwrap().len(),
            2
        );
        assert!(
            take_overdue_alerts(&store, &u, period, 1150)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            take_overdue_alerts(&store, &u, period, 1201).unwrap().len(),
            2
        );
        // Reviewed again: no longer overdue.
        save(
            &store,
            &check(&u, "jo", "boss", "change", "drop billing", 1300).unwrap(),
        )
        .unwrap();
        assert_eq!(store.read().unwrap().overdue(&u, period, 1310).len(), 1);
    }
}
