//! Crashes aimed at the node loop's riskiest moments (`engine::server::CrashPoint`): while a log
//! write waits for its sync, between a follower's persist and its answer, and right after a
//! leader commits. A random crash rarely lands in these windows (each lasts a sync's time or
//! less); an aimed one lands in them every time.
//!
//! Injecting such a fault arms its moment for `WINDOW_MS`; the first node to reach it stops
//! there (`Observer::crash_here`), the supervisor crashes it at its next step (1 ms while
//! anything is armed) and restarts it a little later.

use engine::raft::NodeId;
use rand::Rng;

use crate::cluster::{Cluster, NodeState};
use crate::nemesis::FaultKind;

/// How long an aimed crash waits for a node to reach its moment.
pub const WINDOW_MS: u64 = 3_000;

/// The aimed crashes of a run, advanced by the supervisor every step.
#[derive(Default)]
pub struct AimedCrashes {
    /// Crashed nodes and when to restart them.
    restarts: Vec<(NodeId, u64)>,
}

impl AimedCrashes {
    /// Arms the moment of `kind` (an aimed crash kind) for the next `WINDOW_MS`.
    pub fn arm(cluster: &Cluster, kind: FaultKind, now_ms: u64) {
        let point = kind.crash_point().expect("an aimed crash kind");
        cluster
            .shared()
            .aimed_points
            .push((point, now_ms + WINDOW_MS));
    }

    /// True while a moment is armed or a node is halted: the supervisor should look every
    /// millisecond, so a halted node is killed at once.
    pub fn aiming(cluster: &Cluster, now_ms: u64) -> bool {
        let s = cluster.shared();
        !s.halted.is_empty() || s.aimed_points.iter().any(|&(_, until)| now_ms < until)
    }

    /// True while an aimed crash's node is down and waits for its restart (the majority is
    /// disturbed, as by leader churn).
    pub fn disturbing(&self) -> bool {
        !self.restarts.is_empty()
    }

    /// Crashes the nodes that stopped at an aimed moment; restarts those whose time came.
    pub fn step(&mut self, cluster: &Cluster, now_ms: u64) {
        let halted = std::mem::take(&mut cluster.shared().halted);
        for (id, point) in halted {
            if cluster.state(id) == NodeState::Paused {
                // Frozen meanwhile by a pause: crash it once it is resumed (it stays stopped
                // at its moment until then).
                cluster.shared().halted.push((id, point));
                continue;
            }
            let kind = FaultKind::ALL
                .into_iter()
                .find(|k| k.crash_point() == Some(point))
                .expect("every crash point has its fault kind");
            cluster.note_event(kind.name(), vec![id.0]);
            if cluster.state(id) == NodeState::Up {
                cluster.crash(id);
                let after_ms = cluster.rng().gen_range(50..=1_000);
                self.restarts.push((id, now_ms + after_ms));
            }
        }
        self.restarts.retain(|&(id, at_ms)| {
            if now_ms < at_ms {
                return true;
            }
            if cluster.state(id) == NodeState::Down {
                cluster.restart(id);
            }
            false
        });
    }

    /// The safety phase is over: nothing more is armed, and the nodes that stopped at a moment
    /// are crashed (the liveness phase restarts every node that is down).
    pub fn finish(&mut self, cluster: &Cluster, now_ms: u64) {
        cluster.shared().aimed_points.clear();
        self.step(cluster, now_ms);
        self.restarts.clear();
    }
}
