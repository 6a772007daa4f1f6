//! The sequential model of the etcd v2 store, for one partition of a history, and the
//! compilation of a partition's operations into its inputs.
//!
//! Each key of the partition is absent or present (a file: value, `modifiedIndex` if known,
//! TTL deadline). Each key also carries `last_index`, a lower bound on the indexes its next
//! write may get: writes to one key get increasing indexes in linearization order, because the
//! store assigns them in commit order. Expiry is nondeterministic: a key whose deadline is at or
//! before the end of the operation touching it may or may not have expired by then (the leader
//! removes expired keys by a `SYNC`-like entry, later than the deadline). Once seen absent it
//! stays absent until written again. Keys are compared as written; values are interned.

use std::collections::{BTreeMap, BTreeSet};

use super::memo::fingerprint;
use super::wgl::{Event, Model};
use crate::history::{Call, Op, Ret};

/// A key's `modifiedIndex`, as far as the linearization so far tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum NodeIndex {
    /// Answered by the write or pinned by a read.
    Known(u64),
    /// Written by a write whose answer was lost: some index above this one. The first read
    /// that returns the node pins it.
    Above(u64),
}

/// A present file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Node {
    value: u32,
    index: NodeIndex,
    expire_at_us: Option<u64>,
}

/// One key of the partition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct KeyState {
    node: Option<Node>,
    /// Invariant: every write linearized from here on gets a higher index.
    last_index: u64,
}

/// What a write requires of its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Guard {
    /// Set.
    Any,
    /// Create (`prevExist=false`).
    Absent,
    /// Update (`prevExist=true`), Delete.
    Present,
    /// Cas, Cad: present, and the value and/or index match.
    Compare {
        value: Option<u32>,
        index: Option<u64>,
    },
}

/// What a write does when its guard holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Effect {
    Put {
        value: u32,
        expire_at_us: Option<u64>,
    },
    /// The value stays; the index and the deadline move (`refresh=true`).
    Refresh {
        expire_at_us: Option<u64>,
    },
    Remove,
}

/// How a write ended, reduced to what constrains the model. Error codes that constrain
/// nothing (102 not a file, 104 not a directory, 300 raft internal...) never get here: such
/// operations did nothing and could have done it in any state, so they are dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Succeeded, with its `modifiedIndex` if the answer gave a usable one.
    Ok(Option<u64>),
    /// No answer: took effect (with an index we do not know) or never did.
    Unknown,
    /// Error 100: the key was absent.
    NotFound,
    /// Error 105: the key was present.
    Exists,
    /// Error 101: the key was present and the comparison failed.
    CompareFailed,
}

/// What a read saw of one key: (value, `modifiedIndex` if non-zero), or `None` if absent.
type Seen = Option<(u32, Option<u64>)>;

/// One judged operation, on the partition's key slots.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Action {
    /// A quorum GET: `seen` is (value, `modifiedIndex` if non-zero), or `None` for error 100.
    Read {
        slot: u32,
        seen: Option<(u32, Option<u64>)>,
    },
    /// A write to one file.
    Write {
        slot: u32,
        guard: Guard,
        effect: Effect,
        outcome: Outcome,
    },
    /// A recursive directory delete: `slots` are the keys under the directory.
    RemoveSubtree { slots: Vec<u32>, outcome: Outcome },
    /// A quorum recursive listing: every key of the partition under the directory, as seen
    /// (as `Read`'s `seen`).
    ReadMany { reads: Vec<(u32, Seen)> },
}

/// A model input: the action and when it completed (`u64::MAX` if it never returned), for
/// expiry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Input {
    action: Action,
    complete_us: u64,
    /// No state changes but pins of unknown indexes (which `dominates` allows): reads that
    /// saw a value, and, if no key of the partition has a TTL (so no key may expire), every
    /// answer that changed nothing.
    read_only: bool,
}

/// The store restricted to one partition's keys.
#[derive(Clone, Copy, Debug)]
pub(super) struct EtcdModel {
    keys: usize,
}

impl Model for EtcdModel {
    type Input = Input;
    type State = Vec<KeyState>;

    fn init(&self) -> Vec<KeyState> {
        vec![KeyState::default(); self.keys]
    }

    fn is_read_only(&self, input: &Input) -> bool {
        input.read_only
    }

    /// A key's chain is its slot; with `last_index` L, a write needs an index above L (key at
    /// least 2L + 2) and a read can see index L at the lowest (key 2L + 1).
    fn chain_floor(&self, state: &Vec<KeyState>, chain: u32) -> u64 {
        (state[chain as usize].last_index)
            .saturating_mul(2)
            .saturating_add(1)
    }

    fn shape(&self, state: &Vec<KeyState>) -> u64 {
        let files: Vec<Option<(u32, Option<u64>)>> = (state.iter())
            .map(|key| key.node.map(|node| (node.value, node.expire_at_us)))
            .collect();
        fingerprint(&files)
    }

    fn dominates(&self, a: &Vec<KeyState>, b: &Vec<KeyState>) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(a, b)| key_dominates(*a, *b))
    }

    fn step(&self, state: &Vec<KeyState>, input: &Input, next: &mut Vec<Vec<KeyState>>) {
        let slot = match &input.action {
            Action::Read { slot, .. } | Action::Write { slot, .. } => *slot as usize,
            Action::RemoveSubtree { slots, outcome } => {
                next.extend(remove_subtree(state, slots, *outcome, input.complete_us));
                return;
            }
            Action::ReadMany { reads } => {
                read_many(state, reads, input.complete_us, next);
                return;
            }
        };
        for view in views(state[slot], input.complete_us).into_iter().flatten() {
            if let Some(after) = apply(view, &input.action) {
                let mut changed = state.clone();
                changed[slot] = after;
                next.push(changed);
            }
        }
    }
}

/// True if key `a` allows every future key `b` allows: the same file (or none), with a bound
/// on the next index no higher, and an index that is the same or unknown above a floor no
/// higher (an unknown index may turn out to be any index above its floor).
fn key_dominates(a: KeyState, b: KeyState) -> bool {
    if a.last_index > b.last_index {
        return false;
    }
    match (a.node, b.node) {
        (None, None) => true,
        (Some(x), Some(y)) => {
            x.value == y.value
                && x.expire_at_us == y.expire_at_us
                && match (x.index, y.index) {
                    (NodeIndex::Known(p), NodeIndex::Known(q)) => p == q,
                    (NodeIndex::Above(p), NodeIndex::Above(q)) => p <= q,
                    (NodeIndex::Above(p), NodeIndex::Known(q)) => p < q,
                    (NodeIndex::Known(_), NodeIndex::Above(_)) => false,
                }
        }
        (None, Some(_)) | (Some(_), None) => false,
    }
}

/// The key as the operation may find it: as it is, and also expired if its deadline is at or
/// before `complete_us`.
fn views(key: KeyState, complete_us: u64) -> [Option<KeyState>; 2] {
    let expirable = key
        .node
        .and_then(|node| node.expire_at_us)
        .is_some_and(|at| at <= complete_us);
    let expired = KeyState {
        node: None,
        last_index: key.last_index,
    };
    [Some(key), expirable.then_some(expired)]
}

/// The key after `action` in `key`, or `None` if the recorded answer is impossible there.
fn apply(key: KeyState, action: &Action) -> Option<KeyState> {
    match *action {
        Action::Read { seen: None, .. } => key.node.is_none().then_some(key),
        Action::Read {
            seen: Some((value, index)),
            ..
        } => read_value(key, value, index),
        Action::Write {
            guard,
            effect,
            outcome,
            ..
        } => match outcome {
            Outcome::NotFound => key.node.is_none().then_some(key),
            Outcome::Exists => key.node.is_some().then_some(key),
            Outcome::CompareFailed => {
                (key.node.is_some() && compare(key, guard) != Compare::Match).then_some(key)
            }
            Outcome::Ok(index) => commit(admit(key, guard)?, effect, index),
            Outcome::Unknown => commit(admit(key, guard)?, effect, None),
        },
        Action::RemoveSubtree { .. } | Action::ReadMany { .. } => {
            unreachable!("multi-key actions are applied by step")
        }
    }
}

/// Every state a listing's reads allow from `state`: each key read as `Read` reads it (each
/// may also have expired by then), all at one instant.
fn read_many(
    state: &[KeyState],
    reads: &[(u32, Seen)],
    complete_us: u64,
    next: &mut Vec<Vec<KeyState>>,
) {
    let mut partial = vec![state.to_vec()];
    for &(slot, seen) in reads {
        let mut grown = Vec::new();
        for candidate in &partial {
            let read = Action::Read { slot, seen };
            for view in views(candidate[slot as usize], complete_us)
                .into_iter()
                .flatten()
            {
                if let Some(after) = apply(view, &read) {
                    let mut changed = candidate.clone();
                    changed[slot as usize] = after;
                    grown.push(changed);
                }
            }
        }
        partial = grown;
        if partial.is_empty() {
            return;
        }
    }
    next.extend(partial);
}

/// A read of `value` (with `index` if the answer gave one): pins an unknown index.
fn read_value(key: KeyState, value: u32, index: Option<u64>) -> Option<KeyState> {
    let node = key.node?;
    if node.value != value {
        return None;
    }
    match (index, node.index) {
        (None, _) => Some(key),
        (Some(seen), NodeIndex::Known(known)) => (seen == known).then_some(key),
        (Some(seen), NodeIndex::Above(floor)) => (seen > floor).then_some(KeyState {
            node: Some(Node {
                index: NodeIndex::Known(seen),
                ..node
            }),
            last_index: key.last_index.max(seen),
        }),
    }
}

/// How a present key compares with a Cas/Cad condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Compare {
    Match,
    Mismatch,
    /// The value matches and the index condition names an index the node may have (its own
    /// is unknown): both outcomes are possible.
    Maybe,
}

fn compare(key: KeyState, guard: Guard) -> Compare {
    let (Some(node), Guard::Compare { value, index }) = (key.node, guard) else {
        return Compare::Match;
    };
    if value.is_some_and(|value| value != node.value) {
        return Compare::Mismatch;
    }
    match (index, node.index) {
        (None, _) => Compare::Match,
        (Some(wanted), NodeIndex::Known(known)) if wanted == known => Compare::Match,
        (Some(wanted), NodeIndex::Above(floor)) if wanted > floor => Compare::Maybe,
        (Some(_), _) => Compare::Mismatch,
    }
}

/// The key if `guard` holds (or may hold) in it, with an unknown index pinned by a matching
/// `prevIndex`.
fn admit(key: KeyState, guard: Guard) -> Option<KeyState> {
    match guard {
        Guard::Any => Some(key),
        Guard::Absent => key.node.is_none().then_some(key),
        Guard::Present => key.node.is_some().then_some(key),
        Guard::Compare { index, .. } => match (key.node, compare(key, guard)) {
            (None, _) | (_, Compare::Mismatch) => None,
            (Some(_), Compare::Match) => Some(key),
            (Some(node), Compare::Maybe) => {
                let pinned = index.expect("only an index condition is undecided");
                Some(KeyState {
                    node: Some(Node {
                        index: NodeIndex::Known(pinned),
                        ..node
                    }),
                    last_index: key.last_index.max(pinned),
                })
            }
        },
    }
}

/// The key after a write that took effect with `index` (`None`: unknown, so only "above the
/// bound"). A known index must exceed the bound.
fn commit(key: KeyState, effect: Effect, index: Option<u64>) -> Option<KeyState> {
    if index.is_some_and(|index| index <= key.last_index) {
        return None;
    }
    let node = match effect {
        Effect::Put {
            value,
            expire_at_us,
        } => Some(Node {
            value,
            index: index.map_or(NodeIndex::Above(key.last_index), NodeIndex::Known),
            expire_at_us,
        }),
        Effect::Refresh { expire_at_us } => Some(Node {
            // A refresh requires the file (its guard is `Present`), and keeps its value.
            value: key.node?.value,
            index: index.map_or(NodeIndex::Above(key.last_index), NodeIndex::Known),
            expire_at_us,
        }),
        Effect::Remove => None,
    };
    Some(KeyState {
        node,
        // The write's own index is at least one above the bound.
        last_index: index.unwrap_or(key.last_index + 1),
    })
}

/// A recursive delete of a directory holding `slots`. Success (or no answer) leaves them all
/// absent; error 100 says the directory did not exist, so each was absent or expired.
fn remove_subtree(
    state: &[KeyState],
    slots: &[u32],
    outcome: Outcome,
    complete_us: u64,
) -> Option<Vec<KeyState>> {
    let mut after = state.to_vec();
    for &slot in slots {
        let key = &mut after[slot as usize];
        match outcome {
            Outcome::Ok(index) => {
                *key = commit(*key, Effect::Remove, index)?;
            }
            Outcome::Unknown => {
                *key = commit(*key, Effect::Remove, None)?;
            }
            Outcome::NotFound => {
                let expirable = |node: Node| node.expire_at_us.is_some_and(|at| at <= complete_us);
                if key.node.is_some_and(|node| !expirable(node)) {
                    return None;
                }
                key.node = None;
            }
            Outcome::Exists | Outcome::CompareFailed => {
                unreachable!("compile gives recursive deletes no such outcome")
            }
        }
    }
    Some(after)
}

/// True if `key` is `dir` or lies under it.
pub(super) fn is_under(key: &str, dir: &str) -> bool {
    key == dir
        || (key.starts_with(dir)
            && (dir.ends_with('/') || key.as_bytes().get(dir.len()) == Some(&b'/')))
}

/// Interns keys (in key order) and values.
struct Names<'a> {
    keys: BTreeMap<&'a str, u32>,
    values: BTreeMap<&'a str, u32>,
}

impl<'a> Names<'a> {
    fn value(&mut self, value: &'a str) -> u32 {
        let next = u32::try_from(self.values.len()).expect("fewer than 2^32 values");
        *self.values.entry(value).or_insert(next)
    }

    fn slot(&self, key: &str) -> u32 {
        self.keys[key]
    }
}

/// A partition's operations as model inputs.
pub(super) struct Compiled {
    /// The model over the partition's keys.
    pub(super) model: EtcdModel,
    /// The judged operations that constrain the model.
    pub(super) events: Vec<Event<Input>>,
}

/// Compiles one partition. `dirs`: keys that some other key of the history lies under (they
/// may be directories, so error 105 on them says nothing about the file).
pub(super) fn compile(ops: &[&Op], dirs: &BTreeSet<&str>) -> Compiled {
    let key_set: BTreeSet<&str> = ops.iter().map(|op| op.call.key()).collect();
    let mut names = Names {
        keys: key_set
            .iter()
            .zip(0..)
            .map(|(&k, slot)| (k, slot))
            .collect(),
        values: BTreeMap::new(),
    };
    let mut events = Vec::with_capacity(ops.len());
    let ttl = (ops.iter()).any(|op| {
        matches!(
            op.call,
            Call::Set {
                expire_at_us: Some(_),
                ..
            } | Call::Refresh {
                expire_at_us: Some(_),
                ..
            } | Call::Mkdir {
                expire_at_us: Some(_),
                ..
            } | Call::UpdateDir {
                expire_at_us: Some(_),
                ..
            }
        )
    });
    for op in ops {
        let Some(action) = action(op, &mut names, dirs) else {
            continue;
        };
        let complete_us = match op.ret {
            Ret::Unknown => None,
            _ => Some(op.complete_us.max(op.invoke_us)),
        };
        events.push(Event {
            id: op.id,
            invoke_us: op.invoke_us,
            complete_us,
            chain: chain(&action),
            input: Input {
                read_only: is_read_only(&action, ttl),
                action,
                complete_us: complete_us.unwrap_or(u64::MAX),
            },
        });
    }
    Compiled {
        model: EtcdModel {
            keys: names.keys.len(),
        },
        events,
    }
}

/// The order indexes impose on one key: a write answered with index `m` comes after every
/// write with a lower index on its key (key `2m`), and a read that saw index `m` after the
/// write of index `m` and before any write of a higher one (key `2m + 1`).
fn chain(action: &Action) -> Option<(u32, u64)> {
    match *action {
        Action::Read {
            slot,
            seen: Some((_, Some(index))),
        } => Some((slot, index.checked_mul(2)?.checked_add(1)?)),
        Action::Write {
            slot,
            outcome: Outcome::Ok(Some(index)),
            ..
        } => Some((slot, index.checked_mul(2)?)),
        Action::Read { .. }
        | Action::Write { .. }
        | Action::RemoveSubtree { .. }
        | Action::ReadMany { .. } => None,
    }
}

/// See `Input::read_only`.
fn is_read_only(action: &Action, ttl: bool) -> bool {
    let changed_nothing = |outcome| {
        matches!(
            outcome,
            Outcome::NotFound | Outcome::Exists | Outcome::CompareFailed
        )
    };
    match action {
        Action::Read { seen: Some(_), .. } => true,
        Action::Read { seen: None, .. } => !ttl,
        Action::ReadMany { reads } => !ttl || reads.iter().all(|(_, seen)| seen.is_some()),
        Action::Write { outcome, .. } | Action::RemoveSubtree { outcome, .. } => {
            !ttl && changed_nothing(*outcome)
        }
    }
}

/// The model's view of one operation; `None` if it constrains nothing.
fn action<'a>(op: &'a Op, names: &mut Names<'a>, dirs: &BTreeSet<&str>) -> Option<Action> {
    let key = op.call.key();
    match (&op.call, &op.ret) {
        (
            Call::Get { .. },
            Ret::Ok {
                value: Some(value),
                modified_index,
                ..
            },
        ) => {
            let index = (*modified_index != 0).then_some(*modified_index);
            Some(Action::Read {
                slot: names.slot(key),
                seen: Some((names.value(value), index)),
            })
        }
        (Call::Get { .. }, Ret::Err { code: 100 }) => Some(Action::Read {
            slot: names.slot(key),
            seen: None,
        }),
        // A directory listing, another error, no answer: no constraint.
        (Call::Get { .. }, _) => None,
        (Call::List { .. }, Ret::Listing { nodes, .. }) => {
            let reads = (names.keys.iter())
                .filter(|(k, _)| **k != key && is_under(k, key))
                .map(|(k, &slot)| (*k, slot))
                .collect::<Vec<_>>()
                .into_iter()
                .map(|(k, slot)| {
                    let listed = nodes.iter().find(|n| n.key == k);
                    let seen = listed.map(|n| {
                        let value = n.value.as_deref().unwrap_or(DIR_MARKER);
                        let index = (n.modified_index != 0).then_some(n.modified_index);
                        (names.value(value), index)
                    });
                    (slot, seen)
                })
                .collect();
            Some(Action::ReadMany { reads })
        }
        // The directory did not exist: nothing under it did.
        (Call::List { .. }, Ret::Err { code: 100 }) => {
            let reads = (names.keys.iter())
                .filter(|(k, _)| **k != key && is_under(k, key))
                .map(|(_, &slot)| (slot, None))
                .collect();
            Some(Action::ReadMany { reads })
        }
        (Call::List { .. }, _) => None,
        (Call::DeleteRecursive { .. }, ret) => {
            let slots = (names.keys.iter())
                .filter(|(k, _)| is_under(k, key))
                .map(|(_, &slot)| slot)
                .collect();
            let outcome = outcome(ret, "delete", &[100])?;
            Some(Action::RemoveSubtree { slots, outcome })
        }
        (call, ret) => {
            let shape = write_shape(call, names, dirs.contains(key))?;
            Some(Action::Write {
                slot: names.slot(key),
                guard: shape.guard,
                effect: shape.effect,
                outcome: outcome(ret, shape.action, shape.codes)?,
            })
        }
    }
}

/// The value a directory stands for in the model.
const DIR_MARKER: &str = "\u{0}dir";

/// What a kind of write requires, does, answers, and which of its error codes constrain.
struct Shape {
    guard: Guard,
    effect: Effect,
    action: &'static str,
    codes: &'static [u16],
}

fn write_shape<'a>(call: &'a Call, names: &mut Names<'a>, dir: bool) -> Option<Shape> {
    let put = |value: &'a str, names: &mut Names<'a>| Effect::Put {
        value: names.value(value),
        expire_at_us: None,
    };
    let compare =
        |value: &'a Option<String>, index: Option<u64>, names: &mut Names<'a>| Guard::Compare {
            value: value.as_deref().map(|value| names.value(value)),
            index,
        };
    let shape = |guard, effect, action, codes| Shape {
        guard,
        effect,
        action,
        codes,
    };
    Some(match call {
        Call::Set {
            value,
            expire_at_us,
            ..
        } => {
            let effect = Effect::Put {
                value: names.value(value),
                expire_at_us: *expire_at_us,
            };
            shape(Guard::Any, effect, "set", &[])
        }
        // On a key that may be a directory, 105 can mean the directory exists.
        Call::Create { value, .. } => {
            let codes: &[u16] = if dir { &[] } else { &[105] };
            shape(Guard::Absent, put(value, names), "create", codes)
        }
        Call::Update { value, .. } => shape(Guard::Present, put(value, names), "update", &[100]),
        Call::Cas {
            value,
            prev_value,
            prev_index,
            ..
        } => {
            let guard = compare(prev_value, *prev_index, names);
            shape(guard, put(value, names), "compareAndSwap", &[100, 101])
        }
        Call::Cad {
            prev_value,
            prev_index,
            ..
        } => {
            let guard = compare(prev_value, *prev_index, names);
            shape(guard, Effect::Remove, "compareAndDelete", &[100, 101])
        }
        Call::Delete { .. } => shape(Guard::Present, Effect::Remove, "delete", &[100]),
        Call::Refresh { expire_at_us, .. } => {
            let effect = Effect::Refresh {
                expire_at_us: *expire_at_us,
            };
            shape(Guard::Present, effect, "update", &[100])
        }
        // A directory is a node whose "value" is a marker no file value can equal (file values
        // never hold NUL in the histories the simulator makes); its children are keys of their
        // own (a directory with a TTL is drawn without children: its expiry removes only it).
        Call::Mkdir { expire_at_us, .. } => {
            let effect = Effect::Put {
                value: names.value(DIR_MARKER),
                expire_at_us: *expire_at_us,
            };
            shape(Guard::Absent, effect, "create", &[105])
        }
        // The directory holds nothing (only `mkdir` and `rmdir` name it), so error 108 (not
        // empty) never constrains; 100 says it was absent.
        Call::Rmdir { .. } => shape(Guard::Present, Effect::Remove, "delete", &[100]),
        Call::UpdateDir { expire_at_us, .. } => {
            let effect = Effect::Put {
                value: names.value(DIR_MARKER),
                expire_at_us: *expire_at_us,
            };
            shape(Guard::Present, effect, "update", &[100])
        }
        Call::Get { .. }
        | Call::List { .. }
        | Call::DeleteRecursive { .. }
        | Call::CreateInOrder { .. }
        | Call::Watch { .. }
        | Call::Lock { .. } => return None,
    })
}

/// The outcome of a write that answers `action` on success and whose error `codes` constrain
/// the model; `None` if the answer constrains nothing. A success with index 0 or another
/// action keeps no index constraint.
fn outcome(ret: &Ret, action: &str, codes: &[u16]) -> Option<Outcome> {
    match ret {
        Ret::Ok {
            action: answered,
            modified_index,
            ..
        } => {
            let usable = answered == action && *modified_index != 0;
            Some(Outcome::Ok(usable.then_some(*modified_index)))
        }
        Ret::Err { code } if codes.contains(code) => match code {
            100 => Some(Outcome::NotFound),
            101 => Some(Outcome::CompareFailed),
            105 => Some(Outcome::Exists),
            _ => None,
        },
        Ret::Err { .. } | Ret::Fail | Ret::Listing { .. } => None,
        Ret::Unknown => Some(Outcome::Unknown),
    }
}
