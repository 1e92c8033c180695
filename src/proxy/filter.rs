//! Filtering answers on their way out, as the decision says: which answers are
//! exports (the rule for who may take them is `policy::export_rule`), size caps
//! on bulk pulls, JSON field redaction, no-store, and spotting request bodies.

use crate::body::{Body, full};
use crate::policy::Route;
use crate::policy::media::{self, MediaError, MediaType, TypePattern};
use bytes::Bytes;
use http::Response;
use http::header::{self, HeaderMap, HeaderValue};
use http_body_util::BodyExt;

/// Why an answer counts as an export, if it does. Decided on headers alone:
/// the route, `Content-Disposition`, and every `Content-Type` the answer has
/// (type and parameters, against the policy's export types).
pub fn export_reason(
    headers: &HeaderMap,
    route: &Route,
    types: &[TypePattern],
) -> Option<&'static str> {
    if route.export_endpoint {
        return Some("the page is an export");
    }
    let disposition = headers
        .get_all(header::CONTENT_DISPOSITION)
        .iter()
        .any(|v| {
            v.to_str()
                .map(|s| s.trim().to_ascii_lowercase().starts_with("attachment"))
                .unwrap_or(true)
        });
    if disposition {
        return Some("the answer is a download");
    }
    let mut values = headers.get_all(header::CONTENT_TYPE).iter().peekable();
    if values.peek().is_none() {
        // Without a type a browser guesses; a file is the likely guess.
        return Some("the answer has no content type");
    }
    // Several types (one header each) leave the client to choose: any export one counts.
    for value in values {
        let Ok(text) = value.to_str() else {
            return Some("the answer's content type is unreadable");
        };
        let essence = match media::checked_essence(text) {
            Ok(e) => e,
            Err(MediaError::Empty) => return Some("the answer has no content type"),
            // What ward cannot read, a browser may still save as a file.
            Err(_) => return Some("the answer's content type is unreadable"),
        };
        // Most answers are of no export type at all: their parameters are not read.
        if !types.iter().any(|t| t.has_essence(essence)) {
            continue;
        }
        let Ok(parsed) = MediaType::parse(text) else {
            return Some("the answer's content type is unreadable");
        };
        if types.iter().any(|t| t.matches(&parsed)) {
            return Some("the answer is a file type the practice treats as an export");
        }
    }
    None
}

/// Marks an answer as not to be stored by the browser (PHI on a shared laptop).
pub fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.remove(header::EXPIRES);
}

/// Why a capped or redacted answer could not be passed.
#[derive(Debug, thiserror::Error)]
pub enum Held {
    /// Bigger than the cap.
    #[error("the answer is larger than this page's limit of {0} bytes")]
    TooLarge(u64),
    /// The upstream failed while ward was reading it.
    #[error("the upstream's answer broke off")]
    Broken,
    /// An answer the person's field rules cannot be applied to: another type,
    /// compressed, JSON or markup that does not read.
    #[error("the answer could not be checked for fields you may not see")]
    Unchecked,
    /// A page that must carry a watermark or print notice came compressed.
    #[error("the page could not be marked as the practice's policy requires")]
    Unmarked,
}

/// Reads an answer up to `cap` bytes; `Err(TooLarge)` as soon as it is larger.
pub async fn hold(resp: Response<Body>, cap: u64) -> Result<(http::response::Parts, Bytes), Held> {
    let declared = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > cap) {
        return Err(Held::TooLarge(cap));
    }
    let (parts, mut body) = resp.into_parts();
    let mut held = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(Held::Broken);
        };
        if let Ok(data) = frame.into_data() {
            if (held.len() + data.len()) as u64 > cap {
                return Err(Held::TooLarge(cap));
            }
            held.extend_from_slice(&data);
        }
    }
    Ok((parts, held.freeze()))
}

/// Rebuilds an answer from held parts and a (possibly changed) body.
pub fn release(mut parts: http::response::Parts, body: Bytes) -> Response<Body> {
    parts.headers.remove(header::TRANSFER_ENCODING);
    if let Ok(v) = HeaderValue::from_str(&body.len().to_string()) {
        parts.headers.insert(header::CONTENT_LENGTH, v);
    }
    Response::from_parts(parts, full(body))
}

/// Masks `fields` in a JSON document: plain names anywhere in it, and JSON
/// pointers (`/patient/insurance/memberId`) at their place; then applies the
/// route's field `rules` (by name), setting `matched[i]` for each rule that named a field.
pub fn redact(
    json: &[u8],
    fields: &[String],
    rules: &[crate::policy::FieldRule],
    matched: &mut [bool],
) -> Result<Vec<u8>, Held> {
    let mut value: serde_json::Value = serde_json::from_slice(json).map_err(|_| Held::Unchecked)?;
    crate::proxy::fields::json(&mut value, rules, matched);
    let (pointers, names): (Vec<&String>, Vec<&String>) =
        fields.iter().partition(|f| f.starts_with('/'));
    for p in pointers {
        if let Some(v) = value.pointer_mut(p) {
            *v = serde_json::Value::String("[hidden]".into());
        }
    }
    if !names.is_empty() {
        mask_names(&mut value, &names);
    }
    serde_json::to_vec(&value).map_err(|_| Held::Unchecked)
}

fn mask_names(value: &mut serde_json::Value, names: &[&String]) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if names.iter().any(|n| n.eq_ignore_ascii_case(k)) {
                    *v = serde_json::Value::String("[hidden]".into());
                } else {
                    mask_names(v, names);
                }
            }
        }
        serde_json::Value::Array(items) => {
            for v in items {
                mask_names(v, names);
            }
        }
        _ => {}
    }
}

/// Whether a request carries a body (any method, any framing). The headers
/// alone do not tell over HTTP/2, where DATA frames need neither
/// `Content-Length` nor `Transfer-Encoding`: there a stream that did not end
/// with its headers counts as having a body, unless it declared a length of 0
/// (which the HTTP/2 layer then holds it to).
pub fn has_body(headers: &HeaderMap, body: &impl http_body::Body) -> bool {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return true;
    }
    let declared_empty = match headers.get(header::CONTENT_LENGTH) {
        None => false,
        Some(v) if v.to_str().map(|v| v.trim() != "0").unwrap_or(true) => return true,
        Some(_) => true,
    };
    !declared_empty && !body.is_end_stream() && body.size_hint().exact() != Some(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route() -> Route {
        Route {
            line: 1,
            app: 0,
            path: "/x".into(),
            access: crate::policy::Access::Public,
            from: None,
            idle_timeout: None,
            export: None,
            mfa: None,
            export_endpoint: false,
            max_response: None,
            rate_limit: None,
            redact_fields: Vec::new(),
            redact_for: Vec::new(),
            fields: Vec::new(),
            hide_for: Vec::new(),
            no_body_for: Vec::new(),
            device_required: false,
            own_device: false,
            watermark: false,
            print_blocked: false,
            when: Default::default(),
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn default_types() -> Vec<TypePattern> {
        crate::policy::DEFAULT_EXPORT_TYPES
            .iter()
            .map(|t| TypePattern::parse(t).unwrap())
            .collect()
    }

    #[test]
    fn the_default_types_all_parse() {
        assert_eq!(
            default_types().len(),
            crate::policy::DEFAULT_EXPORT_TYPES.len()
        );
    }

    #[test]
    fn exports_are_recognised_by_headers_whatever_their_spelling() {
        let types = default_types();
        let r = route();
        for h in [
            vec![("content-type", "text/csv")],
            vec![("content-type", "Text/CSV; charset=utf-8")],
            vec![("content-type", " application/PDF ")],
            vec![("content-type", "application/octet-stream")],
            vec![
                ("content-type", "text/html"),
                ("content-disposition", "attachment; filename=\"x.html\""),
            ],
            vec![
                ("content-type", "text/plain"),
                (
                    "content-disposition",
                    "ATTACHMENT;filename*=UTF-8''r%C3%A9sum%C3%A9.txt",
                ),
            ],
            vec![("content-disposition", "attachment")],
            vec![],
            vec![("content-type", "")],
            vec![
                ("content-type", "application/zip"),
                ("content-encoding", "gzip"),
            ],
            // Imaging: DICOM files, DICOMweb metadata and multipart answers.
            vec![("content-type", "application/dicom")],
            vec![(
                "content-type",
                "Application/DICOM; transfer-syntax=1.2.840.10008.1.2.1",
            )],
            vec![("content-type", "application/dicom+json")],
            vec![("content-type", "application/dicom+xml")],
            vec![(
                "content-type",
                "multipart/related; type=\"application/dicom\"; boundary=b1",
            )],
            vec![(
                "content-type",
                "multipart/related; boundary=b1; type=application/dicom",
            )],
            vec![(
                "content-type",
                "multipart/related;type=application/octet-stream;transfer-syntax=*",
            )],
            vec![(
                "content-type",
                "MULTIPART/RELATED; TYPE=\"APPLICATION/OCTET-STREAM\"",
            )],
            vec![(
                "content-type",
                "multipart/related; type=\"application/dicom+xml\"",
            )],
            // A second type is the browser's to pick: an export one counts.
            vec![
                ("content-type", "text/html"),
                ("content-type", "application/dicom"),
            ],
            // Types ward cannot read are exports (a browser may save them).
            vec![("content-type", "dicom")],
            vec![("content-type", "text/html, application/dicom")],
        ] {
            assert!(export_reason(&headers(&h), &r, &types).is_some(), "{h:?}");
        }
        for h in [
            vec![("content-type", "text/html; charset=utf-8")],
            vec![("content-type", "application/json")],
            vec![
                ("content-type", "text/html"),
                ("content-disposition", "inline"),
            ],
            vec![("content-type", "image/png")],
            vec![("content-type", "image/jpeg")],
            vec![("content-type", "multipart/related; type=\"image/jpeg\"")],
            vec![("content-type", "text/html;")],
        ] {
            assert!(export_reason(&headers(&h), &r, &types).is_none(), "{h:?}");
        }
        let mut endpoint = route();
        endpoint.export_endpoint = true;
        assert!(
            export_reason(
                &headers(&[("content-type", "text/html")]),
                &endpoint,
                &types
            )
            .is_some()
        );
    }

    #[test]
    fn redaction_masks_names_and_pointers() {
        let doc = br#"{"patient":{"name":"M","SSN":"123","insurance":{"memberId":"X1","plan":"P"}},"list":[{"ssn":"9"}]}"#;
        let out = redact(
            doc,
            &["ssn".into(), "/patient/insurance/memberId".into()],
            &[],
            &mut [],
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["patient"]["SSN"], "[hidden]");
        assert_eq!(v["list"][0]["ssn"], "[hidden]");
        assert_eq!(v["patient"]["insurance"]["memberId"], "[hidden]");
        assert_eq!(v["patient"]["insurance"]["plan"], "P");
        assert_eq!(v["patient"]["name"], "M");
        assert!(redact(b"<html>", &["ssn".into()], &[], &mut []).is_err());
    }

    #[test]
    fn bodies_are_seen_in_any_framing() {
        let none = http_body_util::Empty::<Bytes>::new();
        assert!(has_body(&headers(&[("content-length", "5")]), &none));
        assert!(has_body(
            &headers(&[("transfer-encoding", "chunked")]),
            &none
        ));
        assert!(!has_body(&headers(&[("content-length", "0")]), &none));
        assert!(!has_body(&headers(&[]), &none));
        // A stream with frames to come and no declared length (HTTP/2 DATA).
        let frames: Vec<Result<http_body::Frame<Bytes>, std::convert::Infallible>> = Vec::new();
        let streaming = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
        assert!(has_body(&headers(&[]), &streaming));
        assert!(!has_body(&headers(&[("content-length", "0")]), &streaming));
        let full = http_body_util::Full::new(Bytes::from_static(b"x"));
        assert!(has_body(&headers(&[]), &full));
    }
}
