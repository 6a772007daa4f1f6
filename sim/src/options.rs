//! A run's configuration. Everything is drawn from the seed (swarm testing, as TigerBeetle's VOPR
//! does), unless the command line fixes it.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::nemesis::FaultKind;
use crate::world::Latency;

/// Planted bugs the simulator can switch on to prove its checkers bite (`sim/README.md` §4).
/// Each is compiled in and off unless asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Bug {
    /// The leader commits an entry of an earlier term by counting replicas (Raft Figure 8).
    CommitOldTerm,
    /// The leader answers linearizable reads without confirming its leadership (etcd#741).
    StaleRead,
    /// ReadIndex served before the leader committed an entry of its own term (etcd#7331).
    ReadIndexEarly,
    /// The vote is sent before it is synced: a restarted node can vote twice in a term.
    VoteNotPersisted,
    /// A follower appends without cutting a conflicting suffix.
    NoTruncate,
    /// A watcher misses one event when two commit in the same batch.
    WatchSkip,
    /// A holder acts on a lock whose lease ran out (Jepsen 2020).
    LockNoExpiryCheck,
    /// The store index goes back by one after a restart.
    IndexReuse,
    /// A compare by `prevIndex` checks the node's createdIndex instead of its modifiedIndex.
    CasCreatedIndex,
    /// A replica expires TTL keys on its own clock.
    LocalExpiry,
    /// A follower tells the clients of the commands it forwarded that nothing happened as soon
    /// as its term moves on, though the old leader's entry may still commit: clients retry, and
    /// a command applies twice.
    ForwardEarly,
    /// The peer decoder loses the first bytes of a length prefix that arrives split across two
    /// reads, and reads the length from the wrong bytes.
    SplitLengthPrefix,
    /// The target of a leadership transfer campaigns in the leader's term instead of the next
    /// one (thesis §3.10 starts a new election): it votes twice in a term, two leaders can share
    /// one.
    TransferSameTerm,
}

impl Bug {
    /// Every planted bug.
    pub const ALL: [Bug; 13] = [
        Bug::StaleRead,
        Bug::ReadIndexEarly,
        Bug::VoteNotPersisted,
        Bug::NoTruncate,
        Bug::CommitOldTerm,
        Bug::WatchSkip,
        Bug::LockNoExpiryCheck,
        Bug::IndexReuse,
        Bug::CasCreatedIndex,
        Bug::LocalExpiry,
        Bug::ForwardEarly,
        Bug::SplitLengthPrefix,
        Bug::TransferSameTerm,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Bug::CommitOldTerm => "commit-old-term",
            Bug::StaleRead => "stale-read",
            Bug::ReadIndexEarly => "read-index-early",
            Bug::VoteNotPersisted => "vote-not-persisted",
            Bug::NoTruncate => "no-truncate",
            Bug::WatchSkip => "watch-skip",
            Bug::LockNoExpiryCheck => "lock-no-expiry-check",
            Bug::IndexReuse => "index-reuse",
            Bug::CasCreatedIndex => "cas-created-index",
            Bug::LocalExpiry => "local-expiry",
            Bug::ForwardEarly => "forward-early",
            Bug::SplitLengthPrefix => "split-length-prefix",
            Bug::TransferSameTerm => "transfer-same-term",
        }
    }

    /// The engine's switches for this bug, by owner: the Raft core's, the node loop's, the
    /// store machine's, and the peer codec's. `lock-no-expiry-check` has none: the simulator plants it itself (the
    /// lock module's unchecked acquire).
    pub fn switches(bug: Option<Bug>) -> Switches {
        Switches {
            raft: engine::raft::Bugs {
                commit_old_term: bug == Some(Bug::CommitOldTerm),
                stale_read: bug == Some(Bug::StaleRead),
                read_index_early: bug == Some(Bug::ReadIndexEarly),
                no_truncate: bug == Some(Bug::NoTruncate),
                transfer_same_term: bug == Some(Bug::TransferSameTerm),
            },
            node: engine::server::NodeBugs {
                vote_not_persisted: bug == Some(Bug::VoteNotPersisted),
                forward_early: bug == Some(Bug::ForwardEarly),
            },
            kv: engine::server::KvBugs {
                watch_skip: bug == Some(Bug::WatchSkip),
                index_reuse: bug == Some(Bug::IndexReuse),
                cas_created_index: bug == Some(Bug::CasCreatedIndex),
                local_expiry: bug == Some(Bug::LocalExpiry),
            },
            wire: engine::wire::WireBugs {
                split_length_prefix: bug == Some(Bug::SplitLengthPrefix),
            },
        }
    }
}

/// The engine's planted-bug switches for one run, by the part of the engine that owns them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Switches {
    /// The Raft core's (`raft::Config::bugs`).
    pub raft: engine::raft::Bugs,
    /// The node loop's (`server::NodeConfig::bugs`).
    pub node: engine::server::NodeBugs,
    /// The store machine's (`server::KvMachine::with_bugs`).
    pub kv: engine::server::KvBugs,
    /// The peer codec's (`wire::Decoder::set_bugs`, in the simulated network).
    pub wire: engine::wire::WireBugs,
}

/// Everything one run needs.
#[derive(Clone, Debug, Serialize)]
pub struct SimConfig {
    /// The seed every random choice derives from.
    pub seed: u64,
    /// Cluster size.
    pub nodes: usize,
    /// One Raft tick, in simulated ms.
    pub tick_ms: u64,
    /// Leader heartbeat interval, in ticks.
    pub heartbeat_ticks: u64,
    /// Election timeout range `[min, max)`, in ticks.
    pub election_ticks: (u64, u64),
    /// Most entries per AppendEntries.
    pub msg_entries_max: usize,
    /// Base one-way latency.
    pub latency: Latency,
    /// Random loss while faults are on, per mille.
    pub loss_per_mille: u32,
    /// Random duplication while faults are on, per mille.
    pub dup_per_mille: u32,
    /// Upper end of a disk sync's duration, ms.
    pub sync_ms_max: u64,
    /// Chance that a crash leaves a torn prefix of unsynced writes, per mille.
    pub torn_per_mille: u32,
    /// Faults the nemesis may inject, with weights.
    pub faults: Vec<(FaultKind, u32)>,
    /// Gap between two faults, ms.
    pub fault_interval_ms: (u64, u64),
    /// Concurrent clients.
    pub clients: usize,
    /// Target commands per simulated second, over all clients.
    pub ops_per_s: u64,
    /// Share of client operations that are linearizable reads, percent.
    pub reads_percent: u32,
    /// Share of client operations that are watches, percent.
    pub watch_percent: u32,
    /// Most watches waiting at once on one node.
    pub watchers_max: usize,
    /// A client gives up on a command after this long.
    pub client_timeout_ms: u64,
    /// Length of the safety phase (faults on), ms.
    pub duration_ms: u64,
    /// After healing, the bound for a leader to appear and for commands to commit, ms.
    pub liveness_ms: u64,
    /// While faults go on: the longest a quiet majority may go without a stable leader.
    pub leader_bound_ms: u64,
    /// While a partial-connectivity topology holds (`nemesis::PARTIAL_ACTIONS`), a stable
    /// leader that reaches a majority directly must exist within `leader_bound_ms` (a scenario's
    /// `expect.leader_while_partial`; what PreVote + CheckQuorum promise).
    pub leader_while_partial: bool,
    /// The planted bug, if any.
    pub bug: Option<Bug>,
    /// PreVote on (Raft thesis §9.6).
    pub pre_vote: bool,
    /// CheckQuorum on (Raft thesis §6.2).
    pub check_quorum: bool,
    /// Leaders send before they sync their log (the production node's setting, Raft thesis
    /// §10.2.1); drawn per seed so the simulator checks it.
    pub parallel_sync: bool,
    /// Commit-only hard states are not synced (the production node's setting, as etcd's WAL);
    /// drawn per seed so the simulator checks it.
    pub lazy_commit_sync: bool,
    /// Nodes snapshot their store and compact their log every this many applied entries (0:
    /// never); drawn small per seed so that compaction, InstallSnapshot and restarts from a
    /// snapshot happen under faults.
    pub snapshot_entries: u64,
    /// Entries kept below each snapshot's index.
    pub snapshot_keep: u64,
    /// Most command bytes per AppendEntries (`raft::Config::msg_bytes_max`); drawn tiny in a
    /// quarter of the seeds so that byte-limited batches split replication.
    pub msg_bytes_max: u64,
    /// The leader's budget of uncommitted command bytes (`raft::Config::uncommitted_bytes_max`);
    /// drawn tiny in a quarter of the seeds so that proposals are refused under load.
    pub uncommitted_bytes_max: u64,
    /// Timed fault steps (a scenario's); when set, they replace the random faults.
    pub schedule: Vec<crate::scenario::Step>,
    /// The named scenario this run comes from, if any.
    pub scenario: Option<String>,
}

/// What the command line may fix; the rest comes from the seed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Overrides {
    /// Cluster size.
    pub nodes: Option<usize>,
    /// Safety phase length, ms.
    pub duration_ms: Option<u64>,
    /// Planted bug.
    pub bug: Option<Bug>,
}

impl SimConfig {
    /// Draws a configuration from `seed`.
    pub fn swarm(seed: u64, o: Overrides) -> SimConfig {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5157_4152_4d00_0000);
        let mut flags = ChaCha8Rng::seed_from_u64(seed ^ 0x5052_4556_4f54_4500);
        let nodes = o.nodes.unwrap_or([3, 5, 7][rng.gen_range(0..3)]);
        let election_min = rng.gen_range(10..=30);
        let min_ms = rng.gen_range(1..=5);
        let max_ms = min_ms + rng.gen_range(1..=25);
        let latency = Latency {
            min_ms,
            max_ms,
            tail_per_mille: rng.gen_range(0..=50),
            tail_max_ms: max_ms + rng.gen_range(0..=200),
        };
        let mut faults = Vec::new();
        for kind in FaultKind::ALL {
            // Swarm testing: each run enables a random subset of faults with random weights.
            // (Leadership transfers are drawn below, from the flags' stream.)
            if kind != FaultKind::TransferLeader && rng.gen_bool(0.7) {
                faults.push((kind, rng.gen_range(1..=10)));
            }
        }
        let interval_min = rng.gen_range(50..=500);
        let mut config = SimConfig {
            seed,
            nodes,
            tick_ms: 10,
            heartbeat_ticks: rng.gen_range(1..=4),
            election_ticks: (election_min, election_min * 2),
            // Small batches now and then split a new leader's catch-up, which is where old-term
            // entries can be counted before the leader's own no-op (Raft Figure 8).
            msg_entries_max: if rng.gen_bool(0.3) {
                rng.gen_range(1..=3)
            } else {
                64
            },
            latency,
            loss_per_mille: if rng.gen_bool(0.5) {
                rng.gen_range(0..=100)
            } else {
                0
            },
            dup_per_mille: if rng.gen_bool(0.5) {
                rng.gen_range(0..=50)
            } else {
                0
            },
            sync_ms_max: rng.gen_range(0..=5),
            torn_per_mille: rng.gen_range(0..=500),
            faults,
            fault_interval_ms: (interval_min, interval_min + rng.gen_range(100..=3000)),
            clients: rng.gen_range(1..=5),
            ops_per_s: rng.gen_range(10..=200),
            reads_percent: rng.gen_range(0..=50),
            watch_percent: rng.gen_range(0..=15),
            watchers_max: 10_000,
            client_timeout_ms: 1000,
            duration_ms: o.duration_ms.unwrap_or(20_000),
            liveness_ms: 10_000,
            leader_bound_ms: 5_000,
            leader_while_partial: false,
            bug: o.bug,
            // From their own stream, so switching them on changes no other draw of the seed.
            pre_vote: flags.gen_bool(0.25),
            check_quorum: flags.gen_bool(0.25),
            parallel_sync: flags.gen_bool(0.5),
            lazy_commit_sync: flags.gen_bool(0.5),
            snapshot_entries: if flags.gen_bool(0.5) {
                flags.gen_range(5..=100)
            } else {
                0
            },
            snapshot_keep: flags.gen_range(0..=10),
            msg_bytes_max: if flags.gen_bool(0.25) {
                flags.gen_range(16..=512)
            } else {
                1 << 20
            },
            uncommitted_bytes_max: if flags.gen_bool(0.25) {
                flags.gen_range(64..=4096)
            } else {
                64 << 20
            },
            schedule: Vec::new(),
            scenario: None,
        };
        // Last, and from the flags' stream, so that it moves no earlier draw of the seed.
        if flags.gen_bool(0.7) {
            let weight = flags.gen_range(1..=10);
            config.faults.push((FaultKind::TransferLeader, weight));
        }
        config
    }

    /// The benchmark's fixed world: 5 nodes, 50 ms heartbeats, 150-300 ms election timeouts,
    /// 100 commands per simulated second, no faults, all checks on.
    pub fn bench(seed: u64, duration_ms: u64) -> SimConfig {
        SimConfig {
            seed,
            nodes: 5,
            tick_ms: 10,
            heartbeat_ticks: 5,
            election_ticks: (15, 30),
            msg_entries_max: 64,
            latency: Latency {
                min_ms: 1,
                max_ms: 5,
                tail_per_mille: 0,
                tail_max_ms: 5,
            },
            loss_per_mille: 0,
            dup_per_mille: 0,
            sync_ms_max: 1,
            torn_per_mille: 0,
            faults: Vec::new(),
            fault_interval_ms: (1000, 2000),
            clients: 4,
            ops_per_s: 100,
            reads_percent: 0,
            watch_percent: 0,
            watchers_max: 10_000,
            client_timeout_ms: 1000,
            duration_ms,
            liveness_ms: 10_000,
            leader_bound_ms: 5_000,
            leader_while_partial: false,
            bug: None,
            pre_vote: false,
            check_quorum: false,
            parallel_sync: false,
            lazy_commit_sync: false,
            snapshot_entries: 0,
            snapshot_keep: 0,
            msg_bytes_max: 1 << 20,
            uncommitted_bytes_max: 64 << 20,
            schedule: Vec::new(),
            scenario: None,
        }
    }

    /// The command that replays this run.
    pub fn replay_command(&self, fixed_nodes: bool, fixed_duration: bool) -> String {
        let mut cmd = format!("cargo run --release -p sim -- --seed {}", self.seed);
        if let Some(name) = &self.scenario {
            cmd.push_str(&format!(" --scenario {name}"));
        }
        if fixed_nodes {
            cmd.push_str(&format!(" --nodes {}", self.nodes));
        }
        if fixed_duration {
            cmd.push_str(&format!(" --duration {}", self.duration_ms / 1000));
        }
        if let Some(bug) = self.bug {
            cmd.push_str(&format!(" --bug {}", bug.name()));
        }
        cmd
    }
}
