//! The JSON Schema of `ward.toml` (`ward schema`), so that TOML-aware editors (Taplo, VS
//! Code's Even Better TOML) complete keys and mark mistakes while the officer types. It comes
//! from the very types the parser reads the file into; descriptions come from the README's
//! reference tables, the one place the settings are explained (`users::schema` uses them too),
//! so neither is kept by hand twice.

use super::raw::{RawPolicy, Section};
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The README: the reference tables the descriptions come from.
const README: &str = include_str!("../../README.md");

/// The policy file's tables: the schema's name for each, and the README heading that
/// explains its keys.
const POLICY_SECTIONS: &[(&str, &str)] = &[
    ("RawPolicy", "Top level"),
    ("RawServer", "[server]"),
    ("RawSessions", "[sessions]"),
    ("RawLogin", "[login]"),
    ("RawOidc", "[[login.oidc]]"),
    ("RawSaml", "[[login.saml]]"),
    ("RawLog", "[log]"),
    ("RawStorage", "[storage]"),
    ("RawMetrics", "[metrics]"),
    ("RawReview", "[review]"),
    ("RawAudit", "[audit]"),
    ("RawAlerts", "[alerts]"),
    ("RawExport", "[export]"),
    ("RawBreakGlass", "[break_glass]"),
    ("RawRole", "[roles]"),
    ("RawApp", "[[apps]]"),
    ("RawUpstreamAuth", "upstream_auth"),
    ("RawRoute", "[[routes]]"),
];

/// The keys each kind of table accepts, for "did you mean" suggestions: read from the
/// schema of the types above, so no list is kept by hand beside them.
pub fn known_keys(section: Section) -> Vec<&'static str> {
    let table = match section {
        Section::Root => "RawPolicy",
        Section::Server => "RawServer",
        Section::Sessions => "RawSessions",
        Section::Login => "RawLogin",
        Section::Oidc => "RawOidc",
        Section::Saml => "RawSaml",
        Section::Storage => "RawStorage",
        Section::BreakGlass => "RawBreakGlass",
        Section::Export => "RawExport",
        Section::Audit => "RawAudit",
        Section::Alerts => "RawAlerts",
        Section::Log => "RawLog",
        Section::Metrics => "RawMetrics",
        Section::Review => "RawReview",
        Section::Role => "RawRole",
        Section::App => "RawApp",
        Section::UpstreamAuth => "RawUpstreamAuth",
        Section::Route => "RawRoute",
        Section::Other => return Vec::new(),
    };
    keys_of(table)
}

/// The keys a table of the policy may have (`RawServer`: those of `[server]`).
pub fn keys_of(table: &str) -> Vec<&'static str> {
    static BARE: OnceLock<Value> = OnceLock::new();
    let schema = BARE.get_or_init(bare_policy_schema);
    let table = if table == "RawPolicy" {
        Some(schema)
    } else {
        schema.get("definitions").and_then(|d| d.get(table))
    };
    table
        .and_then(|t| t.get("properties"))
        .and_then(Value::as_object)
        .map(|props| props.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// The policy's schema as the types give it, without descriptions.
fn bare_policy_schema() -> Value {
    let mut value = SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<RawPolicy>()
        .to_value();
    no_nulls(&mut value);
    value
}

/// TOML has no null: a setting left out is how a file says "none", so `Option` adds nothing.
fn no_nulls(value: &mut Value) {
    match value {
        Value::Object(obj) => {
            if let Some(Value::Array(types)) = obj.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    obj.insert("type".into(), only);
                }
            }
            if let Some(Value::Array(any)) = obj.get_mut("anyOf") {
                any.retain(|s| s.get("type").is_none_or(|t| t != "null"));
                if any.len() == 1 {
                    let only = any.remove(0);
                    obj.remove("anyOf");
                    if let Value::Object(inner) = only {
                        obj.extend(inner);
                    }
                }
            }
            obj.values_mut().for_each(no_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(no_nulls),
        _ => {}
    }
}

/// The schema of `ward.toml`, as JSON text.
pub fn policy_schema() -> String {
    let mut value = bare_policy_schema();
    let docs = reference();
    if let Some(obj) = value.as_object_mut() {
        obj.insert(
            "title".into(),
            json!("ward policy (ward.toml); made by `ward schema`"),
        );
        describe(obj, "Top level", &docs);
        if let Some(Value::Object(defs)) = obj.get_mut("definitions") {
            for (name, def) in defs.iter_mut() {
                let heading = POLICY_SECTIONS
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, h)| *h);
                if let (Some(h), Some(def)) = (heading, def.as_object_mut()) {
                    describe(def, h, &docs);
                }
            }
        }
    }
    pretty(&value)
}

/// A schema as the JSON text `ward schema` writes.
pub fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

/// Puts the README's words on each property of a table's schema.
fn describe(table: &mut Map<String, Value>, heading: &str, docs: &Docs) {
    let Some(Value::Object(props)) = table.get_mut("properties") else {
        return;
    };
    for (key, prop) in props.iter_mut() {
        let words = docs
            .get(&(heading, key.as_str()))
            .or_else(|| {
                // `[login]`'s row for `oidc` is written `[[login.oidc]]`.
                docs.iter()
                    .find(|((h, k), _)| *h == heading && k.ends_with(&format!(".{key}]]")))
                    .map(|(_, d)| d)
            })
            .cloned()
            .or_else(|| {
                // A table's own key (`server`, `networks`): point at its section.
                docs.iter()
                    .find(|((h, k), _)| k.is_empty() && h.trim_matches(['[', ']']) == key)
                    .map(|((h, _), intro)| match intro.as_str() {
                        "" => format!("The {h} section: see the README's policy reference."),
                        _ => format!("The {h} section. {intro}"),
                    })
            });
        if let (Some(w), Some(obj)) = (words, prop.as_object_mut()) {
            obj.insert("description".into(), json!(w));
        }
    }
}

/// Descriptions by (heading, key).
pub type Docs = BTreeMap<(&'static str, &'static str), String>;

/// Every row of the README's reference tables: `| `key` | type | default | meaning |` under a
/// heading, as "meaning (type; default: …)".
pub fn reference() -> Docs {
    let mut docs = Docs::new();
    let mut heading = "";
    // The words between a heading and its table (or next heading), filed under key "".
    let mut intro: Option<String> = None;
    for line in README.lines() {
        if let Some(h) = line
            .strip_prefix("### ")
            .or_else(|| line.strip_prefix("## "))
        {
            // "### `[server]`" → "[server]"; "### Top level" → "Top level".
            heading = h.split('`').nth(1).unwrap_or(h).trim();
            intro = Some(String::new());
            docs.insert((heading, ""), String::new());
            continue;
        }
        if let Some(words) = &mut intro {
            if line.starts_with('|') || (line.is_empty() && !words.is_empty()) {
                docs.insert((heading, ""), plain(words.trim()));
                intro = None;
            } else if !line.is_empty() {
                words.push(' ');
                words.push_str(line.trim());
            }
        }
        let cells: Vec<&str> = line.split(" | ").map(str::trim).collect();
        if cells.len() != 4 {
            continue;
        }
        let Some(key) = cells[0]
            .strip_prefix("| `")
            .and_then(|k| k.strip_suffix('`'))
        else {
            continue;
        };
        let meaning = cells[3].trim_end_matches('|').trim();
        let text = format!(
            "{} ({}; default: {})",
            plain(meaning),
            plain(cells[1]),
            plain(cells[2])
        );
        docs.insert((heading, key), text);
    }
    docs
}

/// Markdown cut down to what an editor's hover shows well: links become their text.
fn plain(md: &str) -> String {
    let mut out = String::with_capacity(md.len());
    let mut rest = md;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find("](") {
            Some(close) if !after[..close].contains('[') => {
                let link_end = after[close..].find(')').map(|e| close + e + 1);
                match link_end {
                    Some(end) => {
                        out.push_str(&after[..close]);
                        rest = &after[end..];
                    }
                    None => {
                        out.push('[');
                        rest = after;
                    }
                }
            }
            _ => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out.replace("**", "")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn definitions(schema: &Value) -> &Map<String, Value> {
        schema["definitions"].as_object().unwrap()
    }

    #[test]
    fn every_policy_key_is_described_from_the_readme() {
        let schema: Value = serde_json::from_str(&policy_schema()).unwrap();
        let mut tables = vec![("RawPolicy", &schema)];
        for (name, def) in definitions(&schema) {
            tables.push((name.as_str(), def));
        }
        let mut missing = Vec::new();
        for (name, table) in tables {
            assert!(
                POLICY_SECTIONS.iter().any(|(n, _)| *n == name),
                "the schema has a table {name} that POLICY_SECTIONS does not name"
            );
            for (key, prop) in table["properties"].as_object().unwrap() {
                if prop.get("description").is_none() {
                    missing.push(format!("{name}.{key}"));
                }
            }
            assert_eq!(table["additionalProperties"], json!(false), "{name}");
        }
        assert!(
            missing.is_empty(),
            "keys without a row in the README's reference tables: {missing:?}"
        );
    }

    #[test]
    fn links_become_their_text() {
        assert_eq!(
            plain("see [Sessions](#sessions) and **this**"),
            "see Sessions and this"
        );
        assert_eq!(plain("a [b] c"), "a [b] c");
    }
}
