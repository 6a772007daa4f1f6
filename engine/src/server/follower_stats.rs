//! What a leader measures of each follower: answered and unanswered AppendEntries, and their
//! round-trip times (etcd's `/v2/stats/leader`).
//!
//! An answer is matched to the request it answers by content: a success acknowledges the last
//! index the request carried, a rejection names the request's `prev_log_index`. Requests before
//! the matched one that got no answer were lost (the network is FIFO per peer in production;
//! in the simulator they may also be late) and count as failures.

use std::collections::{BTreeMap, VecDeque};

use crate::raft::{Index, Message, MessageKind, NodeId, Term};

/// Most requests remembered per follower; older ones count as failed.
const OUTSTANDING_MAX: usize = 4096;

/// Round-trip times of answered requests, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Latency {
    /// The last one.
    pub current: f64,
    /// Their mean.
    pub average: f64,
    /// Their standard deviation.
    pub standard_deviation: f64,
    /// The shortest.
    pub minimum: f64,
    /// The longest.
    pub maximum: f64,
}

/// One follower, as the leader measured it in its current term.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FollowerStats {
    /// The follower.
    pub id: NodeId,
    /// Requests answered.
    pub success: u64,
    /// Requests never answered.
    pub fail: u64,
    /// Round trips.
    pub latency: Latency,
}

#[derive(Debug, Default)]
struct Follower {
    /// Requests sent and not yet answered: `(prev_log_index, last index carried, sent at µs)`.
    outstanding: VecDeque<(Index, Index, u64)>,
    stats: FollowerStats,
    sum: f64,
    sum_squares: f64,
}

/// The leader's measurements of its followers, kept for one term.
#[derive(Debug, Default)]
pub struct Followers {
    term: Term,
    by_id: BTreeMap<NodeId, Follower>,
}

impl Followers {
    /// Starts over if `term` is not the term measured so far.
    fn term(&mut self, term: Term) {
        if term != self.term {
            self.term = term;
            self.by_id.clear();
        }
    }

    /// The leader of `msg.term` sends `msg` at `now_us`.
    pub fn sent(&mut self, msg: &Message, now_us: u64) {
        let key = match &msg.kind {
            MessageKind::Append {
                prev_log_index,
                entries,
                ..
            } => (
                *prev_log_index,
                Index(prev_log_index.0 + entries.len() as u64),
            ),
            // A transfer's round trip ends with the answer to its last chunk.
            MessageKind::Snapshot {
                index, done: true, ..
            } => (*index, *index),
            _ => return,
        };
        self.term(msg.term);
        let f = self.by_id.entry(msg.to).or_default();
        f.stats.id = msg.to;
        if f.outstanding.len() == OUTSTANDING_MAX {
            f.outstanding.pop_front();
            f.stats.fail += 1;
        }
        f.outstanding.push_back((key.0, key.1, now_us));
    }

    /// The leader of `term` received `msg` at `now_us`; the round trip it closes, µs, if any.
    pub fn received(&mut self, term: Term, msg: &Message, now_us: u64) -> Option<u64> {
        let MessageKind::AppendResponse {
            success,
            match_index,
            hint,
            ..
        } = &msg.kind
        else {
            return None;
        };
        if msg.term != term || term != self.term {
            return None;
        }
        let f = self.by_id.get_mut(&msg.from)?;
        let answers = |&(prev, last, _): &(Index, Index, u64)| {
            if *success {
                last == *match_index
            } else {
                hint.is_some_and(|h| h.rejected == prev)
            }
        };
        let pos = f.outstanding.iter().position(answers)?;
        f.stats.fail += pos as u64;
        let (_, _, sent_us) = f.outstanding[pos];
        f.outstanding.drain(..=pos);
        let round_trip_us = now_us.saturating_sub(sent_us);
        let ms = round_trip_us as f64 / 1000.0;
        let s = &mut f.stats;
        s.success += 1;
        f.sum += ms;
        f.sum_squares += ms * ms;
        let n = s.success as f64;
        let average = f.sum / n;
        s.latency = Latency {
            current: ms,
            average,
            standard_deviation: (f.sum_squares / n - average * average).max(0.0).sqrt(),
            minimum: if s.success == 1 {
                ms
            } else {
                s.latency.minimum.min(ms)
            },
            maximum: s.latency.maximum.max(ms),
        };
        Some(round_trip_us)
    }

    /// Every follower measured in `term` (none if the measurements are of another term).
    pub fn report(&self, term: Term) -> Vec<FollowerStats> {
        if term != self.term {
            return Vec::new();
        }
        self.by_id.values().map(|f| f.stats).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::RejectHint;

    fn append(to: u64, prev: u64, n: usize) -> Message {
        let entries = (0..n)
            .map(|i| crate::raft::Entry {
                term: Term(2),
                index: Index(prev + 1 + i as u64),
                kind: crate::raft::EntryKind::Noop,
            })
            .collect();
        Message {
            from: NodeId(1),
            to: NodeId(to),
            term: Term(2),
            kind: MessageKind::Append {
                prev_log_index: Index(prev),
                prev_log_term: Term(2),
                entries,
                leader_commit: Index(0),
                read_seq: 0,
            },
        }
    }

    fn answer(from: u64, success: bool, index: u64) -> Message {
        Message {
            from: NodeId(from),
            to: NodeId(1),
            term: Term(2),
            kind: MessageKind::AppendResponse {
                success,
                match_index: if success { Index(index) } else { Index(0) },
                hint: (!success).then_some(RejectHint {
                    rejected: Index(index),
                    conflict_term: None,
                    conflict_index: Index(1),
                    lost: false,
                }),
                read_seq: 0,
            },
        }
    }

    #[test]
    fn answers_pair_with_their_requests_and_lost_ones_fail() {
        let mut f = Followers::default();
        f.sent(&append(2, 0, 3), 1_000);
        f.sent(&append(2, 3, 2), 2_000); // lost
        f.sent(&append(2, 5, 0), 3_000);
        f.sent(&append(2, 5, 1), 4_000);
        f.received(Term(2), &answer(2, true, 3), 1_500);
        // The answer to the heartbeat at 5 shows the request ending at 5 got no answer.
        f.received(Term(2), &answer(2, false, 5), 5_000);
        f.received(Term(2), &answer(2, true, 6), 7_000);
        f.received(Term(3), &answer(2, true, 6), 9_000); // another term: ignored
        let [s] = f.report(Term(2))[..] else {
            panic!("one follower")
        };
        assert_eq!((s.success, s.fail), (3, 1));
        assert_eq!(s.latency.current, 3.0);
        assert_eq!((s.latency.minimum, s.latency.maximum), (0.5, 3.0));
        assert!((s.latency.average - (0.5 + 2.0 + 3.0) / 3.0).abs() < 1e-9);
        assert!(f.report(Term(3)).is_empty());
        f.sent(&append(3, 0, 0), 0);
        assert_eq!(f.report(Term(2)).len(), 2);
    }
}
