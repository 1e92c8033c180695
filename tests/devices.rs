//! Enrolled devices (client certificates from the practice's device CA): a
//! route, a role or an organization can require one; its subject goes to the
//! audit trail and upstream.

mod common;

use common::*;
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
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
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
