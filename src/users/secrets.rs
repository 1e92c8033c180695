//! The secrets ward owns (password hashes, TOTP, recovery codes, enrollment links, sign-in
//! state), kept apart from the officer's users.toml in `state/secrets.json`, owner-only.

use crate::auth::lockout::Strikes;
use crate::fsutil;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A JSON document a `Store` keeps: its file name in the state folder.
pub trait StoreFile: Serialize + serde::de::DeserializeOwned + Default + Clone + PartialEq {
    /// File name inside the state folder.
    const FILE: &'static str;
}

impl StoreFile for Secrets {
    const FILE: &'static str = "secrets.json";
}

/// Everything ward keeps about one account besides what is in users.toml.
#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq, Eq)]
#[serde(default)]
pub struct UserSecrets {
    /// Argon2 password hash (PHC string).
    pub password: Option<String>,
    /// TOTP secret, base32.
    pub totp: Option<String>,
    /// The last TOTP time step accepted, so a code cannot be used twice.
    pub totp_last_step: Option<u64>,
    /// SHA-256 hashes of unused recovery codes; a code is removed when used.
    pub recovery: Vec<String>,
    /// A pending one-time enrollment or reset link.
    pub enroll: Option<PendingEnrollment>,
    /// Sessions carry the epoch they began in; changing it ends them all.
    pub epoch: u64,
    /// Last successful sign-in, unix seconds.
    pub last_login: Option<i64>,
    /// Address of the last successful sign-in.
    pub last_login_ip: Option<String>,
    /// Last request seen, unix seconds.
    pub last_activity: Option<i64>,
    /// Failed passwords in the current window (see `auth::lockout`).
    pub failed_logins: u32,
    /// Unix seconds of the last failed password.
    pub failed_login_at: Option<i64>,
    /// Failed second-factor codes in the current window; a right password does not clear them.
    pub failed_codes: u32,
    /// Unix seconds of the last failed code.
    pub failed_code_at: Option<i64>,
    /// Sign-in refused until this time, unix seconds.
    pub locked_until: Option<i64>,
    /// The identity at each single sign-on provider this account is linked to
    /// (linked at its first sign-in there, and required from then on).
    pub sso_links: Vec<SsoLink>,
    /// The random handle passkeys know this account by (a UUID), made with the first passkey.
    pub passkey_user: Option<webauthn_rs::prelude::Uuid>,
    /// Passkeys and security keys, each with the name the person gave it.
    pub passkeys: Vec<PasskeyEntry>,
}

/// One passkey or security key of an account.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct PasskeyEntry {
    /// The name the person gave it ("office laptop", "blue YubiKey").
    pub name: String,
    /// The relying party id it was made for (see `auth::passkey`); it works there only.
    pub rp_id: String,
    /// When it was added, unix seconds.
    pub added: i64,
    /// When it last signed someone in, unix seconds.
    pub last_used: Option<i64>,
    /// The public key, its id and signature counter (no secret: the private key never
    /// leaves the authenticator).
    pub key: webauthn_rs::prelude::Passkey,
}

// webauthn-rs compares passkeys by id only; the store must see a changed counter as a change.
impl PartialEq for PasskeyEntry {
    fn eq(&self, other: &PasskeyEntry) -> bool {
        (&self.name, &self.rp_id, self.added, self.last_used)
            == (&other.name, &other.rp_id, other.added, other.last_used)
            && serde_json::to_value(&self.key).ok() == serde_json::to_value(&other.key).ok()
    }
}

impl Eq for PasskeyEntry {}

impl PasskeyEntry {
    /// The credential id, base64url: how a key is told apart when names repeat.
    pub fn id_text(&self) -> String {
        data_encoding::BASE64URL_NOPAD.encode(self.key.cred_id().as_ref())
    }
}

/// One account's identity at a provider: its issuer and `sub`.
#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq, Eq)]
pub struct SsoLink {
    /// The provider's issuer URL.
    pub issuer: String,
    /// The provider's stable id for the person (`sub`).
    pub subject: String,
}

impl UserSecrets {
    /// The second factors set up, in short words for lists: "no", "app", "2 passkeys",
    /// "app, 1 passkey".
    pub fn second_factors(&self) -> String {
        let keys = match self.passkeys.len() {
            0 => None,
            1 => Some("1 passkey".to_string()),
            n => Some(format!("{n} passkeys")),
        };
        match (self.totp.is_some(), keys) {
            (false, None) => "no".to_string(),
            (true, None) => "app".to_string(),
            (false, Some(k)) => k,
            (true, Some(k)) => format!("app, {k}"),
        }
    }

    /// Failed passwords, as a lockout counter.
    pub fn password_strikes(&self) -> Strikes {
        Strikes {
            count: self.failed_logins,
            last: self.failed_login_at,
        }
    }

    /// Stores the failed-password counter.
    pub fn set_password_strikes(&mut self, s: Strikes) {
        (self.failed_logins, self.failed_login_at) = (s.count, s.last);
    }

    /// Failed second-factor codes, as a lockout counter.
    pub fn code_strikes(&self) -> Strikes {
        Strikes {
            count: self.failed_codes,
            last: self.failed_code_at,
        }
    }

    /// Stores the failed-code counter.
    pub fn set_code_strikes(&mut self, s: Strikes) {
        (self.failed_codes, self.failed_code_at) = (s.count, s.last);
    }

    /// Whether sign-in is locked at `now`.
    pub fn is_locked(&self, now: i64) -> bool {
        self.locked_until.is_some_and(|t| t > now)
    }

    /// The passkeys that work on the relying party `rp_id`.
    pub fn passkeys_for(&self, rp_id: &str) -> Vec<webauthn_rs::prelude::Passkey> {
        self.passkeys
            .iter()
            .filter(|k| k.rp_id == rp_id)
            .map(|k| k.key.clone())
            .collect()
    }

    /// Forgets every failure and any lock (an officer's unlock or reset).
    pub fn clear_lockout(&mut self) {
        self.set_password_strikes(Strikes::default());
        self.set_code_strikes(Strikes::default());
        self.locked_until = None;
    }
}

/// A one-time link: only the token's hash is kept.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PendingEnrollment {
    /// SHA-256 hex of the token in the link.
    pub token_hash: String,
    /// When the link stops working, unix seconds.
    pub expires: i64,
    /// What the link lets the person do.
    pub purpose: Purpose,
    /// The authenticator key shown on the link's page, made on first view (base32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_totp: Option<String>,
}

/// What an enrollment link is for.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Set a password and MFA for the first time.
    Enroll,
    /// Set a new password.
    ResetPassword,
    /// Set up MFA again.
    ResetMfa,
}

/// The whole store.
#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq, Eq)]
#[serde(default)]
pub struct Secrets {
    /// Per account, by name.
    pub users: BTreeMap<String, UserSecrets>,
}

/// Why the secret store could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file system refused.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What ward was doing, e.g. "read".
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file can be read by other users.
    #[error(
        "{} can be read by other users on this computer (mode {mode:03o}); ward will not use it until you run: chmod 600 {}",
        path.display(),
        path.display()
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The blocking task that used the store did not finish (ward is stopping).
    #[error("the store of {0} could not be used: ward is stopping")]
    Stopped(&'static str),
    /// The file is not what ward wrote.
    #[error("{} is damaged and was left as it is ({detail}); restore it from a backup", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

/// An owner-only JSON file in ward's state folder, changed under an exclusive
/// lock so the CLI and a running ward never lose each other's writes.
#[derive(Debug, Clone)]
pub struct Store<T> {
    dir: PathBuf,
    kind: std::marker::PhantomData<fn() -> T>,
}

/// The store holding `secrets.json`.
pub type SecretStore = Store<Secrets>;

impl<T: StoreFile> Store<T> {
    /// Opens the store in `dir`, creating it (mode 0700) if missing.
    pub fn open(dir: &Path) -> Result<Store<T>, StoreError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| StoreError::Io {
                action: "create",
                path: dir.to_path_buf(),
                source,
            })?;
        Ok(Store {
            dir: dir.to_path_buf(),
            kind: std::marker::PhantomData,
        })
    }

    /// The path of the file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(T::FILE)
    }

    /// Reads the store; a missing file is an empty store.
    pub fn read(&self) -> Result<T, StoreError> {
        let path = self.path();
        let io = |action, source| StoreError::Io {
            action,
            path: path.clone(),
            source,
        };
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(T::default()),
            Err(e) => return Err(io("read", e)),
        };
        // Check the file actually opened, not the path, so a swap in between cannot fool us.
        let mode = file
            .metadata()
            .map_err(|e| io("read", e))?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            return Err(StoreError::Permissions { path, mode });
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(|e| io("read", e))?;
        serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            path: path.clone(),
            detail: e.to_string(),
        })
    }

    /// Locks the store, reads it, applies `f`, and writes the result atomically (0600) if it changed.
    pub fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> Result<R, StoreError> {
        // Held until the end of this function, so the CLI and a running ward never
        // overwrite each other's changes.
        let _lock = self.lock()?;
        let mut secrets = self.read()?;
        let before = secrets.clone();
        let out = f(&mut secrets);
        // Skipping unchanged writes keeps `modified` meaningful for change polling.
        if secrets != before {
            let path = self.path();
            let io = |source| StoreError::Io {
                action: "write",
                path: path.clone(),
                source,
            };
            let bytes = serde_json::to_vec_pretty(&secrets).map_err(|e| io(e.into()))?;
            fsutil::write_private(&path, &bytes).map_err(io)?;
        }
        Ok(out)
    }

    /// `read` on tokio's blocking threads: file locks and disk waits must not hold up the
    /// async workers that serve every other request.
    pub async fn read_async(&self) -> Result<T, StoreError>
    where
        T: Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.read())
            .await
            .map_err(|_| StoreError::Stopped(T::FILE))?
    }

    /// `update` on tokio's blocking threads (see `read_async`).
    pub async fn update_async<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut T) -> R + Send + 'static,
    ) -> Result<R, StoreError>
    where
        T: Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.update(f))
            .await
            .map_err(|_| StoreError::Stopped(T::FILE))?
    }

    /// When the file last changed, if it exists.
    pub fn modified(&self) -> Option<std::time::SystemTime> {
        std::fs::metadata(self.path())
            .and_then(|m| m.modified())
            .ok()
    }

    /// Takes the store's exclusive lock; dropping the file releases it.
    fn lock(&self) -> Result<File, StoreError> {
        let path = self.dir.join(format!(".{}.lock", T::FILE));
        let io = |source| StoreError::Io {
            action: "lock",
            path: path.clone(),
            source,
        };
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        file.lock().map_err(io)?;
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let store = SecretStore::open(&tmp.path().join("state")).unwrap();
        assert_eq!(store.read().unwrap(), Secrets::default());
        assert!(store.modified().is_none());
        let user = UserSecrets {
            password: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
            totp: Some("JBSWY3DPEHPK3PXP".into()),
            totp_last_step: Some(42),
            recovery: vec!["ab".into(), "cd".into()],
            enroll: Some(PendingEnrollment {
                token_hash: "ff".into(),
                expires: 1_800_000_000,
                purpose: Purpose::ResetMfa,
                pending_totp: None,
            }),
            epoch: 3,
            last_login: Some(1_700_000_000),
            last_login_ip: Some("10.0.0.7".into()),
            last_activity: Some(1_700_000_100),
            failed_logins: 2,
            failed_login_at: Some(1_700_000_150),
            failed_codes: 1,
            failed_code_at: Some(1_700_000_160),
            locked_until: Some(1_700_000_200),
            sso_links: vec![SsoLink {
                issuer: "https://id.example".into(),
                subject: "248289761001".into(),
            }],
            passkey_user: Some(webauthn_rs::prelude::Uuid::from_bytes([7; 16])),
            passkeys: vec![fixture_passkey()],
        };
        store
            .update(|s| s.users.insert("dr_lee".into(), user.clone()))
            .unwrap();
        let back = store.read().unwrap();
        assert_eq!(back.users["dr_lee"], user);
        assert!(store.modified().is_some());
        let text = std::fs::read_to_string(store.path()).unwrap();
        assert!(text.contains("\"reset_mfa\""), "{text}");
    }

    /// A passkey Chromium's virtual authenticator made (public key only).
    #[test]
    fn second_factors_are_said_in_short_words() {
        let mut s = UserSecrets::default();
        assert_eq!(s.second_factors(), "no");
        s.passkeys.push(fixture_passkey());
        assert_eq!(s.second_factors(), "1 passkey");
        s.totp = Some("JBSWY3DPEHPK3PXP".into());
        s.passkeys.push(fixture_passkey());
        assert_eq!(s.second_factors(), "app, 2 passkeys");
        s.passkeys.clear();
        assert_eq!(s.second_factors(), "app");
    }

    fn fixture_passkey() -> PasskeyEntry {
        let fixture: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/fixtures/passkey.json")).unwrap();
        serde_json::from_value(fixture["entry"].clone()).unwrap()
    }

    #[test]
    fn a_passkeys_new_counter_or_last_use_is_a_change_the_store_writes() {
        let key = fixture_passkey();
        let mut used = key.clone();
        used.last_used = Some(1_800_000_000);
        assert_ne!(key, used);
        // webauthn-rs's own equality looks at the credential id only; ours at everything.
        let mut json = serde_json::to_value(&key).unwrap();
        json["key"]["cred"]["counter"] = serde_json::json!(41);
        let counted: PasskeyEntry = serde_json::from_value(json).unwrap();
        assert_eq!(counted.key, key.key);
        assert_ne!(counted, key);
        assert_eq!(key, key.clone());
    }

    #[test]
    fn files_are_owner_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        let store = SecretStore::open(&dir).unwrap();
        store
            .update(|s| s.users.insert("a".into(), UserSecrets::default()))
            .unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&store.path()), 0o600);
    }

    #[test]
    fn refuses_a_file_others_can_read() {
        let tmp = tempfile::tempdir().unwrap();
        let store = SecretStore::open(tmp.path()).unwrap();
        std::fs::write(store.path(), "{\"users\":{}}").unwrap();
        std::fs::set_permissions(store.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = store.read().unwrap_err();
        assert!(matches!(err, StoreError::Permissions { mode: 0o644, .. }));
        assert!(err.to_string().contains("chmod 600"), "{err}");
        assert!(store.update(|_| ()).is_err());
    }

    #[test]
    fn corrupt_files_are_not_reset() {
        let tmp = tempfile::tempdir().unwrap();
        let store = SecretStore::open(tmp.path()).unwrap();
        fsutil::write_private(&store.path(), b"{\"users\": {").unwrap();
        assert!(matches!(store.read(), Err(StoreError::Corrupt { .. })));
        assert!(matches!(
            store.update(|s| s.users.clear()),
            Err(StoreError::Corrupt { .. })
        ));
        assert_eq!(std::fs::read(store.path()).unwrap(), b"{\"users\": {");
    }

    #[test]
    fn old_files_without_new_fields_still_read() {
        let tmp = tempfile::tempdir().unwrap();
        let store = SecretStore::open(tmp.path()).unwrap();
        fsutil::write_private(&store.path(), br#"{"users":{"a":{"epoch":4}}}"#).unwrap();
        assert_eq!(store.read().unwrap().users["a"].epoch, 4);
    }

    #[test]
    fn concurrent_updates_lose_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Arc::new(SecretStore::open(tmp.path()).unwrap());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        store
                            .update(|s| s.users.entry("counter".into()).or_default().epoch += 1)
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(store.read().unwrap().users["counter"].epoch, 400);
    }
}
