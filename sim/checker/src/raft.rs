//! What the Raft safety checker observes, as plain data: identifiers, entries reduced to a
//! fingerprint, hard states, roles, the promises a sent message makes, and what a restart
//! recovered. Whoever runs nodes (the simulator, a test harness) converts its own types into
//! these; the checker never sees a node's code.

use std::fmt;

macro_rules! newtype_u64 {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

newtype_u64!(
    /// A Raft term (Raft §5.1); 0 is the term before any election.
    Term
);
newtype_u64!(
    /// A log index (Raft §5.3); 0 is the empty position before the first entry.
    Index
);
newtype_u64!(
    /// A node's identity; 0 means "nobody".
    NodeId
);

impl Index {
    /// The index after this one.
    #[must_use]
    pub fn next(self) -> Index {
        Index(self.0 + 1)
    }
}

/// A log entry as the checker sees it: where it is, which leader made it, and a fingerprint of
/// its payload. Two entries are the same entry when all three agree (Raft §5.3 compares index
/// and term; the fingerprint lets the checker see two different payloads under one index and
/// term, which only a broken leader produces).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The entry's position in the log.
    pub index: Index,
    /// The term of the leader that created it.
    pub term: Term,
    /// A hash of the command it carries (of the empty payload for a no-op).
    pub fingerprint: u64,
}

/// The state Raft keeps on stable storage (Raft Figure 2, "Persistent state"), plus the commit
/// index, which a node may persist too so that a restart re-applies its committed prefix.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    /// `currentTerm`.
    pub term: Term,
    /// `votedFor` in `term`.
    pub voted_for: Option<NodeId>,
    /// `commitIndex`.
    pub commit: Index,
}

impl fmt::Display for HardState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let vote = self.voted_for.map_or(0, |v| v.0);
        write!(f, "Term:{} Vote:{} Commit:{}", self.term, vote, self.commit)
    }
}

/// A node's role (Raft §5.1, with the thesis's pre-vote candidate, §9.6). The discriminants are
/// part of the trace hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Follows a leader, or waits for one.
    Follower = 0,
    /// Asks for pre-votes without changing its term.
    PreCandidate = 1,
    /// Asks for votes in a new term.
    Candidate = 2,
    /// Leads its term.
    Leader = 3,
}

/// What a node's visible state says after a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// The node.
    pub id: NodeId,
    /// Its current term.
    pub term: Term,
    /// Its vote in that term.
    pub voted_for: Option<NodeId>,
    /// Its commit index.
    pub commit: Index,
    /// Its applied index.
    pub applied: Index,
    /// Its role.
    pub role: Role,
    /// The term of the entry at `commit` in its log, if it still holds it (for the §5.4.2 rule:
    /// a leader's commit index lands on an entry of its own term).
    pub commit_term: Option<Term>,
}

/// What a message promises about its sender's durable state (Raft Figure 2: persistent state
/// is "updated on stable storage before responding to RPCs").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Promise {
    /// A RequestVote response granting the vote.
    VoteGranted,
    /// A successful AppendEntries response: the sender holds the leader's log up to `match_index`.
    Appended {
        /// The last index acknowledged.
        match_index: Index,
    },
    /// Anything else.
    Nothing,
}

/// A message being sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message {
    /// The sender.
    pub from: NodeId,
    /// The recipient.
    pub to: NodeId,
    /// The term it carries.
    pub term: Term,
    /// What it promises.
    pub promise: Promise,
}

/// What a node recovered from its disk when it started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// The hard state.
    pub hard_state: HardState,
    /// The index of the last compacted entry (0 if none): `entries` start after it.
    pub log_start: Index,
    /// The index of the snapshot it restored (Raft §7), if any.
    pub snapshot: Option<Index>,
    /// The entries after `log_start`.
    pub entries: Vec<Entry>,
    /// The log found damage that was not a torn tail (or an earlier life's recovery from it
    /// has not ended): it may have lost synced records, and the node does not vote until it
    /// has caught up from a leader.
    pub damaged: bool,
}
