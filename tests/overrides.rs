//! Security review #20, findings 8 and 9: a `_method` override in the query would
//! let the app run a method ward never decided on; `Range` would let a capped
//! answer be fetched in slices under the cap.

mod common;

use common::*;
use std::collections::HashMap;

const PW: &str = "maple orbit candle harbor 42";

fn policy(upstream: &str) -> String {
    format!(
        "practice = \"Test Clinic\"\n{{server}}\n\
         [roles]\nclinician = {{}}\n\
         [storage]\nusers = \"config/users.toml\"\nstate = \"state\"\n\
         [[apps]]\nname = \"ehr\"\nupstream = \"{upstream}\"\n\
         [[routes]]\napp = \"ehr\"\npath = \"/patients/**\"\nmethods = [\"GET\", \"POST\"]\nallow_roles = [\"clinician\"]\n\
         [[routes]]\napp = \"ehr\"\npath = \"/notes/**\"\nallow_roles = [\"clinician\"]\n\
         [[routes]]\napp = \"ehr\"\npath = \"/debug/**\"\nmax_response = \"1MB\"\nallow_roles = [\"clinician\"]\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn method_overrides_are_refused_and_ranges_dropped_on_capped_routes() {
    let ehr = Ehr::start();
    let ward = Ward::start(&policy(&ehr.url()));
    let lee = enrolled_user(&ward.site, "dr_lee", &["clinician"], PW, None, None);
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let b = Browser::new(&ward);
    assert_eq!(sign_in_with(&b, "dr_lee", PW, &lee, 0).await, 303);
    assert_eq!(b.get("/patients/1001/chart").await.status(), 200);
    for q in [
        "_method=DELETE",
        "_METHOD=delete",
        "%5Fmethod=DELETE",
        "%5fMethod=PUT",
        "a=1&_method=DELETE",
        "_method",
    ] {
        let r = b
            .post(&format!("/patients/1001/chart?{q}"), &[("note", "x")])
            .await;
        assert_eq!(r.status(), 400, "{q}");
        assert_eq!(
            b.get(&format!("/patients/1001/chart?{q}")).await.status(),
            400,
            "{q}"
        );
    }
    // A lookalike that is not an override passes.
    assert_eq!(
        b.get("/patients/1001/chart?my_method=x").await.status(),
        200
    );

    // Range and If-Range never reach the app on a route with a size cap.
    b.header("range", "bytes=0-99");
    b.header("if-range", "\"etag\"");
    let seen: serde_json::Value = b.get("/debug/headers").await.json().await.unwrap();
    let seen: HashMap<String, String> = seen_headers(&seen).into_iter().collect();
    assert!(!seen.contains_key("range"), "{seen:?}");
    assert!(!seen.contains_key("if-range"), "{seen:?}");
}

/// A `_method` field in a posted form asks the app (Rails, Laravel, Symfony) to
/// run another method: ward decides that method too.
#[tokio::test(flavor = "multi_thread")]
async fn a_form_method_override_must_be_allowed_as_well() {
    let ehr = Ehr::start();
    let ward = Ward::start(&policy(&ehr.url()));
    let lee = enrolled_user(&ward.site, "dr_lee", &["clinician"], PW, None, None);
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let b = Browser::new(&ward);
    assert_eq!(sign_in_with(&b, "dr_lee", PW, &lee, 0).await, 303);
    // The route allows GET and POST only: a POST that says DELETE is refused,
    // however the field is spelled, and the app never sees it.
    for (name, value) in [
        ("_method", "DELETE"),
        ("_method", "delete"),
        ("_METHOD", " put "),
        ("_method", "PATCH"),
    ] {
        let r = b
            .post("/patients/1001/chart", &[("note", "x"), (name, value)])
            .await;
        assert!(
            r.status() == 403 || r.status() == 400,
            "{name}={value}: {}",
            r.status()
        );
        assert!(
            r.headers().get("x-upstream-target").is_none(),
            "{name}={value} reached the app"
        );
    }
    // Not a method at all: refused, not guessed at.
    let r = b
        .post("/patients/1001/chart", &[("_method", "DE LETE")])
        .await;
    assert_eq!(r.status(), 400);
    // An override to a method the route allows passes, with the form as sent.
    let r = b
        .post(
            "/patients/1001/chart",
            &[("note", "x"), ("_method", "post")],
        )
        .await;
    assert!(
        r.headers().get("x-upstream-target").is_some(),
        "{}",
        r.status()
    );
    // On a route open to every method, the override passes.
    let r = b
        .post("/notes/7", &[("note", "x"), ("_method", "DELETE")])
        .await;
    assert!(
        r.headers().get("x-upstream-target").is_some(),
        "{}",
        r.status()
    );
}
