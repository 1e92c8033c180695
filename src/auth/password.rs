//! Password rules for new passwords (NIST SP 800-63B) and argon2id hashing.

use std::collections::HashSet;
use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use super::codes::{RngError, fill_random};

/// Fewest characters a new password may have.
pub const MIN_LEN: usize = 12;
/// Most characters a new password may have; long enough for any passphrase, short enough to bound the work.
pub const MAX_LEN: usize = 128;

/// Names shorter than this are too likely to occur by chance inside an unrelated password.
const MIN_NAME_PART: usize = 3;

/// Said when zxcvbn finds a password weak but gives no feedback of its own.
const WEAK_FALLBACK: &str = "Use a longer passphrase of several unrelated words.";

/// Stored hashes asking for more than this are refused rather than run (a damaged or planted hash must not exhaust memory or time).
const MAX_VERIFY_M_COST: u32 = 256 * 1024;
const MAX_VERIFY_T_COST: u32 = 16;
const MAX_VERIFY_P_COST: u32 = 8;

/// A hash made by `hash` (of a password nobody knows), so `verify_dummy` does the same work as `verify`.
const DUMMY_PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$9HRRndgh7RPzuVvETU73nA$OFF0J3YqpH2lRAdpCt0MKT1DmZlRUhjjqU+tFw6KIfk";

/// Why a new password is refused, in words shown to the person choosing it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordProblem {
    /// Fewer than `min` characters.
    #[error(
        "Use at least {min} characters; a passphrase of three or four unrelated words is easy to remember."
    )]
    TooShort { min: usize },
    /// More than `max` characters.
    #[error("Use at most {max} characters.")]
    TooLong { max: usize },
    /// On the shipped list of common or leaked passwords.
    #[error("This password is on a list of common or leaked passwords; choose another.")]
    Common,
    /// Contains the person's account name or part of their name.
    #[error("Don't use your name or user name in your password.")]
    ContainsName,
    /// zxcvbn rates it too easy to guess; `hint` says why in plain words.
    #[error("This password would be easy to guess. {hint}")]
    Weak { hint: String },
}

/// Why hashing failed.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// No salt could be drawn from the operating system.
    #[error(transparent)]
    Rng(#[from] RngError),
    /// argon2 refused the input or parameters.
    #[error("argon2 hashing failed: {0}")]
    Argon2(argon2::password_hash::Error),
}

/// NIST SP 800-63B checks for a new password. `names`: the account name and display name (and their parts).
pub fn check_new(password: &str, names: &[&str]) -> Result<(), PasswordProblem> {
    // Length is what a person counts: characters, not bytes.
    let len = password.chars().count();
    if len < MIN_LEN {
        return Err(PasswordProblem::TooShort { min: MIN_LEN });
    }
    if len > MAX_LEN {
        return Err(PasswordProblem::TooLong { max: MAX_LEN });
    }
    if is_common(password) {
        return Err(PasswordProblem::Common);
    }
    let parts = name_parts(names);
    let lowered = password.to_lowercase();
    if parts.iter().any(|part| lowered.contains(part.as_str())) {
        return Err(PasswordProblem::ContainsName);
    }
    let inputs: Vec<&str> = parts.iter().map(String::as_str).collect();
    let entropy = zxcvbn::zxcvbn(password, &inputs);
    if u8::from(entropy.score()) < 3 {
        return Err(PasswordProblem::Weak {
            hint: weakness_hint(entropy.feedback()),
        });
    }
    Ok(())
}

/// argon2id hash as a PHC string (random salt from the OS; OWASP parameters m=19456 KiB, t=2, p=1).
pub fn hash(password: &str) -> Result<String, HashError> {
    let mut salt = [0u8; 16];
    fill_random(&mut salt)?;
    let salt = SaltString::encode_b64(&salt).map_err(HashError::Argon2)?;
    let phc = hasher()
        .hash_password(password.as_bytes(), &salt)
        .map_err(HashError::Argon2)?;
    Ok(phc.to_string())
}

/// True when `password` matches `phc`. False (never panic) for a malformed stored hash.
pub fn verify(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    // Only what `hash` makes is accepted; anything else in the store is damage or tampering.
    if parsed.algorithm != argon2::ARGON2ID_IDENT {
        return false;
    }
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    if params.m_cost() > MAX_VERIFY_M_COST
        || params.t_cost() > MAX_VERIFY_T_COST
        || params.p_cost() > MAX_VERIFY_P_COST
    {
        return false;
    }
    // The parameters come from the stored hash; the comparison inside is constant time.
    hasher()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// Spends the same time as `verify` against a fixed dummy hash, so unknown accounts cannot be told apart by timing.
pub fn verify_dummy(password: &str) {
    std::hint::black_box(verify(password, DUMMY_PHC));
}

/// ward's argon2id settings: OWASP's recommended m=19456 KiB, t=2, p=1 (argon2's defaults).
fn hasher() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::DEFAULT)
}

/// True when the password, trimmed and in lower case, is on the shipped list.
fn is_common(password: &str) -> bool {
    common_passwords().contains(password.trim().to_lowercase().as_str())
}

/// The shipped common/leaked password list, parsed once.
fn common_passwords() -> &'static HashSet<&'static str> {
    static COMMON: OnceLock<HashSet<&'static str>> = OnceLock::new();
    COMMON.get_or_init(|| {
        include_str!("common_passwords.txt")
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .collect()
    })
}

/// The names and their parts, lower case, that a password must not contain.
fn name_parts(names: &[&str]) -> Vec<String> {
    let mut parts = Vec::new();
    for name in names {
        let whole = name.trim().to_lowercase();
        // For an e-mail address the domain is shared by everyone at the practice, so only the
        // part before '@' is split into name parts.
        let local = whole.split('@').next().unwrap_or_default();
        let pieces = local
            .split(|c: char| !c.is_alphanumeric())
            .map(str::to_string);
        for part in std::iter::once(whole.clone()).chain(pieces) {
            if part.chars().count() >= MIN_NAME_PART && !parts.contains(&part) {
                parts.push(part);
            }
        }
    }
    parts
}

/// zxcvbn's warning and first suggestion as plain text, or a general hint when it has none.
fn weakness_hint(feedback: Option<&zxcvbn::feedback::Feedback>) -> String {
    let Some(feedback) = feedback else {
        return WEAK_FALLBACK.to_string();
    };
    let mut words = Vec::new();
    if let Some(warning) = feedback.warning() {
        words.push(warning.to_string());
    }
    if let Some(suggestion) = feedback.suggestions().first() {
        words.push(suggestion.to_string());
    }
    if words.is_empty() {
        WEAK_FALLBACK.to_string()
    } else {
        words.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRONG: &str = "mellow tundra quietly orbits lanterns";

    #[test]
    fn short_password_is_refused() {
        assert_eq!(
            check_new("Tr0ub4dor&3", &[]),
            Err(PasswordProblem::TooShort { min: 12 })
        );
        assert_eq!(
            check_new("", &[]),
            Err(PasswordProblem::TooShort { min: 12 })
        );
        // Eleven characters, but 22 bytes: length is counted in characters.
        assert_eq!(
            check_new("ééééééééééé", &[]),
            Err(PasswordProblem::TooShort { min: 12 })
        );
        let message = PasswordProblem::TooShort { min: MIN_LEN }.to_string();
        assert!(
            message.starts_with("Use at least 12 characters;"),
            "{message}"
        );
    }

    #[test]
    fn long_password_is_refused() {
        let long = "word ".repeat(26);
        assert_eq!(long.chars().count(), 130);
        assert_eq!(
            check_new(&long, &[]),
            Err(PasswordProblem::TooLong { max: 128 })
        );
    }

    #[test]
    fn common_passwords_are_refused_whatever_the_case_or_padding() {
        for password in [
            "1qaz2wsx3edc",
            "QAZWSXEDCRFV",
            "  password1234  ",
            "Q1W2E3R4T5Y6",
            "\t123qweasdzxc\n",
            "   baseball   ",
        ] {
            assert_eq!(
                check_new(password, &[]),
                Err(PasswordProblem::Common),
                "{password:?}"
            );
        }
    }

    #[test]
    fn common_list_is_loaded_without_the_header() {
        let list = common_passwords();
        assert!((5_000..=20_000).contains(&list.len()), "{}", list.len());
        assert!(list.contains("password"));
        assert!(list.iter().all(|p| !p.starts_with('#') && p.len() >= 8));
        assert!(list.iter().all(|p| *p == p.to_lowercase()));
    }

    #[test]
    fn names_are_refused() {
        let names = ["asmith", "Alice Smith"];
        assert_eq!(
            check_new("my asmith quilted harbour", &names),
            Err(PasswordProblem::ContainsName)
        );
        assert_eq!(
            check_new("quilted ALICE harbour lamp", &names),
            Err(PasswordProblem::ContainsName)
        );
        assert_eq!(
            check_new("quilted harbour lamp Smithy", &names),
            Err(PasswordProblem::ContainsName)
        );
        // The local part of an e-mail address counts, the practice's domain does not.
        let email = ["dr.jones@clinic.org"];
        assert_eq!(
            check_new("quilted harbour lamp jones", &email),
            Err(PasswordProblem::ContainsName)
        );
        assert_eq!(check_new("gorgeous quilted harbour lamp", &email), Ok(()));
        // Parts under three characters are too common to refuse.
        assert_eq!(check_new("quilted harbour lamp", &["Al Li"]), Ok(()));
    }

    #[test]
    fn weak_passwords_are_refused_with_a_hint() {
        for password in [
            "aaaaaaaaaaaa",
            "abcdefghijklmn",
            "Password2024!",
            "monkey1234567",
        ] {
            match check_new(password, &[]) {
                Err(PasswordProblem::Weak { hint }) => assert!(!hint.is_empty(), "{password}"),
                other => panic!("{password}: {other:?}"),
            }
        }
        let message = check_new("summersummer", &[]).unwrap_err().to_string();
        assert!(
            message.starts_with("This password would be easy to guess. "),
            "{message}"
        );
    }

    #[test]
    fn hint_falls_back_when_zxcvbn_is_silent() {
        assert_eq!(weakness_hint(None), WEAK_FALLBACK);
        let empty = zxcvbn::feedback::Feedback::default();
        assert_eq!(weakness_hint(Some(&empty)), WEAK_FALLBACK);
    }

    #[test]
    fn strong_passphrase_is_accepted() {
        assert_eq!(check_new(STRONG, &["asmith", "Alice Smith"]), Ok(()));
    }

    #[test]
    fn hash_and_verify_round_trip() {
        let phc = hash(STRONG).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify(STRONG, &phc));
        assert!(!verify("mellow tundra quietly orbits lantern", &phc));
    }

    #[test]
    fn same_password_hashes_differ() {
        assert_ne!(
            hash("same password").unwrap(),
            hash("same password").unwrap()
        );
    }

    #[test]
    fn malformed_hashes_are_false() {
        for phc in [
            "",
            "not a hash",
            "$argon2id$",
            "$argon2id$v=19$m=19456,t=2,p=1$",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$",
            "$argon2id$v=19$m=19456,t=2,p=1$!!!$???",
            // Argon2i is not what ward makes.
            "$argon2i$v=19$m=19456,t=2,p=1$9HRRndgh7RPzuVvETU73nA$OFF0J3YqpH2lRAdpCt0MKT1DmZlRUhjjqU+tFw6KIfk",
            // Parameters that would take gigabytes of memory are refused, not run.
            "$argon2id$v=19$m=4294967295,t=2,p=1$9HRRndgh7RPzuVvETU73nA$OFF0J3YqpH2lRAdpCt0MKT1DmZlRUhjjqU+tFw6KIfk",
            "$argon2id$v=19$m=19456,t=4294967295,p=1$9HRRndgh7RPzuVvETU73nA$OFF0J3YqpH2lRAdpCt0MKT1DmZlRUhjjqU+tFw6KIfk",
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
        ] {
            assert!(!verify("anything at all", phc), "{phc:?}");
        }
    }

    #[test]
    fn dummy_hash_has_the_real_parameters() {
        let dummy = PasswordHash::new(DUMMY_PHC).unwrap();
        let fresh_phc = hash("x").unwrap();
        let fresh = PasswordHash::new(&fresh_phc).unwrap();
        assert_eq!(dummy.algorithm, fresh.algorithm);
        assert_eq!(dummy.version, fresh.version);
        assert_eq!(dummy.params, fresh.params);
        verify_dummy("anything at all");
        verify_dummy("");
    }
}
