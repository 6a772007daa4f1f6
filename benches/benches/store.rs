//! The etcd v2 store: apply and read throughput on a 100,000-key tree, directly and through the
//! replicated path (`KvMachine::apply`: JSON decode + apply), and watch fan-out to 1,000 watchers.

use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use engine::raft::{Entry, EntryKind, Index, Term};
use engine::server::{KvMachine, KvWatch, StateMachine};
use engine::store::{Action, Command, Store};

/// Directories in the benchmark tree.
const DIRS: usize = 100;
/// Files per directory.
const KEYS_PER_DIR: usize = 1_000;
/// Files in the benchmark tree.
const KEYS: usize = DIRS * KEYS_PER_DIR;
/// Step of the deterministic walk over the keys: odd and not a multiple of 5, so coprime with
/// `KEYS` (2^5 * 5^5) and every pass of `KEYS` steps visits each key exactly once.
const STRIDE: usize = 7_919;

/// The key of file `i`: `/dir042/key00731` for `i = 42_731`.
fn key_name(i: usize) -> String {
    format!("/dir{:03}/key{:05}", i / KEYS_PER_DIR, i % KEYS_PER_DIR)
}

/// The file visited at step `n` of the walk, and which pass over the tree step `n` is in.
fn walk(n: u64) -> (usize, u64) {
    let keys = KEYS as u64;
    let i = ((n % keys) * STRIDE as u64 % keys) as usize;
    (i, n / keys)
}

/// Returns walk step `*n` and advances the counter. Steps start at 0, so pass `p` is exactly
/// steps `p * KEYS .. (p + 1) * KEYS` and visits every key once.
fn step(n: &mut u64) -> u64 {
    *n += 1;
    *n - 1
}

/// The value every file holds after `pass` full compare-and-swap passes.
fn generation(pass: u64) -> String {
    format!("g{pass}")
}

fn set(key: &str, value: String) -> Command {
    Command::Set {
        key: key.to_string(),
        dir: false,
        value,
        expire_at_ms: None,
        refresh: false,
    }
}

/// A successful compare-and-swap for walk step `n`, given every file started at generation 0.
fn cas(keys: &[String], n: u64) -> Command {
    let (i, pass) = walk(n);
    Command::CompareAndSwap {
        key: keys[i].clone(),
        value: generation(pass + 1),
        prev_value: Some(generation(pass)),
        prev_index: None,
        expire_at_ms: None,
        refresh: false,
    }
}

fn entry(index: u64, command: &Command) -> Entry {
    Entry {
        term: Term(1),
        index: Index(index),
        kind: EntryKind::Command(command.encode().into()),
    }
}

/// `KEYS` files, all at generation 0, and their names.
fn tree() -> (Store, Vec<String>) {
    let keys: Vec<String> = (0..KEYS).map(key_name).collect();
    let mut store = Store::new();
    for key in &keys {
        store
            .apply(&set(key, generation(0)))
            .expect("set builds the tree");
    }
    assert_eq!(
        store.node_count(),
        KEYS + DIRS,
        "files plus their directories"
    );
    (store, keys)
}

fn store_ops(c: &mut Criterion) {
    let (base, keys) = tree();
    let mut group = c.benchmark_group("store 100k keys");
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(1));

    // Commands are built in the untimed setup: only `Store::apply` is measured.
    let (mut store, mut n) = (base.clone(), 0);
    group.bench_function("Store::apply set (replace)", |b| {
        b.iter_batched(
            || {
                let n = step(&mut n);
                set(&keys[walk(n).0], format!("s{n}"))
            },
            |command| store.apply(&command).expect("set succeeds"),
            BatchSize::SmallInput,
        );
    });

    let (store, mut n) = (base.clone(), 0);
    group.bench_function("Store::get file", |b| {
        b.iter(|| {
            store
                .get(&keys[walk(step(&mut n)).0], false, false)
                .expect("the key exists")
        });
    });

    let (mut store, mut n) = (base.clone(), 0);
    group.bench_function("Store::apply compareAndSwap (prevValue)", |b| {
        b.iter_batched(
            || cas(&keys, step(&mut n)),
            |command| {
                let applied = store.apply(&command).expect("the compare succeeds");
                assert_eq!(applied.events()[0].action, Action::CompareAndSwap);
                applied
            },
            BatchSize::SmallInput,
        );
    });

    // The replicated path: entries are encoded in the untimed setup; decode + apply is measured.
    let (mut machine, mut n) = (KvMachine::new(base.clone()), 0);
    group.bench_function("KvMachine::apply set (decode + apply)", |b| {
        b.iter_batched(
            || {
                let n = step(&mut n);
                entry(n + 1, &set(&keys[walk(n).0], format!("s{n}")))
            },
            |entry| machine.apply(&entry).expect("set succeeds"),
            BatchSize::SmallInput,
        );
    });

    let (mut machine, mut n) = (KvMachine::new(base), 0);
    group.bench_function("KvMachine::apply compareAndSwap (decode + apply)", |b| {
        b.iter_batched(
            || {
                let n = step(&mut n);
                entry(n + 1, &cas(&keys, n))
            },
            |entry| machine.apply(&entry).expect("the compare succeeds"),
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

/// The written key, and the watchers: which ones must fire.
const TARGET: &str = "/dir042/key00731";
const EXACT: usize = 500;
const PARENT: usize = 300;
const UNRELATED: usize = 200;
const WATCHERS: usize = EXACT + PARENT + UNRELATED;

/// `EXACT` watches on the key (half recursive), `PARENT` recursive watches on its directory, then
/// `UNRELATED` that must stay quiet: siblings, other directories, a mere string prefix of the
/// parent (`/dir04`), and the parent without `recursive`.
fn watchers() -> Vec<KvWatch> {
    let watch = |key: String, recursive: bool| KvWatch {
        key,
        recursive,
        wait_index: 0,
    };
    let mut watches = Vec::with_capacity(WATCHERS);
    watches.extend((0..EXACT).map(|i| watch(TARGET.to_string(), i % 2 == 1)));
    watches.extend((0..PARENT).map(|_| watch("/dir042".to_string(), true)));
    watches.extend((0..100).map(|i| watch(key_name(42_000 + i), i % 2 == 1)));
    watches.extend((0..50).map(|i| watch(format!("/dir{:03}", 43 + i), true)));
    watches.extend((0..25).map(|_| watch("/dir04".to_string(), true)));
    watches.extend((0..25).map(|_| watch("/dir042".to_string(), false)));
    assert_eq!(watches.len(), WATCHERS);
    watches
}

/// Applies one write and polls every watch, as the node loop does after an applied batch.
/// Returns the positions of the watches that fired.
fn write_and_poll(machine: &mut KvMachine, write: &Entry, watches: &mut [KvWatch]) -> Vec<usize> {
    let wait_index = machine.store().index() + 1;
    for watch in watches.iter_mut() {
        watch.wait_index = wait_index;
    }
    machine.apply(write).expect("set succeeds");
    let mut fired = Vec::with_capacity(EXACT + PARENT);
    for (i, watch) in watches.iter().enumerate() {
        if let Some(answer) = machine.poll_watch(watch) {
            let event = answer.expect("the history holds the write");
            assert_eq!(event.index, wait_index, "the watch reports the write");
            fired.push(i);
        }
    }
    fired
}

fn watch_fan_out(c: &mut Criterion) {
    let (store, _) = tree();
    let mut machine = KvMachine::new(store);
    let write = entry(1, &set(TARGET, "w".to_string()));
    let mut watches = watchers();

    // Once, before measuring: exactly the first EXACT + PARENT watches fire.
    let fired = write_and_poll(&mut machine, &write, &mut watches);
    let expected: Vec<usize> = (0..EXACT + PARENT).collect();
    assert_eq!(
        fired, expected,
        "the exact and parent watches fire, no other"
    );

    let mut group = c.benchmark_group("store watch fan-out");
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    // Elements are watcher polls: time per iteration is one write fanned out to all of them.
    group.throughput(Throughput::Elements(WATCHERS as u64));
    group.bench_function(
        "1 write + poll 1000 watchers (500 exact, 300 parent, 200 quiet)",
        |b| {
            b.iter(|| {
                let fired = write_and_poll(&mut machine, &write, &mut watches);
                assert_eq!(fired.len(), EXACT + PARENT, "800 fire, 200 stay quiet");
                fired
            });
        },
    );
    group.finish();
}

criterion_group!(benches, store_ops, watch_fan_out);
criterion_main!(benches);
