//! Model test: `engine::store::Store` against a deliberately naive reference written from
//! engine/src/store/README.md §3-§8 (a flat `BTreeMap` of full key paths, linear scans, an index counter and a
//! list of every event). Random operation sequences over a tiny key space (`/`, `/a`, `/a/b`,
//! `/a/_x`, `/c`, `/_h`) make files, directories, hidden keys and the root collide. Store and
//! model must agree on every success/failure, error code, cause and index, on the values and
//! indexes of the nodes returned, on listings, and on what the event history answers.

use std::collections::BTreeMap;

use engine::store::{Action, Command, NodeView, Store};
use proptest::prelude::*;

const KEYS: &[&str] = &["/", "/a", "/a/b", "/a/_x", "/c", "/_h"];
const VALUES: &[&str] = &["", "x", "y"];

#[derive(Clone, Debug)]
enum Op {
    Set {
        key: usize,
        dir: bool,
        value: usize,
        ttl: Option<u64>,
    },
    Create {
        key: usize,
        dir: bool,
        value: usize,
    },
    Post {
        key: usize,
    },
    Update {
        key: usize,
        value: usize,
        ttl: Option<u64>,
    },
    Refresh {
        key: usize,
        ttl: u64,
    },
    Cas {
        key: usize,
        value: usize,
        prev_value: Option<usize>,
        prev_index: Option<u64>,
    },
    Cad {
        key: usize,
        prev_value: Option<usize>,
        prev_index: Option<u64>,
    },
    Delete {
        key: usize,
        dir: bool,
        recursive: bool,
    },
    Get {
        key: usize,
        recursive: bool,
    },
    Expire {
        advance_ms: u64,
    },
    Watch {
        key: usize,
        recursive: bool,
        back: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS.len();
    let value = 0..VALUES.len();
    let ttl = proptest::option::of(0u64..3);
    prop_oneof![
        4 => (key.clone(), any::<bool>(), value.clone(), ttl.clone())
            .prop_map(|(key, dir, value, ttl)| Op::Set { key, dir, value, ttl }),
        2 => (key.clone(), any::<bool>(), value.clone())
            .prop_map(|(key, dir, value)| Op::Create { key, dir, value }),
        1 => key.clone().prop_map(|key| Op::Post { key }),
        2 => (key.clone(), value.clone(), ttl)
            .prop_map(|(key, value, ttl)| Op::Update { key, value, ttl }),
        1 => (key.clone(), 0u64..3).prop_map(|(key, ttl)| Op::Refresh { key, ttl }),
        2 => (key.clone(), value.clone(), proptest::option::of(value.clone()),
              proptest::option::of(0u64..12))
            .prop_map(|(key, value, prev_value, prev_index)| Op::Cas { key, value, prev_value, prev_index }),
        2 => (key.clone(), proptest::option::of(value), proptest::option::of(0u64..12))
            .prop_map(|(key, prev_value, prev_index)| Op::Cad { key, prev_value, prev_index }),
        2 => (key.clone(), any::<bool>(), any::<bool>())
            .prop_map(|(key, dir, recursive)| Op::Delete { key, dir, recursive }),
        2 => (key.clone(), any::<bool>()).prop_map(|(key, recursive)| Op::Get { key, recursive }),
        1 => (0u64..2500).prop_map(|advance_ms| Op::Expire { advance_ms }),
        2 => (key, any::<bool>(), 0u64..6)
            .prop_map(|(key, recursive, back)| Op::Watch { key, recursive, back }),
    ]
}

#[derive(Clone, Debug, PartialEq)]
struct MNode {
    value: Option<String>,
    created: u64,
    modified: u64,
    expire: Option<u64>,
}

#[derive(Clone, Debug)]
struct MEvent {
    index: u64,
    action: Action,
    key: String,
    dir: bool,
    refresh: bool,
}

/// What an operation returned, reduced to what both sides can be compared on.
#[derive(Debug, PartialEq)]
enum Outcome {
    Ok {
        action: Action,
        key: String,
        value: Option<String>,
        created: u64,
        modified: u64,
        prev_modified: Option<u64>,
    },
    Err {
        code: u16,
        cause: String,
        index: u64,
    },
}

#[derive(Default)]
struct Model {
    nodes: BTreeMap<String, MNode>,
    index: u64,
    events: Vec<MEvent>,
}

fn err(code: u16, cause: &str, index: u64) -> Outcome {
    Outcome::Err {
        code,
        cause: cause.to_string(),
        index,
    }
}

/// `/a/b` -> [`/a`]; `/a` -> [].
fn parents(key: &str) -> Vec<String> {
    let parts: Vec<&str> = key.split('/').filter(|p| !p.is_empty()).collect();
    (1..parts.len())
        .map(|n| format!("/{}", parts[..n].join("/")))
        .collect()
}

fn is_under(key: &str, base: &str) -> bool {
    if base == "/" {
        key != "/"
    } else {
        key.starts_with(&format!("{base}/"))
    }
}

fn hidden_below(base: &str, key: &str) -> bool {
    let rest = if base == "/" {
        &key[1..]
    } else {
        &key[base.len() + 1..]
    };
    rest.split('/').any(|p| p.starts_with('_'))
}

impl Model {
    fn walk(&self, key: &str) -> Result<MNode, Outcome> {
        for p in parents(key) {
            match self.nodes.get(&p) {
                None => return Err(err(100, &p, self.index)),
                Some(n) if n.value.is_some() => return Err(err(104, &p, self.index)),
                Some(_) => {}
            }
        }
        self.nodes
            .get(key)
            .cloned()
            .ok_or_else(|| err(100, key, self.index))
    }

    fn parents_ok(&self, key: &str) -> Result<(), Outcome> {
        for p in parents(key) {
            if let Some(n) = self.nodes.get(&p)
                && n.value.is_some()
            {
                return Err(err(104, &p, self.index));
            }
        }
        Ok(())
    }

    fn record(
        &mut self,
        action: Action,
        key: &str,
        node: &MNode,
        prev: Option<&MNode>,
        refresh: bool,
    ) -> Outcome {
        self.events.push(MEvent {
            index: self.index,
            action,
            key: key.to_string(),
            dir: node.value.is_none(),
            refresh,
        });
        Outcome::Ok {
            action,
            key: key.to_string(),
            value: node.value.clone(),
            created: node.created,
            modified: node.modified,
            prev_modified: prev.map(|p| p.modified),
        }
    }

    fn write_new(
        &mut self,
        action: Action,
        key: &str,
        dir: bool,
        value: &str,
        expire: Option<u64>,
    ) -> Outcome {
        if key == "/" {
            return err(107, "/", self.index);
        }
        if let Err(e) = self.parents_ok(key) {
            return e;
        }
        let prev = self.nodes.get(key).cloned();
        match (&prev, action) {
            (Some(_), Action::Create) => return err(105, key, self.index),
            (Some(p), _) if p.value.is_none() => return err(102, key, self.index),
            _ => {}
        }
        self.index += 1;
        for p in parents(key) {
            self.nodes.entry(p).or_insert(MNode {
                value: None,
                created: self.index,
                modified: self.index,
                expire: None,
            });
        }
        let node = MNode {
            value: (!dir).then(|| value.to_string()),
            created: self.index,
            modified: self.index,
            expire,
        };
        self.nodes.insert(key.to_string(), node.clone());
        self.record(action, key, &node, prev.as_ref(), false)
    }

    fn cause(pv: Option<&str>, pi: Option<u64>, n: &MNode) -> Option<String> {
        let cur = n.value.clone().unwrap_or_default();
        let mut parts = Vec::new();
        if let Some(v) = pv.filter(|v| !v.is_empty() && *v != cur) {
            parts.push(format!("[{v} != {cur}]"));
        }
        if let Some(i) = pi.filter(|i| *i != 0 && *i != n.modified) {
            parts.push(format!("[{i} != {}]", n.modified));
        }
        (!parts.is_empty()).then(|| parts.join(" "))
    }

    /// Update, CAS and refreshes: rewrite an existing node in place.
    #[allow(clippy::too_many_arguments)]
    fn rewrite(
        &mut self,
        action: Action,
        key: &str,
        value: Option<&str>,
        pv: Option<&str>,
        pi: Option<u64>,
        expire: Option<u64>,
        dir_ok: bool,
    ) -> Outcome {
        if key == "/" {
            return err(107, "/", self.index);
        }
        let old = match self.walk(key) {
            Ok(n) => n,
            Err(e) => return e,
        };
        let is_dir = old.value.is_none();
        if is_dir && (!dir_ok || value.is_some_and(|v| !v.is_empty())) {
            return err(102, key, self.index);
        }
        if let Some(c) = Self::cause(pv, pi, &old) {
            return err(101, &c, self.index);
        }
        self.index += 1;
        let new_value = if is_dir {
            None
        } else {
            Some(
                value
                    .map(str::to_string)
                    .unwrap_or_else(|| old.value.clone().unwrap()),
            )
        };
        let node = MNode {
            value: new_value,
            created: old.created,
            modified: self.index,
            expire,
        };
        // store/README.md §4.3: a directory keeps its old modifiedIndex; the event has the new.
        let stored = MNode {
            modified: if is_dir { old.modified } else { self.index },
            ..node.clone()
        };
        self.nodes.insert(key.to_string(), stored);
        self.record(action, key, &node, Some(&old), value.is_none())
    }

    fn remove(&mut self, action: Action, key: &str) -> Outcome {
        let old = self.nodes.get(key).cloned().unwrap();
        self.nodes.retain(|k, _| k != key && !is_under(k, key));
        self.index += 1;
        let node = MNode {
            value: None,
            created: old.created,
            modified: self.index,
            expire: None,
        };
        self.events.push(MEvent {
            index: self.index,
            action,
            key: key.to_string(),
            dir: old.value.is_none(),
            refresh: false,
        });
        Outcome::Ok {
            action,
            key: key.to_string(),
            value: None,
            created: node.created,
            modified: node.modified,
            prev_modified: Some(old.modified),
        }
    }

    fn delete(
        &mut self,
        key: &str,
        dir: bool,
        recursive: bool,
        pv: Option<&str>,
        pi: Option<u64>,
    ) -> Outcome {
        if key == "/" {
            return err(107, "/", self.index);
        }
        let old = match self.walk(key) {
            Ok(n) => n,
            Err(e) => return e,
        };
        let cad = pv.is_some() || pi.is_some();
        if old.value.is_none() {
            if cad || (!dir && !recursive) {
                return err(102, key, self.index);
            }
            if !recursive && self.nodes.keys().any(|k| is_under(k, key)) {
                return err(108, key, self.index);
            }
        }
        if cad {
            if let Some(c) = Self::cause(pv, pi, &old) {
                return err(101, &c, self.index);
            }
            return self.remove(Action::CompareAndDelete, key);
        }
        self.remove(Action::Delete, key)
    }

    fn expire(&mut self, now: u64) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        loop {
            let due = self
                .nodes
                .iter()
                .filter_map(|(k, n)| n.expire.filter(|e| *e <= now).map(|e| (e, k.clone())))
                .min();
            let Some((_, key)) = due else { break };
            self.remove(Action::Expire, &key);
            out.push((key, self.index));
        }
        out
    }

    fn listing(&self, key: &str, recursive: bool) -> Vec<(String, Option<String>, u64)> {
        self.nodes
            .iter()
            .filter(|(k, _)| is_under(k, key) && !hidden_below(key, k))
            .filter(|(k, _)| recursive || !k[key.len()..].trim_start_matches('/').contains('/'))
            .map(|(k, n)| (k.clone(), n.value.clone(), n.modified))
            .collect()
    }

    fn watch(&self, key: &str, recursive: bool, since: u64) -> Option<u64> {
        self.events
            .iter()
            .find(|e| {
                e.index >= since
                    && !e.refresh
                    && (e.key == key
                        || (recursive && is_under(&e.key, key) && !hidden_below(key, &e.key))
                        || (matches!(e.action, Action::Delete | Action::Expire)
                            && e.dir
                            && is_under(key, &e.key)))
            })
            .map(|e| e.index)
    }
}

fn outcome(result: Result<engine::store::Applied, engine::store::StoreError>) -> Outcome {
    match result {
        Err(e) => Outcome::Err {
            code: e.code.number(),
            cause: e.cause,
            index: e.index,
        },
        Ok(applied) => {
            let e = applied.into_event().expect("one event");
            Outcome::Ok {
                action: e.action,
                key: e.node.key,
                value: e.node.value,
                created: e.node.created_index,
                modified: e.node.modified_index,
                prev_modified: e.prev_node.map(|p| p.modified_index),
            }
        }
    }
}

fn flatten(nodes: &[NodeView]) -> Vec<(String, Option<String>, u64)> {
    let mut out = Vec::new();
    let mut stack: Vec<&NodeView> = nodes.iter().collect();
    while let Some(n) = stack.pop() {
        out.push((n.key.clone(), n.value.clone(), n.modified_index));
        stack.extend(n.nodes.iter());
    }
    out.sort();
    out
}

fn value(i: usize) -> String {
    VALUES[i].to_string()
}

fn expire_in(ttl: Option<u64>, now: u64) -> Option<u64> {
    ttl.map(|t| now + t * 1000)
}

/// The command of a create-like op, and what the model answers to it.
fn create_like(model: &mut Model, now: u64, op: &Op) -> (Command, Outcome) {
    match *op {
        Op::Set {
            key,
            dir,
            value: v,
            ttl,
        } => {
            let expire_at_ms = expire_in(ttl, now);
            let (k, value) = (KEYS[key].to_string(), value(v));
            let cmd = Command::Set {
                key: k,
                dir,
                value,
                expire_at_ms,
                refresh: false,
            };
            (
                cmd,
                model.write_new(Action::Set, KEYS[key], dir, VALUES[v], expire_at_ms),
            )
        }
        Op::Create { key, dir, value: v } => {
            let (k, value) = (KEYS[key].to_string(), value(v));
            let cmd = Command::Create {
                key: k,
                dir,
                value,
                expire_at_ms: None,
            };
            (
                cmd,
                model.write_new(Action::Create, KEYS[key], dir, VALUES[v], None),
            )
        }
        Op::Post { key } => {
            let dir_key = KEYS[key].to_string();
            let base = if dir_key == "/" {
                String::new()
            } else {
                dir_key.clone()
            };
            let name = format!("{base}/{:020}", model.index + 1);
            let cmd = Command::CreateInOrder {
                dir_key,
                dir: false,
                value: "p".into(),
                expire_at_ms: None,
            };
            (
                cmd,
                model.write_new(Action::Create, &name, false, "p", None),
            )
        }
        _ => unreachable!("not a create-like op"),
    }
}

/// The command of an op on an existing node, and what the model answers to it.
fn change_like(model: &mut Model, now: u64, op: &Op) -> (Command, Outcome) {
    match *op {
        Op::Update { key, value: v, ttl } => {
            let expire_at_ms = expire_in(ttl, now);
            let cmd = Command::Update {
                key: KEYS[key].into(),
                value: value(v),
                expire_at_ms,
                refresh: false,
            };
            let want = model.rewrite(
                Action::Update,
                KEYS[key],
                Some(VALUES[v]),
                None,
                None,
                expire_at_ms,
                true,
            );
            (cmd, want)
        }
        Op::Refresh { key, ttl } => {
            let expire_at_ms = expire_in(Some(ttl), now);
            let cmd = Command::Update {
                key: KEYS[key].into(),
                value: String::new(),
                expire_at_ms,
                refresh: true,
            };
            (
                cmd,
                model.rewrite(
                    Action::Update,
                    KEYS[key],
                    None,
                    None,
                    None,
                    expire_at_ms,
                    true,
                ),
            )
        }
        Op::Cas {
            key,
            value: v,
            prev_value,
            prev_index,
        } => {
            let pv = prev_value.map(|i| VALUES[i]);
            let cmd = Command::CompareAndSwap {
                key: KEYS[key].into(),
                value: value(v),
                prev_value: pv.map(str::to_string),
                prev_index,
                expire_at_ms: None,
                refresh: false,
            };
            let want = model.rewrite(
                Action::CompareAndSwap,
                KEYS[key],
                Some(VALUES[v]),
                pv,
                prev_index,
                None,
                false,
            );
            (cmd, want)
        }
        Op::Cad {
            key,
            prev_value,
            prev_index,
        } => {
            let pv = prev_value.map(|i| VALUES[i]);
            let cmd = Command::CompareAndDelete {
                key: KEYS[key].into(),
                prev_value: pv.map(str::to_string),
                prev_index,
            };
            // The model treats "no condition at all" as a CAD too; give it an empty condition.
            let (mpv, mpi) = if pv.is_none() && prev_index.is_none() {
                (Some(""), None)
            } else {
                (pv, prev_index)
            };
            (cmd, model.delete(KEYS[key], false, false, mpv, mpi))
        }
        Op::Delete {
            key,
            dir,
            recursive,
        } => {
            let cmd = Command::Delete {
                key: KEYS[key].into(),
                dir,
                recursive,
            };
            (cmd, model.delete(KEYS[key], dir, recursive, None, None))
        }
        _ => unreachable!("not a change-like op"),
    }
}

/// Runs one op on both sides and compares.
fn step(store: &mut Store, model: &mut Model, now: &mut u64, op: &Op) -> Result<(), TestCaseError> {
    let (cmd, want) = match *op {
        Op::Get { key, recursive } => return check_get(store, model, KEYS[key], recursive),
        Op::Expire { advance_ms } => {
            *now += advance_ms;
            let events = store.apply(&Command::Expire { now_ms: *now }).unwrap();
            let got: Vec<(String, u64)> = events
                .events()
                .iter()
                .map(|e| (e.node.key.clone(), e.index))
                .collect();
            prop_assert_eq!(got, model.expire(*now));
            prop_assert_eq!(store.index(), model.index);
            return Ok(());
        }
        Op::Watch {
            key,
            recursive,
            back,
        } => {
            let since = model.index.saturating_sub(back).max(1);
            let got = store
                .event_since(KEYS[key], recursive, since)
                .unwrap()
                .map(|e| e.index);
            prop_assert_eq!(
                got,
                model.watch(KEYS[key], recursive, since),
                "watch {} since {}",
                KEYS[key],
                since
            );
            return Ok(());
        }
        Op::Set { .. } | Op::Create { .. } | Op::Post { .. } => create_like(model, *now, op),
        _ => change_like(model, *now, op),
    };
    prop_assert_eq!(outcome(store.apply(&cmd)), want, "op {:?}", op);
    prop_assert_eq!(store.index(), model.index);
    Ok(())
}

fn check_get(
    store: &Store,
    model: &Model,
    key: &str,
    recursive: bool,
) -> Result<(), TestCaseError> {
    let got = store.get(key, recursive, false);
    if key == "/" {
        let node = got.unwrap().node;
        prop_assert_eq!(flatten(&node.nodes), model.listing("/", recursive));
        return Ok(());
    }
    match (got, model.walk(key)) {
        (Ok(event), Ok(m)) => {
            prop_assert_eq!(&event.node.value, &m.value);
            prop_assert_eq!(
                (event.node.created_index, event.node.modified_index),
                (m.created, m.modified)
            );
            prop_assert_eq!(event.node.expire_at_ms, m.expire);
            prop_assert_eq!(
                flatten(&event.node.nodes),
                if m.value.is_none() {
                    model.listing(key, recursive)
                } else {
                    vec![]
                }
            );
        }
        (Err(e), Err(want)) => {
            prop_assert_eq!(
                Outcome::Err {
                    code: e.code.number(),
                    cause: e.cause,
                    index: e.index
                },
                want
            );
        }
        (got, want) => prop_assert!(
            false,
            "get {} disagrees: {:?} vs {:?}",
            key,
            got,
            want.map(|_| ())
        ),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn store_matches_model(ops in proptest::collection::vec(op(), 1..60)) {
        let mut store = Store::new();
        let mut model = Model::default();
        let mut now = 1_000_000u64;
        for op in &ops {
            step(&mut store, &mut model, &mut now, op)?;
        }
        for key in KEYS {
            check_get(&store, &model, key, true)?;
        }
        prop_assert_eq!(store.next_expiry_ms(), model.nodes.values().filter_map(|n| n.expire).min());
    }
}
