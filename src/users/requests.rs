//! Access requests: a person refused a page (or a download) asks the officer for access, with
//! a reason and a wished-for time. A request grants nothing by itself: an officer approves it
//! (it becomes a grant, bounded like every grant, with the request's reason and the approver)
//! or denies it with a note. Kept in `state/requests.json`, owner-only, next to the grants.

use crate::auth::codes;
use crate::users::directory::{self, Status};
use crate::users::grants::{self, Grant, GrantError, GrantKind};
use crate::users::{Directory, Store, StoreFile};
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

/// What a person asks for.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Wanted {
    /// To open an app's pages matching a route pattern (the route that refused them).
    Access {
        /// The app's name.
        app: String,
        /// The route's pattern, such as `/billing/**`.
        route: String,
    },
    /// To download from pages matching a route pattern.
    Export {
        /// The route's pattern.
        route: String,
    },
    /// An account past its end date asks for a later one (approving it changes `expires`
    /// in users.toml, as `ward user expire --on` does; it makes no grant).
    MoreTime {
        /// The last day asked for, `YYYY-MM-DD`.
        until: String,
    },
}

impl Wanted {
    /// In words, for pages, the trail and alerts (never a path: a pattern names no patient).
    pub fn describe(&self) -> String {
        match self {
            Wanted::Access { app, route } => format!("access to {app} {route}"),
            Wanted::Export { route } => format!("export from {route}"),
            Wanted::MoreTime { until } => format!("more time, until {until}"),
        }
    }

    /// Whether a request for `other` asks for the same thing (a person waits for one
    /// decision on more time at once, whatever the day).
    fn same_ask(&self, other: &Wanted) -> bool {
        match (self, other) {
            (Wanted::MoreTime { .. }, Wanted::MoreTime { .. }) => true,
            (a, b) => a == b,
        }
    }

    /// The grant this becomes when approved; `None` for more time, which makes no grant.
    fn grant_kind(&self) -> Option<GrantKind> {
        Some(match self {
            Wanted::Access { app, route } => GrantKind::Access {
                app: app.clone(),
                route: route.clone(),
            },
            Wanted::Export { route } => GrantKind::Export {
                route: route.clone(),
            },
            Wanted::MoreTime { .. } => return None,
        })
    }
}

/// Where a request stands.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Standing {
    /// Waiting for an officer.
    Pending,
    /// Approved: `grant` is the grant it became.
    Approved {
        /// The approving officer.
        by: String,
        /// Unix seconds of the decision.
        at: i64,
        /// The grant's id.
        grant: String,
        /// Unix seconds the grant ends.
        until: i64,
    },
    /// Denied, with the officer's note for the person.
    Denied {
        /// The officer.
        by: String,
        /// Unix seconds of the decision.
        at: i64,
        /// Why, for the person.
        note: String,
    },
}

/// One request.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AccessRequest {
    /// Short id, for `ward request approve ID`.
    pub id: String,
    /// Who asks.
    pub user: String,
    /// What for.
    pub wanted: Wanted,
    /// Why, in the person's words (may name a patient: the trail and the officer only).
    pub reason: String,
    /// How long the person asks for, in seconds.
    pub wished_secs: i64,
    /// Unix seconds it was made.
    pub made: i64,
    /// Where it stands.
    #[serde(flatten)]
    pub standing: Standing,
    /// The person has been shown the decision.
    #[serde(default)]
    pub told: bool,
}

impl AccessRequest {
    /// Still waiting for an officer.
    pub fn is_pending(&self) -> bool {
        self.standing == Standing::Pending
    }
}

/// Every request ever made (decided ones stay, for the record).
#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq, Eq)]
#[serde(default)]
pub struct Requests {
    /// Oldest first.
    pub requests: Vec<AccessRequest>,
}

impl StoreFile for Requests {
    const FILE: &'static str = "requests.json";
}

/// The store of requests.
pub type RequestStore = Store<Requests>;

/// Most requests one person may have waiting at once, so the officer is not flooded.
pub const MAX_PENDING: usize = 5;

/// Longest note a denial carries.
const MAX_NOTE: usize = 500;

/// Why a request could not be made or decided.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The same thing is already asked for and waiting.
    #[error("you have already asked for this; the security officer has not decided yet")]
    AlreadyPending,
    /// Too many requests waiting.
    #[error(
        "you have {MAX_PENDING} requests waiting already; wait for the security officer to decide on them"
    )]
    TooMany,
    /// No such request waiting.
    #[error("there is no request '{0}' waiting for a decision; see `ward request list`")]
    NotPending(String),
    /// An officer deciding on their own request.
    #[error("{0} cannot decide on their own request; another officer must")]
    OwnRequest(String),
    /// The officer's time is longer than the person asked for.
    #[error("the person asked for at most {0}; approve for that long or less")]
    LongerThanAsked(String),
    /// A request for more time approved as if it were for access, or the other way round.
    #[error(
        "request '{0}' asks for more time: approve it with --until YYYY-MM-DD (or less than asked)"
    )]
    AsksForMoreTime(String),
    /// A request for access approved as if it were for more time.
    #[error("request '{0}' is not for more time; approve it without --until")]
    NotForMoreTime(String),
    /// The last day asked for, or given, is not a day ahead within the limit.
    #[error("{0}")]
    BadDay(String),
    /// The account was deactivated, terminated or removed since it asked.
    #[error(
        "the account '{0}' is no longer active (deactivated, terminated or removed); nothing to extend"
    )]
    NotActive(String),
    /// A denial without a note.
    #[error("give the person a note saying why (they see it on their next visit)")]
    NoNote,
    /// Another officer (or the other of console and command line) decided it first.
    #[error("request '{0}' was decided meanwhile")]
    DecidedMeanwhile(String),
    /// The reason, the time, the person, the randomness or the grants file.
    #[error(transparent)]
    Grant(#[from] GrantError),
    /// The requests file.
    #[error(transparent)]
    Store(#[from] crate::users::secrets::StoreError),
}

impl From<codes::RngError> for RequestError {
    fn from(e: codes::RngError) -> Self {
        RequestError::Grant(GrantError::Random(e))
    }
}

/// A new request by `user`, checked against those already waiting (not saved: see `submit`).
pub fn check_new(
    existing: &Requests,
    user: &str,
    wanted: Wanted,
    reason: &str,
    wished: &str,
    now: i64,
) -> Result<AccessRequest, RequestError> {
    let reason = grants::check_reason(reason)?;
    let wished_secs = grants::parse_span(wished)?;
    pending_request(existing, user, wanted, reason, wished_secs, now)
}

/// A request waiting for a decision, unless `user` is waiting already for the same thing or
/// for too many.
fn pending_request(
    existing: &Requests,
    user: &str,
    wanted: Wanted,
    reason: String,
    wished_secs: i64,
    now: i64,
) -> Result<AccessRequest, RequestError> {
    let mine = || {
        existing
            .requests
            .iter()
            .filter(move |r| r.user == user && r.is_pending())
    };
    if mine().any(|r| r.wanted.same_ask(&wanted)) {
        return Err(RequestError::AlreadyPending);
    }
    if mine().count() >= MAX_PENDING {
        return Err(RequestError::TooMany);
    }
    Ok(AccessRequest {
        id: grants::new_id()?,
        user: user.to_string(),
        wanted,
        reason,
        wished_secs,
        made: now,
        standing: Standing::Pending,
        told: false,
    })
}

/// Saves a request made by `check_new`, checked again under the file's lock (two tabs).
pub fn submit(store: &RequestStore, request: &AccessRequest) -> Result<(), RequestError> {
    store.update(|all| {
        let again = all.requests.iter().any(|r| {
            r.user == request.user && r.is_pending() && r.wanted.same_ask(&request.wanted)
        });
        if again {
            return Err(RequestError::AlreadyPending);
        }
        all.requests.push(request.clone());
        Ok(())
    })?
}

/// The requests waiting for a decision, oldest first.
pub fn pending(all: &Requests) -> impl Iterator<Item = &AccessRequest> {
    all.requests.iter().filter(|r| r.is_pending())
}

/// The waiting request `id`, unless `officer` made it.
fn waiting<'a>(
    all: &'a Requests,
    id: &str,
    officer: &str,
) -> Result<&'a AccessRequest, RequestError> {
    let r = all
        .requests
        .iter()
        .find(|r| r.id == id && r.is_pending())
        .ok_or_else(|| RequestError::NotPending(id.to_string()))?;
    if r.user == officer {
        return Err(RequestError::OwnRequest(officer.to_string()));
    }
    Ok(r)
}

/// The grant that approving request `id` makes (not saved: write its audit record first,
/// then `grants::save` and `record_approval`). `duration` shortens the wished-for time.
pub fn check_approval(
    all: &Requests,
    users: &Directory,
    id: &str,
    officer: &str,
    duration: Option<&str>,
    now: i64,
) -> Result<(AccessRequest, Grant), RequestError> {
    let r = waiting(all, id, officer)?;
    grants::check_grantee(users, &r.user, now)?;
    let secs = match duration.map(str::trim).filter(|d| !d.is_empty()) {
        Some(d) => {
            let secs = grants::parse_span(d)?;
            if secs > r.wished_secs {
                return Err(RequestError::LongerThanAsked(span_words(r.wished_secs)));
            }
            secs
        }
        None => r.wished_secs,
    };
    let Some(kind) = r.wanted.grant_kind() else {
        return Err(RequestError::AsksForMoreTime(r.id.clone()));
    };
    let reason = format!("request {}: {}", r.id, r.reason);
    let grant = grants::new_grant(
        &r.user,
        kind,
        reason.chars().take(600).collect(),
        officer,
        now,
        secs,
    )?;
    Ok((r.clone(), grant))
}

/// Most days past today a person may ask their account to run to (the officer may give less).
pub const MAX_MORE_DAYS: i32 = 90;

/// A day after `today` and at most `MAX_MORE_DAYS` ahead.
fn day_ahead(text: &str, today: Date) -> Result<Date, RequestError> {
    let day = directory::parse_day(text.trim()).map_err(|_| {
        RequestError::BadDay("give the last day as YYYY-MM-DD, like 2027-06-30".into())
    })?;
    let latest = today
        .checked_add(jiff::Span::new().days(MAX_MORE_DAYS))
        .unwrap_or(today);
    if day < today || day > latest {
        return Err(RequestError::BadDay(format!(
            "the last day must be between today ({today}) and {latest}, at most {MAX_MORE_DAYS} days ahead"
        )));
    }
    Ok(day)
}

/// A new request by `user`, whose account is past its end date, to run until `until`
/// (one such request waiting per person; not saved: see `submit`).
pub fn check_more_time(
    existing: &Requests,
    user: &str,
    reason: &str,
    until: &str,
    now: i64,
) -> Result<AccessRequest, RequestError> {
    let reason = grants::check_reason(reason)?;
    let day = day_ahead(until, directory::today(now))?;
    let wanted = Wanted::MoreTime {
        until: day.to_string(),
    };
    pending_request(existing, user, wanted, reason, 0, now)
}

/// The new last day that approving request `id` (for more time) gives: the day asked, or
/// `until` when the officer gives less. Not saved: write the audit record, change the end
/// date with `Admin::set_expiry` (as `ward user expire --on`), then `record_extension`.
pub fn check_more_time_approval(
    all: &Requests,
    users: &Directory,
    id: &str,
    officer: &str,
    until: Option<&str>,
    now: i64,
) -> Result<(AccessRequest, Date), RequestError> {
    let r = waiting(all, id, officer)?;
    let Wanted::MoreTime { until: asked } = &r.wanted else {
        return Err(RequestError::NotForMoreTime(r.id.clone()));
    };
    match users.get(&r.user) {
        Some(a) if a.status == Status::Active => {}
        _ => return Err(RequestError::NotActive(r.user.clone())),
    }
    let today = directory::today(now);
    let asked = directory::parse_day(asked).map_err(|e| RequestError::BadDay(e.to_string()))?;
    let day = match until.map(str::trim).filter(|d| !d.is_empty()) {
        Some(d) => {
            let day = day_ahead(d, today)?;
            if day > asked {
                return Err(RequestError::BadDay(format!(
                    "the person asked until {asked}; give that day or an earlier one"
                )));
            }
            day
        }
        None => asked,
    };
    Ok((r.clone(), day))
}

/// Marks request `id` (for more time) approved by `officer` at `now`, the account now
/// running until the end of `day`; false if it was decided meanwhile.
pub fn record_extension(
    store: &RequestStore,
    id: &str,
    officer: &str,
    day: Date,
    now: i64,
) -> Result<bool, RequestError> {
    let until = day
        .tomorrow()
        .ok()
        .and_then(|d| jiff::tz::TimeZone::UTC.to_timestamp(d.at(0, 0, 0, 0)).ok())
        .map(|t| t.as_second() - 1)
        .unwrap_or(now);
    settle(
        store,
        id,
        Standing::Approved {
            by: officer.to_string(),
            at: now,
            grant: String::new(),
            until,
        },
    )
}

/// Marks request `id` approved by `grant`; false if it was decided meanwhile.
pub fn record_approval(
    store: &RequestStore,
    id: &str,
    grant: &Grant,
) -> Result<bool, RequestError> {
    settle(
        store,
        id,
        Standing::Approved {
            by: grant.granted_by.clone(),
            at: grant.start,
            grant: grant.id.clone(),
            until: grant.end,
        },
    )
}

/// Carries out a checked approval: saves `grant`, then marks request `id` approved by it.
/// If the request was decided meanwhile, or cannot be marked, the grant just saved is revoked
/// at once, so a grant never stands without its approved request.
pub fn approve(
    store: &RequestStore,
    grant_store: &grants::GrantStore,
    id: &str,
    grant: &Grant,
    now: i64,
) -> Result<(), RequestError> {
    grants::save(grant_store, grant)?;
    match record_approval(store, id, grant) {
        Ok(true) => Ok(()),
        other => {
            let _ = grants::revoke(grant_store, &grant.id, now);
            Err(match other {
                Err(e) => e,
                _ => RequestError::DecidedMeanwhile(id.to_string()),
            })
        }
    }
}

/// Sets the standing of request `id` while it is still waiting; false if it was decided meanwhile.
fn settle(store: &RequestStore, id: &str, standing: Standing) -> Result<bool, RequestError> {
    Ok(store.update(|all| {
        match all
            .requests
            .iter_mut()
            .find(|r| r.id == id && r.is_pending())
        {
            Some(r) => {
                r.standing = standing;
                true
            }
            None => false,
        }
    })?)
}

/// Checks a denial of request `id` by `officer` with `note`; the request and the note as kept.
pub fn check_denial(
    all: &Requests,
    id: &str,
    officer: &str,
    note: &str,
) -> Result<(AccessRequest, String), RequestError> {
    let r = waiting(all, id, officer)?;
    let note = note.trim();
    if note.is_empty() {
        return Err(RequestError::NoNote);
    }
    Ok((r.clone(), note.chars().take(MAX_NOTE).collect()))
}

/// Marks request `id` denied; false if it was decided meanwhile.
pub fn record_denial(
    store: &RequestStore,
    id: &str,
    officer: &str,
    note: &str,
    now: i64,
) -> Result<bool, RequestError> {
    settle(
        store,
        id,
        Standing::Denied {
            by: officer.to_string(),
            at: now,
            note: note.to_string(),
        },
    )
}

/// `user`'s decided requests not shown to them yet, now marked as shown (each is told once).
pub fn take_news(store: &RequestStore, user: &str) -> Result<Vec<AccessRequest>, RequestError> {
    Ok(store.update(|all| {
        let mut news = Vec::new();
        for r in all
            .requests
            .iter_mut()
            .filter(|r| r.user == user && !r.told && !r.is_pending())
        {
            r.told = true;
            news.push(r.clone());
        }
        news
    })?)
}

/// How long a request asks for, in words: a span, or for more time the last day.
pub fn wished_words(r: &AccessRequest) -> String {
    match &r.wanted {
        Wanted::MoreTime { until } => format!("until {until}"),
        _ => span_words(r.wished_secs),
    }
}

/// Seconds as the shortest plain words (`2h`, `3days`).
pub fn span_words(secs: i64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(secs.max(0) as u64)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> Directory {
        crate::users::directory::parse(
            std::path::Path::new("users.toml"),
            "[users.jo]\ndisplay_name = \"Jo\"\nroles = [\"vendor\"]\n[users.boss]\ndisplay_name = \"B\"\nroles = [\"officer\"]\n",
        )
        .unwrap()
    }

    fn billing() -> Wanted {
        Wanted::Access {
            app: "ehr".into(),
            route: "/billing/**".into(),
        }
    }

    #[test]
    fn one_pending_request_per_thing_and_a_few_in_all() {
        let mut all = Requests::default();
        let r = check_new(&all, "jo", billing(), "month-end statements", "8h", 100).unwrap();
        assert_eq!(r.wished_secs, 8 * 3600);
        all.requests.push(r);
        assert!(matches!(
            check_new(&all, "jo", billing(), "month-end statements", "8h", 101),
            Err(RequestError::AlreadyPending)
        ));
        // Someone else may ask for the same.
        check_new(&all, "kim", billing(), "month-end statements", "8h", 101).unwrap();
        for i in 1..MAX_PENDING {
            let w = Wanted::Export {
                route: format!("/r{i}/**"),
            };
            all.requests
                .push(check_new(&all, "jo", w, "month-end statements", "1h", 102).unwrap());
        }
        let w = Wanted::Export {
            route: "/more/**".into(),
        };
        assert!(matches!(
            check_new(&all, "jo", w, "month-end statements", "1h", 103),
            Err(RequestError::TooMany)
        ));
    }

    #[test]
    fn reasons_and_times_are_checked() {
        let all = Requests::default();
        for (reason, wished) in [
            ("short", "8h"),
            ("month-end statements", "31d"),
            ("month-end statements", "0s"),
            ("month-end statements", "soon"),
        ] {
            assert!(
                check_new(&all, "jo", billing(), reason, wished, 0).is_err(),
                "{reason} {wished}"
            );
        }
        let long = "x".repeat(5000);
        let r = check_new(&all, "jo", billing(), &long, "1h", 0).unwrap();
        assert_eq!(r.reason.chars().count(), 500);
    }

    #[test]
    fn an_approval_decided_meanwhile_leaves_no_grant_standing() {
        let tmp = tempfile::tempdir().unwrap();
        let store = RequestStore::open(tmp.path()).unwrap();
        let grant_store = grants::GrantStore::open(tmp.path()).unwrap();
        let r = check_new(
            &Requests::default(),
            "jo",
            billing(),
            "month-end statements",
            "8h",
            100,
        )
        .unwrap();
        let id = r.id.clone();
        store.update(|all| all.requests.push(r)).unwrap();
        let all = store.read().unwrap();
        let (_, first) = check_approval(&all, &dir(), &id, "boss", None, 200).unwrap();
        let (_, second) = check_approval(&all, &dir(), &id, "boss", None, 201).unwrap();
        approve(&store, &grant_store, &id, &first, 200).unwrap();
        // The second officer checked the request while it still waited; it was decided since.
        assert!(matches!(
            approve(&store, &grant_store, &id, &second, 201),
            Err(RequestError::DecidedMeanwhile(_))
        ));
        let saved = grant_store.read().unwrap().grants;
        let standing: Vec<&str> = saved
            .iter()
            .filter(|g| g.revoked.is_none())
            .map(|g| g.id.as_str())
            .collect();
        assert_eq!(standing, [first.id.as_str()]);
        assert_eq!(saved.len(), 2);
    }

    #[test]
    fn approval_is_bounded_by_the_wish_and_never_ones_own() {
        let mut all = Requests::default();
        let r = check_new(&all, "jo", billing(), "month-end statements", "8h", 100).unwrap();
        let id = r.id.clone();
        all.requests.push(r);
        let users = dir();
        assert!(matches!(
            check_approval(&all, &users, &id, "jo", None, 200),
            Err(RequestError::OwnRequest(_))
        ));
        assert!(matches!(
            check_approval(&all, &users, &id, "boss", Some("9h"), 200),
            Err(RequestError::LongerThanAsked(_))
        ));
        let (_, g) = check_approval(&all, &users, &id, "boss", Some("2h"), 200).unwrap();
        assert_eq!((g.start, g.end), (200, 200 + 7200));
        assert_eq!(g.granted_by, "boss");
        assert!(g.reason.contains("month-end statements"), "{}", g.reason);
        assert_eq!(
            g.kind,
            GrantKind::Access {
                app: "ehr".into(),
                route: "/billing/**".into()
            }
        );
        let (_, g) = check_approval(&all, &users, &id, "boss", None, 200).unwrap();
        assert_eq!(g.end, 200 + 8 * 3600);
        assert!(matches!(
            check_approval(&all, &users, "nope", "boss", None, 200),
            Err(RequestError::NotPending(_))
        ));
        assert!(matches!(
            check_denial(&all, &id, "jo", "no"),
            Err(RequestError::OwnRequest(_))
        ));
        assert!(matches!(
            check_denial(&all, &id, "boss", "  "),
            Err(RequestError::NoNote)
        ));
    }

    #[test]
    fn more_time_is_one_request_at_a_time_bounded_and_never_ones_own() {
        // 2027-04-10T00:00:00Z.
        let now = 1_807_315_200;
        let today = directory::today(now);
        let mut all = Requests::default();
        for until in ["2027-04-09", "2027-07-10", "soon", ""] {
            assert!(
                check_more_time(&all, "jo", "month-end statements", until, now).is_err(),
                "{until}"
            );
        }
        assert!(check_more_time(&all, "jo", "short", "2027-05-01", now).is_err());
        let r = check_more_time(&all, "jo", "month-end statements", "2027-07-09", now).unwrap();
        assert_eq!(r.wanted.describe(), "more time, until 2027-07-09");
        let id = r.id.clone();
        all.requests.push(r);
        // One waiting per person, whatever the day; an access request may wait beside it.
        assert!(matches!(
            check_more_time(&all, "jo", "month-end statements", "2027-05-01", now),
            Err(RequestError::AlreadyPending)
        ));
        check_new(&all, "jo", billing(), "month-end statements", "8h", now).unwrap();

        let mut users = dir();
        assert!(matches!(
            check_more_time_approval(&all, &users, &id, "jo", None, now),
            Err(RequestError::OwnRequest(_))
        ));
        assert!(matches!(
            check_approval(&all, &users, &id, "boss", None, now),
            Err(RequestError::AsksForMoreTime(_))
        ));
        assert!(matches!(
            check_more_time_approval(&all, &users, &id, "boss", Some("2027-07-10"), now),
            Err(RequestError::BadDay(_))
        ));
        let (_, day) =
            check_more_time_approval(&all, &users, &id, "boss", Some("2027-05-01"), now).unwrap();
        assert_eq!(day.to_string(), "2027-05-01");
        let (_, day) = check_more_time_approval(&all, &users, &id, "boss", None, now).unwrap();
        assert_eq!(day.to_string(), "2027-07-09");
        assert!(day > today);
        // Deactivated since: nothing to extend.
        if let Some(a) = users.accounts.get_mut("jo") {
            a.status = Status::Deactivated;
        }
        assert!(matches!(
            check_more_time_approval(&all, &users, &id, "boss", None, now),
            Err(RequestError::NotActive(_))
        ));
    }

    #[test]
    fn decisions_are_kept_and_told_once() {
        let dirpath = tempfile::tempdir().unwrap();
        let store = RequestStore::open(dirpath.path()).unwrap();
        let r = check_new(
            &store.read().unwrap(),
            "jo",
            billing(),
            "month-end statements",
            "8h",
            1,
        )
        .unwrap();
        submit(&store, &r).unwrap();
        assert!(matches!(
            submit(&store, &r),
            Err(RequestError::AlreadyPending)
        ));
        assert!(take_news(&store, "jo").unwrap().is_empty());
        assert!(record_denial(&store, &r.id, "boss", "not needed", 5).unwrap());
        // Decided: a second decision finds nothing waiting.
        assert!(!record_denial(&store, &r.id, "boss", "again", 6).unwrap());
        let news = take_news(&store, "jo").unwrap();
        assert_eq!(news.len(), 1);
        assert!(matches!(&news[0].standing, Standing::Denied { note, .. } if note == "not needed"));
        assert!(take_news(&store, "jo").unwrap().is_empty());
        assert_eq!(pending(&store.read().unwrap()).count(), 0);
    }
}
