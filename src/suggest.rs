//! "Did you mean …?": the known name closest to a mistyped one, for every message that offers one.

/// The known name most like `name`, if any is close enough to be a typo.
pub fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let edits = |k: &str| strsim::damerau_levenshtein(name, k);
    let near = known
        .iter()
        .copied()
        .filter(|k| edits(k) <= 2 && edits(k) < name.len())
        .min_by_key(|k| edits(k));
    near.or_else(|| {
        known
            .iter()
            .map(|k| (strsim::jaro_winkler(name, k), *k))
            .filter(|(score, _)| *score >= 0.85)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, k)| k)
    })
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn typos_find_their_name() {
        let known = ["clinician", "front_desk", "officer"];
        assert_eq!(closest("clinican", &known), Some("clinician"));
        assert_eq!(closest("ofifcer", &known), Some("officer"));
        assert_eq!(closest("front-desk", &known), Some("front_desk"));
        assert_eq!(closest("billing", &known), None);
        assert_eq!(closest("x", &known), None);
        assert_eq!(closest("anything", &[]), None);
    }
}
