//! Measures how long the leader's heartbeats stop while a large snapshot is taken, written and
//! sent (issue #19, item 5): three node loops of the production kind (tokio, `SystemClock`,
//! `FileDisk` with real fsyncs, the etcd v2 store) over an in-process network, one follower
//! cut off while `FLOE_STALL_KEYS` keys (100,000 by default) are written, then let back in, so
//! the leader snapshots and brings it up to date with the snapshot.
//!
//! The figure is the longest gap between two AppendEntries (heartbeats or appends) from the
//! leader to its healthy follower, from the moment the lagging follower is let back in until it
//! has caught up; the heartbeat interval is 100 ms, etcd's default. Run it in release mode:
//!
//! ```text
//! cargo test --release -p engine --test snapshot_stall -- --ignored --nocapture
//! ```
//!
//! The network hands messages over in memory, so the figure leaves out the peer codec and TCP.
#![cfg(feature = "net")]
#![allow(
    clippy::disallowed_methods,
    reason = "a measurement on tokio's runtime, as the floe binary runs"
)]

mod mem_net;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use engine::log::Disk;
use engine::net::{FileDisk, SystemClock};
use engine::raft::{Config, Message, MessageKind, NodeId, RawNode, RoleKind};
use engine::server::{Clock, Env, KvClient, KvMachine, Metrics, NodeConfig, Observer};
use engine::store::Command;
use futures::StreamExt;
use mem_net::mem_nets;

const HEARTBEAT_MS: u64 = 100;
const ELECTION_MS: u64 = 1_000;

/// What the observers saw, shared by the three nodes.
#[derive(Default)]
struct Seen {
    /// Whether the measured window is open.
    measuring: bool,
    /// Per (from, to): the time of the last AppendEntries and the longest gap between two.
    gaps: BTreeMap<(u64, u64), (u64, u64)>,
    /// Per node: the time its loop last finished an iteration and the longest gap between two.
    loops: BTreeMap<u64, (u64, u64)>,
    /// Snapshot messages sent (and not lost to the cut) and how many bytes they carried.
    snapshot_msgs: u64,
    snapshot_bytes: u64,
    /// Nodes that installed a snapshot from the leader.
    installed: Vec<u64>,
}

struct Watch {
    id: u64,
    clock: SystemClock,
    seen: Arc<Mutex<Seen>>,
    cut: Arc<AtomicBool>,
}

impl Observer for Watch {
    fn sending(&mut self, msg: &Message) {
        let now = self.clock.now_us();
        let mut seen = self.seen.lock().expect("lock");
        if !seen.measuring {
            return;
        }
        match &msg.kind {
            MessageKind::Append { .. } => {
                let slot = seen.gaps.entry((msg.from.0, msg.to.0)).or_insert((now, 0));
                slot.1 = slot.1.max(now - slot.0);
                slot.0 = now;
            }
            MessageKind::Snapshot { data, .. } if !self.cut.load(Ordering::Relaxed) => {
                seen.snapshot_msgs += 1;
                seen.snapshot_bytes += data.len() as u64;
            }
            _ => {}
        }
    }

    fn stepped(&mut self, _node: &RawNode) {
        let now = self.clock.now_us();
        let mut seen = self.seen.lock().expect("lock");
        if !seen.measuring {
            return;
        }
        let slot = seen.loops.entry(self.id).or_insert((now, 0));
        slot.1 = slot.1.max(now - slot.0);
        slot.0 = now;
    }

    fn snapshot_installed(&mut self, id: NodeId, _: engine::raft::Index, _: engine::raft::Term) {
        self.seen.lock().expect("lock").installed.push(id.0);
    }
}

fn node_config(id: u64, snapshot_entries: u64) -> NodeConfig {
    let peers = vec![NodeId(1), NodeId(2), NodeId(3)];
    let mut raft = Config::new(NodeId(id), peers, id);
    raft.heartbeat_interval_ticks = 1;
    raft.election_timeout_ticks = ELECTION_MS / HEARTBEAT_MS;
    raft.election_timeout_max_ticks = 2 * ELECTION_MS / HEARTBEAT_MS;
    raft.pre_vote = true;
    raft.check_quorum = true;
    let mut node = NodeConfig::new(raft, HEARTBEAT_MS);
    node.requests_per_ready = 256;
    node.leader_sends_before_sync = true;
    node.lazy_commit_sync = true;
    node.boot_nonce = id << 56;
    node.snapshot_entries = snapshot_entries;
    node.snapshot_keep_entries = 1_000;
    node
}

fn key_count() -> u64 {
    std::env::var("FLOE_STALL_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

async fn leader(clients: &[KvClient]) -> usize {
    for _ in 0..200 {
        for (i, client) in clients.iter().enumerate() {
            if let Ok(status) = client.status().await
                && status.role == RoleKind::Leader
            {
                return i;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no leader within 10 s");
}

fn set(key: String) -> Command {
    Command::Set {
        key,
        dir: false,
        value: "v".repeat(64),
        expire_at_ms: None,
        refresh: false,
    }
}

/// The three nodes, started on the runtime.
struct Cluster {
    clients: Vec<KvClient>,
    metrics: Vec<Arc<Metrics>>,
    seen: Arc<Mutex<Seen>>,
    cut: Arc<AtomicBool>,
    clock: SystemClock,
}

fn start(dir: &std::path::Path, snapshot_entries: u64) -> Cluster {
    let clock = SystemClock::new();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let cut = Arc::new(AtomicBool::new(true));
    let mut clients = Vec::new();
    let metrics: Vec<Arc<Metrics>> = (0..3).map(|_| Arc::default()).collect();
    for (i, net) in mem_nets(3, clock).into_iter().enumerate() {
        let id = i as u64 + 1;
        let disk = FileDisk::open(&dir.join(format!("n{id}/wal"))).expect("disk");
        assert!(disk.read_all().expect("read").is_empty());
        let net = net.with_cut(cut.clone(), 3);
        let env = Env { clock, net, disk };
        let (client, requests) = KvClient::channel(8192);
        clients.push(client);
        let observer = Watch {
            id,
            clock,
            seen: seen.clone(),
            cut: cut.clone(),
        };
        let mut config = node_config(id, snapshot_entries);
        config.metrics = metrics[i].clone();
        tokio::spawn(async move {
            let ended = engine::server::run(config, env, KvMachine::default(), requests, observer);
            if let Err(e) = ended.await {
                // Also when the test ends and its files go while the node still runs.
                eprintln!("node {id} stopped: {e}");
            }
        });
    }
    Cluster {
        clients,
        metrics,
        seen,
        cut,
        clock,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
#[ignore = "a measurement: run in release mode with --ignored --nocapture"]
async fn heartbeat_gap_while_a_large_snapshot_is_taken_written_and_sent() {
    let keys = key_count();
    let dir = std::env::temp_dir().join(format!("floe-stall-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // The snapshot falls due a little after the load, once the measured window is open.
    let Cluster {
        clients,
        metrics,
        seen,
        cut,
        clock,
    } = start(&dir, keys + 200);
    let lead = leader(&clients).await;
    assert_ne!(lead, 2, "node 3 is cut off");
    let started = clock.now_ms();
    let client = clients[lead].clone();
    futures::stream::iter(0..keys)
        .map(|k| {
            let client = client.clone();
            async move {
                loop {
                    match client.write(&set(format!("/load/{k:08}"))).await {
                        Ok(_) => break,
                        Err(_) => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
                    }
                }
            }
        })
        .buffer_unordered(1024)
        .collect::<Vec<()>>()
        .await;
    eprintln!("loaded {keys} keys in {} ms", clock.now_ms() - started);

    // The window opens with node 3 still cut off: the leader takes and writes its snapshot
    // (due `snapshot_entries` after the start), then node 3 comes back and needs it.
    seen.lock().expect("lock").measuring = true;
    let window = clock.now_ms();
    let mut written = 0;
    let caught_up = loop {
        assert!(clock.now_ms() - window < 120_000, "node 3 never caught up");
        if client
            .write(&set(format!("/more/{written:08}")))
            .await
            .is_ok()
        {
            written += 1;
        }
        if written == 300 {
            cut.store(false, Ordering::Relaxed);
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        let lead_status = client.status().await.expect("status");
        let lagging = clients[2].status().await.expect("status");
        if written > 400 && lagging.applied.0 + 100 >= lead_status.applied.0 {
            break lagging.applied;
        }
    };
    let seen = seen.lock().expect("lock");
    let leader_id = lead as u64 + 1;
    let other = 3 - leader_id;
    let gap = |to: u64| seen.gaps.get(&(leader_id, to)).map_or(0, |g| g.1);
    eprintln!(
        "node 3 caught up to {caught_up} after {} ms; leader {leader_id}",
        clock.now_ms() - window
    );
    eprintln!(
        "snapshot chunks delivered {}, {} bytes; installed by {:?}",
        seen.snapshot_msgs, seen.snapshot_bytes, seen.installed
    );
    eprintln!(
        "longest heartbeat gap leader -> node {other} (healthy): {:.1} ms",
        gap(other) as f64 / 1000.0
    );
    eprintln!(
        "longest heartbeat gap leader -> node 3 (lagging): {:.1} ms",
        gap(3) as f64 / 1000.0
    );
    let (_, saves, save_us) = metrics[lead].snapshot_save.snapshot();
    eprintln!(
        "leader snapshots taken and written: {saves}, {:.1} ms in all",
        save_us as f64 / 1000.0
    );
    for (id, (_, longest)) in &seen.loops {
        eprintln!(
            "node {id}: longest gap between two loop iterations {:.1} ms",
            *longest as f64 / 1000.0
        );
    }
    assert!(
        seen.installed.contains(&3),
        "node 3 caught up by a snapshot"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
