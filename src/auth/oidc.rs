//! Single sign-on with OpenID Connect: the relying-party side ward needs.
//!
//! One [`Provider`] per identity provider the policy names, discovered once at
//! start (or reload) with [`Provider::discover`]. A sign-in is two steps:
//!
//! 1. [`Provider::begin`] gives the provider's authorization URL (code flow,
//!    PKCE S256, `state`, `nonce`) and a [`Pending`] record that ward keeps on
//!    its side, in a [`PendingStore`] keyed by `state`, while the person is at
//!    the provider.
//! 2. On `/.ward/callback`, ward takes the [`Pending`] for the `state` in the
//!    query (a state works once) and calls [`Provider::finish`], which checks
//!    the answer, redeems the code and verifies the ID token, and returns the
//!    [`Verified`] claims.
//!
//! Everything goes over a small HTTP client on hyper-util's pooled client with
//! ward's rustls settings (one crypto provider, aws-lc-rs); openidconnect
//! itself only parses, builds requests and checks signatures. Tokens, codes,
//! nonces and the client secret are never logged, and their `Debug` output is
//! redacted.

use crate::auth::codes::ct_eq;
use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreClaimName, CoreClaimType,
    CoreClientAuthMethod, CoreErrorResponseType, CoreGenderClaim, CoreGrantType, CoreJsonWebKey,
    CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm,
    CoreJwsSigningAlgorithm, CoreResponseMode, CoreResponseType, CoreRevocableToken,
    CoreRevocationErrorResponse, CoreSubjectIdentifierType, CoreTokenIntrospectionResponse,
    CoreTokenType,
};
use openidconnect::{
    AccessToken, AccessTokenHash, AdditionalClaims, AdditionalProviderMetadata, AsyncHttpClient,
    AuthType, AuthUrl, AuthorizationCode, ClaimsVerificationError, Client, ClientId, ClientSecret,
    CsrfToken, DiscoveryError, EmptyExtraTokenFields, EndSessionUrl, EndpointNotSet, EndpointSet,
    HttpRequest, HttpResponse, IdTokenFields, IdTokenVerifier, IssuerUrl, JsonWebKeySet,
    JsonWebKeySetUrl, LogoutRequest, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    PkceCodeVerifier, PostLogoutRedirectUrl, ProviderMetadata, RedirectUrl, RequestTokenError,
    Scope, SignatureVerificationError, StandardErrorResponse, StandardTokenResponse,
    SubjectIdentifier, TokenResponse, TokenUrl, UserInfoError, UserInfoUrl,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// How long a sign-in may stay at the provider before ward forgets it.
pub const PENDING_TTL: Duration = Duration::from_secs(10 * 60);
/// At most one JWKS refresh (for an unknown key id) per provider in this time.
pub const JWKS_REFRESH_INTERVAL: Duration = Duration::from_secs(60);
/// Connecting to the provider gives up after this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A whole request to the provider (connect, send, read the answer) gives up after this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Answers from the provider larger than this are refused.
const MAX_ANSWER: usize = 1024 * 1024;
/// Provider-supplied text shown on a page is cut to this many characters.
const MAX_SHOWN: usize = 300;
/// Signature algorithms ward accepts for ID tokens: asymmetric only (a token
/// MACed with the client secret proves less, and no provider needs it).
const ALLOWED_ALGS: [CoreJwsSigningAlgorithm; 9] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
];

/// One provider as the policy names it (the secret already read from its file or env var).
#[derive(Clone)]
pub struct ProviderConfig {
    /// The policy's name for it (shown on pages, kept in [`Pending::provider`]).
    pub name: String,
    /// The issuer URL; discovery reads `{issuer}/.well-known/openid-configuration`,
    /// whose `issuer` must equal this exactly. `https`, or `http` on loopback only.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// Scopes besides `openid` (always asked for), e.g. `email`, `profile`, `groups`.
    pub scopes: Vec<String>,
    /// Where the provider sends the person back, e.g. `https://ehr.example/.ward/callback`.
    pub redirect_url: String,
    /// Tolerance for the provider's clock when checking `exp` and `iat`.
    pub clock_skew: Duration,
    /// The claim holding the person's groups, e.g. `groups`. A name that is not a
    /// top-level claim but contains dots is followed as a path (`realm_access.roles`).
    pub groups_claim: String,
    /// A CA file (PEM) to trust for the provider instead of the public roots.
    pub ca: Option<PathBuf>,
}

impl fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("name", &self.name)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("scopes", &self.scopes)
            .field("redirect_url", &self.redirect_url)
            .field("clock_skew", &self.clock_skew)
            .field("groups_claim", &self.groups_claim)
            .field("ca", &self.ca)
            .finish()
    }
}

/// What ward keeps between sending someone to the provider and their return
/// (server side, keyed by `state`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    /// Where to send the person after signing in, as ward's caller gave it to
    /// [`Provider::begin`] (the caller checks it is one of ward's own paths).
    pub return_to: String,
    /// [`ProviderConfig::name`] of the provider the sign-in went to.
    pub provider: String,
    /// Unix seconds when the sign-in began.
    pub created: i64,
}

impl fmt::Debug for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pending")
            .field("state", &"<redacted>")
            .field("nonce", &"<redacted>")
            .field("pkce_verifier", &"<redacted>")
            .field("return_to", &self.return_to)
            .field("provider", &self.provider)
            .field("created", &self.created)
            .finish()
    }
}

/// What the provider vouched for, after every check passed.
#[derive(Clone, PartialEq, Eq)]
pub struct Verified {
    /// `sub`: the provider's stable id for the person.
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: Option<bool>,
    pub preferred_username: Option<String>,
    pub name: Option<String>,
    /// From [`ProviderConfig::groups_claim`] in the ID token, else from the
    /// userinfo endpoint; empty if neither has it.
    pub groups: Vec<String>,
    /// `amr` (authentication methods, e.g. `pwd`, `otp`, `mfa`); empty if absent.
    pub amr: Vec<String>,
    /// `acr` (authentication context class).
    pub acr: Option<String>,
    /// The raw ID token, for [`Provider::logout_url`]'s hint only; never log it.
    pub id_token: String,
}

impl fmt::Debug for Verified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verified")
            .field("subject", &self.subject)
            .field("email", &self.email)
            .field("email_verified", &self.email_verified)
            .field("preferred_username", &self.preferred_username)
            .field("name", &self.name)
            .field("groups", &self.groups)
            .field("amr", &self.amr)
            .field("acr", &self.acr)
            .field("id_token", &"<redacted>")
            .finish()
    }
}

/// Why a sign-in with a provider did not work. `Display` is plain words for a
/// page (HTML-escape it: parts come from the provider); [`OidcError::code`] is
/// a stable name for the audit log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    /// The provider's settings in the policy cannot work (bad URL, plain HTTP
    /// to a non-loopback host, unreadable CA file, …).
    #[error("the sign-in provider is not set up correctly: {0}")]
    Config(String),
    /// The provider's discovery document or keys could not be used.
    #[error("the sign-in provider's settings could not be read: {0}")]
    Discovery(String),
    /// The provider could not be reached (connection refused, timeout, TLS failure).
    #[error("the sign-in provider could not be reached: {0}")]
    Unreachable(String),
    /// The answer's `state` does not belong to this sign-in (forged, replayed or stale).
    #[error(
        "this sign-in answer does not belong to a sign-in started here (it may be old, used already, or forged); please sign in again"
    )]
    StateMismatch,
    /// The answer names another issuer (`iss`, RFC 9207): a mix-up of providers.
    #[error("the sign-in answer came from a different provider than the one asked")]
    IssuerMismatch,
    /// The provider sent an error instead of a code, e.g. `access_denied`.
    #[error("{}", provider_error_words(error, description.as_deref()))]
    ProviderError {
        error: String,
        description: Option<String>,
    },
    /// The provider refused to turn the code into tokens (expired or used code,
    /// wrong client credentials, PKCE mismatch) or answered nonsense.
    #[error("the sign-in could not be completed with the provider: {0}")]
    CodeExchange(String),
    /// The ID token failed a check: issuer, audience, expiry, signature, nonce.
    #[error("the sign-in provider's answer failed ward's checks: {0}")]
    IdToken(String),
    /// The userinfo endpoint's answer could not be used.
    #[error("the sign-in provider's user details could not be read: {0}")]
    UserInfo(String),
}

impl OidcError {
    /// A stable short name for audit records.
    pub fn code(&self) -> &'static str {
        match self {
            OidcError::Config(_) => "oidc_config",
            OidcError::Discovery(_) => "oidc_discovery",
            OidcError::Unreachable(_) => "oidc_unreachable",
            OidcError::StateMismatch => "oidc_state_mismatch",
            OidcError::IssuerMismatch => "oidc_issuer_mismatch",
            OidcError::ProviderError { .. } => "oidc_provider_error",
            OidcError::CodeExchange(_) => "oidc_code_exchange",
            OidcError::IdToken(_) => "oidc_id_token",
            OidcError::UserInfo(_) => "oidc_userinfo",
        }
    }
}

fn provider_error_words(error: &str, description: Option<&str>) -> String {
    let what = match error {
        "access_denied" => "access was denied (the sign-in was cancelled or refused)",
        "login_required" | "interaction_required" | "account_selection_required" => {
            "the provider needs you to sign in there first"
        }
        "consent_required" => "the provider needs your consent first",
        "temporarily_unavailable" => "the provider is temporarily unavailable",
        "server_error" => "the provider had an internal error",
        "invalid_request"
        | "unauthorized_client"
        | "unsupported_response_type"
        | "invalid_scope"
        | "invalid_request_uri"
        | "request_not_supported" => {
            "the provider refused ward's request (check the provider settings)"
        }
        _ => "the provider refused the sign-in",
    };
    match description {
        Some(d) if !d.is_empty() => {
            format!("the sign-in provider did not sign you in: {what} ({error}: {d})")
        }
        _ => format!("the sign-in provider did not sign you in: {what} ({error})"),
    }
}

/// Provider-supplied text, cut to a length fit for a page, control characters dropped.
fn clip(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(MAX_SHOWN)
        .collect()
}

// ---------------------------------------------------------------------------
// openidconnect types for ward

/// Discovery fields beyond the core ones.
#[derive(Clone, Debug, Deserialize, Serialize)]
struct ExtraMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    end_session_endpoint: Option<EndSessionUrl>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    authorization_response_iss_parameter_supported: Option<bool>,
}
impl AdditionalProviderMetadata for ExtraMetadata {}

type Metadata = ProviderMetadata<
    ExtraMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// Every claim that is not a standard one (the groups claim among them).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
struct OtherClaims {
    #[serde(flatten)]
    rest: Map<String, Value>,
}
impl AdditionalClaims for OtherClaims {}

type IdToken = openidconnect::IdToken<
    OtherClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type IdTokenClaims = openidconnect::IdTokenClaims<OtherClaims, CoreGenderClaim>;
type UserInfoClaims = openidconnect::UserInfoClaims<OtherClaims, CoreGenderClaim>;
type Tokens = StandardTokenResponse<
    IdTokenFields<
        OtherClaims,
        EmptyExtraTokenFields,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >,
    CoreTokenType,
>;
type TokenError = StandardErrorResponse<CoreErrorResponseType>;
type OidcClient<HasUserInfo = EndpointNotSet> = Client<
    OtherClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    TokenError,
    Tokens,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
    HasUserInfo,
>;

// ---------------------------------------------------------------------------
// The HTTP client: hyper-util's pooled client with ward's rustls settings.

/// Why a request to the provider got no answer.
#[derive(Debug, thiserror::Error)]
#[error("{url}: {reason}")]
struct HttpError {
    url: String,
    reason: String,
}

#[derive(Clone)]
struct Http {
    client: HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Http {
    fn new(ca: Option<&std::path::Path>) -> Result<Http, OidcError> {
        let tls = crate::tls::client_config(ca).map_err(|e| OidcError::Config(e.to_string()))?;
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_nodelay(true);
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = HyperClient::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(4)
            .build(connector);
        Ok(Http { client })
    }

    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let url = request.uri().to_string();
        let fail = |reason: String| HttpError {
            url: url.clone(),
            reason,
        };
        let (parts, body) = request.into_parts();
        let request = http::Request::from_parts(parts, Full::new(Bytes::from(body)));
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| fail(error_chain(&e)))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| fail(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok(http::Response::from_parts(parts, body.to_vec()))
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(result) => result,
            Err(_) => Err(fail(format!(
                "no answer within {} seconds",
                REQUEST_TIMEOUT.as_secs()
            ))),
        }
    }
}

impl<'c> AsyncHttpClient<'c> for Http {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}

/// The causes of a hyper-util error, without its generic top line.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = Vec::new();
    let mut cur = e.source();
    while let Some(c) = cur {
        parts.push(c.to_string());
        cur = c.source();
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}

/// `https`, or `http` to a loopback address (tests, a provider on the same host).
fn check_url(what: &str, url: &openidconnect::url::Url) -> Result<(), OidcError> {
    use openidconnect::url::Host;
    match url.scheme() {
        "https" => Ok(()),
        "http" => {
            let loopback = match url.host() {
                Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                Some(Host::Ipv4(ip)) => ip.is_loopback(),
                Some(Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            if loopback {
                Ok(())
            } else {
                Err(OidcError::Config(format!(
                    "the {what} {url} uses plain http; only https is allowed (http only to this machine)"
                )))
            }
        }
        other => Err(OidcError::Config(format!(
            "the {what} {url} is not an https URL (scheme {other})"
        ))),
    }
}

fn discovery_error(e: DiscoveryError<HttpError>) -> OidcError {
    match e {
        DiscoveryError::Request(h) => OidcError::Unreachable(h.to_string()),
        DiscoveryError::Response(status, _, msg) => {
            OidcError::Discovery(format!("the provider answered {status}: {}", clip(&msg)))
        }
        DiscoveryError::Parse(e) => OidcError::Discovery(format!(
            "the provider's answer is not valid discovery data ({})",
            clip(&e.to_string())
        )),
        DiscoveryError::Validation(msg) => OidcError::Discovery(clip(&msg)),
        DiscoveryError::UrlParse(e) => OidcError::Config(format!("bad issuer URL: {e}")),
        other => OidcError::Discovery(clip(&other.to_string())),
    }
}

fn token_error(e: RequestTokenError<HttpError, TokenError>) -> OidcError {
    match e {
        RequestTokenError::Request(h) => OidcError::Unreachable(h.to_string()),
        RequestTokenError::ServerResponse(r) => {
            let mut msg = format!("the provider refused the code ({})", r.error().as_ref());
            if let Some(d) = r.error_description() {
                msg.push_str(": ");
                msg.push_str(&clip(d));
            }
            OidcError::CodeExchange(msg)
        }
        RequestTokenError::Parse(e, _) => OidcError::CodeExchange(format!(
            "the provider's token answer could not be read ({})",
            clip(&e.to_string())
        )),
        RequestTokenError::Other(s) => OidcError::CodeExchange(clip(&s)),
    }
}

fn claims_error(e: ClaimsVerificationError) -> OidcError {
    let words = match &e {
        ClaimsVerificationError::Expired(m) => {
            format!("the ID token is expired or not yet valid ({m})")
        }
        ClaimsVerificationError::InvalidAudience(m) => {
            format!("the ID token was issued for another application ({m})")
        }
        ClaimsVerificationError::InvalidIssuer(m) => {
            format!("the ID token comes from another issuer ({m})")
        }
        ClaimsVerificationError::InvalidNonce(m) => {
            format!("the ID token does not belong to this sign-in ({m})")
        }
        ClaimsVerificationError::SignatureVerification(s) => match s {
            SignatureVerificationError::NoMatchingKey => {
                "the ID token is signed with a key the provider does not publish".to_string()
            }
            other => format!("the ID token's signature is not valid ({other})"),
        },
        other => other.to_string(),
    };
    OidcError::IdToken(clip(&words))
}

fn userinfo_error(e: UserInfoError<HttpError>) -> OidcError {
    match e {
        UserInfoError::Request(h) => OidcError::Unreachable(h.to_string()),
        UserInfoError::ClaimsVerification(c) => {
            OidcError::UserInfo(clip(&format!("the answer failed a check ({c})")))
        }
        UserInfoError::Response(status, _, msg) => {
            OidcError::UserInfo(format!("the provider answered {status}: {}", clip(&msg)))
        }
        other => OidcError::UserInfo(clip(&other.to_string())),
    }
}

// ---------------------------------------------------------------------------
// The provider

/// A discovered provider with its keys; cheap to share (Arc inside).
#[derive(Clone)]
pub struct Provider {
    inner: Arc<Inner>,
}

struct Keys {
    /// Bumped on every refresh, so waiters see that someone else refreshed.
    generation: u64,
    set: CoreJsonWebKeySet,
}

struct Inner {
    cfg: ProviderConfig,
    issuer: IssuerUrl,
    client_id: ClientId,
    client_secret: ClientSecret,
    redirect: RedirectUrl,
    auth_url: AuthUrl,
    token_url: TokenUrl,
    userinfo_url: Option<UserInfoUrl>,
    end_session: Option<EndSessionUrl>,
    jwks_url: JsonWebKeySetUrl,
    auth_type: AuthType,
    algs: Vec<CoreJwsSigningAlgorithm>,
    /// The provider promises `iss` in its answers (RFC 9207), so it must be there.
    iss_required: bool,
    scopes: Vec<Scope>,
    keys: ArcSwap<Keys>,
    /// When the keys were last refreshed for an unknown key id.
    last_refresh: tokio::sync::Mutex<Option<Instant>>,
    http: Http,
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.inner.cfg.name)
            .field("issuer", &self.inner.cfg.issuer)
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// Reads the provider's discovery document and keys. The document's `issuer`
    /// must equal the configured one exactly, and all its endpoints must be https
    /// (or http on loopback).
    pub async fn discover(cfg: ProviderConfig) -> Result<Provider, OidcError> {
        let issuer = IssuerUrl::new(cfg.issuer.clone()).map_err(|e| {
            OidcError::Config(format!("the issuer {} is not a URL: {e}", cfg.issuer))
        })?;
        check_url("issuer", issuer.url())?;
        let redirect = RedirectUrl::new(cfg.redirect_url.clone()).map_err(|e| {
            OidcError::Config(format!(
                "the redirect URL {} is not a URL: {e}",
                cfg.redirect_url
            ))
        })?;
        if cfg.client_id.is_empty() {
            return Err(OidcError::Config("the client id is empty".into()));
        }
        let http = Http::new(cfg.ca.as_deref())?;
        let metadata = Metadata::discover_async(issuer.clone(), &http)
            .await
            .map_err(discovery_error)?;

        let auth_url = metadata.authorization_endpoint().clone();
        check_url("authorization endpoint", auth_url.url())?;
        let token_url = metadata
            .token_endpoint()
            .cloned()
            .ok_or_else(|| OidcError::Discovery("the provider has no token endpoint".into()))?;
        check_url("token endpoint", token_url.url())?;
        let jwks_url = metadata.jwks_uri().clone();
        check_url("key set (jwks_uri)", jwks_url.url())?;
        let userinfo_url = metadata.userinfo_endpoint().cloned();
        if let Some(u) = &userinfo_url {
            check_url("userinfo endpoint", u.url())?;
        }
        let extra = metadata.additional_metadata();
        let end_session = extra.end_session_endpoint.clone();
        if let Some(u) = &end_session {
            check_url("end-session endpoint", u.url())?;
        }
        let iss_required = extra
            .authorization_response_iss_parameter_supported
            .unwrap_or(false);

        let auth_type = match metadata.token_endpoint_auth_methods_supported() {
            None => AuthType::BasicAuth,
            Some(methods) if methods.contains(&CoreClientAuthMethod::ClientSecretBasic) => {
                AuthType::BasicAuth
            }
            Some(methods) if methods.contains(&CoreClientAuthMethod::ClientSecretPost) => {
                AuthType::RequestBody
            }
            Some(_) => {
                return Err(OidcError::Discovery(
                    "the provider accepts neither client_secret_basic nor client_secret_post at its token endpoint".into(),
                ));
            }
        };
        let advertised = metadata.id_token_signing_alg_values_supported();
        let algs: Vec<CoreJwsSigningAlgorithm> = ALLOWED_ALGS
            .iter()
            .filter(|a| advertised.contains(a))
            .cloned()
            .collect();
        if algs.is_empty() {
            return Err(OidcError::Discovery(
                "the provider signs ID tokens with no algorithm ward accepts (RS256, PS256, ES256, EdDSA, …)".into(),
            ));
        }

        let mut scopes = Vec::new();
        for s in &cfg.scopes {
            let s = s.trim();
            if s.is_empty() || s == "openid" || scopes.iter().any(|x: &Scope| x.as_str() == s) {
                continue;
            }
            scopes.push(Scope::new(s.to_string()));
        }

        let keys = Keys {
            generation: 0,
            set: metadata.jwks().clone(),
        };
        Ok(Provider {
            inner: Arc::new(Inner {
                issuer,
                client_id: ClientId::new(cfg.client_id.clone()),
                client_secret: ClientSecret::new(cfg.client_secret.clone()),
                redirect,
                auth_url,
                token_url,
                userinfo_url,
                end_session,
                jwks_url,
                auth_type,
                algs,
                iss_required,
                scopes,
                keys: ArcSwap::from_pointee(keys),
                last_refresh: tokio::sync::Mutex::new(None),
                http,
                cfg,
            }),
        })
    }

    /// The policy's name for this provider.
    pub fn name(&self) -> &str {
        &self.inner.cfg.name
    }

    /// The issuer URL as configured (and as the provider confirmed it).
    pub fn issuer(&self) -> &str {
        &self.inner.cfg.issuer
    }

    /// The configuration it was discovered with.
    pub fn config(&self) -> &ProviderConfig {
        &self.inner.cfg
    }

    /// Whether the provider advertises RP-initiated logout.
    pub fn supports_logout(&self) -> bool {
        self.inner.end_session.is_some()
    }

    fn client(&self) -> OidcClient {
        let i = &*self.inner;
        Client::new(
            i.client_id.clone(),
            i.issuer.clone(),
            JsonWebKeySet::new(Vec::new()),
        )
        .set_client_secret(i.client_secret.clone())
        .set_auth_uri(i.auth_url.clone())
        .set_token_uri(i.token_url.clone())
        .set_redirect_uri(i.redirect.clone())
        .set_auth_type(i.auth_type.clone())
    }

    /// The provider's authorization URL (code flow, PKCE S256, state, nonce,
    /// scopes) and what to keep until the callback. `now` is Unix seconds.
    pub fn begin(&self, return_to: &str, now: i64) -> Result<(String, Pending), OidcError> {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = self
            .client()
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scopes(self.inner.scopes.iter().cloned())
            .set_pkce_challenge(challenge)
            .url();
        let pending = Pending {
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            return_to: return_to.to_string(),
            provider: self.inner.cfg.name.clone(),
            created: now,
        };
        Ok((url.to_string(), pending))
    }

    /// Checks the callback: `state` equals `pending.state` (constant time), the
    /// issuer in `iss` (when sent) is this one, no `error` param; exchanges the
    /// code with the PKCE verifier and client secret; verifies the ID token
    /// (issuer, audience = client_id, expiry with clock skew, signature against
    /// the JWKS, nonce, `at_hash` when present) and returns the claims.
    ///
    /// On a signature from an unknown key id, refreshes the JWKS once
    /// (rate-limited: at most once per [`JWKS_REFRESH_INTERVAL`] per provider)
    /// and retries.
    pub async fn finish(
        &self,
        pending: &Pending,
        query: &HashMap<String, String>,
    ) -> Result<Verified, OidcError> {
        let i = &*self.inner;
        let state = query.get("state").map(String::as_str).unwrap_or("");
        if pending.state.is_empty()
            || !ct_eq(state, &pending.state)
            || pending.provider != i.cfg.name
        {
            return Err(OidcError::StateMismatch);
        }
        match query.get("iss") {
            Some(iss) if iss != i.issuer.as_str() => return Err(OidcError::IssuerMismatch),
            None if i.iss_required => return Err(OidcError::IssuerMismatch),
            _ => {}
        }
        if let Some(error) = query.get("error") {
            return Err(OidcError::ProviderError {
                error: clip(error),
                description: query.get("error_description").map(|d| clip(d)),
            });
        }
        let code = match query.get("code") {
            Some(c) if !c.is_empty() => c,
            _ => {
                return Err(OidcError::CodeExchange(
                    "the provider's answer has no code".into(),
                ));
            }
        };

        let tokens = self
            .client()
            .exchange_code(AuthorizationCode::new(code.clone()))
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
            .request_async(&i.http)
            .await
            .map_err(token_error)?;
        let id_token = tokens.id_token().ok_or_else(|| {
            OidcError::IdToken(
                "the provider sent no ID token (is the openid scope allowed?)".into(),
            )
        })?;
        let nonce = Nonce::new(pending.nonce.clone());
        let claims = self.verify(id_token, &nonce, tokens.access_token()).await?;

        let mut verified = Verified {
            subject: claims.subject().as_str().to_string(),
            email: claims.email().map(|e| e.as_str().to_string()),
            email_verified: claims.email_verified(),
            preferred_username: claims.preferred_username().map(|u| u.as_str().to_string()),
            name: claims
                .name()
                .and_then(|n| n.get(None))
                .map(|n| n.as_str().to_string()),
            groups: Vec::new(),
            amr: claims
                .auth_method_refs()
                .map(|v| v.iter().map(|a| a.as_str().to_string()).collect())
                .unwrap_or_default(),
            acr: claims.auth_context_ref().map(|a| a.as_str().to_string()),
            id_token: id_token.to_string(),
        };
        let groups = lookup(&claims.additional_claims().rest, &i.cfg.groups_claim);
        if let Some(g) = groups {
            verified.groups = strings(g);
        }

        // Claims the ID token left out may be at the userinfo endpoint (providers
        // that keep ID tokens small, or oidc-provider's conform mode).
        let missing = groups.is_none()
            || verified.email.is_none()
            || verified.name.is_none()
            || verified.preferred_username.is_none();
        if missing && let Some(url) = &i.userinfo_url {
            let info = self
                .userinfo(url, tokens.access_token(), claims.subject())
                .await?;
            if groups.is_none()
                && let Some(g) = lookup(&info.additional_claims().rest, &i.cfg.groups_claim)
            {
                verified.groups = strings(g);
            }
            if verified.email.is_none()
                && let Some(e) = info.email()
            {
                verified.email = Some(e.as_str().to_string());
                verified.email_verified = info.email_verified();
            }
            if verified.name.is_none() {
                verified.name = info
                    .name()
                    .and_then(|n| n.get(None))
                    .map(|n| n.as_str().to_string());
            }
            if verified.preferred_username.is_none() {
                verified.preferred_username =
                    info.preferred_username().map(|u| u.as_str().to_string());
            }
        }
        Ok(verified)
    }

    async fn userinfo(
        &self,
        url: &UserInfoUrl,
        access_token: &AccessToken,
        subject: &SubjectIdentifier,
    ) -> Result<UserInfoClaims, OidcError> {
        let i = &*self.inner;
        let keys = i.keys.load_full();
        let client: OidcClient<EndpointSet> =
            Client::new(i.client_id.clone(), i.issuer.clone(), keys.set.clone())
                .set_client_secret(i.client_secret.clone())
                .set_auth_uri(i.auth_url.clone())
                .set_token_uri(i.token_url.clone())
                .set_redirect_uri(i.redirect.clone())
                .set_auth_type(i.auth_type.clone())
                .set_user_info_url(url.clone());
        client
            .user_info(access_token.clone(), Some(subject.clone()))
            .request_async(&i.http)
            .await
            .map_err(userinfo_error)
    }

    /// Verifies with the keys at hand; on an unknown key id refreshes them (rate
    /// limited) and tries once more.
    async fn verify(
        &self,
        token: &IdToken,
        nonce: &Nonce,
        access_token: &AccessToken,
    ) -> Result<IdTokenClaims, OidcError> {
        let keys = self.inner.keys.load_full();
        match self.verify_with(&keys.set, token, nonce, access_token) {
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                if self.refresh_keys(keys.generation).await? {
                    let keys = self.inner.keys.load_full();
                    self.verify_with(&keys.set, token, nonce, access_token)
                        .map_err(claims_error)
                } else {
                    Err(OidcError::IdToken(format!(
                        "the ID token is signed with a key the provider does not publish (ward refreshed the provider's keys less than {} seconds ago)",
                        JWKS_REFRESH_INTERVAL.as_secs()
                    )))
                }
            }
            other => other.map_err(claims_error),
        }
    }

    fn verify_with(
        &self,
        keys: &CoreJsonWebKeySet,
        token: &IdToken,
        nonce: &Nonce,
        access_token: &AccessToken,
    ) -> Result<IdTokenClaims, ClaimsVerificationError> {
        let i = &*self.inner;
        let skew = i.cfg.clock_skew;
        let verifier: IdTokenVerifier<'_, CoreJsonWebKey> =
            IdTokenVerifier::new_public_client(i.client_id.clone(), i.issuer.clone(), keys.clone())
                .set_allowed_algs(i.algs.iter().cloned())
                // `exp` may be up to `skew` in the past.
                .set_time_fn(move || {
                    crate::clock::system_now()
                        .checked_sub(skew)
                        .unwrap_or(SystemTime::UNIX_EPOCH)
                        .into()
                })
                // `iat` may be up to `skew` in the future, not more.
                .set_issue_time_verifier_fn(move |iat| {
                    let iat: SystemTime = iat.into();
                    if iat > crate::clock::system_now() + skew {
                        Err("the ID token was issued in the future (check the clocks)".into())
                    } else {
                        Ok(())
                    }
                });
        let claims = token.claims(&verifier, nonce)?.clone();
        if let Some(expected) = claims.access_token_hash() {
            let alg = token
                .signing_alg()
                .map_err(ClaimsVerificationError::SignatureVerification)?;
            let key = token
                .signing_key(&verifier)
                .map_err(ClaimsVerificationError::SignatureVerification)?;
            let actual = AccessTokenHash::from_token(access_token, alg, key)
                .map_err(|e| ClaimsVerificationError::Other(format!("at_hash: {e}")))?;
            if !ct_eq(actual.as_str(), expected.as_str()) {
                return Err(ClaimsVerificationError::Other(
                    "the ID token does not match the access token (at_hash)".into(),
                ));
            }
        }
        Ok(claims)
    }

    /// Fetches the provider's keys again unless someone just did, or it was done
    /// less than [`JWKS_REFRESH_INTERVAL`] ago. True when there are newer keys
    /// than generation `seen`.
    async fn refresh_keys(&self, seen: u64) -> Result<bool, OidcError> {
        let i = &*self.inner;
        let mut last = i.last_refresh.lock().await;
        let current = i.keys.load();
        if current.generation != seen {
            return Ok(true);
        }
        if let Some(t) = *last
            && t.elapsed() < JWKS_REFRESH_INTERVAL
        {
            return Ok(false);
        }
        *last = Some(Instant::now());
        let set = JsonWebKeySet::fetch_async(&i.jwks_url, &i.http)
            .await
            .map_err(discovery_error)?;
        tracing::info!(provider = %i.cfg.name, keys = set.keys().len(), "refreshed the provider's signing keys");
        i.keys.store(Arc::new(Keys {
            generation: current.generation + 1,
            set,
        }));
        Ok(true)
    }

    /// RP-initiated logout URL if the provider advertises `end_session_endpoint`.
    pub fn logout_url(&self, id_token_hint: &str, post_logout_redirect: &str) -> Option<String> {
        let end = self.inner.end_session.clone()?;
        let mut req = LogoutRequest::from(end).set_client_id(self.inner.client_id.clone());
        if let Ok(token) = id_token_hint.parse::<IdToken>() {
            req = req.set_id_token_hint(&token);
        }
        if !post_logout_redirect.is_empty()
            && let Ok(url) = PostLogoutRedirectUrl::new(post_logout_redirect.to_string())
        {
            req = req.set_post_logout_redirect_uri(url);
        }
        Some(req.http_get_url().to_string())
    }
}

/// A claim by name; a name that is not a top-level claim but has dots is a path.
fn lookup<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(name) {
        return Some(v);
    }
    if !name.contains('.') {
        return None;
    }
    let mut parts = name.split('.');
    let mut cur = claims.get(parts.next()?)?;
    for p in parts {
        cur = cur.as_object()?.get(p)?;
    }
    Some(cur)
}

/// A claim's value as strings: an array of strings (numbers are written out,
/// other items ignored) or a single string.
fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items
            .iter()
            .filter_map(|x| match x {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect(),
        Value::String(s) => vec![s.clone()],
        _ => Vec::new(),
    }
}

// ---------------------------------------------------------------------------
// Pending sign-ins

/// The text at `url` (a provider's published metadata), over ward's HTTP client: `https`, or
/// `http` to this machine only; at most 1 MiB, within the usual time limits.
pub async fn fetch_text(url: &str) -> Result<String, OidcError> {
    let parsed = openidconnect::url::Url::parse(url)
        .map_err(|e| OidcError::Config(format!("bad address {url}: {e}")))?;
    check_url("metadata address", &parsed)?;
    let http = Http::new(None)?;
    let request = http::Request::get(url)
        .header(
            http::header::ACCEPT,
            "application/samlmetadata+xml, application/xml, text/xml",
        )
        .body(Vec::new())
        .map_err(|e| OidcError::Config(e.to_string()))?;
    let answer = http
        .send(request)
        .await
        .map_err(|e| OidcError::Unreachable(e.to_string()))?;
    if !answer.status().is_success() {
        return Err(OidcError::Discovery(format!(
            "{url} answered {}",
            answer.status()
        )));
    }
    String::from_utf8(answer.into_body())
        .map_err(|_| OidcError::Discovery(format!("{url} did not answer with text")))
}

/// Pending sign-ins, server side, forgotten after [`PENDING_TTL`]; `take`
/// removes (a state works once). Bounded in size, so a flood of started
/// sign-ins cannot exhaust memory.
pub struct PendingStore {
    cache: moka::sync::Cache<String, (Instant, Pending)>,
    ttl: Duration,
}

impl Default for PendingStore {
    fn default() -> Self {
        PendingStore::new()
    }
}

impl PendingStore {
    pub fn new() -> Self {
        PendingStore::with_ttl(PENDING_TTL)
    }

    /// A store that forgets after `ttl` (tests).
    pub fn with_ttl(ttl: Duration) -> Self {
        PendingStore {
            cache: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ttl)
                .build(),
            ttl,
        }
    }

    pub fn put(&self, p: Pending) {
        self.cache.insert(p.state.clone(), (Instant::now(), p));
    }

    /// The pending sign-in for `state`, removed; `None` if unknown, used or expired.
    pub fn take(&self, state: &str) -> Option<Pending> {
        if state.is_empty() {
            return None;
        }
        let (at, p) = self.cache.remove(state)?;
        (at.elapsed() < self.ttl).then_some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(state: &str) -> Pending {
        Pending {
            state: state.into(),
            nonce: "n".into(),
            pkce_verifier: "v".into(),
            return_to: "/".into(),
            provider: "idp".into(),
            created: 0,
        }
    }

    #[test]
    fn a_state_works_once() {
        let store = PendingStore::new();
        store.put(pending("abc"));
        assert!(store.take("abd").is_none());
        assert_eq!(store.take("abc").unwrap().state, "abc");
        assert!(store.take("abc").is_none());
        assert!(store.take("").is_none());
    }

    #[test]
    fn pending_sign_ins_expire() {
        let store = PendingStore::with_ttl(Duration::from_millis(50));
        store.put(pending("abc"));
        std::thread::sleep(Duration::from_millis(80));
        assert!(store.take("abc").is_none());
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let p = pending("the-state");
        let text = format!("{p:?}");
        assert!(!text.contains("the-state"), "{text}");
        let cfg = ProviderConfig {
            name: "idp".into(),
            issuer: "https://idp.example".into(),
            client_id: "ward".into(),
            client_secret: "hunter2".into(),
            scopes: vec![],
            redirect_url: "https://ehr.example/.ward/callback".into(),
            clock_skew: Duration::from_secs(60),
            groups_claim: "groups".into(),
            ca: None,
        };
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }

    #[test]
    fn groups_claims_in_their_common_shapes() {
        let claims: Map<String, Value> = serde_json::from_str(
            r#"{"groups":["a","b",7,{"x":1}],"role":"solo",
                "realm_access":{"roles":["r1"]},
                "https://example.com/groups":["ns"]}"#,
        )
        .unwrap();
        let get = |n: &str| lookup(&claims, n).map(strings);
        assert_eq!(get("groups").unwrap(), ["a", "b", "7"]);
        assert_eq!(get("role").unwrap(), ["solo"]);
        assert_eq!(get("realm_access.roles").unwrap(), ["r1"]);
        assert_eq!(get("https://example.com/groups").unwrap(), ["ns"]);
        assert!(get("missing").is_none());
        assert!(get("realm_access.missing").is_none());
    }

    #[test]
    fn plain_http_only_to_loopback() {
        let ok = |u: &str| check_url("issuer", &openidconnect::url::Url::parse(u).unwrap());
        assert!(ok("https://login.example.com").is_ok());
        assert!(ok("http://127.0.0.1:9000").is_ok());
        assert!(ok("http://localhost:9000").is_ok());
        assert!(ok("http://[::1]:9000").is_ok());
        assert!(ok("http://login.example.com").is_err());
        assert!(ok("http://10.0.0.1").is_err());
        assert!(ok("ftp://127.0.0.1").is_err());
    }

    #[test]
    fn provider_errors_read_as_words() {
        let e = OidcError::ProviderError {
            error: "access_denied".into(),
            description: Some("End-User aborted interaction".into()),
        };
        let text = e.to_string();
        assert!(text.contains("access was denied"), "{text}");
        assert!(text.contains("End-User aborted interaction"), "{text}");
        assert_eq!(e.code(), "oidc_provider_error");
        assert_eq!(clip(&"x\u{7}".repeat(1000)).len(), MAX_SHOWN);
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable_at_once() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let started = Instant::now();
        let err = Provider::discover(ProviderConfig {
            name: "idp".into(),
            issuer: format!("http://127.0.0.1:{port}"),
            client_id: "ward".into(),
            client_secret: "s".into(),
            scopes: vec![],
            redirect_url: "https://ehr.example/.ward/callback".into(),
            clock_skew: Duration::from_secs(60),
            groups_claim: "groups".into(),
            ca: None,
        })
        .await
        .unwrap_err();
        assert!(matches!(err, OidcError::Unreachable(_)), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn finish_is_send() {
        fn is_send<T: Send>(_: &T) {}
        fn check(p: &Provider, pending: &Pending, q: &HashMap<String, String>) {
            is_send(&p.finish(pending, q));
            is_send(&Provider::discover(p.config().clone()));
        }
        let _ = check;
    }
}
