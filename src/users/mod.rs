//! Accounts: the officer's `users.toml` (who may sign in, with what roles), the secrets ward
//! keeps apart from it, the changes `ward user …` makes to both, the accounts in force,
//! the officer's grants, and the access review.

pub mod accounts;
pub mod admin;
pub mod attestations;
pub mod diff;
pub mod directory;
pub mod grants;
pub mod requests;
pub mod review;
pub mod schema;
pub mod secrets;

pub use admin::{Admin, AdminError, EnrollLink, NewAccount};
pub use directory::{Account, Directory, SignIn, Status};
pub use secrets::{
    PasskeyEntry, PendingEnrollment, Purpose, SecretStore, Secrets, SsoLink, Store, StoreError,
    StoreFile, UserSecrets,
};
