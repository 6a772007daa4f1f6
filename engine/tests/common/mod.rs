//! A deterministic in-memory network of `RawNode`s, shared by the interaction scripts
//! (`interaction.rs`) and the paper-rule and property tests (`raft_paper.rs`).
//!
//! Each node has a "disk" ([`Storage`]: the persisted hard state and entries) and a state
//! machine (the list of entries it applied). A `Ready` is handled exactly as its contract says:
//! persist `hard_state` + `entries` (an entry at index `i` replaces every stored entry at `>= i`),
//! then queue `messages`, then apply `committed_entries`, then `advance`. Messages wait in one
//! queue per recipient until the test delivers, drops or duplicates them. Nodes and queues live
//! in `BTreeMap`s and are always visited in ascending id, so every run is identical.
//!
//! A [`Checker`] feeds every step to the `checker` crate's Raft safety checker (Raft §5.2, §5.3,
//! §5.4, Figure 3; the same oracle the simulator uses, which knows nothing of the engine) and
//! records violations as text instead of panicking, so a script can show a planted bug biting and
//! a property test can report the first violation.

// Each test binary uses a different part of the harness.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use checker::fnv::hash_bytes;
use checker::raft as plain;
use checker::{RaftSafety, Violation};
use engine::raft::{
    Bugs, Config, Entry, HardState, Index, Message, MessageKind, NodeId, ProposeError, RawNode,
    RoleKind, Term,
};

/// How `Network::new` configures every node.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Node `i` seeds its RNG with `seed + i`.
    pub seed: u64,
    /// `election_timeout_ticks`; the randomized timeout is drawn from `[e, 2e)`.
    pub election_ticks: u64,
    /// `heartbeat_interval_ticks`.
    pub heartbeat_ticks: u64,
    /// `msg_entries_max`.
    pub msg_entries_max: usize,
    /// `pre_vote` (Raft thesis §9.6).
    pub pre_vote: bool,
    /// `check_quorum` (Raft thesis §6.2, §4.2.3).
    pub check_quorum: bool,
    /// Planted bugs.
    pub bugs: Bugs,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            seed: 0,
            election_ticks: 10,
            heartbeat_ticks: 1,
            msg_entries_max: 64,
            pre_vote: false,
            check_quorum: false,
            bugs: Bugs::default(),
        }
    }
}

impl Options {
    /// The configuration of node `id` in a cluster of `peers`.
    pub fn config(&self, id: NodeId, peers: Vec<NodeId>) -> Config {
        let mut config = Config::new(id, peers, self.seed + id.0);
        config.election_timeout_ticks = self.election_ticks;
        config.election_timeout_max_ticks = 2 * self.election_ticks;
        config.heartbeat_interval_ticks = self.heartbeat_ticks;
        config.msg_entries_max = self.msg_entries_max;
        config.pre_vote = self.pre_vote;
        config.check_quorum = self.check_quorum;
        config.bugs = self.bugs;
        config
    }
}

/// What one node has on stable storage.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Storage {
    /// The last persisted hard state.
    pub hard_state: HardState,
    /// The persisted log; `entries[i]` has index `i + 1`.
    pub entries: Vec<Entry>,
}

/// One node of the network.
#[derive(Debug)]
pub struct Node {
    /// The running Raft core, or `None` while the node is down.
    pub raw: Option<RawNode>,
    /// The configuration it restarts with.
    pub config: Config,
    /// Its disk: survives crashes.
    pub storage: Storage,
    /// Its state machine: the committed entries applied since it last started.
    pub applied: Vec<Entry>,
}

impl Node {
    /// The node's log: in memory if it runs, on disk if it is down.
    pub fn log(&self) -> Vec<Entry> {
        match &self.raw {
            Some(raw) => {
                let log = raw.raft_log();
                log.slice(Index(1), log.last_index(), usize::MAX).to_vec()
            }
            None => self.storage.entries.clone(),
        }
    }

    /// The node's commit index: in memory if it runs, on disk if it is down.
    pub fn commit(&self) -> Index {
        match &self.raw {
            Some(raw) => raw.raft_log().commit(),
            None => self.storage.hard_state.commit,
        }
    }

    fn raw(&self) -> &RawNode {
        self.raw.as_ref().expect("node is up")
    }
}

/// The safety properties of Raft Figure 3, checked after every step by the checker crate.
#[derive(Debug, Default)]
pub struct Checker {
    /// The oracle.
    pub safety: RaftSafety,
    /// Every violation found, in order.
    pub violations: Vec<String>,
}

impl Checker {
    /// Records a verdict's violation once, however many checks see it again.
    fn record(&mut self, verdict: Result<(), Violation>) {
        if let Err(v) = verdict {
            let what = format!(
                "{}: node {} term {} index {}: {}",
                v.rule, v.node, v.term, v.index, v.detail
            );
            if !self.violations.contains(&what) {
                self.violations.push(what);
            }
        }
    }
}

/// The engine's observations in the checker's plain types.
mod observe {
    use super::*;

    pub fn node(id: NodeId) -> plain::NodeId {
        plain::NodeId(id.0)
    }

    pub fn entry(e: &Entry) -> plain::Entry {
        plain::Entry {
            index: plain::Index(e.index.0),
            term: plain::Term(e.term.0),
            fingerprint: hash_bytes(e.data()),
        }
    }

    pub fn hard_state(hs: &HardState) -> plain::HardState {
        plain::HardState {
            term: plain::Term(hs.term.0),
            voted_for: hs.voted_for.map(node),
            commit: plain::Index(hs.commit.0),
        }
    }

    pub fn message(m: &Message) -> plain::Message {
        let promise = match m.kind {
            MessageKind::VoteResponse { granted: true } => plain::Promise::VoteGranted,
            MessageKind::AppendResponse {
                success: true,
                match_index,
                ..
            } => plain::Promise::Appended {
                match_index: plain::Index(match_index.0),
            },
            _ => plain::Promise::Nothing,
        };
        plain::Message {
            from: node(m.from),
            to: node(m.to),
            term: plain::Term(m.term.0),
            promise,
        }
    }

    pub fn recovered(storage: &Storage) -> plain::Recovered {
        plain::Recovered {
            hard_state: hard_state(&storage.hard_state),
            log_start: plain::Index(0),
            snapshot: None,
            entries: storage.entries.iter().map(entry).collect(),
            damaged: false,
        }
    }

    pub fn status(raw: &RawNode) -> plain::Status {
        let s = raw.status();
        plain::Status {
            id: node(s.id),
            term: plain::Term(s.term.0),
            voted_for: s.voted_for.map(node),
            commit: plain::Index(s.commit.0),
            applied: plain::Index(s.applied.0),
            role: match s.role {
                RoleKind::Follower => plain::Role::Follower,
                RoleKind::PreCandidate => plain::Role::PreCandidate,
                RoleKind::Candidate => plain::Role::Candidate,
                RoleKind::Leader => plain::Role::Leader,
            },
            commit_term: raw.raft_log().term(s.commit).map(|t| plain::Term(t.0)),
        }
    }
}

/// A role/term/leader triple, to print only what changed.
type Observed = Option<(RoleKind, Term, Option<NodeId>)>;

/// The in-memory network.
#[derive(Debug)]
pub struct Network {
    /// Every node by id.
    pub nodes: BTreeMap<NodeId, Node>,
    /// Messages in flight, by recipient, oldest first.
    pub queues: BTreeMap<NodeId, Vec<Message>>,
    /// The partition in force: a message between two groups is dropped at delivery. Empty when
    /// the network is whole.
    pub groups: Vec<BTreeSet<NodeId>>,
    /// The safety checker.
    pub checker: Checker,
}

impl Network {
    /// `n` fresh nodes with ids `1..=n`.
    pub fn new(n: u64, options: &Options) -> Network {
        let storages = (1..=n).map(|_| Storage::default()).collect();
        Network::with_storage(storages, options)
    }

    /// One node per storage (ids `1..`), each started from what is on its disk.
    pub fn with_storage(storages: Vec<Storage>, options: &Options) -> Network {
        let peers: Vec<NodeId> = (1..=storages.len() as u64).map(NodeId).collect();
        let mut nodes = BTreeMap::new();
        let mut queues = BTreeMap::new();
        let mut checker = Checker::default();
        for (id, storage) in peers.iter().zip(storages) {
            let verdict = checker
                .safety
                .recovered(observe::node(*id), &observe::recovered(&storage));
            checker.record(verdict);
            let config = options.config(*id, peers.clone());
            let raw = RawNode::new(config.clone(), storage.hard_state, storage.entries.clone())
                .expect("valid config");
            let node = Node {
                raw: Some(raw),
                config,
                storage,
                applied: Vec::new(),
            };
            nodes.insert(*id, node);
            queues.insert(*id, Vec::new());
        }
        Network {
            nodes,
            queues,
            groups: Vec::new(),
            checker,
        }
    }

    /// Node ids in ascending order.
    pub fn ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    /// The node `id`.
    pub fn node(&self, id: NodeId) -> &Node {
        self.nodes.get(&id).expect("no such node")
    }

    fn node_mut(&mut self, id: NodeId) -> &mut Node {
        self.nodes.get_mut(&id).expect("no such node")
    }

    /// The running core of `id`, if it is up.
    pub fn raw(&self, id: NodeId) -> Option<&RawNode> {
        self.node(id).raw.as_ref()
    }

    fn observe(&self, id: NodeId) -> Observed {
        let s = self.raw(id)?.status();
        Some((s.role, s.term, s.leader))
    }

    /// Prints the node's status if its role, term or leader changed since `before`.
    fn report_change(&self, id: NodeId, before: Observed, out: &mut String) {
        if self.observe(id) == before {
            return;
        }
        if let Some(raw) = self.raw(id) {
            let _ = writeln!(out, "  status: {}", raw.status());
        }
    }

    /// Runs `f` on the running core of `id`, printing any change of role, term or leader.
    pub fn with_raw<R>(
        &mut self,
        id: NodeId,
        out: &mut String,
        f: impl FnOnce(&mut RawNode) -> R,
    ) -> Option<R> {
        let before = self.observe(id);
        let raw = self.node_mut(id).raw.as_mut()?;
        let r = f(raw);
        self.report_change(id, before, out);
        Some(r)
    }

    /// Starts an election at `id` now (Raft §5.2).
    pub fn campaign(&mut self, id: NodeId, out: &mut String) {
        if self.with_raw(id, out, RawNode::campaign).is_none() {
            let _ = writeln!(out, "  {id} is down");
        }
    }

    /// One tick of logical time at `id` (a no-op while it is down).
    pub fn tick(&mut self, id: NodeId, out: &mut String) {
        self.with_raw(id, out, RawNode::tick);
    }

    /// Proposes `data` at `id`; `None` if the node is down.
    pub fn propose(
        &mut self,
        id: NodeId,
        data: &[u8],
        out: &mut String,
    ) -> Option<Result<(Index, Term), ProposeError>> {
        self.with_raw(id, out, |raw| raw.propose(data.to_vec()))
    }

    /// True if `id` is up and has a `Ready` waiting.
    pub fn has_ready(&self, id: NodeId) -> bool {
        self.raw(id).is_some_and(RawNode::has_ready)
    }

    /// Takes and handles one `Ready` of `id`, following its contract. Returns false if there
    /// was none.
    pub fn process_ready(&mut self, id: NodeId, out: &mut String) -> bool {
        let Some(raw) = self.node_mut(id).raw.as_mut() else {
            return false;
        };
        let Some(ready) = raw.ready() else {
            return false;
        };
        let _ = writeln!(out, "> {id} handling Ready");
        for line in ready.to_string().lines() {
            let _ = writeln!(out, "  {line}");
        }
        // 1. Persist hard state and entries.
        self.persist(id, ready.hard_state, &ready.entries);
        // 2. Send, now that what the messages promise is durable.
        for m in &ready.messages {
            self.check_sent(m);
            self.queues.entry(m.to).or_default().push(m.clone());
        }
        // 3. Apply committed entries in order.
        self.apply(id, &ready.committed_entries);
        // 4. Close the Ready.
        let raw = self.node_mut(id).raw.as_mut().expect("node is up");
        raw.advance(ready);
        self.check(id);
        true
    }

    fn persist(&mut self, id: NodeId, hard_state: Option<HardState>, entries: &[Entry]) {
        let storage = &mut self.node_mut(id).storage;
        if let Some(hs) = hard_state {
            storage.hard_state = hs;
        }
        if let Some(first) = entries.first() {
            let keep = first.index.0 as usize - 1;
            assert!(
                keep <= storage.entries.len(),
                "node {id}: Ready entries leave a gap"
            );
            storage.entries.truncate(keep);
            storage.entries.extend_from_slice(entries);
        }
        let hs = hard_state.as_ref().map(observe::hard_state);
        let entries: Vec<plain::Entry> = entries.iter().map(observe::entry).collect();
        let verdict = self
            .checker
            .safety
            .persisted(observe::node(id), hs.as_ref(), &entries);
        self.checker.record(verdict);
    }

    /// What a sent message promises must already be on disk (Raft Figure 2: "Updated on stable
    /// storage before responding to RPCs").
    fn check_sent(&mut self, m: &Message) {
        let verdict = self.checker.safety.sending(&observe::message(m));
        self.checker.record(verdict);
    }

    fn apply(&mut self, id: NodeId, committed: &[Entry]) {
        for e in committed {
            let node = self.node_mut(id);
            let expected = Index(node.applied.len() as u64 + 1);
            assert_eq!(e.index, expected, "node {id} applies in order without gaps");
            node.applied.push(e.clone());
            let verdict = self
                .checker
                .safety
                .applied(observe::node(id), &observe::entry(e));
            self.checker.record(verdict);
        }
    }

    /// Steps `m` into its recipient unless the partition or a crash loses it.
    fn deliver_msg(&mut self, m: Message, out: &mut String) {
        let (from, to) = (m.from, m.to);
        if self.partitioned(from, to) {
            let _ = writeln!(out, "  dropped (partition): {m}");
            return;
        }
        if self.raw(to).is_none() {
            let _ = writeln!(out, "  dropped ({to} is down): {m}");
            return;
        }
        let _ = writeln!(out, "  {m}");
        if let Some(Err(e)) = self.with_raw(to, out, |raw| raw.step(m)) {
            let _ = writeln!(out, "  step error: {e}");
        }
        self.check(to);
    }

    /// Delivers every message queued for `to`, in order; those from `drop_from` are dropped.
    /// Returns how many messages were taken off the queue.
    pub fn deliver(&mut self, to: NodeId, drop_from: &BTreeSet<NodeId>, out: &mut String) -> usize {
        let msgs = std::mem::take(self.queues.entry(to).or_default());
        if msgs.is_empty() {
            return 0;
        }
        let n = msgs.len();
        let _ = writeln!(out, "> {to} receiving messages");
        for m in msgs {
            if drop_from.contains(&m.from) {
                let _ = writeln!(out, "  dropped: {m}");
            } else {
                self.deliver_msg(m, out);
            }
        }
        n
    }

    /// Delivers the `k`-th (modulo the queue length) message queued for `to`; false if none.
    pub fn deliver_nth(&mut self, to: NodeId, k: usize, out: &mut String) -> bool {
        let queue = self.queues.entry(to).or_default();
        if queue.is_empty() {
            return false;
        }
        let m = queue.remove(k % queue.len());
        self.deliver_msg(m, out);
        true
    }

    /// Loses the `k`-th (modulo the queue length) message queued for `to`.
    pub fn drop_nth(&mut self, to: NodeId, k: usize) {
        let queue = self.queues.entry(to).or_default();
        if !queue.is_empty() {
            queue.remove(k % queue.len());
        }
    }

    /// Duplicates the `k`-th (modulo the queue length) message queued for `to`, at the back.
    pub fn duplicate_nth(&mut self, to: NodeId, k: usize) {
        let queue = self.queues.entry(to).or_default();
        if !queue.is_empty() {
            let m = queue[k % queue.len()].clone();
            queue.push(m);
        }
    }

    /// Loses every message queued for `to` (whose sender is in `from`, if given).
    pub fn drop_msgs(&mut self, to: NodeId, from: Option<&BTreeSet<NodeId>>, out: &mut String) {
        let queue = self.queues.entry(to).or_default();
        let (lost, kept): (Vec<Message>, Vec<Message>) = std::mem::take(queue)
            .into_iter()
            .partition(|m| from.is_none_or(|f| f.contains(&m.from)));
        *queue = kept;
        for m in lost {
            let _ = writeln!(out, "  dropped: {m}");
        }
    }

    /// Handles Readies and delivers messages among `ids` until nothing moves.
    pub fn stabilize(&mut self, ids: &[NodeId], out: &mut String) {
        const ROUNDS_MAX: usize = 1000;
        let none = BTreeSet::new();
        for _ in 0..ROUNDS_MAX {
            let mut moved = false;
            for &id in ids {
                moved |= self.process_ready(id, out);
            }
            for &id in ids {
                moved |= self.deliver(id, &none, out) > 0;
            }
            if !moved {
                return;
            }
        }
        panic!("stabilize {ids:?} did not quiesce within {ROUNDS_MAX} rounds");
    }

    /// True if `a` and `b` sit in different groups of the partition in force.
    pub fn partitioned(&self, a: NodeId, b: NodeId) -> bool {
        if self.groups.is_empty() {
            return false;
        }
        let group_of = |id| self.groups.iter().position(|g| g.contains(&id));
        group_of(a) != group_of(b)
    }

    /// Splits the network into `groups`; nodes in no group are cut off from everyone.
    pub fn partition(&mut self, groups: Vec<BTreeSet<NodeId>>) {
        self.groups = groups;
    }

    /// Makes the network whole.
    pub fn heal(&mut self) {
        self.groups.clear();
    }

    /// The node stops: memory (the core, unpersisted state, the state machine) is lost; the
    /// disk survives. Messages already sent stay in flight.
    pub fn crash(&mut self, id: NodeId) {
        let node = self.node_mut(id);
        node.raw = None;
        node.applied.clear();
    }

    /// Crashes `id` if it runs, then starts it again from its disk.
    pub fn restart(&mut self, id: NodeId) {
        self.crash(id);
        let node = self.node_mut(id);
        let storage = node.storage.clone();
        let recovered = observe::recovered(&storage);
        let raw = RawNode::new(node.config.clone(), storage.hard_state, storage.entries)
            .expect("valid config");
        node.raw = Some(raw);
        let verdict = self.checker.safety.recovered(observe::node(id), &recovered);
        self.checker.record(verdict);
        self.check(id);
    }

    /// Checks what `id`'s visible state says (the checker follows every node's log and applied
    /// entries incrementally, so this covers election safety, leader completeness, the commit
    /// rules and monotonicity).
    fn check(&mut self, id: NodeId) {
        let Some(raw) = self.raw(id) else { return };
        raw.check_invariants();
        // Observed where the simulator's node loop observes: once every Ready is handled (so
        // what the status shows is durable), not between a step and its Ready.
        if raw.has_ready() {
            return;
        }
        let status = observe::status(raw);
        let verdict = self.checker.safety.stepped(&status);
        self.checker.record(verdict);
    }

    /// Checks every running node.
    pub fn check_all(&mut self) {
        for id in self.ids() {
            self.check(id);
        }
    }
}
