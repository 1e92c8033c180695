//! Cost of `policy::decide` as the number of routes grows (10 … 10,000).
//! Run: `cargo bench --bench policy`. Figures go in the README.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::Method;
use std::hint::black_box;
use std::path::Path;
use ward::config::{Certs, load_str};
use ward::policy::{Facts, Identity, decide};

fn policy_with(routes: usize) -> ward::policy::Policy {
    let mut text = String::from(
        "practice = \"Bench\"\n[networks]\noffice = [\"10.0.0.0/8\"]\n[roles]\nclinician = {}\nbiller = {}\n\
         [[apps]]\nname = \"ehr\"\nupstream = \"http://127.0.0.1:9\"\n",
    );
    for i in 0..routes {
        // A mix of shapes: deep literals, one-segment wildcards, trailing globstars.
        let path = match i % 3 {
            0 => format!("/dept{i}/patients/*/chart"),
            1 => format!("/dept{i}/billing/**"),
            _ => format!("/dept{i}/reports/{i}/export"),
        };
        text.push_str(&format!(
            "[[routes]]\napp = \"ehr\"\npath = \"{path}\"\nallow_roles = [\"clinician\"]\nfrom = [\"office\"]\n"
        ));
    }
    match load_str(Path::new("bench.toml"), &text, Certs::Skip) {
        Ok(l) => l.policy,
        Err(d) => panic!("{d}"),
    }
}

fn bench(c: &mut Criterion) {
    let who = Identity {
        user: "dr.lee".into(),
        roles: vec!["clinician".into()],
        allow_from: None,
        mfa: true,
        passkey: true,
        emergency: false,
        vendor: false,
        device_required: false,
        export_grants: Vec::new(),
        access_grants: Vec::new(),
    };
    let mut group = c.benchmark_group("decide");
    for n in [10usize, 100, 1_000, 10_000] {
        let policy = policy_with(n);
        let path = format!("/dept{}/patients/1001/chart", (n / 2) - (n / 2) % 3);
        let facts = Facts {
            client_ip: "10.1.2.3".parse().unwrap(),
            method: &Method::GET,
            host: "ehr.example",
            path: &path,
            identity: Some(&who),
            device: false,
            device_people: &[],
            device_revoked: false,
            query: &[],
            form: &[],
        };
        assert_eq!(
            decide(&facts, &policy).verdict,
            ward::policy::Verdict::Allow
        );
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| decide(black_box(&facts), black_box(&policy)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
