//! InstallSnapshot (Raft §7, Figure 13): sending a snapshot to a follower that needs compacted
//! entries, and receiving one from the leader.

use super::RawNode;
use crate::raft::types::{MessageKind, NodeId, Snapshot};

impl RawNode {
    /// InstallSnapshot receiver (Raft §7, Figure 13): a snapshot beyond what this node has
    /// committed replaces its log up to the snapshot's index (a matching suffix is kept) and,
    /// through the next `Ready`, its state machine. The answer acknowledges the commit index,
    /// which is the snapshot's index once it is taken.
    pub(super) fn handle_snapshot(&mut self, leader: NodeId, snapshot: Snapshot) {
        self.follow(leader);
        if snapshot.index > self.log.commit() {
            self.log.restore(snapshot.index, snapshot.term);
            self.snapshot = Some(snapshot.clone());
            self.pending_snapshot = Some(snapshot);
        }
        self.acknowledge(leader, self.log.commit(), 0);
    }

    /// InstallSnapshot (Raft §7): the follower needs entries this log compacted.
    pub(super) fn send_snapshot(&mut self, peer: NodeId) {
        let snapshot = self
            .snapshot
            .clone()
            .expect("a log compacted above 0 holds a snapshot");
        // Wait about two election timeouts for the answer before probing (and sending) again.
        let heartbeats =
            2 * self.config.election_timeout_max_ticks / self.config.heartbeat_interval_ticks + 1;
        self.progress_mut(peer)
            .snapshot_sent(snapshot.index, heartbeats);
        self.send(peer, MessageKind::Snapshot { snapshot });
    }
}
