//! Field rules on HTML pages: the content of the elements a route's `hide`
//! selectors match is taken out of the page before it leaves ward (not hidden
//! with CSS: the browser never receives it), by a streaming HTML rewriter.

use lol_html::html_content::{ContentType, Element};
use lol_html::{ElementContentHandlers, HtmlRewriter, Selector, Settings};
use std::borrow::Cow;

/// What stands where a hidden element's content was.
pub const PLACEHOLDER: &str = "[hidden]";

/// Why a page could not be rewritten safely (it is then refused, never passed).
#[derive(Debug, thiserror::Error)]
pub enum HideError {
    /// A selector that no longer parses (the policy checks them at load).
    #[error("a hide selector could not be read")]
    Selector,
    /// Markup the rewriter cannot follow without guessing.
    #[error("the page's markup could not be read safely")]
    Markup,
}

/// Attributes that may carry an element's value besides its content.
fn carries_value(name: &str) -> bool {
    matches!(
        name,
        "value" | "title" | "alt" | "content" | "placeholder" | "aria-label" | "aria-valuetext"
    ) || name.starts_with("data-")
}

/// `page` with every element `selectors` match emptied: its text and child
/// elements replaced by [`PLACEHOLDER`], value-bearing attributes removed, form
/// fields made read-only.
pub fn hide(page: &[u8], selectors: &[String]) -> Result<Vec<u8>, HideError> {
    let parsed: Vec<Selector> = selectors
        .iter()
        .map(|s| s.parse().map_err(|_| HideError::Selector))
        .collect::<Result<_, _>>()?;
    let handlers = parsed
        .into_iter()
        .map(|sel| {
            let handler = ElementContentHandlers::default().element(|el: &mut Element<'_, '_>| {
                let names: Vec<String> = el.attributes().iter().map(|a| a.name()).collect();
                for name in names.iter().filter(|n| carries_value(n)) {
                    el.remove_attribute(name);
                }
                match el.tag_name().as_str() {
                    "input" | "textarea" | "select" => {
                        el.set_attribute("readonly", "")?;
                        el.set_attribute("disabled", "")?;
                        el.set_attribute("placeholder", PLACEHOLDER)?;
                        if el.can_have_content() {
                            el.set_inner_content("", ContentType::Text);
                        }
                    }
                    _ if el.can_have_content() => {
                        el.set_inner_content(PLACEHOLDER, ContentType::Text);
                    }
                    _ => {}
                }
                Ok(())
            });
            (Cow::Owned(sel), handler)
        })
        .collect();
    let mut out = Vec::with_capacity(page.len());
    let mut rewriter = HtmlRewriter::new(
        Settings {
            element_content_handlers: handlers,
            // Bail out on markup whose parse would be a guess: refused, not leaked.
            strict: true,
            ..Settings::new()
        },
        |chunk: &[u8]| out.extend_from_slice(chunk),
    );
    rewriter.write(page).map_err(|_| HideError::Markup)?;
    rewriter.end().map_err(|_| HideError::Markup)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(page: &str, sel: &[&str]) -> String {
        let sel: Vec<String> = sel.iter().map(|s| s.to_string()).collect();
        String::from_utf8(hide(page.as_bytes(), &sel).unwrap()).unwrap()
    }

    #[test]
    fn matched_content_is_gone_and_the_rest_stays() {
        let page = r#"<table><tr><td class="name">Ann Lee</td><td class="diagnosis">F32.1 <b>major</b> depression</td></tr></table><p id="ssn" title="123-45-6789" data-v="123-45-6789">123-45-6789</p>"#;
        let out = run(page, &["td.diagnosis", "#ssn"]);
        assert!(out.contains("Ann Lee"), "{out}");
        for secret in ["F32.1", "major", "depression", "123-45-6789"] {
            assert!(!out.contains(secret), "{secret} in {out}");
        }
        assert!(
            out.contains(r#"<td class="diagnosis">[hidden]</td>"#),
            "{out}"
        );
    }

    #[test]
    fn form_fields_become_read_only_placeholders() {
        let page = r#"<form><input name="dob" value="1970-01-01"><textarea name="note">seen for chest pain</textarea><select name="dx"><option selected>F32.1</option></select><input name="keep" value="ok"></form>"#;
        let out = run(page, &["input[name=dob]", "textarea", "select[name=dx]"]);
        for secret in ["1970-01-01", "chest pain", "F32.1"] {
            assert!(!out.contains(secret), "{secret} in {out}");
        }
        assert!(out.contains(r#"value="ok""#), "{out}");
        assert!(out.contains("readonly"), "{out}");
    }

    #[test]
    fn nested_and_repeated_matches_are_all_emptied() {
        let page = r#"<div class="dx"><div class="dx">inner secret</div> outer secret</div><span class="dx">third secret</span>"#;
        let out = run(page, &[".dx"]);
        assert!(!out.contains("secret"), "{out}");
    }

    #[test]
    fn a_bad_selector_is_an_error_not_a_pass() {
        assert!(hide(b"<p>x</p>", &["td[".to_string()]).is_err());
    }
}
