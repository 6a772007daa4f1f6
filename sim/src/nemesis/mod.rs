//! Faults: partitions of several shapes, crashes that lose unsynced writes, pauses, loss bursts
//! and latency spikes. The nemesis only injects; the checkers judge.

use std::sync::Arc;

use engine::raft::{NodeId, RoleKind, Term};
use engine::server::CrashPoint;
use rand::Rng;
use rand::seq::SliceRandom;
use serde::Serialize;

use crate::cluster::{Cluster, NodeState};
use crate::world::Latency;

/// One kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// Split the nodes into two random halves.
    PartitionHalves,
    /// Cut one random node off from all others.
    IsolateOne,
    /// Cut the current leader off from all others.
    IsolateLeader,
    /// Each node hears only its ring neighbours: every node sees a majority, no two the same one.
    MajorityRing,
    /// Two halves that meet only through one bridge node.
    Bridge,
    /// Cut some links in one direction only.
    OneWay,
    /// Kill a node; unsynced writes are lost or torn.
    Crash,
    /// Freeze a node's tasks (a long GC pause, a stopped VM).
    Pause,
    /// Random loss and duplication for a while.
    Lossy,
    /// A latency spike for a while.
    Slow,
    /// For a while, every new leader is crashed within a few round trips of its election and
    /// restarted soon after: short-lived leaders with half-replicated logs, the ground of the
    /// Raft paper's Figure 8.
    LeaderChurn,
    /// Set one node's wall clock to a new offset from true time (within the plan's bound).
    ClockOffset,
    /// Change the rate one node's clocks run at (monotonic and wall).
    ClockDrift,
    /// Step one node's wall clock forward or back (its monotonic clock never goes back).
    ClockJump,
    /// Aimed, for a while: every follower whose life sends its first ReadIndex request is
    /// crashed and restarted at once, while the answer may still be on its way (the restarted
    /// node must not take it for a new read's).
    RestartAfterRead,
    /// Ask the leader to hand its leadership to its most up-to-date follower (Raft thesis
    /// §3.10), as `floe` does when it is told to stop.
    TransferLeader,
    /// Aimed, once: the next node whose log write is waiting for its sync (a leader that sends
    /// before it syncs has already sent the entries) is crashed right there, and restarted soon.
    CrashSyncInFlight,
    /// Aimed, once: the next follower that made new entries durable is crashed before its answer
    /// leaves, and restarted soon.
    CrashAfterPersist,
    /// Aimed, once: the next leader that applied newly committed entries and answered their
    /// clients is crashed right after, and restarted soon.
    CrashAfterCommit,
    /// Ask the leader for one membership change (Raft thesis chapter 4): remove a voter (the
    /// leader too), add a node as a learner or a voter, promote or remove a learner.
    Reconfigure,
    /// One node's next sync fails (EIO): nothing that depended on it may be acknowledged; the
    /// node stops and is restarted later, as a process that exits on an fsync error.
    FsyncError,
    /// One node's syncs (the leader's, if there is one) hang for seconds.
    FsyncStall,
    /// One node's syncs take tens of milliseconds longer for a while.
    DiskSlow,
    /// One node's writes fail with "no space" for a while.
    DiskFull,
    /// Bits flipped at rest in one node's log, seen when it restarts (at most a minority of
    /// the nodes damaged at once).
    DiskCorrupt,
    /// A write of one node landed at the wrong offset: an earlier part of its log overwritten
    /// with it, and zeros where it belonged (at most a minority of the nodes damaged at once).
    DiskMisdirect,
    /// A write one node synced never reached the platter (the lying fsync): at its next crash
    /// the file keeps its length but the write's bytes read back as zeros (at most a minority
    /// of the nodes damaged at once).
    DiskLostWrite,
}

impl FaultKind {
    /// Every fault kind.
    pub const ALL: [FaultKind; 27] = [
        FaultKind::PartitionHalves,
        FaultKind::IsolateOne,
        FaultKind::IsolateLeader,
        FaultKind::MajorityRing,
        FaultKind::Bridge,
        FaultKind::OneWay,
        FaultKind::Crash,
        FaultKind::Pause,
        FaultKind::Lossy,
        FaultKind::Slow,
        FaultKind::LeaderChurn,
        FaultKind::ClockOffset,
        FaultKind::ClockDrift,
        FaultKind::ClockJump,
        FaultKind::RestartAfterRead,
        FaultKind::TransferLeader,
        FaultKind::CrashSyncInFlight,
        FaultKind::CrashAfterPersist,
        FaultKind::CrashAfterCommit,
        FaultKind::Reconfigure,
        FaultKind::FsyncError,
        FaultKind::FsyncStall,
        FaultKind::DiskSlow,
        FaultKind::DiskFull,
        FaultKind::DiskCorrupt,
        FaultKind::DiskMisdirect,
        FaultKind::DiskLostWrite,
    ];

    /// True for the faults aimed at a moment (drawn on their own stream).
    pub fn is_aimed(self) -> bool {
        self == FaultKind::RestartAfterRead || self.crash_point().is_some()
    }

    /// The node loop's moment a crash of this kind is aimed at, if it is one.
    pub fn crash_point(self) -> Option<CrashPoint> {
        match self {
            FaultKind::CrashSyncInFlight => Some(CrashPoint::SyncInFlight),
            FaultKind::CrashAfterPersist => Some(CrashPoint::PersistedNotAnswered),
            FaultKind::CrashAfterCommit => Some(CrashPoint::LeaderCommitted),
            _ => None,
        }
    }

    /// True for the faults that record themselves, with their node: crashes, pauses,
    /// transfers and clock faults.
    pub fn records_itself(self) -> bool {
        matches!(
            self,
            FaultKind::Crash
                | FaultKind::Pause
                | FaultKind::TransferLeader
                | FaultKind::Reconfigure
        ) || self.is_clock()
            || self.crash_point().is_some()
            || self.damages_disk()
            || self.is_disk()
    }

    /// True for the faults a swarm seed draws on streams of their own (transfers, membership
    /// changes), so that adding them moved no other draw.
    pub fn drawn_apart(self) -> bool {
        matches!(self, FaultKind::TransferLeader | FaultKind::Reconfigure)
    }

    /// True for the disk faults (drawn on their own stream).
    pub fn is_disk(self) -> bool {
        matches!(
            self,
            FaultKind::FsyncError
                | FaultKind::FsyncStall
                | FaultKind::DiskSlow
                | FaultKind::DiskFull
                | FaultKind::DiskCorrupt
                | FaultKind::DiskMisdirect
                | FaultKind::DiskLostWrite
        )
    }

    /// True for the disk faults that damage what is at rest (a minority of nodes at once).
    pub fn damages_disk(self) -> bool {
        matches!(
            self,
            FaultKind::DiskCorrupt | FaultKind::DiskMisdirect | FaultKind::DiskLostWrite
        )
    }

    /// True for the faults that change a node's clock.
    pub fn is_clock(self) -> bool {
        matches!(
            self,
            FaultKind::ClockOffset | FaultKind::ClockDrift | FaultKind::ClockJump
        )
    }
}

impl FaultKind {
    /// The kind's name, as in `--json` and the failure report.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::PartitionHalves => "partition-halves",
            FaultKind::IsolateOne => "isolate-one",
            FaultKind::IsolateLeader => "isolate-leader",
            FaultKind::MajorityRing => "majority-ring",
            FaultKind::Bridge => "bridge",
            FaultKind::OneWay => "one-way",
            FaultKind::Crash => "crash",
            FaultKind::Pause => "pause",
            FaultKind::Lossy => "lossy",
            FaultKind::Slow => "slow",
            FaultKind::LeaderChurn => "leader-churn",
            FaultKind::ClockOffset => "clock-offset",
            FaultKind::ClockDrift => "clock-drift",
            FaultKind::ClockJump => "clock-jump",
            FaultKind::RestartAfterRead => "restart-after-read",
            FaultKind::TransferLeader => "transfer-leader",
            FaultKind::CrashSyncInFlight => "crash-sync-in-flight",
            FaultKind::CrashAfterPersist => "crash-after-persist",
            FaultKind::CrashAfterCommit => "crash-after-commit",
            FaultKind::Reconfigure => "reconfigure",
            FaultKind::FsyncError => "fsync-error",
            FaultKind::FsyncStall => "fsync-stall",
            FaultKind::DiskSlow => "disk-slow",
            FaultKind::DiskFull => "disk-full",
            FaultKind::DiskCorrupt => "disk-corrupt",
            FaultKind::DiskMisdirect => "disk-misdirect",
            FaultKind::DiskLostWrite => "disk-lost-write",
        }
    }
}

/// Every node id of an `n`-node cluster.
fn ids(n: usize) -> Vec<NodeId> {
    (1..=n as u64).map(NodeId).collect()
}

/// Cuts every link between different groups (both directions); nodes in no group are cut off.
fn partition(cluster: &Cluster, groups: &[Vec<NodeId>]) {
    let group_of = |id: NodeId| groups.iter().position(|g| g.contains(&id));
    for a in ids(cluster.size()) {
        for b in ids(cluster.size()) {
            if a != b {
                let apart = group_of(a).is_none() || group_of(a) != group_of(b);
                cluster.net.set_blocked(a, b, apart);
            }
        }
    }
}

/// Applies one fault of `kind`, or undoes faults (heal, restart, resume) when it cannot apply.
pub fn inject(cluster: &Arc<Cluster>, kind: FaultKind) {
    if !kind.records_itself() {
        cluster.note_event(kind.name(), Vec::new());
    }
    let n = cluster.size();
    let mut all = ids(n);
    let mut rng = cluster.rng();
    all.shuffle(&mut *rng);
    match kind {
        FaultKind::PartitionHalves => {
            let cut = rng.gen_range(1..n);
            drop(rng);
            partition(cluster, &[all[..cut].to_vec(), all[cut..].to_vec()]);
        }
        FaultKind::IsolateOne => {
            drop(rng);
            partition(cluster, &[vec![all[0]], all[1..].to_vec()]);
        }
        FaultKind::IsolateLeader => {
            drop(rng);
            let leader = cluster.leader().unwrap_or(all[0]);
            let rest: Vec<NodeId> = all.iter().copied().filter(|&id| id != leader).collect();
            partition(cluster, &[vec![leader], rest]);
        }
        FaultKind::MajorityRing => {
            drop(rng);
            majority_ring(cluster, &all);
        }
        FaultKind::Bridge => {
            drop(rng);
            bridge(cluster, &all);
        }
        FaultKind::OneWay => {
            let cuts = rng.gen_range(1..=n);
            let pairs: Vec<(NodeId, NodeId)> = (0..cuts)
                .map(|_| (all[rng.gen_range(0..n)], all[rng.gen_range(0..n)]))
                .collect();
            drop(rng);
            for (a, b) in pairs {
                if a != b {
                    cluster.net.set_blocked(a, b, true);
                }
            }
        }
        FaultKind::Crash => {
            drop(rng);
            crash_or_restart(cluster, &all);
        }
        FaultKind::Pause => {
            drop(rng);
            pause_or_resume(cluster, &all);
        }
        FaultKind::Lossy => {
            let (loss, dup) = (
                cluster.config.loss_per_mille.max(50),
                cluster.config.dup_per_mille,
            );
            drop(rng);
            cluster.net.set_loss(loss, dup);
        }
        FaultKind::Slow => {
            let base = cluster.config.latency;
            let factor = rng.gen_range(2..=10);
            drop(rng);
            let slow = Latency {
                min_ms: base.min_ms * factor,
                max_ms: base.max_ms * factor,
                tail_per_mille: base.tail_per_mille,
                tail_max_ms: base.tail_max_ms * factor,
            };
            cluster.net.set_latency(slow);
        }
        FaultKind::ClockOffset | FaultKind::ClockDrift | FaultKind::ClockJump => {
            drop(rng);
            clock_fault(cluster, kind, all[0]);
        }
        FaultKind::TransferLeader | FaultKind::Reconfigure => {
            drop(rng);
            ask_leader(cluster, kind);
        }
        FaultKind::FsyncError
        | FaultKind::FsyncStall
        | FaultKind::DiskSlow
        | FaultKind::DiskFull => {
            drop(rng);
            running_disk_fault(cluster, kind, &all);
        }
        FaultKind::DiskCorrupt | FaultKind::DiskMisdirect | FaultKind::DiskLostWrite => {
            drop(rng);
            cluster.damage_disk(kind, &all);
        }
        // Driven step by step by the supervisor (aimed crashes: `aimed::AimedCrashes`);
        // starting them is all `inject` does.
        FaultKind::LeaderChurn
        | FaultKind::RestartAfterRead
        | FaultKind::CrashSyncInFlight
        | FaultKind::CrashAfterPersist
        | FaultKind::CrashAfterCommit => {}
    }
}

/// The faults that ask the leader for something: a leadership transfer (recorded with the
/// leader asked), or a membership change (counted, recorded with the node it concerns).
fn ask_leader(cluster: &Arc<Cluster>, kind: FaultKind) {
    if kind == FaultKind::TransferLeader {
        let asked = cluster.transfer_leader();
        cluster.note_event(kind.name(), asked.map(|id| id.0).into_iter().collect());
    } else if let Some(node) = cluster.reconfigure() {
        cluster.shared().reconfigurations += 1;
        cluster.note_event(kind.name(), vec![node.0]);
    }
}

/// A clock fault of `kind` on `node`, within the plan's bounds.
fn clock_fault(cluster: &Cluster, kind: FaultKind, node: NodeId) {
    let mut rng = cluster.rng();
    let plan = cluster.config.clock;
    let (offset_ns, drift_ppb) = plan.draw(&mut *rng);
    let jump_ns = 1_000_000 * plan.jump_max_ms as i64;
    let by_ns = if jump_ns == 0 {
        0
    } else {
        rng.gen_range(-jump_ns..=jump_ns)
    };
    drop(rng);
    let skew = cluster.skew(node);
    let now_ns = cluster.clock.true_ns();
    match kind {
        FaultKind::ClockOffset => skew.set_offset(now_ns, offset_ns),
        FaultKind::ClockDrift => skew.set_drift(now_ns, drift_ppb),
        _ => skew.jump(now_ns, by_ns),
    }
    cluster.note_clock(kind.name(), node, now_ns);
}

/// One of the disk faults that act while a node runs (`fsync-error`, `fsync-stall`,
/// `disk-slow`, `disk-full`), on the first running node of `order` (the leader for a stall).
fn running_disk_fault(cluster: &Cluster, kind: FaultKind, all: &[NodeId]) {
    // Every look at the cluster before the random stream is taken: its guard holds the
    // shared lock.
    let now = cluster.clock.now_ms();
    let up: Vec<NodeId> = all
        .iter()
        .copied()
        .filter(|&id| cluster.state(id) == NodeState::Up)
        .collect();
    let Some(&first) = up.first() else { return };
    let victim = match kind {
        FaultKind::FsyncStall => cluster
            .leader()
            .filter(|id| up.contains(id))
            .unwrap_or(first),
        _ => first,
    };
    let faults = cluster.disk_faults(victim);
    let mut rng = cluster.rng();
    match kind {
        FaultKind::FsyncError => faults.fail_next_sync(),
        FaultKind::FsyncStall => faults.stall_until(now + rng.gen_range(1_000..=4_000)),
        FaultKind::DiskSlow => {
            faults.slow_until(now + rng.gen_range(1_000..=5_000), rng.gen_range(5..=50));
        }
        _ => faults.full_until(now + rng.gen_range(200..=2_000)),
    }
    drop(rng);
    cluster.note_event(kind.name(), vec![victim.0]);
}

/// The leader-churn fault's state, advanced by the supervisor every tick.
#[derive(Debug, Default)]
pub struct Churn {
    /// Churn goes on until this time.
    until_ms: u64,
    /// The highest term whose leader was already scheduled to crash.
    term_seen: Term,
    /// A leader to crash, and when.
    kill: Option<(NodeId, u64)>,
    /// Crashed nodes to restart, and when.
    restart: Vec<(NodeId, u64)>,
}

impl Churn {
    /// Starts churning for `for_ms`.
    pub fn start(&mut self, now_ms: u64, for_ms: u64) {
        self.until_ms = self.until_ms.max(now_ms + for_ms);
    }

    /// True while churn goes on (or a crash or restart it scheduled is pending).
    pub fn active(&self, now_ms: u64) -> bool {
        now_ms < self.until_ms || self.kill.is_some() || !self.restart.is_empty()
    }

    /// One supervisor step: crash the new leader when due, restart crashed nodes when due.
    pub fn step(&mut self, cluster: &Cluster) {
        let now = cluster.clock.now_ms();
        if now >= self.until_ms && self.kill.is_none() && self.restart.is_empty() {
            return;
        }
        let statuses = cluster.statuses();
        let newest = statuses
            .iter()
            .flatten()
            .filter(|s| s.role == RoleKind::Leader)
            .max_by_key(|s| s.term);
        if let Some(leader) = newest
            && now < self.until_ms
            && leader.term > self.term_seen
            && self.kill.is_none()
        {
            self.term_seen = leader.term;
            let round_trip_ms = 2 * cluster.config.latency.max_ms;
            let delay = cluster.rng().gen_range(0..=3 * round_trip_ms);
            self.kill = Some((leader.id, now + delay));
        }
        if let Some((id, at)) = self.kill
            && now >= at
        {
            self.kill = None;
            if cluster.state(id) != NodeState::Down {
                cluster.crash(id);
                let back = cluster.rng().gen_range(20..=400);
                self.restart.push((id, now + back));
            }
        }
        let (due, later): (Vec<_>, Vec<_>) = self.restart.iter().partition(|&&(_, at)| now >= at);
        self.restart = later;
        for (id, _) in due {
            if cluster.state(id) == NodeState::Down {
                cluster.restart(id);
            }
        }
    }
}

/// Each node hears nodes within ring distance `d`, where `2d + 1` is the smallest majority
/// window; with 5 nodes, node 1 hears 5 and 2, node 2 hears 1 and 3, and so on.
fn majority_ring(cluster: &Cluster, order: &[NodeId]) {
    let n = order.len();
    let d = n / 4 + 1;
    for (i, &a) in order.iter().enumerate() {
        for (j, &b) in order.iter().enumerate() {
            if i != j {
                let dist = i.abs_diff(j).min(n - i.abs_diff(j));
                cluster.net.set_blocked(a, b, dist > d);
            }
        }
    }
}

/// Two halves joined only through `order[0]`.
fn bridge(cluster: &Cluster, order: &[NodeId]) {
    let (bridge, rest) = order.split_first().expect("clusters are not empty");
    let (left, right) = rest.split_at(rest.len() / 2);
    partition(cluster, &[left.to_vec(), right.to_vec()]);
    for &other in rest {
        cluster.net.set_blocked(*bridge, other, false);
        cluster.net.set_blocked(other, *bridge, false);
    }
}

/// Kills a running node; if every node is down already, restarts one instead. A third of the
/// time it restarts a dead node, so crashed nodes come back during the safety phase too.
fn crash_or_restart(cluster: &Cluster, order: &[NodeId]) {
    let dead: Vec<NodeId> = order
        .iter()
        .copied()
        .filter(|&id| cluster.state(id) == NodeState::Down)
        .collect();
    let restart = !dead.is_empty() && (dead.len() == order.len() || cluster.rng().gen_bool(0.34));
    if restart {
        cluster.restart(dead[0]);
    } else if let Some(&victim) = order
        .iter()
        .find(|&&id| cluster.state(id) != NodeState::Down)
    {
        cluster.crash(victim);
    }
}

/// Pauses a running node, or resumes a paused one half the time.
fn pause_or_resume(cluster: &Cluster, order: &[NodeId]) {
    let paused: Vec<NodeId> = order
        .iter()
        .copied()
        .filter(|&id| cluster.state(id) == NodeState::Paused)
        .collect();
    if !paused.is_empty() && cluster.rng().gen_bool(0.5) {
        cluster.resume(paused[0]);
    } else if let Some(&victim) = order.iter().find(|&&id| cluster.state(id) == NodeState::Up) {
        cluster.pause(victim);
    }
}

/// Performs one timed step of a scenario's fault schedule (see `scenario`). Returns false for
/// `leader-churn`, which the caller's `Churn` drives.
pub fn perform(cluster: &Arc<Cluster>, action: &str) -> bool {
    let leader = cluster.leader();
    let running: Vec<NodeId> = ids(cluster.size())
        .into_iter()
        .filter(|&id| cluster.state(id) == NodeState::Up)
        .collect();
    match action {
        "crash-leader" => {
            if let Some(id) = leader.filter(|&id| cluster.state(id) == NodeState::Up) {
                cluster.crash(id);
            }
        }
        "crash-random" if !running.is_empty() => {
            let pick = cluster.rng().gen_range(0..running.len());
            cluster.crash(running[pick]);
        }
        "pause-leader" => {
            if let Some(id) = leader.filter(|&id| cluster.state(id) == NodeState::Up) {
                cluster.pause(id);
            }
        }
        "restart-all" | "resume-all" => {
            let (from, undo): (NodeState, fn(&Cluster, NodeId)) = if action == "restart-all" {
                (NodeState::Down, Cluster::restart)
            } else {
                (NodeState::Paused, Cluster::resume)
            };
            for id in ids(cluster.size()) {
                if cluster.state(id) == from {
                    undo(cluster, id);
                }
            }
        }
        "isolate-random" => inject(cluster, FaultKind::IsolateOne),
        "transfer-leader" => inject(cluster, FaultKind::TransferLeader),
        "heal" => {
            cluster.note_event("heal", Vec::new());
            cluster.net.heal();
            cluster.net.set_loss(0, 0);
            cluster.net.set_latency(cluster.config.latency);
        }
        "leader-churn" => {
            cluster.note_event(FaultKind::LeaderChurn.name(), Vec::new());
            return false;
        }
        partial if PARTIAL_ACTIONS.contains(&partial) => partial_topology(cluster, partial),
        other => {
            if let Some(kind) = FaultKind::ALL.into_iter().find(|k| k.name() == other) {
                inject(cluster, kind);
            }
        }
    }
    true
}

/// The partial-connectivity topologies of Howard & Abraham and of the OmniPaxos paper, as
/// scenario actions. Each returns after setting every link (both directions).
pub const PARTIAL_ACTIONS: [&str; 4] = [
    "quorum-loss",
    "constrained-election",
    "chained",
    "howard-abraham",
];

/// Sets the network to exactly the undirected `edges` (every other link cut both ways).
fn topology(cluster: &Cluster, edges: &[(NodeId, NodeId)]) {
    let linked = |a: NodeId, b: NodeId| {
        edges
            .iter()
            .any(|&(x, y)| (x, y) == (a, b) || (y, x) == (a, b))
    };
    for a in ids(cluster.size()) {
        for b in ids(cluster.size()) {
            if a != b {
                cluster.net.set_blocked(a, b, !linked(a, b));
            }
        }
    }
}

/// The current leader (or node 1), then every other node by id.
fn leader_first(cluster: &Cluster) -> Vec<NodeId> {
    let leader = cluster.leader().unwrap_or(NodeId(1));
    let mut order = vec![leader];
    order.extend(ids(cluster.size()).into_iter().filter(|&id| id != leader));
    order
}

/// One of [`PARTIAL_ACTIONS`]:
/// - `quorum-loss`: one follower (the hub) stays linked to every node; every other link is cut,
///   so the leader reaches only the hub and no one else reaches a majority but through it;
/// - `constrained-election`: the same star around the running follower with the oldest log
///   (after `isolate-one`, the node that missed writes): the only node linked to a majority
///   cannot win an election;
/// - `chained`: a line, leader at one end: each node linked to its neighbours only;
/// - `howard-abraham`: the leader and two followers fully linked, a third follower linked only
///   to one of them and a fourth only to the leader (5 nodes; the post's topology).
pub fn partial_topology(cluster: &Cluster, action: &str) {
    cluster.note_event(action, Vec::new());
    let order = leader_first(cluster);
    let (leader, rest) = order.split_first().expect("clusters are not empty");
    let star = |hub: NodeId| -> Vec<(NodeId, NodeId)> {
        order
            .iter()
            .filter(|&&id| id != hub)
            .map(|&id| (hub, id))
            .collect()
    };
    let edges: Vec<(NodeId, NodeId)> = match action {
        "quorum-loss" => star(rest.first().copied().unwrap_or(*leader)),
        "constrained-election" => {
            let statuses = cluster.statuses();
            let oldest = (rest.iter().copied())
                .filter(|&id| cluster.state(id) == NodeState::Up)
                .min_by_key(|&id| {
                    statuses[id.0 as usize - 1]
                        .as_ref()
                        .map_or((Term(0), 0), |s| (s.last_term, s.last_index.0))
                })
                .unwrap_or(*leader);
            star(oldest)
        }
        "chained" => order.windows(2).map(|w| (w[0], w[1])).collect(),
        "howard-abraham" => {
            let mut edges = Vec::new();
            let triangle: Vec<NodeId> = order.iter().copied().take(3).collect();
            for (i, &a) in triangle.iter().enumerate() {
                for &b in &triangle[i + 1..] {
                    edges.push((a, b));
                }
            }
            if let (Some(&c), Some(&a)) = (order.get(3), order.get(1)) {
                edges.push((c, a));
            }
            if let Some(&d) = order.get(4) {
                edges.push((d, *leader));
            }
            // Beyond five nodes, the rest hang off the leader's first follower as well.
            for &extra in order.iter().skip(5) {
                edges.push((extra, order[1]));
            }
            edges
        }
        other => unreachable!("not a partial topology: {other}"),
    };
    topology(cluster, &edges);
}

/// Undoes every fault: links, loss, latency, crashed and paused nodes.
pub fn heal_all(cluster: &Cluster) {
    cluster.note_event("heal", Vec::new());
    for id in ids(cluster.size()) {
        cluster.disk_faults(id).heal();
    }
    cluster.net.heal();
    cluster.net.set_loss(0, 0);
    cluster.net.set_latency(cluster.config.latency);
    for id in ids(cluster.size()) {
        match cluster.state(id) {
            NodeState::Down => cluster.restart(id),
            NodeState::Paused => cluster.resume(id),
            NodeState::Up => {}
        }
    }
}

/// Whether a stable leader exists: a leader whose term a majority of nodes share, all of them
/// following it.
pub fn stable_leader(cluster: &Cluster) -> Option<NodeId> {
    // Read under one lock, without copying the statuses or listing the followers: this runs
    // at every step of the safety phase.
    let shared = cluster.shared();
    let statuses = || shared.statuses.iter().flatten();
    let leader = statuses()
        .filter(|s| s.role == RoleKind::Leader)
        .max_by_key(|s| s.term)?;
    let follows = |s: &&engine::raft::Status| s.term == leader.term && s.leader == Some(leader.id);
    let count = statuses().filter(follows).count();
    // A majority of the leader's configuration (of each half while joint, thesis §4.3).
    crate::cluster::quorum_in(&shared, cluster.size(), leader.id, count, |id| {
        crate::cluster::status_of(&shared, id).is_some_and(|s| follows(&s))
    })
    .then_some(leader.id)
}
