//! The checker's own replica of the etcd v2 store: a small, sequential state machine over plain
//! commands, written from the specification (`engine/src/store/README.md` §3-§7 and §11.3; etcd's
//! v2 API documentation), not from the engine's store. The simulator feeds it every committed log
//! entry once, in log order, and compares each node's answers with what this replica gives.
//!
//! What it keeps: one ordered map from cleaned key to node (file or directory, value, created and
//! modified index, expiry instant), the global store index, and an expiry index. What it leaves
//! out, because no check needs it: listings, the watch history (the simulator keeps the committed
//! events it returns), rendering, and the HTTP layer's parameter validation (a command in the log
//! is already past it).
//!
//! The rules, in the spec's words:
//! - the store index counts successful mutations; each takes the next index and failures take none
//!   (§3.5);
//! - a write below missing directories creates them with the write's index (§3.3); a path through
//!   a file is 104 (§3.3); a write or delete of `/` is 107 (§3.2);
//! - set, create, update, compareAndSwap, in-order create, delete and compareAndDelete follow the
//!   decision tables of §4.3, §4.5 and §4.6; `refresh` keeps the value and only moves the expiry,
//!   takes an index and is flagged so that no watch fires (§4.4);
//! - an expire command removes every node whose expiry instant is at or before the leader's
//!   stamp, earliest first (ties by key), each with its subtree, one `expire` event and one index
//!   each (§7).

use std::collections::{BTreeMap, BTreeSet};

use crate::watch::CommittedEvent;

/// A committed log entry as the replica sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A Raft no-op (a new leader's first entry): changes nothing, answers nothing.
    Noop,
    /// A payload that is not a store command: changes nothing, answers error 300.
    Garbage,
    /// A store command.
    Command(Command),
}

/// One store mutation, as the log carries it. Expiries are absolute instants (ms) chosen by the
/// proposer, so applying a command never reads a clock (§7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Plain PUT (`set`).
    Set {
        /// The key.
        key: String,
        /// Make a directory.
        dir: bool,
        /// The file's value.
        value: String,
        /// Expiry instant, or permanent.
        expire_at_ms: Option<u64>,
        /// Only move the expiry, keeping the value (§4.4).
        refresh: bool,
    },
    /// PUT `prevExist=false` (`create`).
    Create {
        /// The key.
        key: String,
        /// Make a directory.
        dir: bool,
        /// The file's value.
        value: String,
        /// Expiry instant, or permanent.
        expire_at_ms: Option<u64>,
    },
    /// POST: create `<dir_key>/<next index as %020d>` (`create`, §4.5).
    CreateInOrder {
        /// The directory.
        dir_key: String,
        /// Make a directory.
        dir: bool,
        /// The file's value.
        value: String,
        /// Expiry instant, or permanent.
        expire_at_ms: Option<u64>,
    },
    /// PUT `prevExist=true` (`update`).
    Update {
        /// The key.
        key: String,
        /// The new value (must be empty for a directory).
        value: String,
        /// New expiry; `None` makes the node permanent.
        expire_at_ms: Option<u64>,
        /// Only move the expiry, keeping the value.
        refresh: bool,
    },
    /// PUT with `prevValue`/`prevIndex` (`compareAndSwap`).
    Cas {
        /// The key.
        key: String,
        /// The new value.
        value: String,
        /// The value the file must hold.
        prev_value: Option<String>,
        /// The `modifiedIndex` the file must have.
        prev_index: Option<u64>,
        /// New expiry; `None` makes the node permanent.
        expire_at_ms: Option<u64>,
        /// Only move the expiry, keeping the value.
        refresh: bool,
    },
    /// Plain DELETE (`delete`).
    Delete {
        /// The key.
        key: String,
        /// Allow removing an empty directory.
        dir: bool,
        /// Allow removing a directory and everything below it (implies `dir`).
        recursive: bool,
    },
    /// DELETE with `prevValue`/`prevIndex` (`compareAndDelete`).
    Cad {
        /// The key.
        key: String,
        /// The value the file must hold.
        prev_value: Option<String>,
        /// The `modifiedIndex` the file must have.
        prev_index: Option<u64>,
    },
    /// The leader's expiry tick, stamped with its clock (ms).
    Expire {
        /// The leader's clock when it proposed the tick.
        now_ms: u64,
    },
}

/// An event's action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// `set`.
    Set,
    /// `create`.
    Create,
    /// `update`.
    Update,
    /// `compareAndSwap`.
    CompareAndSwap,
    /// `delete`.
    Delete,
    /// `compareAndDelete`.
    CompareAndDelete,
    /// `expire`.
    Expire,
}

impl Action {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Set => "set",
            Action::Create => "create",
            Action::Update => "update",
            Action::CompareAndSwap => "compareAndSwap",
            Action::Delete => "delete",
            Action::CompareAndDelete => "compareAndDelete",
            Action::Expire => "expire",
        }
    }
}

/// One successful mutation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The store index it took.
    pub index: u64,
    /// What happened.
    pub action: Action,
    /// The node's key.
    pub key: String,
    /// True if the node is (was, for a removal) a directory.
    pub dir: bool,
    /// The file's value after the write; `None` for directories and removals.
    pub value: Option<String>,
    /// The node's `modifiedIndex` (for a removal: the event's index).
    pub modified_index: u64,
    /// The node's `createdIndex`.
    pub created_index: u64,
    /// True for a TTL refresh, which fires no watch.
    pub refresh: bool,
}

impl Event {
    /// The event as the watch checker reads it, first applied at `at_us`.
    pub fn committed(&self, at_us: u64) -> CommittedEvent {
        CommittedEvent {
            at_us,
            index: self.index,
            action: self.action.as_str().into(),
            key: self.key.clone(),
            dir: self.dir,
            refresh: self.refresh,
        }
    }
}

/// A refused command: the etcd error code and the store index it was refused at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused {
    /// The etcd v2 error code (§6.1).
    pub code: u16,
    /// The store index at the time (unchanged by the refusal).
    pub index: u64,
}

/// What one entry produced: its events in index order (none for a no-op or an expire tick with
/// nothing due; one for a client command), or the refusal.
pub type Outcome = Result<Vec<Event>, Refused>;

const KEY_NOT_FOUND: u16 = 100;
const COMPARE_FAILED: u16 = 101;
const NOT_FILE: u16 = 102;
const NOT_DIR: u16 = 104;
const NODE_EXIST: u16 = 105;
const ROOT_READ_ONLY: u16 = 107;
const DIR_NOT_EMPTY: u16 = 108;
const RAFT_INTERNAL: u16 = 300;

#[derive(Clone, Debug, PartialEq, Eq)]
struct Node {
    dir: bool,
    value: String,
    expire_at_ms: Option<u64>,
    created: u64,
    modified: u64,
}

/// The replica: a key tree, the store index and the expiry index.
#[derive(Clone, Debug, Default)]
pub struct Replica {
    /// Every node but the root, by cleaned key. Keys below a directory `d` are exactly those
    /// starting with `d/`, which are contiguous in this order.
    nodes: BTreeMap<String, Node>,
    /// `(expiry instant, key)` of every node that has one.
    expiries: BTreeSet<(u64, String)>,
    index: u64,
}

/// Go's `path.Clean(path.Join("/", key))` (§3.1): absolute, no empty or `.` segments, `..`
/// removes the segment before it (never above the root), no trailing slash.
pub fn clean(key: &str) -> String {
    // Each kept segment is written as `/segment`, so `..` cuts back to the last `/`.
    let mut out = String::with_capacity(key.len() + 1);
    for part in key.split('/') {
        match part {
            "" | "." => {}
            ".." => out.truncate(out.rfind('/').unwrap_or(0)),
            _ => {
                out.push('/');
                out.push_str(part);
            }
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// The keys of `key`'s ancestors below the root, outermost first.
fn ancestors(key: &str) -> impl Iterator<Item = &str> {
    key.match_indices('/')
        .map(|(i, _)| &key[..i])
        .filter(|k| !k.is_empty())
}

fn child_prefix(key: &str) -> String {
    let mut prefix = String::with_capacity(key.len() + 1);
    prefix.push_str(key);
    prefix.push('/');
    prefix
}

impl Replica {
    /// An empty store at index 0.
    pub fn new() -> Replica {
        Replica::default()
    }

    /// The store index: the last successful mutation's.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Applies one committed entry.
    pub fn apply(&mut self, input: &Input) -> Outcome {
        match input {
            Input::Noop => Ok(Vec::new()),
            Input::Garbage => Err(self.refuse(RAFT_INTERNAL)),
            Input::Command(command) => self.apply_command(command),
        }
    }

    /// Applies one command.
    pub fn apply_command(&mut self, command: &Command) -> Outcome {
        match command {
            Command::Set {
                key,
                dir,
                value,
                expire_at_ms,
                refresh,
            } => self
                .set(&clean(key), *dir, value, *expire_at_ms, *refresh)
                .map(|e| vec![e]),
            Command::Create {
                key,
                dir,
                value,
                expire_at_ms,
            } => {
                let key = clean(key);
                self.create(&key, *dir, value, *expire_at_ms, false)
                    .map(|e| vec![e])
            }
            Command::CreateInOrder {
                dir_key,
                dir,
                value,
                expire_at_ms,
            } => {
                let dir_key = clean(dir_key);
                let name = format!("{:020}", self.index + 1);
                let key = if dir_key == "/" {
                    format!("/{name}")
                } else {
                    format!("{dir_key}/{name}")
                };
                self.create(&key, *dir, value, *expire_at_ms, false)
                    .map(|e| vec![e])
            }
            Command::Update {
                key,
                value,
                expire_at_ms,
                refresh,
            } => self
                .update(&clean(key), value, *expire_at_ms, *refresh)
                .map(|e| vec![e]),
            Command::Cas {
                key,
                value,
                prev_value,
                prev_index,
                expire_at_ms,
                refresh,
            } => {
                let compare = (prev_value.as_deref(), *prev_index);
                self.cas(&clean(key), value, compare, *expire_at_ms, *refresh)
                    .map(|e| vec![e])
            }
            Command::Delete {
                key,
                dir,
                recursive,
            } => self.delete(&clean(key), *dir, *recursive).map(|e| vec![e]),
            Command::Cad {
                key,
                prev_value,
                prev_index,
            } => self
                .cad(&clean(key), prev_value.as_deref(), *prev_index)
                .map(|e| vec![e]),
            Command::Expire { now_ms } => Ok(self.expire(*now_ms)),
        }
    }

    fn refuse(&self, code: u16) -> Refused {
        Refused {
            code,
            index: self.index,
        }
    }

    /// The node at `key` (not the root): 104 if the path runs through a file, 100 if missing.
    fn find(&self, key: &str) -> Result<&Node, Refused> {
        for ancestor in ancestors(key) {
            match self.nodes.get(ancestor) {
                None => return Err(self.refuse(KEY_NOT_FOUND)),
                Some(node) if !node.dir => return Err(self.refuse(NOT_DIR)),
                Some(_) => {}
            }
        }
        self.nodes
            .get(key)
            .ok_or_else(|| self.refuse(KEY_NOT_FOUND))
    }

    /// 104 if a parent of `key` is a file (a write would have to run through it).
    fn check_parents(&self, key: &str) -> Result<(), Refused> {
        let through_file = ancestors(key).any(|a| self.nodes.get(a).is_some_and(|n| !n.dir));
        if through_file {
            return Err(self.refuse(NOT_DIR));
        }
        Ok(())
    }

    fn insert(&mut self, key: &str, node: Node) {
        self.unindex(key);
        if let Some(at) = node.expire_at_ms {
            self.expiries.insert((at, key.to_string()));
        }
        self.nodes.insert(key.to_string(), node);
    }

    fn unindex(&mut self, key: &str) {
        if let Some(at) = self.nodes.get(key).and_then(|n| n.expire_at_ms) {
            self.expiries.remove(&(at, key.to_string()));
        }
    }

    /// Removes `key` and everything below it.
    fn remove_subtree(&mut self, key: &str) -> Option<Node> {
        let prefix = child_prefix(key);
        let below: Vec<String> = self
            .nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in below {
            self.unindex(&k);
            self.nodes.remove(&k);
        }
        self.unindex(key);
        self.nodes.remove(key)
    }

    fn has_children(&self, key: &str) -> bool {
        let prefix = child_prefix(key);
        self.nodes
            .range(prefix.clone()..)
            .next()
            .is_some_and(|(k, _)| k.starts_with(&prefix))
    }

    /// Takes the next index: the mutation succeeded.
    fn next_index(&mut self) -> u64 {
        self.index += 1;
        self.index
    }

    /// Writes a new node at `key` with the next index, creating missing parent directories with
    /// the same index (§3.3). The caller has checked every refusal.
    fn write_new(
        &mut self,
        key: &str,
        action: Action,
        node: (bool, &str, Option<u64>),
        refresh: bool,
    ) -> Event {
        let (dir, value, expire_at_ms) = node;
        let index = self.next_index();
        let parents: Vec<String> = ancestors(key)
            .filter(|a| !self.nodes.contains_key(*a))
            .map(str::to_string)
            .collect();
        for parent in parents {
            let node = Node {
                dir: true,
                value: String::new(),
                expire_at_ms: None,
                created: index,
                modified: index,
            };
            self.insert(&parent, node);
        }
        let value = if dir { String::new() } else { value.into() };
        let node = Node {
            dir,
            value: value.clone(),
            expire_at_ms,
            created: index,
            modified: index,
        };
        self.insert(key, node);
        Event {
            index,
            action,
            key: key.into(),
            dir,
            value: (!dir).then_some(value),
            modified_index: index,
            created_index: index,
            refresh,
        }
    }

    /// PUT (§4.3 last row): replaces a file, never a directory; `dir=true` over a file makes it
    /// an empty directory (G53). With `refresh` the file must exist and only its expiry and
    /// `modifiedIndex` move (§4.4).
    fn set(
        &mut self,
        key: &str,
        dir: bool,
        value: &str,
        expire_at_ms: Option<u64>,
        refresh: bool,
    ) -> Result<Event, Refused> {
        if key == "/" {
            return Err(self.refuse(ROOT_READ_ONLY));
        }
        if refresh {
            // §4.4: only the expiry moves; the node is not replaced (its createdIndex stays).
            if self.find(key)?.dir {
                return Err(self.refuse(NOT_FILE));
            }
            return Ok(self.rewrite(key, Action::Set, None, expire_at_ms, true));
        }
        self.check_parents(key)?;
        if self.nodes.get(key).is_some_and(|n| n.dir) {
            return Err(self.refuse(NOT_FILE));
        }
        self.unindex(key);
        self.nodes.remove(key);
        Ok(self.write_new(key, Action::Set, (dir, value, expire_at_ms), false))
    }

    /// PUT `prevExist=false` and POST (§4.3 first row, §4.5): 105 if anything is there.
    fn create(
        &mut self,
        key: &str,
        dir: bool,
        value: &str,
        expire_at_ms: Option<u64>,
        refresh: bool,
    ) -> Result<Event, Refused> {
        if key == "/" {
            return Err(self.refuse(ROOT_READ_ONLY));
        }
        self.check_parents(key)?;
        if self.nodes.contains_key(key) {
            return Err(self.refuse(NODE_EXIST));
        }
        Ok(self.write_new(key, Action::Create, (dir, value, expire_at_ms), refresh))
    }

    /// Changes an existing node in place: a new value (`None` keeps it; directories have none),
    /// the new expiry, the next index as `modifiedIndex`.
    fn rewrite(
        &mut self,
        key: &str,
        action: Action,
        value: Option<&str>,
        expire_at_ms: Option<u64>,
        refresh: bool,
    ) -> Event {
        let index = self.next_index();
        let mut node = self
            .nodes
            .get(key)
            .expect("rewrite of a present node")
            .clone();
        if let Some(value) = value
            && !node.dir
        {
            node.value = value.into();
        }
        node.expire_at_ms = expire_at_ms;
        // §4.3: a directory keeps the modifiedIndex of its creation; the event carries the new.
        if !node.dir {
            node.modified = index;
        }
        let event = Event {
            index,
            action,
            key: key.into(),
            dir: node.dir,
            value: (!node.dir).then(|| node.value.clone()),
            modified_index: index,
            created_index: node.created,
            refresh,
        };
        self.insert(key, node);
        event
    }

    /// PUT `prevExist=true` (§4.3 second row): on a directory only the TTL may change.
    fn update(
        &mut self,
        key: &str,
        value: &str,
        expire_at_ms: Option<u64>,
        refresh: bool,
    ) -> Result<Event, Refused> {
        if key == "/" {
            return Err(self.refuse(ROOT_READ_ONLY));
        }
        let node = self.find(key)?;
        // A refresh keeps the old value (§4.4), so the value it carries is never looked at (the
        // HTTP layer refuses a non-empty one with 211 before it reaches the log).
        if node.dir && !refresh && !value.is_empty() {
            return Err(self.refuse(NOT_FILE));
        }
        let value = (!refresh).then_some(value);
        Ok(self.rewrite(key, Action::Update, value, expire_at_ms, refresh))
    }

    /// 101 unless the file matches every given comparison.
    fn compare(&self, node: &Node, compare: (Option<&str>, Option<u64>)) -> Result<(), Refused> {
        let (prev_value, prev_index) = compare;
        let value_ok = prev_value.is_none_or(|v| v == node.value);
        let index_ok = prev_index.is_none_or(|i| i == node.modified);
        if value_ok && index_ok {
            Ok(())
        } else {
            Err(self.refuse(COMPARE_FAILED))
        }
    }

    /// PUT with `prevValue`/`prevIndex` (§4.3 fourth row): missing 100, directory 102 before any
    /// comparison, mismatch 101.
    fn cas(
        &mut self,
        key: &str,
        value: &str,
        compare: (Option<&str>, Option<u64>),
        expire_at_ms: Option<u64>,
        refresh: bool,
    ) -> Result<Event, Refused> {
        if key == "/" {
            return Err(self.refuse(ROOT_READ_ONLY));
        }
        let node = self.find(key)?;
        if node.dir {
            return Err(self.refuse(NOT_FILE));
        }
        self.compare(node, compare)?;
        let value = (!refresh).then_some(value);
        Ok(self.rewrite(key, Action::CompareAndSwap, value, expire_at_ms, refresh))
    }

    /// Removes `key`'s subtree with the next index; the event shows the removed node.
    fn remove(&mut self, key: &str, action: Action) -> Event {
        let index = self.next_index();
        let node = self.remove_subtree(key).expect("removal of a present node");
        Event {
            index,
            action,
            key: key.into(),
            dir: node.dir,
            value: None,
            modified_index: index,
            created_index: node.created,
            refresh: false,
        }
    }

    /// DELETE (§4.6 second row): a file always goes; a directory needs `dir` (else 102), a
    /// non-empty one `recursive` (else 108).
    fn delete(&mut self, key: &str, dir: bool, recursive: bool) -> Result<Event, Refused> {
        if key == "/" {
            return Err(self.refuse(ROOT_READ_ONLY));
        }
        let node = self.find(key)?;
        if node.dir {
            if !(dir || recursive) {
                return Err(self.refuse(NOT_FILE));
            }
            if !recursive && self.has_children(key) {
                return Err(self.refuse(DIR_NOT_EMPTY));
            }
        }
        Ok(self.remove(key, Action::Delete))
    }

    /// DELETE with `prevValue`/`prevIndex` (§4.6 first row): missing 100, directory 102 before
    /// comparing, mismatch 101.
    fn cad(
        &mut self,
        key: &str,
        prev_value: Option<&str>,
        prev_index: Option<u64>,
    ) -> Result<Event, Refused> {
        if key == "/" {
            return Err(self.refuse(ROOT_READ_ONLY));
        }
        let node = self.find(key)?;
        if node.dir {
            return Err(self.refuse(NOT_FILE));
        }
        self.compare(node, (prev_value, prev_index))?;
        Ok(self.remove(key, Action::CompareAndDelete))
    }

    /// The expiry tick (§7): every node due at `now_ms`, earliest first, ties by key; a node
    /// already removed with an expired directory above it is not expired again.
    fn expire(&mut self, now_ms: u64) -> Vec<Event> {
        let mut events = Vec::new();
        while let Some((at, key)) = self.expiries.first().cloned() {
            if at > now_ms {
                break;
            }
            events.push(self.remove(&key, Action::Expire));
        }
        events
    }
}

#[cfg(test)]
mod tests;
