//! The simulated network: per-message latency, loss, duplication, reordering, partitions
//! (symmetric or one-way, cutting messages in flight), and crashed nodes that hear nothing.
//! Messages travel as bytes of the production peer codec (`super::codec`): encoded when sent,
//! decoded by the receiver's per-link decoder when delivered.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex, MutexGuard};

use engine::raft::{Message, MessageKind, NodeId};
use engine::server::{Clock, Network};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::task::{Poll as TaskPoll, Waker};

use super::codec::{Codec, CodecFault, Wire};
use super::{NodeClock, SimClock};
use crate::trace::Fnv;

/// One-way latency distribution: uniform in `[min_ms, max_ms]`, and with probability
/// `tail_per_mille / 1000` uniform in `[max_ms, tail_max_ms]` instead (a slow path).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Latency {
    /// Fastest delivery.
    pub min_ms: u64,
    /// Usual slowest delivery.
    pub max_ms: u64,
    /// Chance of a slow delivery, per mille.
    pub tail_per_mille: u32,
    /// Slowest delivery on the slow path.
    pub tail_max_ms: u64,
}

/// What the network did, for the run summary.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct NetStats {
    /// Messages handed to the network.
    pub sent: u64,
    /// Messages delivered to a node.
    pub delivered: u64,
    /// Messages lost (random loss, partitions, dead receivers).
    pub dropped: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Peer connections opened (each sent a hello).
    pub hellos: u64,
    /// Bytes the peer codec encoded (frames and hellos).
    pub wire_bytes: u64,
}

/// A message in flight (its bytes), ordered by delivery time, then by send order.
struct InFlight {
    at_ms: u64,
    seq: u64,
    from: NodeId,
    to: NodeId,
    wire: Wire,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        (self.at_ms, self.seq) == (other.at_ms, other.seq)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InFlight {
    /// Reversed, so `BinaryHeap` pops the earliest first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at_ms, other.seq).cmp(&(self.at_ms, self.seq))
    }
}

/// One node's incoming messages, and how to wake it.
///
/// madsim registers a timer every time a pending `Sleep` is polled and never cancels one, so a
/// node that re-armed its wake-up on every poll would pile up timers and spurious wake-ups.
/// Instead the inbox remembers the times it already has a timer for, and arms a new one (with
/// the node's own waker) only when something is due earlier than all of them.
struct Inbox {
    heap: BinaryHeap<InFlight>,
    /// The waker of the task waiting in `recv_until`, once it has waited.
    waker: Option<Waker>,
    /// Times at which a timer will wake the node (pruned as they pass), in decreasing order: a
    /// timer is armed only earlier than every one already armed, so it goes at the end, and the
    /// earliest is always last.
    armed: Vec<u64>,
}

impl Inbox {
    /// Makes sure the node wakes at or before `wake_ms`.
    fn arm(&mut self, clock: &SimClock, now_ms: u64, wake_ms: u64) {
        assert!(wake_ms > now_ms, "arm only for the future");
        while self.armed.last().is_some_and(|&t| t <= now_ms) {
            self.armed.pop();
        }
        if self.armed.last().is_some_and(|&t| t <= wake_ms) {
            return;
        }
        if let Some(waker) = &self.waker {
            clock.wake_at(wake_ms, waker);
            debug_assert!(self.armed.last().is_none_or(|&t| t > wake_ms));
            self.armed.push(wake_ms);
        }
    }
}

struct NetState {
    rng: ChaCha8Rng,
    size: usize,
    /// `blocked[from * size + to]`: messages from `from` to `to` are cut (0-based node slots).
    blocked: Vec<bool>,
    /// Whether each node is running; a dead node's inbox is empty and stays empty.
    up: Vec<bool>,
    latency: Latency,
    loss_per_mille: u32,
    dup_per_mille: u32,
    inboxes: Vec<Inbox>,
    seq: u64,
    stats: NetStats,
    trace: Fnv,
    codec: Codec,
}

/// Told of every decoding failure, with the simulated time (ms).
type FaultSink = Box<dyn FnMut(CodecFault, u64) + Send>;

/// The whole network, shared by the harness and every node.
#[derive(Clone)]
pub struct SimNet {
    state: Arc<Mutex<NetState>>,
    clock: SimClock,
    sink: Arc<Mutex<Option<FaultSink>>>,
}

/// Node ids are 1-based; slots are 0-based.
fn slot(id: NodeId) -> usize {
    assert!(id.0 >= 1, "node ids start at 1");
    id.0 as usize - 1
}

fn kind_tag(kind: &MessageKind) -> (u64, u64, u64) {
    match kind {
        MessageKind::Vote {
            last_log_index,
            last_log_term,
            ..
        } => (1, last_log_index.0, last_log_term.0),
        MessageKind::VoteResponse { granted } => (2, u64::from(*granted), 0),
        MessageKind::Append {
            prev_log_index,
            entries,
            leader_commit,
            ..
        } => (
            3,
            prev_log_index.0 << 16 | entries.len() as u64,
            leader_commit.0,
        ),
        MessageKind::AppendResponse {
            success,
            match_index,
            ..
        } => (4, u64::from(*success), match_index.0),
        MessageKind::ReadIndex { ctx } => (5, *ctx, 0),
        MessageKind::ReadIndexResponse { ctx, index } => (6, *ctx, index.0),
        MessageKind::PreVote {
            last_log_index,
            last_log_term,
        } => (7, last_log_index.0, last_log_term.0),
        MessageKind::PreVoteResponse { granted } => (8, u64::from(*granted), 0),
        MessageKind::Snapshot { index, offset, .. } => (9, index.0, *offset),
        MessageKind::SnapshotResponse { index, offset } => (11, index.0, *offset),
        MessageKind::Propose { proposals } => (
            10,
            proposals.len() as u64,
            proposals.first().map_or(0, |p| p.tag),
        ),
        MessageKind::TimeoutNow => (11, 0, 0),
    }
}

impl SimNet {
    /// A fully connected network of `size` live nodes.
    pub fn new(size: usize, rng: ChaCha8Rng, latency: Latency, clock: SimClock) -> SimNet {
        // The codec's draws (the cluster id, where reads end) come from a stream of their own:
        // they move none of the network's.
        let mut codec_rng = rng.clone();
        codec_rng.set_stream(0xc0dec);
        let cluster_id = codec_rng.r#gen();
        let inboxes = (0..size)
            .map(|_| Inbox {
                heap: BinaryHeap::new(),
                waker: None,
                armed: Vec::new(),
            })
            .collect();
        let state = NetState {
            rng,
            size,
            blocked: vec![false; size * size],
            up: vec![true; size],
            latency,
            loss_per_mille: 0,
            dup_per_mille: 0,
            inboxes,
            seq: 0,
            stats: NetStats::default(),
            trace: Fnv::new(),
            codec: Codec::new(size, cluster_id, codec_rng),
        };
        SimNet {
            state: Arc::new(Mutex::new(state)),
            clock,
            sink: Arc::new(Mutex::new(None)),
        }
    }

    /// Where decoding failures go (the run's checkers): the network never corrupts bytes, so
    /// each is a codec bug.
    pub fn on_codec_fault(&self, sink: impl FnMut(CodecFault, u64) + Send + 'static) {
        *self.sink.lock().expect("sink lock poisoned") = Some(Box::new(sink));
    }

    /// Plants the codec's bugs (`--bug`) in every receiver's decoder.
    pub fn set_wire_bugs(&self, bugs: engine::wire::WireBugs) {
        self.lock().codec.set_bugs(bugs);
    }

    /// Reports a decoding failure; called with the network unlocked.
    fn report(&self, fault: CodecFault) {
        let now = self.clock.now_ms();
        if let Some(sink) = self.sink.lock().expect("sink lock poisoned").as_mut() {
            sink(fault, now);
        }
    }

    fn lock(&self) -> MutexGuard<'_, NetState> {
        self.state.lock().expect("network lock poisoned")
    }

    /// The handle node `id` sends and receives through.
    pub fn node(&self, id: NodeId) -> NodeNet {
        NodeNet {
            id,
            net: self.clone(),
            local: None,
        }
    }

    /// As `node`, for a node whose deadlines are on its own clock `local`.
    pub fn node_on(&self, id: NodeId, local: NodeClock) -> NodeNet {
        NodeNet {
            id,
            net: self.clone(),
            local: Some(local),
        }
    }

    /// Cuts (or restores) the one-way link `from -> to`.
    pub fn set_blocked(&self, from: NodeId, to: NodeId, blocked: bool) {
        let mut s = self.lock();
        let size = s.size;
        s.blocked[slot(from) * size + slot(to)] = blocked;
        if blocked {
            s.codec.reset_link(from, to);
        }
    }

    /// True if `from -> to` is cut.
    pub fn is_blocked(&self, from: NodeId, to: NodeId) -> bool {
        self.cuts().is_blocked(from, to)
    }

    /// Appends, row by row (`from`, then `to`), whether each link between two different nodes
    /// is cut (a node's link to itself reads as not cut): `is_blocked` for every pair, under
    /// one lock.
    pub fn cut_links(&self, out: &mut Vec<bool>) {
        let s = self.lock();
        let n = s.size;
        out.reserve(n * n);
        for (from, row) in s.blocked.chunks_exact(n).enumerate() {
            out.extend(
                row.iter()
                    .enumerate()
                    .map(|(to, &blocked)| from != to && blocked),
            );
        }
    }

    /// The cut links, read under one lock for as long as the answer is held (drop it before
    /// calling anything else of the network).
    pub fn cuts(&self) -> Cuts<'_> {
        Cuts(self.lock())
    }

    /// Restores every link.
    pub fn heal(&self) {
        let mut s = self.lock();
        s.blocked.iter_mut().for_each(|b| *b = false);
    }

    /// Marks a node dead (its in-flight messages vanish) or alive again.
    pub fn set_up(&self, id: NodeId, up: bool) {
        let mut s = self.lock();
        let i = slot(id);
        s.up[i] = up;
        s.codec.reset_node(id);
        if !up {
            let dropped = s.inboxes[i].heap.len() as u64;
            s.inboxes[i].heap.clear();
            // The dead task's waker and its timers are gone with it.
            s.inboxes[i].waker = None;
            s.inboxes[i].armed.clear();
            s.stats.dropped += dropped;
        }
    }

    /// Forgets every waiting message and node waker. Wakers point at node tasks that own
    /// handles to this network: left in place, that cycle would leak each run's world.
    pub fn shutdown(&self) {
        let mut s = self.lock();
        for inbox in &mut s.inboxes {
            inbox.heap.clear();
            inbox.waker = None;
            inbox.armed.clear();
        }
        drop(s);
        // The sink holds the run's shared record, which holds handles into the nodes.
        *self.sink.lock().expect("sink lock poisoned") = None;
    }

    /// Sets random loss and duplication, per mille.
    pub fn set_loss(&self, loss_per_mille: u32, dup_per_mille: u32) {
        let mut s = self.lock();
        s.loss_per_mille = loss_per_mille;
        s.dup_per_mille = dup_per_mille;
    }

    /// Replaces the latency distribution.
    pub fn set_latency(&self, latency: Latency) {
        self.lock().latency = latency;
    }

    /// The current loss (per mille) and latency distribution.
    pub fn conditions(&self) -> (u32, Latency) {
        let s = self.lock();
        (s.loss_per_mille, s.latency)
    }

    /// Counters so far.
    pub fn stats(&self) -> NetStats {
        let s = self.lock();
        NetStats {
            hellos: s.codec.hellos,
            wire_bytes: s.codec.bytes,
            ..s.stats
        }
    }

    /// Hash of every network event so far.
    pub fn trace_hash(&self) -> u64 {
        self.lock().trace.finish()
    }

    fn send(&self, msg: Message) {
        let now = self.clock.now_ms();
        let mut s = self.lock();
        s.stats.sent += 1;
        let (tag, a, b) = kind_tag(&msg.kind);
        s.trace
            .write_all(&[now, 1, msg.from.0, msg.to.0, msg.term.0, tag, a, b]);
        // Written to the connection whatever the network then does with it.
        let wire = match s.codec.encode(&msg) {
            Ok(wire) => wire,
            Err(fault) => {
                drop(s);
                self.report(fault);
                return;
            }
        };
        let (from, to) = (slot(msg.from), slot(msg.to));
        let lost = s.rng.gen_range(0..1000) < s.loss_per_mille;
        if lost || !s.up[to] || s.blocked[from * s.size + to] {
            s.stats.dropped += 1;
            s.codec.recycle(wire);
            return;
        }
        if s.rng.gen_range(0..1000) < s.dup_per_mille {
            s.stats.duplicated += 1;
            let copy = s.codec.copy(&wire);
            push(&mut s, &self.clock, now, msg.from, msg.to, copy);
        }
        push(&mut s, &self.clock, now, msg.from, msg.to, wire);
    }
}

/// Queues `wire` for delivery after a random latency; wakes the receiver if it is now first.
fn push(s: &mut NetState, clock: &SimClock, now: u64, from: NodeId, to: NodeId, wire: Wire) {
    let lat = s.latency;
    let delay = if s.rng.gen_range(0..1000) < lat.tail_per_mille {
        s.rng
            .gen_range(lat.max_ms..=lat.tail_max_ms.max(lat.max_ms))
    } else {
        s.rng.gen_range(lat.min_ms..=lat.max_ms)
    };
    s.seq += 1;
    let flight = InFlight {
        at_ms: now + delay,
        seq: s.seq,
        from,
        to,
        wire,
    };
    let at_ms = flight.at_ms;
    let inbox = &mut s.inboxes[slot(to)];
    inbox.heap.push(flight);
    inbox.arm(clock, now, at_ms.max(now + 1));
}

/// Which links are cut, as `SimNet::is_blocked` answers, under one lock of the network.
pub struct Cuts<'a>(MutexGuard<'a, NetState>);

impl Cuts<'_> {
    /// True if `from -> to` is cut.
    pub fn is_blocked(&self, from: NodeId, to: NodeId) -> bool {
        self.0.blocked[slot(from) * self.0.size + slot(to)]
    }
}

/// One node's view of the network.
pub struct NodeNet {
    id: NodeId,
    net: SimNet,
    /// The node's own clock, which its deadlines are read on (None: the simulation's).
    local: Option<NodeClock>,
}

impl NodeNet {
    /// Takes the earliest due message, or arms a wake-up for the deadline or the earliest
    /// message, whichever comes first, with the waker (None: just look). The deadline (true
    /// ms) is asked for only when nothing is due: reading a node's clock is not free.
    fn poll_inbox(&self, wait: Option<(&Waker, &mut dyn FnMut() -> u64)>) -> Option<Message> {
        let mut fault = None;
        let msg = self.poll_locked(wait, &mut fault);
        if let Some(fault) = fault {
            self.net.report(fault);
        }
        msg
    }

    /// `poll_inbox` under the network's lock; a message that does not decode is dropped and
    /// the first such failure left in `fault`.
    fn poll_locked(
        &self,
        mut wait: Option<(&Waker, &mut dyn FnMut() -> u64)>,
        fault: &mut Option<CodecFault>,
    ) -> Option<Message> {
        let now = self.net.clock.now_ms();
        let mut s = self.net.lock();
        let i = slot(self.id);
        loop {
            let inbox = &mut s.inboxes[i];
            let due = inbox.heap.peek().map(|top| top.at_ms);
            if due.is_none_or(|at| at > now) {
                if let Some((waker, deadline)) = wait.as_mut()
                    && let deadline_ms = deadline()
                    && deadline_ms > now
                {
                    if !inbox.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
                        inbox.waker = Some(waker.clone());
                        inbox.armed.clear();
                    }
                    let wake_ms = due.map_or(deadline_ms, |at| at.min(deadline_ms));
                    inbox.arm(&self.net.clock, now, wake_ms);
                }
                return None;
            }
            let flight = inbox.heap.pop().expect("peeked");
            // A partition also cuts what was already on the wire.
            let from = slot(flight.from);
            if s.blocked[from * s.size + i] {
                s.stats.dropped += 1;
                s.codec.recycle(flight.wire);
                continue;
            }
            let m = match s.codec.decode(flight.from, flight.to, flight.wire) {
                Ok(m) => m,
                Err(f) => {
                    s.stats.dropped += 1;
                    fault.get_or_insert(f);
                    continue;
                }
            };
            s.stats.delivered += 1;
            let (tag, a, b) = kind_tag(&m.kind);
            s.trace
                .write_all(&[now, 2, m.from.0, m.to.0, m.term.0, tag, a, b]);
            return Some(m);
        }
    }
}

impl Network for NodeNet {
    fn send(&mut self, msg: Message) {
        assert_eq!(msg.from, self.id, "a node sends as itself");
        self.net.send(msg);
    }

    /// Cancel-safe: a message leaves the inbox only inside `poll_inbox`, never across an await.
    async fn recv_until(&mut self, deadline_ms: u64) -> Option<Message> {
        std::future::poll_fn(|cx| {
            // The deadline is on the node's clock; the inbox arms timers on true time. Read
            // only when no message is due (then always).
            let mut passed = false;
            let (local, clock) = (&self.local, &self.net.clock);
            let mut deadline = || match local {
                None => {
                    passed = clock.now_ms() >= deadline_ms;
                    deadline_ms
                }
                Some(local) => {
                    passed = Clock::now_ms(local) >= deadline_ms;
                    local.true_ms_at(deadline_ms).max(clock.now_ms() + 1)
                }
            };
            if let Some(msg) = self.poll_inbox(Some((cx.waker(), &mut deadline))) {
                return TaskPoll::Ready(Some(msg));
            }
            if passed {
                return TaskPoll::Ready(None);
            }
            TaskPoll::Pending
        })
        .await
    }

    fn try_recv(&mut self) -> Option<Message> {
        self.poll_inbox(None)
    }
}
