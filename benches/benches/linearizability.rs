//! The linearizability checker on a synthetic, linearizable 1,000,000-operation etcd v2 history:
//! 64 clients, 1,000 keys, overlapping operations, 1% of writes without an answer. And the
//! register model on the 103 Jepsen histories of etcd 2.0 vendored under
//! sim/checker/data/jepsen-etcd (parse and judge all of them, one iteration).

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sim::check::linearizability::{Budget, Verdict, check, synthetic_history};

/// Operations in the history.
const OPS: usize = 1_000_000;
/// Concurrent clients.
const CLIENTS: usize = 64;
/// Keys (so partitions).
const KEYS: usize = 1_000;
/// The generator's seed: fixed, so every run checks the same history.
const SEED: u64 = 0x11_2EA2;

fn linearizability(c: &mut Criterion) {
    let ops = synthetic_history(OPS, CLIENTS, KEYS, SEED);
    let mut group = c.benchmark_group("linearizability");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(OPS as u64));
    group.bench_function("check 1M ops, 64 clients, 1k keys", |b| {
        b.iter(|| {
            let report = check(&ops, Budget::UNLIMITED);
            assert_eq!(report.verdict(), Verdict::Linearizable, "{report}");
            report.steps()
        });
    });
    group.finish();
}

fn jepsen_etcd(c: &mut Criterion) {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../sim/checker/data/jepsen-etcd");
    let mut logs: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("the vendored Jepsen histories")
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let name = path.file_name()?.to_str()?.to_string();
            (name.starts_with("etcd_") && name.ends_with(".log"))
                .then(|| (name, std::fs::read_to_string(&path).expect("readable")))
        })
        .collect();
    logs.sort();
    assert_eq!(logs.len(), 103);
    let mut group = c.benchmark_group("jepsen");
    group.sample_size(20);
    group.throughput(Throughput::Elements(logs.len() as u64));
    group.bench_function("judge all 103 etcd histories", |b| {
        b.iter(|| {
            (logs.iter())
                .map(|(name, text)| {
                    let found = sim::check::jepsen::check(text, Budget::UNLIMITED)
                        .unwrap_or_else(|e| panic!("{name}: {e}"));
                    assert_ne!(found.verdict, Verdict::Unknown, "{name}");
                    found.steps
                })
                .sum::<u64>()
        });
    });
    group.finish();
}

criterion_group!(benches, linearizability, jepsen_etcd);
criterion_main!(benches);
