//! The key tree: files and directories in one ordered map keyed by full path, plus the index of
//! TTL'd nodes by expiry instant.
//!
//! Depends on `key`, `event` and `error`. A flat `BTreeMap` keeps every subtree contiguous
//! (`/a/` .. `/a0`), so listings, recursive deletes and expiry are range scans without recursion.
//! The root is implicit: it is always a directory and is never stored. `G<n>` numbers are the
//! recorded etcd exchanges of store/README.md §Transcripts.

use std::collections::{BTreeMap, BTreeSet};

use super::error::{ErrorCode, StoreError};
use super::event::NodeView;
use super::key;

/// One stored node. The key is the map key.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Node {
    /// `Some(value)` for a file, `None` for a directory.
    pub(crate) value: Option<String>,
    /// The index of the write that created the node.
    pub(crate) created_index: u64,
    /// The index of the last write to the node.
    pub(crate) modified_index: u64,
    /// The absolute expiry instant in ms, if the node has a TTL.
    pub(crate) expire_at_ms: Option<u64>,
}

impl Node {
    /// A new node created and last modified at `index`.
    pub(crate) fn new(value: Option<String>, index: u64, expire_at_ms: Option<u64>) -> Node {
        Node {
            value,
            created_index: index,
            modified_index: index,
            expire_at_ms,
        }
    }

    /// True for a directory.
    pub(crate) fn is_dir(&self) -> bool {
        self.value.is_none()
    }

    /// The full view of this node without children (the `prevNode` shape, store/README.md §4.6).
    pub(crate) fn view(&self, key: &str) -> NodeView {
        NodeView {
            key: key.to_string(),
            dir: self.is_dir(),
            value: self.value.clone(),
            expire_at_ms: self.expire_at_ms,
            nodes: Vec::new(),
            modified_index: self.modified_index,
            created_index: self.created_index,
        }
    }
}

/// The tree of nodes and the expiry index.
///
/// Invariant: every ancestor of a stored key is a stored directory, and `expiry` holds exactly the
/// `(expire_at_ms, key)` pairs of the stored nodes that have a TTL.
///
/// The nodes live in a persistent map (`imbl::OrdMap`): a clone shares the whole map and costs
/// O(1), and later writes copy only the paths they touch, so a snapshot takes its point-in-time
/// view on the node loop and serialises it elsewhere ([`Tree::nodes_view`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tree {
    nodes: imbl::OrdMap<String, Node>,
    expiry: BTreeSet<(u64, String)>,
}

impl Tree {
    /// The stored nodes as they are now, sharing this map (O(1)); later changes to the tree
    /// do not show in it.
    pub(crate) fn nodes_view(&self) -> imbl::OrdMap<String, Node> {
        self.nodes.clone()
    }

    /// A tree of `nodes` restored from a snapshot, checking its invariant: every ancestor of a
    /// key is a stored directory. The expiry index is rebuilt from the nodes.
    pub(crate) fn restored(nodes: Vec<(String, Node)>) -> Result<Tree, String> {
        let mut tree = Tree::default();
        for (key, node) in nodes {
            if key::normalize(&key) != key || key == "/" {
                return Err(format!("bad key {key:?}"));
            }
            for ancestor in key::ancestors(&key) {
                if !tree.nodes.get(ancestor).is_some_and(Node::is_dir) {
                    return Err(format!("{key:?} has no directory {ancestor:?}"));
                }
            }
            if let Some(at) = node.expire_at_ms {
                tree.expiry.insert((at, key.clone()));
            }
            if tree.nodes.insert(key.clone(), node).is_some() {
                return Err(format!("{key:?} twice"));
            }
        }
        Ok(tree)
    }

    /// The node at `key`, if stored (never the root).
    pub(crate) fn node(&self, key: &str) -> Option<&Node> {
        self.nodes.get(key)
    }

    /// Finds an existing non-root node the way etcd walks a path (store/README.md §4.7).
    ///
    /// A missing component gives 100 with the path up to that component as cause (G193, G62); a
    /// file in the middle of the path gives 104 with the file as cause.
    pub(crate) fn find(&self, key: &str, index: u64) -> Result<&Node, StoreError> {
        for ancestor in key::ancestors(key) {
            match self.nodes.get(ancestor) {
                None => return Err(StoreError::new(ErrorCode::KeyNotFound, ancestor, index)),
                Some(node) if !node.is_dir() => {
                    return Err(StoreError::new(ErrorCode::NotDir, ancestor, index));
                }
                Some(_) => {}
            }
        }
        self.nodes
            .get(key)
            .ok_or_else(|| StoreError::new(ErrorCode::KeyNotFound, key, index))
    }

    /// Checks that the parents of `key` can be created: 104 naming the first file on the way
    /// (store/README.md §3.3, G29). Nothing changes, so a failed write leaves the tree untouched.
    ///
    /// `Ok(true)` when every parent is a stored directory already (`make_parents` would add
    /// nothing), `Ok(false)` when some are missing.
    pub(crate) fn check_parents(&self, key: &str, index: u64) -> Result<bool, StoreError> {
        for ancestor in key::ancestors(key) {
            match self.nodes.get(ancestor) {
                None => return Ok(false),
                Some(node) if !node.is_dir() => {
                    return Err(StoreError::new(ErrorCode::NotDir, ancestor, index));
                }
                Some(_) => {}
            }
        }
        Ok(true)
    }

    /// Creates the missing parents of `key` as permanent directories stamped with `index`
    /// (store/README.md §3.3, G31). Call `check_parents` first.
    pub(crate) fn make_parents(&mut self, key: &str, index: u64) {
        for ancestor in key::ancestors(key) {
            if !self.nodes.contains_key(ancestor) {
                self.nodes
                    .insert(ancestor.to_string(), Node::new(None, index, None));
            }
        }
    }

    /// Stores `node` at `key`, replacing a file there; keeps the expiry index in step.
    pub(crate) fn put(&mut self, key: &str, node: Node) {
        let at = node.expire_at_ms;
        // The replaced node comes back from the insert (one look-up, not two); its expiry
        // goes before the new one is added, which may be the same pair.
        if let Some(old) = self.nodes.insert(key.to_string(), node)
            && let Some(old_at) = old.expire_at_ms
        {
            self.expiry.remove(&(old_at, key.to_string()));
        }
        if let Some(at) = at {
            self.expiry.insert((at, key.to_string()));
        }
    }

    /// True when the directory at `key` has at least one child (hidden ones included).
    pub(crate) fn has_children(&self, key: &str) -> bool {
        let prefix = key::child_prefix(key);
        let end = key::prefix_end(&prefix);
        self.nodes.range(prefix..end).next().is_some()
    }

    /// Removes `key` and its whole subtree (hidden nodes too, store/README.md §3.4) and their
    /// expiry entries; returns the removed node at `key`.
    pub(crate) fn remove_subtree(&mut self, key: &str) -> Option<Node> {
        let node = self.remove_one(key)?;
        // Only a directory has anything below it (the tree's invariant): a file goes alone,
        // without a scan.
        if node.is_dir() {
            let prefix = key::child_prefix(key);
            let end = key::prefix_end(&prefix);
            let below: Vec<String> = self
                .nodes
                .range(prefix..end)
                .map(|(k, _)| k.clone())
                .collect();
            for child in below {
                self.remove_one(&child);
            }
        }
        Some(node)
    }

    fn remove_one(&mut self, key: &str) -> Option<Node> {
        let node = self.nodes.remove(key)?;
        if let Some(at) = node.expire_at_ms {
            self.expiry.remove(&(at, key.to_string()));
        }
        Some(node)
    }

    /// The key that expires first among those whose expiry is at or before `now_ms`.
    ///
    /// Ties break by key, so every replica expires in the same order (store/README.md §7).
    pub(crate) fn first_expired(&self, now_ms: u64) -> Option<String> {
        let (at, key) = self.expiry.first()?;
        (*at <= now_ms).then(|| key.clone())
    }

    /// The earliest expiry instant in the tree, if any node has a TTL.
    pub(crate) fn next_expiry_ms(&self) -> Option<u64> {
        self.expiry.first().map(|(at, _)| *at)
    }

    /// The number of stored nodes (the root excluded).
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The visible children of the directory `key`, one level deep (store/README.md §4.7, G32).
    ///
    /// Hidden children are skipped (store/README.md §3.4). Child directories carry no `nodes`. The
    /// scan jumps over each child's subtree, so it costs one seek per child, not one per
    /// descendant.
    pub(crate) fn list_one_level(&self, key: &str) -> Vec<NodeView> {
        let prefix = key::child_prefix(key);
        let end = key::prefix_end(&prefix);
        let mut out = Vec::new();
        let mut from = prefix.clone();
        while let Some((child, node)) = self.nodes.range(from.clone()..end.clone()).next() {
            let rest = &child[prefix.len()..];
            if let Some(slash) = rest.find('/') {
                // A descendant of a child we already listed: skip that child's whole subtree.
                from = key::prefix_end(&child[..prefix.len() + slash + 1]);
                continue;
            }
            if !key::is_hidden(child) {
                out.push(node.view(child));
            }
            from = format!("{child}\0");
        }
        out
    }

    /// The visible subtree below the directory `key`, nested (store/README.md §4.7, G33).
    ///
    /// Children are ordered by key at every level: the map order, which is also what
    /// `sorted=true` asks for, so unsorted listings are deterministic too (README §4.7). Nodes
    /// with a hidden component below `key` are skipped (README §3.4). Built bottom-up without
    /// recursion.
    pub(crate) fn list_recursive(&self, key: &str) -> Vec<NodeView> {
        let prefix = key::child_prefix(key);
        let end = key::prefix_end(&prefix);
        let mut pending: BTreeMap<&str, NodeView> = BTreeMap::new();
        for (child, node) in self.nodes.range(prefix..end) {
            if !key::hidden_below(key, child) {
                pending.insert(child.as_str(), node.view(child));
            }
        }
        // Deepest first (stable, so siblings stay in key order), each moved into its parent.
        let mut order: Vec<&str> = pending.keys().copied().collect();
        order.sort_by_key(|k| std::cmp::Reverse(k.matches('/').count()));
        let mut top = Vec::new();
        for child in order {
            let Some(view) = pending.remove(child) else {
                continue;
            };
            let parent = key::ancestors(child).last().unwrap_or(key::ROOT);
            match pending.get_mut(parent) {
                Some(parent_view) if parent != key => parent_view.nodes.push(view),
                _ => top.push(view),
            }
        }
        top
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(tree: &mut Tree, key: &str, index: u64) {
        tree.make_parents(key, index);
        tree.put(key, Node::new(Some(format!("v{index}")), index, None));
    }

    fn keys(views: &[NodeView]) -> Vec<&str> {
        views.iter().map(|v| v.key.as_str()).collect()
    }

    #[test]
    fn one_level_listing_skips_subtrees_and_hidden() {
        let mut tree = Tree::default();
        file(&mut tree, "/a/b", 1);
        file(&mut tree, "/a/b/c", 2);
        file(&mut tree, "/a/b c", 3);
        file(&mut tree, "/a/_h", 4);
        file(&mut tree, "/a/d/e/f", 5);
        assert!(tree.check_parents("/a/b/c/d", 6).is_err(), "c is a file");
        assert_eq!(
            keys(&tree.list_one_level("/a")),
            vec!["/a/b", "/a/b c", "/a/d"]
        );
        assert_eq!(keys(&tree.list_one_level("/")), vec!["/a"]);
    }

    #[test]
    fn recursive_listing_nests_in_key_order() {
        let mut tree = Tree::default();
        file(&mut tree, "/a/x/1", 1);
        file(&mut tree, "/a/x/_2", 2);
        file(&mut tree, "/a/_y/3", 3);
        file(&mut tree, "/a/z", 4);
        let top = tree.list_recursive("/a");
        assert_eq!(keys(&top), vec!["/a/x", "/a/z"]);
        assert_eq!(keys(&top[0].nodes), vec!["/a/x/1"]);
        assert_eq!(tree.list_recursive("/").len(), 1);
        assert_eq!(keys(&tree.list_recursive("/a/_y")), vec!["/a/_y/3"]);
    }

    #[test]
    fn remove_subtree_drops_expiry_entries() {
        let mut tree = Tree::default();
        tree.make_parents("/d/k", 1);
        tree.put("/d/k", Node::new(Some("v".into()), 1, Some(50)));
        tree.put("/d2", Node::new(Some("v".into()), 2, Some(60)));
        assert_eq!(tree.next_expiry_ms(), Some(50));
        assert!(tree.remove_subtree("/d").is_some());
        assert_eq!(tree.next_expiry_ms(), Some(60));
        assert_eq!(tree.first_expired(59), None);
        assert_eq!(tree.first_expired(60).as_deref(), Some("/d2"));
        assert_eq!(tree.len(), 1);
    }
}
