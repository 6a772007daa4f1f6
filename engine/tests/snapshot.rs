//! Log compaction and InstallSnapshot (Raft §7) in the Raft core, driven by hand: a leader that
//! compacted its log brings a follower that missed the compacted entries up to date with a
//! snapshot; a snapshot replaces a conflicting log, keeps a matching suffix, is ignored when
//! stale; and a node restarts from a snapshot plus the entries after it.

use std::collections::BTreeSet;

use engine::raft::{
    Config, Entry, EntryKind, HardState, Index, Membership, Message, MessageKind, NodeId, RawNode,
    RoleKind, Snapshot, Term,
};

/// A node's state machine: the commands applied, in order, as the snapshot data too.
#[derive(Clone, Debug, Default)]
struct Machine {
    applied: Vec<Vec<u8>>,
    last: Index,
    installed: Vec<Index>,
}

impl Machine {
    fn image(&self) -> Vec<u8> {
        self.applied.join(&b","[..])
    }
}

struct World {
    nodes: Vec<RawNode>,
    machines: Vec<Machine>,
    queue: Vec<Message>,
    down: BTreeSet<NodeId>,
    /// Snapshot chunks delivered, and the largest one.
    chunks: u64,
    chunk_max: usize,
    /// Offsets of snapshot chunks to lose once each.
    lose_chunks: BTreeSet<u64>,
}

/// The whole of `snapshot` as one InstallSnapshot chunk.
fn whole(snapshot: Snapshot) -> MessageKind {
    MessageKind::Snapshot {
        index: snapshot.index,
        term: snapshot.term,
        offset: 0,
        total: snapshot.data.len() as u64,
        data: snapshot.data,
        done: true,
        membership: Box::new(snapshot.membership),
    }
}

fn ids(n: u64) -> Vec<NodeId> {
    (1..=n).map(NodeId).collect()
}

impl World {
    fn new(n: u64) -> World {
        World::with_config(n, |_| {})
    }

    fn with_config(n: u64, change: impl Fn(&mut Config)) -> World {
        let nodes = ids(n)
            .into_iter()
            .map(|id| {
                let mut config = Config::new(id, ids(n), id.0);
                change(&mut config);
                RawNode::new(config, HardState::default(), Vec::new()).expect("config")
            })
            .collect();
        World {
            nodes,
            machines: vec![Machine::default(); n as usize],
            queue: Vec::new(),
            down: BTreeSet::new(),
            chunks: 0,
            chunk_max: 0,
            lose_chunks: BTreeSet::new(),
        }
    }

    fn node(&mut self, id: u64) -> &mut RawNode {
        &mut self.nodes[id as usize - 1]
    }

    /// Handles every Ready and delivers every message until the world is quiet.
    fn settle(&mut self) {
        for _ in 0..1000 {
            let mut busy = false;
            for i in 0..self.nodes.len() {
                while let Some(ready) = self.nodes[i].ready() {
                    busy = true;
                    let m = &mut self.machines[i];
                    if let Some(s) = &ready.snapshot {
                        assert!(
                            s.index > m.last,
                            "a snapshot only moves the machine forward"
                        );
                        m.applied = s.data.split(|&b| b == b',').map(<[u8]>::to_vec).collect();
                        m.applied.retain(|c| !c.is_empty());
                        m.last = s.index;
                        m.installed.push(s.index);
                    }
                    for e in &ready.committed_entries {
                        assert_eq!(e.index, m.last.next(), "applied in order after a snapshot");
                        if let EntryKind::Command(c) = &e.kind {
                            m.applied.push(c.clone());
                        }
                        m.last = e.index;
                    }
                    self.queue.extend(ready.messages.iter().cloned());
                    self.nodes[i].advance(ready);
                    self.nodes[i].check_invariants();
                }
            }
            for m in std::mem::take(&mut self.queue) {
                if self.down.contains(&m.to) || self.down.contains(&m.from) {
                    continue;
                }
                busy = true;
                if let MessageKind::Snapshot { offset, data, .. } = &m.kind {
                    if self.lose_chunks.remove(offset) {
                        continue;
                    }
                    self.chunks += 1;
                    self.chunk_max = self.chunk_max.max(data.len());
                }
                let to = m.to.0;
                self.node(to).step(m).expect("step");
            }
            if !busy {
                return;
            }
        }
        panic!("the world never settled");
    }

    fn propose(&mut self, leader: u64, commands: std::ops::Range<u32>) {
        for c in commands {
            self.node(leader)
                .propose(format!("c{c}").into_bytes())
                .expect("leader");
            self.settle();
        }
    }

    fn heartbeat(&mut self, leader: u64) {
        let ticks = self.node(leader).config().heartbeat_interval_ticks;
        for _ in 0..ticks {
            self.node(leader).tick();
        }
        self.settle();
    }

    /// Takes a snapshot of `id`'s machine at its applied index and compacts, keeping `keep`.
    fn compact(&mut self, id: u64, keep: u64) -> Index {
        let m = &self.machines[id as usize - 1];
        let (index, data) = (m.last, m.image());
        let term = self
            .node(id)
            .raft_log()
            .term(index)
            .expect("applied is in the log");
        let membership = self.node(id).membership_at(index);
        self.node(id).compact(
            Snapshot {
                index,
                term,
                data: data.into(),
                membership,
            },
            keep,
        );
        index
    }

    fn elect(&mut self, id: u64) {
        self.node(id).campaign();
        self.settle();
        assert_eq!(self.node(id).status().role, RoleKind::Leader);
    }
}

#[test]
fn a_follower_behind_the_compacted_log_catches_up_from_the_snapshot() {
    let mut w = World::new(3);
    w.elect(1);
    w.down.insert(NodeId(3));
    w.propose(1, 0..20);
    let at = w.compact(1, 2);
    let at2 = w.compact(2, 0);
    assert_eq!(w.node(1).raft_log().offset(), Index(at.0 - 2));
    assert_eq!(w.node(2).raft_log().offset(), at2);
    w.down.clear();
    // A heartbeat is rejected, the snapshot goes out and is acknowledged, the entries after it
    // follow, and the next heartbeat carries the commit index.
    for _ in 0..3 {
        w.heartbeat(1);
    }
    let (leader, follower) = (w.node(1).status(), w.node(3).status());
    assert_eq!(follower.commit, leader.commit);
    assert_eq!(follower.last_index, leader.last_index);
    assert_eq!(
        w.machines[2].installed,
        [at],
        "one snapshot, at the leader's"
    );
    assert_eq!(w.machines[2].applied, w.machines[0].applied);
    assert_eq!(w.node(3).raft_log().offset(), at);
    // Replication goes on from the log after the snapshot.
    w.propose(1, 20..25);
    w.heartbeat(1);
    assert_eq!(w.machines[2].applied.len(), 25);
    assert_eq!(w.machines[2].applied, w.machines[0].applied);
}

#[test]
fn a_snapshot_replaces_a_conflicting_log_and_a_stale_one_changes_nothing() {
    let mut w = World::new(3);
    w.elect(1);
    w.propose(1, 0..3);
    // Node 3 is cut off while node 1 appends entries that never commit, then node 2 leads.
    w.down.insert(NodeId(2));
    w.down.insert(NodeId(3));
    for c in 0..3 {
        w.node(1)
            .propose(format!("lost{c}").into_bytes())
            .expect("leader");
    }
    w.settle();
    w.down = [NodeId(1)].into();
    w.elect(2);
    w.propose(2, 3..10);
    let at = w.compact(2, 0);
    w.down.clear();
    w.heartbeat(2);
    w.heartbeat(2);
    let old_leader = w.node(1).status();
    assert_eq!(old_leader.role, RoleKind::Follower);
    assert_eq!(w.machines[0].installed, [at]);
    assert_eq!(
        w.node(1).raft_log().offset(),
        at,
        "the conflicting log is gone"
    );
    assert_eq!(w.node(1).status().last_index, w.node(2).status().last_index);
    assert_eq!(w.machines[0].applied, w.machines[1].applied);
    assert!(!w.machines[0].applied.iter().any(|c| c.starts_with(b"lost")));
    // The same snapshot again is stale: the follower answers with its commit, nothing moves.
    let snapshot = w.node(2).snapshot().expect("held").clone();
    let term = w.node(2).status().term;
    let before = w.node(1).status();
    let m = Message {
        from: NodeId(2),
        to: NodeId(1),
        term,
        kind: whole(snapshot),
    };
    w.node(1).step(m).expect("step");
    let ready = w.node(1).ready().expect("an answer");
    assert!(ready.snapshot.is_none());
    assert!(matches!(
        ready.messages[..],
        [Message {
            kind: MessageKind::AppendResponse { success: true, match_index, .. },
            ..
        }] if match_index == before.commit
    ));
    w.node(1).advance(ready);
    assert_eq!(w.node(1).status().commit, before.commit);
}

#[test]
fn a_snapshot_keeps_a_matching_suffix() {
    let mut w = World::new(3);
    w.elect(1);
    w.propose(1, 0..6);
    let commit = w.node(2).status().commit;
    // The leader sends node 2 a snapshot of an index node 2 already holds but has not yet
    // learned is committed: node 2 keeps the entries after it.
    let index = Index(commit.0 - 2);
    let term = w.node(2).raft_log().term(index).expect("held");
    let mut raw = RawNode::restart(
        Config::new(NodeId(2), ids(3), 9),
        HardState {
            term: w.node(2).status().term,
            voted_for: Some(NodeId(1)),
            commit: Index(1),
        },
        None,
        (Index(0), Term(0)),
        w.node(2)
            .raft_log()
            .slice(Index(1), commit, usize::MAX)
            .to_vec(),
    )
    .expect("config");
    let snapshot = Snapshot {
        index,
        term,
        data: b"x".to_vec().into(),
        membership: w.node(2).membership_at(index),
    };
    let m = Message {
        from: NodeId(1),
        to: NodeId(2),
        term: raw.status().term,
        kind: whole(snapshot),
    };
    raw.step(m).expect("step");
    let ready = raw.ready().expect("ready");
    assert_eq!(ready.snapshot.as_ref().map(|s| s.index), Some(index));
    assert!(
        ready.entries.is_empty(),
        "the kept entries are already durable"
    );
    raw.advance(ready);
    assert_eq!(raw.raft_log().offset(), index);
    assert_eq!(raw.raft_log().last_index(), commit);
    assert_eq!(raw.status().applied, index);
}

#[test]
fn a_node_restarts_from_a_snapshot_and_the_entries_after_it() {
    let mut w = World::new(3);
    w.elect(1);
    w.propose(1, 0..12);
    let at = w.compact(3, 3);
    let raw = w.node(3);
    let log = raw.raft_log();
    let start = (log.offset(), log.term(log.offset()).expect("kept"));
    let entries: Vec<Entry> = log
        .slice(log.first_index(), log.last_index(), usize::MAX)
        .to_vec();
    let snapshot = raw.snapshot().cloned();
    let hard_state = raw.hard_state();
    let config = raw.config().clone();
    let restarted = RawNode::restart(config, hard_state, snapshot, start, entries).expect("config");
    assert_eq!(restarted.status().applied, at);
    assert_eq!(restarted.raft_log().first_index(), Index(at.0 - 2));
    w.nodes[2] = restarted;
    w.machines[2].last = at;
    w.propose(1, 12..15);
    w.heartbeat(1);
    assert_eq!(w.node(3).status().commit, w.node(1).status().commit);
    assert_eq!(w.machines[2].applied, w.machines[0].applied);
}

#[test]
fn a_snapshot_goes_in_chunks_within_the_byte_budget_and_a_lost_chunk_is_sent_again() {
    let mut w = World::with_config(3, |c| c.msg_bytes_max = 7);
    w.elect(1);
    w.down.insert(NodeId(3));
    w.propose(1, 0..20);
    let at = w.compact(1, 0);
    let total = w.node(1).snapshot().expect("held").data.len();
    assert!(total > 50, "a snapshot of many chunks");
    w.down.clear();
    // The chunks go as a window, pipelined like AppendEntries. The third is lost on its way:
    // the follower holds 14 bytes and answers every later chunk of the window with that
    // offset, which sends nothing more; a heartbeat round without news sends the window again
    // from there (Raft Figure 13: by offset).
    w.lose_chunks.insert(14);
    for _ in 0..4 {
        w.heartbeat(1);
    }
    assert_eq!(w.machines[2].installed, [at], "installed once, whole");
    assert_eq!(w.machines[2].applied, w.machines[0].applied);
    assert_eq!(w.chunk_max, 7, "no chunk over the byte budget");
    let chunks = total.div_ceil(7) as u64;
    // Every chunk but the lost one delivered, then the eight from the lost one on again.
    let again = chunks - 2;
    assert_eq!(
        w.chunks,
        chunks - 1 + again,
        "{} chunks delivered for {chunks}: each from the lost one on again, once",
        w.chunks
    );
    w.propose(1, 20..22);
    w.heartbeat(1);
    assert_eq!(w.machines[2].applied, w.machines[0].applied);
}

#[test]
fn a_transfer_finishes_with_the_snapshot_it_started_when_the_leader_compacts_again() {
    let mut w = World::with_config(3, |c| c.msg_bytes_max = 7);
    w.elect(1);
    w.down.insert(NodeId(3));
    w.propose(1, 0..20);
    let at = w.compact(1, 0);
    w.down.clear();
    // The transfer stalls on a lost chunk; meanwhile the leader commits more and takes a
    // newer snapshot, keeping the entries after the first one.
    w.lose_chunks.insert(14);
    w.heartbeat(1);
    assert!(
        w.machines[2].installed.is_empty(),
        "the transfer is stalled"
    );
    w.propose(1, 20..25);
    let newer = w.compact(1, 10);
    assert!(newer > at && w.node(1).raft_log().offset() <= at);
    // The lost chunk is sent again from the snapshot the transfer started with: the follower
    // installs it and takes the rest as entries. Restarting with the newer snapshot instead
    // can starve a follower whose transfer is slower than the leader's compactions.
    for _ in 0..4 {
        w.heartbeat(1);
    }
    assert_eq!(
        w.machines[2].installed,
        [at],
        "the first transfer completed"
    );
    assert_eq!(w.machines[2].applied, w.machines[0].applied);
}

/// A chunk of the snapshot at (5, 1) whose data is `total` bytes of `b'x'`.
fn chunk(offset: u64, len: u64, total: u64, done: bool) -> MessageKind {
    MessageKind::Snapshot {
        index: Index(5),
        term: Term(1),
        offset,
        total,
        data: vec![b'x'; len as usize].into(),
        done,
        membership: Box::new(Membership::with_voters(vec![
            NodeId(1),
            NodeId(2),
            NodeId(3),
        ])),
    }
}

#[test]
fn forged_and_out_of_order_chunks_are_refused_or_answered_never_obeyed() {
    let config = Config::new(NodeId(2), ids(3), 2);
    let mut raw = RawNode::new(config, HardState::default(), Vec::new()).expect("config");
    let step = |raw: &mut RawNode, kind: MessageKind| {
        let m = Message {
            from: NodeId(1),
            to: NodeId(2),
            term: Term(1),
            kind,
        };
        let stepped = raw.step(m);
        let ready = raw.ready();
        let answer = ready.as_ref().and_then(|r| {
            r.messages.iter().find_map(|m| match m.kind {
                MessageKind::SnapshotResponse { offset, .. } => Some(offset),
                _ => None,
            })
        });
        let installed = ready.as_ref().is_some_and(|r| r.snapshot.is_some());
        if let Some(ready) = ready {
            raw.advance(ready);
        }
        (stepped.is_ok(), answer, installed)
    };
    // Malformed: refused at the edge, nothing changes.
    for kind in [
        chunk(0, 4, 3, false),
        chunk(0, 3, 3, false),
        chunk(0, 2, 3, true),
        chunk(0, 0, 3, false),
        chunk(u64::MAX, 2, 3, false),
        chunk(0, 1, engine::raft::SNAPSHOT_TOTAL_MAX + 1, false),
        MessageKind::Snapshot {
            index: Index(0),
            term: Term(0),
            offset: 0,
            total: 1,
            data: b"x".to_vec().into(),
            done: true,
            membership: Box::new(Membership::default()),
        },
    ] {
        assert_eq!(step(&mut raw, kind), (false, None, false));
    }
    // Out of order: a chunk past the start asks for byte 0; then the first chunk, a duplicate
    // of it, and one after a gap, each answered with the next byte wanted.
    assert_eq!(
        step(&mut raw, chunk(4, 2, 10, false)),
        (true, Some(0), false)
    );
    assert_eq!(
        step(&mut raw, chunk(0, 4, 10, false)),
        (true, Some(4), false)
    );
    assert_eq!(
        step(&mut raw, chunk(0, 4, 10, false)),
        (true, Some(4), false)
    );
    assert_eq!(
        step(&mut raw, chunk(8, 2, 10, true)),
        (true, Some(4), false)
    );
    // A chunk of another snapshot (another size) mid-way starts over.
    assert_eq!(
        step(&mut raw, chunk(4, 4, 12, false)),
        (true, Some(0), false)
    );
    assert_eq!(
        step(&mut raw, chunk(0, 6, 10, false)),
        (true, Some(6), false)
    );
    assert_eq!(step(&mut raw, chunk(6, 4, 10, true)), (true, None, true));
    assert_eq!(raw.snapshot().map(|s| s.data.len()), Some(10));
    assert_eq!(raw.status().commit, Index(5));
}
