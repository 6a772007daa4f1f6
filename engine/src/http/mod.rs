//! The etcd v2 HTTP API over the typed client API (`engine/src/store/README.md` is the
//! specification; `G<n>` numbers are its recorded transcripts, §Transcripts).
//!
//! - `form`: Go's URL, query and path rules.
//! - `response`: responses shaped as etcd's Go server writes them.
//! - `keys`: `/v2/keys` (reads, writes, long-poll and stream watches).
//! - `cluster`: `/version`, `/health`, `/v2/machines`, `/v2/members`, `/v2/stats/*`.
//! - `legacy`: the 0.x layer (`/v2/keys/_etcd/machines`, `/mod/v2/lock`, `/mod/v2/leader`,
//!   text `/v2/leader`), on by default.
//! - `forward`: any member serves writes, quorum reads and lock calls (a follower forwards commands
//!   to the leader over Raft and answers once it applied them; no 307s); the wait for a leader.
//!
//! Depends on `server` (the typed client, the `Clock`) and `store` (commands, rendering).

mod cluster;
mod form;
mod forward;
mod keys;
mod legacy;
mod metrics;
mod response;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::http::request::Parts;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;

use crate::net::SystemClock;
use crate::raft::NodeId;
use crate::server::{Clock, KvClient};
use response::Body;

pub use form::{clean, mux_clean, parse_query, unescape};

/// Largest form body Go's `ParseForm` reads (store/README.md §2.3): larger is error 210.
pub const FORM_BYTES_MAX: usize = 10 << 20;

/// One member as the HTTP layer shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberInfo {
    /// The Raft id.
    pub id: NodeId,
    /// The member id as etcd writes it: lowercase hex without padding.
    pub hex_id: String,
    /// `--name`.
    pub name: String,
    /// Advertised peer URLs.
    pub peer_urls: Vec<String>,
    /// Advertised client URLs (learned from the peer once connected; empty until then).
    pub client_urls: Vec<String>,
}

/// Where the HTTP layer learns the cluster's members (the peer transport's directory).
pub trait Membership: Send + Sync + 'static {
    /// Every member, sorted by id.
    fn members(&self) -> Vec<MemberInfo>;
}

/// Settings of the HTTP layer.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// This member's Raft id.
    pub id: NodeId,
    /// `X-Etcd-Cluster-Id`: lowercase hex.
    pub cluster_id: String,
    /// Serve the 0.x layer (store/README.md §11). On by default.
    pub legacy: bool,
    /// How long a write or quorum read waits for a leader before `500`/300
    /// `etcdserver: request timed out` (etcd: 5 s + 2 × election timeout).
    pub request_timeout_ms: u64,
    /// The node's counters (`/metrics`, `/v2/stats/self`): the same as `NodeConfig::metrics`.
    pub metrics: Arc<crate::server::Metrics>,
    /// `expiration` suffix (`+00:00` by default, store/README.md §5.2).
    pub expiration: crate::store::ExpirationStyle,
}

/// Counters of `/v2/stats/store` as this member saw its requests.
#[derive(Debug, Default)]
struct StoreStats {
    counters: [AtomicU64; 15],
    watchers: AtomicU64,
}

/// The names of `/v2/stats/store`, in etcd's order (G59), but for `watchers`.
const STORE_STAT_NAMES: [&str; 15] = [
    "getsSuccess",
    "getsFail",
    "setsSuccess",
    "setsFail",
    "deleteSuccess",
    "deleteFail",
    "updateSuccess",
    "updateFail",
    "createSuccess",
    "createFail",
    "compareAndSwapSuccess",
    "compareAndSwapFail",
    "compareAndDeleteSuccess",
    "compareAndDeleteFail",
    "expireCount",
];

impl StoreStats {
    fn bump(&self, name: &str) {
        if let Some(i) = STORE_STAT_NAMES.iter().position(|n| *n == name) {
            self.counters[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Everything a request handler needs; shared by every connection.
pub struct App {
    client: KvClient,
    clock: SystemClock,
    config: HttpConfig,
    membership: Box<dyn Membership>,
    /// Process start, ms since the Unix epoch (`/v2/stats/self` `startTime`).
    start_unix_ms: u64,
    stats: StoreStats,
}

impl App {
    /// An HTTP front for the node behind `client`.
    pub fn new(
        client: KvClient,
        clock: SystemClock,
        config: HttpConfig,
        membership: Box<dyn Membership>,
    ) -> Arc<App> {
        let start_unix_ms = clock.unix_ms();
        Arc::new(App {
            client,
            clock,
            config,
            membership,
            start_unix_ms,
            stats: StoreStats::default(),
        })
    }

    /// Answers one request.
    pub async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<Body> {
        // hyper bounds the number of headers; their total size is bounded here.
        let header_bytes: usize = request
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len())
            .sum();
        let span = tracing::debug_span!(
            "http",
            method = %request.method(),
            path = %request.uri().path()
        );
        let mut response = if header_bytes > HEADER_BYTES_MAX {
            response::with_body(
                431,
                "text/plain; charset=utf-8",
                "request headers too large\n",
            )
        } else {
            tracing::Instrument::instrument(self.route(request), span).await
        };
        // etcd 3.4's default CORS headers (store/README.md §2.5) on every response.
        let headers = response.headers_mut();
        headers.insert(
            "Access-Control-Allow-Origin",
            hyper::header::HeaderValue::from_static("*"),
        );
        headers.insert(
            "Access-Control-Allow-Methods",
            hyper::header::HeaderValue::from_static("POST, GET, OPTIONS, PUT, DELETE"),
        );
        headers.insert(
            "Access-Control-Allow-Headers",
            hyper::header::HeaderValue::from_static("accept, content-type, authorization"),
        );
        response
    }

    async fn route(self: Arc<Self>, request: Request<Incoming>) -> Response<Body> {
        let (head, body) = request.into_parts();
        let raw_path = head.uri.path().to_string();
        let raw_query = head.uri.query().unwrap_or("").to_string();
        let path = unescape(&raw_path, false).unwrap_or_else(|_| raw_path.clone());
        let cleaned = mux_clean(&path);
        if cleaned != path {
            return redirect(&cleaned, &raw_query, &head.method);
        }
        if head.method == Method::OPTIONS {
            return response::with_body(200, "", Bytes::new());
        }
        let legacy = self.config.legacy;
        match path.as_str() {
            "/version" => cluster::version(),
            "/health" => self.health().await,
            "/v2/machines" => self.machines(),
            "/v2/members" | "/v2/members/" => self.members(&head.method),
            "/v2/members/leader" => self.members_leader().await,
            "/v2/stats/self" => self.stats_self().await,
            "/metrics" => self.metrics(),
            "/v2/stats/leader" => self.stats_leader().await,
            "/v2/stats/store" => self.stats_store(),
            "/v2/leader" if legacy => self.legacy_leader().await,
            "/v2/keys/_etcd/machines" | "/v2/keys/_etcd/machines/"
                if legacy && matches!(head.method, Method::GET | Method::HEAD) =>
            {
                self.legacy_machines(head.method == Method::HEAD).await
            }
            p if p == "/v2/keys" || p.starts_with("/v2/keys/") => {
                let key = p["/v2/keys".len()..].to_string();
                self.keys(head, body, key, raw_query).await
            }
            p if legacy && p.starts_with("/mod/v2/lock/") => {
                let name = p["/mod/v2/lock/".len()..].to_string();
                self.lock_module(head, body, name, raw_query).await
            }
            p if legacy && p.starts_with("/mod/v2/leader/") => {
                let name = p["/mod/v2/leader/".len()..].to_string();
                self.leader_module(head, body, name, raw_query).await
            }
            _ => response::not_found(),
        }
    }
}

/// The request body as Go's `ParseForm` would read it: only for PUT/POST/PATCH with a form
/// content type, at most 10 MiB (larger: the 210 cause `http: POST too large`). Other bodies
/// are ignored, as etcd ignores them (store/README.md §2.3).
async fn read_form_body(head: &Parts, body: Incoming) -> Result<Bytes, String> {
    let takes_body =
        matches!(head.method, Method::PUT | Method::POST) || head.method.as_str() == "PATCH";
    let is_form = head
        .headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !(takes_body && is_form) {
        return Ok(Bytes::new());
    }
    // A declared length over the limit is not refused before reading: etcd reads up to the
    // limit and then answers 210, and a client that is still sending gets that answer.
    let too_large = "http: POST too large";
    // A client that stops sending its body must not hold the connection forever.
    let read = Limited::new(body, FORM_BYTES_MAX).collect();
    match tokio::time::timeout(std::time::Duration::from_millis(BODY_READ_TIMEOUT_MS), read).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(_)) => Err(too_large.into()),
        Err(_) => Err("http: request body read timed out".into()),
    }
}

/// The form: the body's parameters in front of the query's ("body beats query", first value
/// wins). A parse failure is the text of etcd's 210 cause.
fn form_params(body: &Bytes, raw_query: &str) -> Result<Vec<(String, String)>, String> {
    let mut params = Vec::new();
    let mut first_error = None;
    if !body.is_empty()
        && let Err(e) = parse_query(&String::from_utf8_lossy(body), &mut params)
    {
        first_error = Some(e);
    }
    if let Err(e) = parse_query(raw_query, &mut params) {
        first_error.get_or_insert(e);
    }
    first_error.map_or(Ok(params), Err)
}

/// Go's mux redirect for an unclean path (G51): 301, `Location` = the cleaned path plus the
/// query; an HTML body only for GET and HEAD.
fn redirect(cleaned: &str, raw_query: &str, method: &Method) -> Response<Body> {
    let mut location = form::path_escape(cleaned);
    if !raw_query.is_empty() {
        location.push('?');
        location.push_str(raw_query);
    }
    let mut response = if matches!(*method, Method::GET | Method::HEAD) {
        let body = format!(
            "<a href=\"{}\">Moved Permanently</a>.\n\n",
            html_escape(&location)
        );
        response::with_body(301, "text/html; charset=utf-8", body)
    } else {
        response::with_body(301, "", Bytes::new())
    };
    response::set(&mut response, "Location", &location);
    response
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

/// Serves HTTP/1.1 on `listener` until the process ends: one task per connection. With `tls`
/// (`https://` client URLs) each connection is a TLS handshake first, on its own task and
/// under its connection permit, cut off after [`TLS_HANDSHAKE_TIMEOUT_MS`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    let permits = Arc::new(tokio::sync::Semaphore::new(CONNECTIONS_MAX));
    let mut backoff_ms = 0;
    loop {
        // At most CONNECTIONS_MAX connections: the next waits in the kernel's backlog until
        // one closes, instead of costing a task and buffers here.
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => {
                backoff_ms = 0;
                stream
            }
            Err(e) => {
                // Out of file descriptors or memory: retrying at once would spin. Back off,
                // doubling up to a second, until an accept succeeds again.
                backoff_ms = (backoff_ms * 2).clamp(ACCEPT_BACKOFF_MIN_MS, ACCEPT_BACKOFF_MAX_MS);
                tracing::warn!(error = %e, backoff_ms, "accept failed");
                let now = app.clock.now_ms();
                app.clock.sleep_until(now + backoff_ms).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let tls = tls.clone();
        spawn(async move {
            match tls {
                None => serve_connection(stream, app).await,
                Some(acceptor) => {
                    let handshake = std::time::Duration::from_millis(TLS_HANDSHAKE_TIMEOUT_MS);
                    match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => serve_connection(stream, app).await,
                        Ok(Err(e)) => tracing::debug!(error = %e, "client TLS handshake refused"),
                        Err(_) => tracing::debug!("client TLS handshake timed out"),
                    }
                }
            }
            drop(permit);
        });
    }
}

/// Serves the requests of one connection (plain or TLS) until it closes.
async fn serve_connection<S>(stream: S, app: Arc<App>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| {
        let app = app.clone();
        async move { Ok::<_, Infallible>(app.handle(request).await) }
    });
    // One request at a time per connection (HTTP/1.1), so a connection holds at most one
    // watch; a client that sends its headers too slowly, or too many of them, is cut off
    // (hyper answers 431 to oversized headers).
    let _ = hyper::server::conn::http1::Builder::new()
        .title_case_headers(true)
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(std::time::Duration::from_millis(HEADER_READ_TIMEOUT_MS))
        .max_buf_size(HEADER_BYTES_MAX)
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// How long a client may take to send a form body.
const BODY_READ_TIMEOUT_MS: u64 = 30_000;
/// Most client connections open at once.
const CONNECTIONS_MAX: usize = 4096;
/// How long a client may take to finish its TLS handshake (`https://` client URLs).
const TLS_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT_MS: u64 = 10_000;
/// Largest read buffer of a connection, so the largest request head (hyper's minimum is 8 KiB).
const HEADER_BYTES_MAX: usize = 64 * 1024;
/// The back-off after a failed accept, doubling from the first to the second.
const ACCEPT_BACKOFF_MIN_MS: u64 = 5;
const ACCEPT_BACKOFF_MAX_MS: u64 = 1_000;

/// Runs a future on the tokio runtime (the production world's only executor).
#[allow(
    clippy::disallowed_methods,
    reason = "production HTTP: one task per connection on tokio's runtime"
)]
pub(crate) fn spawn<F>(future: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::spawn(future);
}
