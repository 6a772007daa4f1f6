//! The Raft thesis §9.2 question, "how often does the first election round split?", answered
//! twice: in closed form and in the simulated world.
//!
//! Setup: every server eligible, all timers restarted by one last heartbeat, the leader gone;
//! timeouts uniform over a range of `R` = 150 ms (150-300 ms); a RequestVote takes a fixed `d`
//! one way, `d` from 1% to 20% of `R`; votes need no disk. A round is *contested* when another
//! server times out before the first candidate's RequestVote reaches it: then it campaigns too.
//! Closed form: the first of `n` timers is contested when one of the `n - 1` others falls within
//! `d` after it; for uniform timers that is `1 - (1 - d/R)^(n-1)` (ignoring the range's end).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::world::{TICK_US, Timing, World};
use engine::raft::{Config, NodeId, RoleKind};

/// One cell of the table.
pub struct Cell {
    /// Servers.
    pub servers: usize,
    /// `d` as a fraction of the range.
    pub fraction: f64,
    /// Closed-form probability that the first round is contested.
    pub closed_form: f64,
    /// Simulated fraction of contested first rounds.
    pub contested: f64,
    /// Simulated fraction of first rounds that elected no leader.
    pub failed: f64,
}

const RANGE_MS: (u64, u64) = (150, 300);

fn trial(servers: usize, d_us: u64, seed: u64) -> (bool, bool) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let per_ms = 1000 / TICK_US;
    let mut w = World::new(
        servers,
        ChaCha8Rng::seed_from_u64(rng.r#gen()),
        Timing::none((d_us, d_us)),
        |id: NodeId, peers, s| {
            let mut c = Config::new(id, peers, s);
            c.election_timeout_ticks = RANGE_MS.0 * per_ms;
            c.election_timeout_max_ticks = RANGE_MS.1 * per_ms + 1;
            c.heartbeat_interval_ticks = RANGE_MS.0 * per_ms / 2;
            c.step_down_resets_timer = false;
            c
        },
    );
    // Server 1 leads, then crashes right after a heartbeat round reached everyone.
    w.nodes[0].as_mut().expect("runs").campaign();
    let leads = |w: &World| matches!(w.role(0), Some((RoleKind::Leader, _)));
    w.run(1_000_000, leads);
    let heartbeat_us = RANGE_MS.0 * 1000 / 2;
    w.run(w.now_us + heartbeat_us + d_us + 1, |_| false);
    let before: Vec<u64> = (0..servers).map(|s| w.campaigns(s)).collect();
    w.crash(0);
    // Until the first round is decided: a leader, or some survivor's second campaign.
    let leader = |w: &World| (1..servers).any(|s| matches!(w.role(s), Some((RoleKind::Leader, _))));
    let again = |w: &World, before: &[u64]| (1..servers).any(|s| w.campaigns(s) >= before[s] + 2);
    let start = w.now_us;
    w.run(start + 2_000_000, |w| leader(w) || again(w, &before));
    let campaigns: u64 = (1..servers).map(|s| w.campaigns(s) - before[s]).sum();
    let elected = leader(&w) && !again(&w, &before);
    (campaigns > 1, !elected)
}

/// The table: 5, 7 and 9 servers; `d` at 1, 2, 5, 10 and 20% of the range.
pub fn table(seed: u64, trials: usize) -> Vec<Cell> {
    let mut cells = Vec::new();
    for servers in [5usize, 7, 9] {
        for fraction in [0.01, 0.02, 0.05, 0.10, 0.20] {
            let range_us = (RANGE_MS.1 - RANGE_MS.0) * 1000;
            let d_us = (range_us as f64 * fraction) as u64;
            let (mut contested, mut failed) = (0usize, 0usize);
            for t in 0..trials {
                let s = super::trial_seed(&[
                    seed,
                    servers as u64,
                    (fraction * 1000.0) as u64,
                    t as u64,
                ]);
                let (c, f) = trial(servers, d_us, s);
                contested += usize::from(c);
                failed += usize::from(f);
            }
            cells.push(Cell {
                servers,
                fraction,
                closed_form: 1.0 - (1.0 - fraction).powi(servers as i32 - 2),
                contested: contested as f64 / trials as f64,
                failed: failed as f64 / trials as f64,
            });
        }
    }
    cells
}

/// The table as Markdown.
pub fn markdown(cells: &[Cell], trials: usize) -> String {
    let mut md =
        String::from("\n## Split votes (Raft thesis §9.2): closed form against simulated\n\n");
    md.push_str(&format!(
        "Every server eligible; timeouts 150-300 ms (range R = 150 ms); a RequestVote takes d one \
         way; the leader crashes right after a heartbeat reached everyone, so the {} survivors' \
         timers start together. *Closed form*: the first timer is contested when one of the \
         other survivors times out within d after it, 1 − (1 − d/R)^(survivors − 1). \
         *Contested*: another survivor campaigned in the first round (simulated, {trials} trials \
         per cell). *Failed*: the first round elected nobody (a split vote).\n\n",
        "n − 1"
    ));
    md.push_str("| servers | d / R | closed form | contested (sim) | failed (sim) |\n|---:|---:|---:|---:|---:|\n");
    for c in cells {
        md.push_str(&format!(
            "| {} | {:.0}% | {:.3} | {:.3} | {:.3} |\n",
            c.servers,
            c.fraction * 100.0,
            c.closed_form,
            c.contested,
            c.failed
        ));
    }
    md
}
