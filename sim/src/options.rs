//! A run's configuration. Everything is drawn from the seed (swarm testing, as TigerBeetle's VOPR
//! does), unless the command line fixes it.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::nemesis::FaultKind;
use crate::world::{ClockPlan, Latency, WALL_ERROR_MAX_MS};
use engine::server::NodeSettings;

/// The share of swarm seeds whose node settings differ from `floe`'s defaults.
pub const VARIED_SHARE: f64 = 0.2;

/// What a seed draws for the settings it may vary, whether or not it varies them.
struct Varied {
    /// The simulator's fast timing: heartbeat ticks and minimum election ticks of 10 ms.
    timing: (u64, u64),
    small_batches: Option<usize>,
    pre_vote: bool,
    check_quorum: bool,
    parallel_sync: bool,
    lazy_commit_sync: bool,
    snapshot: Option<(u64, u64)>,
    msg_bytes_max: Option<u64>,
    uncommitted_bytes_max: Option<u64>,
    inflight_bytes_max: Option<u64>,
}

impl Varied {
    /// The varied settings: the simulator's own world before it ran `floe`'s defaults (fast
    /// 10 ms ticks, PreVote and CheckQuorum each in a quarter of these seeds, sends before sync
    /// and lazy commit sync in half, snapshots every 5-100 entries in 85% and never in the
    /// rest, small batches and tiny byte budgets (per message, uncommitted, in flight per
    /// follower) now and then, 3 s read and forward timeouts),
    /// with one request per Ready in half of them and `floe`'s 256 in the rest.
    fn settings(&self, vary: &mut ChaCha8Rng) -> NodeSettings {
        let mut s = NodeSettings::default();
        let (heartbeat_ticks, election_min) = self.timing;
        s.tick_ms = 10;
        s.heartbeat_ticks = heartbeat_ticks;
        s.election_ticks = election_min;
        s.election_max_ticks = election_min * 2;
        s.pre_vote = self.pre_vote;
        s.check_quorum = self.check_quorum;
        s.leader_sends_before_sync = self.parallel_sync;
        s.lazy_commit_sync = self.lazy_commit_sync;
        // No draw of its own (it would move every varied seed's draws): it goes with sending
        // before the sync, the other half of overlapping the disk with the network.
        s.listen_while_syncing = self.parallel_sync;
        if vary.gen_bool(0.5) {
            s.requests_per_ready = 1;
        }
        (s.snapshot_entries, s.snapshot_keep_entries) = self.snapshot.unwrap_or((0, 0));
        if let Some(max) = self.small_batches {
            s.msg_entries_max = max;
        }
        if let Some(max) = self.msg_bytes_max {
            s.msg_bytes_max = max;
        }
        if let Some(max) = self.uncommitted_bytes_max {
            s.uncommitted_bytes_max = max;
        }
        if let Some(max) = self.inflight_bytes_max {
            s.inflight_bytes_max = max;
        }
        s.read_timeout_ms = 3_000;
        s.forward_timeout_ms = 3_000;
        s
    }
}

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
    /// A follower writes each snapshot chunk after the bytes it holds, whatever its offset: a
    /// duplicated or resent chunk is written twice, a lost one leaves a hole.
    ChunkAnyOffset,
    /// Read tags restart at each boot instead of from the wall clock's nanoseconds: a restarted
    /// node takes a ReadIndex answer meant for its previous life for a new read's.
    ReadCtxReuse,
    /// The target of a leadership transfer campaigns in the leader's term instead of the next
    /// one (thesis §3.10 starts a new election): it votes twice in a term, two leaders can share
    /// one.
    TransferSameTerm,
    /// A follower answers AppendEntries before its sync: crashed in the sync, it loses entries
    /// the leader counted towards commitment.
    AckBeforeSync,
    /// A watch inside a directory is not ended by the directory's removal: it fires on a later
    /// event instead.
    WatchDirDelete,
    /// The HTTP layer's keys API drops `prevExist=false` from the form: a create becomes a
    /// set and succeeds over an existing key.
    HttpPrevexistIgnored,
    /// Nodes act on the latest COMMITTED configuration instead of the latest in their log
    /// (thesis §4.1): a leader counts quorums of a configuration its followers have left.
    ConfigFromCommitted,
    /// Voter changes are made one server at a time without a joint configuration, and a new
    /// leader makes one before its own term's first commit: the 2015 single-server bug.
    SingleServerNoWait,
    /// A leader that removed itself keeps leading once the new configuration commits (thesis
    /// §4.2.2 has it step down), counting itself in a quorum it is no longer part of.
    RemovedLeaderStays,
    /// The log cuts any damage as a torn tail and the node votes with what is left: it can
    /// forget entries it acknowledged and the vote it cast.
    TruncateOnCorruption,
    /// The log decodes records without checking their CRC: bits flipped at rest are applied.
    IgnoreChecksum,
    /// The leader takes a recovering follower's rejection below its match index for a stale
    /// one: the follower never gets back what its damaged log lost.
    LostAckTrusted,
    /// The members API answers an add before the change commits: a crash or a new leader can
    /// lose a member the client was told it added.
    MemberAddAnswersEarly,
    /// The node loop awaits each log sync inline instead of polling it beside its timer: a
    /// leader whose sync hangs goes on leading (and holding every commit) until it returns.
    SyncBlocksLoop,
    /// A leader whose sync is pending counts the entries it is still writing towards a commit
    /// when it takes in its followers' answers: one acknowledgement commits what one disk holds.
    CommitWhileSyncing,
}

impl Bug {
    /// Every planted bug.
    pub const ALL: [Bug; 27] = [
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
        Bug::ChunkAnyOffset,
        Bug::ReadCtxReuse,
        Bug::TransferSameTerm,
        Bug::AckBeforeSync,
        Bug::WatchDirDelete,
        Bug::HttpPrevexistIgnored,
        Bug::ConfigFromCommitted,
        Bug::SingleServerNoWait,
        Bug::RemovedLeaderStays,
        Bug::TruncateOnCorruption,
        Bug::IgnoreChecksum,
        Bug::LostAckTrusted,
        Bug::MemberAddAnswersEarly,
        Bug::SyncBlocksLoop,
        Bug::CommitWhileSyncing,
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
            Bug::ChunkAnyOffset => "chunk-any-offset",
            Bug::ReadCtxReuse => "read-ctx-reuse",
            Bug::TransferSameTerm => "transfer-same-term",
            Bug::AckBeforeSync => "ack-before-sync",
            Bug::WatchDirDelete => "watch-dir-delete",
            Bug::HttpPrevexistIgnored => "http-prevexist-ignored",
            Bug::ConfigFromCommitted => "config-from-committed",
            Bug::SingleServerNoWait => "single-server-no-wait",
            Bug::RemovedLeaderStays => "removed-leader-stays",
            Bug::TruncateOnCorruption => "truncate-on-corruption",
            Bug::IgnoreChecksum => "ignore-checksum",
            Bug::LostAckTrusted => "lost-ack-trusted",
            Bug::MemberAddAnswersEarly => "member-add-answers-early",
            Bug::SyncBlocksLoop => "sync-blocks-loop",
            Bug::CommitWhileSyncing => "commit-while-syncing",
        }
    }

    /// True for the bugs of membership changes, which only show when the configuration
    /// changes: a swarm seed with one of them turns the `reconfigure` fault on.
    pub fn needs_reconfigure(self) -> bool {
        matches!(
            self,
            Bug::ConfigFromCommitted
                | Bug::SingleServerNoWait
                | Bug::RemovedLeaderStays
                | Bug::MemberAddAnswersEarly
        )
    }

    /// The engine's switches for this bug, by owner: the Raft core's, the node loop's, the
    /// store machine's, the peer codec's and the HTTP service's. `lock-no-expiry-check` has none: the simulator plants it itself (the
    /// lock module's unchecked acquire).
    pub fn switches(bug: Option<Bug>) -> Switches {
        Switches {
            raft: engine::raft::Bugs {
                commit_old_term: bug == Some(Bug::CommitOldTerm),
                stale_read: bug == Some(Bug::StaleRead),
                read_index_early: bug == Some(Bug::ReadIndexEarly),
                no_truncate: bug == Some(Bug::NoTruncate),
                chunk_any_offset: bug == Some(Bug::ChunkAnyOffset),
                transfer_same_term: bug == Some(Bug::TransferSameTerm),
                config_from_committed: bug == Some(Bug::ConfigFromCommitted),
                single_server_no_wait: bug == Some(Bug::SingleServerNoWait),
                removed_leader_stays: bug == Some(Bug::RemovedLeaderStays),
                lost_ack_trusted: bug == Some(Bug::LostAckTrusted),
                commit_while_syncing: bug == Some(Bug::CommitWhileSyncing),
            },
            node: engine::server::NodeBugs {
                vote_not_persisted: bug == Some(Bug::VoteNotPersisted),
                forward_early: bug == Some(Bug::ForwardEarly),
                read_ctx_reuse: bug == Some(Bug::ReadCtxReuse),
                ack_before_sync: bug == Some(Bug::AckBeforeSync),
                truncate_on_corruption: bug == Some(Bug::TruncateOnCorruption),
                ignore_checksum: bug == Some(Bug::IgnoreChecksum),
                sync_blocks_loop: bug == Some(Bug::SyncBlocksLoop),
            },
            kv: engine::server::KvBugs {
                watch_skip: bug == Some(Bug::WatchSkip),
                index_reuse: bug == Some(Bug::IndexReuse),
                cas_created_index: bug == Some(Bug::CasCreatedIndex),
                watch_dir_delete: bug == Some(Bug::WatchDirDelete),
                local_expiry: bug == Some(Bug::LocalExpiry),
            },
            wire: engine::wire::WireBugs {
                split_length_prefix: bug == Some(Bug::SplitLengthPrefix),
            },
            http: engine::http::HttpBugs {
                prevexist_ignored: bug == Some(Bug::HttpPrevexistIgnored),
                member_add_answers_early: bug == Some(Bug::MemberAddAnswersEarly),
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
    /// The HTTP service's (`http::App::with_bugs`).
    pub http: engine::http::HttpBugs,
}

/// Everything one run needs.
#[derive(Clone, Debug, Serialize)]
pub struct SimConfig {
    /// The seed every random choice derives from.
    pub seed: u64,
    /// Cluster size.
    pub nodes: usize,
    /// The highest-numbered nodes that start outside the configuration, as spares for
    /// membership changes to add (always fewer than `nodes`; 0 without `reconfigure`).
    pub spares: usize,
    /// The supervisor's step, in simulated ms (how often faults, churn and the liveness watch
    /// look at the cluster); the nodes' own tick is `settings.tick_ms`.
    pub tick_ms: u64,
    /// The nodes' settings, built into their configuration by the same function as `floe`'s
    /// (`engine::server::NodeSettings::node_config`): `floe`'s defaults unless the seed's draw
    /// varies them.
    pub settings: engine::server::NodeSettings,
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
    /// What the nodes' clocks may do (offsets, drift, jumps), drawn from its own stream.
    pub clock: ClockPlan,
    /// Timed fault steps (a scenario's); when set, they replace the random faults.
    pub schedule: Vec<crate::scenario::Step>,
    /// The named scenario this run comes from, if any.
    pub scenario: Option<String>,
    /// Node settings fixed on the command line (`--settings`), instead of the seed's draw.
    #[serde(skip)]
    pub settings_fixed: Option<Settings>,
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
    /// Production or varied node settings, instead of the seed's draw.
    pub settings: Option<Settings>,
    /// Membership changes (the `reconfigure` fault) among the seed's faults.
    pub reconfigure: bool,
}

/// Which node settings a swarm seed runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Settings {
    /// `floe`'s defaults.
    Production,
    /// The seed's varied settings (what the seed draws when it varies them): fast timing,
    /// PreVote or CheckQuorum off, small snapshots and byte budgets, one request per Ready...
    Varied,
}

/// Leadership transfers, from the flags' stream after its other draws, so that they move no
/// earlier draw of the seed.
fn draw_transfers(flags: &mut ChaCha8Rng, config: &mut SimConfig) {
    if flags.gen_bool(0.7) {
        let weight = flags.gen_range(1..=10);
        config.faults.push((FaultKind::TransferLeader, weight));
    }
}

/// The share of swarm seeds that turn on each disk fault kind.
const DISK_FAULT_SHARE: f64 = 0.3;

/// The disk faults, each kind in [`DISK_FAULT_SHARE`] of the seeds, from a stream of their
/// own, so that no other draw of the seed moves. Damage at rest hits at most a minority of the
/// nodes at once (`Cluster::damage_disk`), a minority of all nodes; with membership changes a
/// minority of all nodes can be a majority of a shrunk configuration's voters, so seeds that
/// reconfigure draw no disk fault.
fn draw_disk(seed: u64, config: &mut SimConfig) {
    if config
        .faults
        .iter()
        .any(|(k, _)| *k == FaultKind::Reconfigure)
    {
        return;
    }
    let mut disk = ChaCha8Rng::seed_from_u64(seed ^ 0x4449_534b_0000_0000);
    for kind in FaultKind::ALL.into_iter().filter(|k| k.is_disk()) {
        if disk.gen_bool(DISK_FAULT_SHARE) {
            config.faults.push((kind, disk.gen_range(1..=5)));
        }
    }
}

/// Membership changes, when asked for: drawn from a stream of their own, so that no other draw
/// of the seed moves.
fn draw_reconfigure(seed: u64, o: Overrides, config: &mut SimConfig) {
    if o.reconfigure || o.bug.is_some_and(Bug::needs_reconfigure) {
        let mut reconfig = ChaCha8Rng::seed_from_u64(seed ^ 0x4d45_4d42_4552_5300);
        let weight = reconfig.gen_range(1..=10);
        config.faults.push((FaultKind::Reconfigure, weight));
        // Half of these seeds start some nodes as spares, outside the configuration.
        if reconfig.gen_bool(0.5) {
            config.spares = reconfig.gen_range(1..config.nodes);
        }
    }
}

/// The clock faults (from the clocks' stream) and the aimed faults (from a stream of their
/// own), with their weights. Disk faults (`FaultKind::is_disk`) come later, from their own
/// stream (`draw_disk`).
fn draw_apart(faults: &mut Vec<(FaultKind, u32)>, clocks: &mut ChaCha8Rng, seed: u64) {
    for kind in FaultKind::ALL.into_iter().filter(|k| k.is_clock()) {
        if clocks.gen_bool(0.7) {
            faults.push((kind, clocks.gen_range(1..=5)));
        }
    }
    let mut aimed = ChaCha8Rng::seed_from_u64(seed ^ 0x4149_4d45_4400_0000);
    for kind in FaultKind::ALL.into_iter().filter(|k| k.is_aimed()) {
        if aimed.gen_bool(0.5) {
            faults.push((kind, aimed.gen_range(1..=5)));
        }
    }
}

impl SimConfig {
    /// Draws a configuration from `seed`.
    pub fn swarm(seed: u64, o: Overrides) -> SimConfig {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5157_4152_4d00_0000);
        let mut flags = ChaCha8Rng::seed_from_u64(seed ^ 0x5052_4556_4f54_4500);
        let nodes = o.nodes.unwrap_or([3, 5, 7][rng.gen_range(0..3)]);
        // Drawn in every seed (so the draws after them stay where they were), used only by the
        // seeds whose settings are varied.
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
        for kind in
            (FaultKind::ALL.into_iter()).filter(|k| !k.is_clock() && !k.is_aimed() && !k.is_disk())
        {
            // Swarm testing: each run enables a random subset of faults with random weights.
            if !kind.drawn_apart() && rng.gen_bool(0.7) {
                faults.push((kind, rng.gen_range(1..=10)));
            }
        }
        let interval_min = rng.gen_range(50..=500);
        let heartbeat_ticks = rng.gen_range(1..=4);
        let small_batches = rng.gen_bool(0.3).then(|| rng.gen_range(1..=3));
        let mut config = SimConfig {
            seed,
            nodes,
            spares: 0,
            tick_ms: 10,
            settings: NodeSettings::default(),
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
            client_timeout_ms: 1000,
            duration_ms: o.duration_ms.unwrap_or(20_000),
            liveness_ms: 10_000,
            leader_bound_ms: 5_000,
            leader_while_partial: false,
            bug: o.bug,
            clock: ClockPlan::perfect(),
            schedule: Vec::new(),
            scenario: None,
            settings_fixed: o.settings,
        };
        // The clocks, from their own stream: every node a little off true time and drifting
        // (up to 200 ppm, or 1% in one seed in eight), and the clock faults in most seeds.
        let mut clocks = ChaCha8Rng::seed_from_u64(seed ^ 0x434c_4f43_4b00_0000);
        config.clock = ClockPlan {
            seed: clocks.r#gen(),
            offset_max_ms: 100,
            drift_ppm_max: if clocks.gen_bool(0.125) { 10_000 } else { 200 },
            jump_max_ms: 200,
            error_max_ms: WALL_ERROR_MAX_MS,
        };
        draw_apart(&mut config.faults, &mut clocks, seed);
        // From their own streams, so varying them changes no other draw of the seed.
        let mut vary = ChaCha8Rng::seed_from_u64(seed ^ 0x434f_4e46_4947_0000);
        let drawn = Varied {
            timing: (heartbeat_ticks, election_min),
            small_batches,
            pre_vote: flags.gen_bool(0.25),
            check_quorum: flags.gen_bool(0.25),
            parallel_sync: flags.gen_bool(0.5),
            lazy_commit_sync: flags.gen_bool(0.5),
            snapshot: {
                let every = flags.gen_bool(0.85).then(|| flags.gen_range(5..=100));
                let keep = flags.gen_range(0..=10);
                every.map(|every| (every, keep))
            },
            msg_bytes_max: flags.gen_bool(0.25).then(|| flags.gen_range(16..=512)),
            uncommitted_bytes_max: flags.gen_bool(0.25).then(|| flags.gen_range(64..=4096)),
            inflight_bytes_max: flags.gen_bool(0.25).then(|| flags.gen_range(32..=2048)),
        };
        draw_transfers(&mut flags, &mut config);
        draw_reconfigure(seed, o, &mut config);
        draw_disk(seed, &mut config);
        // At most one seed in four varies the production settings; the rest run `floe`'s
        // defaults exactly.
        let varied = vary.gen_bool(VARIED_SHARE);
        if o.settings.map_or(varied, |s| s == Settings::Varied) {
            config.settings = drawn.settings(&mut vary);
        }
        config
    }

    /// The benchmark's fixed world: 5 nodes, 50 ms heartbeats, 150-300 ms election timeouts,
    /// 100 commands per simulated second, no faults, all checks on.
    pub fn bench(seed: u64, duration_ms: u64) -> SimConfig {
        SimConfig {
            seed,
            nodes: 5,
            spares: 0,
            tick_ms: 10,
            settings: NodeSettings {
                tick_ms: 10,
                heartbeat_ticks: 5,
                election_ticks: 15,
                election_max_ticks: 30,
                pre_vote: false,
                check_quorum: false,
                requests_per_ready: 1,
                leader_sends_before_sync: false,
                lazy_commit_sync: false,
                // The world of the earlier speed passes (reports/sim-speed.md), kept comparable.
                listen_while_syncing: false,
                snapshot_entries: 0,
                snapshot_keep_entries: 0,
                read_timeout_ms: 3_000,
                forward_timeout_ms: 3_000,
                ..NodeSettings::default()
            },
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
            client_timeout_ms: 1000,
            duration_ms,
            liveness_ms: 10_000,
            leader_bound_ms: 5_000,
            leader_while_partial: false,
            bug: None,
            clock: ClockPlan::perfect(),
            schedule: Vec::new(),
            scenario: None,
            settings_fixed: None,
        }
    }

    /// True when the nodes run exactly `floe`'s default settings.
    pub fn production(&self) -> bool {
        self.settings.is_default()
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
        match self.settings_fixed {
            Some(Settings::Production) => cmd.push_str(" --settings production"),
            Some(Settings::Varied) => cmd.push_str(" --settings varied"),
            None => {}
        }
        cmd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_seeds_in_four_run_the_production_settings() {
        let seeds = 1..=1000u64;
        let configs: Vec<SimConfig> = seeds
            .map(|seed| SimConfig::swarm(seed, Overrides::default()))
            .collect();
        let production = configs.iter().filter(|c| c.production()).count();
        assert!(
            production >= 750,
            "{production} of 1000 run floe's defaults"
        );
        assert!(production < 1000, "some seeds vary the settings");
        let varied: Vec<&SimConfig> = configs.iter().filter(|c| !c.production()).collect();
        assert!(varied.iter().any(|c| !c.settings.pre_vote));
        assert!(varied.iter().any(|c| c.settings.requests_per_ready == 1));
        assert!(varied.iter().any(|c| c.settings.snapshot_entries < 100));
        assert!(varied.iter().any(|c| c.settings.tick_ms == 10));
    }
}
