//! Single sign-on with SAML 2.0 (Web Browser SSO profile): the service-provider side ward needs.
//!
//! One [`Idp`] per `[[login.saml]]` entry, built from the identity provider's metadata file
//! (its entity id, its single sign-on and logout addresses, its signing certificates). A
//! sign-in is two steps, as with OpenID Connect (and kept in the same [`Pending`] store):
//!
//! 1. [`Idp::begin`] gives the IdP's address with an `AuthnRequest` (HTTP-Redirect binding)
//!    and a [`Pending`] keyed by the `RelayState`, holding the request's ID.
//! 2. The IdP posts a `SAMLResponse` (HTTP-POST binding) to `/.ward/saml/acs`; ward takes
//!    the [`Pending`] for the `RelayState` (once) and [`Idp::finish`] checks the response.
//!
//! The XML signature, and everything that depends on it (which parts of the document are
//! signed, issuer, audience, recipient, `InResponseTo`, `NotBefore`/`NotOnOrAfter`), is
//! checked by `samael` with xmlsec, never here. On top of that ward refuses, before the
//! library sees it, any document with a DTD, a comment or a processing instruction (comment
//! injection into a NameID; entity tricks) and any response carrying more than one
//! assertion (signature wrapping puts a forged one beside the signed one).

use crate::auth::oidc::Pending;
use crate::auth::saml_key::SpKey;
use crate::auth::saml_redirect::{self, base64_lenient};
// Callers name the error through this module, where the exchange is.
pub use crate::auth::saml_error::SamlError;
use quick_xml::events::Event;
use samael::crypto::AllowedSignatureAlgorithm;
use samael::metadata::{EntityDescriptor, HTTP_REDIRECT_BINDING};
use samael::schema::{
    Assertion, Issuer, LogoutRequest, LogoutResponse, NameID, Status, StatusCode,
};
use samael::service_provider::{ServiceProvider, ServiceProviderBuilder};
use samael::traits::ToXml;
use std::fmt;
use std::time::Duration;

/// SAML 2.0 assertion namespace.
const ASSERTION_NS: &[u8] = b"urn:oasis:names:tc:SAML:2.0:assertion";
/// SAML 2.0 protocol namespace.
const PROTOCOL_NS: &[u8] = b"urn:oasis:names:tc:SAML:2.0:protocol";
/// A `SAMLResponse` larger than this (base64 text) is refused unread.
pub const MAX_RESPONSE: usize = 512 * 1024;
/// Provider-supplied text shown on a page is cut to this many characters.
const MAX_SHOWN: usize = 200;
/// Signature algorithms accepted: SHA-2 only (SHA-1 signatures can be forged).
const ALLOWED_ALGS: [AllowedSignatureAlgorithm; 6] = [
    AllowedSignatureAlgorithm::RsaSha256,
    AllowedSignatureAlgorithm::RsaSha384,
    AllowedSignatureAlgorithm::RsaSha512,
    AllowedSignatureAlgorithm::EcdsaSha256,
    AllowedSignatureAlgorithm::EcdsaSha384,
    AllowedSignatureAlgorithm::EcdsaSha512,
];

/// What the IdP vouched for in a checked assertion.
pub struct Asserted {
    /// The assertion's ID (used once).
    pub id: String,
    /// When the assertion stops being valid (Unix seconds), for the replay record.
    pub expires: i64,
    /// The NameID: the IdP's name for the person.
    pub name_id: String,
    /// `NameID`'s `Format`, for the logout request.
    pub name_id_format: Option<String>,
    /// The IdP's `SessionIndex`, for the logout request.
    pub session_index: Option<String>,
    /// `AuthnContextClassRef`: how the person signed in at the IdP.
    pub authn_context: Option<String>,
    /// Attribute name (or friendly name) → values.
    pub attributes: Vec<(String, Vec<String>)>,
}

impl fmt::Debug for Asserted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Asserted")
            .field("name_id", &self.name_id)
            .field("authn_context", &self.authn_context)
            .field("attributes", &self.attributes)
            .finish_non_exhaustive()
    }
}

impl Asserted {
    /// The values of attribute `name` (matched on its Name or FriendlyName).
    pub fn values(&self, name: &str) -> Vec<String> {
        self.attributes
            .iter()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, v)| v.iter().cloned())
            .collect()
    }
}

/// What a session keeps for single logout at the IdP (serialized into the session's IdP token).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct LogoutHint {
    pub name_id: String,
    pub name_id_format: Option<String>,
    pub session_index: Option<String>,
}

/// One identity provider, from its metadata, as ward's service provider sees it.
#[derive(Clone)]
pub struct Idp {
    sp: ServiceProvider,
    /// The IdP's entity id.
    entity_id: String,
    /// The IdP's HTTP-Redirect single sign-on address.
    sso_url: String,
    /// The IdP's HTTP-Redirect single logout address, if it offers one.
    slo_url: Option<String>,
}

impl fmt::Debug for Idp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Idp")
            .field("entity_id", &self.entity_id)
            .field("sso_url", &self.sso_url)
            .field("slo_url", &self.slo_url)
            .finish()
    }
}

impl Idp {
    /// The IdP described by `metadata` (an `EntityDescriptor`), for ward's service provider
    /// `sp_entity_id` whose assertion consumer service is `acs_url`.
    pub fn from_metadata(
        metadata: &str,
        sp_entity_id: &str,
        acs_url: &str,
        slo_url: &str,
        clock_skew: Duration,
    ) -> Result<Idp, SamlError> {
        refuse_risky_xml(metadata).map_err(|e| SamlError::Metadata(e.to_string()))?;
        let md: EntityDescriptor = metadata
            .parse()
            .map_err(|e| SamlError::Metadata(clip(&format!("not an EntityDescriptor ({e})"))))?;
        let entity_id = md
            .entity_id
            .clone()
            .filter(|e| !e.trim().is_empty())
            .ok_or_else(|| SamlError::Metadata("it names no entityID".into()))?;
        let skew = chrono::Duration::from_std(clock_skew)
            .map_err(|_| SamlError::Metadata("the clock skew is too large".into()))?;
        let sp = ServiceProviderBuilder::default()
            .entity_id(sp_entity_id.to_string())
            .acs_url(acs_url.to_string())
            .slo_url(slo_url.to_string())
            .idp_metadata(md)
            .max_clock_skew(skew)
            .allowed_signature_algorithms(ALLOWED_ALGS.to_vec())
            .build()
            .map_err(|e| SamlError::Metadata(clip(&e.to_string())))?;
        // Without a signing certificate the library would accept unsigned answers.
        match sp.idp_signing_certs() {
            Ok(Some(certs)) if !certs.is_empty() => {}
            Ok(_) => {
                return Err(SamlError::Metadata(
                    "it holds no signing certificate (<KeyDescriptor use=\"signing\">)".into(),
                ));
            }
            Err(e) => return Err(SamlError::Metadata(clip(&e.to_string()))),
        }
        let sso_url = sp
            .sso_binding_location(HTTP_REDIRECT_BINDING)
            .ok_or_else(|| {
                SamlError::Metadata(
                    "it offers no single sign-on address for the HTTP-Redirect binding".into(),
                )
            })?;
        check_url(&sso_url)?;
        let slo_url = sp.slo_binding_location(HTTP_REDIRECT_BINDING);
        if let Some(u) = &slo_url {
            check_url(u)?;
        }
        Ok(Idp {
            sp,
            entity_id,
            sso_url,
            slo_url,
        })
    }

    /// The IdP's entity id.
    pub fn entity_id(&self) -> &str {
        &self.entity_id
    }

    /// Whether the IdP offers single logout (HTTP-Redirect).
    pub fn supports_logout(&self) -> bool {
        self.slo_url.is_some()
    }

    /// The IdP address to send the person to (the `AuthnRequest` signed with `key` when
    /// given), and what to keep until they come back.
    pub fn begin(
        &self,
        provider: &str,
        return_to: &str,
        now: i64,
        key: Option<&SpKey>,
    ) -> Result<(String, Pending), SamlError> {
        let relay = random()?;
        let mut req = self
            .sp
            .make_authentication_request(&self.sso_url)
            .map_err(|e| SamlError::Request(clip(&e.to_string())))?;
        // The library's own IDs carry 32 random bits; InResponseTo must not be guessable.
        req.id = format!("ward-{}", random()?);
        req.force_authn = None;
        let xml = req
            .to_string()
            .map_err(|e| SamlError::Request(clip(&e.to_string())))?;
        let url = saml_redirect::encode(&self.sso_url, "SAMLRequest", &xml, Some(&relay), key)?;
        let pending = Pending {
            state: relay,
            nonce: req.id,
            pkce_verifier: String::new(),
            return_to: return_to.to_string(),
            provider: provider.to_string(),
            created: now,
        };
        Ok((url, pending))
    }

    /// Checks a posted `SAMLResponse` (base64) for the sign-in `pending`; an encrypted
    /// assertion is decrypted with `decrypt_with`, and refused without it.
    pub fn finish(
        &self,
        pending: &Pending,
        saml_response: &str,
        decrypt_with: Option<&SpKey>,
    ) -> Result<Asserted, SamlError> {
        if saml_response.len() > MAX_RESPONSE {
            return Err(SamlError::Malformed("too large"));
        }
        let bytes = base64_lenient(saml_response)?;
        let xml = std::str::from_utf8(&bytes).map_err(|_| SamlError::Malformed("not UTF-8"))?;
        let shape = refuse_risky_xml(xml)?;
        if shape.assertions != 1 {
            return Err(SamlError::Malformed(
                "a response must carry exactly one assertion",
            ));
        }
        if let Some(status) = shape.failed_status {
            return Err(SamlError::NotSignedIn(clip(&status)));
        }
        let ids = [pending.nonce.as_str()];
        let mut sp = std::borrow::Cow::Borrowed(&self.sp);
        if shape.encrypted {
            // The library decrypts only inside the part a checked signature covers.
            let key = decrypt_with
                .and_then(SpKey::decryption_key)
                .ok_or(SamlError::Malformed(
                    "the assertion is encrypted, and ward is not set to decrypt assertions",
                ))?;
            sp.to_mut().key = Some(key);
        }
        let a = sp
            .parse_xml_response(xml, Some(&ids))
            .map_err(|e| SamlError::Refused(clip(&e.to_string())))?;
        asserted(a)
    }

    /// The IdP's single logout address with a `LogoutRequest` for the session described by
    /// `hint` (signed with `key` when given), or `None` if the IdP offers none.
    pub fn logout_url(&self, hint: &LogoutHint, key: Option<&SpKey>) -> Option<String> {
        let slo = self.slo_url.as_ref()?;
        let req = LogoutRequest {
            id: Some(format!("ward-{}", random().ok()?)),
            version: Some("2.0".into()),
            issue_instant: Some(chrono::Utc::now()),
            destination: Some(slo.clone()),
            issuer: Some(Issuer {
                value: self.sp.entity_id.clone(),
                ..Issuer::default()
            }),
            signature: None,
            session_index: hint.session_index.clone(),
            name_id: Some(NameID {
                format: hint.name_id_format.clone(),
                value: hint.name_id.clone(),
            }),
        };
        let xml = req.to_string().ok()?;
        saml_redirect::encode(slo, "SAMLRequest", &xml, None, key).ok()
    }
}

impl Idp {
    /// Checks a `LogoutRequest` the IdP sent by the HTTP-Redirect binding (IdP-initiated
    /// logout): signed by one of the IdP's signing certificates, issued by it, addressed to
    /// ward's logout address, and issued within the last five minutes.
    pub fn check_logout_request(
        &self,
        msg: &saml_redirect::Received,
        now: i64,
    ) -> Result<IdpLogout, SamlError> {
        let certs: Vec<Vec<u8>> = self
            .sp
            .idp_signing_certs()
            .ok()
            .flatten()
            .unwrap_or_default()
            .iter()
            .map(|c| c.der_data().to_vec())
            .collect();
        msg.verify(&certs)?;
        refuse_risky_xml(&msg.xml)?;
        let req: LogoutRequest = msg
            .xml
            .parse()
            .map_err(|_| SamlError::Malformed("not a LogoutRequest"))?;
        let issuer = req.issuer.as_ref().and_then(|i| i.value.as_deref());
        if issuer.map(str::trim) != Some(self.entity_id.as_str()) {
            return Err(SamlError::Refused(
                "the logout request is not from this identity provider".into(),
            ));
        }
        if req.destination.is_none() || req.destination != self.sp.slo_url {
            return Err(SamlError::Refused(
                "the logout request is not addressed to ward".into(),
            ));
        }
        let skew = self.sp.max_clock_skew.num_seconds();
        let issued = req
            .issue_instant
            .map(|t| t.timestamp())
            .ok_or(SamlError::Malformed("no IssueInstant"))?;
        if issued > now + skew || issued < now - LOGOUT_REQUEST_LIFETIME - skew {
            return Err(SamlError::Refused(
                "the logout request is too old, or dated in the future".into(),
            ));
        }
        let id = req
            .id
            .clone()
            .filter(|i| !i.trim().is_empty())
            .ok_or(SamlError::Malformed("no ID"))?;
        let name_id = req
            .name_id
            .as_ref()
            .map(|n| n.value.trim().to_string())
            .filter(|n| !n.is_empty())
            .ok_or(SamlError::Malformed(
                "the logout request names nobody (no NameID)",
            ))?;
        Ok(IdpLogout {
            id,
            expires: issued + LOGOUT_REQUEST_LIFETIME + skew,
            name_id,
            session_indexes: session_indexes(&msg.xml)?,
        })
    }

    /// The IdP's single logout address with a `LogoutResponse` (Success) to its request
    /// `in_response_to`, signed with `key` when given; None if the IdP offers no logout.
    pub fn logout_response_url(
        &self,
        in_response_to: &str,
        relay: Option<&str>,
        key: Option<&SpKey>,
    ) -> Option<String> {
        let slo = self.slo_url.as_ref()?;
        let resp = LogoutResponse {
            id: Some(format!("ward-{}", random().ok()?)),
            in_response_to: Some(in_response_to.to_string()),
            version: Some("2.0".into()),
            issue_instant: Some(chrono::Utc::now()),
            destination: Some(slo.clone()),
            consent: None,
            issuer: Some(Issuer {
                value: self.sp.entity_id.clone(),
                ..Issuer::default()
            }),
            signature: None,
            status: Some(Status {
                status_code: StatusCode {
                    value: Some("urn:oasis:names:tc:SAML:2.0:status:Success".into()),
                },
                status_message: None,
                status_detail: None,
            }),
        };
        let xml = resp.to_string().ok()?;
        saml_redirect::encode(slo, "SAMLResponse", &xml, relay, key).ok()
    }
}

/// How long after it was issued ward takes an IdP's logout request (seconds).
const LOGOUT_REQUEST_LIFETIME: i64 = 300;

/// A logout request from an IdP, checked.
#[derive(Debug)]
pub struct IdpLogout {
    /// The request's ID (used once; the answer's `InResponseTo`).
    pub id: String,
    /// When it stops being taken (Unix seconds), for the replay record.
    pub expires: i64,
    /// Whose sessions end.
    pub name_id: String,
    /// Which of their IdP sessions end; empty: all of them.
    pub session_indexes: Vec<String>,
}

impl IdpLogout {
    /// Whether a ward session signed in with `hint` is one this request ends.
    pub fn ends(&self, hint: &LogoutHint) -> bool {
        hint.name_id == self.name_id
            && (self.session_indexes.is_empty()
                || hint
                    .session_index
                    .as_ref()
                    .is_some_and(|i| self.session_indexes.contains(i)))
    }
}

/// The issuer a `LogoutRequest` claims (unchecked: it says whose certificates to check).
pub fn claimed_issuer(xml: &str) -> Result<String, SamlError> {
    refuse_risky_xml(xml)?;
    let req: LogoutRequest = xml
        .parse()
        .map_err(|_| SamlError::Malformed("not a LogoutRequest"))?;
    req.issuer
        .and_then(|i| i.value)
        .map(|v| v.trim().to_string())
        .ok_or(SamlError::Malformed("no Issuer"))
}

/// The `SessionIndex` elements of a `LogoutRequest` (the library reads them as an attribute).
fn session_indexes(xml: &str) -> Result<Vec<String>, SamlError> {
    let mut reader = quick_xml::NsReader::from_str(xml);
    let mut out = Vec::new();
    let mut inside = false;
    loop {
        let (ns, ev) = reader
            .read_resolved_event()
            .map_err(|_| SamlError::Malformed("not well-formed XML"))?;
        match ev {
            Event::Start(ref e) => {
                inside = e.local_name().as_ref() == b"SessionIndex"
                    && matches!(
                        ns,
                        quick_xml::name::ResolveResult::Bound(quick_xml::name::Namespace(n)) if n == PROTOCOL_NS
                    );
            }
            Event::Text(ref t) if inside => {
                let text = t
                    .decode()
                    .map_err(|_| SamlError::Malformed("not well-formed XML"))?;
                out.push(text.trim().to_string());
            }
            Event::End(_) => inside = false,
            Event::Eof => return Ok(out),
            _ => {}
        }
    }
}

/// ward's SAML service-provider entity id, assertion consumer service and single logout
/// addresses under `public_url`.
pub fn sp_addresses(public_url: &str) -> (String, String, String) {
    (
        format!("{public_url}/.ward/saml/metadata"),
        format!("{public_url}/.ward/saml/acs"),
        format!("{public_url}/.ward/saml/logout"),
    )
}

/// ward's service-provider metadata, for the officer to give to the IdP: with ward's
/// certificate `cert` (base64 DER) when it has one, whether it signs every `AuthnRequest`, and
/// whether IdPs may encrypt assertions to it (the same certificate, AES-128 only).
pub fn sp_metadata(
    entity_id: &str,
    acs_url: &str,
    slo_url: &str,
    cert: Option<&str>,
    requests_signed: bool,
    encryption: bool,
) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let descriptor = |usage: &str, methods: &str| match cert {
        Some(c) => format!(
            r#"
    <md:KeyDescriptor use="{usage}">
      <ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
        <ds:X509Data>
          <ds:X509Certificate>{}</ds:X509Certificate>
        </ds:X509Data>
      </ds:KeyInfo>{methods}
    </md:KeyDescriptor>"#,
            esc(c)
        ),
        None => String::new(),
    };
    let mut key = descriptor("signing", "");
    if encryption {
        // What the library can decrypt: AES-128 (GCM or CBC), the key by RSA-OAEP.
        key.push_str(&descriptor(
            "encryption",
            r#"
      <md:EncryptionMethod Algorithm="http://www.w3.org/2009/xmlenc11#aes128-gcm"/>
      <md:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>
      <md:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"/>"#,
        ));
    }
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{entity}">
  <md:SPSSODescriptor AuthnRequestsSigned="{signed}" WantAssertionsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">{key}
    <md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{slo}"/>
    <md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</md:NameIDFormat>
    <md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</md:NameIDFormat>
    <md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified</md:NameIDFormat>
    <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{acs}" index="0" isDefault="true"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>
"#,
        entity = esc(entity_id),
        acs = esc(acs_url),
        slo = esc(slo_url),
        signed = requests_signed && cert.is_some(),
    )
}

/// What [`refuse_risky_xml`] saw of a document it let through.
#[derive(Debug, Default, PartialEq, Eq)]
struct Shape {
    /// `Assertion` and `EncryptedAssertion` elements, wherever they sit.
    assertions: usize,
    /// Whether one of them is an `EncryptedAssertion`.
    encrypted: bool,
    /// The top-level status code, when it is not Success.
    failed_status: Option<String>,
}

/// Refuses DTDs, comments and processing instructions anywhere in `xml`, and counts the
/// assertions. (Comments are left out of the signed form, so one inside a NameID changes
/// what a reader sees without breaking the signature; no IdP sends them.)
fn refuse_risky_xml(xml: &str) -> Result<Shape, SamlError> {
    let mut reader = quick_xml::NsReader::from_str(xml);
    let mut shape = Shape::default();
    let mut depth = 0usize;
    loop {
        let (ns, ev) = reader
            .read_resolved_event()
            .map_err(|_| SamlError::Malformed("not well-formed XML"))?;
        match ev {
            Event::DocType(_) => return Err(SamlError::Malformed("a DTD")),
            Event::Comment(_) => return Err(SamlError::Malformed("a comment")),
            Event::PI(_) => return Err(SamlError::Malformed("a processing instruction")),
            Event::Start(ref e) | Event::Empty(ref e) => {
                let is_start = matches!(ev, Event::Start(_));
                let local = e.local_name();
                let in_assertion_ns = matches!(
                    ns,
                    quick_xml::name::ResolveResult::Bound(quick_xml::name::Namespace(n)) if n == ASSERTION_NS
                );
                if in_assertion_ns
                    && (local.as_ref() == b"Assertion" || local.as_ref() == b"EncryptedAssertion")
                {
                    shape.assertions += 1;
                    shape.encrypted |= local.as_ref() == b"EncryptedAssertion";
                }
                // The response's own Status/StatusCode (depth 2 and 3 below the root).
                if local.as_ref() == b"StatusCode" && depth == 2 {
                    for attr in e.attributes().flatten() {
                        if attr.key.local_name().as_ref() == b"Value" {
                            let v = String::from_utf8_lossy(&attr.value).to_string();
                            if !v.ends_with(":status:Success") {
                                shape.failed_status = Some(v);
                            }
                        }
                    }
                }
                if is_start {
                    depth += 1;
                }
            }
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::Eof => return Ok(shape),
            _ => {}
        }
    }
}

/// The parts of a checked assertion ward uses.
fn asserted(a: Assertion) -> Result<Asserted, SamlError> {
    // The library checks the audience only when the assertion names one: an assertion
    // meant for nobody in particular is refused here.
    let has_audience = a
        .conditions
        .as_ref()
        .and_then(|c| c.audience_restrictions.as_ref())
        .is_some_and(|rs| !rs.is_empty() && rs.iter().all(|r| !r.audience.is_empty()));
    if !has_audience {
        return Err(SamlError::Malformed(
            "the assertion names no audience (AudienceRestriction)",
        ));
    }
    let subject =
        a.subject
            .as_ref()
            .and_then(|s| s.name_id.as_ref())
            .ok_or(SamlError::Malformed(
                "the assertion names nobody (no NameID)",
            ))?;
    let name_id = subject.value.trim().to_string();
    if name_id.is_empty() {
        return Err(SamlError::Malformed("the NameID is empty"));
    }
    let statements = a.authn_statements.as_deref().unwrap_or_default();
    let session_index = statements.iter().find_map(|s| s.session_index.clone());
    let authn_context = statements.iter().find_map(|s| {
        s.authn_context
            .as_ref()
            .and_then(|c| c.value.as_ref())
            .and_then(|v| v.value.clone())
            .map(|v| v.trim().to_string())
    });
    let mut attributes = Vec::new();
    for st in a.attribute_statements.iter().flatten() {
        for attr in &st.attributes {
            let values: Vec<String> = attr
                .values
                .iter()
                .filter_map(|v| v.value.as_ref().map(|s| s.trim().to_string()))
                .collect();
            for n in [&attr.name, &attr.friendly_name].into_iter().flatten() {
                attributes.push((n.clone(), values.clone()));
            }
        }
    }
    let not_after = a
        .conditions
        .as_ref()
        .and_then(|c| c.not_on_or_after)
        .map(|t| t.timestamp())
        .unwrap_or_else(|| chrono::Utc::now().timestamp() + 3600);
    Ok(Asserted {
        id: a.id,
        expires: not_after,
        name_id,
        name_id_format: subject.format.clone(),
        session_index,
        authn_context,
        attributes,
    })
}

/// `https`, or `http` to this machine only.
fn check_url(u: &str) -> Result<(), SamlError> {
    let parsed =
        url::Url::parse(u).map_err(|_| SamlError::Metadata(format!("{} is not a URL", clip(u))))?;
    let loopback = match parsed.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(SamlError::Metadata(format!(
            "the address {} is not https",
            clip(u)
        ))),
    }
}

fn random() -> Result<String, SamlError> {
    crate::auth::codes::random_token().map_err(|_| SamlError::Request("no randomness".into()))
}

fn clip(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(MAX_SHOWN)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrap(inner: &str) -> String {
        format!(
            r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>{inner}</samlp:Response>"#
        )
    }

    #[test]
    fn one_assertion_passes_the_shape_check() {
        let s = refuse_risky_xml(&wrap("<saml:Assertion ID=\"a\"/>")).unwrap();
        assert_eq!(s.assertions, 1);
        assert_eq!(s.failed_status, None);
    }

    #[test]
    fn a_second_assertion_anywhere_is_counted() {
        let nested = wrap(
            "<saml:Assertion ID=\"evil\"><saml:Subject><x:Ext xmlns:x=\"urn:x\"><saml:Assertion ID=\"good\"/></x:Ext></saml:Subject></saml:Assertion>",
        );
        assert_eq!(refuse_risky_xml(&nested).unwrap().assertions, 2);
        // Another prefix for the same namespace is the same element.
        let prefixed = wrap(
            "<a:Assertion xmlns:a=\"urn:oasis:names:tc:SAML:2.0:assertion\"/><saml:Assertion/>",
        );
        assert_eq!(refuse_risky_xml(&prefixed).unwrap().assertions, 2);
    }

    #[test]
    fn comments_dtds_and_instructions_are_refused() {
        let comment =
            wrap("<saml:Assertion><saml:NameID>dana<!---->evil</saml:NameID></saml:Assertion>");
        assert!(matches!(
            refuse_risky_xml(&comment),
            Err(SamlError::Malformed("a comment"))
        ));
        let dtd = format!("<!DOCTYPE r [<!ENTITY x \"y\">]>{}", wrap(""));
        assert!(refuse_risky_xml(&dtd).is_err());
        let pi = wrap("<?evil stuff?>");
        assert!(refuse_risky_xml(&pi).is_err());
        assert!(refuse_risky_xml("<a><b></a>").is_err());
    }

    #[test]
    fn an_encrypted_assertion_is_noticed() {
        let s = refuse_risky_xml(&wrap("<saml:EncryptedAssertion/>")).unwrap();
        assert_eq!((s.assertions, s.encrypted), (1, true));
        assert!(
            !refuse_risky_xml(&wrap("<saml:Assertion/>"))
                .unwrap()
                .encrypted
        );
        let md = sp_metadata("e", "a", "s", Some("AAA"), true, true);
        assert!(md.contains("use=\"encryption\""), "{md}");
        assert!(refuse_risky_xml(&md).is_ok());
    }

    #[test]
    fn a_failed_status_is_reported() {
        let xml = r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Responder"/></samlp:Status></samlp:Response>"#;
        let s = refuse_risky_xml(xml).unwrap();
        assert_eq!(
            s.failed_status.as_deref(),
            Some("urn:oasis:names:tc:SAML:2.0:status:Responder")
        );
    }

    #[test]
    fn metadata_without_a_signing_certificate_is_refused() {
        let md = r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://idp.example/">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example/sso"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>"#;
        let err = Idp::from_metadata(
            md,
            "https://ward.example/.ward/saml/metadata",
            "https://ward.example/.ward/saml/acs",
            "https://ward.example/.ward/saml/logout",
            Duration::from_secs(60),
        )
        .unwrap_err();
        assert!(err.to_string().contains("signing certificate"), "{err}");
    }

    /// An IdP whose signing key is `key`, for ward at `https://ward.example`.
    fn idp_signing_with(key: &SpKey) -> Idp {
        let md = format!(
            r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="https://idp.example/">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example/slo"/>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example/sso"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>"#,
            key.certificate_base64()
        );
        let (e, a, s) = sp_addresses("https://ward.example");
        Idp::from_metadata(&md, &e, &a, &s, Duration::from_secs(60)).unwrap()
    }

    /// A LogoutRequest as an IdP would send it, signed with `key`.
    fn logout_request(key: &SpKey, issuer: &str, destination: &str, issued: &str) -> String {
        let xml = format!(
            r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r1" Version="2.0" IssueInstant="{issued}" Destination="{destination}"><saml:Issuer>{issuer}</saml:Issuer><saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">dana@riverside.example</saml:NameID><samlp:SessionIndex>s1</samlp:SessionIndex><samlp:SessionIndex>s2</samlp:SessionIndex></samlp:LogoutRequest>"#
        );
        let url = saml_redirect::encode(
            "https://ward.example/.ward/saml/logout",
            "SAMLRequest",
            &xml,
            Some("relay"),
            Some(key),
        )
        .unwrap();
        url.split_once('?').unwrap().1.to_string()
    }

    #[test]
    fn an_idp_logout_request_must_be_its_own_to_ward_and_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let key = SpKey::load_or_create(&dir.path().join("k"), &dir.path().join("c")).unwrap();
        let idp = idp_signing_with(&key);
        let now = chrono::Utc::now();
        let stamp = |secs: i64| {
            (now + chrono::Duration::seconds(secs))
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string()
        };
        let slo = "https://ward.example/.ward/saml/logout";
        let check = |q: String| {
            let msg = saml_redirect::receive(&q, "SAMLRequest").unwrap();
            idp.check_logout_request(&msg, now.timestamp())
        };
        let good = check(logout_request(&key, "https://idp.example/", slo, &stamp(0))).unwrap();
        assert_eq!(good.name_id, "dana@riverside.example");
        assert_eq!(good.session_indexes, ["s1", "s2"]);
        let hint = |i: Option<&str>| LogoutHint {
            name_id: "dana@riverside.example".into(),
            name_id_format: None,
            session_index: i.map(str::to_string),
        };
        assert!(good.ends(&hint(Some("s2"))));
        assert!(!good.ends(&hint(Some("s3"))));
        assert!(!good.ends(&hint(None)));
        let carol = LogoutHint {
            name_id: "carol@riverside.example".into(),
            ..hint(Some("s1"))
        };
        assert!(!good.ends(&carol));
        for (q, why) in [
            (
                logout_request(&key, "https://other.example/", slo, &stamp(0)),
                "not from this identity provider",
            ),
            (
                logout_request(
                    &key,
                    "https://idp.example/",
                    "https://evil.example/",
                    &stamp(0),
                ),
                "not addressed to ward",
            ),
            (
                logout_request(&key, "https://idp.example/", slo, &stamp(-400)),
                "too old",
            ),
            (
                logout_request(&key, "https://idp.example/", slo, &stamp(120)),
                "in the future",
            ),
        ] {
            let e = check(q).unwrap_err().to_string();
            assert!(e.contains(why), "expected '{why}': {e}");
        }
        // Signed by someone else, the same words are refused.
        let other = SpKey::load_or_create(&dir.path().join("k2"), &dir.path().join("c2")).unwrap();
        let e = check(logout_request(
            &other,
            "https://idp.example/",
            slo,
            &stamp(0),
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("not the identity provider's"), "{e}");
    }

    #[test]
    fn sp_metadata_escapes_addresses() {
        let md = sp_metadata(
            "https://w.example/?a=1&b=\"2\"",
            "https://w/acs",
            "https://w/slo",
            Some("AAA<"),
            true,
            false,
        );
        assert!(!md.contains("use=\"encryption\""), "{md}");
        assert!(md.contains("AuthnRequestsSigned=\"true\""), "{md}");
        assert!(
            md.contains("<ds:X509Certificate>AAA&lt;</ds:X509Certificate>"),
            "{md}"
        );
        assert!(md.contains("a=1&amp;b=&quot;2&quot;"), "{md}");
        assert!(refuse_risky_xml(&md).is_ok());
    }
}
