//! Field rules on HTML pages: the content of the elements a route's `hide`
//! selectors match is taken out of the page before it leaves ward (not hidden
//! with CSS: the browser never receives it), and the text of `mask` elements
//! is cut to what the mask shows, by a streaming HTML rewriter.

use crate::policy::{FieldRule, Show};
use crate::proxy::fields::{self, PLACEHOLDER};
use lol_html::html_content::{Comment, ContentType, Element, EndTag, TextChunk};
use lol_html::{ElementContentHandlers, HtmlRewriter, Selector, Settings};
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

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

/// Whether an element is a form field (its value is in an attribute or its content).
fn is_form_field(el: &Element<'_, '_>) -> bool {
    matches!(el.tag_name().as_str(), "input" | "textarea" | "select")
}

/// Takes every value-bearing attribute off an element and, if it is a form
/// field, makes it a read-only placeholder: shown, not editable, not sent
/// (a disabled field is left out of the form, so the app's copy stays as it was).
fn strip(el: &mut Element<'_, '_>, placeholder: &str) -> lol_html::HandlerResult {
    let names: Vec<String> = el.attributes().iter().map(|a| a.name()).collect();
    for name in names.iter().filter(|n| carries_value(n)) {
        el.remove_attribute(name);
    }
    if is_form_field(el) {
        el.set_attribute("readonly", "")?;
        el.set_attribute("disabled", "")?;
        el.set_attribute("placeholder", placeholder)?;
    }
    Ok(())
}

/// The handler of a `hide` rule: the element's content goes, a placeholder stays.
fn hide_element(el: &mut Element<'_, '_>) -> lol_html::HandlerResult {
    strip(el, PLACEHOLDER)?;
    if is_form_field(el) {
        if el.can_have_content() {
            el.set_inner_content("", ContentType::Text);
        }
    } else if el.can_have_content() {
        el.set_inner_content(PLACEHOLDER, ContentType::Text);
    }
    Ok(())
}

/// Texts of the open elements of one `mask` rule, innermost last.
type Open = Rc<RefCell<Vec<String>>>;

/// The handler of a `mask` rule on the element itself: an input shows its value
/// masked; any other element starts collecting its text, which its end tag puts
/// back masked (an element without an end tag keeps no text at all).
fn mask_element(el: &mut Element<'_, '_>, show: Show, open: &Open) -> lol_html::HandlerResult {
    if el.tag_name() == "input" {
        let value = el.get_attribute("value").unwrap_or_default();
        strip(el, PLACEHOLDER)?;
        el.set_attribute("value", &fields::mask(&value, show))?;
        return Ok(());
    }
    if el.tag_name() == "select" {
        // Options are many values, not one: the whole field goes.
        return hide_element(el);
    }
    strip(el, PLACEHOLDER)?;
    if !el.can_have_content() {
        return Ok(());
    }
    open.borrow_mut().push(String::new());
    let open = open.clone();
    el.on_end_tag(Box::new(move |end: &mut EndTag<'_>| {
        if let Some(text) = open.borrow_mut().pop() {
            end.before(&fields::mask(&text, show), ContentType::Text);
        }
        Ok(())
    }))?;
    Ok(())
}

/// The handler of a `mask` rule on text inside the element: taken out and kept
/// for the end tag.
fn mask_text(chunk: &mut TextChunk<'_>, open: &Open) -> lol_html::HandlerResult {
    if chunk.removed() {
        return Ok(());
    }
    if let Some(text) = open.borrow_mut().last_mut() {
        text.push_str(chunk.as_str());
    }
    chunk.remove();
    Ok(())
}

/// `page` with the route's field rules applied: every element a `hide` rule
/// matches emptied (text and child elements replaced by [`PLACEHOLDER`]), every
/// element a `mask` rule matches reduced to its masked text; value-bearing
/// attributes removed from both and their descendants, form fields made
/// read-only placeholders. `matched[i]` is set when rule `i` matched an element.
pub fn apply(page: &[u8], rules: &[FieldRule], matched: &mut [bool]) -> Result<Vec<u8>, HideError> {
    let mut handlers = Vec::new();
    let seen: Vec<Rc<Cell<bool>>> = rules.iter().map(|_| Rc::default()).collect();
    // Hide rules first: their text handlers run first on a chunk, so a mask around a
    // hidden element sees its text removed and never shows part of it.
    let (hides, masks): (Vec<_>, Vec<_>) = rules
        .iter()
        .zip(&seen)
        .partition(|(r, _)| r.show == Show::Nothing);
    for (rule, seen) in hides.into_iter().chain(masks) {
        let own: Selector = rule.selector.parse().map_err(|_| HideError::Selector)?;
        // Descendants can carry the value too (`<td id=ssn><span title=…>`).
        let inner: Selector = format!("{} *", rule.selector)
            .parse()
            .map_err(|_| HideError::Selector)?;
        let seen = seen.clone();
        let own_handler = match rule.show {
            Show::Nothing => ElementContentHandlers::default()
                .element(move |el: &mut Element<'_, '_>| {
                    seen.set(true);
                    hide_element(el)
                })
                .text(|chunk: &mut TextChunk<'_>| {
                    chunk.remove();
                    Ok(())
                }),
            show => {
                let open: Open = Rc::default();
                let for_text = open.clone();
                ElementContentHandlers::default()
                    .element(move |el: &mut Element<'_, '_>| {
                        seen.set(true);
                        mask_element(el, show, &open)
                    })
                    .text(move |chunk: &mut TextChunk<'_>| mask_text(chunk, &for_text))
                    // A comment in the field can hold the value too; it goes.
                    .comments(|c: &mut Comment<'_>| {
                        c.remove();
                        Ok(())
                    })
            }
        };
        handlers.push((Cow::Owned(own), own_handler));
        handlers.push((
            Cow::Owned(inner),
            ElementContentHandlers::default()
                .element(|el: &mut Element<'_, '_>| strip(el, PLACEHOLDER)),
        ));
    }
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
    for (m, seen) in matched.iter_mut().zip(&seen) {
        *m |= seen.get();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(hide: &[&str], last4: &[&str]) -> Vec<FieldRule> {
        let rule = |s: &&str, show| FieldRule {
            selector: s.to_string(),
            name: None,
            show,
        };
        hide.iter()
            .map(|s| rule(s, Show::Nothing))
            .chain(last4.iter().map(|s| rule(s, Show::Last4)))
            .collect()
    }

    fn run(page: &str, hide: &[&str], last4: &[&str]) -> String {
        let rules = rules(hide, last4);
        let mut matched = vec![false; rules.len()];
        String::from_utf8(apply(page.as_bytes(), &rules, &mut matched).unwrap()).unwrap()
    }

    #[test]
    fn matched_content_is_gone_and_the_rest_stays() {
        let page = r#"<table><tr><td class="name">Ann Lee</td><td class="diagnosis">F32.1 <b>major</b> depression</td></tr></table><p id="ssn" title="123-45-6789" data-v="123-45-6789">123-45-6789</p>"#;
        let out = run(page, &["td.diagnosis", "#ssn"], &[]);
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
        let out = run(
            page,
            &["input[name=dob]", "textarea", "select[name=dx]"],
            &[],
        );
        for secret in ["1970-01-01", "chest pain", "F32.1"] {
            assert!(!out.contains(secret), "{secret} in {out}");
        }
        assert!(out.contains(r#"value="ok""#), "{out}");
        assert!(out.contains("readonly"), "{out}");
    }

    #[test]
    fn nested_and_repeated_matches_are_all_emptied() {
        let page = r#"<div class="dx"><div class="dx">inner secret</div> outer secret</div><span class="dx">third secret</span>"#;
        let out = run(page, &[".dx"], &[]);
        assert!(!out.contains("secret"), "{out}");
    }

    #[test]
    fn masked_fields_keep_only_their_last_four() {
        let page = r#"<p>SSN: <span id="ssn" title="123-45-6789"><!-- 123-45-6789 -->123-<b data-x="45">45</b>-6789</span></p><form><input id="ssn2" name="ssn" value="987-65-4321"><textarea class="acct">ACC 55512345</textarea><button>Save</button></form><p class="short">42</p>"#;
        let out = run(page, &[], &["#ssn", "#ssn2", "textarea.acct", ".short"]);
        for secret in ["123-", "-45-", "987-65", "ACC", "555", "data-x", "42"] {
            assert!(!out.contains(secret), "{secret} in {out}");
        }
        assert!(out.contains("•••-••-6789"), "{out}");
        assert!(out.contains(r#"value="•••-••-4321""#), "{out}");
        assert!(out.contains("••• ••••2345"), "{out}");
        assert!(out.contains("<button>Save</button>"), "{out}");
        assert!(out.contains("readonly"), "{out}");
    }

    #[test]
    fn masks_and_hides_mixed_and_nested_leak_no_more_than_the_last_four() {
        let page = r#"<div class="m">111-22-3333 <span class="m">444-55-6666</span><i class="h">777-88-9999</i></div><ul><li class="m">12345678<li class="m">87654321</ul>"#;
        let out = run(page, &[".h"], &[".m"]);
        for secret in [
            "111", "22-", "444", "55-", "777", "88", "9999", "1234", "8765",
        ] {
            assert!(!out.contains(secret), "{secret} in {out}");
        }
    }

    #[test]
    fn a_bad_selector_is_an_error_not_a_pass() {
        assert!(apply(b"<p>x</p>", &rules(&["td["], &[]), &mut [false]).is_err());
    }
}
