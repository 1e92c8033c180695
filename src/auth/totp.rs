//! TOTP second factor (RFC 6238 with SHA-1, 6 digits and a 30 s step: what authenticator apps use).

use data_encoding::BASE32_NOPAD;
use qrcode::QrCode;
use qrcode::render::svg;
use totp_rs::{Algorithm, Builder, Totp};

use super::codes::{RngError, ct_eq, fill_random, group};

/// Seconds per time step.
pub const STEP: u64 = 30;
/// Digits in a code.
pub const DIGITS: usize = 6;
/// Bytes in a new secret (160 bits, as RFC 4226 recommends).
pub const SECRET_LEN: usize = 20;

/// Why an enrollment could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum TotpError {
    /// RFC 4226 requires at least 128 bits; totp-rs refuses anything shorter.
    #[error("the TOTP secret is too short ({bits} bits; at least 128 are needed)")]
    SecretTooShort { bits: usize },
    /// The otpauth label separates issuer and account with ':', so neither may contain one.
    #[error("the issuer and account name must not be empty or contain ':'")]
    InvalidLabel,
    /// Any other refusal from totp-rs.
    #[error("could not build the TOTP key URI: {0}")]
    Uri(totp_rs::TotpError),
    /// The URI did not fit in a QR code.
    #[error("could not draw the QR code: {0}")]
    Qr(#[from] qrcode::types::QrError),
}

impl From<totp_rs::TotpError> for TotpError {
    fn from(err: totp_rs::TotpError) -> Self {
        match err {
            totp_rs::TotpError::SecretTooShort { bits } => TotpError::SecretTooShort { bits },
            totp_rs::TotpError::AccountNameNotSet
            | totp_rs::TotpError::InvalidAccountName { .. }
            | totp_rs::TotpError::InvalidIssuer { .. } => TotpError::InvalidLabel,
            other => TotpError::Uri(other),
        }
    }
}

/// What a person needs to add ward to an authenticator app.
#[derive(Debug, Clone)]
pub struct Enrollment {
    /// The key as base32 without padding, in groups of four for typing by hand.
    pub secret_base32: String,
    /// The otpauth:// key URI that the QR code holds.
    pub otpauth_uri: String,
    /// The QR code as an `<svg>` element for inlining in a page.
    pub qr_svg: String,
}

/// A new random 160-bit secret.
pub fn new_secret() -> Result<Vec<u8>, RngError> {
    let mut secret = vec![0u8; SECRET_LEN];
    fill_random(&mut secret)?;
    Ok(secret)
}

/// The key as text (base32, no padding, grouped in 4s for reading), the otpauth:// URI and a QR code as inline SVG.
pub fn enrollment(secret: &[u8], issuer: &str, account: &str) -> Result<Enrollment, TotpError> {
    // An app shows the issuer and account to tell keys apart, so neither may be blank.
    if issuer.trim().is_empty() || account.trim().is_empty() {
        return Err(TotpError::InvalidLabel);
    }
    let totp = Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS as u8)
        .with_step_duration(STEP)
        .with_secret(secret)
        .with_issuer(Some(issuer))
        .with_account_name(account)
        .build()?;
    let mut uri = totp.to_url()?;
    // totp-rs leaves out parameters that equal the defaults; some apps guess wrong without them.
    for (key, value) in [
        ("algorithm", "SHA1".to_string()),
        ("digits", DIGITS.to_string()),
        ("period", STEP.to_string()),
    ] {
        if !uri.contains(&format!("&{key}=")) && !uri.contains(&format!("?{key}=")) {
            uri.push_str(&format!("&{key}={value}"));
        }
    }
    let qr_svg = QrCode::new(uri.as_bytes())?
        .render::<svg::Color>()
        .min_dimensions(200, 200)
        .build();
    // The XML declaration is not allowed inside an HTML page, where the SVG is inlined.
    let qr_svg = match qr_svg.find("<svg") {
        Some(start) => qr_svg[start..].to_string(),
        None => qr_svg,
    };
    Ok(Enrollment {
        secret_base32: group(&BASE32_NOPAD.encode(secret), 4, ' '),
        otpauth_uri: uri,
        qr_svg,
    })
}

/// If `code` is valid at unix time `now` (one step either side for clock drift) and its step is after `last_step`, returns that step.
pub fn verify(secret: &[u8], code: &str, now: u64, last_step: Option<u64>) -> Option<u64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // build() refuses keys under 128 bits, so a truncated stored key cannot make codes easy to guess.
    let totp = compliant(secret)?;
    let current = now / STEP;
    let mut accepted = None;
    // Every step in the window is computed and compared, so timing does not tell which one matched.
    for step in current.saturating_sub(1)..=current + 1 {
        let Some(t) = step.checked_mul(STEP) else {
            continue;
        };
        let expected = totp.generate(t).to_string();
        let matches = ct_eq(&expected, &code);
        // A code is accepted once: its step must come after the last step accepted for this person.
        let fresh = last_step.is_none_or(|last| step > last);
        if matches && fresh && accepted.is_none() {
            accepted = Some(step);
        }
    }
    accepted
}

/// The code for unix time `t` (tests and the browser test compute codes with it).
pub fn code_at(secret: &[u8], t: u64) -> String {
    // Unlike verify, this works for any key length; HMAC accepts short keys and the output is only used to compare.
    plain(secret).generate(t).to_string()
}

/// Decodes a base32 key as shown to people (spaces, lower case and missing padding allowed).
pub fn decode_secret(text: &str) -> Option<Vec<u8>> {
    let cleaned: String = text
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let unpadded = cleaned.trim_end_matches('=');
    let bytes = BASE32_NOPAD.decode(unpadded.as_bytes()).ok()?;
    if bytes.is_empty() {
        return None;
    }
    Some(bytes)
}

/// ward's TOTP settings with `secret`, refusing keys totp-rs considers too short.
fn compliant(secret: &[u8]) -> Option<Totp> {
    settings(secret).build().ok()
}

/// ward's TOTP settings with `secret`, whatever its length.
fn plain(secret: &[u8]) -> Totp {
    settings(secret).build_noncompliant()
}

fn settings(secret: &[u8]) -> Builder {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS as u8)
        .with_step_duration(STEP)
        .with_skew(1)
        .with_secret(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc6238_sha1_vectors() {
        // RFC 6238 appendix B, SHA-1 column; the apps show the last 6 of the 8 digits.
        let vectors = [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ];
        for (t, eight) in vectors {
            let six = &eight[2..];
            assert_eq!(code_at(RFC_SECRET, t), six, "t={t}");
            assert_eq!(verify(RFC_SECRET, six, t, None), Some(t / STEP), "t={t}");
        }
    }

    #[test]
    fn new_secret_is_160_bits_and_random() {
        let a = new_secret().unwrap();
        let b = new_secret().unwrap();
        assert_eq!(a.len(), 20);
        assert_ne!(a, b);
    }

    #[test]
    fn same_step_is_not_accepted_twice() {
        let secret = new_secret().unwrap();
        let now = 1_700_000_000;
        let code = code_at(&secret, now);
        let step = verify(&secret, &code, now, None).unwrap();
        assert_eq!(step, now / STEP);
        assert_eq!(verify(&secret, &code, now, Some(step)), None);
        assert_eq!(verify(&secret, &code, now + 5, Some(step)), None);
        // An older step is refused too, once a newer one has been used.
        assert_eq!(verify(&secret, &code, now, Some(step + 1)), None);
        // The next step's code is still fine.
        let next = code_at(&secret, now + STEP);
        assert_eq!(
            verify(&secret, &next, now + STEP, Some(step)),
            Some(step + 1)
        );
    }

    #[test]
    fn one_step_either_side_is_accepted() {
        let secret = new_secret().unwrap();
        let now = 1_700_000_010;
        let step = now / STEP;
        let previous = code_at(&secret, now - STEP);
        let next = code_at(&secret, now + STEP);
        assert_eq!(verify(&secret, &previous, now, None), Some(step - 1));
        assert_eq!(verify(&secret, &next, now, None), Some(step + 1));
    }

    #[test]
    fn two_steps_away_is_refused() {
        let secret = RFC_SECRET;
        let now = 1_700_000_010;
        let current = code_at(secret, now);
        for t in [now - 2 * STEP, now + 2 * STEP] {
            let code = code_at(secret, t);
            // Skip the one-in-a-million case where the far code equals a code in the window.
            if code == current
                || code == code_at(secret, now - STEP)
                || code == code_at(secret, now + STEP)
            {
                continue;
            }
            assert_eq!(verify(secret, &code, now, None), None, "t={t}");
        }
    }

    #[test]
    fn malformed_codes_are_refused() {
        let now = 59;
        for code in [
            "",
            "28708",
            "2870821",
            "28708a",
            "+28708",
            "-28708",
            "287 08x",
            "２８７０８２",
            "287082\0",
        ] {
            assert_eq!(verify(RFC_SECRET, code, now, None), None, "{code:?}");
        }
    }

    #[test]
    fn spaces_inside_the_code_are_ignored() {
        assert_eq!(verify(RFC_SECRET, "287 082", 59, None), Some(1));
        assert_eq!(verify(RFC_SECRET, " 287082 ", 59, None), Some(1));
    }

    #[test]
    fn short_secret_is_refused_without_panic() {
        let short = b"short";
        let code = code_at(short, 59);
        assert_eq!(code.len(), 6);
        assert_eq!(verify(short, &code, 59, None), None);
        assert!(matches!(
            enrollment(short, "ward", "alice"),
            Err(TotpError::SecretTooShort { bits: 40 })
        ));
        assert_eq!(verify(&[], &code_at(&[], 59), 59, None), None);
    }

    #[test]
    fn extreme_times_do_not_panic() {
        let _ = verify(RFC_SECRET, "123456", u64::MAX, None);
        assert_eq!(code_at(RFC_SECRET, u64::MAX).len(), 6);
        let at_zero = code_at(RFC_SECRET, 0);
        assert_eq!(verify(RFC_SECRET, &at_zero, 0, None), Some(0));
    }

    #[test]
    fn decode_secret_round_trips_grouped_text() {
        let secret = new_secret().unwrap();
        let shown = enrollment(&secret, "ward", "alice").unwrap().secret_base32;
        assert_eq!(shown.len(), 32 + 7);
        assert!(shown.split(' ').all(|g| g.len() == 4));
        assert_eq!(decode_secret(&shown), Some(secret.clone()));
        assert_eq!(decode_secret(&shown.to_lowercase()), Some(secret.clone()));
        assert_eq!(decode_secret(&shown.replace(' ', "")), Some(secret));
        // 5 bytes is 8 characters; 1 byte needs padding, which may be left off or written.
        assert_eq!(decode_secret("me"), Some(vec![0x61]));
        assert_eq!(decode_secret("ME======"), Some(vec![0x61]));
        assert_eq!(decode_secret(""), None);
        assert_eq!(decode_secret("not base32!"), None);
        assert_eq!(decode_secret("0189"), None);
    }

    #[test]
    fn otpauth_uri_has_every_parameter() {
        let enrollment = enrollment(RFC_SECRET, "Ward Clinic", "alice@example.org").unwrap();
        let uri = &enrollment.otpauth_uri;
        assert!(
            uri.starts_with("otpauth://totp/Ward%20Clinic:alice%40example.org?"),
            "{uri}"
        );
        assert!(
            uri.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
            "{uri}"
        );
        assert!(uri.contains("issuer=Ward%20Clinic"), "{uri}");
        assert!(uri.contains("algorithm=SHA1"), "{uri}");
        assert!(uri.contains("digits=6"), "{uri}");
        assert!(uri.contains("period=30"), "{uri}");
        assert_eq!(uri.matches("algorithm=").count(), 1, "{uri}");
    }

    #[test]
    fn qr_code_is_inline_svg() {
        let enrollment = enrollment(RFC_SECRET, "ward", "alice").unwrap();
        let svg = &enrollment.qr_svg;
        assert!(svg.starts_with("<?xml") || svg.starts_with("<svg"), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn colon_in_names_is_an_error_not_a_panic() {
        assert!(matches!(
            enrollment(RFC_SECRET, "ward", "dr:smith"),
            Err(TotpError::InvalidLabel)
        ));
        assert!(matches!(
            enrollment(RFC_SECRET, "ward:clinic", "alice"),
            Err(TotpError::InvalidLabel)
        ));
        for (issuer, account) in [("ward", ""), ("", "alice"), ("ward", "  ")] {
            assert!(matches!(
                enrollment(RFC_SECRET, issuer, account),
                Err(TotpError::InvalidLabel)
            ));
        }
    }
}
