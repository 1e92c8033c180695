//! Media types (`Content-Type` values) and the officer's export type patterns.
//!
//! The parser is lenient where apps are sloppy and browsers forgive them:
//! DICOMweb servers send `multipart/related; type=application/dicom` with the
//! `/` unquoted, which RFC 9110 does not allow (and the `mime` crate refuses),
//! so a strict parser would let the commonest imaging answer through unseen.

use std::fmt;

/// A parsed media type: `type/subtype` in lower case and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType {
    /// `type/subtype`, lower case.
    pub essence: String,
    /// Parameters in order: name in lower case, value unquoted as written.
    pub params: Vec<(String, String)>,
}

/// Why a text is not a media type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    /// Nothing but spaces.
    #[error("it is empty")]
    Empty,
    /// No `/` between type and subtype, or more than one.
    #[error("it is not written as type/subtype")]
    NotTypeSubtype,
    /// A character that may not appear in a type or subtype name.
    #[error("'{0}' is not a type/subtype name")]
    BadName(String),
}

/// Why a type pattern in the policy could never match an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// Nothing but spaces.
    #[error("an empty type matches no answer")]
    Empty,
    /// Not a media type at all.
    #[error("{0}, so it matches no answer; write it like text/csv")]
    NotAType(MediaError),
    /// A `*`, which ward does not expand.
    #[error("ward compares types exactly, so a '*' matches no answer; list each type instead")]
    Wildcard,
    /// A parameter whose name is not a token.
    #[error("the parameter '{0}' is not a parameter name, so the type matches no answer")]
    BadParameter(String),
    /// A parameter without a value.
    #[error(
        "the parameter '{0}' has no value, so the type matches no answer; write it like {0}=application/dicom"
    )]
    NoValue(String),
}

/// One parameter as written, before the lenient parser decides what to keep.
struct RawParam {
    name: String,
    value: Option<String>,
}

/// RFC 9110 `tchar`: the characters of a token.
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_tchar)
}

/// `type/subtype` checked and lower-cased.
fn essence(text: &str) -> Result<String, MediaError> {
    checked_essence(text).map(str::to_ascii_lowercase)
}

/// `type/subtype` checked, as written: the part of a `Content-Type` value before its
/// parameters, without making a string (see [`TypePattern::has_essence`]).
pub fn checked_essence(text: &str) -> Result<&str, MediaError> {
    let text = text.split_once(';').map_or(text, |(head, _)| head);
    let text = text.trim_matches([' ', '\t']);
    if text.is_empty() {
        return Err(MediaError::Empty);
    }
    let Some((ty, sub)) = text.split_once('/') else {
        return Err(MediaError::NotTypeSubtype);
    };
    if sub.contains('/') {
        return Err(MediaError::NotTypeSubtype);
    }
    if !is_token(ty) || !is_token(sub) {
        return Err(MediaError::BadName(
            text.chars().filter(|c| !c.is_control()).collect(),
        ));
    }
    Ok(text)
}

/// The parameters after the essence, split on `;` outside quoted strings.
/// An unterminated quoted value runs to the end, as browsers read it.
fn raw_params(rest: &str) -> Vec<RawParam> {
    let mut out = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        // Skip separators and whitespace before a name.
        while chars.next_if(|c| matches!(c, ';' | ' ' | '\t')).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut name = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && *c != ';') {
            name.push(c);
        }
        let name = name.trim_matches([' ', '\t']).to_ascii_lowercase();
        if chars.next_if_eq(&'=').is_none() {
            out.push(RawParam { name, value: None });
            continue;
        }
        while chars.next_if(|c| matches!(c, ' ' | '\t')).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => {
                        if let Some(escaped) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    c => value.push(c),
                }
            }
            // Anything between the closing quote and the next `;` is ignored.
            while chars.next_if(|c| *c != ';').is_some() {}
        } else {
            while let Some(c) = chars.next_if(|c| *c != ';') {
                value.push(c);
            }
            value = value.trim_end_matches([' ', '\t']).to_string();
        }
        out.push(RawParam {
            name,
            value: Some(value),
        });
    }
    out
}

impl MediaType {
    /// Parses a `Content-Type` value. The type and subtype must be tokens;
    /// parameters without a name or `=` are skipped, as browsers skip them.
    pub fn parse(text: &str) -> Result<MediaType, MediaError> {
        let (head, rest) = text.split_once(';').unwrap_or((text, ""));
        let essence = essence(head)?;
        let params = raw_params(rest)
            .into_iter()
            .filter_map(|p| Some((p.name, p.value?)))
            .filter(|(name, _)| is_token(name))
            .collect();
        Ok(MediaType { essence, params })
    }

    /// The `Content-Type` of a request or answer (none when absent or unreadable).
    pub fn of(headers: &http::HeaderMap) -> Option<MediaType> {
        let text = headers.get(http::header::CONTENT_TYPE)?.to_str().ok()?;
        MediaType::parse(text).ok()
    }
}

/// An officer's export type: a media type, with parameters that must all be
/// present (values compared ignoring case, as media type values are).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypePattern {
    essence: String,
    params: Vec<(String, String)>,
}

impl TypePattern {
    /// Parses a pattern from the policy; a pattern that could never match an
    /// answer is refused, with why in the officer's words.
    pub fn parse(text: &str) -> Result<TypePattern, PatternError> {
        let (head, rest) = text.split_once(';').unwrap_or((text, ""));
        let essence = essence(head).map_err(|e| match e {
            MediaError::Empty => PatternError::Empty,
            e => PatternError::NotAType(e),
        })?;
        if essence.contains('*') {
            return Err(PatternError::Wildcard);
        }
        let mut params = Vec::new();
        for p in raw_params(rest) {
            let shown = p
                .name
                .chars()
                .filter(|c| !c.is_control())
                .collect::<String>();
            if !is_token(&p.name) {
                return Err(PatternError::BadParameter(shown));
            }
            match p.value {
                Some(v) if !v.is_empty() => params.push((p.name, v)),
                _ => {
                    return Err(PatternError::NoValue(shown));
                }
            }
        }
        Ok(TypePattern { essence, params })
    }

    /// Whether this pattern is of the type `essence` (as [`checked_essence`] gives it),
    /// parameters aside: when no pattern is, an answer's parameters need not be read.
    pub fn has_essence(&self, essence: &str) -> bool {
        self.essence.eq_ignore_ascii_case(essence)
    }

    /// Whether an answer of type `m` is of this pattern's type.
    pub fn matches(&self, m: &MediaType) -> bool {
        self.essence == m.essence
            && self.params.iter().all(|(name, want)| {
                // A repeated parameter matches if any of its values does: in doubt, an export.
                m.params
                    .iter()
                    .any(|(n, v)| n == name && v.eq_ignore_ascii_case(want))
            })
    }
}

impl fmt::Display for TypePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.essence)?;
        for (name, value) in &self.params {
            if is_token(value) {
                write!(f, "; {name}={value}")?;
            } else {
                write!(
                    f,
                    "; {name}=\"{}\"",
                    value.replace('\\', "\\\\").replace('"', "\\\"")
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(m: &MediaType) -> Vec<(&str, &str)> {
        m.params
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn content_types_parse_as_browsers_read_them() {
        let m = MediaType::parse("Multipart/Related; TYPE=\"Application/DICOM\"; boundary=\"a;b\"")
            .unwrap();
        assert_eq!(m.essence, "multipart/related");
        assert_eq!(
            params(&m),
            [("type", "Application/DICOM"), ("boundary", "a;b")]
        );
        // Unquoted `/` (DICOMweb servers), spaces around `=`, a trailing `;`.
        let m = MediaType::parse("multipart/related; type = application/dicom ;").unwrap();
        assert_eq!(params(&m), [("type", "application/dicom")]);
        let m = MediaType::parse(" text/html ;charset=utf-8").unwrap();
        assert_eq!(
            (m.essence.as_str(), params(&m)),
            ("text/html", vec![("charset", "utf-8")])
        );
        // An unterminated quote runs to the end; escapes are undone.
        let m = MediaType::parse("multipart/related; type=\"application/dicom").unwrap();
        assert_eq!(params(&m), [("type", "application/dicom")]);
        let m = MediaType::parse(r#"a/b; x="q\"uo\\te"junk; y=1"#).unwrap();
        assert_eq!(params(&m), [("x", "q\"uo\\te"), ("y", "1")]);
        // Parameters without `=` or a name are skipped.
        let m = MediaType::parse("a/b; novalue; =x; ok=1").unwrap();
        assert_eq!(params(&m), [("ok", "1")]);
        for bad in [
            "",
            "  ",
            "text",
            "text/",
            "/html",
            "a/b/c",
            "text/html, application/dicom",
            "te xt/html",
            "text/h\u{e9}",
        ] {
            assert!(MediaType::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn patterns_match_the_type_and_every_parameter_they_name() {
        let dicom = TypePattern::parse("multipart/related; type=application/dicom").unwrap();
        let quoted = TypePattern::parse("Multipart/Related; type=\"application/dicom\"").unwrap();
        assert_eq!(dicom, quoted);
        assert_eq!(
            dicom.to_string(),
            "multipart/related; type=\"application/dicom\""
        );
        for yes in [
            "multipart/related; type=\"application/dicom\"; boundary=x",
            "multipart/related; type=application/dicom",
            "MULTIPART/RELATED;boundary=x;TYPE=APPLICATION/DICOM",
            "multipart/related; type=text/html; type=application/dicom",
        ] {
            assert!(dicom.matches(&MediaType::parse(yes).unwrap()), "{yes}");
        }
        for no in [
            "multipart/related",
            "multipart/related; type=\"application/dicom+xml\"",
            "multipart/mixed; type=application/dicom",
            "application/dicom",
        ] {
            assert!(!dicom.matches(&MediaType::parse(no).unwrap()), "{no}");
        }
        let plain = TypePattern::parse("application/dicom").unwrap();
        assert!(plain.matches(
            &MediaType::parse("application/DICOM; transfer-syntax=1.2.840.10008.1.2.1").unwrap()
        ));
        assert!(!plain.matches(&MediaType::parse("application/dicom+json").unwrap()));
    }

    #[test]
    fn patterns_that_could_never_match_are_refused() {
        for bad in [
            "",
            "dicom",
            "application/",
            "text/*",
            "*/*",
            "multipart/related; type",
            "multipart/related; type=",
            "multipart/related; type=\"\"",
            "multipart/related; =application/dicom",
            "multipart/related; ty pe=x",
        ] {
            assert!(TypePattern::parse(bad).is_err(), "{bad:?}");
        }
    }
}
