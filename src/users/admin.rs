//! What `ward user …` (and later the officer console) does to accounts.
//!
//! Edits to users.toml change only the keys involved, so the officer's comments and layout
//! stay; the result is checked with `directory::parse` before it replaces the file. Every
//! operation runs under the secret store's lock, so two edits never interleave.

use super::directory::{self, Account, Directory, Status};
use super::secrets::{
    PasskeyEntry, PendingEnrollment, Purpose, SecretStore, Secrets, StoreError, UserSecrets,
};
use crate::auth::codes::{random_token, token_hash};
use crate::config::diag::Diagnostics;
use crate::fsutil;
use jiff::civil::Date;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use toml_edit::{DocumentMut, Item, TableLike, Value};

/// How long an enrollment or reset link works.
pub const LINK_LIFETIME_SECS: i64 = 24 * 60 * 60;

/// Permissions for a users.toml that ward creates: it names staff, so not world-readable.
const NEW_FILE_MODE: u32 = 0o640;

/// A person to add.
#[derive(Debug, Clone, Default)]
pub struct NewAccount {
    /// Sign-in name.
    pub name: String,
    /// Name shown to people.
    pub display_name: String,
    /// Roles from the policy.
    pub roles: Vec<String>,
    /// Organisation, for people who do not work for the practice.
    pub org: Option<String>,
    /// Last day the account works.
    pub expires: Option<Date>,
    /// Who at the practice vouches for this person.
    pub sponsor: Option<String>,
    /// Networks or CIDRs the person may sign in from.
    pub allow_from: Vec<String>,
}

/// A one-time link to hand to the person; the caller turns the token into a URL.
#[derive(Debug, Clone)]
pub struct EnrollLink {
    /// The secret in the link; ward keeps only its hash.
    pub token: String,
    /// When the link stops working, unix seconds.
    pub expires: i64,
}

/// Why an account change was refused or failed; nothing was changed unless it says so.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No account has that name.
    #[error("there is no account named '{0}'")]
    NoAccount(String),
    /// The name is taken.
    #[error("there is already an account named '{0}'")]
    Exists(String),
    /// The name belonged to an account that is gone.
    #[error(
        "the name '{0}' belonged to an account that was terminated; names are never reused, so choose another"
    )]
    NameRetired(String),
    /// The name is not allowed.
    #[error(transparent)]
    BadName(#[from] super::directory::BadName),
    /// A value is not allowed.
    #[error("{0}")]
    BadValue(String),
    /// The account is terminated, which is permanent.
    #[error("{name} is terminated; terminated accounts cannot be {action}")]
    Terminated {
        /// The account.
        name: String,
        /// What was tried, e.g. "reactivated".
        action: &'static str,
    },
    /// A vendor account needs an end date.
    #[error("{0} works for another organisation (org), so the account needs an end date (expires)")]
    VendorNeedsExpiry(String),
    /// users.toml already has problems.
    #[error("the accounts file has problems; fix them before changing accounts:\n{0}")]
    FileHasProblems(Diagnostics),
    /// The change would have left a file ward cannot read.
    #[error("the change was not saved, because the accounts file would not load after it:\n{0}")]
    WouldBreak(Diagnostics),
    /// The change could not be made as intended.
    #[error("the change was not saved: {0}")]
    Edit(String),
    /// users.toml could not be read or written.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// "read" or "write".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The secret store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No random link could be made.
    #[error("cannot make a sign-in link: {0}")]
    Random(String),
}

/// Changes accounts in users.toml and the secret store together.
pub struct Admin {
    users_file: PathBuf,
    store: SecretStore,
    practice: String,
}

impl Admin {
    /// An admin for `users_file` and `store`; `practice` is the practice's own org name (vendors are everyone else).
    pub fn new(users_file: &Path, store: SecretStore, practice: &str) -> Admin {
        Admin {
            users_file: users_file.to_path_buf(),
            store,
            practice: practice.to_string(),
        }
    }

    /// Adds an account and returns its first enrollment link.
    pub fn add(&self, new: NewAccount, now: i64) -> Result<EnrollLink, AdminError> {
        directory::check_name(&new.name)?;
        if directory::is_vendor_org(new.org.as_deref(), &self.practice) && new.expires.is_none() {
            return Err(AdminError::VendorNeedsExpiry(new.name));
        }
        check_list("roles", &new.roles)?;
        check_list("allow_from", &new.allow_from)?;
        let (token, pending) = new_link(now, Purpose::Enroll)?;
        self.locked(|secrets| {
            let (text, dir) = self.read_users()?;
            match dir.get(&new.name) {
                Some(a) if a.status == Status::Terminated => {
                    return Err(AdminError::NameRetired(new.name));
                }
                Some(_) => return Err(AdminError::Exists(new.name)),
                None => {}
            }
            // Leftover secrets mean the name was used before (its table deleted by hand);
            // reusing it would hand the new person the old password and MFA.
            if secrets.users.contains_key(&new.name) {
                return Err(AdminError::NameRetired(new.name));
            }
            let new_text = append_account(&text, &new);
            let mut expected = dir;
            expected.accounts.insert(
                new.name.clone(),
                Account {
                    name: new.name.clone(),
                    display_name: new.display_name.clone(),
                    roles: new.roles.clone(),
                    status: Status::Active,
                    org: new.org.clone(),
                    expires: new.expires,
                    sponsor: new.sponsor.clone(),
                    allow_from: new.allow_from.clone(),
                    attributes: Default::default(),
                    sign_in: Default::default(),
                    line: 0,
                },
            );
            self.write_users(&text, &new_text, &expected)?;
            let expires = pending.expires;
            secrets.users.insert(
                new.name,
                UserSecrets {
                    enroll: Some(pending),
                    ..Default::default()
                },
            );
            Ok(EnrollLink { token, expires })
        })
    }

    /// Replaces the account's roles.
    pub fn set_roles(&self, name: &str, roles: &[String]) -> Result<(), AdminError> {
        check_list("roles", roles)?;
        self.locked(|_| {
            let (text, dir) = self.read_users()?;
            live(&dir, name, "changed")?;
            let array: toml_edit::Array = roles.iter().map(String::as_str).collect();
            self.edit(
                &text,
                dir,
                name,
                |t| set_key(t, "roles", Value::Array(array)),
                |a| a.roles = roles.to_vec(),
            )
        })
    }

    /// Stops the account signing in and ends its sessions; `reactivate` undoes it.
    pub fn deactivate(&self, name: &str) -> Result<(), AdminError> {
        self.locked(|secrets| {
            let (text, dir) = self.read_users()?;
            live(&dir, name, "deactivated")?;
            self.set_status(&text, dir, name, Status::Deactivated)?;
            bump_epoch(entry(secrets, name));
            Ok(())
        })
    }

    /// Lets a deactivated account sign in again; terminated accounts stay terminated.
    pub fn reactivate(&self, name: &str) -> Result<(), AdminError> {
        self.locked(|_| {
            let (text, dir) = self.read_users()?;
            match live(&dir, name, "reactivated")?.status {
                Status::Deactivated => self.set_status(&text, dir, name, Status::Active),
                // Already active: nothing to do.
                _ => Ok(()),
            }
        })
    }

    /// Ends the account for good: sessions end, secrets are cleared, the record stays.
    pub fn terminate(&self, name: &str) -> Result<(), AdminError> {
        self.locked(|secrets| {
            let (text, dir) = self.read_users()?;
            account(&dir, name)?;
            self.set_status(&text, dir, name, Status::Terminated)?;
            let old = secrets.users.remove(name).unwrap_or_default();
            // Keep what the audit trail needs; drop everything that could sign in.
            let mut kept = UserSecrets {
                epoch: old.epoch,
                last_login: old.last_login,
                last_login_ip: old.last_login_ip,
                last_activity: old.last_activity,
                ..Default::default()
            };
            bump_epoch(&mut kept);
            secrets.users.insert(name.to_string(), kept);
            Ok(())
        })
    }

    /// Voids the password, ends sessions, and returns a link to set a new one.
    pub fn reset_password(&self, name: &str, now: i64) -> Result<EnrollLink, AdminError> {
        self.reset(name, now, |u| {
            u.password = None;
            // Someone who never finished enrolling needs the full enrollment, MFA included.
            if u.totp.is_none() {
                Purpose::Enroll
            } else {
                Purpose::ResetPassword
            }
        })
    }

    /// Voids MFA (TOTP and recovery codes), ends sessions, and returns a link to set it up again.
    pub fn reset_mfa(&self, name: &str, now: i64) -> Result<EnrollLink, AdminError> {
        self.reset(name, now, |u| {
            u.totp = None;
            u.totp_last_step = None;
            u.recovery.clear();
            // A lost phone may hold passkeys too: every second factor goes.
            u.passkeys.clear();
            if u.password.is_none() {
                Purpose::Enroll
            } else {
                Purpose::ResetMfa
            }
        })
    }

    /// Sets the account's last working day; `None` removes it.
    pub fn set_expiry(&self, name: &str, date: Option<Date>) -> Result<(), AdminError> {
        self.locked(|_| {
            let (text, dir) = self.read_users()?;
            let a = live(&dir, name, "changed")?;
            if date.is_none() && a.is_vendor(&self.practice) {
                return Err(AdminError::VendorNeedsExpiry(name.to_string()));
            }
            self.edit(
                &text,
                dir,
                name,
                |t| match date {
                    Some(d) => {
                        let v = date_value(t, d);
                        set_key(t, "expires", v);
                    }
                    None => {
                        t.remove("expires");
                    }
                },
                |a| a.expires = date,
            )
        })
    }

    /// Clears failed sign-ins and any lockout.
    pub fn unlock(&self, name: &str) -> Result<(), AdminError> {
        self.locked(|secrets| {
            let (_, dir) = self.read_users()?;
            live(&dir, name, "unlocked")?;
            if let Some(u) = secrets.users.get_mut(name) {
                u.clear_lockout();
            }
            Ok(())
        })
    }

    /// The account's passkeys and security keys (names, hosts, dates; no key material shown).
    pub fn passkeys(&self, name: &str) -> Result<Vec<PasskeyEntry>, AdminError> {
        let (_, dir) = self.read_users()?;
        account(&dir, name)?;
        let secrets = self.store.read()?;
        Ok(secrets
            .users
            .get(name)
            .map(|u| u.passkeys.clone())
            .unwrap_or_default())
    }

    /// Removes the passkey named `key` (its name, or its id when names repeat) and ends the
    /// account's sessions, one of which may have signed in with it. Returns the key's name.
    pub fn remove_passkey(&self, name: &str, key: &str) -> Result<String, AdminError> {
        self.locked(|secrets| {
            let (_, dir) = self.read_users()?;
            account(&dir, name)?;
            let u = entry(secrets, name);
            let matching: Vec<usize> = u
                .passkeys
                .iter()
                .enumerate()
                .filter(|(_, k)| k.name == key || k.id_text() == key)
                .map(|(i, _)| i)
                .collect();
            let index = match matching.as_slice() {
                [i] => *i,
                [] => {
                    return Err(AdminError::BadValue(format!(
                        "{name} has no passkey named '{key}'; `ward user passkeys {name}` lists them"
                    )));
                }
                _ => {
                    return Err(AdminError::BadValue(format!(
                        "{name} has several passkeys named '{key}'; name one by its id (`ward user passkeys {name}` shows the ids)"
                    )));
                }
            };
            let removed = u.passkeys.remove(index);
            bump_epoch(u);
            Ok(removed.name)
        })
    }

    /// Runs `f` under the store's lock; the store is written only if `f` changed it.
    fn locked<T>(
        &self,
        f: impl FnOnce(&mut Secrets) -> Result<T, AdminError>,
    ) -> Result<T, AdminError> {
        self.store.update(f)?
    }

    /// Shared by both resets: `void` clears a credential and says what the link is for.
    fn reset(
        &self,
        name: &str,
        now: i64,
        void: impl FnOnce(&mut UserSecrets) -> Purpose,
    ) -> Result<EnrollLink, AdminError> {
        let (token, mut pending) = new_link(now, Purpose::Enroll)?;
        self.locked(|secrets| {
            let (_, dir) = self.read_users()?;
            live(&dir, name, "reset")?;
            let u = entry(secrets, name);
            pending.purpose = void(u);
            bump_epoch(u);
            // The officer has vouched for the person; a lockout would only block the new link.
            u.clear_lockout();
            let expires = pending.expires;
            u.enroll = Some(pending);
            Ok(EnrollLink { token, expires })
        })
    }

    /// Reads users.toml (missing = empty) and insists it is valid before anything changes.
    fn read_users(&self) -> Result<(String, Directory), AdminError> {
        let text = match std::fs::read_to_string(&self.users_file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(AdminError::Io {
                    action: "read",
                    path: self.users_file.clone(),
                    source,
                });
            }
        };
        let dir = directory::parse(&self.users_file, &text).map_err(AdminError::FileHasProblems)?;
        Ok((text, dir))
    }

    fn set_status(
        &self,
        text: &str,
        dir: Directory,
        name: &str,
        status: Status,
    ) -> Result<(), AdminError> {
        self.edit(
            text,
            dir,
            name,
            |t| set_key(t, "status", status.as_str().into()),
            |a| a.status = status,
        )
    }

    /// Edits account `name` in `text` with `change_file`, checks the result is `dir` changed
    /// by `change_account`, and writes it.
    fn edit(
        &self,
        text: &str,
        dir: Directory,
        name: &str,
        change_file: impl FnOnce(&mut dyn TableLike),
        change_account: impl FnOnce(&mut Account),
    ) -> Result<(), AdminError> {
        let mut doc: DocumentMut = text
            .parse()
            .map_err(|e: toml_edit::TomlError| AdminError::Edit(e.message().to_string()))?;
        let table = doc
            .get_mut("users")
            .and_then(Item::as_table_like_mut)
            .and_then(|users| users.get_mut(name))
            .and_then(Item::as_table_like_mut)
            .ok_or_else(|| AdminError::Edit(format!("cannot find the table for '{name}'")))?;
        change_file(table);
        let mut expected = dir;
        let a = expected
            .accounts
            .get_mut(name)
            .ok_or_else(|| AdminError::NoAccount(name.to_string()))?;
        change_account(a);
        self.write_users(text, &doc.to_string(), &expected)
    }

    /// Writes `new_text` over users.toml after checking it reads back as `expected`.
    fn write_users(
        &self,
        old: &str,
        new_text: &str,
        expected: &Directory,
    ) -> Result<(), AdminError> {
        let got = directory::parse(&self.users_file, new_text).map_err(AdminError::WouldBreak)?;
        if without_lines(&got) != without_lines(expected) {
            return Err(AdminError::Edit(
                "the accounts file would not have said what was intended".into(),
            ));
        }
        if new_text == old {
            return Ok(());
        }
        let io = |action, source| AdminError::Io {
            action,
            path: self.users_file.clone(),
            source,
        };
        // The first account on a fresh install: make the folder the file goes in.
        if let Some(dir) = self.users_file.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| io("create the folder for", e))?;
        }
        // Write through a symlink to the real file rather than replacing the link.
        let path = std::fs::canonicalize(&self.users_file).unwrap_or(self.users_file.clone());
        let meta = std::fs::metadata(&path).ok();
        let mode = meta
            .as_ref()
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(NEW_FILE_MODE);
        fsutil::write_atomic(&path, new_text.as_bytes(), mode).map_err(|e| io("write", e))?;
        // The new file's mode was cut by the umask; put back exactly what the officer had.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| io("set permissions on", e))?;
        if let Some(m) = meta {
            // Keep the officer as owner when ward runs as root; harmless to fail otherwise.
            let _ = std::os::unix::fs::chown(&path, Some(m.uid()), Some(m.gid()));
        }
        Ok(())
    }
}

fn account<'a>(dir: &'a Directory, name: &str) -> Result<&'a Account, AdminError> {
    dir.get(name)
        .ok_or_else(|| AdminError::NoAccount(name.to_string()))
}

/// The account, refusing if it is terminated (`action` says what was tried).
fn live<'a>(
    dir: &'a Directory,
    name: &str,
    action: &'static str,
) -> Result<&'a Account, AdminError> {
    let a = account(dir, name)?;
    if a.status == Status::Terminated {
        return Err(AdminError::Terminated {
            name: name.to_string(),
            action,
        });
    }
    Ok(a)
}

fn entry<'a>(secrets: &'a mut Secrets, name: &str) -> &'a mut UserSecrets {
    secrets.users.entry(name.to_string()).or_default()
}

fn bump_epoch(u: &mut UserSecrets) {
    // An epoch only has to change; wrapping cannot panic on a damaged value.
    u.epoch = u.epoch.wrapping_add(1);
}

fn new_link(now: i64, purpose: Purpose) -> Result<(String, PendingEnrollment), AdminError> {
    let token = random_token().map_err(|e| AdminError::Random(e.to_string()))?;
    let pending = PendingEnrollment {
        token_hash: token_hash(&token),
        expires: now + LINK_LIFETIME_SECS,
        purpose,
        pending_totp: None,
    };
    Ok((token, pending))
}

fn check_list(key: &str, items: &[String]) -> Result<(), AdminError> {
    if items.iter().any(|i| i.trim().is_empty()) {
        return Err(AdminError::BadValue(format!(
            "{key} cannot contain an empty name"
        )));
    }
    Ok(())
}

fn without_lines(dir: &Directory) -> Directory {
    let mut d = dir.clone();
    for a in d.accounts.values_mut() {
        a.line = 0;
    }
    d
}

/// Sets `key` to `value`, keeping the spacing and comment around an existing value.
fn set_key(table: &mut dyn TableLike, key: &str, mut value: Value) {
    match table.get_mut(key) {
        Some(item) => {
            if let Some(old) = item.as_value() {
                *value.decor_mut() = old.decor().clone();
            }
            *item = Item::Value(value);
        }
        None => {
            table.insert(key, Item::Value(value));
        }
    }
}

/// `d` as a TOML date, or as text if the officer wrote the old date as text.
fn date_value(table: &dyn TableLike, d: Date) -> Value {
    if table.get("expires").and_then(Item::as_str).is_some() {
        return d.to_string().into();
    }
    toml_date(d).into()
}

fn toml_date(d: Date) -> toml_edit::Date {
    // jiff dates are years 1-9999 with valid months and days, so these casts are exact.
    toml_edit::Date {
        year: d.year() as u16,
        month: d.month() as u8,
        day: d.day() as u8,
    }
}

/// The first lines of a users.toml that ward makes: its schema (`ward schema` writes it beside
/// the file) and where the keys are explained.
const NEW_FILE_HEADER: &str = "#:schema ./users.schema.json\n\
    # The people who may sign in, one table per person; see the README's users.toml reference.\n\n";

/// `text` with a new `[users.NAME]` table at the very end, after a blank line; nothing
/// before it changes.
fn append_account(text: &str, new: &NewAccount) -> String {
    let mut t = toml_edit::Table::new();
    t.insert("display_name", toml_edit::value(new.display_name.as_str()));
    let roles: toml_edit::Array = new.roles.iter().map(String::as_str).collect();
    t.insert("roles", toml_edit::value(roles));
    if let Some(org) = &new.org {
        t.insert("org", toml_edit::value(org.as_str()));
    }
    if let Some(d) = new.expires {
        t.insert("expires", toml_edit::value(toml_date(d)));
    }
    if let Some(s) = &new.sponsor {
        t.insert("sponsor", toml_edit::value(s.as_str()));
    }
    if !new.allow_from.is_empty() {
        let nets: toml_edit::Array = new.allow_from.iter().map(String::as_str).collect();
        t.insert("allow_from", toml_edit::value(nets));
    }
    // toml_edit quotes the name if it needs it (a '.' would otherwise nest tables).
    let mut users = toml_edit::Table::new();
    users.set_implicit(true);
    users.insert(&new.name, Item::Table(t));
    let mut doc = DocumentMut::new();
    doc.insert("users", Item::Table(users));

    // Appending text, rather than adding to the parsed document, keeps everything above
    // byte-for-byte, including comments at the end of the file.
    let mut out = text.to_string();
    if out.is_empty() {
        // A new file names its schema, for editors that complete and check TOML.
        out.push_str(NEW_FILE_HEADER);
    } else {
        if !out.ends_with('\n') {
            out.push('\n');
        }
        if !out.ends_with("\n\n") {
            out.push('\n');
        }
    }
    out.push_str(&doc.to_string());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    const PRACTICE: &str = "Riverside Family Clinic";
    const NOW: i64 = 1_800_000_000;

    const FILE: &str = r#"# Riverside Family Clinic: everyone who may use ward.
# Ask the office manager before adding anyone.

[users.dr_lee]
display_name = "Dr. Alex Lee"
roles = ["clinician"]   # front desk too?
org = "Riverside Family Clinic"        # optional
status = "active"                      # active | deactivated | terminated

# Billing vendor, contract ends March 2027.
[users.jsmith]
display_name = "Jo Smith (Acme Billing)"
roles = ["vendor_biller"]
org = "Acme Billing"
expires = 2027-03-31                   # last day
sponsor = "office_manager"
attributes = { provider_id = "1234" }

# Keep this list short!
"#;

    struct Fixture {
        _tmp: tempfile::TempDir,
        users: PathBuf,
        admin: Admin,
        store: SecretStore,
    }

    fn fixture(text: &str) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let users = tmp.path().join("users.toml");
        std::fs::write(&users, text).unwrap();
        let store = SecretStore::open(&tmp.path().join("state")).unwrap();
        let admin = Admin::new(&users, store.clone(), PRACTICE);
        Fixture {
            _tmp: tmp,
            users,
            admin,
            store,
        }
    }

    impl Fixture {
        fn text(&self) -> String {
            std::fs::read_to_string(&self.users).unwrap()
        }
        fn account(&self, name: &str) -> Account {
            directory::load(&self.users).unwrap().accounts[name].clone()
        }
        fn secrets(&self, name: &str) -> UserSecrets {
            self.store.read().unwrap().users[name].clone()
        }
        fn seed(&self, name: &str) {
            self.store
                .update(|s| {
                    s.users.insert(
                        name.into(),
                        UserSecrets {
                            password: Some("$argon2id$hash".into()),
                            totp: Some("JBSWY3DPEHPK3PXP".into()),
                            totp_last_step: Some(7),
                            recovery: vec!["r1".into(), "r2".into()],
                            epoch: 5,
                            last_login: Some(NOW - 60),
                            last_login_ip: Some("10.0.0.7".into()),
                            last_activity: Some(NOW - 30),
                            failed_logins: 4,
                            locked_until: Some(NOW + 600),
                            ..Default::default()
                        },
                    )
                })
                .unwrap();
        }
    }

    fn vendor() -> NewAccount {
        NewAccount {
            name: "kpatel".into(),
            display_name: "K. Patel (Acme \"IT\")".into(),
            roles: vec!["vendor_it".into()],
            org: Some("Acme IT".into()),
            expires: Some(date(2026, 12, 31)),
            sponsor: Some("office_manager".into()),
            allow_from: vec!["acme_vpn".into(), "203.0.113.0/24".into()],
        }
    }

    #[test]
    fn add_appends_and_keeps_everything_else() {
        let f = fixture(FILE);
        let link = f.admin.add(vendor(), NOW).unwrap();
        let text = f.text();
        let expected_tail = r#"
[users.kpatel]
display_name = 'K. Patel (Acme "IT")'
roles = ["vendor_it"]
org = "Acme IT"
expires = 2026-12-31
sponsor = "office_manager"
allow_from = ["acme_vpn", "203.0.113.0/24"]
"#;
        assert_eq!(text, format!("{FILE}{expected_tail}"));
        let a = f.account("kpatel");
        assert_eq!(a.status, Status::Active);
        assert_eq!(a.expires, Some(date(2026, 12, 31)));

        assert_eq!(link.expires, NOW + 24 * 3600);
        assert_eq!(link.token.len(), 43);
        let s = f.secrets("kpatel");
        let pending = s.enroll.unwrap();
        assert_eq!(pending.token_hash, token_hash(&link.token));
        assert_ne!(pending.token_hash, link.token);
        assert_eq!(pending.expires, link.expires);
        assert_eq!(pending.purpose, Purpose::Enroll);
        assert!(s.password.is_none() && s.totp.is_none());
        let raw = std::fs::read_to_string(f.store.path()).unwrap();
        assert!(!raw.contains(&link.token));
    }

    #[test]
    fn add_to_a_missing_or_bare_file() {
        let tmp = tempfile::tempdir().unwrap();
        let users = tmp.path().join("users.toml");
        let store = SecretStore::open(&tmp.path().join("state")).unwrap();
        let admin = Admin::new(&users, store, PRACTICE);
        let mut new = vendor();
        new.name = "a.b".into();
        new.org = None;
        new.expires = None;
        new.sponsor = None;
        new.allow_from = Vec::new();
        admin.add(new, NOW).unwrap();
        let text = std::fs::read_to_string(&users).unwrap();
        assert_eq!(
            text,
            format!(
                "{NEW_FILE_HEADER}[users.\"a.b\"]\ndisplay_name = 'K. Patel (Acme \"IT\")'\nroles = [\"vendor_it\"]\n"
            )
        );
        let mode = std::fs::metadata(&users).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, NEW_FILE_MODE);
        assert!(directory::load(&users).unwrap().get("a.b").is_some());

        // A file without a final newline gets one, then the blank line.
        let f = fixture("[users.x]\ndisplay_name = \"X\" # no newline");
        let mut new = vendor();
        new.org = None;
        f.admin.add(new, NOW).unwrap();
        assert!(
            f.text()
                .starts_with("[users.x]\ndisplay_name = \"X\" # no newline\n\n[users.kpatel]\n")
        );
    }

    #[test]
    fn add_refuses_bad_requests() {
        let f = fixture(FILE);
        let before = f.text();
        let mut new = vendor();
        new.expires = None;
        assert!(matches!(
            f.admin.add(new, NOW),
            Err(AdminError::VendorNeedsExpiry(_))
        ));
        let mut new = vendor();
        new.name = "K Patel".into();
        let err = f.admin.add(new, NOW).unwrap_err();
        assert!(err.to_string().contains("for example 'k_patel'"), "{err}");
        let mut new = vendor();
        new.name = "dr_lee".into();
        assert_eq!(
            f.admin.add(new, NOW).unwrap_err().to_string(),
            "there is already an account named 'dr_lee'"
        );
        let mut new = vendor();
        new.roles = vec![" ".into()];
        assert!(matches!(
            f.admin.add(new, NOW),
            Err(AdminError::BadValue(_))
        ));
        // Staff of the practice need no end date.
        let mut new = vendor();
        new.org = Some("riverside family clinic".into());
        new.expires = None;
        f.admin.add(new, NOW).unwrap();
        assert!(f.text().starts_with(&before));
    }

    #[test]
    fn names_are_never_reused() {
        let f = fixture(FILE);
        f.admin.terminate("jsmith").unwrap();
        let mut new = vendor();
        new.name = "jsmith".into();
        let err = f.admin.add(new.clone(), NOW).unwrap_err();
        assert!(matches!(err, AdminError::NameRetired(_)), "{err}");

        // Even when the officer deleted the table by hand, the old secrets stay with the name.
        let f = fixture(FILE);
        f.seed("old_user");
        new.name = "old_user".into();
        let err = f.admin.add(new, NOW).unwrap_err();
        assert!(matches!(err, AdminError::NameRetired(_)), "{err}");
        assert_eq!(f.text(), FILE);
    }

    #[test]
    fn set_roles_changes_only_roles() {
        let f = fixture(FILE);
        f.admin
            .set_roles("dr_lee", &["clinician".into(), "front_desk".into()])
            .unwrap();
        let expected = FILE.replace(
            "roles = [\"clinician\"]   # front desk too?",
            "roles = [\"clinician\", \"front_desk\"]   # front desk too?",
        );
        assert_eq!(f.text(), expected);
        assert_eq!(f.account("dr_lee").roles, ["clinician", "front_desk"]);
        assert_eq!(
            f.admin.set_roles("nobody", &[]).unwrap_err().to_string(),
            "there is no account named 'nobody'"
        );
    }

    #[test]
    fn deactivate_and_reactivate() {
        let f = fixture(FILE);
        f.seed("dr_lee");
        f.admin.deactivate("dr_lee").unwrap();
        let expected = FILE.replace(
            "status = \"active\"                      # active",
            "status = \"deactivated\"                      # active",
        );
        assert_eq!(f.text(), expected);
        assert_eq!(f.account("dr_lee").status, Status::Deactivated);
        let s = f.secrets("dr_lee");
        assert_eq!(s.epoch, 6);
        assert!(s.password.is_some() && s.totp.is_some(), "credentials stay");

        f.admin.reactivate("dr_lee").unwrap();
        assert_eq!(f.account("dr_lee").status, Status::Active);
        assert_eq!(f.text(), FILE);
        assert_eq!(f.secrets("dr_lee").epoch, 6);
        // Reactivating an active account changes nothing.
        f.admin.reactivate("dr_lee").unwrap();
        assert_eq!(f.text(), FILE);

        // jsmith has no status line yet: one is added to its table.
        f.admin.deactivate("jsmith").unwrap();
        assert!(f.text().contains(
            "attributes = { provider_id = \"1234\" }\nstatus = \"deactivated\"\n\n# Keep this list short!\n"
        ));
        assert_eq!(f.secrets("jsmith").epoch, 1);
    }

    #[test]
    fn terminate_is_permanent() {
        let f = fixture(FILE);
        f.seed("dr_lee");
        f.admin.terminate("dr_lee").unwrap();
        let a = f.account("dr_lee");
        assert_eq!(a.status, Status::Terminated);
        assert_eq!(a.roles, ["clinician"], "the record is kept");
        let s = f.secrets("dr_lee");
        assert_eq!(
            s,
            UserSecrets {
                epoch: 6,
                last_login: Some(NOW - 60),
                last_login_ip: Some("10.0.0.7".into()),
                last_activity: Some(NOW - 30),
                ..Default::default()
            }
        );
        assert_eq!(
            f.admin.reactivate("dr_lee").unwrap_err().to_string(),
            "dr_lee is terminated; terminated accounts cannot be reactivated"
        );
        let text = f.text();
        for err in [
            f.admin.deactivate("dr_lee").unwrap_err(),
            f.admin.set_roles("dr_lee", &[]).unwrap_err(),
            f.admin.set_expiry("dr_lee", None).unwrap_err(),
            f.admin.reset_password("dr_lee", NOW).unwrap_err(),
            f.admin.reset_mfa("dr_lee", NOW).unwrap_err(),
            f.admin.unlock("dr_lee").unwrap_err(),
        ] {
            assert!(matches!(err, AdminError::Terminated { .. }), "{err}");
        }
        assert_eq!(f.text(), text);
        assert_eq!(f.secrets("dr_lee"), s);
    }

    #[test]
    fn reset_password_voids_it_and_ends_sessions() {
        let f = fixture(FILE);
        f.seed("dr_lee");
        let link = f.admin.reset_password("dr_lee", NOW).unwrap();
        let s = f.secrets("dr_lee");
        assert!(s.password.is_none());
        assert!(s.totp.is_some() && s.recovery.len() == 2, "MFA stays");
        assert_eq!(s.epoch, 6);
        assert_eq!((s.failed_logins, s.locked_until), (0, None));
        let pending = s.enroll.unwrap();
        assert_eq!(pending.purpose, Purpose::ResetPassword);
        assert_eq!(pending.token_hash, token_hash(&link.token));
        assert_eq!(link.expires, NOW + 86_400);
        assert_eq!(f.text(), FILE);

        // A second reset replaces the first link.
        let again = f.admin.reset_password("dr_lee", NOW + 5).unwrap();
        let s = f.secrets("dr_lee");
        assert_eq!(s.enroll.unwrap().token_hash, token_hash(&again.token));
        assert_eq!(s.epoch, 7);
    }

    #[test]
    fn reset_mfa_voids_it_and_ends_sessions() {
        let f = fixture(FILE);
        f.seed("dr_lee");
        f.admin.reset_mfa("dr_lee", NOW).unwrap();
        let s = f.secrets("dr_lee");
        assert!(s.totp.is_none() && s.totp_last_step.is_none() && s.recovery.is_empty());
        assert!(s.password.is_some(), "password stays");
        assert_eq!(s.epoch, 6);
        assert_eq!(s.enroll.unwrap().purpose, Purpose::ResetMfa);

        // With both gone, the link is a full enrollment.
        f.admin.reset_password("dr_lee", NOW).unwrap();
        assert_eq!(f.secrets("dr_lee").enroll.unwrap().purpose, Purpose::Enroll);
    }

    #[test]
    fn set_expiry_edits_only_that_line() {
        let f = fixture(FILE);
        f.admin
            .set_expiry("jsmith", Some(date(2027, 6, 30)))
            .unwrap();
        let expected = FILE.replace("expires = 2027-03-31 ", "expires = 2027-06-30 ");
        assert_eq!(f.text(), expected);
        assert_eq!(f.account("jsmith").expires, Some(date(2027, 6, 30)));

        // A vendor cannot lose its end date; staff can.
        assert!(matches!(
            f.admin.set_expiry("jsmith", None),
            Err(AdminError::VendorNeedsExpiry(_))
        ));
        f.admin
            .set_expiry("dr_lee", Some(date(2030, 1, 1)))
            .unwrap();
        assert!(f.text().contains("status = \"active\"                      # active | deactivated | terminated\nexpires = 2030-01-01\n"));
        f.admin.set_expiry("dr_lee", None).unwrap();
        assert_eq!(f.text(), expected);

        // A date the officer wrote as text stays text.
        let f = fixture("[users.a]\ndisplay_name = \"A\"\nexpires = \"2027-01-01\"\n");
        f.admin.set_expiry("a", Some(date(2027, 2, 1))).unwrap();
        assert_eq!(
            f.text(),
            "[users.a]\ndisplay_name = \"A\"\nexpires = \"2027-02-01\"\n"
        );
    }

    #[test]
    fn unlock_clears_the_lockout_only() {
        let f = fixture(FILE);
        f.seed("dr_lee");
        f.admin.unlock("dr_lee").unwrap();
        let s = f.secrets("dr_lee");
        assert_eq!((s.failed_logins, s.locked_until), (0, None));
        assert_eq!(s.epoch, 5);
        assert!(s.password.is_some());
        assert_eq!(f.text(), FILE);
    }

    #[test]
    fn a_bad_edit_never_reaches_disk() {
        let f = fixture(FILE);
        f.seed("dr_lee");
        let before = f.store.read().unwrap();
        // An empty role would make a file ward refuses to load.
        let err = f.admin.set_roles("dr_lee", &["".into()]).unwrap_err();
        assert!(matches!(err, AdminError::BadValue(_)), "{err}");
        // An account kept as an inline table cannot take a new [users.x.y]-style edit that
        // breaks it; here the new table clashes with an inline `users`.
        let inline = "users = { dr_lee = { display_name = \"L\" } }\n";
        let g = fixture(inline);
        let err = g.admin.add(vendor(), NOW).unwrap_err();
        assert!(matches!(err, AdminError::WouldBreak(_)), "{err}");
        assert_eq!(g.text(), inline);
        assert!(g.store.read().unwrap().users.is_empty());
        // A file with problems is not edited at all.
        let broken = FILE.replace("status = \"active\"", "status = \"on leave\"");
        let h = fixture(&broken);
        let err = h.admin.deactivate("dr_lee").unwrap_err();
        assert!(matches!(err, AdminError::FileHasProblems(_)), "{err}");
        assert!(err.to_string().contains("users.toml:8:10: status"), "{err}");
        assert_eq!(h.text(), broken);
        assert_eq!(f.store.read().unwrap(), before);
        assert_eq!(f.text(), FILE);
    }

    #[test]
    fn keeps_the_file_mode() {
        let f = fixture(FILE);
        std::fs::set_permissions(&f.users, std::fs::Permissions::from_mode(0o664)).unwrap();
        f.admin.deactivate("dr_lee").unwrap();
        let mode = std::fs::metadata(&f.users).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o664);
    }
}
