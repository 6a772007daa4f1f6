//! The operations a simulated client runs, and the checks that need nothing but the answer.

use std::time::Duration;

use engine::raft::{Index, NodeId};
use engine::server::lock::{self, Contender, LockError};
use engine::server::{ClientError, KvClient, KvError, KvGet, KvRouter, KvWatch};
use engine::store::{Command, Event};
use rand::Rng;
use serde::Serialize;

use super::ClientState;
use super::history::{OpOutcome, OpRecord};
use crate::check::history::{Call, Op, Ret};
use crate::check::{self, Violation};
use crate::cluster::{Cluster, ReferenceOutput};
use crate::observe;
use crate::options::Bug;
use crate::trace::hash_bytes;
use crate::world::{ClockPlan, SIM_EPOCH_UNIX_MS};

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
    /// PUT `prevIndex` = the last `modifiedIndex` this client saw.
    CasIndex,
    /// PUT with both `prevValue` and `prevIndex` (as last seen).
    CasBoth,
    /// DELETE `prevIndex` = the last `modifiedIndex` this client saw.
    CadIndex,
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
    /// PUT `refresh=true&ttl=1-3&prevExist=true`: moves the key's TTL, keeps its value.
    Refresh,
    /// PUT `/t?dir=true&ttl=1-3&prevExist=false`: a directory that expires.
    MkdirTtl,
    /// PUT `/t?dir=true&ttl=1-3&prevExist=true`: moves the directory's TTL.
    UpdateDirTtl,
}

impl OpKind {
    /// Every kind.
    pub const ALL: [OpKind; 19] = [
        OpKind::Get,
        OpKind::QuorumGet,
        OpKind::Set,
        OpKind::TtlSet,
        OpKind::Create,
        OpKind::Update,
        OpKind::Cas,
        OpKind::Cad,
        OpKind::CasIndex,
        OpKind::CasBoth,
        OpKind::CadIndex,
        OpKind::Delete,
        OpKind::DeleteRecursive,
        OpKind::InOrder,
        OpKind::Watch,
        OpKind::Lock,
        OpKind::Refresh,
        OpKind::MkdirTtl,
        OpKind::UpdateDirTtl,
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
        const WRITES: [OpKind; 16] = [
            OpKind::Set,
            OpKind::Set,
            OpKind::TtlSet,
            OpKind::Create,
            OpKind::Update,
            OpKind::Cas,
            OpKind::Cad,
            OpKind::CasIndex,
            OpKind::CasBoth,
            OpKind::CadIndex,
            OpKind::Delete,
            OpKind::DeleteRecursive,
            OpKind::InOrder,
            OpKind::Refresh,
            OpKind::MkdirTtl,
            OpKind::UpdateDirTtl,
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

/// The directory that `mkdir-ttl` creates and `update-dir-ttl` moves the TTL of.
pub const TTL_DIR: &str = "/t";

/// A TTL of 1-3 s, stamped on the wall clock of the node the request goes to, as `floe`'s HTTP
/// layer stamps it on its own.
fn ttl_deadline(cluster: &Cluster, target: NodeId) -> u64 {
    let ttl_ms = 1000 * cluster.rng().gen_range(1..=3);
    engine::server::Clock::unix_ms(&cluster.node_clock(target)) + ttl_ms
}

fn command(
    cluster: &Cluster,
    state: &ClientState,
    (kind, target): (OpKind, NodeId),
    key: &str,
    value: String,
) -> Command {
    let seen = state.seen.get(key).cloned();
    // A never-seen key's index: 1 is the first index, so such a compare fails unless it is.
    let seen_index = state.seen_index.get(key).copied().unwrap_or(1);
    match kind {
        OpKind::Set => Command::Set {
            key: key.into(),
            dir: false,
            value,
            expire_at_ms: None,
            refresh: false,
        },
        OpKind::TtlSet => Command::Set {
            key: key.into(),
            dir: false,
            value,
            expire_at_ms: Some(ttl_deadline(cluster, target)),
            refresh: false,
        },
        OpKind::Refresh => Command::Update {
            key: key.into(),
            value: String::new(),
            expire_at_ms: Some(ttl_deadline(cluster, target)),
            refresh: true,
        },
        OpKind::MkdirTtl => Command::Create {
            key: TTL_DIR.into(),
            dir: true,
            value: String::new(),
            expire_at_ms: Some(ttl_deadline(cluster, target)),
        },
        OpKind::UpdateDirTtl => Command::Update {
            key: TTL_DIR.into(),
            value: String::new(),
            expire_at_ms: Some(ttl_deadline(cluster, target)),
            refresh: false,
        },
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
        OpKind::CasIndex | OpKind::CasBoth => Command::CompareAndSwap {
            key: key.into(),
            value,
            prev_value: (kind == OpKind::CasBoth).then(|| seen.unwrap_or_else(|| "never".into())),
            prev_index: Some(seen_index),
            expire_at_ms: None,
            refresh: false,
        },
        OpKind::CadIndex => Command::CompareAndDelete {
            key: key.into(),
            prev_value: None,
            prev_index: Some(seen_index),
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
        key: event.node.key.clone(),
        store_index: event.index,
        raft_index,
        value: event.node.value.clone(),
        modified_index: (event.node.modified_index > 0).then_some(event.node.modified_index),
    }
}

fn cluster_outcome(e: ClientError) -> OpOutcome {
    match e {
        ClientError::NotLeader { leader } => OpOutcome::Unavailable { leader },
        // The node stopped with the request in flight: it may still commit.
        ClientError::Stopped | ClientError::Compacted => OpOutcome::TimedOut,
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

/// A watch from the first index this client has not seen; the watch checker judges the event.
async fn watch(
    cluster: &Cluster,
    handle: &KvClient,
    state: &ClientState,
    key: &str,
    target: NodeId,
) -> (Call, OpOutcome) {
    // `/d/a` stands for a recursive watch on its directory; `/d/b` is watched alone, so that
    // the directory's removal must end its watch (store/README.md §8.3).
    let recursive = key == "/d/a";
    let key = if recursive { "/d" } else { key };
    let watch = KvWatch {
        key: key.into(),
        recursive,
        wait_index: state.store_index + 1,
    };
    let call = Call::Watch {
        key: key.into(),
        recursive,
        wait_index: watch.wait_index,
    };
    let timeout = Duration::from_millis(cluster.config.client_timeout_ms);
    let outcome = match madsim::time::timeout(timeout, handle.watch_event(watch)).await {
        Ok(Ok(event)) => {
            if !check::watch::matches(&observe::event(0, &event), key, recursive) {
                let action = event.action.as_str();
                let detail = format!(
                    "watch on {key} (recursive: {recursive}) fired with {action} on {}",
                    event.node.key
                );
                let now = cluster.clock.now_ms();
                let v = Violation::new(
                    "watches fire only on matching events",
                    observe::node(target),
                    Default::default(),
                    Default::default(),
                    detail,
                );
                cluster.shared().record(Err(v), now);
            }
            ok_outcome(&event, 0)
        }
        Ok(Err(e)) => error_outcome(e),
        Err(_) => OpOutcome::TimedOut,
    };
    (call, outcome)
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
            let first = applied
                .output
                .as_ref()
                .ok()
                .and_then(|d| d.events().first());
            let answer = first.map(|e| (e.index, e.action.as_str(), e.node.modified_index));
            check_same_answer(cluster, target, applied.index, answer);
            match &applied.output {
                Ok(_) => match first {
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

/// One round of the lock module from `target`'s side: acquire, hold 10-50 ms (or, one time in
/// ten, 1-3 s; never past the lease), release. Returns the outcome and the holding interval in µs; the lock checker judges
/// the intervals and their fencing tokens.
async fn lock_round(cluster: &Cluster, target: NodeId) -> (OpOutcome, Option<(u64, u64)>) {
    let clients: Option<Vec<KvClient>> = cluster.shared().clients.iter().cloned().collect();
    let Some(clients) = clients else {
        return (OpOutcome::Unavailable { leader: None }, None);
    };
    // The lock module runs on the node the round starts at, on that node's clock (as `floe`'s
    // HTTP layer runs it on its own).
    let node_clock = cluster.node_clock(target);
    let router = KvRouter::new(clients, target.0 as usize - 1, node_clock.clone());
    let unchecked = cluster.config.bug == Some(Bug::LockNoExpiryCheck);
    let acquired = if unchecked {
        lock::acquire_lease_without_expiry_check(&router, "w", 2, None, Some(1)).await
    } else {
        lock::acquire_lease(&router, "w", 2, None, Some(1)).await
    };
    let lease = match acquired {
        Ok(lease) => lease,
        Err(LockError::Timeout) => return (OpOutcome::TimedOut, None),
        Err(LockError::Kv(e)) => return (error_outcome(e), None),
        Err(LockError::Lost(_) | LockError::NotQueued(_)) => {
            return (OpOutcome::StoreError { code: 100 }, None);
        }
    };
    let index = lease.index;
    let from_us = cluster.clock.now_us();
    // The lease runs out when the leader's wall clock reaches `expires_at_ms`; read on the
    // holder's node's wall clock, either may be `error_max_ms` off true time.
    let margin_ms = 2 * cluster.config.clock.error_max_ms;
    let left_ms = lease
        .expires_at_ms
        .saturating_sub(engine::server::Clock::unix_ms(&node_clock));
    // Mostly short critical sections; one in ten is slow (a GC pause, a slow disk) and would
    // outlive the 2 s lease if the holder did not check it.
    let mut hold = {
        let mut rng = cluster.rng();
        if rng.gen_bool(0.1) {
            rng.gen_range(1000..=3000)
        } else {
            rng.gen_range(10..=50)
        }
    };
    if !unchecked {
        // Never past the lease, less the clocks' disagreement: after it another contender may
        // hold the lock.
        hold = hold.min(left_ms.saturating_sub(margin_ms + 1));
    }
    cluster.clock.sleep_ms(hold).await;
    let to_us = cluster.clock.now_us();
    // A failed release leaves the entry to expire: the next holder waits for its TTL.
    let _ = lock::release(&router, "w", &Contender::Index(index)).await;
    let outcome = OpOutcome::Ok {
        action: "lock",
        key: "w".into(),
        store_index: index,
        raft_index: 0,
        value: None,
        modified_index: Some(index),
    };
    (outcome, Some((from_us, to_us)))
}

fn error_outcome(e: KvError) -> OpOutcome {
    match e {
        KvError::Store(e) => OpOutcome::StoreError {
            code: e.code.number(),
        },
        KvError::Cluster(e) => cluster_outcome(e),
    }
}

/// The checkers' view of a write command. A TTL's deadline is the earliest true time at which
/// the key may be gone: its expiry instant was stamped on a node's wall clock and is compared
/// with the expiring leader's, and either may be `error_max_ms` off true time, so the key may go
/// that much before the instant read as true time (`TTL - 2 x error_max_ms` after the stamp at
/// worst). That is what Floe promises under clock skew (README.md), and what the
/// linearizability checker holds it to.
fn write_call(kind: OpKind, command: &Command, plan: &ClockPlan) -> Call {
    let skew_us = plan.error_max_ms * 1000;
    let us = |ms: Option<u64>| {
        ms.map(|ms| (ms.saturating_sub(SIM_EPOCH_UNIX_MS) * 1000).saturating_sub(skew_us))
    };
    match command.clone() {
        Command::Update {
            key,
            expire_at_ms,
            refresh: true,
            ..
        } => Call::Refresh {
            key,
            expire_at_us: us(expire_at_ms),
        },
        Command::Update {
            key, expire_at_ms, ..
        } if kind == OpKind::UpdateDirTtl => Call::UpdateDir {
            key,
            expire_at_us: us(expire_at_ms),
        },
        Command::Create {
            key,
            dir: true,
            expire_at_ms,
            ..
        } => Call::Mkdir {
            key,
            expire_at_us: us(expire_at_ms),
        },
        Command::Set {
            key,
            value,
            expire_at_ms,
            ..
        } => Call::Set {
            key,
            value,
            expire_at_us: us(expire_at_ms),
        },
        Command::Create { key, value, .. } => Call::Create { key, value },
        Command::Update { key, value, .. } => Call::Update { key, value },
        Command::CompareAndSwap {
            key,
            value,
            prev_value,
            prev_index,
            ..
        } => Call::Cas {
            key,
            value,
            prev_value,
            prev_index,
        },
        Command::CompareAndDelete {
            key,
            prev_value,
            prev_index,
        } => Call::Cad {
            key,
            prev_value,
            prev_index,
        },
        Command::Delete {
            key,
            recursive: true,
            ..
        } => Call::DeleteRecursive { key },
        Command::Delete { key, .. } => Call::Delete { key },
        Command::CreateInOrder { dir_key, value, .. } => Call::CreateInOrder {
            dir: dir_key,
            value,
        },
        Command::Expire { .. } => unreachable!("clients never send expiries"),
    }
}

/// The checkers' view of an answer.
fn ret_of(outcome: &OpOutcome) -> Ret {
    match outcome {
        OpOutcome::Ok {
            action,
            key,
            store_index,
            value,
            modified_index,
            ..
        } => Ret::Ok {
            index: *store_index,
            action: (*action).to_string(),
            key: key.clone(),
            value: value.clone(),
            modified_index: modified_index.unwrap_or(0),
        },
        OpOutcome::StoreError { code } => Ret::Err { code: *code },
        OpOutcome::Unavailable { .. } => Ret::Fail,
        OpOutcome::TimedOut => Ret::Unknown,
    }
}

/// Runs the operation itself; returns its call (as the checkers see it) and its outcome.
async fn perform(
    cluster: &Cluster,
    (client, target): (usize, NodeId),
    state: &ClientState,
    kind: OpKind,
    key: &'static str,
) -> (Call, OpOutcome, Option<u64>) {
    let handle = cluster.shared().clients[target.0 as usize - 1].clone();
    let timeout = Duration::from_millis(cluster.config.client_timeout_ms);
    let quorum = kind == OpKind::QuorumGet;
    let get = Call::Get {
        key: key.into(),
        quorum,
    };
    let Some(h) = handle else {
        return (get, OpOutcome::Unavailable { leader: None }, None);
    };
    match kind {
        OpKind::Get | OpKind::QuorumGet => (get, read(&h, kind, key, timeout).await, None),
        OpKind::Watch => {
            let (call, outcome) = watch(cluster, &h, state, key, target).await;
            (call, outcome, None)
        }
        OpKind::Lock => {
            // A round is several requests; bound it as a whole like any other operation.
            let bound = Duration::from_millis(5 * cluster.config.client_timeout_ms);
            let round = madsim::time::timeout(bound, lock_round(cluster, target)).await;
            let (outcome, hold) = round.unwrap_or((OpOutcome::TimedOut, None));
            let (hold_from_us, hold_to_us) = hold.unwrap_or((0, 0));
            let call = Call::Lock {
                name: "w".into(),
                hold_from_us,
                hold_to_us,
            };
            (call, outcome, None)
        }
        _ => {
            let value = format!("v{client}-{}", state.seq);
            let command = command(cluster, state, (kind, target), key, value);
            let data = command.encode();
            let hash = hash_bytes(&data);
            let outcome = write(cluster, &h, client, data, target).await;
            (
                write_call(kind, &command, &cluster.config.clock),
                outcome,
                Some(hash),
            )
        }
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
    let invoke_us = cluster.clock.now_us();
    let acked_before = cluster.shared().acked_index_max;
    let (call, outcome, data_hash) = perform(cluster, (client, target), state, kind, key).await;
    let complete_us = cluster.clock.now_us();
    check_answer(cluster, client, state, kind, target, &outcome, acked_before);
    remember(state, kind, key, &outcome);
    let mut shared = cluster.shared();
    let code = match &outcome {
        OpOutcome::Ok { store_index, .. } => 100 + *store_index,
        OpOutcome::StoreError { code } => u64::from(*code),
        OpOutcome::Unavailable { .. } => 2,
        OpOutcome::TimedOut => 3,
    };
    shared
        .trace
        .write_all(&[complete_us, kind as u64, client as u64, code]);
    let op = Op {
        id: shared.history.ops.len() as u64,
        client: client as u64,
        node: target.0,
        invoke_us,
        complete_us,
        call,
        ret: ret_of(&outcome),
    };
    shared.history.push(OpRecord {
        kind,
        op,
        data_hash,
    });
    outcome
}

/// State machine safety, seen from the client: the answer the node gave for the entry at
/// `index` is the one a correct replica gives (same store index, action and modified index).
fn check_same_answer(
    cluster: &Cluster,
    node: NodeId,
    index: Index,
    answer: Option<(u64, &'static str, u64)>,
) {
    let now = cluster.clock.now_ms();
    let mut shared = cluster.shared();
    let reference = shared
        .reference_outputs
        .get(index.0 as usize - 1)
        .map(ReferenceOutput::summary);
    if reference.is_some_and(|r| r != answer) {
        let detail = format!(
            "node {node} answered the entry at {index} with {answer:?}; a correct replica answers {:?}",
            reference.flatten()
        );
        let term = shared.safety.max_term();
        shared.record(
            Err(Violation::new(
                "every replica answers a command alike",
                observe::node(node),
                term,
                observe::index(index),
                detail,
            )),
            now,
        );
    }
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
    if shared.safety.applied_at(observe::index(index)) != Some((observe::term(term), hash)) {
        let detail = format!(
            "client {client}: write acknowledged at {index} but another entry was applied there"
        );
        shared.record(
            Err(Violation::new(
                "acknowledged commands are applied",
                observe::node(node),
                observe::term(term),
                observe::index(index),
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
            Err(Violation::new(
                rule,
                observe::node(node),
                term,
                check::raft::Index(raft_index),
                detail,
            )),
            now,
        );
    }
}

/// What the client learns from an answer, for its next operations.
fn remember(state: &mut ClientState, kind: OpKind, key: &'static str, outcome: &OpOutcome) {
    let OpOutcome::Ok {
        store_index,
        value,
        modified_index,
        ..
    } = outcome
    else {
        return;
    };
    // Operations on the TTL directory say nothing about the drawn key.
    let on_key = !matches!(kind, OpKind::MkdirTtl | OpKind::UpdateDirTtl);
    if let Some(index) = modified_index
        && on_key
        && kind != OpKind::Watch
        && kind != OpKind::InOrder
        && kind != OpKind::Lock
    {
        state.seen_index.insert(key, *index);
    }
    if kind == OpKind::QuorumGet || kind.is_write() || kind == OpKind::Watch {
        state.store_index = state.store_index.max(*store_index);
    }
    if let Some(value) = value
        && on_key
        && kind != OpKind::Watch
        && kind != OpKind::InOrder
    {
        state.seen.insert(key, value.clone());
    }
}
