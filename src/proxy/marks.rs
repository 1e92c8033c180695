//! Marks ward adds to the end of an app's HTML page: the idle-logoff script, and on routes
//! with `watermark = true` or `print = "block"` a faint overlay naming the person, the time and
//! the request (it deters photos of the screen, which export blocking cannot stop) and a
//! notice that prints instead of the page. Styled by `/.ward/watermark.css`, never inline, so
//! an app's own Content-Security-Policy allowing its own stylesheets is enough.

use crate::body::{self, Body};
use crate::policy::media::MediaType;
use http::{Response, StatusCode, header};
use maud::html;

/// The script tag for the idle warning and screen clearing.
pub const IDLE_TAG: &str = "\n<script src=\"/.ward/idle.js\" defer></script>\n";

/// How often the overlay's text repeats, enough to tile a large screen.
const REPEAT: usize = 60;

/// The watermark and print-block markup for a page: `who` (the person's name), `when` (the
/// time, in words) and `request` (the request id).
pub fn page_marks(
    watermark: bool,
    print_blocked: bool,
    who: &str,
    when: &str,
    request: &str,
) -> String {
    let text = format!("{who} · {when} · {request}");
    html! {
        "\n"
        link rel="stylesheet" href="/.ward/watermark.css";
        @if watermark {
            div class="ward-watermark" aria-hidden="true" {
                @for _ in 0..REPEAT { span { (text) } }
            }
        }
        @if print_blocked {
            div class="ward-print-blocked" {
                "This page may not be printed: the practice's policy blocks printing it (request "
                (request) ")."
            }
        }
        "\n"
    }
    .into_string()
}

/// `unix` seconds as the watermark shows them: `2026-11-30 06:30 UTC`.
pub fn minute_text(unix: i64) -> String {
    jiff::Timestamp::from_second(unix)
        .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// Whether ward can add its marks to an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Markable {
    /// An HTML page (200) as it is: marks can go at its end.
    Yes,
    /// An HTML page that came compressed (the app ignored ward's request for a plain one).
    Compressed,
    /// Not an HTML page: nothing to mark.
    NotAPage,
}

/// What ward can do with `resp`.
pub fn markable(resp: &Response<Body>) -> Markable {
    let html = MediaType::of(resp.headers()).is_some_and(|m| m.essence == "text/html");
    if !html || resp.status() != StatusCode::OK {
        Markable::NotAPage
    } else if resp.headers().contains_key(header::CONTENT_ENCODING) {
        Markable::Compressed
    } else {
        Markable::Yes
    }
}

/// `resp` with `marks` after its HTML; only for answers [`markable`] says `Yes` to.
pub fn append(resp: Response<Body>, marks: impl Into<bytes::Bytes>) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, body::append(body, marks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_person_time_and_request_are_escaped_and_repeated() {
        let m = page_marks(true, false, "Dr. <b>Lee</b>", "2026-11-30 06:30 UTC", "r1");
        assert!(
            m.contains("Dr. &lt;b&gt;Lee&lt;/b&gt; · 2026-11-30 06:30 UTC · r1"),
            "{m}"
        );
        assert!(!m.contains("<b>"));
        assert_eq!(m.matches("<span>").count(), REPEAT);
        assert!(!m.contains("ward-print-blocked"));
    }

    #[test]
    fn print_block_alone_has_the_notice_and_no_overlay() {
        let m = page_marks(false, true, "x", "y", "r2");
        assert!(m.contains("class=\"ward-print-blocked\""));
        assert!(!m.contains("ward-watermark"));
        assert!(m.contains("/.ward/watermark.css"));
    }
}
