//! Followers hand writes, quorum reads and lock calls to the leader, as etcd 2.x+ does
//! (etcd-v2.md §6 item 5: no 307s). The request goes to the leader's advertised client URL with
//! an `X-Floe-Forwarded` hop count; the leader's answer is relayed unchanged.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::http::request::Parts;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::response::{self, Body};
use super::{App, MemberInfo};
use crate::raft::NodeId;
use crate::server::Clock;
use crate::store::{ErrorCode, StoreError};

/// The header that counts how often a request was forwarded.
pub const HOPS_HEADER: &str = "X-Floe-Forwarded";
/// Most forwards of one request (a leader that lost office forwards once more).
const HOPS_MAX: u32 = 3;

/// A pooled HTTP/1.1 client to the other members.
pub struct Forwarder {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Forwarder {
    pub fn new() -> Forwarder {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Forwarder {
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// Sends the request to `base_url` and relays the answer whole. `Err(Unsent)` means the
    /// leader never got it (no connection): safe to retry. `Err(Ambiguous)` means it may have
    /// been applied: retrying could apply a write twice.
    async fn send(
        &self,
        base_url: &str,
        head: &Parts,
        body: &Bytes,
        hops: u32,
    ) -> Result<Response<Body>, ForwardError> {
        let path = head.uri.path_and_query().map_or("/", |p| p.as_str());
        let uri = format!("{}{}", base_url.trim_end_matches('/'), path);
        let mut request = Request::builder()
            .method(head.method.clone())
            .uri(&uri)
            .header(HOPS_HEADER, hops.to_string());
        if let Some(content_type) = head.headers.get(hyper::header::CONTENT_TYPE) {
            request = request.header(hyper::header::CONTENT_TYPE, content_type);
        }
        let request = request
            .body(Full::new(body.clone()))
            .map_err(|e| ForwardError::Unsent(e.to_string()))?;
        let answer = self.client.request(request).await.map_err(|e| {
            if e.is_connect() {
                ForwardError::Unsent(e.to_string())
            } else {
                ForwardError::Ambiguous(e.to_string())
            }
        })?;
        let (parts, incoming) = answer.into_parts();
        let bytes = incoming
            .collect()
            .await
            .map_err(|e| ForwardError::Ambiguous(e.to_string()))?
            .to_bytes();
        let mut relayed = Response::new(response::full(bytes));
        *relayed.status_mut() = parts.status;
        for (name, value) in &parts.headers {
            let skip = matches!(
                name.as_str(),
                "content-length" | "transfer-encoding" | "connection" | "date" | "keep-alive"
            ) || name.as_str().starts_with("access-control-");
            if !skip {
                relayed.headers_mut().append(name.clone(), value.clone());
            }
        }
        Ok(relayed)
    }
}

/// Why a forward failed.
#[derive(Debug)]
enum ForwardError {
    /// The leader never received the request.
    Unsent(String),
    /// The request may have reached the leader (the connection broke after sending).
    Ambiguous(String),
}

/// What one attempt on the local node gave.
pub enum Attempt {
    /// An answer for the client.
    Done(Response<Body>),
    /// This node does not lead (the leader it knows, if any); nothing happened.
    NotLeader(Option<NodeId>),
}

/// The answer etcd gives when no leader answers in time (etcd-v2.md §2.7).
pub fn timed_out(cluster_id: &str) -> Response<Body> {
    let error = StoreError::param(ErrorCode::RaftInternal, "etcdserver: request timed out");
    response::store_error(&error, cluster_id)
}

impl App {
    /// Runs `attempt` here while this node leads; otherwise forwards the request to the leader,
    /// or waits for one (writes issued before an election must wait, not fail: etcd-v2.md
    /// §5.1) until the request timeout.
    pub(super) async fn on_leader<F, Fut>(
        self: &Arc<Self>,
        head: &Parts,
        body: &Bytes,
        mut attempt: F,
    ) -> Response<Body>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Attempt>,
    {
        let hops: u32 = head
            .headers
            .get(HOPS_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let deadline = self.clock.now_ms() + self.config.request_timeout_ms;
        loop {
            let hint = match attempt().await {
                Attempt::Done(response) => return response,
                Attempt::NotLeader(hint) => hint,
            };
            if self.clock.now_ms() >= deadline {
                return timed_out(&self.config.cluster_id);
            }
            let target = hint
                .filter(|&leader| leader != self.config.id && hops < HOPS_MAX)
                .and_then(|leader| self.client_url_of(leader));
            if let Some(url) = target {
                match self.forwarder.send(&url, head, body, hops + 1).await {
                    Ok(response) => {
                        // Read-your-writes on this member, as etcd gives it (its followers
                        // answer a write once they applied it): wait until this node applied
                        // the leader's answer before relaying it.
                        let raft_index = response
                            .headers()
                            .get("X-Raft-Index")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse().ok());
                        if let Some(index) = raft_index {
                            let wait = self.client.wait_applied(crate::raft::Index(index));
                            let _ = tokio::time::timeout(
                                std::time::Duration::from_millis(self.config.request_timeout_ms),
                                wait,
                            )
                            .await;
                        }
                        return response;
                    }
                    Err(ForwardError::Unsent(e)) => {
                        tracing::debug!(error = %e, url, "forward to the leader failed");
                    }
                    Err(ForwardError::Ambiguous(e)) => {
                        // It may have been applied: never send it twice (etcd answers a lost
                        // proposal the same way).
                        tracing::debug!(error = %e, url, "forward to the leader broke off");
                        return timed_out(&self.config.cluster_id);
                    }
                }
            }
            let now = self.clock.now_ms();
            self.clock.sleep_until(now + 50).await;
        }
    }

    /// The first advertised client URL of member `id`, if known.
    pub(super) fn client_url_of(&self, id: NodeId) -> Option<String> {
        self.membership
            .members()
            .into_iter()
            .find(|m: &MemberInfo| m.id == id)
            .and_then(|m| m.client_urls.into_iter().next())
    }
}
