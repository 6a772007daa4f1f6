//! Simulator speed: how many simulated seconds one wall second buys, all checks on.

/// The allocator `sim` ships with (sim/src/main.rs), so this bench times what `sim --reference` runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sim::options::SimConfig;

/// Simulated length of one measured run's workload. A run simulates a little more (the
/// liveness phase and the clients' last answers: 60.4 s for most seeds, 62.4 s for some), so
/// each sample's wall time is scaled to exactly this much simulated time (see `per_element`).
const SIMULATED_MS: u64 = 60_000;

/// Scales the wall time of runs that simulated `simulated_ms` in total to the wall time of
/// `runs` runs of exactly `SIMULATED_MS` each, so that criterion's elements (simulated
/// milliseconds) are the ones the runs simulated.
fn per_element(wall: Duration, runs: u64, simulated_ms: u64) -> Duration {
    wall.mul_f64((runs * SIMULATED_MS) as f64 / simulated_ms.max(1) as f64)
}

#[allow(
    clippy::disallowed_types,
    clippy::disallowed_methods,
    reason = "the benchmark reads the wall clock outside the simulation"
)]
fn simulator_speed(c: &mut Criterion) {
    use std::time::Instant;
    let mut group = c.benchmark_group("simulator");
    group.sample_size(10);
    // Elements are simulated milliseconds: elements/s / 1000 = simulated s per wall s.
    group.throughput(Throughput::Elements(SIMULATED_MS));
    group.bench_function(
        "5 nodes, 50 ms heartbeats, 100 cmd/s, 60 s simulated",
        |b| {
            let mut seed = 0;
            b.iter_custom(|runs| {
                let mut wall = Duration::ZERO;
                let mut simulated_ms = 0;
                for _ in 0..runs {
                    seed += 1;
                    let config = SimConfig::bench(seed, SIMULATED_MS);
                    let start = Instant::now();
                    let report = sim::run::run(config);
                    assert!(
                        report.ok,
                        "the reference world passes every check: {:?}",
                        report.violation
                    );
                    assert!(report.commands_committed > 0, "the workload ran");
                    simulated_ms += report.simulated_ms;
                    // Dropping the report is part of a run, as in `sim --reference`.
                    drop(report);
                    wall += start.elapsed();
                }
                per_element(wall, runs, simulated_ms)
            });
        },
    );
    group.finish();
}

criterion_group!(benches, simulator_speed);
criterion_main!(benches);
