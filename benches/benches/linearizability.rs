//! The linearizability checker on a synthetic, linearizable 1,000,000-operation etcd v2 history:
//! 64 clients, 1,000 keys, overlapping operations, 1% of writes without an answer.

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

criterion_group!(benches, linearizability);
criterion_main!(benches);
