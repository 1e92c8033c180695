//! CSV for files an officer opens in a spreadsheet: every CSV ward writes goes through here.

/// One RFC 4180 cell: quoted when needed, and never read as a formula by a
/// spreadsheet (a leading `=`, `+`, `-`, `@`, tab or CR gets a `'` first).
pub fn cell(value: &str) -> String {
    let mut v = value.to_string();
    if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        v.insert(0, '\'');
    }
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

/// One record: every value through [`cell`], joined by commas, without a line end.
pub fn row<S: AsRef<str>>(values: impl IntoIterator<Item = S>) -> String {
    let cells: Vec<String> = values.into_iter().map(|v| cell(v.as_ref())).collect();
    cells.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_quoted_when_needed() {
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell(""), "");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("two\nlines"), "\"two\nlines\"");
        assert_eq!(cell("a\rb"), "\"a\rb\"");
    }

    #[test]
    fn formulas_are_defused() {
        assert_eq!(cell("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(cell("+1"), "'+1");
        assert_eq!(cell("-1+2"), "'-1+2");
        assert_eq!(cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(cell("\tx"), "'\tx");
        // A leading CR is defused and, being a line break, quoted.
        assert_eq!(cell("\rx"), "\"'\rx\"");
        assert_eq!(cell("=a,b"), "\"'=a,b\"");
        // Only the first character counts.
        assert_eq!(cell("a=b"), "a=b");
        assert_eq!(cell("2026-11-01"), "2026-11-01");
    }

    #[test]
    fn rows_join_cells() {
        assert_eq!(row(["a", "=1", "x,y", ""]), "a,'=1,\"x,y\",");
        assert_eq!(row(Vec::<String>::new()), "");
    }
}
