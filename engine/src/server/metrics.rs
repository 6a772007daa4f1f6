//! What a node counts about itself, for `/metrics` (the Prometheus text format, with etcd's
//! metric names where etcd has the metric) and `/v2/stats/self`.
//!
//! The node loop writes, readers on other threads read: every field is an atomic, written with
//! relaxed ordering (each value is meaningful on its own; none guards another). Nothing here
//! feeds back into what the node does, so the simulator's runs do not depend on it.

use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the duration buckets, µs: 1 ms doubling to 8.192 s, as etcd buckets its WAL
/// fsync and snapshot durations.
pub const DURATION_BUCKETS_US: [u64; 14] = [
    1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 512_000, 1_024_000,
    2_048_000, 4_096_000, 8_192_000,
];

/// Upper bounds of the round-trip buckets, µs: 0.1 ms doubling to 0.8192 s, as etcd buckets
/// its peer round-trip times.
pub const ROUND_TRIP_BUCKETS_US: [u64; 14] = [
    100, 200, 400, 800, 1_600, 3_200, 6_400, 12_800, 25_600, 51_200, 102_400, 204_800, 409_600,
    819_200,
];

/// A histogram with fixed buckets; each count is of observations at or under its bound.
#[derive(Debug)]
pub struct Histogram {
    bounds_us: &'static [u64; 14],
    /// Observations per bucket (not cumulative), then those over the last bound.
    counts: [AtomicU64; 15],
    sum_us: AtomicU64,
}

impl Histogram {
    /// An empty histogram over `bounds_us`.
    pub fn new(bounds_us: &'static [u64; 14]) -> Histogram {
        Histogram {
            bounds_us,
            counts: Default::default(),
            sum_us: AtomicU64::new(0),
        }
    }

    /// Records one observation of `us` microseconds.
    pub fn observe(&self, us: u64) {
        let bucket = self
            .bounds_us
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(self.bounds_us.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// `(bound µs, cumulative count)` per bucket, the total count and the sum in µs.
    pub fn snapshot(&self) -> (Vec<(u64, u64)>, u64, u64) {
        let mut cumulative = 0;
        let buckets = self
            .bounds_us
            .iter()
            .zip(&self.counts)
            .map(|(&bound, count)| {
                cumulative += count.load(Ordering::Relaxed);
                (bound, cumulative)
            })
            .collect();
        let total = cumulative + self.counts[self.bounds_us.len()].load(Ordering::Relaxed);
        (buckets, total, self.sum_us.load(Ordering::Relaxed))
    }
}

/// One node's counters and gauges.
#[derive(Debug)]
pub struct Metrics {
    /// 1 while the node knows a leader of its term.
    pub has_leader: AtomicU64,
    /// 1 while the node leads.
    pub is_leader: AtomicU64,
    /// Times the node saw a new leader (a leader it had not followed just before).
    pub leader_changes: AtomicU64,
    /// The node's term.
    pub term: AtomicU64,
    /// The commit index (etcd counts committed proposals so).
    pub committed: AtomicU64,
    /// The applied index.
    pub applied: AtomicU64,
    /// Client proposals waiting for their answer here.
    pub proposals_pending: AtomicU64,
    /// Client proposals that ended without being applied, or with an unknown outcome.
    pub proposals_failed: AtomicU64,
    /// AppendEntries requests received (`/v2/stats/self` `recvAppendRequestCnt`).
    pub append_received: AtomicU64,
    /// AppendEntries requests sent (`sendAppendRequestCnt`).
    pub append_sent: AtomicU64,
    /// Messages to peers dropped because a peer's send queue was full.
    pub peer_sends_dropped: AtomicU64,
    /// Log syncs.
    pub wal_fsync: Histogram,
    /// Snapshots taken and written.
    pub snapshot_save: Histogram,
    /// AppendEntries round trips measured while leading.
    pub peer_round_trip: Histogram,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            has_leader: AtomicU64::new(0),
            is_leader: AtomicU64::new(0),
            leader_changes: AtomicU64::new(0),
            term: AtomicU64::new(0),
            committed: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            proposals_pending: AtomicU64::new(0),
            proposals_failed: AtomicU64::new(0),
            append_received: AtomicU64::new(0),
            append_sent: AtomicU64::new(0),
            peer_sends_dropped: AtomicU64::new(0),
            wal_fsync: Histogram::new(&DURATION_BUCKETS_US),
            snapshot_save: Histogram::new(&DURATION_BUCKETS_US),
            peer_round_trip: Histogram::new(&ROUND_TRIP_BUCKETS_US),
        }
    }
}

impl Metrics {
    /// Reads a counter or gauge.
    pub fn get(value: &AtomicU64) -> u64 {
        value.load(Ordering::Relaxed)
    }

    pub(crate) fn set(value: &AtomicU64, to: u64) {
        value.store(to, Ordering::Relaxed);
    }

    pub(crate) fn add(value: &AtomicU64, n: u64) {
        value.fetch_add(n, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_with_an_overflow() {
        let h = Histogram::new(&DURATION_BUCKETS_US);
        h.observe(500);
        h.observe(1_000);
        h.observe(3_000);
        h.observe(10_000_000);
        let (buckets, total, sum) = h.snapshot();
        assert_eq!(buckets[0], (1_000, 2));
        assert_eq!(buckets[1], (2_000, 2));
        assert_eq!(buckets[2], (4_000, 3));
        assert_eq!(buckets.last(), Some(&(8_192_000, 3)));
        assert_eq!(total, 4);
        assert_eq!(sum, 10_004_500);
    }
}
