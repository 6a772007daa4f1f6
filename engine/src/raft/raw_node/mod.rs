//! The Raft state machine of one node (Raft §5), driven by `step`, `tick` and `propose`, read out
//! through `ready` and closed with `advance`.
//!
//! Depends on `types`, `quorum`, `progress`, `raft_log` and `read_only`. No I/O, no clock, no
//! threads: time is `tick()`, and the only randomness is the injected ChaCha RNG that draws
//! election timeouts.
//!
//! This file holds the node's types and its whole public API, and routes each message to its
//! handler ([`RawNode::step`]); each other file is one concern, as one `impl RawNode` block:
//! - `election`: timers, role transitions, RequestVote and PreVote (Raft §5.2, §5.4.1; thesis
//!   §9.6), CheckQuorum's lease (thesis §4.2.3, §6.2);
//! - `replication`: the leader's side: heartbeats, AppendEntries and their answers, the commit
//!   rule (Raft §5.3, §5.4.2), the commit broadcast, and the commands followers forward;
//! - `follower`: the AppendEntries receiver (Raft Figure 2, §5.3);
//! - `reads`: linearizable reads by ReadIndex (thesis §6.4);
//! - `snapshot`: InstallSnapshot, sent and received (Raft §7);
//! - `transfer`: leadership transfer and TimeoutNow (thesis §3.10);
//! - `invariants`: the checks run after every input.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

mod election;
mod follower;
mod invariants;
mod membership;
mod reads;
mod recovering;
mod replication;
mod snapshot;
mod transfer;

pub use membership::MembershipStamp;

use super::progress::Progress;
use super::raft_log::RaftLog;
use super::read_only::{ReadOnly, ReadRequest};
use super::types::{
    Config, ConfigError, Entry, EntryKind, HardState, Index, Message, MessageKind, NodeId,
    Proposal, ProposeError, ReadState, Snapshot, StepError, Term,
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
///
/// One exception to "durable before sending": a leader may send `messages` before its own
/// `entries` are durable, so that its disk write overlaps its followers' (Raft thesis §10.2.1;
/// the node loop's `NodeConfig::leader_sends_before_sync`). It is safe because the leader never
/// counts its own unsynced entries towards commitment: its own vote in the commit rule is the
/// log's stable index, which moves only when [`RawNode::advance`] says `entries` are durable,
/// so no entry commits on a copy that a crash of the leader could take back. Every other node,
/// and a leader's hard state, snapshot and answers, keep the rule.
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
    /// Send AFTER `hard_state`, `snapshot` and `entries` are durable (a leader may send before
    /// its `entries` are: see above); they may be lost, delayed, duplicated or reordered.
    pub messages: Vec<Message>,
    /// Apply to the state machine in order, AFTER `entries` are durable. They are committed.
    pub committed_entries: Vec<Entry>,
    /// Serve each read once the state machine has applied its index (thesis §6.4).
    pub read_states: Vec<ReadState>,
}

impl Ready {
    /// True if it holds nothing (as new, or once closed by [`RawNode::advance_in_place`]).
    pub fn is_empty(&self) -> bool {
        self.hard_state.is_none()
            && self.entries.is_empty()
            && self.snapshot.is_none()
            && self.messages.is_empty()
            && self.committed_entries.is_empty()
            && self.read_states.is_empty()
    }

    /// Empties it, keeping its vectors' memory.
    fn clear(&mut self) {
        self.hard_state = None;
        self.entries.clear();
        self.snapshot = None;
        self.messages.clear();
        self.committed_entries.clear();
        self.read_states.clear();
    }
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
    /// Scratch space for the broadcasts' list of followers (see `take_followers`).
    follower_scratch: Vec<NodeId>,
    /// While leading: command bytes in the log after the commit index (see
    /// `Config::uncommitted_bytes_max`).
    uncommitted_bytes: u64,
    /// Leader only: reads being confirmed.
    reads: ReadOnly,
    /// Confirmed reads for the next `Ready`.
    read_states: Vec<ReadState>,
    /// The newest snapshot this node holds (taken locally or received), sent to followers that
    /// need compacted entries. Invariant: `Some` with `index >= log.offset()` once the offset
    /// is above 0.
    snapshot: Option<Snapshot>,
    /// Leader only: older snapshots still on their way to a follower. A transfer finishes with
    /// the snapshot it started (Raft §7 sends one snapshot, chunk by chunk): restarting it with
    /// every newer snapshot starves a follower whose transfer takes longer than the leader
    /// takes to compact again, and that follower then keeps an old configuration for good.
    /// Holds at most one snapshot per follower; the data is shared, not copied.
    sending: Vec<Snapshot>,
    /// A snapshot received from the leader, for the next `Ready`.
    pending_snapshot: Option<Snapshot>,
    /// A snapshot being received from the leader, chunk by chunk.
    incoming: Option<snapshot::Incoming>,
    /// Leader only: the leadership transfer in progress (thesis §3.10).
    transfer: Option<transfer::Transfer>,
    /// The configurations in the log; the latest is in force (thesis §4.1).
    configs: membership::Configs,
    /// Set while the log cannot vouch for what it acknowledged: no vote, no campaign until
    /// caught up past this index and term (see `recovering`).
    recovering: Option<(Index, Term)>,
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
        // The log writes entries before the hard state, so a torn write can keep entries of a
        // term whose hard state it lost. The node sent nothing in that term (nothing leaves
        // before a sync), so it may take the term with no vote.
        // Raft §7: the snapshot carries the configuration as of its index; the log's
        // configuration entries after it follow (thesis §4.1).
        let configs = match &snapshot {
            Some(s) if !s.membership.voters.is_empty() => {
                let after = entries.partition_point(|e| e.index <= s.index);
                membership::Configs::recovered(s.membership.clone(), s.index, &entries[after..])
            }
            _ => membership::Configs::recovered(
                RawNode::starting_membership(&config),
                offset,
                &entries,
            ),
        };
        let log =
            RaftLog::recovered_after(offset, offset_term, entries, hard_state.commit, applied);
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
            follower_scratch: Vec::new(),
            uncommitted_bytes: 0,
            reads: ReadOnly::default(),
            read_states: Vec::new(),
            snapshot,
            sending: Vec::new(),
            pending_snapshot: None,
            incoming: None,
            transfer: None,
            configs,
            recovering: None,
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
    ///
    /// Allowed between `ready` and `advance`, while the caller persists a `Ready` (the node
    /// loop keeps time while a log sync is pending). A tick never touches what that `Ready`
    /// holds: it changes timers and the role, and what it makes (heartbeats, a campaign's term,
    /// vote and requests, a one-node cluster's no-op entry) waits in the next `Ready`, behind
    /// that one's persist (Raft Figure 2: "respond to RPCs only after updating stable
    /// storage"). Nothing it does counts the pending entries as durable: the leader's own match
    /// index is the log's stable index, which only `advance` moves (§5.3, §5.4.2).
    pub fn tick(&mut self) {
        if matches!(self.role, Role::Leader { .. }) {
            self.tick_leader();
        } else {
            self.election_elapsed += 1;
            if self.election_elapsed >= self.election_timeout_randomized {
                if self.may_campaign() {
                    self.campaign();
                } else {
                    // A learner, or a server outside its configuration, waits for a leader.
                    // It forgets the one it has not heard from for an election timeout, so it
                    // no longer refuses (pre-)votes in its name (thesis §4.2.3, §9.6): a voter
                    // whose configuration is behind this node's may need its grant.
                    self.become_follower(self.term, None);
                }
            }
        }
        self.after_input();
    }

    /// Starts an election now (Raft §5.2), whatever the timer says; with `pre_vote`, a
    /// pre-election (Raft thesis §9.6). A leader ignores it.
    pub fn campaign(&mut self) {
        // Only a voter of its latest configuration campaigns (thesis §4.1), or one that the
        // latest removes while it is uncommitted (§4.2.2: `may_campaign`); a recovering node
        // may not (`recovering`, rule 1).
        if matches!(self.role, Role::Leader { .. }) || !self.may_campaign() || !self.may_vote() {
            return;
        }
        if self.config.pre_vote {
            self.become_pre_candidate();
        } else {
            self.become_candidate(false);
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
        // Thesis §3.10: "the prior leader stops accepting new client requests" during a
        // transfer, or the target's log would never catch up with it.
        if let Some(t) = self.transfer {
            return Err(ProposeError::Transferring { target: t.target });
        }
        if !self.has_room(data.len()) {
            return Err(ProposeError::Dropped);
        }
        let index = self.append_own(EntryKind::Command(data.into()));
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
        self.step_checked(m)
    }

    /// While the driver syncs the pending `Ready` (handed out, not yet advanced), takes from a
    /// peer's message what it says about commitment, which needs nothing of this node's
    /// pending sync; returns the message if it must still be stepped after
    /// [`RawNode::advance`] (its answer would promise durable state, Figure 2).
    /// - A leader steps a successful AppendEntries answer of its term at once: the follower's
    ///   match index counts towards a commit (§5.3, §5.4.2: `maybe_commit`). What the step
    ///   sends waits for the next `Ready`.
    /// - A follower takes the commit index from its leader's AppendEntries of its term whose
    ///   previous entry matches its log: by Log Matching (§5.3) its log up to
    ///   `prev_log_index` is the leader's, so receiver rule 5 with the entries it already
    ///   holds gives `min(leaderCommit, prev_log_index)`. It keeps the message, to append its
    ///   entries and answer after `advance`.
    ///
    /// Either way the commit index stays within this node's durable log (the stable index)
    /// until the sync is done, as it does between `Ready`s. Committed entries are durable on a
    /// majority and never change (State Machine Safety), so the driver may apply them at once
    /// ([`RawNode::committed_during_sync`], [`RawNode::applied_early`]).
    pub fn step_during_sync(&mut self, m: Message) -> Result<Option<Message>, StepError> {
        assert!(self.ready_pending, "step_during_sync outside a Ready");
        if m.term != self.term || m.to != self.config.id {
            return Ok(Some(m));
        }
        match (&self.role, &m.kind) {
            (Role::Leader { .. }, MessageKind::AppendResponse { success: true, .. }) => {
                self.step_checked(m)?;
                Ok(None)
            }
            (
                Role::Follower {
                    leader: Some(leader),
                },
                MessageKind::Append {
                    prev_log_index,
                    prev_log_term,
                    leader_commit,
                    ..
                },
            ) if *leader == m.from && self.recovering.is_none() => {
                crate::raft::validate::check(&m, None)?;
                crate::raft::validate::check_committed(&m, &self.log)?;
                if *prev_log_index >= self.log.offset()
                    && self.log.term(*prev_log_index) == Some(*prev_log_term)
                {
                    let durable = self.log.stable();
                    self.log
                        .commit_to((*leader_commit).min(*prev_log_index).min(durable));
                    self.after_input();
                }
                Ok(Some(m))
            }
            _ => Ok(Some(m)),
        }
    }

    fn step_checked(&mut self, m: Message) -> Result<(), StepError> {
        if m.to != self.config.id {
            return Err(StepError::WrongNode {
                to: m.to,
                me: self.config.id,
            });
        }
        // Any server may write to us: one added to the configuration after our latest entry,
        // or one removed from it (thesis §4.2.3 limits what the latter can do).
        if m.from == self.config.id || m.from == NodeId(0) {
            return Err(StepError::UnknownPeer(m.from));
        }
        let leader_last = (matches!(self.role, Role::Leader { .. }) && m.term == self.term)
            .then(|| self.log.last_index());
        crate::raft::validate::check(&m, leader_last)?;
        crate::raft::validate::check_timeout_now(&m, self.term, self.leader())?;
        if m.term >= self.term {
            crate::raft::validate::check_committed(&m, &self.log)?;
        }
        if self.step_term(&m) && !self.sender_untracked(&m) {
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
                // A leadership transfer's vote (thesis §3.10) is let through: the leader itself
                // asked for this election. A forged one can depose a healthy leader, no more:
                // the vote is still granted once per term and only to an up-to-date log
                // (§5.2, §5.4.1), which is all Election Safety and Leader Completeness need.
                MessageKind::Vote {
                    transfer: false, ..
                } if self.in_lease() => return false,
                // Raft thesis §4.2.3: "if a server receives a RequestVote request within the
                // minimum election timeout of hearing from a current leader, it does not update
                // its term or grant its vote". Applied here, with or without CheckQuorum, to a
                // candidate outside our configuration: a server removed from the cluster that
                // did not learn it times out and would otherwise depose leader after leader.
                MessageKind::Vote { .. }
                    if !self.membership().is_voter(m.from) && self.leader_recently_heard() =>
                {
                    return false;
                }
                // Raft thesis §9.6: a pre-vote never changes the receiver's term, and a granted
                // pre-vote carries the term the pre-candidate has not moved to yet.
                MessageKind::PreVote { .. } | MessageKind::PreVoteResponse { granted: true } => {}
                // Raft §5.1: a newer term makes any node a follower of that term; one whose
                // vote the candidate will not get keeps its election timer running (Figure 2).
                MessageKind::Vote {
                    last_log_index,
                    last_log_term,
                    ..
                } if !(self.may_vote() && self.log_up_to_date(last_log_index, last_log_term)) => {
                    self.step_down_for_refused_vote(m.term);
                }
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
                ..
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
            MessageKind::Snapshot {
                index,
                term,
                offset,
                total,
                data,
                done,
                membership,
            } => {
                let chunk = snapshot::Chunk {
                    offset,
                    total,
                    data: &data,
                    done,
                    membership: *membership,
                };
                self.handle_snapshot_chunk(m.from, (index, term), chunk);
            }
            MessageKind::SnapshotResponse { index, offset } => {
                self.handle_snapshot_response(m.from, index, offset);
            }
            MessageKind::Propose { proposals } => self.handle_propose(m.from, proposals),
            MessageKind::ReadIndex { ctx } => self.handle_read_index(m.from, ctx),
            MessageKind::ReadIndexResponse { ctx, index } => {
                if matches!(self.role, Role::Follower { .. }) {
                    self.read_states.push(ReadState { ctx, index });
                }
            }
            MessageKind::TimeoutNow => self.handle_timeout_now(),
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
        let mut ready = Ready::default();
        self.ready_into(&mut ready).then_some(ready)
    }

    /// [`RawNode::ready`] into a `Ready` the caller keeps, so that a driver handling one
    /// `Ready` after another neither moves it nor allocates its vectors again: `ready` must be
    /// empty (new, or closed by [`RawNode::advance_in_place`]). Returns false, leaving it
    /// empty, if there is nothing to do.
    pub fn ready_into(&mut self, ready: &mut Ready) -> bool {
        assert!(!self.ready_pending, "one Ready at a time");
        assert!(ready.is_empty(), "a Ready is filled only when empty");
        self.broadcast_commit();
        if !self.has_ready() {
            return false;
        }
        let hard_state = self.hard_state();
        ready.number = self.ready_number + 1;
        ready.hard_state = (hard_state != self.hard_state_sent).then_some(hard_state);
        if self.pending_snapshot.is_some() {
            // Only then: taking an empty slot would still copy a whole `Option<Snapshot>`.
            ready.snapshot = self.pending_snapshot.take();
        }
        ready.entries.extend_from_slice(self.log.unsent_entries());
        // The caller's empty vector takes the core's place, so the next messages reuse it.
        std::mem::swap(&mut ready.messages, &mut self.msgs);
        ready
            .committed_entries
            .extend_from_slice(self.log.next_committed(usize::MAX));
        std::mem::swap(&mut ready.read_states, &mut self.read_states);
        self.ready_number = ready.number;
        self.ready_pending = true;
        self.hard_state_sent = hard_state;
        self.log.mark_sent();
        true
    }

    /// The driver applied committed entries up to `index` before making the pending `Ready`'s
    /// new entries durable: committed entries are durable on a majority and never change
    /// (Figure 3, State Machine Safety), so applying them needs no sync of this node's. The
    /// applied index says so at once, while the `Ready` is still open; `advance` closes it as
    /// usual.
    pub fn applied_early(&mut self, index: Index) {
        assert!(self.ready_pending, "applied_early outside a Ready");
        self.log.applied_to(index);
    }

    /// Committed entries not yet applied, for a driver applying them while the pending
    /// `Ready`'s sync is in flight (after [`RawNode::step_during_sync`] moved the commit
    /// index); it reports them with [`RawNode::applied_early`].
    pub fn committed_during_sync(&self) -> &[Entry] {
        assert!(self.ready_pending, "committed_during_sync outside a Ready");
        self.log.next_committed(usize::MAX)
    }

    /// Closes a `Ready`: its entries are durable and its committed entries applied.
    pub fn advance(&mut self, mut ready: Ready) {
        // The driver sent the messages (draining the vector keeps its memory): the next Ready's
        // messages reuse it instead of growing a new one.
        let messages = std::mem::take(&mut ready.messages);
        self.advance_in_place(&mut ready);
        if self.msgs.is_empty() && messages.is_empty() {
            self.msgs = messages;
        }
    }

    /// [`RawNode::advance`] for a `Ready` filled by [`RawNode::ready_into`]: closes it and
    /// empties it, keeping its vectors' memory for the next one. Messages still in it are
    /// dropped, as `advance` drops them: send them first.
    pub fn advance_in_place(&mut self, ready: &mut Ready) {
        assert!(self.ready_pending, "advance without ready");
        assert_eq!(
            ready.number, self.ready_number,
            "advance closes the last Ready"
        );
        self.ready_pending = false;
        if let Some(last) = ready.entries.last() {
            self.log.stable_to(last.index);
        }
        // The driver may have applied further while the sync was pending (`applied_early`).
        if let Some(last) = ready.committed_entries.last()
            && last.index > self.log.applied()
        {
            self.log.applied_to(last.index);
        }
        ready.clear();
        // The leader counts its own log only once it is durable, so a crash cannot take back a
        // vote towards commitment.
        if matches!(self.role, Role::Leader { .. }) {
            self.maybe_commit();
        }
        self.after_input();
    }

    /// Checks every invariant this node can check about itself. O(peers).
    pub fn check_invariants(&self) {
        self.check_state();
    }

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
            | MessageKind::SnapshotResponse { .. }
            | MessageKind::Propose { .. }
            | MessageKind::ReadIndex { .. }
            | MessageKind::ReadIndexResponse { .. }
            | MessageKind::TimeoutNow => {}
        }
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
        assert_eq!(
            snapshot.membership,
            self.membership_at(snapshot.index),
            "a snapshot carries the configuration at its index (Raft §7)"
        );
        let to = Index(snapshot.index.0.saturating_sub(keep));
        self.log.compact(to);
        self.compact_configs();
        if let Some(older) = self.snapshot.replace(snapshot) {
            self.sending.push(older);
        }
        self.prune_sending();
        self.after_input();
    }

    /// The newest snapshot this node holds, if any.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    /// Three nodes, every message delivered at once, each stepped in id order.
    fn cluster() -> Vec<RawNode> {
        let ids = vec![NodeId(1), NodeId(2), NodeId(3)];
        ids.iter()
            .map(|&id| {
                let config = Config::new(id, ids.clone(), 7 + id.0);
                RawNode::new(config, HardState::default(), Vec::new()).expect("valid config")
            })
            .collect()
    }

    /// The same inputs give the same `Ready`s whether they are handed out by `ready` and
    /// closed by `advance`, or filled into one reused `Ready` and closed in place, as the node
    /// loop does.
    #[test]
    fn readies_filled_in_place_equal_the_ones_handed_out() {
        let (mut moved, mut in_place) = (cluster(), cluster());
        let mut reused = Ready::default();
        let mut proposed = 0;
        for round in 0..200 {
            let mut inbox: Vec<Message> = Vec::new();
            for i in 0..3 {
                loop {
                    let handed = moved[i].ready();
                    let filled = in_place[i].ready_into(&mut reused);
                    assert_eq!(handed.is_some(), filled, "round {round}, node {i}");
                    let Some(mut handed) = handed else { break };
                    assert_eq!(handed, reused, "round {round}, node {i}");
                    inbox.append(&mut handed.messages);
                    reused.messages.clear();
                    moved[i].advance(handed);
                    in_place[i].advance_in_place(&mut reused);
                    assert!(reused.is_empty());
                }
            }
            for m in inbox {
                let to = usize::try_from(m.to.0 - 1).expect("ids 1..=3");
                let (a, b) = (moved[to].step(m.clone()), in_place[to].step(m));
                assert_eq!(a, b);
            }
            for i in 0..3 {
                if round % 3 == 0 {
                    moved[i].tick();
                    in_place[i].tick();
                }
                if moved[i].role().kind() == RoleKind::Leader && round % 2 == 0 {
                    let command = vec![u8::try_from(round % 256).expect("a byte")];
                    let a = moved[i].propose(command.clone());
                    assert_eq!(a, in_place[i].propose(command));
                    proposed += usize::from(a.is_ok());
                }
            }
        }
        assert!(proposed > 10, "a leader was elected and took commands");
        for (a, b) in moved.iter().zip(&in_place) {
            assert_eq!(a.status(), b.status());
            assert!(a.raft_log().commit() > Index(10), "commands committed");
        }
    }
}
