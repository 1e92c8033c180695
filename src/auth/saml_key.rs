//! ward's own SAML signing key and certificate (the service provider's), with which it signs
//! the requests it sends identity providers. The officer names PEM files, or ward makes an
//! RSA 2048 key and a self-signed certificate on first use (IdPs trust the certificate
//! because it is in ward's metadata, not because an authority signed it).

use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};

/// A signing key that cannot be used, and which file is at fault.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {why}", path.display())]
pub struct SpKeyError {
    /// The key or certificate file.
    pub path: PathBuf,
    /// What is wrong, in words.
    pub why: String,
}

fn err(path: &Path, why: impl std::fmt::Display) -> SpKeyError {
    SpKeyError {
        path: path.to_path_buf(),
        why: why.to_string(),
    }
}

/// ward's SAML signing key (RSA) and the certificate that goes in its metadata.
pub struct SpKey {
    pair: RsaKeyPair,
    /// The private key as read (PKCS#8 or PKCS#1 DER), for decrypting assertions.
    key_der: Vec<u8>,
    cert_der: Vec<u8>,
}

impl std::fmt::Debug for SpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpKey").finish_non_exhaustive()
    }
}

impl SpKey {
    /// Reads the PEM key (PKCS#8 or PKCS#1 RSA) at `key` and the PEM certificate at `cert`,
    /// and checks that they belong together.
    pub fn load(key: &Path, cert: &Path) -> Result<SpKey, SpKeyError> {
        let key_pem = std::fs::read(key).map_err(|e| err(key, e))?;
        let cert_pem = std::fs::read(cert).map_err(|e| err(cert, e))?;
        let key_der = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|_| err(key, "this is not a PEM private key"))?;
        let pair = match &key_der {
            PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()),
            _ => {
                return Err(err(
                    key,
                    "this is not an RSA key (SAML signing here needs RSA, 2048 bits or more)",
                ));
            }
        }
        .map_err(|e| err(key, format!("this RSA key cannot be used ({e})")))?;
        let cert_der = CertificateDer::from_pem_slice(&cert_pem)
            .map_err(|_| err(cert, "this is not a PEM certificate"))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(&cert_der)
            .map_err(|_| err(cert, "this certificate cannot be read"))?;
        use aws_lc_rs::signature::KeyPair;
        if parsed.public_key().subject_public_key.data.as_ref() != pair.public_key().as_ref() {
            return Err(err(
                cert,
                format!(
                    "this certificate is not for the key in {} (make them together)",
                    key.display()
                ),
            ));
        }
        Ok(SpKey {
            pair,
            key_der: key_der.secret_der().to_vec(),
            cert_der: cert_der.to_vec(),
        })
    }

    /// Like [`SpKey::load`], but first makes the key and certificate when neither file exists
    /// (the key readable by its owner only). One file without the other is refused rather
    /// than replaced: the IdPs may already trust the certificate.
    pub fn load_or_create(key: &Path, cert: &Path) -> Result<SpKey, SpKeyError> {
        if !key.exists() && !cert.exists() {
            make(key, cert)?;
        }
        SpKey::load(key, cert)
    }

    /// The certificate, base64 DER, as it goes in `<ds:X509Certificate>`.
    pub fn certificate_base64(&self) -> String {
        data_encoding::BASE64.encode(&self.cert_der)
    }

    /// The private key in the form samael decrypts assertions with.
    pub fn decryption_key(&self) -> Option<openssl::pkey::PKey<openssl::pkey::Private>> {
        openssl::pkey::PKey::private_key_from_der(&self.key_der).ok()
    }

    /// An RSA-SHA256 (PKCS#1 v1.5) signature of `msg`.
    pub fn sign(&self, msg: &[u8]) -> Option<Vec<u8>> {
        let mut sig = vec![0u8; self.pair.public_modulus_len()];
        let rng = aws_lc_rs::rand::SystemRandom::new();
        self.pair
            .sign(&RSA_PKCS1_SHA256, &rng, msg, &mut sig)
            .ok()?;
        Some(sig)
    }
}

/// Makes an RSA 2048 key and a self-signed certificate for it, valid twenty years.
fn make(key: &Path, cert: &Path) -> Result<(), SpKeyError> {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)
        .map_err(|e| err(key, format!("could not make a key ({e})")))?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
        .map_err(|e| err(cert, format!("could not make a certificate ({e})")))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "ward SAML signing");
    use chrono::Datelike;
    let year = chrono::Utc::now().year();
    params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    params.not_after = rcgen::date_time_ymd(year + 20, 1, 1);
    let made = params
        .self_signed(&pair)
        .map_err(|e| err(cert, format!("could not make a certificate ({e})")))?;
    for dir in [key.parent(), cert.parent()].into_iter().flatten() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).map_err(|e| err(dir, e))?;
        }
    }
    crate::fsutil::write_private(key, pair.serialize_pem().as_bytes()).map_err(|e| err(key, e))?;
    crate::fsutil::write_atomic(cert, made.pem().as_bytes(), 0o644).map_err(|e| err(cert, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_made_once_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let (k, c) = (dir.path().join("s/k.pem"), dir.path().join("s/c.pem"));
        let first = SpKey::load_or_create(&k, &c).unwrap();
        let again = SpKey::load_or_create(&k, &c).unwrap();
        assert_eq!(first.certificate_base64(), again.certificate_base64());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&k).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the key is readable by its owner only");
        assert_eq!(first.sign(b"x").unwrap().len(), 256);
        assert!(first.decryption_key().is_some());
    }

    #[test]
    fn one_file_without_the_other_is_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let (k, c) = (dir.path().join("k.pem"), dir.path().join("c.pem"));
        std::fs::write(&c, "kept").unwrap();
        let e = SpKey::load_or_create(&k, &c).unwrap_err();
        assert_eq!(e.path, k);
        assert_eq!(std::fs::read_to_string(&c).unwrap(), "kept");
    }

    #[test]
    fn a_certificate_for_another_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        SpKey::load_or_create(&p("k1"), &p("c1")).unwrap();
        SpKey::load_or_create(&p("k2"), &p("c2")).unwrap();
        let e = SpKey::load(&p("k1"), &p("c2")).unwrap_err();
        assert!(e.why.contains("not for the key"), "{e}");
        let e = SpKey::load(&p("c1"), &p("c1")).unwrap_err();
        assert!(e.why.contains("not a PEM private key"), "{e}");
    }
}
