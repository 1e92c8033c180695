//! Issue #18: `HEAD` to every page of ward's that answers `GET` (and to a page of
//! an app), over HTTP/2 and HTTP/1.1, gets the same status and headers and no body.

use crate::common::*;

fn policy(upstream: &str) -> String {
    format!(
        "practice = \"Test Clinic\"\n{{server}}ward_host = \"{WARD_HOST}\"\n\
         [roles]\nclinician = {{}}\nofficer = {{}}\n\
         [break_glass]\nallowed_roles = [\"clinician\"]\nemergency_roles = [\"officer\"]\n\
         [storage]\nusers = \"config/users.toml\"\nstate = \"state\"\n\
         [[apps]]\nname = \"ehr\"\nhost = \"localhost\"\nupstream = \"{upstream}\"\n\
         [[routes]]\napp = \"ehr\"\npath = \"/logo.png\"\nallow = \"public\"\n\
         [[routes]]\napp = \"ehr\"\npath = \"/**\"\nallow_roles = [\"clinician\"]\n"
    )
}

/// Headers that differ between any two answers.
const VARYING: [&str; 4] = ["date", "x-request-id", "set-cookie", "content-length"];

#[tokio::test(flavor = "multi_thread")]
async fn head_answers_like_get_without_a_body_over_both_protocols() {
    let ehr = Ehr::start();
    let ward = Ward::start(&policy(&ehr.url()));
    let pages = [
        ("localhost", "/.ward/healthz"),
        ("localhost", "/.ward/login"),
        ("localhost", "/.ward/logged-out"),
        ("localhost", "/.ward/idle.js"),
        ("localhost", "/.ward/session"),
        ("localhost", "/.ward/officer/"),
        ("localhost", "/logo.png"),
        ("localhost", "/patients/1001/chart"),
        (WARD_HOST, "/"),
        (WARD_HOST, "/.ward/login"),
        (WARD_HOST, "/.ward/healthz"),
        (WARD_HOST, "/.ward/logged-out"),
        (WARD_HOST, "/.ward/mfa"),
        (WARD_HOST, "/.ward/enroll?token=x"),
        (WARD_HOST, "/.ward/logout"),
        (WARD_HOST, "/.ward/break-glass"),
        (WARD_HOST, "/.ward/officer/"),
    ];
    for h2 in [true, false] {
        let client = ward.client(h2);
        for (host, path) in pages {
            let url = ward.url_for(host, path);
            let get = client
                .get(&url)
                .header("accept", "text/html")
                .send()
                .await
                .unwrap();
            let head = client
                .head(&url)
                .header("accept", "text/html")
                .send()
                .await
                .unwrap_or_else(|e| panic!("HEAD {url} (h2: {h2}): {e:?}"));
            assert_eq!(head.status(), get.status(), "{url} (h2: {h2})");
            let names = |r: &reqwest::Response| {
                let mut n: Vec<String> = r
                    .headers()
                    .keys()
                    .map(|k| k.to_string())
                    .filter(|k| !VARYING.contains(&k.as_str()))
                    .collect();
                n.sort();
                n.dedup();
                n
            };
            assert_eq!(names(&head), names(&get), "{url} (h2: {h2})");
            assert_eq!(
                head.headers().get("content-type"),
                get.headers().get("content-type"),
                "{url}"
            );
            let body = head
                .bytes()
                .await
                .unwrap_or_else(|e| panic!("{url}: {e:?}"));
            assert!(body.is_empty(), "{url} (h2: {h2})");
        }
    }
}

/// Issue #11.8: over HTTP/2, an answer ward gives before reading a request's
/// body (a refusal) reaches the client whole, not with a reset stream. curl
/// (nghttp2) reports a reset stream as an error, as browsers do.
#[tokio::test(flavor = "multi_thread")]
async fn refusals_before_the_body_reach_http2_clients_whole() {
    let ehr = Ehr::start();
    let ward = Ward::start(&policy(&ehr.url()));
    let upload = ward.site.path("upload.bin");
    std::fs::write(&upload, vec![b'x'; 512 * 1024]).unwrap();
    let url = ward.url("/patients/1001/notes");
    let resolve = format!("localhost:{}:127.0.0.1", ward.port());
    let mut failures = Vec::new();
    for i in 0..20 {
        let out = std::process::Command::new("curl")
            .args([
                "-sS",
                "-k",
                "--http2",
                "--resolve",
                &resolve,
                "-o",
                "/dev/null",
            ])
            .args([
                "-w",
                "%{http_code}",
                "-H",
                "content-type: application/octet-stream",
            ])
            .arg("--data-binary")
            .arg(format!("@{}", upload.display()))
            .arg(&url)
            .output()
            .expect("this test needs curl (apt-get install curl)");
        let code = String::from_utf8_lossy(&out.stdout).to_string();
        if !out.status.success() || code != "401" {
            failures.push(format!(
                "{i}: exit {:?}, status {code}, {}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
