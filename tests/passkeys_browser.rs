//! Passkeys in a real browser (headless Debian chromium through chromedriver, with
//! WebDriver's virtual authenticator standing in for a phone or security key): a TOTP
//! sign-in is refused on a `phishing-resistant` route; the person adds a passkey, signs in
//! with it alone and as the second step, and reaches that route; once the officer removes
//! the key, it signs nobody in.
//!
//! Needs `chromium` and `chromedriver` (`tests/run` installs them when missing).

use crate::common::browser::*;
use crate::common::*;
use fantoccini::Client;
use fantoccini::wd::WebDriverCompatibleCommand;
use std::time::{Duration, Instant};
use webauthn_rs::prelude::Url;

/// A WebDriver command of the WebAuthn extension (not in fantoccini): `path` under the session.
#[derive(Debug)]
struct WebAuthnCmd {
    method: http::Method,
    path: String,
    body: Option<serde_json::Value>,
}

impl WebDriverCompatibleCommand for WebAuthnCmd {
    fn endpoint(&self, base: &Url, session: Option<&str>) -> Result<Url, url_error::ParseError> {
        base.join(&format!("session/{}/{}", session.unwrap_or(""), self.path))
    }

    fn method_and_body(&self, _: &Url) -> (http::Method, Option<String>) {
        (
            self.method.clone(),
            self.body.as_ref().map(|b| b.to_string()),
        )
    }
}

/// The `url` crate's error type, named through the URL type webauthn-rs re-exports.
mod url_error {
    pub type ParseError = <webauthn_rs::prelude::Url as std::str::FromStr>::Err;
}

/// Adds a virtual platform authenticator that holds discoverable passkeys and verifies the
/// person (as a fingerprint would) without asking; returns its id.
async fn add_authenticator(client: &Client) -> String {
    let answer = client
        .issue_cmd(WebAuthnCmd {
            method: http::Method::POST,
            path: "webauthn/authenticator".into(),
            body: Some(serde_json::json!({
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": true,
                "hasUserVerification": true,
                "isUserVerified": true,
            })),
        })
        .await
        .expect("chromedriver's WebAuthn extension adds a virtual authenticator");
    answer
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no authenticator id in {answer}"))
}

/// The credentials the virtual authenticator holds.
async fn credentials(client: &Client, authenticator: &str) -> Vec<serde_json::Value> {
    let answer = client
        .issue_cmd(WebAuthnCmd {
            method: http::Method::GET,
            path: format!("webauthn/authenticator/{authenticator}/credentials"),
            body: None,
        })
        .await
        .expect("the virtual authenticator lists its credentials");
    answer.as_array().cloned().unwrap_or_default()
}

/// The page's visible text, or "" while the browser is between pages.
async fn text_now(client: &Client) -> String {
    match client.find(fantoccini::Locator::Css("body")).await {
        Ok(body) => body.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Waits (bounded) until the page's text contains `words`; returns the text.
async fn wait_for_text(client: &Client, words: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = text_now(client).await;
        if text.contains(words) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "the page never said {words:?}; it says:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Signs out on ward's own host.
async fn sign_out(client: &Client, s: &Running) {
    client
        .goto(&s.ward.url_for(WARD_HOST, "/.ward/logout"))
        .await
        .unwrap();
    if text_now(client).await.contains("Sign out") {
        submit(client).await;
    }
    wait_for_path(client, "/.ward/logged-out", Duration::from_secs(20)).await;
}

/// The text of the app's `/controlled/1` as this browser sees it now.
async fn controlled_page(client: &Client, s: &Running) -> String {
    client
        .goto(&s.ward.url_for("localhost", "/controlled/1"))
        .await
        .unwrap();
    text_now(client).await
}

/// What the recording upstream answers with (it echoes the request); ward's refusal page
/// says "Access refused".
const REFUSED: &str = "Access refused";

#[tokio::test(flavor = "multi_thread")]
async fn a_passkey_is_enrolled_signs_in_meets_phishing_resistant_routes_and_stops_when_removed() {
    let s = Scenario::new()
        .own_host()
        .toml("[login]\npasswordless = true\n[roles]\nclinician = {}\n")
        .route("/**", "allow_roles = [\"clinician\"]")
        .route(
            "/controlled/**",
            "allow_roles = [\"clinician\"]\nmfa = \"phishing-resistant\"",
        )
        .user("dr_lee", &["clinician"])
        .start()
        .await;
    let driver = ChromeDriver::start();
    let profile = tempfile::tempdir().unwrap();
    let client = open_browser(&driver, profile.path()).await;
    let authenticator = add_authenticator(&client).await;

    // 1. Password and authenticator code: the ordinary pages open, the controlled one does not.
    let code = s.code("dr_lee").await;
    sign_in_on_ward_host(&client, &s.ward, "dr_lee", &code).await;
    let text = controlled_page(&client, &s).await;
    assert!(
        text.contains(REFUSED) && text.contains("passkey or security key"),
        "a code sign-in must not pass a phishing-resistant route:\n{text}"
    );
    s.assert_audit(&[("user", "dr_lee"), ("decision", "passkey-needed")])
        .await;

    // 2. The person adds a passkey on ward's own host.
    client
        .goto(&s.ward.url_for(WARD_HOST, "/.ward/passkeys"))
        .await
        .unwrap();
    wait_for_text(&client, "You have no passkeys yet").await;
    fill(&client, "#key-name", "test laptop").await;
    click(
        &client,
        "form[action='/.ward/passkeys'] button[type=submit]",
    )
    .await;
    wait_for_text(&client, "Create the passkey").await;
    screenshot(&client, "passkeys/add.png").await;
    click(&client, "#passkey-go").await;
    let text = wait_for_text(&client, "Added the passkey \"test laptop\"").await;
    assert!(text.contains("ward.localhost"), "{text}");
    assert_eq!(credentials(&client, &authenticator).await.len(), 1);
    s.assert_audit(&[("event", "passkey-added"), ("user", "dr_lee")])
        .await;
    let listed = s.ward_user(&["passkeys", "dr_lee"]);
    assert!(
        listed.contains("test laptop") && listed.contains("works on ward.localhost"),
        "{listed}"
    );
    let list = s.ward_user(&["list"]);
    let row = list
        .lines()
        .find(|l| l.starts_with("dr_lee "))
        .unwrap_or_default();
    assert!(row.contains(" app, 1 passkey "), "{list}");

    // 3. Signed out, then in again with the passkey alone: the controlled route opens.
    sign_out(&client, &s).await;
    sign_in_with_passkey_alone(&client, &s).await;
    wait_away_from(&client, "/.ward/passkey-sign-in").await;
    let text = controlled_page(&client, &s).await;
    assert!(
        !text.contains(REFUSED) && text.contains("/controlled/1"),
        "a passkey sign-in must pass the phishing-resistant route:\n{text}"
    );
    s.assert_audit(&[("event", "login-ok-passkey"), ("user", "dr_lee")])
        .await;

    // 4. Password, then the passkey as the second step: the controlled route opens too.
    sign_out(&client, &s).await;
    password_step(&client, &s).await;
    wait_for_text(&client, "Use a passkey or security key").await;
    screenshot(&client, "passkeys/second-step.png").await;
    click(&client, "#passkey-go").await;
    wait_away_from(&client, "/.ward/mfa").await;
    let text = controlled_page(&client, &s).await;
    assert!(
        !text.contains(REFUSED) && text.contains("/controlled/1"),
        "a passkey second step must pass the phishing-resistant route:\n{text}"
    );

    // 4b. The officer ends the account: the password and then the passkey lead to the form
    //     to ask for more time, never to a session; the passkey alone signs nobody in.
    sign_out(&client, &s).await;
    s.ward_user(&["expire", "dr_lee"]);
    presets::settle().await;
    password_step(&client, &s).await;
    wait_for_text(&client, "Use a passkey or security key").await;
    click(&client, "#passkey-go").await;
    told_and_no_session(
        &client,
        &s,
        "Your access ended on",
        "an ended account's passkey second step",
    )
    .await;
    sign_in_with_passkey_alone(&client, &s).await;
    told_and_no_session(
        &client,
        &s,
        "That passkey did not sign you in",
        "an ended account's passkey alone",
    )
    .await;
    // In force again: the passkey alone signs in once more.
    s.ward_user(&["expire", "dr_lee", "--never"]);
    presets::settle().await;
    sign_in_with_passkey_alone(&client, &s).await;
    wait_away_from(&client, "/.ward/passkey-sign-in").await;
    let text = controlled_page(&client, &s).await;
    assert!(text.contains("/controlled/1"), "{text}");

    // 5. The officer removes the key: the session ends, and the key (still in the
    //    authenticator) signs nobody in.
    let removed = s.ward_user(&["remove-passkey", "dr_lee", "test laptop"]);
    assert!(removed.contains("Removed dr_lee's passkey"), "{removed}");
    s.assert_audit(&[("event", "passkey-removed"), ("user", "dr_lee")])
        .await;
    presets::settle().await;
    let text = controlled_page(&client, &s).await;
    assert!(
        !text.contains("/controlled/1"),
        "the removal must end the passkey session:\n{text}"
    );
    assert_eq!(credentials(&client, &authenticator).await.len(), 1);
    sign_in_with_passkey_alone(&client, &s).await;
    let text = wait_for_text(&client, "That passkey did not sign you in").await;
    assert!(!text.contains("/controlled/1"), "{text}");
    // The removed key names no account any more.
    s.assert_audit(&[("event", "login-failed-passkey")]).await;
    // Nor does the second step offer it any more.
    password_step(&client, &s).await;
    let text = text_now(&client).await;
    assert!(
        !text.contains("Use a passkey or security key") && text.contains("authenticator"),
        "{text}"
    );

    client.close().await.unwrap();
}

/// Signs dr_lee in with the password on ward's sign-in page, up to the second step.
async fn password_step(client: &Client, s: &Running) {
    client
        .goto(&s.ward.url_for(WARD_HOST, "/.ward/login"))
        .await
        .unwrap();
    fill(client, "#username", "dr_lee").await;
    fill(client, "#password", PW).await;
    submit(client).await;
    wait_for_path(client, "/.ward/mfa", Duration::from_secs(20)).await;
}

/// The page says `told`, and neither it nor the controlled page shows that `what` opened a
/// session.
async fn told_and_no_session(client: &Client, s: &Running, told: &str, what: &str) {
    let text = wait_for_text(client, told).await;
    assert!(!text.contains("/controlled/1"), "{text}");
    let text = controlled_page(client, s).await;
    assert!(
        !text.contains("/controlled/1"),
        "{what} must not open a session:\n{text}"
    );
}

/// Opens ward's sign-in page and uses the passkey alone, up to the browser's answer being sent.
async fn sign_in_with_passkey_alone(client: &Client, s: &Running) {
    client
        .goto(&s.ward.url_for(WARD_HOST, "/.ward/login"))
        .await
        .unwrap();
    click(client, "#passkey-sign-in").await;
    wait_for_text(client, "Use my passkey").await;
    click(client, "#passkey-go").await;
}

/// Waits (bounded) until the browser has left `path`.
async fn wait_away_from(client: &Client, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while client.current_url().await.unwrap().path() == path {
        assert!(
            Instant::now() < deadline,
            "still at {path}:\n{}",
            text_now(client).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
