//! Proving who someone is: password rules and hashing, TOTP second factor,
//! random tokens and recovery codes, lockout counting, and OpenID Connect.
pub mod codes;
pub mod lockout;
pub mod oidc;
pub mod passkey;
pub mod password;
pub mod saml;
pub mod saml_error;
pub mod saml_key;
pub mod saml_redirect;
pub mod totp;
