//! Credential primitives: password rules and hashing, TOTP second factor, random tokens and recovery codes.
pub mod codes;
pub mod lockout;
pub mod password;
pub mod totp;
