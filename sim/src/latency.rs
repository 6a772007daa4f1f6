//! How long acknowledged writes took, by the role of the node the client asked: the leader, or a
//! follower that forwards them (in simulated time, from the client's request to its answer). A
//! forwarding path that adds a fixed delay (a timer, a missed wake-up) shows here as a gap
//! between the two far above one network round trip.

use serde::Serialize;

use crate::check::history::Ret;
use crate::cluster::RoleChange;
use crate::workload::History;

/// Acknowledged write latencies of one run, by the asked node's role when the request left.
#[derive(Clone, Debug, Default, Serialize)]
pub struct WriteLatency {
    /// Writes sent to the leader.
    pub at_leader: Summary,
    /// Writes sent to a follower (forwarded to the leader through Raft).
    pub at_follower: Summary,
}

/// Count and percentiles, in µs of simulated time.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    /// Acknowledged writes.
    pub count: usize,
    /// Median.
    pub p50_us: Option<u64>,
    /// 99th percentile.
    pub p99_us: Option<u64>,
}

impl Summary {
    fn of(us: &[u64]) -> Summary {
        Summary {
            count: us.len(),
            p50_us: crate::handover::percentile(us, 50),
            p99_us: crate::handover::percentile(us, 99),
        }
    }
}

/// The latencies of `history`'s acknowledged writes; `roles` is the run's record of role
/// changes (time order).
pub fn write_latency(history: &History, roles: &[RoleChange]) -> WriteLatency {
    let (mut leader, mut follower) = (Vec::new(), Vec::new());
    for record in &history.ops {
        let op = &record.op;
        if !op.call.is_write() || !matches!(op.ret, Ret::Ok { .. }) {
            continue;
        }
        let role = roles
            .iter()
            .take_while(|c| c.at_us <= op.invoke_us)
            .filter(|c| c.node == op.node)
            .last()
            .map(|c| c.role);
        let took = op.complete_us.saturating_sub(op.invoke_us);
        match role {
            Some("leader") => leader.push(took),
            Some("follower") => follower.push(took),
            _ => {}
        }
    }
    WriteLatency {
        at_leader: Summary::of(&leader),
        at_follower: Summary::of(&follower),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::history::{Call, Op};
    use crate::workload::{OpKind, OpRecord};

    fn write(id: u64, node: u64, (invoke_us, complete_us): (u64, u64), ok: bool) -> OpRecord {
        OpRecord {
            kind: OpKind::Set,
            op: Op {
                id,
                client: 0,
                node,
                invoke_us,
                complete_us,
                call: Call::Set {
                    key: "/k".into(),
                    value: "v".into(),
                    expire_at_us: None,
                },
                ret: if ok {
                    Ret::Ok {
                        index: id,
                        action: "set".into(),
                        key: "/k".into(),
                        value: Some("v".into()),
                        modified_index: id,
                    }
                } else {
                    Ret::Unknown
                },
            },
            data_hash: None,
            http: None,
        }
    }

    fn role(at_us: u64, node: u64, role: &'static str) -> RoleChange {
        RoleChange {
            at_us,
            node,
            role,
            term: 1,
        }
    }

    #[test]
    fn writes_are_split_by_the_asked_nodes_role_when_they_left() {
        let roles = [
            role(0, 1, "follower"),
            role(0, 2, "follower"),
            role(100, 1, "leader"),
            role(5_000, 2, "leader"),
            role(5_000, 1, "follower"),
        ];
        let history = History {
            ops: vec![
                write(1, 1, (200, 1_200), true),
                write(2, 2, (300, 3_300), true),
                write(3, 1, (400, 9_400), false),
                write(4, 2, (6_000, 6_500), true),
                write(5, 1, (6_000, 8_000), true),
            ],
        };
        let w = write_latency(&history, &roles);
        assert_eq!(w.at_leader.count, 2);
        assert_eq!(w.at_leader.p50_us, Some(500));
        assert_eq!(w.at_leader.p99_us, Some(1_000));
        assert_eq!(w.at_follower.count, 2);
        assert_eq!(w.at_follower.p99_us, Some(3_000));
    }
}
