//! What can go wrong in a SAML exchange, in words for the person and a code for the trail.

/// Why a SAML sign-in (or a metadata file) did not work. `Display` is plain words for a page
/// (HTML-escape it); [`SamlError::code`] is a stable name for the audit log.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SamlError {
    /// The IdP metadata cannot be used.
    #[error("the identity provider's metadata cannot be used: {0}")]
    Metadata(String),
    /// The response is not well-formed, or has parts ward never accepts.
    #[error("the sign-in answer from the identity provider is malformed ({0})")]
    Malformed(&'static str),
    /// The signature, or a condition the library checks, failed.
    #[error("the sign-in answer from the identity provider was refused: {0}")]
    Refused(String),
    /// This assertion was used before.
    #[error("this sign-in answer was already used; please start again")]
    Replayed,
    /// The IdP said the sign-in did not succeed.
    #[error("the identity provider did not sign you in ({0})")]
    NotSignedIn(String),
    /// Building the request failed.
    #[error("ward could not build the sign-in request: {0}")]
    Request(String),
}

impl SamlError {
    /// A stable name for the audit log and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            SamlError::Metadata(_) => "saml_metadata",
            SamlError::Malformed(_) => "saml_malformed",
            SamlError::Refused(_) => "saml_refused",
            SamlError::Replayed => "saml_replayed",
            SamlError::NotSignedIn(_) => "saml_not_signed_in",
            SamlError::Request(_) => "saml_request",
        }
    }
}
