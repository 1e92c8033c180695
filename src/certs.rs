//! What reading a policy needs from the TLS code: a reader of certificate
//! files. `config` asks through this trait and `tls` answers it, so neither
//! imports the other.

use std::path::Path;

/// Reads the certificate files a policy names. ward's TLS code implements it
/// (`tls::Files`), so reading the policy needs no TLS code of its own.
pub trait CertReader {
    /// The server's TLS settings from its certificate, key, device CA and the
    /// officer's list of revoked device certificates (CRL).
    fn server(
        &self,
        cert: &Path,
        key: &Path,
        device_ca: Option<&Path>,
        device_crl: Option<&Path>,
    ) -> Result<ServerTls, CertError>;
    /// An upstream client's TLS settings, trusting `ca` (else the system's roots).
    fn client(&self, ca: Option<&Path>) -> Result<rustls::ClientConfig, CertError>;
    /// The host names a certificate is for.
    fn names(&self, cert: &Path) -> Vec<String>;
}

/// The server's TLS settings and the device certificates revoked when they were read.
#[derive(Debug)]
pub struct ServerTls {
    /// What the TLS handshake uses (refuses revoked devices on new connections).
    pub config: rustls::ServerConfig,
    /// The revoked device certificates, to refuse them on connections already open.
    pub revoked: Vec<RevokedDevice>,
}

/// One revoked device certificate: its issuer (DER name) and serial number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedDevice {
    /// The issuing CA's name, DER.
    pub issuer: Vec<u8>,
    /// The certificate's serial number, as encoded.
    pub serial: Vec<u8>,
}

/// A certificate file that could not be used, and which of the policy's files it is.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct CertError {
    /// Which setting named the file.
    pub file: CertFile,
    /// What is wrong, in words.
    pub message: String,
}

/// Which of the policy's TLS files a problem is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertFile {
    /// The certificate (`cert`).
    Cert,
    /// Its private key (`key`).
    Key,
    /// A CA (`device_ca`, an app's `ca`).
    Ca,
    /// The revoked device certificates (`device_crl`).
    Crl,
}
