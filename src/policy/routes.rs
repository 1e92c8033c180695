//! Route patterns and the table that finds the most specific route for a path.
//!
//! Patterns are matched segment by segment against the canonical path:
//! a literal segment matches itself, `*` matches exactly one non-empty segment,
//! and a final `**` matches zero or more segments. The table is a trie over
//! literal segments, so the cost of a lookup depends on the path and on how
//! many patterns share its prefix, not on how many routes there are.

use http::Method;
use std::collections::HashMap;

/// One piece of a route pattern between slashes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// Matches this text exactly (or ignoring ASCII case, for case-insensitive apps).
    Literal(Box<str>),
    /// `*`: any one non-empty segment.
    Star,
}

/// A parsed path pattern such as `/patients/*/chart` or `/billing/**`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pattern {
    /// The segments before a trailing `**`.
    pub segments: Vec<Segment>,
    /// Whether the pattern ends in `**`.
    pub globstar: bool,
}

/// Why a pattern is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("a path pattern must start with /")]
    NoLeadingSlash,
    #[error("** may only be the last part of a path pattern, as in /billing/**")]
    GlobstarNotLast,
    #[error("* must stand for a whole part of the path between slashes, as in /patients/*/chart")]
    PartialWildcard,
    #[error(
        "a path pattern must not contain '{0}'; use letters, digits and - . _ ~ ! $ & ' ( ) * + , = : @"
    )]
    BadCharacter(char),
    #[error("a path pattern cannot have . or .. as a part; write the path as the browser shows it")]
    DotSegment,
    #[error("/.ward/ belongs to ward itself; routes cannot cover it")]
    Reserved,
}

impl Pattern {
    /// Whether a canonical path matches this pattern on its own (for grants; routes use the table).
    pub fn matches(&self, path: &str) -> bool {
        let Some(rest) = path.strip_prefix('/') else {
            return false;
        };
        let mut parts = rest.split('/');
        for seg in &self.segments {
            match (seg, parts.next()) {
                (Segment::Literal(l), Some(p)) if **l == *p => {}
                (Segment::Star, Some(p)) if !p.is_empty() => {}
                _ => return false,
            }
        }
        self.globstar || parts.next().is_none()
    }

    /// Parses a pattern; `fold` lower-cases literals for case-insensitive apps.
    pub fn parse(text: &str, fold: bool) -> Result<Pattern, PatternError> {
        let rest = text.strip_prefix('/').ok_or(PatternError::NoLeadingSlash)?;
        // Only characters a canonical path can hold unencoded; anything else could never match.
        let allowed = |c: char| c.is_ascii_alphanumeric() || "-._~!$&'()*+,=:@/".contains(c);
        if let Some(c) = text.chars().find(|c| !allowed(*c)) {
            return Err(PatternError::BadCharacter(c));
        }
        let parts: Vec<&str> = rest.split('/').collect();
        if parts
            .first()
            .is_some_and(|p| p.eq_ignore_ascii_case(".ward"))
        {
            return Err(PatternError::Reserved);
        }
        let mut segments = Vec::with_capacity(parts.len());
        let mut globstar = false;
        for (i, part) in parts.iter().enumerate() {
            if globstar {
                return Err(PatternError::GlobstarNotLast);
            }
            match *part {
                "**" if i + 1 == parts.len() => globstar = true,
                "**" => return Err(PatternError::GlobstarNotLast),
                "*" => segments.push(Segment::Star),
                p if p.contains('*') => return Err(PatternError::PartialWildcard),
                "." | ".." => return Err(PatternError::DotSegment),
                p if fold => segments.push(Segment::Literal(p.to_ascii_lowercase().into())),
                p => segments.push(Segment::Literal(p.into())),
            }
        }
        Ok(Pattern { segments, globstar })
    }

    /// Literal segments before the first wildcard.
    fn literal_prefix(&self) -> usize {
        self.segments
            .iter()
            .take_while(|s| matches!(s, Segment::Literal(_)))
            .count()
    }

    fn literal_count(&self) -> usize {
        self.segments
            .iter()
            .filter(|s| matches!(s, Segment::Literal(_)))
            .count()
    }

    fn wildcard_count(&self) -> usize {
        self.segments.len() - self.literal_count() + usize::from(self.globstar)
    }
}

/// What a route table needs to know about each route to choose among them.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// The path pattern.
    pub pattern: Pattern,
    /// Only requests for this host (lower case, no port), if set.
    pub host: Option<Box<str>>,
    /// Only these methods, if set.
    pub methods: Option<Vec<Method>>,
    /// Match ignoring ASCII case (legacy IIS apps).
    pub fold_case: bool,
}

impl Matcher {
    /// Ordering key: smaller wins. Longest literal prefix, then more literals,
    /// then fewer wildcards, then host- and method-specific, then file order.
    fn rank(&self, index: usize) -> Rank {
        Rank {
            prefix: usize::MAX - self.pattern.literal_prefix(),
            literals: usize::MAX - self.pattern.literal_count(),
            wildcards: self.pattern.wildcard_count(),
            any_host: self.host.is_none(),
            any_method: self.methods.is_none(),
            index,
        }
    }

    /// True when every request this matcher accepts is also accepted by `other`
    /// with the same pattern, so a later `self` can never be chosen.
    pub fn shadowed_by(&self, other: &Matcher) -> bool {
        let host_covered = other.host.is_none() || other.host == self.host;
        let methods_covered = match (&other.methods, &self.methods) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(o), Some(s)) => s.iter().all(|m| o.contains(m)),
        };
        // Same pattern and at least as broad on host and methods, but the
        // other route can only win ties if it is not less specific.
        let other_rank = other.rank(0);
        let self_rank = self.rank(0);
        self.pattern == other.pattern
            && self.fold_case == other.fold_case
            && host_covered
            && methods_covered
            && (other_rank.any_host, other_rank.any_method)
                <= (self_rank.any_host, self_rank.any_method)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    prefix: usize,
    literals: usize,
    wildcards: usize,
    any_host: bool,
    any_method: bool,
    index: usize,
}

impl Rank {
    /// Everything about specificity except methods and file order.
    fn place(&self) -> (usize, usize, usize, bool) {
        (self.prefix, self.literals, self.wildcards, self.any_host)
    }
}

#[derive(Debug, Default)]
struct Node {
    literal: HashMap<Box<str>, usize>,
    star: Option<usize>,
    /// Routes whose pattern ends exactly here, best first.
    exact: Vec<(Rank, usize)>,
    /// Routes whose pattern ends in `**` here, best first.
    globstar: Vec<(Rank, usize)>,
}

/// A compiled set of routes that answers "which route applies to this request?".
#[derive(Debug, Default)]
pub struct RouteTable {
    matchers: Vec<Matcher>,
    /// Routes that apply only when their query or form conditions hold: the
    /// trie passes over them; `Policy::conditional_route` looks at them first.
    conditional: Vec<bool>,
    exact_case: Vec<Node>,
    folded: Vec<Node>,
}

impl RouteTable {
    /// Builds the table; route ids are positions in `matchers`.
    pub fn new(matchers: Vec<Matcher>) -> RouteTable {
        let mut table = RouteTable {
            matchers: Vec::new(),
            conditional: Vec::new(),
            exact_case: vec![Node::default()],
            folded: vec![Node::default()],
        };
        for (id, m) in matchers.iter().enumerate() {
            let nodes = if m.fold_case {
                &mut table.folded
            } else {
                &mut table.exact_case
            };
            let mut at = 0;
            for seg in &m.pattern.segments {
                at = child(nodes, at, seg);
            }
            let slot = if m.pattern.globstar {
                &mut nodes[at].globstar
            } else {
                &mut nodes[at].exact
            };
            slot.push((m.rank(id), id));
            slot.sort();
        }
        table.matchers = matchers;
        table
    }

    /// The route for this host, method and canonical path. The most specific
    /// path pattern decides; when its routes all name other methods the answer
    /// is `MethodNotAllowed` (never a fall-through to a broader pattern).
    pub fn lookup(&self, host: &str, method: &Method, path: &str) -> Lookup {
        let mut best = Best::default();
        let Some(rest) = path.strip_prefix('/') else {
            return Lookup::None;
        };
        self.walk(&self.exact_case, 0, Some(rest), host, method, &mut best);
        if self.folded.len() > 1 || !self.folded[0].globstar.is_empty() {
            let lower = path.to_ascii_lowercase();
            if let Some(rest) = lower.strip_prefix('/') {
                self.walk(&self.folded, 0, Some(rest), host, method, &mut best);
            }
        }
        match (best.allowed, best.any) {
            (Some((_, id)), _) => Lookup::Route(id),
            (None, Some((_, id))) => Lookup::MethodNotAllowed(id),
            (None, None) => Lookup::None,
        }
    }

    /// The matchers, by route id.
    pub fn matchers(&self) -> &[Matcher] {
        &self.matchers
    }

    /// Marks routes the path lookup passes over (they have conditions).
    pub fn set_conditional(&mut self, ids: &[usize]) {
        self.conditional = (0..self.matchers.len()).map(|i| ids.contains(&i)).collect();
    }

    /// Whether route `id`'s pattern, host and methods cover this request (its
    /// conditions aside).
    pub fn covers(&self, id: usize, host: &str, method: &Method, path: &str) -> bool {
        let Some(m) = self.matchers.get(id) else {
            return false;
        };
        let path_ok = if m.fold_case {
            m.pattern.matches(&path.to_ascii_lowercase())
        } else {
            m.pattern.matches(path)
        };
        path_ok
            && m.host.as_deref().is_none_or(|h| h == host)
            && m.methods.as_ref().is_none_or(|ms| ms.contains(method))
    }

    fn walk(
        &self,
        nodes: &[Node],
        at: usize,
        rest: Option<&str>,
        host: &str,
        method: &Method,
        best: &mut Best,
    ) {
        let Some(node) = nodes.get(at) else { return };
        self.consider(&node.globstar, host, method, best);
        let Some(rest) = rest else {
            self.consider(&node.exact, host, method, best);
            return;
        };
        let (seg, next) = match rest.split_once('/') {
            Some((seg, next)) => (seg, Some(next)),
            None => (rest, None),
        };
        if let Some(&child) = node.literal.get(seg) {
            self.walk(nodes, child, next, host, method, best);
        }
        if let (Some(child), false) = (node.star, seg.is_empty()) {
            self.walk(nodes, child, next, host, method, best);
        }
    }

    fn consider(&self, ids: &[(Rank, usize)], host: &str, method: &Method, best: &mut Best) {
        for &(rank, id) in ids {
            let Some(m) = self.matchers.get(id) else {
                continue;
            };
            if self.conditional.get(id).copied().unwrap_or(false) {
                continue;
            }
            if m.host.as_deref().is_some_and(|h| h != host) {
                continue;
            }
            let place = rank.place();
            match best.place {
                // Lists are sorted best first: nothing after this can be better.
                Some(p) if place > p => break,
                Some(p) if place == p => {}
                _ => {
                    *best = Best {
                        place: Some(place),
                        ..Best::default()
                    }
                }
            }
            if best.any.is_none_or(|(b, _)| rank < b) {
                best.any = Some((rank, id));
            }
            let method_ok = m.methods.as_ref().is_none_or(|ms| ms.contains(method));
            if method_ok && best.allowed.is_none_or(|(b, _)| rank < b) {
                best.allowed = Some((rank, id));
            }
        }
    }
}

/// The outcome of a route lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// This route applies.
    Route(usize),
    /// The most specific routes for this path are for other methods; the first of them.
    MethodNotAllowed(usize),
    /// No route covers this host and path.
    None,
}

impl Lookup {
    /// The route id, when one applies.
    pub fn route(self) -> Option<usize> {
        match self {
            Lookup::Route(id) => Some(id),
            _ => None,
        }
    }
}

/// The most specific place found so far, and the best routes in it.
#[derive(Default)]
struct Best {
    place: Option<(usize, usize, usize, bool)>,
    any: Option<(Rank, usize)>,
    allowed: Option<(Rank, usize)>,
}

fn child(nodes: &mut Vec<Node>, at: usize, seg: &Segment) -> usize {
    let existing = match seg {
        Segment::Literal(text) => nodes[at].literal.get(text).copied(),
        Segment::Star => nodes[at].star,
    };
    if let Some(next) = existing {
        return next;
    }
    let next = nodes.len();
    nodes.push(Node::default());
    match seg {
        Segment::Literal(text) => {
            nodes[at].literal.insert(text.clone(), next);
        }
        Segment::Star => nodes[at].star = Some(next),
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str) -> Matcher {
        Matcher {
            pattern: Pattern::parse(p, false).unwrap(),
            host: None,
            methods: None,
            fold_case: false,
        }
    }

    fn table(patterns: &[&str]) -> RouteTable {
        RouteTable::new(patterns.iter().map(|p| m(p)).collect())
    }

    #[test]
    fn patterns_parse_and_refuse() {
        assert!(Pattern::parse("/billing/**", false).unwrap().globstar);
        assert_eq!(
            Pattern::parse("billing", false),
            Err(PatternError::NoLeadingSlash)
        );
        assert_eq!(
            Pattern::parse("/**/x", false),
            Err(PatternError::GlobstarNotLast)
        );
        assert_eq!(
            Pattern::parse("/a*/x", false),
            Err(PatternError::PartialWildcard)
        );
        assert_eq!(
            Pattern::parse("/.ward/x", false),
            Err(PatternError::Reserved)
        );
        assert_eq!(
            Pattern::parse("/.WARD/**", false),
            Err(PatternError::Reserved)
        );
        assert!(Pattern::parse("/a?b", false).is_err());
        assert!(Pattern::parse("/a/../b", false).is_err());
        assert!(Pattern::parse("/a%2fb", false).is_err());
    }

    #[test]
    fn most_specific_route_wins() {
        let t = table(&[
            "/**",
            "/billing/**",
            "/patients/*/chart",
            "/patients/**",
            "/",
        ]);
        let get = |p: &str| t.lookup("h", &Method::GET, p).route();
        assert_eq!(get("/"), Some(4));
        assert_eq!(get("/x"), Some(0));
        assert_eq!(get("/billing"), Some(1));
        assert_eq!(get("/billing/"), Some(1));
        assert_eq!(get("/billing/a/b"), Some(1));
        assert_eq!(get("/billingx"), Some(0));
        assert_eq!(get("/patients/7/chart"), Some(2));
        assert_eq!(get("/patients/7/chart/x"), Some(3));
        assert_eq!(get("/patients//chart"), Some(3));
        assert_eq!(get("/Billing/x"), Some(0));
    }

    #[test]
    fn no_match_is_none() {
        let t = table(&["/billing/**", "/patients/*"]);
        assert_eq!(t.lookup("h", &Method::GET, "/").route(), None);
        assert_eq!(t.lookup("h", &Method::GET, "/patients/").route(), None);
        assert_eq!(t.lookup("h", &Method::GET, "/patients").route(), None);
        assert_eq!(t.lookup("h", &Method::GET, "/patients/1/2").route(), None);
        assert_eq!(t.lookup("h", &Method::GET, "relative").route(), None);
    }

    #[test]
    fn file_order_breaks_ties_and_hosts_methods_filter() {
        let mut a = m("/x/**");
        a.methods = Some(vec![Method::POST]);
        let b = m("/x/**");
        let mut c = m("/x/**");
        c.host = Some("billing.example".into());
        let t = RouteTable::new(vec![a, b, c]);
        assert_eq!(
            t.lookup("ehr.example", &Method::POST, "/x/1").route(),
            Some(0)
        );
        assert_eq!(
            t.lookup("ehr.example", &Method::GET, "/x/1").route(),
            Some(1)
        );
        assert_eq!(
            t.lookup("billing.example", &Method::GET, "/x/1").route(),
            Some(2)
        );
    }

    #[test]
    fn webdav_methods_are_matched_exactly() {
        let dav = |name: &str| Method::from_bytes(name.as_bytes()).unwrap();
        let mut files = m("/dav/**");
        files.methods = Some(vec![Method::GET, dav("PROPFIND"), dav("MKCOL")]);
        let t = RouteTable::new(vec![files]);
        for ok in ["PROPFIND", "MKCOL", "GET"] {
            assert_eq!(t.lookup("h", &dav(ok), "/dav/a").route(), Some(0), "{ok}");
        }
        // Not listed, or not the method's spelling (methods are case-sensitive).
        for no in ["DELETE", "MOVE", "propfind", "PROPFINDX"] {
            assert!(
                matches!(
                    t.lookup("h", &dav(no), "/dav/a"),
                    Lookup::MethodNotAllowed(0)
                ),
                "{no}"
            );
        }
    }

    #[test]
    fn a_method_restricted_route_never_falls_through_to_a_broader_one() {
        let mut admin_get = m("/admin/**");
        admin_get.methods = Some(vec![Method::GET, Method::HEAD]);
        let t = RouteTable::new(vec![m("/**"), admin_get]);
        assert_eq!(t.lookup("h", &Method::GET, "/admin/x"), Lookup::Route(1));
        assert_eq!(
            t.lookup("h", &Method::POST, "/admin/x"),
            Lookup::MethodNotAllowed(1)
        );
        assert_eq!(t.lookup("h", &Method::POST, "/other"), Lookup::Route(0));
        let mut admin_post = m("/admin/**");
        admin_post.methods = Some(vec![Method::POST]);
        let mut admin_get = m("/admin/**");
        admin_get.methods = Some(vec![Method::GET]);
        let t = RouteTable::new(vec![m("/**"), admin_get, admin_post]);
        assert_eq!(t.lookup("h", &Method::POST, "/admin/x"), Lookup::Route(2));
        assert_eq!(
            t.lookup("h", &Method::DELETE, "/admin/x"),
            Lookup::MethodNotAllowed(1)
        );
    }

    #[test]
    fn case_folding_is_per_route() {
        let mut a = m("/Admin/**");
        a.fold_case = true;
        a.pattern = Pattern::parse("/Admin/**", true).unwrap();
        let t = RouteTable::new(vec![a, m("/**")]);
        assert_eq!(t.lookup("h", &Method::GET, "/ADMIN/x").route(), Some(0));
        assert_eq!(t.lookup("h", &Method::GET, "/admin").route(), Some(0));
        assert_eq!(t.lookup("h", &Method::GET, "/other").route(), Some(1));
    }

    #[test]
    fn shadowing_is_same_pattern_and_broader() {
        let a = m("/x/**");
        let b = m("/x/**");
        assert!(b.shadowed_by(&a));
        let mut post = m("/x/**");
        post.methods = Some(vec![Method::POST]);
        assert!(!post.shadowed_by(&a));
        assert!(!a.shadowed_by(&post));
        assert!(!m("/x/*").shadowed_by(&a));
    }

    #[test]
    fn many_routes_still_resolve() {
        let patterns: Vec<String> = (0..2000).map(|i| format!("/app{i}/*/x/**")).collect();
        let t = RouteTable::new(patterns.iter().map(|p| m(p)).collect());
        assert_eq!(
            t.lookup("h", &Method::GET, "/app1234/7/x/y").route(),
            Some(1234)
        );
        assert_eq!(t.lookup("h", &Method::GET, "/app1234/7/y").route(), None);
    }
}
