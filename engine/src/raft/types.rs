//! Plain data of the Raft core: identifiers, entries, messages, hard state, configuration.
//!
//! Depends on nothing else in the crate.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::membership::Membership;

/// A command's bytes, shared: the log, each `Ready` (to persist and to apply) and every
/// follower's AppendEntries hold the same bytes, so handing an entry on is a reference count,
/// not a copy.
pub type Payload = Arc<[u8]>;

/// Serde for a [`Payload`]: one byte string, exactly as `serde_bytes` writes a `Vec<u8>` (so
/// the peer protocol and every postcard encoding of an entry are unchanged).
mod payload_serde {
    use serde::{Deserializer, Serializer};

    use super::Payload;

    pub fn serialize<S: Serializer>(data: &Payload, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(data)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Payload, D::Error> {
        let bytes: serde_bytes::ByteBuf = serde::Deserialize::deserialize(deserializer)?;
        Ok(Payload::from(bytes.into_vec()))
    }
}

macro_rules! newtype_u64 {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

newtype_u64!(
    /// A Raft term (Raft §5.1). Term 0 is the term before any election.
    Term
);
newtype_u64!(
    /// A log index (Raft §5.3). Index 0 is the empty position before the first entry.
    Index
);
newtype_u64!(
    /// A node's identity in the cluster. Ids start at 1; 0 means "nobody".
    NodeId
);

impl Index {
    /// The index after this one.
    #[must_use]
    pub fn next(self) -> Index {
        Index(self.0 + 1)
    }
    /// The index before this one (saturating at 0).
    #[must_use]
    pub fn prev(self) -> Index {
        Index(self.0.saturating_sub(1))
    }
}

/// What an entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    /// The empty entry a new leader appends to commit entries of earlier terms (Raft §5.4.2, §8).
    Noop,
    /// An opaque command for the state machine.
    Command(#[serde(with = "payload_serde")] Payload),
    /// A command a follower forwarded to the leader for its client (as etcd's followers forward
    /// proposals): `origin` answers its client when it applies the entry whose `tag` it gave.
    Forwarded {
        /// The node that forwarded it.
        origin: NodeId,
        /// The origin's tag for the proposal, unique across the origin's restarts.
        tag: u64,
        /// The command.
        #[serde(with = "payload_serde")]
        data: Payload,
    },
    /// A configuration of the cluster (Raft thesis §4.1): in force on a server as soon as it is
    /// in its log, committed or not. Nothing for the state machine. Boxed: a configuration
    /// is large and rare, and every entry is as big as its largest kind.
    Config(Box<Membership>),
}

/// One log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The term of the leader that created the entry.
    pub term: Term,
    /// The entry's position in the log.
    pub index: Index,
    /// The payload.
    pub kind: EntryKind,
}

impl Entry {
    /// The command bytes, or an empty slice for a no-op.
    pub fn data(&self) -> &[u8] {
        match &self.kind {
            EntryKind::Noop | EntryKind::Config(_) => &[],
            EntryKind::Command(data) | EntryKind::Forwarded { data, .. } => data,
        }
    }
}

/// The state Raft must persist before answering any RPC (Raft Figure 2, "Persistent state").
///
/// `commit` is persisted too (as etcd does), so that a restarted node can re-apply its committed
/// prefix before it serves anything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    /// `currentTerm`: latest term this node has seen.
    pub term: Term,
    /// `votedFor`: the candidate that received this node's vote in `term`, if any.
    pub voted_for: Option<NodeId>,
    /// `commitIndex`: highest log index known to be committed.
    pub commit: Index,
}

/// The state machine as of `index`: everything applied up to and including it (Raft §7).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The last index the snapshot covers ("last included index", Raft Figure 13).
    pub index: Index,
    /// The term of the entry at `index` ("last included term").
    pub term: Term,
    /// The state machine's own serialization of itself, shared rather than copied.
    pub data: SnapshotData,
    /// The latest configuration in the log up to `index` (Raft §7: the snapshot holds "the
    /// latest configuration as of the last included index", to support membership changes).
    /// Empty voters mean "none in the log": the node's starting configuration holds.
    pub membership: Membership,
}

/// A snapshot's bytes, immutable and reference-counted: the log's compaction, the Raft core's
/// copy, every InstallSnapshot chunk and the state machine's restore share one buffer instead
/// of copying it (a clone or a [`SnapshotData::slice`] costs O(1)).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SnapshotData(bytes::Bytes);

impl SnapshotData {
    /// The bytes in `range`, sharing this buffer. `range` must lie within the data.
    #[must_use]
    pub fn slice(&self, range: std::ops::Range<usize>) -> SnapshotData {
        SnapshotData(self.0.slice(range))
    }
}

impl std::ops::Deref for SnapshotData {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for SnapshotData {
    /// Takes the vector's buffer without copying it.
    fn from(bytes: Vec<u8>) -> SnapshotData {
        SnapshotData(bytes::Bytes::from(bytes))
    }
}

impl From<&[u8]> for SnapshotData {
    fn from(bytes: &[u8]) -> SnapshotData {
        SnapshotData(bytes::Bytes::copy_from_slice(bytes))
    }
}

impl std::fmt::Debug for SnapshotData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bytes", self.0.len())
    }
}

/// Serialized as a byte string (postcard: the same bytes as a `Vec<u8>`).
impl Serialize for SnapshotData {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for SnapshotData {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<SnapshotData, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = SnapshotData;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("snapshot bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<SnapshotData, E> {
                Ok(SnapshotData::from(v))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<SnapshotData, E> {
                Ok(SnapshotData::from(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<SnapshotData, A::Error> {
                // Bounded by what the input holds, not by a length it claims.
                let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
                while let Some(b) = seq.next_element::<u8>()? {
                    bytes.push(b);
                }
                Ok(SnapshotData::from(bytes))
            }
        }
        deserializer.deserialize_bytes(Visit)
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Snapshot {{ index: {}, term: {}, data: {} bytes, {} }}",
            self.index,
            self.term,
            self.data.len(),
            self.membership
        )
    }
}

/// A Raft RPC or its reply. Every message carries the sender's term (Raft §5.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Sender.
    pub from: NodeId,
    /// Receiver.
    pub to: NodeId,
    /// The sender's current term.
    pub term: Term,
    /// What the message is.
    pub kind: MessageKind,
}

/// The RPCs of Raft Figure 2 and their replies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageKind {
    /// RequestVote (Raft §5.2, §5.4.1).
    Vote {
        /// Index of the candidate's last log entry.
        last_log_index: Index,
        /// Term of the candidate's last log entry.
        last_log_term: Term,
        /// The candidate campaigns because the leader told it to (a leadership transfer, Raft
        /// thesis §3.10): voters let it through CheckQuorum's lease, which would otherwise
        /// ignore it as a disruption. The log comparison (§5.4.1) applies as ever.
        transfer: bool,
    },
    /// Reply to RequestVote.
    VoteResponse {
        /// True means the candidate received the vote.
        granted: bool,
    },
    /// PreVote (Raft thesis §9.6): "would you vote for me in the next term?". The message's
    /// `term` is the term the pre-candidate would campaign in (its own term + 1); neither the
    /// sender nor the receiver changes its term or vote for it.
    PreVote {
        /// Index of the pre-candidate's last log entry.
        last_log_index: Index,
        /// Term of the pre-candidate's last log entry.
        last_log_term: Term,
    },
    /// Reply to PreVote. A grant carries the requested term (the receiver's own term may be
    /// lower: it did not move to it); a rejection carries the receiver's current term, so a
    /// pre-candidate with a stale term learns the newer one (etcd#8243).
    PreVoteResponse {
        /// True means the receiver would grant its vote.
        granted: bool,
    },
    /// AppendEntries (Raft §5.3); with no entries it is a heartbeat (Raft §5.2).
    Append {
        /// Index of the log entry immediately preceding the new ones.
        prev_log_index: Index,
        /// Term of the entry at `prev_log_index`.
        prev_log_term: Term,
        /// Entries to store (empty for a heartbeat).
        entries: Vec<Entry>,
        /// The leader's `commitIndex`.
        leader_commit: Index,
        /// The leader's read sequence when it sent this; echoed back, a reply confirms the
        /// leader still led when every ReadIndex request up to it was registered (thesis §6.4).
        read_seq: u64,
    },
    /// Reply to AppendEntries.
    AppendResponse {
        /// True if the follower held an entry matching `prev_log_index` and `prev_log_term`.
        success: bool,
        /// On success, the index of the last entry the follower now matches the leader on.
        match_index: Index,
        /// On rejection, the fast back-off hint (Raft thesis §5.3, "conflict index/term").
        hint: Option<RejectHint>,
        /// The `read_seq` of the AppendEntries this answers.
        read_seq: u64,
    },
    /// InstallSnapshot (Raft §7, Figure 13): one chunk of the snapshot the follower needs (the
    /// leader compacted those entries), at most `Config::msg_bytes_max` bytes of it. Chunks go
    /// one at a time, each answered with a `SnapshotResponse` naming the next byte the
    /// follower wants, so a transfer resumes where it stopped; the last chunk (`done`) is
    /// answered with an `AppendResponse` whose `match_index` is the snapshot's index once it
    /// is durable.
    Snapshot {
        /// The snapshot's last included index.
        index: Index,
        /// The term of that entry (last included term).
        term: Term,
        /// Where `data` lies in the snapshot's bytes.
        offset: u64,
        /// The size of the whole snapshot, in bytes.
        total: u64,
        /// The chunk: the snapshot's bytes from `offset` on.
        data: SnapshotData,
        /// True for the last chunk (`offset + data.len() == total`).
        done: bool,
        /// The configuration as of `index` (Raft §7), which the follower takes with it.
        /// Boxed: every message is as big as its largest kind, and messages move often.
        membership: Box<Membership>,
    },
    /// A follower's answer to a snapshot chunk that is not the last: it holds the snapshot at
    /// `index` up to byte `offset` (0 when it starts over), and wants the chunk from there.
    SnapshotResponse {
        /// The snapshot's last included index.
        index: Index,
        /// The next byte the follower wants.
        offset: u64,
    },
    /// A follower hands its clients' commands to the leader, which appends each as an
    /// [`EntryKind::Forwarded`] entry (or drops them if it does not lead or is full: the
    /// follower's clients then time out, their outcome unknown).
    Propose {
        /// The commands, each with the follower's tag.
        proposals: Vec<Proposal>,
    },
    /// A follower asks the leader for a read index on behalf of its client (thesis §6.4).
    ReadIndex {
        /// The follower's own tag for the request.
        ctx: u64,
    },
    /// The leader's answer: reads that see everything up to `index` are linearizable.
    ReadIndexResponse {
        /// The tag of the request.
        ctx: u64,
        /// The read index.
        index: Index,
    },
    /// TimeoutNow (Raft thesis §3.10): the leader, transferring its leadership, tells a
    /// follower whose log matches its own to start an election at once.
    TimeoutNow,
}

/// One command a follower forwards to the leader.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// The follower's tag for it.
    pub tag: u64,
    /// The command.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// Where a rejecting follower suggests the leader retry from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectHint {
    /// The rejected `prev_log_index`.
    pub rejected: Index,
    /// The term of the follower's entry at `rejected`, if it had one.
    pub conflict_term: Option<Term>,
    /// The first index of `conflict_term` in the follower's log, or its last index + 1.
    pub conflict_index: Index,
    /// The follower is recovering from a damaged log: it may have lost entries it had
    /// acknowledged, so the leader's match index for it may be untrue (see `recovering`).
    pub lost: bool,
}

/// A linearizable read may be served once the state machine has applied `index` (thesis §6.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadState {
    /// The caller's tag from `read_index`.
    pub ctx: u64,
    /// The read index: the leader's commit index once it confirmed its leadership.
    pub index: Index,
}

/// Planted bugs of the Raft core (feature `planted-bugs`, which only the simulator enables), each
/// off unless asked, so the checkers can prove they bite. The node loop's and the store's planted
/// bugs are theirs (`server::NodeBugs`, `server::KvBugs`).
#[cfg(feature = "planted-bugs")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bugs {
    /// The leader commits an entry of an earlier term by counting replicas (the Figure 8 mistake,
    /// Raft §5.4.2).
    pub commit_old_term: bool,
    /// The leader answers linearizable reads at its commit index without confirming that it
    /// still leads (etcd#741): a deposed leader serves stale reads.
    pub stale_read: bool,
    /// A new leader serves ReadIndex before it has committed an entry of its own term, so its
    /// commit index may be behind what an earlier leader acknowledged (etcd#7331).
    pub read_index_early: bool,
    /// A follower appends after its own entries without cutting a conflicting suffix: entries
    /// present at an index are kept whatever their term (Raft §5.3, receiver rule 3 skipped).
    pub no_truncate: bool,
    /// A follower writes each snapshot chunk after the bytes it holds, whatever the chunk's
    /// offset (Raft Figure 13, receiver rule 3, "write data into snapshot file at given
    /// offset", done wrong): a duplicated chunk is written twice, a chunk after a lost one
    /// leaves a hole, and the snapshot is installed so.
    pub chunk_any_offset: bool,
    /// The target of a leadership transfer campaigns in the leader's term instead of the next
    /// one, as if TimeoutNow appointed it (Raft thesis §3.10 has it start a new election): it
    /// votes a second time in the term, and two leaders may share it.
    pub transfer_same_term: bool,
    /// A node uses the latest COMMITTED configuration instead of the latest one in its log
    /// (thesis §4.1 says the latest, committed or not): a leader counts quorums of a
    /// configuration its followers have left.
    pub config_from_committed: bool,
    /// Voter changes are made one server at a time, without a joint configuration, and a new
    /// leader makes one before its own term's no-op commits: the single-server bug found in
    /// 2015 (Ongaro, raft-dev), whose fix is to wait for that commit.
    pub single_server_no_wait: bool,
    /// A leader that removed itself keeps leading after the new configuration commits (thesis
    /// §4.2.2 has it step down), counting itself in a quorum it is no longer part of.
    pub removed_leader_stays: bool,
    /// The leader takes a recovering follower's rejection below its match index for a stale
    /// one, as Raft without lying disks may: the follower never gets back what its damaged log
    /// lost, and never votes again.
    pub lost_ack_trusted: bool,
    /// A leader whose sync is pending counts the entries it is still writing as its own
    /// replica when it steps its followers' answers (`RawNode::step_during_sync`): one
    /// follower's acknowledgement then commits an entry a single disk holds (Raft §5.3 counts
    /// only what a majority stored).
    pub commit_while_syncing: bool,
}

/// Static configuration of one Raft node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This node.
    pub id: NodeId,
    /// The voters the cluster started with, this node included: the configuration until the
    /// log or a snapshot holds one (Raft thesis §4.1).
    pub peers: Vec<NodeId>,
    /// This node joins a running cluster (etcd's `--initial-cluster-state existing`): it starts
    /// with no configuration, so it neither campaigns nor counts itself a voter until the
    /// leader's log or snapshot gives it one.
    pub joining: bool,
    /// Minimum election timeout in ticks; the randomized timeout is drawn from
    /// `[election_timeout_ticks, election_timeout_max_ticks)` (Raft §5.2).
    pub election_timeout_ticks: u64,
    /// Exclusive upper end of the randomized election timeout, in ticks.
    pub election_timeout_max_ticks: u64,
    /// Granularity of the randomized election timeout, in ticks (1, the default, draws any
    /// tick of the range). With a step `s > 1` the timeout is the minimum plus `s` times
    /// `round(u * k)`, `u` uniform in [0, 1) and `k` the whole steps in
    /// `[election_timeout_ticks, election_timeout_max_ticks - 1]`: the draw LogCabin made in whole
    /// milliseconds (`lround` of a uniform), under which the two ends of the range are half as
    /// likely as the values between. An election-research variant: the Raft paper's Figure 16
    /// was measured with it.
    pub election_timeout_step_ticks: u64,
    /// The leader sends heartbeats every this many ticks.
    pub heartbeat_interval_ticks: u64,
    /// Most entries in one AppendEntries message.
    pub msg_entries_max: usize,
    /// Most AppendEntries messages in flight to one follower while replicating.
    pub inflight_msgs_max: usize,
    /// Most command bytes in flight to one follower while replicating (etcd-io/raft's
    /// MaxInflightBytes): past it the leader waits for acknowledgements before sending more.
    pub inflight_bytes_max: u64,
    /// Most entries the leader accepts beyond its commit index before dropping proposals.
    pub uncommitted_entries_max: u64,
    /// Most command bytes in one AppendEntries message; one entry goes alone even if larger
    /// (etcd-io/raft's `MaxSizePerMsg`).
    pub msg_bytes_max: u64,
    /// Most command bytes the leader holds beyond its commit index: a proposal past it is
    /// refused (`ProposeError::Dropped`) rather than queued, except into an empty budget
    /// (etcd-io/raft's `MaxUncommittedEntriesSize`).
    pub uncommitted_bytes_max: u64,
    /// Seed of the ChaCha RNG that draws election timeouts.
    pub seed: u64,
    /// PreVote (Raft thesis §9.6): an election timeout first asks a majority whether it would
    /// grant a vote for the next term, and only then increments the term and campaigns, so a
    /// node that cannot win (partitioned, or behind) does not disrupt the cluster with terms.
    pub pre_vote: bool,
    /// CheckQuorum (Raft thesis §6.2): a leader that has not heard from a majority within an
    /// election timeout steps down; and a node that heard from a leader within the minimum
    /// election timeout ignores RequestVote of a higher term (the leader "lease", thesis §4.2.3).
    pub check_quorum: bool,
    /// Whether stepping down to follower (on a higher term, or a candidate losing) restarts the
    /// election timer, as etcd-io/raft does (the default). `false` keeps the Raft paper's rule
    /// (Figure 2): only an AppendEntries from the current leader or a granted vote restart it,
    /// as in LogCabin, whose timings the paper's Figure 16 measured.
    pub step_down_resets_timer: bool,
    /// Whether a RequestVote of a higher term that this node refuses (its log is more
    /// up-to-date, Raft §5.4.1, or it is recovering) restarts its election timer as it moves
    /// to that term as any step-down does (`step_down_resets_timer`): with both `true`, etcd-io/
    /// raft's behaviour. `false`, the default, keeps the
    /// Raft paper's rule for this case (Figure 2: only a granted vote restarts it), so a node
    /// with a stale log that keeps campaigning cannot hold back the nodes that could win.
    pub refused_vote_resets_timer: bool,
    /// Re-draw the randomized election timeout at every timer restart (Raft §5.2, the
    /// default); `false` draws it once, at start (an election-research variant).
    pub redraw_timeout: bool,
    /// A candidate refused by a majority (it cannot win this term, e.g. its log is shorter)
    /// waits one maximum election timeout more before its next campaign (a research variant;
    /// off by default).
    pub backoff_on_lost_vote: bool,
    /// Planted bugs (all off by default; only with the `planted-bugs` feature).
    #[cfg(feature = "planted-bugs")]
    pub bugs: Bugs,
}

impl Config {
    /// A configuration with etcd-like ratios: heartbeat 1 tick, election 10..20 ticks.
    pub fn new(id: NodeId, peers: Vec<NodeId>, seed: u64) -> Config {
        Config {
            id,
            peers,
            joining: false,
            election_timeout_ticks: 10,
            election_timeout_max_ticks: 20,
            election_timeout_step_ticks: 1,
            heartbeat_interval_ticks: 1,
            msg_entries_max: 64,
            inflight_msgs_max: 64,
            inflight_bytes_max: 16 << 20,
            uncommitted_entries_max: 10_000,
            msg_bytes_max: 1 << 20,
            uncommitted_bytes_max: 64 << 20,
            seed,
            pre_vote: false,
            check_quorum: false,
            step_down_resets_timer: true,
            refused_vote_resets_timer: false,
            redraw_timeout: true,
            backoff_on_lost_vote: false,
            #[cfg(feature = "planted-bugs")]
            bugs: Bugs::default(),
        }
    }

    /// Checks the configuration, as etcd's `Config.validate` does.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id == NodeId(0) {
            return Err(ConfigError::Invalid("id must not be 0".into()));
        }
        if !self.peers.contains(&self.id) {
            return Err(ConfigError::Invalid("peers must contain id".into()));
        }
        let mut sorted = self.peers.clone();
        sorted.sort();
        sorted.dedup();
        if sorted.len() != self.peers.len() || sorted.contains(&NodeId(0)) {
            return Err(ConfigError::Invalid(
                "peers must be distinct and non-zero".into(),
            ));
        }
        if self.election_timeout_step_ticks == 0 {
            return Err(ConfigError::Invalid(
                "election_timeout_step_ticks must be > 0".into(),
            ));
        }
        if self.heartbeat_interval_ticks == 0 {
            return Err(ConfigError::Invalid(
                "heartbeat_interval_ticks must be > 0".into(),
            ));
        }
        if self.election_timeout_ticks <= self.heartbeat_interval_ticks {
            return Err(ConfigError::Invalid(
                "election_timeout_ticks must exceed heartbeat_interval_ticks".into(),
            ));
        }
        if self.election_timeout_max_ticks <= self.election_timeout_ticks {
            return Err(ConfigError::Invalid(
                "election_timeout_max_ticks must exceed election_timeout_ticks".into(),
            ));
        }
        if self.msg_entries_max == 0
            || self.inflight_msgs_max == 0
            || self.inflight_bytes_max == 0
            || self.msg_bytes_max == 0
            || self.uncommitted_bytes_max == 0
        {
            return Err(ConfigError::Invalid("message limits must be > 0".into()));
        }
        Ok(())
    }
}

/// A configuration that cannot work.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The named field is out of range.
    #[error("invalid raft config: {0}")]
    Invalid(String),
}

/// The most bytes a follower reserves up front for an incoming snapshot (it grows past this
/// as chunks come): a forged `total` cannot make it allocate more.
pub const SNAPSHOT_RESERVE_MAX: u64 = 64 << 20;

/// The largest snapshot a follower assembles (the durable log's own bound on one record).
pub const SNAPSHOT_TOTAL_MAX: u64 = 1 << 30;

/// Why a proposal was not appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// Only the leader appends; `leader` is this node's best guess at who is.
    #[error("not the leader (leader hint: {leader:?})")]
    NotLeader {
        /// The leader this node last heard from in its current term.
        leader: Option<NodeId>,
    },
    /// Too many uncommitted entries; retry later.
    #[error("proposal dropped: too many uncommitted entries")]
    Dropped,
    /// The leader is handing its leadership to `target` (Raft thesis §3.10) and takes no new
    /// command meanwhile; retry at the new leader, or here once the transfer gave up.
    #[error("leadership transfer to {target} in progress")]
    Transferring {
        /// The node leadership is being handed to.
        target: NodeId,
    },
}

/// Why a leadership transfer was not started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    /// Only the leader hands over leadership.
    #[error("not the leader (leader hint: {leader:?})")]
    NotLeader {
        /// The leader this node last heard from in its current term.
        leader: Option<NodeId>,
    },
    /// The leader cannot transfer to itself.
    #[error("transfer to the leader itself")]
    ToSelf,
    /// The target is not a voter of the cluster.
    #[error("node {0} is not a member")]
    NotMember(NodeId),
    /// A single-node cluster has nobody to hand over to.
    #[error("no follower to transfer to")]
    NoFollower,
}

/// Why a message was not stepped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// The message is not addressed to this node.
    #[error("message for node {to} stepped into node {me}")]
    WrongNode {
        /// The message's receiver.
        to: NodeId,
        /// This node.
        me: NodeId,
    },
    /// The sender is not a member of the cluster.
    #[error("message from unknown node {0}")]
    UnknownPeer(NodeId),
    /// The message holds content no correct peer sends (see `raft::validate`).
    #[error("malformed message: {0}")]
    Malformed(&'static str),
}
