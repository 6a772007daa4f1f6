//! The Raft core: a pure, synchronous state machine written from the Raft paper (§5).
//!
//! Input: [`RawNode::step`], [`RawNode::tick`], [`RawNode::propose`], [`RawNode::campaign`].
//! Output: [`RawNode::ready`], closed by [`RawNode::advance`]. No I/O, no clock, no threads;
//! the only randomness is a ChaCha RNG seeded through [`Config::seed`].
//!
//! Layers: `types` < `quorum` < `progress`, `raft_log` < `raw_node` < `describe`.

mod describe;
pub mod membership;
pub mod progress;
pub mod quorum;
pub mod raft_log;
mod raw_node;
pub mod read_only;
mod types;
mod validate;

pub use membership::{ConfChange, ConfChangeError, MemberAddr, Membership};
pub use raw_node::{MembershipStamp, Proposed, RawNode, Ready, Role, RoleKind, Status};
#[cfg(feature = "planted-bugs")]
pub use types::Bugs;
pub use types::{
    Config, ConfigError, Entry, EntryKind, HardState, Index, Message, MessageKind, NodeId, Payload,
    Proposal, ProposeError, ReadState, RejectHint, SNAPSHOT_RESERVE_MAX, SNAPSHOT_TOTAL_MAX,
    Snapshot, SnapshotData, StepError, Term, TransferError,
};
