//! Canonical request paths for routing, access decisions and the upstream request.
//!
//! ward decides on, and forwards, exactly the string [`canonicalize`] returns.
//! Anything that two servers (ward, IIS, Tomcat, PHP, nginx, WSGI) might read
//! differently is refused rather than repaired.
//!
//! Decisions where the rules left room:
//! - `%25` is refused outright, whatever follows it: no server needs a literal
//!   `%` in a path here, and it closes every double-decoding trick.
//! - A literal space or `?` is refused: the upstream would read it as the end of
//!   the path in its request line. Other literal bytes that RFC 3986 does not
//!   allow in a path (`"<>[]^`{|}`) are percent-encoded, which is how browsers
//!   and upstreams already read them.
//! - Encoded UTF-8 is refused when it is a control character (C1 such as U+0085)
//!   or one of a short list of code points that NFKC or Windows "best-fit"
//!   turn into `.`, `/`, `\` or `%`, or that simple case mapping turns into an
//!   ASCII letter (`ı` → `I`, `ſ` → `S`, `İ` → `i`, Kelvin `K` → `k`): a
//!   case-insensitive upstream (IIS/.NET, Java `equalsIgnoreCase`) would read
//!   `/adm%C4%B1n/` as `/admin/`, while ward folds ASCII letters only.
//! - A segment with encoded non-ASCII text is refused when NFKC normalization
//!   would change it (full-width `ｂ`, mathematical `𝐛`, modifier `ᵇ`, ligatures,
//!   a letter followed by a combining accent): an app that normalizes would read
//!   `/%EF%BD%82illing` as `/billing`. So is a letter outside Latin-1 whose
//!   compatibility decomposition starts with an ASCII letter or digit (`ā`, `ī`,
//!   `ŝ`): Windows "best-fit" code-page conversion turns it into that letter.
//!   So is a combining mark on an ASCII character (`b` + U+0332), which
//!   accent-folding servers drop. And so are default-ignorable code points (soft hyphen, zero-width space,
//!   bidi controls, variation selectors), which some servers drop.
//! - A segment ending in `.` or `%20` is refused (other than `.` and `..`
//!   themselves): Windows trims them, so `/admin./` is `/admin/` on IIS. This
//!   also covers `...`.
//! - A literal `;` is refused: Tomcat and Jetty drop everything after it in a
//!   segment (`/admin;x/` is `/admin/` to them), other servers do not, so a
//!   route decision on either reading could be wrong for the other. For `%3B`
//!   (in case an app decodes first) the part before it is judged as well: it
//!   must not be empty or only dots, and must not end in `.` or `%20`.
//! - Every segment is checked before dot segments are resolved, so a bad segment
//!   is refused even when a later `..` would remove it.

use std::borrow::Cow;

/// Why a request path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Empty, `*`, or anything else not starting with `/`.
    #[error("path does not start with '/'")]
    NotAbsolute,
    /// A literal `\`: Windows servers read it as `/`.
    #[error("backslash in path")]
    Backslash,
    /// A literal byte below 0x20 or 0x7f.
    #[error("control character in path")]
    ControlChar,
    /// A literal byte of 0x80 or above.
    #[error("non-ASCII byte in path")]
    NonAscii,
    /// A literal `#`, which never belongs in a request target.
    #[error("'#' in path")]
    Fragment,
    /// A literal space or `?`, which would end the path in the upstream request line.
    #[error("space or '?' in path")]
    Delimiter,
    /// `%` not followed by two hex digits.
    #[error("malformed percent escape in path")]
    BadEscape,
    /// `%2F` or `%5C`, which some servers decode into a separator.
    #[error("encoded slash or backslash in path")]
    EncodedSeparator,
    /// An encoded control character (C0, DEL or C1).
    #[error("encoded control character in path")]
    EncodedControl,
    /// `%25`, refused outright to rule out double decoding.
    #[error("encoded percent sign in path (possible double encoding)")]
    EncodedPercent,
    /// Encoded bytes of 0x80 and above that are not valid UTF-8 (overlong, surrogate, truncated).
    #[error("percent-encoded bytes in path are not valid UTF-8")]
    InvalidUtf8,
    /// An encoded character that some servers turn into `.`, `/`, `\`, `%` or an ASCII letter.
    #[error("encoded look-alike of '.', '/', '\\', '%' or a letter in path")]
    Lookalike,
    /// Encoded text that Unicode NFKC normalization would change.
    #[error("encoded text in path that Unicode normalization (NFKC) would change")]
    NotNormalized,
    /// An encoded invisible (default-ignorable) character, which some servers drop.
    #[error("encoded invisible character in path")]
    Invisible,
    /// A segment such as `;x`, `.;x` or `..;x`, which Tomcat reads as empty, `.` or `..`.
    #[error("';' in path (servers disagree about path parameters)")]
    SemicolonSegment,
    /// A segment ending in `.` or space, which Windows trims.
    #[error("path segment ends with '.' or space")]
    TrailingDotOrSpace,
    /// A `..` with nothing left to remove.
    #[error("path climbs above the root")]
    AboveRoot,
}

/// Encoded code points refused because NFKC or Windows best-fit map them to `.`, `/`, `\` or `%`,
/// or because their simple upper- or lower-case mapping is an ASCII letter (these four are the
/// only such code points), which a case-insensitive server then matches as that letter.
const LOOKALIKES: &[char] = &[
    '\u{0130}', // capital I with dot above -> lower-cases to i
    '\u{0131}', // dotless i -> upper-cases to I
    '\u{017F}', // long s -> upper-cases to S (NFKC s)
    '\u{212A}', // Kelvin sign -> lower-cases to k (NFKC K)
    '\u{2024}', // one dot leader -> .
    '\u{2025}', // two dot leader -> ..
    '\u{2026}', // horizontal ellipsis -> ...
    '\u{FE52}', // small full stop -> .
    '\u{FF0E}', // fullwidth full stop -> .
    '\u{2044}', // fraction slash -> /
    '\u{2215}', // division slash -> /
    '\u{FF0F}', // fullwidth solidus -> /
    '\u{2216}', // set minus -> \
    '\u{FE68}', // small reverse solidus -> \
    '\u{FF3C}', // fullwidth reverse solidus -> \
    '\u{00A5}', // yen sign -> \ (Japanese code page)
    '\u{20A9}', // won sign -> \ (Korean code page)
    '\u{FE6A}', // small percent sign -> %
    '\u{FF05}', // fullwidth percent sign -> %
];

/// The canonical form of a raw request path (no query), or why it is refused.
pub fn canonicalize(raw: &str) -> Result<String, PathError> {
    if is_plain(raw) {
        return Ok(raw.to_string());
    }
    canonical_form(raw)
}

/// Whether `raw` is already canonical by a short test that most app paths pass: only letters,
/// digits, `-._~` and `/`, no empty segment but a last one (the trailing `/`), and no segment
/// ending in `.` (which also rules out `.` and `..`). `canonical_form` gives such a path back
/// unchanged (a unit test checks this for every short path of these characters).
fn is_plain(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    bytes.first() == Some(&b'/')
        && bytes.iter().all(|&b| b == b'/' || is_unreserved(b))
        && !raw.contains("//")
        && !raw.contains("./")
        && !raw.ends_with('.')
}

/// `canonicalize` in full: every rule, for any path.
fn canonical_form(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    let rest = bytes.strip_prefix(b"/").ok_or(PathError::NotAbsolute)?;
    check_raw(bytes)?;

    // One string for it all, no string per segment. Every segment is decoded first, so
    // that a decoding error is the one reported wherever it is; then each is decoded again
    // into place and checked, and dot segments resolved as they come, every segment
    // checked before a climb above the root is reported.
    let mut out = String::with_capacity(raw.len() + 1);
    // `%2F` is refused, so a literal `/` is the only separator.
    for segment in rest.split(|&b| b == b'/') {
        out.clear();
        decode_segment(segment, &mut out)?;
    }
    out.clear();
    // Whether the path ends in `/`, `/.` or `/..`, which all keep a trailing `/`.
    let mut trailing_slash = false;
    let mut above_root = false;
    for segment in rest.split(|&b| b == b'/') {
        let start = out.len();
        out.push('/');
        decode_segment(segment, &mut out)?;
        let decoded = &out[start + 1..];
        check_segment(decoded)?;
        match decoded {
            "" | "." => {
                out.truncate(start);
                trailing_slash = true;
            }
            ".." => {
                out.truncate(start);
                // A decoded segment holds no `/`: the last one starts at the last `/`.
                match out.rfind('/') {
                    Some(last) => out.truncate(last),
                    None => above_root = true,
                }
                trailing_slash = true;
            }
            _ => trailing_slash = false,
        }
    }
    if above_root {
        return Err(PathError::AboveRoot);
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// The canonical path with the request's query as received: what ward forwards, and where a
/// sign-in returns to.
pub fn with_query(canonical: &str, uri: &http::Uri) -> String {
    match uri.query() {
        Some(q) => format!("{canonical}?{q}"),
        None => canonical.to_string(),
    }
}

/// Lower-cases a canonical path for apps whose server is case-insensitive (legacy IIS).
///
/// Only ASCII letters are folded; the hex digits of `%XX` stay upper-case so the
/// result is still canonical. Non-ASCII characters (kept encoded) are not folded.
pub fn fold_case(canonical: &str) -> Cow<'_, str> {
    if folded_chars(canonical).eq(canonical.chars()) {
        Cow::Borrowed(canonical)
    } else {
        Cow::Owned(folded_chars(canonical).collect())
    }
}

/// The characters of `s` with ASCII letters lowered, except the two after each `%`.
fn folded_chars(s: &str) -> impl Iterator<Item = char> + '_ {
    s.chars().scan(0u8, |hex_left, c| {
        let out = if *hex_left > 0 {
            *hex_left -= 1;
            c
        } else if c == '%' {
            *hex_left = 2;
            c
        } else {
            c.to_ascii_lowercase()
        };
        Some(out)
    })
}

/// Rule 2 over the whole raw path, so these errors win over later ones.
fn check_raw(bytes: &[u8]) -> Result<(), PathError> {
    for (i, &b) in bytes.iter().enumerate() {
        check_literal(b)?;
        if b == b'%' && escape_at(bytes, i).is_none() {
            return Err(PathError::BadEscape);
        }
    }
    Ok(())
}

/// Refuses a literal (not percent-encoded) byte that may never appear.
fn check_literal(b: u8) -> Result<(), PathError> {
    match b {
        b'\\' => Err(PathError::Backslash),
        b'#' => Err(PathError::Fragment),
        b' ' | b'?' => Err(PathError::Delimiter),
        0x00..=0x1f | 0x7f => Err(PathError::ControlChar),
        0x80..=0xff => Err(PathError::NonAscii),
        _ => Ok(()),
    }
}

/// The byte encoded by the `%XX` starting at `i`, if it is well formed.
fn escape_at(bytes: &[u8], i: usize) -> Option<u8> {
    let hi = hex_value(*bytes.get(i + 1)?)?;
    let lo = hex_value(*bytes.get(i + 2)?)?;
    Some(hi << 4 | lo)
}

/// The value of one ASCII hex digit.
fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// ALPHA / DIGIT / `-` / `.` / `_` / `~`: always written literally.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Bytes RFC 3986 allows literally in a path segment besides the unreserved ones.
fn is_sub_delim_or_colon_at(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' | b':' | b'@'
    )
}

/// Appends `%XX` with upper-case hex.
fn push_encoded(out: &mut String, b: u8) {
    out.push('%');
    out.push(hex_digit(b >> 4));
    out.push(hex_digit(b & 0x0f));
}

/// The upper-case hex digit for a value below 16.
fn hex_digit(n: u8) -> char {
    char::from(if n < 10 { b'0' + n } else { b'A' + (n - 10) })
}

/// Decodes one raw segment (no `/`) into its canonical spelling (rule 3).
/// Appends it to `out`.
fn decode_segment(segment: &[u8], out: &mut String) -> Result<(), PathError> {
    let start = out.len();
    // Encoded bytes >= 0x80 waiting to be checked as one UTF-8 run.
    let mut pending: Vec<u8> = Vec::new();
    let mut non_ascii = false;
    let mut i = 0;
    while let Some(&b) = segment.get(i) {
        if b != b'%' {
            flush_utf8(&mut pending, out)?;
            check_literal(b)?;
            if is_unreserved(b) || is_sub_delim_or_colon_at(b) {
                out.push(char::from(b));
            } else {
                // `"<>[]^`{|}`: not allowed literally; every server reads the encoded form the same.
                push_encoded(out, b);
            }
            i += 1;
            continue;
        }
        let byte = escape_at(segment, i).ok_or(PathError::BadEscape)?;
        i += 3;
        if byte >= 0x80 {
            non_ascii = true;
            pending.push(byte);
            continue;
        }
        flush_utf8(&mut pending, out)?;
        match byte {
            b'/' | b'\\' => return Err(PathError::EncodedSeparator),
            b'%' => return Err(PathError::EncodedPercent),
            0x00..=0x1f | 0x7f => return Err(PathError::EncodedControl),
            _ if is_unreserved(byte) => out.push(char::from(byte)),
            _ => push_encoded(out, byte),
        }
    }
    flush_utf8(&mut pending, out)?;
    // ASCII text never changes under NFKC, so only segments with encoded
    // non-ASCII bytes (rare) pay for the check.
    if non_ascii {
        check_unicode(&out[start..])?;
    }
    Ok(())
}

/// Refuses a canonical segment whose decoded text another server could read as
/// different text: NFKC would change it, best-fit would turn a letter into ASCII,
/// or it holds an invisible character. Judged on the whole decoded segment, so
/// an ASCII letter followed by an encoded combining accent counts too.
fn check_unicode(canonical_segment: &str) -> Result<(), PathError> {
    use unicode_normalization::UnicodeNormalization;
    let bytes = canonical_segment.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match (b, escape_at(bytes, i)) {
            (b'%', Some(v)) => {
                decoded.push(v);
                i += 3;
            }
            _ => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    let text = std::str::from_utf8(&decoded).map_err(|_| PathError::InvalidUtf8)?;
    if text.chars().any(is_default_ignorable) {
        return Err(PathError::Invisible);
    }
    if unicode_normalization::is_nfkc_quick(text.chars())
        != unicode_normalization::IsNormalized::Yes
        && !text.nfkc().eq(text.chars())
    {
        return Err(PathError::NotNormalized);
    }
    // Latin-1 letters are in the Western code pages as they are; beyond them,
    // best-fit conversion drops the accents (`ā` becomes `a`).
    let best_fit_ascii = |c: char| {
        c > '\u{FF}'
            && std::iter::once(c)
                .nfkd()
                .next()
                .is_some_and(|base| base.is_ascii_alphanumeric())
    };
    if text.chars().any(best_fit_ascii) {
        return Err(PathError::Lookalike);
    }
    // A mark on an ASCII character (`b` + combining low line): a server that
    // folds accents away reads the bare letter.
    let mut previous_ascii = true;
    for c in text.chars() {
        if previous_ascii && unicode_normalization::char::is_combining_mark(c) {
            return Err(PathError::Lookalike);
        }
        previous_ascii = c.is_ascii();
    }
    Ok(())
}

/// Unicode's Default_Ignorable_Code_Point property (DerivedCoreProperties.txt,
/// Unicode 15.1): characters with no visible form that servers may drop.
fn is_default_ignorable(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFF8}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

/// Checks a run of encoded high bytes as UTF-8 and writes it back encoded.
fn flush_utf8(pending: &mut Vec<u8>, out: &mut String) -> Result<(), PathError> {
    if pending.is_empty() {
        return Ok(());
    }
    // std's decoder rejects overlong forms, surrogates, bad continuations and truncation.
    let text = std::str::from_utf8(pending).map_err(|_| PathError::InvalidUtf8)?;
    for c in text.chars() {
        if c.is_control() {
            return Err(PathError::EncodedControl);
        }
        if LOOKALIKES.contains(&c) {
            return Err(PathError::Lookalike);
        }
    }
    for &b in pending.iter() {
        push_encoded(out, b);
    }
    pending.clear();
    Ok(())
}

/// Rules 5 and 7 on one decoded segment.
fn check_segment(segment: &str) -> Result<(), PathError> {
    if matches!(segment, "" | "." | "..") {
        return Ok(());
    }
    // Tomcat/Jetty read `/admin;x/` as `/admin/`, other servers as a segment
    // named `admin;x`: two readings of one path, so a literal `;` is refused.
    // `%3B` too: an upstream that decodes before cutting parameters reads it as `;`.
    if segment.contains(';') || segment.contains("%3B") {
        return Err(PathError::SemicolonSegment);
    }
    // Tomcat/Jetty drop everything from the first `;`; judge the name they see too.
    let cut = [segment.find(';'), segment.find("%3B")]
        .into_iter()
        .flatten()
        .min();
    let name = cut.and_then(|at| segment.get(..at)).unwrap_or(segment);
    if cut.is_some() && name.bytes().all(|b| b == b'.') {
        return Err(PathError::SemicolonSegment);
    }
    // Windows trims trailing dots and spaces, so `admin.` and `admin%20` are `admin`.
    for part in [segment, name] {
        if part.ends_with('.') || part.ends_with("%20") {
            return Err(PathError::TrailingDotOrSpace);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every path of up to 8 characters over `/`, `.`, `-`, `~`, `a` and `0` that the short
    /// test passes is one the full rules give back unchanged; and the short test passes some.
    #[test]
    fn a_plain_path_is_what_the_full_rules_make_of_it() {
        const CHARS: &[u8] = b"/.-~a0";
        let mut plain = 0;
        let mut path = vec![b'/'];
        fn walk(path: &mut Vec<u8>, left: usize, plain: &mut usize) {
            let raw = std::str::from_utf8(path).unwrap();
            if is_plain(raw) {
                *plain += 1;
                assert_eq!(canonical_form(raw).as_deref(), Ok(raw), "{raw}");
            }
            if left == 0 {
                return;
            }
            for &c in CHARS {
                path.push(c);
                walk(path, left - 1, plain);
                path.pop();
            }
        }
        walk(&mut path, 7, &mut plain);
        assert!(plain > 10_000, "{plain}");
        for raw in [
            "/",
            "/a/",
            "/.well-known/x",
            "/files/report.pdf",
            "/a-b_c~d/0",
        ] {
            assert!(is_plain(raw), "{raw}");
        }
        for raw in [
            "", "a", "//", "/a//b", "/a/./b", "/a/..", "/a.", "/a%41", "/a;b", "/a b",
        ] {
            assert!(!is_plain(raw), "{raw}");
        }
    }
    use PathError::*;

    const CASES: &[(&str, Result<&str, PathError>)] = &[
        // Plain paths.
        ("/", Ok("/")),
        ("/a", Ok("/a")),
        ("/a/b/c", Ok("/a/b/c")),
        ("/index.html", Ok("/index.html")),
        ("/A/B", Ok("/A/B")),
        (
            "/.well-known/acme-challenge/x",
            Ok("/.well-known/acme-challenge/x"),
        ),
        ("/a:b@c!$&'()*+,=", Ok("/a:b@c!$&'()*+,=")),
        // Trailing slash and `//` merging.
        ("/a/b/", Ok("/a/b/")),
        ("//", Ok("/")),
        ("//a", Ok("/a")),
        ("/a//b", Ok("/a/b")),
        ("///a///b///", Ok("/a/b/")),
        // Dot segments.
        ("/./", Ok("/")),
        ("/.", Ok("/")),
        ("/a/./b", Ok("/a/b")),
        ("/a/.", Ok("/a/")),
        ("/a/..", Ok("/")),
        ("/a/../", Ok("/")),
        ("/a/b/../c", Ok("/a/c")),
        ("/a/b/..", Ok("/a/")),
        ("/a/b/../../c/", Ok("/c/")),
        ("/a/%2e%2e/b", Ok("/b")),
        ("/a/%2E/b", Ok("/a/b")),
        ("/a/.%2E/b", Ok("/b")),
        // Climbing above the root.
        ("/..", Err(AboveRoot)),
        ("/../", Err(AboveRoot)),
        ("/a/../..", Err(AboveRoot)),
        ("/a/../../b", Err(AboveRoot)),
        ("/%2e%2e/", Err(AboveRoot)),
        ("/.%2e/", Err(AboveRoot)),
        ("/%2E%2e/", Err(AboveRoot)),
        // Decoding unreserved bytes, keeping the rest encoded with upper-case hex.
        ("/%41dmin", Ok("/Admin")),
        ("/%7euser", Ok("/~user")),
        ("/%2D%5f%7E", Ok("/-_~")),
        ("/a%3ab", Ok("/a%3Ab")),
        ("/a%3Ab", Ok("/a%3Ab")),
        ("/a%20b", Ok("/a%20b")),
        ("/a%3fb", Ok("/a%3Fb")),
        ("/a%23b", Ok("/a%23b")),
        ("/a|b", Ok("/a%7Cb")),
        ("/a{b}", Ok("/a%7Bb%7D")),
        // Valid UTF-8 stays encoded.
        ("/caf%c3%a9", Ok("/caf%C3%A9")),
        ("/%C3%A9", Ok("/%C3%A9")),
        ("/%f0%9f%98%80", Ok("/%F0%9F%98%80")),
        // Encoded separators and controls.
        ("/a%2fb", Err(EncodedSeparator)),
        ("/a%2Fb", Err(EncodedSeparator)),
        ("/a%5cb", Err(EncodedSeparator)),
        ("/a%5Cb", Err(EncodedSeparator)),
        ("/..%2f", Err(EncodedSeparator)),
        ("/a%00", Err(EncodedControl)),
        ("/a%0a", Err(EncodedControl)),
        ("/a%0d", Err(EncodedControl)),
        ("/a%7f", Err(EncodedControl)),
        ("/a%c2%85", Err(EncodedControl)),
        // Double encoding.
        ("/%252e%252e/", Err(EncodedPercent)),
        ("/%252f", Err(EncodedPercent)),
        ("/a%25", Err(EncodedPercent)),
        // Backslashes.
        ("/a\\b", Err(Backslash)),
        ("/..\\", Err(Backslash)),
        // Semicolon path parameters.
        ("/a;b", Err(SemicolonSegment)),
        ("/admin;x/secret", Err(SemicolonSegment)),
        ("/a/b;jsessionid=1", Err(SemicolonSegment)),
        ("/a/b%3Bjsessionid=1", Err(SemicolonSegment)),
        ("/admin%3bx/secret", Err(SemicolonSegment)),
        ("/..;/", Err(SemicolonSegment)),
        ("/.;/", Err(SemicolonSegment)),
        ("/a/..;jsessionid=1/b", Err(SemicolonSegment)),
        ("/;x/", Err(SemicolonSegment)),
        ("/;", Err(SemicolonSegment)),
        ("/a/%2e%2e;/b", Err(SemicolonSegment)),
        ("/a/..%3bx/b", Err(SemicolonSegment)),
        ("/..;/../..", Err(SemicolonSegment)),
        ("/admin.;x/", Err(SemicolonSegment)),
        // Invalid UTF-8.
        ("/%c0%ae%c0%ae/", Err(InvalidUtf8)),
        ("/%c0%af", Err(InvalidUtf8)),
        ("/%e0%80%ae", Err(InvalidUtf8)),
        ("/%ed%a0%80", Err(InvalidUtf8)),
        ("/%e2%82", Err(InvalidUtf8)),
        ("/%e2%82a%ac", Err(InvalidUtf8)),
        ("/%80", Err(InvalidUtf8)),
        ("/%f4%90%80%80", Err(InvalidUtf8)),
        // Look-alikes of separators.
        ("/%ef%bc%8f", Err(Lookalike)),
        ("/%EF%BC%8E%EF%BC%8E/", Err(Lookalike)),
        // Letters a case-insensitive server folds into ASCII: /admın/ is /ADMIN/ to IIS.
        ("/adm%C4%B1n/", Err(Lookalike)),
        ("/%c4%b0ndex", Err(Lookalike)),
        ("/admin%C5%BF", Err(Lookalike)),
        ("/%E2%84%AAey", Err(Lookalike)),
        // NFKC would change them: full-width, mathematical and modifier letters,
        // ligatures, a letter and a combining accent (NFKC composes them).
        ("/%C4%B2", Err(NotNormalized)),
        ("/%EF%BD%82illing", Err(NotNormalized)),
        ("/%F0%9D%90%9Billing", Err(NotNormalized)),
        ("/%E1%B5%87illing", Err(NotNormalized)),
        ("/%EF%AC%81le", Err(NotNormalized)),
        ("/e%CC%81", Err(NotNormalized)),
        ("/a/%E2%85%A0/b", Err(NotNormalized)),
        // Best-fit turns these into ASCII letters; Latin-1 letters stay.
        ("/b%C4%ABlling", Err(Lookalike)),
        ("/%C5%9Dcan", Err(Lookalike)),
        ("/b%CC%B2illing", Err(Lookalike)),
        ("/%CC%81", Err(Lookalike)),
        ("/M%C3%BCller/caf%C3%A9", Ok("/M%C3%BCller/caf%C3%A9")),
        ("/%E6%97%A5%E6%9C%AC", Ok("/%E6%97%A5%E6%9C%AC")),
        // Invisible characters some servers drop.
        ("/bil%C2%ADling", Err(Invisible)),
        ("/bil%E2%80%8Bling", Err(Invisible)),
        ("/%EF%BB%BFadmin", Err(Invisible)),
        ("/a%E2%80%AEb", Err(Invisible)),
        // Bad escapes.
        ("/%", Err(BadEscape)),
        ("/%4", Err(BadEscape)),
        ("/%zz", Err(BadEscape)),
        ("/a%g1", Err(BadEscape)),
        ("/%u002e", Err(BadEscape)),
        ("/../%zz", Err(BadEscape)),
        // Literal bytes that are never allowed.
        ("/a#b", Err(Fragment)),
        ("/a\tb", Err(ControlChar)),
        ("/a\nb", Err(ControlChar)),
        ("/a\r", Err(ControlChar)),
        ("/a\0", Err(ControlChar)),
        ("/a\x7f", Err(ControlChar)),
        ("/café", Err(NonAscii)),
        ("/a b", Err(Delimiter)),
        ("/a?b", Err(Delimiter)),
        // Not a path.
        ("", Err(NotAbsolute)),
        ("*", Err(NotAbsolute)),
        ("a/b", Err(NotAbsolute)),
        ("%2fa", Err(NotAbsolute)),
        // Windows trims trailing dots and spaces.
        ("/...", Err(TrailingDotOrSpace)),
        ("/a/..../b", Err(TrailingDotOrSpace)),
        ("/%2e%2e%2e", Err(TrailingDotOrSpace)),
        ("/admin./", Err(TrailingDotOrSpace)),
        ("/admin%20/", Err(TrailingDotOrSpace)),
        ("/a/..%20/", Err(TrailingDotOrSpace)),
    ];

    #[test]
    fn table() {
        let mut failures = Vec::new();
        for (raw, expected) in CASES {
            let got = canonicalize(raw);
            if got.as_deref().map_err(Clone::clone) != *expected {
                failures.push(format!("{raw:?}: got {got:?}, want {expected:?}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        assert!(CASES.len() >= 60);
    }

    #[test]
    fn accepted_table_entries_are_fixed_points() {
        for (raw, expected) in CASES {
            if let Ok(out) = *expected {
                assert_eq!(canonicalize(out).as_deref(), Ok(out), "{raw:?}");
            }
        }
    }

    #[test]
    fn messages_are_plain_english() {
        assert_eq!(
            EncodedSeparator.to_string(),
            "encoded slash or backslash in path"
        );
        assert_eq!(AboveRoot.to_string(), "path climbs above the root");
    }

    #[test]
    fn fold_case_lowers_ascii_but_not_escapes() {
        let cases = [
            ("/Admin/%3A", "/admin/%3A"),
            ("/%C3%A9X", "/%C3%A9x"),
            ("/ABC;D=E", "/abc;d=e"),
            ("/already/lower", "/already/lower"),
            ("/É", "/É"),
            ("/a%", "/a%"),
            ("/A%4", "/a%4"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(fold_case(input), want, "{input:?}");
        }
        assert!(matches!(fold_case("/already/lower"), Cow::Borrowed(_)));
        assert!(matches!(fold_case("/%C3%A9"), Cow::Borrowed(_)));
        assert!(matches!(fold_case("/Admin"), Cow::Owned(_)));
    }

    /// Deterministic xorshift64 so the generated cases are the same on every run.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % n as u64).unwrap_or(0)
        }

        fn string(&mut self, alphabet: &[&str], max_len: usize) -> String {
            let mut s = String::new();
            if !self.next().is_multiple_of(4) {
                s.push('/');
            }
            for _ in 0..self.below(max_len + 1) {
                s.push_str(alphabet.get(self.below(alphabet.len())).unwrap_or(&"/"));
            }
            s
        }
    }

    /// The invariants every accepted path must satisfy.
    fn check_invariants(raw: &str) -> bool {
        let Ok(out) = canonicalize(raw) else {
            return false;
        };
        assert!(out.starts_with('/'), "{raw:?} -> {out:?}");
        assert!(!out.contains("//"), "{raw:?} -> {out:?}");
        assert!(!out.contains('\\'), "{raw:?} -> {out:?}");
        let upper = out.to_ascii_uppercase();
        assert!(
            !upper.contains("%2F") && !upper.contains("%5C"),
            "{raw:?} -> {out:?}"
        );
        assert!(!upper.contains("%25"), "{raw:?} -> {out:?}");
        assert!(
            out.split('/').all(|seg| seg != "." && seg != ".."),
            "{raw:?} -> {out:?}"
        );
        for (i, _) in out.match_indices('%') {
            let hex = out.get(i + 1..i + 3).unwrap_or("");
            assert!(
                hex.len() == 2
                    && hex
                        .bytes()
                        .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()),
                "{raw:?} -> {out:?}"
            );
        }
        assert_eq!(canonicalize(&out).as_ref(), Ok(&out), "{raw:?}");
        let folded = fold_case(&out);
        assert_eq!(fold_case(&folded), folded, "{raw:?}");
        true
    }

    #[test]
    fn generated_paths_hold_invariants() {
        let alphabet = ["/", ".", "%", "2", "e", "f", "5", "c", ";", "a", "\\"];
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let mut accepted = 0;
        for _ in 0..5000 {
            let raw = rng.string(&alphabet, 16);
            if check_invariants(&raw) {
                accepted += 1;
            }
        }
        // Make sure the run exercised the accepting side, not only refusals.
        assert!(accepted > 500, "only {accepted} accepted");
    }

    #[test]
    fn generated_escapes_hold_invariants() {
        let alphabet = [
            "/", ".", "%2e", "%2E", "%41", "%3b", ";", "%c3", "%a9", "%e2", "%82", "%ac", "%20",
            "%7e", "a", "B", "|", "..", "%ef", "%bc", "%8f", ":",
        ];
        let mut rng = XorShift(0x0123_4567_89AB_CDEF);
        let mut accepted = 0;
        for _ in 0..5000 {
            let raw = rng.string(&alphabet, 10);
            if check_invariants(&raw) {
                accepted += 1;
            }
        }
        assert!(accepted > 500, "only {accepted} accepted");
    }

    #[test]
    fn every_single_byte_after_slash_is_handled() {
        let mut accepted = 0;
        for b in 0u8..=255 {
            for raw in [
                format!("/{}", char::from(b)),
                format!("/%{b:02x}"),
                format!("/a%{b:02X}b"),
            ] {
                let ok = check_invariants(&raw);
                accepted += usize::from(ok);
                // Letters and digits are ordinary, written plainly or encoded.
                if b.is_ascii_alphanumeric() {
                    assert!(ok, "{raw:?} refused");
                }
                // Control bytes and encoded separators never make a path.
                if b.is_ascii_control() || (raw.contains('%') && (b == b'/' || b == b'\\')) {
                    assert!(!ok, "{raw:?} accepted");
                }
            }
        }
        assert!(accepted > 62 * 3, "only {accepted} accepted");
    }

    #[test]
    fn with_query_keeps_the_query_as_received_after_the_canonical_path() {
        let uri: http::Uri = "/a/./b?x=%2F&y".parse().unwrap();
        assert_eq!(with_query("/a/b", &uri), "/a/b?x=%2F&y");
        let uri: http::Uri = "/a/b".parse().unwrap();
        assert_eq!(with_query("/a/b", &uri), "/a/b");
        let uri: http::Uri = "/a/b?".parse().unwrap();
        assert_eq!(with_query("/a/b", &uri), "/a/b?");
    }
}
