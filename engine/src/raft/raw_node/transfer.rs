//! Leadership transfer (Raft thesis §3.10): the leader brings a chosen follower's log up to
//! date, stops taking commands, and sends it TimeoutNow; the follower starts an election at
//! once, and with the most up-to-date log it wins it before any other server times out.

use super::{RawNode, Role};
use crate::raft::types::{MessageKind, NodeId, TransferError};

/// A transfer in progress on the leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Transfer {
    /// The node leadership goes to.
    pub(super) target: NodeId,
    /// Leader ticks since the transfer started.
    pub(super) elapsed: u64,
}

impl RawNode {
    /// Starts handing leadership to `target` (Raft thesis §3.10). The leader keeps replicating
    /// to it and, once its log matches the leader's last entry, sends it TimeoutNow. Meanwhile
    /// it refuses new commands ([`ProposeError::Transferring`](crate::raft::ProposeError)); after
    /// an election timeout without a new leader it gives up and takes commands again. A second
    /// call replaces the target and restarts the timeout.
    pub fn transfer_leader(&mut self, target: NodeId) -> Result<(), TransferError> {
        assert!(!self.ready_pending, "transfer between ready and advance");
        if !matches!(self.role, Role::Leader { .. }) {
            return Err(TransferError::NotLeader {
                leader: self.leader(),
            });
        }
        if target == self.config.id {
            return Err(TransferError::ToSelf);
        }
        if !self.membership().is_voter(target) {
            return Err(TransferError::NotMember(target));
        }
        self.transfer = Some(Transfer { target, elapsed: 0 });
        // Thesis §3.10 step 2: "The prior leader transfers leadership to the target server by
        // first bringing the target's log up to date (with AppendEntries)".
        // What is in flight to it may have been lost: send again from what it is known to hold
        // (unless a snapshot is on its way), rather than wait for a heartbeat to find out.
        let last = self.log.last_index();
        let p = self.progress_mut(target);
        if p.match_index < last && !p.snapshot_pending() {
            let next = p.match_index.next();
            p.on_reject(next);
            self.send_append(target);
        }
        self.maybe_send_timeout_now(target);
        self.after_input();
        Ok(())
    }

    /// Stops leading: a leader whose disk did not complete a sync within its bound gives way
    /// (hashicorp/raft#503), becoming a follower of its own term that knows no leader, so that
    /// a node with a working disk can be elected. Safe at any moment: any server may return to
    /// follower (Raft §5.2), and the term, the vote and the log are untouched. Returns whether
    /// this node was leading. Allowed between `ready` and `advance` (a leader gives way while
    /// its sync is still pending): it changes only the role, and `advance` then leaves the
    /// commit index to whoever leads.
    pub fn step_down(&mut self) -> bool {
        if !matches!(self.role, Role::Leader { .. }) {
            return false;
        }
        self.become_follower(self.term, None);
        self.after_input();
        true
    }

    /// The follower a transfer should go to: the voter (of the configuration being moved to,
    /// thesis §4.3) whose log matches the leader's furthest (the lowest id among equals), so the
    /// handover waits least; learners cannot lead. `None` if not leading or alone.
    pub fn most_up_to_date_follower(&self) -> Option<NodeId> {
        let Role::Leader { progress } = &self.role else {
            return None;
        };
        let voters = &self.membership().voters;
        progress
            .iter()
            .filter(|(id, _)| voters.binary_search(id).is_ok())
            .max_by_key(|(id, p)| (p.match_index, std::cmp::Reverse(**id)))
            .map(|(id, _)| *id)
    }

    /// The target of the leadership transfer in progress, if this node leads and transfers.
    pub fn transfer_target(&self) -> Option<NodeId> {
        self.transfer.map(|t| t.target)
    }

    /// Thesis §3.10: "The prior leader aborts the transfer [...] if the transfer does not
    /// complete within an election timeout", and resumes accepting client requests.
    pub(super) fn tick_transfer(&mut self) {
        if let Some(t) = &mut self.transfer {
            t.elapsed += 1;
            if t.elapsed >= self.config.election_timeout_ticks {
                self.transfer = None;
            }
        }
    }

    /// Sends TimeoutNow to `peer` if it is the transfer's target and its log matches the
    /// leader's last entry (thesis §3.10: "Once the target server's log is up to date, the
    /// prior leader sends it a TimeoutNow request"). Called on each of its acknowledgements, so
    /// a lost TimeoutNow is sent again with the next heartbeat's answer.
    pub(super) fn maybe_send_timeout_now(&mut self, peer: NodeId) {
        if self.transfer.is_none_or(|t| t.target != peer) {
            return;
        }
        let last = self.log.last_index();
        if self.progress_mut(peer).match_index == last {
            self.send(peer, MessageKind::TimeoutNow);
        }
    }

    /// TimeoutNow receiver: "the target server starts an election [...] as if its election
    /// timer had fired" (thesis §3.10), without PreVote (the leader vouched that it may), and
    /// its RequestVotes say so, so that CheckQuorum's lease does not make voters ignore them.
    ///
    /// `raft::validate::check_timeout_now` let through only a TimeoutNow from the leader this
    /// node follows in its term. A forged or replayed one can at worst start an election: that
    /// costs availability, never safety, because every vote is still granted only to a
    /// candidate whose log is at least as up-to-date as the voter's (§5.4.1), once per term
    /// (§5.2), and those two rules alone give Election Safety and Leader Completeness (§5.4).
    pub(super) fn handle_timeout_now(&mut self) {
        // Only a voter campaigns (thesis §4.1): a learner or a removed server ignores it; so
        // does a recovering node (`recovering`, rule 1).
        if !matches!(self.role, Role::Follower { .. }) || !self.is_voter() || !self.may_vote() {
            return;
        }
        if planted!(self.config.bugs.transfer_same_term) {
            #[cfg(feature = "planted-bugs")]
            self.planted_campaign_same_term();
            return;
        }
        self.become_candidate(true);
    }

    /// The planted bug `transfer_same_term`: campaign in the current term, voting again.
    #[cfg(feature = "planted-bugs")]
    fn planted_campaign_same_term(&mut self) {
        use std::collections::BTreeMap;
        self.voted_for = Some(self.config.id);
        self.campaigns += 1;
        let mut votes = BTreeMap::new();
        votes.insert(self.config.id, true);
        self.role = Role::Candidate { votes };
        self.reset_election_timer();
        self.request_votes(self.term, false, true);
    }
}
