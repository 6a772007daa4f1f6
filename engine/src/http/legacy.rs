//! The 0.x layer (store/README.md §11, §12.2): the machine registry `/v2/keys/_etcd/machines`, and
//! the lock and leader modules `/mod/v2/lock/<name>`, `/mod/v2/leader/<name>`, built on the
//! store by `server::lock`. Lock calls run on the leader (a follower forwards them).

use std::sync::Arc;

use ::http::Method;
use ::http::request::Parts;

use super::forward::Attempt;
use super::response::{self, JSON, Response, TEXT};
use super::{App, form_body, form_params};
use crate::server::lock::{self, Contender, LockError};
use crate::server::{ClientError, KvError, KvGet, KvRouter};
use crate::store::command::{param, parse_go_uint};
use crate::store::{Action, ErrorCode, Event, NodeView, StoreError};
use bytes::Bytes;

/// What a lock-module handler decided, before it runs on the leader.
enum LockCall {
    Acquire {
        ttl: u64,
        value: Option<String>,
        timeout: Option<u64>,
    },
    Holder {
        want_index: bool,
    },
    Renew {
        ttl: u64,
        who: Contender,
    },
    Release {
        who: Contender,
    },
}

fn param_error(code: ErrorCode, cause: &str) -> StoreError {
    StoreError::param(code, cause)
}

/// A positive integer parameter, `None` if absent; garbage is `code` with `cause`.
fn uint(
    params: &[(String, String)],
    name: &str,
    code: ErrorCode,
    cause: &str,
) -> Result<Option<u64>, StoreError> {
    match param(params, name) {
        None => Ok(None),
        Some(text) => parse_go_uint(text)
            .map(Some)
            .ok_or_else(|| param_error(code, cause)),
    }
}

/// Who a renew or release names: `index=I` or `value=V` (207 neither; 208 both on release).
fn contender(params: &[(String, String)], release: bool) -> Result<Contender, StoreError> {
    let index = param(params, "index").filter(|v| !v.is_empty());
    let value = param(params, "value").filter(|v| !v.is_empty());
    match (index, value) {
        (Some(_), Some(_)) if release => Err(param_error(ErrorCode::IndexValueMutex, "Release")),
        (Some(index), _) => parse_go_uint(index)
            .map(Contender::Index)
            .ok_or_else(|| param_error(ErrorCode::IndexNan, "invalid value for \"index\"")),
        (None, Some(value)) => Ok(Contender::Value(value.to_string())),
        (None, None) => Err(param_error(
            ErrorCode::IndexOrValueRequired,
            if release { "Release" } else { "Renew" },
        )),
    }
}

impl<C: super::HttpClock> App<C> {
    /// The synthetic 0.x machine registry: one child per member and client URL, value
    /// `etcd=<client URL>&raft=<peer URL>` (store/README.md §11.1), so dsoprea's client finds the
    /// URL it was given.
    pub(super) async fn legacy_machines(&self, is_head: bool) -> Response {
        let root = KvGet {
            key: "/".into(),
            recursive: false,
            sorted: false,
        };
        let (index, raft) = match self.client.get(root, false).await {
            Ok(read) => (read.event.index, (read.raft_index, read.raft_term)),
            Err(_) => (0, (0, 0)),
        };
        let mut nodes = Vec::new();
        for member in self.membership.members() {
            let peer = member.peer_urls.first().cloned().unwrap_or_default();
            for (i, url) in member.client_urls.iter().enumerate() {
                let name = if i == 0 {
                    member.name.clone()
                } else {
                    format!("{}-{i}", member.name)
                };
                nodes.push(NodeView {
                    key: format!("/_etcd/machines/{name}"),
                    dir: false,
                    value: Some(format!(
                        "etcd={}&raft={}",
                        super::form::query_escape(url),
                        super::form::query_escape(&peer)
                    )),
                    expire_at_ms: None,
                    nodes: Vec::new(),
                    modified_index: 1,
                    created_index: 1,
                });
            }
        }
        let event = Event {
            action: Action::Get,
            node: NodeView {
                key: "/_etcd/machines".into(),
                dir: true,
                value: None,
                expire_at_ms: None,
                nodes,
                modified_index: 1,
                created_index: 1,
            },
            prev_node: None,
            index,
            refresh: false,
        };
        let body = self.event_body(&event, false);
        let mut r = response::with_body(200, JSON, if is_head { String::new() } else { body });
        self.stamp(&mut r, index, raft);
        r
    }

    /// `/mod/v2/lock/<name>`.
    pub(super) async fn lock_module(
        self: Arc<Self>,
        head: Parts,
        body: Result<Bytes, String>,
        name: String,
        raw_query: String,
    ) -> Response {
        let params = match self.module_form(&head, body, &raw_query) {
            Ok(form) => form,
            Err(response) => return *response,
        };
        let ttl = || {
            uint(&params, "ttl", ErrorCode::TtlNan, "Acquire")?
                .ok_or_else(|| param_error(ErrorCode::TtlNan, "Acquire"))
        };
        let call = match head.method {
            Method::POST => ttl().and_then(|ttl| {
                let timeout = uint(&params, "timeout", ErrorCode::TimeoutNan, "Acquire")?;
                let value = param(&params, "value").map(str::to_string);
                Ok(LockCall::Acquire {
                    ttl,
                    value,
                    timeout,
                })
            }),
            Method::GET => match param(&params, "field").unwrap_or("value") {
                "value" | "" => Ok(LockCall::Holder { want_index: false }),
                "index" => Ok(LockCall::Holder { want_index: true }),
                _ => Err(param_error(ErrorCode::InvalidField, "Get")),
            },
            Method::PUT => ttl().and_then(|ttl| {
                Ok(LockCall::Renew {
                    ttl,
                    who: contender(&params, false)?,
                })
            }),
            Method::DELETE => contender(&params, true).map(|who| LockCall::Release { who }),
            _ => return response::method_not_allowed("GET,POST,PUT,DELETE"),
        };
        match call {
            Ok(call) => self.run_lock(&name, call).await,
            Err(error) => self.error_response(&error),
        }
    }

    /// `/mod/v2/leader/<key>`: the lock module with `value = name` (store/README.md §11.4).
    pub(super) async fn leader_module(
        self: Arc<Self>,
        head: Parts,
        body: Result<Bytes, String>,
        key: String,
        raw_query: String,
    ) -> Response {
        let params = match self.module_form(&head, body, &raw_query) {
            Ok(form) => form,
            Err(response) => return *response,
        };
        let name = param(&params, "name").filter(|n| !n.is_empty());
        let call = match head.method {
            Method::PUT => match (name, uint(&params, "ttl", ErrorCode::TtlNan, "Acquire")) {
                (None, _) => Err(param_error(ErrorCode::NameRequired, "Acquire")),
                (_, Err(e)) => Err(e),
                (_, Ok(None)) => Err(param_error(ErrorCode::TtlNan, "Acquire")),
                (Some(name), Ok(Some(ttl))) => {
                    uint(&params, "timeout", ErrorCode::TimeoutNan, "Acquire").map(|timeout| {
                        LockCall::Acquire {
                            ttl,
                            value: Some(name.to_string()),
                            timeout,
                        }
                    })
                }
            },
            Method::GET => Ok(LockCall::Holder { want_index: false }),
            Method::DELETE => match name {
                Some(name) => Ok(LockCall::Release {
                    who: Contender::Value(name.to_string()),
                }),
                None => Err(param_error(ErrorCode::NameRequired, "Release")),
            },
            _ => return response::method_not_allowed("GET,PUT,DELETE"),
        };
        match call {
            Ok(call) => self.run_lock(&key, call).await,
            Err(error) => self.error_response(&error),
        }
    }

    fn module_form(
        &self,
        head: &Parts,
        body: Result<Bytes, String>,
        raw_query: &str,
    ) -> Result<Vec<(String, String)>, Box<Response>> {
        let bytes = form_body(head, body).map_err(|cause| {
            Box::new(self.error_response(&param_error(ErrorCode::InvalidForm, &cause)))
        })?;
        form_params(&bytes, raw_query).map_err(|cause| {
            Box::new(self.error_response(&param_error(ErrorCode::InvalidForm, &cause)))
        })
    }

    /// Runs a lock call on this member (every step is a replicated write or a quorum read, so
    /// any member can serve it).
    async fn run_lock(self: &Arc<Self>, name: &str, call: LockCall) -> Response {
        let call = Arc::new(call);
        let app = self.clone();
        self.on_leader(|| {
            let app = app.clone();
            let call = call.clone();
            let name = name.to_string();
            async move {
                let router = KvRouter::new(vec![app.client.clone()], 0, app.clock.clone());
                let outcome = match &*call {
                    LockCall::Acquire {
                        ttl,
                        value,
                        timeout,
                    } => {
                        // A client that hangs up while waiting gives its place in the queue up
                        // (as etcd 0.x did on CloseNotify) instead of blocking the lock until
                        // its entry's TTL runs out.
                        let mut guard = GiveUpOnDrop {
                            client: app.client.clone(),
                            spawn: app.spawn,
                            key: None,
                        };
                        let result = lock::acquire(
                            &router,
                            &name,
                            (*ttl, *timeout),
                            value.as_deref(),
                            &mut |key| guard.key = Some(key.to_string()),
                        )
                        .await;
                        guard.key = None;
                        result.map(|index| index.to_string())
                    }
                    LockCall::Holder { want_index } => lock::holder(&router, &name, *want_index)
                        .await
                        .map(Option::unwrap_or_default),
                    LockCall::Renew { ttl, who } => lock::renew(&router, &name, *ttl, who)
                        .await
                        .map(|()| String::new()),
                    LockCall::Release { who } => lock::release(&router, &name, who)
                        .await
                        .map(|()| String::new()),
                };
                match outcome {
                    Ok(text) => Attempt::Done(response::with_body(200, TEXT, text)),
                    Err(LockError::Kv(KvError::Cluster(
                        ClientError::NotLeader { .. } | ClientError::Busy,
                    ))) => Attempt::NoLeader,
                    Err(error) => Attempt::Done(app.lock_error(&error)),
                }
            }
        })
        .await
    }

    /// The module's error shapes (store/README.md §11.3): "not queued" is a JSON 404/100 with cause
    /// `Renew`/`Release`; errors from its inner keys-API calls are 500 text
    /// `<code>: <message> (<cause>) [<index>]`; anything else 500 text.
    fn lock_error(&self, error: &LockError) -> Response {
        match error {
            LockError::Kv(KvError::Store(e))
                if e.code == ErrorCode::KeyNotFound
                    && (e.cause == "Renew" || e.cause == "Release") =>
            {
                self.error_response(e)
            }
            LockError::Kv(KvError::Store(e)) => response::plain_error(500, &e.to_string()),
            LockError::Timeout => response::plain_error(500, "failed to acquire lock"),
            LockError::Lost(_) => response::plain_error(500, "lock watch error: lease lost"),
            LockError::NotQueued(cause) => {
                self.error_response(&StoreError::new(ErrorCode::KeyNotFound, cause.clone(), 0))
            }
            LockError::Kv(KvError::Cluster(e)) => super::keys::internal(e, &self.config.cluster_id),
        }
    }
}

/// Deletes a lock contender's queue entry when dropped with `key` set: the request that
/// queued it went away (the client hung up) before the lock was granted or refused.
struct GiveUpOnDrop {
    client: crate::server::KvClient,
    spawn: super::Spawn,
    key: Option<String>,
}

impl Drop for GiveUpOnDrop {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        let client = self.client.clone();
        (self.spawn)(Box::pin(async move {
            let command = crate::store::Command::Delete {
                key,
                dir: false,
                recursive: false,
            };
            let _ = client.write(&command).await;
        }));
    }
}
