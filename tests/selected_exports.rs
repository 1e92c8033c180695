//! Issue #11.2: exports an app selects by a query parameter or a form field (a
//! database tool's "view output as text", answered as an ordinary page) are
//! caught by routes with `query` and `form` conditions.

mod common;

use common::*;
use http_body_util::BodyExt;
use std::time::Duration;

const PW: &str = "maple orbit candle harbor 42";

/// A database admin tool: `/index.php` answers every request with a page that
/// says what it was asked (query and body) and, for an export, the table dump.
async fn db_tool() -> String {
    small_app(|req: hyper::Request<hyper::body::Incoming>| async move {
        let query = req.uri().query().unwrap_or("").to_string();
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8_lossy(&body).to_string();
        let dump = query.contains("route=%2Fexport")
            || query.contains("route=/export")
            || body.contains("output_format=astext");
        let text = format!(
            "<html><body><p>query: {query}</p><p>body: {body}</p>{}</body></html>",
            if dump {
                "<pre>INSERT INTO patients VALUES (1001, 'Ellison');</pre>"
            } else {
                ""
            }
        );
        let mut resp = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(text)));
        resp.headers_mut()
            .insert("content-type", "text/html; charset=utf-8".parse().unwrap());
        resp
    })
    .await
}

fn policy(upstream: &str) -> String {
    format!(
        "practice = \"Test Clinic\"\n{{server}}\n\
         [roles]\ndba = {{ export = \"block\" }}\n\
         [storage]\nusers = \"config/users.toml\"\nstate = \"state\"\n\
         [[apps]]\nname = \"db\"\nupstream = \"{upstream}\"\nward_keeps_cookies = false\n\
         [[routes]]\napp = \"db\"\npath = \"/index.php\"\nallow_roles = [\"dba\"]\n\
         [[routes]]\napp = \"db\"\npath = \"/index.php\"\nquery = {{ route = \"/export\" }}\nallow_roles = [\"dba\"]\nexport_endpoint = true\n\
         [[routes]]\napp = \"db\"\npath = \"/index.php\"\nmethods = [\"POST\"]\nform = {{ output_format = \"astext\" }}\nallow_roles = [\"dba\"]\nexport_endpoint = true\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn exports_chosen_by_a_parameter_or_a_form_field_are_blocked_and_can_be_granted() {
    let app = db_tool().await;
    let ward = Ward::start(&policy(&app));
    let dan = enrolled_user(&ward.site, "dan", &["dba"], PW, None, None);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let b = Browser::new(&ward);
    assert_eq!(sign_in_with(&b, "dan", PW, &dan, 0).await, 303);

    // The tool itself works.
    let r = b.get("/index.php?route=/table&db=clinic").await;
    assert_eq!(r.status(), 200);
    // The export, chosen in the query, in any spelling a form decoder reads alike.
    for q in [
        "route=/export",
        "route=%2Fexport",
        "db=clinic&route=/export",
    ] {
        let r = b.get(&format!("/index.php?{q}")).await;
        assert_eq!(r.status(), 403, "{q}");
        assert!(!r.text().await.unwrap().contains("Ellison"), "{q}");
    }
    // The export, chosen in a posted form.
    let r = b
        .post(
            "/index.php",
            &[("db", "clinic"), ("output_format", "astext")],
        )
        .await;
    assert_eq!(r.status(), 403);
    assert!(!r.text().await.unwrap().contains("Ellison"));
    // Other posts pass, and the app gets the form whole.
    let r = b
        .post(
            "/index.php",
            &[("db", "clinic"), ("output_format", "sql-file")],
        )
        .await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("body: db=clinic&output_format=sql-file"),
        "{page}"
    );
    // A form ward cannot read on such a page is refused, not guessed at.
    let client = ward.client(false);
    let r = client
        .post(ward.url("/index.php"))
        .header("cookie", format!("__Host-ward-session={}", b.cookie("__Host-ward-session").unwrap()))
        .header("content-type", "multipart/form-data; boundary=x")
        .body("--x\r\nContent-Disposition: form-data; name=\"output_format\"\r\n\r\nastext\r\n--x--\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);

    // The officer grants the export: it passes, and is recorded with the grant.
    grant_export(
        ward.site.dir.path(),
        "ward.toml",
        "dan",
        "/index.php",
        "1h",
        "records request 2026-114",
    )
    .await;
    // The grant itself is in the audit trail, with its reason and who gave it.
    let trail = audit_text(&ward.site);
    let issued = trail
        .lines()
        .find(|l| l.contains("\"grant-issued\""))
        .unwrap_or_else(|| panic!("no grant-issued record in:\n{trail}"));
    assert!(
        issued.contains("\"user\":\"dan\"") && issued.contains("records request 2026-114"),
        "{issued}"
    );
    assert!(issued.contains("command line"), "{issued}");
    let r = b.get("/index.php?route=/export").await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Ellison"));
}
