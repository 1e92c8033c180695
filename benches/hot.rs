//! Cost of the in-process steps every request takes besides `decide` (benches/policy.rs):
//! the canonical path, reading the session cookie, the session lookup, and the audit record
//! (encoding, chaining, and the whole hand-over to the trail's writer).
//! Run: `cargo bench --bench hot`. Figures go in the README ("Performance").

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;
use ward::audit::{Audit, AuditSettings, Record, line_hash};
use ward::session::{COOKIE, MemoryStore, Session, SessionStore, Stage, cookie_value};

fn paths(c: &mut Criterion) {
    let mut group = c.benchmark_group("canonical path");
    for (name, raw) in [
        ("plain", "/ehr/patients/1001/chart"),
        ("encoded", "/ehr/patients/%31001/./chart/../chart%2Fsummary"),
    ] {
        group.bench_with_input(BenchmarkId::from_parameter(name), raw, |b, raw| {
            b.iter(|| ward::path::canonicalize(black_box(raw)))
        });
    }
    group.finish();
}

fn cookies(c: &mut Criterion) {
    // A browser that also holds an app's and an analytics script's cookies.
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::COOKIE,
        http::HeaderValue::from_static(
            "_ga=GA1.2.1234567890.1700000000; theme=dark; \
             __Host-ward-session=Q2hhcnQgb2YgcGF0aWVudCAxMDAxIGluIHRoZSBFSFI; lang=en",
        ),
    );
    c.bench_function("session cookie from the Cookie header", |b| {
        b.iter(|| cookie_value(black_box(&headers), COOKIE))
    });
}

fn sessions(c: &mut Criterion) {
    let ip: IpAddr = "10.1.2.3".parse().unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let mut group = c.benchmark_group("session lookup");
    for n in [100usize, 10_000, 100_000] {
        let store = MemoryStore::new(std::time::Duration::from_secs(24 * 3600));
        let mut cookies = Vec::with_capacity(n);
        for i in 0..n {
            let cookie = format!("cookie-{i:08}-Q2hhcnQgb2YgcGF0aWVudCAxMDAx");
            let s = Session::new(
                &format!("user{i}"),
                1,
                1_700_000_000,
                Stage::Complete,
                true,
                ip,
                "/",
            )
            .expect("randomness");
            store.insert(&cookie, Arc::new(s));
            cookies.push(cookie);
        }
        let probe = &cookies[n / 2];
        group.bench_with_input(BenchmarkId::from_parameter(n), probe, |b, probe| {
            b.iter(|| store.get(black_box(probe)))
        });
    }
    group.finish();
}

fn access_record() -> Record {
    Record::access(
        "GET",
        "ehr.riverside.example",
        "/patients/1001/chart",
        "allow",
    )
    .request_id("01JD0000000000000000000000")
    .user("dr.lee")
    .roles(["clinician"])
    .session("AbCdEfGhIjKlMnOpQrStUv")
    .client_ip("10.1.2.3".parse().unwrap_or(IpAddr::from([127, 0, 0, 1])))
    .route("ward.toml:42")
    .status(200)
    .bytes_out(18_432)
    .duration(std::time::Duration::from_micros(850))
}

fn audit(c: &mut Criterion) {
    let record = access_record();
    c.bench_function("audit record: encode as JSON", |b| {
        b.iter(|| serde_json::to_string(black_box(&record)))
    });
    let line = serde_json::to_string(&record).unwrap_or_default();
    c.bench_function("audit record: chain hash of the line", |b| {
        b.iter(|| line_hash(black_box(line.as_bytes())))
    });

    // What a request task waits for: the record handed to the writer, written to the file
    // (to the kernel), and the acknowledgement back. One task, so no batching helps it.
    let dir = tempfile::tempdir().expect("temporary folder");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let trail = Audit::open(&AuditSettings::in_dir(dir.path())).expect("audit trail");
    c.bench_function(
        "audit record: written before the answer (one request)",
        |b| b.iter(|| rt.block_on(trail.record(access_record()))),
    );
    rt.block_on(trail.shutdown());
}

criterion_group!(benches, paths, cookies, sessions, audit);
criterion_main!(benches);
