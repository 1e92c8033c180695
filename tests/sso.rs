//! End to end: single sign-on through a real OpenID provider (oidc-provider on
//! loopback), with ward's own rules still applied to what the provider says.

use crate::common::browser::free_port;
use crate::common::oidc::Idp;
use crate::common::*;
use serde_json::json;
use std::time::Duration;

struct Setup {
    idp: Idp,
    ward: Ward,
    _ehr: Ehr,
    base: String,
}

async fn setup(without_mfa: &str) -> Setup {
    let port = free_port();
    let base = format!("https://ehr.localhost:{port}");
    let clients = json!([{
        "client_id": "ward",
        "client_secret": "ward-secret",
        "redirect_uris": [format!("{base}/.ward/callback")],
        "post_logout_redirect_uris": [format!("{base}/.ward/logged-out")],
    }])
    .to_string();
    let accounts = json!({
        "alice": { "email": "alice@riverside.example", "email_verified": true, "name": "Alice Jones", "groups": ["clinicians"], "amr": ["pwd", "otp"] },
        "bob": { "email": "bob@riverside.example", "email_verified": true, "name": "Bob", "groups": ["nothing-mapped"], "amr": ["pwd", "otp"] },
        "carol": { "email": "carol@riverside.example", "email_verified": true, "name": "Carol", "groups": ["clinicians"], "amr": ["pwd", "otp"] },
        "dave": { "email": "dave@riverside.example", "email_verified": true, "name": "Dave", "groups": ["clinicians"] },
        "erin": { "email": "erin@riverside.example", "email_verified": true, "name": "Erin New", "groups": ["billing-team"], "amr": ["mfa"] },
        "mallory": { "email": "mallory@evil.example", "email_verified": true, "groups": ["clinicians"], "amr": ["otp"] },
        "lopez-riverside": { "email": "m.lopez@riverside.example", "email_verified": true, "name": "Maria Lopez", "groups": ["clinicians"], "amr": ["otp"] },
        "lopez-acme": { "email": "m.lopez@acme.example", "email_verified": true, "name": "Mo Lopez (Acme)", "groups": ["clinicians"], "amr": ["otp"] },
        "unverified": { "email": "frank@riverside.example", "name": "Frank", "groups": ["clinicians"], "amr": ["otp"] },
        "boss-at-idp": { "email": "olive@riverside.example", "email_verified": true, "name": "Olive", "groups": ["clinicians"], "amr": ["otp"] },
        "xss": { "email": "xss@riverside.example", "email_verified": true, "name": HOSTILE_NAME, "groups": ["clinicians"], "amr": ["otp"] },
    })
    .to_string();
    let idp = Idp::start(&clients, &accounts);
    let ehr = Ehr::start();
    let site = Site::new();
    std::fs::write(site.path("ward-secret"), "ward-secret\n").unwrap();
    let policy = format!(
        "practice = \"Test Clinic\"\n{server}listen = \"127.0.0.1:{port}\"\npublic_url = \"{base}\"\n\
         [login]\nmfa = \"required\"\n\
         [[login.oidc]]\nname = \"riverside\"\nlabel = \"Sign in with Riverside ID\"\nissuer = \"{issuer}\"\nclient_id = \"ward\"\n\
         client_secret_file = \"{secret}\"\nca = \"{ca}\"\nscopes = [\"email\", \"profile\", \"groups\"]\ngroups_claim = \"groups\"\n\
         role_map = {{ clinicians = [\"clinician\"], billing-team = [\"biller\"] }}\nallowed_domains = [\"riverside.example\", \"acme.example\"]\n\
         accounts = \"create\"\nwithout_mfa = \"{without_mfa}\"\n\
         {tail}",
        tail = presets::sso_clinic(&ehr.url()),
        server = server_section(&site).replace("listen = \"127.0.0.1:0\"\n", ""),
        issuer = idp.issuer,
        secret = site.path("ward-secret").display(),
        ca = idp.ca.display(),
    );
    std::fs::write(site.path("ward.toml"), policy).unwrap();
    let config = site.path("ward.toml");
    let ward = Ward::start_in(site, config);
    // carol exists and the officer has deactivated her.
    enrolled_user(
        &ward.site,
        "carol",
        &["clinician"],
        "maple orbit candle harbor 42",
        None,
        None,
    );
    let store = ward::users::SecretStore::open(&ward.site.path("state")).unwrap();
    ward::users::Admin::new(&ward.site.path("config/users.toml"), store, "Test Clinic")
        .deactivate("carol")
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    Setup {
        idp,
        ward,
        _ehr: ehr,
        base,
    }
}

/// Starts single sign-on in `b`; returns the provider's authorization URL.
async fn start(b: &Browser) -> String {
    presets::start_sso(b, "riverside", "Sign in with Riverside ID").await
}

/// The path and query of the provider's redirect back to ward.
fn back_path(s: &Setup, url: &str) -> String {
    url.strip_prefix(&s.base)
        .unwrap_or_else(|| panic!("{url} is not back to ward"))
        .to_string()
}

async fn sso_as(s: &Setup, b: &Browser, who: &str) -> reqwest::Response {
    let authorize = start(b).await;
    assert!(authorize.starts_with(&s.idp.issuer), "{authorize}");
    let back = s.idp.login(&Idp::client(), &authorize, who).await;
    b.get(&back_path(s, &back)).await
}

#[tokio::test(flavor = "multi_thread")]
async fn single_sign_on_applies_wards_rules() {
    let s = setup("refuse").await;

    // alice: mapped to clinician, MFA shown by the provider.
    let b = Browser::new(&s.ward);
    let r = sso_as(&s, &b, "alice").await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    assert_eq!(r.headers()["location"], "/patients/1001/chart");
    presets::assert_upstream_identity(&b, "alice", "clinician").await;
    // ward's rules still apply: no billing for a clinician.
    assert_eq!(b.get("/billing").await.status(), 403);
    // The account was created on first sign-in, with no enrollment link.
    let users = std::fs::read_to_string(s.ward.site.path("config/users.toml")).unwrap();
    assert!(users.contains("[users.alice]"), "{users}");

    // bob: his group maps to nothing.
    let r = sso_as(&s, &Browser::new(&s.ward), "bob").await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("give you no access"));

    // carol: the provider says yes, the officer said no.
    let r = sso_as(&s, &Browser::new(&s.ward), "carol").await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("cannot sign in"));

    // dave: no second factor from the provider, and the policy refuses that.
    let r = sso_as(&s, &Browser::new(&s.ward), "dave").await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("second factor"));

    // mallory: e-mail domain not allowed.
    let r = sso_as(&s, &Browser::new(&s.ward), "mallory").await;
    assert_eq!(r.status(), 403);

    // erin: new, billing group → biller; billing opens, the chart does not.
    let e = Browser::new(&s.ward);
    assert_eq!(sso_as(&s, &e, "erin").await.status(), 303);
    assert_eq!(e.get("/billing").await.status(), 200);
    assert_eq!(e.get("/patients/1001/chart").await.status(), 403);

    // alice again: now an existing account.
    assert_eq!(
        sso_as(&s, &Browser::new(&s.ward), "alice").await.status(),
        303
    );

    // Every outcome is in the audit trail.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let trail = audit_text(&s.ward.site);
    for event in ["sso-account-created", "sso-refused", "sso-login-ok"] {
        assert!(trail.contains(event), "no {event} in the audit trail");
    }
}

/// A provider's `name` claim with markup and script in it.
const HOSTILE_NAME: &str = "Xi <script>window.__xss=1</script><img src=x onerror=window.__xss=2>";

#[tokio::test(flavor = "multi_thread")]
async fn a_providers_claims_are_kept_as_text_and_never_become_markup() {
    let s = setup("refuse").await;
    let b = Browser::new(&s.ward);
    let r = sso_as(&s, &b, "xss").await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    // The claim is the new account's display name, as written: the console shows it as text
    // (tests/page_safety.rs puts the same kind of name in users.toml and checks in Chromium).
    let users = std::fs::read_to_string(s.ward.site.path("config/users.toml")).unwrap();
    let parsed: toml::Table = toml::from_str(&users).unwrap();
    assert_eq!(
        parsed["users"]["xss"]["display_name"].as_str(),
        Some(HOSTILE_NAME),
        "{users}"
    );
    // A provider's error text in the callback is shown as text, if at all.
    let page = Browser::new(&s.ward)
        .get(&format!(
            "/.ward/callback?error=access_denied&state=x&error_description={}",
            "%3Cscript%3Ewindow.__xss%3D1%3C%2Fscript%3E"
        ))
        .await
        .text()
        .await
        .unwrap();
    assert!(!page.contains("<script>"), "{page}");
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_replayed_and_failed_sign_ins_get_a_clear_page() {
    let mut s = setup("refuse").await;

    // A forged state: the callback does not match a sign-in begun in this browser.
    let b = Browser::new(&s.ward);
    let authorize = start(&b).await;
    let back = back_path(&s, &s.idp.login(&Idp::client(), &authorize, "alice").await);
    let other = Browser::new(&s.ward);
    let r = other.get(&back).await;
    assert_eq!(r.status(), 400, "another browser used the callback");
    let forged = back.replace("state=", "state=x");
    assert_eq!(b.get(&forged).await.status(), 400);
    // The real one still works once...
    assert_eq!(b.get(&back).await.status(), 303);
    // ...and never twice.
    let r = b.get(&back).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("could not be matched"));

    // Denied consent at the provider.
    let d = Browser::new(&s.ward);
    let authorize = start(&d).await;
    let back = back_path(&s, &s.idp.deny(&Idp::client(), &authorize).await);
    let r = d.get(&back).await;
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Single sign-on did not work")
    );

    // The provider goes down between the person's sign-in there and ward's code exchange:
    // a clear 502, no session, and the failure in the audit trail.
    let down = Browser::new(&s.ward);
    let authorize = start(&down).await;
    let back = back_path(&s, &s.idp.login(&Idp::client(), &authorize, "alice").await);
    s.idp.stop();
    let failed_before = audit_text(&s.ward.site).matches("\"sso-failed\"").count();
    let r = down.get(&back).await;
    assert_eq!(r.status(), 502);
    assert!(down.cookie("__Host-ward-session").is_none());
    assert_eq!(down.get("/patients/1001/chart").await.status(), 303);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        audit_text(&s.ward.site).matches("\"sso-failed\"").count(),
        failed_before + 1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sso_form_takes_no_forged_or_cross_site_post() {
    let s = setup("refuse").await;
    let b = Browser::new(&s.ward);
    // A refused post hands out a new form token, so each try starts from a fresh page.
    let fresh = || async { input_value(&presets::login_page(&b).await, "csrf") };
    let to_provider = |r: &reqwest::Response| {
        r.status() == 303
            && r.headers()["location"]
                .to_str()
                .is_ok_and(|l| l.starts_with(&s.idp.issuer))
    };
    // Another site's form: the Lax token cookie stays home.
    let csrf = fresh().await;
    let r = b
        .post_from(
            "https://evil.example",
            "/.ward/sso/riverside",
            &[("csrf", &csrf), ("return", "/")],
        )
        .await;
    assert!(!to_provider(&r), "a cross-site post started single sign-on");
    // Another origin of the same site, with the right token and cookie.
    let csrf = fresh().await;
    let r = b
        .post_with_origin(
            &s.ward.url_for("billing.localhost", ""),
            "/.ward/sso/riverside",
            &[("csrf", &csrf), ("return", "/")],
        )
        .await;
    assert!(!to_provider(&r), "a post from another origin started it");
    // A token that is not the cookie's.
    fresh().await;
    let r = b
        .post(
            "/.ward/sso/riverside",
            &[("csrf", "0123456789abcdef"), ("return", "/")],
        )
        .await;
    assert!(!to_provider(&r), "a forged token started it");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!audit_text(&s.ward.site).contains("sso-started"));
    // The control: the page's own token from ward's origin starts it, and it is recorded.
    let csrf = fresh().await;
    let r = b
        .post("/.ward/sso/riverside", &[("csrf", &csrf), ("return", "/")])
        .await;
    assert!(to_provider(&r), "{}", r.status());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(audit_text(&s.ward.site).contains("sso-started"));
}

#[tokio::test(flavor = "multi_thread")]
async fn without_provider_mfa_ward_asks_for_its_own_code() {
    let s = setup("ward-totp").await;
    // dave has a ward authenticator: the sign-in continues at ward's MFA page.
    let secret = enrolled_user(
        &s.ward.site,
        "dave",
        &["clinician"],
        "maple orbit candle harbor 42",
        None,
        None,
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    let b = Browser::new(&s.ward);
    let r = sso_as(&s, &b, "dave").await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/.ward/mfa");
    // Not in yet.
    assert_eq!(b.get("/patients/1001/chart").await.status(), 303);
    let form = b.get("/.ward/mfa").await.text().await.unwrap();
    let csrf = input_value(&form, "csrf");
    let code = ward::auth::totp::code_at(&secret, unix_now());
    let r = b
        .post("/.ward/mfa", &[("csrf", &csrf), ("code", &code)])
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(b.get("/patients/1001/chart").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn each_account_signs_in_only_the_ways_the_officer_allows() {
    let s = setup("refuse").await;
    let pw = "maple orbit candle harbor 42";
    let alice = enrolled_user(&s.ward.site, "alice", &["clinician"], pw, None, None);
    let frank = enrolled_user(&s.ward.site, "frank", &["clinician"], pw, None, None);
    let users = s.ward.site.path("config/users.toml");
    let text = std::fs::read_to_string(&users)
        .unwrap()
        .replacen(
            "[users.alice]\n",
            "[users.alice]\nsign_in = \"password\"\n",
            1,
        )
        .replacen("[users.frank]\n", "[users.frank]\nsign_in = \"sso\"\n", 1);
    std::fs::write(&users, text).unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;

    // alice: password only, so the provider's word is not enough...
    let r = sso_as(&s, &Browser::new(&s.ward), "alice").await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("ward password"));
    // ...while her password and code still work.
    assert_eq!(
        sign_in_with(&Browser::new(&s.ward), "alice", pw, &alice, 0).await,
        303
    );
    // frank: single sign-on only, so his ward password is refused.
    assert_eq!(
        sign_in_with(&Browser::new(&s.ward), "frank", pw, &frank, 0).await,
        401
    );
}

/// Security review #20, finding 3: accounts are linked to the provider's (iss,
/// sub) at the first sign-in and held to it; claims a person may change (a
/// reused e-mail name in another allowed domain) never take an account over; an
/// unverified address is refused; officers are kept off single sign-on.
#[tokio::test(flavor = "multi_thread")]
async fn accounts_are_linked_to_one_identity_at_the_provider() {
    let s = setup("refuse").await;
    // An officer's account made by the officer, with the default sign-in.
    enrolled_user(
        &s.ward.site,
        "olive",
        &["officer", "clinician"],
        "maple orbit candle harbor 42",
        None,
        None,
    );
    tokio::time::sleep(Duration::from_millis(700)).await;

    // m.lopez@riverside signs in first: the account m.lopez is made and linked to her.
    let b = Browser::new(&s.ward);
    let r = sso_as(&s, &b, "lopez-riverside").await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let secrets = std::fs::read_to_string(s.ward.site.path("state/secrets.json")).unwrap();
    assert!(secrets.contains("lopez-riverside"), "{secrets}");
    // m.lopez@acme.example (another allowed domain, same name before the @): refused.
    let other = Browser::new(&s.ward);
    let r = sso_as(&s, &other, "lopez-acme").await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("linked to another person"));
    assert_eq!(other.get("/patients/1001/chart").await.status(), 303);
    // The linked person signs in again, as herself.
    let again = Browser::new(&s.ward);
    assert_eq!(sso_as(&s, &again, "lopez-riverside").await.status(), 303);
    let j: serde_json::Value = again.get("/debug/headers").await.json().await.unwrap();
    assert!(seen_headers(&j).contains(&("x-ward-user".into(), "m.lopez".into())));

    // An address the provider has not verified: refused.
    let b = Browser::new(&s.ward);
    let r = sso_as(&s, &b, "unverified").await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("not verified"));
    let users = std::fs::read_to_string(s.ward.site.path("config/users.toml")).unwrap();
    assert!(!users.contains("[users.frank]"), "{users}");

    // The officer's e-mail at the provider does not open the officer's account.
    let b = Browser::new(&s.ward);
    let r = sso_as(&s, &b, "boss-at-idp").await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("Officer accounts"));
    assert_eq!(b.get("/patients/1001/chart").await.status(), 303);
}

/// Presses the single sign-on button of `provider` on a fresh sign-in page; the status.
async fn press(b: &Browser, provider: &str) -> u16 {
    let form = presets::login_page(b).await;
    let csrf = input_value(&form, "csrf");
    b.post(
        &format!("/.ward/sso/{provider}"),
        &[("csrf", &csrf), ("return", "/patients/1001/chart")],
    )
    .await
    .status()
    .as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_that_is_down_is_asked_once_not_at_every_press_of_its_button() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    // Both providers' documents come from an address that answers 503, and count the asking.
    let asked = Arc::new(AtomicUsize::new(0));
    let counter = asked.clone();
    let down = small_app(move |_req| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            let mut r = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from("down")));
            *r.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
            r
        }
    })
    .await;
    let port = free_port();
    let ehr = Ehr::start();
    let site = Site::new();
    std::fs::write(site.path("ward-secret"), "ward-secret\n").unwrap();
    let policy = format!(
        "practice = \"Test Clinic\"\n{server}listen = \"127.0.0.1:{port}\"\npublic_url = \"https://ehr.localhost:{port}\"\n\
         [login]\n\
         [[login.oidc]]\nname = \"oidc\"\nissuer = \"{down}/oidc\"\nclient_id = \"ward\"\nclient_secret_file = \"{secret}\"\n\
         role_map = {{ clinicians = [\"clinician\"] }}\n\
         [[login.saml]]\nname = \"saml\"\nidp_metadata = \"{down}/saml/metadata\"\n\
         role_map = {{ clinicians = [\"clinician\"] }}\n\
         {tail}",
        tail = presets::sso_clinic(&ehr.url()),
        server = server_section(&site).replace("listen = \"127.0.0.1:0\"\n", ""),
        secret = site.path("ward-secret").display(),
    );
    std::fs::write(site.path("ward.toml"), policy).unwrap();
    let config = site.path("ward.toml");
    let ward = Ward::start_in(site, config);
    let b = Browser::new(&ward);
    for provider in ["oidc", "saml"] {
        let before = asked.load(Ordering::SeqCst);
        for _ in 0..3 {
            assert_eq!(press(&b, provider).await, 502, "{provider}");
        }
        assert_eq!(
            asked.load(Ordering::SeqCst),
            before + 1,
            "{provider}: asked again within {:?}",
            ward::web::sso_steps::RETRY_AFTER
        );
    }
}
