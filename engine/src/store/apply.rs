//! `Store::apply`: the decision tables of store/README.md §4 and the expiry of §7.
//!
//! Every operation checks everything before it changes anything, so a failed command leaves the
//! store (tree, index, history) exactly as it was (§3.5: failures do not move the index).
//! `G<n>` numbers are the recorded etcd exchanges of store/README.md §Transcripts.

use super::command::Command;
use super::error::{ErrorCode, StoreError};
use super::event::{Action, Event, NodeView};
use super::key;
use super::render::push_decimal;
use super::tree::Node;
use super::{Applied, Store};

/// What a write with `refresh=true` must find: store/README.md §4.4 keeps the old value and the
/// createdIndex and only moves the TTL, under the action of the operation it rides on.
struct Refresh<'a> {
    action: Action,
    key: &'a str,
    expire_at_ms: Option<u64>,
    dir_allowed: bool,
    prev_value: Option<&'a str>,
    prev_index: Option<u64>,
}

impl Store {
    /// Applies one command: a pure function of the store and the command.
    ///
    /// Client commands yield one event; `Expire` yields one `expire` event per removed node.
    pub fn apply(&mut self, cmd: &Command) -> Result<Applied, StoreError> {
        let event = match cmd {
            Command::Set {
                key,
                dir,
                value,
                expire_at_ms: at,
                refresh,
            } => self.set(&key::normalized(key), *dir, value, *at, *refresh),
            Command::Create {
                key,
                dir,
                value,
                expire_at_ms: at,
            } => self.create(&key::normalized(key), *dir, value, *at),
            Command::CreateInOrder {
                dir_key,
                dir,
                value,
                expire_at_ms: at,
            } => {
                // store/README.md §4.5: the name is the index this create will get, %020d.
                let dir_key = key::normalized(dir_key);
                let mut name = key::child_prefix_with_room(&dir_key, 20);
                push_decimal(&mut name, self.index + 1, 20);
                self.create(&name, *dir, value, *at)
            }
            Command::Update {
                key,
                value,
                expire_at_ms: at,
                refresh,
            } => self.update(&key::normalized(key), value, *at, *refresh),
            Command::CompareAndSwap {
                key,
                value,
                prev_value,
                prev_index,
                expire_at_ms,
                refresh,
            } => {
                let condition = (prev_value.as_deref(), *prev_index);
                let key = key::normalized(key);
                self.compare_and_swap(&key, value, condition, *expire_at_ms, *refresh)
            }
            Command::Delete {
                key,
                dir,
                recursive,
            } => self.delete(&key::normalized(key), *dir, *recursive),
            Command::CompareAndDelete {
                key,
                prev_value,
                prev_index,
            } => self.compare_and_delete(&key::normalized(key), prev_value.as_deref(), *prev_index),
            Command::Expire { now_ms } => return Ok(Applied::Expired(self.expire(*now_ms))),
        };
        event.map(Applied::Event)
    }

    /// Advances the index by one and records the event: the only way the index moves.
    fn commit(&mut self, action: Action, node: NodeView, prev: Option<NodeView>) -> Event {
        self.commit_with(action, node, prev, false)
    }

    fn commit_with(
        &mut self,
        action: Action,
        node: NodeView,
        prev_node: Option<NodeView>,
        refresh: bool,
    ) -> Event {
        self.index += 1;
        assert!(
            node.modified_index == self.index,
            "event node must carry the new index {}",
            self.index
        );
        let event = Event {
            action,
            node,
            prev_node,
            index: self.index,
            refresh,
        };
        self.history.push(event.clone());
        event
    }

    /// store/README.md §3.2: the root is read-only, error 107 with cause `/` (G30, G155).
    fn check_writable(&self, key: &str) -> Result<(), StoreError> {
        if key::is_root(key) {
            return Err(StoreError::new(
                ErrorCode::RootReadOnly,
                key::ROOT,
                self.index,
            ));
        }
        Ok(())
    }

    /// Stores a brand-new node at `key`, creating its parents with the same index unless
    /// `check_parents` found them all (`parents_stored`).
    fn insert_new(
        &mut self,
        key: &str,
        parents_stored: bool,
        dir: bool,
        value: &str,
        expire: Option<u64>,
    ) -> NodeView {
        let next = self.index + 1;
        if !parents_stored {
            self.tree.make_parents(key, next);
        }
        let node = Node::new((!dir).then(|| value.to_string()), next, expire);
        let view = node.view(key);
        self.tree.put(key, node);
        view
    }

    /// Plain PUT (store/README.md §4.3, last row): replace a file or create; a directory in the
    /// way is 102 (G25, G27); `dir=true` over a file replaces it with a directory (G53).
    fn set(
        &mut self,
        key: &str,
        dir: bool,
        value: &str,
        expire: Option<u64>,
        refresh: bool,
    ) -> Result<Event, StoreError> {
        if refresh {
            return self.refresh(Refresh {
                action: Action::Set,
                key,
                expire_at_ms: expire,
                dir_allowed: false,
                prev_value: None,
                prev_index: None,
            });
        }
        self.check_writable(key)?;
        let parents_stored = self.tree.check_parents(key, self.index)?;
        let prev = self.tree.node(key);
        if prev.is_some_and(Node::is_dir) {
            return Err(StoreError::new(ErrorCode::NotFile, key, self.index));
        }
        let prev_view = prev.map(|node| node.view(key));
        let view = self.insert_new(key, parents_stored, dir, value, expire);
        Ok(self.commit(Action::Set, view, prev_view))
    }

    /// Create-only PUT and POST: an existing key of either kind is 105 (G10, G26).
    fn create(
        &mut self,
        key: &str,
        dir: bool,
        value: &str,
        expire: Option<u64>,
    ) -> Result<Event, StoreError> {
        self.check_writable(key)?;
        let parents_stored = self.tree.check_parents(key, self.index)?;
        if self.tree.node(key).is_some() {
            return Err(StoreError::new(ErrorCode::NodeExist, key, self.index));
        }
        let view = self.insert_new(key, parents_stored, dir, value, expire);
        Ok(self.commit(Action::Create, view, None))
    }

    /// Update-only PUT: missing is 100 (G11); a directory takes only a TTL, a non-empty value is
    /// 102 (G113); the TTL is replaced, so no TTL makes the node permanent (G142).
    fn update(
        &mut self,
        key: &str,
        value: &str,
        expire: Option<u64>,
        refresh: bool,
    ) -> Result<Event, StoreError> {
        if refresh {
            return self.refresh(Refresh {
                action: Action::Update,
                key,
                expire_at_ms: expire,
                dir_allowed: true,
                prev_value: None,
                prev_index: None,
            });
        }
        self.check_writable(key)?;
        let old = self.tree.find(key, self.index)?;
        if old.is_dir() && !value.is_empty() {
            return Err(StoreError::new(ErrorCode::NotFile, key, self.index));
        }
        let value = (!old.is_dir()).then(|| value.to_string());
        let prev_view = old.view(key);
        Ok(self.rewrite(Action::Update, key, prev_view, value, expire, false))
    }

    /// Replaces the value and TTL of the existing node at `key`, whose view the caller found
    /// (`prev_view`), keeping its createdIndex.
    fn rewrite(
        &mut self,
        action: Action,
        key: &str,
        prev_view: NodeView,
        value: Option<String>,
        expire: Option<u64>,
        refresh: bool,
    ) -> Event {
        // A directory's stored modifiedIndex stays where its creation put it: only the event
        // carries the update's index (store/README.md §4.3; etcd 3.4 lists the old one).
        let stored_index = if prev_view.dir {
            prev_view.modified_index
        } else {
            self.index + 1
        };
        let node = Node {
            value,
            created_index: prev_view.created_index,
            modified_index: stored_index,
            expire_at_ms: expire,
        };
        let mut view = node.view(key);
        view.modified_index = self.index + 1;
        self.tree.put(key, node);
        self.commit_with(action, view, Some(prev_view), refresh)
    }

    /// `refresh=true`: same checks as the operation it rides on, then only the TTL and the
    /// modifiedIndex change; the event does not fire watchers (store/README.md §4.4, G44, G191).
    fn refresh(&mut self, r: Refresh<'_>) -> Result<Event, StoreError> {
        self.check_writable(r.key)?;
        let old = self.tree.find(r.key, self.index)?;
        if old.is_dir() && !r.dir_allowed {
            return Err(StoreError::new(ErrorCode::NotFile, r.key, self.index));
        }
        if let Some(cause) = compare_failure(old, r.prev_value, r.prev_index) {
            return Err(StoreError::new(ErrorCode::TestFailed, cause, self.index));
        }
        let value = old.value.clone();
        let prev_view = old.view(r.key);
        Ok(self.rewrite(r.action, r.key, prev_view, value, r.expire_at_ms, true))
    }

    /// PUT with prevValue/prevIndex: missing 100, directory 102 before comparing (G28),
    /// mismatch 101 (G12-G14).
    fn compare_and_swap(
        &mut self,
        key: &str,
        value: &str,
        (prev_value, prev_index): (Option<&str>, Option<u64>),
        expire: Option<u64>,
        refresh: bool,
    ) -> Result<Event, StoreError> {
        if refresh {
            return self.refresh(Refresh {
                action: Action::CompareAndSwap,
                key,
                expire_at_ms: expire,
                dir_allowed: false,
                prev_value,
                prev_index,
            });
        }
        self.check_writable(key)?;
        let old = self.tree.find(key, self.index)?;
        if old.is_dir() {
            return Err(StoreError::new(ErrorCode::NotFile, key, self.index));
        }
        if let Some(cause) = compare_failure(old, prev_value, prev_index) {
            return Err(StoreError::new(ErrorCode::TestFailed, cause, self.index));
        }
        let prev_view = old.view(key);
        Ok(self.rewrite(
            Action::CompareAndSwap,
            key,
            prev_view,
            Some(value.to_string()),
            expire,
            false,
        ))
    }

    /// Plain DELETE: a file always goes (G150); a directory needs `dir` (else 102, G34) and,
    /// when not empty, `recursive` (else 108, G35).
    fn delete(&mut self, key: &str, dir: bool, recursive: bool) -> Result<Event, StoreError> {
        self.check_writable(key)?;
        let old = self.tree.find(key, self.index)?;
        if old.is_dir() {
            if !dir && !recursive {
                return Err(StoreError::new(ErrorCode::NotFile, key, self.index));
            }
            if !recursive && self.tree.has_children(key) {
                return Err(StoreError::new(ErrorCode::DirNotEmpty, key, self.index));
            }
        }
        Ok(self.remove(Action::Delete, key))
    }

    /// DELETE with prevValue/prevIndex: directory 102 before comparing (G110), mismatch 101.
    fn compare_and_delete(
        &mut self,
        key: &str,
        prev_value: Option<&str>,
        prev_index: Option<u64>,
    ) -> Result<Event, StoreError> {
        self.check_writable(key)?;
        let old = self.tree.find(key, self.index)?;
        if old.is_dir() {
            return Err(StoreError::new(ErrorCode::NotFile, key, self.index));
        }
        if let Some(cause) = compare_failure(old, prev_value, prev_index) {
            return Err(StoreError::new(ErrorCode::TestFailed, cause, self.index));
        }
        Ok(self.remove(Action::CompareAndDelete, key))
    }

    /// Removes the existing node at `key` with its subtree and commits a removal event whose node
    /// is `{key, dir, modifiedIndex: new, createdIndex}` and whose prevNode is the old node (G38).
    fn remove(&mut self, action: Action, key: &str) -> Event {
        let old = self
            .tree
            .remove_subtree(key)
            .expect("caller checked that the node exists");
        let prev_view = old.view(key);
        let node = NodeView {
            key: key.to_string(),
            dir: old.is_dir(),
            value: None,
            expire_at_ms: None,
            nodes: Vec::new(),
            modified_index: self.index + 1,
            created_index: old.created_index,
        };
        self.commit(action, node, Some(prev_view))
    }

    /// store/README.md §7: removes every node whose expiry is at or before `now_ms`, earliest
    /// first, each with its subtree, one `expire` event and one index each (G119, G192).
    fn expire(&mut self, now_ms: u64) -> Vec<Event> {
        let mut events = Vec::new();
        // Each round removes at least one node, so the tree size bounds the loop.
        for _ in 0..=self.tree.len() {
            let Some(key) = self.tree.first_expired(now_ms) else {
                break;
            };
            events.push(self.remove(Action::Expire, &key));
        }
        assert!(
            self.tree.first_expired(now_ms).is_none(),
            "expire left an expired node behind"
        );
        events
    }
}

/// The 101 cause when the conditions do not hold, naming only the failed comparisons:
/// `[prevValue != value]`, `[prevIndex != modifiedIndex]` or both (store/README.md §4.3,
/// G12-G14). An empty prevValue or a 0 prevIndex is no condition (§2.4, §4.1).
fn compare_failure(
    node: &Node,
    prev_value: Option<&str>,
    prev_index: Option<u64>,
) -> Option<String> {
    let current_value = node.value.as_deref().unwrap_or("");
    let value_failed = prev_value
        .filter(|v| !v.is_empty())
        .filter(|v| *v != current_value);
    let index_failed = prev_index.filter(|i| *i != 0 && *i != node.modified_index);
    // `[value != current]`, `[index != modified]`, or both separated by a space.
    let mut cause = String::with_capacity(
        value_failed.map_or(0, |v| v.len() + current_value.len() + 6)
            + index_failed.map_or(0, |_| 48),
    );
    if let Some(v) = value_failed {
        cause.push('[');
        cause.push_str(v);
        cause.push_str(" != ");
        cause.push_str(current_value);
        cause.push(']');
    }
    if let Some(i) = index_failed {
        if !cause.is_empty() {
            cause.push(' ');
        }
        cause.push('[');
        push_decimal(&mut cause, i, 1);
        cause.push_str(" != ");
        push_decimal(&mut cause, node.modified_index, 1);
        cause.push(']');
    }
    (!cause.is_empty()).then_some(cause)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(key: &str, value: &str) -> Command {
        Command::Set {
            key: key.into(),
            dir: false,
            value: value.into(),
            expire_at_ms: None,
            refresh: false,
        }
    }

    fn mkdir(key: &str, expire_at_ms: Option<u64>) -> Command {
        Command::Set {
            key: key.into(),
            dir: true,
            value: String::new(),
            expire_at_ms,
            refresh: false,
        }
    }

    fn ok(store: &mut Store, cmd: Command) -> Event {
        store
            .apply(&cmd)
            .expect("command succeeds")
            .into_event()
            .expect("one event")
    }

    /// Applies a failing command and checks that nothing moved.
    fn fail(store: &mut Store, cmd: Command) -> (u16, String) {
        let before = store.clone();
        let err = store.apply(&cmd).expect_err("command fails");
        assert_eq!(*store, before, "a failed command must not change the store");
        assert_eq!(err.index, store.index());
        (err.code.number(), err.cause)
    }

    fn cas(key: &str, value: &str, pv: Option<&str>, pi: Option<u64>) -> Command {
        Command::CompareAndSwap {
            key: key.into(),
            value: value.into(),
            prev_value: pv.map(str::to_string),
            prev_index: pi,
            expire_at_ms: None,
            refresh: false,
        }
    }

    #[test]
    fn set_rows() {
        let mut s = Store::new();
        let first = ok(&mut s, set("/a/b", "1"));
        assert_eq!(
            (first.index, first.node.created_index, first.prev_node),
            (1, 1, None)
        );
        let parent = s.get("/a", false, false).unwrap().node;
        assert_eq!(
            (parent.dir, parent.created_index, parent.modified_index),
            (true, 1, 1)
        );
        let second = ok(&mut s, set("/a/b", "2"));
        assert_eq!(second.node.created_index, 2, "set replaces the node");
        assert_eq!(second.prev_node.unwrap().value.as_deref(), Some("1"));
        assert_eq!(fail(&mut s, set("/a", "x")), (102, "/a".into()));
        assert_eq!(fail(&mut s, mkdir("/a", None)), (102, "/a".into()));
        assert_eq!(fail(&mut s, set("/a/b/c", "x")), (104, "/a/b".into()));
        assert_eq!(fail(&mut s, set("/", "x")), (107, "/".into()));
        let replaced = ok(&mut s, mkdir("/a/b", None));
        assert!(
            replaced.node.dir && !replaced.prev_node.unwrap().dir,
            "dir over file (G53)"
        );
        assert_eq!(s.index(), 3);
    }

    #[test]
    fn create_rows() {
        let mut s = Store::with_config(8, 10);
        let create = |key: &str| Command::Create {
            key: key.into(),
            dir: false,
            value: "v".into(),
            expire_at_ms: None,
        };
        assert_eq!(ok(&mut s, create("/k")).action, Action::Create);
        assert_eq!(fail(&mut s, create("/k")), (105, "/k".into()));
        assert_eq!(fail(&mut s, create("/k/x")), (104, "/k".into()));
        let post = |dir_key: &str| Command::CreateInOrder {
            dir_key: dir_key.into(),
            dir: false,
            value: "j".into(),
            expire_at_ms: None,
        };
        assert_eq!(ok(&mut s, post("/q")).node.key, "/q/00000000000000000010");
        assert_eq!(ok(&mut s, post("/")).node.key, "/00000000000000000011");
        assert_eq!(fail(&mut s, post("/k")), (104, "/k".into()));
        ok(&mut s, set("/q/00000000000000000013", "squat"));
        assert_eq!(
            fail(&mut s, post("/q")),
            (105, "/q/00000000000000000013".into())
        );
    }

    #[test]
    fn update_rows() {
        let mut s = Store::new();
        let update = |key: &str, value: &str, expire_at_ms| Command::Update {
            key: key.into(),
            value: value.into(),
            expire_at_ms,
            refresh: false,
        };
        assert_eq!(fail(&mut s, update("/k", "v", None)), (100, "/k".into()));
        ok(
            &mut s,
            Command::Set {
                key: "/k".into(),
                dir: false,
                value: "a".into(),
                expire_at_ms: Some(100),
                refresh: false,
            },
        );
        let up = ok(&mut s, update("/k", "b", None));
        assert_eq!((up.node.created_index, up.node.modified_index), (1, 2));
        assert_eq!(
            up.node.expire_at_ms, None,
            "no ttl makes the node permanent (G142)"
        );
        assert_eq!(s.next_expiry_ms(), None);
        ok(&mut s, mkdir("/d", Some(50)));
        assert_eq!(fail(&mut s, update("/d", "x", None)), (102, "/d".into()));
        let dir_ttl = ok(&mut s, update("/d", "", Some(70)));
        assert!(
            dir_ttl.node.dir && dir_ttl.node.expire_at_ms == Some(70),
            "G112"
        );
        assert_eq!(fail(&mut s, update("/", "", None)), (107, "/".into()));
        assert_eq!(fail(&mut s, update("/k/x", "", None)), (104, "/k".into()));
    }

    #[test]
    fn compare_and_swap_rows() {
        let mut s = Store::new();
        assert_eq!(
            fail(&mut s, cas("/k", "x", Some("a"), None)),
            (100, "/k".into())
        );
        ok(&mut s, set("/k", "bar"));
        ok(&mut s, mkdir("/d", None));
        assert_eq!(
            fail(&mut s, cas("/d", "x", Some("a"), None)),
            (102, "/d".into())
        );
        assert_eq!(
            fail(&mut s, cas("/k", "x", Some("two"), None)).1,
            "[two != bar]"
        );
        assert_eq!(fail(&mut s, cas("/k", "x", None, Some(9))).1, "[9 != 1]");
        assert_eq!(
            fail(&mut s, cas("/k", "x", Some("two"), Some(9))).1,
            "[two != bar] [9 != 1]"
        );
        assert_eq!(
            fail(&mut s, cas("/k", "x", Some("bar"), Some(9))).1,
            "[9 != 1]"
        );
        let swapped = ok(&mut s, cas("/k", "three", Some("bar"), Some(1)));
        assert_eq!(swapped.action, Action::CompareAndSwap);
        assert_eq!(
            (swapped.node.created_index, swapped.node.modified_index),
            (1, 3)
        );
    }

    #[test]
    fn delete_rows() {
        let mut s = Store::new();
        let del = |key: &str, dir, recursive| Command::Delete {
            key: key.into(),
            dir,
            recursive,
        };
        assert_eq!(
            fail(&mut s, del("/nope", false, false)),
            (100, "/nope".into())
        );
        ok(&mut s, set("/d/sub/leaf", "v"));
        ok(&mut s, set("/f", "v"));
        ok(&mut s, set("/d/_hidden", "h"));
        assert_eq!(fail(&mut s, del("/d", false, false)), (102, "/d".into()));
        assert_eq!(fail(&mut s, del("/d", true, false)), (108, "/d".into()));
        assert_eq!(fail(&mut s, del("/", true, true)), (107, "/".into()));
        assert_eq!(fail(&mut s, del("/f/x", false, false)), (104, "/f".into()));
        let gone = ok(&mut s, del("/f", true, false));
        assert_eq!(
            (gone.node.value, gone.node.modified_index),
            (None, 4),
            "G150"
        );
        let tree = ok(&mut s, del("/d", false, true));
        assert!(
            tree.node.dir && tree.prev_node.unwrap().nodes.is_empty(),
            "G36"
        );
        assert_eq!(
            s.node_count(),
            0,
            "recursive delete takes hidden children too"
        );
        ok(&mut s, mkdir("/e", None));
        assert_eq!(ok(&mut s, del("/e", true, false)).action, Action::Delete);
    }

    #[test]
    fn compare_and_delete_rows() {
        let mut s = Store::new();
        let cad = |key: &str, pv: Option<&str>, pi| Command::CompareAndDelete {
            key: key.into(),
            prev_value: pv.map(str::to_string),
            prev_index: pi,
        };
        assert_eq!(fail(&mut s, cad("/k", Some("a"), None)), (100, "/k".into()));
        ok(&mut s, set("/k", "three"));
        ok(&mut s, mkdir("/d", None));
        assert_eq!(fail(&mut s, cad("/d", Some("x"), None)), (102, "/d".into()));
        assert_eq!(
            fail(&mut s, cad("/k", Some("wrong"), None)).1,
            "[wrong != three]"
        );
        assert_eq!(fail(&mut s, cad("/k", None, Some(5))).1, "[5 != 1]");
        let gone = ok(&mut s, cad("/k", Some("three"), Some(1)));
        assert_eq!(
            (
                gone.action,
                gone.node.modified_index,
                gone.node.created_index
            ),
            (Action::CompareAndDelete, 3, 1)
        );
    }

    #[test]
    fn refresh_rows() {
        let mut s = Store::new();
        let set_refresh = Command::Set {
            key: "/k".into(),
            dir: false,
            value: String::new(),
            expire_at_ms: Some(500),
            refresh: true,
        };
        assert_eq!(fail(&mut s, set_refresh.clone()), (100, "/k".into()));
        ok(
            &mut s,
            Command::Set {
                key: "/k".into(),
                dir: false,
                value: "r".into(),
                expire_at_ms: Some(100),
                refresh: false,
            },
        );
        let event = ok(&mut s, set_refresh);
        assert!(event.refresh && event.action == Action::Set);
        assert_eq!(
            event.node.value.as_deref(),
            Some("r"),
            "refresh keeps the value"
        );
        assert_eq!(
            (event.node.created_index, event.node.modified_index),
            (1, 2)
        );
        assert_eq!(s.next_expiry_ms(), Some(500));
        assert_eq!(
            s.event_since("/k", false, 2).unwrap(),
            None,
            "refresh never fires watchers"
        );
        ok(&mut s, mkdir("/d", Some(100)));
        let dir_refresh = Command::Update {
            key: "/d".into(),
            value: String::new(),
            expire_at_ms: Some(900),
            refresh: true,
        };
        assert_eq!(ok(&mut s, dir_refresh).node.expire_at_ms, Some(900), "G44");
        let cas_refresh = Command::CompareAndSwap {
            key: "/k".into(),
            value: String::new(),
            prev_value: Some("nope".into()),
            prev_index: None,
            expire_at_ms: Some(1),
            refresh: true,
        };
        assert_eq!(fail(&mut s, cas_refresh).0, 101);
    }

    #[test]
    fn snapshot_restores_tree_index_history_and_ttls() {
        let mut store = Store::with_config(3, 4);
        for i in 0..6 {
            ok(&mut store, set(&format!("/d/k{i}"), &format!("v{i}")));
        }
        ok(&mut store, mkdir("/t", Some(5_000)));
        ok(&mut store, set("/t/x", "y"));
        let bytes = store.snapshot();
        let restored = Store::restore(&bytes).expect("a snapshot restores");
        assert_eq!(
            restored, store,
            "tree, index, history and expiry index all come back"
        );
        // Watches answer from the restored history, and its cleared window is kept.
        assert_eq!(
            restored
                .event_since("/t/x", false, 0)
                .map(|e| e.map(|e| e.index)),
            store
                .event_since("/t/x", false, 0)
                .map(|e| e.map(|e| e.index))
        );
        assert!(restored.event_since("/d/k0", false, 1).is_err(), "cleared");
        assert_eq!(restored.next_expiry_ms(), Some(5_000));
        // Damaged bytes are an error, never a panic or a half-restored store.
        for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            assert!(Store::restore(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        flipped[0] ^= 0x7f;
        assert!(Store::restore(&flipped).is_err(), "another version");
    }

    #[test]
    fn expire_removes_subtrees_in_order() {
        let mut s = Store::new();
        ok(&mut s, mkdir("/edir", Some(100)));
        ok(
            &mut s,
            Command::Set {
                key: "/edir/child".into(),
                dir: false,
                value: "c".into(),
                expire_at_ms: Some(150),
                refresh: false,
            },
        );
        ok(
            &mut s,
            Command::Set {
                key: "/early".into(),
                dir: false,
                value: "e".into(),
                expire_at_ms: Some(90),
                refresh: false,
            },
        );
        assert!(
            s.apply(&Command::Expire { now_ms: 89 })
                .unwrap()
                .events()
                .is_empty()
        );
        assert_eq!(s.index(), 3, "an empty expiry tick does not move the index");
        let applied = s.apply(&Command::Expire { now_ms: 200 }).unwrap();
        let keys: Vec<(&str, u64)> = applied
            .events()
            .iter()
            .map(|e| (e.node.key.as_str(), e.index))
            .collect();
        assert_eq!(
            keys,
            vec![("/early", 4), ("/edir", 5)],
            "the child went with its dir (G192)"
        );
        assert!(applied.events().iter().all(|e| e.action == Action::Expire));
        assert_eq!(s.next_expiry_ms(), None);
        assert_eq!(s.node_count(), 0);
        let err = s.get("/edir/child", false, false).unwrap_err();
        assert_eq!(
            (err.code.number(), err.cause.as_str(), err.index),
            (100, "/edir", 5),
            "G193"
        );
        let watched = s.event_since("/edir/child", false, 4).unwrap().unwrap();
        assert_eq!(watched.index, 5);
    }
}
