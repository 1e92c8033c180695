//! Request targets and path canonicalization: an accepted path's canonical
//! form is a fixed point, never holds what canonicalization refuses, folds
//! stably, and `decide` on it agrees with the traced `decide` (`ward explain`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::sync::OnceLock;
use ward::path::{canonicalize, fold_case};
use ward::policy::{Facts, Policy, decide, decide_traced};

const POLICY: &str = "practice = \"P\"\n[server]\nlisten = \"127.0.0.1:0\"\n[roles]\nclinician = {}\nofficer = {}\n\
[[apps]]\nname = \"ehr\"\nupstream = \"http://127.0.0.1:9\"\n\
[[routes]]\napp = \"ehr\"\npath = \"/**\"\nallow_roles = [\"clinician\"]\n\
[[routes]]\napp = \"ehr\"\npath = \"/admin/**\"\nallow_roles = [\"officer\"]\n\
[[routes]]\napp = \"ehr\"\npath = \"/public/*/x\"\nallow = \"public\"\n";

fn policy() -> &'static Policy {
    static P: OnceLock<Policy> = OnceLock::new();
    P.get_or_init(|| {
        ward::config::load_str(Path::new("p.toml"), POLICY, ward::config::Certs::Skip)
            .map(|l| l.policy)
            .unwrap_or_else(|d| panic!("{d}"))
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    // The whole request target, as hyper hands it over.
    if let Ok(uri) = raw.parse::<http::Uri>() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::HOST,
            http::HeaderValue::from_static("ehr.example"),
        );
        let _ = ward::request::target::read(&http::Method::GET, &uri, &headers);
    }
    let Ok(canonical) = canonicalize(raw) else {
        return;
    };
    assert_eq!(canonicalize(&canonical).as_ref(), Ok(&canonical));
    assert!(canonical.starts_with('/') && !canonical.contains("//"));
    let upper = canonical.to_ascii_uppercase();
    assert!(!upper.contains("%2F") && !upper.contains("%5C") && !upper.contains("%25"));
    assert!(canonical.split('/').all(|s| s != "." && s != ".."));
    let folded = fold_case(&canonical);
    assert_eq!(fold_case(&folded), folded);
    let facts = Facts {
        client_ip: [127, 0, 0, 1].into(),
        method: &http::Method::GET,
        host: "ehr.example",
        path: &canonical,
        identity: None,
        device: false,
        device_people: &[],
        device_revoked: false,
        query: &[],
        form: &[],
    };
    let d = decide(&facts, policy());
    let t = decide_traced(&facts, policy(), &mut Vec::new());
    assert_eq!((d.verdict, d.route), (t.verdict, t.route));
});
