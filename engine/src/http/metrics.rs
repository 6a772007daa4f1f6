//! `GET /metrics`: the node's counters in the Prometheus text exposition format (version
//! 0.0.4), under etcd's metric names where etcd exports the same measurement, so dashboards
//! and alerts written for etcd read Floe unchanged.

use std::fmt::Write as _;
use std::sync::atomic::AtomicU64;

use super::App;
use super::response::{self, Response};
use crate::server::metrics::{Histogram, Metrics};

/// The exposition format's content type.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

impl<C: super::HttpClock> App<C> {
    /// `/metrics`.
    pub(super) fn metrics(&self) -> Response {
        response::with_body(200, TEXT_FORMAT, render(&self.config.metrics))
    }
}

/// The whole exposition.
pub fn render(m: &Metrics) -> String {
    let mut out = String::new();
    let gauges: [(&str, &str, &AtomicU64); 5] = [
        (
            "etcd_server_has_leader",
            "1 while this member knows a leader of its term, else 0.",
            &m.has_leader,
        ),
        (
            "etcd_server_is_leader",
            "1 while this member is the leader, else 0.",
            &m.is_leader,
        ),
        ("etcd_server_term", "This member's Raft term.", &m.term),
        (
            "etcd_server_proposals_pending",
            "Client proposals waiting here for their answer.",
            &m.proposals_pending,
        ),
        (
            "etcd_server_proposals_applied_total",
            "The index up to which this member applied committed entries.",
            &m.applied,
        ),
    ];
    for (name, help, value) in gauges {
        metric(&mut out, name, "gauge", help, Metrics::get(value));
    }
    let counters: [(&str, &str, &AtomicU64); 6] = [
        (
            "etcd_network_peer_sent_failures_total",
            "Messages to peers dropped because a peer's send queue was full.",
            &m.peer_sends_dropped,
        ),
        (
            "etcd_server_leader_changes_seen_total",
            "Times this member saw a new leader.",
            &m.leader_changes,
        ),
        (
            "etcd_server_proposals_committed_total",
            "The index up to which entries are committed, as this member knows.",
            &m.committed,
        ),
        (
            "etcd_server_proposals_failed_total",
            "Client proposals that ended unapplied or with an unknown outcome.",
            &m.proposals_failed,
        ),
        (
            "floe_raft_append_requests_received_total",
            "AppendEntries requests received.",
            &m.append_received,
        ),
        (
            "floe_raft_append_requests_sent_total",
            "AppendEntries requests sent.",
            &m.append_sent,
        ),
    ];
    for (name, help, value) in counters {
        metric(&mut out, name, "counter", help, Metrics::get(value));
    }
    histogram(
        &mut out,
        "etcd_disk_wal_fsync_duration_seconds",
        "How long the log's syncs took.",
        &m.wal_fsync,
    );
    histogram(
        &mut out,
        "etcd_debugging_snap_save_total_duration_seconds",
        "How long taking and writing a snapshot took.",
        &m.snapshot_save,
    );
    histogram(
        &mut out,
        "etcd_network_peer_round_trip_time_seconds",
        "AppendEntries round trips to the followers, measured while leading.",
        &m.peer_round_trip,
    );
    out
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

fn histogram(out: &mut String, name: &str, help: &str, h: &Histogram) {
    let (buckets, count, sum_us) = h.snapshot();
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    for (bound_us, cumulative) in buckets {
        let le = bound_us as f64 / 1e6;
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
    let _ = writeln!(out, "{name}_sum {}", sum_us as f64 / 1e6);
    let _ = writeln!(out, "{name}_count {count}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_etcd_names_types_and_cumulative_buckets() {
        let m = Metrics::default();
        Metrics::set(&m.has_leader, 1);
        Metrics::add(&m.leader_changes, 2);
        m.wal_fsync.observe(1_500);
        let text = render(&m);
        assert!(text.contains("# TYPE etcd_server_has_leader gauge\netcd_server_has_leader 1\n"));
        assert!(text.contains("etcd_server_leader_changes_seen_total 2\n"));
        assert!(text.contains("etcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.001\"} 0\n"));
        assert!(text.contains("etcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.002\"} 1\n"));
        assert!(text.contains("etcd_disk_wal_fsync_duration_seconds_bucket{le=\"+Inf\"} 1\n"));
        assert!(text.contains("etcd_disk_wal_fsync_duration_seconds_sum 0.0015\n"));
        assert!(text.contains("etcd_disk_wal_fsync_duration_seconds_count 1\n"));
    }
}
