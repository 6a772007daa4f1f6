//! What an operator chooses for a node, and the one function that turns it into the node loop's
//! configuration. `floe` fills it from its flags; the simulator runs its `Default` (which is
//! `floe`'s defaults) in most seeds and varies it in a few, so both build their `NodeConfig`
//! the same way.

use serde::Serialize;

use super::node::NodeConfig;
use crate::raft::{Config, NodeId};

/// A node's settings as plain data. `Default` is exactly what `floe` runs with no flags.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeSettings {
    /// One Raft tick, ms (`floe`: `--heartbeat-interval`, 100).
    pub tick_ms: u64,
    /// Heartbeat interval, ticks (`floe`: 1).
    pub heartbeat_ticks: u64,
    /// Election timeouts are drawn from `[election_ticks, election_max_ticks)` ticks (`floe`:
    /// `--election-timeout` over the heartbeat, and twice that).
    pub election_ticks: u64,
    /// See `election_ticks`.
    pub election_max_ticks: u64,
    /// Raft PreVote (`--pre-vote`, true).
    pub pre_vote: bool,
    /// Raft CheckQuorum (`--check-quorum`, true).
    pub check_quorum: bool,
    /// A refused RequestVote of a higher term restarts the election timer, as etcd-io/raft
    /// does (`raft::Config::refused_vote_resets_timer`): false; true only for research.
    pub refused_vote_resets_timer: bool,
    /// Most client requests taken into one `Ready` (group commit): 256.
    pub requests_per_ready: usize,
    /// Leaders send before they sync their own log (Raft thesis §10.2.1): true.
    pub leader_sends_before_sync: bool,
    /// Commit-only hard states are not synced (as etcd's WAL): true.
    pub lazy_commit_sync: bool,
    /// The loop learns commitment from peer messages while its log sync is pending: true.
    pub listen_while_syncing: bool,
    /// Snapshot every this many applied entries, 0 never (`--snapshot-count`, 100,000 as etcd).
    pub snapshot_entries: u64,
    /// Entries kept below a snapshot (`floe`: half the snapshot count).
    pub snapshot_keep_entries: u64,
    /// Most entries per AppendEntries.
    pub msg_entries_max: usize,
    /// Most command bytes per AppendEntries.
    pub msg_bytes_max: u64,
    /// The leader's budget of uncommitted command bytes.
    pub uncommitted_bytes_max: u64,
    /// Most unacknowledged command bytes in flight to one follower.
    pub inflight_bytes_max: u64,
    /// Most watches waiting at once on one node.
    pub watchers_max: usize,
    /// How long a linearizable read waits for its index (`floe`: 5 s + two election timeouts).
    pub read_timeout_ms: u64,
    /// How long a forwarded command waits to be applied here (`floe`: as reads).
    pub forward_timeout_ms: u64,
}

impl Default for NodeSettings {
    fn default() -> NodeSettings {
        NodeSettings::with_timing(100, 1000)
    }
}

impl NodeSettings {
    /// `floe`'s defaults with `--heartbeat-interval heartbeat_ms` and `--election-timeout
    /// election_ms`: one tick per heartbeat, election timeouts of `election_ms` to twice that,
    /// reads and forwarded commands given `5 s + 2 × election_ms`.
    pub fn with_timing(heartbeat_ms: u64, election_ms: u64) -> NodeSettings {
        let heartbeat_ms = heartbeat_ms.max(1);
        let election_ticks = election_ms / heartbeat_ms;
        let raft = Config::new(NodeId(1), Vec::new(), 0);
        NodeSettings {
            tick_ms: heartbeat_ms,
            heartbeat_ticks: 1,
            election_ticks,
            election_max_ticks: election_ticks * 2,
            pre_vote: true,
            check_quorum: true,
            refused_vote_resets_timer: false,
            requests_per_ready: 256,
            leader_sends_before_sync: true,
            lazy_commit_sync: true,
            listen_while_syncing: true,
            snapshot_entries: 100_000,
            snapshot_keep_entries: 50_000,
            msg_entries_max: raft.msg_entries_max,
            msg_bytes_max: raft.msg_bytes_max,
            uncommitted_bytes_max: raft.uncommitted_bytes_max,
            inflight_bytes_max: raft.inflight_bytes_max,
            watchers_max: 10_000,
            read_timeout_ms: 5_000 + 2 * election_ms,
            forward_timeout_ms: 5_000 + 2 * election_ms,
        }
    }

    /// Sets the snapshot cadence as `--snapshot-count` does: every `count` applied entries,
    /// keeping half as many in the log so a follower slightly behind catches up from it.
    pub fn set_snapshot_count(&mut self, count: u64) {
        self.snapshot_entries = count;
        self.snapshot_keep_entries = count / 2;
    }

    /// True when these are exactly `floe`'s defaults.
    pub fn is_default(&self) -> bool {
        *self == NodeSettings::default()
    }

    /// The node loop's configuration for member `id` of `peers`: `seed` seeds the Raft core's
    /// randomness (election timeouts), `boot_nonce` is where this life's read and proposal tags
    /// start (`NodeConfig::boot_nonce`: the wall clock in nanoseconds at start).
    pub fn node_config(
        &self,
        id: NodeId,
        peers: Vec<NodeId>,
        seed: u64,
        boot_nonce: u64,
    ) -> NodeConfig {
        let mut raft = Config::new(id, peers, seed);
        raft.heartbeat_interval_ticks = self.heartbeat_ticks;
        raft.election_timeout_ticks = self.election_ticks;
        raft.election_timeout_max_ticks = self.election_max_ticks;
        raft.pre_vote = self.pre_vote;
        raft.check_quorum = self.check_quorum;
        raft.refused_vote_resets_timer = self.refused_vote_resets_timer;
        raft.msg_entries_max = self.msg_entries_max;
        raft.msg_bytes_max = self.msg_bytes_max;
        raft.uncommitted_bytes_max = self.uncommitted_bytes_max;
        raft.inflight_bytes_max = self.inflight_bytes_max;
        let mut node = NodeConfig::new(raft, self.tick_ms);
        node.requests_per_ready = self.requests_per_ready;
        node.leader_sends_before_sync = self.leader_sends_before_sync;
        node.lazy_commit_sync = self.lazy_commit_sync;
        node.listen_while_syncing = self.listen_while_syncing;
        node.snapshot_entries = self.snapshot_entries;
        node.snapshot_keep_entries = self.snapshot_keep_entries;
        node.watchers_max = self.watchers_max;
        node.read_timeout_ms = self.read_timeout_ms;
        node.forward_timeout_ms = self.forward_timeout_ms;
        node.boot_nonce = boot_nonce;
        node
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_floes() {
        let s = NodeSettings::default();
        assert!(s.is_default());
        let c = s.node_config(NodeId(2), vec![NodeId(1), NodeId(2), NodeId(3)], 7, 9);
        assert_eq!(c.tick_ms, 100);
        assert_eq!(
            (
                c.raft.heartbeat_interval_ticks,
                c.raft.election_timeout_ticks
            ),
            (1, 10)
        );
        assert_eq!(c.raft.election_timeout_max_ticks, 20);
        assert!(c.raft.pre_vote && c.raft.check_quorum);
        assert!(c.leader_sends_before_sync && c.lazy_commit_sync && c.listen_while_syncing);
        assert_eq!((c.requests_per_ready, c.read_timeout_ms), (256, 7_000));
        assert_eq!(
            (c.snapshot_entries, c.snapshot_keep_entries),
            (100_000, 50_000)
        );
        assert_eq!(c.boot_nonce, 9);
        let mut other = NodeSettings::default();
        other.set_snapshot_count(100);
        assert!(!other.is_default());
    }
}
