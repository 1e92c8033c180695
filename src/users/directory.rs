//! The accounts file (`config/users.toml`): who may use ward, kept by the security officer.
//!
//! Only names, roles and account state live here; secrets never do (see `secrets`).

use crate::config::diag::{Collector, Diagnostics, line_col};
use crate::suggest::closest;
use jiff::civil::Date;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};

/// The settings an account table may have, and what each holds (for `ward schema`).
pub const ACCOUNT_KEY_KINDS: &[(&str, KeyKind)] = &[
    ("display_name", KeyKind::Text),
    ("roles", KeyKind::List),
    ("org", KeyKind::Text),
    ("status", KeyKind::Words(Status::NAMES)),
    ("expires", KeyKind::Date),
    ("sponsor", KeyKind::Text),
    ("allow_from", KeyKind::List),
    ("attributes", KeyKind::TextTable),
    ("sign_in", KeyKind::Words(&["any", "password", "sso"])),
];

/// The names of the settings an account table may have.
pub fn account_keys() -> Vec<&'static str> {
    ACCOUNT_KEY_KINDS.iter().map(|(k, _)| *k).collect()
}

/// What a key of `users.toml` holds, as far as an editor can check it.
#[derive(Debug, Clone, Copy)]
pub enum KeyKind {
    /// Non-empty text.
    Text,
    /// A list of text.
    List,
    /// One of these words.
    Words(&'static [&'static str]),
    /// A date.
    Date,
    /// A table of text values.
    TextTable,
}

/// How a person may sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignIn {
    /// A ward password (with MFA) or single sign-on.
    #[default]
    Any,
    /// Only with a ward password (with MFA).
    Password,
    /// Only through the practice's identity provider.
    Sso,
}

/// Whether an account may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Status {
    /// May sign in (unless past its end date).
    #[default]
    Active,
    /// Cannot sign in for now; the officer can reactivate it.
    Deactivated,
    /// Gone for good; the record stays for the audit trail.
    Terminated,
}

impl Status {
    /// Every status as written in the file.
    pub const NAMES: &[&str] = &["active", "deactivated", "terminated"];

    /// The word used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Deactivated => "deactivated",
            Status::Terminated => "terminated",
        }
    }

    /// The status named `word`, if it is one.
    pub fn parse(word: &str) -> Option<Status> {
        match word {
            "active" => Some(Status::Active),
            "deactivated" => Some(Status::Deactivated),
            "terminated" => Some(Status::Terminated),
            _ => None,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One person who may use ward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The sign-in name, also the table name in `[users.NAME]`.
    pub name: String,
    /// The name shown to people and in the audit log.
    pub display_name: String,
    /// Roles from the policy.
    pub roles: Vec<String>,
    /// Active, deactivated or terminated.
    pub status: Status,
    /// The organisation the person works for.
    pub org: Option<String>,
    /// The last day the account works.
    pub expires: Option<Date>,
    /// Who at the practice vouches for this person.
    pub sponsor: Option<String>,
    /// Network names from the policy, or CIDRs, the person may sign in from.
    pub allow_from: Vec<String>,
    /// Extra values passed to apps.
    pub attributes: BTreeMap<String, String>,
    /// How the person may sign in (`sign_in = "any" | "password" | "sso"`).
    pub sign_in: SignIn,
    /// The line of the account's table header.
    pub line: usize,
}

impl Account {
    /// True when the account may sign in at `today` (active and not past its end date).
    pub fn usable_on(&self, today: Date) -> bool {
        // The end date itself is still a working day.
        self.status == Status::Active && self.expires.is_none_or(|last| today <= last)
    }

    /// Refused only because its end date has passed by `today`: active (not deactivated or
    /// terminated) and signing in with ward's own password. Such a person may ask for more
    /// time, after both factors.
    pub fn only_ended(&self, today: Date) -> bool {
        self.status == Status::Active
            && self.expires.is_some_and(|last| today > last)
            && self.sign_in != SignIn::Sso
    }

    /// A vendor account: org set and not equal to `practice`.
    pub fn is_vendor(&self, practice: &str) -> bool {
        is_vendor_org(self.org.as_deref(), practice)
    }
}

/// True when `org` names someone other than `practice` (case and outer spaces ignored).
pub fn is_vendor_org(org: Option<&str>, practice: &str) -> bool {
    org.is_some_and(|org| !org.trim().eq_ignore_ascii_case(practice.trim()))
}

/// Every account in the file, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directory {
    /// The accounts.
    pub accounts: BTreeMap<String, Account>,
}

impl Directory {
    /// The account called `name`.
    pub fn get(&self, name: &str) -> Option<&Account> {
        self.accounts.get(name)
    }

    /// Problems that need the policy to see: unknown roles and networks, vendors without an end date.
    pub fn check(
        &self,
        practice: &str,
        known_roles: &[&str],
        known_networks: &[&str],
    ) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        for a in self.accounts.values() {
            for role in &a.roles {
                if !known_roles.contains(&role.as_str()) {
                    let mut msg = format!("account '{}': unknown role '{role}'", a.name);
                    match closest(role, known_roles) {
                        Some(best) => msg.push_str(&format!("; did you mean '{best}'?")),
                        None => msg.push_str("; roles are defined in the policy file"),
                    }
                    out.push((a.line, msg));
                }
            }
            // CIDRs are checked by the caller, which knows how to parse them.
            for net in a.allow_from.iter().filter(|n| !n.contains(['.', ':'])) {
                if !known_networks.contains(&net.as_str()) {
                    let mut msg = format!("account '{}': unknown network '{net}'", a.name);
                    match closest(net, known_networks) {
                        Some(best) => msg.push_str(&format!("; did you mean '{best}'?")),
                        None => msg.push_str("; networks are defined in the policy file"),
                    }
                    out.push((a.line, msg));
                }
            }
            if a.is_vendor(practice) && a.expires.is_none() {
                out.push((
                    a.line,
                    format!(
                        "account '{}': vendor accounts need an end date (expires)",
                        a.name
                    ),
                ));
            }
        }
        out.sort();
        out
    }
}

/// A name that cannot be an account name, with a spelling that could.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{name}' cannot be an account name: use 1 to 64 lower-case letters, digits, '.', '_' or '-' (for example '{example}')"
)]
pub struct BadName {
    /// As given.
    pub name: String,
    /// A name built from it that would do.
    pub example: String,
}

/// A day that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DayError {
    /// Not written YYYY-MM-DD.
    #[error("'{0}' is not a date; write it like 2027-03-31")]
    Shape(String),
    /// Written right, but no such day (2027-02-30).
    #[error("'{0}' is not a real date")]
    NoSuchDay(String),
}

/// Checks an account name: 1-64 characters of `a-z 0-9 . _ -`.
pub fn check_name(name: &str) -> Result<(), BadName> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        return Ok(());
    }
    let mut example: String = name
        .trim()
        .to_lowercase()
        .chars()
        .map(|ch| if ch == ' ' { '_' } else { ch })
        .filter(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(*ch))
        .take(64)
        .collect();
    if example.is_empty() {
        example = "dr_lee".into();
    }
    Err(BadName {
        name: name.to_string(),
        example,
    })
}

/// Reads users.toml; every problem as FILE:LINE:COL, all at once. A missing file is an empty directory.
pub fn load(path: &Path) -> Result<Directory, Diagnostics> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(path, &text),
        // No file yet simply means no accounts yet.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Directory::default()),
        Err(e) => {
            let mut c = Collector::new(path, "");
            c.error(0..0, format!("cannot read the accounts file: {e}"));
            Err(c.finish())
        }
    }
}

/// Validates users.toml `text`, reporting places in `path`.
pub fn parse(path: &Path, text: &str) -> Result<Directory, Diagnostics> {
    let mut c = Collector::new(path, text);
    // Recover past syntax errors so the officer sees every problem in one go.
    let (root, errors) = DeTable::parse_recoverable(text);
    for e in &errors {
        c.error(e.span().unwrap_or(0..0), toml_message(e.message()));
    }
    let mut accounts = BTreeMap::new();
    for (key, value) in root.get_ref() {
        if key.get_ref() != "users" {
            let mut msg = format!("unknown setting '{}' at the top of the file", key.get_ref());
            match closest(key.get_ref(), &["users"]) {
                Some(best) => msg.push_str(&format!("; did you mean '{best}'?")),
                None => msg.push_str("; accounts go in tables like [users.dr_lee]"),
            }
            c.error(key.span(), msg);
            continue;
        }
        let Some(users) = value.get_ref().as_table() else {
            c.error(
                value.span(),
                "'users' must hold one table per person, like [users.dr_lee]",
            );
            continue;
        };
        for (name, table) in users {
            let line = line_col(text, name.span().start).0;
            if let Some(account) = parse_account(&mut c, name, table, line) {
                accounts.insert(account.name.clone(), account);
            }
        }
    }
    if c.has_errors() {
        Err(c.finish())
    } else {
        Ok(Directory { accounts })
    }
}

fn parse_account(
    c: &mut Collector<'_>,
    name: &Spanned<DeString<'_>>,
    value: &Spanned<DeValue<'_>>,
    line: usize,
) -> Option<Account> {
    let n = name.get_ref().as_ref();
    if let Err(e) = check_name(n) {
        c.error(name.span(), e.to_string());
    }
    let Some(table) = value.get_ref().as_table() else {
        c.error(
            value.span(),
            format!(
                "account '{n}' must be a table: write [users.{n}] and put its settings under it"
            ),
        );
        return None;
    };
    let mut a = Account {
        name: n.to_string(),
        display_name: String::new(),
        roles: Vec::new(),
        status: Status::Active,
        org: None,
        expires: None,
        sponsor: None,
        allow_from: Vec::new(),
        attributes: BTreeMap::new(),
        sign_in: SignIn::Any,
        line,
    };
    let mut display_name = None;
    for (key, v) in table {
        let k = key.get_ref().as_ref();
        match k {
            "display_name" => display_name = text(c, k, v),
            "roles" => a.roles = list(c, k, v, "[\"clinician\"]"),
            "org" => a.org = text(c, k, v),
            "sponsor" => a.sponsor = text(c, k, v),
            "status" => a.status = status(c, v).unwrap_or(Status::Active),
            "expires" => a.expires = date(c, v),
            "allow_from" => a.allow_from = list(c, k, v, "[\"office_lan\"]"),
            "attributes" => a.attributes = attributes(c, v),
            "sign_in" => match text(c, k, v).as_deref() {
                None => {}
                Some("any") => a.sign_in = SignIn::Any,
                Some("password") => a.sign_in = SignIn::Password,
                Some("sso") => a.sign_in = SignIn::Sso,
                Some(other) => c.error(
                    v.span(),
                    format!("sign_in must be \"any\", \"password\" or \"sso\", not '{other}'"),
                ),
            },
            _ => {
                let mut msg = format!("unknown setting '{k}' in account '{n}'");
                let known = account_keys();
                match closest(k, &known) {
                    Some(best) => msg.push_str(&format!("; did you mean '{best}'?")),
                    None => msg.push_str(&format!("; the settings here are: {}", known.join(", "))),
                }
                // An unquoted dot in [users.dr.lee] makes a nested table, not a name.
                if v.get_ref().is_table() {
                    msg.push_str(&format!(
                        " (if the account name has a dot in it, put it in quotes: [users.\"{n}.{k}\"])"
                    ));
                }
                c.error(key.span(), msg);
            }
        }
    }
    match display_name {
        Some(d) => a.display_name = d,
        None => c.error(
            name.span(),
            format!(
                "account '{n}' has no display_name; add a line like display_name = \"Dr. Alex Lee\""
            ),
        ),
    }
    Some(a)
}

/// A non-empty string value.
fn text(c: &mut Collector<'_>, key: &str, v: &Spanned<DeValue<'_>>) -> Option<String> {
    match v.get_ref().as_str() {
        Some(s) if !s.trim().is_empty() => Some(s.to_string()),
        Some(_) => {
            c.error(
                v.span(),
                format!("{key} is empty; fill it in or remove the line"),
            );
            None
        }
        None => {
            c.error(
                v.span(),
                format!(
                    "{key} must be text in quotes, like {key} = \"...\" (found {})",
                    v.get_ref().type_str()
                ),
            );
            None
        }
    }
}

/// A list of non-empty strings.
fn list(c: &mut Collector<'_>, key: &str, v: &Spanned<DeValue<'_>>, example: &str) -> Vec<String> {
    let Some(items) = v.get_ref().as_array() else {
        c.error(
            v.span(),
            format!("{key} must be a list, like {key} = {example}"),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items.iter() {
        match item.get_ref().as_str() {
            Some(s) if !s.trim().is_empty() => out.push(s.to_string()),
            _ => c.error(
                item.span(),
                format!("each entry in {key} must be a name in quotes, like {key} = {example}"),
            ),
        }
    }
    out
}

fn status(c: &mut Collector<'_>, v: &Spanned<DeValue<'_>>) -> Option<Status> {
    let word = v.get_ref().as_str().unwrap_or("");
    if let Some(s) = Status::parse(word) {
        return Some(s);
    }
    let mut msg = format!("status must be one of: {}", Status::NAMES.join(", "));
    if let Some(best) = closest(word, Status::NAMES) {
        msg.push_str(&format!("; did you mean '{best}'?"));
    }
    c.error(v.span(), msg);
    None
}

const DATE_HELP: &str = "expires must be a date like 2027-03-31";

fn date(c: &mut Collector<'_>, v: &Spanned<DeValue<'_>>) -> Option<Date> {
    match v.get_ref() {
        DeValue::Datetime(dt) => match (dt.date, dt.time, dt.offset) {
            (Some(d), None, None) => {
                let (y, m, day) = (i16::try_from(d.year).ok()?, d.month as i8, d.day as i8);
                match Date::new(y, m, day) {
                    Ok(date) => Some(date),
                    Err(_) => {
                        c.error(v.span(), format!("{DATE_HELP}; this is not a real date"));
                        None
                    }
                }
            }
            // The TOML reader already reported a date it could not read.
            (None, None, None) => None,
            _ => {
                c.error(v.span(), format!("{DATE_HELP}, without a time"));
                None
            }
        },
        DeValue::String(s) => match parse_day(s) {
            Ok(d) => Some(d),
            Err(DayError::Shape(_)) => {
                c.error(v.span(), format!("{DATE_HELP}; '{s}' is not one"));
                None
            }
            Err(DayError::NoSuchDay(_)) => {
                c.error(v.span(), format!("{DATE_HELP}; '{s}' is not a real date"));
                None
            }
        },
        other => {
            c.error(
                v.span(),
                format!("{DATE_HELP} (found {})", other.type_str()),
            );
            None
        }
    }
}

fn attributes(c: &mut Collector<'_>, v: &Spanned<DeValue<'_>>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(table) = v.get_ref().as_table() else {
        c.error(
            v.span(),
            "attributes must be a table, like attributes = { provider_id = \"1234\" }",
        );
        return out;
    };
    for (k, val) in table {
        match val.get_ref().as_str() {
            Some(s) => {
                out.insert(k.get_ref().to_string(), s.to_string());
            }
            None => c.error(
                val.span(),
                format!(
                    "attribute '{0}' must be text in quotes, like {0} = \"1234\"",
                    k.get_ref()
                ),
            ),
        }
    }
    out
}

/// The TOML reader's message in plain words.
fn toml_message(message: &str) -> String {
    let first = message.lines().next().unwrap_or(message).trim();
    match first.strip_prefix("invalid date, ") {
        Some(rest) => format!("this is not a real date ({rest})"),
        None => format!("this is not valid TOML: {first}"),
    }
}

/// Today's date in UTC at unix time `now`, the day account end dates are compared with.
pub fn today(now: i64) -> Date {
    jiff::Timestamp::from_second(now)
        .map(|t| t.to_zoned_datetime(jiff::tz::TimeZone::UTC).date())
        .unwrap_or_default()
}

/// A day as the officer types it (command line, console, users.toml): exactly
/// YYYY-MM-DD, a real calendar day.
pub fn parse_day(s: &str) -> Result<Date, DayError> {
    let b = s.as_bytes();
    let shape = b.len() == 10
        && b.iter().enumerate().all(|(i, ch)| match i {
            4 | 7 => *ch == b'-',
            _ => ch.is_ascii_digit(),
        });
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|p| p.parse::<i16>().ok());
    let (true, Some(y), Some(m), Some(d)) = (shape, num(0..4), num(5..7), num(8..10)) else {
        return Err(DayError::Shape(s.to_string()));
    };
    // Month and day are two digits, so they fit in i8.
    Date::new(y, m as i8, d as i8).map_err(|_| DayError::NoSuchDay(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    pub(crate) const EXAMPLE: &str = r#"# Riverside Family Clinic: everyone who may use ward. One table per person.
[users.dr_lee]
display_name = "Dr. Alex Lee"
roles = ["clinician"]
org = "Riverside Family Clinic"        # optional
status = "active"                      # active | deactivated | terminated (default active)

[users.jsmith]
display_name = "Jo Smith (Acme Billing)"
roles = ["vendor_biller"]
org = "Acme Billing"
expires = 2027-03-31                   # last day the account works (a TOML date or "2027-03-31")
sponsor = "office_manager"             # who at the practice vouches for this person
allow_from = ["acme_billing_vpn"]      # network names from the policy, or CIDRs
attributes = { provider_id = "1234" }  # optional values passed to apps
"#;

    fn errors(text: &str) -> Vec<String> {
        match parse(Path::new("users.toml"), text) {
            Ok(_) => Vec::new(),
            Err(d) => d.to_string().lines().map(str::to_string).collect(),
        }
    }

    #[test]
    fn parses_the_example() {
        let dir = parse(Path::new("users.toml"), EXAMPLE).unwrap();
        assert_eq!(dir.accounts.len(), 2);
        let lee = &dir.accounts["dr_lee"];
        assert_eq!(lee.display_name, "Dr. Alex Lee");
        assert_eq!(lee.roles, ["clinician"]);
        assert_eq!(lee.org.as_deref(), Some("Riverside Family Clinic"));
        assert_eq!(lee.status, Status::Active);
        assert_eq!(lee.expires, None);
        assert_eq!(lee.line, 2);
        let js = &dir.accounts["jsmith"];
        assert_eq!(js.expires, Some(date(2027, 3, 31)));
        assert_eq!(js.sponsor.as_deref(), Some("office_manager"));
        assert_eq!(js.allow_from, ["acme_billing_vpn"]);
        assert_eq!(js.attributes["provider_id"], "1234");
        assert_eq!(js.line, 8);
        assert!(js.is_vendor("Riverside Family Clinic"));
        assert!(!lee.is_vendor("riverside family clinic "));
    }

    #[test]
    fn dates_may_be_written_as_text() {
        let text = "[users.a]\ndisplay_name = \"A\"\nexpires = \"2027-03-31\"\n";
        let dir = parse(Path::new("u.toml"), text).unwrap();
        assert_eq!(dir.accounts["a"].expires, Some(date(2027, 3, 31)));
    }

    #[test]
    fn a_missing_file_is_an_empty_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = load(&tmp.path().join("users.toml")).unwrap();
        assert!(dir.accounts.is_empty());
    }

    #[test]
    fn reports_every_problem_with_its_place() {
        let text = r#"[users.dr_lee]
display_name = "Dr. Alex Lee"
rolse = ["clinician"]
status = "Active"

[users.jsmith]
display_name = "Jo Smith"
expires = 2027-02-30

[users."Mary Jones"]
display_name = "Mary Jones"
expires = "2027-02-30"

[users.bob]
display_name = "Bob"
expires = "next tuesday"
status = "fired"
"#;
        let errs = errors(text);
        assert_eq!(
            errs,
            [
                "users.toml:3:1: unknown setting 'rolse' in account 'dr_lee'; did you mean 'roles'?",
                "users.toml:4:10: status must be one of: active, deactivated, terminated; did you mean 'active'?",
                "users.toml:8:11: this is not a real date (expected day between 01 and 28)",
                "users.toml:10:8: 'Mary Jones' cannot be an account name: use 1 to 64 lower-case letters, digits, '.', '_' or '-' (for example 'mary_jones')",
                "users.toml:12:11: expires must be a date like 2027-03-31; '2027-02-30' is not a real date",
                "users.toml:16:11: expires must be a date like 2027-03-31; 'next tuesday' is not one",
                "users.toml:17:10: status must be one of: active, deactivated, terminated",
            ]
        );
    }

    #[test]
    fn reports_wrong_kinds_and_missing_names() {
        let errs = errors(
            "[user.x]\ndisplay_name = \"X\"\n[users.y]\nroles = \"clinician\"\norg = 3\n[users.dr.lee]\ndisplay_name = \"L\"\n",
        );
        assert_eq!(
            errs,
            [
                "users.toml:1:2: unknown setting 'user' at the top of the file; did you mean 'users'?",
                "users.toml:3:8: account 'y' has no display_name; add a line like display_name = \"Dr. Alex Lee\"",
                "users.toml:4:9: roles must be a list, like roles = [\"clinician\"]",
                "users.toml:5:7: org must be text in quotes, like org = \"...\" (found integer)",
                "users.toml:6:8: account 'dr' has no display_name; add a line like display_name = \"Dr. Alex Lee\"",
                "users.toml:6:11: unknown setting 'lee' in account 'dr'; the settings here are: display_name, roles, org, status, expires, sponsor, allow_from, attributes, sign_in (if the account name has a dot in it, put it in quotes: [users.\"dr.lee\"])",
            ]
        );
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("dr_lee").is_ok());
        assert!(check_name("a.b-c_9").is_ok());
        assert!(check_name(&"a".repeat(64)).is_ok());
        assert!(check_name(&"a".repeat(65)).is_err());
        assert!(check_name("").is_err());
        assert!(check_name("DrLee").is_err());
        assert!(check_name("dr lee").is_err());
        assert!(check_name("dr/lee").is_err());
    }

    #[test]
    fn usable_on_respects_status_and_end_date() {
        let dir = parse(Path::new("users.toml"), EXAMPLE).unwrap();
        let today = date(2027, 3, 31);
        let mut a = dir.accounts["jsmith"].clone();
        assert!(a.usable_on(today), "the end date itself still works");
        assert!(!a.usable_on(date(2027, 4, 1)));
        a.expires = None;
        assert!(a.usable_on(today));
        a.status = Status::Deactivated;
        assert!(!a.usable_on(today));
        a.status = Status::Terminated;
        assert!(!a.usable_on(today));
    }

    #[test]
    fn only_an_active_password_account_past_its_end_date_is_only_ended() {
        let dir = parse(Path::new("users.toml"), EXAMPLE).unwrap();
        let mut a = dir.accounts["jsmith"].clone();
        assert!(
            !a.only_ended(date(2027, 3, 31)),
            "the end date itself still works"
        );
        assert!(a.only_ended(date(2027, 4, 1)));
        for status in [Status::Deactivated, Status::Terminated] {
            a.status = status;
            assert!(!a.only_ended(date(2027, 4, 1)));
        }
        a.status = Status::Active;
        a.sign_in = SignIn::Sso;
        assert!(!a.only_ended(date(2027, 4, 1)), "single sign-on only");
        a.sign_in = SignIn::Any;
        a.expires = None;
        assert!(!a.only_ended(date(2099, 1, 1)));
    }

    #[test]
    fn check_needs_the_policy() {
        let text = r#"
[users.dr_lee]
display_name = "Dr. Alex Lee"
roles = ["clinican"]
org = "Riverside Family Clinic"
allow_from = ["office_lan", "10.0.0.0/8", "fe80::/10"]

[users.jsmith]
display_name = "Jo Smith"
roles = ["vendor_biller"]
org = "Acme Billing"
allow_from = ["acme_biling_vpn"]
"#;
        let dir = parse(Path::new("users.toml"), text).unwrap();
        let problems = dir.check(
            "Riverside Family Clinic",
            &["clinician", "vendor_biller"],
            &["office_lan", "acme_billing_vpn"],
        );
        assert_eq!(
            problems,
            [
                (
                    2,
                    "account 'dr_lee': unknown role 'clinican'; did you mean 'clinician'?".to_string()
                ),
                (
                    8,
                    "account 'jsmith': unknown network 'acme_biling_vpn'; did you mean 'acme_billing_vpn'?"
                        .to_string()
                ),
                (
                    8,
                    "account 'jsmith': vendor accounts need an end date (expires)".to_string()
                ),
            ]
        );
    }
}
