//! ward's own HTML pages: plain, accessible, and never cached.

use crate::body::{Body, full};
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

/// Escapes text for HTML element content and quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A complete page: `title` is text, `body_html` is already-escaped HTML.
pub fn page(status: StatusCode, practice: &str, title: &str, body_html: &str) -> Response<Body> {
    let practice = if practice.is_empty() {
        "ward"
    } else {
        practice
    };
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title} — {practice}</title>\
<link rel=\"stylesheet\" href=\"/.ward/ward.css\"></head>\
<body><main><p class=\"who\">{practice} · protected by ward</p><h1>{title}</h1>{body_html}</main></body></html>\n",
        title = escape(title),
        practice = escape(practice),
    );
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
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
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
    let body = format!(
        "<p>{}</p><p>If you need help, tell the practice's IT contact this reference: <code>{}</code></p>",
        escape(message),
        escape(request_id)
    );
    page(status, practice, title, &body)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
    }
}
