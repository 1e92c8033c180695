//! End to end, in front of clinical apps as a practice's IT person puts ward
//! there (issue 11): imaging downloads (DICOM, DICOMweb) caught as exports by
//! default, `Forwarded` as the app sees it, WebDAV methods, networks per role,
//! an app's shared credential, and `ward check` saying one thing per mistake.
//! The sample EHR stands in for the imaging archive (`/wado`, `/dicomweb/…`).

use crate::common::*;
use std::process::Command;
use std::time::Duration;

const STUDY: &str = "1.2.826.0.1.3680043.8.498.1";

/// WADO-URI for the instance itself, as archives' viewers link it.
const WADO_DICOM: &str = "/wado?requestType=WADO&studyUID=1.2.3&seriesUID=1.2.3.4&objectUID=1.2.3.4.5&contentType=application%2Fdicom";
/// The same instance rendered as a picture (not an export).
const WADO_JPEG: &str = "/wado?requestType=WADO&studyUID=1.2.3&seriesUID=1.2.3.4&objectUID=1.2.3.4.5&contentType=image%2Fjpeg";

/// Starts ward like `Ward::start`, with `env` added to its environment (for
/// secrets named by `*_env` settings) and `files` written in its folder first
/// (for those named by `*_file` settings, read when the policy loads).
fn start_with(policy: &str, env: &[(&str, &str)], files: &[(&str, &str)]) -> Ward {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let site = Site::new();
    for (name, text) in files {
        std::fs::write(site.path(name), text).unwrap();
    }
    let config = site.path("ward.toml");
    std::fs::write(&config, policy.replace("{server}", &server_section(&site))).unwrap();
    let mut cmd = Command::new(WARD);
    cmd.args(["serve", "--log-format", "json", "--config"])
        .arg(&config)
        .current_dir(site.dir.path());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let proc = Proc::spawn(&mut cmd);
    let line = proc
        .stderr
        .wait_for("\"listening\"", Duration::from_secs(20));
    let addr = json_field(&line, "addr").parse().unwrap();
    Ward {
        proc,
        addr,
        site,
        config,
    }
}

/// Runs `ward ARGS` in `site`, with `env`; (success, stdout, stderr).
fn ward_cmd(site: &Site, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(WARD);
    cmd.args(args).current_dir(site.dir.path());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `ward check` on `text` in a site of its own (with certificates).
fn check(text: &str, env: &[(&str, &str)]) -> (bool, String) {
    let site = Site::new();
    std::fs::write(
        site.path("ward.toml"),
        text.replace("{server}", &server_section(&site)),
    )
    .unwrap();
    let (ok, out, err) = ward_cmd(&site, &["check", "--config", "ward.toml"], env);
    (ok, format!("{out}{err}"))
}

async fn sign_in(ward: &Ward, user: &str, secret: &[u8], offset: i64) -> Browser {
    let b = Browser::new(ward);
    assert_eq!(
        sign_in_with(&b, user, PW, secret, offset).await,
        303,
        "{user}"
    );
    b
}

/// Status, whether the upstream's answer came through, and the body.
async fn fetch(b: &Browser, path: &str) -> (u16, bool, Vec<u8>) {
    let r = b.get(path).await;
    let status = r.status().as_u16();
    let upstream = r.headers().contains_key("x-upstream-target");
    (
        status,
        upstream,
        r.bytes().await.map(|b| b.to_vec()).unwrap_or_default(),
    )
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fn imaging_policy(upstream: &str, export: &str) -> String {
    format!(
        "practice = \"Test Clinic\"\n{{server}}\n\
         [roles]\nclinician = {{ export = \"block\" }}\nradiologist = {{ export = \"allow\" }}\n\
         [export]\n{export}\n\
         [[apps]]\nname = \"pacs\"\nupstream = \"{upstream}\"\n\
         [[routes]]\napp = \"pacs\"\npath = \"/**\"\nallow_roles = [\"clinician\", \"radiologist\"]\n"
    )
}

/// #11.1: with the default `[export]` types, a role whose exports are blocked
/// gets no DICOM file, no DICOMweb study, frames or metadata; pictures on screen
/// still show, and a role allowed to export gets the study. `extra_types` adds
/// to the defaults without copying them.
#[tokio::test(flavor = "multi_thread")]
async fn imaging_downloads_are_exports_by_default() {
    let ehr = Ehr::start();
    let ward = Ward::start(&imaging_policy(
        &ehr.url(),
        "extra_types = [\"application/x-chart-bundle\"]",
    ));
    let lee = enrolled_user(&ward.site, "dr_lee", &["clinician"], PW, None, None);
    let rad = enrolled_user(&ward.site, "dr_ray", &["radiologist"], PW, None, None);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let c = sign_in(&ward, "dr_lee", &lee, 0).await;
    let r = sign_in(&ward, "dr_ray", &rad, 0).await;

    let study = format!("/dicomweb/studies/{STUDY}");
    let frames = format!("/dicomweb/studies/{STUDY}/series/1.2/instances/1.2.3/frames/1");
    for path in [
        WADO_DICOM,
        study.as_str(),
        frames.as_str(),
        "/dicomweb/studies",
        "/files/custom?type=application/dicom%2Bjson",
        "/files/custom?type=multipart/related%3B+type%3D%22application/dicom%2Bxml%22",
        // The officer's extra type, beside the defaults.
        "/files/custom?type=application/x-chart-bundle",
        // A default that was there before stays.
        "/reports/patients.csv",
    ] {
        let (status, upstream, body) = fetch(&c, path).await;
        assert_eq!((status, upstream), (403, false), "clinician {path}");
        assert!(contains(&body, "Download not permitted"), "{path}");
        assert!(!contains(&body, "ELLISON"), "{path}: patient data leaked");
    }
    // Pictures on screen are not exports.
    for path in [WADO_JPEG, &format!("/dicomweb/studies/{STUDY}/rendered")] {
        let (status, upstream, _) = fetch(&c, path).await;
        assert_eq!((status, upstream), (200, true), "clinician {path}");
    }
    // The radiologist's role allows exports: the archive's answers come whole.
    let (status, upstream, body) = fetch(&r, WADO_DICOM).await;
    assert_eq!((status, upstream), (200, true));
    assert_eq!(&body[128..132], b"DICM");
    let resp = r.get(&study).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "multipart/related; type=\"application/dicom\"; boundary=dicom-part-boundary"
    );
    assert!(contains(&resp.bytes().await.unwrap(), "ELLISON^MARGARET"));
}

/// #11.1/#11.7: a type with a parameter, as an officer writes it (unquoted),
/// matches the archive's quoted answer; `types` replaces the defaults.
#[tokio::test(flavor = "multi_thread")]
async fn a_type_with_a_parameter_matches_as_the_officer_means_it() {
    let ehr = Ehr::start();
    let ward = Ward::start(&imaging_policy(
        &ehr.url(),
        "types = [\"multipart/related; type=application/dicom\"]",
    ));
    let lee = enrolled_user(&ward.site, "dr_lee", &["clinician"], PW, None, None);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let c = sign_in(&ward, "dr_lee", &lee, 0).await;
    let (status, upstream, _) = fetch(&c, &format!("/dicomweb/studies/{STUDY}")).await;
    assert_eq!((status, upstream), (403, false));
    // Only that type: the list replaced the defaults.
    let (status, upstream, _) = fetch(&c, "/files/custom?type=application/dicom").await;
    assert_eq!((status, upstream), (200, true));
}

/// #11.7: `ward check` refuses an export type that could never match, at its place.
#[test]
fn check_refuses_export_types_that_can_never_match() {
    let ehr_url = "http://127.0.0.1:9";
    for (bad, why) in [
        ("dicom", "not written as type/subtype"),
        ("multipart/related; type", "has no value"),
        ("image/*", "a '*' matches no answer"),
    ] {
        let text = imaging_policy(ehr_url, &format!("extra_types = [\"{bad}\"]"));
        let (ok, out) = check(&text, &[]);
        assert!(!ok, "{bad}: {out}");
        assert!(
            out.contains(&format!("ward.toml:11:16: export type '{bad}': ")) && out.contains(why),
            "{bad}: {out}"
        );
        assert!(out.contains("1 problem to fix"), "{out}");
    }
    let (ok, out) = check(
        &imaging_policy(
            ehr_url,
            "types = [\"multipart/related; type=application/dicom\"]",
        ),
        &[],
    );
    assert!(ok, "{out}");
}

/// #11.6: the app sees one `Forwarded`, built by ward (the client's is gone),
/// beside `X-Forwarded-*`, with `proto=https` also for `preserve_host`, and
/// builds its links to the public address from it.
#[tokio::test(flavor = "multi_thread")]
async fn apps_see_forwarded_built_by_ward() {
    let ehr = Ehr::start();
    let ward = Ward::start(&format!(
        "practice = \"Test Clinic\"\n{{server}}\n\
         [[apps]]\nname = \"pacs\"\nhost = \"ehr.localhost\"\nupstream = \"{u}\"\n\
         [[apps]]\nname = \"viewer\"\nhost = \"billing.localhost\"\nupstream = \"{u}\"\npreserve_host = true\n\
         [[routes]]\napp = \"pacs\"\npath = \"/**\"\nallow = \"public\"\n\
         [[routes]]\napp = \"viewer\"\npath = \"/**\"\nallow = \"public\"\n",
        u = ehr.url()
    ));
    let port = ward.port();
    for (host, sent_host) in [
        ("ehr.localhost", ehr.addr.to_string()),
        ("billing.localhost", format!("billing.localhost:{port}")),
    ] {
        let b = Browser::on(&ward, host);
        b.header("forwarded", "for=6.6.6.6;proto=http;host=evil.example");
        b.header("x-forwarded-proto", "http");
        let v: serde_json::Value = b.get("/debug/headers").await.json().await.unwrap();
        let seen = seen_headers(&v);
        let all = |name: &str| -> Vec<&str> {
            seen.iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .collect()
        };
        assert_eq!(
            all("forwarded"),
            [format!("for=127.0.0.1;proto=https;host=\"{host}:{port}\"").as_str()],
            "{host}"
        );
        assert_eq!(all("x-forwarded-proto"), ["https"], "{host}");
        assert_eq!(all("x-forwarded-for"), ["127.0.0.1"], "{host}");
        let public = format!("{host}:{port}");
        assert_eq!(all("x-forwarded-host"), [public.as_str()], "{host}");
        assert_eq!(all("host"), [sent_host.as_str()], "{host}");
        // The archive's links point at the public address, over https.
        let text = b.get("/dicomweb/studies").await.text().await.unwrap();
        assert!(
            text.contains(&format!("https://{host}:{port}/dicomweb/studies/{STUDY}")),
            "{text}"
        );
        assert!(!text.contains("http://127.0.0.1"), "{text}");
    }
}

/// #11.7: WebDAV methods can be listed in `methods`, and listing them does not
/// let `DELETE` through.
#[tokio::test(flavor = "multi_thread")]
async fn webdav_methods_can_be_allowed_without_delete() {
    let ehr = Ehr::start();
    let ward = Ward::start(&format!(
        "practice = \"Test Clinic\"\n{{server}}\n\
         [[apps]]\nname = \"files\"\nupstream = \"{}\"\n\
         [[routes]]\napp = \"files\"\npath = \"/echo/dav/**\"\nallow = \"public\"\n\
         methods = [\"GET\", \"PROPFIND\", \"PROPPATCH\", \"MKCOL\", \"COPY\", \"MOVE\", \"LOCK\", \"UNLOCK\", \"REPORT\"]\n",
        ehr.url()
    ));
    let client = ward.client(false);
    for method in [
        "PROPFIND",
        "PROPPATCH",
        "MKCOL",
        "COPY",
        "MOVE",
        "LOCK",
        "UNLOCK",
        "REPORT",
        "GET",
    ] {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = client
            .request(m, ward.url("/echo/dav/notes/"))
            .header("depth", "1");
        if method != "GET" {
            req = req.body("<?xml version=\"1.0\"?><propfind xmlns=\"DAV:\"><allprop/></propfind>");
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200, "{method}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["method"], method);
    }
    for method in ["DELETE", "PUT", "POST"] {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = client
            .request(m, ward.url("/echo/dav/notes/a"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{method}");
        assert!(!r.headers().contains_key("x-upstream-target"), "{method}");
    }
}

/// #11.7: `allow_from` on a role: its people use the apps only from its
/// networks (here the client is 127.0.0.1), and `ward explain` says which role.
#[tokio::test(flavor = "multi_thread")]
async fn a_roles_networks_bind_everyone_with_the_role() {
    let ehr = Ehr::start();
    let ward = Ward::start(&format!(
        "practice = \"Test Clinic\"\n{{server}}\n\
         [networks]\nacme_vpn = [\"198.51.100.7/32\"]\nthis_machine = [\"127.0.0.0/8\"]\n\
         [roles]\nclinician = {{ allow_from = [\"this_machine\"] }}\nvendor_biller = {{ allow_from = [\"acme_vpn\"] }}\n\
         [[apps]]\nname = \"ehr\"\nupstream = \"{}\"\n\
         [[routes]]\napp = \"ehr\"\npath = \"/**\"\nallow_roles = [\"clinician\", \"vendor_biller\"]\n",
        ehr.url()
    ));
    let lee = enrolled_user(&ward.site, "dr_lee", &["clinician"], PW, None, None);
    let vic = enrolled_user(
        &ward.site,
        "vic",
        &["vendor_biller"],
        PW,
        Some("Acme Billing"),
        Some("2099-12-31"),
    );
    // Two roles: the vendor's network binds even beside a role that allows here.
    let both = enrolled_user(
        &ward.site,
        "val",
        &["clinician", "vendor_biller"],
        PW,
        Some("Acme Billing"),
        Some("2099-12-31"),
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (status, upstream, _) = fetch(
        &sign_in(&ward, "dr_lee", &lee, 0).await,
        "/patients/1001/chart",
    )
    .await;
    assert_eq!((status, upstream), (200, true));
    // From here, not the vendor's network: the sign-in itself is refused, as for a
    // person's own networks (and the proxy would refuse the pages; see explain below).
    for (user, secret) in [("vic", &vic), ("val", &both)] {
        let b = Browser::new(&ward);
        assert_eq!(sign_in_with(&b, user, PW, secret, 0).await, 401, "{user}");
        let (status, upstream, _) = fetch(&b, "/patients/1001/chart").await;
        assert_ne!(status, 200, "{user}");
        assert!(!upstream, "{user}");
    }

    let explain = |ip: &str| {
        let (ok, out, err) = ward_cmd(
            &ward.site,
            &[
                "explain",
                "--config",
                "ward.toml",
                "--user",
                "vic",
                "--ip",
                ip,
                "GET",
                "/patients/1001/chart",
            ],
            &[],
        );
        assert!(ok, "{err}");
        out
    };
    let out = explain("127.0.0.1");
    assert!(out.starts_with("Decision: DENY (network)"), "{out}");
    assert!(
        out.contains("[FAIL] network (role's allow_from): 127.0.0.1 is not in the networks of role vendor_biller"),
        "{out}"
    );
    let out = explain("198.51.100.7");
    assert!(out.starts_with("Decision: ALLOW"), "{out}");
    assert!(
        out.contains("[pass] network (role's allow_from): 198.51.100.7 is in the networks of role vendor_biller"),
        "{out}"
    );
}

/// #11.7: an app with one shared login gets ward's credential (HTTP Basic from
/// the environment, or a header from a file), never the browser's; the browser
/// is never asked for it, and it is in no answer header, log line or audit record.
#[tokio::test(flavor = "multi_thread")]
async fn apps_with_a_shared_login_get_wards_credential_only() {
    let ehr = Ehr::start();
    let password = "s3cret-Shared-PACS";
    // base64("ward:s3cret-Shared-PACS")
    let basic = "Basic d2FyZDpzM2NyZXQtU2hhcmVkLVBBQ1M=";
    let api_key = "db-key-7f3a9c";
    let policy = format!(
        "practice = \"Test Clinic\"\n{{server}}\n\
         [[apps]]\nname = \"pacs\"\nhost = \"localhost\"\nupstream = \"{u}\"\n\
         upstream_auth = {{ basic_user = \"ward\", basic_password_env = \"WARD_TEST_PACS_PASSWORD\" }}\n\
         [[apps]]\nname = \"db\"\nhost = \"billing.localhost\"\nupstream = \"{u}\"\n\
         upstream_auth = {{ header = \"X-Api-Key\", value_file = \"db.key\" }}\n\
         [[apps]]\nname = \"ehr\"\nhost = \"ehr.localhost\"\nupstream = \"{u}\"\n\
         [[routes]]\napp = \"pacs\"\npath = \"/**\"\nallow = \"public\"\n\
         [[routes]]\napp = \"db\"\npath = \"/**\"\nallow = \"public\"\n\
         [[routes]]\napp = \"ehr\"\npath = \"/**\"\nallow = \"public\"\n",
        u = ehr.url()
    );
    // `ward check` names the missing variable (and never asks for the secret in the policy).
    let site = Site::new();
    std::fs::write(
        site.path("ward.toml"),
        policy.replace("{server}", &server_section(&site)),
    )
    .unwrap();
    std::fs::write(site.path("db.key"), format!("{api_key}\n")).unwrap();
    let (ok, _, err) = ward_cmd(&site, &["check", "--config", "ward.toml"], &[]);
    assert!(!ok);
    assert!(
        err.contains("the environment variable WARD_TEST_PACS_PASSWORD holding app 'pacs's basic_password is not set"),
        "{err}"
    );
    assert!(err.contains("1 problem to fix"), "{err}");
    let env = [("WARD_TEST_PACS_PASSWORD", password)];
    let (ok, out, err) = ward_cmd(&site, &["check", "--config", "ward.toml"], &env);
    assert!(ok && out.contains("the policy is valid"), "{out}{err}");

    let key_file = format!("{api_key}\n");
    let ward = start_with(&policy, &env, &[("db.key", &key_file)]);

    let seen = |v: &serde_json::Value, name: &str| -> Vec<String> {
        seen_headers(v)
            .into_iter()
            .filter(|(n, _)| n.replace('_', "-") == name)
            .map(|(_, v)| v)
            .collect()
    };
    // The browser tries to send its own credentials, in both spellings.
    let browser = |host: &str| {
        let b = Browser::on(&ward, host);
        b.header("authorization", "Basic bWU6bXktb3du");
        b.header("x-api-key", "my-own-key");
        b.header("x_api_key", "my-own-key");
        b
    };
    let mut answers = Vec::new();
    let pacs = browser("localhost");
    let r = pacs.get("/debug/headers").await;
    assert_eq!(r.status(), 200);
    answers.push(format!("{:?}", r.headers()));
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(seen(&v, "authorization"), [basic]);

    let db = browser("billing.localhost");
    let r = db.get("/debug/headers").await;
    answers.push(format!("{:?}", r.headers()));
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(seen(&v, "x-api-key"), [api_key]);
    // That app's credential is the header; the browser's Authorization is its own business.
    assert_eq!(seen(&v, "authorization"), ["Basic bWU6bXktb3du"]);

    // An app without upstream_auth gets what the browser sent, as before.
    let v: serde_json::Value = browser("ehr.localhost")
        .get("/debug/headers")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(seen(&v, "authorization"), ["Basic bWU6bXktb3du"]);

    // The browser is never asked for the shared login (it would be the app's password).
    let r = pacs.get("/challenge").await;
    assert_eq!(r.status(), 401);
    assert!(!r.headers().contains_key("www-authenticate"));
    answers.push(format!("{:?}", r.headers()));
    let r = browser("ehr.localhost").get("/challenge").await;
    assert!(r.headers().contains_key("www-authenticate"));
    ward.proc
        .stderr
        .wait_for("refused ward's shared credential", Duration::from_secs(5));

    // In no answer header, log line or audit record.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let logs = ward.logs().join("\n");
    let audit = audit_text(&ward.site);
    for secret in [password, basic, "d2FyZDpzM2NyZXQtU2hhcmVkLVBBQ1M", api_key] {
        for (what, text) in [("log", &logs), ("audit", &audit)] {
            assert!(!text.contains(secret), "{what} holds {secret}");
        }
        for a in &answers {
            assert!(!a.contains(secret), "an answer header holds {secret}: {a}");
        }
    }
}

/// #11.7: one mistake, one error: a user name in an app's upstream is reported
/// once, not again for every route that names the app.
#[test]
fn one_mistake_in_an_app_is_one_error() {
    let policy = "practice = \"Test Clinic\"\n{server}\n[roles]\nclinician = {}\n\
        [[apps]]\nname = \"pacs\"\nupstream = \"http://admin@10.0.0.5:8042\"\n\
        [[routes]]\napp = \"pacs\"\npath = \"/wado\"\nallow_roles = [\"clinician\"]\n\
        [[routes]]\napp = \"pacs\"\npath = \"/dicomweb/**\"\nallow_roles = [\"clinician\"]\n\
        [[routes]]\napp = \"pacs\"\npath = \"/**\"\nallow_roles = [\"clinician\"]\n";
    let (ok, out) = check(policy, &[]);
    assert!(!ok);
    assert!(
        out.contains("ward.toml:11:12: upstream 'http://admin@10.0.0.5:8042' must not contain a user name or password"),
        "{out}"
    );
    assert!(out.contains("1 problem to fix"), "{out}");
    assert!(!out.contains("unknown app"), "{out}");
}

/// #11.7: the officer-role warnings are for a console that is turned on
/// (`[server] ward_host`); a policy used from the command line only gets none.
#[test]
fn officer_warnings_only_with_a_console() {
    let cli_only = "practice = \"Test Clinic\"\n{server}\n[roles]\nclinician = {}\n\
        [[apps]]\nname = \"ehr\"\nhost = \"ehr.localhost\"\nupstream = \"http://127.0.0.1:9\"\n\
        [[routes]]\napp = \"ehr\"\npath = \"/**\"\nallow_roles = [\"clinician\"]\n";
    let (ok, out) = check(cli_only, &[]);
    assert!(ok, "{out}");
    assert!(!out.contains("officer"), "{out}");
    assert!(!out.contains("warning"), "{out}");
    let console = cli_only.replace("{server}", "{server}ward_host = \"ward.localhost\"\n");
    let (ok, out) = check(&console, &[]);
    assert!(ok, "{out}");
    assert!(
        out.contains(
            "warning: the policy has no role 'officer', so nobody can use the officer's console"
        ),
        "{out}"
    );
}
