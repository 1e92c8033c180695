//! The one place ward reads the wall clock. Everything below the request
//! pipeline, the sweeps and the commands takes "now" as a value from here, so
//! the rules stay pure and a test can hand them any time.

use std::time::SystemTime;

/// Now, as a timestamp.
pub fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

/// Now, in whole seconds since 1970 (the unit of sessions, grants and lockouts).
pub fn unix_now() -> i64 {
    now().as_second()
}

/// Now, for crates that count in `SystemTime` (OIDC token checks, humantime).
pub fn system_now() -> SystemTime {
    SystemTime::now()
}
