//! Linearizable reads without writing to the log: the ReadIndex protocol (Raft thesis §6.4).
//!
//! The leader notes its commit index as the read's index, then confirms it still leads with one
//! round of AppendEntries: every AppendEntries carries the leader's current read sequence, every
//! reply echoes it, and a read registered at sequence `s` is safe once a majority (the leader
//! included) has echoed a sequence `>= s`. Until the leader has committed an entry of its own
//! term its commit index may lag the real one, so reads wait for that first.
//!
//! Depends only on `types`.

use std::collections::VecDeque;

use super::types::{Index, NodeId};

/// Who asked for a read, and their tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadRequest {
    /// The node whose client asked (the leader itself, or a follower that forwarded it).
    pub from: NodeId,
    /// The asker's tag.
    pub ctx: u64,
}

/// A read the leader registered and is confirming.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingRead {
    /// The read sequence it was registered at.
    pub seq: u64,
    /// Its read index.
    pub index: Index,
    /// Who asked.
    pub request: ReadRequest,
}

/// The leader's read queue.
///
/// Invariant: `pending` is ordered by `seq`, and every `seq <= self.seq`.
#[derive(Clone, Debug, Default)]
pub struct ReadOnly {
    seq: u64,
    /// Reads that arrived before the leader committed an entry of its own term.
    waiting: Vec<ReadRequest>,
    pending: VecDeque<PendingRead>,
}

impl ReadOnly {
    /// The sequence AppendEntries carry now.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Most reads queued at once; more are refused so memory stays bounded.
    pub const READS_MAX: usize = 4096;

    /// Queues a read until the leader has committed an entry of its term. False if full.
    pub fn wait(&mut self, request: ReadRequest) -> bool {
        if self.len() >= Self::READS_MAX {
            return false;
        }
        self.waiting.push(request);
        true
    }

    /// Registers a read at `commit` under a new sequence. False if full.
    pub fn register(&mut self, request: ReadRequest, commit: Index) -> bool {
        if self.len() >= Self::READS_MAX {
            return false;
        }
        self.seq += 1;
        self.pending.push_back(PendingRead {
            seq: self.seq,
            index: commit,
            request,
        });
        true
    }

    /// Registers every waiting read at `commit`; true if there were any.
    pub fn release_waiting(&mut self, commit: Index) -> bool {
        if self.waiting.is_empty() {
            return false;
        }
        self.seq += 1;
        for request in std::mem::take(&mut self.waiting) {
            self.pending.push_back(PendingRead {
                seq: self.seq,
                index: commit,
                request,
            });
        }
        true
    }

    /// Takes the oldest pending read if `confirmed(seq)` says a majority has echoed its sequence.
    pub fn pop_confirmed(&mut self, confirmed: impl Fn(u64) -> bool) -> Option<PendingRead> {
        let front = self.pending.front()?;
        assert!(
            front.seq <= self.seq,
            "reads are registered at sequences already issued"
        );
        if confirmed(front.seq) {
            self.pending.pop_front()
        } else {
            None
        }
    }

    /// True if some read waits for confirmation.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Reads queued or pending.
    pub fn len(&self) -> usize {
        self.waiting.len() + self.pending.len()
    }

    /// True if nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every read (leadership lost; the askers time out and retry).
    pub fn clear(&mut self) {
        self.waiting.clear();
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(ctx: u64) -> ReadRequest {
        ReadRequest {
            from: NodeId(1),
            ctx,
        }
    }

    #[test]
    fn reads_confirm_in_order_of_sequence() {
        let mut r = ReadOnly::default();
        assert!(r.register(req(1), Index(5)));
        assert!(r.register(req(2), Index(6)));
        assert_eq!(r.seq(), 2);
        assert_eq!(r.pop_confirmed(|s| s <= 1).map(|p| p.request.ctx), Some(1));
        assert_eq!(r.pop_confirmed(|s| s <= 1), None);
        assert_eq!(r.pop_confirmed(|s| s <= 2).map(|p| p.index), Some(Index(6)));
        assert!(r.is_empty());
    }

    #[test]
    fn waiting_reads_share_one_sequence() {
        let mut r = ReadOnly::default();
        assert!(r.wait(req(1)));
        assert!(r.wait(req(2)));
        assert!(!r.has_pending());
        assert!(r.release_waiting(Index(9)));
        assert!(!r.release_waiting(Index(9)));
        assert_eq!(r.seq(), 1);
        assert_eq!(r.pop_confirmed(|_| true).map(|p| p.index), Some(Index(9)));
        assert_eq!(r.pop_confirmed(|_| true).map(|p| p.request.ctx), Some(2));
    }
}
