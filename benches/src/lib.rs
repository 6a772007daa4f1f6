//! Criterion suites live in `benches/benches/`; this library is empty.
//!
//! - `simulator`: simulated time over wall time for the reference world (5 nodes, 50 ms
//!   heartbeats, 150-300 ms election timeouts, 100 commands per simulated second, all checks on).
//!   Criterion's throughput line reads "elements/s" = simulated milliseconds per wall second;
//!   divide by 1000 for the speed-up.
//! - `raft`: the pure Raft core, propose -> ready -> advance cycles, no runtime in the loop.
