//! The nemesis's membership changes as a client sends them: etcd v2 members API requests
//! (`POST /v2/members`, `DELETE`/`PUT /v2/members/<id>`, `POST /v2/members/<id>/promote`) to a
//! node's HTTP service across the simulated network, a 307 followed as Go's client follows it
//! (same method and body, at most 10 times), and every final answer judged:
//!
//! - a success (201 add, 204 remove or update, 200 promote) must be of the change asked, and a
//!   configuration that makes it must have committed between the request and the answer (the
//!   first replica to apply an entry applies a committed one);
//! - an error must be one etcd 3.4 gives for the request (status and `{"message":…}` body,
//!   as engine/src/http/members.rs records them).

use std::sync::Arc;

use ::http::Method;
use engine::raft::{Membership, NodeId};

use crate::check::Violation;
use crate::cluster::Cluster;
use crate::observe;
use crate::trace::hash_bytes;
use crate::workload::http::{self, Call, Sent};

/// Most redirects followed (Go's `http.Client`).
const REDIRECTS_MAX: usize = 10;

/// A configuration entry, when the first replica applied it (so it had committed by then).
#[derive(Clone, Debug)]
pub struct CommittedConfig {
    /// When it was first applied (µs of true time).
    pub at_us: u64,
    /// The configuration.
    pub membership: Membership,
}

/// One members API request the nemesis makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberAsk {
    /// `POST /v2/members` with `isLearner`: `n<k>` at `http://n<k>:2380` joins as a learner.
    AddLearner(NodeId),
    /// `DELETE /v2/members/<id>`.
    Remove(NodeId),
    /// `POST /v2/members/<id>/promote`.
    Promote(NodeId),
    /// `PUT /v2/members/<id>`: new peer URLs, same id.
    Update(NodeId, String),
}

impl MemberAsk {
    /// The member the request is about.
    pub fn node(&self) -> NodeId {
        match self {
            MemberAsk::AddLearner(id)
            | MemberAsk::Remove(id)
            | MemberAsk::Promote(id)
            | MemberAsk::Update(id, _) => *id,
        }
    }

    /// The kind's name, as `member_requests` counts it.
    pub fn kind(&self) -> &'static str {
        match self {
            MemberAsk::AddLearner(_) => "add",
            MemberAsk::Remove(_) => "remove",
            MemberAsk::Promote(_) => "promote",
            MemberAsk::Update(..) => "update",
        }
    }

    /// The request, as `etcdctl` (v2) would send it.
    fn call(&self) -> Call {
        let hex = format!("{:x}", self.node().0);
        match self {
            MemberAsk::AddLearner(id) => {
                let mut call = Call::new(Method::POST, "/v2/members".into());
                call.json = Some(format!(
                    "{{\"peerURLs\":[\"{}\"],\"isLearner\":true}}",
                    peer_url(*id)
                ));
                call
            }
            MemberAsk::Remove(_) => Call::new(Method::DELETE, format!("/v2/members/{hex}")),
            MemberAsk::Promote(_) => Call::new(Method::POST, format!("/v2/members/{hex}/promote")),
            MemberAsk::Update(_, url) => {
                let mut call = Call::new(Method::PUT, format!("/v2/members/{hex}"));
                call.json = Some(format!("{{\"peerURLs\":[\"{url}\"]}}"));
                call
            }
        }
    }

    /// True if `m` makes the change (a voter change's joint configuration decides it, thesis
    /// §4.3: once C_old,new commits, C_new follows).
    fn made_by(&self, m: &Membership) -> bool {
        match self {
            MemberAsk::AddLearner(id) => m.contains(*id),
            MemberAsk::Remove(id) => !m.voters.contains(id) && !m.learners.contains(id),
            MemberAsk::Promote(id) => m.voters.contains(id),
            MemberAsk::Update(id, url) => {
                m.contains(*id) && m.address(*id).is_some_and(|a| a.peer_urls == [url.clone()])
            }
        }
    }
}

/// The peer URL the simulated cluster gives node `id` (the members API maps it back to `id`).
pub fn peer_url(id: NodeId) -> String {
    format!("http://n{}:2380", id.0)
}

/// Node `k` of `http://n<k>:<port>[/...]`, if the URL names one of the `nodes` nodes.
pub fn node_of_url(url: &str, nodes: u64) -> Option<NodeId> {
    let rest = url.strip_prefix("http://")?;
    let host = rest.split(['/', ':']).next()?;
    let k: u64 = host.strip_prefix('n')?.parse().ok()?;
    (1..=nodes).contains(&k).then_some(NodeId(k))
}

/// Sends `ask` to `target`, follows redirects, judges and counts the final answer.
pub async fn request(cluster: Arc<Cluster>, mut target: NodeId, ask: MemberAsk) {
    let deadline_ms = cluster.clock.now_ms() + 3 * cluster.config.client_timeout_ms;
    let sent_us = cluster.clock.now_us();
    let mut call = ask.call();
    let mut outcome = None;
    for _ in 0..=REDIRECTS_MAX {
        match http::send(&cluster, target, call.clone(), deadline_ms).await {
            Sent::Answered(answer) if answer.status == 307 => {
                let next = answer.location.as_deref().and_then(|loc| {
                    let k = node_of_url(loc, cluster.size() as u64)?;
                    let path = loc.strip_prefix("http://")?;
                    let path = &path[path.find('/')?..];
                    Some((k, path.to_string()))
                });
                cluster.shared().count_member_request("redirect");
                let Some((k, path)) = next else {
                    outcome = Some(Sent::Answered(answer));
                    break;
                };
                target = k;
                call.target = path;
            }
            other => {
                outcome = Some(other);
                break;
            }
        }
    }
    let now = cluster.clock.now_ms();
    let (label, verdict) = match outcome {
        None => ("too-many-redirects".to_string(), Ok(())),
        Some(Sent::Refused) => ("refused".to_string(), Ok(())),
        Some(Sent::TimedOut) => ("timeout".to_string(), Ok(())),
        Some(Sent::Answered(answer)) => {
            let verdict = judge(&cluster, &ask, target, &answer, sent_us);
            let mut s = cluster.shared();
            s.trace.write_all(&[
                0x6d65_6d62,
                ask.node().0,
                u64::from(answer.status),
                hash_bytes(answer.body.as_bytes()),
            ]);
            drop(s);
            (answer.status.to_string(), verdict)
        }
    };
    let mut s = cluster.shared();
    s.count_member_request(&format!("{} {label}", ask.kind()));
    s.record(verdict, now);
}

/// The rule a members API answer breaks by not being one etcd 3.4 gives.
const SHAPE_RULE: &str = "a members API answer is one etcd 3.4 gives";
/// The rule a success breaks when no committed configuration makes its change.
const COMMITTED_RULE: &str = "an acknowledged membership change is committed before its answer";

fn judge(
    cluster: &Cluster,
    ask: &MemberAsk,
    target: NodeId,
    answer: &http::Answer,
    sent_us: u64,
) -> Result<(), Violation> {
    let hex = format!("{:x}", ask.node().0);
    let wrong = |why: String| {
        Err(Violation::new(
            SHAPE_RULE,
            observe::node(target),
            Default::default(),
            Default::default(),
            format!(
                "{} of n{} answered {} {:?}: {why}",
                ask.kind(),
                ask.node().0,
                answer.status,
                answer.body
            ),
        ))
    };
    let success = match (ask, answer.status) {
        (MemberAsk::AddLearner(_), 201) | (MemberAsk::Promote(_), 200) => {
            let url = matches!(ask, MemberAsk::AddLearner(_)).then(|| peer_url(ask.node()));
            if let Err(why) = member_body(&answer.body, &hex, url) {
                return wrong(why);
            }
            true
        }
        (MemberAsk::Remove(_) | MemberAsk::Update(..), 204) => {
            if !answer.body.is_empty() {
                return wrong("a 204 has no body".into());
            }
            true
        }
        (_, status) => {
            let Some(message) = error_message(&answer.body) else {
                return wrong("not an etcd members API error body".into());
            };
            let allowed = match status {
                500 => message == "Internal Server Error",
                404 => message == format!("No such member: {hex}"),
                410 => message == format!("Member permanently removed: {hex}"),
                409 => match ask {
                    MemberAsk::AddLearner(_) => {
                        message == "membership: peerURL exists"
                            || message == "membership: ID exists"
                    }
                    MemberAsk::Update(..) => message == "membership: peerURL exists",
                    MemberAsk::Promote(_) => {
                        message
                            == "etcdserver: can only promote a learner member which is in sync with leader"
                    }
                    MemberAsk::Remove(_) => message == "the last voter cannot be removed",
                },
                _ => false,
            };
            if !allowed {
                return wrong("not an answer etcd 3.4 gives to this request".into());
            }
            false
        }
    };
    if !success {
        return Ok(());
    }
    let s = cluster.shared();
    let made = s
        .committed_configs
        .iter()
        .any(|c| (sent_us..=answer.left_us).contains(&c.at_us) && ask.made_by(&c.membership));
    if made {
        return Ok(());
    }
    Err(Violation::new(
        COMMITTED_RULE,
        observe::node(target),
        Default::default(),
        Default::default(),
        format!(
            "n{} answered {} to {} of n{} at {} µs, but no configuration making it committed \
             between the request ({} µs) and then",
            target.0,
            answer.status,
            ask.kind(),
            ask.node().0,
            answer.left_us,
            sent_us
        ),
    ))
}

/// The `message` of an error body `{"message":…}` (no trailing newline, as etcd writes it).
fn error_message(body: &str) -> Option<String> {
    if body.ends_with('\n') {
        return None;
    }
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    let object = value.as_object()?;
    if object.len() != 1 {
        return None;
    }
    object.get("message")?.as_str().map(str::to_string)
}

/// Checks a member body (`{"id":…,"name":…,"peerURLs":[…],"clientURLs":[…]}` and a newline):
/// its id is `hex`, and its peer URLs are `[url]` if given.
fn member_body(body: &str, hex: &str, url: Option<String>) -> Result<(), String> {
    let Some(json) = body.strip_suffix('\n') else {
        return Err("a member body ends with a newline".into());
    };
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
    if value.get("id").and_then(|v| v.as_str()) != Some(hex) {
        return Err(format!("the member's id is not {hex}"));
    }
    for field in ["name", "peerURLs", "clientURLs"] {
        if value.get(field).is_none() {
            return Err(format!("no {field}"));
        }
    }
    if let Some(url) = url {
        let urls = value.get("peerURLs").and_then(|v| v.as_array());
        if urls.is_none_or(|u| u.len() != 1 || u[0].as_str() != Some(url.as_str())) {
            return Err(format!("peerURLs is not [{url}]"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_node_urls_and_error_bodies() {
        assert_eq!(node_of_url("http://n3:2380", 5), Some(NodeId(3)));
        assert_eq!(
            node_of_url("http://n12:2379/v2/members/5", 12),
            Some(NodeId(12))
        );
        assert_eq!(node_of_url("http://n6:2380", 5), None);
        assert_eq!(node_of_url("https://n1:2380", 5), None);
        assert_eq!(node_of_url("http://x1:2380", 5), None);
        assert_eq!(
            error_message("{\"message\":\"No such member: 5\"}").as_deref(),
            Some("No such member: 5")
        );
        assert_eq!(error_message("{\"message\":\"x\"}\n"), None);
        assert_eq!(error_message("{\"message\":\"x\",\"a\":1}"), None);
        assert!(member_body(
            "{\"id\":\"4\",\"name\":\"\",\"peerURLs\":[\"http://n4:2380\"],\"clientURLs\":[]}\n",
            "4",
            Some(peer_url(NodeId(4)))
        )
        .is_ok());
        assert!(member_body("{\"id\":\"4\"}", "4", None).is_err());
    }
}
