//! The access review model: every account with what it may do and how it has been used, and
//! flags for what the officer should look at in the periodic risk assessment; also the check
//! that the practice has officers. Shared by `ward report access` and the console's review page.
//!
//! Building the review is a pure function of the policy, `users.toml`, the secret store's
//! sign-in times and the time now; rendering gives a printable HTML page or CSV (RFC 4180).

use crate::csv;
use crate::policy::{Export, Policy};
use crate::users::attestations::{Attestation, Attestations};
use crate::users::directory::{self, today};
use crate::users::{Directory, Secrets, Status};
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The role that opens the officer's console (never granted by break-glass).
pub const OFFICER_ROLE: &str = "officer";

/// Accounts unused for longer than this many days are flagged unless told otherwise.
pub const DEFAULT_IDLE_DAYS: u32 = 90;

/// Accounts whose end date is this close (in days) are flagged.
pub const ENDS_SOON_DAYS: i64 = 14;

const DAY: i64 = 24 * 3600;

/// Something about an account the officer should look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flag {
    /// No activity for more than the review's idle limit; `days` since the last.
    Idle {
        /// Whole days since the last activity.
        days: i64,
    },
    /// The account has never signed in.
    NeverSignedIn,
    /// The account is still marked active, but its end date has passed.
    PastEndDate {
        /// It works for another organisation.
        vendor: bool,
    },
    /// The end date is at most `ENDS_SOON_DAYS` away.
    EndsSoon {
        /// Days left (0: today is the last day).
        days: i64,
        /// It works for another organisation.
        vendor: bool,
    },
    /// One of its roles may export (download) patient data.
    Export {
        /// The roles with `export = "allow"`.
        roles: Vec<String>,
    },
    /// One of its roles may start emergency (break-glass) access.
    BreakGlass,
    /// Not reviewed (attested) within the policy's `[review] period`.
    ReviewOverdue {
        /// Unix seconds the review fell due; `None`: never reviewed.
        since: Option<i64>,
    },
}

impl Flag {
    /// A short stable name, for CSS classes and programs.
    pub fn code(&self) -> &'static str {
        match self {
            Flag::Idle { .. } => "idle",
            Flag::NeverSignedIn => "never-signed-in",
            Flag::PastEndDate { .. } => "past-end-date",
            Flag::EndsSoon { .. } => "ends-soon",
            Flag::Export { .. } => "export",
            Flag::BreakGlass => "break-glass",
            Flag::ReviewOverdue { .. } => "review-overdue",
        }
    }

    /// The flag in words; `idle_days` is the review's limit.
    pub fn describe(&self, idle_days: u32) -> String {
        match self {
            Flag::Idle { days } => {
                format!("idle more than {idle_days} days (last activity {days} days ago)")
            }
            Flag::NeverSignedIn => "never signed in".into(),
            Flag::PastEndDate { vendor: true } => "vendor account past its end date".into(),
            Flag::PastEndDate { vendor: false } => "past its end date".into(),
            Flag::EndsSoon { days: 0, .. } => "ends today".into(),
            Flag::EndsSoon { days: 1, .. } => "ends tomorrow".into(),
            Flag::EndsSoon { days, .. } => format!("ends within {ENDS_SOON_DAYS} days (in {days})"),
            Flag::Export { roles } => format!("a role grants export ({})", roles.join(", ")),
            Flag::BreakGlass => "may invoke break-glass".into(),
            Flag::ReviewOverdue { since: Some(t) } => format!(
                "review overdue since {}",
                utc_time(*t).get(..10).unwrap_or_default()
            ),
            Flag::ReviewOverdue { since: None } => "never reviewed (review overdue)".into(),
        }
    }
}

/// One account in the review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Sign-in name.
    pub name: String,
    /// Name shown to people.
    pub display_name: String,
    /// "active", "expired" (active but past its end date), "deactivated" or "terminated".
    pub status: &'static str,
    /// Roles from users.toml.
    pub roles: Vec<String>,
    /// Organisation, if set.
    pub org: Option<String>,
    /// Works for another organisation than the practice.
    pub vendor: bool,
    /// Who vouches for the person.
    pub sponsor: Option<String>,
    /// An authenticator is enrolled.
    pub mfa: bool,
    /// The names of the person's passkeys and security keys.
    pub passkeys: Vec<String>,
    /// Last successful sign-in, unix seconds.
    pub last_sign_in: Option<i64>,
    /// Last activity (recorded activity, a live session, else the last sign-in), unix seconds.
    pub last_activity: Option<i64>,
    /// Last working day.
    pub expires: Option<Date>,
    /// What to look at; only accounts that can still be used (status active) get flags.
    pub flags: Vec<Flag>,
    /// The officer's latest sign-off on this person's access, if any.
    pub attested: Option<Attestation>,
}

/// A whole review.
#[derive(Debug, Clone)]
pub struct Review {
    /// The practice's name.
    pub practice: String,
    /// The policy file it was made from.
    pub policy_file: PathBuf,
    /// When it was made, unix seconds.
    pub generated: i64,
    /// The idle limit used for the idle flag.
    pub idle_days: u32,
    /// One row per account, by name.
    pub rows: Vec<Row>,
    /// Problems with the accounts as a whole (too few officers).
    pub warnings: Vec<String>,
    /// The time zone times are shown in (HTML; CSV is UTC).
    pub tz: TimeZone,
}

/// Builds the review at `now`. `live` gives, per person, the last activity of their live
/// sessions (the console knows it; the command line passes an empty map).
pub fn build(
    policy: &Policy,
    dir: &Directory,
    secrets: &Secrets,
    live: &HashMap<String, i64>,
    now: i64,
    idle_days: u32,
) -> Review {
    let today = today(now);
    let export_roles: Vec<&str> = policy
        .roles
        .iter()
        .filter(|(_, r)| r.export == Some(Export::Allow))
        .map(|(n, _)| n.as_str())
        .collect();
    let bg_roles: &[String] = policy
        .break_glass
        .as_ref()
        .map(|b| b.allowed_roles.as_slice())
        .unwrap_or(&[]);
    let rows = dir
        .accounts
        .values()
        .map(|a| {
            let s = secrets.users.get(&a.name);
            let last_sign_in = s.and_then(|s| s.last_login);
            let last_activity = [
                s.and_then(|s| s.last_activity),
                last_sign_in,
                live.get(&a.name).copied(),
            ]
            .into_iter()
            .flatten()
            .max();
            let vendor = a.is_vendor(&policy.practice);
            let past_end = a.expires.is_some_and(|last| today > last);
            let status = match a.status {
                Status::Active if past_end => "expired",
                other => other.as_str(),
            };
            let mut flags = Vec::new();
            if a.status == Status::Active {
                match (last_sign_in, last_activity) {
                    (None, None) => flags.push(Flag::NeverSignedIn),
                    (_, Some(t)) if now - t > i64::from(idle_days) * DAY => {
                        flags.push(Flag::Idle {
                            days: (now - t) / DAY,
                        });
                    }
                    _ => {}
                }
                if let Some(last) = a.expires {
                    if past_end {
                        flags.push(Flag::PastEndDate { vendor });
                    } else if let Ok(span) = today.until(last) {
                        let days = i64::from(span.get_days());
                        if days <= ENDS_SOON_DAYS {
                            flags.push(Flag::EndsSoon { days, vendor });
                        }
                    }
                }
                let exporting: Vec<String> = a
                    .roles
                    .iter()
                    .filter(|r| export_roles.contains(&r.as_str()))
                    .cloned()
                    .collect();
                // The same rule as the proxy's: a blocking role outweighs an allowing one.
                if !exporting.is_empty()
                    && crate::policy::role_export(policy, &a.roles) == Some(Export::Allow)
                {
                    flags.push(Flag::Export { roles: exporting });
                }
                if a.roles.iter().any(|r| bg_roles.contains(r)) {
                    flags.push(Flag::BreakGlass);
                }
            }
            Row {
                name: a.name.clone(),
                display_name: a.display_name.clone(),
                status,
                roles: a.roles.clone(),
                org: a.org.clone(),
                vendor,
                sponsor: a.sponsor.clone(),
                mfa: s.is_some_and(|s| s.totp.is_some()),
                passkeys: s
                    .map(|s| s.passkeys.iter().map(|k| k.name.clone()).collect())
                    .unwrap_or_default(),
                last_sign_in,
                last_activity,
                expires: a.expires,
                flags,
                attested: None,
            }
        })
        .collect();
    Review {
        practice: policy.practice.clone(),
        policy_file: policy.file.clone(),
        generated: now,
        idle_days,
        rows,
        warnings: officer_warnings(policy, dir, now),
        tz: TimeZone::system(),
    }
}

/// What is wrong with the practice's officers: none, or only one (a backup is the normal
/// case). Empty when two or more active accounts have the officer role, and when the
/// console is off (no `[server] ward_host`): a practice that runs ward from the command
/// line only needs no officer accounts.
pub fn officer_warnings(policy: &Policy, dir: &Directory, now: i64) -> Vec<String> {
    if policy.server.ward_host.is_none() {
        return Vec::new();
    }
    if !policy.roles.contains_key(OFFICER_ROLE) {
        return vec![format!(
            "the policy has no role '{OFFICER_ROLE}', so nobody can use the officer's console; \
             add {OFFICER_ROLE} = {{}} under [roles] and give it to two people"
        )];
    }
    let today = today(now);
    let officers: Vec<&str> = dir
        .accounts
        .values()
        .filter(|a| a.usable_on(today) && a.roles.iter().any(|r| r == OFFICER_ROLE))
        .map(|a| a.name.as_str())
        .collect();
    match officers.as_slice() {
        [] => vec![format!(
            "no active account has the role '{OFFICER_ROLE}', so nobody can use the officer's \
             console; give the role to two people (ward user set-roles NAME --roles ...,{OFFICER_ROLE})"
        )],
        [only] => vec![format!(
            "only one active account ({only}) has the role '{OFFICER_ROLE}'; give it to a \
             second person as a backup"
        )],
        _ => Vec::new(),
    }
}

/// For `ward check`: the officer warnings for the accounts the policy names, as
/// `FILE: warning: …` lines (`file` as the officer gave it).
pub fn check_officers(file: &Path, policy: &Policy, now: i64) -> Vec<String> {
    let messages = match directory::load(&policy.storage.users) {
        Ok(dir) => officer_warnings(policy, &dir, now),
        Err(_) => vec![format!(
            "the accounts file {} has problems, so the officer accounts were not checked \
             (ward user list shows them)",
            policy.storage.users.display()
        )],
    };
    messages
        .into_iter()
        .map(|m| format!("{}: warning: {m}", file.display()))
        .collect()
}

// ---------- rendering ----------

/// Unix seconds in `tz`, to the minute.
fn local_time(secs: i64, tz: &TimeZone) -> String {
    match Timestamp::from_second(secs) {
        Ok(t) => t
            .to_zoned_datetime(tz.clone())
            .strftime("%Y-%m-%d %H:%M %Z")
            .to_string(),
        Err(_) => "?".into(),
    }
}

/// Unix seconds as RFC 3339 in UTC.
fn utc_time(secs: i64) -> String {
    Timestamp::from_second(secs)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

impl Review {
    /// The review with each person's latest sign-off, and accounts that can sign in flagged
    /// when not reviewed within `period` seconds of its making.
    pub fn with_attestations(mut self, all: &Attestations, period: i64, dir: &Directory) -> Review {
        let overdue = all.overdue(dir, period, self.generated);
        for row in &mut self.rows {
            row.attested = all.last_for(&row.name).cloned();
            if let Some((_, since)) = overdue.iter().find(|(u, _)| *u == row.name) {
                row.flags.push(Flag::ReviewOverdue { since: *since });
            }
        }
        self
    }

    /// How many rows carry each kind of flag, in a fixed order, with words.
    pub fn summary(&self) -> Vec<(&'static str, usize, String)> {
        let count = |code: &str| {
            self.rows
                .iter()
                .filter(|r| r.flags.iter().any(|f| f.code() == code))
                .count()
        };
        let accounts = |n: usize| if n == 1 { "account" } else { "accounts" };
        let mut out = Vec::new();
        for (code, words) in [
            ("idle", format!("idle more than {} days", self.idle_days)),
            ("never-signed-in", "never signed in".to_string()),
            ("past-end-date", "past their end date".to_string()),
            ("ends-soon", format!("ending within {ENDS_SOON_DAYS} days")),
            ("export", "with a role that grants export".to_string()),
            ("break-glass", "that may invoke break-glass".to_string()),
            (
                "review-overdue",
                "not reviewed within the review period".to_string(),
            ),
        ] {
            let n = count(code);
            if n > 0 {
                out.push((code, n, format!("{n} {} {words}", accounts(n))));
            }
        }
        out
    }

    /// The review's table; with `link`, account names link to `link` + name.
    pub fn table_html(&self, link: Option<&str>) -> Markup {
        let flagged = self.rows.iter().filter(|r| !r.flags.is_empty()).count();
        let dash = html! { span.none { "—" } };
        let opt = |v: &Option<String>| match v {
            Some(v) => html! { (v) },
            None => dash.clone(),
        };
        let time = |t: Option<i64>| match t {
            Some(t) => local_time(t, &self.tz),
            None => "never".into(),
        };
        html! {
            table.review {
                caption { "Every account (" (self.rows.len()) " in all, " (flagged) " with something to look at)" }
                thead {
                    tr {
                        @for c in ["Account", "Name", "Status", "Roles", "Organization", "Sponsor", "Second factors", "Last sign-in", "Last activity", "End date", "Last review", "Look at"] {
                            th scope="col" { (c) }
                        }
                    }
                }
                tbody {
                    @for r in &self.rows {
                        tr class={ "status-" (r.status) } {
                            th scope="row" {
                                @match link {
                                    Some(base) => a href={ (base) (r.name) } { (r.name) },
                                    None => (r.name),
                                }
                            }
                            td { (r.display_name) }
                            td { (r.status) }
                            td { @if r.roles.is_empty() { (dash) } @else { (r.roles.join(", ")) } }
                            td { (opt(&r.org)) }
                            td { (opt(&r.sponsor)) }
                            td {
                                @match (r.mfa, r.passkeys.len()) {
                                    (false, 0) => strong { "no" },
                                    (true, 0) => "app",
                                    (mfa, n) => {
                                        @if mfa { "app, " }
                                        (n) @if n == 1 { " passkey" } @else { " passkeys" }
                                        " (" (r.passkeys.join(", ")) ")"
                                    }
                                }
                            }
                            td { (time(r.last_sign_in)) }
                            td { (time(r.last_activity)) }
                            td {
                                @match r.expires {
                                    Some(d) => (d),
                                    None => (dash),
                                }
                            }
                            td {
                                @match &r.attested {
                                    Some(a) => { (a.decision.as_str()) " — " (a.by) ", " (local_time(a.at, &self.tz)) },
                                    None => (dash),
                                }
                            }
                            td {
                                @if r.flags.is_empty() {
                                    (dash)
                                } @else {
                                    ul.flags {
                                        @for f in &r.flags {
                                            li class={ "flag-" (f.code()) } { (f.describe(self.idle_days)) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    @if self.rows.is_empty() {
                        tr { td colspan="12" { "There are no accounts." } }
                    }
                }
            }
        }
    }

    /// The warnings and the flag counts, as HTML.
    pub fn summary_html(&self) -> Markup {
        let summary = self.summary();
        html! {
            @if !self.warnings.is_empty() {
                div.warnings role="alert" {
                    h2 { "Warnings" }
                    ul { @for w in &self.warnings { li { (w) } } }
                }
            }
            h2 { "To look at" }
            @if summary.is_empty() {
                p { "Nothing is flagged." }
            } @else {
                ul.summary {
                    @for (code, _, words) in &summary {
                        li class={ "flag-" (code) } { (words) }
                    }
                }
            }
        }
    }

    /// A standalone, printable HTML page, with its styles as `styles` says.
    pub fn standalone_html(&self, styles: Styles) -> String {
        let practice = if self.practice.is_empty() {
            "ward"
        } else {
            &self.practice
        };
        let when = local_time(self.generated, &self.tz);
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { "Access review — " (practice) " — " (when.get(..10).unwrap_or(&when)) }
                    @match styles {
                        // Raw: ward's own stylesheet, compiled in.
                        Styles::Inline => style { (PreEscaped(REVIEW_CSS)) },
                        Styles::Served => link rel="stylesheet" href="/.ward/review.css";,
                    }
                }
                body {
                    header {
                        p.who { (practice) " · made by ward" }
                        h1 { "Access review" }
                        p {
                            "Made " (when) " from the policy " code { (self.policy_file.display()) }
                            ". Accounts are flagged when unused for more than " (self.idle_days) " days."
                        }
                    }
                    main {
                        (self.summary_html())
                        h2 { "Accounts" }
                        (self.table_html(None))
                    }
                    footer {
                        h2 { "Sign-off recorded in ward" }
                        @let signed: Vec<&Row> = self.rows.iter().filter(|r| r.attested.is_some()).collect();
                        @if signed.is_empty() {
                            p { "No person's access has been signed off in ward yet." }
                        } @else {
                            ul.signoff {
                                @for r in &signed {
                                    @if let Some(a) = &r.attested {
                                        li {
                                            (r.name) ": " strong { (a.decision.as_str()) } ", attested by " (a.by) " on " (local_time(a.at, &self.tz))
                                            @if !a.note.is_empty() { " — " (a.note) }
                                        }
                                    }
                                }
                            }
                        }
                        p {
                            "Reviewed by: " span.line {} " Date: " span.line.short {} " Signature: " span.line {}
                        }
                    }
                }
            }
        }
        .into_string()
    }

    /// CSV (RFC 4180: CRLF line ends, quoted fields where needed), with a header row.
    /// Times are RFC 3339 in UTC; cells that a spreadsheet would read as a formula are
    /// prefixed with `'`.
    pub fn csv(&self) -> String {
        let mut out = String::from(
            "name,display_name,status,roles,organization,sponsor,mfa_enrolled,passkeys,last_sign_in,last_activity,end_date,flags\r\n",
        );
        for r in &self.rows {
            let flags: Vec<String> = r.flags.iter().map(|f| f.describe(self.idle_days)).collect();
            let cells = [
                r.name.clone(),
                r.display_name.clone(),
                r.status.to_string(),
                r.roles.join(";"),
                r.org.clone().unwrap_or_default(),
                r.sponsor.clone().unwrap_or_default(),
                if r.mfa { "yes" } else { "no" }.to_string(),
                r.passkeys.join(";"),
                r.last_sign_in.map(utc_time).unwrap_or_default(),
                r.last_activity.map(utc_time).unwrap_or_default(),
                r.expires.map(|d| d.to_string()).unwrap_or_default(),
                flags.join("; "),
            ];
            out.push_str(&csv::row(&cells));
            out.push_str("\r\n");
        }
        out
    }
}

/// Where the printable review's styles come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Styles {
    /// Inside the page: a file opened from disk has nowhere to fetch them from.
    Inline,
    /// From `/.ward/review.css`: ward's pages allow no inline styles.
    Served,
}

/// The review's styles: readable on screen, landscape and without colour on paper.
pub const REVIEW_CSS: &str = include_str!("review.css");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, Certs};
    use crate::users::UserSecrets;
    use jiff::civil::date;

    const POLICY: &str = r#"
practice = "Test Clinic"
[server]
listen = "127.0.0.1:8443"
ward_host = "ward.test.example"
[roles]
officer = {}
clinician = {}
front_desk = {}
reports = { export = "allow" }
vendor_biller = { export = "block" }
emergency = {}
[break_glass]
allowed_roles = ["clinician"]
emergency_roles = ["emergency"]
[[apps]]
name = "ehr"
host = "ehr.test.example"
upstream = "http://127.0.0.1:8081"
[[routes]]
app = "ehr"
path = "/**"
allow_roles = ["clinician"]
"#;

    const USERS: &str = r#"
[users.boss]
display_name = "The Boss"
roles = ["officer"]

[users.dr_lee]
display_name = "Dr. Lee, \"Al\""
roles = ["clinician", "reports"]

[users.idle_ida]
display_name = "Ida"
roles = ["front_desk"]

[users.acme_jo]
display_name = "=HYPERLINK(\"x\")"
roles = ["vendor_biller"]
org = "Acme Billing"
sponsor = "boss"
expires = 2026-11-10

[users.acme_old]
display_name = "Old"
roles = ["vendor_biller"]
org = "Acme Billing"
expires = 2026-10-01

[users.gone]
display_name = "Gone"
roles = ["reports"]
status = "terminated"
"#;

    /// 2026-11-01T12:00:00Z
    const NOW: i64 = 1_793_534_400;

    fn policy() -> Policy {
        config::load_str(Path::new("ward.toml"), POLICY, Certs::Skip)
            .unwrap_or_else(|d| panic!("{d}"))
            .policy
    }

    fn review(live: &HashMap<String, i64>) -> Review {
        let dir = directory::parse(Path::new("users.toml"), USERS).unwrap();
        let mut secrets = Secrets::default();
        let user = |login: Option<i64>, activity: Option<i64>, totp: bool| UserSecrets {
            last_login: login,
            last_activity: activity,
            totp: totp.then(|| "JBSWY3DPEHPK3PXP".to_string()),
            ..Default::default()
        };
        secrets
            .users
            .insert("boss".into(), user(Some(NOW - 3600), None, true));
        secrets.users.insert(
            "dr_lee".into(),
            user(Some(NOW - 100 * DAY), Some(NOW - 5 * DAY), true),
        );
        secrets
            .users
            .insert("idle_ida".into(), user(Some(NOW - 91 * DAY), None, false));
        secrets
            .users
            .insert("gone".into(), user(Some(NOW - 400 * DAY), None, false));
        let mut r = build(&policy(), &dir, &secrets, live, NOW, 90);
        r.tz = TimeZone::UTC;
        r
    }

    fn row<'a>(r: &'a Review, name: &str) -> &'a Row {
        r.rows.iter().find(|x| x.name == name).unwrap()
    }

    #[test]
    fn the_test_clock_is_what_it_says() {
        assert_eq!(today(NOW), date(2026, 11, 1));
    }

    #[test]
    fn flags_follow_use_end_dates_and_roles() {
        let r = review(&HashMap::new());
        assert_eq!(r.rows.len(), 6);
        // Recent activity counts even when the last sign-in is old.
        let lee = row(&r, "dr_lee");
        assert_eq!(lee.last_activity, Some(NOW - 5 * DAY));
        assert_eq!(
            lee.flags,
            [
                Flag::Export {
                    roles: vec!["reports".into()]
                },
                Flag::BreakGlass
            ]
        );
        assert_eq!(row(&r, "idle_ida").flags[0], Flag::Idle { days: 91 });
        assert!(!row(&r, "idle_ida").mfa);
        assert!(row(&r, "boss").flags.is_empty());
        // A vendor ending in nine days, never signed in; vendor_biller blocks export.
        assert_eq!(
            row(&r, "acme_jo").flags,
            [
                Flag::NeverSignedIn,
                Flag::EndsSoon {
                    days: 9,
                    vendor: true
                }
            ]
        );
        let old = row(&r, "acme_old");
        assert_eq!(old.status, "expired");
        assert!(old.flags.contains(&Flag::PastEndDate { vendor: true }));
        assert_eq!(
            Flag::PastEndDate { vendor: true }.describe(90),
            "vendor account past its end date"
        );
        // Terminated accounts are listed, without flags.
        let gone = row(&r, "gone");
        assert_eq!(gone.status, "terminated");
        assert!(gone.flags.is_empty());
    }

    #[test]
    fn idle_limit_is_exclusive_and_live_sessions_count() {
        let mut live = HashMap::new();
        live.insert("idle_ida".to_string(), NOW - 60);
        let r = review(&live);
        assert!(row(&r, "idle_ida").flags.is_empty());
        assert_eq!(row(&r, "idle_ida").last_activity, Some(NOW - 60));
        // Exactly 90 days is not "more than 90".
        let dir = directory::parse(Path::new("u.toml"), USERS).unwrap();
        let mut secrets = Secrets::default();
        secrets.users.insert(
            "idle_ida".into(),
            UserSecrets {
                last_login: Some(NOW - 90 * DAY),
                ..Default::default()
            },
        );
        let r = build(&policy(), &dir, &secrets, &HashMap::new(), NOW, 90);
        assert!(row(&r, "idle_ida").flags.is_empty());
        let r = build(&policy(), &dir, &secrets, &HashMap::new(), NOW, 30);
        assert_eq!(row(&r, "idle_ida").flags, [Flag::Idle { days: 90 }]);
    }

    #[test]
    fn ends_soon_boundaries() {
        let dir_for = |expires: &str| {
            directory::parse(
                Path::new("u.toml"),
                &format!(
                    "[users.a]\ndisplay_name = \"A\"\nroles = [\"front_desk\"]\nexpires = {expires}\n"
                ),
            )
            .unwrap()
        };
        let mut secrets = Secrets::default();
        secrets.users.insert(
            "a".into(),
            UserSecrets {
                last_login: Some(NOW),
                ..Default::default()
            },
        );
        let flags = |expires: &str| {
            build(
                &policy(),
                &dir_for(expires),
                &secrets,
                &HashMap::new(),
                NOW,
                90,
            )
            .rows[0]
                .flags
                .clone()
        };
        assert_eq!(
            flags("2026-11-01"),
            [Flag::EndsSoon {
                days: 0,
                vendor: false
            }]
        );
        assert_eq!(
            flags("2026-11-15"),
            [Flag::EndsSoon {
                days: 14,
                vendor: false
            }]
        );
        assert!(flags("2026-11-16").is_empty());
        assert_eq!(flags("2026-10-31"), [Flag::PastEndDate { vendor: false }]);
    }

    #[test]
    fn officer_warnings_want_a_backup() {
        let p = policy();
        let dir = directory::parse(Path::new("u.toml"), USERS).unwrap();
        let w = officer_warnings(&p, &dir, NOW);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("only one active account (boss)"), "{w:?}");
        let two = format!("{USERS}\n[users.deputy]\ndisplay_name = \"D\"\nroles = [\"officer\"]\n");
        let dir = directory::parse(Path::new("u.toml"), &two).unwrap();
        assert!(officer_warnings(&p, &dir, NOW).is_empty());
        // A deactivated officer is no officer.
        let off = two.replace(
            "roles = [\"officer\"]\n",
            "roles = [\"officer\"]\nstatus = \"deactivated\"\n",
        );
        let dir = directory::parse(Path::new("u.toml"), &off).unwrap();
        assert!(officer_warnings(&p, &dir, NOW)[0].contains("no active account"));
        let none = Directory::default();
        assert!(officer_warnings(&p, &none, NOW)[0].contains("no active account"));
        let no_role = POLICY.replace("officer = {}\n", "");
        let p = config::load_str(Path::new("w.toml"), &no_role, Certs::Skip)
            .unwrap()
            .policy;
        assert!(officer_warnings(&p, &none, NOW)[0].contains("the policy has no role 'officer'"));
        // Without ward's own host there is no console, so nothing to warn about.
        for text in [POLICY, no_role.as_str()] {
            let cli_only = text.replace("ward_host = \"ward.test.example\"\n", "");
            assert_ne!(cli_only, text);
            let p = config::load_str(Path::new("w.toml"), &cli_only, Certs::Skip)
                .unwrap()
                .policy;
            assert!(officer_warnings(&p, &none, NOW).is_empty());
        }
    }

    #[test]
    fn csv_is_rfc4180_and_defused() {
        let r = review(&HashMap::new());
        let csv = r.csv();
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(
            lines[0],
            "name,display_name,status,roles,organization,sponsor,mfa_enrolled,passkeys,last_sign_in,last_activity,end_date,flags"
        );
        assert_eq!(
            lines.len(),
            8,
            "header, six rows, and the empty rest after the last CRLF"
        );
        assert_eq!(lines[7], "");
        assert!(!csv.replace("\r\n", "").contains('\n'));
        // Rows come by name; a quote is doubled inside a quoted cell; a formula is defused.
        assert!(lines[1].starts_with("acme_jo,\"'=HYPERLINK(\"\"x\"\")\",active,vendor_biller,Acme Billing,boss,no,,,,2026-11-10,never signed in; ends within 14 days (in 9)"), "{}", lines[1]);
        let lee = lines.iter().find(|l| l.starts_with("dr_lee,")).unwrap();
        assert_eq!(
            *lee,
            "dr_lee,\"Dr. Lee, \"\"Al\"\"\",active,clinician;reports,,,yes,,2026-07-24T12:00:00Z,2026-10-27T12:00:00Z,,a role grants export (reports); may invoke break-glass"
        );
    }

    #[test]
    fn html_escapes_names_and_prints() {
        let mut r = review(&HashMap::new());
        r.rows[0].display_name = "<script>alert(1)</script>".into();
        r.practice = "A & B <Clinic>".into();
        let page = r.standalone_html(Styles::Inline);
        assert!(!page.contains("<script>"));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(
            page.contains("<title>Access review — A &amp; B &lt;Clinic&gt; — 2026-11-01</title>")
        );
        assert!(page.contains("@media print"));
        assert!(page.contains("<th scope=\"col\">Last activity</th>"));
        assert!(page.contains("only one active account (boss)"));
        assert!(page.contains("1 account idle more than 90 days"));
        let linked = r.table_html(Some("/.ward/officer/users/")).into_string();
        assert!(linked.contains("<a href=\"/.ward/officer/users/dr_lee\">dr_lee</a>"));
    }
}
