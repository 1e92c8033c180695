//! Cookie and session-token handling: reading the session cookie from any
//! `Cookie` header, removing ward's own cookies before the app, and making an
//! app's `Set-Cookie` safe. ward's cookies never survive, whatever the bytes.
#![no_main]

use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;
use ward::proxy::headers::{Rewriter, strip_ward_cookies};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut h = HeaderMap::new();
    h.append(header::COOKIE, value.clone());
    h.append(
        header::COOKIE,
        HeaderValue::from_static("__Host-ward-session=x"),
    );
    let _ = ward::session::cookie_value(&h, ward::session::COOKIE);
    strip_ward_cookies(&mut h);
    for v in h.get_all(header::COOKIE) {
        let text = v.to_str().unwrap_or("").to_ascii_lowercase();
        assert!(
            !text
                .split(';')
                .any(|p| p.trim().starts_with("__host-ward-")),
            "{text}"
        );
    }
    let mut resp = HeaderMap::new();
    resp.append(header::SET_COOKIE, value);
    let r = Rewriter {
        scheme: "http",
        authority: "10.0.0.5:8080",
        public: "ehr.example",
    };
    r.cookies(&mut resp, true);
    for v in resp.get_all(header::SET_COOKIE) {
        let text = v.to_str().unwrap_or("");
        assert!(!text.trim().to_ascii_lowercase().starts_with("__host-ward-"));
        assert!(text.to_ascii_lowercase().contains("secure"));
    }
});
