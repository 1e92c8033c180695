//! ward's stylesheets and scripts, compiled in and served under `/.ward/`, so that no page of
//! ward's needs an inline style or script (its Content-Security-Policy allows none).

use crate::body::{Body, full};
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

/// The sign-in, second-step, enrollment, break-glass and refusal pages.
const WARD_CSS: &str = include_str!("ward.css");
/// The watermark and print notice ward adds to some apps' pages (`proxy::marks`).
const WATERMARK_CSS: &str = include_str!("watermark.css");
/// The officer's console.
const CONSOLE_CSS: &str = include_str!("console.css");

/// The stylesheet at `path`, or `None` if `path` is none of ward's.
pub fn stylesheet(path: &str) -> Option<Response<Body>> {
    let css = match path {
        "/.ward/ward.css" => WARD_CSS,
        "/.ward/console.css" => CONSOLE_CSS,
        "/.ward/watermark.css" => WATERMARK_CSS,
        "/.ward/review.css" => crate::users::review::REVIEW_CSS,
        _ => return None,
    };
    Some(asset(css, "text/css; charset=utf-8"))
}

/// The script at `path` that ward's own pages load (never inline), or `None`.
pub fn script(path: &str) -> Option<Response<Body>> {
    match path {
        "/.ward/passkey.js" => Some(asset(PASSKEY_JS, "text/javascript; charset=utf-8")),
        _ => None,
    }
}

/// Asks the browser's authenticator for a passkey on the passkey pages (`web::passkeys`).
const PASSKEY_JS: &str = include_str!("passkey.js");

/// One of ward's own files: the same for everyone, typed and never sniffed.
fn asset(text: &'static str, content_type: &'static str) -> Response<Body> {
    let mut resp = Response::new(full(text));
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Holds nothing private; an hour keeps page loads quick and a new version close behind.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    resp
}
