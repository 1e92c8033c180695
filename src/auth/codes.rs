//! Random tokens (session ids, enrollment links, CSRF tokens) and single-use recovery codes.

use data_encoding::{BASE32_NOPAD, BASE64URL_NOPAD, HEXLOWER};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The operating system's random number generator failed; no secret value was made.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct RngError(#[source] getrandom::Error);

/// Fills `buf` from the OS random number generator, the only randomness source these modules use.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), RngError> {
    getrandom::fill(buf).map_err(RngError)
}

/// How many recovery codes a person gets at a time.
pub const RECOVERY_CODE_COUNT: usize = 10;

/// A 256-bit random token, base64url without padding (session ids, enrollment links, CSRF tokens).
pub fn random_token() -> Result<String, RngError> {
    let mut bytes = [0u8; 32];
    fill_random(&mut bytes)?;
    Ok(BASE64URL_NOPAD.encode(&bytes))
}

/// SHA-256 of a token, hex; what is stored instead of an enrollment token.
pub fn token_hash(token: &str) -> String {
    HEXLOWER.encode(&Sha256::digest(token.as_bytes()))
}

/// Constant-time string equality: the one compare for secrets (tokens, codes, OIDC state).
pub fn ct_eq(a: &str, b: &str) -> bool {
    // subtle returns early only on a length mismatch, which reveals nothing secret here.
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Ten single-use recovery codes (80 bits each, shown as xxxx-xxxx-xxxx-xxxx) and their SHA-256 hashes.
pub fn new_recovery_codes() -> Result<(Vec<String>, Vec<String>), RngError> {
    let mut codes = Vec::with_capacity(RECOVERY_CODE_COUNT);
    let mut hashes = Vec::with_capacity(RECOVERY_CODE_COUNT);
    for _ in 0..RECOVERY_CODE_COUNT {
        // 10 bytes encode to exactly 16 base32 characters, so there is no padding to strip.
        let mut bytes = [0u8; 10];
        fill_random(&mut bytes)?;
        let plain = BASE32_NOPAD.encode(&bytes).to_ascii_lowercase();
        hashes.push(token_hash(&plain));
        codes.push(group(&plain, 4, '-'));
    }
    Ok((codes, hashes))
}

/// The index of the stored hash `code` matches (ignoring case, spaces and dashes), checking all in constant time per entry.
pub fn match_recovery(code: &str, hashes: &[String]) -> Option<usize> {
    let wanted = token_hash(&normalize_recovery(code));
    let mut found = None;
    // No early exit: every entry is compared, so timing does not tell which one matched.
    for (index, stored) in hashes.iter().enumerate() {
        if ct_eq(&wanted, stored) && found.is_none() {
            found = Some(index);
        }
    }
    found
}

/// The form a recovery code is hashed in: lower case, without the spaces and dashes people type.
fn normalize_recovery(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Splits `text` into groups of `size` characters joined by `sep`, for reading aloud or copying by hand.
pub(crate) fn group(text: &str, size: usize, sep: char) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / size.max(1));
    for (i, c) in text.chars().enumerate() {
        if i > 0 && i % size.max(1) == 0 {
            out.push(sep);
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn token_is_43_base64url_chars() {
        let token = random_token().unwrap();
        assert_eq!(token.len(), 43);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(BASE64URL_NOPAD.decode(token.as_bytes()).unwrap().len(), 32);
    }

    #[test]
    fn tokens_are_unique() {
        let tokens: HashSet<String> = (0..100).map(|_| random_token().unwrap()).collect();
        assert_eq!(tokens.len(), 100);
    }

    #[test]
    fn token_hash_is_stable_sha256_hex() {
        // SHA-256("abc") from FIPS 180-2.
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let token = random_token().unwrap();
        assert_eq!(token_hash(&token), token_hash(&token));
        assert_ne!(token_hash(&token), token_hash("other"));
    }

    #[test]
    fn ct_eq_compares_strings() {
        assert!(ct_eq("same", "same"));
        assert!(ct_eq("", ""));
        assert!(!ct_eq("same", "Same"));
        assert!(!ct_eq("same", "same "));
        assert!(!ct_eq("abc", "abd"));
        assert!(!ct_eq("", "a"));
    }

    #[test]
    fn recovery_codes_have_the_shown_format() {
        let (codes, hashes) = new_recovery_codes().unwrap();
        assert_eq!(codes.len(), 10);
        assert_eq!(hashes.len(), 10);
        for code in &codes {
            assert_eq!(code.len(), 19, "{code}");
            let parts: Vec<&str> = code.split('-').collect();
            assert_eq!(parts.len(), 4, "{code}");
            for part in parts {
                assert_eq!(part.len(), 4, "{code}");
                assert!(
                    part.bytes()
                        .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b)),
                    "{code}"
                );
            }
        }
        let unique: HashSet<&String> = codes.iter().collect();
        assert_eq!(unique.len(), 10);
        for hash in &hashes {
            assert_eq!(hash.len(), 64);
        }
    }

    #[test]
    fn recovery_code_matches_ignoring_case_spaces_and_dashes() {
        let (codes, hashes) = new_recovery_codes().unwrap();
        assert_eq!(match_recovery(&codes[0], &hashes), Some(0));
        assert_eq!(match_recovery(&codes[7].to_uppercase(), &hashes), Some(7));
        let plain = codes[3].replace('-', "");
        assert_eq!(match_recovery(&plain, &hashes), Some(3));
        let spaced = format!("  {}  ", codes[9].replace('-', " "));
        assert_eq!(match_recovery(&spaced, &hashes), Some(9));
    }

    #[test]
    fn wrong_recovery_code_matches_nothing() {
        let (codes, hashes) = new_recovery_codes().unwrap();
        assert_eq!(match_recovery("aaaa-bbbb-cccc-dddd", &hashes), None);
        assert_eq!(match_recovery("", &hashes), None);
        let mut altered = codes[0].clone();
        let last = if altered.ends_with('a') { "b" } else { "a" };
        altered.replace_range(18..19, last);
        assert_eq!(match_recovery(&altered, &hashes), None);
        assert_eq!(match_recovery(&codes[0], &[]), None);
    }

    #[test]
    fn group_splits_evenly() {
        assert_eq!(group("abcdefgh", 4, '-'), "abcd-efgh");
        assert_eq!(group("abcdef", 4, ' '), "abcd ef");
        assert_eq!(group("", 4, ' '), "");
    }
}
