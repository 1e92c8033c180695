//! Enrolled devices (client certificates from the practice's device CA): a
//! route, a role or an organization can require one; its subject goes to the
//! audit trail and upstream.

use crate::common::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use std::time::Duration;

const PW: &str = "maple orbit candle harbor 42";

/// A device CA (written to `dir`) and a client certificate + key signed by it.
fn device_ca(
    dir: &std::path::Path,
) -> (
    rustls_pki_types::CertificateDer<'static>,
    rustls_pki_types::PrivateKeyDer<'static>,
) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Acme Billing device CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    std::fs::write(dir.join("device-ca.pem"), ca_cert.pem()).unwrap();
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let dev_key = KeyPair::generate().unwrap();
    let mut dev_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    dev_params
        .distinguished_name
        .push(DnType::CommonName, "acme-laptop-17");
    dev_params
        .distinguished_name
        .push(DnType::OrganizationName, "Acme Billing");
    let dev_cert = dev_params.signed_by(&dev_key, &issuer).unwrap();
    (
        dev_cert.der().clone(),
        rustls_pki_types::PrivateKeyDer::try_from(dev_key.serialize_der()).unwrap(),
    )
}

/// A client presenting `identity` (a device certificate), or none.
fn client(
    ward: &Ward,
    identity: Option<(
        rustls_pki_types::CertificateDer<'static>,
        rustls_pki_types::PrivateKeyDer<'static>,
    )>,
) -> Browser {
    client_over(ward, identity, b"http/1.1")
}

/// [`client`] speaking `alpn` (HTTP/2 keeps one connection for every request).
fn client_over(
    ward: &Ward,
    identity: Option<(
        rustls_pki_types::CertificateDer<'static>,
        rustls_pki_types::PrivateKeyDer<'static>,
    )>,
    alpn: &[u8],
) -> Browser {
    use rustls_pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&ward.site.cert_pem()) {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(ward::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut cfg = match identity {
        Some((cert, key)) => builder.with_client_auth_cert(vec![cert], key).unwrap(),
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![alpn.to_vec()];
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(cfg)
        .redirect(reqwest::redirect::Policy::none())
        .resolve("localhost", ward.addr)
        .build()
        .unwrap();
    Browser::with_client(http, ward.url(""))
}

async fn sign_in(b: &Browser, user: &str, secret: &[u8], offset: i64) {
    assert_eq!(
        sign_in_with(b, user, PW, secret, offset).await,
        303,
        "{user}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn enrolled_devices_are_required_where_the_policy_says() {
    let up = Upstream::http().await;
    let site = Site::new();
    let (cert, key) = device_ca(site.dir.path());
    let policy = format!(
        "practice = \"Test Clinic\"\n{server}device_ca = \"{ca}\"\ndevice_orgs = [\"Acme Billing\"]\n\
         [roles]\nclinician = {{}}\nvendor_biller = {{}}\n\
         [storage]\nusers = \"config/users.toml\"\nstate = \"state\"\n\
         [[apps]]\nname = \"ehr\"\nupstream = \"{up}\"\n\
         [[routes]]\napp = \"ehr\"\npath = \"/**\"\nallow_roles = [\"clinician\", \"vendor_biller\"]\n\
         [[routes]]\napp = \"ehr\"\npath = \"/admin/**\"\nallow_roles = [\"clinician\"]\ndevice = \"required\"\n",
        server = server_section(&site),
        ca = site.path("device-ca.pem").display(),
        up = up.url,
    );
    std::fs::write(site.path("ward.toml"), policy).unwrap();
    let config = site.path("ward.toml");
    let ward = Ward::start_in(site, config);
    let lee = enrolled_user(&ward.site, "dr_lee", &["clinician"], PW, None, None);
    let vic = enrolled_user(
        &ward.site,
        "vic",
        &["vendor_biller"],
        PW,
        Some("Acme Billing"),
        Some("2099-12-31"),
    );
    tokio::time::sleep(Duration::from_millis(700)).await;

    // A clinician without a device: ordinary pages yes, the device-only route no.
    let plain = client(&ward, None);
    sign_in(&plain, "dr_lee", &lee, 0).await;
    assert_eq!(plain.get("/patients/1001/chart").await.status(), 200);
    let r = plain.get("/admin/x").await;
    assert_eq!(r.status(), 403);
    assert_eq!(audit_of(&ward.site, &request_id(&r))["reason"], "device");
    assert!(r.text().await.unwrap().contains("enrolled"));
    assert!(up.saw("/admin/x").is_empty());

    // The same person from an enrolled device reaches it, and the app learns the device.
    let device = client(&ward, Some((cert.clone(), key.clone_key())));
    sign_in(&device, "dr_lee", &lee, 30).await;
    assert_eq!(device.get("/admin/x").await.status(), 200);
    let seen = up.saw("/admin/x");
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0]
            .header("x-ward-device")
            .is_some_and(|d| d.contains("acme-laptop-17")),
        "{seen:?}"
    );

    // The device session's cookie, copied to a connection without the certificate, does
    // not carry the device with it.
    let copy = client(&ward, None);
    copy.set_cookie(
        "__Host-ward-session",
        &device.cookie("__Host-ward-session").unwrap(),
    );
    let r = copy.get("/admin/x").await;
    assert_eq!(r.status(), 403);
    assert_eq!(audit_of(&ward.site, &request_id(&r))["reason"], "device");
    assert_eq!(up.saw("/admin/x").len(), 1, "the copy reached the app");
    // ...though it is a live session (the control): ordinary pages work with it.
    assert_eq!(copy.get("/patients/1001/chart").await.status(), 200);

    // A vendor's staff (their organization requires devices) cannot work without one.
    let v_plain = client(&ward, None);
    sign_in(&v_plain, "vic", &vic, 0).await;
    let r = v_plain.get("/patients/1001/chart").await;
    assert_eq!(r.status(), 403);
    assert_eq!(audit_of(&ward.site, &request_id(&r))["reason"], "device");
    let v_dev = client(&ward, Some((cert, key)));
    sign_in(&v_dev, "vic", &vic, 30).await;
    assert_eq!(v_dev.get("/patients/1001/chart").await.status(), 200);
    // vic's device session, copied to a connection without the certificate: refused.
    let copy = client(&ward, None);
    copy.set_cookie(
        "__Host-ward-session",
        &v_dev.cookie("__Host-ward-session").unwrap(),
    );
    let r = copy.get("/patients/2/chart").await;
    assert_eq!(r.status(), 403);
    assert_eq!(audit_of(&ward.site, &request_id(&r))["reason"], "device");
    assert!(up.saw("/patients/2/chart").is_empty());

    // A certificate from another CA ends the handshake.
    let other = device_ca(tempfile::tempdir().unwrap().path());
    let stranger = client(&ward, Some(other));
    let failed = tokio::time::timeout(Duration::from_secs(10), async {
        let form = stranger.try_get("/.ward/login").await;
        form.is_err()
    })
    .await
    .unwrap();
    assert!(failed, "a certificate from a foreign CA was accepted");

    // The device subject is in the audit trail.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let trail = audit_text(&ward.site);
    assert!(
        trail.contains("device: CN=acme-laptop-17"),
        "no device subject in the audit trail"
    );
}

/// The practice's device CA, kept to enroll devices and revoke them.
struct DeviceCa {
    params: CertificateParams,
    key: KeyPair,
}

type Identity = (
    rustls_pki_types::CertificateDer<'static>,
    rustls_pki_types::PrivateKeyDer<'static>,
);

impl DeviceCa {
    /// A new CA called `name`, written to `dir/device-ca.pem`.
    fn new(dir: &std::path::Path, name: &str) -> DeviceCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.join("device-ca.pem"), cert.pem()).unwrap();
        DeviceCa { params, key }
    }

    /// A device certificate with `serial`, naming `people` (UID attributes).
    fn enroll(&self, name: &str, people: &[&str], serial: u8) -> Identity {
        let issuer = Issuer::from_params(&self.params, &self.key);
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        for p in people {
            // UID (userId, 0.9.2342.19200300.100.1.1): whose device it is.
            params.distinguished_name.push(
                DnType::CustomDnType(vec![0, 9, 2342, 19200300, 100, 1, 1]),
                *p,
            );
        }
        params.serial_number = Some(rcgen::SerialNumber::from(vec![serial]));
        let cert = params.signed_by(&key, &issuer).unwrap();
        (
            cert.der().clone(),
            rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
    }

    /// A CRL (PEM) revoking the certificates with these serials.
    fn crl(&self, serials: &[u8], number: u8) -> String {
        let issuer = Issuer::from_params(&self.params, &self.key);
        let params = rcgen::CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2026, 1, 1),
            next_update: rcgen::date_time_ymd(2099, 1, 1),
            crl_number: rcgen::SerialNumber::from(vec![number]),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from(vec![*s]),
                    revocation_time: rcgen::date_time_ymd(2026, 1, 2),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        params.signed_by(&issuer).unwrap().pem().unwrap()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn devices_tied_to_people_serve_only_them_and_revoked_ones_are_refused_after_a_reload() {
    let up = Upstream::http().await;
    let site = Site::new();
    // A vendor's authority too, in the same file, but no revocation list of its own.
    let vendor_dir = tempfile::tempdir().unwrap();
    let vendor_ca = DeviceCa::new(vendor_dir.path(), "Acme Billing device CA");
    let ca = DeviceCa::new(site.dir.path(), "Test Clinic device CA");
    let both = std::fs::read_to_string(site.path("device-ca.pem")).unwrap()
        + &std::fs::read_to_string(vendor_dir.path().join("device-ca.pem")).unwrap();
    std::fs::write(site.path("device-ca.pem"), both).unwrap();
    let crl = site.path("device-crl.pem");
    std::fs::write(&crl, ca.crl(&[], 1)).unwrap();
    let policy = format!(
        "practice = \"Test Clinic\"\n{server}device_ca = \"{ca}\"\ndevice_crl = \"{crl}\"\n\
         [roles]\nclinician = {{}}\nfrontdesk = {{ device = \"own\" }}\n\
         [storage]\nusers = \"config/users.toml\"\nstate = \"state\"\n\
         [[apps]]\nname = \"ehr\"\nupstream = \"{up}\"\n\
         [[routes]]\napp = \"ehr\"\npath = \"/**\"\nallow_roles = [\"clinician\", \"frontdesk\"]\n\
         [[routes]]\napp = \"ehr\"\npath = \"/prescribe/**\"\nallow_roles = [\"clinician\"]\ndevice = \"own\"\n",
        server = server_section(&site),
        ca = site.path("device-ca.pem").display(),
        crl = crl.display(),
        up = up.url,
    );
    std::fs::write(site.path("ward.toml"), &policy).unwrap();
    let config = site.path("ward.toml");
    let ward = Ward::start_in(site, config);
    let lee = enrolled_user(&ward.site, "dr_lee", &["clinician"], PW, None, None);
    let ray = enrolled_user(&ward.site, "dr_ray", &["clinician"], PW, None, None);
    let kim = enrolled_user(&ward.site, "fd_kim", &["frontdesk"], PW, None, None);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let lees_laptop = ca.enroll("lee-laptop", &["dr_lee"], 1);
    let desk_pc = ca.enroll("frontdesk-pc-1", &["role:frontdesk"], 2);
    let shared_pc = ca.enroll("hall-pc", &[], 3);

    // Dr Lee on his own laptop: the own-device route opens, and the device is in the trail.
    let on_lees = client(
        &ward,
        Some((lees_laptop.0.clone(), lees_laptop.1.clone_key())),
    );
    sign_in(&on_lees, "dr_lee", &lee, 0).await;
    let r = on_lees.get("/prescribe/1").await;
    assert_eq!(r.status(), 200);
    let rec = audit_of(&ward.site, &request_id(&r));
    assert!(
        rec["detail"].as_str().unwrap().contains("CN=lee-laptop"),
        "{rec}"
    );

    // Dr Ray on Dr Lee's laptop: refused everywhere, not only on the own-device route.
    let ray_on_lees = client(
        &ward,
        Some((lees_laptop.0.clone(), lees_laptop.1.clone_key())),
    );
    sign_in(&ray_on_lees, "dr_ray", &ray, 0).await;
    for path in ["/prescribe/1", "/patients/1/chart"] {
        let r = ray_on_lees.get(path).await;
        assert_eq!(r.status(), 403, "{path}");
        let rec = audit_of(&ward.site, &request_id(&r));
        assert_eq!(rec["reason"], "device-other-person", "{rec}");
    }
    assert!(up.saw("/patients/1/chart").is_empty());
    // On a device enrolled to nobody in particular: ordinary pages yes, own-device route no.
    let ray_on_hall = client(&ward, Some(shared_pc));
    sign_in(&ray_on_hall, "dr_ray", &ray, 30).await;
    assert_eq!(ray_on_hall.get("/patients/2/chart").await.status(), 200);
    let r = ray_on_hall.get("/prescribe/2").await;
    assert_eq!(r.status(), 403);
    let rec = audit_of(&ward.site, &request_id(&r));
    assert_eq!(rec["reason"], "device-other-person", "{rec}");

    // The front desk's role needs its own device: the desk PC (enrolled to the role) yes,
    // Dr Lee's laptop or no device at all, no.
    let kim_on_desk = client(&ward, Some(desk_pc));
    sign_in(&kim_on_desk, "fd_kim", &kim, -30).await;
    assert_eq!(kim_on_desk.get("/patients/3/chart").await.status(), 200);
    let kim_on_lees = client(
        &ward,
        Some((lees_laptop.0.clone(), lees_laptop.1.clone_key())),
    );
    sign_in(&kim_on_lees, "fd_kim", &kim, 0).await;
    let r = kim_on_lees.get("/patients/4/chart").await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        audit_of(&ward.site, &request_id(&r))["reason"],
        "device-other-person"
    );
    let kim_plain = client(&ward, None);
    sign_in(&kim_plain, "fd_kim", &kim, 30).await;
    let r = kim_plain.get("/patients/4/chart").await;
    assert_eq!(r.status(), 403);
    assert_eq!(audit_of(&ward.site, &request_id(&r))["reason"], "device");
    assert!(up.saw("/patients/4/chart").is_empty());

    // `ward explain` says the same about whose device it is.
    let explain = |user: &str, device_of: &str, path: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ward"))
            .current_dir(ward.site.dir.path())
            .args([
                "explain",
                "--config",
                "ward.toml",
                "--ip",
                "127.0.0.1",
                "--user",
                user,
            ])
            .args([
                "--device-of",
                device_of,
                "GET",
                &format!("https://localhost{path}"),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let text = explain("dr_ray", "dr_lee", "/patients/1/chart");
    assert!(
        text.contains("DENY") && text.contains("enrolled to dr_lee"),
        "{text}"
    );
    assert!(explain("dr_lee", "dr_lee", "/prescribe/1").contains("ALLOW"));

    // The officer revokes Dr Lee's laptop in the CRL file: after the reload it is refused
    // at once, on the connection already open, and a new connection cannot be made with it.
    assert_eq!(on_lees.get("/patients/5/chart").await.status(), 200);
    std::fs::write(&crl, ca.crl(&[1], 2)).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let refused = loop {
        let r = match on_lees.try_get("/patients/5/chart").await {
            Ok(r) => r,
            // A new connection would fail its handshake; this one was open before.
            Err(e) => panic!("the open connection was lost: {e:?}"),
        };
        if r.status() == 403 {
            break r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the revoked laptop still works"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let rec = audit_of(&ward.site, &request_id(&refused));
    assert_eq!(rec["reason"], "device-revoked", "{rec}");
    assert!(audit_text(&ward.site).contains("policy-reloaded"));
    let fresh = client(&ward, Some(lees_laptop));
    let failed = tokio::time::timeout(Duration::from_secs(10), async {
        fresh.try_get("/.ward/login").await.is_err()
    })
    .await
    .unwrap();
    assert!(
        failed,
        "a revoked device certificate was accepted on a new connection"
    );
    // A device from an authority without a list in the file cannot connect: ward cannot
    // tell whether it was revoked.
    let vendor_laptop = client(&ward, Some(vendor_ca.enroll("acme-laptop-1", &[], 9)));
    let failed = tokio::time::timeout(Duration::from_secs(10), async {
        vendor_laptop.try_get("/.ward/login").await.is_err()
    })
    .await
    .unwrap();
    assert!(
        failed,
        "a device whose authority has no revocation list was accepted"
    );
    // Devices not on the list go on working.
    assert_eq!(ray_on_hall.get("/patients/6/chart").await.status(), 200);

    // A CRL file that does not read is not taken: the last good list stays in force.
    std::fs::write(&crl, "not a CRL").unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(audit_text(&ward.site).contains("policy-rejected"));
    assert_eq!(on_lees.get("/patients/7/chart").await.status(), 403);
    assert_eq!(ray_on_hall.get("/patients/7/chart").await.status(), 200);
}

#[test]
fn ward_check_reads_the_revoked_devices_file() {
    let site = Site::new();
    let ca = DeviceCa::new(site.dir.path(), "Test Clinic device CA");
    let good = ca.crl(&[1], 1);
    let policy = format!(
        "practice = \"Test Clinic\"\n{server}device_ca = \"{ca}\"\ndevice_crl = \"{crl}\"\n\
         [roles]\nclinician = {{}}\n\
         [[apps]]\nname = \"ehr\"\nupstream = \"http://127.0.0.1:9\"\n\
         [[routes]]\napp = \"ehr\"\npath = \"/**\"\nallow_roles = [\"clinician\"]\n",
        server = server_section(&site),
        ca = site.path("device-ca.pem").display(),
        crl = site.path("device-crl.pem").display(),
    );
    std::fs::write(site.path("ward.toml"), &policy).unwrap();
    let check = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ward"))
            .current_dir(site.dir.path())
            .args(["check", "--config", "ward.toml"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code(), text)
    };
    std::fs::write(site.path("device-crl.pem"), &good).unwrap();
    let (code, text) = check();
    assert_eq!(code, Some(0), "{text}");
    let line = policy
        .lines()
        .position(|l| l.starts_with("device_crl"))
        .unwrap()
        + 1;
    for (content, want) in [
        ("not a CRL".to_string(), "no PEM revocation list"),
        (
            good.replacen("-----\n", "-----\nAAAA", 1),
            "cannot read the revoked devices file (CRL)",
        ),
    ] {
        std::fs::write(site.path("device-crl.pem"), content).unwrap();
        let (code, text) = check();
        assert_eq!(code, Some(1), "{text}");
        assert!(text.contains(&format!("ward.toml:{line}:14:")), "{text}");
        assert!(text.contains(want), "{text}");
    }
    std::fs::remove_file(site.path("device-crl.pem")).unwrap();
    let (code, text) = check();
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("device-crl.pem"), "{text}");
}
