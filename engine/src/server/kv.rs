//! The etcd v2 store as the node's state machine, and the typed client API over it that the
//! simulator's clients and the HTTP layer share.

#[cfg(feature = "planted-bugs")]
use crate::raft::Index;
use crate::raft::{Entry, EntryKind};
use crate::store::{Applied as StoreApplied, Command, ErrorCode, Event, Store, StoreError};

use super::{Applied, Client, ClientError, ReadAnswer, StateMachine};

/// A read of the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvGet {
    /// The key.
    pub key: String,
    /// List a directory's whole subtree.
    pub recursive: bool,
    /// Sort listings (they always are: key order).
    pub sorted: bool,
}

/// A watch on the store (store/README.md §8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvWatch {
    /// The watched key.
    pub key: String,
    /// Fire on changes below the key too.
    pub recursive: bool,
    /// The first index that may fire it; 0 means the next change.
    pub wait_index: u64,
}

/// Planted bugs of the store machine (feature `planted-bugs`, which only the simulator
/// enables), each off unless asked, so the checkers can prove they bite. (The lock module's,
/// `lock_no_expiry_check`, is a function of its own: `lock::acquire_lease_without_expiry_check`.)
#[cfg(feature = "planted-bugs")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvBugs {
    /// A watch misses one event when two matching events commit back to back: it is answered
    /// with the second.
    pub watch_skip: bool,
    /// After a restart the store index goes back by one once the replayed log is applied, as if
    /// restored from a snapshot's index minus one: later writes reuse an index.
    pub index_reuse: bool,
    /// Every replica expires TTL keys on its own clock, outside the log, besides the leader's
    /// replicated expiry.
    pub local_expiry: bool,
    /// Compare-and-swap and compare-and-delete by `prevIndex` compare with the node's
    /// `createdIndex` instead of its `modifiedIndex`: a swap against a key rewritten since
    /// it was created succeeds when it must fail.
    pub cas_created_index: bool,
    /// Watches forget that deleting or expiring a directory ends every watch inside it: a
    /// watch on `/d/b` sleeps through the recursive delete of `/d` and fires on a later event.
    pub watch_dir_delete: bool,
}

/// The etcd v2 store, fed with committed entries.
#[derive(Clone, Debug, Default)]
pub struct KvMachine {
    store: Store,
    /// Planted bugs of the store layer.
    #[cfg(feature = "planted-bugs")]
    bugs: KvBugs,
    /// `index_reuse`: the replayed log's last index, after which the index goes back.
    #[cfg(feature = "planted-bugs")]
    rewind_at: Option<Index>,
}

impl KvMachine {
    /// The planted bug `cas_created_index`: a compare by `prevIndex` that names the node's
    /// `createdIndex` is taken as naming its `modifiedIndex` (so it matches).
    #[cfg(feature = "planted-bugs")]
    fn planted_compare_created(&self, mut command: Command) -> Command {
        if let Command::CompareAndSwap {
            key, prev_index, ..
        }
        | Command::CompareAndDelete {
            key, prev_index, ..
        } = &mut command
            && let Some(asked) = prev_index
            && let Ok(found) = self.store.get(key, false, false)
            && found.node.created_index == *asked
        {
            *prev_index = Some(found.node.modified_index);
        }
        command
    }

    #[cfg(not(feature = "planted-bugs"))]
    fn planted_compare_created(&self, command: Command) -> Command {
        command
    }

    /// A machine over `store`.
    pub fn new(store: Store) -> KvMachine {
        KvMachine {
            store,
            #[cfg(feature = "planted-bugs")]
            bugs: KvBugs::default(),
            #[cfg(feature = "planted-bugs")]
            rewind_at: None,
        }
    }

    /// A fresh machine with planted bugs switched on (the simulator's `--bug`).
    #[cfg(feature = "planted-bugs")]
    pub fn with_bugs(bugs: KvBugs) -> KvMachine {
        KvMachine {
            bugs,
            ..KvMachine::default()
        }
    }

    /// The store as applied so far.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// The error for a log entry that does not decode as a command; it changes nothing.
fn undecodable(store: &Store, cause: String) -> StoreError {
    StoreError::new(ErrorCode::RaftInternal, cause, store.index())
}

impl StateMachine for KvMachine {
    type Output = Result<StoreApplied, StoreError>;
    type Query = KvGet;
    type Answer = Result<Event, StoreError>;
    type Watch = KvWatch;

    fn apply(&mut self, entry: &Entry) -> Self::Output {
        let output = match &entry.kind {
            // A configuration is the Raft core's and the node's business, not the store's.
            EntryKind::Noop | EntryKind::Config(_) => Ok(StoreApplied::Expired(Vec::new())),
            EntryKind::Command(data) | EntryKind::Forwarded { data, .. } => {
                match Command::decode(data) {
                    Ok(command) if planted!(self.bugs.cas_created_index) => {
                        self.store.apply(&self.planted_compare_created(command))
                    }
                    Ok(command) => self.store.apply(&command),
                    Err(e) => Err(undecodable(&self.store, e.to_string())),
                }
            }
        };
        #[cfg(feature = "planted-bugs")]
        if self.rewind_at == Some(entry.index) {
            self.rewind_at = None;
            self.store.planted_bug_rewind_index();
        }
        output
    }

    fn snapshot(&self) -> Vec<u8> {
        self.store.snapshot()
    }

    fn snapshot_view(&self) -> super::SnapshotBuild {
        // The key map is shared, not copied: the view costs O(1) plus the watch history.
        let view = self.store.snapshot_view();
        Box::new(move || view.encode())
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), String> {
        self.store = Store::restore(data)?;
        #[cfg(feature = "planted-bugs")]
        if self.bugs.index_reuse {
            // Planted bug: the restored index comes back one short.
            self.store.planted_bug_rewind_index();
        }
        Ok(())
    }

    #[cfg(feature = "planted-bugs")]
    fn planted_recovered(&mut self, commit: Index) {
        if self.bugs.index_reuse && commit > Index(0) {
            self.rewind_at = Some(commit);
        }
    }

    #[cfg(feature = "planted-bugs")]
    fn planted_housekeeping(&mut self, unix_ms: u64) {
        if self.bugs.local_expiry
            && self
                .store
                .next_expiry_ms()
                .is_some_and(|due| due <= unix_ms)
        {
            let _ = self.store.apply(&Command::Expire { now_ms: unix_ms });
        }
    }

    fn query(&self, query: &KvGet) -> Self::Answer {
        self.store.get(&query.key, query.recursive, query.sorted)
    }

    fn poll_watch(&self, watch: &KvWatch) -> Option<Self::Answer> {
        let found = self
            .store
            .event_since(&watch.key, watch.recursive, watch.wait_index);
        if planted!(self.bugs.watch_skip)
            && let Ok(Some(first)) = &found
            && let Ok(Some(next)) =
                self.store
                    .event_since(&watch.key, watch.recursive, first.index + 1)
            && next.index == first.index + 1
        {
            return Some(Ok(next));
        }
        #[cfg(feature = "planted-bugs")]
        if self.bugs.watch_dir_delete
            && let Ok(Some(first)) = &found
            && first.action.is_removal()
            && first.node.dir
            && first.node.key != watch.key
        {
            let later = KvWatch {
                wait_index: first.index + 1,
                ..watch.clone()
            };
            return self.poll_watch(&later);
        }
        found.transpose()
    }

    fn position(&self) -> u64 {
        self.store.index()
    }

    /// `waitIndex` 0 (or absent) means the next change after the watch arrived (store/README.md
    /// §8.2).
    fn arm_watch(&self, watch: &mut KvWatch) {
        if watch.wait_index == 0 {
            watch.wait_index = self.store.index() + 1;
        }
    }

    /// etcd v2 expires keys by a leader-stamped tick (store/README.md §7); it is proposed only
    /// once some node's expiry instant has passed.
    fn leader_proposal(&self, unix_ms: u64) -> Option<Vec<u8>> {
        let due = self.store.next_expiry_ms()?;
        (due <= unix_ms).then(|| Command::Expire { now_ms: unix_ms }.encode())
    }
}

/// Why a store request failed: the cluster could not answer, or the store said no.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The node or cluster could not answer (not leader, busy, down, overwritten).
    #[error(transparent)]
    Cluster(#[from] ClientError),
    /// The store refused (an etcd v2 error: key not found, compare failed, ...).
    #[error("{0:?}")]
    Store(StoreError),
}

/// A committed store mutation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvWritten {
    /// The Raft index and term of the entry (`X-Raft-Index`, `X-Raft-Term`).
    pub raft: Applied<()>,
    /// The store's event (its `index` is `X-Etcd-Index`).
    pub event: Event,
}

/// A read of the store, stamped like an etcd v2 response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvRead {
    /// The node's applied Raft index when it answered (`X-Raft-Index`).
    pub raft_index: u64,
    /// The node's term when it answered (`X-Raft-Term`).
    pub raft_term: u64,
    /// The store's answer; its `index` is `X-Etcd-Index`.
    pub event: Event,
}

/// The typed store client: one node's handle.
pub type KvClient = Client<KvMachine>;

impl Client<KvMachine> {
    /// Replicates `command` and returns its event once applied.
    pub async fn write(&self, command: &Command) -> Result<KvWritten, KvError> {
        let applied = self.propose(command.encode()).await?;
        let raft = Applied {
            index: applied.index,
            term: applied.term,
            output: (),
        };
        let event = applied.output.map_err(KvError::Store)?.into_event();
        let event = event.ok_or_else(|| {
            KvError::Store(StoreError::new(
                ErrorCode::RaftInternal,
                "expire command",
                0,
            ))
        })?;
        Ok(KvWritten { raft, event })
    }

    /// Reads `get`: locally (maybe stale, as etcd's default GET) or linearizably (`quorum=true`).
    pub async fn get(&self, get: KvGet, linearizable: bool) -> Result<KvRead, KvError> {
        let ReadAnswer {
            applied,
            term,
            answer,
        } = self.read(get, linearizable).await?;
        let event = answer.map_err(KvError::Store)?;
        Ok(KvRead {
            raft_index: applied.0,
            raft_term: term.0,
            event,
        })
    }

    /// Waits for the first event matching `watch` on this node's applied state.
    pub async fn watch_event(&self, watch: KvWatch) -> Result<Event, KvError> {
        let ReadAnswer { answer, .. } = self.watch(watch).await?;
        answer.map_err(KvError::Store)
    }
}

/// A client of the whole cluster: it sends each request to the node it believes leads,
/// following "not the leader" hints, so callers (the lock module) work from any node.
///
/// Only refusals that prove nothing happened (`NotLeader`, `Busy`) are retried; anything else
/// is returned, since retrying a write that may have been applied could apply it twice.
pub struct KvRouter<C> {
    /// One client per node, in node-id order (node `i` is `clients[i - 1]`).
    clients: Vec<KvClient>,
    /// The node to try first.
    current: std::sync::Mutex<usize>,
    clock: C,
}

/// Most tries of one request before giving up with the last refusal.
const ROUTER_TRIES_MAX: usize = 50;

impl<C: super::Clock> KvRouter<C> {
    /// A router over every node's client (in node-id order), starting at `first`.
    pub fn new(clients: Vec<KvClient>, first: usize, clock: C) -> KvRouter<C> {
        assert!(first < clients.len(), "the first node is one of the nodes");
        KvRouter {
            clients,
            current: std::sync::Mutex::new(first),
            clock,
        }
    }

    /// The world's clock, for callers that time their own steps.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    fn current(&self) -> usize {
        *self.current.lock().expect("router lock poisoned")
    }

    /// After a refusal: follow the hint, or try the next node after a short pause.
    async fn redirect(&self, refusal: &ClientError) {
        let hinted = match refusal {
            ClientError::NotLeader { leader: Some(id) } => Some(id.0 as usize - 1),
            _ => None,
        };
        let followed = {
            let mut current = self.current.lock().expect("router lock poisoned");
            match hinted.filter(|&i| i < self.clients.len() && i != *current) {
                Some(i) => *current = i,
                None => *current = (*current + 1) % self.clients.len(),
            }
            hinted.is_some()
        };
        if !followed {
            let now = self.clock.now_ms();
            self.clock.sleep_until(now + 20).await;
        }
    }

    /// Runs `attempt` on the current node until it is not refused, following hints.
    async fn routed<T, F, Fut>(&self, mut attempt: F) -> Result<T, KvError>
    where
        F: FnMut(KvClient) -> Fut,
        Fut: std::future::Future<Output = Result<T, KvError>>,
    {
        let mut last = ClientError::Busy;
        for _ in 0..ROUTER_TRIES_MAX {
            match attempt(self.clients[self.current()].clone()).await {
                Err(KvError::Cluster(e @ (ClientError::NotLeader { .. } | ClientError::Busy))) => {
                    self.redirect(&e).await;
                    last = e;
                }
                other => return other,
            }
        }
        Err(KvError::Cluster(last))
    }

    /// Replicates `command` through the leader.
    pub async fn write(&self, command: &Command) -> Result<KvWritten, KvError> {
        self.routed(|client| async move { client.write(command).await })
            .await
    }

    /// A linearizable read, through whichever node can confirm it.
    pub async fn get(&self, get: KvGet) -> Result<KvRead, KvError> {
        self.routed(|client| {
            let get = get.clone();
            async move { client.get(get, true).await }
        })
        .await
    }

    /// Waits for an event on the current node's applied state.
    pub async fn watch_event(&self, watch: KvWatch) -> Result<Event, KvError> {
        self.clients[self.current()].watch_event(watch).await
    }
}
