//! The simulated cluster: madsim nodes running the engine's node loop over the simulated world,
//! plus the shared record every observer, client and checker writes into.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use engine::log::{MemDisk, Recovered};
use engine::raft::{
    Entry, HardState, Index, Membership, MembershipStamp, Message, MessageKind, NodeId, RawNode,
    RoleKind, Status, Term,
};
use engine::server::data_dir::{self, MemDataDir, MemberIdentity};
use engine::server::{Client, CrashPoint, Env, KvClient, KvMachine, NodeConfig, Observer};
use madsim::runtime::Handle;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::check::replica::{self, Replica};
use crate::check::watch::CommittedEvent;
use crate::check::{RaftSafety, Violation};
use crate::members::MemberAsk;
use crate::observe;
use crate::options::{Bug, SimConfig};
use crate::trace::Fnv;
use crate::world::{DiskFaults, NodeClock, SimClock, SimDisk, SimNet, Skew};

/// How a node is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    /// Running.
    Up,
    /// Frozen by the nemesis.
    Paused,
    /// Killed; its unsynced writes are gone.
    Down,
}

/// What every part of the run writes into. One lock: the simulation runs on one thread.
pub struct Shared {
    /// Raft safety checks.
    pub safety: RaftSafety,
    /// The first violation seen; the run stops at it. Set only through `record`.
    pub violation: Option<Violation>,
    /// Whether `violation` is set, readable without this lock: the node loops ask it on every
    /// turn (`Observer::should_stop`).
    pub stopping: Arc<AtomicBool>,
    /// Each node's last status (None while down).
    pub statuses: Vec<Option<Status>>,
    /// Each running node's client handle.
    pub clients: Vec<Option<KvClient>>,
    /// Each running node's etcd v2 HTTP service (the one `floe` serves over hyper), which the
    /// simulated clients call across the simulated network; a new one per life.
    pub apps: Vec<Option<Arc<SimApp>>>,
    /// Requests the simulated clients sent to a node's HTTP service.
    pub http_requests: u64,
    /// Each node's state.
    pub states: Vec<NodeState>,
    /// Randomness for the nemesis, the clients and the disks: one stream, drawn in a
    /// deterministic order.
    pub rng: ChaCha8Rng,
    /// Hash of faults and client results.
    pub trace: Fnv,
    /// Faults injected so far.
    pub faults_injected: u64,
    /// Faults injected so far, by kind (the kind's name: `crash`, `restart`, `clock-jump`...).
    pub faults_by_kind: std::collections::BTreeMap<String, u64>,
    /// Snapshots installed from a leader so far.
    pub snapshots_installed: u64,
    /// The highest index of any command acknowledged to a client so far: a linearizable read
    /// that starts later must see at least this much.
    pub acked_index_max: engine::raft::Index,
    /// Every client operation, for the checkers and the report.
    pub history: crate::workload::History,
    /// The checker's own replica of the store (`checker::replica`, written from the spec, not
    /// the engine's store), fed each committed entry once: the ground truth the watch checker
    /// and the output check compare against.
    pub reference: Replica,
    /// Every committed store event, in index order, with when it was first applied.
    pub events: Vec<CommittedEvent>,
    /// The reference answer at each Raft index (index 1 first), and when it was first applied.
    pub reference_outputs: Vec<ReferenceOutput>,
    /// Faults and repairs, in time order, for the failure report.
    pub world_events: Vec<WorldEvent>,
    /// Each node's role and term changes, in time order, for the failure report.
    pub roles: Vec<RoleChange>,
    /// The history operation a history checker blamed, if any.
    pub bad_op: Option<u64>,
    /// Nodes whose current life just sent its first ReadIndex request (for the aimed fault
    /// `restart-after-read`).
    pub first_reads: Vec<NodeId>,
    /// Per node: its current life was started by `restart-after-read` (so its own first read is
    /// left alone: it is the one an old answer may be taken for).
    pub aimed_restart: Vec<bool>,
    /// Per node: its loop ended on a disk error an injected fault caused (the supervisor
    /// reaps it as a crash).
    pub exited: Vec<bool>,
    /// Per node: its disk was damaged at rest and it has not caught up since (what keeps the
    /// damage to a minority of nodes at once).
    pub damaged: Vec<bool>,
    /// By node slot: whether the node led when it began its latest log sync
    /// (`Observer::sync_started`).
    pub sync_leading: Vec<bool>,
    /// Nodes stopped by a disk fault, and when they are restarted (as by a process
    /// supervisor).
    pub disk_restarts: Vec<(NodeId, u64)>,
    /// Time without a leader after transfers and leader crashes.
    pub handovers: crate::handover::Handovers,
    /// Aimed crashes armed: the moment, and until when (ms) the next node to reach it is taken.
    pub aimed_points: Vec<(CrashPoint, u64)>,
    /// Nodes that stopped at an aimed moment and wait to be crashed by the supervisor.
    pub halted: Vec<(NodeId, CrashPoint)>,
    /// Each node's configuration in force (the latest in its log, thesis §4.1), as of its last
    /// step (None before its first).
    pub memberships: Vec<Option<Membership>>,
    /// Configuration changes the nemesis asked through the members API.
    pub reconfigurations: u64,
    /// Every configuration entry, when the first replica applied it (committed by then).
    pub committed_configs: Vec<crate::members::CommittedConfig>,
    /// Per node: members its current life saw leave its configuration (the members API
    /// answers 410 for them, as `floe`'s peer directory does).
    pub removed_members: Vec<std::collections::BTreeSet<NodeId>>,
    /// Per node: how many times its configuration in force changed (a request that saw no
    /// change was answered under `memberships[slot]`).
    pub membership_versions: Vec<u64>,
    /// Members API requests by kind and final status (`add 201`, `remove 500`, `promote
    /// timeout`...), and `redirect` for each 307 followed.
    pub member_requests: std::collections::BTreeMap<String, u64>,
    /// The members API requests under way (awaited before the history is judged).
    pub member_tasks: Vec<madsim::task::JoinHandle<()>>,
}

/// What a correct replica answered for one log entry, and when the first replica applied it.
#[derive(Clone, Debug)]
pub struct ReferenceOutput {
    /// When the entry was first applied (µs).
    pub at_us: u64,
    /// The first event, or the etcd error code.
    pub answer: Result<Option<replica::Event>, u16>,
}

impl ReferenceOutput {
    /// The answer's store index, action and modified index, if it has an event.
    pub fn summary(&self) -> Option<(u64, &'static str, u64)> {
        let event = self.answer.as_ref().ok()?.as_ref()?;
        Some((event.index, event.action.as_str(), event.modified_index))
    }
}

/// A fault or a repair.
#[derive(Clone, Debug, serde::Serialize)]
pub struct WorldEvent {
    /// When (µs of simulated time).
    pub at_us: u64,
    /// What: a fault kind's name, `crash`, `restart`, `pause`, `resume`, `heal`.
    pub what: String,
    /// The nodes concerned (empty for network-wide changes).
    pub nodes: Vec<u64>,
}

/// A node's role or term changed (or it went down, paused, came back).
#[derive(Clone, Debug, serde::Serialize)]
pub struct RoleChange {
    /// When (µs of simulated time).
    pub at_us: u64,
    /// The node.
    pub node: u64,
    /// `leader`, `candidate`, `follower`, `down` or `paused`.
    pub role: &'static str,
    /// Its term (while down or paused: the term it had).
    pub term: u64,
}

impl Shared {
    fn note_role(&mut self, at_us: u64, node: u64, role: &'static str, term: u64) {
        let last = self.roles.iter().rev().find(|c| c.node == node);
        if last.is_none_or(|c| c.role != role || c.term != term) {
            self.roles.push(RoleChange {
                at_us,
                node,
                role,
                term,
            });
        }
    }

    /// The first replica to apply `entry` feeds it to the checker's replica too.
    fn apply_reference(&mut self, entry: &Entry, at_us: u64) {
        let output = self.reference.apply(&observe::input(entry));
        let answer = match &output {
            Ok(events) => Ok(events.first().cloned()),
            Err(refused) => Err(refused.code),
        };
        self.reference_outputs
            .push(ReferenceOutput { at_us, answer });
        if let Ok(events) = output {
            for event in events {
                self.events.push(event.committed(at_us));
            }
        }
    }
}

impl Shared {
    /// Counts one members API request (or redirect) under `label`.
    pub fn count_member_request(&mut self, label: &str) {
        *self.member_requests.entry(label.to_string()).or_default() += 1;
    }

    /// Counts one injected fault of kind `what`.
    pub fn count_fault(&mut self, what: &str) {
        self.faults_injected += 1;
        *self.faults_by_kind.entry(what.to_string()).or_default() += 1;
    }

    /// Records a checker's verdict; the first violation wins.
    pub fn record(&mut self, verdict: Result<(), Violation>, now_ms: u64) {
        if let Err(mut v) = verdict
            && self.violation.is_none()
        {
            v.at_ms = now_ms;
            self.violation = Some(v);
            self.stopping.store(true, Ordering::Relaxed);
        }
    }

    /// Records a checker's verdict, reading `clock` only for a violation (at the time
    /// `record` would have been given: nothing awaits in between).
    pub fn record_now(&mut self, verdict: Result<(), Violation>, clock: &SimClock) {
        if verdict.is_err() {
            self.record(verdict, clock.now_ms());
        }
    }
}

/// The cluster as the supervisor sees it.
pub struct Cluster {
    /// The run's configuration.
    pub config: SimConfig,
    /// The network.
    pub net: SimNet,
    /// Time.
    pub clock: SimClock,
    shared: Arc<Mutex<Shared>>,
    disks: Vec<MemDisk>,
    /// Each node's meta record file (`engine::server::data_dir`).
    metas: Vec<MemDisk>,
    /// Each disk's running faults, kept across its node's restarts.
    disk_faults: Vec<DiskFaults>,
    /// Each machine's clock error, kept across its node's restarts.
    skews: Vec<Skew>,
    handle: Handle,
    madsim_ids: Vec<madsim::task::NodeId>,
}

/// Feeds one node's inner events to the checkers.
struct SimObserver {
    id: NodeId,
    shared: Arc<Mutex<Shared>>,
    clock: SimClock,
    /// This life sent a ReadIndex request already.
    sent_read: bool,
    /// The checker's view of each persisted batch, reused from batch to batch.
    persisting: Vec<crate::check::raft::Entry>,
    /// The node's membership stamp when its configuration was last compared with
    /// `Shared::memberships` (this life's node; none before its first step).
    membership_seen: Option<MembershipStamp>,
    /// `Shared::stopping`.
    stopping: Arc<AtomicBool>,
}

impl SimObserver {
    fn new(id: NodeId, shared: &Arc<Mutex<Shared>>, clock: &SimClock) -> SimObserver {
        let stopping = shared
            .lock()
            .expect("shared lock poisoned")
            .stopping
            .clone();
        SimObserver {
            id,
            shared: shared.clone(),
            clock: clock.clone(),
            sent_read: false,
            persisting: Vec::new(),
            membership_seen: None,
            stopping,
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Shared) -> R) -> R {
        f(&mut self.shared.lock().expect("shared lock poisoned"))
    }
}

impl Observer for SimObserver {
    fn sync_started(&mut self, id: NodeId, leading: bool) {
        let slot = id.0 as usize - 1;
        self.with(|s| s.sync_leading[slot] = leading);
    }

    fn recovered(&mut self, id: NodeId, recovered: &Recovered) {
        self.with(|s| {
            let verdict = s
                .safety
                .recovered(observe::node(id), &observe::recovered(recovered));
            s.record_now(verdict, &self.clock);
        });
    }

    fn snapshot_installed(&mut self, id: NodeId, index: Index, term: Term) {
        self.with(|s| {
            s.snapshots_installed += 1;
            let verdict = s.safety.snapshot_installed(
                observe::node(id),
                observe::index(index),
                observe::term(term),
            );
            s.record_now(verdict, &self.clock);
        });
    }

    fn persisted(&mut self, id: NodeId, hs: Option<&HardState>, entries: &[Entry]) {
        self.persisting.clear();
        self.persisting.extend(entries.iter().map(observe::entry));
        let mut s = self.shared.lock().expect("shared lock poisoned");
        let verdict = s.safety.persisted(
            observe::node(id),
            hs.map(observe::hard_state).as_ref(),
            &self.persisting,
        );
        s.record_now(verdict, &self.clock);
    }

    fn applied(&mut self, id: NodeId, entry: &Entry) {
        // The clock is read only when used: the first application, a violation.
        self.with(|s| {
            if s.reference_outputs.len() as u64 + 1 == entry.index.0 {
                let now_us = self.clock.now_us();
                s.apply_reference(entry, now_us);
                if let engine::raft::EntryKind::Config(m) = &entry.kind {
                    s.committed_configs.push(crate::members::CommittedConfig {
                        at_us: now_us,
                        membership: (**m).clone(),
                    });
                }
            }
            let verdict = s.safety.applied(observe::node(id), &observe::entry(entry));
            s.record_now(verdict, &self.clock);
        });
    }

    fn stepped(&mut self, raw: &RawNode) {
        let now_us = self.clock.now_us();
        let now = now_us / 1000;
        let slot = self.id.0 as usize - 1;
        let id = self.id;
        // One status per step, read by every check below.
        let status = raw.status();
        let removed = removed_leader(raw, &status);
        let stamp = raw.membership_stamp();
        let seen = self.membership_seen.replace(stamp);
        self.with(|s| {
            let verdict = s.safety.stepped(&observe::status_of(raw, &status));
            s.record(verdict, now);
            s.record(removed, now);
            s.handovers.stepped(raw, now_us);
            s.statuses[slot] = Some(status);
            // The configuration is compared only when the core says it may have changed
            // since the last comparison, which left the two equal (only this life writes
            // this slot).
            if seen != Some(stamp) && s.memberships[slot].as_ref() != Some(raw.membership()) {
                let now = raw.membership();
                if let Some(before) = &s.memberships[slot]
                    && !now.voters.is_empty()
                {
                    // As `floe`'s peer directory: a member that left is remembered as removed.
                    let gone: Vec<NodeId> = before
                        .members()
                        .into_iter()
                        .filter(|&m| m != id && !now.contains(m))
                        .collect();
                    s.removed_members[slot].extend(gone);
                }
                s.memberships[slot] = Some(now.clone());
                s.membership_versions[slot] += 1;
            }
            // A damaged node counts as damaged until it caught up (or, with a planted bug that
            // ignores damage, as soon as it runs).
            s.damaged[slot] = raw.recovering().is_some();
            s.note_role(now_us, id.0, role_name(status.role), status.term.0);
        });
    }

    fn sending(&mut self, msg: &Message) {
        let first_read = !self.sent_read && matches!(msg.kind, MessageKind::ReadIndex { .. });
        self.sent_read |= first_read;
        let (id, slot) = (self.id, self.id.0 as usize - 1);
        self.with(|s| {
            if first_read {
                if s.aimed_restart[slot] {
                    s.aimed_restart[slot] = false;
                } else {
                    s.first_reads.push(id);
                }
            }
            let verdict = s.safety.sending(&observe::message(msg));
            s.record_now(verdict, &self.clock);
        });
    }

    fn should_stop(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    fn crash_here(&mut self, point: CrashPoint) -> bool {
        let id = self.id;
        self.with(|s| {
            if s.aimed_points.is_empty() {
                return false;
            }
            let now = self.clock.now_ms();
            let armed = s
                .aimed_points
                .iter()
                .position(|&(p, until_ms)| p == point && now < until_ms);
            if let Some(pos) = armed {
                s.aimed_points.remove(pos);
                s.halted.push((id, point));
            }
            armed.is_some()
        })
    }
}

impl Cluster {
    /// Builds the cluster's nodes inside the current madsim runtime and starts them.
    pub fn start(config: SimConfig) -> Cluster {
        let n = config.nodes;
        let clock = SimClock::current();
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let net_rng = ChaCha8Rng::seed_from_u64(rng.r#gen());
        let net = SimNet::new(n, net_rng, config.latency, clock.clone());
        let shared = Arc::new(Mutex::new(Shared {
            safety: RaftSafety::default(),
            violation: None,
            stopping: Default::default(),
            statuses: vec![None; n],
            memberships: vec![None; n],
            reconfigurations: 0,
            committed_configs: Vec::new(),
            removed_members: vec![Default::default(); n],
            membership_versions: vec![0; n],
            member_requests: Default::default(),
            member_tasks: Vec::new(),
            clients: vec![None; n],
            apps: vec![None; n],
            http_requests: 0,
            states: vec![NodeState::Up; n],
            rng,
            trace: Fnv::new(),
            faults_injected: 0,
            faults_by_kind: Default::default(),
            snapshots_installed: 0,
            acked_index_max: engine::raft::Index(0),
            history: crate::workload::History::with_capacity(expected_ops(&config)),
            reference: Replica::new(),
            events: Vec::with_capacity(expected_ops(&config)),
            reference_outputs: Vec::with_capacity(expected_ops(&config)),
            world_events: Vec::new(),
            roles: Vec::new(),
            bad_op: None,
            first_reads: Vec::new(),
            aimed_restart: vec![false; n],
            aimed_points: Vec::new(),
            halted: Vec::new(),
            exited: vec![false; n],
            damaged: vec![false; n],
            sync_leading: vec![false; n],
            disk_restarts: Vec::new(),
            handovers: Default::default(),
        }));
        net.set_wire_bugs(Bug::switches(config.bug).wire);
        let sink = shared.clone();
        net.on_codec_fault(move |fault, now_ms| {
            let detail = format!("n{} -> n{}: {}", fault.from.0, fault.to.0, fault.detail);
            node_violation(&sink, fault.to, "peer codec", detail, now_ms);
        });
        let disks: Vec<MemDisk> = (0..n).map(|_| MemDisk::new()).collect();
        let metas: Vec<MemDisk> = (0..n).map(|_| MemDisk::new()).collect();
        let plan = config.clock;
        let mut clock_rng = ChaCha8Rng::seed_from_u64(plan.seed);
        let mut starting = Vec::new();
        let skews: Vec<Skew> = (0..n)
            .map(|_| {
                let (offset_ns, drift_ppb) = plan.draw(&mut clock_rng);
                starting.push((offset_ns, drift_ppb));
                Skew::new(offset_ns, drift_ppb, 1_000_000 * plan.error_max_ms as i64)
            })
            .collect();
        {
            // Every node's starting offset and drift count as clock faults of their kind.
            let mut s = shared.lock().expect("shared lock poisoned");
            for (slot, &(offset_ns, drift_ppb)) in starting.iter().enumerate() {
                s.trace
                    .write_all(&[slot as u64, offset_ns as u64, drift_ppb as u64]);
                if offset_ns != 0 {
                    s.count_fault("clock-offset");
                }
                if drift_ppb != 0 {
                    s.count_fault("clock-drift");
                }
            }
        }
        let handle = Handle::current();
        let mut cluster = Cluster {
            config,
            net,
            clock,
            shared,
            disks,
            metas,
            disk_faults: (0..n).map(|_| DiskFaults::default()).collect(),
            skews,
            handle,
            madsim_ids: Vec::new(),
        };
        for i in 0..n {
            let id = cluster.build_node(i);
            cluster.madsim_ids.push(id);
        }
        cluster
    }

    fn build_node(&self, slot: usize) -> madsim::task::NodeId {
        let id = NodeId(slot as u64 + 1);
        let peers: Vec<NodeId> = (1..=self.config.nodes as u64).map(NodeId).collect();
        let (config, net, shared, disk, meta, skew) = (
            self.config.clone(),
            self.net.clone(),
            self.shared.clone(),
            self.disks[slot].clone(),
            self.metas[slot].clone(),
            self.skews[slot].clone(),
        );
        let faults = self.disk_faults[slot].clone();
        let world_clock = self.clock.clone();
        let init = move || {
            let (config, net, shared, disk, meta) = (
                config.clone(),
                net.clone(),
                shared.clone(),
                disk.clone(),
                meta.clone(),
            );
            let faults = faults.clone();
            faults.restarted();
            let peers = peers.clone();
            let skew = skew.clone();
            let clock = world_clock.clone();
            async move {
                // True time for the disk and the checkers (the world's clock, whose wake-ups
                // every task shares); the node's own clock for the node.
                // Every start opens the data directory as `floe` does: its check, then (in
                // `engine::server::run`) the log's recovery and tail repair.
                let mut dir = MemDataDir {
                    name: format!("n{}'s data dir", id.0),
                    meta,
                    log: disk.clone(),
                };
                let who = MemberIdentity {
                    cluster: format!("{:x}", config.seed),
                    member: format!("{:x}", id.0),
                    name: format!("n{}", id.0),
                };
                if let Err(e) = data_dir::check(&mut dir, &who, "new", true).await {
                    let rule = "a restart passes floe's data-directory check";
                    node_violation(&shared, id, rule, e.to_string(), clock.now_ms());
                    return;
                }
                let node_clock = NodeClock::boot(clock.clone(), skew);
                let (client, requests) = Client::channel(64);
                let app = http_app(&config, id, client.clone(), node_clock.clone(), &shared);
                let (seed, sync_ms) = {
                    let mut s = shared.lock().expect("shared lock poisoned");
                    s.removed_members[slot].clear();
                    s.clients[slot] = Some(client);
                    s.apps[slot] = Some(app);
                    (
                        s.rng.r#gen::<u64>(),
                        s.rng.gen_range(0..=config.sync_ms_max),
                    )
                };
                // Each start's read and proposal tags begin at its wall clock's nanoseconds, as
                // `floe`'s do: the node's own, skewed and possibly stepped-back clock.
                let boot_nonce = node_clock.unix_ns();
                let node_config = node_config(&config, id, peers, seed, boot_nonce);
                let machine = KvMachine::with_bugs(Bug::switches(config.bug).kv);
                let env = Env {
                    clock: node_clock.clone(),
                    net: net.node_on(id, node_clock),
                    disk: SimDisk::new(disk, clock.clone(), sync_ms, faults.clone()),
                };
                let observer = SimObserver::new(id, &shared, &clock);
                let result =
                    engine::server::run(node_config, env, machine, requests, observer).await;
                if let Err(e) = &result
                    && faults.failed()
                {
                    // A disk fault failed a write or sync: the node stops, as `floe` exits on
                    // one; the supervisor reaps it as a crash and restarts it later.
                    tracing::info!(node = id.0, error = %e, "node stopped on an injected disk fault");
                    shared.lock().expect("shared lock poisoned").exited[slot] = true;
                } else if let Err(e) = result {
                    let rule = "node loop keeps running";
                    node_violation(&shared, id, rule, e.to_string(), clock.now_ms());
                }
            }
        };
        self.handle
            .create_node()
            .name(format!("n{}", id.0))
            .init(init)
            .build()
            .id()
    }

    /// Cluster size.
    pub fn size(&self) -> usize {
        self.config.nodes
    }

    /// The shared record.
    pub fn shared(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().expect("shared lock poisoned")
    }

    /// The shared random stream (a guard: drop it before calling other methods).
    pub fn rng(&self) -> RngGuard<'_> {
        RngGuard(self.shared())
    }

    /// A node's state.
    pub fn state(&self, id: NodeId) -> NodeState {
        self.shared().states[id.0 as usize - 1]
    }

    /// Each node's last status.
    pub fn statuses(&self) -> Vec<Option<Status>> {
        self.shared().statuses.clone()
    }

    /// The node that leads the highest term, as far as the statuses say.
    pub fn leader(&self) -> Option<NodeId> {
        // Under the lock, without copying the statuses (clients ask before every request).
        self.shared()
            .statuses
            .iter()
            .flatten()
            .filter(|s| s.role == RoleKind::Leader)
            .max_by_key(|s| s.term)
            .map(|s| s.id)
    }

    fn note_fault(&self, what: u64, id: NodeId) {
        let now = self.clock.now_ms();
        let now_us = self.clock.now_us();
        let mut s = self.shared();
        s.trace.write_all(&[now, what, id.0]);
        let (name, role) = match what {
            1 => ("crash", Some("down")),
            2 => ("restart", None),
            3 => ("pause", Some("paused")),
            _ => ("resume", None),
        };
        s.count_fault(name);
        s.world_events.push(WorldEvent {
            at_us: now_us,
            what: name.into(),
            nodes: vec![id.0],
        });
        if let Some(role) = role {
            // Down or paused, the node keeps the term it had (it comes back with it).
            let term = s
                .roles
                .iter()
                .rev()
                .find(|c| c.node == id.0)
                .map_or(0, |c| c.term);
            s.note_role(now_us, id.0, role, term);
        }
    }

    /// The clock error of node `id`'s machine.
    pub fn skew(&self, id: NodeId) -> Skew {
        self.skews[id.0 as usize - 1].clone()
    }

    /// A clock on node `id`'s machine, as its node reads it (for what `floe` does with its
    /// node's clock outside the node loop: stamping TTLs, timing lock leases).
    pub fn node_clock(&self, id: NodeId) -> NodeClock {
        NodeClock::boot(self.clock.clone(), self.skew(id))
    }

    /// Records a clock fault on `node` at true time `now_ns`.
    pub fn note_clock(&self, what: &str, node: NodeId, now_ns: u64) {
        let kind = match what {
            "clock-offset" => 5,
            "clock-drift" => 6,
            _ => 7,
        };
        let error_ns = self.skew(node).error_ns(now_ns);
        self.shared()
            .trace
            .write_all(&[now_ns / 1_000_000, kind, node.0, error_ns as u64]);
        self.note_event(what, vec![node.0]);
    }

    /// Records a fault or repair for the failure report.
    pub fn note_event(&self, what: &str, nodes: Vec<u64>) {
        let at_us = self.clock.now_us();
        let mut s = self.shared();
        if what != "heal" {
            s.count_fault(what);
        }
        s.world_events.push(WorldEvent {
            at_us,
            what: what.into(),
            nodes,
        });
    }

    /// Ends the run's world: kills every node and drops the handles that tie node tasks, the
    /// network and the shared record into reference cycles, so a long `--seeds` sweep does not
    /// keep every finished run in memory.
    pub fn shutdown(&self) {
        for (slot, &id) in self.madsim_ids.iter().enumerate() {
            if self.shared().states[slot] != NodeState::Down {
                self.handle.kill(id);
            }
        }
        let mut s = self.shared();
        s.clients.iter_mut().for_each(|c| *c = None);
        s.apps.iter_mut().for_each(|a| *a = None);
        drop(s);
        self.net.shutdown();
        self.clock.shutdown();
    }

    /// Kills a node: its tasks stop, its unsynced writes are lost (or torn), its messages vanish.
    pub fn crash(&self, id: NodeId) {
        let slot = id.0 as usize - 1;
        self.handle.kill(self.madsim_ids[slot]);
        let disk = &self.disks[slot];
        let now_us = self.clock.now_us();
        let torn = {
            let mut s = self.shared();
            if let Some(st) = s.statuses[slot].filter(|st| st.role == RoleKind::Leader) {
                s.handovers.leader_crashed(id.0, st.term.0, now_us);
            }
            s.states[slot] = NodeState::Down;
            s.statuses[slot] = None;
            s.clients[slot] = None;
            s.apps[slot] = None;
            let pending = disk.pending_len();
            let torn = pending > 0 && s.rng.gen_range(0..1000) < self.config.torn_per_mille;
            torn.then(|| s.rng.gen_range(0..pending))
        };
        match torn {
            Some(keep) => disk.crash_torn(keep),
            None => disk.crash_lose_pending(),
        }
        self.net.set_up(id, false);
        self.note_fault(1, id);
    }

    /// A node's running disk faults.
    pub fn disk_faults(&self, id: NodeId) -> DiskFaults {
        self.disk_faults_of(id).clone()
    }

    /// As `disk_faults`, borrowed (the supervisor's watches read them at every step).
    pub fn disk_faults_of(&self, id: NodeId) -> &DiskFaults {
        &self.disk_faults[id.0 as usize - 1]
    }

    /// Crashes every node whose loop ended on an injected disk fault (it stopped; its process
    /// is gone, so are its unsynced writes), and restarts it 0.5 to 2 s later, as a process
    /// supervisor would.
    pub fn reap_exited(&self) {
        let now = self.clock.now_ms();
        let due: Vec<NodeId> = {
            let mut s = self.shared();
            let (due, later): (Vec<_>, Vec<_>) =
                s.disk_restarts.iter().partition(|&&(_, at)| now >= at);
            s.disk_restarts = later;
            due.into_iter().map(|(id, _)| id).collect()
        };
        for id in due {
            if self.state(id) == NodeState::Down {
                self.restart(id);
            }
        }
        let exited: Vec<NodeId> = {
            let mut s = self.shared();
            (0..self.size())
                .filter(|&slot| std::mem::take(&mut s.exited[slot]))
                .map(|slot| NodeId(slot as u64 + 1))
                .collect()
        };
        for id in exited {
            if self.state(id) == NodeState::Up {
                self.crash(id);
                let mut s = self.shared();
                let at = now + s.rng.gen_range(500..=2_000);
                s.disk_restarts.push((id, at));
            }
        }
    }

    /// Damages one node's log at rest with `kind` (`disk-corrupt`, `disk-misdirect`,
    /// `disk-lost-write`), keeping the damaged nodes a minority: a node that is up is crashed,
    /// damaged and restarted at once, so it reads the damage back. `order` is the nemesis's
    /// shuffled node order. Does nothing if no node may be damaged.
    pub fn damage_disk(&self, kind: crate::nemesis::FaultKind, order: &[NodeId]) {
        use crate::nemesis::FaultKind;
        let minority = (self.size() - 1) / 2;
        let victim = {
            let s = self.shared();
            let damaged = s.damaged.iter().filter(|d| **d).count();
            if damaged + 1 > minority {
                return;
            }
            order.iter().copied().find(|id| {
                let slot = id.0 as usize - 1;
                !s.damaged[slot] && s.states[slot] != NodeState::Paused
            })
        };
        let Some(victim) = victim else { return };
        let slot = victim.0 as usize - 1;
        let disk = &self.disks[slot];
        let was_up = self.state(victim) == NodeState::Up;
        if was_up {
            self.crash(victim);
        }
        let bytes = disk.durable_bytes();
        let offsets = engine::log::record_offsets(&bytes);
        // Leave alone a log with no record after its header: there is nothing to lose.
        if offsets.len() < 2 || bytes.len() < 64 {
            if was_up {
                self.restart(victim);
            }
            return;
        }
        let len = bytes.len();
        let header_end = offsets[1];
        {
            let mut s = self.shared();
            match kind {
                FaultKind::DiskCorrupt => {
                    // Any byte but the last record's length field: a length grown past the end
                    // of the file is exactly a torn write, which no log can tell apart (the
                    // fault model in the README).
                    let last_len = offsets[offsets.len() - 1]..offsets[offsets.len() - 1] + 4;
                    let mut at = s.rng.gen_range(0..len);
                    if last_len.contains(&at) {
                        at = last_len.start.saturating_sub(1);
                    }
                    let xor = s.rng.gen_range(1..=255u8);
                    disk.corrupt_byte(len - 1 - at, xor);
                }
                FaultKind::DiskMisdirect => {
                    let chunk = s.rng.gen_range(1..=(len - header_end).min(256) / 2 + 1);
                    let src = len - chunk;
                    // It lands before a whole record the zeros left intact: bytes that land in
                    // the log's last records with only zeros after them look exactly like a
                    // torn tail, which no log can tell apart (the fault model in the README).
                    let limit = offsets
                        .windows(2)
                        .filter(|w| w[1] <= src)
                        .map(|w| w[0])
                        .next_back()
                        .unwrap_or(0);
                    if limit >= chunk {
                        let dst = s.rng.gen_range(0..=limit - chunk);
                        let moved = bytes[src..].to_vec();
                        disk.overwrite_durable(dst, &moved);
                        disk.overwrite_durable(src, &vec![0; chunk]);
                    }
                }
                _ => {
                    let chunk = s.rng.gen_range(1..=(len - header_end).min(256));
                    disk.overwrite_durable(len - chunk, &vec![0; chunk]);
                }
            }
            s.damaged[slot] = true;
        }
        self.note_event(kind.name(), vec![victim.0]);
        if was_up {
            self.restart(victim);
        }
    }

    /// Asks the running leader to hand its leadership to its most up-to-date follower (Raft
    /// thesis §3.10). Returns the leader asked, if there was one.
    pub fn transfer_leader(&self) -> Option<NodeId> {
        let statuses = self.statuses();
        let leader = statuses
            .iter()
            .flatten()
            .filter(|s| s.role == RoleKind::Leader && self.state(s.id) == NodeState::Up)
            .max_by_key(|s| s.term)?;
        let client = self.shared().clients[leader.id.0 as usize - 1].clone()?;
        // The answer is not awaited: the run's record of roles tells what came of it.
        drop(client.ask_transfer(None).ok()?);
        let now_us = self.clock.now_us();
        let mut s = self.shared();
        s.handovers
            .transfer_asked(leader.id.0, leader.term.0, now_us);
        Some(leader.id)
    }

    /// The nemesis' `reconfigure` (Raft thesis chapter 4): one change drawn from the running
    /// leader's configuration, sent as an etcd v2 members API request (`members::request`) to
    /// the leader or, one time in five, to another running member (which redirects it): remove
    /// a voter (the leader too) while more than one remains, add a node outside the
    /// configuration as a learner, promote a learner (refused until it caught up; some never
    /// are), remove one, or (one time in eight) move a member to other peer URLs. Returns the
    /// node the change is about, if there was a leader.
    pub fn reconfigure(self: &Arc<Self>) -> Option<NodeId> {
        let leader = self
            .leader()
            .filter(|&id| self.state(id) == NodeState::Up)?;
        let slot = leader.0 as usize - 1;
        let membership = self.shared().memberships[slot].clone()?;
        let outside: Vec<NodeId> = (1..=self.size() as u64)
            .map(NodeId)
            .filter(|&id| !membership.contains(id))
            .collect();
        let others: Vec<NodeId> = membership
            .members()
            .into_iter()
            .filter(|&id| id != leader && self.state(id) == NodeState::Up)
            .collect();
        let (ask, target) = {
            let mut rng = self.rng();
            let pick = |rng: &mut ChaCha8Rng, from: &[NodeId]| from[rng.gen_range(0..from.len())];
            let change = match rng.gen_range(0..5) {
                0 | 1 if membership.voters.len() > 1 => {
                    MemberAsk::Remove(pick(&mut rng, &membership.voters))
                }
                3 if !membership.learners.is_empty() => {
                    MemberAsk::Promote(pick(&mut rng, &membership.learners))
                }
                4 if !membership.learners.is_empty() && rng.gen_bool(0.3) => {
                    MemberAsk::Remove(pick(&mut rng, &membership.learners))
                }
                // A new member joins as a learner (etcd's advice): a voter that must first copy
                // a long log stalls every commit of a joint configuration until it has.
                _ if !outside.is_empty() => MemberAsk::AddLearner(pick(&mut rng, &outside)),
                _ => MemberAsk::Remove(pick(&mut rng, &membership.voters)),
            };
            let ask = if rng.gen_range(0..8) == 0 {
                // A member moves: its peer URLs change, its id stays.
                let member = pick(&mut rng, &membership.members());
                let now = membership
                    .address(member)
                    .and_then(|a| a.peer_urls.first().cloned())
                    .unwrap_or_else(|| crate::members::peer_url(member));
                let port = if now.ends_with(":2380") { 2381 } else { 2380 };
                MemberAsk::Update(member, format!("http://n{}:{port}", member.0))
            } else {
                change
            };
            let target = if !others.is_empty() && rng.gen_range(0..5) == 0 {
                pick(&mut rng, &others)
            } else {
                leader
            };
            (ask, target)
        };
        let node = ask.node();
        let task = madsim::task::spawn(crate::members::request(self.clone(), target, ask));
        self.shared().member_tasks.push(task);
        Some(node)
    }

    /// True if any node's configuration differs from the one the cluster started with (all of
    /// its nodes, voting).
    pub fn reconfigured(&self) -> bool {
        self.reconfigured_memo(&mut None)
    }

    /// `reconfigured`, computed again only if a configuration in force changed since `memo`
    /// was filled (each change bumps its node's `membership_versions`): the safety phase's
    /// watch asks at every step, and the configurations change rarely.
    pub fn reconfigured_memo(&self, memo: &mut Option<(Vec<u64>, bool)>) -> bool {
        let s = self.shared();
        if let Some((versions, answer)) = memo
            && *versions == s.membership_versions
        {
            return *answer;
        }
        // Compared with `Membership::with_voters(1..=size)` field by field, without building it.
        let all = (1..=self.size() as u64).map(NodeId);
        let answer = s.memberships.iter().flatten().any(|m| {
            !(m.voters.iter().copied().eq(all.clone())
                && m.outgoing.is_empty()
                && m.learners.is_empty()
                && m.addresses.is_empty())
        });
        *memo = Some((s.membership_versions.clone(), answer));
        answer
    }

    /// True if `nodes` hold a majority of every half of `leader`'s configuration (thesis §4.3),
    /// or of the whole cluster if its configuration is not known yet.
    pub fn quorum_of(&self, leader: NodeId, nodes: &[NodeId]) -> bool {
        quorum_in(&self.shared(), self.size(), leader, nodes.len(), |id| {
            nodes.contains(&id)
        })
    }

    /// Restarts a dead node from its disk.
    pub fn restart(&self, id: NodeId) {
        let slot = id.0 as usize - 1;
        assert_eq!(
            self.state(id),
            NodeState::Down,
            "kill before restart (sim/README.md §2, pitfall 3)"
        );
        {
            let mut s = self.shared();
            s.states[slot] = NodeState::Up;
            s.aimed_restart[slot] = false;
        }
        self.net.set_up(id, true);
        self.handle.restart(self.madsim_ids[slot]);
        self.note_fault(2, id);
    }

    /// The aimed fault `restart-after-read`: crashes `id` right after its life sent its first
    /// ReadIndex request and restarts it at once, while the answer may still be on its way.
    pub fn restart_after_read(&self, id: NodeId) {
        self.note_event("restart-after-read", vec![id.0]);
        self.crash(id);
        self.restart(id);
        self.shared().aimed_restart[id.0 as usize - 1] = true;
    }

    /// Freezes a node.
    pub fn pause(&self, id: NodeId) {
        let slot = id.0 as usize - 1;
        self.shared().states[slot] = NodeState::Paused;
        self.handle.pause(self.madsim_ids[slot]);
        self.note_fault(3, id);
    }

    /// Unfreezes a node.
    pub fn resume(&self, id: NodeId) {
        let slot = id.0 as usize - 1;
        self.shared().states[slot] = NodeState::Up;
        self.handle.resume(self.madsim_ids[slot]);
        self.note_fault(4, id);
    }
}

/// About how many operations the workload offers over the run, at most a million: the history,
/// the committed events and the reference answers get room for that many up front (growing a
/// vector copies it whole, a dozen times a run).
fn expected_ops(config: &SimConfig) -> usize {
    (config.ops_per_s.saturating_mul(config.duration_ms) / 1000).min(1 << 20) as usize
}

/// Node `id`'s last status in the shared record (statuses are kept by node slot), if any: a
/// look-up instead of a search of every status.
pub fn status_of(s: &Shared, id: NodeId) -> Option<&Status> {
    let slot = usize::try_from(id.0.checked_sub(1)?).ok()?;
    s.statuses
        .get(slot)?
        .as_ref()
        .filter(|status| status.id == id)
}

/// Records a violation of `rule` by node `id` (no term or index to name).
/// [`Cluster::quorum_of`] on the shared record already locked, for `count` distinct nodes that
/// `has` tells apart (the per-step watches ask it without building a list).
pub fn quorum_in(
    s: &Shared,
    size: usize,
    leader: NodeId,
    count: usize,
    has: impl Fn(NodeId) -> bool,
) -> bool {
    match &s.memberships[leader.0 as usize - 1] {
        Some(m) if !m.voters.is_empty() => m.has_quorum(has),
        _ => count > size / 2,
    }
}

fn node_violation(
    shared: &Mutex<Shared>,
    id: NodeId,
    rule: &'static str,
    detail: String,
    now_ms: u64,
) {
    let v = Violation::new(
        rule,
        observe::node(id),
        Default::default(),
        Default::default(),
        detail,
    );
    shared
        .lock()
        .expect("shared lock poisoned")
        .record(Err(v), now_ms);
}

/// A borrowed handle on the shared random stream.
pub struct RngGuard<'a>(MutexGuard<'a, Shared>);

impl std::ops::Deref for RngGuard<'_> {
    type Target = ChaCha8Rng;
    fn deref(&self) -> &ChaCha8Rng {
        &self.0.rng
    }
}

impl std::ops::DerefMut for RngGuard<'_> {
    fn deref_mut(&mut self) -> &mut ChaCha8Rng {
        &mut self.0.rng
    }
}

/// The node's configuration: the same function as `floe`'s, from the run's settings; only the
/// planted-bug switches are the simulator's own.
/// A node's HTTP service, as `floe` builds it (`main.rs`), on the node's own clock; its tasks
/// (a lock contender giving its place up) run on the simulation's executor.
pub type SimApp = engine::http::App<NodeClock>;

fn http_app(
    config: &SimConfig,
    id: NodeId,
    client: KvClient,
    clock: NodeClock,
    shared: &Arc<Mutex<Shared>>,
) -> Arc<SimApp> {
    let spawn: engine::http::Spawn = |future| {
        madsim::task::spawn(future);
    };
    let config_http = engine::http::HttpConfig {
        id,
        cluster_id: "cdf818194e3a8c32".into(),
        cluster_token: "etcd-cluster".to_string(),
        legacy: true,
        // A write waits for a leader as long as the client waits for it.
        request_timeout_ms: config.client_timeout_ms,
        metrics: Arc::default(),
        expiration: engine::store::ExpirationStyle::default(),
    };
    let bugs = Bug::switches(config.bug).http;
    let membership = Box::new(SimMembership {
        id,
        nodes: config.nodes as u64,
        founders: founders_known(config, id),
        shared: shared.clone(),
    });
    engine::http::App::with_bugs(client, clock, spawn, (config_http, bugs), membership)
}

/// The members as one node knows them, as `floe`'s peer directory does: those of the latest
/// configuration in its log (thesis §4.1) and itself, named `n<id>`, each at the peer URLs the
/// configuration gives it (`http://n<id>:2380` for a founding member it gives none), client URL
/// `http://n<id>:2379`; the members its current life saw leave, as removed. A member added
/// at `http://n<k>:<port>` is node `k` (the simulated nodes' ids are fixed).
struct SimMembership {
    id: NodeId,
    nodes: u64,
    /// The members before the node's first step (its start-up flags).
    founders: Vec<NodeId>,
    shared: Arc<Mutex<Shared>>,
}

/// The members node `id` knows before its first step: those its start-up flags name (a
/// spare, joining, knows itself).
fn founders_known(config: &SimConfig, id: NodeId) -> Vec<NodeId> {
    let voters = config.nodes - config.spares.min(config.nodes - 1);
    if id.0 as usize > voters {
        vec![id]
    } else {
        (1..=voters as u64).map(NodeId).collect()
    }
}

/// Member `id` as a node whose configuration is `m` shows it.
fn member_info(id: NodeId, m: Option<&Membership>) -> engine::http::MemberInfo {
    let peer_urls = m
        .and_then(|m| m.address(id))
        .filter(|a| !a.peer_urls.is_empty())
        .map_or_else(
            || vec![crate::members::peer_url(id)],
            |a| a.peer_urls.clone(),
        );
    engine::http::MemberInfo {
        id,
        hex_id: format!("{:x}", id.0),
        name: format!("n{}", id.0),
        peer_urls,
        client_urls: vec![format!("http://n{}:2379", id.0)],
    }
}

/// The members node `me` shows (`SimMembership::members`), from the shared record.
fn members_shown(s: &Shared, me: NodeId, founders: &[NodeId]) -> Vec<engine::http::MemberInfo> {
    let m = s.memberships[me.0 as usize - 1].as_ref();
    let mut ids = m.map_or_else(|| founders.to_vec(), Membership::members);
    ids.push(me);
    ids.sort();
    ids.dedup();
    ids.into_iter().map(|id| member_info(id, m)).collect()
}

impl Cluster {
    /// The members node `id` shows now, and its configuration's version (a request answered
    /// while the version stayed was answered with these members).
    pub fn members_shown(&self, id: NodeId) -> (u64, Vec<engine::http::MemberInfo>) {
        let founders = founders_known(&self.config, id);
        let s = self.shared();
        (
            s.membership_versions[id.0 as usize - 1],
            members_shown(&s, id, &founders),
        )
    }
}

impl engine::http::Membership for SimMembership {
    fn members(&self) -> Vec<engine::http::MemberInfo> {
        let s = self.shared.lock().expect("shared lock poisoned");
        members_shown(&s, self.id, &self.founders)
    }

    fn removed(&self) -> Vec<engine::http::MemberInfo> {
        let s = self.shared.lock().expect("shared lock poisoned");
        let slot = self.id.0 as usize - 1;
        let m = s.memberships[slot].as_ref();
        s.removed_members[slot]
            .iter()
            .filter(|&&id| !m.is_some_and(|m| m.contains(id)))
            .map(|&id| member_info(id, None))
            .collect()
    }

    fn added_member_id(&self, token: &str, peer_urls: &[String]) -> NodeId {
        match peer_urls {
            [url] => crate::members::node_of_url(url, self.nodes),
            _ => None,
        }
        .unwrap_or_else(|| engine::http::members::added_member_id(token, peer_urls))
    }
}

fn node_config(
    config: &SimConfig,
    id: NodeId,
    peers: Vec<NodeId>,
    seed: u64,
    boot_nonce: u64,
) -> NodeConfig {
    // Spares start outside the configuration and join when a membership change adds them
    // (etcd's `--initial-cluster-state existing`).
    let voters = config.nodes - config.spares.min(config.nodes - 1);
    let spare = id.0 as usize > voters;
    let peers = if spare {
        vec![id]
    } else {
        peers
            .into_iter()
            .filter(|p| p.0 as usize <= voters)
            .collect()
    };
    let mut node = config.settings.node_config(id, peers, seed, boot_nonce);
    node.raft.joining = spare;
    let switches = Bug::switches(config.bug);
    node.raft.bugs = switches.raft;
    node.bugs = switches.node;
    node
}

/// Raft thesis §4.2.2: a leader that a committed configuration leaves out steps down once that
/// configuration commits (it may lead while C_new is uncommitted, without counting itself).
fn removed_leader(raw: &RawNode, status: &engine::raft::Status) -> Result<(), Violation> {
    if status.role != RoleKind::Leader {
        return Ok(());
    }
    let committed = raw.membership_ref_at(status.commit);
    if committed != raw.membership() || committed.is_joint() || committed.is_voter(status.id) {
        return Ok(());
    }
    Err(Violation::new(
        "a leader removed by a committed configuration steps down",
        observe::node(status.id),
        observe::term(status.term),
        observe::index(status.commit),
        format!(
            "n{} leads term {} under the committed configuration {committed}",
            status.id, status.term
        ),
    ))
}

fn role_name(role: RoleKind) -> &'static str {
    match role {
        RoleKind::Leader => "leader",
        RoleKind::Candidate => "candidate",
        RoleKind::PreCandidate => "pre-candidate",
        RoleKind::Follower => "follower",
    }
}
