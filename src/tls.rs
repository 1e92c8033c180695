//! TLS settings: the server side clients see, and the client side ward uses
//! towards `https` upstreams. One crypto provider (aws-lc-rs) throughout.

use crate::certs::{CertError, CertFile, CertReader, RevokedDevice, ServerTls};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
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
    #[error("cannot read the revoked devices file (CRL) {path}: {reason}")]
    Crl { path: String, reason: String },
    #[error("the certificate and key do not belong together, or the key is not supported: {0}")]
    Mismatch(String),
}

impl TlsError {
    /// Which of the policy's files the problem is in.
    fn file(&self) -> CertFile {
        match self {
            TlsError::Key { .. } => CertFile::Key,
            TlsError::Ca { .. } => CertFile::Ca,
            TlsError::Crl { .. } => CertFile::Crl,
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
        device_crl: Option<&Path>,
    ) -> Result<ServerTls, CertError> {
        let (crls, revoked) = match device_crl {
            Some(path) => read_crl(path)?,
            None => (Vec::new(), Vec::new()),
        };
        let config = server_config_with_crls(cert, key, device_ca, crls)?;
        Ok(ServerTls { config, revoked })
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
/// one that does not verify ends the handshake; none at all is allowed here
/// and refused later where the policy requires a device.
pub fn server_config(
    cert: &Path,
    key: &Path,
    device_ca: Option<&Path>,
) -> Result<ServerConfig, TlsError> {
    server_config_with_crls(cert, key, device_ca, Vec::new())
}

/// [`server_config`], and a device certificate a CRL in `crls` revokes ends the handshake too.
pub fn server_config_with_crls(
    cert: &Path,
    key: &Path,
    device_ca: Option<&Path>,
    crls: Vec<CertificateRevocationListDer<'static>>,
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
            let mut verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .allow_unauthenticated();
            if !crls.is_empty() {
                // The officer's CRL is about device certificates; the CA itself is trusted.
                verifier = verifier.with_crls(crls).only_check_end_entity_revocation();
            }
            let verifier = verifier.build().map_err(|e| ca_err(e.to_string()))?;
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

/// The CRLs in a PEM file (`-----BEGIN X509 CRL-----`), for the handshake, and
/// the certificates they revoke, for connections already open.
pub fn read_crl(
    path: &Path,
) -> Result<
    (
        Vec<CertificateRevocationListDer<'static>>,
        Vec<RevokedDevice>,
    ),
    TlsError,
> {
    let err = |reason: String| TlsError::Crl {
        path: path.display().to_string(),
        reason,
    };
    let crls = CertificateRevocationListDer::pem_file_iter(path)
        .map_err(|e| err(pem_reason(&e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(pem_reason(&e)))?;
    if crls.is_empty() {
        return Err(err(
            "no PEM revocation list (-----BEGIN X509 CRL-----) in it".into(),
        ));
    }
    let mut revoked = Vec::new();
    for der in &crls {
        let (_, crl) = x509_parser::parse_x509_crl(der.as_ref())
            .map_err(|e| err(format!("not a revocation list ({e})")))?;
        let issuer = crl.issuer().as_raw().to_vec();
        revoked.extend(crl.iter_revoked_certificates().map(|r| RevokedDevice {
            issuer: issuer.clone(),
            serial: r.raw_serial().to_vec(),
        }));
    }
    Ok((crls, revoked))
}

/// An enrolled device's certificate, as ward uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The subject, as `CN=…, O=…`, for the audit trail.
    pub subject: String,
    /// The people (account names) or groups (`role:NAME`) the certificate names
    /// in its subject's `UID` attributes; empty when it names nobody.
    pub people: Vec<String>,
    /// Its issuer (DER name) and serial number, to find it in a CRL.
    pub revoked_as: RevokedDevice,
}

impl Device {
    /// Whether the officer's revocation list names this certificate.
    pub fn is_revoked(&self, revoked: &[RevokedDevice]) -> bool {
        revoked.contains(&self.revoked_as)
    }
}

/// The `UID` (userId) attribute type: names the person a device belongs to.
const OID_USER_ID: &str = "0.9.2342.19200300.100.1.1";

/// What a client certificate (DER, already verified by rustls) says about its device.
/// One that cannot be read names nobody, and is refused where a person's own device is needed.
pub fn device_of(der: &[u8]) -> Device {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Device {
            subject: "unreadable subject".into(),
            people: Vec::new(),
            revoked_as: RevokedDevice {
                issuer: Vec::new(),
                serial: Vec::new(),
            },
        };
    };
    let people = cert
        .subject()
        .iter_attributes()
        .filter(|a| a.attr_type().to_id_string() == OID_USER_ID)
        .filter_map(|a| a.as_str().ok())
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    Device {
        subject: cert.subject().to_string(),
        people,
        revoked_as: RevokedDevice {
            issuer: cert.issuer().as_raw().to_vec(),
            serial: cert.raw_serial().to_vec(),
        },
    }
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
