//! The index checker: the etcd store index as clients see it.
//!
//! - every successful write has its own `modifiedIndex`;
//! - a write that finished before another began has the lower index;
//! - the `X-Etcd-Index` of linearizable answers (writes and quorum reads) never goes back in
//!   real time: an operation that starts after another one finished sees at least its index.
//!
//! Crashes and restarts are inside the history, so the rules hold across them too. Local
//! (non-quorum) reads may be stale and are not judged. O(n log n) in the history's length.

use std::collections::BTreeMap;

use super::HistoryViolation;
use super::history::{Call, Op, Ret};

fn is_write(op: &Op) -> bool {
    op.call.is_write()
}

fn is_linearizable(op: &Op) -> bool {
    match op.call {
        Call::Get { quorum, .. } => quorum,
        _ => is_write(op),
    }
}

/// Checks the index rules over `ops`.
pub fn check_index(ops: &[Op]) -> Result<(), HistoryViolation> {
    unique_write_indexes(ops)?;
    let writes: Vec<(u64, u64, u64, u64)> = ops
        .iter()
        .filter(|op| is_write(op))
        .filter_map(|op| match op.ret {
            Ret::Ok { modified_index, .. } if modified_index > 0 => {
                Some((op.invoke_us, op.complete_us, modified_index, op.id))
            }
            _ => None,
        })
        .collect();
    real_time_order(&writes, "a write that finished first has the lower index")?;
    let seen: Vec<(u64, u64, u64, u64)> = ops
        .iter()
        .filter(|op| is_linearizable(op))
        .filter_map(|op| match op.ret {
            Ret::Ok { index, .. } => Some((op.invoke_us, op.complete_us, index, op.id)),
            _ => None,
        })
        .collect();
    real_time_order(&seen, "the store index never goes back")
}

fn unique_write_indexes(ops: &[Op]) -> Result<(), HistoryViolation> {
    let mut by_index: BTreeMap<u64, u64> = BTreeMap::new();
    for op in ops.iter().filter(|op| is_write(op)) {
        let Ret::Ok { modified_index, .. } = op.ret else {
            continue;
        };
        if modified_index == 0 {
            continue;
        }
        if let Some(other) = by_index.insert(modified_index, op.id) {
            return Err(HistoryViolation {
                rule: "every successful write has its own index",
                op: Some(op.id),
                detail: format!(
                    "operations {other} and {} both wrote at index {modified_index}",
                    op.id
                ),
            });
        }
    }
    Ok(())
}

/// `(invoke, complete, index, id)`: an entry invoked after another completed must not have a
/// lower index (strictly higher when `rule` is about writes, which all differ anyway).
fn real_time_order(
    entries: &[(u64, u64, u64, u64)],
    rule: &'static str,
) -> Result<(), HistoryViolation> {
    let mut by_invoke: Vec<usize> = (0..entries.len()).collect();
    by_invoke.sort_by_key(|&i| (entries[i].0, entries[i].3));
    let mut by_complete: Vec<usize> = (0..entries.len()).collect();
    by_complete.sort_by_key(|&i| (entries[i].1, entries[i].3));
    // The highest index among entries completed strictly before the current invocation.
    let mut best: Option<usize> = None;
    let mut done = 0;
    for &i in &by_invoke {
        let (invoke, _, index, id) = entries[i];
        while done < by_complete.len() && entries[by_complete[done]].1 < invoke {
            let j = by_complete[done];
            if best.is_none_or(|b| entries[j].2 > entries[b].2) {
                best = Some(j);
            }
            done += 1;
        }
        if let Some(b) = best
            && entries[b].2 > index
        {
            let (_, complete, before, other) = entries[b];
            return Err(HistoryViolation {
                rule,
                op: Some(id),
                detail: format!(
                    "operation {id} began at {invoke} µs and saw index {index}, after operation {other} had finished at {complete} µs with index {before}"
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(id: u64, (invoke, complete): (u64, u64), call: Call, index: u64) -> Op {
        Op {
            id,
            client: id,
            node: 1,
            invoke_us: invoke,
            complete_us: complete,
            call,
            ret: Ret::Ok {
                index,
                action: "set".into(),
                key: "/a".into(),
                value: Some("v".into()),
                modified_index: index,
            },
        }
    }

    fn set() -> Call {
        Call::Set {
            key: "/a".into(),
            value: "v".into(),
            expire_at_us: None,
        }
    }

    fn quorum_get() -> Call {
        Call::Get {
            key: "/a".into(),
            quorum: true,
        }
    }

    #[test]
    fn increasing_indexes_in_real_time_pass() {
        let ops = [
            op(0, (0, 10), set(), 1),
            op(1, (5, 20), set(), 3),
            op(2, (6, 8), set(), 2),
            op(3, (30, 40), quorum_get(), 3),
        ];
        assert!(check_index(&ops).is_ok());
    }

    #[test]
    fn a_reused_index_fails() {
        let ops = [op(0, (0, 10), set(), 4), op(1, (20, 30), set(), 4)];
        let v = check_index(&ops).unwrap_err();
        assert_eq!(v.rule, "every successful write has its own index");
    }

    #[test]
    fn a_later_write_with_a_lower_index_fails() {
        let ops = [op(0, (0, 10), set(), 5), op(1, (11, 30), set(), 4)];
        assert_eq!(check_index(&ops).unwrap_err().op, Some(1));
    }

    #[test]
    fn a_quorum_read_that_goes_back_fails_and_a_concurrent_one_passes() {
        let ops = [op(0, (0, 10), set(), 5), op(1, (10, 30), quorum_get(), 4)];
        assert!(check_index(&ops).is_ok(), "equal times are concurrent");
        let ops = [op(0, (0, 10), set(), 5), op(1, (11, 30), quorum_get(), 4)];
        assert_eq!(
            check_index(&ops).unwrap_err().rule,
            "the store index never goes back"
        );
    }
}
