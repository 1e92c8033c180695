//! Attacks through forms and redirects: cross-site and forged posts to ward's own forms
//! (MFA, break-glass, sign-out) and an open redirect through a whole sign-in. Each attack is
//! followed by its control (the same request done right succeeds), so a test that passes
//! because nothing works at all is caught; what reached the app is read from the recording
//! upstream and what happened from the audit trail.

mod common;

use common::*;

const EVIL: &str = "https://evil.example";

fn scenario() -> Scenario {
    Scenario::new()
        .own_host()
        .toml(
            "[roles]\nclinician = {}\nemergency = {}\nvendor_biller = {}\n\
             [break_glass]\nallowed_roles = [\"clinician\"]\nemergency_roles = [\"emergency\"]\nduration = \"1h\"\n",
        )
        .route("/", "allow_roles = [\"clinician\", \"vendor_biller\"]")
        .route("/patients/**", "allow_roles = [\"clinician\"]")
        .route("/emergency/**", "allow_roles = [\"emergency\"]")
        .route("/billing/**", "allow_roles = [\"vendor_biller\"]")
        .user("dr_lee", &["clinician"])
        .user("nurse0", &["clinician"])
        .person("vic", &["vendor_biller"], Some("Acme Billing"), &[])
}

/// ward's own origin, `https://ward.localhost:PORT`.
fn ward_origin(s: &Running) -> String {
    s.ward.url_for(WARD_HOST, "")
}

/// The password step for `user` in `b`; returns the MFA form's CSRF token.
async fn password_step(s: &Running, b: &Browser, user: &str) -> String {
    let form = b.get_following("/.ward/login?return=/patients/1").await;
    assert_eq!(form.url().host_str(), Some(WARD_HOST));
    let form = form.text().await.unwrap();
    let r = b
        .post(
            "/.ward/login",
            &[
                ("csrf", &input_value(&form, "csrf")),
                ("return", &input_value(&form, "return")),
                ("username", user),
                ("password", PW),
            ],
        )
        .await;
    assert_eq!(r.status(), 303, "password step");
    let form = b.get("/.ward/mfa").await.text().await.unwrap();
    let _ = s;
    input_value(&form, "csrf")
}

/// Whether `b` gets through to the app at `path`, and the upstream saw it.
async fn reaches(s: &Running, b: &Browser, path: &str) -> bool {
    let before = s.up.saw(path).len();
    let r = b.get(path).await;
    let arrived = s.up.saw(path).len() > before;
    assert_eq!(
        r.status() == 200,
        arrived,
        "{path}: status {} but arrived={arrived}",
        r.status()
    );
    arrived
}

/// Whether a code-step answer completes the sign-in (a redirect on, not back to sign-in).
fn completes(r: &reqwest::Response) -> bool {
    r.status() == 303
        && r.headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .is_some_and(|l| !l.contains("/.ward/login") && !l.contains("/.ward/mfa"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_mfa_form_takes_no_forged_or_cross_site_post() {
    let s = scenario().start().await;
    let b = s.browser();
    let csrf = password_step(&s, &b, "dr_lee").await;
    let code = s.code("dr_lee").await;
    let mfa = format!("{}/.ward/mfa", ward_origin(&s));
    let fields = [("csrf", csrf.as_str()), ("code", code.as_str())];

    // From another site: the Lax session cookie stays home, so there is nothing to complete.
    let r = b.post_from(EVIL, &mfa, &fields).await;
    assert!(!completes(&r), "cross-site MFA post was taken");
    // From an app's page on the same site (same-site cookies go): Origin is not ward's.
    let r = b
        .post_with_origin(&s.ward.url_for("localhost", ""), &mfa, &fields)
        .await;
    assert!(!completes(&r), "MFA post from another origin was taken");
    // From ward's origin, but with a token that is not the session's.
    let forged = [("csrf", "0123456789abcdef"), ("code", code.as_str())];
    let r = b.post(&mfa, &forged).await;
    assert!(!completes(&r), "MFA post with a forged token was taken");
    let r = b.post(&mfa, &[("code", code.as_str())]).await;
    assert!(!completes(&r), "MFA post without a token was taken");

    assert!(!reaches(&s, &b, "/patients/1").await);
    assert!(s.audit_where(&[("event", "login-ok")]).await.is_empty());
    s.up.assert_nothing("before the second step");

    // The control: a current code with the session's token, from ward's page, signs in
    // (a fresh code: on a loaded machine the first may have left its time window).
    let code = s.code("dr_lee").await;
    let fields = [("csrf", csrf.as_str()), ("code", code.as_str())];
    let r = b.post(&mfa, &fields).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    s.assert_audit(&[("event", "login-ok"), ("user", "dr_lee")])
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn break_glass_takes_no_forged_or_cross_site_post() {
    let s = scenario().start().await;
    let b = s.browser();
    assert_eq!(s.sign_in(&b, "dr_lee").await, 303);
    let page = format!("{}/.ward/break-glass", ward_origin(&s));
    let form = b.get(&page).await.text().await.unwrap();
    let csrf = input_value(&form, "csrf");
    let reason = "unconscious patient in room 3, chart needed";
    let fields = [("csrf", csrf.as_str()), ("reason", reason)];

    let r = b.post_from(EVIL, &page, &fields).await;
    assert_ne!(r.status(), 200, "cross-site break-glass was taken");
    let r = b
        .post_with_origin(&s.ward.url_for("localhost", ""), &page, &fields)
        .await;
    assert_ne!(r.status(), 200, "break-glass from another origin was taken");
    let r = b
        .post(&page, &[("csrf", "0123456789abcdef"), ("reason", reason)])
        .await;
    assert_ne!(r.status(), 200, "break-glass with a forged token was taken");

    assert!(!reaches(&s, &b, "/emergency/chart").await);
    assert!(s.audit_where(&[("event", "break-glass")]).await.is_empty());

    // The control: from ward's page with the session's token, it starts, and is recorded.
    let r = b.post(&page, &fields).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert!(reaches(&s, &b, "/emergency/chart").await);
    let rec = s
        .assert_audit(&[("event", "break-glass"), ("user", "dr_lee")])
        .await;
    assert!(
        rec["grant"].as_str().is_some_and(|g| g.contains(reason)),
        "{rec}"
    );
    // The emergency roles are dr_lee's alone: another clinician gets nothing from them.
    let other = s.browser();
    assert_eq!(s.sign_in(&other, "nurse0").await, 303);
    assert!(!reaches(&s, &other, "/emergency/chart").await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vendor_cannot_start_break_glass_with_their_own_token() {
    let s = scenario().start().await;
    let v = s.browser();
    assert_eq!(s.sign_in(&v, "vic").await, 303);
    let page = format!("{}/.ward/break-glass", ward_origin(&s));
    // The break-glass form is not theirs; the sign-out form gives them their session's token.
    assert_eq!(v.get(&page).await.status(), 403);
    let logout = v
        .get(&format!("{}/.ward/logout", ward_origin(&s)))
        .await
        .text()
        .await
        .unwrap();
    let own = input_value(&logout, "csrf");
    let r = v
        .post(
            &page,
            &[
                ("csrf", own.as_str()),
                ("reason", "need the charts for billing now"),
            ],
        )
        .await;
    assert_eq!(r.status(), 403);
    assert!(!reaches(&s, &v, "/emergency/chart").await);
    assert!(s.audit_where(&[("event", "break-glass")]).await.is_empty());
    let grants = std::fs::read_to_string(s.ward.site.path("state/grants.json")).unwrap_or_default();
    assert!(!grants.contains("vic"), "{grants}");
    // Still signed in and working where they may: the refusal was the rule, not a broken session.
    assert!(reaches(&s, &v, "/billing/claims").await);
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_out_takes_no_forged_or_cross_site_post() {
    let s = scenario().start().await;
    let out = format!("{}/.ward/logout", ward_origin(&s));
    let token_of = |page: String| input_value(&page, "csrf");

    // Another site's form, even knowing the token, sends no session cookie: the session stands.
    let b = s.browser();
    assert_eq!(s.sign_in(&b, "dr_lee").await, 303);
    let csrf = token_of(b.get(&out).await.text().await.unwrap());
    let held = b.cookie_at(&ward_origin(&s), "__Host-ward-session");
    assert!(held.is_some());
    let r = b.post_from(EVIL, &out, &[("csrf", &csrf)]).await;
    assert!(r.headers().get("set-cookie").is_none(), "{:?}", r.headers());
    assert!(
        reaches(&s, &b, "/patients/1").await,
        "a cross-site post signed out"
    );
    // Nor does a link from another site to the signed-out page clear a standing session's
    // cookie (the person would believe they had signed out while the session lived on).
    let logged_out = format!("{}/.ward/logged-out", ward_origin(&s));
    let r = b.get_from(EVIL, &logged_out).await;
    assert!(
        r.headers().get("clear-site-data").is_none(),
        "{:?}",
        r.headers()
    );
    assert!(r.headers().get("set-cookie").is_none(), "{:?}", r.headers());
    assert!(r.text().await.unwrap().contains("still signed in"));
    assert_eq!(b.cookie_at(&ward_origin(&s), "__Host-ward-session"), held);
    assert!(reaches(&s, &b, "/patients/1").await);

    // A forged token does not sign out.
    let b = s.browser();
    assert_eq!(s.sign_in(&b, "nurse0").await, 303);
    let csrf = token_of(b.get(&out).await.text().await.unwrap());
    b.post(&out, &[("csrf", "0123456789abcdef")]).await;
    assert!(
        reaches(&s, &b, "/patients/1").await,
        "a forged token signed out"
    );
    assert!(s.audit_where(&[("event", "logout")]).await.is_empty());

    // The control: the session's own token from ward's page ends it, on every host.
    let r = b.post(&out, &[("csrf", &csrf)]).await;
    assert_eq!(r.status(), 303);
    assert!(!reaches(&s, &b, "/patients/1").await);
    s.assert_audit(&[("event", "logout"), ("user", "nurse0")])
        .await;
}

/// Signs `user` in from `/.ward/login?return=RET`, posting `posted` (or what the page
/// carries forward) as the return; follows every redirect, asserting none leaves ward's hosts,
/// and returns where the browser ends.
async fn land(s: &Running, user: &str, ret: &str, posted: Option<&str>) -> reqwest::Url {
    let b = s.browser();
    let q = serde_urlencoded::to_string([("return", ret)]).unwrap();
    // From the app host's sign-in link, as a page load there leads.
    let form = b
        .get_following(&s.ward.url_for("localhost", &format!("/.ward/login?{q}")))
        .await
        .text()
        .await
        .unwrap();
    let carried = input_value(&form, "return");
    let r = b
        .post(
            "/.ward/login",
            &[
                ("csrf", &input_value(&form, "csrf")),
                ("return", posted.unwrap_or(&carried)),
                ("username", user),
                ("password", PW),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let mfa = b.get("/.ward/mfa").await.text().await.unwrap();
    let code = s.code(user).await;
    let mut r = b
        .post(
            "/.ward/mfa",
            &[("csrf", &input_value(&mfa, "csrf")), ("code", &code)],
        )
        .await;
    assert_eq!(r.status(), 303, "{ret}");
    for _ in 0..10 {
        let Some(loc) = r.headers().get("location") else {
            break;
        };
        let next = r.url().join(loc.to_str().unwrap()).unwrap();
        assert!(
            matches!(next.host_str(), Some("localhost" | WARD_HOST)) && next.scheme() == "https",
            "{ret} led to {next}"
        );
        r = b.get(next.as_str()).await;
    }
    assert_eq!(r.status(), 200, "{ret} ended at {}", r.url());
    r.url().clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_sign_in_never_ends_on_another_site() {
    const EVIL_RETURNS: [&str; 6] = [
        "//evil.example/x",
        "/\\evil.example",
        "https://evil.example/",
        "/%2F%2Fevil.example",
        "/%09/evil.example",
        "javascript:alert(1)",
    ];
    // One account per sign-in, so no test waits for a fresh authenticator code.
    let mut sc = scenario();
    for i in 1..=2 * EVIL_RETURNS.len() + 1 {
        sc = sc.user(&format!("nurse{i}"), &["clinician"]);
    }
    let s = sc.start().await;
    let mut n = 1;
    for evil in EVIL_RETURNS {
        // What the page carries forward, and what an attacker posts instead.
        for posted in [None, Some(evil)] {
            let end = land(&s, &format!("nurse{n}"), evil, posted).await;
            n += 1;
            // The start page of an app host or of ward's own host, nowhere else.
            assert!(
                matches!(end.host_str(), Some("localhost" | WARD_HOST)) && end.path() == "/",
                "{evil} posted as {posted:?} ended at {end}"
            );
        }
    }
    // The control: an ordinary return path is honoured through the same steps.
    let end = land(&s, &format!("nurse{n}"), "/patients/42?tab=notes", None).await;
    assert_eq!(
        (end.host_str(), end.path(), end.query()),
        (Some("localhost"), "/patients/42", Some("tab=notes"))
    );
    assert_eq!(s.up.last().target, "/patients/42?tab=notes");
}
