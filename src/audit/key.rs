//! The checkpoint signing key: Ed25519, owned by ward.
//!
//! The private key is `DIR/.audit-key` (PKCS#8 PEM, mode 0600), made with a new trail. The public
//! key goes to `DIR/audit-key.pub` (PEM `PUBLIC KEY` blocks, newest last) so an auditor can
//! check checkpoints without the private key. A copy of that file kept away from the server
//! is what makes checkpoints worth having: whoever can write the directory can also replace it.

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use data_encoding::BASE64;
use std::path::{Path, PathBuf};

/// File name of the private key inside the audit directory.
pub const PRIVATE_KEY_FILE: &str = ".audit-key";
/// File name of the public key(s) inside the audit directory.
pub const PUBLIC_KEY_FILE: &str = "audit-key.pub";

/// DER prefix of an Ed25519 SubjectPublicKeyInfo; the 32 key bytes follow.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Why the key cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{path}: {why}")]
pub struct KeyError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong, in words.
    pub why: String,
}

fn key_error(path: &Path, why: impl std::fmt::Display) -> KeyError {
    KeyError {
        path: path.to_path_buf(),
        why: why.to_string(),
    }
}

/// The signing key, and whether it was made just now.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    /// True when the key did not exist before this call.
    pub created: bool,
}

impl SigningKey {
    /// Signs `msg`; the signature in base64.
    pub fn sign(&self, msg: &[u8]) -> String {
        BASE64.encode(self.pair.sign(msg).as_ref())
    }

    /// The raw public key in base64.
    pub fn public_base64(&self) -> String {
        BASE64.encode(self.pair.public_key().as_ref())
    }
}

/// The message a checkpoint signs: `SEQ|PREV` (the checkpoint's own seq and prev).
pub fn checkpoint_message(seq: u64, prev: &str) -> Vec<u8> {
    format!("{seq}|{prev}").into_bytes()
}

/// Whether `load_or_create` may make a key when there is none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfMissing {
    /// Make one (a trail with no records yet, or the officer asked for a new key).
    Create,
    /// Refuse: a key that vanished from under a trail is a sign of tampering or a bad restore,
    /// and a silent new one would let whoever removed it sign a rewritten trail.
    Refuse,
}

/// Loads `DIR/.audit-key`, making it (and `audit-key.pub`) when absent and `if_missing`
/// allows. Call with the directory lock held so two processes do not both make one.
pub fn load_or_create(dir: &Path, if_missing: IfMissing) -> Result<SigningKey, KeyError> {
    let path = dir.join(PRIVATE_KEY_FILE);
    let (pair, created) = match std::fs::read_to_string(&path) {
        Ok(text) => {
            let der = pem_decode(&text, "PRIVATE KEY")
                .into_iter()
                .next()
                .ok_or_else(|| key_error(&path, "this is not a PEM private key"))?;
            let pair = Ed25519KeyPair::from_pkcs8(&der)
                .map_err(|e| key_error(&path, format!("this is not an Ed25519 key ({e})")))?;
            (pair, false)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && if_missing == IfMissing::Refuse => {
            return Err(key_error(
                &path,
                format!(
                    "the checkpoint signing key is missing, but the audit trail already has \
                     records. ward does not make a new key on its own: whoever removed the key \
                     could then sign a rewritten trail. Restore {PRIVATE_KEY_FILE} from the \
                     backup; if it is lost for good, run `ward audit new-key --dir {}` to make a \
                     new one (the change is recorded in the trail), then start ward again",
                    dir.display()
                ),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // PKCS#8 v1: the form `openssl pkey` and other tools read.
            let doc = Ed25519KeyPair::generate()
                .and_then(|k| k.to_pkcs8v1())
                .map_err(|_| key_error(&path, "could not make a new key"))?;
            let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref())
                .map_err(|e| key_error(&path, format!("the new key is unusable ({e})")))?;
            let pem = pem_encode("PRIVATE KEY", doc.as_ref());
            crate::fsutil::write_private(&path, pem.as_bytes()).map_err(|e| key_error(&path, e))?;
            (pair, true)
        }
        Err(e) => return Err(key_error(&path, e)),
    };
    let public: [u8; 32] = pair
        .public_key()
        .as_ref()
        .try_into()
        .map_err(|_| key_error(&path, "the public key has the wrong length"))?;
    ensure_public(dir, &public)?;
    Ok(SigningKey { pair, created })
}

/// Makes sure `audit-key.pub` lists `public`, adding it after any older keys.
fn ensure_public(dir: &Path, public: &[u8; 32]) -> Result<(), KeyError> {
    let path = dir.join(PUBLIC_KEY_FILE);
    let existing = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(key_error(&path, e)),
    };
    if parse_public_keys(&existing).contains(public) {
        return Ok(());
    }
    let mut spki = SPKI_PREFIX.to_vec();
    spki.extend_from_slice(public);
    let mut text = existing;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&pem_encode("PUBLIC KEY", &spki));
    crate::fsutil::write_atomic(&path, text.as_bytes(), 0o644).map_err(|e| key_error(&path, e))
}

/// The Ed25519 public keys in a `audit-key.pub` text: PEM `PUBLIC KEY` blocks, or lines
/// holding the raw 32-byte key in base64.
pub fn parse_public_keys(text: &str) -> Vec<[u8; 32]> {
    let mut keys: Vec<[u8; 32]> = pem_decode(text, "PUBLIC KEY")
        .into_iter()
        .filter_map(|der| {
            der.strip_prefix(&SPKI_PREFIX[..])
                .and_then(|k| <[u8; 32]>::try_from(k).ok())
        })
        .collect();
    for line in text.lines().map(str::trim) {
        if let Ok(raw) = BASE64.decode(line.as_bytes())
            && let Ok(k) = <[u8; 32]>::try_from(raw.as_slice())
        {
            keys.push(k);
        }
    }
    keys
}

/// Reads the public keys from a file.
pub fn read_public_keys(path: &Path) -> Result<Vec<[u8; 32]>, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|e| key_error(path, e))?;
    let keys = parse_public_keys(&text);
    if keys.is_empty() {
        return Err(key_error(path, "this file holds no Ed25519 public key"));
    }
    Ok(keys)
}

/// Whether `signature_b64` is a signature of `msg` by one of `keys`.
pub fn verify(keys: &[[u8; 32]], msg: &[u8], signature_b64: &str) -> bool {
    let Ok(sig) = BASE64.decode(signature_b64.as_bytes()) else {
        return false;
    };
    keys.iter().any(|k| {
        UnparsedPublicKey::new(&ED25519, k)
            .verify(msg, &sig)
            .is_ok()
    })
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = BASE64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Every `label` block in `text`, decoded.
fn pem_decode(text: &str, label: &str) -> Vec<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut body: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if line == begin {
            body = Some(String::new());
        } else if line == end {
            if let Some(b) = body.take()
                && let Ok(der) = BASE64.decode(b.as_bytes())
            {
                out.push(der);
            }
        } else if let Some(b) = &mut body {
            b.push_str(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_made_once_private_and_published() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let k1 = load_or_create(dir.path(), IfMissing::Create).unwrap();
        assert!(k1.created);
        let k2 = load_or_create(dir.path(), IfMissing::Create).unwrap();
        assert!(!k2.created);
        assert_eq!(k1.public_base64(), k2.public_base64());
        let mode = std::fs::metadata(dir.path().join(PRIVATE_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let keys = read_public_keys(&dir.path().join(PUBLIC_KEY_FILE)).unwrap();
        assert_eq!(keys.len(), 1);
        let msg = checkpoint_message(7, "ab");
        let sig = k1.sign(&msg);
        assert!(verify(&keys, &msg, &sig));
        assert!(!verify(&keys, &checkpoint_message(8, "ab"), &sig));
        assert!(!verify(&keys, &msg, "not base64!"));
    }

    #[test]
    fn a_new_key_is_added_after_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let old = load_or_create(dir.path(), IfMissing::Create).unwrap();
        std::fs::remove_file(dir.path().join(PRIVATE_KEY_FILE)).unwrap();
        let new = load_or_create(dir.path(), IfMissing::Create).unwrap();
        assert!(new.created);
        let keys = read_public_keys(&dir.path().join(PUBLIC_KEY_FILE)).unwrap();
        assert_eq!(keys.len(), 2);
        std::fs::remove_file(dir.path().join(PRIVATE_KEY_FILE)).unwrap();
        let refused = load_or_create(dir.path(), IfMissing::Refuse).err().unwrap();
        assert!(refused.why.contains("ward audit new-key"), "{refused}");
        assert!(!dir.path().join(PRIVATE_KEY_FILE).exists());
        let msg = b"1|x";
        assert!(verify(&keys, msg, &old.sign(msg)));
        assert!(verify(&keys, msg, &new.sign(msg)));
    }

    #[test]
    fn raw_base64_public_keys_are_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let k = load_or_create(dir.path(), IfMissing::Create).unwrap();
        let keys = parse_public_keys(&format!("{}\n", k.public_base64()));
        assert_eq!(keys.len(), 1);
    }
}
