//! The simulated clients' side of the etcd v2 wire protocol: a request (method, path, query,
//! form body, headers) crosses the simulated network to one node, that node's HTTP service
//! (the one `floe` serves over hyper) answers it, and the answer (status, `X-Etcd-Index`,
//! `X-Raft-Index`, `X-Raft-Term`, body) crosses back. Each direction takes a latency drawn from
//! the network's current distribution and may be lost (the client then waits out its timeout);
//! a node that is down refuses the connection (its process is gone, its host answers); an
//! answer from a life of the node that ended while the request was in it never arrives.

use std::sync::Arc;

use bytes::Bytes;
use engine::raft::NodeId;
use futures::{FutureExt as _, StreamExt as _};
use rand::Rng;
use serde::Serialize;

use crate::cluster::Cluster;

/// What a client sees of one exchange.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// `X-Etcd-Index`, if sent.
    pub etcd_index: Option<u64>,
    /// `X-Raft-Index`, if sent.
    pub raft_index: Option<u64>,
    /// `X-Raft-Term`, if sent.
    pub raft_term: Option<u64>,
    /// The body (a watch: its first event).
    pub body: String,
    /// `Location`, if sent (a 307 of the members API).
    #[serde(skip)]
    pub location: Option<String>,
    /// When the answer left the node (µs of true time).
    #[serde(skip)]
    pub left_us: u64,
}

/// How an exchange ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sent {
    /// The node answered.
    Answered(Answer),
    /// The node is down: the connection was refused; nothing happened.
    Refused,
    /// No answer before the client's deadline.
    TimedOut,
}

/// A request as a client builds it.
#[derive(Clone, Debug)]
pub struct Call {
    /// GET, PUT, POST or DELETE.
    pub method: http::Method,
    /// The path and query, escaped.
    pub target: String,
    /// A form body (sent with `Content-Type: application/x-www-form-urlencoded`).
    pub form: Option<String>,
    /// A JSON body (sent with `Content-Type: application/json`; the members API's).
    pub json: Option<String>,
    /// For a `stream=true` watch: read the first chunk, then hang up.
    pub first_chunk_only: bool,
}

impl Call {
    /// A request without a body.
    pub fn new(method: http::Method, target: String) -> Call {
        Call {
            method,
            target,
            form: None,
            json: None,
            first_chunk_only: false,
        }
    }
}

/// The `Host` header of a request to node `id`: `n{id}:2379`, without formatting for the usual
/// one-digit ids.
fn host_of(id: NodeId) -> ::http::HeaderValue {
    const HOSTS: [&str; 9] = [
        "n1:2379", "n2:2379", "n3:2379", "n4:2379", "n5:2379", "n6:2379", "n7:2379", "n8:2379",
        "n9:2379",
    ];
    match id.0.checked_sub(1).and_then(|i| HOSTS.get(i as usize)) {
        Some(host) => ::http::HeaderValue::from_static(host),
        None => ::http::HeaderValue::from_str(&format!("n{}:2379", id.0))
            .expect("a node's host name is a valid header value"),
    }
}

/// Escapes a form or query value (Go's `url.QueryEscape`): the production service's own rule,
/// which its parser undoes.
pub use engine::http::query_escape as escape;

/// The index headers an answer carries, named once (a name given as a string is parsed and
/// lower-cased on every look-up).
const X_ETCD_INDEX: ::http::HeaderName = ::http::HeaderName::from_static("x-etcd-index");
const X_RAFT_INDEX: ::http::HeaderName = ::http::HeaderName::from_static("x-raft-index");
const X_RAFT_TERM: ::http::HeaderName = ::http::HeaderName::from_static("x-raft-term");

/// Sends `call` to `target` and waits for the answer until `deadline_ms` (true time).
pub async fn send(cluster: &Cluster, target: NodeId, call: Call, deadline_ms: u64) -> Sent {
    let slot = target.0 as usize - 1;
    let (loss_per_mille, latency) = cluster.net.conditions();
    let (there_ms, back_ms, lost_there, lost_back) = {
        let mut rng = cluster.rng();
        let mut delay = || {
            if rng.gen_range(0..1000) < latency.tail_per_mille {
                rng.gen_range(latency.max_ms..=latency.tail_max_ms.max(latency.max_ms))
            } else {
                rng.gen_range(latency.min_ms..=latency.max_ms)
            }
        };
        let (there, back) = (delay(), delay());
        let lost_there = rng.gen_range(0..1000) < loss_per_mille;
        let lost_back = rng.gen_range(0..1000) < loss_per_mille;
        (there, back, lost_there, lost_back)
    };
    cluster.shared().http_requests += 1;
    if !sleep_until(cluster, cluster.clock.now_ms() + there_ms, deadline_ms).await || lost_there {
        sleep_until(cluster, deadline_ms, deadline_ms).await;
        return Sent::TimedOut;
    }
    let Some(app) = cluster.shared().apps[slot].clone() else {
        // Nothing listens on the port: the refusal comes back at once.
        return if sleep_until(cluster, cluster.clock.now_ms() + back_ms, deadline_ms).await {
            Sent::Refused
        } else {
            Sent::TimedOut
        };
    };
    let request = request_of(&call, target);
    let wait = deadline_ms.saturating_sub(cluster.clock.now_ms());
    let exchange = async {
        let response = app.clone().handle(request).await;
        let (head, body) = response.into_parts();
        let body = match body {
            engine::http::Body::Full(bytes) => bytes.to_vec(),
            engine::http::Body::Stream(mut chunks) => {
                let mut all = Vec::new();
                while let Some(chunk) = chunks.next().await {
                    all.extend_from_slice(&chunk);
                    if call.first_chunk_only {
                        break;
                    }
                }
                all
            }
        };
        (head, body)
    };
    // Boxed: the service's future is large, and the timeout's wrappers would move it whole.
    // The exchange first, as madsim's `timeout` polls it; the timer is registered once
    // (`SimSleep`), not again on every wake-up of the exchange.
    let mut exchange = Box::pin(exchange).fuse();
    let mut timeout = cluster.clock.sleep_ms(wait).fuse();
    let (head, body) = futures::select_biased! {
        answer = exchange => answer,
        () = timeout => return Sent::TimedOut,
    };
    let left_us = cluster.clock.now_us();
    // The node's life that answered must still be running when the answer leaves it.
    let same_life = cluster.shared().apps[slot]
        .as_ref()
        .is_some_and(|now| Arc::ptr_eq(now, &app));
    if !same_life || lost_back {
        sleep_until(cluster, deadline_ms, deadline_ms).await;
        return Sent::TimedOut;
    }
    if !sleep_until(cluster, cluster.clock.now_ms() + back_ms, deadline_ms).await {
        return Sent::TimedOut;
    }
    // The headers read in one pass over the few an answer has, the first value of each name
    // (as `HeaderMap::get`, without hashing each name looked up).
    let mut found: [Option<&::http::HeaderValue>; 4] = [None; 4];
    for (name, value) in &head.headers {
        let i = if *name == X_ETCD_INDEX {
            0
        } else if *name == X_RAFT_INDEX {
            1
        } else if *name == X_RAFT_TERM {
            2
        } else if *name == ::http::header::LOCATION {
            3
        } else {
            continue;
        };
        found[i].get_or_insert(value);
    }
    let number = |i: usize| {
        found[i]
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Sent::Answered(Answer {
        status: head.status.as_u16(),
        etcd_index: number(0),
        raft_index: number(1),
        raft_term: number(2),
        // Valid UTF-8 (every body the service writes) is kept as it is, without a copy.
        body: String::from_utf8(body)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        location: found[3].and_then(|v| v.to_str().ok()).map(str::to_string),
        left_us,
    })
}

/// The request `call` makes of node `target`'s service, with its body's `Content-Type`.
///
/// Built in place rather than through `http::request::Builder`, which moves the whole request
/// head through a `Result` at every step: the same method, URI, headers (in the same order)
/// and version.
fn request_of(call: &Call, target: NodeId) -> engine::http::Request {
    let (content_type, body) = match (&call.form, &call.json) {
        (Some(form), _) => (
            Some("application/x-www-form-urlencoded"),
            Bytes::from(form.clone()),
        ),
        (None, Some(json)) => (Some("application/json"), Bytes::from(json.clone())),
        (None, None) => (None, Bytes::new()),
    };
    let Ok(uri) = ::http::Uri::try_from(call.target.as_str()) else {
        unreachable!("the simulated clients build valid requests: {call:?}");
    };
    let mut request = http::Request::new(Ok(body));
    *request.method_mut() = call.method.clone();
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    headers.append(::http::header::HOST, host_of(target));
    if let Some(content_type) = content_type {
        headers.append(
            ::http::header::CONTENT_TYPE,
            ::http::HeaderValue::from_static(content_type),
        );
    }
    request
}

/// Sleeps until `at_ms`, or until `deadline_ms` if that is earlier; false if the deadline came
/// first.
async fn sleep_until(cluster: &Cluster, at_ms: u64, deadline_ms: u64) -> bool {
    let now = cluster.clock.now_ms();
    let until = at_ms.min(deadline_ms);
    if until > now {
        cluster.clock.sleep_ms(until - now).await;
    }
    at_ms <= deadline_ms
}

/// An etcd v2 answer, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A keys-API event: action, node key, value, `modifiedIndex`.
    Event {
        action: &'static str,
        key: String,
        value: Option<String>,
        modified_index: u64,
        /// `node.dir`.
        dir: bool,
    },
    /// An etcd error: `errorCode`, `cause`, `index`.
    Error {
        code: u16,
        cause: String,
        index: u64,
    },
    /// Anything else (text, HTML, an empty body).
    Other,
}

/// The actions an etcd v2 event names.
const ACTIONS: [&str; 8] = [
    "get",
    "set",
    "create",
    "update",
    "compareAndSwap",
    "delete",
    "compareAndDelete",
    "expire",
];

/// The fields of an answer `parse` reads, and nothing else: the rest of the body (`prevNode`,
/// a listing's `nodes`, ...) is skipped without being built. Each field is kept as the JSON
/// value it is, so that `parse` reads it exactly as it reads the generic value.
#[derive(serde::Deserialize)]
struct Fields {
    #[serde(rename = "errorCode", default)]
    error_code: Option<serde_json::Value>,
    #[serde(default)]
    cause: Option<serde_json::Value>,
    #[serde(default)]
    index: Option<serde_json::Value>,
    #[serde(default)]
    action: Option<serde_json::Value>,
    /// `Some(None)`: `"node": null`, present (the generic value reads no field of it).
    #[serde(default, deserialize_with = "present")]
    node: Option<Option<NodeFields>>,
}

/// A field that is there, even as `null`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<NodeFields>>, D::Error> {
    <Option<NodeFields> as serde::Deserialize>::deserialize(d).map(Some)
}

/// The fields of an answer's `node` that `parse` reads.
#[derive(Default, serde::Deserialize)]
struct NodeFields {
    #[serde(default)]
    key: Option<serde_json::Value>,
    #[serde(default)]
    value: Option<serde_json::Value>,
    #[serde(rename = "modifiedIndex", default)]
    modified_index: Option<serde_json::Value>,
    #[serde(default)]
    dir: Option<serde_json::Value>,
}

/// Parses an answer's JSON body. The usual body (an object, `node` an object or null, no key
/// twice) is read into just the fields used; anything else goes through the generic JSON
/// value, which gives the same reading for the usual body, so both paths agree (a unit test
/// holds them to it).
pub fn parse(body: &str) -> Parsed {
    // A derived struct would also read a JSON array field by field: only objects take the
    // fast path.
    if !body.trim_start().starts_with('{') {
        return parse_value(body);
    }
    match serde_json::from_str::<Fields>(body.trim_end()) {
        Ok(fields) => parse_fields(fields),
        Err(_) => parse_value(body),
    }
}

fn parse_fields(f: Fields) -> Parsed {
    use serde_json::Value;
    if let Some(code) = f.error_code.as_ref().and_then(Value::as_u64) {
        return Parsed::Error {
            code: u16::try_from(code).unwrap_or(u16::MAX),
            cause: f
                .cause
                .as_ref()
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            index: f.index.as_ref().and_then(Value::as_u64).unwrap_or(0),
        };
    }
    let action = f.action.as_ref().and_then(Value::as_str);
    match (
        action.and_then(|a| ACTIONS.iter().find(|k| **k == a)),
        f.node,
    ) {
        (Some(action), Some(node)) => {
            let node = node.unwrap_or_default();
            Parsed::Event {
                action,
                key: node
                    .key
                    .as_ref()
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                value: node
                    .value
                    .as_ref()
                    .and_then(Value::as_str)
                    .map(str::to_string),
                modified_index: node
                    .modified_index
                    .as_ref()
                    .and_then(Value::as_u64)
                    .unwrap_or(0),
                dir: node.dir.as_ref().and_then(Value::as_bool) == Some(true),
            }
        }
        _ => Parsed::Other,
    }
}

/// `parse` through the generic JSON value.
fn parse_value(body: &str) -> Parsed {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(body.trim_end()) else {
        return Parsed::Other;
    };
    if let Some(code) = value.get("errorCode").and_then(serde_json::Value::as_u64) {
        return Parsed::Error {
            code: u16::try_from(code).unwrap_or(u16::MAX),
            cause: value
                .get("cause")
                .and_then(|c| c.as_str())
                .unwrap_or("")
                .to_string(),
            index: value
                .get("index")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0),
        };
    }
    let action = value.get("action").and_then(|a| a.as_str());
    let node = value.get("node");
    match (action.and_then(|a| ACTIONS.iter().find(|k| **k == a)), node) {
        (Some(action), Some(node)) => Parsed::Event {
            action,
            key: node
                .get("key")
                .and_then(|k| k.as_str())
                .unwrap_or("")
                .to_string(),
            value: node
                .get("value")
                .and_then(|v| v.as_str())
                .map(str::to_string),
            modified_index: node
                .get("modifiedIndex")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0),
            dir: node.get("dir").and_then(serde_json::Value::as_bool) == Some(true),
        },
        _ => Parsed::Other,
    }
}

/// The nodes a directory listing's body shows below its directory (`node.nodes`, depth first,
/// in the answer's order); `None` if the body is not a directory listing.
pub fn listing(body: &str) -> Option<Vec<crate::check::history::Listed>> {
    fn walk(node: &serde_json::Value, out: &mut Vec<crate::check::history::Listed>) {
        let Some(children) = node.get("nodes").and_then(serde_json::Value::as_array) else {
            return;
        };
        for child in children {
            out.push(crate::check::history::Listed {
                key: child
                    .get("key")
                    .and_then(|k| k.as_str())
                    .unwrap_or("")
                    .to_string(),
                value: child
                    .get("value")
                    .and_then(|v| v.as_str())
                    .map(str::to_string),
                dir: child.get("dir").and_then(serde_json::Value::as_bool) == Some(true),
                modified_index: child
                    .get("modifiedIndex")
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(0),
            });
            walk(child, out);
        }
    }
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    let node = value.get("node")?;
    if node.get("dir").and_then(serde_json::Value::as_bool) != Some(true) {
        return None;
    }
    let mut out = Vec::new();
    walk(node, &mut out);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_events_and_errors() {
        let event = r#"{"action":"set","node":{"key":"/k1","value":"v1","modifiedIndex":7,"createdIndex":7}}"#;
        assert_eq!(
            parse(event),
            Parsed::Event {
                action: "set",
                key: "/k1".into(),
                value: Some("v1".into()),
                modified_index: 7,
                dir: false,
            }
        );
        let error = "{\"errorCode\":101,\"message\":\"Compare failed\",\"cause\":\"[a != b]\",\"index\":9}\n";
        assert_eq!(
            parse(error),
            Parsed::Error {
                code: 101,
                cause: "[a != b]".into(),
                index: 9
            }
        );
        assert_eq!(parse("404 page not found\n"), Parsed::Other);
        // The fast path reads every body as the generic value does, odd ones included.
        for body in [
            event,
            error,
            r#"{"action":"delete","node":{"key":"/d","dir":true,"modifiedIndex":3},"prevNode":{"key":"/d","dir":true,"nodes":[{"key":"/d/a","value":"1"}]}}"#,
            r#"{"action":"get","node":{"key":"/d","dir":true,"nodes":[{"key":"/d/a","value":"1","modifiedIndex":4}]}}"#,
            r#"{"errorCode":"100","action":"set","node":{"key":"/k","value":null,"modifiedIndex":-1}}"#,
            r#"{"errorCode":null,"cause":7,"index":1.5}"#,
            r#"{"action":"set","node":null}"#,
            r#"{"action":"set","node":"x"}"#,
            r#"{"action":"set","action":"get","node":{}}"#,
            r#"[1,2]"#,
            r#"{"action":"set","node":[1,2]}"#,
            r#"{"action":"set","node":{"key":"/a","key":"/b"}}"#,
            "",
            "null",
        ] {
            assert_eq!(parse(body), parse_value(body), "{body}");
        }
        assert_eq!(parse(r#"{"action":"bogus","node":{}}"#), Parsed::Other);
        assert_eq!(escape("a b/c"), "a+b%2Fc");
    }
}
