//! The client history: every operation with its invocation, its response (or timeout), the node
//! it went to and the simulated times, for the checkers and the run report.

use std::collections::BTreeMap;

use engine::raft::NodeId;

use crate::check::history::{Op, Ret};
use serde::Serialize;

use super::OpKind;

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OpOutcome {
    /// The store answered with an event.
    Ok {
        /// The event's action (`set`, `expire`, ...).
        action: &'static str,
        /// The event's key.
        key: String,
        /// The store index in the answer (`X-Etcd-Index`).
        store_index: u64,
        /// The node's Raft index: of the entry for a write, the applied index for a read.
        raft_index: u64,
        /// The value seen or written, if the node is a file.
        value: Option<String>,
        /// The node's `modifiedIndex`, if any.
        modified_index: Option<u64>,
    },
    /// The store refused with an etcd error code (the write, if any, was still committed).
    StoreError {
        /// The etcd v2 error code.
        code: u16,
    },
    /// The cluster could not answer (not leader, busy, down, overwritten): nothing happened,
    /// or for `overwritten`/`stopped` maybe something did.
    Unavailable {
        /// A leader to try next.
        leader: Option<NodeId>,
    },
    /// No answer in time: it may or may not have happened.
    TimedOut,
}

/// One operation of the history: the checkers' record, tagged with the workload's kind.
#[derive(Clone, Debug, Serialize)]
pub struct OpRecord {
    /// What the workload meant to do.
    pub kind: OpKind,
    /// The operation as the checkers see it.
    pub op: Op,
    /// For a write: the hash of the command's bytes, to find it in the log.
    pub data_hash: Option<u64>,
    /// What the client saw on the wire (status, `X-Etcd-Index`, the JSON body): the last
    /// answer of the operation (a lock round: its acquire), if one came.
    pub http: Option<super::http::Answer>,
}

/// Per-kind counters for `--json`.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct KindStats {
    /// Answered by the store with an event.
    pub ok: u64,
    /// Answered with an error (store or cluster).
    pub failed: u64,
    /// No answer in time.
    pub timed_out: u64,
}

/// Every operation of a run, in completion order. Bounded by the run's length and rate.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// The records.
    pub ops: Vec<OpRecord>,
}

impl History {
    /// An empty history with room for `ops` operations.
    pub fn with_capacity(ops: usize) -> History {
        History {
            ops: Vec::with_capacity(ops),
        }
    }

    /// Adds one finished operation.
    pub fn push(&mut self, record: OpRecord) {
        self.ops.push(record);
    }

    /// The operations, for the checkers.
    pub fn checker_ops(&self) -> Vec<Op> {
        self.ops.iter().map(|r| r.op.clone()).collect()
    }

    /// Requests sent, by shape (the kind's kebab-case name).
    pub fn shapes(&self) -> BTreeMap<String, u64> {
        // Counted by kind first: each kind's name is made once, not once per request.
        let mut by_kind: BTreeMap<OpKind, u64> = BTreeMap::new();
        for record in &self.ops {
            *by_kind.entry(record.kind).or_default() += 1;
        }
        let mut shapes = BTreeMap::new();
        for (kind, count) in by_kind {
            let name = serde_json::to_value(kind)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_else(|| format!("{kind:?}"));
            *shapes.entry(name).or_default() += count;
        }
        shapes
    }

    /// Counters by operation kind.
    pub fn stats(&self) -> BTreeMap<OpKind, KindStats> {
        let mut by_kind: BTreeMap<OpKind, KindStats> = BTreeMap::new();
        for record in &self.ops {
            let s = by_kind.entry(record.kind).or_default();
            match record.op.ret {
                Ret::Ok { .. } | Ret::Listing { .. } => s.ok += 1,
                Ret::Err { .. } | Ret::Fail => s.failed += 1,
                Ret::Unknown => s.timed_out += 1,
            }
        }
        by_kind
    }
}
