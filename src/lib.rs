//! ward: a TLS-terminating, authenticating reverse proxy that enforces a medical
//! practice's access policy in front of its legacy web apps.

pub mod config;
pub mod fsutil;
pub mod path;
pub mod policy;
pub mod tls;
