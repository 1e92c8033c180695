//! Passkey ceremonies under way (options sent to the browser, its answer not yet back): kept on
//! the server only, for five minutes, and taken once. In this instance's memory or, with a
//! shared session store, in Redis, so that the answer may come back through another instance.

use crate::session::take_once::TakeOnce;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, PasskeyAuthentication, PasskeyRegistration,
};

/// How long the browser has to answer.
pub const STEP_TTL: Duration = Duration::from_secs(300);

/// Redis keys of ceremonies under way: `ward:passkey:HASH_OF_STEP`.
const STEP_PREFIX: &str = "ward:passkey:";

/// Ceremonies kept in memory at most (older ones are dropped first).
const MAX_LOCAL: u64 = 10_000;

/// What is being proved, and for whom.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub enum Ceremony {
    /// A signed-in person adds a passkey named `name`.
    Register {
        /// The account.
        user: String,
        /// The session that began it (its public id).
        session: String,
        /// The name the person gave the key.
        name: String,
        /// The relying party id.
        rp: String,
        /// webauthn-rs's state.
        state: PasskeyRegistration,
    },
    /// The second step of a sign-in whose password was right.
    SecondFactor {
        /// The account.
        user: String,
        /// The pending session (its public id).
        session: String,
        /// The relying party id.
        rp: String,
        /// webauthn-rs's state.
        state: PasskeyAuthentication,
    },
    /// A sign-in with a passkey alone (the officer allows it).
    SignIn {
        /// The relying party id.
        rp: String,
        /// webauthn-rs's state.
        state: DiscoverableAuthentication,
    },
}

/// Ceremonies under way, by the hash of the random step id the page carries.
pub struct PasskeySteps(TakeOnce<Ceremony>);

impl PasskeySteps {
    /// Kept in memory, or in `shared` when given.
    pub fn new(shared: Option<Arc<crate::session::redis::RedisStore>>) -> PasskeySteps {
        PasskeySteps(TakeOnce::new(STEP_PREFIX, STEP_TTL, MAX_LOCAL, shared))
    }

    /// Keeps a ceremony; returns the step id for the page, or None if it could not be kept.
    pub async fn put(&self, ceremony: Ceremony) -> Option<String> {
        self.0.put(ceremony).await
    }

    /// The ceremony for `step`, once.
    pub async fn take(&self, step: &str) -> Option<Ceremony> {
        self.0.take(step).await
    }
}
