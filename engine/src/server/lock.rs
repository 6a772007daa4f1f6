//! The etcd 0.x lock and leader modules (store/README.md §11.3, §11.4), built, as 0.3 built them,
//! from ordinary store operations: a lock is the hidden directory `/_etcd/mod/lock/<name>`, each
//! contender an in-order key in it with a TTL, and the holder the contender with the lowest index.
//! Every step is a replicated write or a linearizable read, so any node can serve it.
//!
//! Depends on `kv` (the typed store client) and the `Clock` trait, for timeouts and TTL renewal.

use futures::FutureExt;

use super::kv::{KvError, KvGet, KvRead, KvRouter, KvWatch};
use super::{ClientError, Clock};
use crate::store::{Command, ErrorCode, NodeView, StoreError};

/// Where the lock module keeps its locks.
pub const LOCK_ROOT: &str = "/_etcd/mod/lock";

/// The value stored for a contender that gave none (etcd 0.3 wrote `-`).
const ANONYMOUS: &str = "-";

/// Why a lock operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LockError {
    /// The cluster could not answer, or the store refused.
    #[error(transparent)]
    Kv(#[from] KvError),
    /// The lock was not acquired before the timeout; the contender's entry was removed.
    #[error("lock acquire timed out")]
    Timeout,
    /// The contender's entry vanished while it waited (its TTL ran out).
    #[error("lock entry {0} expired while waiting")]
    Lost(u64),
    /// No contender holds this value or index (errorCode 100, cause `Renew` or `Release`).
    #[error("no lock entry {0:?}")]
    NotQueued(String),
}

/// How a contender is named: by its index (the fencing token) or by its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Contender {
    /// The in-order index returned by `acquire`.
    Index(u64),
    /// The value given to `acquire`.
    Value(String),
}

fn lock_dir(name: &str) -> String {
    format!("{LOCK_ROOT}/{}", name.trim_matches('/'))
}

/// The contenders of a lock, lowest index (the holder) first, and the store index of the read.
async fn contenders<C: Clock>(
    client: &KvRouter<C>,
    dir: &str,
) -> Result<(Vec<NodeView>, u64), KvError> {
    let get = KvGet {
        key: dir.into(),
        recursive: false,
        sorted: true,
    };
    match client.get(get).await {
        Ok(KvRead { event, .. }) => {
            let mut nodes: Vec<NodeView> =
                event.node.nodes.into_iter().filter(|n| !n.dir).collect();
            nodes.sort_by_key(|n| n.created_index);
            Ok((nodes, event.index))
        }
        Err(KvError::Store(e)) if e.code == ErrorCode::KeyNotFound => Ok((Vec::new(), e.index)),
        Err(e) => Err(e),
    }
}

fn find(nodes: &[NodeView], who: &Contender) -> Option<NodeView> {
    nodes
        .iter()
        .find(|n| match who {
            Contender::Index(i) => n.created_index == *i,
            Contender::Value(v) => n.value.as_deref() == Some(v.as_str()),
        })
        .cloned()
}

/// Moves a contender's TTL forward without changing its value (and without firing watchers).
/// Returns the new expiry instant (ms since the Unix epoch).
async fn refresh<C: Clock>(client: &KvRouter<C>, key: &str, ttl_s: u64) -> Result<u64, KvError> {
    let expire_at_ms = client.clock().unix_ms() + ttl_s.saturating_mul(1000);
    let command = Command::Update {
        key: key.into(),
        value: String::new(),
        expire_at_ms: Some(expire_at_ms),
        refresh: true,
    };
    client.write(&command).await.map(|_| expire_at_ms)
}

/// A held lock: its fencing token and until when the holder may rely on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The entry's index: a later holder always has a higher one.
    pub index: u64,
    /// The entry's expiry instant (ms since the Unix epoch): past it, another contender may
    /// hold the lock, so the holder must stop (or renew before it).
    pub expires_at_ms: u64,
}

/// As [`acquire_lease`], returning only the index (the 0.x module's answer). `queued` is told
/// the key of the caller's queue entry as soon as it has one, so that a caller that goes away
/// while waiting can give its place up.
pub async fn acquire<C: Clock>(
    client: &KvRouter<C>,
    name: &str,
    (ttl_s, timeout_s): (u64, Option<u64>),
    value: Option<&str>,
    queued: &mut (dyn FnMut(&str) + Send),
) -> Result<u64, LockError> {
    acquire_checked::<_, true>(client, name, (ttl_s, timeout_s), value, queued)
        .await
        .map(|lease| lease.index)
}

/// Joins the queue of lock `name` (or finds the caller's entry by `value`) and waits until it is
/// first in line: `timeout_s` `None` waits forever, `Some(0)` tries once. Returns the entry's
/// index, which is also a fencing token: a later holder always has a higher one.
///
/// A lease that has already run out when the answer arrives (the cluster was slow to confirm
/// the last renewal) is given up and reported as [`LockError::Lost`]: by then another
/// contender may hold the lock.
pub async fn acquire_lease<C: Clock>(
    client: &KvRouter<C>,
    name: &str,
    ttl_s: u64,
    value: Option<&str>,
    timeout_s: Option<u64>,
) -> Result<Lease, LockError> {
    acquire_checked::<_, true>(client, name, (ttl_s, timeout_s), value, &mut |_| {}).await
}

/// The planted bug `lock_no_expiry_check`: as [`acquire_lease`], but a lease that ran out before
/// the answer came is returned as held. Only with the `planted-bugs` feature.
#[cfg(feature = "planted-bugs")]
pub async fn acquire_lease_without_expiry_check<C: Clock>(
    client: &KvRouter<C>,
    name: &str,
    ttl_s: u64,
    value: Option<&str>,
    timeout_s: Option<u64>,
) -> Result<Lease, LockError> {
    acquire_checked::<_, false>(client, name, (ttl_s, timeout_s), value, &mut |_| {}).await
}

/// `acquire_lease`; `CHECK_EXPIRY` is false only for the planted bug (a constant, so the
/// correct acquire carries no switch).
async fn acquire_checked<C: Clock, const CHECK_EXPIRY: bool>(
    client: &KvRouter<C>,
    name: &str,
    (ttl_s, timeout_s): (u64, Option<u64>),
    value: Option<&str>,
    queued: &mut (dyn FnMut(&str) + Send),
) -> Result<Lease, LockError> {
    let dir = lock_dir(name);
    let deadline_ms = timeout_s.map(|t| {
        client
            .clock()
            .now_ms()
            .saturating_add(t.saturating_mul(1000))
    });
    let (nodes, _) = contenders(client, &dir).await?;
    let reused = value
        .filter(|v| !v.is_empty())
        .and_then(|v| find(&nodes, &Contender::Value(v.into())));
    let mine = match reused {
        Some(node) => node,
        None => {
            let value = value
                .filter(|v| !v.is_empty())
                .unwrap_or(ANONYMOUS)
                .to_string();
            let expire_at_ms = Some(client.clock().unix_ms() + ttl_s.saturating_mul(1000));
            let command = Command::CreateInOrder {
                dir_key: dir.clone(),
                dir: false,
                value,
                expire_at_ms,
            };
            client.write(&command).await?.event.node
        }
    };
    queued(&mine.key);
    match wait_first(client, &dir, &mine, ttl_s, deadline_ms).await {
        Ok(()) => {
            let expires_at_ms = refresh(client, &mine.key, ttl_s).await?;
            if !CHECK_EXPIRY || client.clock().unix_ms() < expires_at_ms {
                return Ok(Lease {
                    index: mine.created_index,
                    expires_at_ms,
                });
            }
            let gone = Command::Delete {
                key: mine.key.clone(),
                dir: false,
                recursive: false,
            };
            let _ = client.write(&gone).await;
            Err(LockError::Lost(mine.created_index))
        }
        Err(e) => {
            // Give the place up, as etcd 0.3 did when the client went away or timed out.
            let _ = client
                .write(&Command::Delete {
                    key: mine.key.clone(),
                    dir: false,
                    recursive: false,
                })
                .await;
            Err(e)
        }
    }
}

/// Waits until `mine` is the lowest entry, watching its predecessor and renewing its own TTL
/// every `ttl/2` seconds meanwhile.
async fn wait_first<C: Clock>(
    client: &KvRouter<C>,
    dir: &str,
    mine: &NodeView,
    ttl_s: u64,
    deadline_ms: Option<u64>,
) -> Result<(), LockError> {
    let renew_ms = (ttl_s * 1000 / 2).max(1);
    let mut renew_at = client.clock().now_ms() + renew_ms;
    loop {
        let (nodes, store_index) = contenders(client, dir).await?;
        let Some(pos) = nodes
            .iter()
            .position(|n| n.created_index == mine.created_index)
        else {
            return Err(LockError::Lost(mine.created_index));
        };
        if pos == 0 {
            return Ok(());
        }
        let now = client.clock().now_ms();
        if deadline_ms.is_some_and(|d| now >= d) {
            return Err(LockError::Timeout);
        }
        let watch = KvWatch {
            key: nodes[pos - 1].key.clone(),
            recursive: false,
            wait_index: store_index + 1,
        };
        let wake_ms = deadline_ms.map_or(renew_at, |d| d.min(renew_at));
        futures::select_biased! {
            fired = client.watch_event(watch).fuse() => { fired?; }
            () = client.clock().sleep_until(wake_ms).fuse() => {}
        }
        if client.clock().now_ms() >= renew_at {
            refresh(client, &mine.key, ttl_s).await?;
            renew_at = client.clock().now_ms() + renew_ms;
        }
    }
}

/// The current holder's value (or index, with `want_index`); `None` if nobody holds it.
pub async fn holder<C: Clock>(
    client: &KvRouter<C>,
    name: &str,
    want_index: bool,
) -> Result<Option<String>, LockError> {
    let (nodes, _) = contenders(client, &lock_dir(name)).await?;
    Ok(nodes.first().map(|n| {
        if want_index {
            n.created_index.to_string()
        } else {
            n.value.clone().unwrap_or_default()
        }
    }))
}

async fn locate<C: Clock>(
    client: &KvRouter<C>,
    name: &str,
    who: &Contender,
    cause: &str,
) -> Result<NodeView, LockError> {
    let (nodes, index) = contenders(client, &lock_dir(name)).await?;
    find(&nodes, who).ok_or_else(|| {
        let error = StoreError::new(ErrorCode::KeyNotFound, cause, index);
        LockError::Kv(KvError::Store(error))
    })
}

/// Moves a contender's TTL forward (`PUT /mod/v2/lock/<name>?ttl=N&index=I|value=V`).
pub async fn renew<C: Clock>(
    client: &KvRouter<C>,
    name: &str,
    ttl_s: u64,
    who: &Contender,
) -> Result<(), LockError> {
    let node = locate(client, name, who, "Renew").await?;
    refresh(client, &node.key, ttl_s).await?;
    Ok(())
}

/// Leaves the queue, or releases the lock if held (`DELETE /mod/v2/lock/<name>?index=|value=`).
pub async fn release<C: Clock>(
    client: &KvRouter<C>,
    name: &str,
    who: &Contender,
) -> Result<(), LockError> {
    let node = locate(client, name, who, "Release").await?;
    let command = Command::Delete {
        key: node.key,
        dir: false,
        recursive: false,
    };
    match client.write(&command).await {
        Ok(_) => Ok(()),
        // It expired or was released by someone else in between: it is gone either way.
        Err(KvError::Store(e)) if e.code == ErrorCode::KeyNotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The leader module: campaign for `key` as `name` (a lock acquired with `value = name`).
pub async fn leader_campaign<C: Clock>(
    client: &KvRouter<C>,
    key: &str,
    name: &str,
    ttl_s: u64,
    timeout_s: Option<u64>,
) -> Result<u64, LockError> {
    acquire(client, key, (ttl_s, timeout_s), Some(name), &mut |_| {}).await
}

/// The leader module: who leads `key` now.
pub async fn leader_get<C: Clock>(
    client: &KvRouter<C>,
    key: &str,
) -> Result<Option<String>, LockError> {
    holder(client, key, false).await
}

/// The leader module: `name` steps down from `key`.
pub async fn leader_resign<C: Clock>(
    client: &KvRouter<C>,
    key: &str,
    name: &str,
) -> Result<(), LockError> {
    release(client, key, &Contender::Value(name.into())).await
}

/// `ClientError` is what a lock step most often fails with; say so in one place.
impl From<ClientError> for LockError {
    fn from(e: ClientError) -> LockError {
        LockError::Kv(KvError::Cluster(e))
    }
}
