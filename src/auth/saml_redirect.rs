//! The SAML HTTP-Redirect binding (SAML bindings §3.4): a message deflated and base64'd into
//! the query string, and its signature (§3.4.4.1), which covers the exact query text of
//! `SAMLRequest`/`SAMLResponse`, `RelayState` and `SigAlg`, in that order, as sent. The
//! signature's cryptography is aws-lc-rs's; this module only lays out the octets.

use crate::auth::saml_error::SamlError;
use crate::auth::saml_key::SpKey;
use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use std::io::{Read, Write};

/// The `SigAlg` ward signs with.
pub const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
/// A deflated message larger than this (query text) is refused unread.
const MAX_QUERY: usize = 64 * 1024;
/// An inflated message larger than this is refused.
const MAX_XML: u64 = 256 * 1024;

fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The address `dest` carrying `xml` as `param` (`SAMLRequest` or `SAMLResponse`) and
/// `relay`, signed with `key` when given.
pub fn encode(
    dest: &str,
    param: &str,
    xml: &str,
    relay: Option<&str>,
    key: Option<&SpKey>,
) -> Result<String, SamlError> {
    let failed = |what: &str| SamlError::Request(what.to_string());
    let mut deflated = Vec::new();
    {
        let mut enc =
            flate2::write::DeflateEncoder::new(&mut deflated, flate2::Compression::default());
        enc.write_all(xml.as_bytes())
            .map_err(|_| failed("compressing"))?;
        enc.finish().map_err(|_| failed("compressing"))?;
    }
    let mut q = format!(
        "{param}={}",
        form_encode(&data_encoding::BASE64.encode(&deflated))
    );
    if let Some(r) = relay.filter(|r| !r.is_empty()) {
        q.push_str(&format!("&RelayState={}", form_encode(r)));
    }
    if let Some(k) = key {
        q.push_str(&format!("&SigAlg={}", form_encode(RSA_SHA256)));
        let sig = k.sign(q.as_bytes()).ok_or_else(|| failed("signing"))?;
        q.push_str(&format!(
            "&Signature={}",
            form_encode(&data_encoding::BASE64.encode(&sig))
        ));
    }
    let mut url = url::Url::parse(dest).map_err(|_| failed("the IdP's address"))?;
    // An address with a query of its own keeps it; the signature covers only SAML's part.
    let full = match url.query() {
        Some(existing) if !existing.is_empty() => format!("{existing}&{q}"),
        _ => q,
    };
    url.set_query(Some(&full));
    Ok(url.to_string())
}

/// A message received by the HTTP-Redirect binding, not yet trusted.
#[derive(Debug)]
pub struct Received {
    /// The message's XML.
    pub xml: String,
    /// `RelayState`, decoded.
    pub relay: Option<String>,
    /// `SigAlg` (decoded), the signature, and the octets it covers; None when unsigned.
    signed: Option<(String, Vec<u8>, String)>,
}

/// Reads `param` (and `RelayState`, `SigAlg`, `Signature`) from the raw query text `raw`.
/// Any of them twice is refused: which one a checker and a reader take could differ.
pub fn receive(raw: &str, param: &str) -> Result<Received, SamlError> {
    if raw.len() > MAX_QUERY {
        return Err(SamlError::Malformed("too large"));
    }
    let mut found: [Option<&str>; 4] = [None; 4];
    let names = [param, "RelayState", "SigAlg", "Signature"];
    for part in raw.split('&') {
        let (name, _) = part.split_once('=').unwrap_or((part, ""));
        if let Some(i) = names.iter().position(|n| *n == name) {
            if found[i].is_some() {
                return Err(SamlError::Malformed("a parameter given twice"));
            }
            found[i] = Some(part);
        }
    }
    let value = |part: Option<&str>| -> Option<String> {
        let (_, v) = part?.split_once('=')?;
        Some(
            url::form_urlencoded::parse(format!("v={v}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default(),
        )
    };
    let message = value(found[0]).ok_or(SamlError::Malformed("no SAML message"))?;
    let deflated = base64_lenient(&message)?;
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(&deflated[..])
        .take(MAX_XML + 1)
        .read_to_string(&mut xml)
        .map_err(|_| SamlError::Malformed("not deflated UTF-8"))?;
    if xml.len() as u64 > MAX_XML {
        return Err(SamlError::Malformed("too large"));
    }
    let signed = match (found[2], found[3]) {
        (None, None) => None,
        (Some(alg_part), Some(_)) => {
            let alg = value(Some(alg_part)).unwrap_or_default();
            let sig = data_encoding::BASE64
                .decode(value(found[3]).unwrap_or_default().as_bytes())
                .map_err(|_| SamlError::Malformed("the signature is not base64"))?;
            // §3.4.4.1: the parameters as received, in this order.
            let octets = [found[0], found[1], Some(alg_part)]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("&");
            Some((alg, sig, octets))
        }
        _ => {
            return Err(SamlError::Malformed(
                "SigAlg without Signature, or the reverse",
            ));
        }
    };
    Ok(Received {
        xml,
        relay: value(found[1]),
        signed,
    })
}

impl Received {
    /// Checks the signature against the IdP's signing certificates (DER): refused when
    /// unsigned, signed by SHA-1, or by none of them.
    pub fn verify(&self, certs: &[Vec<u8>]) -> Result<(), SamlError> {
        let Some((alg, sig, octets)) = &self.signed else {
            return Err(SamlError::Refused("the message is not signed".into()));
        };
        let algs: &[&'static dyn VerificationAlgorithm] = match alg.as_str() {
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" => {
                &[&signature::RSA_PKCS1_2048_8192_SHA256]
            }
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384" => {
                &[&signature::RSA_PKCS1_2048_8192_SHA384]
            }
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512" => {
                &[&signature::RSA_PKCS1_2048_8192_SHA512]
            }
            // XML-DSig's form is r‖s; some signers send DER: either is taken.
            "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256" => &[
                &signature::ECDSA_P256_SHA256_FIXED,
                &signature::ECDSA_P256_SHA256_ASN1,
            ],
            "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384" => &[
                &signature::ECDSA_P384_SHA384_FIXED,
                &signature::ECDSA_P384_SHA384_ASN1,
            ],
            _ => {
                return Err(SamlError::Refused(
                    "the message is signed with an algorithm ward does not accept (SHA-256 or stronger)".into(),
                ));
            }
        };
        for der in certs {
            let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
                continue;
            };
            let public = cert.public_key().subject_public_key.data.as_ref();
            for a in algs {
                if UnparsedPublicKey::new(*a, public)
                    .verify(octets.as_bytes(), sig)
                    .is_ok()
                {
                    return Ok(());
                }
            }
        }
        Err(SamlError::Refused(
            "the signature is not the identity provider's".into(),
        ))
    }
}

/// Base64 as IdPs send it (line breaks and spaces left in).
pub fn base64_lenient(text: &str) -> Result<Vec<u8>, SamlError> {
    let cleaned: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    data_encoding::BASE64
        .decode(cleaned.as_bytes())
        .map_err(|_| SamlError::Malformed("not base64"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> (tempfile::TempDir, SpKey) {
        let dir = tempfile::tempdir().unwrap();
        let k = SpKey::load_or_create(&dir.path().join("k"), &dir.path().join("c")).unwrap();
        (dir, k)
    }

    fn cert_der(k: &SpKey) -> Vec<u8> {
        data_encoding::BASE64
            .decode(k.certificate_base64().as_bytes())
            .unwrap()
    }

    #[test]
    fn a_signed_message_reads_back_and_verifies() {
        let (_d, k) = key();
        let url = encode(
            "https://idp.example/slo?tenant=a b",
            "SAMLRequest",
            "<x>é</x>",
            Some("r&1"),
            Some(&k),
        )
        .unwrap();
        let q = url.split_once('?').unwrap().1;
        assert!(q.starts_with("tenant=a%20b&SAMLRequest="), "{q}");
        let got = receive(q, "SAMLRequest").unwrap();
        assert_eq!(got.xml, "<x>é</x>");
        assert_eq!(got.relay.as_deref(), Some("r&1"));
        got.verify(&[cert_der(&k)]).unwrap();
    }

    #[test]
    fn tampered_unsigned_foreign_and_sha1_messages_are_refused() {
        let (_d, k) = key();
        let (_d2, other) = key();
        let url = encode("https://i/s", "SAMLRequest", "<x/>", Some("r"), Some(&k)).unwrap();
        let q = url.split_once('?').unwrap().1.to_string();
        let verifies = |q: &str, signer: &SpKey| {
            receive(q, "SAMLRequest")
                .unwrap()
                .verify(&[cert_der(signer)])
                .is_ok()
        };
        assert!(verifies(&q, &k));
        // Another signer's certificate.
        assert!(!verifies(&q, &other));
        // A changed RelayState.
        assert!(!verifies(&q.replace("RelayState=r", "RelayState=s"), &k));
        // The signature taken off.
        assert!(!verifies(q.split("&SigAlg").next().unwrap(), &k));
        // SHA-1.
        assert!(!verifies(&q.replace("rsa-sha256", "rsa-sha1"), &k));
        // A parameter twice.
        assert!(receive(&format!("{q}&RelayState=x"), "SAMLRequest").is_err());
        // A signature without its algorithm.
        let no_alg = q.replace("&SigAlg=", "&Other=");
        assert!(receive(&no_alg, "SAMLRequest").is_err());
    }

    #[test]
    fn an_unsigned_message_has_no_signature_parameters() {
        let url = encode("https://i/s", "SAMLRequest", "<x/>", None, None).unwrap();
        assert!(
            !url.contains("SigAlg") && !url.contains("Signature"),
            "{url}"
        );
        assert!(!url.contains("RelayState"), "{url}");
    }
}
