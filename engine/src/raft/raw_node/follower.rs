//! The follower's side of log replication: the AppendEntries receiver (Raft Figure 2, §5.3).

use super::{RawNode, Role};
use crate::raft::types::{Entry, Index, MessageKind, NodeId, RejectHint, Term};

impl RawNode {
    /// AppendEntries receiver (Raft Figure 2, §5.3).
    pub(super) fn handle_append(
        &mut self,
        leader: NodeId,
        (prev_log_index, prev_log_term): (Index, Term),
        entries: &[Entry],
        leader_commit: Index,
        read_seq: u64,
    ) {
        self.follow(leader);
        if prev_log_index < self.log.offset() {
            // The entries it starts after were compacted here, so they are committed and match
            // the leader's (Raft §5.4.3): answer with the commit index, the leader resumes there.
            self.acknowledge(leader, self.log.commit(), read_seq);
            return;
        }
        let hint = match self.log.term(prev_log_index) {
            None => Some(RejectHint {
                rejected: prev_log_index,
                conflict_term: None,
                conflict_index: self.log.last_index().next(),
                lost: self.recovering.is_some(),
            }),
            Some(t) if t != prev_log_term => Some(RejectHint {
                rejected: prev_log_index,
                conflict_term: Some(t),
                conflict_index: self.log.first_index_of_term(t, prev_log_index),
                lost: self.recovering.is_some(),
            }),
            Some(_) => None,
        };
        if let Some(hint) = hint {
            let kind = MessageKind::AppendResponse {
                success: false,
                match_index: Index(0),
                hint: Some(hint),
                read_seq,
            };
            self.send(leader, kind);
            return;
        }
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(
                e.index,
                Index(prev_log_index.0 + 1 + i as u64),
                "entries are contiguous"
            );
        }
        if planted!(self.config.bugs.no_truncate) {
            #[cfg(feature = "planted-bugs")]
            self.log.planted_merge_keeping_conflicts(entries);
        } else {
            self.log.merge(entries);
        }
        // Thesis §4.1: the latest configuration in the log is in force, and one truncated away
        // gives way to the one before it.
        self.sync_configs_after_merge(entries);
        let last_new = Index(prev_log_index.0 + entries.len() as u64);
        // Raft Figure 2, receiver rule 5: commitIndex = min(leaderCommit, index of last new entry).
        self.log.commit_to(leader_commit.min(last_new));
        self.acknowledge(leader, last_new, read_seq);
    }

    /// Raft §5.2: a node that hears from the leader of its term follows it (a candidate returns
    /// to follower); two leaders in one term would break election safety.
    pub(super) fn follow(&mut self, leader: NodeId) {
        assert!(
            !matches!(self.role, Role::Leader { .. }),
            "two leaders in term {}: {} and {leader}",
            self.term,
            self.config.id
        );
        self.become_follower(self.term, Some(leader));
    }

    /// A successful AppendEntries answer: this node matches the leader up to `match_index`.
    pub(super) fn acknowledge(&mut self, leader: NodeId, match_index: Index, read_seq: u64) {
        let kind = MessageKind::AppendResponse {
            success: true,
            match_index,
            hint: None,
            read_seq,
        };
        self.send(leader, kind);
    }
}
