//! The pure Raft core: a 3-node cluster driven by hand, one proposal committed per iteration.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use engine::raft::{Config, HardState, NodeId, RawNode, RoleKind};

/// Delivers every message until the cluster is quiet; returns how many were delivered.
fn stabilize(nodes: &mut [RawNode]) -> usize {
    let mut delivered = 0;
    loop {
        let mut outbox = Vec::new();
        for node in nodes.iter_mut() {
            while let Some(mut ready) = node.ready() {
                outbox.append(&mut ready.messages);
                node.advance(ready);
            }
        }
        if outbox.is_empty() {
            return delivered;
        }
        for msg in outbox {
            delivered += 1;
            let to = msg.to.0 as usize - 1;
            nodes[to].step(msg).expect("messages between members");
        }
    }
}

fn cluster() -> Vec<RawNode> {
    let peers: Vec<NodeId> = (1..=3).map(NodeId).collect();
    let mut nodes: Vec<RawNode> = peers
        .iter()
        .map(|&id| {
            RawNode::new(
                Config::new(id, peers.clone(), id.0),
                HardState::default(),
                Vec::new(),
            )
            .expect("valid config")
        })
        .collect();
    nodes[0].campaign();
    stabilize(&mut nodes);
    assert_eq!(nodes[0].status().role, RoleKind::Leader, "node 1 leads");
    nodes
}

fn propose_commit(c: &mut Criterion) {
    let mut group = c.benchmark_group("raft");
    group.throughput(Throughput::Elements(1));
    group.bench_function("3 nodes: propose, replicate, commit, apply", |b| {
        let mut nodes = cluster();
        b.iter(|| {
            nodes[0]
                .propose(b"set k v".to_vec())
                .expect("leader accepts");
            stabilize(&mut nodes)
        });
    });
    group.finish();
}

criterion_group!(benches, propose_commit);
criterion_main!(benches);
