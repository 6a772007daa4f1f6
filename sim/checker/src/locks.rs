//! The lock checker: mutual exclusion with fencing.
//!
//! Each successful `Lock` operation is a holding interval `[hold_from, hold_to]` with a fencing
//! token (the lock entry's index). A register guarded by the lock takes a write stamped with
//! the holder's token at both ends of every holding; it must never be offered a lower token
//! after a higher one. Holding intervals of one lock never overlap. O(n log n).

use std::collections::BTreeMap;

use super::HistoryViolation;
use super::history::{Call, Op, Ret};

/// One holding: (from, to, token, op id).
type Hold = (u64, u64, u64, u64);

/// Checks every lock of `ops`.
pub fn check_locks(ops: &[Op]) -> Result<(), HistoryViolation> {
    let mut by_lock: BTreeMap<&str, Vec<Hold>> = BTreeMap::new();
    for op in ops {
        if let (
            Call::Lock {
                name,
                hold_from_us,
                hold_to_us,
            },
            Ret::Ok { index, .. },
        ) = (&op.call, &op.ret)
        {
            by_lock
                .entry(name)
                .or_default()
                .push((*hold_from_us, *hold_to_us, *index, op.id));
        }
    }
    for (name, mut holds) in by_lock {
        holds.sort_unstable();
        check_one(name, &holds)?;
    }
    Ok(())
}

fn check_one(name: &str, holds: &[Hold]) -> Result<(), HistoryViolation> {
    // The holding that reaches furthest so far, and the one with the highest token.
    let Some(&first) = holds.first() else {
        return Ok(());
    };
    let (mut longest, mut highest) = (first, first);
    for &hold in &holds[1..] {
        let (from, to, token, id) = hold;
        let (from_a, to_a, token_a, id_a) = longest;
        if from < to_a {
            return Err(HistoryViolation {
                rule: "holders of a lock never overlap",
                op: Some(id),
                detail: format!(
                    "lock {name}: operation {id} held it [{from}, {to}] µs with token {token} while operation {id_a} held it [{from_a}, {to_a}] µs with token {token_a}"
                ),
            });
        }
        let (_, to_h, token_h, id_h) = highest;
        if token <= token_h {
            return Err(HistoryViolation {
                rule: "fencing: the guarded register never sees a lower token after a higher one",
                op: Some(id),
                detail: format!(
                    "lock {name}: token {token} (operation {id}, from {from} µs) came after token {token_h} (operation {id_h}, until {to_h} µs)"
                ),
            });
        }
        if to > to_a {
            longest = hold;
        }
        highest = hold;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hold(id: u64, from: u64, to: u64, token: u64) -> Op {
        Op {
            id,
            client: id,
            node: 1,
            invoke_us: from.saturating_sub(5),
            complete_us: to + 5,
            call: Call::Lock {
                name: "w".into(),
                hold_from_us: from,
                hold_to_us: to,
            },
            ret: Ret::Ok {
                index: token,
                action: "lock".into(),
                key: "w".into(),
                value: None,
                modified_index: token,
            },
        }
    }

    #[test]
    fn disjoint_holds_with_growing_tokens_pass() {
        assert!(check_locks(&[hold(0, 0, 10, 3), hold(1, 11, 20, 9), hold(2, 25, 30, 12)]).is_ok());
    }

    #[test]
    fn overlapping_holds_fail() {
        let v = check_locks(&[hold(0, 0, 10, 3), hold(1, 5, 20, 9)]).unwrap_err();
        assert_eq!(v.rule, "holders of a lock never overlap");
    }

    #[test]
    fn an_overlap_with_an_earlier_long_hold_fails() {
        let ops = [hold(0, 0, 100, 3), hold(1, 10, 20, 5), hold(2, 30, 40, 7)];
        assert_eq!(check_locks(&ops).unwrap_err().op, Some(1));
        let ops = [hold(0, 0, 100, 3), hold(2, 150, 160, 7)];
        assert!(check_locks(&ops).is_ok());
    }

    #[test]
    fn a_lower_token_after_a_higher_one_fails() {
        let v = check_locks(&[hold(0, 0, 10, 9), hold(1, 11, 20, 3)]).unwrap_err();
        assert_eq!(v.op, Some(1));
    }
}
