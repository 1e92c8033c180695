//! End to end: SAML 2.0 single sign-on through a real identity provider (Debian's
//! SimpleSAMLphp under PHP's built-in server on loopback), ward's rules applied to what it
//! says, single logout, and every forged or stale answer refused, each case on its own.

use crate::common::browser::free_port;
use crate::common::saml::{IdpBrowser, KnownSp, Person, SamlIdp, decode, encode};
use crate::common::*;
use std::io::{Read, Write};
use std::time::Duration;

/// Another service provider registered at the same IdP (with ward's answer address).
const EVIL_SP: &str = "https://evil.example/sp";
/// The class the main IdP says its people signed in with (a second factor, in ward's list).
const TWO_FACTOR: &str = "urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract";

struct Setup {
    /// The practice's IdP: long-lived assertions, a second factor.
    main: SamlIdp,
    /// An IdP whose assertions live 2 s and show no second factor.
    short: SamlIdp,
    ward: Ward,
    _ehr: Ehr,
    base: String,
    /// ward's signing certificate (base64 DER), from its metadata.
    ward_cert: String,
}

/// The SPs the main IdP knows: ward (its requests signed with `cert`), and another.
fn main_sps<'a>(base: &'a [String; 3], cert: Option<&'a str>) -> [KnownSp<'a>; 2] {
    [
        KnownSp {
            entity_id: &base[0],
            acs: &base[1],
            slo: &base[2],
            cert,
            encrypt: false,
        },
        KnownSp {
            entity_id: EVIL_SP,
            acs: &base[1],
            slo: &base[2],
            cert: None,
            encrypt: false,
        },
    ]
}

/// The text between `from` and `to` in `s`.
fn between(s: &str, from: &str, to: &str) -> String {
    let a = s.find(from).unwrap_or_else(|| panic!("no {from} in {s}")) + from.len();
    s[a..a + s[a..].find(to).unwrap()].to_string()
}

async fn setup() -> Setup {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let port = free_port();
    let base = format!("https://ehr.localhost:{port}");
    let entity = format!("{base}/.ward/saml/metadata");
    let acs = format!("{base}/.ward/saml/acs");
    let slo = format!("{base}/.ward/saml/logout");
    let addresses = [entity.clone(), acs.clone(), slo.clone()];
    let main = SamlIdp::start(
        &[
            Person {
                user: "alice",
                mail: "alice@riverside.example",
                groups: &["clinicians"],
            },
            Person {
                user: "carol",
                mail: "carol@riverside.example",
                groups: &["clinicians"],
            },
            Person {
                user: "bob",
                mail: "bob@riverside.example",
                groups: &["nothing-mapped"],
            },
            // An account at the IdP whose address a careless reader would cut to dana's.
            Person {
                user: "mallory",
                mail: "dana@riverside.example.evil",
                groups: &["clinicians"],
            },
        ],
        &main_sps(&addresses, None),
        300,
        Some(TWO_FACTOR),
    );
    let short = SamlIdp::start(
        &[Person {
            user: "dana",
            mail: "dana@riverside.example",
            groups: &["clinicians"],
        }],
        &[KnownSp {
            entity_id: &entity,
            acs: &acs,
            slo: &slo,
            cert: None,
            encrypt: false,
        }],
        2,
        None,
    );
    let ehr = Ehr::start();
    let site = Site::new();
    let main_md = main.write_metadata(&site.path("main-idp.xml"));
    let short_md = short.write_metadata(&site.path("short-idp.xml"));
    let policy = format!(
        "practice = \"Test Clinic\"\n{server}listen = \"127.0.0.1:{port}\"\npublic_url = \"{base}\"\n\
         [login]\nmfa = \"required\"\nsaml_encrypted_assertions = true\n\
         [[login.saml]]\nname = \"riverside\"\nlabel = \"Sign in with Riverside SSO\"\nidp_metadata = \"{main_md}\"\n\
         groups_attribute = \"groups\"\nrole_map = {{ clinicians = [\"clinician\"] }}\n\
         allowed_domains = [\"riverside.example\"]\naccounts = \"create\"\nwithout_mfa = \"ward-totp\"\n\
         [[login.saml]]\nname = \"short\"\nidp_metadata = \"{short_md}\"\nclock_skew = \"1s\"\n\
         role_map = {{ clinicians = [\"clinician\"] }}\nwithout_mfa = \"ward-totp\"\n\
         [[login.saml]]\nname = \"byurl\"\nidp_metadata = \"{main_url}/saml2/idp/metadata.php\"\naccounts = \"create\"\n\
         role_map = {{ clinicians = [\"clinician\"] }}\n\
         {tail}",
        tail = presets::sso_clinic(&ehr.url()),
        server = server_section(&site).replace("listen = \"127.0.0.1:0\"\n", ""),
        main_md = main_md.display(),
        short_md = short_md.display(),
        main_url = main.base,
    );
    std::fs::write(site.path("ward.toml"), policy).unwrap();
    let config = site.path("ward.toml");
    let ward = Ward::start_in(site, config);
    // dana has a ward account with ward's own authenticator.
    enrolled_user(&ward.site, "dana", &["clinician"], PW, None, None);
    tokio::time::sleep(Duration::from_millis(700)).await;
    // ward made its signing key on first start, readable by ward alone; the main IdP now
    // takes only requests signed with it (the short one takes them unchecked, as IdPs that do
    // not ask do).
    let key = ward.site.path("state/saml-signing.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key)
            .unwrap_or_else(|e| panic!("no signing key made at start ({e})"))
            .permissions(),
    );
    assert_eq!(mode & 0o077, 0, "the signing key is readable by others");
    let md = Browser::new(&ward).get("/.ward/saml/metadata").await;
    let md = md.text().await.unwrap();
    let ward_cert = between(&md, "<ds:X509Certificate>", "</ds:X509Certificate>");
    main.set_sps(&main_sps(&addresses, Some(&ward_cert)));
    Setup {
        main,
        short,
        ward,
        _ehr: ehr,
        base,
        ward_cert,
    }
}

/// Starts a SAML sign-in with `provider` in `b`; returns the IdP address ward sends to.
async fn start(b: &Browser, provider: &str) -> String {
    presets::start_sso(b, provider, "Sign in with Riverside SSO").await
}

/// A signed answer from `idp` for `user`, for a sign-in started in `b`:
/// `(SAMLResponse, RelayState)`, not yet posted.
async fn answer(
    s: &Setup,
    idp: &SamlIdp,
    at: &IdpBrowser,
    b: &Browser,
    user: &str,
) -> (String, String) {
    let provider = if idp.base == s.main.base {
        "riverside"
    } else {
        "short"
    };
    let url = start(b, provider).await;
    assert!(url.starts_with(&idp.base), "{url}");
    let (action, response, relay) = at.login(&url, user).await;
    assert_eq!(action, format!("{}/.ward/saml/acs", s.base));
    (response, relay)
}

/// The IdP's page posting `response` to ward (a form on the IdP's site).
async fn post(b: &Browser, idp: &SamlIdp, response: &str, relay: &str) -> reqwest::Response {
    b.post_from(
        &idp.base,
        "/.ward/saml/acs",
        &[("SAMLResponse", response), ("RelayState", relay)],
    )
    .await
}

/// Which user the upstream sees for `b`, if any.
async fn upstream_user(b: &Browser) -> Option<String> {
    let r = b.get("/debug/headers").await;
    if r.status() != 200 {
        return None;
    }
    let j: serde_json::Value = r.json().await.unwrap();
    seen_headers(&j)
        .into_iter()
        .find(|(n, _)| n == "x-ward-user")
        .map(|(_, v)| v)
}

/// Refused with 400 and words containing `why`; nobody signed in.
async fn assert_refused(b: &Browser, r: reqwest::Response, why: &str) {
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, 400, "{text}");
    assert!(text.contains(why), "expected '{why}' in: {text}");
    assert_eq!(upstream_user(b).await, None);
}

fn inflate(b64: &str) -> String {
    let raw = data_encoding::BASE64.decode(b64.as_bytes()).unwrap();
    let mut out = String::new();
    flate2::read::DeflateDecoder::new(&raw[..])
        .read_to_string(&mut out)
        .unwrap();
    out
}

fn deflate(xml: &str) -> String {
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(xml.as_bytes()).unwrap();
    data_encoding::BASE64.encode(&enc.finish().unwrap())
}

fn query(url: &str, name: &str) -> String {
    let u = reqwest::Url::parse(url).unwrap();
    u.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.to_string())
        .unwrap_or_else(|| panic!("no {name} in {url}"))
}

/// `xml` without its `<ds:Signature>` elements.
fn strip_signatures(xml: &str) -> String {
    let mut out = xml.to_string();
    while let Some(a) = out.find("<ds:Signature") {
        let end = out[a..].find("</ds:Signature>").unwrap() + a + "</ds:Signature>".len();
        out.replace_range(a..end, "");
    }
    out
}

/// The `<saml:Assertion …>…</saml:Assertion>` element of a response.
fn assertion_of(xml: &str) -> (usize, usize) {
    let a = xml.find("<saml:Assertion").expect("an assertion");
    let end = xml.find("</saml:Assertion>").unwrap() + "</saml:Assertion>".len();
    (a, end)
}

#[tokio::test(flavor = "multi_thread")]
async fn signs_in_maps_attributes_to_roles_and_logs_out_at_the_idp() {
    let s = setup().await;
    // ward's metadata, for the IdP's administrator.
    let md = Browser::new(&s.ward).get("/.ward/saml/metadata").await;
    assert_eq!(md.status(), 200);
    let md = md.text().await.unwrap();
    assert!(
        md.contains(&format!("entityID=\"{}/.ward/saml/metadata\"", s.base)),
        "{md}"
    );
    assert!(
        md.contains(&format!("Location=\"{}/.ward/saml/acs\"", s.base)),
        "{md}"
    );
    assert!(md.contains("AuthnRequestsSigned=\"true\""), "{md}");
    assert!(md.contains("<md:KeyDescriptor use=\"signing\">"), "{md}");
    assert!(!s.ward_cert.is_empty());

    // alice: clinicians → clinician; the IdP's two-factor class is MFA evidence.
    let b = Browser::new(&s.ward);
    let at = IdpBrowser::default();
    let (resp, relay) = answer(&s, &s.main, &at, &b, "alice").await;
    let r = post(&b, &s.main, &resp, &relay).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    assert_eq!(r.headers()["location"], "/patients/1001/chart");
    presets::assert_upstream_identity(&b, "alice", "clinician").await;
    // ward's rules still apply: no billing for a clinician.
    assert_eq!(b.get("/billing").await.status(), 403);

    // bob: his group maps to nothing.
    let b2 = Browser::new(&s.ward);
    let (resp, relay) = answer(&s, &s.main, &IdpBrowser::default(), &b2, "bob").await;
    let r = post(&b2, &s.main, &resp, &relay).await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("give you no access"));

    // Single logout: ward ends its session, then sends alice to the IdP, which ends its own
    // and sends her back to ward.
    let page = b.get("/.ward/logout").await.text().await.unwrap();
    let csrf = input_value(&page, "csrf");
    let r = b.post("/.ward/logout", &[("csrf", &csrf)]).await;
    assert_eq!(r.status(), 303);
    let to_idp = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        to_idp.starts_with(&format!(
            "{}/saml2/idp/SingleLogoutService.php?SAMLRequest=",
            s.main.base
        )),
        "{to_idp}"
    );
    // Signed (the IdP checks it: validate.logout).
    assert!(
        to_idp.contains(
            "&SigAlg=http%3A%2F%2Fwww.w3.org%2F2001%2F04%2Fxmldsig-more%23rsa-sha256&Signature="
        ),
        "{to_idp}"
    );
    assert!(
        upstream_user(&b).await.is_none(),
        "ward's session ended first"
    );
    let back = at.logout(&s.main.base, &to_idp).await;
    assert!(
        back.starts_with(&format!("{}/.ward/saml/logout?", s.base)),
        "{back}"
    );
    let r = b.get(&back).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/.ward/logged-out");
    // The IdP asks for the password again.
    assert!(
        at.shows_login_form(&start(&Browser::new(&s.ward), "riverside").await)
            .await
    );

    tokio::time::sleep(Duration::from_millis(300)).await;
    let trail = audit_text(&s.ward.site);
    for event in [
        "sso-started",
        "sso-account-created",
        "sso-refused",
        "logout",
    ] {
        assert!(trail.contains(event), "no {event} in the audit trail");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_idps_second_factor_ward_asks_for_its_own_code() {
    let s = setup().await;
    let b = Browser::new(&s.ward);
    let (resp, relay) = answer(&s, &s.short, &IdpBrowser::default(), &b, "dana").await;
    let r = post(&b, &s.short, &resp, &relay).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    assert_eq!(r.headers()["location"], "/.ward/mfa");
    assert_eq!(upstream_user(&b).await, None, "not in before the code");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_nameid_or_attribute_is_refused() {
    let s = setup().await;
    // The NameID (and address) changed to another person's after signing.
    let b = Browser::new(&s.ward);
    let (resp, relay) = answer(&s, &s.main, &IdpBrowser::default(), &b, "alice").await;
    let xml = decode(&resp);
    assert!(xml.contains("alice@riverside.example"));
    let forged = xml.replace("alice@riverside.example", "dana@riverside.example");
    let r = post(&b, &s.main, &encode(&forged), &relay).await;
    assert_refused(&b, r, "must be signed").await;

    // A group attribute changed after signing.
    let b = Browser::new(&s.ward);
    let (resp, relay) = answer(&s, &s.main, &IdpBrowser::default(), &b, "bob").await;
    let xml = decode(&resp);
    assert!(xml.contains(">nothing-mapped<"));
    let forged = xml.replace(">nothing-mapped<", ">clinicians<");
    let r = post(&b, &s.main, &encode(&forged), &relay).await;
    assert_refused(&b, r, "must be signed").await;

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(audit_text(&s.ward.site).contains("sso-failed"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unsigned_response_is_refused() {
    let s = setup().await;
    let b = Browser::new(&s.ward);
    let (resp, relay) = answer(&s, &s.main, &IdpBrowser::default(), &b, "alice").await;
    let xml = decode(&resp);
    let unsigned = strip_signatures(&xml);
    assert!(!unsigned.contains("SignatureValue") && unsigned.contains("alice@riverside.example"));
    let r = post(&b, &s.main, &encode(&unsigned), &relay).await;
    assert_refused(&b, r, "must be signed").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replayed_response_is_refused() {
    let s = setup().await;
    let b = Browser::new(&s.ward);
    let (resp, relay) = answer(&s, &s.main, &IdpBrowser::default(), &b, "alice").await;
    assert_eq!(post(&b, &s.main, &resp, &relay).await.status(), 303);
    // The same post again, with the RelayState cookie still in place.
    let again = Browser::new(&s.ward);
    again.set_cookie("__Host-ward-saml", &relay);
    let r = post(&again, &s.main, &resp, &relay).await;
    assert_refused(&again, r, "could not be matched").await;
    // The same answer for a sign-in started anew (another RelayState and request ID).
    let third = Browser::new(&s.ward);
    let url = start(&third, "riverside").await;
    let fresh_relay = query(&url, "RelayState");
    let r = post(&third, &s.main, &resp, &fresh_relay).await;
    assert_refused(&third, r, "InResponseTo").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_assertion_is_refused() {
    let s = setup().await;
    let b = Browser::new(&s.ward);
    let (resp, relay) = answer(&s, &s.short, &IdpBrowser::default(), &b, "dana").await;
    // The short IdP's assertions live 2 s; ward allows that IdP 1 s of clock skew.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let r = post(&b, &s.short, &resp, &relay).await;
    assert_refused(&b, r, "expired").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_assertion_for_another_service_provider_is_refused() {
    let s = setup().await;
    // Another SP at the same IdP asks for a sign-in that answers ward's request (its ID and
    // RelayState), as a malicious SP that saw ward's redirect could.
    let b = Browser::new(&s.ward);
    let url = start(&b, "riverside").await;
    let relay = query(&url, "RelayState");
    let request = inflate(&query(&url, "SAMLRequest"));
    let ours = format!("{}/.ward/saml/metadata", s.base);
    assert!(request.contains(&ours), "{request}");
    let theirs = request.replace(&ours, EVIL_SP);
    let mut evil_url =
        reqwest::Url::parse(&format!("{}/saml2/idp/SSOService.php", s.main.base)).unwrap();
    evil_url
        .query_pairs_mut()
        .append_pair("SAMLRequest", &deflate(&theirs))
        .append_pair("RelayState", &relay);
    let (_, resp, relay_back) = IdpBrowser::default()
        .login(evil_url.as_str(), "alice")
        .await;
    assert_eq!(relay_back, relay);
    let xml = decode(&resp);
    assert!(
        xml.contains(&format!("<saml:Audience>{EVIL_SP}</saml:Audience>")),
        "{xml}"
    );
    let r = post(&b, &s.main, &resp, &relay).await;
    assert_refused(&b, r, "AudienceRequirement").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_assertion_wrapped_beside_or_around_the_signed_one_is_refused() {
    let s = setup().await;
    for around in [false, true] {
        let b = Browser::new(&s.ward);
        let (resp, relay) = answer(&s, &s.main, &IdpBrowser::default(), &b, "alice").await;
        let xml = decode(&resp);
        let (a, end) = assertion_of(&xml);
        let signed = &xml[a..end];
        // The forgery: the same assertion, unsigned, for dana, under another ID.
        let forged = strip_signatures(signed)
            .replace("alice@riverside.example", "dana@riverside.example")
            .replacen(" ID=\"", " ID=\"forged", 1);
        let wrapped = if around {
            // The signed assertion hidden inside the forged one.
            let at = forged.find("</saml:Subject>").unwrap();
            format!(
                "{}{}<saml:Advice>{signed}</saml:Advice>{}{}",
                &xml[..a],
                &forged[..at + "</saml:Subject>".len()],
                &forged[at + "</saml:Subject>".len()..],
                &xml[end..]
            )
        } else {
            format!("{}{forged}{signed}{}", &xml[..a], &xml[end..])
        };
        let r = post(&b, &s.main, &encode(&wrapped), &relay).await;
        assert_refused(&b, r, "exactly one assertion").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_comment_injected_into_the_nameid_is_refused() {
    let s = setup().await;
    // mallory's address at the IdP is dana@riverside.example.evil; a comment after
    // ".example" leaves the signature valid (comments are not signed) and would make a
    // careless reader see dana@riverside.example.
    let b = Browser::new(&s.ward);
    let (resp, relay) = answer(&s, &s.main, &IdpBrowser::default(), &b, "mallory").await;
    let xml = decode(&resp);
    let name_id = ">dana@riverside.example.evil</saml:NameID>";
    assert!(xml.contains(name_id), "{xml}");
    let injected = xml.replace(name_id, ">dana@riverside.example<!---->.evil</saml:NameID>");
    let r = post(&b, &s.main, &encode(&injected), &relay).await;
    assert_refused(&b, r, "a comment").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_without_the_browsers_relaystate_cookie_is_refused() {
    let s = setup().await;
    // A sign-in started in the attacker's browser, its answer posted from the victim's
    // (login CSRF): the victim's browser has no matching cookie.
    let attacker = Browser::new(&s.ward);
    let (resp, relay) = answer(&s, &s.main, &IdpBrowser::default(), &attacker, "alice").await;
    let victim = Browser::new(&s.ward);
    let r = post(&victim, &s.main, &resp, &relay).await;
    assert_refused(&victim, r, "could not be matched").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn metadata_from_the_idps_address_is_fetched_when_first_used() {
    let s = setup().await;
    let b = Browser::new(&s.ward);
    let url = start(&b, "byurl").await;
    assert!(url.starts_with(&s.main.base), "{url}");
    let (_, resp, relay) = IdpBrowser::default().login(&url, "alice").await;
    let r = post(&b, &s.main, &resp, &relay).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    presets::assert_upstream_identity(&b, "alice", "clinician").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_return_address_stays_on_ward_whatever_the_form_or_relaystate_say() {
    let s = setup().await;
    let b = Browser::new(&s.ward);
    let form = presets::login_page(&b).await;
    let csrf = input_value(&form, "csrf");
    // An address off this site in the sign-in form is replaced by a local one.
    let r = b
        .post(
            "/.ward/sso/riverside",
            &[("csrf", &csrf), ("return", "https://evil.example/phish")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let url = r.headers()["location"].to_str().unwrap().to_string();
    // The RelayState is an opaque random value, never an address.
    let relay = query(&url, "RelayState");
    assert!(
        !relay.contains('/') && !relay.contains(':') && relay.len() >= 40,
        "{relay}"
    );
    let (_, resp, relay_back) = IdpBrowser::default().login(&url, "alice").await;
    let r = post(&b, &s.main, &resp, &relay_back).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let to = r.headers()["location"].to_str().unwrap();
    assert!(
        to.starts_with('/') && !to.starts_with("//") && !to.contains("evil"),
        "{to}"
    );
}

/// `url` without its `SigAlg` and `Signature` parameters.
fn unsigned(url: &str) -> String {
    let mut u = reqwest::Url::parse(url).unwrap();
    let kept: Vec<(String, String)> = u
        .query_pairs()
        .filter(|(k, _)| k != "SigAlg" && k != "Signature")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    u.query_pairs_mut().clear().extend_pairs(kept);
    u.to_string()
}

/// The IdP's page for `url` is its refusal, not a sign-in form nor an answer to ward.
async fn idp_refuses(at: &IdpBrowser, url: &str) {
    let page = at.page(url).await;
    assert!(
        !page.contains("SAMLResponse") && !page.contains("name=\"password\""),
        "the IdP took the request:\n{page}"
    );
    assert!(
        page.to_lowercase().contains("signature"),
        "the IdP refused for another reason:\n{page}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_idp_takes_only_requests_signed_with_the_certificate_in_wards_metadata() {
    let s = setup().await;
    let b = Browser::new(&s.ward);
    let url = start(&b, "riverside").await;
    assert!(
        url.contains("&SigAlg=") && url.contains("&Signature="),
        "{url}"
    );
    // Unsigned, or tampered with after signing: the IdP refuses.
    idp_refuses(&IdpBrowser::default(), &unsigned(&url)).await;
    let relay = query(&url, "RelayState");
    idp_refuses(
        &IdpBrowser::default(),
        &url.replace(&relay, &format!("{}x", &relay[..relay.len() - 1])),
    )
    .await;
    // The IdP holds another certificate for ward: ward's signature is not borne out.
    let other = between(
        &s.main.metadata,
        "<ds:X509Certificate>",
        "</ds:X509Certificate>",
    );
    assert_ne!(other, s.ward_cert);
    let addresses = [
        format!("{}/.ward/saml/metadata", s.base),
        format!("{}/.ward/saml/acs", s.base),
        format!("{}/.ward/saml/logout", s.base),
    ];
    s.main.set_sps(&main_sps(&addresses, Some(&other)));
    idp_refuses(&IdpBrowser::default(), &url).await;
    // With ward's certificate back, the same signed request signs alice in.
    s.main.set_sps(&main_sps(&addresses, Some(&s.ward_cert)));
    let (action, resp, relay) = IdpBrowser::default().login(&url, "alice").await;
    assert_eq!(action, format!("{}/.ward/saml/acs", s.base));
    let r = post(&b, &s.main, &resp, &relay).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    presets::assert_upstream_identity(&b, "alice", "clinician").await;
}

/// Signs `user` in to ward in `b` through the main IdP, the IdP's session kept in `at`.
async fn signed_in(s: &Setup, at: &IdpBrowser, b: &Browser, user: &str) {
    let (resp, relay) = answer(s, &s.main, at, b, user).await;
    let r = post(b, &s.main, &resp, &relay).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    assert_eq!(upstream_user(b).await.as_deref(), Some(user));
}

/// `url` with its `SAMLRequest` XML changed by `edit`, everything else (the signature) kept.
fn with_request(url: &str, edit: impl Fn(&str) -> String) -> String {
    let mut u = reqwest::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "SAMLRequest" {
                deflate(&edit(&inflate(&v)))
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    u.query_pairs_mut().clear().extend_pairs(pairs);
    u.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_logout_started_at_the_idp_ends_that_persons_ward_session_and_nothing_forged_does() {
    let s = setup().await;
    let (alice_idp, carol_idp) = (IdpBrowser::default(), IdpBrowser::default());
    let (alice, carol) = (Browser::new(&s.ward), Browser::new(&s.ward));
    signed_in(&s, &alice_idp, &alice, "alice").await;
    signed_in(&s, &carol_idp, &carol, "carol").await;

    // alice signs out at the IdP; it sends her browser to ward with a signed LogoutRequest.
    let done = format!("{}/.ward/logged-out", s.base);
    let start = format!(
        "{}/saml2/idp/SingleLogoutService.php?ReturnTo={}",
        s.main.base,
        url::form_urlencoded::byte_serialize(done.as_bytes()).collect::<String>()
    );
    let to_ward = alice_idp.follow_off(&s.main.base, &start).await;
    assert!(
        to_ward.starts_with(&format!("{}/.ward/saml/logout?SAMLRequest=", s.base)),
        "{to_ward}"
    );
    assert!(to_ward.contains("&Signature="), "{to_ward}");
    let request = inflate(&query(&to_ward, "SAMLRequest"));
    assert!(request.contains("alice@riverside.example"), "{request}");

    // Forged ones end nothing: unsigned, naming carol under alice's signature, or another
    // destination under it.
    let forged = [
        unsigned(&to_ward),
        with_request(&to_ward, |x| {
            x.replace("alice@riverside.example", "carol@riverside.example")
        }),
        with_request(&to_ward, |x| {
            x.replace("/.ward/saml/logout", "/.ward/saml/other")
        }),
    ];
    // Unsigned and naming carol, as an attacker would write it from scratch.
    let bare = with_request(&unsigned(&to_ward), |x| {
        x.replace("alice@riverside.example", "carol@riverside.example")
    });
    let why = [
        "not signed",
        "not the identity provider",
        "not the identity provider",
        "not signed",
    ];
    for (url, why) in forged.iter().chain([&bare]).zip(why) {
        let r = Browser::new(&s.ward).get(url).await;
        assert_eq!(r.status(), 400, "{url}");
        let text = r.text().await.unwrap();
        assert!(text.contains(why), "expected '{why}' for {url}: {text}");
    }
    assert_eq!(upstream_user(&alice).await.as_deref(), Some("alice"));
    assert_eq!(upstream_user(&carol).await.as_deref(), Some("carol"));

    // The real one: alice's ward session ends, and ward answers the IdP with a signed
    // LogoutResponse, which it checks (validate.logout) before sending her on.
    let r = Browser::new(&s.ward).get(&to_ward).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let answer = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        answer.starts_with(&format!(
            "{}/saml2/idp/SingleLogoutService.php?SAMLResponse=",
            s.main.base
        )) && answer.contains("&Signature="),
        "{answer}"
    );
    assert_eq!(alice_idp.follow_off(&s.main.base, &answer).await, done);
    assert_eq!(upstream_user(&alice).await, None);
    assert_eq!(upstream_user(&carol).await.as_deref(), Some("carol"));

    // The same request again is refused (and ends nothing more).
    let r = Browser::new(&s.ward).get(&to_ward).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("already used"));
    assert_eq!(upstream_user(&carol).await.as_deref(), Some("carol"));

    tokio::time::sleep(Duration::from_millis(300)).await;
    let trail = audit_text(&s.ward.site);
    let refused = trail.matches("sso-logout-refused").count();
    assert_eq!(refused, 5, "each refusal recorded");
    assert_eq!(
        trail.matches("sso-logout").count(),
        refused + 1,
        "the IdP's logout recorded"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_assertion_encrypted_to_wards_certificate_signs_in() {
    let s = setup().await;
    let md = Browser::new(&s.ward).get("/.ward/saml/metadata").await;
    let md = md.text().await.unwrap();
    assert!(md.contains("<md:KeyDescriptor use=\"encryption\">"), "{md}");
    let addresses = [
        format!("{}/.ward/saml/metadata", s.base),
        format!("{}/.ward/saml/acs", s.base),
        format!("{}/.ward/saml/logout", s.base),
    ];
    let mut sps = main_sps(&addresses, Some(&s.ward_cert));
    sps[0].encrypt = true;
    s.main.set_sps(&sps);
    let b = Browser::new(&s.ward);
    let (resp, relay) = answer(&s, &s.main, &IdpBrowser::default(), &b, "alice").await;
    let xml = decode(&resp);
    assert!(xml.contains("EncryptedAssertion"), "{xml}");
    assert!(
        !xml.contains("alice@riverside.example"),
        "not encrypted: {xml}"
    );
    let r = post(&b, &s.main, &resp, &relay).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    presets::assert_upstream_identity(&b, "alice", "clinician").await;
}
