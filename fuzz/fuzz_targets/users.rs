//! The officer-edited users file: any text is either read or refused with
//! `FILE:LINE:COL` diagnostics. Never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = ward::users::directory::parse(Path::new("users.toml"), text);
});
