//! Floe's checkers: they judge what a world and a workload recorded; they inject nothing.
//!
//! This crate depends on neither the engine nor the simulator: an oracle that imported the code
//! it judges could not see bugs in that code. It takes plain observations (the types of
//! [`raft`], [`history::Op`], [`watch::CommittedEvent`]) and the simulator, or a harness around a real
//! cluster, converts what it sees into them. `README.md` next to this crate's `Cargo.toml`
//! says what each checker promises and how.

pub mod fnv;
pub mod history;
pub mod history_file;
pub mod index;
pub mod jepsen;
pub mod linearizability;
pub mod listing;
pub mod liveness;
pub mod locks;
pub mod raft;
mod raft_safety;
pub mod replica;
pub mod watch;

pub use raft_safety::RaftSafety;

use raft::{Index, NodeId, Term};

/// A broken rule, with where it broke.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    /// The rule, in the paper's words where it has them.
    pub rule: &'static str,
    /// The node that showed it.
    pub node: NodeId,
    /// The term it happened in.
    pub term: Term,
    /// The log index concerned (0 if none).
    pub index: Index,
    /// What exactly was seen.
    pub detail: String,
    /// Simulated time it was seen at (filled in by the harness).
    pub at_ms: u64,
}

impl Violation {
    /// A violation of `rule` on `node`.
    pub fn new(
        rule: &'static str,
        node: NodeId,
        term: Term,
        index: Index,
        detail: String,
    ) -> Violation {
        Violation {
            rule,
            node,
            term,
            index,
            detail,
            at_ms: 0,
        }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} violated at {} ms: node {} term {} index {}: {}",
            self.rule, self.at_ms, self.node, self.term, self.index, self.detail
        )
    }
}

/// A rule a client history breaks, naming the operation that shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct HistoryViolation {
    /// The rule.
    pub rule: &'static str,
    /// The operation that cannot be explained (its `Op::id`).
    pub op: Option<u64>,
    /// What exactly was seen.
    pub detail: String,
}

impl std::fmt::Display for HistoryViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.op {
            Some(op) => write!(f, "{} (operation {op}): {}", self.rule, self.detail),
            None => write!(f, "{}: {}", self.rule, self.detail),
        }
    }
}
