//! Every member serves writes, quorum reads and lock calls. A follower hands a command to its
//! leader over the peer connection (the node loop's forwarding: `RawNode::propose_or_forward`)
//! and answers once it applied the command itself, so a client reads its own write from the
//! member it wrote to (read-your-writes, as etcd gives); a quorum read at a follower asks the
//! leader for a read index (Raft thesis §6.4). What is left here is the wait while the cluster
//! has no leader: writes issued during an election wait for one rather than fail (etcd answers
//! them the same way), until the request timeout.

use std::sync::Arc;

use super::App;
use super::response::{self, Response};
use crate::store::{ErrorCode, StoreError};

/// What one attempt on the local node gave.
pub enum Attempt {
    /// An answer for the client.
    Done(Response),
    /// The node knows no leader yet, or is too busy: nothing happened, try again.
    NoLeader,
}

/// The answer etcd gives when no leader answers in time (etcd's `etcdserver: request timed
/// out`, error code 300).
pub fn timed_out(cluster_id: &str) -> Response {
    let error = StoreError::param(ErrorCode::RaftInternal, "etcdserver: request timed out");
    response::store_error(&error, cluster_id)
}

/// How long to wait before trying again while there is no leader.
const RETRY_MS: u64 = 50;

impl<C: super::HttpClock> App<C> {
    /// Runs `attempt` until it gives an answer, or answers "request timed out" once the
    /// request timeout passed without a leader.
    pub(super) async fn on_leader<F, Fut>(self: &Arc<Self>, mut attempt: F) -> Response
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Attempt>,
    {
        let deadline = self.clock.now_ms() + self.config.request_timeout_ms;
        loop {
            match attempt().await {
                Attempt::Done(response) => return response,
                Attempt::NoLeader => {}
            }
            let now = self.clock.now_ms();
            if now >= deadline {
                return timed_out(&self.config.cluster_id);
            }
            self.clock.sleep_until(now + RETRY_MS).await;
        }
    }
}
