//! End to end: ward speaks only TLS 1.2 and 1.3 with strong cipher suites.
//! Old protocol versions and weak suites are offered with ClientHellos built
//! by hand (no modern TLS library will send them), and ward must answer each
//! with a fatal alert; the same ClientHello with a strong suite gets a
//! ServerHello, so a refusal is about the version or suite and nothing else.

use crate::common::*;
use rustls_pki_types::pem::PemObject;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A ClientHello record offering `version` (no supported_versions extension,
/// so this is the version asked for) and exactly `suites`.
fn client_hello(version: u16, suites: &[u16]) -> Vec<u8> {
    let mut ext = Vec::new();
    let mut push_ext = |kind: u16, body: &[u8]| {
        ext.extend_from_slice(&kind.to_be_bytes());
        ext.extend_from_slice(&(body.len() as u16).to_be_bytes());
        ext.extend_from_slice(body);
    };
    // server_name: localhost
    let name = b"localhost";
    let mut sni = Vec::new();
    sni.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
    sni.push(0);
    sni.extend_from_slice(&(name.len() as u16).to_be_bytes());
    sni.extend_from_slice(name);
    push_ext(0x0000, &sni);
    // supported_groups: x25519, secp256r1, secp384r1
    push_ext(0x000a, &[0, 6, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x18]);
    // ec_point_formats: uncompressed
    push_ext(0x000b, &[1, 0]);
    // signature_algorithms: ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256, rsa_pkcs1_sha256
    push_ext(0x000d, &[0, 6, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01]);
    // extended_master_secret
    push_ext(0x0017, &[]);
    // renegotiation_info (empty)
    push_ext(0xff01, &[0]);

    let mut body = Vec::new();
    body.extend_from_slice(&version.to_be_bytes());
    body.extend_from_slice(&[7u8; 32]); // random
    body.push(0); // no session id
    body.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        body.extend_from_slice(&s.to_be_bytes());
    }
    body.extend_from_slice(&[1, 0]); // compression: null only
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);

    let mut handshake = vec![1u8]; // ClientHello
    handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);

    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

/// What ward answered a ClientHello with.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    /// A ServerHello choosing this version and suite.
    ServerHello { version: u16, suite: u16 },
    /// A fatal alert with this description code.
    Alert(u8),
    /// Anything else (including nothing).
    Other(Vec<u8>),
}

async fn offer(ward: &Ward, hello: &[u8]) -> Answer {
    let mut tcp = tokio::net::TcpStream::connect(ward.addr).await.unwrap();
    tcp.write_all(hello).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    // The first record is enough: an alert or the start of the ServerHello.
    while got.len() < 5 + 44 {
        match tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => break,
        }
        if got.first() == Some(&0x15) && got.len() >= 7 {
            break;
        }
    }
    match got.as_slice() {
        [0x15, _, _, _, _, 2, code, ..] => Answer::Alert(*code),
        [0x16, _, _, _, _, 2, _, _, _, v1, v2, rest @ ..] => {
            // random (32), session id (length + bytes), then the suite.
            let sid_len = usize::from(rest[32]);
            let at = 33 + sid_len;
            Answer::ServerHello {
                version: u16::from_be_bytes([*v1, *v2]),
                suite: u16::from_be_bytes([rest[at], rest[at + 1]]),
            }
        }
        other => Answer::Other(other.to_vec()),
    }
}

const TLS10: u16 = 0x0301;
const TLS11: u16 = 0x0302;
const TLS12: u16 = 0x0303;
/// TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: strong, and fits the test key (P-256).
const STRONG: u16 = 0xc02b;
const PROTOCOL_VERSION: u8 = 70;
const HANDSHAKE_FAILURE: u8 = 40;

#[tokio::test(flavor = "multi_thread")]
async fn only_tls_1_2_and_1_3_with_strong_suites() {
    let ehr = Ehr::start();
    let ward = Ward::start(&open_policy(&ehr.url()));

    // Control: the hand-built hello works with a strong suite.
    assert_eq!(
        offer(&ward, &client_hello(TLS12, &[STRONG])).await,
        Answer::ServerHello {
            version: TLS12,
            suite: STRONG
        }
    );

    // TLS 1.0 and 1.1 are refused, whatever suites come with them.
    for version in [TLS10, TLS11, 0x0300] {
        let answer = offer(&ward, &client_hello(version, &[STRONG, 0xc009, 0x002f])).await;
        assert_eq!(
            answer,
            Answer::Alert(PROTOCOL_VERSION),
            "version {version:#06x}"
        );
    }

    // Weak suites, each alone: CBC, RSA key exchange, 3DES, RC4, NULL, export, anonymous, DHE.
    let weak: [(u16, &str); 14] = [
        (0xc009, "ECDHE-ECDSA-AES128-SHA (CBC)"),
        (0xc00a, "ECDHE-ECDSA-AES256-SHA (CBC)"),
        (0xc023, "ECDHE-ECDSA-AES128-SHA256 (CBC)"),
        (0xc013, "ECDHE-RSA-AES128-SHA (CBC)"),
        (0xc027, "ECDHE-RSA-AES128-SHA256 (CBC)"),
        (0x002f, "AES128-SHA (RSA key exchange)"),
        (0x009c, "AES128-GCM-SHA256 (RSA key exchange)"),
        (0x000a, "DES-CBC3-SHA"),
        (0xc008, "ECDHE-ECDSA-DES-CBC3-SHA"),
        (0x0005, "RC4-SHA"),
        (0xc007, "ECDHE-ECDSA-RC4-SHA"),
        (0x0002, "NULL-SHA"),
        (0x0003, "EXP-RC4-MD5"),
        (0x0034, "ADH-AES128-SHA"),
    ];
    for (suite, name) in weak {
        assert_eq!(
            offer(&ward, &client_hello(TLS12, &[suite])).await,
            Answer::Alert(HANDSHAKE_FAILURE),
            "{name}"
        );
    }
    // DHE with GCM is not weak, but ward offers no finite-field DH at all.
    assert_eq!(
        offer(&ward, &client_hello(TLS12, &[0x009e])).await,
        Answer::Alert(HANDSHAKE_FAILURE)
    );
    // Offered together, the strong suite is chosen over the weak ones.
    assert_eq!(
        offer(
            &ward,
            &client_hello(TLS12, &[0x0005, 0x002f, 0xc009, STRONG])
        )
        .await,
        Answer::ServerHello {
            version: TLS12,
            suite: STRONG
        }
    );

    // A real client: TLS 1.3 and TLS 1.2 both work, with AEAD suites only.
    for versions in [
        &[&rustls::version::TLS13][..],
        &[&rustls::version::TLS12][..],
    ] {
        let cfg = rustls::ClientConfig::builder_with_provider(ward::tls::provider())
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates({
                let mut roots = rustls::RootCertStore::empty();
                for c in rustls_pki_types::CertificateDer::pem_slice_iter(&ward.site.cert_pem()) {
                    roots.add(c.unwrap()).unwrap();
                }
                roots
            })
            .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(ward.addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
            .connect(name, tcp)
            .await
            .unwrap();
        let conn = tls.get_ref().1;
        let suite = conn.negotiated_cipher_suite().unwrap();
        let suite_name = format!("{:?}", suite.suite());
        assert!(
            suite_name.contains("GCM") || suite_name.contains("CHACHA20_POLY1305"),
            "{suite_name}"
        );
    }
}
