//! The history format the history checkers read: one operation per record, as a client saw it.
//! The simulator builds it from its workload; a harness driving a real cluster writes the same
//! records as JSON lines (`Op` per line) and `sim check-history FILE` judges them.
//!
//! Times are microseconds from any origin shared by every client of one history. An operation
//! strictly precedes another only if it completed before the other was invoked
//! (`a.complete_us < b.invoke_us`); equal times are concurrent.

use serde::{Deserialize, Serialize};

/// What a client asked for: enough to replay it against a sequential model of the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "kebab-case")]
pub enum Call {
    /// GET of a file. `quorum` reads are linearizable; the others may be stale and are not
    /// judged by the linearizability checker.
    Get {
        /// The key.
        key: String,
        /// `quorum=true`.
        quorum: bool,
    },
    /// PUT, unconditional. `expire_at_us`: the TTL's deadline on the history's clock, if any.
    Set {
        /// The key.
        key: String,
        /// The value written.
        value: String,
        /// When the TTL runs out, on the history's clock.
        expire_at_us: Option<u64>,
    },
    /// PUT `prevExist=false`.
    Create {
        /// The key.
        key: String,
        /// The value written.
        value: String,
    },
    /// PUT `prevExist=true`.
    Update {
        /// The key.
        key: String,
        /// The value written.
        value: String,
    },
    /// PUT with `prevValue` and/or `prevIndex`.
    Cas {
        /// The key.
        key: String,
        /// The value written.
        value: String,
        /// The value the key must hold.
        prev_value: Option<String>,
        /// The `modifiedIndex` the key must have.
        prev_index: Option<u64>,
    },
    /// DELETE with `prevValue` and/or `prevIndex`.
    Cad {
        /// The key.
        key: String,
        /// The value the key must hold.
        prev_value: Option<String>,
        /// The `modifiedIndex` the key must have.
        prev_index: Option<u64>,
    },
    /// DELETE of a file.
    Delete {
        /// The key.
        key: String,
    },
    /// DELETE `dir=true&recursive=true`: removes the directory and every key under it.
    DeleteRecursive {
        /// The directory.
        key: String,
    },
    /// PUT `refresh=true&ttl=..&prevExist=true`: moves an existing file's TTL deadline and
    /// gives it a new `modifiedIndex`, keeping its value (store/README.md §4.4; no watch fires).
    Refresh {
        /// The key.
        key: String,
        /// The new deadline, on the history's clock.
        expire_at_us: Option<u64>,
    },
    /// PUT `dir=true&prevExist=false` (with a TTL or not): creates a directory.
    Mkdir {
        /// The directory.
        key: String,
        /// When its TTL runs out, on the history's clock.
        expire_at_us: Option<u64>,
    },
    /// PUT `dir=true&prevExist=true` with a TTL (or without: permanent): moves an existing
    /// directory's TTL.
    UpdateDir {
        /// The directory.
        key: String,
        /// The new deadline, on the history's clock.
        expire_at_us: Option<u64>,
    },
    /// DELETE `dir=true` (not recursive): removes an empty directory.
    Rmdir {
        /// The directory.
        key: String,
    },
    /// GET `recursive=true` of a directory (`sorted=true`: each directory's children in key
    /// order). `quorum` listings are linearizable and judged against every key under it.
    List {
        /// The directory.
        key: String,
        /// `sorted=true`.
        sorted: bool,
        /// `quorum=true`.
        quorum: bool,
    },
    /// POST: creates `<dir>/<index>` (an in-order key).
    CreateInOrder {
        /// The directory.
        dir: String,
        /// The value written.
        value: String,
    },
    /// GET `wait=true&waitIndex=..`: the first event at or after `wait_index` on `key`
    /// (or under it, if `recursive`).
    Watch {
        /// The key watched.
        key: String,
        /// Watch the subtree.
        recursive: bool,
        /// The first index of interest.
        wait_index: u64,
    },
    /// A round of the lock module: acquire `name`, hold it, release it. `Ret::Ok.index` is the
    /// fencing token (the lock's index); the holding interval is `[hold_from_us, hold_to_us]`.
    Lock {
        /// The lock's name.
        name: String,
        /// When the client started acting as the holder.
        hold_from_us: u64,
        /// When it stopped.
        hold_to_us: u64,
    },
}

impl Call {
    /// The key (or directory) the call names.
    pub fn key(&self) -> &str {
        match self {
            Call::Get { key, .. }
            | Call::Set { key, .. }
            | Call::Create { key, .. }
            | Call::Update { key, .. }
            | Call::Cas { key, .. }
            | Call::Cad { key, .. }
            | Call::Delete { key }
            | Call::DeleteRecursive { key }
            | Call::Refresh { key, .. }
            | Call::Mkdir { key, .. }
            | Call::UpdateDir { key, .. }
            | Call::List { key, .. }
            | Call::Rmdir { key }
            | Call::Watch { key, .. } => key,
            Call::CreateInOrder { dir, .. } => dir,
            Call::Lock { name, .. } => name,
        }
    }

    /// True if the call changes the store when it succeeds.
    pub fn is_write(&self) -> bool {
        !matches!(
            self,
            Call::Get { .. } | Call::List { .. } | Call::Watch { .. } | Call::Lock { .. }
        )
    }
}

/// What the client got back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "r", rename_all = "kebab-case")]
pub enum Ret {
    /// An event: for a write its own, for a read the node read, for a watch the event seen.
    Ok {
        /// `X-Etcd-Index` of the answer (the store index of the node that answered; for a write,
        /// its own index).
        index: u64,
        /// The event's action (`get`, `set`, `create`, `compareAndSwap`, `delete`, `expire`...).
        action: String,
        /// The event's key (for in-order creates and recursive watches: the key created/seen).
        key: String,
        /// `node.value` (None for deletes and directories).
        value: Option<String>,
        /// `node.modifiedIndex`.
        modified_index: u64,
    },
    /// A directory listing: every node under the directory the answer showed, depth first, in
    /// the order the answer gave them (hidden keys are never listed).
    Listing {
        /// `X-Etcd-Index` of the answer.
        index: u64,
        /// The listed nodes.
        nodes: Vec<Listed>,
    },
    /// An etcd error (`errorCode`): 100 key not found, 101 compare failed, 105 key exists,
    /// 401 event index cleared... A write refused this way changed nothing.
    Err {
        /// The etcd v2 error code.
        code: u16,
    },
    /// The request certainly did nothing (refused before it reached the log).
    Fail,
    /// No answer: it may have taken effect at any time after its invocation, or never.
    Unknown,
}

/// One node of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listed {
    /// The node's key.
    pub key: String,
    /// Its value (`None` for a directory).
    pub value: Option<String>,
    /// True for a directory.
    pub dir: bool,
    /// Its `modifiedIndex`.
    pub modified_index: u64,
}

/// One operation of a history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// Unique within the history; the report refers to operations by it.
    pub id: u64,
    /// The client (a single-threaded process: its operations never overlap).
    pub client: u64,
    /// The node the client asked (0 if unknown).
    #[serde(default)]
    pub node: u64,
    /// When the request was sent.
    pub invoke_us: u64,
    /// When the answer came, or when the client gave up (for `Ret::Unknown`).
    pub complete_us: u64,
    /// The request.
    pub call: Call,
    /// The answer.
    pub ret: Ret,
}
