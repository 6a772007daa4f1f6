//! The typed client API: how clients (simulated or HTTP) hand commands to a node's loop.

use futures::channel::{mpsc, oneshot};

use super::StateMachine;
use crate::raft::{
    ConfChange, ConfChangeError, Index, MemberAddr, NodeId, Status, Term, TransferError,
};

/// A command the node applied for a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied<T> {
    /// The entry's index.
    pub index: Index,
    /// The entry's term.
    pub term: Term,
    /// What the state machine returned.
    pub output: T,
}

/// Why a client request failed. None of these means the command was applied; `Overwritten`
/// and `Stopped` mean it might yet be (by a later leader) and the client cannot know.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// This node does not lead; try `leader`.
    #[error("not the leader (leader hint: {leader:?})")]
    NotLeader {
        /// The leader this node last heard from, if any.
        leader: Option<NodeId>,
    },
    /// The node is overloaded (request queue or uncommitted entries full).
    #[error("node busy, retry later")]
    Busy,
    /// Another entry was committed at the command's index: the command was not applied there.
    #[error("proposal overwritten by a new leader")]
    Overwritten,
    /// A snapshot from the leader covered the command's index before this node applied it:
    /// it may or may not have committed.
    #[error("outcome unknown: a snapshot replaced the log before the command was applied")]
    Compacted,
    /// A command this node forwarded to its leader was not applied here in time: it may or
    /// may not have been committed.
    #[error("request timed out: the outcome is unknown")]
    TimedOut,
    /// The node stopped (crashed or shut down) before answering.
    #[error("node stopped before answering")]
    Stopped,
    /// The node already serves as many watches as it is configured for.
    #[error("too many watchers")]
    TooManyWatchers,
}

/// The answer to a read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadAnswer<A> {
    /// The node's applied index when the read was served (`X-Raft-Index`).
    pub applied: Index,
    /// The node's term when the read was served (`X-Raft-Term`).
    pub term: Term,
    /// What the state machine answered.
    pub answer: A,
}

/// One request to the node loop.
pub enum Request<S: StateMachine> {
    /// Replicate `data` and answer once it is applied.
    Propose {
        /// The opaque command.
        data: Vec<u8>,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<Applied<S::Output>, ClientError>>,
    },
    /// Answer `query` from the applied state. A linearizable read first obtains a read index
    /// (Raft thesis §6.4) and waits until the node has applied it; a local read may be stale.
    Read {
        /// What to ask the state machine.
        query: S::Query,
        /// True for a linearizable (quorum) read.
        linearizable: bool,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<ReadAnswer<S::Answer>, ClientError>>,
    },
    /// The Raft core's status now (role, term, leader, indexes), for the HTTP layer's
    /// membership and health endpoints.
    Status {
        /// Where the answer goes.
        reply: oneshot::Sender<Status>,
    },
    /// What this node, as leader, measured of its followers in its current term (empty if it
    /// does not lead).
    LeaderStats {
        /// Where the answer goes.
        reply: oneshot::Sender<Vec<crate::server::FollowerStats>>,
    },
    /// Answer once this node has applied `index` (a follower relaying a write the leader
    /// committed waits for it, so its own local reads see the write afterwards).
    WaitApplied {
        /// The index to wait for.
        index: Index,
        /// Where the answer goes.
        reply: oneshot::Sender<()>,
    },
    /// Wait until `watch` fires on this node's applied state.
    Watch {
        /// What to wait for.
        watch: S::Watch,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<ReadAnswer<S::Answer>, ClientError>>,
        /// Told the machine's position once the watch is accepted (before it fires); dropped
        /// unsent if the watch fails at once.
        armed: Option<oneshot::Sender<ReadAnswer<u64>>>,
    },
    /// Hand this node's leadership to `target`, or to its most up-to-date follower if `None`
    /// (Raft thesis §3.10). Answered at once with the chosen target; the handover itself shows
    /// in `Status` (another node leads) or not, within about an election timeout.
    TransferLeader {
        /// The node to hand leadership to.
        target: Option<NodeId>,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<NodeId, TransferError>>,
    },
    /// Change the cluster's configuration (Raft thesis chapter 4), if this node leads. Answered
    /// once the change is appended (with its index), not once it commits.
    ConfChange {
        /// The change; `None` changes only `addresses`.
        change: Option<ConfChange>,
        /// Members' names and peer URLs, recorded in the new configuration.
        addresses: Vec<MemberAddr>,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<Index, ConfChangeError>>,
    },
}

/// A cloneable handle that sends requests to one node.
pub struct Client<S: StateMachine> {
    tx: mpsc::Sender<Request<S>>,
}

impl<S: StateMachine> Clone for Client<S> {
    fn clone(&self) -> Self {
        Client {
            tx: self.tx.clone(),
        }
    }
}

impl<S: StateMachine> Client<S> {
    /// A client and the receiving end for the node loop, with room for `queue_max` requests.
    pub fn channel(queue_max: usize) -> (Client<S>, mpsc::Receiver<Request<S>>) {
        let (tx, rx) = mpsc::channel(queue_max);
        (Client { tx }, rx)
    }

    fn send(&self, request: Request<S>) -> Result<(), ClientError> {
        let mut tx = self.tx.clone();
        tx.try_send(request).map_err(|e| {
            if e.is_full() {
                ClientError::Busy
            } else {
                ClientError::Stopped
            }
        })
    }

    /// Proposes a command and waits until it is applied, or fails.
    pub async fn propose(&self, data: Vec<u8>) -> Result<Applied<S::Output>, ClientError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Propose { data, reply })?;
        answer.await.unwrap_or(Err(ClientError::Stopped))
    }

    /// Waits until `watch` fires on the node's applied state.
    pub async fn watch(&self, watch: S::Watch) -> Result<ReadAnswer<S::Answer>, ClientError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Watch {
            watch,
            reply,
            armed: None,
        })?;
        answer.await.unwrap_or(Err(ClientError::Stopped))
    }

    /// Starts a watch and returns at once: the first receiver gets the machine's position (with
    /// the node's applied index and term) when the watch is accepted (it is dropped unsent if the watch fails at once), the second the
    /// watch's answer.
    #[allow(clippy::type_complexity)]
    pub fn watch_armed(
        &self,
        watch: S::Watch,
    ) -> Result<
        (
            oneshot::Receiver<ReadAnswer<u64>>,
            oneshot::Receiver<Result<ReadAnswer<S::Answer>, ClientError>>,
        ),
        ClientError,
    > {
        let (reply, answer) = oneshot::channel();
        let (armed_tx, armed) = oneshot::channel();
        self.send(Request::Watch {
            watch,
            reply,
            armed: Some(armed_tx),
        })?;
        Ok((armed, answer))
    }

    /// Waits until this node has applied `index`.
    pub async fn wait_applied(&self, index: Index) -> Result<(), ClientError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::WaitApplied { index, reply })?;
        answer.await.map_err(|_| ClientError::Stopped)
    }

    /// The node's Raft status.
    pub async fn status(&self) -> Result<Status, ClientError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Status { reply })?;
        answer.await.map_err(|_| ClientError::Stopped)
    }

    /// Starts handing this node's leadership to `target` (its most up-to-date follower if
    /// `None`); returns the target. The outer error: the node did not answer.
    pub async fn transfer_leader(
        &self,
        target: Option<NodeId>,
    ) -> Result<Result<NodeId, TransferError>, ClientError> {
        let answer = self.ask_transfer(target)?;
        answer.await.map_err(|_| ClientError::Stopped)
    }

    /// [`Client::transfer_leader`] without waiting: the request is queued now, the answer
    /// comes on the receiver (which may be dropped).
    pub fn ask_transfer(
        &self,
        target: Option<NodeId>,
    ) -> Result<oneshot::Receiver<Result<NodeId, TransferError>>, ClientError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::TransferLeader { target, reply })?;
        Ok(answer)
    }

    /// [`Request::ConfChange`] without waiting: the request is queued now, the answer comes
    /// on the receiver (which may be dropped).
    pub fn ask_conf_change(
        &self,
        change: ConfChange,
    ) -> Result<oneshot::Receiver<Result<Index, ConfChangeError>>, ClientError> {
        self.ask_member_change(Some(change), Vec::new())
    }

    /// [`Request::ConfChange`] with members' addresses (the members API): answered once the
    /// change is appended.
    pub fn ask_member_change(
        &self,
        change: Option<ConfChange>,
        addresses: Vec<MemberAddr>,
    ) -> Result<oneshot::Receiver<Result<Index, ConfChangeError>>, ClientError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::ConfChange {
            change,
            addresses,
            reply,
        })?;
        Ok(answer)
    }

    /// What this node, as leader, measured of its followers (etcd's `/v2/stats/leader`).
    pub async fn leader_stats(&self) -> Result<Vec<crate::server::FollowerStats>, ClientError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::LeaderStats { reply })?;
        answer.await.map_err(|_| ClientError::Stopped)
    }

    /// Reads from the state machine, linearizably or locally.
    pub async fn read(
        &self,
        query: S::Query,
        linearizable: bool,
    ) -> Result<ReadAnswer<S::Answer>, ClientError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Read {
            query,
            linearizable,
            reply,
        })?;
        answer.await.unwrap_or(Err(ClientError::Stopped))
    }
}
