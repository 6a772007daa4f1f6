//! A small discrete-event world over the Raft core alone, for election experiments: nodes are
//! `RawNode`s ticked every 100 µs of their own clock (each with its own random phase, and
//! optionally its own rate), messages take a random one-way latency, answers wait for a
//! simulated disk, and timer threads run late. No madsim: a trial is a few thousand events, and
//! an experiment is tens of thousands of trials.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use engine::raft::{Config, HardState, Message, MessageKind, NodeId, RawNode, RoleKind, Term};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Microseconds per Raft tick: fine enough that a 1 ms timeout range is ten distinct draws.
pub const TICK_US: u64 = 100;

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// The node's next timer may fire now (stale if its generation moved on).
    Wake(usize, u64),
    /// The node's timer was due at its tick, and the node's timer thread runs only now
    /// (scheduling lateness).
    Late(usize),
    Deliver(usize, u64),
}

/// The world's timing. `Timing::none` is instant disks and on-time timers; the Figure 16
/// reproduction's default is in the parent module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// One-way network latency, µs (uniform in the range).
    pub latency_us: (u64, u64),
    /// Disk time before a server's answers leave, µs (uniform in the range).
    pub disk_us: (u64, u64),
    /// Mean of an exponential extra disk time, µs (0: none): a heavy-tailed disk.
    pub disk_tail_us: u64,
    /// A new candidate's durable write of its term and vote before its RequestVotes, µs.
    pub vote_disk_us: (u64, u64),
    /// Most lateness of a timer thread, µs: a server runs its timer a random moment after it
    /// is due and times its next timeout from then, so timer phases drift apart (a random walk).
    pub timer_late_us: u64,
    /// Each server's clock runs fast or slow by up to this many parts per million.
    pub drift_ppm: u64,
    /// A new leader's first AppendEntries wait for the disk (its no-op entry is written first).
    pub leader_disk: bool,
    /// A server handles nothing, not even its timer, while its disk writes.
    pub busy_disk: bool,
    /// Most extra delay of each AppendEntries before it leaves, µs: the followers' timers
    /// start from a spread-out last heartbeat.
    pub append_spread_us: u64,
    /// Granularity of the drawn election timeouts, µs (rounded down to whole ticks; 0 or one
    /// tick draws any tick): LogCabin drew whole milliseconds (`Config::election_timeout_step_ticks`).
    pub timeout_step_us: u64,
}

impl Timing {
    /// Only a network latency: instant disks, timers on time, one clock rate.
    pub fn none(latency_us: (u64, u64)) -> Timing {
        Timing {
            latency_us,
            disk_us: (0, 0),
            disk_tail_us: 0,
            vote_disk_us: (0, 0),
            timer_late_us: 0,
            drift_ppm: 0,
            leader_disk: false,
            busy_disk: false,
            append_spread_us: 0,
            timeout_step_us: 0,
        }
    }
}

/// The world: nodes, the event queue, links and the clock.
pub struct World {
    /// The nodes (slot `i` is node `i + 1`); `None` once crashed.
    pub nodes: Vec<Option<RawNode>>,
    queue: BinaryHeap<Reverse<(u64, u64, Event)>>,
    in_flight: Vec<Option<Message>>,
    seq: u64,
    /// Simulated time, µs.
    pub now_us: u64,
    rng: ChaCha8Rng,
    /// Latencies, disk times, timer lateness and clock rates.
    timing: Timing,
    /// `cut[from][to]`: messages on this link are lost.
    pub cut: Vec<Vec<bool>>,
    /// AppendEntries to these slots lose their entries on the way (the nodes keep shorter logs
    /// but still hear the leader).
    pub starve: Vec<bool>,
    /// First time each slot received an AppendEntries of a term at least `watch_term`.
    pub heard_at: Vec<Option<u64>>,
    /// The term `heard_at` watches for (0: off).
    pub watch_term: Term,
    /// Per slot: the last tick boundary ticked, ps (each node has its own phase).
    ticked_ps: Vec<u64>,
    /// Per slot: the length of one of its ticks in real time, ps (its clock's rate).
    tick_ps: Vec<u64>,
    /// Per slot: until when its disk is busy, µs.
    busy_until: Vec<u64>,
    /// Per slot: the generation of its pending wake-up.
    wake_gen: Vec<u64>,
    /// Per slot: the tick boundary from which the node's timer is due but not yet run (its
    /// `Late` event is pending); messages meanwhile find it as it was before that tick.
    held_from: Vec<Option<u64>>,
}

impl World {
    /// `n` nodes with `config_of(id)`; node `i` ticks at its own random phase.
    pub fn new(
        n: usize,
        mut rng: ChaCha8Rng,
        timing: Timing,
        config_of: impl Fn(NodeId, Vec<NodeId>, u64) -> Config,
    ) -> World {
        let peers: Vec<NodeId> = (1..=n as u64).map(NodeId).collect();
        let mut world = World {
            nodes: Vec::with_capacity(n),
            queue: BinaryHeap::new(),
            in_flight: Vec::new(),
            seq: 0,
            now_us: 0,
            rng: ChaCha8Rng::seed_from_u64(rng.r#gen()),
            timing,
            cut: vec![vec![false; n]; n],
            starve: vec![false; n],
            heard_at: vec![None; n],
            watch_term: Term(0),
            ticked_ps: vec![0; n],
            tick_ps: vec![TICK_US * 1_000_000; n],
            busy_until: vec![0; n],
            wake_gen: vec![0; n],
            held_from: vec![None; n],
        };
        for slot in 0..n {
            let config = config_of(peers[slot], peers.clone(), rng.r#gen());
            let node = RawNode::new(config, HardState::default(), Vec::new())
                .expect("a valid experiment configuration");
            world.nodes.push(Some(node));
            world.ticked_ps[slot] = rng.gen_range(0..TICK_US) * 1_000_000;
            world.schedule_wake(slot);
        }
        world.draw_clock_rates();
        world
    }

    /// Ticks `slot` once per tick boundary passed since the last (as the node loop does).
    fn catch_up(&mut self, slot: usize, now: u64) {
        let Some(node) = self.nodes[slot].as_mut() else {
            return;
        };
        let now_ps = now * 1_000_000;
        if now_ps < self.ticked_ps[slot] {
            return;
        }
        let due = (now_ps - self.ticked_ps[slot]) / self.tick_ps[slot];
        for _ in 0..due {
            node.tick();
        }
        self.ticked_ps[slot] += due * self.tick_ps[slot];
    }

    /// Schedules `slot`'s next wake-up at its next timer.
    fn schedule_wake(&mut self, slot: usize) {
        let Some(node) = self.nodes[slot].as_ref() else {
            return;
        };
        let at_ps = self.ticked_ps[slot] + node.ticks_until_timeout() * self.tick_ps[slot];
        let at = at_ps.div_ceil(1_000_000);
        self.wake_gen[slot] += 1;
        let generation = self.wake_gen[slot];
        self.push(at, Event::Wake(slot, generation));
    }

    fn push(&mut self, at_us: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse((at_us, self.seq, event)));
    }

    /// Gives every node a clock rate off by up to `timing.drift_ppm` parts per million either
    /// way (crystal drift): identical timeouts then drift apart steadily.
    fn draw_clock_rates(&mut self) {
        let ppm = self.timing.drift_ppm;
        if ppm == 0 {
            return;
        }
        for slot in 0..self.tick_ps.len() {
            // A tick is TICK_US * 1e6 ps; ppm of it is ppm * TICK_US ps.
            let off = self.rng.gen_range(0..=2 * ppm * TICK_US);
            self.tick_ps[slot] = TICK_US * 1_000_000 - ppm * TICK_US + off;
        }
    }

    /// Crashes a node: it stops ticking and receiving.
    pub fn crash(&mut self, slot: usize) {
        self.nodes[slot] = None;
    }

    /// The node's status, if it runs.
    pub fn role(&self, slot: usize) -> Option<(RoleKind, Term)> {
        let node = self.nodes[slot].as_ref()?;
        let s = node.status();
        Some((s.role, s.term))
    }

    /// Campaigns the node has started (0 once crashed).
    pub fn campaigns(&self, slot: usize) -> u64 {
        self.nodes[slot].as_ref().map_or(0, RawNode::campaigns)
    }

    /// Runs until `until_us` or until `stop(world)` is true (checked after every event).
    pub fn run(&mut self, until_us: u64, stop: impl Fn(&World) -> bool) {
        while let Some(Reverse((at, _, _))) = self.queue.peek() {
            if *at > until_us || stop(self) {
                break;
            }
            let Reverse((at, _, event)) = self.queue.pop().expect("peeked");
            self.now_us = at;
            // A server busy with its disk handles nothing until the write ends (as one that
            // holds a single lock across its fsync): the event waits, in arrival order. Only
            // with `timing.busy_disk`; otherwise `busy_until` stays 0.
            let target = match &event {
                Event::Wake(slot, _) | Event::Late(slot) | Event::Deliver(slot, _) => *slot,
            };
            if at < self.busy_until[target] {
                let until = self.busy_until[target];
                self.push(until, event);
                continue;
            }
            let slot = match event {
                Event::Wake(slot, generation) => {
                    if generation != self.wake_gen[slot] {
                        continue;
                    }
                    if self.timing.timer_late_us > 0 {
                        let late = self.rng.gen_range(0..=self.timing.timer_late_us);
                        self.held_from[slot] = Some(at);
                        self.push(at + late, Event::Late(slot));
                        continue;
                    }
                    self.catch_up(slot, at);
                    slot
                }
                Event::Late(slot) => {
                    if self.held_from[slot].take().is_none() {
                        continue;
                    }
                    self.catch_up(slot, at);
                    // The node times its next timeout from when its timer really ran.
                    self.ticked_ps[slot] = at * 1_000_000;
                    slot
                }
                Event::Deliver(slot, id) => {
                    let msg = self.in_flight[id as usize].take().expect("delivered once");
                    // A held timer has not run yet: the message finds the node before it.
                    let upto = self.held_from[slot].map_or(at, |h| at.min(h.saturating_sub(1)));
                    self.catch_up(slot, upto);
                    self.deliver(slot, msg);
                    slot
                }
            };
            self.drain(at);
            if self.held_from[slot].is_none() {
                self.schedule_wake(slot);
            }
        }
    }

    fn deliver(&mut self, slot: usize, msg: Message) {
        let watched = self.watch_term > Term(0)
            && msg.term >= self.watch_term
            && matches!(msg.kind, MessageKind::Append { .. });
        let Some(node) = self.nodes[slot].as_mut() else {
            return;
        };
        if watched && self.heard_at[slot].is_none() {
            self.heard_at[slot] = Some(self.now_us);
        }
        let _ = node.step(msg);
    }

    /// Handles every node's Ready: instant persistence, messages onto the network.
    fn drain(&mut self, now: u64) {
        for slot in 0..self.nodes.len() {
            let Some(node) = self.nodes[slot].as_mut() else {
                continue;
            };
            let mut out = Vec::new();
            let mut durable = false;
            while let Some(mut ready) = node.ready() {
                durable |= ready.hard_state.is_some() || !ready.entries.is_empty();
                out.append(&mut ready.messages);
                node.advance(ready);
            }
            let mut disk = if durable && self.timing.disk_us.1 > 0 {
                self.rng
                    .gen_range(self.timing.disk_us.0..=self.timing.disk_us.1)
            } else {
                0
            };
            if durable && self.timing.disk_tail_us > 0 {
                let u: f64 = self.rng.r#gen();
                disk += (-(self.timing.disk_tail_us as f64) * (1.0 - u).ln()) as u64;
            }
            let leading =
                self.timing.leader_disk && durable && node.status().role == RoleKind::Leader;
            let mut busy = 0;
            let mut voted = false;
            for msg in out {
                // Answers wait for the disk (a vote or an acknowledgement is durable first);
                // requests leave at once, as LogCabin's peer threads send them.
                let answer = matches!(
                    msg.kind,
                    MessageKind::VoteResponse { .. }
                        | MessageKind::PreVoteResponse { .. }
                        | MessageKind::AppendResponse { .. }
                ) || (leading && matches!(msg.kind, MessageKind::Append { .. }));
                let vote = matches!(msg.kind, MessageKind::Vote { .. });
                let meta = if vote && self.timing.vote_disk_us.1 > 0 {
                    self.rng
                        .gen_range(self.timing.vote_disk_us.0..=self.timing.vote_disk_us.1)
                } else {
                    0
                };
                voted |= vote;
                busy = busy.max(meta);
                self.send(if answer { now + disk } else { now + meta }, msg);
            }
            if self.timing.busy_disk {
                if !voted {
                    busy = disk;
                }
                self.busy_until[slot] = self.busy_until[slot].max(now + busy);
            }
        }
    }

    fn send(&mut self, now: u64, msg: Message) {
        let (from, to) = (msg.from.0 as usize - 1, msg.to.0 as usize - 1);
        if self.cut[from][to] {
            return;
        }
        // A starved server's refusals never reach the leader, so the leader does not retry
        // at network speed: the starved servers hear the periodic heartbeats, like the others.
        if self.starve[from] && matches!(msg.kind, MessageKind::AppendResponse { .. }) {
            return;
        }
        let mut msg = msg;
        if self.starve[to]
            && let MessageKind::Append { entries, .. } = &mut msg.kind
        {
            entries.clear();
        }
        let mut latency = self
            .rng
            .gen_range(self.timing.latency_us.0..=self.timing.latency_us.1);
        if self.timing.append_spread_us > 0 && matches!(msg.kind, MessageKind::Append { .. }) {
            latency += self.rng.gen_range(0..=self.timing.append_spread_us);
        }
        let id = self.in_flight.len() as u64;
        self.in_flight.push(Some(msg));
        self.push(now + latency, Event::Deliver(to, id));
    }
}
