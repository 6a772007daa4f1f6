//! One simulated run: build the world from the config, a safety phase with faults, then a
//! liveness phase in which every fault heals and the cluster must converge.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use madsim::runtime::Runtime;
use rand::Rng;
use serde::Serialize;

use crate::check::Violation;
use crate::cluster::Cluster;
use crate::nemesis::{self, FaultKind};
use crate::options::SimConfig;
use crate::trace::Fnv;
use crate::workload::{self, ClientStats};
use crate::world::NetStats;
use engine::raft::{Index, NodeId};

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
    /// Client counters.
    pub clients: ClientStats,
    /// Client operations by kind: answered, failed, timed out.
    pub ops: std::collections::BTreeMap<crate::workload::OpKind, crate::workload::KindStats>,
    /// Network counters.
    pub net: NetStats,
    /// Time from healing to a stable leader, if one came.
    pub liveness_leader_ms: Option<u64>,
    /// The run's configuration.
    pub config: SimConfig,
    /// Every client operation (not in the JSON line: it is long).
    #[serde(skip)]
    pub history: crate::workload::History,
}

/// Runs one seed on a fresh thread (a std `HashMap` made on a thread before its runtime breaks
/// determinism: madsim.md, pitfall 6). A panic inside the simulation comes back as its message.
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
    safety_phase(&cluster).await;
    stop.store(true, Ordering::Relaxed);
    let liveness_leader_ms = liveness_phase(&cluster).await;
    let mut stats = ClientStats::default();
    for handle in clients {
        let s = handle.await.expect("client tasks are not cancelled");
        stats.add(&s);
    }
    let report = report(&cluster, stats, liveness_leader_ms);
    cluster.shutdown();
    report
}

/// Faults at random intervals until the safety phase ends (or a rule breaks).
async fn safety_phase(cluster: &Cluster) {
    let config = &cluster.config;
    let end_ms = config.duration_ms;
    let total: u32 = config.faults.iter().map(|&(_, w)| w).sum();
    let mut next_fault_ms = config.fault_interval_ms.0;
    let mut churn = nemesis::Churn::default();
    while cluster.clock.now_ms() < end_ms && cluster.shared().violation.is_none() {
        let step_ms = config
            .tick_ms
            .min(end_ms.saturating_sub(cluster.clock.now_ms()))
            .max(1);
        cluster.clock.sleep_ms(step_ms).await;
        churn.step(cluster);
        let now = cluster.clock.now_ms();
        if total == 0 || now < next_fault_ms {
            continue;
        }
        let (kind, heal, gap) = {
            let mut rng = cluster.rng();
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
        };
        next_fault_ms = now + gap;
        if heal {
            cluster.net.heal();
            cluster.net.set_loss(0, 0);
            cluster.net.set_latency(config.latency);
        } else if kind == Some(FaultKind::LeaderChurn) {
            let for_ms = cluster.rng().gen_range(500..=5000);
            churn.start(now, for_ms);
        } else if let Some(kind) = kind {
            nemesis::inject(cluster, kind);
        }
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
        if !workload::commit_one(cluster, client, deadline_ms).await {
            let detail = format!(
                "client {client} could not commit a command within the bound after healing"
            );
            fail_liveness(cluster, "liveness: commands commit after healing", detail);
            return Some(leader_ms);
        }
    }
    Some(leader_ms)
}

fn fail_liveness(cluster: &Cluster, rule: &'static str, detail: String) {
    let now = cluster.clock.now_ms();
    let term = cluster.shared().safety.max_term();
    let v = Violation::new(rule, NodeId(0), term, Index(0), detail);
    cluster.shared().record(Err(v), now);
}

fn report(cluster: &Cluster, clients: ClientStats, liveness_leader_ms: Option<u64>) -> RunReport {
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
        faults_injected: shared.faults_injected,
        clients,
        net,
        liveness_leader_ms,
        config: cluster.config.clone(),
    }
}
