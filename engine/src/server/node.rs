//! The node loop: one task per node, the same code in the simulator and in production.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::channel::{mpsc, oneshot};
use futures::{FutureExt, StreamExt};

use super::client::{Applied, ClientError, ReadAnswer, Request};
use super::follower_stats::Followers;
use super::metrics::Metrics;
use super::{Clock, CrashPoint, Env, Network, Observer, StateMachine};
use crate::log::{Disk, LogError, OpenOptions, Recovered, Staged, Wal};
use crate::raft::{
    Config, ConfigError, Entry, EntryKind, Index, Membership, Message, MessageKind, NodeId,
    ProposeError, Proposed, RawNode, RoleKind, Snapshot, Term, TransferError,
};

/// Configuration of the node loop.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The Raft core's configuration (timeouts in ticks).
    pub raft: Config,
    /// Length of one Raft tick in the world's milliseconds.
    pub tick_ms: u64,
    /// How often the leader asks the state machine for a housekeeping proposal (TTL expiry).
    pub housekeeping_ms: u64,
    /// Most watches waiting at once on this node.
    pub watchers_max: usize,
    /// How long a linearizable read waits for its read index before it is answered `Busy`.
    pub read_timeout_ms: u64,
    /// Most client requests taken into one `Ready` (so into one log sync): 1 in the simulator,
    /// more in production, where many proposals share one fsync (group commit).
    pub requests_per_ready: usize,
    /// A leader sends its messages before it syncs its log, so its own disk write overlaps the
    /// followers' (Raft thesis §10.2.1). Safe because the leader never counts its own unsynced
    /// entries in a commit: its own match index is its log's stable index (`RawNode`'s `Ready`).
    pub leader_sends_before_sync: bool,
    /// Skip the log sync when a `Ready`'s only durable change is the commit index (as etcd's
    /// WAL does); the next sync makes it durable with whatever comes next.
    pub lazy_commit_sync: bool,
    /// While a log sync is pending, the loop takes in peer messages and learns commitment from
    /// them (`RawNode::step_during_sync`): a leader counts its followers' acknowledgements, a
    /// follower its leader's commit index, and both apply and answer what committed, instead
    /// of waiting for their own unrelated sync. Everything else waits for the sync as before.
    pub listen_while_syncing: bool,
    /// Take a snapshot of the state machine and compact the log once this many entries were
    /// applied since the last snapshot (Raft §7; etcd's `--snapshot-count`); 0 never does.
    pub snapshot_entries: u64,
    /// Entries kept in the log below a new snapshot's index, so that a follower slightly
    /// behind catches up from the log rather than from a whole snapshot.
    pub snapshot_keep_entries: u64,
    /// How long a command this node forwarded to its leader waits to be applied here before
    /// its client is told the outcome is unknown (the leader may have lost it or be gone).
    pub forward_timeout_ms: u64,
    /// Where the node counts what it does, for `/metrics` and `/v2/stats/self`.
    pub metrics: Arc<Metrics>,
    /// Where this life's read and proposal tags start. They must never repeat across the
    /// node's restarts (an answer from a previous life, still in flight or in the log, would
    /// be taken for a new request's), so each start draws its own: `floe` the wall clock in
    /// nanoseconds (a life issues far fewer than one tag per nanosecond, so a later life's tags
    /// lie above an earlier one's while the wall clock does not go back; a clock stepped back
    /// collides only if the new start lands within as many nanoseconds of an earlier life's
    /// start as that life issued tags, a millisecond per million), the simulator the same from
    /// the node's own skewed wall clock.
    pub boot_nonce: u64,
    /// Told the configuration the node acts on (the latest in its log, Raft thesis §4.1) and
    /// the servers it may still send to ([`RawNode::replicated_to`]: a server being removed
    /// until its removal commits) at start and whenever either changes, before any message of
    /// the new configuration leaves: the production transport learns members' peer URLs from
    /// it.
    pub on_membership: Option<MembershipHook>,
    /// The loop ends with [`NodeError::Removed`] once it applied a configuration without this
    /// node, having been a member (etcd's "the member has been permanently removed"). `floe`
    /// sets it; the simulator keeps removed nodes running, as the thesis allows (§4.2.3).
    pub exit_when_removed: bool,
    /// Planted bugs of the node loop (all off by default; only with the `planted-bugs`
    /// feature).
    #[cfg(feature = "planted-bugs")]
    pub bugs: NodeBugs,
}

/// See [`NodeConfig::on_membership`].
#[derive(Clone)]
pub struct MembershipHook(pub Arc<MembershipFn>);

/// The function of a [`MembershipHook`]: the configuration, and the servers still sent to.
pub type MembershipFn = dyn Fn(&Membership, &[NodeId]) + Send + Sync;

impl std::fmt::Debug for MembershipHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MembershipHook")
    }
}

/// Planted bugs of the node loop (feature `planted-bugs`, which only the simulator enables),
/// each off unless asked, so the checkers can prove they bite.
#[cfg(feature = "planted-bugs")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeBugs {
    /// The node loop sends its messages before it syncs the hard state, so a vote can leave the
    /// node and then be lost in a crash: after a restart it may vote again in the same term.
    pub vote_not_persisted: bool,
    /// A follower answers its forwarded commands "not applied" (`NotLeader`, retried) as soon
    /// as its term moves past theirs, instead of once it applied an entry of a newer term: the
    /// old leader's entry can still commit, and the retry applies the command twice.
    pub forward_early: bool,
    /// Read tags restart from 0 at each start (as from a clock that counts from the process's
    /// start) instead of the boot nonce: a ReadIndex answer to the previous life's read can be
    /// taken for a new read's, which is then served at a stale index.
    pub read_ctx_reuse: bool,
    /// A follower's answers to AppendEntries leave before its sync (votes still wait for it):
    /// the leader counts entries the follower can still lose in a crash (Raft §5.3 counts only
    /// what a majority stored; Figure 2 persists before responding).
    pub ack_before_sync: bool,
    /// The log cuts any damage as a torn tail and the node votes with what is left (what
    /// Floe did before log format 2): a node can forget entries it acknowledged and votes it
    /// cast.
    pub truncate_on_corruption: bool,
    /// The log decodes records without checking their CRC: bits flipped at rest are applied
    /// and served.
    pub ignore_checksum: bool,
    /// The loop awaits each log sync inline (what Floe did before the sync became a future the
    /// loop polls while it ticks): a leader whose sync hangs ticks nothing, so it goes on
    /// leading until the sync returns and steps down only then.
    pub sync_blocks_loop: bool,
}

impl NodeConfig {
    /// Defaults: 500 ms housekeeping (etcd v2's expiry cadence), 10,000 watchers, 3 s reads.
    pub fn new(raft: Config, tick_ms: u64) -> NodeConfig {
        NodeConfig {
            raft,
            tick_ms,
            housekeeping_ms: 500,
            watchers_max: 10_000,
            read_timeout_ms: 3_000,
            requests_per_ready: 1,
            leader_sends_before_sync: false,
            lazy_commit_sync: false,
            listen_while_syncing: false,
            snapshot_entries: 10_000,
            snapshot_keep_entries: 5_000,
            forward_timeout_ms: 3_000,
            metrics: Arc::default(),
            boot_nonce: 0,
            on_membership: None,
            exit_when_removed: false,
            #[cfg(feature = "planted-bugs")]
            bugs: NodeBugs::default(),
        }
    }
}

/// Why a node loop ended.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The durable log failed; the node must not go on without it.
    #[error("durable log: {0}")]
    Log(#[from] LogError),
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// This node applied a committed configuration without it
    /// ([`NodeConfig::exit_when_removed`]).
    #[error(
        "the member has been permanently removed from the cluster (configuration entry {index}: {membership}); start it again only with a new data dir, after adding it back"
    )]
    Removed {
        /// The configuration entry that removed it.
        index: Index,
        /// That configuration.
        membership: Membership,
    },
    /// A snapshot (on disk, or from the leader) does not restore the state machine.
    #[error("snapshot at index {index} does not restore: {cause}")]
    Snapshot {
        /// The snapshot's index.
        index: Index,
        /// Why.
        cause: String,
    },
}

type Reply<T> = oneshot::Sender<Result<Applied<T>, ClientError>>;
type ReadReply<A> = oneshot::Sender<Result<ReadAnswer<A>, ClientError>>;

/// Most linearizable reads in progress on one node; more are answered `Busy`.
const READS_MAX: usize = 1024;
/// Most commands forwarded to the leader and not yet applied here; more are answered `Busy`.
const FORWARDED_MAX: usize = 16_384;

/// A linearizable read in progress.
struct PendingRead<S: StateMachine> {
    /// The reads sharing this read index (asked in one batch of requests).
    items: Vec<(S::Query, ReadReply<S::Answer>)>,
    /// When it was asked (world ms): a read index can be lost with its message, so a read
    /// waits at most `read_timeout_ms`.
    asked_ms: u64,
    /// The term in which it was asked: a new term drops it (its read index may never come).
    term: Term,
    /// Known once the Raft core hands out its `ReadState`.
    index: Option<Index>,
}

/// Commands this node forwarded to its leader (`RawNode::propose_or_forward`), answered when
/// their entry is applied here, or after `timeout_ms` with an unknown outcome.
struct Forwarded<T> {
    /// By tag, with the world time each was sent and the term of the leader it went to;
    /// bounded by `FORWARDED_MAX`.
    pending: BTreeMap<u64, Pending<T>>,
    /// The next tag; tags grow, so the map's order is the order they were sent in.
    next_tag: u64,
    timeout_ms: u64,
}

impl<T> Forwarded<T> {
    fn new(first_tag: u64, timeout_ms: u64) -> Forwarded<T> {
        Forwarded {
            pending: BTreeMap::new(),
            next_tag: first_tag,
            timeout_ms,
        }
    }

    /// The command tagged `next_tag` went at `now_ms` to the leader of `term`.
    fn sent(&mut self, now_ms: u64, term: Term, reply: Reply<T>) {
        let pending = Pending {
            sent_ms: now_ms,
            term,
            reply,
        };
        self.pending.insert(self.next_tag, pending);
        self.next_tag = self.next_tag.wrapping_add(1);
    }

    /// Commands not applied within the timeout: the leader may have lost them or may yet
    /// commit them; their clients learn that the outcome is unknown.
    /// Returns how many it answered so.
    fn expire(&mut self, now_ms: u64) -> u64 {
        let mut expired = 0;
        while let Some(entry) = self.pending.first_entry() {
            if now_ms < entry.get().sent_ms + self.timeout_ms {
                break;
            }
            let _ = entry.remove().reply.send(Err(ClientError::TimedOut));
            expired += 1;
        }
        expired
    }

    /// This node applied an entry of `term`. A command forwarded to the leader of an older term
    /// and not applied yet never will be: its entry would have that older term, and every
    /// entry after one of `term` in the committed log has a term at least as high (terms never
    /// go down along a log, and the log matching property extends that to the committed
    /// prefix). Its client learns that nothing happened (`NotLeader`) and may send it again
    /// (the HTTP layer does). Tags grow with time and terms with tags, so the oldest come first.
    /// Returns how many it answered so.
    fn superseded(&mut self, term: Term, leader: Option<NodeId>) -> u64 {
        let mut superseded = 0;
        while let Some(entry) = self.pending.first_entry() {
            if entry.get().term >= term {
                break;
            }
            let _ = entry
                .remove()
                .reply
                .send(Err(ClientError::NotLeader { leader }));
            superseded += 1;
        }
        superseded
    }
}

/// One forwarded command waiting for its answer.
struct Pending<T> {
    /// When it was sent (world ms).
    sent_ms: u64,
    /// The term of the leader it was sent to.
    term: Term,
    reply: Reply<T>,
}

/// Everything the loop owns besides the world.
struct Node<S: StateMachine, O> {
    raw: RawNode,
    /// The configuration and servers last told to `NodeConfig::on_membership`.
    told_membership: Option<(Membership, Vec<NodeId>)>,
    on_membership: Option<MembershipHook>,
    /// True once this node was a member of an applied configuration (or of its start one).
    was_member: bool,
    exit_when_removed: bool,
    sm: S,
    observer: O,
    /// Proposals waiting to be applied, by index. Bounded by the Raft core's
    /// `uncommitted_entries_max`, since only appended proposals wait here.
    waiting: BTreeMap<Index, (Term, Reply<S::Output>)>,
    /// Commands forwarded to the leader, waiting to be applied here.
    forwarded: Forwarded<S::Output>,
    /// Linearizable reads by their tag, bounded by `READS_MAX` reads in all.
    reads: BTreeMap<u64, PendingRead<S>>,
    /// Reads asked in the current batch of requests: they share one read index.
    unsent_reads: Vec<(S::Query, ReadReply<S::Answer>)>,
    /// The next read tag. Read tags must not repeat across restarts: a ReadIndex answer
    /// delayed from a previous life would otherwise be taken for a new read and serve it a
    /// stale index (hence `NodeConfig::boot_nonce`).
    read_ctx: u64,
    /// Watches waiting for the applied state, in arrival order, bounded by `watchers_max`.
    watchers: Vec<(S::Watch, ReadReply<S::Answer>)>,
    watchers_max: usize,
    /// Callers waiting for an index to be applied, by index; bounded by `watchers_max`.
    applied_waiters: BTreeMap<Index, Vec<oneshot::Sender<()>>>,
    read_timeout_ms: u64,
    housekeeping_ms: u64,
    /// World time of the last housekeeping.
    housekept_ms: u64,
    tick_ms: u64,
    /// A sync pending longer than this (two minimum election timeouts) makes a leader step down.
    sync_bound_ms: u64,
    leader_sends_before_sync: bool,
    lazy_commit_sync: bool,
    listen_while_syncing: bool,
    /// Peer messages received while a sync was pending, to step once it is done, in order.
    held: Vec<Message>,
    /// Committed entries were applied while a sync was pending (watchers to wake).
    applied_while_syncing: bool,
    /// Term and vote as last synced: a hard state that changes neither is commit-only.
    synced_term: Term,
    synced_vote: Option<crate::raft::NodeId>,
    /// World time of the last tick boundary that was ticked.
    ticked_ms: u64,
    snapshot_entries: u64,
    snapshot_keep_entries: u64,
    /// The applied index at the last snapshot taken, received, or skipped as too large (0 for
    /// none): the next one is due `snapshot_entries` after it. Not derivable from the Raft
    /// core's snapshot, which a skipped one never reaches.
    snapshot_index: Index,
    /// What this node measured of its followers while leading.
    followers: Followers,
    /// What it counts of itself (`/metrics`).
    metrics: Arc<Metrics>,
    /// The leader it last knew of, to count and log leader changes.
    last_leader: Option<(Term, NodeId)>,
    /// The `Ready` that `drain_ready` fills and closes over and over, kept between calls with
    /// its vectors' memory: it is filled and closed in place, never moved or built anew.
    ready: Option<Box<crate::raft::Ready>>,
    #[cfg(feature = "planted-bugs")]
    bugs: NodeBugs,
}

/// Opens the log on `disk` and restores the state machine from its snapshot, if it has one.
async fn recover<D: Disk, S: StateMachine, O: Observer>(
    disk: D,
    config: &NodeConfig,
    sm: &mut S,
    observer: &mut O,
) -> Result<(Wal<D>, Recovered), NodeError> {
    let id = config.raft.id;
    let (wal, recovered) = Wal::open_with(disk, open_options(config)).await?;
    observer.recovered(id, &recovered);
    if let Some(damage) = recovered.damage {
        tracing::warn!(
            node = id.0,
            offset = damage.offset,
            reason = ?damage.reason,
            intact_after = damage.intact_after,
            cut_bytes = recovered.cut_bytes,
            "the log is damaged (not a torn tail): cut to its last good record; this node will not vote until it has caught up from a leader"
        );
    } else if recovered.cut_bytes > 0 {
        tracing::warn!(
            node = id.0,
            cut_bytes = recovered.cut_bytes,
            "cut a torn log tail"
        );
    }
    if let Some(snapshot) = &recovered.snapshot {
        sm.restore(&snapshot.data)
            .map_err(|cause| NodeError::Snapshot {
                index: snapshot.index,
                cause,
            })?;
    }
    #[cfg(feature = "planted-bugs")]
    sm.planted_recovered(recovered.hard_state.commit);
    Ok((wal, recovered))
}

/// The log's open options: the planted bugs of the log, if any.
fn open_options(config: &NodeConfig) -> OpenOptions {
    #[cfg(feature = "planted-bugs")]
    {
        OpenOptions {
            truncate_on_corruption: config.bugs.truncate_on_corruption,
            ignore_checksum: config.bugs.ignore_checksum,
        }
    }
    #[cfg(not(feature = "planted-bugs"))]
    {
        let _ = config;
        OpenOptions::default()
    }
}

/// Runs one node until the request channel closes, the observer asks it to stop, or the disk fails.
///
/// Recovers the hard state and log from `env.disk`, then loops: wait for a message, a request or
/// the next timer; feed it to the Raft core; handle every `Ready` (persist, then send, then apply).
pub async fn run<C, N, D, S, O>(
    config: NodeConfig,
    env: Env<C, N, D>,
    mut sm: S,
    mut requests: mpsc::Receiver<Request<S>>,
    mut observer: O,
) -> Result<(), NodeError>
where
    C: Clock,
    N: Network,
    D: Disk,
    S: StateMachine,
    O: Observer,
{
    assert!(config.tick_ms > 0, "a tick lasts at least 1 ms");
    let Env {
        clock,
        mut net,
        disk,
    } = env;
    let (mut wal, recovered) = recover(disk, &config, &mut sm, &mut observer).await?;
    let recovering = recovered.recovering;
    let snapshot_index = recovered.snapshot.as_ref().map_or(Index(0), |s| s.index);
    let (recovered_term, recovered_vote) =
        (recovered.hard_state.term, recovered.hard_state.voted_for);
    let mut raw = RawNode::restart(
        config.raft.clone(),
        recovered.hard_state,
        recovered.snapshot,
        recovered.log_start,
        recovered.entries,
    )?;
    raw.set_recovering(recovering);
    let now = clock.now_ms();
    let synced = (recovered_term, recovered_vote);
    let mut node = Node::new(&config, (raw, sm, observer), now, synced, snapshot_index);
    // The snapshot being built and written away from the loop, if any (Raft §7).
    let mut snapshotting = None;
    loop {
        node.drain_ready(&mut wal, &mut net, &clock).await?;
        // Recovery from a damaged log ends once the node caught up from a leader (see
        // `raft::RawNode::try_end_recovery`): first the pinned vote is synced, then the end is
        // recorded in the log and synced at once, so that what the node reports (it votes
        // again) is what a restart finds (a crash in between only prolongs the recovery).
        if wal.recovering().is_some() && node.raw.try_end_recovery() {
            node.drain_ready(&mut wal, &mut net, &clock).await?;
            wal.end_recovery()?;
            wal.sync().await?;
            tracing::info!(
                node = node.raw.id().0,
                "caught up from the leader past the damaged log: votes again"
            );
        }
        if snapshotting.is_none()
            && let Some((job, build)) = node.snapshot_due(&clock)
        {
            let membership = node.raw.membership_at(job.index);
            // On disk the log restarts right after the snapshot: the entries the core keeps
            // below it for lagging followers stay in memory only, so the loop's part of the
            // swap (appending the kept entries, one sync) stays small whatever
            // `snapshot_keep_entries` is. A restarted node's log starts at its snapshot.
            let staging = wal.stage_snapshot(
                (job.index, job.term),
                (job.index, job.term),
                membership,
                build,
            );
            snapshotting = Some((job, Box::pin(staging)));
        }
        node.observer.stepped(&node.raw);
        if node.observer.should_stop() {
            return Ok(());
        }
        let deadline = node.ticked_ms + node.raw.ticks_until_timeout() * node.tick_ms;
        // `biased`: poll in a fixed order, so a seed replays exactly (an unbiased select picks a
        // ready branch at random, from an RNG that is not the seed's). Each branch reads the
        // clock once after its last wait and hands the reading (µs) to what follows without a
        // wait in between: catching up on ticks, stamping the messages stepped, housekeeping.
        // Messages taken in while the last sync was pending come first, with the requests that
        // queued meanwhile (one Ready for them all), as if they had waited in the network: the
        // loop goes back to its inputs between syncs, so a steady stream of AppendEntries
        // cannot keep a follower's clients waiting.
        let now_us = if !node.held.is_empty() {
            node.held_turn(&mut requests, config.requests_per_ready, &clock)
        } else {
            futures::select_biased! {
                (job, staged) = staged(&mut snapshotting).fuse() => {
                    node.finish_snapshot(&mut wal, job, staged?, &clock).await?;
                    clock.now_us()
                }
                request = requests.next() => {
                    let now_us = clock.now_us();
                    node.catch_up(now_us / 1000);
                    match request {
                        Some(request) => node.handle_request(request),
                        None => return Ok(()),
                    }
                    // Group commit: requests already queued join the same Ready (one sync), and
                    // their linearizable reads share one read index.
                    node.handle_queued(&mut requests, config.requests_per_ready.saturating_sub(1));
                    // Peer messages already delivered join this Ready too: under a steady stream
                    // of requests, followers' acknowledgements would otherwise wait behind one
                    // sync after another (this branch is polled first), and so would the commit
                    // of every write in flight.
                    for _ in 0..INPUT_BATCH_MAX {
                        let Some(msg) = net.try_recv() else { break };
                        node.step(msg, now_us);
                    }
                    now_us
                }
                msg = net.recv_until(deadline).fuse() => {
                    let now_us = clock.now_us();
                    node.catch_up(now_us / 1000);
                    if let Some(msg) = msg {
                        node.step(msg, now_us);
                        // Everything else already deliverable goes into the same Ready: one sync
                        // for many messages (group commit).
                        for _ in 1..INPUT_BATCH_MAX {
                            let Some(msg) = net.try_recv() else { break };
                            node.step(msg, now_us);
                        }
                    }
                    now_us
                }
            }
        };
        node.housekeep(now_us / 1000, &clock);
    }
}

/// If the node `led` when it took `ready` and gave way while its sync was pending (or a tick's
/// quorum check deposed it), the Ready's AppendEntries and heartbeats would only hold the
/// followers' election timers back: they are dropped. Dropping messages is always safe (the
/// network may lose any); its other messages (votes refused, read index answers) still go.
fn drop_leader_traffic(led: bool, raw: &RawNode, ready: &mut crate::raft::Ready) {
    if !led || raw.role().kind() == RoleKind::Leader {
        return;
    }
    ready
        .messages
        .retain(|m| !matches!(m.kind, MessageKind::Append { .. }));
}

/// Where this life's read tags start: the boot nonce (`NodeConfig::boot_nonce`).
fn read_ctx_start(config: &NodeConfig) -> u64 {
    #[cfg(feature = "planted-bugs")]
    if config.bugs.read_ctx_reuse {
        return 0;
    }
    config.boot_nonce
}

/// Completes when the snapshot in `slot` is staged, and empties the slot; never without one.
async fn staged<J, F: std::future::Future + Unpin>(slot: &mut Option<(J, F)>) -> (J, F::Output) {
    let Some((_, staging)) = slot.as_mut() else {
        return futures::future::pending().await;
    };
    let staged = staging.await;
    let (job, _) = slot.take().expect("polled above");
    (job, staged)
}

/// A snapshot being taken: what the loop knew when it took the state machine's view.
struct SnapshotJob {
    /// The applied index and its term: what the snapshot covers.
    index: Index,
    term: Term,
    /// Where the Raft core's compacted log will start (`snapshot_keep_entries` below
    /// `index`); the log on disk starts at `index`.
    log_start: (Index, Term),
    /// When the view was taken (world µs).
    started_us: u64,
}

/// Most messages stepped before their `Ready` is handled.
const INPUT_BATCH_MAX: usize = 64;

impl<S: StateMachine, O: Observer> Node<S, O> {
    /// The loop's state at start, `now_ms` in the world's time, with the term and vote the
    /// disk holds and the index of the snapshot the state machine was restored from.
    fn new(
        config: &NodeConfig,
        (raw, sm, observer): (RawNode, S, O),
        now: u64,
        (synced_term, synced_vote): (Term, Option<NodeId>),
        snapshot_index: Index,
    ) -> Node<S, O> {
        let was_member = raw.membership().contains(raw.id());
        Node {
            raw,
            told_membership: None,
            on_membership: config.on_membership.clone(),
            was_member,
            exit_when_removed: config.exit_when_removed,
            sm,
            observer,
            waiting: BTreeMap::new(),
            forwarded: Forwarded::new(config.boot_nonce, config.forward_timeout_ms),
            reads: BTreeMap::new(),
            unsent_reads: Vec::new(),
            read_ctx: read_ctx_start(config),
            watchers: Vec::new(),
            watchers_max: config.watchers_max,
            applied_waiters: BTreeMap::new(),
            read_timeout_ms: config.read_timeout_ms,
            housekeeping_ms: config.housekeeping_ms.max(1),
            housekept_ms: now,
            tick_ms: config.tick_ms,
            sync_bound_ms: 2 * config.raft.election_timeout_ticks * config.tick_ms,
            leader_sends_before_sync: config.leader_sends_before_sync,
            lazy_commit_sync: config.lazy_commit_sync,
            listen_while_syncing: config.listen_while_syncing,
            held: Vec::new(),
            applied_while_syncing: false,
            synced_term,
            synced_vote,
            ticked_ms: now,
            snapshot_entries: config.snapshot_entries,
            snapshot_keep_entries: config.snapshot_keep_entries,
            snapshot_index,
            followers: Followers::default(),
            metrics: config.metrics.clone(),
            last_leader: None,
            ready: None,
            #[cfg(feature = "planted-bugs")]
            bugs: config.bugs,
        }
    }

    /// Applies committed entries and answers their clients.
    fn apply_committed(&mut self, entries: &[Entry], removed: &mut Option<(Index, Membership)>) {
        let id = self.raw.id();
        for entry in entries {
            self.note_applied_config(entry, removed);
            let output = self.sm.apply(entry);
            self.observer.applied(id, entry);
            match entry.kind {
                EntryKind::Forwarded { origin, tag, .. } if origin == id => {
                    self.answer_forwarded(entry.index, entry.term, tag, output);
                }
                _ => self.answer(entry.index, entry.term, output),
            }
            let superseded = self.forwarded.superseded(entry.term, self.raw.leader());
            Metrics::add(&self.metrics.proposals_failed, superseded);
        }
    }

    /// An applied configuration entry: one without this node, that was a member, removed it.
    fn note_applied_config(&mut self, entry: &Entry, removed: &mut Option<(Index, Membership)>) {
        if let EntryKind::Config(m) = &entry.kind
            && !m.voters.is_empty()
        {
            if m.contains(self.raw.id()) {
                self.was_member = true;
            } else if self.was_member && removed.is_none() {
                *removed = Some((entry.index, (**m).clone()));
            }
        }
    }

    /// Tells `NodeConfig::on_membership` the configuration in force if it changed; with
    /// `keep_previous`, servers told before stay reachable.
    fn tell_membership(&mut self, keep_previous: bool) {
        let Some(hook) = &self.on_membership else {
            return;
        };
        let now = self.raw.membership();
        let mut reached = self.raw.replicated_to();
        if keep_previous && let Some((_, before)) = &self.told_membership {
            // Messages of this Ready may still go to servers just dropped (a removed server's
            // last AppendEntries): they are let go once the Ready is sent.
            reached.extend(before);
            reached.sort();
            reached.dedup();
        }
        if self
            .told_membership
            .as_ref()
            .is_none_or(|(m, r)| m != now || *r != reached)
        {
            (hook.0)(now, &reached);
            self.told_membership = Some((now.clone(), reached));
        }
    }

    /// Ticks the Raft core once for every tick boundary passed since the last one. A node that
    /// was paused for long is ticked at most one election timeout's worth: more would change
    /// nothing but the work done.
    fn catch_up(&mut self, now_ms: u64) {
        let due = now_ms.saturating_sub(self.ticked_ms) / self.tick_ms;
        let cap = self.raw.config().election_timeout_max_ticks + 1;
        for _ in 0..due.min(cap) {
            self.raw.tick();
        }
        self.ticked_ms += due * self.tick_ms;
    }

    fn step(&mut self, msg: Message, now_us: u64) {
        if self.raw.role().kind() == RoleKind::Leader {
            self.note_round_trip(&msg, now_us);
        }
        if matches!(msg.kind, MessageKind::Append { .. }) {
            Metrics::add(&self.metrics.append_received, 1);
        }
        if let Err(e) = self.raw.step(msg) {
            tracing::warn!(node = self.raw.id().0, error = %e, "dropped a message");
        }
    }

    /// A leader's measure of its followers' answers (`/metrics`' peer round trip).
    fn note_round_trip(&mut self, msg: &Message, now_us: u64) {
        if let Some(us) = self
            .followers
            .received(self.raw.hard_state().term, msg, now_us)
        {
            self.metrics.peer_round_trip.observe(us);
        }
    }

    /// Appends a client's command (this node leads) or forwards it to the leader.
    fn propose(&mut self, data: Vec<u8>, reply: Reply<S::Output>) {
        if self.forwarded.pending.len() >= FORWARDED_MAX {
            let _ = reply.send(Err(ClientError::Busy));
            return;
        }
        match self.raw.propose_or_forward(self.forwarded.next_tag, data) {
            Ok(Proposed::Appended(index, term)) => {
                let previous = self.waiting.insert(index, (term, reply));
                // An older proposal at this index lost its place when a new leader truncated
                // it; only a leader appends, so it is this node's own and gone.
                if let Some((_, old)) = previous {
                    let _ = old.send(Err(ClientError::Overwritten));
                }
            }
            Ok(Proposed::Forwarded(term)) => self.forwarded.sent(self.ticked_ms, term, reply),
            Err(ProposeError::NotLeader { leader }) => {
                let _ = reply.send(Err(ClientError::NotLeader { leader }));
            }
            Err(ProposeError::Dropped) => {
                let _ = reply.send(Err(ClientError::Busy));
            }
            // Leadership is moving (thesis §3.10): nothing was appended; the client retries
            // and finds the new leader (or this one again, if the transfer gave up).
            Err(ProposeError::Transferring { .. }) => {
                let _ = reply.send(Err(ClientError::NotLeader { leader: None }));
            }
        }
    }

    fn handle_request(&mut self, request: Request<S>) {
        match request {
            Request::Propose { data, reply } => self.propose(data, reply),
            Request::Read {
                query,
                linearizable: false,
                reply,
            } => {
                let answer = self.sm.query(&query);
                let _ = reply.send(Ok(self.read_answer(answer)));
            }
            Request::Read {
                query,
                linearizable: true,
                reply,
            } => self.unsent_reads.push((query, reply)),
            Request::WaitApplied { index, reply } => {
                let waiting: usize = self.applied_waiters.values().map(Vec::len).sum();
                if index <= self.raw.raft_log().applied() || waiting >= self.watchers_max {
                    let _ = reply.send(());
                } else {
                    self.applied_waiters.entry(index).or_default().push(reply);
                }
            }
            Request::Status { reply } => {
                let _ = reply.send(self.raw.status());
            }
            Request::TransferLeader { target, reply } => {
                let target = target
                    .or_else(|| self.raw.most_up_to_date_follower())
                    .ok_or(TransferError::NoFollower);
                let answer = target.and_then(|t| self.raw.transfer_leader(t).map(|()| t));
                tracing::info!(node = self.raw.id().0, ?answer, "leadership transfer asked");
                let _ = reply.send(answer);
            }
            Request::ConfChange {
                change,
                addresses,
                reply,
            } => {
                let answer = self.raw.propose_member_change(change, addresses.clone());
                tracing::info!(
                    node = self.raw.id().0,
                    ?change,
                    ?addresses,
                    ?answer,
                    "configuration change asked"
                );
                let _ = reply.send(answer);
            }
            Request::LeaderStats { reply } => {
                let status = self.raw.status();
                let stats = if status.role == RoleKind::Leader {
                    self.followers.report(status.term)
                } else {
                    Vec::new()
                };
                let _ = reply.send(stats);
            }
            Request::Watch {
                mut watch,
                reply,
                armed,
            } => {
                let position = self.read_answer(self.sm.position());
                self.sm.arm_watch(&mut watch);
                let arm = |armed: Option<oneshot::Sender<ReadAnswer<u64>>>| {
                    if let Some(armed) = armed {
                        let _ = armed.send(position);
                    }
                };
                // An immediate answer is sent before `armed`, so a caller that got `armed` (on
                // any thread) finds it by polling once.
                match self.sm.poll_watch(&watch) {
                    Some(answer) => {
                        let _ = reply.send(Ok(self.read_answer(answer)));
                        arm(armed);
                    }
                    None if self.watchers.len() >= self.watchers_max => {
                        let _ = reply.send(Err(ClientError::TooManyWatchers));
                    }
                    None => {
                        arm(armed);
                        self.watchers.push((watch, reply));
                    }
                }
            }
        }
    }

    /// An answer stamped with the node's applied index and term.
    fn read_answer<A>(&self, answer: A) -> ReadAnswer<A> {
        let status = self.raw.status();
        ReadAnswer {
            applied: status.applied,
            term: status.term,
            answer,
        }
    }

    /// Fires every watch the newly applied entries satisfy, in arrival order; forgets those
    /// whose client went away.
    fn wake_watchers(&mut self) {
        for (watch, reply) in std::mem::take(&mut self.watchers) {
            if reply.is_canceled() {
                continue;
            }
            match self.sm.poll_watch(&watch) {
                Some(answer) => {
                    let _ = reply.send(Ok(self.read_answer(answer)));
                }
                None => self.watchers.push((watch, reply)),
            }
        }
    }

    /// The leader's housekeeping: propose what the state machine asks for (TTL expiry).
    /// `now_ms` is the loop turn's clock reading.
    fn housekeep<C: Clock>(&mut self, now_ms: u64, clock: &C) {
        if now_ms < self.housekept_ms + self.housekeeping_ms {
            return;
        }
        self.housekept_ms = now_ms;
        // The wall clock only when due (it is read at every turn of the loop).
        let unix_ms = clock.unix_ms();
        #[cfg(feature = "planted-bugs")]
        self.sm.planted_housekeeping(unix_ms);
        if self.raw.role().kind() != RoleKind::Leader {
            return;
        }
        if let Some(data) = self.sm.leader_proposal(unix_ms) {
            // Nobody waits for it; a failure is retried at the next housekeeping.
            let _ = self.raw.propose(data);
        }
    }

    /// Asks one read index (Raft thesis §6.4) for every read of the current batch of requests.
    fn start_reads(&mut self) {
        if self.unsent_reads.is_empty() {
            return;
        }
        let mut items = std::mem::take(&mut self.unsent_reads);
        let in_flight: usize = self.reads.values().map(|r| r.items.len()).sum();
        let room = READS_MAX.saturating_sub(in_flight);
        for (_, reply) in items.drain(room.min(items.len())..) {
            let _ = reply.send(Err(ClientError::Busy));
        }
        if items.is_empty() {
            return;
        }
        self.read_ctx += 1;
        let ctx = self.read_ctx;
        match self.raw.read_index(ctx) {
            Ok(()) => {
                let term = self.raw.hard_state().term;
                self.reads.insert(
                    ctx,
                    PendingRead {
                        items,
                        asked_ms: self.ticked_ms,
                        term,
                        index: None,
                    },
                );
            }
            Err(ProposeError::NotLeader { leader }) => {
                for (_, reply) in items {
                    let _ = reply.send(Err(ClientError::NotLeader { leader }));
                }
            }
            Err(ProposeError::Dropped | ProposeError::Transferring { .. }) => {
                for (_, reply) in items {
                    let _ = reply.send(Err(ClientError::Busy));
                }
            }
        }
    }

    /// Serves every read whose index is known and applied; drops reads of an older term, whose
    /// read index may never arrive (their clients learn it at once instead of timing out), and
    /// reads whose index has not come within `read_timeout_ms` (a lost message): `Busy`.
    fn serve_reads(&mut self) {
        if self.reads.is_empty() {
            return;
        }
        let status = self.raw.status();
        let now = self.ticked_ms;
        let timeout = self.read_timeout_ms;
        let ready: Vec<u64> = self
            .reads
            .iter()
            .filter(|(_, r)| {
                let expired = r.index.is_none() && now >= r.asked_ms + timeout;
                r.term != status.term || expired || r.index.is_some_and(|i| i <= status.applied)
            })
            .map(|(&ctx, _)| ctx)
            .collect();
        for ctx in ready {
            let read = self.reads.remove(&ctx).expect("listed above");
            for (query, reply) in read.items {
                let answer = if read.term != status.term {
                    Err(ClientError::NotLeader {
                        leader: status.leader,
                    })
                } else if read.index.is_none() {
                    Err(ClientError::Busy)
                } else {
                    Ok(self.read_answer(self.sm.query(&query)))
                };
                let _ = reply.send(answer);
            }
        }
    }

    /// Stops here for good if the observer aims a crash at `point` (the world kills the node
    /// while it waits; see `Observer::crash_here`).
    async fn crash_point(&mut self, point: CrashPoint) {
        if self.observer.crash_here(point) {
            std::future::pending::<()>().await;
        }
    }

    /// Handles every `Ready` until the core is quiet, honouring its contract: persist (and sync)
    /// the hard state and entries, then send, then apply.
    async fn drain_ready<D: Disk, N: Network, C: Clock>(
        &mut self,
        wal: &mut Wal<D>,
        net: &mut N,
        clock: &C,
    ) -> Result<(), NodeError> {
        let mut applied_any = false;
        self.tell_membership(true);
        let mut removed = None;
        let mut slow_sync = false;
        let mut ready = self.ready.take().unwrap_or_default();
        while self.raw.ready_into(&mut ready) {
            // Before anything of this Ready leaves: the transport must know new members.
            self.tell_membership(true);
            applied_any |= !ready.committed_entries.is_empty();
            if planted!(self.bugs.vote_not_persisted)
                || (self.leader_sends_before_sync && self.raw.role().kind() == RoleKind::Leader)
            {
                // Planted bug: messages (votes among them) leave before the sync below. Or a
                // leader overlapping its disk write with its followers' (see NodeConfig).
                self.send_all(&mut ready, net, || clock.now_us());
            }
            #[cfg(feature = "planted-bugs")]
            if self.bugs.ack_before_sync && self.raw.role().kind() != RoleKind::Leader {
                let (acks, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut ready.messages)
                    .into_iter()
                    .partition(|m| matches!(m.kind, MessageKind::AppendResponse { .. }));
                ready.messages = acks;
                self.send_all(&mut ready, net, || clock.now_us());
                ready.messages = rest;
            }
            self.send_forwarded_early(&mut ready, net, clock);
            let installed = ready.snapshot.is_some();
            if let Some(snapshot) = ready.snapshot.take() {
                self.install(wal, snapshot).await?;
                applied_any = true;
            }
            let led = self.raw.role().kind() == RoleKind::Leader;
            if led {
                self.apply_ready(&ready.committed_entries, &mut removed, true)
                    .await;
            } else if !installed {
                self.apply_follower_committed(&ready, &mut removed);
            }
            let (slow, synced_us) = self.persist(wal, net, &ready, clock, &mut removed).await?;
            slow_sync |= slow;
            drop_leader_traffic(led, &self.raw, &mut ready);
            self.send_all(&mut ready, net, || {
                synced_us.unwrap_or_else(|| clock.now_us())
            });
            // What was not applied before the sync or while it was pending (`applied_early`).
            let applied = self.raw.raft_log().applied();
            let first_unapplied = ready
                .committed_entries
                .partition_point(|e| e.index <= applied);
            if let Some(rest) = ready.committed_entries.get(first_unapplied..)
                && !rest.is_empty()
            {
                self.apply_ready(rest, &mut removed, false).await;
            }
            self.note_read_states(&ready);
            self.raw.advance_in_place(&mut ready);
        }
        self.ready = Some(ready);
        applied_any |= std::mem::take(&mut self.applied_while_syncing);
        // Planted bug `sync-blocks-loop` only: the sync was awaited inline, so the leader
        // notices only now, after it returned, that it took longer than the bound (see
        // `Node::sync_ticking` for what the loop does instead).
        if slow_sync && self.raw.step_down() {
            tracing::warn!(
                node = self.raw.id().0,
                bound_ms = self.sync_bound_ms,
                "a log sync took longer than two election timeouts: stepped down as leader"
            );
        }
        self.tell_membership(false);
        if self.exit_when_removed
            && let Some((index, membership)) = removed
        {
            return Err(NodeError::Removed { index, membership });
        }
        self.serve_reads();
        #[cfg(feature = "planted-bugs")]
        if self.bugs.forward_early {
            let status = self.raw.status();
            let early = self.forwarded.superseded(status.term, status.leader);
            Metrics::add(&self.metrics.proposals_failed, early);
        }
        let expired = self.forwarded.expire(self.ticked_ms);
        Metrics::add(&self.metrics.proposals_failed, expired);
        self.count_and_log();
        if applied_any && !self.watchers.is_empty() {
            self.wake_watchers();
        }
        if applied_any && !self.applied_waiters.is_empty() {
            let applied = self.raw.raft_log().applied();
            let later = self.applied_waiters.split_off(&applied.next());
            for reply in std::mem::replace(&mut self.applied_waiters, later)
                .into_values()
                .flatten()
            {
                let _ = reply.send(());
            }
        }
        Ok(())
    }

    /// The read indexes a `Ready` confirmed, for the reads waiting on them.
    fn note_read_states(&mut self, ready: &crate::raft::Ready) {
        for read_state in &ready.read_states {
            if let Some(read) = self.reads.get_mut(&read_state.ctx) {
                read.index = Some(read_state.index);
            }
        }
    }

    /// Applies a `Ready`'s committed entries and answers their clients. `early`: a leader's,
    /// before the `Ready`'s new entries are synced. They are durable already: a leader's own
    /// match index is its log's stable index, so nothing above it counts towards a commit
    /// (Raft §5.3, §5.4.2). An acknowledgement that committed a batch then does not wait for
    /// the next batch's sync (etcd applies beside its WAL write too). A follower's committed
    /// entries may include the `Ready`'s own: it applies those after its sync
    /// ([`Node::apply_durable_committed`] takes the others before it).
    async fn apply_ready(
        &mut self,
        entries: &[Entry],
        removed: &mut Option<(Index, Membership)>,
        early: bool,
    ) {
        self.apply_committed(entries, removed);
        if early && let Some(last) = entries.last() {
            self.raw.applied_early(last.index);
            self.crash_point(CrashPoint::LeaderCommitted).await;
        }
    }

    /// A follower's forwarded proposals and reads say nothing about its own log or vote, so
    /// they need not wait for its sync (Raft Figure 2 holds back only what promises durable
    /// state: votes and acknowledgements). Sent before it, a write through a follower does not
    /// wait for the follower's unrelated sync on its way to the leader.
    fn send_forwarded_early<N: Network, C: Clock>(
        &mut self,
        ready: &mut crate::raft::Ready,
        net: &mut N,
        clock: &C,
    ) {
        let forwarded = |m: &Message| {
            matches!(
                m.kind,
                MessageKind::Propose { .. } | MessageKind::ReadIndex { .. }
            )
        };
        if self.raw.role().kind() == RoleKind::Leader || !ready.messages.iter().any(forwarded) {
            return;
        }
        let (early, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut ready.messages)
            .into_iter()
            .partition(forwarded);
        ready.messages = early;
        self.send_all(ready, net, || clock.now_us());
        ready.messages = rest;
    }

    /// A follower's part of [`Node::apply_ready`]: applies, before the `Ready`'s sync, the
    /// committed entries it may. Committed entries are durable on a
    /// majority and never change (Raft §5.3, Figure 3's State Machine Safety), so the write a
    /// client sent through this follower is answered once the commit index reaches it, not
    /// after the follower's sync of the next, unrelated batch the same AppendEntries brought
    /// (etcd's followers apply beside their WAL write as well). With
    /// [`NodeConfig::listen_while_syncing`] that is all of them; without, only those its log
    /// already held durably (below the `Ready`'s new entries), the others after its sync.
    fn apply_follower_committed(
        &mut self,
        ready: &crate::raft::Ready,
        removed: &mut Option<(Index, Membership)>,
    ) {
        let committed = &ready.committed_entries;
        let early = if self.listen_while_syncing {
            committed.len()
        } else {
            ready.entries.first().map_or(committed.len(), |first| {
                committed.partition_point(|e| e.index < first.index)
            })
        };
        if let Some(last) = committed[..early].last() {
            self.apply_committed(&committed[..early], removed);
            self.raw.applied_early(last.index);
        }
    }

    /// A peer message that arrived while this node's sync was pending
    /// ([`NodeConfig::listen_while_syncing`]): what it says about commitment is taken at once
    /// (`RawNode::step_during_sync`) and what committed is applied and answered; the message
    /// itself is held for [`Node::step_held`] unless the core consumed it.
    fn take_while_syncing(
        &mut self,
        msg: Message,
        now_us: u64,
        removed: &mut Option<(Index, Membership)>,
    ) {
        let (role, commit) = (self.raw.role().kind(), self.raw.raft_log().commit());
        if role == RoleKind::Leader {
            self.note_round_trip(&msg, now_us);
        }
        match self.raw.step_during_sync(msg) {
            Ok(Some(msg)) => self.held.push(msg),
            Ok(None) => {}
            Err(e) => tracing::warn!(node = self.raw.id().0, error = %e, "dropped a message"),
        }
        if self.raw.role().kind() != role || self.raw.raft_log().commit() != commit {
            // As after a whole Ready: the commit index never passes what a majority stored.
            self.observer.stepped(&self.raw);
        }
        let committed = self.raw.committed_during_sync();
        if let Some(last) = committed.last().map(|e| e.index) {
            let entries = committed.to_vec();
            self.apply_committed(&entries, removed);
            self.raw.applied_early(last);
            self.applied_while_syncing = true;
        }
    }

    /// A turn of the loop for the messages held while the last sync was pending: the requests
    /// that queued meanwhile (up to `requests_per_ready`), then the held messages, into one
    /// `Ready`. Returns the clock's reading (µs).
    fn held_turn<C: Clock>(
        &mut self,
        requests: &mut mpsc::Receiver<Request<S>>,
        requests_per_ready: usize,
        clock: &C,
    ) -> u64 {
        let now_us = clock.now_us();
        self.catch_up(now_us / 1000);
        self.handle_queued(requests, requests_per_ready);
        self.step_held(now_us);
        now_us
    }

    /// Handles up to `max` requests already queued, then starts the reads they asked for
    /// (sharing one read index).
    fn handle_queued(&mut self, requests: &mut mpsc::Receiver<Request<S>>, max: usize) {
        for _ in 0..max {
            match requests.try_recv() {
                Ok(request) => self.handle_request(request),
                _ => break,
            }
        }
        self.start_reads();
    }

    /// Steps the messages held while the last sync was pending, in their order.
    fn step_held(&mut self, now_us: u64) {
        let mut held = std::mem::take(&mut self.held);
        for msg in held.drain(..) {
            self.step(msg, now_us);
        }
        self.held = held;
    }

    /// Persists a `Ready`'s hard state and entries, syncing unless only the commit index
    /// changed (and `lazy_commit_sync`), while the loop goes on ticking ([`Node::sync_ticking`]).
    /// Returns whether a sync awaited inline (planted bug `sync-blocks-loop` only) took longer
    /// than the bound ([`Node::sync_bound_ms`]), and the clock's reading (µs) when a sync
    /// ended (nothing waits after it, so the `Ready`'s messages leave at that time).
    async fn persist<D: Disk, N: Network, C: Clock>(
        &mut self,
        wal: &mut Wal<D>,
        net: &mut N,
        ready: &crate::raft::Ready,
        clock: &C,
        removed: &mut Option<(Index, Membership)>,
    ) -> Result<(bool, Option<u64>), NodeError> {
        let id = self.raw.id();
        let mut slow = false;
        let mut synced_at = None;
        if ready.hard_state.is_some() || !ready.entries.is_empty() {
            wal.append(ready.hard_state.as_ref(), &ready.entries)?;
            // A hard state whose only change is the commit index needs no sync: a lost
            // commit index is learned again from the leader (etcd's WAL skips that fsync
            // too). Entries, terms and votes are always synced before anything depends on
            // them.
            let commit_only = ready.entries.is_empty()
                && ready.hard_state.as_ref().is_some_and(|hs| {
                    hs.term == self.synced_term && hs.voted_for == self.synced_vote
                });
            if !(commit_only && self.lazy_commit_sync) {
                if !ready.entries.is_empty() {
                    self.crash_point(CrashPoint::SyncInFlight).await;
                }
                let started_us = clock.now_us();
                let leading = self.raw.role().kind() == RoleKind::Leader;
                self.observer.sync_started(id, leading);
                if planted!(self.bugs.sync_blocks_loop) {
                    wal.sync().await?;
                    let took_us = clock.now_us().saturating_sub(started_us);
                    slow = took_us > self.sync_bound_ms * 1000;
                } else {
                    self.sync_ticking(wal, net, clock, removed).await?;
                }
                let synced_us = clock.now_us();
                synced_at = Some(synced_us);
                self.metrics
                    .wal_fsync
                    .observe(synced_us.saturating_sub(started_us));
                if let Some(hs) = &ready.hard_state {
                    self.synced_term = hs.term;
                    self.synced_vote = hs.voted_for;
                }
                self.observer
                    .persisted(id, ready.hard_state.as_ref(), &ready.entries);
                if !ready.entries.is_empty() && self.raw.role().kind() == RoleKind::Follower {
                    self.crash_point(CrashPoint::PersistedNotAnswered).await;
                }
            }
        }
        Ok((slow, synced_at))
    }

    /// Awaits the log sync of the `Ready` being handled while the loop keeps the Raft core's
    /// time: the sync is a future polled beside the tick timer (hashicorp/raft#503 asks that a
    /// node never block on its disk in a way that stops it from noticing). A leader whose sync
    /// has been pending longer than the bound (two minimum election timeouts) steps down at
    /// once, so it stops sending heartbeats for good and a node with a working disk can lead.
    ///
    /// Only a leader is ticked. A follower or candidate whose disk hangs can neither vote nor
    /// campaign usefully: its RequestVote may leave only once its vote for itself is durable
    /// (Figure 2), behind the pending sync. Ticked, it would campaign again at every election
    /// timeout and come back from the stall with a term far ahead that deposes the leader the
    /// others elected meanwhile (seen without PreVote in `disk-fsync-stall`). Its clock is
    /// caught up after the sync, at most an election timeout's worth (`Node::catch_up`), as
    /// after a pause.
    ///
    /// What it does not do while the sync is pending keeps Raft's durability rules exact:
    /// - it sends nothing: everything the ticks and messages make (heartbeats, a campaign's
    ///   votes, answers) waits in the core for the next `Ready`, whose persist comes first
    ///   (Figure 2: "respond to RPCs only after updating stable storage"); the answers of the
    ///   `Ready` being synced (votes, a follower's acknowledgements) leave only after this
    ///   returns; client requests wait in their queue;
    /// - with [`NodeConfig::listen_while_syncing`] it takes in peer messages, but only for what
    ///   they say about commitment (`RawNode::step_during_sync`): a leader's followers'
    ///   acknowledgements, a follower's leader's commit index; it applies and answers what
    ///   committed, and holds every message it did not consume for the next turn of the loop,
    ///   in order (without, they wait in the network's queue);
    /// - it does not `advance` the core, so the leader's own match index (the log's stable
    ///   index) does not count the pending entries towards a commit (§5.3, §5.4.2), and a
    ///   commit index learned meanwhile stays within the durable log;
    /// - there is one sync in flight at most: the next `Ready` is taken once this returns.
    ///
    /// The world's disk must not block the thread: `floe`'s fdatasync runs on tokio's blocking
    /// pool (`engine::net::disk`), the simulator's sync is a timer.
    async fn sync_ticking<D: Disk, N: Network, C: Clock>(
        &mut self,
        wal: &mut Wal<D>,
        net: &mut N,
        clock: &C,
        removed: &mut Option<(Index, Membership)>,
    ) -> Result<(), NodeError> {
        let started_ms = clock.now_ms();
        let sync = wal.sync().fuse();
        let mut sync = std::pin::pin!(sync);
        loop {
            let leading = self.raw.role().kind() == RoleKind::Leader;
            let listening = self.listen_while_syncing && self.held.len() < INPUT_BATCH_MAX;
            if !leading && !listening {
                return Ok(sync.await?);
            }
            let next_tick_ms = self.ticked_ms + self.tick_ms;
            if listening {
                // Only a leader ticks; a follower wakes for messages alone (its deadline is a
                // formality: the loop goes round when it passes).
                let deadline = if leading {
                    next_tick_ms
                } else {
                    clock.now_ms() + self.sync_bound_ms
                };
                futures::select_biased! {
                    synced = sync => return Ok(synced?),
                    msg = net.recv_until(deadline).fuse() => match msg {
                        Some(msg) => self.take_while_syncing(msg, clock.now_us(), removed),
                        None if leading => self.tick_while_syncing(clock.now_ms(), started_ms),
                        None => {}
                    },
                }
            } else {
                futures::select_biased! {
                    synced = sync => return Ok(synced?),
                    () = clock.sleep_until(next_tick_ms).fuse() => {
                        self.tick_while_syncing(clock.now_ms(), started_ms);
                    }
                }
            }
        }
    }

    /// One tick boundary passed while the leader's sync begun at `started_ms` is pending: the
    /// core ticks (heartbeats wait in it for the next `Ready`; CheckQuorum may depose it), and
    /// once the sync is older than the bound the leader gives way.
    fn tick_while_syncing(&mut self, now_ms: u64, started_ms: u64) {
        self.catch_up(now_ms);
        let pending_ms = now_ms.saturating_sub(started_ms);
        if pending_ms > self.sync_bound_ms && self.raw.step_down() {
            tracing::warn!(
                node = self.raw.id().0,
                pending_ms,
                bound_ms = self.sync_bound_ms,
                "a log sync has been pending longer than two election timeouts: stepped down as leader"
            );
        }
        if self.raw.role().kind() != RoleKind::Leader {
            // The world learns at once that it no longer leads. Only then, mid-Ready: a
            // leader's commit index never passes its own durable log (it counts its stable
            // index), so what the observer sees holds as after a whole Ready.
            self.observer.stepped(&self.raw);
        }
    }

    /// A snapshot from the leader (Raft §7): the state machine is restored from it, and the
    /// log on disk becomes the snapshot, the hard state and the entries this node kept after
    /// it (durable before any answer leaves).
    async fn install<D: Disk>(
        &mut self,
        wal: &mut Wal<D>,
        snapshot: Snapshot,
    ) -> Result<(), NodeError> {
        let id = self.raw.id();
        assert_eq!(
            self.raw.raft_log().offset(),
            snapshot.index,
            "the log starts at the snapshot"
        );
        // Restored first: a snapshot that does not restore (corrupt, or not this machine's)
        // stops the node with the log on disk as it was, so it restarts from what it had.
        self.sm
            .restore(&snapshot.data)
            .map_err(|cause| NodeError::Snapshot {
                index: snapshot.index,
                cause,
            })?;
        self.rewrite_log(wal, &snapshot).await?;
        self.snapshot_index = snapshot.index;
        self.observer
            .snapshot_installed(id, snapshot.index, snapshot.term);
        tracing::info!(
            node = id.0,
            index = snapshot.index.0,
            bytes = snapshot.data.len(),
            "installed a snapshot from the leader"
        );
        // Proposals of this node the snapshot covers will never be applied here one by one:
        // whether they committed is unknown.
        let later = self.waiting.split_off(&snapshot.index.next());
        for (_, (_, reply)) in std::mem::replace(&mut self.waiting, later) {
            let _ = reply.send(Err(ClientError::Compacted));
            Metrics::add(&self.metrics.proposals_failed, 1);
        }
        // Forwarded commands carry no index here: any of them may lie under the snapshot.
        for (_, pending) in std::mem::take(&mut self.forwarded.pending) {
            let _ = pending.reply.send(Err(ClientError::Compacted));
            Metrics::add(&self.metrics.proposals_failed, 1);
        }
        Ok(())
    }

    /// Rewrites the log on disk as `snapshot`, the hard state and the durable entries the Raft
    /// log holds after its compacted offset; returns how many entries were kept.
    async fn rewrite_log<D: Disk>(
        &mut self,
        wal: &mut Wal<D>,
        snapshot: &Snapshot,
    ) -> Result<usize, NodeError> {
        let log = self.raw.raft_log();
        let offset = log.offset();
        let start = (offset, log.term(offset).expect("the offset's term is kept"));
        let kept = log
            .slice(log.first_index(), log.stable(), usize::MAX)
            .to_vec();
        let hard_state = self.raw.hard_state();
        wal.rewrite(snapshot, start, &hard_state, &kept).await?;
        self.synced_term = hard_state.term;
        self.synced_vote = hard_state.voted_for;
        self.observer
            .persisted(self.raw.id(), Some(&hard_state), &[]);
        Ok(kept.len())
    }

    /// Raft §7: once `snapshot_entries` entries were applied since the last snapshot, a view
    /// of the state machine (O(1) for the store) and what the compacted log will start with.
    /// The view is serialised and written away from the loop ([`Wal::stage_snapshot`]); the
    /// log is compacted once that is durable ([`Node::finish_snapshot`]).
    fn snapshot_due<C: Clock>(&mut self, clock: &C) -> Option<(SnapshotJob, super::SnapshotBuild)> {
        let applied = self.raw.raft_log().applied();
        if self.snapshot_entries == 0 || applied.0 < self.snapshot_index.0 + self.snapshot_entries {
            return None;
        }
        let log = self.raw.raft_log();
        let term = log.term(applied).expect("the applied entry is in the log");
        let start = Index(applied.0.saturating_sub(self.snapshot_keep_entries)).max(log.offset());
        let start_term = log
            .term(start)
            .expect("the offset and later entries have terms");
        let job = SnapshotJob {
            index: applied,
            term,
            log_start: (start, start_term),
            // The clock only when due (this is asked at every turn of the loop).
            started_us: clock.now_us(),
        };
        Some((job, self.sm.snapshot_view()))
    }

    /// The snapshot of `job` is staged (built and written beside the log, durable): the Raft
    /// core compacts its log to it, and the log on disk becomes the staged snapshot, the hard
    /// state and the entries kept after `job.log_start` (Raft §7). Dropped if a snapshot from
    /// the leader was installed meanwhile (it is newer: it lies beyond this node's commit
    /// index, which was at least `job.index`).
    async fn finish_snapshot<D: Disk, C: Clock>(
        &mut self,
        wal: &mut Wal<D>,
        job: SnapshotJob,
        (staged, snapshot): (Staged<D::Staged>, Result<Snapshot, usize>),
        clock: &C,
    ) -> Result<(), NodeError> {
        let id = self.raw.id();
        self.snapshot_index = self.snapshot_index.max(job.index);
        let snapshot = match snapshot {
            Ok(snapshot) => snapshot,
            Err(bytes) => {
                // Too large for one record (or one peer frame): keep the log whole rather
                // than stop; try again after as many entries.
                tracing::warn!(
                    node = id.0,
                    bytes,
                    "the state machine is too large to snapshot; the log is not compacted"
                );
                return Ok(());
            }
        };
        let log = self.raw.raft_log();
        let offset =
            Index(job.index.0.saturating_sub(self.snapshot_keep_entries)).max(log.offset());
        if self.raw.snapshot().is_some_and(|s| s.index >= job.index) || offset != job.log_start.0 {
            tracing::debug!(
                node = id.0,
                index = job.index.0,
                "a newer snapshot came first"
            );
            return Ok(());
        }
        let bytes = snapshot.data.len();
        self.raw.compact(snapshot, self.snapshot_keep_entries);
        let log = self.raw.raft_log();
        debug_assert_eq!(log.offset(), job.log_start.0, "compacted where staged");
        debug_assert_eq!(log.stable(), log.last_index(), "a drained log is stable");
        let kept = log
            .slice(job.index.next(), log.stable(), usize::MAX)
            .to_vec();
        let hard_state = self.raw.hard_state();
        wal.install_staged(staged, job.index, &hard_state, &kept)
            .await?;
        self.synced_term = hard_state.term;
        self.synced_vote = hard_state.voted_for;
        self.observer.persisted(id, Some(&hard_state), &[]);
        self.metrics
            .snapshot_save
            .observe(clock.now_us().saturating_sub(job.started_us));
        tracing::debug!(
            node = id.0,
            index = job.index.0,
            bytes,
            kept = kept.len(),
            "took a snapshot and compacted the log"
        );
        Ok(())
    }

    /// Sends the `Ready`'s messages. `now_us` reads the clock: only a leader's follower
    /// statistics need the send time, so it is read only by a leader with something to send.
    fn send_all<N: Network>(
        &mut self,
        ready: &mut crate::raft::Ready,
        net: &mut N,
        now_us: impl FnOnce() -> u64,
    ) {
        let leads = self.raw.role().kind() == RoleKind::Leader;
        let sent_us = (leads && !ready.messages.is_empty()).then(now_us);
        for msg in ready.messages.drain(..) {
            if let Some(sent_us) = sent_us {
                self.followers.sent(&msg, sent_us);
            }
            if matches!(msg.kind, MessageKind::Append { .. }) {
                Metrics::add(&self.metrics.append_sent, 1);
            }
            self.observer.sending(&msg);
            net.send(msg);
        }
    }

    /// Updates the gauges and counts (and logs) a new leader or a campaign.
    fn count_and_log(&mut self) {
        // What it needs of the core, read one by one (this runs after every batch of input;
        // a whole `Status` would also look up the last entry).
        let id = self.raw.id();
        let term = self.raw.hard_state().term;
        let role = self.raw.role().kind();
        let raft_leader = self.raw.leader();
        let log = self.raw.raft_log();
        let m = &self.metrics;
        Metrics::set(&m.term, term.0);
        Metrics::set(&m.committed, log.commit().0);
        Metrics::set(&m.applied, log.applied().0);
        Metrics::set(&m.has_leader, u64::from(raft_leader.is_some()));
        Metrics::set(&m.is_leader, u64::from(role == RoleKind::Leader));
        let pending = self.waiting.len() + self.forwarded.pending.len();
        Metrics::set(&m.proposals_pending, pending as u64);
        let leader = raft_leader.map(|leader| (term, leader));
        if leader.is_some() && leader != self.last_leader {
            Metrics::add(&m.leader_changes, 1);
            tracing::info!(
                node = id.0,
                term = term.0,
                leader = raft_leader.map_or(0, |l| l.0),
                "new leader"
            );
            self.last_leader = leader;
        } else if leader.is_none()
            && matches!(role, RoleKind::Candidate)
            && self.last_leader.is_some_and(|(last, _)| last < term)
        {
            tracing::info!(node = id.0, term = term.0, "campaigning");
            self.last_leader = None;
        }
    }

    /// Answers the client of a command this node forwarded, now applied at `index`.
    fn answer_forwarded(&mut self, index: Index, term: Term, tag: u64, output: S::Output) {
        // A proposal this node appended there as leader of an older term lost its place.
        if let Some((_, old)) = self.waiting.remove(&index) {
            let _ = old.send(Err(ClientError::Overwritten));
        }
        if let Some(Pending { reply, .. }) = self.forwarded.pending.remove(&tag) {
            let _ = reply.send(Ok(Applied {
                index,
                term,
                output,
            }));
        }
    }

    fn answer(&mut self, index: Index, term: Term, output: S::Output) {
        let Some((proposed_term, reply)) = self.waiting.remove(&index) else {
            return;
        };
        let answer = if proposed_term == term {
            Ok(Applied {
                index,
                term,
                output,
            })
        } else {
            Metrics::add(&self.metrics.proposals_failed, 1);
            Err(ClientError::Overwritten)
        };
        let _ = reply.send(answer);
    }
}
