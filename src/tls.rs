//! TLS settings: the server side clients see, and the client side ward uses
//! towards `https` upstreams. One crypto provider (aws-lc-rs) throughout.

use crate::certs::{CertError, CertFile, CertReader};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// Why a certificate, key or CA file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificate file {path}: {reason}")]
    Cert { path: String, reason: String },
    #[error("cannot read private key file {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("cannot read CA file {path}: {reason}")]
    Ca { path: String, reason: String },
    #[error("the certificate and key do not belong together, or the key is not supported: {0}")]
    Mismatch(String),
}

impl TlsError {
    /// Which of the policy's files the problem is in.
    fn file(&self) -> CertFile {
        match self {
            TlsError::Key { .. } => CertFile::Key,
            TlsError::Ca { .. } => CertFile::Ca,
            TlsError::Cert { .. } | TlsError::Mismatch(_) => CertFile::Cert,
        }
    }
}

impl From<TlsError> for CertError {
    fn from(e: TlsError) -> CertError {
        CertError {
            file: e.file(),
            message: e.to_string(),
        }
    }
}

/// Reads the policy's certificate files from disk, for `config::load`.
pub struct Files;

impl CertReader for Files {
    fn server(
        &self,
        cert: &Path,
        key: &Path,
        device_ca: Option<&Path>,
    ) -> Result<ServerConfig, CertError> {
        Ok(server_config(cert, key, device_ca)?)
    }

    fn client(&self, ca: Option<&Path>) -> Result<ClientConfig, CertError> {
        Ok(client_config(ca)?)
    }

    fn names(&self, cert: &Path) -> Vec<String> {
        cert_names(cert)
    }
}

/// The one crypto provider ward uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Server TLS: TLS 1.2 and 1.3 only, ALPN `h2` then `http/1.1`. With a
/// device CA, clients may present a certificate from it (enrolled devices);
/// one that does not verify ends the handshake, none at all is allowed here
/// and refused later where the policy requires a device.
pub fn server_config(
    cert: &Path,
    key: &Path,
    device_ca: Option<&Path>,
) -> Result<ServerConfig, TlsError> {
    let chain = read_certs(cert).map_err(|reason| TlsError::Cert {
        path: cert.display().to_string(),
        reason,
    })?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.display().to_string(),
        reason: pem_reason(&e),
    })?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Mismatch(e.to_string()))?;
    let builder = match device_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let ca_err = |reason: String| TlsError::Ca {
                path: ca.display().to_string(),
                reason,
            };
            let mut roots = RootCertStore::empty();
            for c in read_certs(ca).map_err(ca_err)? {
                roots.add(c).map_err(|e| ca_err(e.to_string()))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .allow_unauthenticated()
            .build()
            .map_err(|e| ca_err(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key_der)
        .map_err(|e| TlsError::Mismatch(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Client TLS towards an upstream: its own CA file if given, else the public roots.
pub fn client_config(ca: Option<&Path>) -> Result<ClientConfig, TlsError> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(path) => {
            let certs = read_certs(path).map_err(|reason| TlsError::Ca {
                path: path.display().to_string(),
                reason,
            })?;
            for c in certs {
                roots.add(c).map_err(|e| TlsError::Ca {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Mismatch(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // ALPN is left to the connector, which offers http/1.1 only: legacy upstreams.
    Ok(config)
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_reason(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_reason(&e))?;
    if certs.is_empty() {
        return Err("no PEM certificate (-----BEGIN CERTIFICATE-----) in it".into());
    }
    Ok(certs)
}

fn pem_reason(e: &rustls_pki_types::pem::Error) -> String {
    match e {
        rustls_pki_types::pem::Error::Io(io) => io.to_string(),
        rustls_pki_types::pem::Error::NoItemsFound => "no PEM item of the right kind in it".into(),
        other => format!("not a valid PEM file ({other:?})"),
    }
}

/// The DNS names (lower case) in the subject alternative names of the first
/// certificate in a PEM file: the host names browsers accept ward under.
pub fn cert_names(cert: &Path) -> Vec<String> {
    let Ok(chain) = read_certs(cert) else {
        return Vec::new();
    };
    let Some(Ok((_, parsed))) = chain
        .first()
        .map(|c| x509_parser::parse_x509_certificate(c.as_ref()))
    else {
        return Vec::new();
    };
    let Ok(Some(san)) = parsed.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// The subject of a client certificate (DER), as `CN=…, O=…`, for the audit trail.
pub fn subject_of(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.subject().to_string())
}

/// Why a self-signed certificate could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SelfSignedError {
    /// The certificate itself.
    #[error("cannot make a certificate: {0}")]
    Make(#[from] rcgen::Error),
    /// Writing it (or its key, or their folder).
    #[error("{}: {source}", path.display())]
    Write {
        /// The file or folder.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Makes a self-signed certificate and key for `names`, written as PEM
/// (the key readable by its owner only). Used by `ward demo` and tests.
pub fn write_self_signed(cert: &Path, key: &Path, names: &[&str]) -> Result<(), SelfSignedError> {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let made = rcgen::generate_simple_self_signed(names)?;
    fn written(path: &Path) -> impl FnOnce(std::io::Error) -> SelfSignedError + '_ {
        move |source| SelfSignedError::Write {
            path: path.to_path_buf(),
            source,
        }
    }
    for dir in [cert.parent(), key.parent()].into_iter().flatten() {
        std::fs::create_dir_all(dir).map_err(written(dir))?;
    }
    crate::fsutil::write_private(key, made.signing_key.serialize_pem().as_bytes())
        .map_err(written(key))?;
    std::fs::write(cert, made.cert.pem()).map_err(written(cert))?;
    Ok(())
}
