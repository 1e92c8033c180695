//! ward's own pages under `/.ward/`: the sign-in pages, single sign-on, the
//! hand-off to app hosts, break-glass and the officer's console.

pub mod breakglass;
pub mod console;
pub mod handoff;
pub mod page;
pub mod signin;
pub mod sso;
