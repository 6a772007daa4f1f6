//! What the leader knows of each follower's log (Raft Figure 2, "Volatile state on leaders").
//!
//! Depends only on `types`.

use std::collections::{BTreeSet, VecDeque};

use super::types::Index;

/// How the leader sends entries to one follower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProgressState {
    /// The leader does not know where the follower's log matches: one AppendEntries at a time,
    /// backing off on rejection (Raft §5.3).
    Probe {
        /// True while a probe is outstanding; cleared by a reply or the next heartbeat.
        paused: bool,
    },
    /// The follower matches up to `match_index`: entries are pipelined optimistically.
    Replicate {
        /// Last index of each AppendEntries in flight, oldest first.
        ///
        /// Invariant: strictly increasing, each `< next_index`, length `<= inflight_msgs_max`.
        inflight: VecDeque<Index>,
    },
    /// A snapshot is being sent (the follower needs compacted entries, Raft §7), a window of
    /// chunks at a time: no entries are sent until it is acknowledged, or until
    /// `heartbeats_left` heartbeats passed without an answer (it was lost), when the leader
    /// probes again.
    Snapshot {
        /// The snapshot's index.
        index: Index,
        /// The follower holds the snapshot's bytes before this one.
        offset: u64,
        /// The next byte not sent yet: the chunks from `offset` to here are in flight.
        ///
        /// Invariant: `offset <= sent`.
        sent: u64,
        /// Heartbeat rounds left before the leader gives up waiting.
        heartbeats_left: u64,
    },
}

/// The leader's view of one follower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// `matchIndex`: highest index known to be replicated on the follower.
    ///
    /// Invariant: `match_index < next_index`.
    pub match_index: Index,
    /// `nextIndex`: index of the next entry to send.
    pub next_index: Index,
    /// Probe or replicate.
    pub state: ProgressState,
    /// The highest `read_seq` this follower echoed in the current term.
    pub read_ack: u64,
    /// CheckQuorum (Raft thesis §6.2): true if the follower answered since the leader's last
    /// quorum check.
    pub recent_active: bool,
    /// The highest commit index this follower can have learned from what was sent to it: the
    /// smallest of each AppendEntries' `leaderCommit` and its last entry (Raft Figure 2,
    /// receiver rule 5), the largest over the messages sent this term.
    pub commit_sent: Index,
    /// Tags of the last commands this follower forwarded that the leader appended this term
    /// (at most `FORWARDED_SEEN_MAX`): a duplicated `Propose` message is appended once.
    pub forwarded_seen: BTreeSet<u64>,
    /// Command bytes of each AppendEntries in flight while replicating (its last index and
    /// its bytes, oldest first), and their sum: the leader stops sending to a follower whose
    /// unacknowledged bytes reach `Config::inflight_bytes_max` (flow control in bytes, beside
    /// the count of messages), so a slow follower's queue never grows without bound.
    inflight_bytes: VecDeque<(Index, u64)>,
    /// The sum of `inflight_bytes`.
    pub inflight_bytes_total: u64,
}

/// Most forwarded-command tags remembered per follower.
pub const FORWARDED_SEEN_MAX: usize = 4096;

impl Progress {
    /// A follower the new leader knows nothing of: probe from just after the leader's last entry.
    pub fn new(last_index: Index) -> Progress {
        Progress {
            match_index: Index(0),
            next_index: last_index.next(),
            state: ProgressState::Probe { paused: false },
            read_ack: 0,
            recent_active: false,
            commit_sent: Index(0),
            forwarded_seen: BTreeSet::new(),
            inflight_bytes: VecDeque::new(),
            inflight_bytes_total: 0,
        }
    }

    /// True if the leader may send entries now (no limit on bytes in flight).
    pub fn can_send(&self, inflight_msgs_max: usize) -> bool {
        self.can_send_within(inflight_msgs_max, u64::MAX)
    }

    /// True if the leader may send entries now: fewer than `inflight_msgs_max` messages and
    /// fewer than `inflight_bytes_max` command bytes are unacknowledged (one message always
    /// goes into an empty pipeline, however large).
    pub fn can_send_within(&self, inflight_msgs_max: usize, inflight_bytes_max: u64) -> bool {
        match &self.state {
            ProgressState::Probe { paused } => !paused,
            ProgressState::Replicate { inflight } => {
                inflight.len() < inflight_msgs_max
                    && (inflight.is_empty() || self.inflight_bytes_total < inflight_bytes_max)
            }
            ProgressState::Snapshot { .. } => false,
        }
    }

    /// Records that an AppendEntries ending at `last` was sent.
    pub fn sent(&mut self, last: Index) {
        self.sent_bytes(last, 0);
    }

    /// Records that an AppendEntries ending at `last`, carrying `bytes` of commands, was sent.
    pub fn sent_bytes(&mut self, last: Index, bytes: u64) {
        match &mut self.state {
            ProgressState::Probe { paused } => *paused = true,
            ProgressState::Replicate { inflight } => {
                if last >= self.next_index {
                    assert!(inflight.back().is_none_or(|&b| b < last), "inflight grows");
                    inflight.push_back(last);
                    self.inflight_bytes.push_back((last, bytes));
                    self.inflight_bytes_total += bytes;
                    self.next_index = last.next();
                }
            }
            ProgressState::Snapshot { .. } => {}
        }
    }

    /// Forgets the bytes in flight (the pipeline was reset).
    fn clear_inflight_bytes(&mut self) {
        self.inflight_bytes.clear();
        self.inflight_bytes_total = 0;
    }

    /// A success reply: the follower matches up to `match_index`. Returns true if it moved.
    pub fn on_success(&mut self, match_index: Index) -> bool {
        let moved = match_index > self.match_index;
        if moved {
            self.match_index = match_index;
        }
        if self.next_index <= self.match_index {
            self.next_index = self.match_index.next();
        }
        match &mut self.state {
            ProgressState::Snapshot { index, .. } if match_index < *index => {}
            ProgressState::Probe { .. } | ProgressState::Snapshot { .. } => {
                self.state = ProgressState::Replicate {
                    inflight: VecDeque::new(),
                };
                self.clear_inflight_bytes();
            }
            ProgressState::Replicate { inflight } => {
                while inflight.front().is_some_and(|&f| f <= match_index) {
                    inflight.pop_front();
                }
                while let Some(&(last, bytes)) = self.inflight_bytes.front()
                    && last <= match_index
                {
                    self.inflight_bytes.pop_front();
                    self.inflight_bytes_total -= bytes;
                }
            }
        }
        moved
    }

    /// A rejection: back off to `next_index` (already clamped by the caller to
    /// `match_index < next_index`) and probe again.
    pub fn on_reject(&mut self, next_index: Index) {
        assert!(
            next_index > self.match_index,
            "next_index stays above match_index"
        );
        self.next_index = next_index;
        self.state = ProgressState::Probe { paused: false };
        self.clear_inflight_bytes();
    }

    /// The follower lost entries it had acknowledged (its damaged log was cut back): it holds
    /// nothing from `next_index` on, whatever it matched before.
    pub fn on_lost(&mut self, next_index: Index) {
        self.match_index = self.match_index.min(next_index.prev());
        self.on_reject(next_index);
    }

    /// A heartbeat round lets a paused probe try again, so a lost probe is retried.
    pub fn on_heartbeat(&mut self) {
        match &mut self.state {
            ProgressState::Probe { paused } => *paused = false,
            ProgressState::Snapshot {
                heartbeats_left, ..
            } => {
                *heartbeats_left = heartbeats_left.saturating_sub(1);
                if *heartbeats_left == 0 {
                    let next = self.match_index.next();
                    self.on_reject(next);
                }
            }
            ProgressState::Replicate { .. } => {}
        }
    }

    /// The leader sent the snapshot at `index`: wait for its acknowledgement for at most
    /// `heartbeats` heartbeat rounds.
    pub fn snapshot_sent(&mut self, index: Index, heartbeats: u64) {
        self.next_index = self.next_index.max(index.next());
        self.clear_inflight_bytes();
        self.state = ProgressState::Snapshot {
            index,
            offset: 0,
            sent: 0,
            heartbeats_left: heartbeats.max(1),
        };
    }

    /// The snapshot in flight, the byte the follower wants next and the next byte not sent
    /// yet, if a snapshot is in flight.
    pub fn snapshot_window(&self) -> Option<(Index, u64, u64)> {
        match self.state {
            ProgressState::Snapshot {
                index,
                offset,
                sent,
                ..
            } => Some((index, offset, sent)),
            _ => None,
        }
    }

    /// The chunk of the snapshot in flight that ends before byte `end` was sent.
    pub fn snapshot_chunk_sent(&mut self, end: u64) {
        if let ProgressState::Snapshot { sent, .. } = &mut self.state {
            *sent = (*sent).max(end);
        }
    }

    /// Every chunk in flight is taken as lost: the next send starts again at the byte the
    /// follower wants.
    pub fn snapshot_resend(&mut self) {
        if let ProgressState::Snapshot { offset, sent, .. } = &mut self.state {
            *sent = *offset;
        }
    }

    /// The snapshot in flight and the next byte of it to send, if one is.
    pub fn snapshot_in_flight(&self) -> Option<(Index, u64)> {
        match self.state {
            ProgressState::Snapshot { index, offset, .. } => Some((index, offset)),
            _ => None,
        }
    }

    /// True if a whole heartbeat round passed without an answer about the snapshot in flight,
    /// given that the leader waits `heartbeats` rounds in all.
    pub fn snapshot_unanswered(&self, heartbeats: u64) -> bool {
        match self.state {
            ProgressState::Snapshot {
                heartbeats_left, ..
            } => heartbeats_left + 1 < heartbeats.max(1),
            _ => false,
        }
    }

    /// The follower holds the snapshot in flight up to byte `at`: the window moves on to it
    /// (or, below what it held before, back to it: the follower lost its partial copy, or
    /// the answer is an old one), and the leader waits `heartbeats` heartbeat rounds again
    /// for the next answer. False for an answer that tells nothing new (a follower answers
    /// each chunk after a lost or reordered one with the same offset): the chunks in flight
    /// are not sent again for it, or every duplicate would start a stream of its own; a
    /// heartbeat round without news resends them.
    pub fn snapshot_progress(&mut self, at: u64, heartbeats: u64) -> bool {
        let ProgressState::Snapshot {
            offset,
            sent,
            heartbeats_left,
            ..
        } = &mut self.state
        else {
            return false;
        };
        if at == *offset && *sent > at {
            return false;
        }
        *sent = if at < *offset { at } else { (*sent).max(at) };
        *offset = at;
        *heartbeats_left = heartbeats.max(1);
        true
    }

    /// Records an AppendEntries that ends at `last` and carries `leader_commit`.
    pub fn commit_sent_to(&mut self, leader_commit: Index, last: Index) {
        self.commit_sent = self.commit_sent.max(leader_commit.min(last));
    }

    /// True if an empty AppendEntries from `match_index` would tell this follower of a commit
    /// index it has not been sent yet.
    pub fn commit_news(&self, commit: Index) -> bool {
        commit.min(self.match_index) > self.commit_sent
    }

    /// True the first time this term that the follower's command `tag` reaches the leader.
    pub fn first_forward(&mut self, tag: u64) -> bool {
        if !self.forwarded_seen.insert(tag) {
            return false;
        }
        if self.forwarded_seen.len() > FORWARDED_SEEN_MAX {
            self.forwarded_seen.pop_first();
        }
        true
    }

    /// True while a snapshot is in flight to this follower.
    pub fn snapshot_pending(&self) -> bool {
        matches!(self.state, ProgressState::Snapshot { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_pauses_until_reply_then_replicates() {
        let mut p = Progress::new(Index(5));
        assert!(p.can_send(4));
        p.sent(Index(5));
        assert!(!p.can_send(4));
        p.on_heartbeat();
        assert!(p.can_send(4));
        assert!(p.on_success(Index(5)));
        assert_eq!(p.next_index, Index(6));
        assert!(matches!(p.state, ProgressState::Replicate { .. }));
    }

    #[test]
    fn bytes_in_flight_stop_the_pipeline_until_acknowledged() {
        let mut p = Progress::new(Index(0));
        p.on_success(Index(0));
        assert!(p.can_send_within(64, 100));
        p.sent_bytes(Index(1), 60);
        assert!(p.can_send_within(64, 100), "60 of 100 bytes in flight");
        p.sent_bytes(Index(2), 60);
        assert_eq!(p.inflight_bytes_total, 120);
        assert!(!p.can_send_within(64, 100), "the byte budget is spent");
        assert!(p.can_send(64), "no byte limit: the count alone decides");
        p.on_success(Index(1));
        assert_eq!(p.inflight_bytes_total, 60);
        assert!(p.can_send_within(64, 100));
        p.on_reject(Index(2));
        assert_eq!(p.inflight_bytes_total, 0, "a reset pipeline holds nothing");
        // One message larger than the budget still goes into an empty pipeline.
        p.on_success(Index(1));
        assert!(p.can_send_within(64, 10));
        p.sent_bytes(Index(3), 1_000);
        assert!(!p.can_send_within(64, 10));
    }

    #[test]
    fn replicate_pipelines_up_to_the_inflight_limit() {
        let mut p = Progress::new(Index(0));
        p.on_success(Index(0));
        p.sent(Index(1));
        p.sent(Index(2));
        assert!(!p.can_send(2));
        assert_eq!(p.next_index, Index(3));
        p.on_success(Index(1));
        assert!(p.can_send(2));
        p.on_reject(Index(2));
        assert_eq!(p.state, ProgressState::Probe { paused: false });
    }
}
