//! The embedded store's snapshot, so a restart keeps everyone signed in.
//!
//! Signed-in sessions are written to `STATE/sessions.snapshot`, sealed with AES-256-GCM under a
//! key kept beside it (`STATE/sessions.key`, mode 0600): whoever copies the snapshot alone learns
//! nothing, and a changed byte is caught. The store is keyed by hashes of the cookies, so the
//! snapshot holds no cookie either. Sessions still owing their second factor are not kept (the
//! person types the password again), nor are hand-off codes or single sign-on steps under way:
//! they are one-time secrets that live a minute.

use super::{AppCookies, MemoryStore, NEXT_ORDER, Session, Stage};
use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The snapshot's file name inside the state folder.
pub const SNAPSHOT_FILE: &str = "sessions.snapshot";
/// The sealing key's file name inside the state folder.
pub const KEY_FILE: &str = "sessions.key";
/// The first bytes of a snapshot; also bound into the seal.
const MAGIC: &[u8] = b"ward sessions v1\n";
/// A snapshot dated further ahead than this was written under another clock.
const MAX_CLOCK_AHEAD: i64 = 300;

/// Why the sealing key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file cannot be read or written.
    #[error("cannot use {}: {source}", path.display())]
    Io {
        /// The key file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is there but is not a key.
    #[error("{} is not a session key (it should hold 32 bytes); move it away and ward makes a new one", path.display())]
    Malformed {
        /// The key file.
        path: PathBuf,
    },
    /// The system gave no random bytes for a new key.
    #[error("the system gave no random bytes for a new session key")]
    Random,
}

/// Why a snapshot was not restored.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The file cannot be read.
    #[error("it cannot be read: {0}")]
    Read(std::io::Error),
    /// Not a snapshot, changed, or sealed under another key.
    #[error("it is damaged, or was sealed with another key than {KEY_FILE}")]
    Unsealed,
    /// Older than the longest a session may last.
    #[error("it was saved {age} ago, longer than a session may last (max_lifetime {max})")]
    Stale {
        /// How long ago it was saved.
        age: String,
        /// The policy's `max_lifetime`.
        max: String,
    },
    /// Dated in the future: written under another clock.
    #[error("it is dated {0} in the future (the clock was changed)")]
    Future(String),
}

/// The key that seals snapshots.
pub struct SnapshotKey(RandomizedNonceKey);

impl SnapshotKey {
    /// Loads `DIR/sessions.key`, making it (mode 0600) when there is none.
    pub fn load_or_create(dir: &Path) -> Result<SnapshotKey, KeyError> {
        let path = dir.join(KEY_FILE);
        let io = |source| KeyError::Io {
            path: path.clone(),
            source,
        };
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut fresh = [0u8; 32];
                getrandom::fill(&mut fresh).map_err(|_| KeyError::Random)?;
                crate::fsutil::write_private(&path, &fresh).map_err(io)?;
                fresh.to_vec()
            }
            Err(e) => return Err(io(e)),
        };
        SnapshotKey::from_bytes(&bytes).ok_or(KeyError::Malformed { path })
    }

    /// A key from its 32 bytes.
    fn from_bytes(bytes: &[u8]) -> Option<SnapshotKey> {
        if bytes.len() != 32 {
            return None;
        }
        RandomizedNonceKey::new(&AES_256_GCM, bytes)
            .ok()
            .map(SnapshotKey)
    }

    fn seal(&self, plain: Vec<u8>) -> Option<Vec<u8>> {
        let mut sealed = plain;
        let nonce = self
            .0
            .seal_in_place_append_tag(Aad::from(MAGIC), &mut sealed)
            .ok()?;
        let mut out = Vec::with_capacity(MAGIC.len() + NONCE_LEN + sealed.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(nonce.as_ref());
        out.extend_from_slice(&sealed);
        Some(out)
    }

    fn open(&self, mut file: Vec<u8>) -> Option<Vec<u8>> {
        let rest = file.strip_prefix(MAGIC)?;
        let nonce = Nonce::try_assume_unique_for_key(rest.get(..NONCE_LEN)?).ok()?;
        let start = MAGIC.len() + NONCE_LEN;
        let sealed = file.get_mut(start..)?;
        let plain = self.0.open_in_place(nonce, Aad::from(MAGIC), sealed).ok()?;
        Some(plain.to_vec())
    }
}

/// What a snapshot holds.
#[derive(Serialize, Deserialize)]
struct Saved {
    /// Unix seconds when it was written.
    written: i64,
    sessions: Vec<SavedSession>,
}

/// One session, with the hashes of the cookies it is stored under (also the shared store's
/// record of a session).
#[derive(Serialize, Deserialize)]
pub(super) struct SavedSession {
    pub(super) keys: Vec<String>,
    /// Whether fully signed in; a snapshot restores only these, whatever the file says.
    pub(super) complete: bool,
    pub(super) user: String,
    pub(super) public_id: String,
    epoch: u64,
    pub(super) created: i64,
    pub(super) last_active: i64,
    mfa: bool,
    /// Absent in snapshots from before passkeys: no passkey was used.
    #[serde(default)]
    passkey: bool,
    client_ip: IpAddr,
    csrf: String,
    keepalive: String,
    return_to: String,
    extra_roles: Vec<String>,
    idp: Option<(String, String)>,
    pub(super) end_recorded: bool,
    pub(super) app_cookies: HashMap<String, Vec<(String, String)>>,
}

impl SavedSession {
    pub(super) fn of(keys: Vec<String>, s: &Session) -> SavedSession {
        SavedSession {
            keys,
            complete: s.stage == Stage::Complete,
            user: s.user.clone(),
            public_id: s.public_id.clone(),
            epoch: s.epoch,
            created: s.created,
            last_active: s.last_active(),
            mfa: s.mfa,
            passkey: s.passkey,
            client_ip: s.client_ip,
            csrf: s.csrf.clone(),
            keepalive: s.keepalive.clone(),
            return_to: s.return_to.clone(),
            extra_roles: s.extra_roles.clone(),
            idp: s.idp.as_deref().cloned(),
            end_recorded: s.end_recorded.load(Ordering::Relaxed),
            app_cookies: s
                .app_cookies
                .jars
                .lock()
                .map(|j| j.iter().cloned().collect())
                .unwrap_or_default(),
        }
    }

    pub(super) fn into_session(self) -> (Vec<String>, Session) {
        let session = Session {
            user: self.user,
            public_id: self.public_id,
            epoch: self.epoch,
            created: self.created,
            order: NEXT_ORDER.fetch_add(1, Ordering::Relaxed),
            last_active: AtomicI64::new(self.last_active),
            stage: if self.complete {
                Stage::Complete
            } else {
                Stage::NeedsMfa
            },
            mfa: self.mfa,
            passkey: self.passkey,
            client_ip: self.client_ip,
            csrf: self.csrf,
            keepalive: self.keepalive,
            return_to: self.return_to,
            extra_roles: self.extra_roles,
            idp: self.idp.map(Box::new),
            end_recorded: AtomicBool::new(self.end_recorded),
            app_cookies: AppCookies {
                jars: Mutex::new(self.app_cookies.into_iter().collect()),
            },
        };
        (self.keys, session)
    }
}

/// Writes the store's snapshot, when it changed since the last one.
pub struct Saver {
    store: Arc<MemoryStore>,
    key: SnapshotKey,
    file: PathBuf,
    /// SHA-256 of the sessions last written.
    last: Mutex<Option<[u8; 32]>>,
}

impl Saver {
    /// A saver for `store` into `DIR/sessions.snapshot`.
    pub fn new(store: Arc<MemoryStore>, key: SnapshotKey, dir: &Path) -> Saver {
        Saver {
            store,
            key,
            file: dir.join(SNAPSHOT_FILE),
            last: Mutex::new(None),
        }
    }

    /// The snapshot file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Writes the snapshot at `now` unless nothing changed; true when written. Blocking.
    pub fn save(&self, now: i64) -> std::io::Result<bool> {
        let mut sessions: Vec<SavedSession> = self
            .store
            .entries()
            .into_iter()
            // Half-signed-in sessions are not worth keeping (see the module's comment).
            .filter(|(_, s)| s.stage == Stage::Complete)
            .map(|(mut keys, s)| {
                keys.sort();
                SavedSession::of(keys, &s)
            })
            .collect();
        sessions.sort_by(|a, b| (a.created, &a.public_id).cmp(&(b.created, &b.public_id)));
        let body = serde_json::to_vec(&sessions).map_err(std::io::Error::other)?;
        let digest: [u8; 32] = Sha256::digest(&body).into();
        let mut last = self
            .last
            .lock()
            .map_err(|_| std::io::Error::other("snapshot lock poisoned"))?;
        if last.as_ref() == Some(&digest) {
            return Ok(false);
        }
        let plain = serde_json::to_vec(&Saved {
            written: now,
            sessions,
        })
        .map_err(std::io::Error::other)?;
        let sealed = self
            .key
            .seal(plain)
            .ok_or_else(|| std::io::Error::other("the snapshot could not be sealed"))?;
        crate::fsutil::write_private(&self.file, &sealed)?;
        *last = Some(digest);
        Ok(true)
    }

    /// Puts the sessions of the snapshot back into the store; how many, or `None` when there
    /// is no snapshot. A snapshot that cannot be used is removed, and the error says why.
    pub fn restore(&self, max_lifetime: Duration, now: i64) -> Result<Option<usize>, RestoreError> {
        let bytes = match std::fs::read(&self.file) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(RestoreError::Read(e)),
        };
        let result = self.restore_from(bytes, max_lifetime, now);
        if result.is_err() {
            // Told once: the next snapshot replaces it anyway.
            let _ = std::fs::remove_file(&self.file);
        }
        result.map(Some)
    }

    fn restore_from(
        &self,
        bytes: Vec<u8>,
        max_lifetime: Duration,
        now: i64,
    ) -> Result<usize, RestoreError> {
        let plain = self.key.open(bytes).ok_or(RestoreError::Unsealed)?;
        let saved: Saved = serde_json::from_slice(&plain).map_err(|_| RestoreError::Unsealed)?;
        let max = max_lifetime.as_secs() as i64;
        let age = now.saturating_sub(saved.written);
        if age > max {
            return Err(RestoreError::Stale {
                age: words(age),
                max: words(max),
            });
        }
        if -age > MAX_CLOCK_AHEAD {
            return Err(RestoreError::Future(words(-age)));
        }
        let mut restored = 0;
        for saved in saved.sessions {
            if !saved.complete || now.saturating_sub(saved.created) > max {
                continue;
            }
            let (keys, session) = saved.into_session();
            let session = Arc::new(session);
            for k in keys {
                self.store.insert_hashed(k, session.clone());
            }
            restored += 1;
        }
        Ok(restored)
    }
}

/// Seconds as a duration in words (`2h 5m`).
fn words(secs: i64) -> String {
    humantime::format_duration(Duration::from_secs(secs.unsigned_abs())).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::SessionStore;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn store() -> Arc<MemoryStore> {
        Arc::new(MemoryStore::new(DAY))
    }

    fn signed_in(user: &str, now: i64, stage: Stage) -> Arc<Session> {
        let ip = "10.1.2.3".parse().unwrap();
        let mut s = Session::new(user, 3, now, stage, true, ip, "/chart").unwrap();
        s.extra_roles = vec!["nurse".into()];
        Arc::new(s)
    }

    fn saver(dir: &Path, store: Arc<MemoryStore>) -> Saver {
        Saver::new(store, SnapshotKey::load_or_create(dir).unwrap(), dir)
    }

    #[test]
    fn sessions_come_back_with_their_cookies_and_idle_time() {
        let dir = tempfile::tempdir().unwrap();
        let before = store();
        let s = signed_in("lee", 1000, Stage::Complete);
        s.touch(1500);
        let mut h = http::HeaderMap::new();
        h.append("set-cookie", "JSESSIONID=abc; Path=/".parse().unwrap());
        s.app_cookies.take_from("ehr", &mut h, 1500);
        before.insert("on-ward", s.clone());
        before.insert("on-ehr", s.clone());
        before.insert("half", signed_in("kim", 1000, Stage::NeedsMfa));
        let out = saver(dir.path(), before.clone());
        assert!(out.save(1600).unwrap());
        assert!(!out.save(1601).unwrap(), "unchanged: not written again");
        s.touch(1602);
        assert!(out.save(1603).unwrap(), "activity is a change");

        let after = store();
        let back = saver(dir.path(), after.clone());
        assert_eq!(back.restore(DAY, 1700).unwrap(), Some(1));
        let got = after.get("on-ward").unwrap();
        assert!(Arc::ptr_eq(&got, &after.get("on-ehr").unwrap()));
        assert_eq!(got.user, "lee");
        assert_eq!(got.public_id, s.public_id);
        assert_eq!(got.csrf, s.csrf);
        assert_eq!(got.epoch, 3);
        assert_eq!(got.created, 1000);
        assert_eq!(got.last_active(), 1602, "idle time keeps counting");
        assert_eq!(got.extra_roles, vec!["nurse".to_string()]);
        assert_eq!(got.app_cookies.header("ehr").unwrap(), "JSESSIONID=abc");
        assert!(
            after.get("half").is_none(),
            "a pending second step is dropped"
        );
        assert_eq!(after.of_user("lee").len(), 1);
        // Ending it on one host ends it on the other, as before the restart.
        after.remove("on-ehr");
        assert!(after.get("on-ward").is_none());
    }

    #[test]
    fn the_snapshot_holds_no_cookie_or_readable_name() {
        let dir = tempfile::tempdir().unwrap();
        let st = store();
        st.insert(
            "cookie-value-xyz",
            signed_in("dr_lee", 1000, Stage::Complete),
        );
        saver(dir.path(), st).save(1000).unwrap();
        let bytes = std::fs::read(dir.path().join(SNAPSHOT_FILE)).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("cookie-value-xyz") && !text.contains("dr_lee"));
        use std::os::unix::fs::PermissionsExt;
        for f in [SNAPSHOT_FILE, KEY_FILE] {
            let mode = std::fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
    }

    fn saved_one(dir: &Path, now: i64) {
        let st = store();
        st.insert("c", signed_in("lee", now, Stage::Complete));
        saver(dir, st).save(now).unwrap();
    }

    fn refused(dir: &Path, now: i64) -> RestoreError {
        let st = store();
        let err = saver(dir, st.clone()).restore(DAY, now).unwrap_err();
        assert!(st.get("c").is_none());
        assert!(
            !dir.join(SNAPSHOT_FILE).exists(),
            "a refused snapshot is removed"
        );
        err
    }

    #[test]
    fn a_changed_byte_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        saved_one(dir.path(), 1000);
        let file = dir.path().join(SNAPSHOT_FILE);
        let mut bytes = std::fs::read(&file).unwrap();
        let last = bytes.len() - 20;
        bytes[last] ^= 1;
        std::fs::write(&file, bytes).unwrap();
        assert!(matches!(refused(dir.path(), 1001), RestoreError::Unsealed));
        // Rubbish and an empty file, too.
        for junk in [
            &b""[..],
            b"ward sessions v1\n",
            b"{\"written\":1000,\"sessions\":[]}",
        ] {
            std::fs::write(&file, junk).unwrap();
            assert!(matches!(refused(dir.path(), 1001), RestoreError::Unsealed));
        }
    }

    #[test]
    fn another_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        saved_one(dir.path(), 1000);
        std::fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
        assert!(matches!(refused(dir.path(), 1001), RestoreError::Unsealed));
    }

    #[test]
    fn a_stale_or_future_snapshot_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        saved_one(dir.path(), 1000);
        let day = DAY.as_secs() as i64;
        let err = refused(dir.path(), 1000 + day + 1);
        assert!(err.to_string().contains("max_lifetime 1day"), "{err}");
        saved_one(dir.path(), 1000);
        assert!(matches!(
            refused(dir.path(), 1000 - 3600),
            RestoreError::Future(_)
        ));
        // Just within the lifetime: kept.
        saved_one(dir.path(), 1000);
        let st = store();
        assert_eq!(
            saver(dir.path(), st).restore(DAY, 1000 + day).unwrap(),
            Some(1)
        );
    }

    #[test]
    fn no_snapshot_is_no_error_and_a_bad_key_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(saver(dir.path(), store()).restore(DAY, 1).unwrap(), None);
        std::fs::write(dir.path().join(KEY_FILE), b"short").unwrap();
        let err = SnapshotKey::load_or_create(dir.path()).err().unwrap();
        assert!(err.to_string().contains("sessions.key"), "{err}");
    }
}
