//! The etcd v2 store: a pure, deterministic state machine over a key tree. Its specification is
//! `README.md` in this folder (cited as store/README.md §n; `G<n>` numbers are its recorded
//! transcripts, §Transcripts).
//!
//! Layers, bottom to top (nothing imports from a layer above it):
//! - [`key`], [`error`], [`event`], [`ttl`]: plain data and pure helpers.
//! - `tree`: files and directories in one ordered map, plus the expiry index.
//! - `watch`: the event history that watches scan.
//! - [`command`]: the replicated commands and their construction from form parameters.
//! - [`Store`] (this module and `apply`): applies commands, serves reads and history queries.
//! - [`render`]: the exact JSON bodies of etcd v2.
//!
//! No Raft knowledge, no clock (time arrives as `now_ms` inside commands or as an argument), no
//! hash-ordered collections, no recursion. Only successful mutations advance the store index.

mod apply;
pub mod command;
pub mod error;
pub mod event;
pub mod key;
pub mod render;
mod tree;
pub mod ttl;
mod watch;

pub use command::{Command, DecodeError, WriteMethod, command_from_params};
pub use error::{ErrorCode, StoreError};
pub use event::{Action, Event, NodeView};
pub use render::{ExpirationStyle, render, render_error, render_with, success_status};
pub use watch::{WATCH_HISTORY_MAX, matches as watch_matches};

use tree::Tree;
use watch::History;

/// What applying one command produced.
// One value per applied command, moved straight to its client: boxing the event buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// A client command's single event.
    Event(Event),
    /// The `expire` events of one `Expire` command, in index order (possibly none).
    Expired(Vec<Event>),
}

impl Applied {
    /// Every event, in index order.
    pub fn events(&self) -> &[Event] {
        match self {
            Applied::Event(event) => std::slice::from_ref(event),
            Applied::Expired(events) => events,
        }
    }

    /// The single event of a client command; `None` for an `Expire` result.
    pub fn into_event(self) -> Option<Event> {
        match self {
            Applied::Event(event) => Some(event),
            Applied::Expired(_) => None,
        }
    }
}

/// The etcd v2 store.
///
/// Invariant: `index` equals the index of the newest event in the history (or the start index
/// before any mutation), and each successful mutation adds exactly one event per index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Store {
    tree: Tree,
    index: u64,
    history: History,
}

/// The format of [`Store::snapshot`].
const IMAGE_VERSION: u32 = 1;

/// What a store snapshot holds.
#[derive(serde::Serialize, serde::Deserialize)]
struct Image {
    version: u32,
    index: u64,
    nodes: Vec<(String, tree::Node)>,
    events: Vec<Event>,
    cleared: bool,
    capacity: u64,
}

/// A point-in-time view of a [`Store`] ([`Store::snapshot_view`]), independent of the store's
/// later changes, that [`StoreView::encode`]s to the bytes [`Store::snapshot`] gives.
#[derive(Clone, Debug)]
pub struct StoreView {
    index: u64,
    nodes: imbl::OrdMap<String, tree::Node>,
    events: Vec<Event>,
    cleared: bool,
    capacity: u64,
}

/// [`Image`] as it is written, borrowing the view's nodes instead of collecting copies.
#[derive(serde::Serialize)]
struct ImageRef<'a> {
    version: u32,
    index: u64,
    nodes: NodesRef<'a>,
    events: &'a [Event],
    cleared: bool,
    capacity: u64,
}

/// The nodes of a view, serialised as the sequence of pairs [`Image`] reads back.
struct NodesRef<'a>(&'a imbl::OrdMap<String, tree::Node>);

impl serde::Serialize for NodesRef<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for pair in self.0.iter() {
            seq.serialize_element(&pair)?;
        }
        seq.end()
    }
}

impl StoreView {
    /// The snapshot bytes (the format of [`Store::snapshot`]). Takes time in proportion to the
    /// store's size: the node loop calls it off the loop.
    pub fn encode(&self) -> Vec<u8> {
        let image = ImageRef {
            version: IMAGE_VERSION,
            index: self.index,
            nodes: NodesRef(&self.nodes),
            events: &self.events,
            cleared: self.cleared,
            capacity: self.capacity,
        };
        postcard::to_stdvec(&image).expect("a store always serializes")
    }
}

impl Default for Store {
    fn default() -> Store {
        Store::new()
    }
}

impl Store {
    /// An empty store at index 0, keeping the last [`WATCH_HISTORY_MAX`] events.
    pub fn new() -> Store {
        Store::with_config(0, WATCH_HISTORY_MAX)
    }

    /// An empty store whose index starts at `start_index` (etcd 3.4 starts at 3 because of its
    /// hidden cluster entries, store/README.md §3.5), keeping the last `watch_history_max` events.
    pub fn with_config(start_index: u64, watch_history_max: usize) -> Store {
        Store {
            tree: Tree::default(),
            index: start_index,
            history: History::new(watch_history_max),
        }
    }

    /// The store index: the index of the last successful mutation (`X-Etcd-Index`).
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The whole store as bytes (a Raft snapshot, Raft §7): the tree, the index and the watch
    /// history, so that watches keep working across a restore.
    pub fn snapshot(&self) -> Vec<u8> {
        self.snapshot_view().encode()
    }

    /// The store as it is now, for a snapshot encoded later (and elsewhere): the tree is shared
    /// (O(1)), the watch history (at most its capacity of events) is copied.
    pub fn snapshot_view(&self) -> StoreView {
        let (events, cleared, capacity) = self.history.parts();
        StoreView {
            index: self.index,
            nodes: self.tree.nodes_view(),
            events,
            cleared,
            capacity: capacity as u64,
        }
    }

    /// A store restored from [`Store::snapshot`]'s bytes; an error says why they are not one.
    pub fn restore(bytes: &[u8]) -> Result<Store, String> {
        let image: Image =
            postcard::from_bytes(bytes).map_err(|e| format!("store snapshot: {e}"))?;
        if image.version != IMAGE_VERSION {
            return Err(format!(
                "store snapshot version {} (this build reads {IMAGE_VERSION})",
                image.version
            ));
        }
        let tree = Tree::restored(image.nodes).map_err(|e| format!("store snapshot: {e}"))?;
        let capacity = usize::try_from(image.capacity).unwrap_or(usize::MAX);
        let history = History::restored(image.events, image.cleared, capacity)
            .map_err(|e| format!("store snapshot: {e}"))?;
        Ok(Store {
            tree,
            index: image.index,
            history,
        })
    }

    /// The planted bug `index_reuse`: the index goes back by one (and the newest event is
    /// forgotten, so the history stays in index order): the next mutation reuses the index.
    #[cfg(feature = "planted-bugs")]
    pub fn planted_bug_rewind_index(&mut self) {
        self.index = self.index.saturating_sub(1);
        self.history.pop_newest();
    }

    /// The earliest expiry instant of any node, so the leader proposes `Expire` only while TTL
    /// nodes exist (store/README.md §7).
    pub fn next_expiry_ms(&self) -> Option<u64> {
        self.tree.next_expiry_ms()
    }

    /// The number of nodes in the tree, the root excluded.
    pub fn node_count(&self) -> usize {
        self.tree.len()
    }

    /// Reads `key` (store/README.md §4.7): a file, or a directory listing one level deep, or the
    /// whole visible subtree with `recursive`.
    ///
    /// Listings are always in key order, which is what `sorted=true` asks for; etcd's unsorted
    /// order is random (store/README.md §4.7, G154), so key order is a faithful and deterministic
    /// choice, and `sorted` changes nothing.
    pub fn get(&self, key: &str, recursive: bool, sorted: bool) -> Result<Event, StoreError> {
        let _ = sorted;
        let key = key::normalize(key);
        let list = |dir: &str| {
            if recursive {
                self.tree.list_recursive(dir)
            } else {
                self.tree.list_one_level(dir)
            }
        };
        let node = if key::is_root(&key) {
            // store/README.md §3.2: the root shows no key and no indexes (G2).
            NodeView {
                key,
                dir: true,
                value: None,
                expire_at_ms: None,
                nodes: list(key::ROOT),
                modified_index: 0,
                created_index: 0,
            }
        } else {
            let found = self.tree.find(&key, self.index)?;
            let mut view = found.view(&key);
            if found.is_dir() {
                view.nodes = list(&key);
            }
            view
        };
        Ok(Event {
            action: Action::Get,
            node,
            prev_node: None,
            index: self.index,
            refresh: false,
        })
    }

    /// The first event at index >= `wait_index` that a watch on `key` reports (store/README.md §8).
    ///
    /// `wait_index` 0 means "from the next index", which the history cannot hold yet, so it
    /// answers `None` (the live watcher registry then waits). Error 401 when `wait_index` is
    /// below the history window.
    pub fn event_since(
        &self,
        key: &str,
        recursive: bool,
        wait_index: u64,
    ) -> Result<Option<Event>, StoreError> {
        let key = key::normalize(key);
        let since = if wait_index == 0 {
            self.index + 1
        } else {
            wait_index
        };
        self.history.first_match(&key, recursive, since, self.index)
    }

    /// The first index the history can still answer (0 until an event has been dropped).
    pub fn history_start_index(&self) -> u64 {
        self.history.start_index()
    }
}
