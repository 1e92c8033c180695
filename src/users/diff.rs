//! Who gains and who loses access between two policies (`ward check --diff`,
//! and the audit record of a reload).
//!
//! Not a comparison of text: every active person in users.toml, every role and
//! someone not signed in are put through `decide` under both policies, for each
//! route's own path (a wildcard part probed with `1`), each method the routes
//! name, and each network's first address. Pure: the caller reads the files.

use crate::policy::routes::{Pattern, Segment};
use crate::policy::{self, ExportRule, Facts, Identity, Policy, Verdict};
use crate::users::accounts::networks_of;
use crate::users::directory::{Account, Directory, Status};
use http::Method;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

/// Whose access changes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Who {
    /// A person in users.toml.
    Person {
        /// Account name.
        name: String,
        /// Their roles in users.toml.
        roles: Vec<String>,
    },
    /// Anyone holding this role (and no other).
    Role(String),
    /// Someone not signed in (public routes).
    Anyone,
}

/// Where a change applies: an app and the route's path as written.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Place {
    /// The app's name.
    pub app: String,
    /// The route's path pattern.
    pub route: String,
}

/// The networks a change holds for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum From {
    /// Every network probed (named ones and others).
    Anywhere,
    /// Only these (network names, or ranges the policies give without a name).
    Only(Vec<String>),
}

/// One change in what someone may do.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    /// May now use the route with these methods.
    Gains(Place, Vec<String>, From),
    /// May no longer use the route with these methods.
    Loses(Place, Vec<String>, From),
    /// Exports were blocked on the route and now pass.
    GainsExport(Place),
    /// Exports passed on the route and are now blocked.
    LosesExport(Place),
    /// The idle logoff changes, from the first to the second, on these routes.
    Idle(Vec<Place>, Duration, Duration),
}

/// Every change, by whom it concerns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    /// The changes per person, role, or someone not signed in.
    pub changes: BTreeMap<Who, Vec<Change>>,
}

impl Diff {
    /// Nobody gains or loses anything.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// One line per person or role: "dr_lee (clinician): gains …; loses …".
    pub fn lines(&self) -> Vec<String> {
        self.changes
            .iter()
            .map(|(who, changes)| {
                let what: Vec<String> = changes.iter().map(ToString::to_string).collect();
                format!("{who}: {}", what.join("; "))
            })
            .collect()
    }

    /// The lines joined by " | ", cut to at most `max` bytes (for the audit trail).
    pub fn summary(&self, max: usize) -> String {
        let lines = self.lines();
        if lines.is_empty() {
            return "no one gains or loses access".into();
        }
        let all = lines.join(" | ");
        if all.len() <= max {
            return all;
        }
        let note = format!("… ({} people and roles in all)", lines.len());
        let mut cut = max.saturating_sub(note.len());
        while !all.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}{note}", &all[..cut])
    }
}

impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Who::Person { name, roles } if roles.is_empty() => write!(f, "{name} (no roles)"),
            Who::Person { name, roles } => write!(f, "{name} ({})", roles.join(", ")),
            Who::Role(role) => write!(f, "role {role}"),
            Who::Anyone => f.write_str("anyone, without signing in"),
        }
    }
}

impl fmt::Display for From {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            From::Anywhere => f.write_str("from any network"),
            From::Only(nets) => write!(f, "from {}", nets.join(", ")),
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plain = |d: &Duration| humantime::format_duration(*d).to_string();
        match self {
            Change::Gains(p, methods, from) => {
                write!(
                    f,
                    "gains {} {} on {} ({from})",
                    methods.join(", "),
                    p.route,
                    p.app
                )
            }
            Change::Loses(p, methods, from) => {
                write!(
                    f,
                    "loses {} {} on {} ({from})",
                    methods.join(", "),
                    p.route,
                    p.app
                )
            }
            Change::GainsExport(p) => write!(f, "gains export on {} {}", p.app, p.route),
            Change::LosesExport(p) => write!(f, "loses export on {} {}", p.app, p.route),
            Change::Idle(places, was, now) => {
                let on: Vec<String> = places
                    .iter()
                    .map(|p| format!("{} {}", p.app, p.route))
                    .collect();
                write!(
                    f,
                    "idle logoff goes from {} to {} on {}",
                    plain(was),
                    plain(now),
                    on.join(", ")
                )
            }
        }
    }
}

/// Someone whose access is probed.
enum Subject<'a> {
    Person(&'a Account),
    Role(&'a str),
    Anyone,
}

impl Subject<'_> {
    fn who(&self) -> Who {
        match self {
            Subject::Person(a) => Who::Person {
                name: a.name.clone(),
                roles: a.roles.clone(),
            },
            Subject::Role(r) => Who::Role(r.to_string()),
            Subject::Anyone => Who::Anyone,
        }
    }

    /// The identity a signed-in session would have under `p` (with a second
    /// factor and no officer's grants: grants are not the policy).
    fn identity(&self, p: &Policy) -> Option<Identity> {
        let (user, roles, allow_from, vendor) = match self {
            Subject::Person(a) => (
                a.name.clone(),
                a.roles.clone(),
                networks_of(a, p),
                a.is_vendor(&p.practice),
            ),
            // No account name can be empty, so no route names this one.
            Subject::Role(r) => (String::new(), vec![r.to_string()], None, false),
            Subject::Anyone => return None,
        };
        Some(Identity {
            user,
            roles,
            allow_from,
            mfa: true,
            passkey: true,
            emergency: false,
            vendor,
            device_required: false,
            export_grants: Vec::new(),
            access_grants: Vec::new(),
        })
    }
}

/// What `decide` says at one probe: the route that decided, if any, and
/// when allowed, whether exports pass and the idle logoff.
struct Seen {
    place: Option<Place>,
    allowed: Option<(bool, Option<Duration>)>,
}

fn seen(p: &Policy, facts: &Facts<'_, '_>) -> Seen {
    let d = policy::decide(facts, p);
    let place = d.route.and_then(|id| p.routes.get(id)).and_then(|r| {
        Some(Place {
            app: p.apps.get(r.app)?.name.clone(),
            route: r.path.clone(),
        })
    });
    let allowed = (d.verdict == Verdict::Allow && place.is_some())
        .then_some((!matches!(d.export, ExportRule::Blocked(_)), d.idle_limit));
    Seen { place, allowed }
}

/// A host and path to ask about.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Probe {
    host: String,
    path: String,
}

/// A path the pattern matches: its own literal parts, `1` for each wildcard.
fn sample(pattern: &Pattern) -> String {
    let mut parts: Vec<&str> = pattern
        .segments
        .iter()
        .map(|s| match s {
            Segment::Literal(l) => &**l,
            Segment::Star => "1",
        })
        .collect();
    if pattern.globstar {
        parts.push("1");
    }
    format!("/{}", parts.join("/"))
}

fn probes(p: &Policy, out: &mut BTreeSet<Probe>) {
    for (id, m) in p.table.matchers().iter().enumerate() {
        let app_host = p
            .routes
            .get(id)
            .and_then(|r| p.apps.get(r.app))
            .and_then(|a| a.host.as_deref());
        let host = m.host.as_deref().or(app_host).unwrap_or("localhost");
        out.insert(Probe {
            host: host.to_string(),
            path: sample(&m.pattern),
        });
    }
}

fn methods(policies: [&Policy; 2]) -> Vec<Method> {
    let mut out = vec![Method::GET];
    for m in policies
        .iter()
        .flat_map(|p| p.table.matchers())
        .filter_map(|m| m.methods.as_ref())
        .flatten()
    {
        if !out.contains(m) {
            out.push(m.clone());
        }
    }
    out
}

/// Addresses unlikely to be in a practice's networks, for "other networks".
const ELSEWHERE: [&str; 5] = [
    "192.0.2.201",
    "100.64.201.1",
    "172.31.201.201",
    "10.201.201.201",
    "2001:db8:201::1",
];

/// One address per network: each named network's first, each unnamed range's
/// first (from routes, roles, the policy and people), and one outside them all.
fn addresses(policies: [&Policy; 2], people: &Directory) -> Vec<(String, IpAddr)> {
    let mut out: Vec<(String, IpAddr)> = Vec::new();
    for p in policies {
        for (name, set) in &p.networks {
            if let Some(r) = set.ranges().first() {
                let probe = (name.clone(), r.network());
                if !out.contains(&probe) {
                    out.push(probe);
                }
            }
        }
    }
    let named = |ip: IpAddr| {
        policies
            .iter()
            .flat_map(|p| p.networks.values())
            .any(|n| n.contains(ip))
    };
    let mut ranges = Vec::new();
    for p in policies {
        let sets = p
            .routes
            .iter()
            .filter_map(|r| r.from.as_ref())
            .chain(p.roles.values().filter_map(|r| r.allow_from.as_ref()))
            .chain(p.allow_from.as_ref());
        ranges.extend(sets.flat_map(|s| s.ranges().iter().copied()));
    }
    ranges.extend(
        people
            .accounts
            .values()
            .flat_map(|a| &a.allow_from)
            .filter_map(|entry| policy::net::parse_cidr(entry).ok()),
    );
    for r in ranges {
        if !named(r.network()) && !out.iter().any(|(_, ip)| *ip == r.network()) {
            out.push((r.to_string(), r.network()));
        }
    }
    let taken: Vec<IpAddr> = out.iter().map(|(_, ip)| *ip).collect();
    let outside = ELSEWHERE
        .iter()
        .filter_map(|a| a.parse::<IpAddr>().ok())
        .find(|ip| {
            !named(*ip)
                && !taken.contains(ip)
                && !policies.iter().any(|p| {
                    p.routes
                        .iter()
                        .filter_map(|r| r.from.as_ref())
                        .any(|n| n.contains(*ip))
                })
        });
    if let Some(ip) = outside {
        out.push(("other networks".into(), ip));
    }
    out
}

/// Who gains and who loses access going from `old` to `new`, for the people in `people`.
pub fn diff(old: &Policy, new: &Policy, people: &Directory) -> Diff {
    let mut probe_set = BTreeSet::new();
    probes(old, &mut probe_set);
    probes(new, &mut probe_set);
    let methods = methods([old, new]);
    let addresses = addresses([old, new], people);
    let mut subjects: Vec<Subject<'_>> = people
        .accounts
        .values()
        .filter(|a| a.status == Status::Active)
        .map(Subject::Person)
        .collect();
    let roles: BTreeSet<&str> = old
        .roles
        .keys()
        .chain(new.roles.keys())
        .map(String::as_str)
        .collect();
    subjects.extend(roles.into_iter().map(Subject::Role));
    subjects.push(Subject::Anyone);

    let mut labels: Vec<String> = Vec::new();
    for (name, _) in &addresses {
        if !labels.contains(name) {
            labels.push(name.clone());
        }
    }
    let probe = Probes {
        paths: &probe_set,
        methods: &methods,
        addresses: &addresses,
        labels: &labels,
    };
    // People with the same roles, networks and standing fare the same unless a
    // route names people: each such identity is asked about once.
    let by_name = [old, new]
        .iter()
        .flat_map(|p| &p.routes)
        .any(|r| matches!(&r.access, policy::Access::Members { users, .. } if !users.is_empty()));
    type Pair = (Option<Identity>, Option<Identity>);
    let mut asked: Vec<(Pair, Vec<Change>)> = Vec::new();
    let mut diff = Diff::default();
    for subject in &subjects {
        let mut key = (subject.identity(old), subject.identity(new));
        if !by_name {
            for id in [&mut key.0, &mut key.1].into_iter().flatten() {
                id.user.clear();
            }
        }
        let changes = match asked.iter().find(|(k, _)| *k == key) {
            Some((_, changes)) => changes.clone(),
            None => {
                let changes = changes_of(old, new, (key.0.as_ref(), key.1.as_ref()), &probe);
                asked.push((key, changes.clone()));
                changes
            }
        };
        if !changes.is_empty() {
            diff.changes.insert(subject.who(), changes);
        }
    }
    diff
}

/// What is asked about: paths, methods, addresses and the networks' names.
struct Probes<'a> {
    paths: &'a BTreeSet<Probe>,
    methods: &'a [Method],
    addresses: &'a [(String, IpAddr)],
    labels: &'a [String],
}

/// The changes for one identity (under the old policy, under the new).
fn changes_of(
    old: &Policy,
    new: &Policy,
    (id_old, id_new): (Option<&Identity>, Option<&Identity>),
    probes: &Probes<'_>,
) -> Vec<Change> {
    // (lost?, place) → method → networks; export changes; (was, now) → places.
    let mut reach: BTreeMap<(bool, Place), BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    let mut export: BTreeSet<Change> = BTreeSet::new();
    let mut idle: BTreeMap<(Duration, Duration), BTreeSet<Place>> = BTreeMap::new();
    for probe in probes.paths {
        for method in probes.methods {
            for (net, ip) in probes.addresses {
                let ask = |id| Facts::on_own_device(*ip, method, &probe.host, &probe.path, id);
                let was = seen(old, &ask(id_old));
                let now = seen(new, &ask(id_new));
                // Named by the route that decides now, else the one that did.
                let (lost, place) = match (was.allowed, now.allowed, now.place, was.place) {
                    (None, Some(_), Some(place), _) => (false, place),
                    (Some(_), None, Some(place), _) | (Some(_), None, None, Some(place)) => {
                        (true, place)
                    }
                    (Some((ex_was, idle_was)), Some((ex_now, idle_now)), Some(place), _) => {
                        if ex_was != ex_now {
                            export.insert(if ex_now {
                                Change::GainsExport(place.clone())
                            } else {
                                Change::LosesExport(place.clone())
                            });
                        }
                        if let (Some(a), Some(b)) = (idle_was, idle_now)
                            && a != b
                        {
                            idle.entry((a, b)).or_default().insert(place);
                        }
                        continue;
                    }
                    _ => continue,
                };
                reach
                    .entry((lost, place))
                    .or_default()
                    .entry(method.to_string())
                    .or_default()
                    .insert(net.clone());
            }
        }
    }
    let mut out = Vec::new();
    for ((lost, place), by_method) in reach {
        // Methods that hold from the same networks share one line.
        let mut by_nets: BTreeMap<BTreeSet<String>, Vec<String>> = BTreeMap::new();
        for (method, nets) in by_method {
            by_nets.entry(nets).or_default().push(method);
        }
        for (nets, methods) in by_nets {
            let from = if nets.len() == probes.labels.len() {
                From::Anywhere
            } else {
                // In the order the policies list them, not alphabetical.
                From::Only(
                    probes
                        .labels
                        .iter()
                        .filter(|n| nets.contains(*n))
                        .cloned()
                        .collect(),
                )
            };
            out.push(if lost {
                Change::Loses(place.clone(), methods, from)
            } else {
                Change::Gains(place.clone(), methods, from)
            });
        }
    }
    out.extend(export);
    for ((was, now), places) in idle {
        out.push(Change::Idle(places.into_iter().collect(), was, now));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const BASE: &str = r#"
practice = "Test Clinic"
[server]
listen = "127.0.0.1:0"
[sessions]
idle_timeout = "15m"
[networks]
office = ["203.0.113.0/24"]
vpn = ["198.51.100.7/32"]
[roles]
clinician = { idle_timeout = "30m" }
biller = {}
[[apps]]
name = "ehr"
host = "ehr.example"
upstream = "http://127.0.0.1:9"
[[apps]]
name = "billing"
host = "billing.example"
upstream = "http://127.0.0.1:9"
[[routes]]
app = "ehr"
path = "/logo.png"
allow = "public"
[[routes]]
app = "ehr"
path = "/patients/**"
allow_roles = ["clinician"]
[[routes]]
app = "ehr"
path = "/reports/**"
allow_roles = ["clinician", "biller"]
"#;

    const USERS: &str = r#"
[users.dr_lee]
display_name = "Dr Lee"
roles = ["clinician"]
[users.bo]
display_name = "Bo"
roles = ["biller"]
[users.gone]
display_name = "Gone"
roles = ["biller"]
status = "terminated"
"#;

    fn policy(extra: &str) -> Policy {
        let text = format!("{BASE}{extra}");
        match crate::config::load_str(Path::new("t.toml"), &text, crate::config::Certs::Skip) {
            Ok(l) => l.policy,
            Err(d) => panic!("{d}"),
        }
    }

    fn people() -> Directory {
        match crate::users::directory::parse(Path::new("users.toml"), USERS) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        }
    }

    fn lines(old: &str, new: &str) -> Vec<String> {
        diff(&policy(old), &policy(new), &people()).lines()
    }

    #[test]
    fn the_same_policy_changes_nothing() {
        let d = diff(&policy(""), &policy(""), &people());
        assert!(d.is_empty(), "{:?}", d.lines());
        assert_eq!(d.summary(100), "no one gains or loses access");
    }

    #[test]
    fn reordered_text_with_the_same_meaning_changes_nothing() {
        let a = "[[routes]]\napp = \"billing\"\npath = \"/billing/**\"\nallow_roles = [\"biller\", \"clinician\"]\n";
        let b = "[[routes]]\npath = \"/billing/**\"\nallow_roles = [\"clinician\", \"biller\"] # both\napp = \"billing\"\n";
        assert!(lines(a, b).is_empty());
    }

    #[test]
    fn a_new_route_is_gained_by_its_roles_and_their_people_only() {
        let new = "[[routes]]\napp = \"billing\"\npath = \"/billing/**\"\nallow_roles = [\"biller\"]\nfrom = [\"office\"]\n";
        assert_eq!(
            lines("", new),
            [
                "bo (biller): gains GET /billing/** on billing (from office)",
                "role biller: gains GET /billing/** on billing (from office)",
            ]
        );
        // And the other way round it is lost.
        assert_eq!(
            lines(new, "")[0],
            "bo (biller): loses GET /billing/** on billing (from office)"
        );
    }

    #[test]
    fn methods_networks_export_and_idle_are_each_reported() {
        let old = "[[routes]]\napp = \"billing\"\npath = \"/billing/**\"\nallow_roles = [\"biller\"]\nmethods = [\"GET\"]\n";
        let new = "[[routes]]\napp = \"billing\"\npath = \"/billing/**\"\nallow_roles = [\"biller\"]\nmethods = [\"GET\", \"POST\"]\nfrom = [\"vpn\"]\nexport = \"block\"\nidle_timeout = \"5m\"\n";
        let got = lines(old, new);
        assert_eq!(
            got[0],
            "bo (biller): gains POST /billing/** on billing (from vpn); \
             loses GET, HEAD /billing/** on billing (from office, other networks); \
             loses export on billing /billing/**; \
             idle logoff goes from 15m to 5m on billing /billing/**",
            "{got:#?}"
        );
    }

    #[test]
    fn a_public_route_made_private_is_lost_by_anyone_and_gained_by_no_one() {
        let got = lines("", "");
        assert!(got.is_empty());
        let base = policy("");
        let text = BASE.replace(
            "path = \"/logo.png\"\nallow = \"public\"",
            "path = \"/logo.png\"\nallow_roles = [\"clinician\"]",
        );
        let closed =
            match crate::config::load_str(Path::new("t.toml"), &text, crate::config::Certs::Skip) {
                Ok(l) => l.policy,
                Err(d) => panic!("{d}"),
            };
        let got = diff(&base, &closed, &people()).lines();
        assert_eq!(
            got,
            [
                "bo (biller): loses GET /logo.png on ehr (from any network)",
                "role biller: loses GET /logo.png on ehr (from any network)",
                "anyone, without signing in: loses GET /logo.png on ehr (from any network)",
            ]
        );
    }

    #[test]
    fn a_role_change_reaches_its_people_and_terminated_accounts_are_left_out() {
        let text = BASE.replace("biller = {}", "biller = { idle_timeout = \"10m\" }");
        let new =
            match crate::config::load_str(Path::new("t.toml"), &text, crate::config::Certs::Skip) {
                Ok(l) => l.policy,
                Err(d) => panic!("{d}"),
            };
        let got = diff(&policy(""), &new, &people()).lines();
        assert_eq!(
            got,
            [
                "bo (biller): idle logoff goes from 15m to 10m on ehr /logo.png, ehr /reports/**",
                "role biller: idle logoff goes from 15m to 10m on ehr /logo.png, ehr /reports/**",
            ]
        );
    }

    #[test]
    fn a_persons_own_networks_count() {
        let users = format!(
            "{USERS}[users.acme]\ndisplay_name = \"A\"\nroles = [\"biller\"]\norg = \"Acme\"\nexpires = 2099-01-01\nallow_from = [\"vpn\"]\n"
        );
        let people = match crate::users::directory::parse(Path::new("users.toml"), &users) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        let new = policy(
            "[[routes]]\napp = \"billing\"\npath = \"/billing/**\"\nallow_roles = [\"biller\"]\nfrom = [\"office\"]\n",
        );
        let d = diff(&policy(""), &new, &people);
        // acme may only come from the vpn, which the new route does not allow.
        assert!(
            !d.changes
                .keys()
                .any(|w| matches!(w, Who::Person { name, .. } if name == "acme")),
            "{:?}",
            d.lines()
        );
    }

    #[test]
    fn a_route_naming_one_person_reaches_that_person_only() {
        // bo and gone share roles; bo is named (gone is terminated and left out anyway),
        // and a second biller with the same roles as bo must not be counted as bo.
        let users = format!("{USERS}[users.cy]\ndisplay_name = \"Cy\"\nroles = [\"biller\"]\n");
        let people = match crate::users::directory::parse(Path::new("users.toml"), &users) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        let new = policy(
            "[[routes]]\napp = \"billing\"\npath = \"/billing/**\"\nallow_users = [\"bo\"]\n",
        );
        assert_eq!(
            diff(&policy(""), &new, &people).lines(),
            ["bo (biller): gains GET /billing/** on billing (from any network)"]
        );
    }

    #[test]
    fn the_summary_is_bounded() {
        let new = "[[routes]]\napp = \"billing\"\npath = \"/billing/**\"\nallow_roles = [\"biller\", \"clinician\"]\n";
        let d = diff(&policy(""), &policy(new), &people());
        let full = d.summary(10_000);
        assert!(
            full.contains("dr_lee (clinician): gains GET /billing/**"),
            "{full}"
        );
        let short = d.summary(80);
        assert!(short.len() <= 80, "{short}");
        assert!(short.ends_with("(4 people and roles in all)"), "{short}");
    }
}
