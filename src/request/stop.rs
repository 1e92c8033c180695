//! Every way the pipeline stops a request short of the app's answer: the
//! status, the code the log and the audit trail record, and the words on the page.

use crate::body::Body;
use crate::policy::{Policy, Refusal};
use crate::proxy::ProxyError;
use crate::proxy::filter::Held;
use crate::web::page;
use http::{Response, StatusCode};
use std::borrow::Cow;

/// A request the pipeline answers itself instead of passing on.
#[derive(Debug)]
pub struct Stop {
    /// The HTTP status of the page.
    pub status: StatusCode,
    /// The decision the log line and the audit record carry (`no-route`, `rate-limit` …).
    pub code: &'static str,
    /// The page's title.
    pub title: &'static str,
    /// The page's words for the person.
    pub message: Cow<'static, str>,
    /// A finer reason for the log and the trail only; never shown.
    pub detail: Option<String>,
    /// For a signed-in person: where to ask the officer for access, and the officer's
    /// decisions on their earlier requests (each shown once).
    pub offer: Option<Offer>,
}

/// A "Request access" link on a refusal page, with news of earlier requests.
#[derive(Debug)]
pub struct Offer {
    /// The request page for this refusal.
    pub link: String,
    /// Decisions not shown before, in words.
    pub news: Vec<String>,
}

impl Stop {
    fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Stop {
        Stop {
            status,
            code,
            title,
            message: message.into(),
            detail: None,
            offer: None,
        }
    }

    /// The same refusal with a "Request access" link and news of earlier requests.
    pub fn with_offer(self, offer: Offer) -> Stop {
        Stop {
            offer: Some(offer),
            ..self
        }
    }

    /// A request too ambiguous to decide on (`why` is shown, `detail` recorded).
    pub fn bad_request(detail: impl ToString, why: &str) -> Stop {
        Stop {
            detail: Some(detail.to_string()),
            ..Stop::new(
                StatusCode::BAD_REQUEST,
                "bad-request",
                "Request refused",
                format!("ward refused this request: {why}."),
            )
        }
    }

    /// The policy refuses this person (or this address) this page.
    pub fn denied(refusal: Refusal) -> Stop {
        Stop::new(
            StatusCode::FORBIDDEN,
            refusal.code(),
            "Access refused",
            refusal.explain(),
        )
    }

    /// An app's script asked to install a service worker.
    pub fn service_worker() -> Stop {
        Stop::new(
            StatusCode::FORBIDDEN,
            "service-worker",
            "Not permitted",
            "ward does not let the systems behind it install service workers.",
        )
    }

    /// A form ward must read to decide could not be read.
    pub fn form_unreadable(status: StatusCode, why: &'static str) -> Stop {
        Stop::new(status, "form-unreadable", "Request refused", why)
    }

    /// Signed in, but without the second factor this page needs.
    pub fn mfa_needed() -> Stop {
        Stop::new(
            StatusCode::FORBIDDEN,
            "mfa-needed",
            "A second factor is needed",
            "This page needs a sign-in that includes your authenticator code. Sign out (/.ward/logout) and sign in again with your ward password and code.",
        )
    }

    /// The policy in force names an app ward has no client for.
    pub fn no_app() -> Stop {
        Stop::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "allow",
            "Configuration problem",
            "The route names an app ward does not have.",
        )
    }

    /// The person's requests to this route are over the route's rate.
    pub fn rate_limited() -> Stop {
        Stop::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limit",
            "Too many requests",
            "You have opened this page more often than the practice allows in a short time. Wait a little and try again.",
        )
    }

    /// A body on a route that takes none from these roles.
    pub fn body_blocked() -> Stop {
        Stop::new(
            StatusCode::FORBIDDEN,
            "body-blocked",
            "Change not permitted",
            "Your account may look at this page but not change it: it controls where patient data is sent.",
        )
    }

    /// An answer that is an export, where the person may not export.
    pub fn export_blocked(policy: &Policy, why: &str) -> Stop {
        Stop::new(
            StatusCode::FORBIDDEN,
            "export-blocked",
            "Download not permitted",
            format!(
                "ward stopped this download because {why}. Downloading or exporting patient data from here is not permitted for your account. If your work needs it, ask {} for an export grant.",
                policy.export.contact
            ),
        )
    }

    /// An answer over the route's size cap.
    pub fn too_large(held: Held) -> Stop {
        Stop::new(
            StatusCode::FORBIDDEN,
            "too-large",
            "Too much at once",
            format!(
                "ward stopped this answer because {held}: large pulls of patient data need the security officer's permission."
            ),
        )
    }

    /// An answer ward could not check for fields the person may not see.
    pub fn redaction_refused(held: Held) -> Stop {
        Stop::new(
            StatusCode::FORBIDDEN,
            "redaction-refused",
            "Page not available",
            format!("ward could not show this page to you: {held}."),
        )
    }

    /// The app could not be reached or answered wrongly (access was allowed).
    pub fn upstream(e: &ProxyError) -> Stop {
        let (title, message) = match e.status() {
            StatusCode::BAD_REQUEST => (
                "Request incomplete",
                "The request did not arrive whole, so ward did not pass it on. Please try again.",
            ),
            StatusCode::GATEWAY_TIMEOUT => (
                "The system is not answering",
                "The system behind ward took too long to answer. Please try again in a moment.",
            ),
            _ => (
                "The system is unavailable",
                "ward could not reach the system behind it. Please try again in a moment.",
            ),
        };
        Stop {
            detail: Some(e.to_string()),
            ..Stop::new(e.status(), "allow", title, message)
        }
    }

    /// The audit record could not be written and the policy refuses unrecorded access.
    pub fn unrecorded(e: impl ToString) -> Stop {
        Stop {
            detail: Some(format!("audit trail: {}", e.to_string())),
            ..Stop::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unrecorded",
                "Temporarily unavailable",
                "ward cannot record access right now, and the practice's policy is to refuse access that cannot be recorded. Please tell the practice's IT contact.",
            )
        }
    }

    /// A page of ward's that this host does not serve.
    pub fn not_here(message: &'static str) -> Stop {
        Stop::new(StatusCode::NOT_FOUND, "ward", "Not found", message)
    }

    /// Pages that hold form tokens, asked for where ward has no host of its own.
    pub fn needs_own_host() -> Stop {
        Stop::new(
            StatusCode::NOT_FOUND,
            "ward",
            "Not available here",
            "This page is served only on ward's own host name, which this practice has not set up (the policy's [server] ward_host).",
        )
    }

    /// The page for the person, with the request's reference for the IT contact.
    pub fn page(&self, practice: &str, request_id: &str) -> Response<Body> {
        let Some(offer) = &self.offer else {
            return page::problem(self.status, practice, self.title, &self.message, request_id);
        };
        let body = maud::html! {
            @if !offer.news.is_empty() {
                div.notice role="status" { @for n in &offer.news { p { (n) } } }
            }
            p { (self.message) }
            p { a href=(offer.link) { "Request access" } " — ask the practice's security officer, with a reason; nothing changes until an officer approves." }
            p { "If you need help, tell the practice's IT contact this reference: " code { (request_id) } }
        };
        page::page(self.status, practice, self.title, body)
    }
}
