//! A node whose log cannot vouch for what it acknowledged: it may not vote or campaign until it
//! has caught up from a leader (after Alagappan et al., "Protocol-Aware Recovery for
//! Consensus-Based Storage", FAST 2018, the CTRL protocol).
//!
//! The log recovers by cutting damage back to its last good record. A torn tail (the last write
//! of a crashed node, never synced) held nothing the node acknowledged. Other damage may have
//! held entries the node told a leader it had (so they may be committed, counted with this
//! node's acknowledgement) and the vote it cast in its term. Voting with such a log breaks
//! Raft's safety: §5.4.1's up-to-date check would let a candidate without a committed entry
//! win with this node's vote, and a lost `votedFor` lets it vote twice in one term (§5.2). So
//! the log hands the node a bound `(index, term)`: the highest index its lost records may have
//! reached and the highest term it saw (see `Wal::open`). The rules, and why each is safe:
//!
//! 1. *No vote, no campaign while recovering* (CTRL: a faulty node does not take part in
//!    leader election until fixed). A node that does not vote cannot lend a lost entry's
//!    absence or a lost vote to any election; a node that does not campaign cannot become a
//!    leader with a log that may miss committed entries. Elections need a majority of the
//!    others, which the fault model keeps healthy.
//! 2. *Replication goes on.* The node accepts entries (and snapshots) from a leader as any
//!    follower does (Raft §5.3), and acknowledges them: an acknowledgement tells the leader
//!    which entries this node holds durably now (the node loop syncs before it answers), which
//!    is true whatever the node lost before. So counting it toward a commit is safe: the quorum
//!    rule only needs each counted node to hold the entry.
//! 3. *The committed prefix is learnt from the leader* (CTRL: "the committed entries are
//!    fetched from the leader"). Recovery ends when this node follows a leader in a term at
//!    least the bound's, and its own commit index (which a follower takes from its leader,
//!    capped at the entries it holds, Raft Figure 2) has reached the bound's index. Every entry
//!    it may have acknowledged lies at or below the bound's index; those that were committed
//!    are in that leader's log (Leader Completeness, §5.4) at the same index (Log Matching,
//!    §5.3), so this node now holds them again; those that were not committed may be lost
//!    freely. Its log is then one it can vouch for. (3b) In a term above the bound's, it is
//!    enough that its commit index reaches an entry of the leader's own term: the leader's log
//!    before that entry holds every entry committed in earlier terms, the lost ones included
//!    (Leader Completeness; the leader was elected without this node, and the fault model
//!    leaves a majority that held each committed entry), and this node now holds that prefix.
//! 4. *The vote of the current term is pinned to that leader.* The node may have voted in
//!    this term and lost the record. On leaving recovery it records a vote for the leader it
//!    follows: that leader already won the term, so no second candidate can win it with this
//!    node's help.
//! 5. *The term comes back.* The damage may have taken the hard state of the highest term the
//!    node saw. It takes that term again at start, with no vote (it may not vote anyway), so
//!    that its answers move the cluster to that term as they would have before the damage, and
//!    a leader of a term at least the bound's (rule 3) comes.
//!
//! Beyond the fault model (the damage hides a vote in a term above every term still on disk,
//! or a majority is damaged at once) these rules still never make the node serve data it does
//! not hold, but the cluster may stay without a leader until an operator restores a member.

use super::{RawNode, Role};
use crate::raft::{Index, Term};

impl RawNode {
    /// Marks this node as recovering up to `bound` (see the module comment); `None` clears it.
    /// Called by the node loop after [`RawNode::restart`] with what the log recovered.
    pub fn set_recovering(&mut self, bound: Option<(Index, Term)>) {
        self.recovering = bound;
        // Rule 5: the term comes back. The damage may have taken the hard state of the bound's
        // term (its vote too): the node takes that term again, with no vote it could cast
        // (rule 1). Otherwise a cluster that stayed in an older term never gives it a leader of
        // the bound's term to end recovery with; this way its answers carry the term, and the
        // others move past it as they would have had the disk not lied (Raft §5.1).
        if let Some((_, term)) = bound
            && term > self.term
        {
            self.become_follower(term, None);
        }
    }

    /// The recovering bound, if this node may not vote yet.
    pub fn recovering(&self) -> Option<(Index, Term)> {
        self.recovering
    }

    /// True if this node may vote and campaign (rule 1).
    pub(super) fn may_vote(&self) -> bool {
        self.recovering.is_none()
    }

    /// Ends recovery if rule 3 holds now; pins the current term's vote to the leader (rule 4).
    /// The caller persists the hard state (the next `Ready`) before it records the end of
    /// recovery in the log. Returns true if recovery ended.
    pub fn try_end_recovery(&mut self) -> bool {
        assert!(
            !self.ready_pending,
            "end recovery between ready and advance"
        );
        let Some((index, term)) = self.recovering else {
            return false;
        };
        let Role::Follower {
            leader: Some(leader),
        } = self.role
        else {
            return false;
        };
        let commit = self.log.commit();
        // Rule 3; or rule 3b: in a term above the bound's, once this node's commit index
        // reaches an entry of the leader's own term, it holds every entry the leader's log has
        // before that term (Log Matching, §5.3), which is every committed entry of the earlier
        // terms, the lost ones included (Leader Completeness, §5.4; the leader was elected
        // without this node's vote). Without 3b a bound above the leader's last index (entries
        // of an old term that were never committed) would keep the node out until as many new
        // entries arrive, which an idle cluster never sends.
        let caught_up =
            commit >= index || (self.term > term && self.log.term(commit) == Some(self.term));
        if self.term < term || !caught_up {
            return false;
        }
        if self.voted_for.is_none() {
            self.voted_for = Some(leader);
        }
        self.recovering = None;
        true
    }
}
