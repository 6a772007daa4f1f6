//! Time without a leader after a planned leadership transfer (thesis §3.10) and after a leader
//! crash: each such event opens a gap, closed when some node first leads a higher term. A
//! transfer counts only once its leader was seen transferring; one that gave up (the leader
//! still leads its term, no transfer running) is counted apart.

use engine::raft::{RawNode, RoleKind};
use serde::Serialize;

/// Why a gap opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cause {
    Transfer,
    Crash,
}

/// A gap still open.
#[derive(Clone, Debug)]
struct Open {
    cause: Cause,
    /// The leader at the event, and its term.
    leader: u64,
    term: u64,
    at_us: u64,
    /// Transfers: the leader was seen transferring.
    started: bool,
}

/// The gaps of one run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Handovers {
    /// Microseconds from each planned transfer to the next term's leader.
    pub transfer_us: Vec<u64>,
    /// Microseconds from each leader crash to the next term's leader.
    pub crash_us: Vec<u64>,
    /// Transfers that gave up (the leader kept its term) or never started (it no longer led).
    pub transfers_not_done: u64,
    /// When the last transfer was asked for (simulated µs).
    #[serde(skip)]
    pub last_asked_us: u64,
    #[serde(skip)]
    open: Vec<Open>,
}

impl Handovers {
    /// `leader` of `term` was asked to hand over its leadership at `at_us`.
    pub fn transfer_asked(&mut self, leader: u64, term: u64, at_us: u64) {
        self.last_asked_us = at_us;
        self.open_gap(Cause::Transfer, leader, term, at_us);
    }

    /// `leader` of `term` crashed at `at_us`.
    pub fn leader_crashed(&mut self, leader: u64, term: u64, at_us: u64) {
        self.open_gap(Cause::Crash, leader, term, at_us);
    }

    fn open_gap(&mut self, cause: Cause, leader: u64, term: u64, at_us: u64) {
        self.open.push(Open {
            cause,
            leader,
            term,
            at_us,
            started: false,
        });
    }

    /// A node stepped: a leader of a higher term closes gaps; the old leader shows whether its
    /// transfer runs, or gave up.
    pub fn stepped(&mut self, raw: &RawNode, now_us: u64) {
        if self.open.is_empty() {
            return;
        }
        let s = raw.status();
        let leading = s.role == RoleKind::Leader;
        let transferring = raw.transfer_target().is_some();
        let mut not_done = 0;
        let (transfer_us, crash_us) = (&mut self.transfer_us, &mut self.crash_us);
        self.open.retain_mut(|g| {
            if leading && s.term.0 > g.term {
                match g.cause {
                    Cause::Crash => crash_us.push(now_us - g.at_us),
                    Cause::Transfer if g.started => transfer_us.push(now_us - g.at_us),
                    Cause::Transfer => not_done += 1,
                }
                return false;
            }
            if g.cause == Cause::Transfer && s.id.0 == g.leader && s.term.0 == g.term {
                // Not leading and not started: the request found it no longer leading. Leading
                // and not transferring once started: it gave up. (Leading, not started: the
                // request is still on its way.)
                if leading && transferring {
                    g.started = true;
                } else if leading == g.started {
                    not_done += 1;
                    return false;
                }
            }
            true
        });
        self.transfers_not_done += not_done;
    }
}

/// The `p`-th percentile (0..=100) of `values`, by nearest rank; `None` if empty.
pub fn percentile(values: &[u64], p: u64) -> Option<u64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = (p as usize * sorted.len()).div_ceil(100).max(1);
    Some(sorted[rank - 1])
}
