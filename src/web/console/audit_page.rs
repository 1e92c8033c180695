//! The audit trail: a search form (person, since, path pattern, decision, kind) over the same
//! search code as `ward audit search`, showing the newest matches.

use super::{Ctx, Form, Notice, Section, blocking, head_row, none};
use crate::audit::search::{self, Format, PathFilter, Query};
use crate::audit::{Kind, Record};
use crate::body::Body;
use http::Response;
use maud::{Markup, html};
use std::collections::VecDeque;

/// The most matches a page shows (the newest).
pub const MAX_SHOWN: usize = 500;

/// Decisions offered in the form: (value, words).
const DECISIONS: [(&str, &str); 12] = [
    ("", "Any"),
    ("refused", "Refused, for any reason"),
    ("allow", "Allowed"),
    ("login", "Sent to sign in"),
    ("role", "Refused: role"),
    ("network", "Refused: network"),
    ("no-route", "Refused: not in the policy"),
    ("method", "Refused: kind of request"),
    ("export-blocked", "Export blocked"),
    ("too-large", "Too large"),
    ("rate-limit", "Too many requests"),
    ("body-blocked", "Change blocked"),
];

const KINDS: [(&str, &str); 5] = [
    ("", "All records"),
    ("access", "Access decisions"),
    ("signin", "Sign-ins and sign-outs"),
    ("officer", "Officer actions"),
    ("system", "ward itself"),
];

/// Collects the JSON lines `search` writes, keeping the newest `MAX_SHOWN` that pass `extra`.
struct Newest {
    partial: Vec<u8>,
    kept: VecDeque<Record>,
    matched: u64,
    refused_only: bool,
}

impl Newest {
    fn take_line(&mut self, line: &[u8]) {
        let Ok(r) = serde_json::from_slice::<Record>(line) else {
            return;
        };
        if self.refused_only && !is_refusal(&r) {
            return;
        }
        self.matched += 1;
        if self.kept.len() == MAX_SHOWN {
            self.kept.pop_front();
        }
        self.kept.push_back(r);
    }
}

/// An access decision that refused the request (not allowed, not sent to sign in).
fn is_refusal(r: &Record) -> bool {
    r.kind == Kind::Access && !matches!(r.decision.as_deref(), Some("allow") | Some("login") | None)
}

impl std::io::Write for Newest {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut rest = buf;
        while let Some(i) = rest.iter().position(|b| *b == b'\n') {
            if self.partial.is_empty() {
                self.take_line(&rest[..i]);
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(&rest[..i]);
                self.take_line(&line);
            }
            rest = &rest[i + 1..];
        }
        self.partial.extend_from_slice(rest);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `GET /.ward/officer/audit?user=&since=&path=&decision=&kind=`.
pub(super) async fn search(ctx: &Ctx<'_>) -> Response<Body> {
    let q = Form::from_query(ctx.req.query.as_deref());
    let user = q.get("user").trim().to_string();
    let since = match q.get("since").trim() {
        "" if ctx.req.query.is_none() => "24h".to_string(),
        s => s.to_string(),
    };
    let path = q.get("path").trim().to_string();
    let decision = q.get("decision").trim().to_string();
    let kind = q.get("kind").trim().to_string();
    let now = crate::clock::now();

    let mut query = Query::default();
    let mut problem = None;
    if !user.is_empty() {
        query.user = Some(user.clone());
    }
    if !since.is_empty() {
        match search::parse_when(&since, now, false) {
            Ok(t) => query.since = Some(t),
            Err(e) => problem = Some(format!("Since: {e}")),
        }
    }
    if !path.is_empty() {
        match PathFilter::parse(&path) {
            Ok(f) => query.path = Some(f),
            Err(e) => problem = Some(format!("Pages: {e}")),
        }
    }
    let refused_only = decision == "refused";
    if !decision.is_empty() && !refused_only {
        query.decision = Some(decision.clone());
    }
    query.kind = match kind.as_str() {
        "access" => Some(Kind::Access),
        "signin" => Some(Kind::Signin),
        "officer" => Some(Kind::Officer),
        "system" => Some(Kind::System),
        _ => None,
    };
    if refused_only {
        query.kind = Some(Kind::Access);
    }

    let form = form_html(ctx, &user, &since, &path, &decision, &kind);
    let mut results = None;
    let notice = match problem {
        Some(p) => Notice::Problem(p),
        None => {
            let dir = ctx.shared.audit.settings().dir.clone();
            let found = blocking(move || {
                let files = crate::audit::trail_files(&dir)?;
                let mut sink = Newest {
                    partial: Vec::new(),
                    kept: VecDeque::new(),
                    matched: 0,
                    refused_only,
                };
                let stats = search::search(&files, &query, Format::Json, &mut sink)?;
                Ok::<_, std::io::Error>((sink, stats))
            })
            .await;
            match found {
                Some(Ok((sink, stats))) => {
                    results = Some(results_html(&sink, stats.unreadable));
                    Notice::None
                }
                Some(Err(e)) => Notice::Problem(format!("The audit trail could not be read: {e}")),
                None => Notice::Problem("The search did not finish; try again.".into()),
            }
        }
    };
    let status = notice.status();
    let h = html! { (form) @if let Some(r) = results { (r) } };
    ctx.page(status, Section::Audit, "Audit trail", &notice, h)
}

fn form_html(
    ctx: &Ctx<'_>,
    user: &str,
    since: &str,
    path: &str,
    decision: &str,
    kind: &str,
) -> Markup {
    let options = |list: &[(&str, &str)], chosen: &str| {
        html! {
            @for (v, words) in list {
                option value=(v) selected[*v == chosen] { (words) }
            }
        }
    };
    html! {
        form.stack method="get" action={ (super::BASE) "audit" } {
            div.cols {
                p {
                    label for="user" { "Person (what they did, or what was done to them)" } br;
                    input #user name="user" value=(user) list="people" autocapitalize="none";
                    datalist #people { @for n in ctx.account_names() { option value=(n); } }
                }
                p {
                    label for="since" { "Since" } br;
                    input #since name="since" value=(since) size="14" aria-describedby="since-hint";
                    br;
                    span.hint #since-hint { "How long ago (7d, 12h), or a day (2026-11-01)." }
                }
                p {
                    label for="path" { "Pages (a route pattern)" } br;
                    input #path name="path" value=(path) placeholder="/patients/**";
                }
                p {
                    label for="decision" { "Decision" } br;
                    select #decision name="decision" { (options(&DECISIONS, decision)) }
                }
                p {
                    label for="kind" { "Records" } br;
                    select #kind name="kind" { (options(&KINDS, kind)) }
                }
            }
            p { button type="submit" { "Search" } }
        }
    }
}

fn results_html(found: &Newest, unreadable: u64) -> Markup {
    let shown = found.kept.len();
    let caption = if found.matched as usize > shown {
        format!(
            "The newest {shown} of {} matching records, newest first",
            found.matched
        )
    } else {
        format!(
            "{} matching record{}, newest first",
            found.matched,
            if found.matched == 1 { "" } else { "s" }
        )
    };
    let cell = |v: Option<&str>| match v {
        Some(s) if !s.is_empty() => html! { (s) },
        _ => none(),
    };
    html! {
        table {
            caption { (caption) }
            (head_row(&["Time (UTC)", "Who", "From", "What", "Method", "Path", "Status", "Details"]))
            tbody {
                @for r in found.kept.iter().rev() {
                    tr {
                        td { (r.time.get(..19).unwrap_or(&r.time).replace('T', " ")) }
                        td {
                            @match (&r.user, &r.actor) {
                                (Some(u), Some(a)) if u != a => { (u) " (by " (a) ")" },
                                (Some(u), _) => (u),
                                (None, Some(a)) => (a),
                                (None, None) => (none()),
                            }
                        }
                        td { (cell(r.client_ip.map(|ip| ip.to_string()).as_deref())) }
                        td {
                            (r.decision.as_deref().or(r.event.as_deref()).unwrap_or(r.kind.as_str()))
                            @if r.emergency { " " strong { "(emergency)" } }
                        }
                        td { (cell(r.method.as_deref())) }
                        td { (cell(r.path.as_deref())) }
                        td { (cell(r.status.map(|s| s.to_string()).as_deref())) }
                        td { (cell(Some(&details(r).join(" · ")))) }
                    }
                }
                @if shown == 0 {
                    tr { td colspan="8" { "No records match." } }
                }
            }
        }
        @if unreadable > 0 {
            p.hint {
                (unreadable) " line" (if unreadable == 1 { "" } else { "s" })
                " of the trail could not be read and " (if unreadable == 1 { "was" } else { "were" })
                " skipped; run " code { "ward audit verify" } "."
            }
        }
    }
}

/// A record's reason, detail, grant and organization, each once.
fn details(r: &Record) -> Vec<String> {
    let mut details: Vec<String> = Vec::new();
    for part in [
        r.reason.as_deref(),
        r.detail.as_deref(),
        r.grant.as_deref().map(|g| g.trim()),
        r.org.as_deref(),
    ]
    .into_iter()
    .flatten()
    {
        if !part.is_empty() && !details.iter().any(|d| d == part) {
            details.push(part.to_string());
        }
    }
    details
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn keeps_the_newest_across_split_writes() {
        let mut sink = Newest {
            partial: Vec::new(),
            kept: VecDeque::new(),
            matched: 0,
            refused_only: false,
        };
        for i in 0..(MAX_SHOWN + 7) {
            let line =
                serde_json::to_string(&Record::access("GET", "h", &format!("/p/{i}"), "allow"))
                    .unwrap();
            let (a, b) = line.split_at(line.len() / 2);
            sink.write_all(a.as_bytes()).unwrap();
            sink.write_all(b.as_bytes()).unwrap();
            sink.write_all(b"\n").unwrap();
        }
        assert_eq!(sink.matched as usize, MAX_SHOWN + 7);
        assert_eq!(sink.kept.len(), MAX_SHOWN);
        assert_eq!(sink.kept.back().unwrap().path.as_deref(), Some("/p/506"));
        assert_eq!(sink.kept.front().unwrap().path.as_deref(), Some("/p/7"));
    }

    #[test]
    fn refusals_are_every_decision_but_allow_and_login() {
        assert!(is_refusal(&Record::access("GET", "h", "/", "role")));
        assert!(is_refusal(&Record::access(
            "GET",
            "h",
            "/",
            "export-blocked"
        )));
        assert!(!is_refusal(&Record::access("GET", "h", "/", "allow")));
        assert!(!is_refusal(&Record::access("GET", "h", "/", "login")));
        assert!(!is_refusal(&Record::signin("login-failed")));
    }
}
