//! The JSON Schema of `users.toml` (`ward schema`), made from the parser's own list of
//! account keys, with the README's words on each.

use crate::config::schema::{pretty, reference};
use crate::users::directory::{ACCOUNT_KEY_KINDS, KeyKind};
use serde_json::{Map, json};

/// The README heading of the accounts' keys.
const USERS_SECTION: &str = "users.toml reference";

/// The schema of `users.toml`, as JSON text.
pub fn users_schema() -> String {
    let docs = reference();
    let mut props = Map::new();
    for (key, kind) in ACCOUNT_KEY_KINDS {
        let mut p = match kind {
            KeyKind::Text => json!({"type": "string", "minLength": 1}),
            KeyKind::List => json!({"type": "array", "items": {"type": "string"}}),
            KeyKind::Words(words) => json!({"type": "string", "enum": words}),
            // TOML dates arrive at the editor as dates, or the officer may quote them.
            KeyKind::Date => json!({}),
            KeyKind::TextTable => {
                json!({"type": "object", "additionalProperties": {"type": "string"}})
            }
        };
        if let (Some(obj), Some(d)) = (p.as_object_mut(), docs.get(&(USERS_SECTION, key))) {
            obj.insert("description".into(), json!(d));
        }
        props.insert((*key).to_string(), p);
    }
    let account = json!({
        "type": "object",
        "properties": props,
        "required": ["display_name"],
        "additionalProperties": false,
    });
    let value = json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "ward accounts (users.toml); made by `ward schema`",
        "type": "object",
        "properties": {
            "users": {
                "description": "One table per person: [users.NAME]. The name is the sign-in \
                                name: 1 to 64 lower-case letters, digits, `.`, `_` or `-`.",
                "type": "object",
                "propertyNames": {"pattern": "^[a-z0-9._-]{1,64}$"},
                "additionalProperties": account,
            }
        },
        "additionalProperties": false,
    });
    pretty(&value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::users::directory::account_keys;
    use serde_json::Value;

    #[test]
    fn every_account_key_is_described_and_known_to_the_parser() {
        let schema: Value = serde_json::from_str(&users_schema()).unwrap();
        let props = schema["properties"]["users"]["additionalProperties"]["properties"]
            .as_object()
            .unwrap();
        let mut keys: Vec<&str> = props.keys().map(String::as_str).collect();
        keys.sort();
        let mut parser = account_keys();
        parser.sort();
        assert_eq!(keys, parser);
        for (k, p) in props {
            assert!(p.get("description").is_some(), "{k} has no README row");
        }
    }
}
