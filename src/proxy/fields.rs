//! Field rules on CSV and JSON answers: the same `hide` and `mask` rules as on
//! HTML pages, found by name (a CSV column's header, a JSON field's key).

use crate::policy::{FieldRule, Show, same_field};

/// What a hidden field's content becomes (pages, CSV and JSON alike).
pub const PLACEHOLDER: &str = "[hidden]";

/// A CSV answer the rules cannot be applied to safely; it is refused to those roles.
#[derive(Debug, PartialEq, Eq)]
pub struct Unreadable;

/// What stands for each masked letter or digit.
const DOT: char = '•';

/// `text` as `show` leaves it. `Last4` keeps the last 4 letters or digits and
/// the separators between them (`123-45-6789` → `•••-••-6789`); a value of 4
/// letters or digits or fewer would show whole, so it is masked whole.
pub fn mask(text: &str, show: Show) -> String {
    match show {
        Show::Nothing => PLACEHOLDER.to_string(),
        Show::Last4 => {
            let total = text.chars().filter(|c| c.is_alphanumeric()).count();
            let keep_from = if total > 4 { total - 4 } else { total };
            let mut seen = 0;
            text.chars()
                .map(|c| {
                    if !c.is_alphanumeric() {
                        return c;
                    }
                    seen += 1;
                    if seen > keep_from { c } else { DOT }
                })
                .collect()
        }
    }
}

/// The rule for a column or field called `name`, if one names it.
fn rule_for<'r>(name: &str, rules: &'r [FieldRule]) -> Option<(usize, &'r FieldRule)> {
    let name = name.trim_start_matches('\u{feff}');
    rules
        .iter()
        .enumerate()
        .find(|(_, r)| r.name.as_deref().is_some_and(|n| same_field(name, n)))
}

/// A CSV answer with the rules' columns (by header) removed or masked. The first
/// record is the header. `matched[i]` is set when rule `i` named a column. Rows
/// of another length, or a file that looks split by something other than commas,
/// cannot be read safely and are refused.
pub fn csv(doc: &[u8], rules: &[FieldRule], matched: &mut [bool]) -> Result<Vec<u8>, Unreadable> {
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(false)
        .from_reader(doc);
    let mut records = reader.byte_records();
    let Some(header) = records.next() else {
        return Ok(Vec::new());
    };
    let header = header.map_err(|_| Unreadable)?;
    // One column whose header has `;` or a tab is another separator: its fields unseen.
    if header.len() == 1
        && header
            .iter()
            .any(|h| h.contains(&b';') || h.contains(&b'\t'))
    {
        return Err(Unreadable);
    }
    let plan: Vec<Option<Show>> = header
        .iter()
        .map(|h| {
            let (i, rule) = rule_for(&String::from_utf8_lossy(h), rules)?;
            if let Some(m) = matched.get_mut(i) {
                *m = true;
            }
            Some(rule.show)
        })
        .collect();
    let mut out = Vec::with_capacity(doc.len());
    // The reader drops a byte-order mark; spreadsheets need it to read UTF-8.
    if doc.starts_with("\u{feff}".as_bytes()) {
        out.extend_from_slice("\u{feff}".as_bytes());
    }
    let mut writer = ::csv::WriterBuilder::new()
        .terminator(::csv::Terminator::CRLF)
        .from_writer(out);
    let keep = |cells: &::csv::ByteRecord, header: bool| -> Vec<Vec<u8>> {
        cells
            .iter()
            .zip(&plan)
            .filter_map(|(cell, plan)| match plan {
                None => Some(cell.to_vec()),
                Some(Show::Nothing) => None,
                Some(_) if header => Some(cell.to_vec()),
                Some(show) => Some(mask(&String::from_utf8_lossy(cell), *show).into_bytes()),
            })
            .collect()
    };
    writer
        .write_record(keep(&header, true))
        .map_err(|_| Unreadable)?;
    for record in records {
        let record = record.map_err(|_| Unreadable)?;
        writer
            .write_record(keep(&record, false))
            .map_err(|_| Unreadable)?;
    }
    writer.into_inner().map_err(|_| Unreadable)
}

/// Applies the rules to a JSON value: every field whose key a rule names,
/// wherever it is, is replaced by what the rule shows of it.
pub fn json(value: &mut serde_json::Value, rules: &[FieldRule], matched: &mut [bool]) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match rule_for(key, rules) {
                    Some((i, rule)) => {
                        if let Some(m) = matched.get_mut(i) {
                            *m = true;
                        }
                        let text = match v {
                            serde_json::Value::String(s) => Some(s.clone()),
                            serde_json::Value::Number(n) => Some(n.to_string()),
                            _ => None,
                        };
                        let shown = match text {
                            Some(t) => mask(&t, rule.show),
                            None => PLACEHOLDER.to_string(),
                        };
                        *v = serde_json::Value::String(shown);
                    }
                    None => json(v, rules, matched),
                }
            }
        }
        serde_json::Value::Array(items) => {
            for v in items {
                json(v, rules, matched);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, show: Show) -> FieldRule {
        FieldRule {
            selector: format!("#{name}"),
            name: Some(name.into()),
            show,
        }
    }

    #[test]
    fn last4_keeps_four_and_the_separators() {
        assert_eq!(mask("123-45-6789", Show::Last4), "•••-••-6789");
        assert_eq!(mask(" 1234 5678 ", Show::Last4), " •••• 5678 ");
        assert_eq!(mask("1234", Show::Last4), "••••");
        assert_eq!(mask("12", Show::Last4), "••");
        assert_eq!(mask("", Show::Last4), "");
        assert_eq!(mask("anything", Show::Nothing), "[hidden]");
    }

    #[test]
    fn csv_columns_are_removed_or_masked_by_header() {
        let rules = [
            rule("diagnosis", Show::Nothing),
            rule("ssn", Show::Last4),
            rule("date_of_birth", Show::Nothing),
        ];
        let doc = "\u{feff}Name,Diagnosis,SSN,Date of Birth\r\nAnn Lee,\"F32.1, major\",123-45-6789,1970-01-01\nBo,J45,987654321,1980-02-02\n";
        let mut matched = [false; 3];
        let out = String::from_utf8(csv(doc.as_bytes(), &rules, &mut matched).unwrap()).unwrap();
        assert_eq!(
            out,
            "\u{feff}Name,SSN\r\nAnn Lee,•••-••-6789\r\nBo,•••••4321\r\n"
        );
        assert_eq!(matched, [true, true, true]);
    }

    #[test]
    fn csv_that_cannot_be_read_safely_is_refused() {
        let rules = [rule("ssn", Show::Nothing)];
        let mut m = [false];
        // A row longer than the header has a column without a name.
        assert!(csv(b"name,ssn\nAnn,1,2\n", &rules, &mut m).is_err());
        // Split by semicolons: one "column" hiding them all.
        assert!(csv(b"name;ssn\nAnn;123\n", &rules, &mut m).is_err());
        assert!(csv(b"name\tssn\nAnn\t123\n", &rules, &mut m).is_err());
        // Quoted headers and fields are read as CSV, not as text.
        let out = csv(b"\"name\",\"S S N\"\n\"Ann\",\"1,2\"\n", &rules, &mut m).unwrap();
        assert_eq!(out, b"name\r\nAnn\r\n");
    }

    #[test]
    fn json_fields_anywhere_are_hidden_or_masked() {
        let rules = [rule("ssn", Show::Last4), rule("diagnosis", Show::Nothing)];
        let mut v: serde_json::Value = serde_json::from_str(
            r#"{"patient":{"SSN":"123-45-6789","name":"Ann","visits":[{"diagnosis":{"code":"F32.1"}}]},"ssn":987654321}"#,
        )
        .unwrap();
        let mut m = [false; 2];
        json(&mut v, &rules, &mut m);
        assert_eq!(v["patient"]["SSN"], "•••-••-6789");
        assert_eq!(v["ssn"], "•••••4321");
        assert_eq!(v["patient"]["visits"][0]["diagnosis"], "[hidden]");
        assert_eq!(v["patient"]["name"], "Ann");
        assert_eq!(m, [true, true]);
    }
}
