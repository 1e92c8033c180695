//! What reading a policy needs from the TLS code: a reader of certificate
//! files. `config` asks through this trait and `tls` answers it, so neither
//! imports the other.

use std::path::Path;

/// Reads the certificate files a policy names. ward's TLS code implements it
/// (`tls::Files`), so reading the policy needs no TLS code of its own.
pub trait CertReader {
    /// The server's TLS settings from its certificate, key and device CA.
    fn server(
        &self,
        cert: &Path,
        key: &Path,
        device_ca: Option<&Path>,
    ) -> Result<rustls::ServerConfig, CertError>;
    /// An upstream client's TLS settings, trusting `ca` (else the system's roots).
    fn client(&self, ca: Option<&Path>) -> Result<rustls::ClientConfig, CertError>;
    /// The host names a certificate is for.
    fn names(&self, cert: &Path) -> Vec<String>;
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
}
