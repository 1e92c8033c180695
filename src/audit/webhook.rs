//! The alert webhook: each alert POSTed as JSON to the address in `[alerts] webhook`.

use super::alert::{Alert, Receiver};
use super::retry::SendError;
use bytes::Bytes;
use http::{Request, header};
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// The longest one attempt waits for the webhook's answer.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A webhook and the client that reaches it.
pub(crate) struct Webhook {
    url: String,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Webhook {
    /// A client for `url` (https with the public roots, or http to this machine as the
    /// policy allows).
    pub(crate) fn new(url: &str) -> Result<Webhook, crate::tls::TlsError> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        let tls = crate::tls::client_config(None)?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Webhook {
            url: url.to_string(),
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }
}

impl Receiver for Webhook {
    /// One attempt to POST `alert`.
    async fn send(&self, alert: &Alert) -> Result<(), SendError> {
        let body = serde_json::to_vec(alert).map_err(|e| SendError::Message(e.to_string()))?;
        let req = Request::post(self.url.as_str())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::USER_AGENT, "ward-alerts")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| SendError::Message(e.to_string()))?;
        match tokio::time::timeout(TIMEOUT, self.client.request(req)).await {
            Ok(Ok(resp)) if resp.status().is_success() => Ok(()),
            Ok(Ok(resp)) => Err(SendError::Refused(format!("HTTP {}", resp.status()))),
            Ok(Err(e)) => Err(SendError::Unreachable(e.to_string())),
            Err(_) => Err(SendError::Timeout(TIMEOUT)),
        }
    }
}
