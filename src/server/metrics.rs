//! The metrics listener: `GET /metrics` in Prometheus' text format, on its own address
//! (`[metrics] listen`, loopback by default), apart from the apps' traffic.

use crate::body::{Body, empty, full};
use crate::metrics::{CONTENT_TYPE, Metrics, Scrape};
use crate::web::state::Shared;
use http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Serves scrapes on `listener` until the process ends.
pub async fn serve(shared: Arc<Shared>, metrics: Arc<Metrics>, listener: TcpListener) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let (shared, metrics) = (shared.clone(), metrics.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let answer = answer(&shared, &metrics, &req);
                async move { Ok::<_, Infallible>(answer) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10));
            let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
        });
    }
}

fn answer(shared: &Shared, metrics: &Metrics, req: &Request<Incoming>) -> Response<Body> {
    if req.uri().path() != "/metrics" || req.method() != Method::GET {
        let mut resp = Response::new(empty());
        *resp.status_mut() = StatusCode::NOT_FOUND;
        return resp;
    }
    let now = crate::clock::unix_now();
    let live_sessions = shared
        .gate
        .sessions
        .all()
        .iter()
        .filter(|s| s.stage == crate::session::Stage::Complete)
        .count();
    let locked_accounts = shared
        .gate
        .accounts
        .snapshot()
        .standing
        .values()
        .filter(|s| s.locked_until.is_some_and(|t| t > now))
        .count();
    let loaded = shared.store.current().loaded_at;
    let policy_loaded = loaded
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let text = metrics.render(&Scrape {
        live_sessions,
        locked_accounts,
        policy_stale: shared.store.status().stale.is_some(),
        policy_loaded,
        store_up: shared.gate.sessions.available(),
    });
    let mut resp = Response::new(full(text));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(CONTENT_TYPE),
    );
    resp
}
