//! The watch checker: every watch is answered with exactly the first committed event that
//! matches it at or after its `waitIndex`, and error 401 only when that index really left the
//! 1,000-event window.
//!
//! Ground truth is the committed event sequence (`CommittedEvent`s in index order): the
//! simulator builds it by applying each committed entry once to a reference store; a harness on
//! a real cluster can build it from a recursive watch on `/` that never fell behind. A client
//! that watches again from the index after each event it saw therefore gets every matching
//! event once, in index order, none before its `waitIndex`.

use engine::store::{Event, WATCH_HISTORY_MAX, watch_matches};

use super::HistoryViolation;
use super::history::{Call, Op, Ret};

/// One committed store event and when it was first applied.
#[derive(Clone, Debug)]
pub struct CommittedEvent {
    /// When the first replica applied it (the history's time base, µs).
    pub at_us: u64,
    /// The event.
    pub event: Event,
}

/// Checks every answered watch of `ops` against `events` (index order).
pub fn check_watches(ops: &[Op], events: &[CommittedEvent]) -> Result<(), HistoryViolation> {
    for op in ops {
        let Call::Watch {
            key,
            recursive,
            wait_index,
        } = &op.call
        else {
            continue;
        };
        match &op.ret {
            Ret::Ok {
                index,
                action,
                key: seen_key,
                ..
            } => check_fired(
                op,
                (key, *recursive, *wait_index),
                events,
                (*index, action, seen_key),
            )?,
            Ret::Err { code: 401 } => check_cleared(op, *wait_index, events)?,
            _ => {}
        }
    }
    Ok(())
}

fn check_fired(
    op: &Op,
    (key, recursive, wait_index): (&str, bool, u64),
    events: &[CommittedEvent],
    (index, action, seen_key): (u64, &str, &str),
) -> Result<(), HistoryViolation> {
    let from = events.partition_point(|e| e.event.index < wait_index);
    let expected = events[from..]
        .iter()
        .find(|e| watch_matches(&e.event, key, recursive));
    let detail = match expected {
        Some(e)
            if e.event.index == index
                && e.event.action.as_str() == action
                && e.event.node.key == seen_key =>
        {
            return Ok(());
        }
        Some(e) => format!(
            "watch on {key} (recursive: {recursive}) from {wait_index} answered {action} {seen_key} at {index}; the first matching committed event is {} {} at {}",
            e.event.action.as_str(),
            e.event.node.key,
            e.event.index
        ),
        None => format!(
            "watch on {key} (recursive: {recursive}) from {wait_index} answered {action} {seen_key} at {index}, but no matching event was committed at or after {wait_index}"
        ),
    };
    Err(HistoryViolation {
        rule: "a watch gets the first matching committed event at or after its waitIndex",
        op: Some(op.id),
        detail,
    })
}

fn check_cleared(
    op: &Op,
    wait_index: u64,
    events: &[CommittedEvent],
) -> Result<(), HistoryViolation> {
    let committed = events.partition_point(|e| e.at_us <= op.complete_us);
    let window_start = committed
        .checked_sub(WATCH_HISTORY_MAX)
        .map(|first_kept| events[first_kept].event.index);
    if window_start.is_some_and(|start| wait_index < start) {
        return Ok(());
    }
    Err(HistoryViolation {
        rule: "error 401 only once the waitIndex left the event window",
        op: Some(op.id),
        detail: format!(
            "watch from {wait_index} got 401 with {committed} events committed (window starts at {window_start:?})"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::store::{Command, Store};

    fn committed(commands: &[Command]) -> Vec<CommittedEvent> {
        let mut store = Store::default();
        let mut out = Vec::new();
        for (i, c) in commands.iter().enumerate() {
            let applied = store.apply(c).expect("applies");
            for e in applied.events() {
                out.push(CommittedEvent {
                    at_us: i as u64 * 10,
                    event: e.clone(),
                });
            }
        }
        out
    }

    fn set(key: &str, value: &str) -> Command {
        Command::Set {
            key: key.into(),
            dir: false,
            value: value.into(),
            expire_at_ms: None,
            refresh: false,
        }
    }

    fn watch(wait_index: u64, ret: Ret) -> Op {
        Op {
            id: 7,
            client: 0,
            node: 1,
            invoke_us: 0,
            complete_us: 100,
            call: Call::Watch {
                key: "/a".into(),
                recursive: false,
                wait_index,
            },
            ret,
        }
    }

    fn fired(index: u64) -> Ret {
        Ret::Ok {
            index,
            action: "set".into(),
            key: "/a".into(),
            value: None,
            modified_index: index,
        }
    }

    #[test]
    fn the_first_matching_event_passes_and_a_skipped_one_fails() {
        let events = committed(&[
            set("/a", "1"),
            set("/b", "x"),
            set("/a", "2"),
            set("/a", "3"),
        ]);
        assert!(check_watches(&[watch(2, fired(3))], &events).is_ok());
        assert!(check_watches(&[watch(1, fired(1))], &events).is_ok());
        let skipped = check_watches(&[watch(2, fired(4))], &events).unwrap_err();
        assert_eq!(skipped.op, Some(7));
        // An event from before the waitIndex.
        assert!(check_watches(&[watch(2, fired(1))], &events).is_err());
        // An event never committed.
        assert!(check_watches(&[watch(5, fired(5))], &events).is_err());
    }

    #[test]
    fn error_401_only_when_the_window_passed() {
        let few = committed(&[set("/a", "1"), set("/a", "2")]);
        assert!(check_watches(&[watch(1, Ret::Err { code: 401 })], &few).is_err());
        let many: Vec<Command> = (0..1_100).map(|i| set("/b", &i.to_string())).collect();
        let mut events = committed(&many);
        for e in &mut events {
            e.at_us = 0;
        }
        assert!(check_watches(&[watch(50, Ret::Err { code: 401 })], &events).is_ok());
        assert!(check_watches(&[watch(1_050, Ret::Err { code: 401 })], &events).is_err());
    }
}
