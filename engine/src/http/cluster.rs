//! The cluster endpoints: `/version`, `/health`, `/v2/machines`, `/v2/members`,
//! `/v2/stats/*` (store/README.md §10) and the 0.x text `/v2/leader` (§11.2). `G<n>` numbers
//! are the recorded etcd exchanges of store/README.md §Transcripts.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::response::{self, JSON, Response, TEXT};
use super::{App, MemberInfo, STORE_STAT_NAMES};
use crate::raft::RoleKind;
use crate::store::ExpirationStyle;
use crate::store::render::{format_rfc3339_ms, push_json_string};

/// The etcd versions Floe answers as: the 2.1+ shape python-etcd requires (G1).
pub fn version() -> Response {
    response::with_body(
        200,
        JSON,
        "{\"etcdserver\":\"3.4.23\",\"etcdcluster\":\"3.4.0\"}",
    )
}

fn push_string_list(out: &mut String, items: &[String]) {
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(out, item);
    }
    out.push(']');
}

/// One member object of `/v2/members` (G55).
pub(super) fn member_json(out: &mut String, member: &MemberInfo) {
    out.push_str("{\"id\":");
    push_json_string(out, &member.hex_id);
    out.push_str(",\"name\":");
    push_json_string(out, &member.name);
    out.push_str(",\"peerURLs\":");
    push_string_list(out, &member.peer_urls);
    out.push_str(",\"clientURLs\":");
    push_string_list(out, &member.client_urls);
    out.push('}');
}

/// A Go `time.Duration` string: `16.12471758s`, `2m3.5s`, `1h0m0s`.
pub fn go_duration(ms: u64) -> String {
    let hours = ms / 3_600_000;
    let minutes = ms / 60_000 % 60;
    let seconds = ms % 60_000;
    let mut secs = format!("{}.{:03}", seconds / 1000, seconds % 1000);
    while secs.ends_with('0') {
        secs.pop();
    }
    if secs.ends_with('.') {
        secs.pop();
    }
    match (hours, minutes) {
        (0, 0) => format!("{secs}s"),
        (0, m) => format!("{m}m{secs}s"),
        (h, m) => format!("{h}h{m}m{secs}s"),
    }
}

impl<C: super::HttpClock> App<C> {
    fn me(&self) -> Option<MemberInfo> {
        self.membership
            .members()
            .into_iter()
            .find(|m| m.id == self.config.id)
    }

    fn member(&self, id: crate::raft::NodeId) -> Option<MemberInfo> {
        self.membership.members().into_iter().find(|m| m.id == id)
    }

    /// `/health`: `{"health":"true"}` while this member knows a leader, else 503 (G60).
    pub(super) async fn health(&self) -> Response {
        let healthy = matches!(self.client.status().await, Ok(s) if s.leader.is_some());
        if healthy {
            response::with_body(200, TEXT, "{\"health\":\"true\"}")
        } else {
            response::with_body(503, TEXT, "{\"health\":\"false\"}")
        }
    }

    /// `/v2/machines`: every client URL, sorted, joined by `, ` (G54, G175).
    pub(super) fn machines(&self) -> Response {
        let mut urls: Vec<String> = self
            .membership
            .members()
            .into_iter()
            .flat_map(|m| m.client_urls)
            .collect();
        urls.sort();
        response::with_body(200, TEXT, urls.join(", "))
    }

    /// `GET /v2/members` (G55); changes are `members.rs`'.
    pub(super) fn members(&self) -> Response {
        let mut body = String::from("{\"members\":[");
        for (i, member) in self.membership.members().iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            member_json(&mut body, member);
        }
        body.push_str("]}\n");
        let mut r = response::with_body(200, JSON, body);
        response::set(&mut r, "X-Etcd-Cluster-Id", &self.config.cluster_id);
        r
    }

    /// `/v2/members/leader` (G56); 503 `During election` without one.
    pub(super) async fn members_leader(&self) -> Response {
        let leader = self.client.status().await.ok().and_then(|s| s.leader);
        match leader.and_then(|id| self.member(id)) {
            Some(member) => {
                let mut body = String::new();
                member_json(&mut body, &member);
                body.push('\n');
                let mut r = response::with_body(200, JSON, body);
                response::set(&mut r, "X-Etcd-Cluster-Id", &self.config.cluster_id);
                r
            }
            None => response::message_error(503, "During election"),
        }
    }

    /// `/v2/stats/self` (G57).
    pub(super) async fn stats_self(&self) -> Response {
        let status = self.client.status().await.ok();
        let state = match status.as_ref().map(|s| s.role) {
            Some(RoleKind::Leader) => "StateLeader",
            Some(RoleKind::Candidate | RoleKind::PreCandidate) => "StateCandidate",
            _ => "StateFollower",
        };
        let me = self.me();
        let now = self.clock.unix_ms();
        let start = format_rfc3339_ms(self.start_unix_ms, ExpirationStyle::Zulu);
        let mut body = String::from("{\"name\":");
        push_json_string(&mut body, me.as_ref().map_or("", |m| m.name.as_str()));
        body.push_str(",\"id\":");
        push_json_string(&mut body, me.as_ref().map_or("", |m| m.hex_id.as_str()));
        body.push_str(",\"state\":");
        push_json_string(&mut body, state);
        body.push_str(",\"startTime\":");
        push_json_string(&mut body, &start);
        let leader = status.and_then(|s| s.leader).and_then(|id| self.member(id));
        body.push_str(",\"leaderInfo\":{\"leader\":");
        push_json_string(&mut body, leader.as_ref().map_or("", |m| m.hex_id.as_str()));
        body.push_str(",\"uptime\":");
        push_json_string(
            &mut body,
            &go_duration(now.saturating_sub(self.start_unix_ms)),
        );
        body.push_str(",\"startTime\":");
        push_json_string(&mut body, &start);
        let counts = &self.config.metrics;
        let received = crate::server::Metrics::get(&counts.append_received);
        let sent = crate::server::Metrics::get(&counts.append_sent);
        let _ = write!(
            body,
            "}},\"recvAppendRequestCnt\":{received},\"sendAppendRequestCnt\":{sent}}}"
        );
        response::with_body(200, JSON, body)
    }

    /// `/v2/stats/leader` (G58, G174): followers by id; 403 on a follower (G173). Latencies are
    /// the round trips of AppendEntries in ms; `success` counts answered ones, `fail` those
    /// never answered, since this member became leader.
    pub(super) async fn stats_leader(&self) -> Response {
        let status = self.client.status().await.ok();
        if status.as_ref().map(|s| s.role) != Some(RoleKind::Leader) {
            return response::message_error(403, "not current leader");
        }
        let measured = self.client.leader_stats().await.unwrap_or_default();
        let me = self.me();
        let mut body = String::from("{\"leader\":");
        push_json_string(&mut body, me.as_ref().map_or("", |m| m.hex_id.as_str()));
        body.push_str(",\"followers\":{");
        let followers: Vec<MemberInfo> = self
            .membership
            .members()
            .into_iter()
            .filter(|m| m.id != self.config.id)
            .collect();
        for (i, follower) in followers.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            push_json_string(&mut body, &follower.hex_id);
            let s = measured
                .iter()
                .find(|s| s.id == follower.id)
                .copied()
                .unwrap_or_default();
            let l = s.latency;
            body.push_str(&format!(
                ":{{\"latency\":{{\"current\":{},\"average\":{},\"standardDeviation\":{},\"minimum\":{},\"maximum\":{}}},\"counts\":{{\"fail\":{},\"success\":{}}}}}",
                l.current, l.average, l.standard_deviation, l.minimum, l.maximum, s.fail, s.success
            ));
        }
        body.push_str("}}");
        response::with_body(200, JSON, body)
    }

    /// `/v2/stats/store` (G59): this member's counts of the requests it served.
    pub(super) fn stats_store(&self) -> Response {
        let mut body = String::from("{");
        for (i, name) in STORE_STAT_NAMES.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            let value = self.stats.counters[i].load(Ordering::Relaxed);
            body.push_str(&format!("\"{name}\":{value}"));
        }
        let watchers = self.stats.watchers.load(Ordering::Relaxed);
        body.push_str(&format!(",\"watchers\":{watchers}}}"));
        response::with_body(200, JSON, body)
    }

    /// 0.x `/v2/leader`: the leader's peer URL as text (store/README.md §11.2).
    pub(super) async fn legacy_leader(self: &Arc<Self>) -> Response {
        let leader = self.client.status().await.ok().and_then(|s| s.leader);
        match leader
            .and_then(|id| self.member(id))
            .and_then(|m| m.peer_urls.into_iter().next())
        {
            Some(url) => response::with_body(200, TEXT, url),
            None => response::plain_error(500, "no leader"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::go_duration;

    #[test]
    fn durations_read_like_go() {
        assert_eq!(go_duration(16_124), "16.124s");
        assert_eq!(go_duration(16_000), "16s");
        assert_eq!(go_duration(123_500), "2m3.5s");
        assert_eq!(go_duration(3_600_000), "1h0m0s");
    }
}
