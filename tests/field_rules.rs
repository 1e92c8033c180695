//! HTML field rules: a route's `hide` selectors take elements' content out of
//! the pages `hide_for` roles receive; what ward cannot rewrite is refused to them.

mod common;

use common::*;
use http_body_util::Full;

const PAGE: &str = r#"<!doctype html><html><body><h1>Chart</h1>
<table><tr><td class="name">Ann Lee</td><td class="diagnosis">F32.1 major depressive disorder</td></tr></table>
<p>SSN: <span id="ssn" title="123-45-6789">123-45-6789</span></p>
<form><input name="dob" value="1970-01-01"><input name="phone" value="555-0100"></form>
</body></html>"#;

const SECRETS: [&str; 3] = ["F32.1", "123-45-6789", "1970-01-01"];

async fn chart_app() -> String {
    small_app(|req: hyper::Request<hyper::body::Incoming>| async move {
        let (ctype, encoding, body) = match req.uri().path() {
            "/charts/json" => (
                "application/json",
                None,
                r#"{"ssn":"123-45-6789"}"#.to_string(),
            ),
            "/charts/gz" => ("text/html", Some("gzip"), PAGE.to_string()),
            "/charts/csv" => ("text/plain", None, "123-45-6789".to_string()),
            _ => ("text/html; charset=utf-8", None, PAGE.to_string()),
        };
        let mut resp = hyper::Response::builder().header("content-type", ctype);
        if let Some(e) = encoding {
            resp = resp.header("content-encoding", e);
        }
        resp.body(Full::new(bytes::Bytes::from(body))).unwrap()
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn hidden_fields_never_reach_the_roles_they_are_hidden_from() {
    let chart = chart_app().await;
    let s = Scenario::new()
        .toml(&format!(
            "[roles]\nclinician = {{}}\nfrontdesk = {{}}\n\
             [[apps]]\nname = \"chart\"\nupstream = \"{chart}\"\n\
             [[routes]]\napp = \"chart\"\npath = \"/charts/**\"\n\
             allow_roles = [\"clinician\", \"frontdesk\"]\n\
             hide = [\"td.diagnosis\", \"#ssn\", \"input[name=dob]\"]\n\
             hide_for = [\"frontdesk\"]\n"
        ))
        .route("/other/**", "allow_roles = [\"clinician\"]")
        .user("dr_lee", &["clinician"])
        .user("fd_kim", &["frontdesk"])
        .start()
        .await;
    let lee = s.browser();
    let kim = s.browser();
    assert_eq!(s.sign_in(&lee, "dr_lee").await, 303);
    assert_eq!(s.sign_in(&kim, "fd_kim").await, 303);

    // The clinician sees the whole chart.
    let r = lee.get("/charts/1").await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    for secret in SECRETS {
        assert!(page.contains(secret), "{secret} missing for the clinician");
    }

    // The front desk sees the page without the hidden fields, in any attribute.
    let r = kim.get("/charts/1").await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    for secret in SECRETS {
        assert!(
            !page.contains(secret),
            "{secret} reached the front desk:\n{page}"
        );
    }
    assert!(page.contains("Ann Lee"), "{page}");
    assert!(page.contains("555-0100"), "{page}");
    assert!(page.contains("[hidden]"), "{page}");

    // What ward cannot rewrite is refused to them, never passed: JSON, a compressed
    // page, another type.
    for path in ["/charts/json", "/charts/gz", "/charts/csv"] {
        let r = kim.get(path).await;
        assert_eq!(r.status(), 403, "{path}");
        let id = request_id(&r);
        let body = r.text().await.unwrap();
        assert!(!body.contains("123-45-6789"), "{path}: {body}");
        let rec = audit_of(&s.ward.site, &id);
        assert_eq!(rec["reason"], "redaction-refused", "{rec}");
        // ...and the clinician gets them.
        assert_eq!(lee.get(path).await.status(), 200, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_selector_or_a_missing_hide_for_is_refused_at_load() {
    let site = Site::new();
    let policy = "practice = \"T\"\n[roles]\nfrontdesk = {}\n\
         [[apps]]\nname = \"ehr\"\nupstream = \"http://127.0.0.1:9\"\n\
         [[routes]]\napp = \"ehr\"\npath = \"/a/**\"\nallow_roles = [\"frontdesk\"]\n\
         hide = [\"td[\"]\nhide_for = [\"frontdesk\"]\n\
         [[routes]]\napp = \"ehr\"\npath = \"/b/**\"\nallow_roles = [\"frontdesk\"]\n\
         hide = [\"#ssn\"]\n";
    let file = site.path("ward.toml");
    std::fs::write(&file, policy).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ward"))
        .args(["explain", "--config"])
        .arg(&file)
        .args(["--ip", "127.0.0.1", "GET", "https://localhost/a/1"])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("ward.toml:7:"), "{text}");
    assert!(text.contains("'td[' is not a selector"), "{text}");
    assert!(text.contains("hide and hide_for go together"), "{text}");
}
