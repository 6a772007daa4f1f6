//! The event history that watches read (store/README.md §8; `G<n>` numbers are its recorded
//! transcripts, §Transcripts).
//!
//! Depends on `event`, `error` and `key`. The live watcher registry (wake-up on apply) sits
//! above this and only needs `History::first_match`.

use std::collections::VecDeque;

use super::error::{ErrorCode, StoreError};
use super::event::Event;
use super::key;

/// How many events the history keeps: etcd v2's `newWatchHub(1000)` (store/README.md §3.6, G131).
pub const WATCH_HISTORY_MAX: usize = 1000;

/// The last `capacity` events, store-wide, oldest first.
///
/// Invariant: indexes strictly increase from front to back; `cleared` is false until the first
/// event has been dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct History {
    events: VecDeque<Event>,
    capacity: usize,
    cleared: bool,
}

impl History {
    /// An empty history keeping at most `capacity` events (at least one).
    pub(crate) fn new(capacity: usize) -> History {
        History {
            events: VecDeque::new(),
            capacity: capacity.max(1),
            cleared: false,
        }
    }

    /// Appends an event, dropping the oldest one past the capacity.
    pub(crate) fn push(&mut self, event: Event) {
        if let Some(last) = self.events.back() {
            assert!(last.index < event.index, "history indexes must increase");
        }
        if self.events.len() == self.capacity {
            self.events.pop_front();
            self.cleared = true;
        }
        self.events.push_back(event);
    }

    /// The kept events, oldest first, whether older ones were dropped, and the capacity: what a
    /// snapshot saves.
    pub(crate) fn parts(&self) -> (Vec<Event>, bool, usize) {
        (
            self.events.iter().cloned().collect(),
            self.cleared,
            self.capacity,
        )
    }

    /// A history restored from a snapshot's parts, checking that indexes increase.
    pub(crate) fn restored(
        events: Vec<Event>,
        cleared: bool,
        capacity: usize,
    ) -> Result<History, String> {
        if capacity == 0 || events.len() > capacity {
            return Err(format!("{} events over capacity {capacity}", events.len()));
        }
        if events.windows(2).any(|w| w[0].index >= w[1].index) {
            return Err("event indexes do not increase".into());
        }
        Ok(History {
            events: events.into(),
            capacity,
            cleared,
        })
    }

    /// Forgets the newest event (only the planted bug `index_reuse` does).
    #[cfg(feature = "planted-bugs")]
    pub(crate) fn pop_newest(&mut self) {
        self.events.pop_back();
    }

    /// The first index still answerable: the oldest kept event once anything was dropped, else 0
    /// (nothing has been cleared, so every earlier `waitIndex` simply scans from the start, G49).
    pub(crate) fn start_index(&self) -> u64 {
        match self.events.front() {
            Some(first) if self.cleared => first.index,
            _ => 0,
        }
    }

    /// The first event at index >= `since` that a watch on `watched` would report.
    ///
    /// store/README.md §8.2: `since` below the window is error 401, cause
    /// `the requested history has been cleared [<start>/<since>]`, index = `current_index`.
    pub(crate) fn first_match(
        &self,
        watched: &str,
        recursive: bool,
        since: u64,
        current_index: u64,
    ) -> Result<Option<Event>, StoreError> {
        let start = self.start_index();
        if since < start {
            let cause = format!("the requested history has been cleared [{start}/{since}]");
            return Err(StoreError::new(
                ErrorCode::EventIndexCleared,
                cause,
                current_index,
            ));
        }
        let skip = self.events.partition_point(|event| event.index < since);
        let found = self
            .events
            .iter()
            .skip(skip)
            .find(|e| matches(e, watched, recursive));
        Ok(found.cloned())
    }
}

/// Whether a watch on `watched` reports `event` (store/README.md §8.3).
pub fn matches(event: &Event, watched: &str, recursive: bool) -> bool {
    // store/README.md §4.4, §8.3: refresh events are recorded but never fire watchers (G191).
    if event.refresh {
        return false;
    }
    let event_key = event.node.key.as_str();
    if event_key == watched {
        return true;
    }
    // A recursive watch sees its subtree, minus keys hidden below the watched path (G116, G121).
    let prefix = key::child_prefix(watched);
    if recursive && event_key.starts_with(&prefix) && !key::hidden_below(watched, event_key) {
        return true;
    }
    // Deleting or expiring a directory ends every watch inside it (G118, G192).
    event.action.is_removal()
        && event.node.dir
        && watched.starts_with(&key::child_prefix(event_key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::event::{Action, NodeView};

    fn event(action: Action, key: &str, dir: bool, index: u64) -> Event {
        let node = NodeView {
            key: key.to_string(),
            dir,
            value: None,
            expire_at_ms: None,
            nodes: Vec::new(),
            modified_index: index,
            created_index: index,
        };
        Event {
            action,
            node,
            prev_node: None,
            index,
            refresh: false,
        }
    }

    #[test]
    fn match_rules() {
        let set = event(Action::Set, "/w/a/b", false, 1);
        assert!(matches(&set, "/w/a/b", false));
        assert!(
            !matches(&set, "/w", false),
            "non-recursive watch ignores children (G117)"
        );
        assert!(matches(&set, "/w", true));
        assert!(matches(&set, "/", true));
        assert!(!matches(&set, "/w/a/bc", true));
        let hidden = event(Action::Set, "/_hid/x", false, 2);
        assert!(!matches(&hidden, "/", true), "G121");
        assert!(matches(&hidden, "/_hid/x", false), "G122");
        assert!(
            matches(&hidden, "/_hid", true),
            "hidden only below the watched path"
        );
        let rm = event(Action::Delete, "/w", true, 3);
        assert!(matches(&rm, "/w/a/b", false), "G118");
        assert!(!matches(&rm, "/wx", false), "only real descendants");
        let rm_file = event(Action::Delete, "/w", false, 4);
        assert!(!matches(&rm_file, "/w/a", false));
        let mut refresh = event(Action::Update, "/w/a/b", false, 5);
        refresh.refresh = true;
        assert!(!matches(&refresh, "/w/a/b", false), "G191");
    }

    #[test]
    fn window_and_cleared_error() {
        let mut history = History::new(3);
        for index in 1..=5 {
            history.push(event(Action::Set, "/k", false, index));
        }
        assert_eq!(history.start_index(), 3);
        let err = history.first_match("/k", false, 2, 5).unwrap_err();
        assert_eq!(err.code, ErrorCode::EventIndexCleared);
        assert_eq!(err.cause, "the requested history has been cleared [3/2]");
        assert_eq!(err.index, 5);
        let found = history.first_match("/k", false, 4, 5).unwrap().unwrap();
        assert_eq!(found.index, 4);
        assert_eq!(history.first_match("/k", false, 6, 5).unwrap(), None);
    }
}
