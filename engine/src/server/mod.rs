//! The node: drives the Raft core, the durable log and a state machine through the world traits.
//!
//! Depends on `raft` and `log`. The loop is async but runtime-agnostic: it awaits only futures
//! that the world traits hand it (madsim's in the simulator, tokio's in production) and
//! `futures` channels, so the simulator and the production node run this same code.

mod client;
pub mod data_dir;
mod follower_stats;
mod kv;
pub mod lock;
pub mod metrics;
mod node;
mod settings;

pub use client::{Applied, Client, ClientError, ReadAnswer, Request};
pub use follower_stats::{FollowerStats, Latency};
#[cfg(feature = "planted-bugs")]
pub use kv::KvBugs;
pub use kv::{KvClient, KvError, KvGet, KvMachine, KvRead, KvRouter, KvWatch, KvWritten};
pub use metrics::Metrics;
#[cfg(feature = "planted-bugs")]
pub use node::NodeBugs;
pub use node::{MembershipHook, NodeConfig, NodeError, run};
pub use settings::NodeSettings;

use std::future::Future;

use crate::log::Recovered;
use crate::raft::{Entry, HardState, Index, Message, NodeId, RawNode, Term};

/// The world's clock.
pub trait Clock {
    /// Milliseconds since an arbitrary origin fixed for the life of the process (or simulation).
    fn now_ms(&self) -> u64;
    /// As `now_ms`, in microseconds (for round-trip measurements).
    fn now_us(&self) -> u64 {
        self.now_ms().saturating_mul(1000)
    }
    /// Completes once `now_ms() >= deadline_ms`.
    fn sleep_until(&self, deadline_ms: u64) -> impl Future<Output = ()>;
    /// Wall-clock milliseconds since the Unix epoch, in the world's time. Only a leader reads it,
    /// to stamp commands (TTL expiry instants); no replica decides anything by its own clock.
    fn unix_ms(&self) -> u64;
}

/// The world's network, as the engine assumes it: connectionless, and free to lose, delay,
/// duplicate and reorder messages.
pub trait Network {
    /// Sends a message to `msg.to`, without waiting and without any delivery guarantee.
    fn send(&mut self, msg: Message);
    /// The next message for this node, or `None` once the world's clock reaches `deadline_ms`.
    /// Must be cancel-safe: dropping the future before it completes loses no message.
    ///
    /// One call covers both waits of the node loop (a message or its next timer), so a world
    /// can arm a single timer per wait.
    fn recv_until(&mut self, deadline_ms: u64) -> impl Future<Output = Option<Message>>;
    /// A message that is already deliverable, without waiting.
    fn try_recv(&mut self) -> Option<Message>;
}

/// The three world services one node needs.
pub struct Env<C, N, D> {
    /// Time.
    pub clock: C,
    /// Peers.
    pub net: N,
    /// The node's durable storage.
    pub disk: D,
}

/// A point-in-time view of a state machine that makes its snapshot bytes when called
/// ([`StateMachine::snapshot_view`]).
pub type SnapshotBuild = Box<dyn FnOnce() -> Vec<u8> + Send>;

/// A deterministic state machine fed with committed entries, in log order.
pub trait StateMachine {
    /// What applying one command yields for the client that proposed it.
    type Output: Send + 'static;
    /// A read request.
    type Query: Send + 'static;
    /// A read's answer.
    type Answer: Send + 'static;
    /// A watch: a read that waits until the applied state has something for it.
    type Watch: Send + 'static;
    /// Applies one committed entry (no-ops included, so indexes stay contiguous).
    fn apply(&mut self, entry: &Entry) -> Self::Output;
    /// Answers a read from the applied state; never changes it.
    fn query(&self, query: &Self::Query) -> Self::Answer;
    /// Checks a watch against the applied state: `Some` once it fires (or fails), `None` to go
    /// on waiting. Called when the watch arrives and after every batch of applied entries.
    fn poll_watch(&self, watch: &Self::Watch) -> Option<Self::Answer>;
    /// The whole applied state as bytes, for a Raft snapshot (Raft §7).
    fn snapshot(&self) -> Vec<u8>;
    /// The applied state as it is now, taken cheaply (O(1) or small) on the node loop, that
    /// becomes [`StateMachine::snapshot`]'s bytes later and away from the loop: the loop hands
    /// it to [`crate::log::Disk::stage`] and goes on applying meanwhile. The default copies
    /// the bytes now; a machine with a structurally shared state does better.
    fn snapshot_view(&self) -> SnapshotBuild {
        let bytes = self.snapshot();
        Box::new(move || bytes)
    }
    /// Replaces the whole state with one saved by [`StateMachine::snapshot`]; an error says why
    /// the bytes are not one (the state is then unchanged).
    fn restore(&mut self, data: &[u8]) -> Result<(), String>;
    /// Fixes what a watch means against the state at its arrival (for the store: "from the
    /// next index" becomes a concrete index), before it is first polled.
    fn arm_watch(&self, _watch: &mut Self::Watch) {}
    /// The machine's own position, reported when a watch is armed (for the store: its index,
    /// which etcd sends as a watch response's `X-Etcd-Index`).
    fn position(&self) -> u64 {
        0
    }
    /// A command the leader should propose now on the state machine's behalf, such as expiring
    /// keys whose TTL passed `unix_ms`. Asked every `NodeConfig::housekeeping_ms` on the leader.
    fn leader_proposal(&self, _unix_ms: u64) -> Option<Vec<u8>> {
        None
    }
    /// Planted bugs only (feature `planted-bugs`): the node recovered a log committed up to
    /// `commit` and will re-apply it.
    #[cfg(feature = "planted-bugs")]
    fn planted_recovered(&mut self, _commit: crate::raft::Index) {}
    /// Planted bugs only (feature `planted-bugs`): called every `NodeConfig::housekeeping_ms`
    /// on every node. A correct machine has nothing to do here (replicas change only by
    /// applying entries).
    #[cfg(feature = "planted-bugs")]
    fn planted_housekeeping(&mut self, _unix_ms: u64) {}
}

/// Watches a node from the inside; the simulator's checkers implement it, production ignores it.
/// Every method has an empty default.
pub trait Observer {
    /// The node recovered this state from disk at start (snapshot, hard state, log).
    fn recovered(&mut self, _id: NodeId, _recovered: &Recovered) {}
    /// A snapshot from the leader up to `(index, term)` is durable and the state machine was
    /// restored from it: the node's log up to `index` is now the snapshot.
    fn snapshot_installed(&mut self, _id: NodeId, _index: Index, _term: Term) {}
    /// This hard state and these entries are now durable (`sync` returned).
    fn persisted(&mut self, _id: NodeId, _hard_state: Option<&HardState>, _entries: &[Entry]) {}
    /// The state machine applied this entry.
    fn applied(&mut self, _id: NodeId, _entry: &Entry) {}
    /// The node finished handling one input (message, tick, request) and its `Ready`.
    fn stepped(&mut self, _node: &RawNode) {}
    /// The node begins a log sync for a `Ready`; `leading`: its core leads (the status last
    /// reported by `stepped` may be older).
    fn sync_started(&mut self, _id: NodeId, _leading: bool) {}
    /// The node is sending this message (after persisting what it depends on).
    fn sending(&mut self, _msg: &Message) {}
    /// Returns true if the node should stop (for example after a checker found a violation).
    fn should_stop(&self) -> bool {
        false
    }
    /// The node loop reached `point`. True asks the node to stop right here and wait to be
    /// killed: the simulator aims crashes at the moments where durability bugs hide, and its
    /// harness kills the waiting node within a millisecond (nothing after `point` runs, nothing
    /// unsynced survives). Production observers never return true.
    fn crash_here(&mut self, _point: CrashPoint) -> bool {
        false
    }
}

/// A moment in the node loop where a crash is most likely to expose a durability bug (the
/// aimed faults of the simulator, `Observer::crash_here`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum CrashPoint {
    /// New entries were written to the log but their sync has not returned; a leader that sends
    /// before it syncs has already sent them to its followers.
    SyncInFlight,
    /// A follower made new entries durable; its answer to the leader has not left yet.
    PersistedNotAnswered,
    /// A leader applied newly committed entries and answered their clients (with a lazy commit
    /// sync, the commit index itself may not be durable yet).
    LeaderCommitted,
}

impl CrashPoint {
    /// Every crash point.
    pub const ALL: [CrashPoint; 3] = [
        CrashPoint::SyncInFlight,
        CrashPoint::PersistedNotAnswered,
        CrashPoint::LeaderCommitted,
    ];
}

/// The observer that watches nothing.
pub struct NoObserver;

impl Observer for NoObserver {}
