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
