//! The checks every input ends with (debug builds and the `invariants` feature).

use std::collections::BTreeMap;

use super::{RawNode, Role};
use crate::raft::membership::VoteResult;
use crate::raft::progress::Progress;
use crate::raft::types::{Index, NodeId};

impl RawNode {
    pub(super) fn after_input(&self) {
        #[cfg(any(debug_assertions, feature = "invariants"))]
        self.check_invariants();
    }

    /// The tally of a (pre-)election: its own vote is recorded (it counts only if this node
    /// is a voter: `may_campaign`), every other voter is a peer, and it has not yet won (a
    /// majority ends the election at once).
    pub(super) fn check_votes(&self, votes: &BTreeMap<NodeId, bool>) {
        assert_eq!(votes.get(&self.config.id), Some(&true), "own vote recorded");
        for voter in votes.keys() {
            assert!(
                *voter == self.config.id || self.membership().is_voter(*voter),
                "vote from non-voter {voter}"
            );
        }
        assert_ne!(
            self.tally(votes),
            VoteResult::Won,
            "a won election ends at once"
        );
    }

    /// A leader's bounds on what it knows of `peer` (Raft Figure 2's nextIndex and matchIndex).
    pub(super) fn check_progress(peer: NodeId, p: &Progress, last: Index) {
        assert!(p.match_index < p.next_index, "match < next for {peer}");
        assert!(p.next_index <= last.next(), "next <= last + 1 for {peer}");
    }

    /// The body of [`RawNode::check_invariants`].
    pub(super) fn check_state(&self) {
        self.log.check_invariants();
        let progress_checked = self.check_membership();
        assert!(
            self.recovering.is_none() || matches!(self.role, Role::Follower { .. }),
            "a recovering node neither campaigns nor leads"
        );
        if matches!(self.role, Role::Leader { .. }) {
            assert_eq!(
                self.uncommitted_bytes,
                self.bytes_between(self.log.commit(), self.log.last_index()),
                "the uncommitted byte count matches the log"
            );
        }
        if self.log.offset() > Index(0) {
            assert!(
                self.snapshot
                    .as_ref()
                    .is_some_and(|s| s.index >= self.log.offset()),
                "a compacted log holds a snapshot covering its offset"
            );
        }
        match &self.role {
            Role::Leader { progress } => assert!(
                self.sending.len() <= progress.len(),
                "at most one older snapshot held per follower"
            ),
            _ => assert!(
                self.sending.is_empty(),
                "only a leader holds snapshots for transfers"
            ),
        }
        let commit = self.log.commit();
        let last = self.log.last_index();
        match &self.role {
            Role::Leader { progress } => {
                assert_eq!(
                    self.voted_for,
                    Some(self.config.id),
                    "a leader voted for itself"
                );
                if !progress_checked {
                    for (peer, p) in progress {
                        RawNode::check_progress(*peer, p, last);
                    }
                }
            }
            Role::Candidate { votes } => {
                assert_eq!(
                    self.voted_for,
                    Some(self.config.id),
                    "a candidate voted for itself"
                );
                self.check_votes(votes);
            }
            Role::PreCandidate { votes } => {
                assert!(self.config.pre_vote, "a pre-candidate only with pre_vote");
                // Raft thesis §9.6: a pre-election neither moves the term nor casts a vote, so
                // `voted_for` is whatever this node did in its term before it timed out.
                self.check_votes(votes);
            }
            Role::Follower { leader } => {
                assert_ne!(*leader, Some(self.config.id), "a follower does not lead");
            }
        }
        assert!(commit <= last, "commit <= last_index");
        assert!(
            self.log.last_term() <= self.term,
            "no entry from a future term"
        );
    }
}
