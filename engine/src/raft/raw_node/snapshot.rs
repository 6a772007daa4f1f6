//! InstallSnapshot (Raft §7, Figure 13): sending a snapshot to a follower that needs compacted
//! entries, in chunks of at most `Config::msg_bytes_max` bytes, one at a time and resumable by
//! offset; and assembling and installing one from the leader.

use super::RawNode;
use crate::raft::membership::Membership;
use crate::raft::types::{Index, MessageKind, NodeId, Snapshot, SnapshotData, Term};

/// A snapshot being received from the leader, chunk by chunk.
#[derive(Debug)]
pub(super) struct Incoming {
    /// Who sends it, and in which term: another leader or term starts over.
    leader: NodeId,
    leader_term: Term,
    /// The snapshot's last included index and term, and its size.
    index: Index,
    term: Term,
    total: u64,
    /// The bytes received so far, in order: the only copy made of the snapshot on this node.
    data: Vec<u8>,
}

/// One InstallSnapshot chunk's fields past the snapshot's index and term.
pub(super) struct Chunk<'a> {
    pub(super) offset: u64,
    pub(super) total: u64,
    pub(super) data: &'a SnapshotData,
    pub(super) done: bool,
    pub(super) membership: Membership,
}

impl RawNode {
    /// InstallSnapshot receiver (Raft §7, Figure 13), one chunk: the first (offset 0) starts
    /// the snapshot (rule 2), each next one is written at its offset (rule 3) and answered
    /// with the offset wanted next (rule 4); a chunk that does not continue what this node
    /// holds, or belongs to another snapshot or leader, is answered with the offset it does
    /// want (0: start over). The last one completes the snapshot, which [`Self::install`]
    /// takes. A snapshot this node already has (up to its commit index) is answered at once.
    pub(super) fn handle_snapshot_chunk(
        &mut self,
        leader: NodeId,
        (index, term): (Index, Term),
        chunk: Chunk<'_>,
    ) {
        let Chunk {
            offset,
            total,
            data,
            done,
            membership,
        } = chunk;
        self.follow(leader);
        if index <= self.log.commit() {
            self.incoming = None;
            self.acknowledge(leader, self.log.commit(), 0);
            return;
        }
        let same = self.incoming.as_ref().is_some_and(|i| {
            (i.leader, i.leader_term, i.index, i.term, i.total)
                == (leader, self.term, index, term, total)
        });
        if !same {
            // Rule 2 (and rule 5: a partial snapshot of another leader or index is discarded).
            self.incoming = None;
            if offset != 0 {
                self.answer_chunk(leader, index, 0);
                return;
            }
            let reserve =
                usize::try_from(total.min(crate::raft::types::SNAPSHOT_RESERVE_MAX)).unwrap_or(0);
            self.incoming = Some(Incoming {
                leader,
                leader_term: self.term,
                index,
                term,
                total,
                data: Vec::with_capacity(reserve),
            });
        }
        let incoming = self.incoming.as_mut().expect("set above");
        let held = incoming.data.len() as u64;
        if offset != held && !planted!(self.config.bugs.chunk_any_offset) {
            // A duplicate, or a chunk after a lost one: ask for what is missing.
            self.answer_chunk(leader, index, held);
            return;
        }
        incoming.data.extend_from_slice(data);
        if !done {
            let held = incoming.data.len() as u64;
            self.answer_chunk(leader, index, held);
            return;
        }
        let incoming = self.incoming.take().expect("set above");
        let snapshot = Snapshot {
            index,
            term,
            data: SnapshotData::from(incoming.data),
            membership,
        };
        self.install(leader, snapshot);
    }

    fn answer_chunk(&mut self, leader: NodeId, index: Index, offset: u64) {
        self.send(leader, MessageKind::SnapshotResponse { index, offset });
    }

    /// A whole snapshot from the leader (Raft Figure 13, rules 5 to 8): beyond what this node
    /// has committed, it replaces the log up to the snapshot's index (a matching suffix is
    /// kept) and, through the next `Ready`, the state machine. The answer acknowledges the
    /// commit index, which is the snapshot's index once it is taken.
    fn install(&mut self, leader: NodeId, snapshot: Snapshot) {
        if snapshot.index > self.log.commit() {
            self.log.restore(snapshot.index, snapshot.term);
            self.restore_configs(&snapshot.membership, snapshot.index);
            self.snapshot = Some(snapshot.clone());
            self.pending_snapshot = Some(snapshot);
        }
        self.acknowledge(leader, self.log.commit(), 0);
    }

    /// InstallSnapshot (Raft §7): the follower needs entries this log compacted; the transfer
    /// of this node's newest snapshot starts at its first byte.
    pub(super) fn send_snapshot(&mut self, peer: NodeId) {
        let index = self
            .snapshot
            .as_ref()
            .expect("a log compacted above 0 holds a snapshot")
            .index;
        let heartbeats = self.snapshot_patience();
        self.progress_mut(peer).snapshot_sent(index, heartbeats);
        self.prune_sending();
        let sent = self.fill_snapshot_window(peer);
        debug_assert!(sent, "the newest snapshot is held");
    }

    /// Sends `peer` the chunks of the snapshot in flight that fit in its window: up to
    /// `inflight_msgs_max` chunks and `inflight_bytes_max` bytes past the byte it holds (at
    /// least one chunk), as AppendEntries are pipelined. One chunk per round trip would make
    /// a transfer in small chunks last longer than the log takes to outgrow it. False if this
    /// node no longer holds that snapshot.
    fn fill_snapshot_window(&mut self, peer: NodeId) -> bool {
        let chunk = self.config.msg_bytes_max.max(1);
        let window = chunk
            .saturating_mul(self.config.inflight_msgs_max.max(1) as u64)
            .min(self.config.inflight_bytes_max)
            .max(chunk);
        while let Some((index, offset, sent)) = self.progress_mut(peer).snapshot_window() {
            let Some(total) = self.snapshot_at(index).map(|s| s.data.len() as u64) else {
                return false;
            };
            // A snapshot of no bytes still goes once, as one chunk that is its last.
            if (sent >= total && (sent > 0 || offset > 0)) || sent - offset >= window {
                break;
            }
            let Some(end) = self.send_chunk(peer, index, sent) else {
                return false;
            };
            self.progress_mut(peer).snapshot_chunk_sent(end);
            if end >= total {
                break;
            }
        }
        true
    }

    /// Heartbeat rounds the leader waits for an answer to a chunk before it probes again:
    /// about two election timeouts.
    fn snapshot_patience(&self) -> u64 {
        2 * self.config.election_timeout_max_ticks / self.config.heartbeat_interval_ticks + 1
    }

    /// The snapshot at `index` this node can still send: its newest, or an older one a
    /// transfer in progress started with.
    fn snapshot_at(&self, index: Index) -> Option<&Snapshot> {
        self.snapshot
            .iter()
            .chain(self.sending.iter())
            .find(|s| s.index == index)
    }

    /// Drops the older snapshots no transfer in progress needs any more (all of them once
    /// this node no longer leads).
    pub(super) fn prune_sending(&mut self) {
        let newest = self.snapshot.as_ref().map(|s| s.index);
        let super::Role::Leader { progress } = &self.role else {
            self.sending.clear();
            return;
        };
        let wanted: Vec<Index> = progress
            .values()
            .filter_map(|p| p.snapshot_in_flight().map(|(index, _)| index))
            .filter(|index| Some(*index) != newest)
            .collect();
        self.sending.retain(|s| wanted.contains(&s.index));
        self.sending.dedup_by_key(|s| s.index);
    }

    /// Sends `peer` the chunk that starts at `offset` of the snapshot at `index`: at most
    /// `msg_bytes_max` bytes, sharing the snapshot's buffer. Returns the byte after the
    /// chunk, or `None` if this node no longer holds that snapshot.
    fn send_chunk(&mut self, peer: NodeId, index: Index, offset: u64) -> Option<u64> {
        let snapshot = self.snapshot_at(index)?;
        let total = snapshot.data.len();
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(total);
        let budget = usize::try_from(self.config.msg_bytes_max.max(1)).unwrap_or(usize::MAX);
        let end = start.saturating_add(budget).min(total);
        let kind = MessageKind::Snapshot {
            index: snapshot.index,
            term: snapshot.term,
            offset: start as u64,
            total: total as u64,
            data: snapshot.data.slice(start..end),
            done: end == total,
            membership: Box::new(snapshot.membership.clone()),
        };
        self.send(peer, kind);
        Some(end as u64)
    }

    /// The follower holds the snapshot at `index` up to byte `offset`: the next chunk goes
    /// from there (Raft §7: the leader resends what was lost). An answer about a snapshot this
    /// node no longer sends starts the transfer of its newest one over.
    pub(super) fn handle_snapshot_response(&mut self, from: NodeId, index: Index, offset: u64) {
        if !matches!(self.role, super::Role::Leader { .. }) {
            return;
        }
        let len = self.snapshot_at(index).map(|s| s.data.len() as u64);
        let patience = self.snapshot_patience();
        let p = self.progress_mut(from);
        p.recent_active = true;
        if p.snapshot_in_flight()
            .is_none_or(|(pending, _)| pending != index)
        {
            // Not the transfer in progress: an old or duplicated answer.
            return;
        }
        match len {
            // The transfer goes on with the snapshot it started, even if a newer one exists.
            Some(len) if offset < len => {
                if p.snapshot_progress(offset, patience) {
                    self.fill_snapshot_window(from);
                }
            }
            Some(_) => {}
            // No longer held (this node lost and regained leadership meanwhile): the newest
            // snapshot goes instead.
            None => self.send_snapshot(from),
        }
    }

    /// A heartbeat round while a snapshot is on its way to `peer`: if a whole round passed
    /// with no answer, the chunk it waits for is sent again, in case it or its answer was
    /// lost (a follower busy installing the last chunk is not sent it again at every round).
    pub(super) fn resend_chunk(&mut self, peer: NodeId) {
        let patience = self.snapshot_patience();
        let p = self.progress_mut(peer);
        if !p.snapshot_unanswered(patience) {
            return;
        }
        if p.snapshot_in_flight().is_none() {
            return;
        }
        p.snapshot_resend();
        if !self.fill_snapshot_window(peer) {
            // No longer held: the newest snapshot goes instead.
            self.send_snapshot(peer);
        }
    }
}
