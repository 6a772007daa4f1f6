//! `/v2/keys`: reads, writes, and long-poll or stream watches (store/README.md §3-§9; `G<n>`
//! numbers are its transcripts, §Transcripts).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use ::http::Method;
use ::http::request::Parts;
use bytes::Bytes;

use super::forward::Attempt;
use super::response::{self, JSON, Response};
use super::{App, Body, HttpClock, form_body, form_params};
use crate::server::{ClientError, KvError, KvGet, KvWatch};
use crate::store::command::{bool_param, index_param, param, ttl_param};
use crate::store::{
    Command, ErrorCode, Event, StoreError, WriteMethod, command_from_params, render_with,
    success_status,
};

/// What a GET asks for, once its parameters are valid.
struct ReadParams {
    recursive: bool,
    sorted: bool,
    wait: bool,
    wait_index: u64,
    quorum: bool,
    stream: bool,
}

/// etcd's parameter checks for a GET, in its order (store/README.md §4.2: prevIndex, waitIndex,
/// bools, empty prevValue, noValueOnSuccess, ttl, prevExist, refresh).
fn read_params(params: &[(String, String)], now_ms: u64) -> Result<ReadParams, StoreError> {
    index_param(params, "prevIndex")?;
    let wait_index = index_param(params, "waitIndex")?.unwrap_or(0);
    let recursive = bool_param(params, "recursive", true)?.unwrap_or(false);
    let sorted = bool_param(params, "sorted", true)?.unwrap_or(false);
    let wait = bool_param(params, "wait", true)?.unwrap_or(false);
    bool_param(params, "dir", true)?;
    let quorum = bool_param(params, "quorum", true)?.unwrap_or(false);
    let stream = bool_param(params, "stream", true)?.unwrap_or(false);
    if param(params, "prevValue") == Some("") {
        let cause = "\"prevValue\" cannot be empty";
        return Err(StoreError::param(ErrorCode::PrevValueRequired, cause));
    }
    bool_param(params, "noValueOnSuccess", true)?;
    ttl_param(params, now_ms)?;
    bool_param(params, "prevExist", false)?;
    bool_param(params, "refresh", false)?;
    Ok(ReadParams {
        recursive,
        sorted,
        wait,
        wait_index,
        quorum,
        stream,
    })
}

/// The `/v2/stats/store` counters of a write command: (on success, on failure). An expiry
/// has no such pair (`expireCount` counts the store's own expiries), so it names none.
fn stat_names(command: &Command) -> (&'static str, &'static str) {
    match command {
        Command::Set { .. } => ("setsSuccess", "setsFail"),
        Command::Create { .. } | Command::CreateInOrder { .. } => ("createSuccess", "createFail"),
        Command::Update { .. } => ("updateSuccess", "updateFail"),
        Command::CompareAndSwap { .. } => ("compareAndSwapSuccess", "compareAndSwapFail"),
        Command::Delete { .. } => ("deleteSuccess", "deleteFail"),
        Command::CompareAndDelete { .. } => ("compareAndDeleteSuccess", "compareAndDeleteFail"),
        Command::Expire { .. } => ("", ""),
    }
}

/// A 500/300 for failures below the store (store/README.md §6.2: index 0).
pub(super) fn internal(error: &ClientError, cluster_id: &str) -> Response {
    let cause = match error {
        ClientError::Overwritten
        | ClientError::Stopped
        | ClientError::Compacted
        | ClientError::TimedOut => "etcdserver: request timed out",
        ClientError::TooManyWatchers => "too many watchers",
        ClientError::Busy => "etcdserver: too many requests",
        _ => "etcdserver: server stopped",
    };
    response::store_error(
        &StoreError::param(ErrorCode::RaftInternal, cause),
        cluster_id,
    )
}

impl<C: super::HttpClock> App<C> {
    /// Renders an event with the configured expiration style.
    pub(super) fn event_body(&self, event: &Event, no_value: bool) -> String {
        render_with(
            event,
            self.clock.unix_ms(),
            no_value,
            self.config.expiration,
        )
    }

    /// A keys-API success: JSON, `X-Etcd-Index`, `X-Raft-Index`, `X-Raft-Term`.
    fn event_response(
        &self,
        status: u16,
        event: &Event,
        raft: (u64, u64),
        no_value: bool,
    ) -> Response {
        let mut response = response::with_body(status, JSON, self.event_body(event, no_value));
        self.stamp(&mut response, event.index, raft);
        response
    }

    /// The keys-API headers: cluster id, `X-Etcd-Index`, `X-Raft-Index`, `X-Raft-Term`.
    pub(super) fn stamp(&self, response: &mut Response, etcd_index: u64, raft: (u64, u64)) {
        if let Some(id) = &self.cluster_id_header {
            response
                .headers_mut()
                .insert(response::X_ETCD_CLUSTER_ID, id.clone());
        }
        response::set_number(response, response::X_ETCD_INDEX, etcd_index);
        response::set_number(response, response::X_RAFT_INDEX, raft.0);
        response::set_number(response, response::X_RAFT_TERM, raft.1);
    }

    pub(super) fn error_response(&self, error: &StoreError) -> Response {
        response::store_error_with(error, self.cluster_id_header.clone())
    }

    pub(super) async fn keys(
        self: Arc<Self>,
        head: Parts,
        body: Result<Bytes, String>,
        key: String,
        raw_query: String,
    ) -> Response {
        let method = head.method.clone();
        if !matches!(
            method,
            Method::GET | Method::HEAD | Method::PUT | Method::POST | Method::DELETE
        ) {
            return response::method_not_allowed("HEAD,GET,PUT,POST,DELETE");
        }
        let form = match form_body(&head, body) {
            Ok(bytes) => form_params(&bytes, &raw_query),
            Err(cause) => Err(cause),
        };
        let params = match form {
            Ok(params) => params,
            Err(cause) => {
                let error = StoreError::param(ErrorCode::InvalidForm, cause);
                return self.error_response(&error);
            }
        };
        let key = if key.is_empty() { "/".to_string() } else { key };
        let write = match method {
            Method::PUT => WriteMethod::Put,
            Method::POST => WriteMethod::Post,
            Method::DELETE => WriteMethod::Delete,
            _ => return self.read(&head, key, &params).await,
        };
        self.write(write, &key, &params).await
    }

    async fn write(
        self: &Arc<Self>,
        method: WriteMethod,
        key: &str,
        params: &[(String, String)],
    ) -> Response {
        let planted: Vec<(String, String)>;
        let params = if planted!(self.bugs.prevexist_ignored) {
            planted = params
                .iter()
                .filter(|(name, value)| !(name == "prevExist" && value == "false"))
                .cloned()
                .collect();
            &planted[..]
        } else {
            params
        };
        let command = match command_from_params(method, key, params, self.clock.unix_ms()) {
            Ok(command) => command,
            Err(error) => return self.error_response(&error),
        };
        let no_value = bool_param(params, "noValueOnSuccess", true)
            .ok()
            .flatten()
            .unwrap_or(false);
        let (stat_success, stat_fail) = stat_names(&command);
        let app = self.clone();
        self.on_leader(|| {
            let app = app.clone();
            let command = command.clone();
            async move {
                match app.client.write(&command).await {
                    Ok(written) => {
                        app.stats.bump(stat_success);
                        let raft = (written.raft.index.0, written.raft.term.0);
                        let status = success_status(&written.event);
                        Attempt::Done(app.event_response(status, &written.event, raft, no_value))
                    }
                    Err(KvError::Store(error)) => {
                        app.stats.bump(stat_fail);
                        Attempt::Done(app.error_response(&error))
                    }
                    Err(KvError::Cluster(ClientError::NotLeader { .. })) => Attempt::NoLeader,
                    // Over the leader's uncommitted budget or a full queue: refused at once,
                    // not queued without bound.
                    Err(KvError::Cluster(e)) => Attempt::Done(internal(&e, &app.config.cluster_id)),
                }
            }
        })
        .await
    }

    async fn read(
        self: &Arc<Self>,
        head: &Parts,
        key: String,
        params: &[(String, String)],
    ) -> Response {
        let read = match read_params(params, self.clock.unix_ms()) {
            Ok(read) => read,
            Err(error) => return self.error_response(&error),
        };
        let is_head = head.method == Method::HEAD;
        if read.wait {
            let watch = KvWatch {
                key: crate::store::key::normalize(&key),
                recursive: read.recursive,
                wait_index: read.wait_index,
            };
            return self.watch(watch, read.stream, is_head).await;
        }
        let get = KvGet {
            key,
            recursive: read.recursive,
            sorted: read.sorted,
        };
        let mut response = if read.quorum {
            let app = self.clone();
            self.on_leader(|| {
                let app = app.clone();
                let get = get.clone();
                async move {
                    match app.client.get(get, true).await {
                        Err(KvError::Cluster(
                            ClientError::NotLeader { .. } | ClientError::Busy,
                        )) => Attempt::NoLeader,
                        other => Attempt::Done(app.read_response(other)),
                    }
                }
            })
            .await
        } else {
            let answer = self.client.get(get, false).await;
            self.read_response(answer)
        };
        if is_head {
            // store/README.md §2.5: HEAD is GET without the body, Content-Length included (G6).
            let length = response.body().len().unwrap_or(0);
            *response.body_mut() = response::full(Bytes::new());
            response::set(&mut response, "Content-Length", &length.to_string());
        }
        response
    }

    fn read_response(&self, answer: Result<crate::server::KvRead, KvError>) -> Response {
        match answer {
            Ok(read) => {
                self.stats.bump("getsSuccess");
                let raft = (read.raft_index, read.raft_term);
                self.event_response(200, &read.event, raft, false)
            }
            Err(KvError::Store(error)) => {
                self.stats.bump("getsFail");
                self.error_response(&error)
            }
            Err(KvError::Cluster(e)) => internal(&e, &self.config.cluster_id),
        }
    }

    /// A watch (store/README.md §8): 401 and parameter errors come instead of the 200; otherwise
    /// the headers go out at once with `X-Etcd-Index` = the store index at the watch's start, and
    /// the event follows (chunked). With `stream`, every matching event follows, one per line,
    /// until the client leaves. Watches never time out.
    async fn watch(self: &Arc<Self>, watch: KvWatch, stream: bool, is_head: bool) -> Response {
        let (armed, answer) = match self.client.watch_armed(watch.clone()) {
            Ok(pair) => pair,
            Err(e) => return internal(&e, &self.config.cluster_id),
        };
        let mut answer = answer;
        let Ok(start) = armed.await else {
            // Not armed: the watch failed at once (too many watchers, node stopped).
            return match answer.await {
                Ok(Err(e)) => internal(&e, &self.config.cluster_id),
                _ => internal(&ClientError::Stopped, &self.config.cluster_id),
            };
        };
        // An immediate answer is sent before `armed`: a 401 is an error response.
        let first = match answer.try_recv() {
            Ok(Some(Ok(read))) => match read.answer {
                Err(error) => return self.error_response(&error),
                Ok(event) => Some((event, read.applied.0, read.term.0)),
            },
            Ok(Some(Err(e))) => return internal(&e, &self.config.cluster_id),
            Ok(None) => None,
            Err(_) => return internal(&ClientError::Stopped, &self.config.cluster_id),
        };
        self.stats.watchers.fetch_add(1, Ordering::Relaxed);
        let next = first.map(|(event, _, _)| event);
        let pending = if next.is_none() { Some(answer) } else { None };
        let feed = WatchFeed {
            app: self.clone(),
            watch,
            stream,
            next,
            pending,
        };
        let body = if is_head {
            // The feed is dropped here: the watch ends with the (empty) response.
            drop(feed);
            response::full(Bytes::new())
        } else {
            Body::Stream(Box::pin(futures::stream::unfold(
                feed,
                WatchFeed::next_chunk,
            )))
        };
        let mut response = Response::new(body);
        response::set(&mut response, "Content-Type", JSON);
        self.stamp(&mut response, start.answer, (start.applied.0, start.term.0));
        response
    }
}

/// What a watch's streamed body still has to send: the event in hand, or the answer awaited.
/// Dropping it (the client left, the transport dropped the body) drops the watch.
struct WatchFeed<C: HttpClock> {
    app: Arc<App<C>>,
    watch: KvWatch,
    stream: bool,
    next: Option<Event>,
    pending: Option<WatchAnswer>,
}

type WatchAnswer = futures::channel::oneshot::Receiver<
    Result<crate::server::ReadAnswer<Result<Event, StoreError>>, ClientError>,
>;

impl<C: HttpClock> WatchFeed<C> {
    /// The next chunk of the body (one event, as a line of JSON) and the feed after it; `None`
    /// ends the body: the event of a long poll was sent, or the watch ended (the history moved
    /// past the index while waiting, which etcd ends a cleared watcher with: nothing; the node
    /// stopped).
    async fn next_chunk(mut self) -> Option<(Bytes, WatchFeed<C>)> {
        let event = match self.next.take() {
            Some(event) => event,
            None => {
                let waiting = self.pending.take()?;
                match waiting.await {
                    Ok(Ok(read)) => read.answer.ok()?,
                    _ => return None,
                }
            }
        };
        let body = Bytes::from(self.app.event_body(&event, false));
        if self.stream {
            self.watch.wait_index = event.index + 1;
            // Armed before the chunk goes out, so no event in between is missed; a failure to
            // arm ends the body after this event.
            self.pending = self
                .app
                .client
                .watch_armed(self.watch.clone())
                .ok()
                .map(|(_, answer)| answer);
        }
        Some((body, self))
    }
}

impl<C: HttpClock> Drop for WatchFeed<C> {
    fn drop(&mut self) {
        self.app.stats.watchers.fetch_sub(1, Ordering::Relaxed);
    }
}
