//! The policy parser and validator: any text is either refused with
//! diagnostics or compiles to a policy on which `decide` and the traced
//! `decide` (what `ward explain` prints) agree. Never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use ward::policy::{Facts, decide, decide_traced};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(loaded) =
        ward::config::load_str(Path::new("fuzz.toml"), text, ward::config::Certs::Skip)
    else {
        return;
    };
    let policy = loaded.policy;
    // Routes may apply only with given query parameters.
    let query = vec![("route".to_string(), "/export".to_string())];
    for path in ["/", "/admin/x", "/patients/1/chart", "/.ward/login"] {
        let facts = Facts {
            client_ip: [127, 0, 0, 1].into(),
            method: &http::Method::GET,
            host: "ehr.example",
            path,
            identity: None,
            device: false,
            device_people: &[],
            device_revoked: false,
            query: &query,
            form: &[],
        };
        let d = decide(&facts, &policy);
        let t = decide_traced(&facts, &policy, &mut Vec::new());
        assert_eq!((d.verdict, d.route), (t.verdict, t.route));
    }
});
