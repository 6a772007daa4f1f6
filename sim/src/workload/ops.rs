//! The operations a simulated client runs, and the checks that need nothing but the answer.

use engine::raft::{Index, NodeId};
use engine::store::Command;
use rand::Rng;
use serde::Serialize;

use super::ClientState;
use super::history::{OpOutcome, OpRecord};
use super::http;
use crate::check::history::{Call, Op, Ret};
use crate::check::watch::CommittedEvent;
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
    /// DELETE `/t?dir=true`: removes the (empty) TTL directory.
    Rmdir,
    /// GET `/d?recursive=true&sorted=true&quorum=true`: a sorted recursive listing, read at
    /// once through ReadIndex.
    List,
    /// A round of the 0.x leader module on `L`: read the machine registry
    /// (`/v2/keys/_etcd/machines`, as 0.x clients find the cluster), campaign under a name of
    /// its own (ttl 2 s, timeout 1 s), read the leader back while leading, resign.
    Leader,
}

impl OpKind {
    /// Every kind.
    pub const ALL: [OpKind; 22] = [
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
        OpKind::List,
        OpKind::Leader,
        OpKind::Rmdir,
    ];

    /// Draws a kind: `reads_percent` reads (half local, half quorum), `watch_percent` watches,
    /// the rest writes of every kind.
    pub fn draw(rng: &mut impl Rng, reads_percent: u32, watch_percent: u32) -> OpKind {
        let roll = rng.gen_range(0..100);
        if roll < reads_percent {
            return [OpKind::Get, OpKind::QuorumGet, OpKind::List][rng.gen_range(0..3)];
        }
        const WRITES: [OpKind; 17] = [
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
            OpKind::Rmdir,
        ];
        if roll < reads_percent + watch_percent {
            return match rng.gen_range(0..4) {
                0 | 1 => OpKind::Watch,
                2 => OpKind::Lock,
                _ => OpKind::Leader,
            };
        }
        WRITES[rng.gen_range(0..WRITES.len())]
    }

    /// True for writes with a TTL (the node stamps their deadline on its own clock).
    pub fn has_ttl(self) -> bool {
        matches!(
            self,
            OpKind::TtlSet | OpKind::Refresh | OpKind::MkdirTtl | OpKind::UpdateDirTtl
        )
    }

    /// True for operations that go through the log.
    pub fn is_write(self) -> bool {
        !matches!(
            self,
            OpKind::Get
                | OpKind::QuorumGet
                | OpKind::List
                | OpKind::Watch
                | OpKind::Lock
                | OpKind::Leader
        )
    }
}

/// The directory `list` lists (the one `delete-recursive` deletes).
pub const LISTED_DIR: &str = "/d";

/// The directory that `mkdir-ttl` creates and `update-dir-ttl` moves the TTL of.
pub const TTL_DIR: &str = "/t";

/// The earliest expiry instant a node can stamp for a TTL of `ttl_s` sent now: the node the
/// request goes to stamps `now + ttl` on its own wall clock when the request arrives, later
/// than now, and its wall clock then reads at least true time now less `error_max_ms`. That
/// earliest stamp is the bound the checkers use.
fn earliest_deadline(cluster: &Cluster, ttl_s: u64) -> u64 {
    let now_unix_ms = SIM_EPOCH_UNIX_MS + cluster.clock.now_ms();
    let earliest = now_unix_ms.saturating_sub(cluster.config.clock.error_max_ms);
    earliest + 1000 * ttl_s
}

/// The command of an operation on the TTL directory (`expire_at_ms`: its TTL's deadline).
fn ttl_dir_command(kind: OpKind, expire_at_ms: u64) -> Command {
    match kind {
        OpKind::MkdirTtl => Command::Create {
            key: TTL_DIR.into(),
            dir: true,
            value: String::new(),
            expire_at_ms: Some(expire_at_ms),
        },
        OpKind::Rmdir => Command::Delete {
            key: TTL_DIR.into(),
            dir: true,
            recursive: false,
        },
        _ => Command::Update {
            key: TTL_DIR.into(),
            value: String::new(),
            expire_at_ms: Some(expire_at_ms),
            refresh: false,
        },
    }
}

fn command(
    cluster: &Cluster,
    state: &ClientState,
    (kind, ttl_s): (OpKind, u64),
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
            expire_at_ms: Some(earliest_deadline(cluster, ttl_s)),
            refresh: false,
        },
        OpKind::Refresh => Command::Update {
            key: key.into(),
            value: String::new(),
            expire_at_ms: Some(earliest_deadline(cluster, ttl_s)),
            refresh: true,
        },
        OpKind::MkdirTtl | OpKind::Rmdir | OpKind::UpdateDirTtl => {
            ttl_dir_command(kind, earliest_deadline(cluster, ttl_s))
        }
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
        OpKind::Get
        | OpKind::QuorumGet
        | OpKind::List
        | OpKind::Watch
        | OpKind::Lock
        | OpKind::Leader => {
            unreachable!("{kind:?} is not a single write")
        }
    }
}

/// The method, path and parameters of the request for `kind` (`command`: its write, if any).
fn params_of(
    kind: OpKind,
    command: Option<&Command>,
    key: &str,
) -> (::http::Method, String, Vec<(&'static str, String)>) {
    use ::http::Method;
    let keys = |key: &str| ["/v2/keys", key].concat();
    let mut params: Vec<(&'static str, String)> = Vec::new();
    let (method, path) = match command {
        None => (Method::GET, keys(key)),
        Some(Command::Set {
            key,
            value,
            expire_at_ms,
            ..
        }) => {
            params.push(("value", value.clone()));
            if expire_at_ms.is_some() {
                params.push(("ttl", String::new()));
            }
            (Method::PUT, keys(key))
        }
        Some(Command::Create {
            key,
            dir,
            value,
            expire_at_ms,
        }) => {
            let what = if *dir {
                ("dir", "true".into())
            } else {
                ("value", value.clone())
            };
            prev_exist_params(&mut params, what, expire_at_ms.is_some(), false);
            (Method::PUT, keys(key))
        }
        Some(Command::Update {
            key,
            value,
            expire_at_ms,
            refresh,
        }) => {
            let what = if *refresh {
                ("refresh", "true".into())
            } else if kind == OpKind::UpdateDirTtl {
                ("dir", "true".into())
            } else {
                ("value", value.clone())
            };
            prev_exist_params(&mut params, what, expire_at_ms.is_some(), true);
            (Method::PUT, keys(key))
        }
        Some(Command::CompareAndSwap {
            key,
            value,
            prev_value,
            prev_index,
            ..
        }) => {
            params.push(("value", value.clone()));
            compare_params(&mut params, prev_value.as_ref(), *prev_index);
            (Method::PUT, keys(key))
        }
        Some(Command::CompareAndDelete {
            key,
            prev_value,
            prev_index,
        }) => {
            compare_params(&mut params, prev_value.as_ref(), *prev_index);
            (Method::DELETE, keys(key))
        }
        Some(Command::Delete {
            key,
            dir,
            recursive,
        }) => {
            if *recursive {
                params.push(("recursive", "true".into()));
            } else if *dir {
                params.push(("dir", "true".into()));
            }
            (Method::DELETE, keys(key))
        }
        Some(Command::CreateInOrder { dir_key, value, .. }) => {
            params.push(("value", value.clone()));
            (Method::POST, keys(dir_key))
        }
        Some(Command::Expire { .. }) => unreachable!("clients never send expiries"),
    };
    (method, path, params)
}

/// A compare's conditions: `prevValue` and/or `prevIndex`.
fn compare_params(
    params: &mut Vec<(&'static str, String)>,
    prev_value: Option<&String>,
    prev_index: Option<u64>,
) {
    if let Some(prev) = prev_value {
        params.push(("prevValue", prev.clone()));
    }
    if let Some(prev) = prev_index {
        params.push(("prevIndex", prev.to_string()));
    }
}

/// A PUT with `prevExist`: what it writes (`value=`, `dir=true` or `refresh=true`), a `ttl` to
/// fill in if it has one, and the condition.
fn prev_exist_params(
    params: &mut Vec<(&'static str, String)>,
    what: (&'static str, String),
    ttl: bool,
    prev_exist: bool,
) {
    params.push(what);
    if ttl {
        params.push(("ttl", String::new()));
    }
    params.push(("prevExist", prev_exist.to_string()));
}

/// The request a client sends for `kind` (a single write, a read or a watch), with its
/// parameters in the form body (PUT and POST; one time in four in the query instead) or the
/// query (GET and DELETE, whose bodies etcd ignores).
fn request(
    cluster: &Cluster,
    (kind, ttl_s): (OpKind, u64),
    command: Option<&Command>,
    key: &str,
) -> http::Call {
    use ::http::Method;
    use http::{Call, escape};
    let (method, path, mut params) = params_of(kind, command, key);
    if let Some(ttl) = params.iter_mut().find(|(name, _)| *name == "ttl") {
        ttl.1 = ttl_s.to_string();
    }
    if kind == OpKind::List {
        params.push(("recursive", "true".into()));
        params.push(("sorted", "true".into()));
    }
    if kind == OpKind::QuorumGet || kind == OpKind::List {
        params.push(("quorum", "true".into()));
    }
    let mut encoded = String::with_capacity(
        params
            .iter()
            .map(|(name, value)| name.len() + value.len() + 2)
            .sum(),
    );
    for (name, value) in &params {
        if !encoded.is_empty() {
            encoded.push('&');
        }
        encoded.push_str(name);
        encoded.push('=');
        encoded.push_str(&escape(value));
    }
    let in_body = matches!(method, Method::PUT | Method::POST) && cluster.rng().gen_range(0..4) > 0;
    let mut call = Call::new(method, path);
    if in_body {
        call.form = Some(encoded);
    } else if !encoded.is_empty() {
        call.target.push('?');
        call.target.push_str(&encoded);
    }
    call
}

/// What an answer means to the client: an event, an etcd error, or no answer worth keeping.
/// `ambiguous` says whether an internal error (300: the request timed out inside the cluster)
/// may have taken effect (writes) or not.
fn outcome_of(answer: &http::Answer, watch: bool) -> (OpOutcome, http::Parsed) {
    let parsed = http::parse(&answer.body);
    let outcome = match &parsed {
        http::Parsed::Event {
            action,
            key,
            value,
            modified_index,
            ..
        } if (200..300).contains(&answer.status) => OpOutcome::Ok {
            action,
            key: key.clone(),
            // A watch's X-Etcd-Index is the index when it started; its event's is the node's
            // modifiedIndex.
            store_index: if watch {
                *modified_index
            } else {
                answer.etcd_index.unwrap_or(0)
            },
            raft_index: answer.raft_index.unwrap_or(0),
            value: value.clone(),
            modified_index: (*modified_index > 0).then_some(*modified_index),
        },
        // "too many requests" or "too many watchers": refused before anything happened.
        http::Parsed::Error {
            code: 300, cause, ..
        } if cause.starts_with("too many") || cause.ends_with("too many requests") => {
            OpOutcome::Unavailable { leader: None }
        }
        // The request timed out inside the cluster: it may still commit.
        http::Parsed::Error { code: 300, .. } => OpOutcome::TimedOut,
        http::Parsed::Error { code, .. } => OpOutcome::StoreError { code: *code },
        _ => OpOutcome::Unavailable { leader: None },
    };
    (outcome, parsed)
}

/// An answer that is not what etcd's v2 API gives for it: the wire protocol is part of what
/// the simulation judges.
fn check_wire(cluster: &Cluster, target: NodeId, answer: &http::Answer, parsed: &http::Parsed) {
    let broken = match parsed {
        http::Parsed::Error { index, .. } if answer.etcd_index != Some(*index) => Some(format!(
            "an error's X-Etcd-Index {:?} differs from its body's index {index}",
            answer.etcd_index
        )),
        http::Parsed::Error { code, .. } if answer.status < 400 => Some(format!(
            "error {code} answered with status {}",
            answer.status
        )),
        http::Parsed::Event { .. } if !(200..300).contains(&answer.status) => {
            Some(format!("an event answered with status {}", answer.status))
        }
        http::Parsed::Event { .. } if answer.etcd_index.is_none() => {
            Some("an event answered without X-Etcd-Index".into())
        }
        _ => None,
    };
    if let Some(detail) = broken {
        let now = cluster.clock.now_ms();
        let v = Violation::new(
            "nodes answer in etcd's v2 wire protocol",
            observe::node(target),
            Default::default(),
            Default::default(),
            format!("{detail}: {}", answer.body.trim_end()),
        );
        cluster.shared().record(Err(v), now);
    }
}

/// Sends one request and reads its answer as an etcd client does.
async fn exchange(
    cluster: &Cluster,
    target: NodeId,
    call: http::Call,
    deadline_ms: u64,
    watch: bool,
) -> (OpOutcome, Option<(http::Answer, http::Parsed)>) {
    match http::send(cluster, target, call, deadline_ms).await {
        http::Sent::Answered(answer) => {
            let (outcome, parsed) = outcome_of(&answer, watch);
            check_wire(cluster, target, &answer, &parsed);
            (outcome, Some((answer, parsed)))
        }
        http::Sent::Refused => (OpOutcome::Unavailable { leader: None }, None),
        http::Sent::TimedOut => (OpOutcome::TimedOut, None),
    }
}

/// A watch from the first index this client has not seen (`wait=true&waitIndex=N`; one time in
/// four `stream=true`, of which the first event is read before hanging up); the watch checker
/// judges the event.
async fn watch(
    cluster: &Cluster,
    state: &ClientState,
    key: &str,
    target: NodeId,
) -> (Call, OpOutcome, Option<http::Answer>) {
    // `/d/a` stands for a recursive watch on its directory; `/d/b` is watched alone, so that
    // the directory's removal must end its watch (store/README.md §8.3).
    let recursive = key == "/d/a";
    let key = if recursive { "/d" } else { key };
    let wait_index = state.store_index + 1;
    let call = Call::Watch {
        key: key.into(),
        recursive,
        wait_index,
    };
    let stream = cluster.rng().gen_range(0..4) == 0;
    let mut target_path = format!("/v2/keys{key}?wait=true&waitIndex={wait_index}");
    if recursive {
        target_path.push_str("&recursive=true");
    }
    if stream {
        target_path.push_str("&stream=true");
    }
    let mut request = http::Call::new(::http::Method::GET, target_path);
    request.first_chunk_only = stream;
    let deadline = cluster.clock.now_ms() + cluster.config.client_timeout_ms;
    let (outcome, answer) = exchange(cluster, target, request, deadline, true).await;
    if let OpOutcome::Ok {
        action,
        key: event_key,
        ..
    } = &outcome
    {
        // A directory's removal ends the watches inside it: the answer's `node.dir` says
        // whether the event is one.
        let dir = matches!(answer, Some((_, http::Parsed::Event { dir: true, .. })));
        let event = CommittedEvent {
            at_us: 0,
            index: 0,
            action: (*action).into(),
            key: event_key.clone(),
            dir,
            refresh: false,
        };
        if !check::watch::matches(&event, key, recursive) {
            let detail = format!(
                "watch on {key} (recursive: {recursive}) fired with {action} on {event_key}"
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
    }
    (call, outcome, answer.map(|(answer, _)| answer))
}

/// A write through the log; an acknowledged one must be the entry applied at its index
/// (`X-Raft-Index`, `X-Raft-Term`), and the node's answer the one a correct replica gives.
/// `hash` is the encoded command the request asks for, when the client can know it (not for a
/// TTL, which the node stamps on its own clock).
async fn write(
    cluster: &Cluster,
    client: usize,
    call: http::Call,
    hash: Option<u64>,
    target: NodeId,
) -> (OpOutcome, Option<http::Answer>) {
    let deadline = cluster.clock.now_ms() + cluster.config.client_timeout_ms;
    let (outcome, answer) = exchange(cluster, target, call, deadline, false).await;
    let answer = answer.map(|(answer, _)| answer);
    if let (
        OpOutcome::Ok {
            action,
            modified_index,
            ..
        },
        Some(a),
    ) = (&outcome, &answer)
        && let (Some(raft_index), Some(raft_term), Some(etcd_index)) =
            (a.raft_index, a.raft_term, a.etcd_index)
    {
        let index = Index(raft_index);
        check_acknowledged(
            cluster,
            client,
            target,
            index,
            engine::raft::Term(raft_term),
            hash,
        );
        let answer = Some((etcd_index, *action, modified_index.unwrap_or(0)));
        check_same_answer(cluster, target, index, answer);
    }
    (outcome, answer)
}

/// Which 0.x module a lock round uses: the lock module on `w` (released by index), or the
/// leader module on `L` under a name (released by name).
enum Module {
    Lock,
    Leader(String),
}

impl Module {
    fn name(&self) -> &'static str {
        match self {
            Module::Lock => "w",
            Module::Leader(_) => "L",
        }
    }

    fn acquire(&self) -> http::Call {
        match self {
            Module::Lock => http::Call::new(
                ::http::Method::POST,
                "/mod/v2/lock/w?ttl=2&timeout=1".into(),
            ),
            Module::Leader(name) => {
                let mut call = http::Call::new(::http::Method::PUT, "/mod/v2/leader/L".into());
                call.form = Some(format!("name={}&ttl=2&timeout=1", http::escape(name)));
                call
            }
        }
    }

    fn release(&self, index: u64) -> http::Call {
        match self {
            Module::Lock => http::Call::new(
                ::http::Method::DELETE,
                format!("/mod/v2/lock/w?index={index}"),
            ),
            Module::Leader(name) => http::Call::new(
                ::http::Method::DELETE,
                format!("/mod/v2/leader/L?name={}", http::escape(name)),
            ),
        }
    }
}

/// Reads the 0.x machine registry as an old client does before anything else; true if it
/// answered. Its answer must name every member of the node's configuration with its client
/// and peer URL (if the configuration changed while the request was in the node: itself).
async fn machines(cluster: &Cluster, target: NodeId) -> bool {
    let call = http::Call::new(::http::Method::GET, "/v2/keys/_etcd/machines".into());
    let deadline = cluster.clock.now_ms() + cluster.config.client_timeout_ms;
    let (version_before, _) = cluster.members_shown(target);
    let http::Sent::Answered(answer) = http::send(cluster, target, call, deadline).await else {
        return false;
    };
    let (version_after, shown) = cluster.members_shown(target);
    let listed = serde_json::from_str::<serde_json::Value>(&answer.body)
        .ok()
        .and_then(|v| {
            let nodes = v.get("node")?.get("nodes")?.as_array()?.clone();
            Some(
                nodes
                    .iter()
                    .filter_map(|n| n.get("value")?.as_str().map(str::to_string))
                    .collect::<Vec<_>>(),
            )
        })
        .unwrap_or_default();
    let entry = |m: &engine::http::MemberInfo| {
        format!(
            "etcd={}&raft={}",
            http::escape(&m.client_urls[0]),
            http::escape(&m.peer_urls[0])
        )
    };
    let missing = if version_before == version_after {
        let mut want: Vec<String> = shown.iter().map(entry).collect();
        want.sort();
        let mut sorted = listed.clone();
        sorted.sort();
        (sorted != want).then(|| format!("the configuration's {want:?}"))
    } else {
        let me = shown.iter().find(|m| m.id == target).map(entry);
        me.filter(|me| !listed.contains(me))
    };
    if answer.status != 200 || answer.etcd_index.is_none() || missing.is_some() {
        let now = cluster.clock.now_ms();
        let v = Violation::new(
            "nodes answer in etcd's v2 wire protocol",
            observe::node(target),
            Default::default(),
            Default::default(),
            format!(
                "/v2/keys/_etcd/machines answered {} without member {missing:?}: {}",
                answer.status,
                answer.body.trim_end()
            ),
        );
        cluster.shared().record(Err(v), now);
    }
    true
}

/// While leading (answered before `until_us`, the end of its hold): `GET /mod/v2/leader/L`
/// (a linearizable read of the queue) must name this client's campaign.
async fn check_leader_read(cluster: &Cluster, target: NodeId, name: &str, until_us: u64) {
    let call = http::Call::new(::http::Method::GET, "/mod/v2/leader/L".into());
    let deadline = until_us / 1000;
    if cluster.clock.now_ms() >= deadline {
        return;
    }
    let http::Sent::Answered(answer) = http::send(cluster, target, call, deadline).await else {
        return;
    };
    if answer.status == 200 && cluster.clock.now_us() <= until_us && answer.body != name {
        let now = cluster.clock.now_ms();
        let v = Violation::new(
            "the leader module names the holder",
            observe::node(target),
            Default::default(),
            Default::default(),
            format!(
                "{name} leads L until {until_us} µs but GET /mod/v2/leader/L answered {:?}",
                answer.body
            ),
        );
        cluster.shared().record(Err(v), now);
    }
}

/// One round of the lock module over HTTP from `target`'s side: `POST /mod/v2/lock/w?ttl=2&
/// timeout=1`, hold 10-50 ms (or, one time in ten, 1-3 s; never past the lease), `DELETE
/// /mod/v2/lock/w?index=I`. The lease runs out no sooner than 2 s after the request left the
/// client (the node stamps it later), less the clocks' disagreement. Returns the outcome, the
/// holding interval in µs (the lock checker judges the intervals and their fencing tokens) and
/// the acquire's answer.
async fn lock_round(
    cluster: &Cluster,
    target: NodeId,
    module: &Module,
) -> (OpOutcome, Option<(u64, u64)>, Option<http::Answer>) {
    let sent_ms = cluster.clock.now_ms();
    let deadline = sent_ms + 5 * cluster.config.client_timeout_ms;
    let acquire = module.acquire();
    let answer = match http::send(cluster, target, acquire, deadline).await {
        http::Sent::Answered(answer) => answer,
        http::Sent::Refused => return (OpOutcome::Unavailable { leader: None }, None, None),
        http::Sent::TimedOut => return (OpOutcome::TimedOut, None, None),
    };
    let index = match answer.body.trim().parse::<u64>() {
        Ok(index) if answer.status == 200 => index,
        _ => {
            let outcome = match http::parse(&answer.body) {
                http::Parsed::Error { code: 300, .. } => OpOutcome::TimedOut,
                http::Parsed::Error { code, .. } => OpOutcome::StoreError { code },
                // "failed to acquire lock": the timeout ran out in the queue.
                _ if answer.body.starts_with("failed to acquire") => OpOutcome::TimedOut,
                // "lock watch error: lease lost": acquired too late to hold.
                _ if answer.body.contains("lease lost") => OpOutcome::StoreError { code: 100 },
                _ => OpOutcome::Unavailable { leader: None },
            };
            return (outcome, None, Some(answer));
        }
    };
    let from_us = cluster.clock.now_us();
    let unchecked = cluster.config.bug == Some(Bug::LockNoExpiryCheck);
    let margin_ms = 2 * cluster.config.clock.error_max_ms;
    let left_ms = (sent_ms + 2000).saturating_sub(cluster.clock.now_ms());
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
    if let Module::Leader(name) = module {
        // Checked only while the lease surely holds, whatever the hold (`lock-no-expiry-check`).
        let lease_end_ms = (sent_ms + 2000).saturating_sub(margin_ms + 1);
        let until_us = (from_us + hold * 1000).min(lease_end_ms * 1000);
        check_leader_read(cluster, target, name, until_us).await;
        let left = (from_us / 1000 + hold).saturating_sub(cluster.clock.now_ms());
        cluster.clock.sleep_ms(left).await;
    } else {
        cluster.clock.sleep_ms(hold).await;
    }
    let to_us = cluster.clock.now_us();
    // A failed release leaves the entry to expire: the next holder waits for its TTL.
    let release = module.release(index);
    let release_by = cluster.clock.now_ms() + cluster.config.client_timeout_ms;
    let _ = http::send(cluster, target, release, release_by).await;
    let outcome = OpOutcome::Ok {
        action: "lock",
        key: module.name().into(),
        store_index: index,
        raft_index: 0,
        value: None,
        modified_index: Some(index),
    };
    (outcome, Some((from_us, to_us)), Some(answer))
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
        Command::Delete { key, dir: true, .. } => Call::Rmdir { key },
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

/// Runs the operation itself, as HTTP requests to `target`; returns its call (as the checkers
/// see it), its outcome, the hash of the command it asked for (when known) and the answer.
async fn perform(
    cluster: &Cluster,
    (client, target): (usize, NodeId),
    state: &ClientState,
    kind: OpKind,
    key: &'static str,
) -> (Call, OpOutcome, Option<u64>, Option<http::Answer>) {
    let quorum = kind == OpKind::QuorumGet;
    match kind {
        OpKind::Get | OpKind::QuorumGet => {
            let get = Call::Get {
                key: key.into(),
                quorum,
            };
            let deadline = cluster.clock.now_ms() + cluster.config.client_timeout_ms;
            let call = request(cluster, (kind, 0), None, key);
            let (outcome, answer) = exchange(cluster, target, call, deadline, false).await;
            (get, outcome, None, answer.map(|(answer, _)| answer))
        }
        OpKind::List => {
            let list = Call::List {
                key: LISTED_DIR.into(),
                sorted: true,
                quorum: true,
            };
            let deadline = cluster.clock.now_ms() + cluster.config.client_timeout_ms;
            let call = request(cluster, (kind, 0), None, LISTED_DIR);
            let (outcome, answer) = exchange(cluster, target, call, deadline, false).await;
            (list, outcome, None, answer.map(|(answer, _)| answer))
        }
        OpKind::Watch => {
            let (call, outcome, answer) = watch(cluster, state, key, target).await;
            (call, outcome, None, answer)
        }
        OpKind::Lock | OpKind::Leader => {
            let module = if kind == OpKind::Lock {
                Module::Lock
            } else {
                if !machines(cluster, target).await {
                    let call = Call::Lock {
                        name: "L".into(),
                        hold_from_us: 0,
                        hold_to_us: 0,
                    };
                    return (call, OpOutcome::Unavailable { leader: None }, None, None);
                }
                Module::Leader(format!("c{client}-{}", state.seq))
            };
            let name = module.name();
            let (outcome, hold, answer) = lock_round(cluster, target, &module).await;
            let (hold_from_us, hold_to_us) = hold.unwrap_or((0, 0));
            let call = Call::Lock {
                name: name.into(),
                hold_from_us,
                hold_to_us,
            };
            (call, outcome, None, answer)
        }
        _ => {
            let value = format!("v{client}-{}", state.seq);
            let ttl_s = if kind.has_ttl() {
                cluster.rng().gen_range(1..=3)
            } else {
                0
            };
            let command = command(cluster, state, (kind, ttl_s), key, value);
            // The node stamps a TTL on its own clock: the client cannot know the command's
            // bytes, only its bounds (`command`).
            let hash = (!kind.has_ttl()).then(|| hash_bytes(&command.encode()));
            let call = request(cluster, (kind, ttl_s), Some(&command), key);
            let (outcome, answer) = write(cluster, client, call, hash, target).await;
            (
                write_call(kind, &command, &cluster.config.clock),
                outcome,
                hash,
                answer,
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
    let (call, outcome, data_hash, answer) =
        perform(cluster, (client, target), state, kind, key).await;
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
    if let Some(a) = &answer {
        // What the client saw on the wire: status, X-Etcd-Index, the body.
        let wire = [
            u64::from(a.status),
            a.etcd_index.unwrap_or(u64::MAX),
            hash_bytes(a.body.as_bytes()),
        ];
        shared.trace.write_all(&wire);
    }
    let op = Op {
        id: shared.history.ops.len() as u64,
        client: client as u64,
        node: target.0,
        invoke_us,
        complete_us,
        call,
        ret: listing_ret(kind, ret_of(&outcome), answer.as_ref()),
    };
    shared.history.push(OpRecord {
        kind,
        op,
        data_hash,
        http: answer,
    });
    outcome
}

/// A listing's answer as the checkers see it: every node the body lists under the directory
/// (depth first, in the answer's order). Other answers stay as they are.
fn listing_ret(kind: OpKind, ret: Ret, answer: Option<&http::Answer>) -> Ret {
    let (OpKind::List, Ret::Ok { index, .. }, Some(answer)) = (kind, &ret, answer) else {
        return ret;
    };
    match http::listing(&answer.body) {
        Some(nodes) => Ret::Listing {
            index: *index,
            nodes,
        },
        None => ret,
    }
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
    hash: Option<u64>,
) {
    let now = cluster.clock.now_ms();
    let mut shared = cluster.shared();
    shared.acked_index_max = shared.acked_index_max.max(index);
    let applied = shared.safety.applied_at(observe::index(index));
    let same = applied.is_some_and(|(applied_term, applied_hash)| {
        applied_term == observe::term(term) && hash.is_none_or(|h| h == applied_hash)
    });
    if !same {
        let detail = format!(
            "client {client}: write acknowledged at {index} (term {term}) but another entry, or \
             another command than the request asked for, was applied there"
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
    let quorum = kind == OpKind::QuorumGet || kind == OpKind::List;
    if quorum && raft_index < acked_before.0 {
        let detail = format!(
            "client {client} read at applied index {raft_index} after index {acked_before} was acknowledged"
        );
        broken = Some(("linearizable reads see acknowledged writes", detail));
    } else if (quorum || kind.is_write()) && store_index < state.store_index {
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
    let on_key = !matches!(
        kind,
        OpKind::MkdirTtl | OpKind::UpdateDirTtl | OpKind::Rmdir | OpKind::List
    );
    if let Some(index) = modified_index
        && on_key
        && kind != OpKind::Watch
        && kind != OpKind::InOrder
        && kind != OpKind::Lock
        && kind != OpKind::Leader
    {
        state.seen_index.insert(key, *index);
    }
    if kind == OpKind::QuorumGet || kind == OpKind::List || kind.is_write() || kind == OpKind::Watch
    {
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
