//! The watch checker: every watch is answered with exactly the first committed event that
//! matches it at or after its `waitIndex`, and error 401 only when that index really left the
//! 1,000-event window.
//!
//! Ground truth is the committed event sequence (`CommittedEvent`s in index order): the
//! simulator builds it by applying each committed entry once to this crate's own store replica
//! (`crate::replica`); a harness on a real cluster can build it from a recursive watch on `/`
//! that never fell behind. A client
//! that watches again from the index after each event it saw therefore gets every matching
//! event once, in index order, none before its `waitIndex`.
//!
//! Which events a watch sees is decided here, from etcd's v2 API documentation
//! (<https://etcd.io/docs/v2.3/api/#waiting-for-a-change>) and its v2 store's watcher hub, not by
//! the store being judged.

use super::HistoryViolation;
use super::history::{Call, Op, Ret};

/// How many events etcd v2 keeps for watches that start in the past: a `waitIndex` older than
/// the oldest of the last 1,000 events is answered 401 "event index cleared".
pub const WATCH_HISTORY_MAX: usize = 1000;

/// One committed store event and when it was first applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedEvent {
    /// When the first replica applied it (the history's time base, µs).
    pub at_us: u64,
    /// The store index it got (its `modifiedIndex`).
    pub index: u64,
    /// The action's wire name (`set`, `create`, `delete`, `expire`...).
    pub action: String,
    /// The key it concerns.
    pub key: String,
    /// True if that key is (was, for a removal) a directory.
    pub dir: bool,
    /// True for a TTL refresh (`refresh=true`): kept in the event history, but it fires no
    /// watch.
    pub refresh: bool,
}

impl CommittedEvent {
    fn is_removal(&self) -> bool {
        matches!(
            self.action.as_str(),
            "delete" | "compareAndDelete" | "expire"
        )
    }
}

/// `key` strictly below `dir`: the path after `dir/`, if any.
fn below<'a>(dir: &str, key: &'a str) -> Option<&'a str> {
    let rest = if dir == "/" {
        key.strip_prefix('/')?
    } else {
        key.strip_prefix(dir)?.strip_prefix('/')?
    };
    (!rest.is_empty()).then_some(rest)
}

/// Whether a watch on `watched` (`recursive` or not) is answered with `event`, by etcd v2's
/// rules:
/// - a refresh never fires a watch;
/// - an event on the watched key itself always does;
/// - a recursive watch also sees events on any key below it, except keys hidden below the
///   watched path (a path segment after it starting with `_`);
/// - removing (deleting, expiring) a directory also answers every watch on a key inside it.
pub fn matches(event: &CommittedEvent, watched: &str, recursive: bool) -> bool {
    if event.refresh {
        return false;
    }
    if event.key == watched {
        return true;
    }
    if recursive
        && let Some(rest) = below(watched, &event.key)
        && !rest.split('/').any(|segment| segment.starts_with('_'))
    {
        return true;
    }
    event.is_removal() && event.dir && below(&event.key, watched).is_some()
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
    let from = events.partition_point(|e| e.index < wait_index);
    let expected = events[from..].iter().find(|e| matches(e, key, recursive));
    let detail = match expected {
        Some(e) if e.index == index && e.action == action && e.key == seen_key => {
            return Ok(());
        }
        Some(e) => format!(
            "watch on {key} (recursive: {recursive}) from {wait_index} answered {action} {seen_key} at {index}; the first matching committed event is {} {} at {}",
            e.action, e.key, e.index
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
        .map(|first_kept| events[first_kept].index);
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

    /// Plain sets, each at the next index, ten µs apart.
    fn committed(keys: &[&str]) -> Vec<CommittedEvent> {
        keys.iter()
            .enumerate()
            .map(|(i, key)| CommittedEvent {
                at_us: i as u64 * 10,
                index: i as u64 + 1,
                action: "set".into(),
                key: (*key).into(),
                dir: false,
                refresh: false,
            })
            .collect()
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
        let events = committed(&["/a", "/b", "/a", "/a"]);
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
    fn a_refresh_fires_nothing() {
        let mut events = committed(&["/a", "/a"]);
        events[0].refresh = true;
        assert!(check_watches(&[watch(1, fired(2))], &events).is_ok());
        assert!(check_watches(&[watch(1, fired(1))], &events).is_err());
    }

    #[test]
    fn matching_rules() {
        let event = |key: &str, action: &str, dir: bool| CommittedEvent {
            at_us: 0,
            index: 1,
            action: action.into(),
            key: key.into(),
            dir,
            refresh: false,
        };
        let set = event("/d/x", "set", false);
        assert!(matches(&set, "/d/x", false));
        assert!(!matches(&set, "/d", false));
        assert!(matches(&set, "/d", true));
        assert!(matches(&set, "/", true));
        assert!(!matches(&set, "/d/x/y", true));
        // `/dx` is not below `/d`.
        assert!(!matches(&event("/dx", "set", false), "/d", true));
        // Hidden keys below the watched path are not seen recursively, but are when watched.
        let hidden = event("/d/_h/x", "set", false);
        assert!(!matches(&hidden, "/d", true));
        assert!(matches(&hidden, "/d/_h", true));
        // Removing a directory answers watches inside it.
        assert!(matches(&event("/d", "delete", true), "/d/x", false));
        assert!(matches(&event("/d", "expire", true), "/d/x/y", false));
        assert!(!matches(&event("/d", "set", true), "/d/x", false));
        assert!(!matches(&event("/d", "delete", false), "/d/x", false));
    }

    #[test]
    fn error_401_only_when_the_window_passed() {
        let few = committed(&["/a", "/a"]);
        assert!(check_watches(&[watch(1, Ret::Err { code: 401 })], &few).is_err());
        let keys = vec!["/b"; 1_100];
        let mut events = committed(&keys);
        for e in &mut events {
            e.at_us = 0;
        }
        assert!(check_watches(&[watch(50, Ret::Err { code: 401 })], &events).is_ok());
        assert!(check_watches(&[watch(1_050, Ret::Err { code: 401 })], &events).is_err());
    }
}
