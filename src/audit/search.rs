//! `ward audit search`: streams through the trail's files (every instance's, merged in time
//! order) and prints the records that match, as an aligned table, JSON lines or CSV.

use super::chain::{MAX_LINE, parse_file_name};
use super::record::{Kind, Record};
use crate::csv;
use crate::policy::routes::{Lookup, Matcher, Pattern, PatternError, RouteTable};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

/// Which records to show. Every condition set must hold.
#[derive(Debug, Default)]
pub struct Query {
    /// Records about or by this account (`user` or `actor`).
    pub user: Option<String>,
    /// At or after.
    pub since: Option<Timestamp>,
    /// At or before.
    pub until: Option<Timestamp>,
    /// Paths matching a route pattern.
    pub path: Option<PathFilter>,
    /// This decision ("deny", "allow", "login", …).
    pub decision: Option<String>,
    /// This kind.
    pub kind: Option<Kind>,
    /// This event ("login-failed", "user-added", …). Checkpoints show only when asked for.
    pub event: Option<String>,
}

/// A path pattern in ward's route syntax (`/patients/*/chart`, `/billing/**`).
#[derive(Debug)]
pub struct PathFilter {
    table: RouteTable,
}

impl PathFilter {
    /// Parses `pattern`.
    pub fn parse(pattern: &str) -> Result<PathFilter, PatternError> {
        let pattern = Pattern::parse(pattern, false)?;
        Ok(PathFilter {
            table: RouteTable::new(vec![Matcher {
                pattern,
                host: None,
                methods: None,
                fold_case: false,
            }]),
        })
    }

    /// Whether `path` matches.
    pub fn matches(&self, path: &str) -> bool {
        matches!(
            self.table.lookup("", &http::Method::GET, path),
            Lookup::Route(_)
        )
    }
}

impl Query {
    /// Whether `r` is wanted.
    pub fn matches(&self, r: &Record) -> bool {
        if r.is_checkpoint() && self.event.as_deref() != Some("checkpoint") {
            return false;
        }
        if let Some(u) = &self.user
            && r.user.as_deref() != Some(u.as_str())
            && r.actor.as_deref() != Some(u.as_str())
        {
            return false;
        }
        if self.kind.is_some_and(|k| k != r.kind) {
            return false;
        }
        if let Some(d) = &self.decision
            && r.decision.as_deref() != Some(d.as_str())
        {
            return false;
        }
        if let Some(e) = &self.event
            && r.event.as_deref() != Some(e.as_str())
        {
            return false;
        }
        if let Some(p) = &self.path
            && !r.path.as_deref().is_some_and(|path| p.matches(path))
        {
            return false;
        }
        if self.since.is_some() || self.until.is_some() {
            let Ok(t) = r.time.parse::<Timestamp>() else {
                return false;
            };
            if self.since.is_some_and(|s| t < s) || self.until.is_some_and(|u| t > u) {
                return false;
            }
        }
        true
    }

    /// Whether a file named for `day` (YYYYMMDD, UTC) can hold wanted records. Records are
    /// written on the day their file is named for; a day's slack covers clocks and queues.
    fn wants_day(&self, day: u32) -> bool {
        let key = |t: Timestamp| {
            let d = t.to_zoned_datetime(TimeZone::UTC).date();
            (d.year() as u32) * 10_000 + (d.month() as u32) * 100 + d.day() as u32
        };
        let day_secs = SignedDuration::from_hours(24);
        if let Some(s) = self.since
            && let Ok(s) = s.checked_sub(day_secs)
            && day < key(s)
        {
            return false;
        }
        if let Some(u) = self.until
            && let Ok(u) = u.checked_add(day_secs)
            && day > key(u)
        {
            return false;
        }
        true
    }
}

/// Why a `--since` / `--until` value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WhenError {
    /// Not a duration, a day or a time.
    #[error(
        "'{0}' is not a time: write how long ago (7d, 12h, 30m), a day (2026-11-01) or a time (2026-11-01T14:00:00Z)"
    )]
    NotATime(String),
    /// A time outside what ward can count with.
    #[error("'{0}' is too far from now")]
    OutOfRange(String),
}

/// Parses `--since` / `--until`: a duration back from `now` (`7d`, `12h`, `30m`), a day
/// (`2026-11-01`, UTC; with `end_of_day` its last moment) or an RFC 3339 time.
pub fn parse_when(text: &str, now: Timestamp, end_of_day: bool) -> Result<Timestamp, WhenError> {
    let text = text.trim();
    let out_of_range = |_| WhenError::OutOfRange(text.to_string());
    if let Ok(t) = text.parse::<Timestamp>() {
        return Ok(t);
    }
    if let Ok(d) = text.parse::<jiff::civil::Date>() {
        let start = d
            .to_zoned_datetime(TimeZone::UTC)
            .map_err(out_of_range)?
            .timestamp();
        if !end_of_day {
            return Ok(start);
        }
        return start
            .checked_add(SignedDuration::from_hours(24) - SignedDuration::from_nanos(1))
            .map_err(out_of_range);
    }
    if let Ok(d) = humantime::parse_duration(text) {
        let back =
            SignedDuration::try_from(d).map_err(|_| WhenError::OutOfRange(text.to_string()))?;
        return now.checked_sub(back).map_err(out_of_range);
    }
    Err(WhenError::NotATime(text.to_string()))
}

/// How to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// The records' own lines (JSON, one per line).
    Json,
    /// CSV with a header row, for spreadsheets.
    Csv,
}

/// What a search read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Files read (others were skipped by their day).
    pub files: usize,
    /// Records that matched.
    pub matched: u64,
    /// Lines that could not be read as records (skipped).
    pub unreadable: u64,
    /// The first unreadable line, as `FILE:LINE`.
    pub first_unreadable: Option<String>,
}

/// Rows kept to size the table's columns before the rest stream out with those widths.
const TABLE_SAMPLE: usize = 500;
/// Widest a column is padded to (longer values are printed whole and push the row out).
const TABLE_MAX_WIDTH: usize = 48;

const CSV_COLUMNS: [&str; 23] = [
    "time",
    "seq",
    "kind",
    "user",
    "roles",
    "org",
    "session",
    "client_ip",
    "method",
    "host",
    "path",
    "route",
    "decision",
    "reason",
    "status",
    "bytes_out",
    "duration_ms",
    "emergency",
    "grant",
    "event",
    "actor",
    "detail",
    "request_id",
];

const TABLE_COLUMNS: [&str; 8] = [
    "TIME", "USER", "CLIENT", "DECISION", "METHOD", "PATH", "STATUS", "REASON",
];

/// Searches `files` (each instance's oldest first, as `trail_files` gives them), writing
/// matches to `out` in `format`, in time order across instances.
pub fn search(
    files: &[PathBuf],
    query: &Query,
    format: Format,
    out: &mut dyn Write,
) -> std::io::Result<Stats> {
    let mut stats = Stats::default();
    let mut table = Table::default();
    if format == Format::Csv {
        writeln!(out, "{}", CSV_COLUMNS.join(","))?;
    }
    let runs = super::chain::chains(files);
    let mut chains: Vec<Matches<'_>> = runs
        .iter()
        .map(|(_, run)| Matches::new(run, query))
        .collect();
    let mut heads = Vec::with_capacity(chains.len());
    for c in &mut chains {
        heads.push(c.next(&mut stats)?);
    }
    // Each chain is in time order: the earliest head goes next (a merge).
    while let Some(i) = heads
        .iter()
        .enumerate()
        .filter_map(|(i, h)| h.as_ref().map(|(r, _)| (i, r.time.as_str())))
        .min_by(|a, b| a.1.cmp(b.1))
        .map(|(i, _)| i)
    {
        let Some((r, line)) = heads.get_mut(i).and_then(Option::take) else {
            break;
        };
        stats.matched += 1;
        match format {
            Format::Json => {
                out.write_all(&line)?;
                out.write_all(b"\n")?;
            }
            Format::Csv => write_csv(out, &r)?,
            Format::Table => table.push(out, table_row(&r))?,
        }
        if let (Some(slot), Some(chain)) = (heads.get_mut(i), chains.get_mut(i)) {
            *slot = chain.next(&mut stats)?;
        }
    }
    if format == Format::Table {
        table.finish(out)?;
    }
    out.flush()?;
    Ok(stats)
}

/// The records of one chain's files that match a query, oldest first.
struct Matches<'a> {
    files: std::slice::Iter<'a, PathBuf>,
    query: &'a Query,
    /// The file being read, its reader and the last line number read.
    reading: Option<(&'a Path, BufReader<File>, u64)>,
}

impl<'a> Matches<'a> {
    fn new(files: &'a [PathBuf], query: &'a Query) -> Matches<'a> {
        Matches {
            files: files.iter(),
            query,
            reading: None,
        }
    }

    /// The next matching record and its line.
    fn next(&mut self, stats: &mut Stats) -> std::io::Result<Option<(Record, Vec<u8>)>> {
        loop {
            let Some((path, reader, number)) = &mut self.reading else {
                let Some(path) = self.files.next() else {
                    return Ok(None);
                };
                let day = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(parse_file_name)
                    .map(|(_, d, _)| d);
                if day.is_some_and(|d| !self.query.wants_day(d)) {
                    continue;
                }
                stats.files += 1;
                let reader = BufReader::with_capacity(256 * 1024, File::open(path)?);
                self.reading = Some((path, reader, 0));
                continue;
            };
            let mut line = Vec::with_capacity(512);
            let n = reader
                .by_ref()
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut line)?;
            if n == 0 {
                self.reading = None;
                continue;
            }
            *number += 1;
            if line.last() == Some(&b'\n') {
                line.pop();
            } else if line.len() > MAX_LINE {
                // Skip the rest of an overlong line, bounded by the file's size.
                unreadable(stats, path, *number);
                let mut sink = Vec::new();
                reader.read_until(b'\n', &mut sink)?;
                continue;
            }
            let Ok(r) = serde_json::from_slice::<Record>(&line) else {
                unreadable(stats, path, *number);
                continue;
            };
            if self.query.matches(&r) {
                return Ok(Some((r, line)));
            }
        }
    }
}

fn unreadable(stats: &mut Stats, path: &Path, line: u64) {
    stats.unreadable += 1;
    if stats.first_unreadable.is_none() {
        stats.first_unreadable = Some(format!("{}:{line}", path.display()));
    }
}

fn table_row(r: &Record) -> [String; 8] {
    let who = match (&r.user, &r.actor) {
        (Some(u), Some(a)) if u != a => format!("{u} (by {a})"),
        (Some(u), _) => u.clone(),
        (None, Some(a)) => a.clone(),
        (None, None) => "-".into(),
    };
    let or_dash = |s: Option<&str>| s.filter(|s| !s.is_empty()).unwrap_or("-").to_string();
    [
        r.time.clone(),
        who,
        or_dash(r.client_ip.map(|ip| ip.to_string()).as_deref()),
        or_dash(r.decision.as_deref().or(r.event.as_deref())),
        or_dash(r.method.as_deref()),
        or_dash(r.path.as_deref()),
        or_dash(r.status.map(|s| s.to_string()).as_deref()),
        or_dash(r.reason.as_deref().or(r.detail.as_deref())),
    ]
    .map(|s| printable(&s))
}

/// `s` with control characters (terminal escapes) shown as `?`.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Aligned columns: widths from the first rows, the rest streamed.
#[derive(Default)]
struct Table {
    sample: Vec<[String; 8]>,
    widths: Option<[usize; 8]>,
}

impl Table {
    fn push(&mut self, out: &mut dyn Write, row: [String; 8]) -> std::io::Result<()> {
        match &self.widths {
            Some(w) => write_row(out, w, &row),
            None => {
                self.sample.push(row);
                if self.sample.len() >= TABLE_SAMPLE {
                    self.flush_sample(out)?;
                }
                Ok(())
            }
        }
    }

    fn flush_sample(&mut self, out: &mut dyn Write) -> std::io::Result<()> {
        let mut w = TABLE_COLUMNS.map(|h| h.chars().count());
        for row in &self.sample {
            for (i, cell) in row.iter().enumerate() {
                w[i] = w[i].max(cell.chars().count().min(TABLE_MAX_WIDTH));
            }
        }
        write_row(out, &w, &TABLE_COLUMNS.map(String::from))?;
        for row in self.sample.drain(..) {
            write_row(out, &w, &row)?;
        }
        self.widths = Some(w);
        Ok(())
    }

    fn finish(&mut self, out: &mut dyn Write) -> std::io::Result<()> {
        if self.widths.is_none() && !self.sample.is_empty() {
            self.flush_sample(out)?;
        }
        Ok(())
    }
}

fn write_row(out: &mut dyn Write, widths: &[usize; 8], row: &[String; 8]) -> std::io::Result<()> {
    let mut line = String::with_capacity(160);
    for (i, cell) in row.iter().enumerate() {
        if i + 1 == row.len() {
            line.push_str(cell);
        } else {
            line.push_str(cell);
            let pad = widths[i].saturating_sub(cell.chars().count()) + 2;
            line.extend(std::iter::repeat_n(' ', pad));
        }
    }
    writeln!(out, "{}", line.trim_end())
}

fn write_csv(out: &mut dyn Write, r: &Record) -> std::io::Result<()> {
    let num = |n: Option<u64>| n.map(|n| n.to_string()).unwrap_or_default();
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    let t = |v: &Option<super::Text>| v.as_deref().unwrap_or_default().to_string();
    let cells: [String; 23] = [
        r.time.clone(),
        r.seq.to_string(),
        r.kind.as_str().into(),
        s(&r.user),
        r.roles.as_ref().map(|v| v.join(";")).unwrap_or_default(),
        s(&r.org),
        s(&r.session),
        r.client_ip.map(|ip| ip.to_string()).unwrap_or_default(),
        s(&r.method),
        s(&r.host),
        s(&r.path),
        s(&r.route),
        t(&r.decision),
        t(&r.reason),
        num(r.status.map(u64::from)),
        num(r.bytes_out),
        num(r.duration_ms),
        if r.emergency {
            "yes".into()
        } else {
            String::new()
        },
        s(&r.grant),
        t(&r.event),
        s(&r.actor),
        s(&r.detail),
        s(&r.request_id),
    ];
    writeln!(out, "{}", csv::row(&cells))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(user: &str, path: &str, decision: &'static str, time: &str) -> Record {
        Record::access("GET", "ehr", path, decision)
            .user(user)
            .at(time.parse().unwrap())
    }

    #[test]
    fn path_patterns_use_route_syntax() {
        let f = PathFilter::parse("/patients/*/chart").unwrap();
        assert!(f.matches("/patients/12/chart"));
        assert!(!f.matches("/patients/12/chart/x"));
        assert!(!f.matches("/patients//chart"));
        let f = PathFilter::parse("/billing/**").unwrap();
        assert!(f.matches("/billing"));
        assert!(f.matches("/billing/a/b"));
        assert!(!f.matches("/billingx"));
        assert!(PathFilter::parse("billing").is_err());
        assert!(PathFilter::parse("/a*b").is_err());
    }

    #[test]
    fn every_condition_must_hold() {
        let q = Query {
            user: Some("lee".into()),
            decision: Some("deny".into()),
            path: Some(PathFilter::parse("/billing/**").unwrap()),
            since: Some("2026-11-01T00:00:00Z".parse().unwrap()),
            until: Some("2026-11-02T00:00:00Z".parse().unwrap()),
            ..Query::default()
        };
        assert!(q.matches(&rec("lee", "/billing/x", "deny", "2026-11-01T10:00:00Z")));
        assert!(!q.matches(&rec("kim", "/billing/x", "deny", "2026-11-01T10:00:00Z")));
        assert!(!q.matches(&rec("lee", "/chart", "deny", "2026-11-01T10:00:00Z")));
        assert!(!q.matches(&rec("lee", "/billing/x", "allow", "2026-11-01T10:00:00Z")));
        assert!(!q.matches(&rec("lee", "/billing/x", "deny", "2026-10-31T23:59:59Z")));
        assert!(!q.matches(&rec("lee", "/billing/x", "deny", "2026-11-02T00:00:01Z")));
        // An officer's actions are found by their name too.
        let q = Query {
            user: Some("boss".into()),
            ..Query::default()
        };
        assert!(q.matches(&Record::officer("boss", "user-added").user("lee")));
        // Checkpoints only when asked for.
        let mut cp = Record::system("x", "sig");
        cp.event = Some("checkpoint".into());
        assert!(!Query::default().matches(&cp));
        let q = Query {
            event: Some("checkpoint".into()),
            ..Query::default()
        };
        assert!(q.matches(&cp));
    }

    #[test]
    fn times_are_durations_days_or_instants() {
        let now: Timestamp = "2026-11-08T12:00:00Z".parse().unwrap();
        assert_eq!(
            parse_when("7d", now, false).unwrap(),
            "2026-11-01T12:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(
            parse_when("2026-11-01", now, false).unwrap(),
            "2026-11-01T00:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(
            parse_when("2026-11-01", now, true).unwrap(),
            "2026-11-01T23:59:59.999999999Z"
                .parse::<Timestamp>()
                .unwrap()
        );
        assert_eq!(
            parse_when("2026-11-01T10:00:00Z", now, true).unwrap(),
            "2026-11-01T10:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert!(parse_when("last tuesday", now, false).is_err());
    }

    #[test]
    fn files_outside_the_window_are_skipped() {
        let q = Query {
            since: Some("2026-11-05T10:00:00Z".parse().unwrap()),
            until: Some("2026-11-07T10:00:00Z".parse().unwrap()),
            ..Query::default()
        };
        assert!(!q.wants_day(20261103));
        assert!(q.wants_day(20261104));
        assert!(q.wants_day(20261108));
        assert!(!q.wants_day(20261109));
    }

    #[test]
    fn csv_records_are_quoted_and_defused() {
        for (value, cell) in [
            ("plain", "plain"),
            ("a,b", "\"a,b\""),
            ("say \"hi\"", "\"say \"\"hi\"\"\""),
            ("=HYPERLINK(1)", "'=HYPERLINK(1)"),
            ("+1", "'+1"),
            ("-1+2", "'-1+2"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "\"'\rx\""),
        ] {
            let r = Record::officer("kim", "user-added")
                .user(value)
                .detail(value);
            let mut out = Vec::new();
            write_csv(&mut out, &r).unwrap();
            let line = String::from_utf8(out).unwrap();
            assert_eq!(
                line.matches(&format!(",{cell},")).count(),
                2,
                "{value:?}: {line:?}"
            );
            assert!(line.ends_with('\n') && !line.ends_with("\r\n"), "{line:?}");
        }
    }

    #[test]
    fn table_rows_hide_terminal_escapes() {
        let r = Record::access("GET", "ehr", "/x", "deny").user("a\u{1b}[2Jb");
        assert_eq!(table_row(&r)[1], "a?[2Jb");
    }
}
