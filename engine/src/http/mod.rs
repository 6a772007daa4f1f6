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
//! - `serve` (feature `net`): the hyper adapter, the only part that knows sockets.
//!
//! The service itself is transport-free: [`App::handle`] takes a [`Request`] (method, path and
//! query, headers, the form body already read) and gives a [`Response`] whose [`Body`] is whole
//! bytes or a stream of chunks (watches). It reads time from the node's [`Clock`] and spawns
//! through a [`Spawn`] function, so `floe` serves it over hyper and tokio and the simulator
//! calls it across its simulated network on its per-node clock.
//!
//! Depends on `server` (the typed client, the `Clock`) and `store` (commands, rendering).

mod cluster;
mod form;
mod forward;
mod keys;
mod legacy;
pub mod members;
mod metrics;
mod response;
#[cfg(feature = "net")]
mod serve;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ::http::request::Parts;
use ::http::{Method, Response as HttpResponse};
use bytes::Bytes;

use crate::raft::NodeId;
use crate::server::{Clock, KvClient};

pub use form::{clean, mux_clean, parse_query, query_escape, unescape};
#[cfg(feature = "net")]
pub use serve::{serve, spawn_on_tokio};

/// A request as the service sees it: the head (method, path and query, headers) and the form
/// body, already read by the transport (only when [`takes_form_body`] says the head asks for
/// it; anything else is `Ok` of no bytes). `Err` is the text of the 210 cause the read ended
/// with (`http: POST too large`, a timeout).
pub type Request = ::http::Request<Result<Bytes, String>>;

/// A response of the service.
pub type Response = HttpResponse<Body>;

/// A response body: whole (sent with `Content-Length`), or a stream of chunks (sent chunked;
/// a watch's events). Dropping a stream is the client hanging up.
pub enum Body {
    /// The whole body.
    Full(Bytes),
    /// Chunks, as they come; the body ends when the stream does.
    Stream(Pin<Box<dyn futures::Stream<Item = Bytes> + Send>>),
}

impl Body {
    /// The length of a whole body; `None` for a stream.
    pub fn len(&self) -> Option<usize> {
        match self {
            Body::Full(bytes) => Some(bytes.len()),
            Body::Stream(_) => None,
        }
    }

    /// True for an empty whole body.
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Full(bytes) => f.debug_tuple("Full").field(bytes).finish(),
            Body::Stream(_) => f.write_str("Stream"),
        }
    }
}

/// How the service runs a task of its own (a lock contender giving its place up after its
/// client went away): `tokio::spawn` in `floe`, the simulator's executor in the simulator.
pub type Spawn = fn(futures::future::BoxFuture<'static, ()>);

/// What the service needs of a clock: the node's [`Clock`], shared by every request.
pub trait HttpClock: Clock + Clone + Send + Sync + 'static {}

impl<C: Clock + Clone + Send + Sync + 'static> HttpClock for C {}

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
    /// Members seen removed (etcd answers 410 for their ids); none by default.
    fn removed(&self) -> Vec<MemberInfo> {
        Vec::new()
    }
    /// The Raft id a member added with `peer_urls` gets (`POST /v2/members`): by default
    /// [`members::added_member_id`], the id the new member derives from its own flags.
    fn added_member_id(&self, token: &str, peer_urls: &[String]) -> NodeId {
        members::added_member_id(token, peer_urls)
    }
}

/// Settings of the HTTP layer.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// This member's Raft id.
    pub id: NodeId,
    /// `X-Etcd-Cluster-Id`: lowercase hex.
    pub cluster_id: String,
    /// `--initial-cluster-token`: members added through the members API get ids derived from
    /// it and their peer URLs ([`members::added_member_id`]).
    pub cluster_token: String,
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

/// The HTTP layer's planted bugs (`sim --bug NAME`; only with the `planted-bugs` feature).
#[cfg(feature = "planted-bugs")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HttpBugs {
    /// The keys API's form reading drops `prevExist=false`: a create becomes a set, and
    /// succeeds over an existing key.
    pub prevexist_ignored: bool,
    /// The members API answers an add (`201`) as soon as the leader appended the change,
    /// before it commits: a crash or a new leader can lose an acknowledged member.
    pub member_add_answers_early: bool,
}

/// Everything a request handler needs; shared by every connection.
pub struct App<C> {
    client: KvClient,
    clock: C,
    spawn: Spawn,
    #[cfg(feature = "planted-bugs")]
    bugs: HttpBugs,
    config: HttpConfig,
    /// `config.cluster_id` as a header value, made once (None if it is not a valid one, as
    /// each response then leaves the header out).
    cluster_id_header: Option<::http::HeaderValue>,
    membership: Box<dyn Membership>,
    /// Process start, ms since the Unix epoch (`/v2/stats/self` `startTime`).
    start_unix_ms: u64,
    stats: StoreStats,
}

impl<C: HttpClock> App<C> {
    /// An HTTP front for the node behind `client`, reading time from `clock` and running its
    /// own tasks with `spawn`.
    pub fn new(
        client: KvClient,
        clock: C,
        spawn: Spawn,
        config: HttpConfig,
        membership: Box<dyn Membership>,
    ) -> Arc<App<C>> {
        let start_unix_ms = clock.unix_ms();
        let cluster_id_header = ::http::HeaderValue::from_str(&config.cluster_id).ok();
        Arc::new(App {
            client,
            clock,
            spawn,
            #[cfg(feature = "planted-bugs")]
            bugs: HttpBugs::default(),
            config,
            cluster_id_header,
            membership,
            start_unix_ms,
            stats: StoreStats::default(),
        })
    }

    /// As [`App::new`], with planted bugs switched on (the simulator's `--bug`).
    #[cfg(feature = "planted-bugs")]
    pub fn with_bugs(
        client: KvClient,
        clock: C,
        spawn: Spawn,
        (config, bugs): (HttpConfig, HttpBugs),
        membership: Box<dyn Membership>,
    ) -> Arc<App<C>> {
        let mut app = App::new(client, clock, spawn, config, membership);
        if let Some(app) = Arc::get_mut(&mut app) {
            app.bugs = bugs;
        }
        app
    }

    /// Answers one request.
    pub async fn handle(self: Arc<Self>, request: Request) -> Response {
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
            ::http::header::HeaderValue::from_static("*"),
        );
        headers.insert(
            "Access-Control-Allow-Methods",
            ::http::header::HeaderValue::from_static("POST, GET, OPTIONS, PUT, DELETE"),
        );
        headers.insert(
            "Access-Control-Allow-Headers",
            ::http::header::HeaderValue::from_static("accept, content-type, authorization"),
        );
        response
    }

    async fn route(self: Arc<Self>, request: Request) -> Response {
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
            "/v2/members" | "/v2/members/" if matches!(head.method, Method::GET | Method::HEAD) => {
                self.members()
            }
            "/v2/members/leader" => self.members_leader().await,
            p if p == "/v2/members" || p.starts_with("/v2/members/") => {
                let rest = p["/v2/members".len()..].trim_start_matches('/').to_string();
                let content_type = head
                    .headers
                    .get(::http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let body = if takes_form_body(&head) {
                    body
                } else {
                    Ok(Bytes::new())
                };
                self.member_change(&head.method, content_type, body, &rest)
                    .await
            }
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

/// Whether Go's `ParseForm` reads the body of a request with this head: only for PUT, POST
/// and PATCH with a form content type (store/README.md §2.3). Other bodies are ignored, as etcd
/// ignores them; a transport reads a body only when this is true, at most [`FORM_BYTES_MAX`]
/// bytes (more: the 210 cause `http: POST too large`).
pub fn takes_form_body(head: &Parts) -> bool {
    let takes_body =
        matches!(head.method, Method::PUT | Method::POST) || head.method.as_str() == "PATCH";
    // The members API reads a JSON body (etcd's `application/json` only).
    let members_json =
        head.uri.path().starts_with("/v2/members") && content_type_is(head, "application/json");
    takes_body && (members_json || content_type_is(head, "application/x-www-form-urlencoded"))
}

/// True if the request's Content-Type is `media` (parameters after `;` aside, any case).
fn content_type_is(head: &Parts, media: &str) -> bool {
    head.headers
        .get(::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case(media)
        })
}

/// The form body the service reads: the transport's bytes when the head asks for a form
/// ([`takes_form_body`]), else none (a body sent anyway is ignored, as by `ParseForm`).
fn form_body(head: &Parts, body: Result<Bytes, String>) -> Result<Bytes, String> {
    if takes_form_body(head) {
        body
    } else {
        Ok(Bytes::new())
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
fn redirect(cleaned: &str, raw_query: &str, method: &Method) -> Response {
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

/// Largest request head (the sum of header names and values; hyper's read buffer in `floe`):
/// larger is answered 431.
pub const HEADER_BYTES_MAX: usize = 64 * 1024;
