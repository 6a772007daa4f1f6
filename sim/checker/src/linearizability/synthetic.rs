//! A synthetic, linearizable etcd v2 history, for tests and the checker's benchmark.
//!
//! Each client runs one operation at a time: it thinks up to `THINK_US_MAX`, invokes, and the
//! answer comes `LATENCY_US` later. Every operation takes effect at a point drawn inside its
//! interval; operations are applied to a sequential in-memory store in the order of those
//! points, which gives the answers. So the history is linearizable by construction, and the
//! intervals of different clients overlap. Some writes lose their answer (`Ret::Unknown`, the
//! client gives up after `TIMEOUT_US`); half of those took effect.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ops::RangeInclusive;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::history::{Call, Op, Ret};

/// Longest pause between an answer and the client's next invocation.
const THINK_US_MAX: u64 = 50;
/// From invocation to answer.
const LATENCY_US: RangeInclusive<u64> = 20..=2_000;
/// When a client whose write got no answer gives up, after invoking it.
const TIMEOUT_US: u64 = 10_000;

/// A client's next operation: when it takes effect, and its interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Planned {
    effect_us: u64,
    client: u64,
    invoke_us: u64,
    complete_us: u64,
}

impl Planned {
    fn draw(rng: &mut ChaCha8Rng, client: u64, free_us: u64) -> Planned {
        let invoke_us = free_us + rng.gen_range(1..=THINK_US_MAX);
        let latency_us = rng.gen_range(LATENCY_US);
        Planned {
            effect_us: invoke_us + rng.gen_range(0..=latency_us),
            client,
            invoke_us,
            complete_us: invoke_us + latency_us,
        }
    }
}

/// The sequential store: each file's value and `modifiedIndex`, and the store index.
struct Store {
    files: Vec<Option<(String, u64)>>,
    index: u64,
}

impl Store {
    /// Draws the next call on `key` (slot `slot`); its new value, if any, is `v{n}`.
    fn draw_call(&self, rng: &mut ChaCha8Rng, key: &str, slot: usize, n: usize) -> Call {
        let key = key.to_string();
        let value = format!("v{n}");
        match rng.gen_range(0..100u32) {
            0..40 => Call::Get { key, quorum: true },
            40..60 => Call::Set {
                key,
                value,
                expire_at_us: None,
            },
            60..70 => Call::Create { key, value },
            70..75 => Call::Update { key, value },
            75..90 => {
                let (prev_value, prev_index) = match &self.files[slot] {
                    Some((current, index)) => match rng.gen_range(0..100u32) {
                        0..60 => (Some(current.clone()), None),
                        60..80 => (None, Some(*index)),
                        _ => (Some(format!("v{}", rng.gen_range(0..=n))), None),
                    },
                    None => (Some("v0".to_string()), None),
                };
                Call::Cas {
                    key,
                    value,
                    prev_value,
                    prev_index,
                }
            }
            _ => Call::Delete { key },
        }
    }

    /// Applies `call` to file `slot` and answers as etcd v2 would.
    fn apply(&mut self, call: &Call, slot: usize) -> Ret {
        let key = call.key().to_string();
        let file = self.files[slot].as_ref();
        match call {
            Call::Get { .. } => match file {
                Some((value, modified_index)) => Ret::Ok {
                    index: self.index,
                    action: "get".to_string(),
                    key,
                    value: Some(value.clone()),
                    modified_index: *modified_index,
                },
                None => Ret::Err { code: 100 },
            },
            Call::Set { value, .. } => self.put(slot, key, value, "set"),
            Call::Create { value, .. } if file.is_none() => self.put(slot, key, value, "create"),
            Call::Create { .. } => Ret::Err { code: 105 },
            Call::Update { value, .. } if file.is_some() => self.put(slot, key, value, "update"),
            Call::Cas {
                value,
                prev_value,
                prev_index,
                ..
            } => match file {
                None => Ret::Err { code: 100 },
                Some((current, index))
                    if prev_value.as_ref().is_some_and(|p| p != current)
                        || prev_index.is_some_and(|p| p != *index) =>
                {
                    Ret::Err { code: 101 }
                }
                Some(_) => self.put(slot, key, value, "compareAndSwap"),
            },
            Call::Delete { .. } if file.is_some() => {
                self.index += 1;
                self.files[slot] = None;
                Ret::Ok {
                    index: self.index,
                    action: "delete".to_string(),
                    key,
                    value: None,
                    modified_index: self.index,
                }
            }
            Call::Update { .. } | Call::Delete { .. } => Ret::Err { code: 100 },
            _ => unreachable!("the generator draws no {call:?}"),
        }
    }

    fn put(&mut self, slot: usize, key: String, value: &str, action: &str) -> Ret {
        self.index += 1;
        self.files[slot] = Some((value.to_string(), self.index));
        Ret::Ok {
            index: self.index,
            action: action.to_string(),
            key,
            value: Some(value.to_string()),
            modified_index: self.index,
        }
    }
}

/// A linearizable history of `ops` operations by `clients` clients over `keys` keys
/// (`/k00000`...): 40% quorum gets, 20% sets, 10% creates, 5% updates, 15% compare-and-swaps,
/// 10% deletes; 1% of the writes lose their answer. The same arguments always give the same
/// history.
///
/// # Panics
/// If `clients` or `keys` is 0.
pub fn synthetic_history(ops: usize, clients: usize, keys: usize, seed: u64) -> Vec<Op> {
    synthetic_history_with_losses(ops, clients, keys, 1, seed)
}

/// `synthetic_history`, with `lost_percent`% of the writes losing their answer (half of those
/// took effect).
///
/// # Panics
/// If `clients` or `keys` is 0, or `lost_percent` is over 100.
pub fn synthetic_history_with_losses(
    ops: usize,
    clients: usize,
    keys: usize,
    lost_percent: u32,
    seed: u64,
) -> Vec<Op> {
    assert!(lost_percent <= 100, "a percentage");
    assert!(clients > 0, "a history needs a client");
    assert!(keys > 0, "a history needs a key");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let names: Vec<String> = (0..keys).map(|k| format!("/k{k:05}")).collect();
    let mut store = Store {
        files: vec![None; keys],
        index: 0,
    };
    let mut planned: BinaryHeap<Reverse<Planned>> = (0..clients as u64)
        .map(|client| Reverse(Planned::draw(&mut rng, client, 0)))
        .collect();
    let mut history = Vec::with_capacity(ops);
    while history.len() < ops {
        let Reverse(mut next) = planned.pop().expect("every client has a planned operation");
        let slot = rng.gen_range(0..keys);
        let call = store.draw_call(&mut rng, &names[slot], slot, history.len() + 1);
        let lost = call.is_write() && rng.gen_ratio(lost_percent, 100);
        let ret = if !lost {
            store.apply(&call, slot)
        } else {
            if rng.gen_bool(0.5) {
                store.apply(&call, slot);
            }
            next.complete_us = next.complete_us.max(next.invoke_us + TIMEOUT_US);
            Ret::Unknown
        };
        assert!(
            next.invoke_us <= next.effect_us,
            "effect inside the interval"
        );
        assert!(
            next.effect_us <= next.complete_us,
            "effect inside the interval"
        );
        history.push(Op {
            id: history.len() as u64 + 1,
            client: next.client,
            node: 0,
            invoke_us: next.invoke_us,
            complete_us: next.complete_us,
            call,
            ret,
        });
        planned.push(Reverse(Planned::draw(
            &mut rng,
            next.client,
            next.complete_us,
        )));
    }
    history
}
