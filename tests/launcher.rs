//! The app launcher: signed in with nowhere to return to, a person sees the
//! apps and start pages the policy lets them use, and the links open them.

use crate::common::*;

/// The launcher's app links: (name, href), in the page's order.
fn app_links(html: &str) -> Vec<(String, String)> {
    let Some(start) = html.find("<ul class=\"apps\">") else {
        return Vec::new();
    };
    let list = &html[start..];
    let list = &list[..list.find("</ul>").unwrap()];
    list.split("<a href=\"")
        .skip(1)
        .map(|a| {
            let (href, rest) = a.split_once('"').unwrap();
            let name = &rest[1..rest.find("</a>").unwrap()];
            (name.to_string(), href.replace("&amp;", "&"))
        })
        .collect()
}

/// ward's own host, an EHR on `localhost` and a billing app on `billing.localhost`.
async fn two_apps() -> (Running, Upstream) {
    let billing = Upstream::http().await;
    let s = Scenario::new()
        .own_host()
        .toml(&format!(
            "[roles]\nclinician = {{}}\nbiller = {{}}\nfrontdesk = {{}}\n\n\
             [[apps]]\nname = \"billing\"\nhost = \"billing.localhost\"\n{}\n\
             [[routes]]\napp = \"billing\"\npath = \"/billing/**\"\nallow_roles = [\"biller\"]\n",
            billing.app_keys()
        ))
        .route("/patients/*/chart", "allow_roles = [\"clinician\"]")
        .route("/home", "allow_roles = [\"clinician\"]")
        .route("/logo.png", "allow = \"public\"")
        .user("dr_lee", &["clinician"])
        .user("pat", &["clinician", "biller"])
        .user("fd", &["frontdesk"])
        .start()
        .await;
    (s, billing)
}

/// Signs `user` in on ward's own host without a return address; the launcher it lands on.
async fn launcher_of(s: &Running, user: &str) -> (Browser, String) {
    let b = Browser::on(&s.ward, WARD_HOST).pages_on(&s.ward, WARD_HOST);
    assert_eq!(s.sign_in(&b, user).await, 303);
    let page = b.get("/").await;
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    (b, page.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_launcher_lists_exactly_the_persons_apps_and_the_links_open_them() {
    let (s, billing) = two_apps().await;
    let port = s.ward.port();

    // Two roles: both apps (in the policy's order: billing is written first), each
    // at a start page without wildcards.
    let (b, html) = launcher_of(&s, "pat").await;
    assert!(
        html.contains("You are signed in as <strong>pat</strong>"),
        "{html}"
    );
    assert_eq!(
        app_links(&html),
        [
            (
                "billing".to_string(),
                format!("https://billing.localhost:{port}/billing/")
            ),
            ("ehr".to_string(), format!("https://localhost:{port}/home")),
        ],
        "{html}"
    );
    // The links work: through the hand-off to each app, signed in.
    for (_, href) in app_links(&html) {
        let r = b.get_following(&href).await;
        assert_eq!(r.status(), 200, "{href}");
    }
    assert_eq!(s.up.saw("/home").len(), 1);
    assert_eq!(billing.saw("/billing/").len(), 1);
    assert_eq!(
        billing.last().header("x-ward-user"),
        Some("pat"),
        "the billing app saw someone else"
    );

    // One role: one app.
    let (_, html) = launcher_of(&s, "dr_lee").await;
    assert_eq!(
        app_links(&html),
        [("ehr".to_string(), format!("https://localhost:{port}/home"))],
        "{html}"
    );

    // A role no route names: no app (a public logo is no app to open), and words saying so.
    let (_, html) = launcher_of(&s, "fd").await;
    assert!(app_links(&html).is_empty(), "{html}");
    assert!(html.contains("does not open any of the practice"), "{html}");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_an_own_host_slash_lists_the_apps_when_no_app_answers_there() {
    let s = Scenario::new()
        .toml("[roles]\nclinician = {}\n")
        .route("/home", "allow_roles = [\"clinician\"]")
        .user("dr_lee", &["clinician"])
        .start()
        .await;
    let b = s.browser();
    // Not signed in: `/` is no one's launcher.
    assert_ne!(b.get("/").await.status(), 200);
    assert_eq!(s.sign_in(&b, "dr_lee").await, 303);
    let html = b.get("/").await.text().await.unwrap();
    assert_eq!(
        app_links(&html),
        [("ehr".to_string(), "/home".to_string())],
        "{html}"
    );
    assert_eq!(b.get("/home").await.status(), 200);
    // The launcher itself never reached the app.
    assert!(s.up.saw("/").is_empty());
}
