//! What store operations return: events and the nodes they carry.
//!
//! Depends on nothing else in the crate.

/// The `action` of a response or watch event (store/README.md §4, §5.1).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Action {
    /// A read.
    Get,
    /// A plain PUT (replace or create).
    Set,
    /// A create-only PUT (`prevExist=false`) or a POST.
    Create,
    /// An update-only PUT (`prevExist=true`).
    Update,
    /// A PUT with `prevValue`/`prevIndex`.
    CompareAndSwap,
    /// A plain DELETE.
    Delete,
    /// A DELETE with `prevValue`/`prevIndex`.
    CompareAndDelete,
    /// A TTL expiry, applied from an `Expire` command.
    Expire,
}

impl Action {
    /// The wire name, e.g. `compareAndSwap`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Get => "get",
            Action::Set => "set",
            Action::Create => "create",
            Action::Update => "update",
            Action::CompareAndSwap => "compareAndSwap",
            Action::Delete => "delete",
            Action::CompareAndDelete => "compareAndDelete",
            Action::Expire => "expire",
        }
    }

    /// True for the actions that remove a node (their `node` carries no value).
    pub fn is_removal(self) -> bool {
        matches!(
            self,
            Action::Delete | Action::CompareAndDelete | Action::Expire
        )
    }
}

/// One node as a response shows it (store/README.md §5.1).
///
/// The root is the node with key `/` and both indexes 0; the renderer omits its key and indexes.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeView {
    /// The cleaned absolute key.
    pub key: String,
    /// True for a directory.
    pub dir: bool,
    /// The value of a file; `None` for directories and for the `node` of removal events.
    pub value: Option<String>,
    /// The absolute expiry instant in ms since the Unix epoch, if the node has a TTL.
    pub expire_at_ms: Option<u64>,
    /// Children of a listed directory, ordered by key; empty otherwise.
    pub nodes: Vec<NodeView>,
    /// The index of the last write to this node.
    pub modified_index: u64,
    /// The index of the write that created this node.
    pub created_index: u64,
}

/// The result of one successful store operation (store/README.md §5.1).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    /// What happened.
    pub action: Action,
    /// The node after the operation (for removals: key, dir flag and the new modifiedIndex).
    pub node: NodeView,
    /// The node before the operation, when there was one (never for `get`).
    pub prev_node: Option<NodeView>,
    /// The store index after the operation (`X-Etcd-Index`).
    pub index: u64,
    /// True for a TTL refresh: it is in the history but never fires watchers (store/README.md
    /// §4.4).
    pub refresh: bool,
}
