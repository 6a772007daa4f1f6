//! The operations a simulated client runs, and the checks that need nothing but the answer.

use std::time::Duration;

use engine::raft::{Index, NodeId, Term};
use engine::server::lock::{self, Contender, LockError};
use engine::server::{ClientError, KvClient, KvError, KvGet, KvRouter, KvWatch};
use engine::store::{Command, Event, watch_matches};
use rand::Rng;
use serde::Serialize;

use super::ClientState;
use super::history::{OpOutcome, OpRecord};
use crate::check::Violation;
use crate::cluster::Cluster;
use crate::trace::hash_bytes;
use crate::world::SIM_EPOCH_UNIX_MS;

/// The key space: small, so operations collide. `/d` is a directory (its files are created
/// implicitly), `/_h` is hidden, `/q` takes in-order keys.
pub const KEYS: [&str; 5] = ["/k1", "/k2", "/d/a", "/d/b", "/_h"];

/// What an operation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OpKind {
    /// GET from the node's applied state (may be stale).
    Get,
    /// GET `quorum=true`: linearizable through ReadIndex.
    QuorumGet,
    /// PUT.
    Set,
    /// PUT with a TTL of 1-3 s.
    TtlSet,
    /// PUT `prevExist=false`.
    Create,
    /// PUT `prevExist=true`.
    Update,
    /// PUT `prevValue` = the last value this client saw.
    Cas,
    /// DELETE `prevValue` = the last value this client saw.
    Cad,
    /// DELETE.
    Delete,
    /// DELETE `/d?recursive=true`.
    DeleteRecursive,
    /// POST to `/q`: an in-order key.
    InOrder,
    /// GET `wait=true` from the next index this client has not seen.
    Watch,
    /// Acquire the lock module's lock `w` (ttl 2 s, timeout 1 s), hold it briefly, release it.
    Lock,
}

impl OpKind {
    /// Every kind.
    pub const ALL: [OpKind; 13] = [
        OpKind::Get,
        OpKind::QuorumGet,
        OpKind::Set,
        OpKind::TtlSet,
        OpKind::Create,
        OpKind::Update,
        OpKind::Cas,
        OpKind::Cad,
        OpKind::Delete,
        OpKind::DeleteRecursive,
        OpKind::InOrder,
        OpKind::Watch,
        OpKind::Lock,
    ];

    /// Draws a kind: `reads_percent` reads (half local, half quorum), `watch_percent` watches,
    /// the rest writes of every kind.
    pub fn draw(rng: &mut impl Rng, reads_percent: u32, watch_percent: u32) -> OpKind {
        let roll = rng.gen_range(0..100);
        if roll < reads_percent {
            return if rng.gen_bool(0.5) {
                OpKind::Get
            } else {
                OpKind::QuorumGet
            };
        }
        const WRITES: [OpKind; 10] = [
            OpKind::Set,
            OpKind::Set,
            OpKind::TtlSet,
            OpKind::Create,
            OpKind::Update,
            OpKind::Cas,
            OpKind::Cad,
            OpKind::Delete,
            OpKind::DeleteRecursive,
            OpKind::InOrder,
        ];
        if roll < reads_percent + watch_percent {
            return if rng.gen_bool(0.5) {
                OpKind::Watch
            } else {
                OpKind::Lock
            };
        }
        WRITES[rng.gen_range(0..WRITES.len())]
    }

    /// True for operations that go through the log.
    pub fn is_write(self) -> bool {
        !matches!(
            self,
            OpKind::Get | OpKind::QuorumGet | OpKind::Watch | OpKind::Lock
        )
    }
}

fn command(
    cluster: &Cluster,
    state: &ClientState,
    kind: OpKind,
    key: &str,
    value: String,
) -> Command {
    let seen = state.seen.get(key).cloned();
    match kind {
        OpKind::Set => Command::Set {
            key: key.into(),
            dir: false,
            value,
            expire_at_ms: None,
            refresh: false,
        },
        OpKind::TtlSet => {
            let ttl_ms = 1000 * cluster.rng().gen_range(1..=3);
            let expire_at_ms = Some(engine::server::Clock::unix_ms(&cluster.clock) + ttl_ms);
            Command::Set {
                key: key.into(),
                dir: false,
                value,
                expire_at_ms,
                refresh: false,
            }
        }
        OpKind::Create => Command::Create {
            key: key.into(),
            dir: false,
            value,
            expire_at_ms: None,
        },
        OpKind::Update => Command::Update {
            key: key.into(),
            value,
            expire_at_ms: None,
            refresh: false,
        },
        OpKind::Cas => Command::CompareAndSwap {
            key: key.into(),
            value,
            prev_value: Some(seen.unwrap_or_else(|| "never".into())),
            prev_index: None,
            expire_at_ms: None,
            refresh: false,
        },
        OpKind::Cad => Command::CompareAndDelete {
            key: key.into(),
            prev_value: Some(seen.unwrap_or_else(|| "never".into())),
            prev_index: None,
        },
        OpKind::Delete => Command::Delete {
            key: key.into(),
            dir: false,
            recursive: false,
        },
        OpKind::DeleteRecursive => Command::Delete {
            key: "/d".into(),
            dir: true,
            recursive: true,
        },
        OpKind::InOrder => Command::CreateInOrder {
            dir_key: "/q".into(),
            dir: false,
            value,
            expire_at_ms: None,
        },
        OpKind::Get | OpKind::QuorumGet | OpKind::Watch | OpKind::Lock => {
            unreachable!("{kind:?} is not a single write")
        }
    }
}

fn ok_outcome(event: &Event, raft_index: u64) -> OpOutcome {
    OpOutcome::Ok {
        action: event.action.as_str(),
        store_index: event.index,
        raft_index,
        value: event.node.value.clone(),
        modified_index: (event.node.modified_index > 0).then_some(event.node.modified_index),
    }
}

fn cluster_outcome(e: ClientError) -> OpOutcome {
    match e {
        ClientError::NotLeader { leader } => OpOutcome::Unavailable { leader },
        _ => OpOutcome::Unavailable { leader: None },
    }
}

/// A read: local or linearizable.
async fn read(handle: &KvClient, kind: OpKind, key: &str, timeout: Duration) -> OpOutcome {
    let get = KvGet {
        key: key.into(),
        recursive: false,
        sorted: false,
    };
    match madsim::time::timeout(timeout, handle.get(get, kind == OpKind::QuorumGet)).await {
        Ok(Ok(read)) => ok_outcome(&read.event, read.raft_index),
        Ok(Err(e)) => error_outcome(e),
        Err(_) => OpOutcome::TimedOut,
    }
}

/// A watch from the first index this client has not seen; the event must match the watch.
async fn watch(
    cluster: &Cluster,
    handle: &KvClient,
    state: &ClientState,
    key: &str,
    target: NodeId,
) -> OpOutcome {
    let recursive = key.starts_with("/d");
    let key = if recursive { "/d" } else { key };
    let watch = KvWatch {
        key: key.into(),
        recursive,
        wait_index: state.store_index + 1,
    };
    let timeout = Duration::from_millis(cluster.config.client_timeout_ms);
    match madsim::time::timeout(timeout, handle.watch_event(watch)).await {
        Ok(Ok(event)) => {
            if !watch_matches(&event, key, recursive) {
                let action = event.action.as_str();
                let detail = format!(
                    "watch on {key} (recursive: {recursive}) fired with {action} on {}",
                    event.node.key
                );
                let now = cluster.clock.now_ms();
                let v = Violation::new(
                    "watches fire only on matching events",
                    target,
                    Term(0),
                    Index(0),
                    detail,
                );
                cluster.shared().record(Err(v), now);
            }
            ok_outcome(&event, 0)
        }
        Ok(Err(e)) => error_outcome(e),
        Err(_) => OpOutcome::TimedOut,
    }
}

/// A write through the log; an acknowledged one must be the entry applied at its index.
async fn write(
    cluster: &Cluster,
    handle: &KvClient,
    client: usize,
    data: Vec<u8>,
    target: NodeId,
) -> OpOutcome {
    let hash = hash_bytes(&data);
    let timeout = Duration::from_millis(cluster.config.client_timeout_ms);
    match madsim::time::timeout(timeout, handle.propose(data)).await {
        Ok(Ok(applied)) => {
            check_acknowledged(cluster, client, target, applied.index, applied.term, hash);
            match &applied.output {
                Ok(done) => match done.events().first() {
                    Some(event) => ok_outcome(event, applied.index.0),
                    None => OpOutcome::StoreError { code: 300 },
                },
                Err(e) => OpOutcome::StoreError {
                    code: e.code.number(),
                },
            }
        }
        Ok(Err(e)) => cluster_outcome(e),
        Err(_) => OpOutcome::TimedOut,
    }
}

/// One round of the lock module from `target`'s side: acquire, hold 10-50 ms, release. The
/// holding interval (from the acquire's answer to the release's start) must not overlap any
/// other holder's, and fencing tokens must grow with holding order.
async fn lock_round(cluster: &Cluster, client: usize, target: NodeId) -> OpOutcome {
    let clients: Option<Vec<KvClient>> = cluster.shared().clients.iter().cloned().collect();
    let Some(clients) = clients else {
        return OpOutcome::Unavailable { leader: None };
    };
    let router = KvRouter::new(clients, target.0 as usize - 1, cluster.clock.clone());
    let lease = match lock::acquire_lease(&router, "w", 2, None, Some(1)).await {
        Ok(lease) => lease,
        Err(LockError::Timeout) => return OpOutcome::TimedOut,
        Err(LockError::Kv(e)) => return error_outcome(e),
        Err(LockError::Lost(_) | LockError::NotQueued(_)) => {
            return OpOutcome::StoreError { code: 100 };
        }
    };
    let index = lease.index;
    // Hold 10-50 ms, but never past the lease: after it another contender may hold the lock.
    let start = cluster.clock.now_ms();
    let lease_end_ms = lease.expires_at_ms.saturating_sub(SIM_EPOCH_UNIX_MS);
    let hold = cluster
        .rng()
        .gen_range(10..=50)
        .min(lease_end_ms.saturating_sub(start + 1));
    cluster.clock.sleep_ms(hold).await;
    let end = cluster.clock.now_ms();
    record_hold(cluster, client, target, (start, end, index));
    // A failed release leaves the entry to expire: the next holder waits for its TTL.
    let _ = lock::release(&router, "w", &Contender::Index(index)).await;
    OpOutcome::Ok {
        action: "lock",
        store_index: index,
        raft_index: 0,
        value: None,
        modified_index: Some(index),
    }
}

fn record_hold(cluster: &Cluster, client: usize, node: NodeId, hold: (u64, u64, u64)) {
    let now = cluster.clock.now_ms();
    let mut shared = cluster.shared();
    let (start, end, index) = hold;
    let clash = shared.lock_holds.iter().find(|&&(s, e, i)| {
        let overlap = start < e && s < end;
        let order = (s < start && i > index) || (start < s && index > i);
        overlap || order
    });
    if let Some(&(s, e, i)) = clash {
        let detail = format!(
            "client {client} held lock w [{start}, {end}] with token {index}; another holder [{s}, {e}] with token {i}"
        );
        let term = shared.safety.max_term();
        shared.record(
            Err(Violation::new(
                "lock holders never overlap; tokens grow",
                node,
                term,
                Index(index),
                detail,
            )),
            now,
        );
    }
    shared.lock_holds.push(hold);
}

fn error_outcome(e: KvError) -> OpOutcome {
    match e {
        KvError::Store(e) => OpOutcome::StoreError {
            code: e.code.number(),
        },
        KvError::Cluster(e) => cluster_outcome(e),
    }
}

/// Runs one operation, records it, and checks what its answer alone can show.
pub(super) async fn run_op(
    cluster: &Cluster,
    client: usize,
    state: &mut ClientState,
    kind: OpKind,
    key: &'static str,
    target: NodeId,
) -> OpOutcome {
    let invoke_ms = cluster.clock.now_ms();
    let (handle, acked_before) = {
        let shared = cluster.shared();
        (
            shared.clients[target.0 as usize - 1].clone(),
            shared.acked_index_max,
        )
    };
    let timeout = Duration::from_millis(cluster.config.client_timeout_ms);
    let outcome = match (handle, kind) {
        (None, _) => OpOutcome::Unavailable { leader: None },
        (Some(h), OpKind::Get | OpKind::QuorumGet) => read(&h, kind, key, timeout).await,
        (Some(h), OpKind::Watch) => watch(cluster, &h, state, key, target).await,
        (Some(_), OpKind::Lock) => {
            // A round is several requests; bound it as a whole like any other operation.
            let bound = Duration::from_millis(5 * cluster.config.client_timeout_ms);
            let round = madsim::time::timeout(bound, lock_round(cluster, client, target)).await;
            round.unwrap_or(OpOutcome::TimedOut)
        }
        (Some(h), _) => {
            let value = format!("v{client}-{}", state.seq);
            let data = command(cluster, state, kind, key, value).encode();
            write(cluster, &h, client, data, target).await
        }
    };
    let complete_ms = cluster.clock.now_ms();
    check_answer(cluster, client, state, kind, target, &outcome, acked_before);
    remember(state, kind, key, &outcome);
    let record = OpRecord {
        client,
        kind,
        key,
        node: target,
        invoke_ms,
        complete_ms,
        outcome: outcome.clone(),
    };
    let mut shared = cluster.shared();
    let code = match &outcome {
        OpOutcome::Ok { store_index, .. } => 100 + *store_index,
        OpOutcome::StoreError { code } => u64::from(*code),
        OpOutcome::Unavailable { .. } => 2,
        OpOutcome::TimedOut => 3,
    };
    shared
        .trace
        .write_all(&[complete_ms, kind as u64, client as u64, code]);
    shared.history.push(record);
    outcome
}

/// An acknowledged write must be the entry applied at its index.
fn check_acknowledged(
    cluster: &Cluster,
    client: usize,
    node: NodeId,
    index: Index,
    term: engine::raft::Term,
    hash: u64,
) {
    let now = cluster.clock.now_ms();
    let mut shared = cluster.shared();
    shared.acked_index_max = shared.acked_index_max.max(index);
    if shared.safety.applied_at(index) != Some((term, hash)) {
        let detail = format!(
            "client {client}: write acknowledged at {index} but another entry was applied there"
        );
        shared.record(
            Err(Violation::new(
                "acknowledged commands are applied",
                node,
                term,
                index,
                detail,
            )),
            now,
        );
    }
}

/// Checks on one answer: linearizable reads see acknowledged writes; a client's linearizable
/// operations never see the store index go back; a watch answers with a matching event at or
/// after its wait index.
fn check_answer(
    cluster: &Cluster,
    client: usize,
    state: &ClientState,
    kind: OpKind,
    node: NodeId,
    outcome: &OpOutcome,
    acked_before: Index,
) {
    let OpOutcome::Ok {
        store_index,
        raft_index,
        ..
    } = *outcome
    else {
        return;
    };
    let mut broken = None;
    if kind == OpKind::QuorumGet && raft_index < acked_before.0 {
        let detail = format!(
            "client {client} read at applied index {raft_index} after index {acked_before} was acknowledged"
        );
        broken = Some(("linearizable reads see acknowledged writes", detail));
    } else if (kind == OpKind::QuorumGet || kind.is_write()) && store_index < state.store_index {
        let detail = format!(
            "client {client} saw store index {store_index} after {}",
            state.store_index
        );
        broken = Some(("a client's store index never goes back", detail));
    } else if kind == OpKind::Watch && store_index <= state.store_index {
        let detail = format!(
            "watch from index {} answered with index {store_index}",
            state.store_index + 1
        );
        broken = Some(("watches answer at or after their wait index", detail));
    }
    if let Some((rule, detail)) = broken {
        let now = cluster.clock.now_ms();
        let mut shared = cluster.shared();
        let term = shared.safety.max_term();
        shared.record(
            Err(Violation::new(rule, node, term, Index(raft_index), detail)),
            now,
        );
    }
}

/// What the client learns from an answer, for its next operations.
fn remember(state: &mut ClientState, kind: OpKind, key: &'static str, outcome: &OpOutcome) {
    let OpOutcome::Ok {
        store_index, value, ..
    } = outcome
    else {
        return;
    };
    if kind == OpKind::QuorumGet || kind.is_write() || kind == OpKind::Watch {
        state.store_index = state.store_index.max(*store_index);
    }
    if let Some(value) = value
        && kind != OpKind::Watch
        && kind != OpKind::InOrder
    {
        state.seen.insert(key, value.clone());
    }
}
