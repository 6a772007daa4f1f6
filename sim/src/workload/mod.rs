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
    let code = match outcome {
        Outcome::Committed => 1,
        Outcome::Failed(_) => 2,
        Outcome::TimedOut => 3,
    };
    shared
        .trace
        .write_all(&[now, 10 + code, client as u64, seq]);
    outcome
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
        let (gap, random_target) = {
            let mut rng = cluster.rng();
            let gap = rng.gen_range(0..=2 * mean_gap_ms);
            (gap, NodeId(rng.gen_range(1..=cluster.size() as u64)))
        };
        next_start_ms += gap;
        let now = cluster.clock.now_ms();
        if next_start_ms > now {
            cluster.clock.sleep_ms(next_start_ms - now).await;
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
        seq += 1;
        stats.proposed += 1;
        let target = hint.take().unwrap_or(random_target);
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
