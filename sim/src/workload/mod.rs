//! Simulated clients: they propose unique commands to random nodes (following leader hints),
//! wait for them to be applied, and give up after a timeout.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use engine::raft::NodeId;
use engine::server::{Applied, ClientError};
use rand::Rng;
use serde::Serialize;

use crate::check::Violation;
use crate::cluster::Cluster;
use crate::trace::hash_bytes;

/// What the clients saw.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct ClientStats {
    /// Commands proposed.
    pub proposed: u64,
    /// Commands applied and acknowledged.
    pub committed: u64,
    /// Commands answered with an error (not leader, busy, overwritten, node down).
    pub failed: u64,
    /// Commands with no answer before the client's timeout.
    pub timed_out: u64,
    /// Linearizable reads asked.
    pub reads: u64,
    /// Linearizable reads answered.
    pub reads_ok: u64,
    /// Linearizable reads refused (not leader, busy, node down, term changed).
    pub reads_failed: u64,
    /// Linearizable reads with no answer in time.
    pub reads_timed_out: u64,
}

impl ClientStats {
    /// Adds another client's counters.
    pub fn add(&mut self, o: &ClientStats) {
        self.proposed += o.proposed;
        self.committed += o.committed;
        self.failed += o.failed;
        self.timed_out += o.timed_out;
        self.reads += o.reads;
        self.reads_ok += o.reads_ok;
        self.reads_failed += o.reads_failed;
        self.reads_timed_out += o.reads_timed_out;
    }
}

/// The outcome of one command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Applied at this index and term.
    Committed,
    /// Refused; maybe with a leader to try.
    Failed(Option<NodeId>),
    /// No answer in time: it may or may not have happened.
    TimedOut,
}

/// Sends one command to `target` and waits for the answer or the timeout. An acknowledged
/// command must be the one applied at its index: that is checked here, against what the
/// nodes applied.
pub async fn propose_once(cluster: &Cluster, client: usize, seq: u64, target: NodeId) -> Outcome {
    let handle = cluster.shared().clients[target.0 as usize - 1].clone();
    let Some(handle) = handle else {
        return Outcome::Failed(None);
    };
    let data = format!("c{client}-{seq}").into_bytes();
    let hash = hash_bytes(&data);
    let timeout = Duration::from_millis(cluster.config.client_timeout_ms);
    let answer = madsim::time::timeout(timeout, handle.propose(data)).await;
    let now = cluster.clock.now_ms();
    let mut shared = cluster.shared();
    let outcome = match answer {
        Ok(Ok(Applied { index, term, .. })) => {
            shared.acked_index_max = shared.acked_index_max.max(index);
            if shared.safety.applied_at(index) != Some((term, hash)) {
                let detail = format!(
                    "client {client} command {seq} acknowledged at {index} but not applied there"
                );
                let v = Violation::new(
                    "acknowledged commands are applied",
                    target,
                    term,
                    index,
                    detail,
                );
                shared.record(Err(v), now);
            }
            Outcome::Committed
        }
        Ok(Err(ClientError::NotLeader { leader })) => Outcome::Failed(leader),
        Ok(Err(_)) => Outcome::Failed(None),
        Err(_) => Outcome::TimedOut,
    };
    let code = 10 + outcome_code(outcome);
    shared.trace.write_all(&[now, code, client as u64, seq]);
    outcome
}

/// One linearizable read at `target`: it must see every command acknowledged before it began
/// (its node had applied at least the highest acknowledged index when it answered).
pub async fn read_once(cluster: &Cluster, client: usize, target: NodeId) -> Outcome {
    let (handle, acked_before) = {
        let shared = cluster.shared();
        (
            shared.clients[target.0 as usize - 1].clone(),
            shared.acked_index_max,
        )
    };
    let Some(handle) = handle else {
        return Outcome::Failed(None);
    };
    let timeout = Duration::from_millis(cluster.config.client_timeout_ms);
    let answer = madsim::time::timeout(timeout, handle.read((), true)).await;
    let now = cluster.clock.now_ms();
    let mut shared = cluster.shared();
    let outcome = match answer {
        Ok(Ok(read)) => {
            if read.applied < acked_before {
                let detail = format!(
                    "client {client} read at applied index {} after index {acked_before} was acknowledged",
                    read.applied
                );
                let term = shared.safety.max_term();
                let rule = "linearizable reads see acknowledged writes";
                shared.record(
                    Err(Violation::new(rule, target, term, read.applied, detail)),
                    now,
                );
            }
            Outcome::Committed
        }
        Ok(Err(ClientError::NotLeader { leader })) => Outcome::Failed(leader),
        Ok(Err(_)) => Outcome::Failed(None),
        Err(_) => Outcome::TimedOut,
    };
    let code = 20 + outcome_code(outcome);
    shared.trace.write_all(&[now, code, client as u64]);
    outcome
}

fn outcome_code(outcome: Outcome) -> u64 {
    match outcome {
        Outcome::Committed => 1,
        Outcome::Failed(_) => 2,
        Outcome::TimedOut => 3,
    }
}

/// One client: proposes commands at its share of the target rate until `stop` is set.
pub async fn client_loop(
    cluster: Arc<Cluster>,
    client: usize,
    stop: Arc<AtomicBool>,
) -> ClientStats {
    let mut stats = ClientStats::default();
    let mut hint: Option<NodeId> = None;
    let per_client = (cluster.config.ops_per_s / cluster.config.clients as u64).max(1);
    let mean_gap_ms = 1000 / per_client;
    let mut seq = 0;
    // Commands start on a schedule (one every `mean_gap_ms` on average), not after the previous
    // answer, so the offered load is the configured rate whatever the latency.
    let mut next_start_ms = cluster.clock.now_ms();
    while !stop.load(Ordering::Relaxed) {
        let (gap, random_target, read) = {
            let mut rng = cluster.rng();
            let gap = rng.gen_range(0..=2 * mean_gap_ms);
            let read = rng.gen_range(0..100) < cluster.config.reads_percent;
            (gap, NodeId(rng.gen_range(1..=cluster.size() as u64)), read)
        };
        next_start_ms += gap;
        let now = cluster.clock.now_ms();
        if next_start_ms > now {
            cluster.clock.sleep_ms(next_start_ms - now).await;
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let target = hint.take().unwrap_or(random_target);
        if read {
            stats.reads += 1;
            match read_once(&cluster, client, target).await {
                Outcome::Committed => stats.reads_ok += 1,
                Outcome::Failed(leader) => {
                    stats.reads_failed += 1;
                    hint = leader;
                }
                Outcome::TimedOut => stats.reads_timed_out += 1,
            }
            continue;
        }
        seq += 1;
        stats.proposed += 1;
        match propose_once(&cluster, client, seq, target).await {
            Outcome::Committed => {
                stats.committed += 1;
                hint = Some(target);
            }
            Outcome::Failed(leader) => {
                stats.failed += 1;
                hint = leader;
            }
            Outcome::TimedOut => stats.timed_out += 1,
        }
    }
    stats
}

/// Proposes until one command commits or `deadline_ms` passes; true if one committed.
pub async fn commit_one(cluster: &Cluster, client: usize, deadline_ms: u64) -> bool {
    let mut hint = None;
    let mut seq = 1_000_000_000;
    while cluster.clock.now_ms() < deadline_ms {
        seq += 1;
        let target = hint
            .take()
            .or_else(|| cluster.leader())
            .unwrap_or(NodeId(1));
        match propose_once(cluster, client, seq, target).await {
            Outcome::Committed => return true,
            Outcome::Failed(leader) => {
                hint = leader;
                cluster.clock.sleep_ms(10).await;
            }
            Outcome::TimedOut => {}
        }
    }
    false
}
