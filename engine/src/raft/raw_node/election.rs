//! Elections (Raft §5.2): the randomized timer, role transitions, RequestVote and its answers,
//! PreVote (Raft thesis §9.6), and the leader lease of CheckQuorum (thesis §4.2.3, §6.2).

use std::collections::BTreeMap;

use rand::Rng;

use super::{RawNode, Role};
use crate::raft::membership::VoteResult;
use crate::raft::progress::Progress;
use crate::raft::types::{EntryKind, Index, MessageKind, NodeId, Term};

impl RawNode {
    /// CheckQuorum: true if a majority (this leader included) answered since the last check;
    /// starts the next period with every follower inactive.
    pub(super) fn quorum_recently_active(&mut self) -> bool {
        let me = self.config.id;
        let Role::Leader { progress } = &self.role else {
            panic!("quorum check on a non-leader");
        };
        // Thesis §4.3: while joint, a quorum of each half.
        let ok = self
            .membership()
            .has_quorum(|id| id == me || progress.get(&id).is_some_and(|p| p.recent_active));
        let Role::Leader { progress } = &mut self.role else {
            unreachable!("checked above");
        };
        for p in progress.values_mut() {
            p.recent_active = false;
        }
        ok
    }

    /// The outcome of an election with these answers under this node's configuration.
    pub(super) fn tally(&self, votes: &BTreeMap<NodeId, bool>) -> VoteResult {
        self.membership().vote_result(votes)
    }

    /// True if this node heard from the leader of its term within the minimum election timeout,
    /// or is that leader (Raft thesis §4.2.3, §9.6).
    pub(super) fn leader_recently_heard(&self) -> bool {
        match self.role {
            Role::Leader { .. } => true,
            Role::Follower { leader: Some(_) } => {
                self.election_elapsed < self.config.election_timeout_ticks
            }
            Role::Follower { leader: None }
            | Role::PreCandidate { .. }
            | Role::Candidate { .. } => false,
        }
    }

    pub(super) fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        if self.config.redraw_timeout || self.election_timeout_randomized == 0 {
            self.election_timeout_randomized = self.draw_election_timeout();
        }
    }

    /// A randomized election timeout (Raft §5.2), in whole steps of
    /// `election_timeout_step_ticks` past the minimum when that is over 1.
    pub(super) fn draw_election_timeout(&mut self) -> u64 {
        let (min, max) = (
            self.config.election_timeout_ticks,
            self.config.election_timeout_max_ticks,
        );
        let step = self.config.election_timeout_step_ticks;
        if step <= 1 {
            return self.rng.gen_range(min..max);
        }
        // round(u * k) for u uniform in [0, 1): 0 on [0, 1/2k), j on [(2j-1)/2k, (2j+1)/2k),
        // k on [(2k-1)/2k, 1); so draw one of 2k halves and pair them up.
        let k = (max - 1 - min) / step;
        let j = if k == 0 {
            0
        } else {
            self.rng.gen_range(0..2 * k).div_ceil(2)
        };
        min + j * step
    }

    pub(super) fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        self.step_down_to(term, leader, false);
    }

    /// A RequestVote of a higher term that this node refuses (its log is more up-to-date,
    /// §5.4.1, or it may not vote while recovering) moves it to that term as a follower, but
    /// its election timer runs on, as Figure 2 has it ("without ... granting vote to
    /// candidate"). Restarting it (etcd-io/raft's `becomeFollower` does, so
    /// `Config::refused_vote_resets_timer` keeps that) lets a node with a stale log that
    /// keeps campaigning restart the timers of every up-to-date node with each of its
    /// campaigns: while its own timeout comes first, nobody who could win ever campaigns
    /// (without PreVote: five seconds leaderless in CI's aimed-crashes seed 2724678171, a
    /// restarted leader that lost its unsynced tail winning the timer race four times).
    pub(super) fn step_down_for_refused_vote(&mut self, term: Term) {
        let keep =
            !self.config.refused_vote_resets_timer && !matches!(self.role, Role::Leader { .. });
        self.step_down_to(term, None, keep);
    }

    fn step_down_to(&mut self, term: Term, leader: Option<NodeId>, keep_timer: bool) {
        assert!(term >= self.term, "terms never go back");
        if term > self.term {
            self.term = term;
            self.voted_for = None;
        }
        if !matches!(self.role, Role::Follower { .. }) {
            self.reads.clear();
        }
        self.transfer = None;
        // Older snapshots are kept only for a leader's transfers in progress.
        self.sending.clear();
        // Raft Figure 2 resets the timer only on AppendEntries from the current leader or on
        // granting a vote; etcd-io/raft (and this core by default) also resets it on every
        // step-down. `step_down_resets_timer = false` keeps the paper's rule.
        let keep_timer = keep_timer
            || (!self.config.step_down_resets_timer
                && leader.is_none()
                && !matches!(self.role, Role::Leader { .. }));
        self.role = Role::Follower { leader };
        if !keep_timer {
            self.reset_election_timer();
        }
    }

    /// `transfer`: the leader asked for this election (TimeoutNow, thesis §3.10).
    pub(super) fn become_candidate(&mut self, transfer: bool) {
        assert!(
            !matches!(self.role, Role::Leader { .. }),
            "invalid transition leader -> candidate"
        );
        // Raft §5.2: increment currentTerm, vote for self, reset the election timer (re-drawing
        // the randomized timeout), send RequestVote to all other servers.
        self.term = Term(self.term.0 + 1);
        self.voted_for = Some(self.config.id);
        self.campaigns += 1;
        let mut votes = BTreeMap::new();
        votes.insert(self.config.id, true);
        self.role = Role::Candidate { votes };
        self.reset_election_timer();
        if self.tally(&BTreeMap::from([(self.config.id, true)])) == VoteResult::Won {
            self.become_leader();
            return;
        }
        self.request_votes(self.term, false, transfer);
    }

    pub(super) fn become_pre_candidate(&mut self) {
        assert!(
            !matches!(self.role, Role::Leader { .. }),
            "invalid transition leader -> pre-candidate"
        );
        assert!(self.config.pre_vote, "pre-election without pre_vote");
        // Raft thesis §9.6: before incrementing its term, ask whether a majority would vote
        // for it in term + 1. The term and vote stay; the timer restarts (re-drawn), so a failed
        // pre-election is retried after another timeout. The role forgets the leader: it timed
        // out on it, and a remembered leader would make it refuse the pre-votes of the others,
        // which can leave a cluster leaderless with every survivor in that state (etcd#9586,
        // etcd#10355).
        let mut votes = BTreeMap::new();
        votes.insert(self.config.id, true);
        self.role = Role::PreCandidate { votes };
        self.reset_election_timer();
        if self.tally(&BTreeMap::from([(self.config.id, true)])) == VoteResult::Won {
            self.become_candidate(false);
            return;
        }
        self.request_votes(Term(self.term.0 + 1), true, false);
    }

    /// Sends RequestVote (or PreVote) for `term` to every other voter; `transfer` marks a
    /// RequestVote of a leadership transfer.
    pub(super) fn request_votes(&mut self, term: Term, pre_vote: bool, transfer: bool) {
        let (last_log_index, last_log_term) = (self.log.last_index(), self.log.last_term());
        // Thesis §4.3: the voters of both halves while joint.
        for to in self.membership().all_voters() {
            if to == self.config.id {
                continue;
            }
            let kind = if pre_vote {
                MessageKind::PreVote {
                    last_log_index,
                    last_log_term,
                }
            } else {
                MessageKind::Vote {
                    last_log_index,
                    last_log_term,
                    transfer,
                }
            };
            self.send_at(to, term, kind);
        }
    }

    pub(super) fn become_leader(&mut self) {
        assert!(
            matches!(self.role, Role::Candidate { .. }),
            "invalid transition -> leader"
        );
        let last = self.log.last_index();
        // The leader replicates to every member of its configuration, learners included (and
        // to those of the committed one while the latest is not: `replicated_to`).
        let progress = self
            .replicated_to()
            .into_iter()
            .filter(|&p| p != self.config.id)
            .map(|p| (p, Progress::new(last)))
            .collect();
        self.role = Role::Leader { progress };
        // A snapshot half received from an earlier leader is of no use to a leader.
        self.incoming = None;
        self.uncommitted_bytes = self.bytes_between(self.log.commit(), last);
        self.reads.clear();
        self.transfer = None;
        self.heartbeat_elapsed = 0;
        self.election_elapsed = 0;
        // Raft §5.4.2 and §8: a leader commits entries of earlier terms only through an entry of
        // its own term, so it appends a no-op at once.
        self.append_own(EntryKind::Noop);
        // A joint configuration committed under an earlier leader is left now (thesis §4.3).
        self.after_commit_membership();
        self.broadcast_append();
    }

    /// Raft §5.4.1: a log ending at `(last_log_index, last_log_term)` is at least as
    /// up-to-date as ours.
    pub(super) fn log_up_to_date(&self, last_log_index: Index, last_log_term: Term) -> bool {
        let (my_index, my_term) = (self.log.last_index(), self.log.last_term());
        last_log_term > my_term || (last_log_term == my_term && last_log_index >= my_index)
    }

    /// CheckQuorum's lease (Raft thesis §4.2.3): this node heard from a current leader (or is
    /// one) within the minimum election timeout, so it ignores RequestVote of a higher term.
    pub(super) fn in_lease(&self) -> bool {
        self.config.check_quorum && self.leader_recently_heard()
    }

    /// RequestVote receiver (Raft Figure 2, §5.2, §5.4.1).
    pub(super) fn handle_vote(
        &mut self,
        candidate: NodeId,
        last_log_index: Index,
        last_log_term: Term,
    ) {
        // A recovering node grants no vote (`recovering`, rule 1).
        let free = self.voted_for.is_none_or(|v| v == candidate) && self.may_vote();
        // Raft §5.4.1: grant only if the candidate's log is at least as up-to-date as ours.
        let granted = free && self.log_up_to_date(last_log_index, last_log_term);
        if granted {
            if matches!(self.role, Role::PreCandidate { .. }) {
                // Voting for another candidate of our term ends our own pre-election.
                self.become_follower(self.term, None);
            }
            assert!(
                matches!(self.role, Role::Follower { .. }),
                "only a follower grants a vote"
            );
            self.voted_for = Some(candidate);
            self.election_elapsed = 0;
        }
        self.send(candidate, MessageKind::VoteResponse { granted });
    }

    /// PreVote receiver (Raft thesis §9.6): grant if a RequestVote for `term` would be granted
    /// now (the candidate's log is at least as up-to-date, §5.4.1, and this node is free to vote
    /// in `term`) and this node has not heard from a leader within the minimum election timeout
    /// ("the voters have not received heartbeats from a valid leader for at least a baseline
    /// election timeout"). Nothing changes here: not the term, the vote, nor the timer.
    ///
    /// NB: etcd-io/raft checks the leader only with CheckQuorum on; this follows the thesis and
    /// checks it with PreVote alone too.
    pub(super) fn handle_pre_vote(
        &mut self,
        candidate: NodeId,
        term: Term,
        index: Index,
        log_term: Term,
    ) {
        assert!(
            term >= self.term,
            "a stale pre-vote is answered by reply_stale"
        );
        let free =
            (term > self.term || self.voted_for.is_none_or(|v| v == candidate)) && self.may_vote();
        let granted = free && self.log_up_to_date(index, log_term) && !self.leader_recently_heard();
        // A grant carries the requested term: with ours (lower, since we did not move) the
        // pre-candidate would drop it as stale (etcd#8288).
        let reply_term = if granted { term } else { self.term };
        self.send_at(
            candidate,
            reply_term,
            MessageKind::PreVoteResponse { granted },
        );
    }

    /// Counts an answer to this node's pre-election. A grant is for the term it would campaign
    /// in, `term + 1`; one for any other term answers an earlier pre-election and is dropped,
    /// since what it granted may no longer hold. A rejection carries the voter's term: a higher
    /// one made this node a follower in `step_term`, an equal one is recorded unless the voter
    /// already granted.
    pub(super) fn handle_pre_vote_response(&mut self, voter: NodeId, term: Term, granted: bool) {
        let next = Term(self.term.0 + 1);
        if !self.membership().is_voter(voter) {
            return;
        }
        let Role::PreCandidate { votes } = &mut self.role else {
            return;
        };
        if granted && term == next {
            votes.insert(voter, true);
        } else if !granted && term == self.term {
            votes.entry(voter).or_insert(false);
        } else {
            return;
        }
        let votes = votes.clone();
        if self.tally(&votes) == VoteResult::Won {
            // Raft thesis §9.6: a majority would vote for it, so it starts a real election.
            self.become_candidate(false);
        }
    }

    pub(super) fn handle_vote_response(&mut self, voter: NodeId, granted: bool) {
        // Only voters' answers count (thesis §4.3: a majority of each half while joint).
        if !self.membership().is_voter(voter) {
            return;
        }
        let Role::Candidate { votes } = &mut self.role else {
            return;
        };
        let first_answer = votes.insert(voter, granted).is_none();
        let votes = votes.clone();
        let result = self.tally(&votes);
        let mut before = votes;
        before.remove(&voter);
        if result == VoteResult::Won {
            self.become_leader();
        } else if self.config.backoff_on_lost_vote
            && first_answer
            && !granted
            && result == VoteResult::Lost
            && self.tally(&before) != VoteResult::Lost
        {
            // Lost this term: give the servers that can win a head start next time.
            self.election_timeout_randomized += self.config.election_timeout_max_ticks;
        }
    }
}
