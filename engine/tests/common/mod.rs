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
//! A [`Checker`] watches every step for the Raft safety properties (Raft §5.2, §5.3, §5.4,
//! Figure 3) and records violations as text instead of panicking, so a script can show a planted
//! bug biting and a property test can report the first violation.

// Each test binary uses a different part of the harness.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

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

/// The safety properties of Raft Figure 3, checked after every step.
#[derive(Clone, Debug, Default)]
pub struct Checker {
    /// Election Safety: the one leader seen in each term.
    pub leaders: BTreeMap<Term, NodeId>,
    /// Leader Completeness / State Machine Safety: every entry any node has known as committed.
    pub committed: BTreeMap<Index, Entry>,
    /// Every violation found, in order.
    pub violations: Vec<String>,
}

impl Checker {
    /// Records a violation once, however many checks see it again.
    fn violation(&mut self, what: String) {
        if !self.violations.contains(&what) {
            self.violations.push(what);
        }
    }

    /// Records `entry` as committed at its index, or reports that another entry was.
    fn committed_entry(&mut self, who: NodeId, entry: &Entry) {
        match self.committed.get(&entry.index) {
            None => {
                self.committed.insert(entry.index, entry.clone());
            }
            Some(known) if known == entry => {}
            Some(known) => {
                let what = format!("node {who} holds {entry} as committed, but {known} was");
                self.violation(what);
            }
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
        for (id, storage) in peers.iter().zip(storages) {
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
            checker: Checker::default(),
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
            self.check_sent(id, m);
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
        let commit_before = storage.hard_state.commit;
        let mut problems = Vec::new();
        if let Some(hs) = hard_state {
            let old = storage.hard_state;
            if hs.term < old.term {
                problems.push(format!(
                    "node {id} persisted term {} after {}",
                    hs.term, old.term
                ));
            }
            if hs.term == old.term && old.voted_for.is_some() && hs.voted_for != old.voted_for {
                let (a, b) = (old.voted_for, hs.voted_for);
                problems.push(format!(
                    "node {id} changed its vote in term {}: {a:?} -> {b:?}",
                    hs.term
                ));
            }
            if hs.commit < old.commit {
                problems.push(format!(
                    "node {id} persisted commit {} after {}",
                    hs.commit, old.commit
                ));
            }
            storage.hard_state = hs;
        }
        if let Some(first) = entries.first() {
            let keep = first.index.0 as usize - 1;
            assert!(
                keep <= storage.entries.len(),
                "node {id}: Ready entries leave a gap"
            );
            if first.index <= commit_before && storage.entries.len() > keep {
                let stored = &storage.entries[keep];
                if stored != first {
                    problems.push(format!(
                        "node {id} overwrote persisted committed {stored} with {first}"
                    ));
                }
            }
            storage.entries.truncate(keep);
            storage.entries.extend_from_slice(entries);
        }
        for (i, e) in storage.entries.iter().enumerate() {
            assert_eq!(
                e.index,
                Index(i as u64 + 1),
                "node {id}: stored log has no gaps"
            );
        }
        let last = Index(storage.entries.len() as u64);
        if storage.hard_state.commit > last {
            let commit = storage.hard_state.commit;
            problems.push(format!(
                "node {id} persisted commit {commit} beyond its last entry {last}"
            ));
        }
        for p in problems {
            self.checker.violation(p);
        }
    }

    /// What a sent message promises must already be on disk (Raft Figure 2: "Updated on stable
    /// storage before responding to RPCs").
    fn check_sent(&mut self, id: NodeId, m: &Message) {
        let hs = self.node(id).storage.hard_state;
        // Pre-vote messages carry the next term, which their sender has not moved to (Raft
        // thesis §9.6): they promise nothing durable.
        let ahead = matches!(
            m.kind,
            MessageKind::PreVote { .. } | MessageKind::PreVoteResponse { granted: true }
        );
        if m.term > hs.term && !ahead {
            let what = format!(
                "node {id} sent {m} before persisting its term ({})",
                hs.term
            );
            self.checker.violation(what);
        }
        if let MessageKind::VoteResponse { granted: true } = m.kind {
            // A vote is durable if the persisted hard state records it, or has moved past its
            // term (a node never votes in a term below its persisted one).
            let durable = hs.term > m.term || hs.voted_for == Some(m.to);
            if !durable {
                let what = format!("node {id} granted a vote before persisting it: {m}, {hs}");
                self.checker.violation(what);
            }
        }
    }

    fn apply(&mut self, id: NodeId, committed: &[Entry]) {
        for e in committed {
            let node = self.node_mut(id);
            let expected = Index(node.applied.len() as u64 + 1);
            assert_eq!(e.index, expected, "node {id} applies in order without gaps");
            node.applied.push(e.clone());
            self.checker.committed_entry(id, e);
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
        let raw = RawNode::new(node.config.clone(), storage.hard_state, storage.entries)
            .expect("valid config");
        node.raw = Some(raw);
        self.check(id);
    }

    /// Checks the safety properties that involve `id` and one other node at most.
    fn check(&mut self, id: NodeId) {
        let Some(raw) = self.raw(id) else { return };
        raw.check_invariants();
        let status = raw.status();
        let hs = self.node(id).storage.hard_state;
        if status.term < hs.term {
            let what = format!(
                "node {id} runs at term {} below its persisted {}",
                status.term, hs.term
            );
            self.checker.violation(what);
        }
        if status.role == RoleKind::Leader {
            let first = *self.checker.leaders.entry(status.term).or_insert(id);
            if first != id {
                let what = format!("two leaders in term {}: {first} and {id}", status.term);
                self.checker.violation(what);
            }
        }
        let log = self.node(id).log();
        let commit = status.commit.0 as usize;
        for e in &log[..commit] {
            self.checker.committed_entry(id, e);
        }
    }

    /// Checks the properties that span all nodes: Log Matching (Raft §5.3) between every pair
    /// of logs, and State Machine Safety (every applied sequence is a prefix of the committed
    /// one).
    pub fn check_all(&mut self) {
        for id in self.ids() {
            self.check(id);
        }
        let logs: Vec<(NodeId, Vec<Entry>)> =
            self.nodes.iter().map(|(&id, n)| (id, n.log())).collect();
        for (i, (a, log_a)) in logs.iter().enumerate() {
            for (b, log_b) in &logs[i + 1..] {
                if let Some(what) = log_matching_violation(log_a, log_b) {
                    self.checker
                        .violation(format!("log matching between {a} and {b}: {what}"));
                }
            }
        }
        let mut violations = Vec::new();
        for (&id, node) in &self.nodes {
            for e in &node.applied {
                if self.checker.committed.get(&e.index) != Some(e) {
                    let what = format!("node {id} applied {e}, which is not the committed entry");
                    violations.push(what);
                }
            }
        }
        for what in violations {
            self.checker.violation(what);
        }
    }
}

/// Raft §5.3, Log Matching: if two logs hold an entry with the same index and term, they are
/// identical in all entries up through that index.
pub fn log_matching_violation(a: &[Entry], b: &[Entry]) -> Option<String> {
    let shared = a.len().min(b.len());
    let last_same_term = (0..shared).rev().find(|&i| a[i].term == b[i].term)?;
    let differ = (0..=last_same_term).find(|&i| a[i] != b[i])?;
    let at = last_same_term + 1;
    Some(format!(
        "both hold term {} at index {at}, but differ at {}: {} vs {}",
        a[at - 1].term,
        differ + 1,
        a[differ],
        b[differ]
    ))
}
