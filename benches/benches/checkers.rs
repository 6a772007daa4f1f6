//! The linear-time history checkers (index rules, locks, watches) on large synthetic histories.
//! Goal: at least 100,000 operations per second each.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use engine::store::{Command, Store};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sim::check::history::{Call, Op, Ret};
use sim::check::index::check_index;
use sim::check::linearizability::synthetic_history;
use sim::check::locks::check_locks;
use sim::check::watch::{CommittedEvent, check_watches};

const OPS: usize = 1_000_000;

/// A lock history: holdings one after another, each with a higher token.
fn lock_history(n: usize) -> Vec<Op> {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut t = 0;
    (0..n as u64)
        .map(|id| {
            let from = t + rng.gen_range(1..100);
            let to = from + rng.gen_range(1..100);
            t = to;
            Op {
                id,
                client: id % 64,
                node: 1,
                invoke_us: from - 1,
                complete_us: to + 1,
                call: Call::Lock {
                    name: "w".into(),
                    hold_from_us: from,
                    hold_to_us: to,
                },
                ret: Ret::Ok {
                    index: id + 1,
                    action: "lock".into(),
                    key: "w".into(),
                    value: None,
                    modified_index: id + 1,
                },
            }
        })
        .collect()
}

/// Committed sets over 1,000 keys, and one watch per event that names exactly that event.
fn watch_history(n: usize) -> (Vec<Op>, Vec<CommittedEvent>) {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let mut store = Store::default();
    let mut events = Vec::with_capacity(n);
    for i in 0..n {
        let command = Command::Set {
            key: format!("/k{}", rng.gen_range(0..1000)),
            dir: false,
            value: i.to_string(),
            expire_at_ms: None,
            refresh: false,
        };
        let applied = store.apply(&command).expect("a set applies");
        for event in applied.events() {
            events.push(sim::observe::event(i as u64, event));
        }
    }
    let ops = events
        .iter()
        .enumerate()
        .map(|(id, e)| Op {
            id: id as u64,
            client: id as u64 % 64,
            node: 1,
            invoke_us: e.at_us,
            complete_us: e.at_us + 1,
            call: Call::Watch {
                key: e.key.clone(),
                recursive: false,
                wait_index: e.index,
            },
            ret: Ret::Ok {
                index: e.index,
                action: e.action.clone(),
                key: e.key.clone(),
                value: None,
                modified_index: e.index,
            },
        })
        .collect();
    (ops, events)
}

fn checkers(c: &mut Criterion) {
    let history = synthetic_history(OPS, 64, 1000, 0x11_2EA2);
    let locks = lock_history(OPS);
    let (watches, events) = watch_history(OPS / 10);
    let mut group = c.benchmark_group("checkers");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(OPS as u64));
    group.bench_function("index rules, 1M ops", |b| {
        b.iter(|| check_index(&history).expect("the synthetic history keeps the rules"));
    });
    group.bench_function("locks, 1M holdings", |b| {
        b.iter(|| check_locks(&locks).expect("disjoint holdings"));
    });
    group.throughput(Throughput::Elements((OPS / 10) as u64));
    group.bench_function("watches, 100k watches", |b| {
        b.iter(|| check_watches(&watches, &events).expect("exact events"));
    });
    group.finish();
}

criterion_group!(benches, checkers);
criterion_main!(benches);
