//! Simulated clients of the etcd v2 store: random operations on a small key space (so they
//! collide) against random nodes, following leader hints, each with a timeout. Every operation
//! is recorded in the history, and the cheap client-side checks run as answers arrive.

mod history;
pub(crate) mod http;
mod ops;

pub use history::{History, KindStats, OpOutcome, OpRecord};
pub use ops::{KEYS, OpKind};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use engine::raft::NodeId;
use rand::Rng;
use serde::Serialize;

use crate::cluster::Cluster;

/// Totals over every client.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct ClientStats {
    /// Operations started.
    pub started: u64,
    /// Writes acknowledged (the store applied them, successfully or with a store error).
    pub writes_committed: u64,
    /// Operations answered by the store or the cluster with an error.
    pub failed: u64,
    /// Operations with no answer before the client's timeout.
    pub timed_out: u64,
}

impl ClientStats {
    /// Adds another client's counters.
    pub fn add(&mut self, o: &ClientStats) {
        self.started += o.started;
        self.writes_committed += o.writes_committed;
        self.failed += o.failed;
        self.timed_out += o.timed_out;
    }
}

/// One client's memory between operations.
#[derive(Debug, Default)]
struct ClientState {
    /// Node to try next, from a leader hint.
    hint: Option<NodeId>,
    /// The last value this client saw for each key, for compare-and-swap.
    seen: std::collections::BTreeMap<&'static str, String>,
    /// The last `modifiedIndex` this client saw for each key, for compares by index.
    seen_index: std::collections::BTreeMap<&'static str, u64>,
    /// The highest store index this client saw on a linearizable operation.
    store_index: u64,
    seq: u64,
}

/// One client: operations on a schedule (open loop, at its share of the configured rate)
/// until `stop` is set.
pub async fn client_loop(
    cluster: Arc<Cluster>,
    client: usize,
    stop: Arc<AtomicBool>,
) -> ClientStats {
    let mut stats = ClientStats::default();
    let mut state = ClientState::default();
    let per_client = (cluster.config.ops_per_s / cluster.config.clients as u64).max(1);
    let mean_gap_ms = 1000 / per_client;
    let mut next_start_ms = cluster.clock.now_ms();
    while !stop.load(Ordering::Relaxed) {
        let (gap, random_target, kind, key) = {
            let mut rng = cluster.rng();
            let gap = rng.gen_range(0..=2 * mean_gap_ms);
            let target = NodeId(rng.gen_range(1..=cluster.size() as u64));
            let kind = OpKind::draw(
                &mut *rng,
                cluster.config.reads_percent,
                cluster.config.watch_percent,
            );
            (gap, target, kind, KEYS[rng.gen_range(0..KEYS.len())])
        };
        next_start_ms += gap;
        let now = cluster.clock.now_ms();
        if next_start_ms > now {
            cluster.clock.sleep_ms(next_start_ms - now).await;
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let target = state.hint.take().unwrap_or(random_target);
        state.seq += 1;
        stats.started += 1;
        let outcome = ops::run_op(&cluster, client, &mut state, kind, key, target).await;
        match outcome {
            OpOutcome::Ok { .. } | OpOutcome::StoreError { .. } if kind.is_write() => {
                stats.writes_committed += 1;
            }
            OpOutcome::Ok { .. } => {}
            OpOutcome::StoreError { .. } | OpOutcome::Unavailable { .. } => stats.failed += 1,
            OpOutcome::TimedOut => stats.timed_out += 1,
        }
        if let OpOutcome::Unavailable { leader } = outcome {
            state.hint = leader;
        } else if !matches!(outcome, OpOutcome::TimedOut) {
            state.hint = Some(target);
        }
    }
    stats
}

/// Runs `kind` until it is answered or `deadline_ms` passes; true if answered: a write
/// committed, a quorum read answered (a value or "key not found"), a lock acquired and
/// released. The liveness phase uses it: after healing, every client's operations must be
/// answered, and the lock must be handed on (an expired or released holder never blocks it).
/// The reader of the aimed fault `restart-after-read`: once the restarted `target` knows a
/// leader again, one quorum read there, as client `client` (a client of its own, judged like
/// any other), so that a ReadIndex answer meant for the node's previous life finds a read of
/// the new one waiting.
pub async fn read_after_restart(
    cluster: Arc<Cluster>,
    client: usize,
    target: NodeId,
    deadline_ms: u64,
) {
    let slot = target.0 as usize - 1;
    loop {
        if cluster.clock.now_ms() >= deadline_ms || cluster.shared().violation.is_some() {
            return;
        }
        let status = cluster.shared().statuses[slot];
        if status.is_some_and(|s| s.leader.is_some_and(|l| l != target)) {
            break;
        }
        cluster.clock.sleep_ms(1).await;
    }
    let key = KEYS[cluster.rng().gen_range(0..KEYS.len())];
    let mut state = ClientState::default();
    let _ = ops::run_op(&cluster, client, &mut state, OpKind::QuorumGet, key, target).await;
}

pub async fn settle_one(cluster: &Cluster, client: usize, kind: OpKind, deadline_ms: u64) -> bool {
    let mut state = ClientState {
        seq: 1_000_000_000,
        ..ClientState::default()
    };
    while cluster.clock.now_ms() < deadline_ms && cluster.shared().violation.is_none() {
        state.seq += 1;
        let target = state
            .hint
            .take()
            .or_else(|| cluster.leader())
            .unwrap_or(NodeId(1));
        match ops::run_op(cluster, client, &mut state, kind, KEYS[0], target).await {
            OpOutcome::Ok { .. } => return true,
            OpOutcome::StoreError { .. } if kind == OpKind::QuorumGet => return true,
            OpOutcome::Unavailable { leader } => {
                state.hint = leader;
                cluster.clock.sleep_ms(10).await;
            }
            OpOutcome::StoreError { .. } => {}
            // A stopped node answers at once: pause, or this loop spins in zero simulated time.
            OpOutcome::TimedOut => cluster.clock.sleep_ms(10).await,
        }
    }
    false
}
