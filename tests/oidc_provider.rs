//! ward's OpenID Connect client (`ward::auth::oidc`) against a real, certified
//! OpenID provider (`oidc-provider` from npm, tests/oidc/provider.mjs) on
//! loopback, over real HTTP: sign-in, claims, forged state, denied consent,
//! replayed code, a token for another audience, key rotation, provider down.

use crate::common::oidc::Idp;
use serde_json::json;
use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};
use ward::auth::oidc::{OidcError, Pending, PendingStore, Provider, Verified};

const REDIRECT: &str = "https://ehr.localhost:8443/.ward/callback";
const AFTER_LOGOUT: &str = "https://ehr.localhost:8443/";

fn clients() -> String {
    json!([
        {
            "client_id": "ward",
            "client_secret": "ward-secret",
            "redirect_uris": [REDIRECT],
            "post_logout_redirect_uris": [AFTER_LOGOUT],
        },
        {
            "client_id": "other",
            "client_secret": "other-secret",
            "redirect_uris": [REDIRECT],
        }
    ])
    .to_string()
}

fn accounts() -> String {
    json!({
        "alice": {
            "email": "alice@riverside.example",
            "email_verified": true,
            "name": "Alice Jones",
            "preferred_username": "ajones",
            "groups": ["clinicians", "staff"],
            "amr": ["pwd", "otp"],
            "acr": "urn:riverside:mfa",
        },
        "bob": {
            "email": "bob@acme-billing.example",
            "email_verified": false,
            "name": "Bob Smith",
            "groups": ["vendor-billers"],
        }
    })
    .to_string()
}

/// Every test is bounded: a hung provider fails the test instead of hanging CI.
async fn bounded<F: Future<Output = ()>>(test: F) {
    tokio::time::timeout(Duration::from_secs(120), test)
        .await
        .expect("the test did not finish within 120 s");
}

async fn discover(idp: &Idp, client_id: &str, secret: &str) -> Provider {
    Provider::discover(idp.provider_config(client_id, secret, REDIRECT))
        .await
        .unwrap_or_else(|e| panic!("discovery at {}: {e}", idp.issuer))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn query_of(url: &str) -> HashMap<String, String> {
    reqwest::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// begin → sign in at the provider as `account` → the redirect back (not followed).
async fn sign_in(
    idp: &Idp,
    provider: &Provider,
    account: &str,
) -> (Pending, HashMap<String, String>) {
    let (url, pending) = provider.begin("/chart/42", now()).unwrap();
    let back = idp.login(&Idp::client(), &url, account).await;
    assert!(back.starts_with(REDIRECT), "redirected to {back}");
    (pending, query_of(&back))
}

fn kid_of(id_token: &str) -> String {
    let header = id_token.split('.').next().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&base64_url_decode(header)).unwrap();
    v["kid"].as_str().unwrap().to_string()
}

/// Base64url without padding (JOSE), decoded.
fn base64_url_decode(s: &str) -> Vec<u8> {
    data_encoding::BASE64URL_NOPAD.decode(s.as_bytes()).unwrap()
}

#[tokio::test]
async fn sign_in_returns_what_the_provider_vouched_for() {
    bounded(async {
        let idp = Idp::start(&clients(), &accounts());
        let provider = discover(&idp, "ward", "ward-secret").await;
        assert_eq!(provider.name(), "test-idp");
        assert!(provider.supports_logout());

        let (url, pending) = provider.begin("/chart/42", now()).unwrap();
        let q = query_of(&url);
        assert!(url.starts_with(&idp.url("/auth?")), "{url}");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "ward");
        assert_eq!(q["redirect_uri"], REDIRECT);
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["state"], pending.state);
        assert_eq!(q["nonce"], pending.nonce);
        let scopes: Vec<&str> = q["scope"].split(' ').collect();
        for s in ["openid", "email", "profile", "groups"] {
            assert!(scopes.contains(&s), "{scopes:?}");
        }
        assert!(!q.contains_key("code_verifier"));
        assert_eq!(pending.return_to, "/chart/42");
        assert_eq!(pending.provider, "test-idp");

        let back = idp.login(&Idp::client(), &url, "alice").await;
        assert!(back.starts_with(REDIRECT), "{back}");
        let query = query_of(&back);
        assert_eq!(query["state"], pending.state);
        assert_eq!(query["iss"], idp.issuer);

        // ward keeps the pending sign-in by state, and a state works once.
        let store = PendingStore::new();
        store.put(pending);
        let pending = store.take(&query["state"]).expect("pending sign-in");
        assert!(store.take(&query["state"]).is_none());

        let v: Verified = provider.finish(&pending, &query).await.unwrap();
        assert_eq!(v.subject, "alice");
        assert_eq!(v.groups, ["clinicians", "staff"]);
        assert_eq!(v.amr, ["pwd", "otp"]);
        assert_eq!(v.acr.as_deref(), Some("urn:riverside:mfa"));
        assert_eq!(v.email.as_deref(), Some("alice@riverside.example"));
        assert_eq!(v.email_verified, Some(true));
        assert_eq!(v.name.as_deref(), Some("Alice Jones"));
        assert_eq!(v.preferred_username.as_deref(), Some("ajones"));
        assert_eq!(v.id_token.split('.').count(), 3);
        assert!(
            !format!("{v:?}").contains(&v.id_token),
            "Debug shows the ID token"
        );
    })
    .await;
}

#[tokio::test]
async fn missing_amr_gives_an_empty_list() {
    bounded(async {
        let idp = Idp::start(&clients(), &accounts());
        let provider = discover(&idp, "ward", "ward-secret").await;
        let (pending, query) = sign_in(&idp, &provider, "bob").await;
        let v = provider.finish(&pending, &query).await.unwrap();
        assert_eq!(v.subject, "bob");
        assert_eq!(v.groups, ["vendor-billers"]);
        assert!(v.amr.is_empty(), "{:?}", v.amr);
        assert_eq!(v.acr, None);
        assert_eq!(v.email_verified, Some(false));
    })
    .await;
}

#[tokio::test]
async fn a_forged_state_or_issuer_is_refused_before_the_code_is_used() {
    bounded(async {
        let idp = Idp::start(&clients(), &accounts());
        let provider = discover(&idp, "ward", "ward-secret").await;
        let (pending, query) = sign_in(&idp, &provider, "alice").await;

        let mut forged = query.clone();
        forged.insert("state".into(), format!("{}x", pending.state));
        assert_eq!(
            provider.finish(&pending, &forged).await.unwrap_err(),
            OidcError::StateMismatch
        );
        let mut missing = query.clone();
        missing.remove("state");
        assert_eq!(
            provider.finish(&pending, &missing).await.unwrap_err(),
            OidcError::StateMismatch
        );
        // Another sign-in's pending record does not fit this answer.
        let (_, other) = provider.begin("/", now()).unwrap();
        assert_eq!(
            provider.finish(&other, &query).await.unwrap_err(),
            OidcError::StateMismatch
        );
        // An answer naming another issuer (a mix-up attack) is refused.
        let mut mixed = query.clone();
        mixed.insert("iss".into(), "https://evil.example".into());
        assert_eq!(
            provider.finish(&pending, &mixed).await.unwrap_err(),
            OidcError::IssuerMismatch
        );
        let mut no_iss = query.clone();
        no_iss.remove("iss");
        assert_eq!(
            provider.finish(&pending, &no_iss).await.unwrap_err(),
            OidcError::IssuerMismatch,
            "the provider promises iss in its answers, so an answer without it is refused"
        );

        // None of that spent the code: the genuine answer still works.
        let v = provider.finish(&pending, &query).await.unwrap();
        assert_eq!(v.subject, "alice");
    })
    .await;
}

#[tokio::test]
async fn denied_consent_is_a_provider_error() {
    bounded(async {
        let idp = Idp::start(&clients(), &accounts());
        let provider = discover(&idp, "ward", "ward-secret").await;
        let (url, pending) = provider.begin("/", now()).unwrap();
        let back = idp.deny(&Idp::client(), &url).await;
        assert!(back.starts_with(REDIRECT), "{back}");
        let query = query_of(&back);
        assert_eq!(query["error"], "access_denied");
        let err = provider.finish(&pending, &query).await.unwrap_err();
        match &err {
            OidcError::ProviderError { error, description } => {
                assert_eq!(error, "access_denied");
                assert_eq!(description.as_deref(), Some("End-User aborted interaction"));
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("access was denied"), "{err}");

        // A forged error without the right state is a state mismatch, not a provider error.
        let mut forged = query.clone();
        forged.insert("state".into(), "guess".into());
        assert_eq!(
            provider.finish(&pending, &forged).await.unwrap_err(),
            OidcError::StateMismatch
        );
    })
    .await;
}

#[tokio::test]
async fn a_replayed_code_is_refused() {
    bounded(async {
        let idp = Idp::start(&clients(), &accounts());
        let provider = discover(&idp, "ward", "ward-secret").await;
        let (pending, query) = sign_in(&idp, &provider, "alice").await;
        provider.finish(&pending, &query).await.unwrap();
        let err = provider.finish(&pending, &query).await.unwrap_err();
        assert!(
            matches!(&err, OidcError::CodeExchange(m) if m.contains("invalid_grant")),
            "{err:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_wrong_client_secret_fails_the_code_exchange() {
    bounded(async {
        let idp = Idp::start(&clients(), &accounts());
        let provider = discover(&idp, "ward", "not-the-secret").await;
        let (pending, query) = sign_in(&idp, &provider, "alice").await;
        let err = provider.finish(&pending, &query).await.unwrap_err();
        assert!(
            matches!(&err, OidcError::CodeExchange(m) if m.contains("invalid_client")),
            "{err:?}"
        );
    })
    .await;
}

/// A genuine ID token, signed by the provider, carrying ward's nonce — but
/// issued to another client. The provider is told (TOKEN_AUTH_AS) to treat
/// ward's client ("ward-aud") as "other" at its token endpoint, and the person
/// signs in to "other" (client_id swapped in ward's authorization URL, with
/// ward's state, nonce and PKCE challenge). Only the audience is wrong.
#[tokio::test]
async fn a_token_for_another_audience_is_refused() {
    bounded(async {
        let idp = Idp::start_with(
            &clients(),
            &accounts(),
            &[("TOKEN_AUTH_AS", r#"{"ward-aud":"other"}"#)],
        );
        let provider = discover(&idp, "ward-aud", "unused").await;
        let (url, pending) = provider.begin("/", now()).unwrap();
        assert!(url.contains("client_id=ward-aud"), "{url}");
        let url = url.replace("client_id=ward-aud", "client_id=other");
        let back = idp.login(&Idp::client(), &url, "alice").await;
        let err = provider
            .finish(&pending, &query_of(&back))
            .await
            .unwrap_err();
        match &err {
            OidcError::IdToken(m) => {
                assert!(m.contains("another application"), "{m}");
                assert!(m.contains("`other`"), "{m}");
            }
            other => panic!("expected an ID token error, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn rotated_keys_are_fetched_once_per_minute() {
    bounded(async {
        let idp = Idp::start(&clients(), &accounts());
        let provider = discover(&idp, "ward", "ward-secret").await;
        let first_kid = idp.current_kid().await;
        let (pending, query) = sign_in(&idp, &provider, "alice").await;
        let v = provider.finish(&pending, &query).await.unwrap();
        assert_eq!(kid_of(&v.id_token), first_kid);

        // The provider now signs with a key ward has not seen: ward refreshes
        // the JWKS on the unknown kid and the sign-in verifies.
        let new_kid = idp.rotate_keys().await;
        assert_ne!(new_kid, first_kid);
        let (pending, query) = sign_in(&idp, &provider, "alice").await;
        let v = provider.finish(&pending, &query).await.unwrap();
        assert_eq!(kid_of(&v.id_token), new_kid);
        assert_eq!(v.subject, "alice");

        // Another rotation within the minute: ward does not fetch again
        // (a flood of tokens with made-up kids cannot make it hammer the provider).
        let newer_kid = idp.rotate_keys().await;
        let (pending, query) = sign_in(&idp, &provider, "alice").await;
        let err = provider.finish(&pending, &query).await.unwrap_err();
        assert!(
            matches!(&err, OidcError::IdToken(m) if m.contains("does not publish")),
            "{err:?}"
        );
        // A fresh discovery (as on a policy reload) has the new keys.
        let provider = discover(&idp, "ward", "ward-secret").await;
        let (pending, query) = sign_in(&idp, &provider, "alice").await;
        let v = provider.finish(&pending, &query).await.unwrap();
        assert_eq!(kid_of(&v.id_token), newer_kid);
    })
    .await;
}

#[tokio::test]
async fn groups_come_from_userinfo_when_the_id_token_lacks_them() {
    bounded(async {
        // oidc-provider's conform mode: the ID token of a code flow carries sub,
        // amr, acr; email, name and groups are at the userinfo endpoint only.
        let idp = Idp::start_with(&clients(), &accounts(), &[("CLAIMS_IN_ID_TOKEN", "0")]);
        let provider = discover(&idp, "ward", "ward-secret").await;
        let (pending, query) = sign_in(&idp, &provider, "alice").await;
        let v = provider.finish(&pending, &query).await.unwrap();
        let payload = v.id_token.split('.').nth(1).unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&base64_url_decode(payload)).unwrap();
        assert!(claims.get("groups").is_none(), "{claims}");
        assert_eq!(v.groups, ["clinicians", "staff"]);
        assert_eq!(v.email.as_deref(), Some("alice@riverside.example"));
        assert_eq!(v.name.as_deref(), Some("Alice Jones"));
        assert_eq!(v.amr, ["pwd", "otp"]);
    })
    .await;
}

#[tokio::test]
async fn logout_url_is_accepted_by_the_provider() {
    bounded(async {
        let idp = Idp::start(&clients(), &accounts());
        let provider = discover(&idp, "ward", "ward-secret").await;
        let (pending, query) = sign_in(&idp, &provider, "alice").await;
        let v = provider.finish(&pending, &query).await.unwrap();
        let url = provider.logout_url(&v.id_token, AFTER_LOGOUT).unwrap();
        assert!(url.starts_with(&idp.url("/session/end?")), "{url}");
        let q = query_of(&url);
        assert_eq!(q["id_token_hint"], v.id_token);
        assert_eq!(q["post_logout_redirect_uri"], AFTER_LOGOUT);
        assert_eq!(q["client_id"], "ward");
        // The provider checks the hint and the redirect; a bad one gets a 400.
        let resp = Idp::client().get(&url).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
        let bad = provider
            .logout_url(&v.id_token, "https://evil.example/")
            .unwrap();
        let resp = Idp::client().get(&bad).send().await.unwrap();
        assert_eq!(resp.status(), 400);
    })
    .await;
}

#[tokio::test]
async fn a_provider_that_is_down_is_unreachable_quickly() {
    bounded(async {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut cfg = {
            let idp = Idp::start(&clients(), &accounts());
            idp.provider_config("ward", "ward-secret", REDIRECT)
        };
        cfg.issuer = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let err = Provider::discover(cfg).await.unwrap_err();
        assert!(matches!(err, OidcError::Unreachable(_)), "{err:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert!(err.to_string().contains("could not be reached"), "{err}");

        // The provider goes down between sending someone there and their return.
        let mut idp = Idp::start(&clients(), &accounts());
        let provider = discover(&idp, "ward", "ward-secret").await;
        let (pending, query) = sign_in(&idp, &provider, "alice").await;
        idp.stop();
        let started = Instant::now();
        let err = provider.finish(&pending, &query).await.unwrap_err();
        assert!(matches!(err, OidcError::Unreachable(_)), "{err:?}");
        assert!(
            started.elapsed() < Duration::from_secs(12),
            "{:?}",
            started.elapsed()
        );
    })
    .await;
}

#[tokio::test]
async fn discovery_insists_on_the_exact_issuer_and_https() {
    bounded(async {
        let idp = Idp::start(&clients(), &accounts());
        // The same server under another name: its discovery document names
        // https://127.0.0.1:PORT, not this, so it is not trusted.
        let mut cfg = idp.provider_config("ward", "ward-secret", REDIRECT);
        cfg.issuer = idp.issuer.replace("127.0.0.1", "localhost");
        let err = Provider::discover(cfg).await.unwrap_err();
        assert!(matches!(err, OidcError::Discovery(_)), "{err:?}");

        // The provider's certificate is trusted only through `ca`: without it, no discovery.
        let mut cfg = idp.provider_config("ward", "ward-secret", REDIRECT);
        cfg.ca = None;
        let err = Provider::discover(cfg).await.unwrap_err();
        assert!(!matches!(err, OidcError::Config(_)), "{err:?}");

        let mut cfg = idp.provider_config("ward", "ward-secret", REDIRECT);
        cfg.issuer = "http://login.example.com".into();
        let err = Provider::discover(cfg).await.unwrap_err();
        assert!(matches!(err, OidcError::Config(_)), "{err:?}");
    })
    .await;
}
