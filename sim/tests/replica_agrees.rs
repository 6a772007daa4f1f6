//! The checker's replica (`checker::replica`, written from the spec) and the engine's store agree
//! on every answer, command by command, over long random command sequences that reach every
//! decision-table row: directories, files below files, the root, refreshes, in-order keys, TTLs
//! and expiry ticks. The simulator's state-machine check trusts the replica, so a disagreement
//! here is a bug in one of them; the spec decides which.

use engine::store::{Command, Store};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sim::check::replica::{Outcome, Replica};
use sim::observe;

const KEYS: [&str; 10] = [
    "/", "/a", "/a/b", "/a/b/c", "/d", "/d/x", "/d/y/z", "/_h", "/_h/k", "/q",
];
const VALUES: [&str; 3] = ["", "v0", "v1"];

fn pick<'a>(rng: &mut ChaCha8Rng, from: &[&'a str]) -> &'a str {
    from[rng.gen_range(0..from.len())]
}

fn expiry(rng: &mut ChaCha8Rng, now_ms: u64) -> Option<u64> {
    rng.gen_bool(0.4)
        .then(|| now_ms + rng.gen_range(0..3) * 100)
}

fn prev_index(rng: &mut ChaCha8Rng, index: u64) -> Option<u64> {
    rng.gen_bool(0.5)
        .then(|| index.saturating_sub(rng.gen_range(0..4)).max(1))
}

fn command(rng: &mut ChaCha8Rng, now_ms: u64, index: u64) -> Command {
    let key = pick(rng, &KEYS).to_string();
    let value = pick(rng, &VALUES).to_string();
    let expire_at_ms = expiry(rng, now_ms);
    let prev_value = rng
        .gen_bool(0.7)
        .then(|| pick(rng, &VALUES[1..]).to_string());
    match rng.gen_range(0..9) {
        0 => Command::Set {
            key,
            dir: rng.gen_bool(0.2),
            value,
            expire_at_ms,
            refresh: rng.gen_bool(0.15),
        },
        1 => Command::Create {
            key,
            dir: rng.gen_bool(0.3),
            value,
            expire_at_ms,
        },
        2 => Command::CreateInOrder {
            dir_key: pick(rng, &["/", "/q", "/a", "/d/y"]).to_string(),
            dir: rng.gen_bool(0.2),
            value,
            expire_at_ms,
        },
        3 => Command::Update {
            key,
            value,
            expire_at_ms,
            refresh: rng.gen_bool(0.2),
        },
        4 => Command::CompareAndSwap {
            key,
            value,
            prev_index: prev_index(rng, index).or(prev_value.is_none().then_some(1)),
            prev_value,
            expire_at_ms,
            refresh: rng.gen_bool(0.15),
        },
        5 => Command::Delete {
            key,
            dir: rng.gen_bool(0.5),
            recursive: rng.gen_bool(0.3),
        },
        6 => Command::CompareAndDelete {
            key,
            prev_index: prev_index(rng, index).or(prev_value.is_none().then_some(1)),
            prev_value,
        },
        _ => Command::Expire { now_ms },
    }
}

/// What both sides are compared on: per event, everything the checks read and more.
type Summary = Result<Vec<(u64, String, String, bool, Option<String>, u64, u64, bool)>, u16>;

fn engine_summary(store: &mut Store, command: &Command) -> Summary {
    match store.apply(command) {
        Ok(applied) => Ok(applied
            .events()
            .iter()
            .map(|e| {
                (
                    e.index,
                    e.action.as_str().to_string(),
                    e.node.key.clone(),
                    e.node.dir,
                    e.node.value.clone(),
                    e.node.modified_index,
                    e.node.created_index,
                    e.refresh,
                )
            })
            .collect()),
        Err(e) => Err(e.code.number()),
    }
}

fn replica_summary(outcome: Outcome) -> Summary {
    match outcome {
        Ok(events) => Ok(events
            .into_iter()
            .map(|e| {
                (
                    e.index,
                    e.action.as_str().to_string(),
                    e.key,
                    e.dir,
                    e.value,
                    e.modified_index,
                    e.created_index,
                    e.refresh,
                )
            })
            .collect()),
        Err(refused) => Err(refused.code),
    }
}

#[test]
fn replica_and_engine_store_answer_alike() {
    let mut successes = 0;
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..200u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut store = Store::new();
        let mut replica = Replica::new();
        let mut now_ms = 1_000;
        for step in 0..400 {
            now_ms += rng.gen_range(0..60);
            let command = command(&mut rng, now_ms, replica.index());
            let expected = engine_summary(&mut store, &command);
            let got = replica_summary(replica.apply_command(&observe::command(command.clone())));
            assert_eq!(
                got, expected,
                "seed {seed} step {step}: {command:?}: replica (left) and engine store (right) differ"
            );
            assert_eq!(replica.index(), store.index());
            successes += u64::from(expected.is_ok());
            match &expected {
                Ok(events) => seen.extend(events.iter().map(|e| format!("{} {}", e.1, e.7))),
                Err(code) => {
                    seen.insert(code.to_string());
                }
            }
        }
    }
    assert!(
        successes > 10_000,
        "too few successful commands: {successes}"
    );
}
