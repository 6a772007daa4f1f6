//! Linearizability of an etcd v2 history: the Wing–Gong–Lowe search (`wgl`) against a
//! sequential model of the store (`model`), one partition at a time.
//!
//! **Judged:** quorum `Get`, `Set`, `Create`, `Update`, `Cas`, `Cad`, `Delete`,
//! `DeleteRecursive`, `Refresh` (the value stays, the index and deadline move), `Mkdir` and
//! `UpdateDir` and `Rmdir` (a directory is a node whose value is a marker no file has; the
//! directory drawn holds no children), quorum `List` (a
//! recursive listing reads every key of the partition under its directory at once: each listed
//! with its value and index, each unlisted absent). **Not judged:** `Get { quorum: false }` (stale reads are allowed), `Watch`
//! and `Lock` (their own checkers), and `CreateInOrder` (each creates a fresh key no other
//! operation names; the index checker covers it). Operations answered `Ret::Fail` did nothing
//! and are dropped, as are reads without an answer and answers that constrain nothing (a
//! directory listing; error codes other than 100, 101 and 105 where they apply). A write
//! without an answer (`Ret::Unknown`) may take effect at any time after its invocation, or
//! never.
//!
//! **Partitions** (P-compositionality, as in Porcupine): one per key, except that every key
//! under a directory some `DeleteRecursive` or `List` names joins that directory's partition
//! (the outermost one, if such directories nest). Partitions are checked and reported in key order.
//!
//! **Model, per key:** absent, or a file with its value, `modifiedIndex` and TTL deadline; and a
//! lower bound on the key's next index (a write must answer an index above every index linearized
//! before it on that key). Where the history cannot tell, the model accepts both ways:
//! - expiry is nondeterministic: a key whose deadline is at or before the completion of the
//!   operation touching it may or may not be gone (once seen absent, it stays absent);
//! - a write without an answer leaves its index unknown, only "above the bound"; the first read
//!   returning the node pins it, and a `prevIndex` compared with it may match or not;
//! - a success with `modifiedIndex` 0 or an unexpected action keeps no index constraint;
//! - error 105 on a key another key lies under says nothing (it may be a directory).
//!
//! **Search help from indexes:** a write answered with index `m` and a read that saw index `m`
//! are ordered on their key (writes by index, each read after the write of its index and before
//! later ones), and a state whose bound has passed such an operation still to come is dropped.
//! Reads that change nothing are taken as soon as they fit. This keeps long single-key
//! histories with many lost writes tractable (20,000 operations of 32 clients on one key, 20%
//! of the writes lost: about 10^8 steps, 5 s in release).
//!
//! The search's budget is counted in steps; a caller with a clock passes an out-of-time
//! predicate. A partition out of budget is `Verdict::Unknown`, never a pass. The longest prefix
//! reported for a failing partition respects real time, the model and the index order.

mod memo;
mod model;
mod synthetic;
mod wgl;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::history::{Call, Op, Ret};

pub use memo::fingerprint;
pub use synthetic::{synthetic_history, synthetic_history_with_losses};
pub use wgl::{Budget, Event, Model, OUT_OF_TIME_POLL_STEPS, Search, Verdict, search};

/// Search steps per partition the simulator and the fault test allow before answering
/// "unknown" (which they count as a failure, never as a pass).
pub const STEPS_MAX: u64 = 5_000_000;

/// The verdict on one partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PartitionResult {
    /// The key, or the directory for a whole-subtree partition.
    pub partition: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Operations judged in the partition.
    pub ops: usize,
    /// Ids of the longest linearizable prefix found, in linearization order (for a linearizable
    /// partition, its whole linearization).
    pub longest_prefix: Vec<u64>,
    /// For a non-linearizable partition: the operation (earliest completion) that no
    /// linearization of the longest prefix could take next. `None` otherwise.
    pub first_bad: Option<u64>,
    /// Search steps spent.
    pub steps: u64,
}

/// The verdict on a history: one result per partition, in key order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LinReport {
    /// The partitions, in key order.
    pub partitions: Vec<PartitionResult>,
}

impl LinReport {
    /// The history's verdict: not linearizable if a partition is not, else unknown if a
    /// partition is unknown, else linearizable (also when nothing was judged).
    pub fn verdict(&self) -> Verdict {
        (self.partitions.iter())
            .map(|p| p.verdict)
            .max()
            .unwrap_or(Verdict::Linearizable)
    }

    /// The first non-linearizable partition, in key order.
    pub fn first_failure(&self) -> Option<&PartitionResult> {
        (self.partitions.iter()).find(|p| p.verdict == Verdict::NotLinearizable)
    }

    /// Search steps spent over all partitions.
    pub fn steps(&self) -> u64 {
        self.partitions.iter().map(|p| p.steps).sum()
    }
}

impl std::fmt::Display for LinReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ops: usize = self.partitions.iter().map(|p| p.ops).sum();
        write!(
            f,
            "{}: {} partitions, {ops} ops, {} steps",
            self.verdict(),
            self.partitions.len(),
            self.steps()
        )?;
        for p in self
            .partitions
            .iter()
            .filter(|p| p.verdict != Verdict::Linearizable)
        {
            write!(f, "\n  {}: {} ({} ops", p.partition, p.verdict, p.ops)?;
            write!(
                f,
                ", longest linearizable prefix {}",
                p.longest_prefix.len()
            )?;
            if let Some(id) = p.first_bad {
                write!(f, ", first bad op {id}")?;
            }
            write!(f, ")")?;
        }
        Ok(())
    }
}

/// Checks `ops` (in any order; ids unique) for linearizability, partition by partition.
pub fn check(ops: &[Op], budget: Budget<'_>) -> LinReport {
    let judged: Vec<&Op> = ops.iter().filter(|op| is_judged(op)).collect();
    let roots = subtree_roots(&judged);
    let dirs = inner_keys(&judged);
    let mut groups: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in judged {
        let key = op.call.key();
        let partition = partition_of(key, &roots);
        groups.entry(partition).or_default().push(op);
    }
    let partitions = (groups.into_iter())
        .map(|(partition, ops)| {
            let compiled = model::compile(&ops, &dirs);
            let found = search(&compiled.model, &compiled.events, budget);
            PartitionResult {
                partition: partition.to_string(),
                verdict: found.verdict,
                ops: compiled.events.len(),
                longest_prefix: found.longest_prefix,
                first_bad: found.first_bad,
                steps: found.steps,
            }
        })
        .collect();
    LinReport { partitions }
}

/// The smallest core found of a non-linearizable partition (see [`minimal_failure`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MinimalFailure {
    /// Ids of the operations kept as recorded, in id order.
    pub ops: Vec<u64>,
    /// Operations of the partition that the checker judged.
    pub of: usize,
    /// True when removing any single one of `ops` was tried and made the rest linearizable
    /// (the core is 1-minimal); false when the trial budget ran out first.
    pub one_minimal: bool,
    /// Linearizability searches run.
    pub trials: u64,
}

/// Most searches [`minimal_failure`] runs.
pub const MINIMAL_TRIALS_MAX: u64 = 2_000;

/// A small set of operations of `partition` that alone is still not linearizable: delta
/// debugging (ddmin, then one at a time) over the partition's operations.
///
/// An operation left out is **relaxed**, not deleted: a read is dropped (reads only rule
/// linearizations out) and a write becomes one without an answer (it may have taken effect at
/// any time after its call, or never). Every linearization of the recorded history is one of the
/// relaxed history, so a relaxed history that is not linearizable proves the recorded one is
/// not, by the operations kept alone. A trial out of `budget` counts as linearizable.
/// `None` if the partition is linearizable (or undecided) as recorded.
pub fn minimal_failure(ops: &[Op], partition: &str, budget: Budget<'_>) -> Option<MinimalFailure> {
    let judged: Vec<&Op> = ops.iter().filter(|op| is_judged(op)).collect();
    let roots = subtree_roots(&judged);
    let dirs = inner_keys(&judged);
    let members: Vec<&Op> = (judged.iter().copied())
        .filter(|op| {
            let key = op.call.key();
            partition_of(key, &roots) == partition
        })
        .collect();
    let trials = std::cell::Cell::new(0u64);
    let fails = |keep: &BTreeSet<u64>| {
        trials.set(trials.get() + 1);
        let relaxed: Vec<Op> = (members.iter())
            .filter_map(|&op| {
                if keep.contains(&op.id) {
                    Some(op.clone())
                } else if matches!(op.call, Call::Get { .. }) {
                    None
                } else {
                    Some(Op {
                        ret: Ret::Unknown,
                        ..op.clone()
                    })
                }
            })
            .collect();
        let refs: Vec<&Op> = relaxed.iter().collect();
        let compiled = model::compile(&refs, &dirs);
        search(&compiled.model, &compiled.events, budget).verdict == Verdict::NotLinearizable
    };
    let mut kept: Vec<u64> = members.iter().map(|op| op.id).collect();
    kept.sort_unstable();
    if !fails(&kept.iter().copied().collect()) {
        return None;
    }
    // ddmin: drop a whole chunk while the rest still fails, finer chunks when none can go.
    let mut chunks = 2;
    while kept.len() >= 2 && trials.get() < MINIMAL_TRIALS_MAX {
        let size = kept.len().div_ceil(chunks);
        let smaller = (0..kept.len()).step_by(size).find_map(|from| {
            let rest: Vec<u64> = (kept.iter().enumerate())
                .filter(|(i, _)| *i < from || *i >= from + size)
                .map(|(_, id)| *id)
                .collect();
            (trials.get() < MINIMAL_TRIALS_MAX && fails(&rest.iter().copied().collect()))
                .then_some(rest)
        });
        match smaller {
            Some(rest) => {
                kept = rest;
                chunks = (chunks - 1).max(2);
            }
            None if chunks >= kept.len() => break,
            None => chunks = (chunks * 2).min(kept.len()),
        }
    }
    // One at a time, until no single operation can go.
    let mut one_minimal = false;
    while trials.get() < MINIMAL_TRIALS_MAX {
        let mut removed = false;
        for i in 0..kept.len() {
            if trials.get() >= MINIMAL_TRIALS_MAX {
                break;
            }
            let rest: BTreeSet<u64> = (kept.iter().enumerate())
                .filter(|(j, _)| *j != i)
                .map(|(_, id)| *id)
                .collect();
            if fails(&rest) {
                kept.remove(i);
                removed = true;
                break;
            }
        }
        if !removed && trials.get() < MINIMAL_TRIALS_MAX {
            one_minimal = true;
            break;
        }
        if !removed {
            break;
        }
    }
    Some(MinimalFailure {
        ops: kept,
        of: members.len(),
        one_minimal,
        trials: trials.get(),
    })
}

/// True if the checker judges `op` (see the module doc).
fn is_judged(op: &Op) -> bool {
    let judged_call = match &op.call {
        Call::Get { quorum, .. } | Call::List { quorum, .. } => *quorum && op.ret != Ret::Unknown,
        Call::Set { .. }
        | Call::Create { .. }
        | Call::Update { .. }
        | Call::Cas { .. }
        | Call::Cad { .. }
        | Call::Delete { .. }
        | Call::DeleteRecursive { .. }
        | Call::Refresh { .. }
        | Call::Mkdir { .. }
        | Call::UpdateDir { .. }
        | Call::Rmdir { .. } => true,
        Call::CreateInOrder { .. } | Call::Watch { .. } | Call::Lock { .. } => false,
    };
    judged_call && op.ret != Ret::Fail
}

/// `key` and every directory it lies under, shortest first: `/`, `/a`, `/a/b` for `/a/b`.
fn ancestors(key: &str) -> impl Iterator<Item = &str> {
    let dirs = (key.match_indices('/')).map(move |(at, _)| if at == 0 { "/" } else { &key[..at] });
    dirs.chain(std::iter::once(key))
}

/// The partition `key` belongs to: the outermost recursively deleted directory it lies under,
/// else the key itself.
fn partition_of<'a>(key: &'a str, roots: &BTreeSet<&'a str>) -> &'a str {
    ancestors(key).find(|a| roots.contains(a)).unwrap_or(key)
}

/// The directories of recursive deletes that lie under no other such directory.
fn subtree_roots<'a>(ops: &[&'a Op]) -> BTreeSet<&'a str> {
    let targets: BTreeSet<&str> = (ops.iter())
        .filter(|op| matches!(op.call, Call::DeleteRecursive { .. } | Call::List { .. }))
        .map(|op| op.call.key())
        .collect();
    (targets.iter())
        .filter(|&&t| !ancestors(t).any(|a| a != t && targets.contains(a)))
        .copied()
        .collect()
}

/// Keys of `ops` that another key of `ops` lies under.
fn inner_keys<'a>(ops: &[&'a Op]) -> BTreeSet<&'a str> {
    let keys: BTreeSet<&str> = ops.iter().map(|op| op.call.key()).collect();
    let mut inner = BTreeSet::new();
    for &key in &keys {
        for dir in ancestors(key).filter(|&a| a != key) {
            if let Some(&dir) = keys.get(dir) {
                inner.insert(dir);
            }
        }
    }
    inner
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(id: u64, (invoke_us, complete_us): (u64, u64), call: Call, ret: Ret) -> Op {
        Op {
            id,
            client: id,
            node: 0,
            invoke_us,
            complete_us,
            call,
            ret,
        }
    }

    fn get(key: &str) -> Call {
        Call::Get {
            key: key.into(),
            quorum: true,
        }
    }

    fn set(key: &str, value: &str) -> Call {
        Call::Set {
            key: key.into(),
            value: value.into(),
            expire_at_us: None,
        }
    }

    fn set_ttl(key: &str, value: &str, expire_at_us: u64) -> Call {
        Call::Set {
            key: key.into(),
            value: value.into(),
            expire_at_us: Some(expire_at_us),
        }
    }

    fn create(key: &str, value: &str) -> Call {
        Call::Create {
            key: key.into(),
            value: value.into(),
        }
    }

    fn cas(key: &str, value: &str, prev_value: Option<&str>, prev_index: Option<u64>) -> Call {
        Call::Cas {
            key: key.into(),
            value: value.into(),
            prev_value: prev_value.map(Into::into),
            prev_index,
        }
    }

    fn delete(key: &str) -> Call {
        Call::Delete { key: key.into() }
    }

    fn delete_dir(key: &str) -> Call {
        Call::DeleteRecursive { key: key.into() }
    }

    /// A successful write answering `action` with `modified_index`.
    fn wrote(action: &str, modified_index: u64) -> Ret {
        Ret::Ok {
            index: modified_index,
            action: action.into(),
            key: String::new(),
            value: None,
            modified_index,
        }
    }

    /// A read that saw `value` at `modified_index`.
    fn saw(value: &str, modified_index: u64) -> Ret {
        Ret::Ok {
            index: modified_index,
            action: "get".into(),
            key: String::new(),
            value: Some(value.into()),
            modified_index,
        }
    }

    fn err(code: u16) -> Ret {
        Ret::Err { code }
    }

    fn verdict(ops: &[Op]) -> Verdict {
        check(ops, Budget::UNLIMITED).verdict()
    }

    #[test]
    fn stale_quorum_read_after_completed_write_is_rejected() {
        let ops = [
            op(1, (0, 10), set("/x", "1"), wrote("set", 1)),
            op(2, (20, 30), set("/x", "2"), wrote("set", 2)),
            op(3, (40, 50), get("/x"), saw("1", 1)),
        ];
        assert_eq!(verdict(&ops), Verdict::NotLinearizable);
    }

    #[test]
    fn minimal_failure_keeps_only_the_ops_that_prove_it() {
        // Many good operations on /x and /y, and one stale read of /x after two writes.
        let mut ops = Vec::new();
        let mut t = 0;
        let mut id = 0;
        let mut next = |call, ret| {
            id += 1;
            t += 100;
            op(id, (t, t + 10), call, ret)
        };
        for i in 1..=10u64 {
            ops.push(next(set("/x", &format!("a{i}")), wrote("set", 2 * i - 1)));
            ops.push(next(get("/x"), saw(&format!("a{i}"), 2 * i - 1)));
            ops.push(next(set("/y", &format!("b{i}")), wrote("set", 2 * i)));
        }
        ops.push(next(get("/x"), saw("a3", 5)));
        let found = minimal_failure(&ops, "/x", Budget::UNLIMITED).unwrap();
        assert!(found.one_minimal);
        assert_eq!(found.of, 21);
        // The stale read and one later completed write of /x suffice (the write that put a3
        // there is relaxed: it may have happened, but not after the later one).
        assert_eq!(found.ops.len(), 2, "{found:?}");
        assert_eq!(*found.ops.last().unwrap(), 31);
        let relaxed_ok = minimal_failure(&ops, "/y", Budget::UNLIMITED);
        assert_eq!(relaxed_ok, None);
    }

    #[test]
    fn longest_prefix_and_first_bad_on_small_failing_history() {
        // The reads carry no index (0), so only values and real time order them.
        let ops = [
            op(1, (0, 10), set("/x", "1"), wrote("set", 1)),
            op(2, (20, 30), set("/x", "2"), wrote("set", 2)),
            op(3, (40, 50), get("/x"), saw("1", 0)),
            op(4, (45, 55), get("/x"), saw("2", 0)),
            op(5, (0, 100), get("/y"), err(100)),
        ];
        let report = check(&ops, Budget::UNLIMITED);
        let failure = report.first_failure().expect("/x fails");
        assert_eq!(failure.partition, "/x");
        // Op 4 may come next after [1, 2], op 3 never: it returned first among the rest.
        assert_eq!(failure.longest_prefix, vec![1, 2, 4]);
        assert_eq!(failure.first_bad, Some(3));
        assert_eq!(failure.ops, 4);
        let y = &report.partitions[1];
        assert_eq!(
            (y.partition.as_str(), y.verdict),
            ("/y", Verdict::Linearizable)
        );
        assert_eq!((y.longest_prefix.clone(), y.first_bad), (vec![5], None));
    }

    #[test]
    fn first_bad_names_the_read_that_indexes_place_before_a_write() {
        // Read 4 saw index 1 after write 3 (index 2) had returned: indexes put 4 before 3,
        // real time puts it after. The longest prefix stops before 3, and 4 is blamed.
        let ops = [
            op(1, (0, 10), set("/x", "1"), wrote("set", 1)),
            op(2, (20, 30), get("/x"), saw("1", 1)),
            op(3, (40, 50), set("/x", "2"), wrote("set", 2)),
            op(4, (60, 70), get("/x"), saw("1", 1)),
            op(5, (65, 75), get("/x"), saw("2", 2)),
        ];
        let report = check(&ops, Budget::UNLIMITED);
        let failure = report.first_failure().expect("/x fails");
        assert_eq!(failure.longest_prefix, vec![1, 2]);
        assert_eq!(failure.first_bad, Some(4));
    }

    #[test]
    fn cas_on_a_value_nobody_wrote_is_rejected() {
        let ops = [
            op(1, (0, 10), set("/x", "a"), wrote("set", 1)),
            op(
                2,
                (20, 30),
                cas("/x", "b", Some("zz"), None),
                wrote("compareAndSwap", 2),
            ),
        ];
        assert_eq!(verdict(&ops), Verdict::NotLinearizable);
    }

    #[test]
    fn two_successful_creates_without_delete_are_rejected() {
        let ops = [
            op(1, (0, 10), create("/x", "a"), wrote("create", 1)),
            op(2, (5, 15), create("/x", "b"), wrote("create", 2)),
        ];
        assert_eq!(verdict(&ops), Verdict::NotLinearizable);
    }

    #[test]
    fn read_of_deleted_key_after_the_delete_is_rejected() {
        let ops = [
            op(1, (0, 10), set("/x", "1"), wrote("set", 1)),
            op(2, (20, 30), delete("/x"), wrote("delete", 2)),
            op(3, (40, 50), get("/x"), saw("1", 1)),
        ];
        assert_eq!(verdict(&ops), Verdict::NotLinearizable);
    }

    #[test]
    fn concurrent_write_with_reads_of_old_then_new_is_accepted() {
        let ops = [
            op(1, (0, 10), set("/x", "1"), wrote("set", 1)),
            op(2, (20, 100), set("/x", "2"), wrote("set", 2)),
            op(3, (30, 40), get("/x"), saw("1", 1)),
            op(4, (50, 60), get("/x"), saw("2", 2)),
            op(5, (70, 80), get("/x"), saw("2", 2)),
        ];
        let report = check(&ops, Budget::UNLIMITED);
        assert_eq!(report.verdict(), Verdict::Linearizable);
        assert_eq!(report.partitions[0].longest_prefix, vec![1, 3, 2, 4, 5]);
    }

    #[test]
    fn equal_timestamps_are_concurrent() {
        // The read is invoked when the write returns: it may still see the key absent.
        let ops = [
            op(1, (0, 10), set("/x", "1"), wrote("set", 1)),
            op(2, (10, 20), get("/x"), err(100)),
        ];
        assert_eq!(verdict(&ops), Verdict::Linearizable);
    }

    #[test]
    fn unknown_write_whose_value_shows_up_later_is_accepted() {
        let ops = [
            op(1, (0, 10), set("/x", "1"), wrote("set", 1)),
            op(2, (20, 30), set("/x", "2"), Ret::Unknown),
            op(3, (100, 110), get("/x"), saw("2", 5)),
        ];
        assert_eq!(verdict(&ops), Verdict::Linearizable);
    }

    #[test]
    fn unknown_write_that_never_shows_up_is_accepted() {
        let ops = [
            op(1, (0, 10), set("/x", "1"), wrote("set", 1)),
            op(2, (20, 30), set("/x", "2"), Ret::Unknown),
            op(3, (100, 110), get("/x"), saw("1", 1)),
        ];
        assert_eq!(verdict(&ops), Verdict::Linearizable);
    }

    #[test]
    fn index_pinned_by_a_read_bounds_later_writes() {
        let ops = |later_index| {
            [
                op(1, (0, 10), set("/x", "1"), wrote("set", 1)),
                op(2, (20, 30), set("/x", "2"), Ret::Unknown),
                op(3, (100, 110), get("/x"), saw("2", 5)),
                op(4, (120, 130), set("/x", "3"), wrote("set", later_index)),
            ]
        };
        assert_eq!(verdict(&ops(6)), Verdict::Linearizable);
        assert_eq!(verdict(&ops(4)), Verdict::NotLinearizable);
    }

    #[test]
    fn unknown_write_consumes_an_index() {
        // The lost write took effect (the read saw it), so its index is between 1 and the next
        // write's: the next write cannot have index 2 ... unless the lost write had index 2.
        // Index 2 for both is impossible, and the read saw no index, so 3 is the minimum.
        let ops = |later_index| {
            [
                op(1, (0, 10), set("/x", "1"), wrote("set", 1)),
                op(2, (20, 30), set("/x", "2"), Ret::Unknown),
                op(3, (100, 110), get("/x"), saw("2", 0)),
                op(4, (120, 130), set("/x", "3"), wrote("set", later_index)),
            ]
        };
        assert_eq!(verdict(&ops(3)), Verdict::Linearizable);
        assert_eq!(verdict(&ops(2)), Verdict::NotLinearizable);
    }

    #[test]
    fn ttl_absent_after_deadline_is_accepted() {
        let ops = [
            op(1, (0, 10), set_ttl("/x", "1", 50), wrote("set", 1)),
            op(2, (60, 70), get("/x"), err(100)),
        ];
        assert_eq!(verdict(&ops), Verdict::Linearizable);
    }

    #[test]
    fn ttl_present_after_deadline_is_accepted() {
        // The leader removes expired keys later than their deadline.
        let ops = [
            op(1, (0, 10), set_ttl("/x", "1", 50), wrote("set", 1)),
            op(2, (60, 70), get("/x"), saw("1", 1)),
        ];
        assert_eq!(verdict(&ops), Verdict::Linearizable);
    }

    #[test]
    fn ttl_absent_before_deadline_is_rejected() {
        let ops = [
            op(1, (0, 10), set_ttl("/x", "1", 50), wrote("set", 1)),
            op(2, (20, 30), get("/x"), err(100)),
        ];
        assert_eq!(verdict(&ops), Verdict::NotLinearizable);
    }

    #[test]
    fn ttl_value_seen_again_after_absent_is_rejected() {
        let ops = [
            op(1, (0, 10), set_ttl("/x", "1", 50), wrote("set", 1)),
            op(2, (60, 70), get("/x"), err(100)),
            op(3, (80, 90), get("/x"), saw("1", 1)),
        ];
        assert_eq!(verdict(&ops), Verdict::NotLinearizable);
    }

    #[test]
    fn later_write_with_lower_index_is_rejected() {
        let ops = [
            op(1, (0, 10), set("/x", "1"), wrote("set", 5)),
            op(2, (20, 30), set("/x", "2"), wrote("set", 3)),
        ];
        assert_eq!(verdict(&ops), Verdict::NotLinearizable);
    }

    #[test]
    fn concurrent_writes_are_ordered_by_their_indexes() {
        // "2" got the lower index, so "1" was written last.
        let ops = |seen| {
            [
                op(1, (0, 30), set("/x", "1"), wrote("set", 5)),
                op(2, (10, 40), set("/x", "2"), wrote("set", 3)),
                op(3, (50, 60), get("/x"), seen),
            ]
        };
        assert_eq!(verdict(&ops(saw("1", 5))), Verdict::Linearizable);
        assert_eq!(verdict(&ops(saw("2", 3))), Verdict::NotLinearizable);
    }

    #[test]
    fn cas_prev_index_against_an_unknown_index_may_go_either_way() {
        let ops = |ret| {
            [
                op(1, (0, 10), set("/x", "1"), Ret::Unknown),
                op(2, (20, 30), cas("/x", "2", None, Some(7)), ret),
            ]
        };
        assert_eq!(
            verdict(&ops(wrote("compareAndSwap", 8))),
            Verdict::Linearizable
        );
        assert_eq!(verdict(&ops(err(101))), Verdict::Linearizable);
        assert_eq!(
            verdict(&ops(wrote("compareAndSwap", 7))),
            Verdict::NotLinearizable
        );
    }

    #[test]
    fn delete_recursive_puts_the_subtree_in_one_partition() {
        let ops = [
            op(1, (0, 10), set("/k1", "a"), wrote("set", 1)),
            op(2, (0, 10), set("/k2", "b"), wrote("set", 2)),
            op(3, (0, 10), set("/d/a", "c"), wrote("set", 3)),
            op(4, (0, 10), set("/d/b", "d"), wrote("set", 4)),
            op(5, (20, 30), delete_dir("/d"), wrote("delete", 5)),
            op(6, (40, 50), get("/d/a"), err(100)),
            op(7, (40, 50), get("/d/b"), err(100)),
        ];
        let report = check(&ops, Budget::UNLIMITED);
        let names: Vec<&str> = report
            .partitions
            .iter()
            .map(|p| p.partition.as_str())
            .collect();
        assert_eq!(names, ["/d", "/k1", "/k2"]);
        assert_eq!(report.partitions[0].ops, 5);
        assert_eq!(report.verdict(), Verdict::Linearizable);
    }

    #[test]
    fn key_seen_after_its_directory_was_deleted_is_rejected() {
        let ops = [
            op(1, (0, 10), set("/d/a", "c"), wrote("set", 1)),
            op(2, (0, 10), set("/d/b", "d"), wrote("set", 2)),
            op(3, (20, 30), delete_dir("/d"), wrote("delete", 3)),
            op(4, (40, 50), get("/d/b"), saw("d", 2)),
        ];
        let report = check(&ops, Budget::UNLIMITED);
        let failure = report.first_failure().expect("/d fails");
        assert_eq!(failure.partition, "/d");
        assert_eq!(failure.first_bad, Some(4));
    }

    #[test]
    fn delete_recursive_not_found_means_the_subtree_was_absent() {
        let ops = [
            op(1, (0, 10), set("/d/a", "c"), wrote("set", 1)),
            op(2, (20, 30), delete_dir("/d"), err(100)),
        ];
        assert_eq!(verdict(&ops), Verdict::NotLinearizable);
    }

    #[test]
    fn nested_recursive_deletes_join_the_outer_partition() {
        let ops = [
            op(1, (0, 10), set("/d/e/x", "1"), wrote("set", 1)),
            op(2, (0, 10), set("/d/y", "2"), wrote("set", 2)),
            op(3, (20, 30), delete_dir("/d/e"), wrote("delete", 3)),
            op(4, (40, 50), delete_dir("/d"), wrote("delete", 4)),
            op(5, (60, 70), get("/d/y"), err(100)),
            op(6, (0, 10), set("/dd", "3"), wrote("set", 5)),
        ];
        let report = check(&ops, Budget::UNLIMITED);
        let names: Vec<&str> = report
            .partitions
            .iter()
            .map(|p| p.partition.as_str())
            .collect();
        assert_eq!(names, ["/d", "/dd"]);
        assert_eq!(report.verdict(), Verdict::Linearizable);
    }

    #[test]
    fn create_refused_on_a_possible_directory_constrains_nothing() {
        let ops = [
            op(1, (0, 10), set("/a/b", "1"), wrote("set", 1)),
            op(2, (20, 30), create("/a", "x"), err(105)),
        ];
        assert_eq!(verdict(&ops), Verdict::Linearizable);
    }

    #[test]
    fn failed_and_unjudged_operations_are_ignored() {
        let ops = [
            op(1, (0, 10), set("/x", "1"), wrote("set", 1)),
            op(2, (20, 30), set("/x", "2"), Ret::Fail),
            op(3, (20, 30), set("/x", "3"), err(300)),
            op(4, (40, 50), get("/x"), Ret::Unknown),
            op(
                5,
                (40, 50),
                Call::Get {
                    key: "/x".into(),
                    quorum: false,
                },
                err(100),
            ),
            op(
                6,
                (40, 50),
                Call::CreateInOrder {
                    dir: "/q".into(),
                    value: "v".into(),
                },
                wrote("create", 9),
            ),
            op(7, (60, 70), get("/x"), saw("1", 1)),
        ];
        let report = check(&ops, Budget::UNLIMITED);
        assert_eq!(report.verdict(), Verdict::Linearizable);
        assert_eq!(report.partitions.len(), 1);
        assert_eq!(report.partitions[0].ops, 2);
    }

    #[test]
    fn budget_exhaustion_yields_unknown() {
        // 10 concurrent sets, then a read of a value none wrote: refuting it explores every
        // order of the sets the cache cannot merge.
        let mut ops: Vec<Op> = (1..=10)
            .map(|i| op(i, (0, 100), set("/x", &format!("{i}")), wrote("set", 0)))
            .collect();
        ops.push(op(99, (200, 300), get("/x"), saw("nobody", 0)));
        let report = check(&ops, Budget::steps(10));
        assert_eq!(report.verdict(), Verdict::Unknown);
        assert_eq!(report.first_failure(), None);
        assert_eq!(report.steps(), 10);
        assert_eq!(verdict(&ops), Verdict::NotLinearizable);
    }

    #[test]
    fn synthetic_history_is_linearizable_and_a_corrupted_read_is_not() {
        let mut ops = synthetic_history(20_000, 32, 50, 7);
        let report = check(&ops, Budget::UNLIMITED);
        assert_eq!(report.verdict(), Verdict::Linearizable, "{report}");
        assert_eq!(report.partitions.len(), 50);
        let read = (ops.iter_mut().skip(10_000))
            .find(|op| matches!(op.ret, Ret::Ok { .. }) && !op.call.is_write())
            .expect("the history has successful reads");
        let (id, key) = (read.id, read.call.key().to_string());
        if let Ret::Ok { value, .. } = &mut read.ret {
            *value = Some("corrupt".into());
        }
        let report = check(&ops, Budget::UNLIMITED);
        assert_eq!(report.verdict(), Verdict::NotLinearizable, "{report}");
        let failure = report.first_failure().expect("one partition fails");
        assert_eq!(failure.partition, key);
        assert_eq!(failure.first_bad, Some(id));
    }

    #[test]
    fn synthetic_history_is_deterministic() {
        assert_eq!(
            synthetic_history(500, 4, 3, 1),
            synthetic_history(500, 4, 3, 1)
        );
        assert_ne!(
            synthetic_history(500, 4, 3, 1),
            synthetic_history(500, 4, 3, 2)
        );
    }

    /// A random operation on `/d/a`, `/d/b` or (recursive delete) `/d`, with a random but
    /// well-formed answer: small value and index domains, so some histories are linearizable.
    fn random_op(rng: &mut rand_chacha::ChaCha8Rng, id: u64) -> Op {
        use rand::Rng;
        let key = ["/d/a", "/d/b"][rng.gen_range(0..2)];
        let value = ["a", "b"][rng.gen_range(0..2)];
        let index = rng.gen_range(0..=5);
        let invoke_us = rng.gen_range(0..60);
        let interval = (invoke_us, invoke_us + rng.gen_range(0..30));
        let call = match rng.gen_range(0..9) {
            0 | 1 => get(key),
            2 => set(key, value),
            3 => set_ttl(key, value, rng.gen_range(0..80)),
            4 => create(key, value),
            5 if rng.gen_bool(0.5) => cas(key, value, Some(["a", "b"][rng.gen_range(0..2)]), None),
            5 => cas(key, value, None, Some(rng.gen_range(1..=5))),
            6 => Call::Cad {
                key: key.into(),
                prev_value: Some(value.into()),
                prev_index: None,
            },
            7 => delete(key),
            _ => delete_dir("/d"),
        };
        let roll = rng.gen_range(0..10);
        let ret = match &call {
            Call::Get { .. } if roll < 3 => err(100),
            Call::Get { .. } => saw(["a", "b"][rng.gen_range(0..2)], index),
            _ if roll < 2 => Ret::Unknown,
            _ if roll < 4 => err([100, 101, 105][rng.gen_range(0..3)]),
            Call::Set { .. } => wrote("set", index),
            Call::Create { .. } => wrote("create", index),
            Call::Cas { .. } => wrote("compareAndSwap", index),
            Call::Cad { .. } => wrote("compareAndDelete", index),
            _ => wrote("delete", index),
        };
        op(id, interval, call, ret)
    }

    #[test]
    fn etcd_search_agrees_with_brute_force() {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut verdicts = [0; 2];
        for _ in 0..1_500 {
            let ops: Vec<Op> = (0..rand::Rng::gen_range(&mut rng, 2..=6))
                .map(|id| random_op(&mut rng, id))
                .collect();
            let refs: Vec<&Op> = ops.iter().collect();
            let compiled = model::compile(&refs, &BTreeSet::new());
            let expected = wgl::brute_force(&compiled.model, &compiled.events);
            let found = search(&compiled.model, &compiled.events, Budget::UNLIMITED);
            assert_eq!(found.verdict, expected, "{ops:#?}");
            verdicts[usize::from(expected == Verdict::Linearizable)] += 1;
        }
        assert!(
            verdicts[0] > 100 && verdicts[1] > 100,
            "both verdicts occur: {verdicts:?}"
        );
    }

    /// `ops` with one answer (or its interval) changed at random.
    fn mutate(rng: &mut rand_chacha::ChaCha8Rng, ops: &mut [Op]) {
        use rand::Rng;
        let at = rng.gen_range(0..ops.len());
        let op = &mut ops[at];
        match (&mut op.ret, rng.gen_range(0..4)) {
            (
                Ret::Ok {
                    value: Some(value), ..
                },
                0,
            ) => *value = "v0".into(),
            (Ret::Ok { modified_index, .. }, 1) => *modified_index += 1,
            (Ret::Ok { modified_index, .. }, 2) if *modified_index > 1 => *modified_index -= 1,
            _ => {
                let shift = rng.gen_range(0..3_000);
                op.invoke_us += shift;
                op.complete_us += shift;
            }
        }
    }

    #[test]
    fn search_agrees_with_brute_force_on_mutated_synthetic_histories() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(12);
        let mut verdicts = [0; 2];
        for seed in 0..300 {
            let mut ops = synthetic_history_with_losses(7, 3, 1, 30, seed);
            if rng.gen_bool(0.7) {
                mutate(&mut rng, &mut ops);
            }
            let refs: Vec<&Op> = ops.iter().filter(|op| is_judged(op)).collect();
            let compiled = model::compile(&refs, &BTreeSet::new());
            let expected = wgl::brute_force(&compiled.model, &compiled.events);
            let found = search(&compiled.model, &compiled.events, Budget::UNLIMITED);
            assert_eq!(found.verdict, expected, "{ops:#?}");
            verdicts[usize::from(expected == Verdict::Linearizable)] += 1;
        }
        assert!(
            verdicts[0] > 30 && verdicts[1] > 30,
            "both verdicts occur: {verdicts:?}"
        );
    }

    #[test]
    fn single_hot_key_with_lost_writes_stays_within_budget() {
        // 5,000 operations of 8 clients on one key, 10% of the writes without an answer: the
        // dead lost writes pile up, and the search must still find its way quickly.
        let ops = synthetic_history_with_losses(5_000, 8, 1, 10, 3);
        let report = check(&ops, Budget::steps(2_000_000));
        assert_eq!(report.verdict(), Verdict::Linearizable, "{report}");
    }

    fn refresh(key: &str, expire_at_us: u64) -> Call {
        Call::Refresh {
            key: key.into(),
            expire_at_us: Some(expire_at_us),
        }
    }

    #[test]
    fn a_refresh_keeps_the_value_and_moves_the_index_and_deadline() {
        // The refresh moved the index to 7: a later read at 5 is stale, one at 7 is right; the
        // deadline moved too, so the key cannot have expired at its first deadline.
        let base = [
            op(1, (0, 10), set_ttl("/x", "a", 1_000), wrote("set", 5)),
            op(2, (20, 30), refresh("/x", 5_000), wrote("update", 7)),
        ];
        let with = |read: Op| {
            let mut ops = base.to_vec();
            ops.push(read);
            verdict(&ops)
        };
        assert_eq!(
            with(op(3, (40, 50), get("/x"), saw("a", 7))),
            Verdict::Linearizable
        );
        assert_eq!(
            with(op(3, (40, 50), get("/x"), saw("a", 5))),
            Verdict::NotLinearizable
        );
        assert_eq!(
            with(op(3, (2_000, 2_010), get("/x"), err(100))),
            Verdict::NotLinearizable,
            "expired at the old deadline although refreshed"
        );
        assert_eq!(
            with(op(3, (6_000, 6_010), get("/x"), err(100))),
            Verdict::Linearizable
        );
        // A refresh that found no key says the key was absent (or expired) then.
        let ops = [
            op(1, (0, 10), set("/y", "b"), wrote("set", 3)),
            op(2, (20, 30), refresh("/y", 5_000), err(100)),
        ];
        assert_eq!(verdict(&ops), Verdict::NotLinearizable);
    }

    #[test]
    fn a_directory_with_a_ttl_exists_until_it_may_have_expired() {
        let mkdir = |expire_at_us| Call::Mkdir {
            key: "/t".into(),
            expire_at_us: Some(expire_at_us),
        };
        let update_dir = |expire_at_us| Call::UpdateDir {
            key: "/t".into(),
            expire_at_us: Some(expire_at_us),
        };
        // Created, then a second create must fail with 105 until the deadline.
        let ops = [
            op(1, (0, 10), mkdir(1_000), wrote("create", 4)),
            op(2, (20, 30), mkdir(1_000), wrote("create", 5)),
        ];
        assert_eq!(verdict(&ops), Verdict::NotLinearizable);
        let ops = [
            op(1, (0, 10), mkdir(1_000), wrote("create", 4)),
            op(2, (2_000, 2_010), mkdir(3_000), wrote("create", 6)),
        ];
        assert_eq!(verdict(&ops), Verdict::Linearizable);
        // Removed (rmdir), it is absent: a second rmdir finds nothing, a create succeeds.
        let rmdir = Call::Rmdir { key: "/t".into() };
        let ops = [
            op(1, (0, 10), mkdir(9_000), wrote("create", 4)),
            op(2, (20, 30), rmdir.clone(), wrote("delete", 5)),
            op(3, (40, 50), rmdir.clone(), err(100)),
            op(4, (60, 70), mkdir(9_000), wrote("create", 6)),
        ];
        assert_eq!(verdict(&ops), Verdict::Linearizable);
        let ops = [
            op(1, (0, 10), mkdir(9_000), wrote("create", 4)),
            op(2, (20, 30), rmdir, err(100)),
        ];
        assert_eq!(verdict(&ops), Verdict::NotLinearizable);
        // Its TTL moved to 5,000: it cannot be gone at 2,000.
        let ops = [
            op(1, (0, 10), mkdir(1_000), wrote("create", 4)),
            op(2, (20, 30), update_dir(5_000), wrote("update", 5)),
            op(3, (2_000, 2_010), update_dir(9_000), err(100)),
        ];
        assert_eq!(verdict(&ops), Verdict::NotLinearizable);
    }

    #[test]
    fn a_quorum_listing_reads_every_key_under_its_directory_at_once() {
        let list = Call::List {
            key: "/d".into(),
            sorted: true,
            quorum: true,
        };
        let listed = |nodes: &[(&str, &str, u64)]| Ret::Listing {
            index: 9,
            nodes: nodes
                .iter()
                .map(|(k, v, i)| crate::history::Listed {
                    key: (*k).into(),
                    value: Some((*v).into()),
                    dir: false,
                    modified_index: *i,
                })
                .collect(),
        };
        let base = [
            op(1, (0, 10), set("/d/a", "1"), wrote("set", 4)),
            op(2, (20, 30), set("/d/b", "2"), wrote("set", 5)),
        ];
        let with = |read: Op| {
            let mut ops = base.to_vec();
            ops.push(read);
            verdict(&ops)
        };
        let both = listed(&[("/d/a", "1", 4), ("/d/b", "2", 5)]);
        assert_eq!(
            with(op(3, (40, 50), list.clone(), both)),
            Verdict::Linearizable
        );
        // /d/b was written before the listing began: leaving it out is a stale read.
        let stale = listed(&[("/d/a", "1", 4)]);
        assert_eq!(
            with(op(3, (40, 50), list.clone(), stale.clone())),
            Verdict::NotLinearizable
        );
        // Concurrent with the second write, either listing is fine.
        assert_eq!(
            with(op(3, (15, 25), list.clone(), stale)),
            Verdict::Linearizable
        );
        // A directory that did not exist: nothing under it did.
        assert_eq!(
            with(op(3, (40, 50), list, err(100))),
            Verdict::NotLinearizable
        );
    }
}
