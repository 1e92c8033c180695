//! Problems found in a policy file, reported as `FILE:LINE:COL: message`.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// How serious a finding is: errors stop a policy from loading, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The policy cannot be used until this is fixed.
    Error,
    /// The policy works, but the officer should look at this.
    Warning,
}

/// One finding, with its place in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
    /// What is wrong and what to change, in plain words.
    pub message: String,
    /// Error or warning.
    pub severity: Severity,
}

/// Every finding for one file, in file order.
#[derive(Debug, Clone, thiserror::Error)]
pub struct Diagnostics {
    /// The file as the officer named it.
    pub file: PathBuf,
    /// The findings.
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// True when at least one finding is an error.
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    /// One finding as `FILE:LINE:COL: message`.
    pub fn format(&self, d: &Diagnostic) -> String {
        let tag = match d.severity {
            Severity::Error => "",
            Severity::Warning => "warning: ",
        };
        format!(
            "{}:{}:{}: {}{}",
            self.file.display(),
            d.line,
            d.col,
            tag,
            d.message
        )
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.items.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            f.write_str(&self.format(d))?;
        }
        Ok(())
    }
}

/// Collects findings while a file is checked, turning byte spans into line:col.
pub struct Collector<'a> {
    text: &'a str,
    file: &'a Path,
    items: Vec<Diagnostic>,
}

impl<'a> Collector<'a> {
    /// A collector for `text`, read from `file`.
    pub fn new(file: &'a Path, text: &'a str) -> Self {
        Collector {
            text,
            file,
            items: Vec::new(),
        }
    }

    /// Records an error at the start of `span`.
    pub fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.push(span, message.into(), Severity::Error);
    }

    /// Records a warning at the start of `span`.
    pub fn warning(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.push(span, message.into(), Severity::Warning);
    }

    fn push(&mut self, span: Range<usize>, message: String, severity: Severity) {
        let (line, col) = line_col(self.text, span.start);
        self.items.push(Diagnostic {
            line,
            col,
            message,
            severity,
        });
    }

    /// True when an error has been recorded.
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    /// The findings, sorted by place in the file.
    pub fn finish(mut self) -> Diagnostics {
        self.items.sort_by_key(|d| (d.line, d.col));
        self.items.dedup();
        Diagnostics {
            file: self.file.to_path_buf(),
            items: self.items,
        }
    }
}

/// The 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        // 'é' is two bytes but one column.
        assert_eq!(line_col(text, 9), (2, 3));
        assert_eq!(line_col(text, 999), (3, 1));
    }
}
