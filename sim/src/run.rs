//! One simulated run: build the world from the config, a safety phase with faults, then a
//! liveness phase in which every fault heals and the cluster must converge.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use madsim::runtime::Runtime;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::aimed::AimedCrashes;
use crate::check::liveness::{Links, quiet_majority};
use crate::check::{self, Violation};
use crate::cluster::{Cluster, NodeState, Shared};
use crate::nemesis::{self, FaultKind};
use crate::options::SimConfig;
use crate::trace::Fnv;
use crate::workload::{self, ClientStats, OpKind};
use crate::world::NetStats;
use engine::raft::{NodeId, RoleKind};

/// Everything a run reports.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    /// The seed.
    pub seed: u64,
    /// True if no rule broke.
    pub ok: bool,
    /// The first broken rule.
    pub violation: Option<Violation>,
    /// Fingerprint of every event of the run.
    pub trace_hash: String,
    /// Simulated time the run lasted.
    pub simulated_ms: u64,
    /// Terms in which a leader was elected.
    pub elections: u64,
    /// Highest term reached.
    pub max_term: u64,
    /// Commands applied and acknowledged to clients.
    pub commands_committed: u64,
    /// Faults injected.
    pub faults_injected: u64,
    /// Faults injected, by kind: `crash`, `restart`, `pause`, `resume`, the network kinds
    /// (`partition-halves`, `lossy`...), `leader-churn` and the clock kinds.
    pub faults_by_kind: std::collections::BTreeMap<String, u64>,
    /// Membership changes the nemesis asked of a running leader (`reconfigure`; the leader may
    /// refuse one, e.g. while another is in progress).
    pub reconfigurations: u64,
    /// Members API requests (`reconfigure`) by kind and final status (`add 201`, `remove
    /// 307`... `timeout`, `refused`), and `redirect`: each 307 followed.
    pub member_requests: std::collections::BTreeMap<String, u64>,
    /// The final configuration, as the node with the highest commit index holds it.
    pub final_membership: Option<String>,
    /// Snapshots installed from a leader (InstallSnapshot, Raft §7).
    pub snapshots_installed: u64,
    /// Client counters.
    pub clients: ClientStats,
    /// Client operations by kind: answered, failed, timed out.
    pub ops: std::collections::BTreeMap<crate::workload::OpKind, crate::workload::KindStats>,
    /// Network counters.
    pub net: NetStats,
    /// Time from healing to a stable leader, if one came.
    pub liveness_leader_ms: Option<u64>,
    /// Time without a leader after planned transfers and after leader crashes.
    pub handovers: crate::handover::Handovers,
    /// Acknowledged writes' latency, sent to the leader versus to a follower.
    pub write_latency: crate::latency::WriteLatency,
    /// The run's configuration.
    pub config: SimConfig,
    /// Every client operation (not in the JSON line: it is long).
    #[serde(skip)]
    pub history: crate::workload::History,
    /// The history as the linearizability checker judged it (timed-out writes resolved).
    #[serde(skip)]
    pub checked_ops: Vec<check::history::Op>,
    /// The operation a history checker blamed.
    pub bad_op: Option<u64>,
    /// Faults and repairs, for the failure report.
    #[serde(skip)]
    pub world_events: Vec<crate::cluster::WorldEvent>,
    /// Requests sent, by shape of the etcd v2 keys API (`workload::OpKind`'s kebab-case names:
    /// `cas-index` is PUT with `prevIndex`, `cad-index` DELETE with `prevIndex`, `cas-both`
    /// both `prevValue` and `prevIndex`...).
    pub request_shapes: std::collections::BTreeMap<String, u64>,
    /// Requests the clients sent through a node's etcd v2 HTTP service (a lock round is
    /// several, a refused or lost request counts too).
    pub http_requests: u64,
    /// The last partial-connectivity topology of the run (`nemesis::PARTIAL_ACTIONS`): how
    /// long after it began a stable leader reaching a majority directly was first seen (`None`:
    /// never while it held).
    pub partial_leader_ms: Option<u64>,
    /// The share of the time it held that such a leader existed, in per mille.
    pub partial_led_per_mille: Option<u64>,
    /// Time in the safety phase without a leader that can commit: stable, linked both ways to
    /// a majority that follows it, its disk neither stalled nor full.
    pub leaderless_ms: u64,
    /// The safety phase's fault schedule as it ran (random faults included), in the form of a
    /// scenario's `[faults] steps`: what `--shrink` starts from.
    #[serde(skip)]
    pub fault_steps: Vec<crate::scenario::Step>,
    /// Role and term changes, for the failure report.
    #[serde(skip)]
    pub roles: Vec<crate::cluster::RoleChange>,
}

/// Runs one seed on a fresh thread (a std `HashMap` made on a thread before its runtime breaks
/// determinism: sim/README.md §2, pitfall 6). A panic inside the simulation comes back as its message.
#[allow(clippy::disallowed_methods)] // The thread is outside the simulation; it runs one seed.
pub fn run_isolated(config: SimConfig) -> Result<RunReport, String> {
    let thread = std::thread::Builder::new()
        .name(format!("seed-{}", config.seed))
        .spawn(move || std::panic::catch_unwind(move || run(config)))
        .expect("spawn a simulation thread");
    let outcome = thread.join().expect("the simulation thread catches panics");
    outcome.map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
            .unwrap_or_else(|| "unknown panic".into())
    })
}

/// Starts the cluster of `config` (its nemesis and clients stay off) and runs `body` against it
/// in the simulated world: for tests that drive the cluster themselves. The body must finish
/// within `config.duration_ms` of simulated time, or the run panics instead of hanging.
pub fn with_cluster<F, Fut, T>(config: SimConfig, body: F) -> T
where
    F: FnOnce(Arc<Cluster>) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let mut rt = Runtime::with_seed_and_config(config.seed, madsim::Config::default());
    rt.set_time_limit(std::time::Duration::from_millis(config.duration_ms));
    rt.block_on(async move {
        let cluster = Arc::new(Cluster::start(config));
        let out = body(cluster.clone()).await;
        cluster.shutdown();
        out
    })
}

/// Runs one seed to the end, on the calling thread. Panics inside the simulation (a failed
/// `assert!` in the engine) propagate; the caller turns them into a violation.
pub fn run(config: SimConfig) -> RunReport {
    let mut rt = Runtime::with_seed_and_config(config.seed, madsim::Config::default());
    // Every phase is bounded; a run that outlives them all is stuck, and says so.
    let limit_ms = config.duration_ms + 2 * config.liveness_ms + 10 * config.client_timeout_ms;
    rt.set_time_limit(std::time::Duration::from_millis(limit_ms));
    rt.block_on(supervise(config))
}

async fn supervise(config: SimConfig) -> RunReport {
    let cluster = Arc::new(Cluster::start(config));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..cluster.config.clients)
        .map(|c| madsim::task::spawn(workload::client_loop(cluster.clone(), c, stop.clone())))
        .collect();
    let fault_steps = safety_phase(&cluster).await;
    stop.store(true, Ordering::Relaxed);
    let liveness_leader_ms = liveness_phase(&cluster).await;
    let mut stats = ClientStats::default();
    for handle in clients {
        let s = handle.await.expect("client tasks are not cancelled");
        stats.add(&s);
    }
    // The members API requests end by their deadline; their answers are judged as they come.
    let member_tasks = std::mem::take(&mut cluster.shared().member_tasks);
    for task in member_tasks {
        task.await.expect("members API requests are not cancelled");
    }
    let resolved = check_history(&cluster);
    let mut report = report(&cluster, stats, liveness_leader_ms, resolved);
    let (fault_steps, partial) = fault_steps;
    report.fault_steps = fault_steps;
    report.partial_leader_ms = partial.first_leader_ms;
    report.partial_led_per_mille =
        (partial.ticks > 0).then(|| 1000 * partial.led_ticks / partial.ticks);
    report.leaderless_ms = partial.leaderless_ms;
    cluster.shutdown();
    report
}

/// The stream of the nemesis's decisions (which fault, when, heal or not): its own, so that a
/// schedule of the same steps replays a run's faults exactly (`--shrink`).
const FAULT_DECISIONS: u64 = 0x4641_554c_5453_0000;

/// How long the aimed fault `restart-after-read` goes on once started (random or scheduled).
const AIMED_READS_MS: u64 = 3_000;

/// Faults at random intervals until the safety phase ends (or a rule breaks). Returns the faults
/// it applied, as timed steps, and what the partial-topology watch saw.
async fn safety_phase(cluster: &Arc<Cluster>) -> (Vec<crate::scenario::Step>, PartialWatch) {
    use crate::scenario::Step;
    let mut applied = Vec::new();
    let mut partial = PartialWatch::default();
    let mut decisions =
        rand_chacha::ChaCha8Rng::seed_from_u64(cluster.config.seed ^ FAULT_DECISIONS);
    let config = &cluster.config;
    let end_ms = config.duration_ms;
    let total: u32 = config.faults.iter().map(|&(_, w)| w).sum();
    let mut next_fault_ms = config.fault_interval_ms.0;
    let mut churn = nemesis::Churn::default();
    let mut quiet = QuietWatch::default();
    let mut stalled = StallWatch::default();
    let mut next_step = 0;
    let mut aimed = AimedReads::default();
    let mut crashes = AimedCrashes::default();
    while cluster.clock.now_ms() < end_ms && cluster.shared().violation.is_none() {
        // While `restart-after-read` or an aimed crash is aimed, look every millisecond (a
        // ReadIndex round trip can be shorter than a step; a node stopped at an aimed moment
        // is crashed at once).
        let aiming = cluster.clock.now_ms() < aimed.until_ms
            || AimedCrashes::aiming(cluster, cluster.clock.now_ms());
        let step_ms = (if aiming { 1 } else { config.tick_ms })
            .min(end_ms.saturating_sub(cluster.clock.now_ms()))
            .max(1);
        cluster.clock.sleep_ms(step_ms).await;
        churn.step(cluster);
        cluster.reap_exited();
        let now = cluster.clock.now_ms();
        aimed.step(cluster, now);
        crashes.step(cluster, now);
        // Restarts aimed at reads or moments disturb the majority as leader churn does.
        quiet.step(
            cluster,
            churn.active(now) || now < aimed.until_ms || crashes.disturbing(),
        );
        partial.step(cluster, now);
        stalled.step(cluster, now);
        let can_commit = committing_leader(cluster)
            .is_some_and(|leader| !cluster.disk_faults_of(leader).unusable(now));
        if !can_commit {
            partial.leaderless_ms += step_ms;
        }
        while let Some(step) = config.schedule.get(next_step)
            && step.at_ms <= now
        {
            next_step += 1;
            applied.push(Step {
                at_ms: now,
                action: step.action.clone(),
            });
            partial.changed(
                now,
                nemesis::PARTIAL_ACTIONS.contains(&step.action.as_str()),
            );
            let aimed_kind = FaultKind::ALL
                .into_iter()
                .find(|k| k.is_aimed() && k.name() == step.action);
            if let Some(kind) = aimed_kind {
                aimed.start(cluster, kind, now);
            } else if !nemesis::perform(cluster, &step.action) {
                churn.start(now, SCHEDULED_CHURN_MS);
            }
        }
        if total == 0 || now < next_fault_ms {
            continue;
        }
        let (kind, heal, gap) = draw_fault(&mut decisions, config);
        next_fault_ms = now + gap;
        let action = match kind {
            _ if heal => "heal",
            Some(kind) => kind.name(),
            None => continue,
        };
        applied.push(Step {
            at_ms: now,
            action: action.to_string(),
        });
        if heal {
            cluster.note_event("heal", Vec::new());
            cluster.net.heal();
            cluster.net.set_loss(0, 0);
            cluster.net.set_latency(config.latency);
        } else if let Some(kind) = kind.filter(|k| k.is_aimed()) {
            aimed.start(cluster, kind, now);
        } else if kind == Some(FaultKind::LeaderChurn) {
            cluster.note_event(FaultKind::LeaderChurn.name(), Vec::new());
            churn.start(now, SCHEDULED_CHURN_MS);
        } else if let Some(kind) = kind {
            nemesis::inject(cluster, kind);
        }
    }
    crashes.finish(cluster, cluster.clock.now_ms());
    // The aimed reads are in the history: let them finish before it is judged.
    for reader in aimed.readers {
        let _ = reader.await;
    }
    (applied, partial)
}

/// The nemesis's next random decision: which fault (by the configured weights), whether to heal
/// instead, and the gap until the next one.
fn draw_fault(rng: &mut impl Rng, config: &SimConfig) -> (Option<FaultKind>, bool, u64) {
    let total: u32 = config.faults.iter().map(|&(_, w)| w).sum();
    let mut pick = rng.gen_range(0..total);
    let kind = config.faults.iter().find(|&&(_, w)| {
        if pick < w {
            true
        } else {
            pick -= w;
            false
        }
    });
    let heal = rng.gen_bool(0.3);
    (
        kind.map(|&(k, _)| k),
        heal,
        rng.gen_range(config.fault_interval_ms.0..=config.fault_interval_ms.1),
    )
}

/// How long leader churn goes on once started (random or scheduled alike).
const SCHEDULED_CHURN_MS: u64 = 2_500;

/// The aimed fault `restart-after-read`, advanced by the supervisor every step while it lasts.
/// A round: a follower starts a fresh life and is asked a quorum read; right after that life's
/// first ReadIndex request leaves, it is restarted, and the new life is asked a read of its own
/// while the old answer may be on its way.
#[derive(Default)]
struct AimedReads {
    /// The fault goes on until this time.
    until_ms: u64,
    /// The current round's reads are done by then.
    round_until_ms: u64,
    /// The reads asked, each as a client of its own.
    readers: Vec<madsim::task::JoinHandle<()>>,
}

impl AimedReads {
    /// Starts the aimed fault `kind`: `restart-after-read` for `AIMED_READS_MS`, or an aimed
    /// crash's moment armed.
    fn start(&mut self, cluster: &Cluster, kind: FaultKind, now: u64) {
        if kind == FaultKind::RestartAfterRead {
            self.until_ms = self.until_ms.max(now + AIMED_READS_MS);
        } else {
            AimedCrashes::arm(cluster, kind, now);
        }
    }

    fn step(&mut self, cluster: &Arc<Cluster>, now: u64) {
        let first_reads = std::mem::take(&mut cluster.shared().first_reads);
        if now >= self.until_ms {
            return;
        }
        for id in first_reads {
            if cluster.state(id) == NodeState::Up && cluster.leader() != Some(id) {
                cluster.restart_after_read(id);
                self.read(cluster, id, now);
            }
        }
        let leader = cluster.leader();
        let followers: Vec<NodeId> = (1..=cluster.size() as u64)
            .map(NodeId)
            .filter(|&id| Some(id) != leader && cluster.state(id) == NodeState::Up)
            .collect();
        if now >= self.round_until_ms && leader.is_some() && !followers.is_empty() {
            let id = followers[cluster.rng().gen_range(0..followers.len())];
            cluster.crash(id);
            cluster.restart(id);
            self.read(cluster, id, now);
        }
    }

    /// Asks `id` a quorum read once it knows a leader again.
    fn read(&mut self, cluster: &Arc<Cluster>, id: NodeId, now: u64) {
        let client = cluster.config.clients + self.readers.len();
        self.readers
            .push(madsim::task::spawn(workload::read_after_restart(
                cluster.clone(),
                client,
                id,
                now + 500,
            )));
        self.round_until_ms = now + 600;
    }
}

/// Liveness while a partial-connectivity topology holds: how soon a leader that can commit
/// (stable, and directly linked both ways to a majority that follows it) appears, and, when
/// the scenario asks for it, a violation once none has existed for `leader_bound_ms`.
#[derive(Debug, Default)]
struct PartialWatch {
    /// When the current topology began, and when a leader that can commit was last seen.
    since: Option<(u64, u64)>,
    first_leader_ms: Option<u64>,
    ticks: u64,
    led_ticks: u64,
    /// Over the whole safety phase (not only partial topologies): how long no leader that
    /// can commit existed (a stable leader linked to a majority, its disk neither stalled nor
    /// full).
    leaderless_ms: u64,
}

impl PartialWatch {
    /// A scheduled step ran at `now`: a partial topology begins, or the last one ended.
    fn changed(&mut self, now: u64, partial: bool) {
        if partial {
            self.since = Some((now, now));
            self.first_leader_ms = None;
            self.ticks = 0;
            self.led_ticks = 0;
        } else {
            self.since = None;
        }
    }

    fn step(&mut self, cluster: &Cluster, now: u64) {
        let Some((began, last_led)) = self.since else {
            return;
        };
        if cluster.reconfigured() {
            // NB(members): the topology's majorities are of all nodes; once the configuration
            // changed they say nothing of its quorums, and only the check after healing holds.
            self.since = None;
            return;
        }
        self.ticks += 1;
        if committing_leader(cluster).is_some() {
            self.led_ticks += 1;
            self.first_leader_ms.get_or_insert(now - began);
            self.since = Some((began, now));
            return;
        }
        if cluster.config.leader_while_partial && now >= last_led + cluster.config.leader_bound_ms {
            let detail = format!(
                "no stable leader linked to a majority for {} ms while the partial topology \
                 begun at {began} ms held",
                now - last_led
            );
            fail_liveness(
                cluster,
                "liveness: a leader while a partial topology leaves some node linked to a majority",
                detail,
            );
            self.since = Some((began, now));
        }
    }
}

/// A stable leader that reaches a majority of nodes (itself included) directly, both ways, all
/// of them following it: one that can commit.
fn committing_leader(cluster: &Cluster) -> Option<NodeId> {
    let leader = nemesis::stable_leader(cluster)?;
    // Under one lock of the shared record and one of the network, without copying the
    // statuses or listing the nodes reached (every step).
    let shared = cluster.shared();
    let cuts = cluster.net.cuts();
    let reached = |s: &&engine::raft::Status| {
        s.leader == Some(leader)
            && (s.id == leader
                || (!cuts.is_blocked(leader, s.id) && !cuts.is_blocked(s.id, leader)))
    };
    let count = shared.statuses.iter().flatten().filter(reached).count();
    crate::cluster::quorum_in(&shared, cluster.size(), leader, count, |id| {
        crate::cluster::status_of(&shared, id).is_some_and(|s| reached(&s))
    })
    .then_some(leader)
}

/// A leader whose log sync hangs gives way (hashicorp/raft#503; the node loop keeps ticking
/// while a sync is pending and steps a leader down once it is older than two minimum election
/// timeouts): no node may go on reporting itself leader, running, with one sync pending for
/// longer than that bound plus two of its ticks (it notices at its first tick boundary past
/// the bound) and one step of this watch.
#[derive(Debug, Default)]
struct StallWatch {
    /// By node slot: whether it was seen running and leading at the last step, and, while a
    /// sync is pending, when that sync began and since when it has been judged (the later of
    /// its start and the moment the node was last seen paused, down or following).
    seen: Vec<(bool, Option<(u64, u64)>)>,
    /// By node slot, at the current step: running and leading, and it led when its sync
    /// began (kept to reuse its memory).
    leading: Vec<bool>,
}

impl StallWatch {
    fn step(&mut self, cluster: &Cluster, now: u64) {
        let settings = &cluster.config.settings;
        let bound_ms = 2 * settings.election_ticks * settings.tick_ms;
        let allowed_ms = bound_ms + 2 * settings.tick_ms + cluster.config.tick_ms;
        // Who leads, runs and led when its sync began, under one lock of the shared record
        // (without copying the statuses: every step).
        self.leading.clear();
        {
            let s = cluster.shared();
            self.leading
                .extend(s.statuses.iter().enumerate().map(|(slot, status)| {
                    status.as_ref().is_some_and(|s| s.role == RoleKind::Leader)
                        && s.states[slot] == NodeState::Up
                        && s.sync_leading[slot]
                }));
        }
        self.seen.resize(self.leading.len(), (false, None));
        for slot in 0..self.leading.len() {
            let id = NodeId(slot as u64 + 1);
            // Judged only if it led when its sync began: a node deposed within the Ready it
            // is syncing reports its new role only after that Ready.
            let leading = self.leading[slot];
            let pending = cluster.disk_faults_of(id).sync_pending_since();
            let (was_leading, judged) = self.seen[slot];
            let judged = match (leading, pending, judged) {
                (true, Some(began), Some((b, since))) if b == began => Some((began, since)),
                (true, Some(began), _) => Some((began, if was_leading { began } else { now })),
                _ => None,
            };
            self.seen[slot] = (leading, judged);
            let Some((began, since)) = judged else {
                continue;
            };
            if now.saturating_sub(since) > allowed_ms {
                let detail = format!(
                    "node {} still leads, running, {} ms after its log sync began at {began} ms (bound {bound_ms} ms)",
                    id.0,
                    now - began
                );
                fail_liveness(
                    cluster,
                    "liveness: a leader whose log sync hangs gives way",
                    detail,
                );
                self.seen[slot] = (leading, None);
            }
        }
    }
}

/// Liveness during the faults: once a quiet majority (`check::liveness`) has held, on a network
/// without loss or slowness and without leader churn, for `config.leader_bound_ms`, a stable
/// leader must exist.
#[derive(Debug, Default)]
struct QuietWatch {
    /// The quiet majority and since when it has held.
    since: Option<(Vec<u64>, u64)>,
    /// The last topology judged (which nodes run, which links are cut, row by row) and its
    /// quiet majority: the graph search runs again only when the topology changed (it was a
    /// ninth of a reference run's time when it ran every step).
    memo: Option<(Vec<bool>, Option<Vec<u64>>)>,
    /// When the quiet majority was last probed for a stable leader before its bound ran out.
    probed_ms: u64,
    /// The current step's topology (kept to reuse its memory).
    topology: Vec<bool>,
    /// `Cluster::reconfigured_memo`'s memo.
    reconfigured: Option<(Vec<u64>, bool)>,
}

/// How often a quiet majority is probed for a stable leader while its bound runs: a leader seen
/// restarts the window, so a leader deposed by a node outside the majority just as the bound
/// runs out is not taken for a majority that never had one.
const QUIET_PROBE_MS: u64 = 100;

impl QuietWatch {
    fn step(&mut self, cluster: &Cluster, churning: bool) {
        let now = cluster.clock.now_ms();
        // NB(members): a quiet majority of all nodes says nothing of a changed configuration's
        // quorums; such a run is judged after healing only.
        let quiet = !(churning
            || cluster.net.conditions() != (0, cluster.config.latency)
            || cluster.reconfigured_memo(&mut self.reconfigured));
        if quiet {
            // A node recovering from a damaged log may not vote until it has caught up
            // (`raft::raw_node::recovering`): it cannot help elect a leader, so a quiet majority
            // is one of nodes that run and can vote.
            // Nor can a node whose disk syncs nothing (stalled or full): a vote or an entry
            // counts only once durable.
            let now = cluster.clock.now_ms();
            // The topology in a buffer kept from step to step: which nodes run (its first
            // `size` values), then which links are cut.
            let topology = &mut self.topology;
            topology.clear();
            {
                let s = cluster.shared();
                topology.extend((s.states.iter().zip(&s.damaged).enumerate()).map(
                    |(slot, (&state, &damaged))| {
                        state == NodeState::Up
                            && !damaged
                            && !cluster
                                .disk_faults_of(NodeId(slot as u64 + 1))
                                .unusable(now)
                    },
                ));
            }
            let nodes = topology.len();
            cluster.net.cut_links(topology);
            if self.memo.as_ref().is_none_or(|(seen, _)| seen != topology) {
                let cut = |a: u64, b: u64| cluster.net.is_blocked(NodeId(a), NodeId(b));
                let majority = quiet_majority(&Links {
                    n: cluster.size(),
                    running: &topology[..nodes],
                    cut: &cut,
                });
                self.memo = Some((topology.clone(), majority));
            }
        }
        // The quiet majority, borrowed from the memo (copied only when the window restarts).
        let majority = quiet
            .then(|| {
                self.memo
                    .as_ref()
                    .and_then(|(_, majority)| majority.as_ref())
            })
            .flatten();
        let Some(set) = majority else {
            self.since = None;
            return;
        };
        // A leadership transfer the nemesis asked for is a planned leader change, as churn is:
        // the quiet window starts again after it.
        let transfer_ms = cluster.shared().handovers.last_asked_us / 1000;
        match &self.since {
            Some((held, since)) if held == set && *since >= transfer_ms => {}
            _ => self.since = Some((set.clone(), now)),
        }
        let (set, since) = self.since.as_ref().expect("set above");
        if now < since + cluster.config.leader_bound_ms {
            if now >= self.probed_ms + QUIET_PROBE_MS {
                self.probed_ms = now;
                if nemesis::stable_leader(cluster).is_some_and(|l| set.contains(&l.0)) {
                    self.since = Some((set.clone(), now));
                }
            }
            return;
        }
        if nemesis::stable_leader(cluster).is_some_and(|l| set.contains(&l.0)) {
            self.since = Some((set.clone(), now));
            return;
        }
        let detail = format!(
            "nodes {set:?} were running, linked both ways and undisturbed for {} ms with no stable leader among them",
            now - since
        );
        fail_liveness(
            cluster,
            "liveness: a leader once a majority is connected",
            detail,
        );
    }
}

/// Heals everything; a stable leader must appear within the bound, and then a command from
/// every client must commit within it. Returns how long the leader took.
async fn liveness_phase(cluster: &Cluster) -> Option<u64> {
    if cluster.shared().violation.is_some() {
        return None;
    }
    nemesis::heal_all(cluster);
    let healed_ms = cluster.clock.now_ms();
    let deadline_ms = healed_ms + cluster.config.liveness_ms;
    let mut leader_ms = None;
    while cluster.clock.now_ms() < deadline_ms {
        if nemesis::stable_leader(cluster).is_some() {
            leader_ms = Some(cluster.clock.now_ms() - healed_ms);
            break;
        }
        cluster.clock.sleep_ms(cluster.config.tick_ms).await;
    }
    let Some(leader_ms) = leader_ms else {
        let detail = format!(
            "no stable leader {} ms after healing",
            cluster.config.liveness_ms
        );
        fail_liveness(cluster, "liveness: a leader after healing", detail);
        return None;
    };
    for client in 0..cluster.config.clients.max(1) {
        for kind in [OpKind::Set, OpKind::QuorumGet, OpKind::Lock] {
            if !workload::settle_one(cluster, client, kind, deadline_ms).await {
                let detail = format!(
                    "client {client}: {kind:?} not answered within the bound after healing"
                );
                fail_liveness(
                    cluster,
                    "liveness: every operation answered after healing",
                    detail,
                );
                return Some(leader_ms);
            }
        }
    }
    // Availability comes back with the disk (issue 16): a running node recovering from a
    // damaged log catches up from the leader and may vote again within the bound. In the
    // leader's term it needs the commit index past what its lost records may have held, so
    // clients keep writing meanwhile (an idle cluster leaves it out of votes until new entries
    // or a new term come; see `raft::raw_node::recovering`).
    let damaged_up = |cluster: &Cluster| -> Vec<usize> {
        let s = cluster.shared();
        (s.states.iter().zip(&s.damaged))
            .enumerate()
            .filter(|(_, (state, damaged))| **state == NodeState::Up && **damaged)
            .map(|(slot, _)| slot + 1)
            .collect()
    };
    while cluster.clock.now_ms() < deadline_ms && !damaged_up(cluster).is_empty() {
        workload::settle_one(cluster, 0, OpKind::Set, deadline_ms).await;
        cluster.clock.sleep_ms(cluster.config.tick_ms).await;
    }
    let still = damaged_up(cluster);
    if !still.is_empty() {
        let statuses: Vec<String> = {
            let s = cluster.shared();
            still
                .iter()
                .filter_map(|&n| s.statuses[n - 1].as_ref())
                .map(|st| {
                    format!(
                        "n{} term {} leader {:?} commit {} last {}",
                        st.id.0,
                        st.term.0,
                        st.leader.map(|l| l.0),
                        st.commit.0,
                        st.last_index.0
                    )
                })
                .collect()
        };
        let detail = format!(
            "nodes {still:?} still recovering from a damaged log {} ms after healing ({})",
            cluster.config.liveness_ms,
            statuses.join("; ")
        );
        fail_liveness(
            cluster,
            "liveness: a damaged node catches up after healing",
            detail,
        );
    }
    Some(leader_ms)
}

/// The configuration of the node that committed most, as text.
fn final_membership(shared: &crate::cluster::Shared) -> Option<String> {
    let best = (shared.statuses.iter().enumerate())
        .filter_map(|(slot, s)| s.map(|s| (s.commit, slot)))
        .max()?;
    shared.memberships[best.1].as_ref().map(|m| m.to_string())
}

/// The history checkers, once the run is over: index rules, watches, locks. Returns the
/// resolved history it judged (`resolved_ops`), if it got that far, for the report.
fn check_history(cluster: &Cluster) -> Option<Vec<check::history::Op>> {
    if cluster.shared().violation.is_some() {
        return None;
    }
    let (ops, events) = {
        let shared = cluster.shared();
        (shared.history.checker_ops(), shared.events.clone())
    };
    let resolved = resolved_ops(&cluster.shared());
    let verdict = check::index::check_index(&ops)
        .and_then(|()| check::watch::check_watches(&ops, &events))
        .and_then(|()| check::locks::check_locks(&ops))
        .and_then(|()| check::listing::check_listings(&ops))
        .and_then(|()| linearizable(&resolved));
    if let Err(v) = verdict {
        let op = v.op.and_then(|id| ops.get(id as usize));
        let (node, at_ms) = op.map_or((0, cluster.clock.now_ms()), |op| {
            (op.node, op.complete_us / 1000)
        });
        let mut shared = cluster.shared();
        let term = shared.safety.max_term();
        let violation = Violation::new(
            v.rule,
            check::raft::NodeId(node),
            term,
            check::raft::Index(0),
            v.to_string(),
        );
        shared.bad_op = v.op;
        shared.record(Err(violation), at_ms);
    }
    Some(resolved)
}

/// The history with every timed-out write resolved from the log, which the simulator can see
/// and a client cannot: a write whose command was applied took effect by the time it was
/// first applied, with the answer a correct replica gives; one never applied by the end of
/// the run never happened. Without this, each unanswered write may linearize anywhere after
/// its invocation, and a few dozen of them on one key make the search exponential. Histories
/// from real clusters keep `Ret::Unknown` (and `history.jsonl` keeps it too).
pub fn resolved_ops(shared: &Shared) -> Vec<check::history::Op> {
    use check::history::Ret;
    // Only commands that occur once in the history and at most once in the log can be matched
    // (a delete's bytes repeat; those stay unknown).
    let mut in_history: std::collections::BTreeMap<u64, usize> = std::collections::BTreeMap::new();
    for hash in shared.history.ops.iter().filter_map(|r| r.data_hash) {
        *in_history.entry(hash).or_default() += 1;
    }
    let mut by_hash: std::collections::BTreeMap<u64, Option<usize>> =
        std::collections::BTreeMap::new();
    for i in 1..=shared.reference_outputs.len() as u64 {
        if let Some((_, hash)) = shared.safety.applied_at(check::raft::Index(i)) {
            by_hash
                .entry(hash)
                .and_modify(|seen| *seen = None)
                .or_insert(Some(i as usize));
        }
    }
    let resolve = |record: &workload::OpRecord| {
        let mut op = record.op.clone();
        if op.ret != Ret::Unknown || !op.call.is_write() {
            return op;
        }
        let Some(hash) = record.data_hash.filter(|h| in_history.get(h) == Some(&1)) else {
            return op;
        };
        let applied = match by_hash.get(&hash) {
            Some(None) => return op,
            Some(Some(index)) => Some(index),
            None => None,
        };
        let Some(&index) = applied else {
            op.ret = Ret::Fail;
            return op;
        };
        let output = &shared.reference_outputs[index - 1];
        op.complete_us = output.at_us.max(op.invoke_us);
        op.ret = match &output.answer {
            Ok(Some(e)) => Ret::Ok {
                index: e.index,
                action: e.action.as_str().into(),
                key: e.key.clone(),
                value: e.value.clone(),
                modified_index: e.modified_index,
            },
            Ok(None) => Ret::Fail,
            Err(code) => Ret::Err { code: *code },
        };
        op
    };
    shared.history.ops.iter().map(resolve).collect()
}

/// Search steps per partition before the linearizability checker answers "unknown".
pub const LINEARIZABILITY_STEPS_MAX: u64 = check::linearizability::STEPS_MAX;

/// The linearizability checker over the history; "unknown" (out of budget) fails the run too:
/// it is never counted as a pass.
fn linearizable(ops: &[check::history::Op]) -> Result<(), check::HistoryViolation> {
    use check::linearizability::{Budget, Verdict, check};
    let report = check(ops, Budget::steps(LINEARIZABILITY_STEPS_MAX));
    let Some(p) = report
        .partitions
        .iter()
        .find(|p| p.verdict != Verdict::Linearizable)
    else {
        return Ok(());
    };
    let rule = match p.verdict {
        Verdict::NotLinearizable => "linearizability",
        _ => "linearizability decided within the checker's budget",
    };
    Err(check::HistoryViolation {
        rule,
        op: p.first_bad,
        detail: format!(
            "key {}: {} ({} operations; longest linearizable prefix {} operations)",
            p.partition,
            p.verdict,
            p.ops,
            p.longest_prefix.len()
        ),
    })
}

fn fail_liveness(cluster: &Cluster, rule: &'static str, detail: String) {
    let now = cluster.clock.now_ms();
    let term = cluster.shared().safety.max_term();
    let v = Violation::new(
        rule,
        check::raft::NodeId(0),
        term,
        check::raft::Index(0),
        detail,
    );
    cluster.shared().record(Err(v), now);
}

/// The run's report; `resolved` is `resolved_ops` if the history checkers computed it already
/// (nothing changes the history or the log after they run).
fn report(
    cluster: &Cluster,
    clients: ClientStats,
    liveness_leader_ms: Option<u64>,
    resolved: Option<Vec<check::history::Op>>,
) -> RunReport {
    let simulated_ms = cluster.clock.now_ms();
    let net = cluster.net.stats();
    let net_hash = cluster.net.trace_hash();
    let shared = cluster.shared();
    let mut hash = Fnv::new();
    hash.write_all(&[
        net_hash,
        shared.trace.finish(),
        shared.safety.trace_hash(),
        simulated_ms,
    ]);
    RunReport {
        seed: cluster.config.seed,
        ok: shared.violation.is_none(),
        violation: shared.violation.clone(),
        trace_hash: format!("{:016x}", hash.finish()),
        simulated_ms,
        elections: shared.safety.elections(),
        max_term: shared.safety.max_term().0,
        commands_committed: clients.writes_committed,
        ops: shared.history.stats(),
        history: shared.history.clone(),
        bad_op: shared.bad_op,
        checked_ops: resolved.unwrap_or_else(|| resolved_ops(&shared)),
        world_events: shared.world_events.clone(),
        fault_steps: Vec::new(),
        request_shapes: shared.history.shapes(),
        http_requests: shared.http_requests,
        partial_leader_ms: None,
        partial_led_per_mille: None,
        leaderless_ms: 0,
        roles: shared.roles.clone(),
        faults_injected: shared.faults_injected,
        faults_by_kind: shared.faults_by_kind.clone(),
        reconfigurations: shared.reconfigurations,
        member_requests: shared.member_requests.clone(),
        final_membership: final_membership(&shared),
        snapshots_installed: shared.snapshots_installed,
        clients,
        net,
        liveness_leader_ms,
        handovers: shared.handovers.clone(),
        write_latency: crate::latency::write_latency(&shared.history, &shared.roles),
        config: cluster.config.clone(),
    }
}
