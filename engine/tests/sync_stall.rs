//! A leader whose log sync hangs gives way while the sync is still pending (issue #16, item 4;
//! hashicorp/raft#503): three node loops on tokio with `SystemClock` over an in-process
//! network, each on a memory disk whose syncs can be made to hang; the leader's hangs while a
//! write is pending. The loop polls the sync beside its tick timer, so past the bound (two
//! minimum election timeouts) the leader steps down and the others lead, all before the sync
//! returns. The planted bug `sync-blocks-loop` (the loop awaiting the sync inline) is the
//! control: its leader reports itself leader until the sync returns.
#![cfg(all(feature = "net", feature = "planted-bugs"))]
#![allow(
    clippy::disallowed_methods,
    reason = "real time on tokio's runtime, as the floe binary runs"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use engine::log::{Disk, MemDisk};
use engine::net::SystemClock;
use engine::raft::{Config, Message, NodeId, RawNode, RoleKind};
use engine::server::{Clock, Env, KvClient, KvMachine, Network, NodeConfig, Observer};
use engine::store::Command;
use futures::StreamExt;
use futures::channel::mpsc;
use tokio::sync::Notify;

const TICK_MS: u64 = 10;
const ELECTION_TICKS: u64 = 15;
/// Two minimum election timeouts: the node loop's bound.
const BOUND_MS: u64 = 2 * ELECTION_TICKS * TICK_MS;

/// Makes one node's syncs hang while `stalled`, and says whether one is pending.
#[derive(Default)]
struct Gate {
    stalled: AtomicBool,
    pending: AtomicBool,
    released: Notify,
}

struct StallDisk {
    mem: MemDisk,
    gate: Arc<Gate>,
}

impl Disk for StallDisk {
    fn read_all(&self) -> std::io::Result<Vec<u8>> {
        self.mem.read_all()
    }

    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.mem.append(bytes)
    }

    fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        self.mem.truncate(len)
    }

    async fn sync(&mut self) -> std::io::Result<()> {
        self.gate.pending.store(true, Ordering::SeqCst);
        while self.gate.stalled.load(Ordering::SeqCst) {
            let released = self.gate.released.notified();
            if !self.gate.stalled.load(Ordering::SeqCst) {
                break;
            }
            released.await;
        }
        let synced = self.mem.sync().await;
        self.gate.pending.store(false, Ordering::SeqCst);
        synced
    }

    async fn rewrite(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.mem.rewrite(bytes).await
    }

    type Staged = <MemDisk as Disk>::Staged;

    fn stage<T: Send + 'static, B: FnOnce() -> (Vec<u8>, T) + Send + 'static>(
        &self,
        build: B,
    ) -> impl std::future::Future<Output = std::io::Result<(Self::Staged, T)>> + 'static + use<T, B>
    {
        self.mem.stage(build)
    }

    async fn install_staged(&mut self, staged: Self::Staged, tail: &[u8]) -> std::io::Result<()> {
        self.mem.install_staged(staged, tail).await
    }
}

/// Per node: whether its loop last reported itself leader, and when it last stopped leading
/// (ms on the shared clock, 0 for never).
struct Roles {
    leading: Vec<AtomicBool>,
    stopped_ms: Vec<AtomicU64>,
}

struct Watch {
    slot: usize,
    clock: SystemClock,
    roles: Arc<Roles>,
}

impl Observer for Watch {
    fn stepped(&mut self, node: &RawNode) {
        let leads = node.status().role == RoleKind::Leader;
        let was = self.roles.leading[self.slot].swap(leads, Ordering::SeqCst);
        if was && !leads {
            self.roles.stopped_ms[self.slot].store(self.clock.now_ms(), Ordering::SeqCst);
        }
    }
}

struct MemNet {
    peers: Arc<Vec<mpsc::UnboundedSender<Message>>>,
    inbound: mpsc::UnboundedReceiver<Message>,
    clock: SystemClock,
}

impl Network for MemNet {
    fn send(&mut self, msg: Message) {
        let _ = self.peers[msg.to.0 as usize - 1].unbounded_send(msg);
    }

    async fn recv_until(&mut self, deadline_ms: u64) -> Option<Message> {
        let sleep = self.clock.sleep_until(deadline_ms);
        tokio::select! {
            biased;
            msg = self.inbound.next() => msg,
            () = sleep => None,
        }
    }

    fn try_recv(&mut self) -> Option<Message> {
        self.inbound.try_recv().ok()
    }
}

fn node_config(id: u64, sync_blocks_loop: bool) -> NodeConfig {
    let peers = vec![NodeId(1), NodeId(2), NodeId(3)];
    let mut raft = Config::new(NodeId(id), peers, id);
    raft.heartbeat_interval_ticks = 3;
    raft.election_timeout_ticks = ELECTION_TICKS;
    raft.election_timeout_max_ticks = 2 * ELECTION_TICKS;
    raft.pre_vote = true;
    // Off, so that only the bound deposes the stalled leader: with CheckQuorum it also steps
    // down within an election timeout, as a leader that steps no message while its sync is
    // pending hears from no follower (Raft thesis §6.2).
    raft.check_quorum = false;
    let mut node = NodeConfig::new(raft, TICK_MS);
    node.leader_sends_before_sync = true;
    node.lazy_commit_sync = true;
    node.boot_nonce = id << 56;
    node.bugs.sync_blocks_loop = sync_blocks_loop;
    node
}

struct Cluster {
    clients: Vec<KvClient>,
    gates: Vec<Arc<Gate>>,
    roles: Arc<Roles>,
    clock: SystemClock,
}

fn start(sync_blocks_loop: bool) -> Cluster {
    let clock = SystemClock::new();
    let roles = Arc::new(Roles {
        leading: (0..3).map(|_| AtomicBool::new(false)).collect(),
        stopped_ms: (0..3).map(|_| AtomicU64::new(0)).collect(),
    });
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..3).map(|_| mpsc::unbounded()).unzip();
    let senders = Arc::new(senders);
    let (mut clients, mut gates) = (Vec::new(), Vec::new());
    for (slot, inbound) in receivers.into_iter().enumerate() {
        let id = slot as u64 + 1;
        let gate = Arc::new(Gate::default());
        gates.push(gate.clone());
        let disk = StallDisk {
            mem: MemDisk::new(),
            gate,
        };
        let net = MemNet {
            peers: senders.clone(),
            inbound,
            clock,
        };
        let env = Env { clock, net, disk };
        let (client, requests) = KvClient::channel(1024);
        clients.push(client);
        let observer = Watch {
            slot,
            clock,
            roles: roles.clone(),
        };
        let config = node_config(id, sync_blocks_loop);
        tokio::spawn(async move {
            let ended = engine::server::run(config, env, KvMachine::default(), requests, observer);
            if let Err(e) = ended.await {
                eprintln!("node {id} stopped: {e}");
            }
        });
    }
    Cluster {
        clients,
        gates,
        roles,
        clock,
    }
}

async fn leader(clients: &[KvClient], except: Option<usize>) -> Option<usize> {
    for _ in 0..200 {
        for (slot, client) in clients.iter().enumerate() {
            if Some(slot) != except
                && let Ok(status) = client.status().await
                && status.role == RoleKind::Leader
            {
                return Some(slot);
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

fn set(key: &str) -> Command {
    Command::Set {
        key: key.to_string(),
        dir: false,
        value: "v".into(),
        expire_at_ms: None,
        refresh: false,
    }
}

/// Hangs the leader's syncs while a write waits on one, for `stall_ms`; returns the stalled
/// node's slot, when its stall began, and when it stopped leading (0 if it led throughout).
async fn stall_the_leader(cluster: &Cluster, stall_ms: u64) -> (usize, u64, u64) {
    let lead = leader(&cluster.clients, None)
        .await
        .expect("a first leader");
    let gate = cluster.gates[lead].clone();
    gate.stalled.store(true, Ordering::SeqCst);
    let client = cluster.clients[lead].clone();
    let write = tokio::spawn(async move { client.write(&set("/stalled")).await });
    let began_ms = cluster.clock.now_ms();
    tokio::time::sleep(Duration::from_millis(stall_ms)).await;
    assert!(
        gate.pending.load(Ordering::SeqCst),
        "the stalled leader's sync is still pending"
    );
    let stopped_ms = cluster.roles.stopped_ms[lead].load(Ordering::SeqCst);
    gate.stalled.store(false, Ordering::SeqCst);
    gate.released.notify_waiters();
    // Its client learns the outcome once the entry's index is applied there (committed, or
    // overwritten by the next leader); it is not judged here.
    let _ = tokio::time::timeout(Duration::from_secs(10), write).await;
    (lead, began_ms, stopped_ms)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_sync_hangs_steps_down_before_the_sync_returns_and_another_leads() {
    let cluster = start(false);
    let (lead, began_ms, stopped_ms) = stall_the_leader(&cluster, 1_500).await;
    assert!(
        stopped_ms >= began_ms,
        "node {} stopped leading while its sync hung (began {began_ms}, stopped {stopped_ms})",
        lead + 1
    );
    let gave_way_ms = stopped_ms - began_ms;
    // It notices at its first tick past the bound (a loaded machine may be later).
    assert!(
        (BOUND_MS..BOUND_MS + 500).contains(&gave_way_ms),
        "gave way {gave_way_ms} ms after the stall began (bound {BOUND_MS} ms)"
    );
    // The cluster goes on: a leader among the others or the old one again, and a write commits.
    let now = leader(&cluster.clients, None)
        .await
        .expect("a leader after the stall");
    cluster.clients[now]
        .write(&set("/after"))
        .await
        .expect("a write commits after the stall");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_sync_awaited_inline_the_stalled_leader_goes_on_leading_until_the_sync_returns() {
    let cluster = start(true);
    let (lead, _, stopped_ms) = stall_the_leader(&cluster, 1_500).await;
    assert_eq!(
        stopped_ms,
        0,
        "node {} (planted sync-blocks-loop) reported no step-down while its sync hung",
        lead + 1
    );
}
