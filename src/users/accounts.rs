//! The accounts in force: `users.toml` plus what ward keeps about each person,
//! reloaded when either file changes, and the check every request's session
//! goes through (account usable, credentials not reset, networks).

use crate::policy::net::{NetSet, parse_cidr};
use crate::policy::{AccessGrant, ExportGrant, Identity, Policy};
use crate::session::{Session, SessionStore, Stage};
use crate::users::grants::{self, GrantKind, GrantStore, Grants};
use crate::users::{Directory, SecretStore, Secrets, directory};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// What ward knows about one person besides `users.toml`.
#[derive(Debug, Clone, Default)]
pub struct Standing {
    /// Credential epoch: sessions from an older epoch are void.
    pub epoch: u64,
    /// A password is set.
    pub has_password: bool,
    /// An authenticator is enrolled.
    pub has_totp: bool,
    /// The names of the account's passkeys and security keys.
    pub passkeys: Vec<String>,
    /// Locked after failed sign-ins until this unix time.
    pub locked_until: Option<i64>,
}

/// One consistent view of the accounts.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// `users.toml`.
    pub directory: Directory,
    /// Per person, from the secret store.
    pub standing: HashMap<String, Standing>,
    /// Per person, their `allow_from` resolved against the policy's networks.
    pub networks: HashMap<String, NetSet>,
    /// Export and break-glass grants (all of them; `Grant::active` says which count now).
    pub grants: Grants,
}

/// Why a session no longer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The account is gone, deactivated, terminated or past its end date.
    AccountClosed,
    /// Password or MFA was reset, or the account was deactivated since.
    CredentialsChanged,
    /// Idle longer than allowed.
    Idle,
    /// Older than the policy's maximum session lifetime.
    TooOld,
}

impl Ended {
    /// Words for the signed-out page.
    pub fn explain(self) -> &'static str {
        match self {
            Ended::AccountClosed => {
                "Your account can no longer sign in. Ask the practice's security officer."
            }
            Ended::CredentialsChanged => "Your sign-in was ended because your account was changed.",
            Ended::Idle => "You were signed out because the page was not used for a while.",
            Ended::TooOld => "You were signed out because your session reached its time limit.",
        }
    }

    /// Short name for the logs, the audit trail and the signed-out page's address.
    pub fn code(self) -> &'static str {
        match self {
            Ended::AccountClosed => "account",
            Ended::CredentialsChanged => "changed",
            Ended::Idle => "idle",
            Ended::TooOld => "lifetime",
        }
    }
}

/// The accounts, kept current.
pub struct Accounts {
    users_file: PathBuf,
    store: SecretStore,
    grants: GrantStore,
    requests: crate::users::requests::RequestStore,
    current: ArcSwap<Snapshot>,
    seen: Mutex<[Option<SystemTime>; 3]>,
    problems: ArcSwap<Vec<String>>,
}

/// Why the accounts could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The secret store or the grants file.
    #[error(transparent)]
    Store(#[from] crate::users::secrets::StoreError),
    /// users.toml or the secrets have problems, each in words (`FILE:LINE:COL: …`).
    #[error("{}", .0.join("\n"))]
    Problems(Vec<String>),
}

impl Accounts {
    /// Opens the accounts named by the policy.
    pub fn open(policy: &Policy) -> Result<Accounts, OpenError> {
        let store = SecretStore::open(&policy.storage.state)?;
        let grants = GrantStore::open(&policy.storage.state)?;
        let requests = crate::users::requests::RequestStore::open(&policy.storage.state)?;
        let accounts = Accounts {
            users_file: policy.storage.users.clone(),
            store,
            grants,
            requests,
            current: ArcSwap::from_pointee(Snapshot::default()),
            seen: Mutex::new([None; 3]),
            problems: ArcSwap::from_pointee(Vec::new()),
        };
        accounts.reload(policy).map_err(OpenError::Problems)?;
        Ok(accounts)
    }

    /// The view in force.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// The secret store.
    pub fn store(&self) -> &SecretStore {
        &self.store
    }

    /// The grants store.
    pub fn grant_store(&self) -> &GrantStore {
        &self.grants
    }

    /// The access requests store.
    pub fn request_store(&self) -> &crate::users::requests::RequestStore {
        &self.requests
    }

    /// The accounts file.
    pub fn users_file(&self) -> &Path {
        &self.users_file
    }

    /// Why the accounts file on disk is not in force, if it is not.
    pub fn problems(&self) -> Arc<Vec<String>> {
        self.problems.load_full()
    }

    /// Reloads when either file changed since the last look; true if it did.
    pub fn refresh(&self, policy: &Policy) -> bool {
        let now = self.stamps();
        let changed = match self.seen.lock() {
            Ok(seen) => *seen != now,
            Err(_) => true,
        };
        if changed {
            let _ = self.reload(policy);
        }
        changed
    }

    fn stamps(&self) -> [Option<SystemTime>; 3] {
        [
            modified(&self.users_file),
            self.store.modified(),
            self.grants.modified(),
        ]
    }

    /// Reads the files; on a bad `users.toml` the old view stays.
    pub fn reload(&self, policy: &Policy) -> Result<(), Vec<String>> {
        let stamps = self.stamps();
        if let Ok(mut seen) = self.seen.lock() {
            *seen = stamps;
        }
        let directory = match directory::load(&self.users_file) {
            Ok(d) => d,
            Err(d) => {
                let problems: Vec<String> = d.items.iter().map(|i| d.format(i)).collect();
                for p in &problems {
                    tracing::error!("{p}");
                }
                tracing::error!(
                    "the accounts file has errors; still using the accounts loaded before"
                );
                self.problems.store(Arc::new(problems.clone()));
                return Err(problems);
            }
        };
        let secrets = match self.store.read() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot read ward's secret store; still using the accounts loaded before");
                self.problems.store(Arc::new(vec![e.to_string()]));
                return Err(vec![e.to_string()]);
            }
        };
        let grants = match self.grants.read() {
            Ok(g) => g,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the grants; still using the accounts loaded before");
                self.problems.store(Arc::new(vec![e.to_string()]));
                return Err(vec![e.to_string()]);
            }
        };
        let mut problems = Vec::new();
        let roles: Vec<&str> = policy.roles.keys().map(String::as_str).collect();
        let nets: Vec<&str> = policy.networks.keys().map(String::as_str).collect();
        for (line, message) in directory.check(&policy.practice, &roles, &nets) {
            let p = format!("{}:{line}:1: warning: {message}", self.users_file.display());
            tracing::warn!("{p}");
            problems.push(p);
        }
        let snapshot = build(directory, &secrets, grants, policy);
        self.current.store(Arc::new(snapshot));
        self.problems.store(Arc::new(problems));
        Ok(())
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn build(directory: Directory, secrets: &Secrets, grants: Grants, policy: &Policy) -> Snapshot {
    let mut standing = HashMap::new();
    for (name, s) in &secrets.users {
        standing.insert(
            name.clone(),
            Standing {
                epoch: s.epoch,
                has_password: s.password.is_some(),
                has_totp: s.totp.is_some(),
                passkeys: s.passkeys.iter().map(|k| k.name.clone()).collect(),
                locked_until: s.locked_until,
            },
        );
    }
    let mut networks = HashMap::new();
    for (name, account) in &directory.accounts {
        if let Some(set) = networks_of(account, policy) {
            networks.insert(name.clone(), set);
        }
    }
    Snapshot {
        directory,
        standing,
        networks,
        grants,
    }
}

/// A person's `allow_from` resolved against `policy`'s networks; None when unrestricted.
pub fn networks_of(account: &directory::Account, policy: &Policy) -> Option<NetSet> {
    if account.allow_from.is_empty() {
        return None;
    }
    let mut ranges = Vec::new();
    for entry in &account.allow_from {
        if let Some(set) = policy.networks.get(entry) {
            ranges.extend_from_slice(set.ranges());
        } else if let Ok(net) = parse_cidr(entry) {
            ranges.push(net);
        }
        // An unknown name adds nothing: the person is refused rather than let in from anywhere.
    }
    Some(NetSet::new(ranges))
}

/// Today's date in UTC, for account end dates (defined with the accounts file, which grants use too).
pub use crate::users::directory::today;

/// Checks a complete session against the accounts and the policy at `now`;
/// the identity it stands for, or why it has ended.
pub fn identity_of(
    session: &Session,
    snap: &Snapshot,
    policy: &Policy,
    now: i64,
) -> Result<Identity, Ended> {
    let account = snap
        .directory
        .get(&session.user)
        .ok_or(Ended::AccountClosed)?;
    if !account.usable_on(today(now)) {
        return Err(Ended::AccountClosed);
    }
    let epoch = snap
        .standing
        .get(&session.user)
        .map(|s| s.epoch)
        .unwrap_or(0);
    if epoch != session.epoch {
        return Err(Ended::CredentialsChanged);
    }
    if now - session.created > policy.sessions.max_lifetime.as_secs() as i64 {
        return Err(Ended::TooOld);
    }
    let mut roles = account.roles.clone();
    for r in &session.extra_roles {
        if !roles.contains(r) {
            roles.push(r.clone());
        }
    }
    let mut emergency = false;
    let mut export_grants = Vec::new();
    let mut access_grants = Vec::new();
    for grant in grants::active_for(&snap.grants, &account.name, now) {
        match &grant.kind {
            GrantKind::BreakGlass { roles: extra } => {
                emergency = true;
                for r in extra {
                    if !roles.contains(r) {
                        roles.push(r.clone());
                    }
                }
            }
            GrantKind::Export { route } => {
                // A pattern that no longer parses covers nothing.
                if let Ok(pattern) = crate::policy::routes::Pattern::parse(route, false) {
                    export_grants.push(ExportGrant {
                        id: grant.id.clone(),
                        reason: grant.reason.clone(),
                        pattern,
                    });
                }
            }
            GrantKind::Access { app, route } => {
                if let Ok(pattern) = crate::policy::routes::Pattern::parse(route, false) {
                    access_grants.push(AccessGrant {
                        id: grant.id.clone(),
                        reason: grant.reason.clone(),
                        app: app.clone(),
                        pattern,
                    });
                }
            }
        }
    }
    // Idle limit from every role in force, the provider's and emergency ones included.
    if now - session.last_active() > policy.idle_limit(&roles).as_secs() as i64 {
        return Err(Ended::Idle);
    }
    let device_required = roles
        .iter()
        .any(|r| policy.roles.get(r).is_some_and(|role| role.device_required))
        || account
            .org
            .as_ref()
            .is_some_and(|o| policy.server.device_orgs.contains(o));
    Ok(Identity {
        user: account.name.clone(),
        roles,
        allow_from: snap.networks.get(&account.name).cloned(),
        mfa: session.mfa && session.stage == Stage::Complete,
        passkey: session.passkey && session.mfa && session.stage == Stage::Complete,
        emergency,
        vendor: account.is_vendor(&policy.practice),
        device_required,
        export_grants,
        access_grants,
    })
}

/// Ends stored sessions that no longer stand: at once when the account was
/// closed or changed, an hour after lapsing when idle or too old. Returns the
/// people and reasons.
pub fn sweep(
    store: &dyn SessionStore,
    snap: &Snapshot,
    policy: &Policy,
    now: i64,
) -> Vec<(String, Ended)> {
    let mut ended = Vec::new();
    for s in store.all() {
        let remove = match identity_of(&s, snap, policy, now) {
            Ok(_) => None,
            // A second step owed by an account only past its end date may still end in the
            // form to ask for more time (never in a session): kept for the idle limit.
            Err(Ended::AccountClosed)
                if s.stage == Stage::NeedsMfa
                    && snap
                        .directory
                        .get(&s.user)
                        .is_some_and(|a| a.only_ended(directory::today(now))) =>
            {
                (now - s.last_active() > policy.sessions.idle_timeout.as_secs() as i64)
                    .then_some(Ended::AccountClosed)
            }
            // Closed or changed accounts: at once.
            Err(why @ (Ended::AccountClosed | Ended::CredentialsChanged)) => Some(why),
            // Idle or too old: an hour after it lapsed, so that the next request
            // can still tell the person why (the session is refused either way).
            Err(why) => identity_of(&s, snap, policy, now - 3600)
                .is_err()
                .then_some(why),
        };
        if let Some(why) = remove
            && store.remove_public(&s.public_id)
        {
            ended.push((s.user.clone(), why));
        }
    }
    ended
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::MemoryStore;
    use std::path::Path;

    #[test]
    fn the_sweep_keeps_an_ended_accounts_second_step_for_the_idle_limit_only() {
        let policy = crate::config::load_str(
            Path::new("ward.toml"),
            "practice = \"P\"\n[sessions]\nidle_timeout = \"15m\"\n[roles]\nv = {}\n[[apps]]\nname = \"a\"\nupstream = \"http://127.0.0.1:9\"\n[[routes]]\napp = \"a\"\npath = \"/**\"\nallow_roles = [\"v\"]\n",
            crate::config::Certs::Skip,
        )
        .unwrap_or_else(|d| panic!("{d}"))
        .policy;
        let directory = directory::parse(
            Path::new("users.toml"),
            "[users.jo]\ndisplay_name = \"Jo\"\nroles = [\"v\"]\norg = \"Acme\"\nexpires = 2027-03-31\n\
             [users.ann]\ndisplay_name = \"Ann\"\nroles = [\"v\"]\nstatus = \"deactivated\"\nexpires = 2027-03-31\n",
        )
        .unwrap();
        let snap = build(directory, &Secrets::default(), Grants::default(), &policy);
        // 2027-04-10T00:00:00Z: both accounts are past their end date.
        let now = 1_807_315_200;
        let store = MemoryStore::new(std::time::Duration::from_secs(3600));
        let ip = "192.0.2.1".parse().unwrap();
        let add = |cookie: &str, user: &str, stage| {
            let s = Session::new(user, 0, now, stage, false, ip, "/").unwrap();
            store.insert(cookie, Arc::new(s));
        };
        add("pending", "jo", Stage::NeedsMfa);
        add("complete", "jo", Stage::Complete);
        add("closed", "ann", Stage::NeedsMfa);
        let ended = sweep(&store, &snap, &policy, now + 60);
        assert_eq!(ended.len(), 2, "{ended:?}");
        assert!(
            store.get("pending").is_some(),
            "the second step may still end in the form"
        );
        assert!(store.get("complete").is_none());
        assert!(
            store.get("closed").is_none(),
            "a deactivated account gets nothing"
        );
        // Past the idle limit it goes too.
        assert_eq!(sweep(&store, &snap, &policy, now + 16 * 60).len(), 1);
        assert!(store.get("pending").is_none());
    }
}
