//! The members API's changes (etcd v2 `/v2/members`): add (`POST`), remove (`DELETE
//! /v2/members/<id>`), change peer URLs (`PUT /v2/members/<id>`), with etcd 3.4's statuses and
//! bodies, as recorded against a real etcd 3.4.23 (reports/membership.md):
//!
//! - a body that is not `Content-Type: application/json`: 415 `Bad Content-Type <type>, accept
//!   application/json`; JSON that does not decode: 400; no peer URL: 400 `no valid URLs
//!   given`; a URL whose scheme is not http, https, unix or unixs: 400 `URL scheme must be
//!   http, https, unix, or unixs: <url>`;
//! - a peer URL another member has: 409 `membership: peerURL exists`; an id already a member:
//!   409 `membership: ID exists`;
//! - an unknown id: 404 `No such member: <id as given>`; a `DELETE` of an id this member saw
//!   removed: 410 `Member permanently removed: <id>` (etcd remembers removed ids in its store;
//!   Floe's members remember those removed while they ran);
//! - added: 201 and the new member (`name` empty, no client URLs, until it starts); removed or
//!   updated: 204 without a body;
//! - the change cannot be made in time (no leader, another change in progress, a quorum
//!   missing): 500 `Internal Server Error`, as etcd answers when its proposal times out.
//!
//! Error bodies are `{"message":…}` without a trailing newline, as etcd writes them.
//!
//! Floe's additions: `"isLearner":true` in a `POST` body adds a learner (etcd 3.4 ignores the
//! field in its v2 API and adds a voter; learners are its v3 API's), and `POST
//! /v2/members/<id>/promote` makes a caught-up learner a voter (etcd's v3 `member promote`):
//! 200 with the member, 409 `etcdserver: can only promote a learner member which is in sync
//! with leader` while it is behind, 404 if it is not a learner.
//!
//! A member that is not the leader answers 307 to the leader's client URL (Go's and Python's
//! HTTP clients follow it with the same method and body). The leader asked to remove itself
//! first hands its leadership to another voter (Raft thesis §3.10, §4.2.2: a leader that
//! removes itself would otherwise manage the cluster while not in it) and then redirects the
//! request to the new leader.

use std::sync::Arc;

use ::http::Method;
use bytes::Bytes;
use futures::FutureExt;

use super::response::{self, JSON, Response};
use super::{App, MemberInfo};
use crate::raft::{ConfChange, ConfChangeError, MemberAddr, NodeId, RoleKind};

/// The Raft id of a member added at run time with `peer_urls`: FNV-1a of the cluster token and
/// the sorted URLs. The new member computes the same from its flags when it starts with
/// `--initial-cluster-state existing`, so it knows its id before it hears from the cluster.
pub fn added_member_id(token: &str, peer_urls: &[String]) -> NodeId {
    let mut urls: Vec<&str> = peer_urls.iter().map(String::as_str).collect();
    urls.sort_unstable();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in std::iter::once(token).chain(urls) {
        for b in part.bytes().chain(std::iter::once(0)) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    // Founding members are 1..=n; an id this small (or 0) is never drawn in practice.
    NodeId(hash.max(1 << 32))
}

/// True if `url` (`scheme://host:port[/...]`) names a host and a port.
fn has_host_and_port(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or("");
    authority
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

/// A `{"message":…}` error of the members API: no trailing newline, the cluster id header.
fn member_error(status: u16, message: &str, cluster_id: &str) -> Response {
    let mut body = String::from("{\"message\":");
    crate::store::render::push_json_string(&mut body, message);
    body.push('}');
    let mut r = response::with_body(status, JSON, body);
    response::set(&mut r, "X-Etcd-Cluster-Id", cluster_id);
    r
}

/// The body of a `POST` or `PUT`.
#[derive(serde::Deserialize)]
struct MemberRequest {
    #[serde(rename = "peerURLs", default)]
    peer_urls: Vec<String>,
    #[serde(rename = "isLearner", default)]
    is_learner: bool,
}

/// What one attempt at a change gave.
enum Outcome {
    Done(Response),
    Retry,
    /// Applied here, but the configuration does not show it yet (or lost it): try again.
    Applied,
}

impl<C: super::HttpClock> App<C> {
    fn error(&self, status: u16, message: &str) -> Response {
        member_error(status, message, &self.config.cluster_id)
    }

    /// `POST /v2/members`, `DELETE`/`PUT /v2/members/<id>`, `POST /v2/members/<id>/promote`.
    pub(super) async fn member_change(
        self: &Arc<Self>,
        method: &Method,
        content_type: Option<String>,
        body: Result<Bytes, String>,
        rest: &str,
    ) -> Response {
        let (id_text, action) = match rest.split_once('/') {
            Some((id, action)) => (id, action),
            None => (rest, ""),
        };
        if !matches!(
            *method,
            Method::GET | Method::HEAD | Method::POST | Method::DELETE | Method::PUT
        ) {
            // etcd's method check, before the members handler.
            let mut r = response::plain_error(405, "Method Not Allowed");
            response::set(&mut r, "Allow", "GET,POST,DELETE,PUT");
            return r;
        }
        match (method.clone(), id_text.is_empty(), action) {
            (Method::POST, true, "") => {
                let req = match self.member_body(content_type, body) {
                    Ok(req) => req,
                    Err(r) => return *r,
                };
                self.add_member(req).await
            }
            (Method::PUT, false, "") => {
                let req = match self.member_body(content_type, body) {
                    Ok(req) => req,
                    Err(r) => return *r,
                };
                let Some(member) = self.member_by_hex(id_text) else {
                    return self.error(404, &format!("No such member: {id_text}"));
                };
                self.update_member(member, req).await
            }
            (Method::DELETE, false, "") => {
                let Some(member) = self.member_by_hex(id_text) else {
                    if self
                        .membership
                        .removed()
                        .iter()
                        .any(|m| m.hex_id == id_text)
                    {
                        return self.error(410, &format!("Member permanently removed: {id_text}"));
                    }
                    return self.error(404, &format!("No such member: {id_text}"));
                };
                self.remove_member(member).await
            }
            (Method::POST, false, "promote") => {
                let Some(member) = self.member_by_hex(id_text) else {
                    return self.error(404, &format!("No such member: {id_text}"));
                };
                self.promote_member(member).await
            }
            (Method::POST, false, "") => {
                // etcd reads the body before it looks at the path.
                match self.member_body(content_type, body) {
                    Ok(req) => self.add_member(req).await,
                    Err(r) => *r,
                }
            }
            _ => {
                // etcd's 405 here names no allowed methods.
                let mut r = response::plain_error(405, "Method Not Allowed");
                response::set(&mut r, "X-Etcd-Cluster-Id", &self.config.cluster_id);
                r
            }
        }
    }

    fn member_by_hex(&self, hex: &str) -> Option<MemberInfo> {
        self.membership
            .members()
            .into_iter()
            .find(|m| m.hex_id == hex)
    }

    /// The JSON body, checked as etcd checks it.
    fn member_body(
        &self,
        content_type: Option<String>,
        body: Result<Bytes, String>,
    ) -> Result<MemberRequest, Box<Response>> {
        let ct = content_type.unwrap_or_default();
        let media = ct.split(';').next().unwrap_or("").trim();
        if !media.eq_ignore_ascii_case("application/json") {
            return Err(Box::new(self.error(
                415,
                &format!("Bad Content-Type {ct}, accept application/json"),
            )));
        }
        let bytes = body.map_err(|e| Box::new(self.error(400, &e)))?;
        let req: MemberRequest = serde_json::from_slice(&bytes)
            .map_err(|e| Box::new(self.error(400, &e.to_string())))?;
        if req.peer_urls.is_empty() {
            return Err(Box::new(self.error(400, "no valid URLs given")));
        }
        if req.peer_urls.len() > crate::raft::membership::PEER_URLS_MAX {
            return Err(Box::new(self.error(400, "too many peer URLs")));
        }
        for url in &req.peer_urls {
            let scheme = url.split_once("://").map(|(s, _)| s);
            if !matches!(scheme, Some("http" | "https" | "unix" | "unixs")) {
                return Err(Box::new(self.error(
                    400,
                    &format!("URL scheme must be http, https, unix, or unixs: {url}"),
                )));
            }
            if url.len() > crate::raft::membership::ADDRESS_TEXT_MAX {
                return Err(Box::new(self.error(400, "peer URL too long")));
            }
            if !has_host_and_port(url) {
                return Err(Box::new(self.error(
                    400,
                    &format!("URL address does not have the form \"host:port\": {url}"),
                )));
            }
        }
        Ok(req)
    }

    /// The name and peer URLs of every member this node knows them of.
    fn known_addresses(&self) -> Vec<MemberAddr> {
        self.membership
            .members()
            .into_iter()
            .filter(|m| !m.peer_urls.is_empty())
            .map(|m| MemberAddr {
                id: m.id,
                name: m.name,
                peer_urls: m.peer_urls,
            })
            .collect()
    }

    /// 409 if a member other than `except` has one of `urls`.
    fn url_taken(&self, urls: &[String], except: Option<NodeId>) -> Option<Response> {
        let taken = self
            .membership
            .members()
            .into_iter()
            .any(|m| Some(m.id) != except && m.peer_urls.iter().any(|u| urls.contains(u)));
        taken.then(|| self.error(409, "membership: peerURL exists"))
    }

    async fn add_member(self: &Arc<Self>, req: MemberRequest) -> Response {
        if let Some(r) = self.url_taken(&req.peer_urls, None) {
            return r;
        }
        let id = self
            .membership
            .added_member_id(&self.config.cluster_token, &req.peer_urls);
        if self.membership.members().iter().any(|m| m.id == id) {
            return self.error(409, "membership: ID exists");
        }
        let change = if req.is_learner {
            ConfChange::AddLearner(id)
        } else {
            ConfChange::AddVoter(id)
        };
        // Every member's address goes into the configuration, so that the new member (which
        // knows only names and URLs from its flags) learns where each one is.
        let mut addresses = self.known_addresses();
        addresses.push(MemberAddr {
            id,
            name: String::new(),
            peer_urls: req.peer_urls.clone(),
        });
        let made = self
            .propose_member_change(Some(change), addresses, "/v2/members")
            .await;
        if let Err(r) = made {
            return *r;
        }
        let info = MemberInfo {
            id,
            hex_id: format!("{:x}", id.0),
            name: String::new(),
            peer_urls: req.peer_urls,
            client_urls: Vec::new(),
        };
        let mut body = String::new();
        super::cluster::member_json(&mut body, &info);
        body.push('\n');
        let mut r = response::with_body(201, JSON, body);
        response::set(&mut r, "X-Etcd-Cluster-Id", &self.config.cluster_id);
        r
    }

    async fn update_member(self: &Arc<Self>, member: MemberInfo, req: MemberRequest) -> Response {
        if let Some(r) = self.url_taken(&req.peer_urls, Some(member.id)) {
            return r;
        }
        let mut addresses = self.known_addresses();
        addresses.retain(|a| a.id != member.id);
        // Last: the member whose change `try_member_change` looks for once applied.
        addresses.push(MemberAddr {
            id: member.id,
            name: member.name.clone(),
            peer_urls: req.peer_urls,
        });
        let path = format!("/v2/members/{}", member.hex_id);
        match self.propose_member_change(None, addresses, &path).await {
            Ok(()) => self.no_content(),
            Err(r) => *r,
        }
    }

    async fn remove_member(self: &Arc<Self>, member: MemberInfo) -> Response {
        let path = format!("/v2/members/{}", member.hex_id);
        if member.id == self.config.id
            && let Some(r) = self.hand_over_before_leaving(&path).await
        {
            return r;
        }
        match self
            .propose_member_change(Some(ConfChange::Remove(member.id)), Vec::new(), &path)
            .await
        {
            Ok(()) => self.no_content(),
            Err(r) => *r,
        }
    }

    async fn promote_member(self: &Arc<Self>, member: MemberInfo) -> Response {
        let path = format!("/v2/members/{}/promote", member.hex_id);
        match self
            .propose_member_change(Some(ConfChange::Promote(member.id)), Vec::new(), &path)
            .await
        {
            Ok(()) => {
                let mut body = String::new();
                super::cluster::member_json(&mut body, &member);
                body.push('\n');
                let mut r = response::with_body(200, JSON, body);
                response::set(&mut r, "X-Etcd-Cluster-Id", &self.config.cluster_id);
                r
            }
            Err(r) => *r,
        }
    }

    fn no_content(&self) -> Response {
        let mut r = response::with_body(204, "", Bytes::new());
        response::set(&mut r, "X-Etcd-Cluster-Id", &self.config.cluster_id);
        r
    }

    /// 307 to the same path at the leader's client URL.
    fn to_leader(&self, leader: NodeId, path: &str) -> Option<Response> {
        let base = self
            .membership
            .members()
            .into_iter()
            .find(|m| m.id == leader)?
            .client_urls
            .into_iter()
            .next()?;
        let location = format!("{}{path}", base.trim_end_matches('/'));
        let mut r = response::with_body(307, "", Bytes::new());
        response::set(&mut r, "Location", &location);
        Some(r)
    }

    /// The leader asked to remove itself hands over its leadership first (Raft thesis §3.10)
    /// and redirects the request to the new leader; `None` if this member does not lead (the
    /// removal then goes the usual way: to the leader). 500 if no other member took over in
    /// time.
    async fn hand_over_before_leaving(self: &Arc<Self>, path: &str) -> Option<Response> {
        let status = self.client.status().await.ok()?;
        if status.role != RoleKind::Leader {
            return None;
        }
        let deadline = self.clock.now_ms() + self.config.request_timeout_ms;
        match self.client.transfer_leader(None).await {
            Ok(Ok(target)) => tracing::info!(
                target = target.0,
                "removing this member, the leader: handing over leadership first"
            ),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "leadership transfer before self-removal refused");
                return Some(self.error(500, "Internal Server Error"));
            }
            Err(_) => return Some(self.error(500, "Internal Server Error")),
        }
        while self.clock.now_ms() < deadline {
            self.clock.sleep_until(self.clock.now_ms() + 10).await;
            let now = self.client.status().await.ok()?;
            if let Some(leader) = now.leader.filter(|&l| l != self.config.id) {
                return Some(
                    self.to_leader(leader, path)
                        .unwrap_or_else(|| self.error(500, "Internal Server Error")),
                );
            }
        }
        Some(self.error(500, "Internal Server Error"))
    }

    /// Proposes the change on this member if it leads and waits until it is applied here;
    /// redirects to the leader otherwise; retries while no leader is known or another change
    /// is in progress, until the request timeout (then 500, as etcd).
    async fn propose_member_change(
        self: &Arc<Self>,
        change: Option<ConfChange>,
        addresses: Vec<MemberAddr>,
        path: &str,
    ) -> Result<(), Box<Response>> {
        let deadline = self.clock.now_ms() + self.config.request_timeout_ms;
        let mut applied_once = false;
        loop {
            let attempt = self.try_member_change(change, addresses.clone(), path, deadline);
            match attempt.await {
                Outcome::Done(r)
                    if applied_once
                        && matches!(
                            (change, r.status().as_u16()),
                            (Some(ConfChange::Remove(_)), 404)
                                | (
                                    Some(ConfChange::AddVoter(_) | ConfChange::AddLearner(_)),
                                    409
                                )
                        ) =>
                {
                    // An earlier attempt was applied; the configuration caught up since.
                    return Ok(());
                }
                Outcome::Done(r) if r.status().is_success() => return Ok(()),
                Outcome::Done(r) => return Err(Box::new(r)),
                Outcome::Retry => {}
                Outcome::Applied => applied_once = true,
            }
            let now = self.clock.now_ms();
            if now >= deadline {
                return Err(Box::new(self.error(500, "Internal Server Error")));
            }
            self.clock.sleep_until(now + 50).await;
        }
    }

    async fn try_member_change(
        self: &Arc<Self>,
        change: Option<ConfChange>,
        addresses: Vec<MemberAddr>,
        path: &str,
        deadline: u64,
    ) -> Outcome {
        let Ok(answer) = self.client.ask_member_change(change, addresses.clone()) else {
            return Outcome::Done(self.error(500, "Internal Server Error"));
        };
        let index = match answer.await {
            Err(_) => return Outcome::Done(self.error(500, "Internal Server Error")),
            Ok(Ok(index)) => index,
            Ok(Err(ConfChangeError::NotLeader { leader: Some(l) })) if l != self.config.id => {
                return match self.to_leader(l, path) {
                    Some(r) => Outcome::Done(r),
                    None => Outcome::Retry,
                };
            }
            Ok(Err(
                ConfChangeError::NotLeader { .. }
                | ConfChangeError::InProgress
                | ConfChangeError::Transferring,
            )) => return Outcome::Retry,
            Ok(Err(ConfChangeError::AlreadyMember(_))) => {
                return Outcome::Done(self.error(409, "membership: ID exists"));
            }
            Ok(Err(ConfChangeError::NotMember(id))) => {
                return Outcome::Done(self.error(404, &format!("No such member: {:x}", id.0)));
            }
            Ok(Err(ConfChangeError::NotCaughtUp(_))) => {
                return Outcome::Done(self.error(
                    409,
                    "etcdserver: can only promote a learner member which is in sync with leader",
                ));
            }
            Ok(Err(e @ (ConfChangeError::LastVoter | ConfChangeError::InvalidId))) => {
                return Outcome::Done(self.error(409, &e.to_string()));
            }
            Ok(Err(e @ ConfChangeError::AddressTooLong(_))) => {
                return Outcome::Done(self.error(400, &e.to_string()));
            }
        };
        if planted!(self.bugs.member_add_answers_early)
            && matches!(
                change,
                Some(ConfChange::AddVoter(_) | ConfChange::AddLearner(_))
            )
        {
            return Outcome::Done(response::with_body(200, "", Bytes::new()));
        }
        // Answered once applied here, as etcd does; the entry could still be lost to a new
        // leader, so the configuration is checked after.
        let wait = self.client.wait_applied(index).fuse();
        let timeout = self.clock.sleep_until(deadline).fuse();
        futures::pin_mut!(wait, timeout);
        futures::select_biased! {
            applied = wait => {
                if applied.is_err() {
                    return Outcome::Done(self.error(500, "Internal Server Error"));
                }
            }
            () = timeout => return Outcome::Done(self.error(500, "Internal Server Error")),
        }
        let members = self.membership.members();
        let present = |id: NodeId| members.iter().any(|m| m.id == id);
        // The index being applied says nothing of which entry is there: a new leader may have
        // put another one in its place. An update must show its member's new peer URLs
        // (`update_member` puts that member last).
        let took = match change {
            Some(ConfChange::Remove(id)) => !present(id),
            Some(c) => present(c.node()),
            None => addresses.last().is_none_or(|a| {
                members
                    .iter()
                    .any(|m| m.id == a.id && m.peer_urls == a.peer_urls)
            }),
        };
        if took {
            Outcome::Done(response::with_body(200, "", Bytes::new()))
        } else {
            Outcome::Applied
        }
    }
}

#[cfg(test)]
mod tests {
    use super::added_member_id;

    #[test]
    fn added_ids_ignore_url_order_and_avoid_founders() {
        let a = vec!["http://a:1".to_string(), "http://b:2".to_string()];
        let b = vec!["http://b:2".to_string(), "http://a:1".to_string()];
        assert_eq!(added_member_id("t", &a), added_member_id("t", &b));
        assert_ne!(added_member_id("t", &a), added_member_id("u", &a));
        assert!(added_member_id("t", &a).0 >= 1 << 32);
    }
}
