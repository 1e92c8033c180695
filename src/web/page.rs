//! ward's own HTML pages: plain, accessible, and never cached.

use crate::body::{Body, full};
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use maud::{DOCTYPE, Markup, html};

/// The Content-Security-Policy of ward's pages: styles only from ward's own files, no script.
const CSP: &str = "default-src 'none'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The practice's name for a page's heading, or `ward` when the policy gives none.
pub fn practice_name(practice: &str) -> &str {
    if practice.is_empty() {
        "ward"
    } else {
        practice
    }
}

/// A complete page in ward's one layout: `title` is text, `body` is the page's markup.
pub fn page(status: StatusCode, practice: &str, title: &str, body: Markup) -> Response<Body> {
    let practice = practice_name(practice);
    let html = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — " (practice) }
                link rel="stylesheet" href="/.ward/ward.css";
            }
            body {
                main {
                    p.who { (practice) " · protected by ward" }
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    html_response(status, html.into_string(), CSP)
}

/// An HTML answer with the headers every page of ward's carries and the policy `csp`.
pub fn html_response(status: StatusCode, html: String, csp: &'static str) -> Response<Body> {
    let mut resp = Response::new(full(html));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("content-security-policy", HeaderValue::from_static(csp));
    resp
}

/// A refusal or failure page that carries the request id for the help desk.
pub fn problem(
    status: StatusCode,
    practice: &str,
    title: &str,
    message: &str,
    request_id: &str,
) -> Response<Body> {
    let body = html! {
        p { (message) }
        p { "If you need help, tell the practice's IT contact this reference: " code { (request_id) } }
    };
    page(status, practice, title, body)
}

/// Plain-text response for machine endpoints.
pub fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
