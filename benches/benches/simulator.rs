//! Simulator speed: how many simulated seconds one wall second buys, all checks on.

/// The allocator `sim` ships with (sim/src/main.rs), so this bench times what `sim --reference` runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sim::options::SimConfig;

/// Simulated length of one measured run.
const SIMULATED_MS: u64 = 60_000;

fn simulator_speed(c: &mut Criterion) {
    let mut group = c.benchmark_group("simulator");
    group.sample_size(10);
    // Elements are simulated milliseconds: elements/s / 1000 = simulated s per wall s.
    group.throughput(Throughput::Elements(SIMULATED_MS));
    group.bench_function(
        "5 nodes, 50 ms heartbeats, 100 cmd/s, 60 s simulated",
        |b| {
            let mut seed = 0;
            b.iter(|| {
                seed += 1;
                let report = sim::run::run(SimConfig::bench(seed, SIMULATED_MS));
                assert!(
                    report.ok,
                    "the reference world passes every check: {:?}",
                    report.violation
                );
                assert!(report.commands_committed > 0, "the workload ran");
                report.simulated_ms
            });
        },
    );
    group.finish();
}

criterion_group!(benches, simulator_speed);
criterion_main!(benches);
