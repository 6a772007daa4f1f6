//! The Raft state machine of one node (Raft §5), driven by `step`, `tick` and `propose`, read out
//! through `ready` and closed with `advance`.
//!
//! Depends on `types`, `quorum`, `progress` and `raft_log`. No I/O, no clock, no threads: time is
//! `tick()`, and the only randomness is the injected ChaCha RNG that draws election timeouts.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::progress::Progress;
use super::quorum::{majority, majority_index};
use super::raft_log::RaftLog;
use super::read_only::{ReadOnly, ReadRequest};
use super::types::{
    Config, ConfigError, Entry, EntryKind, HardState, Index, Message, MessageKind, NodeId,
    Proposal, ProposeError, ReadState, RejectHint, Snapshot, StepError, Term,
};

/// A node's role; each role owns the data only it needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Follows `leader`, if it has heard from one in the current term.
    Follower {
        /// The leader of the current term, once known.
        leader: Option<NodeId>,
    },
    /// Asking whether a majority would vote for it in the next term (Raft thesis §9.6), before
    /// it increments its term. Exists only with [`Config::pre_vote`](super::types::Config).
    PreCandidate {
        /// Answers to this pre-election so far, by voter (this node's own grant included).
        votes: BTreeMap<NodeId, bool>,
    },
    /// Campaigning in the current term (Raft §5.2).
    Candidate {
        /// Votes received so far, by voter (this node's own vote included).
        votes: BTreeMap<NodeId, bool>,
    },
    /// Leading the current term.
    Leader {
        /// Replication state of every other voter.
        progress: BTreeMap<NodeId, Progress>,
    },
}

/// The kind of a [`Role`], without its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RoleKind {
    /// See [`Role::Follower`].
    Follower,
    /// See [`Role::PreCandidate`].
    PreCandidate,
    /// See [`Role::Candidate`].
    Candidate,
    /// See [`Role::Leader`].
    Leader,
}

impl Role {
    /// The role's kind.
    pub fn kind(&self) -> RoleKind {
        match self {
            Role::Follower { .. } => RoleKind::Follower,
            Role::PreCandidate { .. } => RoleKind::PreCandidate,
            Role::Candidate { .. } => RoleKind::Candidate,
            Role::Leader { .. } => RoleKind::Leader,
        }
    }
}

/// What [`RawNode::propose_or_forward`] did with a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proposed {
    /// This node leads and appended it at this index and term.
    Appended(Index, Term),
    /// This node follows and sent it to the leader of this term: if the command is ever
    /// committed, its entry has this term.
    Forwarded(Term),
}

/// Everything the caller must do after a batch of input, in this order of obligation.
///
/// Close it with [`RawNode::advance`] before stepping, ticking or proposing again.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// Sequence number; `advance` checks it matches.
    pub number: u64,
    /// Persist BEFORE sending any of `messages` (Raft Figure 2: "Updated on stable storage before
    /// responding to RPCs"). `None` if unchanged since the last `Ready`.
    pub hard_state: Option<HardState>,
    /// Append to stable storage BEFORE sending any of `messages`. An entry at index `i` replaces
    /// every stored entry at `>= i` (conflict truncation, Raft §5.3).
    pub entries: Vec<Entry>,
    /// A snapshot from the leader (Raft §7): persist it BEFORE sending any of `messages`, in
    /// place of every stored entry up to its index, and restore the state machine from it
    /// BEFORE applying `committed_entries` (which follow it).
    pub snapshot: Option<Snapshot>,
    /// Send AFTER `hard_state`, `snapshot` and `entries` are durable; they may be lost,
    /// delayed, duplicated or reordered.
    pub messages: Vec<Message>,
    /// Apply to the state machine in order, AFTER `entries` are durable. They are committed.
    pub committed_entries: Vec<Entry>,
    /// Serve each read once the state machine has applied its index (thesis §6.4).
    pub read_states: Vec<ReadState>,
}

/// A snapshot of a node's externally visible state, for drivers, logs and checkers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// This node.
    pub id: NodeId,
    /// `currentTerm`.
    pub term: Term,
    /// `votedFor`.
    pub voted_for: Option<NodeId>,
    /// The role's kind.
    pub role: RoleKind,
    /// The leader of `term` as this node knows it.
    pub leader: Option<NodeId>,
    /// `commitIndex`.
    pub commit: Index,
    /// `lastApplied`.
    pub applied: Index,
    /// Index of the last log entry.
    pub last_index: Index,
    /// Term of the last log entry.
    pub last_term: Term,
}

/// The Raft core of one node.
#[derive(Debug)]
pub struct RawNode {
    config: Config,
    /// `currentTerm` (Raft Figure 2). Invariant: never decreases.
    term: Term,
    /// `votedFor` (Raft Figure 2). Invariant: at most one vote per term.
    voted_for: Option<NodeId>,
    log: RaftLog,
    role: Role,
    /// Ticks since the last heartbeat from a leader, vote granted, or (pre-)campaign start; on a
    /// leader with `check_quorum`, ticks since its last quorum check.
    election_elapsed: u64,
    /// Drawn from `[election_timeout_ticks, election_timeout_max_ticks)` at every reset.
    election_timeout_randomized: u64,
    /// Leader only: ticks since the last heartbeat round.
    heartbeat_elapsed: u64,
    rng: ChaCha8Rng,
    msgs: Vec<Message>,
    /// The hard state handed out in the last `Ready`.
    hard_state_sent: HardState,
    ready_number: u64,
    ready_pending: bool,
    /// Elections this node started (for statistics).
    campaigns: u64,
    /// Scratch space for `maybe_commit`.
    match_scratch: Vec<Index>,
    /// Leader only: reads being confirmed.
    reads: ReadOnly,
    /// Confirmed reads for the next `Ready`.
    read_states: Vec<ReadState>,
    /// The newest snapshot this node holds (taken locally or received), sent to followers that
    /// need compacted entries. Invariant: `Some` with `index >= log.offset()` once the offset
    /// is above 0.
    snapshot: Option<Snapshot>,
    /// A snapshot received from the leader, for the next `Ready`.
    pending_snapshot: Option<Snapshot>,
}

impl RawNode {
    /// Builds a node from its configuration and what it recovered from disk.
    pub fn new(
        config: Config,
        hard_state: HardState,
        entries: Vec<Entry>,
    ) -> Result<Self, ConfigError> {
        RawNode::restart(config, hard_state, None, (Index(0), Term(0)), entries)
    }

    /// Builds a node from what it recovered from disk after a compaction: the snapshot the
    /// state machine was restored from, and the log's entries following `log_start` (the last
    /// compacted index and its term), which may begin at or before the snapshot's index.
    pub fn restart(
        config: Config,
        hard_state: HardState,
        snapshot: Option<Snapshot>,
        log_start: (Index, Term),
        entries: Vec<Entry>,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let mut peers = config.peers.clone();
        peers.sort();
        let config = Config { peers, ..config };
        let rng = ChaCha8Rng::seed_from_u64(config.seed);
        let applied = snapshot.as_ref().map_or(Index(0), |s| s.index);
        let (offset, offset_term) = log_start;
        let log =
            RaftLog::recovered_after(offset, offset_term, entries, hard_state.commit, applied);
        // The log writes entries before the hard state, so a torn write can keep entries of a
        // term whose hard state it lost. The node sent nothing in that term (nothing leaves
        // before a sync), so it may take the term with no vote.
        let (term, voted_for) = if log.last_term() > hard_state.term {
            (log.last_term(), None)
        } else {
            (hard_state.term, hard_state.voted_for)
        };
        let mut node = RawNode {
            config,
            term,
            voted_for,
            log,
            role: Role::Follower { leader: None },
            election_elapsed: 0,
            election_timeout_randomized: 0,
            heartbeat_elapsed: 0,
            rng,
            msgs: Vec::new(),
            hard_state_sent: hard_state,
            ready_number: 0,
            ready_pending: false,
            campaigns: 0,
            match_scratch: Vec::new(),
            reads: ReadOnly::default(),
            read_states: Vec::new(),
            snapshot,
            pending_snapshot: None,
        };
        node.reset_election_timer();
        Ok(node)
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.config.id
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The role and its data.
    pub fn role(&self) -> &Role {
        &self.role
    }

    /// The in-memory log.
    pub fn raft_log(&self) -> &RaftLog {
        &self.log
    }

    /// How many elections this node has started.
    pub fn campaigns(&self) -> u64 {
        self.campaigns
    }

    /// The current hard state (not necessarily persisted yet).
    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            voted_for: self.voted_for,
            commit: self.log.commit(),
        }
    }

    /// The externally visible state.
    pub fn status(&self) -> Status {
        Status {
            id: self.config.id,
            term: self.term,
            voted_for: self.voted_for,
            role: self.role.kind(),
            leader: self.leader(),
            commit: self.log.commit(),
            applied: self.log.applied(),
            last_index: self.log.last_index(),
            last_term: self.log.last_term(),
        }
    }

    /// The leader of the current term as this node knows it.
    pub fn leader(&self) -> Option<NodeId> {
        match &self.role {
            Role::Follower { leader } => *leader,
            Role::PreCandidate { .. } | Role::Candidate { .. } => None,
            Role::Leader { .. } => Some(self.config.id),
        }
    }

    /// Ticks until this node's next timer fires if nothing else happens, so a driver can sleep
    /// instead of ticking an idle node. Always at least 1.
    pub fn ticks_until_timeout(&self) -> u64 {
        let left = match self.role {
            Role::Leader { .. } if self.config.check_quorum => {
                let heartbeat = self.config.heartbeat_interval_ticks - self.heartbeat_elapsed;
                let check = self.config.election_timeout_ticks - self.election_elapsed;
                heartbeat.min(check)
            }
            Role::Leader { .. } => self.config.heartbeat_interval_ticks - self.heartbeat_elapsed,
            _ => self
                .election_timeout_randomized
                .saturating_sub(self.election_elapsed),
        };
        left.max(1)
    }

    /// Advances logical time by one tick: followers and (pre-)candidates count towards an
    /// election timeout (Raft §5.2); the leader counts towards its next heartbeat round and, with
    /// `check_quorum`, its next quorum check.
    pub fn tick(&mut self) {
        assert!(!self.ready_pending, "tick between ready and advance");
        if matches!(self.role, Role::Leader { .. }) {
            self.tick_leader();
        } else {
            self.election_elapsed += 1;
            if self.election_elapsed >= self.election_timeout_randomized {
                self.campaign();
            }
        }
        self.after_input();
    }

    /// Starts an election now (Raft §5.2), whatever the timer says; with `pre_vote`, a
    /// pre-election (Raft thesis §9.6). A leader ignores it.
    pub fn campaign(&mut self) {
        if matches!(self.role, Role::Leader { .. }) {
            return;
        }
        if self.config.pre_vote {
            self.become_pre_candidate();
        } else {
            self.become_candidate();
        }
    }

    fn tick_leader(&mut self) {
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

    /// CheckQuorum: true if a majority (this leader included) answered since the last check;
    /// starts the next period with every follower inactive.
    fn quorum_recently_active(&mut self) -> bool {
        let Role::Leader { progress } = &mut self.role else {
            panic!("quorum check on a non-leader");
        };
        let active = 1 + progress.values().filter(|p| p.recent_active).count();
        for p in progress.values_mut() {
            p.recent_active = false;
        }
        active >= majority(self.config.peers.len())
    }

    /// True if this node heard from the leader of its term within the minimum election timeout,
    /// or is that leader (Raft thesis §4.2.3, §9.6).
    fn leader_recently_heard(&self) -> bool {
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

    /// Appends a command to the leader's log. Returns the entry's index and term: the command is
    /// committed once an entry with that index and term is applied.
    pub fn propose(&mut self, data: Vec<u8>) -> Result<(Index, Term), ProposeError> {
        assert!(!self.ready_pending, "propose between ready and advance");
        let Role::Leader { .. } = self.role else {
            return Err(ProposeError::NotLeader {
                leader: self.leader(),
            });
        };
        let uncommitted = self.log.last_index().0 - self.log.commit().0;
        if uncommitted >= self.config.uncommitted_entries_max {
            return Err(ProposeError::Dropped);
        }
        let index = self.append_own(EntryKind::Command(data));
        self.broadcast_append();
        self.after_input();
        Ok((index, self.term))
    }

    /// Appends a command if this node leads, or forwards it to the leader it follows (etcd's
    /// followers forward proposals the same way) tagged with `tag`: the entry comes back as
    /// [`EntryKind::Forwarded`] with this node as its origin, and whoever applies it knows whose
    /// it is. Commands forwarded in one batch of input travel in one message. A forwarded
    /// command may be lost (the leader changed or was full): its outcome is then unknown.
    pub fn propose_or_forward(
        &mut self,
        tag: u64,
        data: Vec<u8>,
    ) -> Result<Proposed, ProposeError> {
        assert!(!self.ready_pending, "propose between ready and advance");
        let leader = match &self.role {
            Role::Leader { .. } => {
                return self
                    .propose(data)
                    .map(|(index, term)| Proposed::Appended(index, term));
            }
            Role::Follower {
                leader: Some(leader),
            } => *leader,
            _ => return Err(ProposeError::NotLeader { leader: None }),
        };
        let proposal = Proposal { tag, data };
        let joined = self.msgs.iter_mut().rev().find_map(|m| match &mut m.kind {
            MessageKind::Propose { proposals } if m.to == leader && m.term == self.term => {
                Some(proposals)
            }
            _ => None,
        });
        match joined {
            Some(proposals) => proposals.push(proposal),
            None => self.send(
                leader,
                MessageKind::Propose {
                    proposals: vec![proposal],
                },
            ),
        }
        Ok(Proposed::Forwarded(self.term))
    }

    /// Feeds one message from a peer into the state machine.
    pub fn step(&mut self, m: Message) -> Result<(), StepError> {
        assert!(!self.ready_pending, "step between ready and advance");
        if m.to != self.config.id {
            return Err(StepError::WrongNode {
                to: m.to,
                me: self.config.id,
            });
        }
        if m.from == self.config.id || self.config.peers.binary_search(&m.from).is_err() {
            return Err(StepError::UnknownPeer(m.from));
        }
        if self.step_term(&m) {
            self.dispatch(m);
        }
        self.after_input();
        Ok(())
    }

    /// Brings this node to the message's term, if it should. Returns false if the message was
    /// consumed here (stale or ignored).
    fn step_term(&mut self, m: &Message) -> bool {
        if m.term > self.term {
            match m.kind {
                // CheckQuorum's lease (Raft thesis §4.2.3): "if a server receives a RequestVote
                // request within the minimum election timeout of hearing from a current leader,
                // it does not update its term or grant its vote", so a node rejoining from a
                // partition with a higher term cannot depose a leader that still has a majority.
                // (etcd lets a leader transfer's "force" vote through; leader transfer is not
                // implemented here.)
                MessageKind::Vote { .. } if self.in_lease() => return false,
                // Raft thesis §9.6: a pre-vote never changes the receiver's term, and a granted
                // pre-vote carries the term the pre-candidate has not moved to yet.
                MessageKind::PreVote { .. } | MessageKind::PreVoteResponse { granted: true } => {}
                // Raft §5.1: a newer term makes any node a follower of that term.
                _ => {
                    let from_leader = matches!(
                        m.kind,
                        MessageKind::Append { .. } | MessageKind::Snapshot { .. }
                    );
                    let leader = from_leader.then_some(m.from);
                    self.become_follower(m.term, leader);
                }
            }
        } else if m.term < self.term {
            // Raft §5.1: an older term is stale.
            self.reply_stale(m);
            return false;
        }
        true
    }

    fn dispatch(&mut self, m: Message) {
        let ahead = matches!(
            m.kind,
            MessageKind::PreVote { .. } | MessageKind::PreVoteResponse { granted: true }
        );
        assert!(
            m.term == self.term || (ahead && m.term > self.term),
            "term normalised"
        );
        match m.kind {
            MessageKind::Vote {
                last_log_index,
                last_log_term,
            } => {
                self.handle_vote(m.from, last_log_index, last_log_term);
            }
            MessageKind::VoteResponse { granted } => self.handle_vote_response(m.from, granted),
            MessageKind::PreVote {
                last_log_index,
                last_log_term,
            } => {
                self.handle_pre_vote(m.from, m.term, last_log_index, last_log_term);
            }
            MessageKind::PreVoteResponse { granted } => {
                self.handle_pre_vote_response(m.from, m.term, granted);
            }
            MessageKind::Append {
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
                read_seq,
            } => {
                let prev = (prev_log_index, prev_log_term);
                self.handle_append(m.from, prev, &entries, leader_commit, read_seq);
            }
            MessageKind::AppendResponse {
                success,
                match_index,
                hint,
                read_seq,
            } => {
                self.handle_append_response(m.from, success, match_index, hint, read_seq);
            }
            MessageKind::Snapshot { snapshot } => self.handle_snapshot(m.from, snapshot),
            MessageKind::Propose { proposals } => self.handle_propose(m.from, proposals),
            MessageKind::ReadIndex { ctx } => self.handle_read_index(m.from, ctx),
            MessageKind::ReadIndexResponse { ctx, index } => {
                if matches!(self.role, Role::Follower { .. }) {
                    self.read_states.push(ReadState { ctx, index });
                }
            }
        }
    }

    /// True if a `Ready` is waiting.
    pub fn has_ready(&self) -> bool {
        !self.msgs.is_empty()
            || self.hard_state() != self.hard_state_sent
            || !self.log.unsent_entries().is_empty()
            || self.log.applied() < self.log.commit()
            || !self.read_states.is_empty()
            || self.pending_snapshot.is_some()
    }

    /// Takes what the caller must persist, send and apply, if anything.
    pub fn ready(&mut self) -> Option<Ready> {
        assert!(!self.ready_pending, "one Ready at a time");
        self.broadcast_commit();
        if !self.has_ready() {
            return None;
        }
        let hard_state = self.hard_state();
        let ready = Ready {
            number: self.ready_number + 1,
            hard_state: (hard_state != self.hard_state_sent).then_some(hard_state),
            snapshot: self.pending_snapshot.take(),
            entries: self.log.unsent_entries().to_vec(),
            messages: std::mem::take(&mut self.msgs),
            committed_entries: self.log.next_committed(usize::MAX).to_vec(),
            read_states: std::mem::take(&mut self.read_states),
        };
        self.ready_number = ready.number;
        self.ready_pending = true;
        self.hard_state_sent = hard_state;
        self.log.mark_sent();
        Some(ready)
    }

    /// Closes a `Ready`: its entries are durable and its committed entries applied.
    pub fn advance(&mut self, ready: Ready) {
        assert!(self.ready_pending, "advance without ready");
        assert_eq!(
            ready.number, self.ready_number,
            "advance closes the last Ready"
        );
        self.ready_pending = false;
        if let Some(last) = ready.entries.last() {
            self.log.stable_to(last.index);
        }
        if let Some(last) = ready.committed_entries.last() {
            self.log.applied_to(last.index);
        }
        // The leader counts its own log only once it is durable, so a crash cannot take back a
        // vote towards commitment.
        if matches!(self.role, Role::Leader { .. }) {
            self.maybe_commit();
        }
        self.after_input();
    }

    fn after_input(&self) {
        #[cfg(any(debug_assertions, feature = "invariants"))]
        self.check_invariants();
    }

    /// Checks every invariant this node can check about itself. O(peers).
    pub fn check_invariants(&self) {
        self.log.check_invariants();
        if self.log.offset() > Index(0) {
            assert!(
                self.snapshot
                    .as_ref()
                    .is_some_and(|s| s.index >= self.log.offset()),
                "a compacted log holds a snapshot covering its offset"
            );
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
                assert_eq!(
                    progress.len() + 1,
                    self.config.peers.len(),
                    "progress per peer"
                );
                for (peer, p) in progress {
                    assert!(p.match_index < p.next_index, "match < next for {peer}");
                    assert!(p.next_index <= last.next(), "next <= last + 1 for {peer}");
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

    /// The tally of a (pre-)election: its own vote is counted, every voter is a peer, and it
    /// has not yet won (a majority ends the election at once).
    fn check_votes(&self, votes: &BTreeMap<NodeId, bool>) {
        assert_eq!(votes.get(&self.config.id), Some(&true), "own vote counted");
        for voter in votes.keys() {
            assert!(
                self.config.peers.binary_search(voter).is_ok(),
                "vote from non-peer {voter}"
            );
        }
        let yes = votes.values().filter(|&&g| g).count();
        assert!(
            yes < majority(self.config.peers.len()),
            "a won election ends at once"
        );
    }

    // --- Role transitions -------------------------------------------------------------------

    fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        if self.config.redraw_timeout || self.election_timeout_randomized == 0 {
            self.election_timeout_randomized = self.draw_election_timeout();
        }
    }

    /// A randomized election timeout (Raft §5.2), in whole steps of
    /// `election_timeout_step_ticks` past the minimum when that is over 1.
    fn draw_election_timeout(&mut self) -> u64 {
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

    fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        assert!(term >= self.term, "terms never go back");
        if term > self.term {
            self.term = term;
            self.voted_for = None;
        }
        if !matches!(self.role, Role::Follower { .. }) {
            self.reads.clear();
        }
        // Raft Figure 2 resets the timer only on AppendEntries from the current leader or on
        // granting a vote; etcd-io/raft (and this core by default) also resets it on every
        // step-down. `step_down_resets_timer = false` keeps the paper's rule.
        let keep_timer = !self.config.step_down_resets_timer
            && leader.is_none()
            && !matches!(self.role, Role::Leader { .. });
        self.role = Role::Follower { leader };
        if !keep_timer {
            self.reset_election_timer();
        }
    }

    fn become_candidate(&mut self) {
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
        if majority(self.config.peers.len()) == 1 {
            self.become_leader();
            return;
        }
        self.request_votes(self.term, false);
    }

    fn become_pre_candidate(&mut self) {
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
        if majority(self.config.peers.len()) == 1 {
            self.become_candidate();
            return;
        }
        self.request_votes(Term(self.term.0 + 1), true);
    }

    /// Sends RequestVote (or PreVote) for `term` to every other voter.
    fn request_votes(&mut self, term: Term, pre_vote: bool) {
        let (last_log_index, last_log_term) = (self.log.last_index(), self.log.last_term());
        for i in 0..self.config.peers.len() {
            let to = self.config.peers[i];
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
                }
            };
            self.send_at(to, term, kind);
        }
    }

    fn become_leader(&mut self) {
        assert!(
            matches!(self.role, Role::Candidate { .. }),
            "invalid transition -> leader"
        );
        let last = self.log.last_index();
        let progress = self
            .config
            .peers
            .iter()
            .filter(|&&p| p != self.config.id)
            .map(|&p| (p, Progress::new(last)))
            .collect();
        self.role = Role::Leader { progress };
        self.reads.clear();
        self.heartbeat_elapsed = 0;
        self.election_elapsed = 0;
        // Raft §5.4.2 and §8: a leader commits entries of earlier terms only through an entry of
        // its own term, so it appends a no-op at once.
        self.append_own(EntryKind::Noop);
        self.broadcast_append();
    }

    // --- Handlers ----------------------------------------------------------------------------

    fn reply_stale(&mut self, m: &Message) {
        match m.kind {
            MessageKind::Vote { .. } => {
                self.send(m.from, MessageKind::VoteResponse { granted: false });
            }
            // A pre-candidate whose term fell behind (it was away while the others moved on)
            // learns ours from the rejection. Dropping its pre-vote instead can wedge a cluster
            // with PreVote: its better log needs our vote, our pre-votes need its grant, and it
            // ignores our lower-term ones (etcd#8243).
            MessageKind::PreVote { .. } => {
                self.send(m.from, MessageKind::PreVoteResponse { granted: false });
            }
            // An AppendEntries from a lower term is answered with our term, which deposes its
            // leader. It may be a delayed message, or this node's term ran ahead while it was
            // partitioned (a candidate whose elections failed). With CheckQuorum's lease the
            // others ignore such a node's RequestVotes and with PreVote its term no longer
            // rises, so this answer is how the cluster's term catches up and the node rejoins
            // (etcd-io/raft `raft.go` `Step`, the `m.Term < r.Term` branch, which answers only
            // with CheckQuorum or PreVote on; here it is always answered).
            MessageKind::Append { .. } | MessageKind::Snapshot { .. } => {
                let kind = MessageKind::AppendResponse {
                    success: false,
                    match_index: Index(0),
                    hint: None,
                    read_seq: 0,
                };
                self.send(m.from, kind);
            }
            // Replies from an older term carry nothing we can use; a read or a command asked of
            // an old term is dropped and its asker times out.
            MessageKind::VoteResponse { .. }
            | MessageKind::PreVoteResponse { .. }
            | MessageKind::AppendResponse { .. }
            | MessageKind::Propose { .. }
            | MessageKind::ReadIndex { .. }
            | MessageKind::ReadIndexResponse { .. } => {}
        }
    }

    /// Raft §5.4.1: a log ending at `(last_log_index, last_log_term)` is at least as
    /// up-to-date as ours.
    fn log_up_to_date(&self, last_log_index: Index, last_log_term: Term) -> bool {
        let (my_index, my_term) = (self.log.last_index(), self.log.last_term());
        last_log_term > my_term || (last_log_term == my_term && last_log_index >= my_index)
    }

    /// CheckQuorum's lease (Raft thesis §4.2.3): this node heard from a current leader (or is
    /// one) within the minimum election timeout, so it ignores RequestVote of a higher term.
    fn in_lease(&self) -> bool {
        self.config.check_quorum && self.leader_recently_heard()
    }

    /// RequestVote receiver (Raft Figure 2, §5.2, §5.4.1).
    fn handle_vote(&mut self, candidate: NodeId, last_log_index: Index, last_log_term: Term) {
        let free = self.voted_for.is_none_or(|v| v == candidate);
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
    fn handle_pre_vote(&mut self, candidate: NodeId, term: Term, index: Index, log_term: Term) {
        assert!(
            term >= self.term,
            "a stale pre-vote is answered by reply_stale"
        );
        let free = term > self.term || self.voted_for.is_none_or(|v| v == candidate);
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
    fn handle_pre_vote_response(&mut self, voter: NodeId, term: Term, granted: bool) {
        let next = Term(self.term.0 + 1);
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
        let yes = votes.values().filter(|&&g| g).count();
        if yes >= majority(self.config.peers.len()) {
            // Raft thesis §9.6: a majority would vote for it, so it starts a real election.
            self.become_candidate();
        }
    }

    fn handle_vote_response(&mut self, voter: NodeId, granted: bool) {
        let Role::Candidate { votes } = &mut self.role else {
            return;
        };
        let first_answer = votes.insert(voter, granted).is_none();
        let yes = votes.values().filter(|&&g| g).count();
        let no = votes.values().filter(|&&g| !g).count();
        if yes >= majority(self.config.peers.len()) {
            self.become_leader();
        } else if self.config.backoff_on_lost_vote
            && first_answer
            && !granted
            && no == majority(self.config.peers.len())
        {
            // Lost this term: give the servers that can win a head start next time.
            self.election_timeout_randomized += self.config.election_timeout_max_ticks;
        }
    }

    /// AppendEntries receiver (Raft Figure 2, §5.3).
    fn handle_append(
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
            }),
            Some(t) if t != prev_log_term => Some(RejectHint {
                rejected: prev_log_index,
                conflict_term: Some(t),
                conflict_index: self.log.first_index_of_term(t, prev_log_index),
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
        let last_new = Index(prev_log_index.0 + entries.len() as u64);
        // Raft Figure 2, receiver rule 5: commitIndex = min(leaderCommit, index of last new entry).
        self.log.commit_to(leader_commit.min(last_new));
        self.acknowledge(leader, last_new, read_seq);
    }

    /// InstallSnapshot receiver (Raft §7, Figure 13): a snapshot beyond what this node has
    /// committed replaces its log up to the snapshot's index (a matching suffix is kept) and,
    /// through the next `Ready`, its state machine. The answer acknowledges the commit index,
    /// which is the snapshot's index once it is taken.
    fn handle_snapshot(&mut self, leader: NodeId, snapshot: Snapshot) {
        self.follow(leader);
        if snapshot.index > self.log.commit() {
            self.log.restore(snapshot.index, snapshot.term);
            self.snapshot = Some(snapshot.clone());
            self.pending_snapshot = Some(snapshot);
        }
        self.acknowledge(leader, self.log.commit(), 0);
    }

    /// Raft §5.2: a node that hears from the leader of its term follows it (a candidate returns
    /// to follower); two leaders in one term would break election safety.
    fn follow(&mut self, leader: NodeId) {
        assert!(
            !matches!(self.role, Role::Leader { .. }),
            "two leaders in term {}: {} and {leader}",
            self.term,
            self.config.id
        );
        self.become_follower(self.term, Some(leader));
    }

    /// A successful AppendEntries answer: this node matches the leader up to `match_index`.
    fn acknowledge(&mut self, leader: NodeId, match_index: Index, read_seq: u64) {
        let kind = MessageKind::AppendResponse {
            success: true,
            match_index,
            hint: None,
            read_seq,
        };
        self.send(leader, kind);
    }

    /// The state machine saved `snapshot`, everything it applied up to the snapshot's index:
    /// keep it to send to followers that fall behind, and drop the log entries up to `keep`
    /// entries before its index (Raft §7; the kept ones spare a slightly lagging follower a
    /// whole snapshot). An older snapshot than the one held is ignored.
    pub fn compact(&mut self, snapshot: Snapshot, keep: u64) {
        assert!(!self.ready_pending, "compact between ready and advance");
        if self
            .snapshot
            .as_ref()
            .is_some_and(|s| s.index >= snapshot.index)
        {
            return;
        }
        assert!(
            snapshot.index <= self.log.applied(),
            "snapshot at {} beyond applied {}",
            snapshot.index,
            self.log.applied()
        );
        assert_eq!(
            self.log.term(snapshot.index),
            Some(snapshot.term),
            "the snapshot's term is its last entry's"
        );
        let to = Index(snapshot.index.0.saturating_sub(keep));
        self.log.compact(to);
        self.snapshot = Some(snapshot);
        self.after_input();
    }

    /// The newest snapshot this node holds, if any.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    fn handle_append_response(
        &mut self,
        peer: NodeId,
        success: bool,
        match_index: Index,
        hint: Option<RejectHint>,
        read_seq: u64,
    ) {
        let inflight_max = self.config.inflight_msgs_max;
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
            }
        } else {
            // Rejections of what was sent before a snapshot say nothing new: wait for it.
            let Some(hint) = hint.filter(|_| !p.snapshot_pending()) else {
                return;
            };
            let match_index = p.match_index;
            if hint.rejected <= match_index {
                return; // A stale rejection: the follower has since matched further.
            }
            let next = self.next_after_reject(hint);
            let p = self.progress_mut(peer);
            let next = next.max(p.match_index.next()).min(hint.rejected);
            p.on_reject(next);
        }
        let p = self.progress_mut(peer);
        if p.next_index <= last && p.can_send(inflight_max) {
            self.send_append(peer);
        }
    }

    /// Fast back-off (Raft thesis §5.3): skip a whole conflicting term per round trip.
    fn next_after_reject(&self, hint: RejectHint) -> Index {
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

    // --- Leader replication -----------------------------------------------------------------

    fn progress_mut(&mut self, peer: NodeId) -> &mut Progress {
        let Role::Leader { progress } = &mut self.role else {
            panic!("progress of {peer} asked of a non-leader");
        };
        progress
            .get_mut(&peer)
            .expect("leader has progress for every peer")
    }

    fn append_own(&mut self, kind: EntryKind) -> Index {
        let index = self.log.last_index().next();
        self.log.push(Entry {
            term: self.term,
            index,
            kind,
        });
        index
    }

    /// Raft §5.3, §5.4.2: commit the highest index stored on a majority, if it is of this term.
    fn maybe_commit(&mut self) {
        let Role::Leader { progress } = &self.role else {
            return;
        };
        // A reused buffer: this runs on every append response.
        let mut matches = std::mem::take(&mut self.match_scratch);
        matches.clear();
        matches.extend(progress.values().map(|p| p.match_index));
        matches.push(self.log.stable());
        let n = majority_index(&mut matches);
        self.match_scratch = matches;
        if n <= self.log.commit() {
            return;
        }
        let own_term = self.log.term(n) == Some(self.term);
        if own_term || planted!(self.config.bugs.commit_old_term) {
            self.log.commit_to(n);
        }
        // Reads that waited for this term's first commit can now take the commit index.
        if own_term && self.reads.release_waiting(self.log.commit()) {
            self.start_read_round();
        }
    }

    // --- Linearizable reads (thesis §6.4) ------------------------------------------------------

    /// Asks for a read index on behalf of a client; `ctx` comes back in a `ReadState` once the
    /// index is known to be safe. A follower forwards the request to its leader.
    pub fn read_index(&mut self, ctx: u64) -> Result<(), ProposeError> {
        assert!(!self.ready_pending, "read_index between ready and advance");
        match &self.role {
            Role::Leader { .. } => self.register_read(ReadRequest {
                from: self.config.id,
                ctx,
            })?,
            Role::Follower {
                leader: Some(leader),
            } => {
                let leader = *leader;
                self.send(leader, MessageKind::ReadIndex { ctx });
            }
            Role::Follower { leader: None }
            | Role::PreCandidate { .. }
            | Role::Candidate { .. } => {
                return Err(ProposeError::NotLeader { leader: None });
            }
        }
        self.after_input();
        Ok(())
    }

    /// The leader appends a follower's forwarded commands while it has room for them; the rest
    /// are dropped (the follower's clients time out, as they would if the message were lost).
    /// A command whose tag it already appended this term (a duplicated message) is skipped: the
    /// network may deliver a message twice, and a command must not apply twice. Only the leader
    /// of the message's term appends, so remembering its own term's tags is enough.
    fn handle_propose(&mut self, from: NodeId, proposals: Vec<Proposal>) {
        if !matches!(self.role, Role::Leader { .. }) {
            return;
        }
        self.progress_mut(from).recent_active = true;
        let mut appended = false;
        for Proposal { tag, data } in proposals {
            let uncommitted = self.log.last_index().0 - self.log.commit().0;
            if uncommitted >= self.config.uncommitted_entries_max {
                break;
            }
            if self.progress_mut(from).first_forward(tag) {
                self.append_own(EntryKind::Forwarded {
                    origin: from,
                    tag,
                    data,
                });
                appended = true;
            }
        }
        if appended {
            self.broadcast_append();
        }
    }

    fn handle_read_index(&mut self, from: NodeId, ctx: u64) {
        if matches!(self.role, Role::Leader { .. }) {
            // The follower asks this node as its leader of this term: it is active.
            self.progress_mut(from).recent_active = true;
            // A full queue drops the request; the follower's client times out.
            let _ = self.register_read(ReadRequest { from, ctx });
        }
    }

    fn register_read(&mut self, request: ReadRequest) -> Result<(), ProposeError> {
        let commit = self.log.commit();
        if planted!(self.config.bugs.stale_read) {
            let ReadRequest { from, ctx } = request;
            let index = commit;
            if from == self.config.id {
                self.read_states.push(ReadState { ctx, index });
            } else {
                self.send(from, MessageKind::ReadIndexResponse { ctx, index });
            }
            return Ok(());
        }
        let own_term_committed = self.log.term(commit) == Some(self.term);
        let ok = if own_term_committed || planted!(self.config.bugs.read_index_early) {
            self.reads.register(request, commit)
        } else {
            self.reads.wait(request)
        };
        if !ok {
            return Err(ProposeError::Dropped);
        }
        if self.reads.has_pending() {
            self.start_read_round();
        }
        Ok(())
    }

    /// One round of empty AppendEntries at each follower's match index (which always succeeds)
    /// carrying the newest read sequence; a single-node cluster confirms at once.
    fn start_read_round(&mut self) {
        for i in 0..self.config.peers.len() {
            let peer = self.config.peers[i];
            if peer != self.config.id {
                let at = self.probe_point(peer);
                self.send_append_from(peer, at, at);
            }
        }
        self.confirm_reads();
    }

    /// Hands out every read that a majority has confirmed.
    fn confirm_reads(&mut self) {
        let Role::Leader { progress } = &self.role else {
            return;
        };
        let need = majority(self.config.peers.len());
        let mut confirmed = Vec::new();
        while let Some(read) = self.reads.pop_confirmed(|seq| {
            1 + progress.values().filter(|p| p.read_ack >= seq).count() >= need
        }) {
            confirmed.push(read);
        }
        for read in confirmed {
            let ReadRequest { from, ctx } = read.request;
            if from == self.config.id {
                self.read_states.push(ReadState {
                    ctx,
                    index: read.index,
                });
            } else {
                self.send(
                    from,
                    MessageKind::ReadIndexResponse {
                        ctx,
                        index: read.index,
                    },
                );
            }
        }
    }

    fn broadcast_append(&mut self) {
        let inflight_max = self.config.inflight_msgs_max;
        let last = self.log.last_index();
        for i in 0..self.config.peers.len() {
            let peer = self.config.peers[i];
            if peer == self.config.id {
                continue;
            }
            let p = self.progress_mut(peer);
            if p.next_index <= last && p.can_send(inflight_max) {
                self.send_append(peer);
            }
        }
    }

    /// Tells every follower of a commit index it has not been sent, in an empty AppendEntries
    /// from its match index (always accepted), once per `Ready` so that one message carries
    /// every commit of a batch. Without it a follower learns of a commit only with the next
    /// append or heartbeat, and a write it forwarded (which it answers once applied here, for
    /// read-your-writes) waits up to a heartbeat interval; etcd-io/raft broadcasts the same way
    /// after its commit index moves.
    fn broadcast_commit(&mut self) {
        if !matches!(self.role, Role::Leader { .. }) {
            return;
        }
        let commit = self.log.commit();
        let offset = self.log.offset();
        for i in 0..self.config.peers.len() {
            let peer = self.config.peers[i];
            if peer == self.config.id {
                continue;
            }
            let p = self.progress_mut(peer);
            if p.commit_news(commit) && !p.snapshot_pending() && p.match_index >= offset {
                let at = p.match_index;
                self.send_append_from(peer, at, at);
            }
        }
    }

    /// Raft §5.2: the leader sends periodic heartbeats (AppendEntries, empty when the follower is
    /// up to date) to maintain its authority. They double as retries: a lost probe is sent again,
    /// and a follower that missed an append rejects the heartbeat and is probed.
    fn broadcast_heartbeat(&mut self) {
        let inflight_max = self.config.inflight_msgs_max;
        for i in 0..self.config.peers.len() {
            let peer = self.config.peers[i];
            if peer == self.config.id {
                continue;
            }
            let p = self.progress_mut(peer);
            p.on_heartbeat();
            if p.snapshot_pending() {
                // Keep the follower's timer quiet while its snapshot is on the way.
                let at = self.probe_point(peer);
                self.send_append_from(peer, at, at);
                continue;
            }
            let p = self.progress_mut(peer);
            if !p.can_send(inflight_max) {
                // A full pipeline at heartbeat time means appends or their replies were lost:
                // probe again from what the follower is known to hold.
                let next = p.match_index.next();
                p.on_reject(next);
            }
            self.send_append(peer);
        }
    }

    fn send_append(&mut self, peer: NodeId) {
        let p = self.progress_mut(peer);
        let prev = p.next_index.prev();
        if prev < self.log.offset() {
            self.send_snapshot(peer);
            return;
        }
        let last = self.log.last_index();
        self.send_append_from(peer, prev, last);
        let sent_last = Index(
            prev.0
                + self
                    .log
                    .slice(prev.next(), last, self.config.msg_entries_max)
                    .len() as u64,
        );
        self.progress_mut(peer).sent(sent_last);
    }

    /// InstallSnapshot (Raft §7): the follower needs entries this log compacted.
    fn send_snapshot(&mut self, peer: NodeId) {
        let snapshot = self
            .snapshot
            .clone()
            .expect("a log compacted above 0 holds a snapshot");
        // Wait about two election timeouts for the answer before probing (and sending) again.
        let heartbeats =
            2 * self.config.election_timeout_max_ticks / self.config.heartbeat_interval_ticks + 1;
        self.progress_mut(peer)
            .snapshot_sent(snapshot.index, heartbeats);
        self.send(peer, MessageKind::Snapshot { snapshot });
    }

    /// Where an empty AppendEntries to `peer` can start and surely be accepted: its match index,
    /// or the compacted offset if it matches less (then it is rejected, but still counts as an
    /// answer to this leader).
    fn probe_point(&mut self, peer: NodeId) -> Index {
        let offset = self.log.offset();
        self.progress_mut(peer).match_index.max(offset)
    }

    fn send_append_from(&mut self, peer: NodeId, prev: Index, last: Index) {
        let prev_log_term = self
            .log
            .term(prev)
            .expect("leader holds every entry up to next - 1");
        let entries = self
            .log
            .slice(prev.next(), last, self.config.msg_entries_max)
            .to_vec();
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

    fn send(&mut self, to: NodeId, kind: MessageKind) {
        self.send_at(to, self.term, kind);
    }

    /// Sends a message stamped with `term`: this node's term, except for the pre-vote messages
    /// of Raft thesis §9.6, which carry the next term.
    fn send_at(&mut self, to: NodeId, term: Term, kind: MessageKind) {
        assert_ne!(to, self.config.id, "no message to self");
        assert!(
            term >= self.term,
            "a message never carries a term below ours"
        );
        let ahead = matches!(
            kind,
            MessageKind::PreVote { .. } | MessageKind::PreVoteResponse { granted: true }
        );
        assert!(
            term == self.term || ahead,
            "only pre-vote messages run ahead"
        );
        self.msgs.push(Message {
            from: self.config.id,
            to,
            term,
            kind,
        });
    }
}
