//! The officer's console under `/.ward/officer/`.

use crate::body::Body;
use crate::handler::Shared;
use crate::login::{PageOutcome, PageRequest};
use crate::reload::Runtime;
use http::{Response, StatusCode};
use hyper::body::Incoming;

/// Serves a console page. (Placeholder until the console lands: refuses.)
pub async fn serve(
    _shared: &Shared,
    rt: &Runtime,
    req: PageRequest<'_>,
    _body: Incoming,
    _outcome: &mut PageOutcome,
) -> Response<Body> {
    crate::pages::problem(
        StatusCode::NOT_FOUND,
        &rt.policy.practice,
        "Not found",
        "The officer's console is not available yet.",
        req.request_id,
    )
}
