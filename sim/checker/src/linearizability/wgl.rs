//! The Wing–Gong–Lowe search (Lowe, "Testing for linearizability", 2017, §3 with the cache of
//! §4) over one partition of a history, against any sequential `Model`.
//!
//! The operations that returned form a doubly linked list of call and return entries in time
//! order. The search linearizes, in turn, any call entry that comes before the first return
//! entry (its operation may take effect now), lifts it and its return out of the list, and
//! starts again from the head. Reaching a return entry means the operation it closes was not
//! linearized in time: the last choice is undone. Operations that never returned
//! (`complete_us: None`) sit in a second list; they may be linearized at any point after their
//! call, or never, and are tried only once every candidate that returned has failed (latest
//! call first). The search succeeds once every operation that returned is linearized.
//!
//! Nondeterministic models are searched over sets of states (Porcupine's power-set
//! construction): a step maps the current set to the union of every member's successors and is
//! legal if that union is not empty.
//!
//! Pruning, each sound (no linearization is lost), each optional for a model:
//! - the cache (`memo`): a configuration (linearized set, states) met before is not explored
//!   again, nor one that a failed configuration dominates (same operations that returned, a
//!   subset of the others, states that `Model::dominates`);
//! - chains (`Event::chain`): orders the model imposes in every linearization, such as the
//!   order of one key's writes by index, are enforced up front, and a state whose
//!   `Model::chain_floor` has passed an operation still to come is dropped;
//! - read-only operations (`Model::is_read_only`) that leave every state as it is are taken at
//!   once, with no alternative tried at their level;
//! - a run of operations that never returned is cut when its last one, taken alone where the
//!   run began, would reach dominating states.
//!
//! Depends on nothing above `history`.

use std::hash::Hash;
use std::mem;

use serde::Serialize;

use super::memo::{Bits, Config, Memo, fingerprint, mix};

/// A sequential specification: the object the history's operations act on, one at a time.
pub trait Model {
    /// One operation's call together with its answer, as the model reads it.
    type Input;
    /// A state of the object. `Ord` gives sets of states one canonical order; `Hash` feeds the
    /// search's cache.
    type State: Clone + Ord + Hash;

    /// The state before the first operation.
    fn init(&self) -> Self::State;

    /// Pushes onto `next` every state the object may be in after `input` took effect in
    /// `state` and answered as recorded. Pushing nothing says that answer is impossible there.
    fn step(&self, state: &Self::State, input: &Self::Input, next: &mut Vec<Self::State>);

    /// True if `a` allows at least every future `b` allows: every sequence of inputs legal
    /// from `b` is legal from `a`, and leads to states that again dominate. Equality always
    /// qualifies; a finer order lets the search prune more runs of operations that never
    /// returned.
    fn dominates(&self, a: &Self::State, b: &Self::State) -> bool {
        a == b
    }

    /// The lowest `Event::chain` key an operation of `chain` could still take effect with,
    /// from `state` or any state after it (it may only grow along a linearization). A state
    /// where an operation that returned, in that chain and not yet linearized, has a lower key
    /// can never linearize it, so the search drops it. 0 (the default) prunes nothing.
    fn chain_floor(&self, state: &Self::State, chain: u32) -> u64 {
        let _ = (state, chain);
        0
    }

    /// A hash of what `dominates` requires to be equal: `dominates(a, b)` implies
    /// `shape(a) == shape(b)`. The cache compares states of one shape only.
    fn shape(&self, state: &Self::State) -> u64 {
        fingerprint(state)
    }

    /// True if `input` never changes a state beyond what `dominates` allows: from any state
    /// `s`, every successor is dominated by `s` (a read, which may only rule states out). When
    /// such an operation can be linearized without ruling any current state out, the search
    /// takes it at once and tries nothing else at that level. `false` is always safe.
    fn is_read_only(&self, input: &Self::Input) -> bool {
        let _ = input;
        false
    }
}

/// One operation of a partition, as the search sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event<I> {
    /// The operation's id, for the report.
    pub id: u64,
    /// When it was invoked.
    pub invoke_us: u64,
    /// When it returned; `None` if it never did (it may take effect at any time after
    /// `invoke_us`, or never). A time before `invoke_us` is read as `invoke_us`.
    pub complete_us: Option<u64>,
    /// What the model needs: the call and its answer.
    pub input: I,
    /// An order the model imposes whatever happens: (chain, key). Of two operations that
    /// returned and share a chain, the one with the lower key must be linearized first (equal
    /// keys: either). Ignored for operations that never returned. A hint that only prunes:
    /// it must hold in every linearization the model accepts.
    pub chain: Option<(u32, u64)>,
}

/// The answer for a partition or for a whole history.
///
/// Ordered by severity, so the verdict of a history is the maximum over its partitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// A linearization exists.
    Linearizable,
    /// The budget ran out before the search decided. Reported, never a pass.
    Unknown,
    /// No linearization exists.
    NotLinearizable,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Linearizable => "linearizable",
            Verdict::Unknown => "unknown (budget exhausted)",
            Verdict::NotLinearizable => "not linearizable",
        })
    }
}

/// How long the search may run: a number of steps per partition, and optionally a predicate
/// the caller backs with a clock (the checker itself never reads one).
#[derive(Clone, Copy)]
pub struct Budget<'a> {
    /// Search steps allowed per partition (one step: one call entry tried or one choice undone).
    pub steps_max: u64,
    /// Polled every `OUT_OF_TIME_POLL_STEPS` steps and at the start of each partition; `true`
    /// stops the search with `Verdict::Unknown`.
    pub out_of_time: Option<&'a dyn Fn() -> bool>,
}

/// How often the search polls `Budget::out_of_time`, in steps.
pub const OUT_OF_TIME_POLL_STEPS: u64 = 1024;

impl Budget<'static> {
    /// No limit at all: the search runs until it decides.
    pub const UNLIMITED: Budget<'static> = Budget {
        steps_max: u64::MAX,
        out_of_time: None,
    };

    /// At most `steps_max` steps per partition.
    pub fn steps(steps_max: u64) -> Budget<'static> {
        Budget {
            steps_max,
            out_of_time: None,
        }
    }
}

impl<'a> Budget<'a> {
    /// The same budget, also stopped when `out_of_time` returns `true`.
    pub fn with_deadline(self, out_of_time: &'a dyn Fn() -> bool) -> Budget<'a> {
        Budget {
            steps_max: self.steps_max,
            out_of_time: Some(out_of_time),
        }
    }

    /// True if a search that has taken `steps` steps must stop.
    fn exhausted(&self, steps: u64) -> bool {
        if steps >= self.steps_max {
            return true;
        }
        steps.is_multiple_of(OUT_OF_TIME_POLL_STEPS) && self.out_of_time.is_some_and(|f| f())
    }
}

impl std::fmt::Debug for Budget<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget")
            .field("steps_max", &self.steps_max)
            .field("out_of_time", &self.out_of_time.is_some())
            .finish()
    }
}

/// What the search found in one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Search {
    /// The verdict.
    pub verdict: Verdict,
    /// Ids of the longest linearizable prefix found, in linearization order: the whole
    /// linearization when the verdict is `Linearizable` (operations without a return that it
    /// left out never took effect).
    pub longest_prefix: Vec<u64>,
    /// For `NotLinearizable`: the operation, among those the longest prefix leaves out, that
    /// returned first (ties: the earlier call); no extension of that prefix could take it next.
    /// If a chain is what stops it, the chain's operation that cannot come first is named.
    pub first_bad: Option<u64>,
    /// Search steps taken.
    pub steps: u64,
}

/// Runs the search over `events` (in any order) from `model.init()`.
pub fn search<M: Model>(model: &M, events: &[Event<M::Input>], budget: Budget<'_>) -> Search {
    let mut dfs = Dfs::new(model, events);
    let verdict = dfs.run(budget);
    dfs.finish(verdict)
}

/// "No entry" in the linked list.
const NIL: u32 = u32::MAX;
/// The list's sentinel head.
const HEAD: u32 = 0;

/// A call or return entry of the linked list.
#[derive(Clone, Copy, Debug)]
struct Entry {
    prev: u32,
    next: u32,
    /// The operation's rank in call order (its bit in the linearized set).
    rank: u32,
    /// For a call entry: its return entry, or `NIL` if the operation never returned. `NIL` for
    /// return entries.
    ret: u32,
    call: bool,
}

/// The time-ordered list of call and return entries, with dancing-links removal.
struct List {
    entries: Vec<Entry>,
}

impl List {
    /// Builds the list of the operations that returned (`returned`), or of the others (call
    /// entries only, latest call first). `times[rank]` is (invoke, complete) of the operation of
    /// that rank, with `complete >= invoke`. Entries at equal times put calls first: equal times
    /// are concurrent.
    fn build(times: &[(u64, Option<u64>)], returned: bool) -> List {
        let mut order: Vec<(u64, bool, u32)> = Vec::with_capacity(times.len() * 2);
        for (rank, &(invoke_us, complete_us)) in times.iter().enumerate() {
            let rank = u32::try_from(rank).expect("a partition holds fewer than 2^32 operations");
            if complete_us.is_some() != returned {
                continue;
            }
            order.push((invoke_us, false, rank));
            if let Some(complete_us) = complete_us {
                assert!(
                    complete_us >= invoke_us,
                    "operation {rank} returns before its call"
                );
                order.push((complete_us, true, rank));
            }
        }
        order.sort_unstable();
        if !returned {
            order.reverse();
        }
        let mut entries = Vec::with_capacity(order.len() + 1);
        entries.push(Entry {
            prev: NIL,
            next: NIL,
            rank: NIL,
            ret: NIL,
            call: false,
        });
        let mut ret_of_rank = vec![NIL; times.len()];
        for (position, &(_, is_return, rank)) in order.iter().enumerate() {
            let at = u32::try_from(position + 1).expect("fewer than 2^32 entries");
            entries[at as usize - 1].next = at;
            entries.push(Entry {
                prev: at - 1,
                next: NIL,
                rank,
                ret: NIL,
                call: !is_return,
            });
            if is_return {
                ret_of_rank[rank as usize] = at;
            }
        }
        for entry in &mut entries[1..] {
            if entry.call {
                entry.ret = ret_of_rank[entry.rank as usize];
            }
        }
        List { entries }
    }

    fn first(&self) -> u32 {
        self.entries[HEAD as usize].next
    }

    fn next(&self, at: u32) -> u32 {
        self.entries[at as usize].next
    }

    fn unlink(&mut self, at: u32) {
        let Entry { prev, next, .. } = self.entries[at as usize];
        self.entries[prev as usize].next = next;
        if next != NIL {
            self.entries[next as usize].prev = prev;
        }
    }

    fn relink(&mut self, at: u32) {
        let Entry { prev, next, .. } = self.entries[at as usize];
        self.entries[prev as usize].next = at;
        if next != NIL {
            self.entries[next as usize].prev = at;
        }
    }

    /// Removes a call entry and its return entry. Undone, in reverse order, by `unlift`.
    fn lift(&mut self, call: u32) {
        assert!(self.entries[call as usize].call, "lift takes a call entry");
        self.unlink(call);
        let ret = self.entries[call as usize].ret;
        if ret != NIL {
            self.unlink(ret);
        }
    }

    fn unlift(&mut self, call: u32) {
        assert!(
            self.entries[call as usize].call,
            "unlift takes a call entry"
        );
        let ret = self.entries[call as usize].ret;
        if ret != NIL {
            self.relink(ret);
        }
        self.relink(call);
    }
}

/// The chains of `Event::chain`, by rank: an operation may be linearized only once every
/// member of its chain with a lower key is.
struct Chains {
    /// The members' ranks, by chain and key.
    members: Vec<usize>,
    /// Their keys.
    keys: Vec<u64>,
    /// The model's number of each chain.
    ids: Vec<u32>,
    /// Where each chain's members start in `members`.
    starts: Vec<usize>,
    /// The dense chain number of each rank; `NIL` if none.
    of_rank: Vec<u32>,
    /// Members of the rank's chain with a lower key.
    before: Vec<usize>,
    /// Members of each chain linearized. Invariant: they are every member with a key below
    /// some key, and some members with that key.
    done: Vec<usize>,
}

impl Chains {
    fn new<I>(events: &[Event<I>], by_rank: &[usize]) -> Chains {
        let mut members: Vec<(u32, u64, usize)> = (by_rank.iter().enumerate())
            .filter_map(|(rank, &i)| {
                let (chain, key) = events[i].chain?;
                events[i].complete_us.map(|_| (chain, key, rank))
            })
            .collect();
        members.sort_unstable();
        let mut chains = Chains {
            members: members.iter().map(|&(_, _, rank)| rank).collect(),
            keys: members.iter().map(|&(_, key, _)| key).collect(),
            ids: Vec::new(),
            starts: Vec::new(),
            of_rank: vec![NIL; by_rank.len()],
            before: vec![0; by_rank.len()],
            done: Vec::new(),
        };
        let (mut first_of_chain, mut first_of_key) = (0, 0);
        for at in 0..members.len() {
            let (chain, key, rank) = members[at];
            if at == 0 || members[at - 1].0 != chain {
                (first_of_chain, first_of_key) = (at, at);
                chains.done.push(0);
                chains.starts.push(at);
                chains.ids.push(chain);
            } else if members[at - 1].1 != key {
                first_of_key = at;
            }
            chains.of_rank[rank] = u32::try_from(chains.done.len() - 1).expect("few chains");
            chains.before[rank] = first_of_key - first_of_chain;
        }
        chains
    }

    /// The first member of `rank`'s chain, by key, that `done` lacks, if it comes before
    /// `rank`.
    fn first_missing(&self, rank: usize, done: &[bool]) -> Option<usize> {
        let chain = self.of_rank[rank];
        if chain == NIL {
            return None;
        }
        let start = self.starts[chain as usize];
        let missing = (self.members[start..start + self.before[rank]].iter())
            .find(|&&member| !done[member])?;
        Some(*missing)
    }

    /// The first member of dense chain `chain`, by key, that `done` lacks, with the model's
    /// chain number and its key.
    fn next_missing(&self, chain: usize, done: &[bool]) -> Option<(usize, (u32, u64))> {
        let end = self
            .starts
            .get(chain + 1)
            .copied()
            .unwrap_or(self.members.len());
        let at = (self.starts[chain]..end).find(|&at| !done[self.members[at]])?;
        Some((self.members[at], (self.ids[chain], self.keys[at])))
    }

    /// True if no chain has a member left whose key is below the model's floor in `state`.
    fn viable<M: Model>(&self, model: &M, state: &M::State) -> bool {
        (0..self.done.len()).all(|chain| {
            let end = self
                .starts
                .get(chain + 1)
                .copied()
                .unwrap_or(self.members.len());
            let next = self.starts[chain] + self.done[chain];
            next >= end || self.keys[next] >= model.chain_floor(state, self.ids[chain])
        })
    }

    fn allows(&self, rank: usize) -> bool {
        let chain = self.of_rank[rank];
        chain == NIL || self.done[chain as usize] >= self.before[rank]
    }

    fn mark(&mut self, rank: usize, on: bool) {
        let chain = self.of_rank[rank];
        if chain != NIL {
            let done = &mut self.done[chain as usize];
            if on {
                *done += 1;
            } else {
                assert!(*done > 0, "chain {chain} has nothing linearized to undo");
                *done -= 1;
            }
        }
    }
}

/// One linearized operation on the search stack.
struct Frame<S> {
    /// Its call entry: in `Dfs::list`, or in `Dfs::pending` if `until_us` is set.
    entry: u32,
    rank: u32,
    /// For an operation that never returned: the bound its level's scan of `Dfs::pending` had
    /// (the time of the first return entry left).
    until_us: Option<u64>,
    /// The states before it.
    states: Vec<S>,
    /// The operation left the states as they were. Then whatever linearization exists from
    /// the level below has one taking this operation first: move it to the front, and every
    /// later operation sees the same states or more of them (steps are monotone in the set of
    /// states), and real time still allows it (it was called before any unlinearized operation
    /// returned). So its level has no other choice to try.
    forced: bool,
    /// Its configuration in the cache.
    memo: u32,
    /// Operations that never returned at the top of the stack down to this one (0 if this
    /// one returned).
    run: usize,
}

/// Where the search looks next at its current level.
#[derive(Clone, Copy, Debug)]
enum Scan {
    /// An entry of `Dfs::list`: calls of operations that returned are candidates until the
    /// first return entry.
    Returned(u32),
    /// An entry of `Dfs::pending`: calls of operations that never returned are candidates if
    /// made by `until_us`, the time of the first return entry left.
    Unreturned { entry: u32, until_us: u64 },
}

/// The depth-first search's whole state.
struct Dfs<'a, M: Model> {
    model: &'a M,
    events: &'a [Event<M::Input>],
    /// Event index of each rank (ranks are call order).
    by_rank: Vec<usize>,
    /// (invoke, complete) of each rank, with `complete >= invoke`.
    times: Vec<(u64, Option<u64>)>,
    /// Call and return entries of the operations that returned.
    list: List,
    /// Call entries of the operations that never returned.
    pending: List,
    /// The linearized operations that returned, by their index among those (in call order).
    bits: Bits,
    /// The linearized operations that never returned, by their index among those.
    unreturned: Vec<u64>,
    /// Each rank's index among the operations that returned, or among those that did not.
    class_index: Vec<usize>,
    chains: Chains,
    memo: Memo<M::State>,
    stack: Vec<Frame<M::State>>,
    /// The possible states after the stack's operations. Invariant: sorted, deduplicated,
    /// not empty.
    states: Vec<M::State>,
    /// Ranks of the deepest stack seen. Invariant: `best[..agree] ==` the stack's ranks.
    best: Vec<u32>,
    agree: usize,
    /// Operations with a return that are not on the stack.
    known_left: usize,
    steps: u64,
}

impl<'a, M: Model> Dfs<'a, M> {
    fn new(model: &'a M, events: &'a [Event<M::Input>]) -> Dfs<'a, M> {
        let mut by_rank: Vec<usize> = (0..events.len()).collect();
        by_rank.sort_by_key(|&i| (events[i].invoke_us, i));
        let times: Vec<(u64, Option<u64>)> = (by_rank.iter())
            .map(|&i| (events[i].invoke_us, events[i].complete_us))
            .map(|(invoke_us, complete_us)| (invoke_us, complete_us.map(|c| c.max(invoke_us))))
            .collect();
        let mut counts = [0, 0];
        let class_index = (times.iter())
            .map(|(_, complete_us)| {
                let class = usize::from(complete_us.is_none());
                counts[class] += 1;
                counts[class] - 1
            })
            .collect();
        let [known, unreturned] = counts;
        Dfs {
            model,
            events,
            list: List::build(&times, true),
            pending: List::build(&times, false),
            bits: Bits::new(known),
            unreturned: vec![0; unreturned.div_ceil(64)],
            class_index,
            chains: Chains::new(events, &by_rank),
            memo: Memo::new(unreturned.div_ceil(64)),
            stack: Vec::new(),
            states: vec![model.init()],
            best: Vec::new(),
            agree: 0,
            known_left: known,
            steps: 0,
            by_rank,
            times,
        }
    }

    /// Marks the operation of `rank` linearized (`on`) or not.
    fn mark(&mut self, rank: usize, on: bool) {
        self.chains.mark(rank, on);
        let index = self.class_index[rank];
        match (self.times[rank].1.is_some(), on) {
            (true, true) => self.bits.set(index),
            (true, false) => self.bits.clear(index),
            (false, on) => {
                let (word, bit) = (index / 64, 1u64 << (index % 64));
                assert_eq!(
                    self.unreturned[word] & bit == 0,
                    on,
                    "unreturned {index} flips"
                );
                self.unreturned[word] ^= bit;
            }
        }
    }

    /// The search. At each level it tries the candidates in two passes: first the operations
    /// that returned (in call order), then those that never did (latest call first). Any order of the candidates is complete; this
    /// one keeps lost writes that never took effect from being tried, and refuted, ahead of
    /// every other choice at every level.
    fn run(&mut self, budget: Budget<'_>) -> Verdict {
        let mut scan = Scan::Returned(self.list.first());
        loop {
            if self.known_left == 0 {
                return Verdict::Linearizable;
            }
            if budget.exhausted(self.steps) {
                return Verdict::Unknown;
            }
            self.steps += 1;
            scan = match scan {
                Scan::Returned(entry) => {
                    assert!(
                        entry != NIL,
                        "{} ops that returned are left",
                        self.known_left
                    );
                    let Entry { call, rank, .. } = self.list.entries[entry as usize];
                    if !call {
                        let until_us = self.times[rank as usize].1.expect("a return entry");
                        let entry = self.pending.first();
                        Scan::Unreturned { entry, until_us }
                    } else if self.try_call(entry, None) {
                        Scan::Returned(self.list.first())
                    } else {
                        Scan::Returned(self.list.next(entry))
                    }
                }
                Scan::Unreturned { entry, until_us } => {
                    // Latest call first: a lost write that took effect mostly did so soon
                    // after its call, and old ones that never did are the likeliest to fail.
                    let rank = (entry != NIL).then(|| self.pending.entries[entry as usize].rank);
                    match rank {
                        None => match self.backtrack() {
                            Some(scan) => scan,
                            None => return Verdict::NotLinearizable,
                        },
                        Some(rank) if self.times[rank as usize].0 > until_us => {
                            let entry = self.pending.next(entry);
                            Scan::Unreturned { entry, until_us }
                        }
                        Some(_) if self.try_call(entry, Some(until_us)) => {
                            Scan::Returned(self.list.first())
                        }
                        Some(_) => {
                            let entry = self.pending.next(entry);
                            Scan::Unreturned { entry, until_us }
                        }
                    }
                }
            };
        }
    }

    /// Tries to linearize the operation of call entry `entry` (of `pending` if `until_us` is
    /// set, else of `list`) now; true if it did.
    fn try_call(&mut self, entry: u32, until_us: Option<u64>) -> bool {
        let list = if until_us.is_some() {
            &self.pending
        } else {
            &self.list
        };
        let rank = list.entries[entry as usize].rank;
        if !self.chains.allows(rank as usize) {
            return false;
        }
        let successors = self.successors(rank as usize);
        if successors.is_empty() {
            return false;
        }
        if until_us.is_some() && self.run_dominated(rank as usize, &successors) {
            return false;
        }
        self.mark(rank as usize, true);
        let mut successors = successors;
        successors.retain(|state| self.chains.viable(self.model, state));
        if successors.is_empty() {
            self.mark(rank as usize, false);
            return false;
        }
        let mut shapes: Vec<u64> = successors.iter().map(|s| self.model.shape(s)).collect();
        shapes.sort_unstable();
        shapes.dedup();
        let config = Config {
            hash: mix(self.bits.hash ^ fingerprint(&shapes[..]).rotate_left(29)),
            known: self.bits.canonical(),
            shapes: &shapes,
            unreturned: &self.unreturned,
            states: &successors,
        };
        let model = self.model;
        let Some(memo) = self.memo.insert(&config, |a, b| model.dominates(a, b)) else {
            self.mark(rank as usize, false);
            return false;
        };
        let input = &self.events[self.by_rank[rank as usize]].input;
        // Only for operations that returned: the cut of a run of unreturned ones relies on
        // the level where the run began trying its other candidates.
        let forced =
            until_us.is_none() && self.model.is_read_only(input) && successors == self.states;
        let states = mem::replace(&mut self.states, successors);
        let run = match until_us {
            Some(_) => self.stack.last().map_or(0, |frame| frame.run) + 1,
            None => 0,
        };
        self.stack.push(Frame {
            entry,
            rank,
            until_us,
            states,
            forced,
            memo,
            run,
        });
        match until_us {
            Some(_) => self.pending.lift(entry),
            None => {
                self.known_left -= 1;
                self.list.lift(entry);
            }
        }
        self.note_depth();
        true
    }

    /// True if linearizing the unreturned operation `rank` with `successors` at the end of a
    /// run of unreturned operations (nothing that returned linearized since the run began) is
    /// pointless: the same operation alone, linearized where the run began, reaches states that
    /// dominate these, with the same operations that returned linearized and fewer of the
    /// others. The search tries that alternative (or has) from the run's start, whose
    /// candidates are the same; so pruning here loses no linearization. Without this, a
    /// dead end explores every subset of the lost writes pending there.
    fn run_dominated(&self, rank: usize, successors: &[M::State]) -> bool {
        let run = self.stack.last().map_or(0, |frame| frame.run);
        if run == 0 {
            return false;
        }
        let start = &self.stack[self.stack.len() - run].states;
        let alone = self.successors_from(start, rank);
        (successors.iter()).all(|b| alone.iter().any(|a| self.model.dominates(a, b)))
    }

    /// Undoes the last choice: pops forced operations, then one chosen; returns where its
    /// level's scan resumes, or `None` if no choice is left.
    fn backtrack(&mut self) -> Option<Scan> {
        loop {
            let frame = self.stack.pop()?;
            self.memo.finish(frame.memo);
            self.mark(frame.rank as usize, false);
            self.states = frame.states;
            match frame.until_us {
                Some(_) => self.pending.unlift(frame.entry),
                None => {
                    self.known_left += 1;
                    self.list.unlift(frame.entry);
                }
            }
            self.agree = self.agree.min(self.stack.len());
            if !frame.forced {
                return Some(match frame.until_us {
                    Some(until_us) => Scan::Unreturned {
                        entry: self.pending.next(frame.entry),
                        until_us,
                    },
                    None => Scan::Returned(self.list.next(frame.entry)),
                });
            }
        }
    }

    /// Every state the operation of `rank` may lead to from the current states.
    fn successors(&self, rank: usize) -> Vec<M::State> {
        self.successors_from(&self.states, rank)
    }

    fn successors_from(&self, states: &[M::State], rank: usize) -> Vec<M::State> {
        let input = &self.events[self.by_rank[rank]].input;
        let mut next = Vec::new();
        for state in states {
            self.model.step(state, input, &mut next);
        }
        if next.len() > 1 {
            next.sort_unstable();
            next.dedup();
        }
        next
    }

    /// Keeps `best` the deepest stack seen. Amortized O(1): each rank copied was pushed since
    /// `agree` last fell below its position.
    fn note_depth(&mut self) {
        let depth = self.stack.len();
        if depth <= self.best.len() {
            return;
        }
        self.best.truncate(self.agree);
        self.best
            .extend(self.stack[self.agree..].iter().map(|frame| frame.rank));
        self.agree = depth;
    }

    fn id(&self, rank: u32) -> u64 {
        self.events[self.by_rank[rank as usize]].id
    }

    fn finish(self, verdict: Verdict) -> Search {
        let ranks: Vec<u32> = match verdict {
            Verdict::Linearizable => self.stack.iter().map(|frame| frame.rank).collect(),
            Verdict::NotLinearizable | Verdict::Unknown => self.best.clone(),
        };
        let first_bad = match verdict {
            Verdict::NotLinearizable => self.first_bad(&ranks),
            Verdict::Linearizable | Verdict::Unknown => None,
        };
        Search {
            verdict,
            longest_prefix: ranks.iter().map(|&rank| self.id(rank)).collect(),
            first_bad,
            steps: self.steps,
        }
    }

    /// The operation outside `prefix` that returned first (ties: the earlier call); if its
    /// chain orders another operation outside `prefix` before it, that one (the lowest key).
    ///
    /// If that operation could take effect after the prefix but would leave some chain's next
    /// operation below the model's floor, that operation is blamed instead: it is the one the
    /// history cannot fit (a read of a value the first operation overwrote, say).
    fn first_bad(&self, prefix: &[u32]) -> Option<u64> {
        let mut in_prefix = vec![false; self.events.len()];
        for &rank in prefix {
            in_prefix[rank as usize] = true;
        }
        let (_, first) = (0..self.events.len())
            .filter(|&rank| !in_prefix[rank])
            .filter_map(|rank| Some((self.times[rank].1?, rank)))
            .min()?;
        if let Some(blamed) = self.chains.first_missing(first, &in_prefix) {
            return Some(self.id(blamed as u32));
        }
        let mut states = vec![self.model.init()];
        for &rank in prefix {
            states = self.successors_from(&states, rank as usize);
        }
        let after = self.successors_from(&states, first);
        in_prefix[first] = true;
        let blamed = (after.is_empty()).then_some(first).or_else(|| {
            let dooms = |(chain, key): (u32, u64)| {
                (after.iter()).all(|state| key < self.model.chain_floor(state, chain))
            };
            (0..self.chains.ids.len())
                .filter_map(|chain| self.chains.next_missing(chain, &in_prefix))
                .find(|&(_, chain_key)| dooms(chain_key))
                .map(|(rank, _)| rank)
        });
        Some(self.id(blamed.unwrap_or(first) as u32))
    }
}

/// The dumb reference for tests: tries every order of `events` that respects real time (with
/// each operation that never returned either in or left out). For a handful of events only.
#[cfg(test)]
pub(super) fn brute_force<M: Model>(model: &M, events: &[Event<M::Input>]) -> Verdict {
    let unknown: Vec<usize> = (0..events.len())
        .filter(|&i| events[i].complete_us.is_none())
        .collect();
    for mask in 0..(1u64 << unknown.len()) {
        let mut order: Vec<usize> = (0..events.len())
            .filter(|i| match unknown.iter().position(|u| u == i) {
                Some(bit) => mask & (1 << bit) != 0,
                None => true,
            })
            .collect();
        loop {
            if respects_real_time(events, &order) && legal(model, events, &order) {
                return Verdict::Linearizable;
            }
            if !next_permutation(&mut order) {
                break;
            }
        }
    }
    Verdict::NotLinearizable
}

#[cfg(test)]
fn respects_real_time<I>(events: &[Event<I>], order: &[usize]) -> bool {
    order.iter().enumerate().all(|(at, &later)| {
        order[..at].iter().all(|&earlier| {
            let done = events[later]
                .complete_us
                .map(|c| c.max(events[later].invoke_us));
            done.is_none_or(|done| done >= events[earlier].invoke_us)
        })
    })
}

#[cfg(test)]
fn legal<M: Model>(model: &M, events: &[Event<M::Input>], order: &[usize]) -> bool {
    let mut states = vec![model.init()];
    for &i in order {
        let mut next = Vec::new();
        for state in &states {
            model.step(state, &events[i].input, &mut next);
        }
        if next.is_empty() {
            return false;
        }
        states = next;
    }
    true
}

/// Steps `order` to the next permutation in lexicographic order; false after the last.
#[cfg(test)]
fn next_permutation(order: &mut [usize]) -> bool {
    let Some(pivot) = (1..order.len()).rev().find(|&i| order[i - 1] < order[i]) else {
        return false;
    };
    let swap = (pivot..order.len())
        .rev()
        .find(|&j| order[j] > order[pivot - 1]);
    order.swap(pivot - 1, swap.expect("order[pivot] is larger"));
    order[pivot..].reverse();
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read/write register holding a number; 0 at first.
    struct Register;

    #[derive(Clone, Copy, Debug)]
    enum RegisterOp {
        Write(u64),
        Read(u64),
    }

    impl Model for Register {
        type Input = RegisterOp;
        type State = u64;

        fn init(&self) -> u64 {
            0
        }

        fn step(&self, state: &u64, input: &RegisterOp, next: &mut Vec<u64>) {
            match *input {
                RegisterOp::Write(v) => next.push(v),
                RegisterOp::Read(v) if v == *state => next.push(v),
                RegisterOp::Read(_) => {}
            }
        }

        fn is_read_only(&self, input: &RegisterOp) -> bool {
            matches!(input, RegisterOp::Read(_))
        }
    }

    fn ev(
        id: u64,
        invoke_us: u64,
        complete_us: Option<u64>,
        input: RegisterOp,
    ) -> Event<RegisterOp> {
        Event {
            id,
            invoke_us,
            complete_us,
            input,
            chain: None,
        }
    }

    use RegisterOp::{Read, Write};

    #[test]
    fn empty_history_is_linearizable() {
        let found = search(&Register, &[], Budget::UNLIMITED);
        assert_eq!(found.verdict, Verdict::Linearizable);
        assert!(found.longest_prefix.is_empty());
    }

    #[test]
    fn register_overlapping_reads_see_old_then_new() {
        // The write overlaps both reads; the first read sees 0, the second 1.
        let events = [
            ev(1, 0, Some(100), Write(1)),
            ev(2, 10, Some(20), Read(0)),
            ev(3, 30, Some(40), Read(1)),
        ];
        let found = search(&Register, &events, Budget::UNLIMITED);
        assert_eq!(found.verdict, Verdict::Linearizable);
        assert_eq!(found.longest_prefix, vec![2, 1, 3]);
    }

    #[test]
    fn register_stale_read_after_new_read_is_rejected() {
        // Once a read saw 1 and finished, a later read may not see 0 again.
        let events = [
            ev(1, 0, Some(100), Write(1)),
            ev(2, 10, Some(20), Read(1)),
            ev(3, 30, Some(40), Read(0)),
        ];
        let found = search(&Register, &events, Budget::UNLIMITED);
        assert_eq!(found.verdict, Verdict::NotLinearizable);
        assert_eq!(found.longest_prefix, vec![1, 2]);
        assert_eq!(found.first_bad, Some(3));
    }

    #[test]
    fn register_unreturned_write_may_never_happen() {
        let events = [ev(1, 0, None, Write(7)), ev(2, 10, Some(20), Read(0))];
        let found = search(&Register, &events, Budget::UNLIMITED);
        assert_eq!(found.verdict, Verdict::Linearizable);
        assert_eq!(found.longest_prefix, vec![2]);
    }

    #[test]
    fn register_equal_times_are_concurrent() {
        // The read is invoked exactly when the write returns: concurrent, so it may see 0.
        let events = [ev(1, 0, Some(10), Write(1)), ev(2, 10, Some(20), Read(0))];
        let found = search(&Register, &events, Budget::UNLIMITED);
        assert_eq!(found.verdict, Verdict::Linearizable);
    }

    #[test]
    fn register_budget_exhaustion_is_unknown() {
        // 12 concurrent writes, then a read of a value none wrote: deciding needs the whole
        // (cached) search, far more than 10 steps.
        let mut events: Vec<_> = (0..12).map(|i| ev(i, 0, Some(100), Write(i + 1))).collect();
        events.push(ev(99, 200, Some(300), Read(1000)));
        let found = search(&Register, &events, Budget::steps(10));
        assert_eq!(found.verdict, Verdict::Unknown);
        assert_eq!(found.steps, 10);
        assert_eq!(found.first_bad, None);
        let decided = search(&Register, &events, Budget::UNLIMITED);
        assert_eq!(decided.verdict, Verdict::NotLinearizable);
        assert_eq!(decided.first_bad, Some(99));
    }

    #[test]
    fn out_of_time_predicate_stops_the_search() {
        let events: Vec<_> = (0..4).map(|i| ev(i, 0, Some(100), Write(i))).collect();
        let stop = || true;
        let found = search(&Register, &events, Budget::UNLIMITED.with_deadline(&stop));
        assert_eq!(found.verdict, Verdict::Unknown);
        assert_eq!(found.steps, 0);
    }

    #[test]
    fn register_search_agrees_with_brute_force() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut verdicts = [0; 2];
        for _ in 0..400 {
            let events: Vec<_> = (0..rng.gen_range(3..=7u64))
                .map(|id| {
                    let invoke_us = rng.gen_range(0..40);
                    let complete_us = invoke_us + rng.gen_range(0..25);
                    let input = if rng.gen_bool(0.5) {
                        Write(rng.gen_range(1..=3))
                    } else {
                        Read(rng.gen_range(0..=3))
                    };
                    let lost = matches!(input, Write(_)) && rng.gen_ratio(1, 5);
                    ev(id, invoke_us, (!lost).then_some(complete_us), input)
                })
                .collect();
            let expected = brute_force(&Register, &events);
            let found = search(&Register, &events, Budget::UNLIMITED);
            assert_eq!(found.verdict, expected, "{events:?}");
            if expected == Verdict::Linearizable {
                let order: Vec<usize> =
                    found.longest_prefix.iter().map(|&id| id as usize).collect();
                assert!(respects_real_time(&events, &order), "{events:?} {order:?}");
                assert!(legal(&Register, &events, &order), "{events:?} {order:?}");
            }
            verdicts[usize::from(expected == Verdict::Linearizable)] += 1;
        }
        assert!(
            verdicts[0] > 50 && verdicts[1] > 50,
            "both verdicts occur: {verdicts:?}"
        );
    }
}
