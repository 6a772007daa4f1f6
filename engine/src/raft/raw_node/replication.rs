//! The leader's side of log replication (Raft §5.3): heartbeats, AppendEntries and their
//! answers, fast back-off, the commit rule (Raft §5.4.2), the commit broadcast, and the commands
//! followers forward to it.

use super::{RawNode, Role};
use crate::raft::progress::Progress;
use crate::raft::quorum::majority_index;
use crate::raft::types::{Entry, EntryKind, Index, MessageKind, NodeId, Proposal, RejectHint};

impl RawNode {
    pub(super) fn tick_leader(&mut self) {
        self.tick_transfer();
        if self.config.check_quorum {
            self.election_elapsed += 1;
            if self.election_elapsed >= self.config.election_timeout_ticks {
                self.election_elapsed = 0;
                if !self.quorum_recently_active() {
                    // Raft thesis §6.2: "a leader steps down if an election timeout elapses
                    // without a successful round of heartbeats to a majority of its cluster",
                    // so that a leader cut off in a minority stops taking requests it can never
                    // commit. It keeps its term; it has no leader to follow.
                    self.become_follower(self.term, None);
                    return;
                }
            }
        }
        self.heartbeat_elapsed += 1;
        if self.heartbeat_elapsed >= self.config.heartbeat_interval_ticks {
            self.heartbeat_elapsed = 0;
            self.broadcast_heartbeat();
        }
    }

    pub(super) fn handle_append_response(
        &mut self,
        peer: NodeId,
        success: bool,
        match_index: Index,
        hint: Option<RejectHint>,
        read_seq: u64,
    ) {
        let inflight_max = self.config.inflight_msgs_max;
        let inflight_bytes_max = self.config.inflight_bytes_max;
        let trust_lost = planted!(self.config.bugs.lost_ack_trusted);
        let last = self.log.last_index();
        if !matches!(self.role, Role::Leader { .. }) {
            return;
        }
        let p = self.progress_mut(peer);
        // Any reply of this term, success or not, means the follower accepted this leader.
        p.recent_active = true;
        p.read_ack = p.read_ack.max(read_seq);
        if read_seq > 0 {
            self.confirm_reads();
        }
        let p = self.progress_mut(peer);
        if success {
            let moved = p.on_success(match_index);
            if moved {
                self.maybe_commit();
                // The commit may have removed this follower, or this leader (thesis §4.2.2).
                if !self.is_tracked(peer) {
                    return;
                }
            }
            self.maybe_send_timeout_now(peer);
        } else {
            // Rejections of what was sent before a snapshot say nothing new: wait for it.
            let Some(hint) = hint.filter(|_| !p.snapshot_pending()) else {
                return;
            };
            let match_index = p.match_index;
            if hint.lost && hint.conflict_index <= match_index && !trust_lost {
                // Raft assumes a follower keeps what it acknowledged. One recovering from a
                // damaged log lost some of it (`recovering`; Alagappan et al., FAST 2018): its
                // match index is untrue, so it falls to what the follower holds now and the
                // leader sends the rest again. Commitment never counted on it alone (the commit
                // index never goes back), and it counts again only for what it acknowledges anew.
                p.on_lost(hint.conflict_index);
            } else if hint.rejected <= match_index {
                return; // A stale rejection: the follower has since matched further.
            }
            let next = self.next_after_reject(hint);
            let p = self.progress_mut(peer);
            let next = next.max(p.match_index.next()).min(hint.rejected);
            p.on_reject(next);
        }
        let p = self.progress_mut(peer);
        if p.next_index <= last && p.can_send_within(inflight_max, inflight_bytes_max) {
            self.send_append(peer);
        }
    }

    /// Fast back-off (Raft thesis §5.3): skip a whole conflicting term per round trip.
    pub(super) fn next_after_reject(&self, hint: RejectHint) -> Index {
        let Some(conflict_term) = hint.conflict_term else {
            return hint.conflict_index;
        };
        let at_most = self
            .log
            .last_index_at_most_term(conflict_term, hint.rejected);
        if self.log.term(at_most) == Some(conflict_term) {
            at_most.next()
        } else {
            hint.conflict_index
        }
    }

    /// True if this node leads and replicates to `peer`.
    pub(super) fn is_tracked(&self, peer: NodeId) -> bool {
        matches!(&self.role, Role::Leader { progress } if progress.contains_key(&peer))
    }

    /// The members a leader replicates to, in id order (empty if not leading).
    pub(super) fn followers(&self) -> Vec<NodeId> {
        match &self.role {
            Role::Leader { progress } => progress.keys().copied().collect(),
            _ => Vec::new(),
        }
    }

    /// The same list as `followers`, in the node's scratch vector so that a broadcast does
    /// not allocate; a loop over it hands it back with `give_back_followers`.
    pub(super) fn take_followers(&mut self) -> Vec<NodeId> {
        let mut peers = std::mem::take(&mut self.follower_scratch);
        peers.clear();
        if let Role::Leader { progress } = &self.role {
            peers.extend(progress.keys().copied());
        }
        peers
    }

    pub(super) fn give_back_followers(&mut self, peers: Vec<NodeId>) {
        self.follower_scratch = peers;
    }

    pub(super) fn progress_mut(&mut self, peer: NodeId) -> &mut Progress {
        let Role::Leader { progress } = &mut self.role else {
            panic!("progress of {peer} asked of a non-leader");
        };
        progress
            .get_mut(&peer)
            .expect("leader has progress for every peer")
    }

    /// True if the leader may append a command of `bytes` more: both uncommitted budgets
    /// have room (the byte budget always takes one command into an empty budget).
    pub(super) fn has_room(&self, bytes: usize) -> bool {
        let entries = self.log.last_index().0 - self.log.commit().0;
        let within_bytes = self.uncommitted_bytes == 0
            || self.uncommitted_bytes.saturating_add(bytes as u64)
                <= self.config.uncommitted_bytes_max;
        entries < self.config.uncommitted_entries_max && within_bytes
    }

    /// Command bytes of the entries after `from` up to `to` (the leader's budget counts them).
    pub(super) fn bytes_between(&self, from: Index, to: Index) -> u64 {
        if to <= from {
            return 0;
        }
        self.log
            .slice(from.next().max(self.log.offset().next()), to, usize::MAX)
            .iter()
            .map(|e| e.data().len() as u64)
            .sum()
    }

    /// The entries an AppendEntries after `prev` carries: up to `last`, at most
    /// `msg_entries_max` of them and `msg_bytes_max` bytes of commands (at least one entry).
    pub(super) fn entries_to_send(&self, prev: Index, last: Index) -> &[Entry] {
        let entries = self
            .log
            .slice(prev.next(), last, self.config.msg_entries_max);
        let mut bytes = 0u64;
        let fit = entries
            .iter()
            .position(|e| {
                bytes = bytes.saturating_add(e.data().len() as u64);
                bytes > self.config.msg_bytes_max
            })
            .unwrap_or(entries.len());
        &entries[..fit.max(1).min(entries.len())]
    }

    pub(super) fn append_own(&mut self, kind: EntryKind) -> Index {
        let index = self.log.last_index().next();
        let entry = Entry {
            term: self.term,
            index,
            kind,
        };
        self.uncommitted_bytes += entry.data().len() as u64;
        self.log.push(entry);
        index
    }

    /// Raft §5.3, §5.4.2: commit the highest index stored on a majority, if it is of this term.
    pub(super) fn maybe_commit(&mut self) {
        let Role::Leader { progress } = &self.role else {
            return;
        };
        let me = self.config.id;
        let stable = if self.ready_pending && planted!(self.config.bugs.commit_while_syncing) {
            self.log.last_index()
        } else {
            self.log.stable()
        };
        let mut matches = std::mem::take(&mut self.match_scratch);
        let removed_stays = self.removed_stays();
        let membership = self.membership();
        let plain = (!membership.is_joint() && membership.is_voter(me)) || removed_stays;
        let n = if !plain {
            // Thesis §4.3: while joint, stored on a majority of each half; §4.2.2: a leader
            // outside its configuration does not count itself.
            membership.committed_index(|id| {
                if id == me {
                    stable
                } else {
                    progress.get(&id).map_or(Index(0), |p| p.match_index)
                }
            })
        } else {
            // The plain case, on the hot path: a reused buffer, one value per voter.
            matches.clear();
            matches.extend(
                membership
                    .voters
                    .iter()
                    .filter(|&&v| v != me)
                    .map(|v| progress.get(v).map_or(Index(0), |p| p.match_index)),
            );
            matches.push(stable);
            majority_index(&mut matches)
        };
        self.match_scratch = matches;
        // While its sync is pending (`step_during_sync`), followers may already hold entries
        // it is still writing; its commit index stays within its own durable log all the same.
        let n = if self.ready_pending { n.min(stable) } else { n };
        if n <= self.log.commit() {
            return;
        }
        let own_term = self.log.term(n) == Some(self.term);
        if own_term || planted!(self.config.bugs.commit_old_term) {
            let committed = self.bytes_between(self.log.commit(), n);
            self.uncommitted_bytes = self.uncommitted_bytes.saturating_sub(committed);
            self.log.commit_to(n);
            self.after_commit_membership();
        }
        // Reads that waited for this term's first commit can now take the commit index.
        if own_term && self.reads.release_waiting(self.log.commit()) {
            self.start_read_round();
        }
    }

    /// The leader appends a follower's forwarded commands while it has room for them; the rest
    /// are dropped (the follower's clients time out, as they would if the message were lost).
    /// A command whose tag it already appended this term (a duplicated message) is skipped: the
    /// network may deliver a message twice, and a command must not apply twice. Only the leader
    /// of the message's term appends, so remembering its own term's tags is enough.
    pub(super) fn handle_propose(&mut self, from: NodeId, proposals: Vec<Proposal>) {
        if !matches!(self.role, Role::Leader { .. }) {
            return;
        }
        self.progress_mut(from).recent_active = true;
        if self.transfer.is_some() {
            // Paused for a leadership transfer (thesis §3.10): dropped, as when full.
            return;
        }
        let mut appended = false;
        for Proposal { tag, data } in proposals {
            if !self.has_room(data.len()) {
                break;
            }
            if self.progress_mut(from).first_forward(tag) {
                self.append_own(EntryKind::Forwarded {
                    origin: from,
                    tag,
                    data: data.into(),
                });
                appended = true;
            }
        }
        if appended {
            self.broadcast_append();
        }
    }

    pub(super) fn broadcast_append(&mut self) {
        let inflight_max = self.config.inflight_msgs_max;
        let inflight_bytes_max = self.config.inflight_bytes_max;
        let last = self.log.last_index();
        let peers = self.take_followers();
        for &peer in &peers {
            let p = self.progress_mut(peer);
            if p.next_index <= last && p.can_send_within(inflight_max, inflight_bytes_max) {
                self.send_append(peer);
            }
        }
        self.give_back_followers(peers);
    }

    /// Tells every follower of a commit index it has not been sent, in an empty AppendEntries
    /// from its match index (always accepted), once per `Ready` so that one message carries
    /// every commit of a batch. Without it a follower learns of a commit only with the next
    /// append or heartbeat, and a write it forwarded (which it answers once applied here, for
    /// read-your-writes) waits up to a heartbeat interval; etcd-io/raft broadcasts the same way
    /// after its commit index moves.
    pub(super) fn broadcast_commit(&mut self) {
        let Role::Leader { progress } = &self.role else {
            return;
        };
        let commit = self.log.commit();
        let offset = self.log.offset();
        let news = |p: &Progress| {
            p.commit_news(commit) && !p.snapshot_pending() && p.match_index >= offset
        };
        // This runs at every `ready`, and most often every follower has heard of the commit
        // index already: one look over the progress, without listing the followers.
        if !progress.values().any(news) {
            return;
        }
        let peers = self.take_followers();
        for &peer in &peers {
            let p = self.progress_mut(peer);
            if news(p) {
                let at = p.match_index;
                self.send_append_from(peer, at, at);
            }
        }
        self.give_back_followers(peers);
    }

    /// Raft §5.2: the leader sends periodic heartbeats (AppendEntries, empty when the follower is
    /// up to date) to maintain its authority. They double as retries: a lost probe is sent again,
    /// and a follower that missed an append rejects the heartbeat and is probed.
    pub(super) fn broadcast_heartbeat(&mut self) {
        let inflight_max = self.config.inflight_msgs_max;
        let inflight_bytes_max = self.config.inflight_bytes_max;
        let peers = self.take_followers();
        for &peer in &peers {
            let p = self.progress_mut(peer);
            p.on_heartbeat();
            if p.snapshot_pending() {
                // Keep the follower's timer quiet while its snapshot is on the way, and send
                // the chunk it waits for again, in case it or its answer was lost.
                let at = self.probe_point(peer);
                self.send_append_from(peer, at, at);
                self.resend_chunk(peer);
                continue;
            }
            let p = self.progress_mut(peer);
            if !p.can_send_within(inflight_max, inflight_bytes_max) {
                // A full pipeline at heartbeat time means appends or their replies were lost:
                // probe again from what the follower is known to hold.
                let next = p.match_index.next();
                p.on_reject(next);
            }
            self.send_append(peer);
        }
        self.give_back_followers(peers);
    }

    pub(super) fn send_append(&mut self, peer: NodeId) {
        let p = self.progress_mut(peer);
        let prev = p.next_index.prev();
        if prev < self.log.offset() {
            self.send_snapshot(peer);
            return;
        }
        let last = self.log.last_index();
        self.send_append_from(peer, prev, last);
        let entries = self.entries_to_send(prev, last);
        let sent_last = Index(prev.0 + entries.len() as u64);
        let bytes = entries.iter().map(|e| e.data().len() as u64).sum();
        self.progress_mut(peer).sent_bytes(sent_last, bytes);
    }

    /// Where an empty AppendEntries to `peer` can start and surely be accepted: its match index,
    /// or the compacted offset if it matches less (then it is rejected, but still counts as an
    /// answer to this leader).
    pub(super) fn probe_point(&mut self, peer: NodeId) -> Index {
        let offset = self.log.offset();
        self.progress_mut(peer).match_index.max(offset)
    }

    pub(super) fn send_append_from(&mut self, peer: NodeId, prev: Index, last: Index) {
        let prev_log_term = self
            .log
            .term(prev)
            .expect("leader holds every entry up to next - 1");
        let entries = self.entries_to_send(prev, last).to_vec();
        let commit = self.log.commit();
        let covered = Index(prev.0 + entries.len() as u64);
        self.progress_mut(peer).commit_sent_to(commit, covered);
        let kind = MessageKind::Append {
            prev_log_index: prev,
            prev_log_term,
            entries,
            leader_commit: commit,
            read_seq: self.reads.seq(),
        };
        self.send(peer, kind);
    }
}
