//! Reading and validating the policy file (`config/ward.toml`).
//!
//! Every problem is reported with its line and column, all at once, in words
//! an officer can act on. A file with errors never becomes a `Policy`.

mod compile;
mod delivery;
pub mod diag;
pub mod raw;
pub mod schema;
pub mod spanned;

pub use crate::certs::{CertError, CertFile, CertReader};
use crate::policy::Policy;
use diag::{Collector, Diagnostics};
use raw::{RawPolicy, Section};
use schema::known_keys;
use std::path::Path;
use toml::de::{DeTable, DeValue};

/// Whether to read the certificate files while loading.
#[derive(Clone, Copy)]
pub enum Certs<'a> {
    /// Read and check them with this reader (serving, `ward check`).
    Load(&'a dyn CertReader),
    /// Leave them alone (`ward explain`, unit tests), and the apps' shared
    /// credentials (`upstream_auth`) unread: such a policy never forwards.
    Skip,
}

impl Certs<'_> {
    /// Whether the files are left alone.
    pub fn skipped(&self) -> bool {
        matches!(self, Certs::Skip)
    }
}

/// A policy that loaded, with any warnings about it.
pub struct Loaded {
    /// The policy.
    pub policy: Policy,
    /// Findings that did not stop it loading.
    pub warnings: Diagnostics,
}

/// Reads, validates and compiles the policy at `file`.
pub fn load(file: &Path, certs: Certs) -> Result<Loaded, Diagnostics> {
    load_with(file, certs, &Overrides::default())
}

/// Values that replace what the file says, applied on every load (`ward demo` uses
/// them to move ports without editing the officer's file).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `[server] listen`.
    pub listen: Option<String>,
    /// `upstream` of the app with this name.
    pub upstreams: Vec<(String, String)>,
}

impl Overrides {
    /// `text` with the overrides written in, keeping everything else as it was.
    pub fn apply(&self, text: &str) -> String {
        if self.listen.is_none() && self.upstreams.is_empty() {
            return text.to_string();
        }
        // A file that does not parse is left alone; loading it reports why.
        let Ok(mut doc) = text.parse::<toml_edit::DocumentMut>() else {
            return text.to_string();
        };
        if let Some(listen) = &self.listen {
            doc["server"]["listen"] = toml_edit::value(listen.as_str());
        }
        if let Some(apps) = doc.get_mut("apps").and_then(|a| a.as_array_of_tables_mut()) {
            for app in apps.iter_mut() {
                let name = app
                    .get("name")
                    .and_then(|n| n.as_str())
                    .unwrap_or("")
                    .to_string();
                if let Some((_, url)) = self.upstreams.iter().find(|(n, _)| *n == name) {
                    app["upstream"] = toml_edit::value(url.as_str());
                }
            }
        }
        doc.to_string()
    }
}

/// Like `load`, with `overrides` applied to the file's text first.
pub fn load_with(file: &Path, certs: Certs, overrides: &Overrides) -> Result<Loaded, Diagnostics> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        let mut c = Collector::new(file, "");
        c.error(0..0, format!("cannot read the policy file: {e}"));
        c.finish()
    })?;
    load_str(file, &overrides.apply(&text), certs)
}

/// Validates and compiles policy `text`, reporting places in `file`.
pub fn load_str(file: &Path, text: &str, certs: Certs) -> Result<Loaded, Diagnostics> {
    let mut c = Collector::new(file, text);
    let table = match DeTable::parse(text) {
        Ok(t) => t,
        Err(e) => {
            c.error(
                e.span().unwrap_or(0..0),
                format!("this is not valid TOML: {}", first_line(e.message())),
            );
            return Err(c.finish());
        }
    };
    let raw = match parse_raw(text, &table, &mut c) {
        Some(raw) => raw,
        None => return Err(c.finish()),
    };
    let policy = compile::compile(file, text, raw, certs, &mut c);
    let diagnostics = c.finish();
    match policy {
        Some(policy) if !diagnostics.has_errors() => Ok(Loaded {
            policy,
            warnings: diagnostics,
        }),
        _ => Err(diagnostics),
    }
}

/// Deserializes the raw model, recording unknown keys and type errors.
fn parse_raw(
    text: &str,
    table: &toml::Spanned<DeTable<'_>>,
    c: &mut Collector<'_>,
) -> Option<RawPolicy> {
    let de = match toml::Deserializer::parse(text) {
        Ok(de) => de,
        Err(e) => {
            c.error(e.span().unwrap_or(0..0), first_line(e.message()));
            return None;
        }
    };
    let mut unknown: Vec<Vec<Step>> = Vec::new();
    let result: Result<RawPolicy, toml::de::Error> =
        serde_ignored::deserialize(de, |path| unknown.push(steps(&path)));
    for path in &unknown {
        report_unknown(table, path, c);
    }
    match result {
        Ok(raw) => Some(raw),
        Err(e) => {
            c.error(e.span().unwrap_or(0..0), plain_type_error(e.message()));
            None
        }
    }
}

/// One step of a path into the document.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

fn steps(path: &serde_ignored::Path<'_>) -> Vec<Step> {
    let mut out = Vec::new();
    let mut at = path;
    loop {
        match at {
            serde_ignored::Path::Root => break,
            serde_ignored::Path::Seq { parent, index } => {
                out.push(Step::Index(*index));
                at = parent;
            }
            serde_ignored::Path::Map { parent, key } => {
                // `Spanned` values add a private wrapper key; it is not in the file.
                if !key.starts_with("$__serde_spanned") {
                    out.push(Step::Key(key.clone()));
                }
                at = parent;
            }
            serde_ignored::Path::Some { parent }
            | serde_ignored::Path::NewtypeStruct { parent }
            | serde_ignored::Path::NewtypeVariant { parent } => at = parent,
        }
    }
    out.reverse();
    out
}

fn section_of(parent: &[Step]) -> (Section, String) {
    let key = |s: &str| Step::Key(s.to_string());
    match parent {
        [] => (Section::Root, "the top of the file".into()),
        [k] if *k == key("server") => (Section::Server, "[server]".into()),
        [k] if *k == key("sessions") => (Section::Sessions, "[sessions]".into()),
        [k] if *k == key("login") => (Section::Login, "[login]".into()),
        [k, o, Step::Index(_)] if *k == key("login") && *o == key("oidc") => {
            (Section::Oidc, "[[login.oidc]]".into())
        }
        [k, o, Step::Index(_)] if *k == key("login") && *o == key("saml") => {
            (Section::Saml, "[[login.saml]]".into())
        }
        [k] if *k == key("log") => (Section::Log, "[log]".into()),
        [k] if *k == key("metrics") => (Section::Metrics, "[metrics]".into()),
        [k] if *k == key("review") => (Section::Review, "[review]".into()),
        [k] if *k == key("storage") => (Section::Storage, "[storage]".into()),
        [k] if *k == key("break_glass") => (Section::BreakGlass, "[break_glass]".into()),
        [k] if *k == key("export") => (Section::Export, "[export]".into()),
        [k] if *k == key("audit") => (Section::Audit, "[audit]".into()),
        [k] if *k == key("alerts") => (Section::Alerts, "[alerts]".into()),
        [k, Step::Key(name)] if *k == key("roles") => (Section::Role, format!("role '{name}'")),
        [k, Step::Index(_)] if *k == key("apps") => (Section::App, "[[apps]]".into()),
        [k, Step::Index(_), u] if *k == key("apps") && *u == key("upstream_auth") => {
            (Section::UpstreamAuth, "an app's upstream_auth".into())
        }
        [k, Step::Index(_)] if *k == key("routes") => (Section::Route, "[[routes]]".into()),
        _ => (Section::Other, "this table".into()),
    }
}

fn report_unknown(table: &toml::Spanned<DeTable<'_>>, path: &[Step], c: &mut Collector<'_>) {
    let Some((Step::Key(name), parent)) = path.split_last() else {
        return;
    };
    let (section, where_) = section_of(parent);
    let span = key_span(table, path).unwrap_or(0..0);
    let mut message = format!("unknown setting '{name}' in {where_}");
    let known = known_keys(section);
    if let Some(best) = closest(name, &known) {
        message.push_str(&format!("; did you mean '{best}'?"));
    } else if !known.is_empty() {
        message.push_str(&format!("; the settings here are: {}", known.join(", ")));
    }
    c.error(span, message);
}

/// The known name most like `name`, if any is close enough to be a typo (see `suggest`).
pub use crate::suggest::closest;

/// The span of the key at `path` in the parsed document.
fn key_span(table: &toml::Spanned<DeTable<'_>>, path: &[Step]) -> Option<std::ops::Range<usize>> {
    let (last, parent) = path.split_last()?;
    let mut value: Option<&DeValue<'_>> = None;
    let mut current: &DeTable<'_> = table.get_ref();
    for step in parent {
        let next = match (step, value) {
            (Step::Key(k), _) => current.get(k.as_str())?.get_ref(),
            (Step::Index(i), Some(DeValue::Array(items))) => items.get(*i)?.get_ref(),
            _ => return None,
        };
        value = Some(next);
        if let DeValue::Table(t) = next {
            current = t;
        }
    }
    let Step::Key(name) = last else { return None };
    current
        .iter()
        .find(|(k, _)| k.get_ref().as_ref() == name.as_str())
        .map(|(k, _)| k.span())
}

fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or(message).trim().to_string()
}

/// Turns serde's type errors into words an officer can act on.
fn plain_type_error(message: &str) -> String {
    let msg = first_line(message);
    let msg = msg
        .replace("invalid type: ", "wrong kind of value: found ")
        .replace(
            ", expected a sequence",
            ", expected a list like [\"a\", \"b\"]",
        )
        .replace(", expected a string", ", expected text in quotes")
        .replace(", expected i64", ", expected a whole number")
        .replace(", expected a boolean", ", expected true or false");
    if msg.starts_with("missing field") {
        msg.replace("missing field", "missing setting")
    } else {
        msg
    }
}

#[cfg(test)]
mod tests;
