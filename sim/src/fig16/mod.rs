//! `sim research elections`: Figure 16 of the Raft paper (Ongaro & Ousterhout 2014, §9.3),
//! reproduced with Floe's Raft core, beside Ongaro's measured data.
//!
//! The setup follows the paper: five servers; requests travel 1.56-1.64 ms one way, a new
//! candidate's RequestVotes wait 1.13-2.07 ms for its term and vote to be durable, and answers
//! wait 0.65-5.25 ms for the disk (a vote or an acknowledgement is durable before it is sent),
//! so an election round takes about 5-11 ms (the paper: a broadcast time of "about 15 ms"); two
//! of the four survivors have shorter logs and cannot win (AppendEntries reach them without
//! entries and their refusals are lost, so they hear exactly the leader's heartbeats, like the
//! others); the leader heartbeats every half minimum election timeout, each AppendEntries
//! leaving up to 65 µs late (one sender per follower); after a second of normal operation it is
//! crashed at a uniformly random point of its heartbeat interval; the time measured runs from
//! the crash until every other live server has received an AppendEntries of the new leader.
//!
//! Four things about LogCabin, the implementation the paper measured, shape the curves; each is
//! read off its 2012-2015 source (`Server/RaftConsensus.cc`):
//! - **Timeouts in whole milliseconds.** `setElectionTimer` draws `lround` of a uniform
//!   millisecond count, so "150-151" is 150 or 151 ms (half each), "150-155" is 150-155 with the
//!   ends half as likely, and "150-150" is exactly 150 every time
//!   (`Config::election_timeout_step_ticks`, `--timeout-step-us`, default 1000).
//! - **The paper's timer rule.** Only an AppendEntries of the current leader or a granted vote
//!   restarts the timer; a step-down to a higher term does not
//!   (`Config::step_down_resets_timer = false`).
//! - **One lock across fsync.** Voting, stepping down and campaigning write the metadata file
//!   (two fsyncs) while holding the one `RaftConsensus` mutex, so a server writing to disk
//!   handles nothing else, not even its timer (`--busy-disk`, default on).
//! - **A timer thread.** It runs a moment after its timeout is due (up to 1.77 ms here, OS
//!   scheduling), messages meanwhile find the server still a follower, and its next timeout
//!   counts from when it ran.
//!
//! And each server's clock runs fast or slow by up to 38 ppm (crystal drift). Raft ticks are
//! 100 µs and each server ticks at its own random phase.
//!
//! With whole-millisecond timeouts, 150-150's timers are identical and only lateness and drift
//! take them apart, slowly, which is why it never elects within 10 s, as the paper observed.
//! Every timing is a flag of `sim research elections` ([`Timing`]). How the defaults were
//! chosen, per-round success rates against Ongaro's, and the models that were measured and
//! rejected are in `reports/elections/lab-notes.md`.

mod report;
pub mod splitvote;
pub mod variants;
mod world;

use engine::raft::{Config, NodeId, RoleKind, Term};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use report::{ks_statistic, write_report};
pub use world::Timing;
use world::{TICK_US, World};

/// One curve of the figure: a timeout range and its number of trials.
#[derive(Clone, Copy, Debug)]
pub struct Curve {
    /// Minimum election timeout, ms.
    pub min_ms: u64,
    /// Maximum election timeout, ms (inclusive).
    pub max_ms: u64,
    /// Trials (Ongaro's count).
    pub trials: usize,
}

impl Curve {
    /// `150-155`, as in Ongaro's CSV.
    pub fn label(&self) -> String {
        format!("{}-{}", self.min_ms, self.max_ms)
    }
}

/// The top graph's curves, then the bottom graph's.
pub const CURVES: [Curve; 10] = [
    Curve {
        min_ms: 150,
        max_ms: 150,
        trials: 100,
    },
    Curve {
        min_ms: 150,
        max_ms: 151,
        trials: 1000,
    },
    Curve {
        min_ms: 150,
        max_ms: 155,
        trials: 1000,
    },
    Curve {
        min_ms: 150,
        max_ms: 175,
        trials: 1000,
    },
    Curve {
        min_ms: 150,
        max_ms: 200,
        trials: 1000,
    },
    Curve {
        min_ms: 150,
        max_ms: 300,
        trials: 1000,
    },
    Curve {
        min_ms: 12,
        max_ms: 24,
        trials: 1000,
    },
    Curve {
        min_ms: 25,
        max_ms: 50,
        trials: 1000,
    },
    Curve {
        min_ms: 50,
        max_ms: 100,
        trials: 1000,
    },
    Curve {
        min_ms: 100,
        max_ms: 200,
        trials: 1000,
    },
];

/// A trial that has no new leader after this long is cut off and recorded at the cap.
pub const TRIAL_CAP_MS: u64 = 100_000;

/// One-way network latency, µs: requests (RequestVote, AppendEntries) arrive this fast.
const LATENCY_US: (u64, u64) = (1_556, 1_637);

/// Disk time before a server's answers leave, µs (a vote or an acknowledgement is made durable
/// first).
const DISK_US: (u64, u64) = (653, 5_251);

/// Time a new candidate takes to make its new term and vote durable before its RequestVotes
/// leave, µs (a small metadata write). Candidate write + latency + disk + latency: an election
/// round of 4.8-10.4 ms, within the paper's "about 15 ms" broadcast time.
const VOTE_DISK_US: (u64, u64) = (1_126, 2_065);

/// Most lateness of a server's timer thread, µs: a timer runs up to this long after it is due
/// and the next timeout counts from then, so identical timeouts drift apart (a random walk)
/// instead of staying in lockstep for ever.
const TIMER_LATE_US: u64 = 1_769;

/// Most extra delay of each AppendEntries before it leaves, µs (one sender per follower).
const APPEND_SPREAD_US: u64 = 65;

/// Granularity of the drawn election timeouts, µs: LogCabin, which the paper measured, drew
/// them in whole milliseconds (`RaftConsensus::setElectionTimer`, 2012-2015, rounds a uniform
/// draw with `lround`), so "150-151" is 150 or 151 ms and "150-150" exactly 150.
const TIMEOUT_STEP_US: u64 = 1_000;

/// Clock drift, ppm: each server's clock runs up to this much fast or slow (quartz crystals
/// are specified to tens of ppm). Over the hundreds of rounds of 150-150 it is what slowly
/// takes identical timeouts apart.
const DRIFT_PPM: u64 = 38;

/// A server handles nothing while it writes to disk: LogCabin held its one `RaftConsensus`
/// mutex across `updateLogMetadata`, two fsyncs, when it voted, stepped down or campaigned.
const BUSY_DISK: bool = true;

/// The reproduction's timing (the constants above); `sim research elections` takes every field
/// as a flag, for exploring other models.
impl Default for Timing {
    fn default() -> Timing {
        Timing {
            latency_us: LATENCY_US,
            disk_us: DISK_US,
            disk_tail_us: 0,
            vote_disk_us: VOTE_DISK_US,
            timer_late_us: TIMER_LATE_US,
            drift_ppm: DRIFT_PPM,
            leader_disk: false,
            busy_disk: BUSY_DISK,
            append_spread_us: APPEND_SPREAD_US,
            timeout_step_us: TIMEOUT_STEP_US,
        }
    }
}

impl Timing {
    /// What differs from the reproduction's timing, for the report (empty when nothing does).
    pub fn differences(&self) -> String {
        let range = |(a, b): (u64, u64)| format!("{a}..{b}");
        // Each flag with its value here and in the default, in the order of `--help`.
        let flags = |t: &Timing| {
            [
                ("--latency-us", range(t.latency_us)),
                ("--disk-us", range(t.disk_us)),
                ("--disk-tail-us", t.disk_tail_us.to_string()),
                ("--vote-disk-us", range(t.vote_disk_us)),
                ("--timer-late-us", t.timer_late_us.to_string()),
                ("--drift-ppm", t.drift_ppm.to_string()),
                ("--leader-disk", t.leader_disk.to_string()),
                ("--busy-disk", t.busy_disk.to_string()),
                ("--append-spread-us", t.append_spread_us.to_string()),
                ("--timeout-step-us", t.timeout_step_us.to_string()),
            ]
        };
        flags(self)
            .into_iter()
            .zip(flags(&Timing::default()))
            .filter(|(ours, default)| ours.1 != default.1)
            .map(|((flag, value), _)| format!("{flag} {value}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The experiment's knobs.
#[derive(Clone, Debug)]
pub struct Setup {
    /// Cluster size.
    pub servers: usize,
    /// PreVote on.
    pub pre_vote: bool,
    /// CheckQuorum on.
    pub check_quorum: bool,
    /// The Raft paper's timer rule (LogCabin's): a step-down to a higher term does not restart
    /// the election timer.
    pub paper_timer: bool,
    /// Election timeouts drawn once at start instead of at every timer restart.
    pub drawn_once: bool,
    /// A candidate refused by a majority backs off one maximum timeout.
    pub backoff: bool,
    /// The world's timing.
    pub timing: Timing,
}

impl Setup {
    /// The reproduction's setup for `servers` servers.
    pub fn paper(servers: usize) -> Setup {
        Setup {
            servers,
            pre_vote: false,
            check_quorum: false,
            paper_timer: true,
            drawn_once: false,
            backoff: false,
            timing: Timing::default(),
        }
    }
}

fn config(curve: Curve, setup: &Setup, id: NodeId, peers: Vec<NodeId>, seed: u64) -> Config {
    let per_ms = 1000 / TICK_US;
    let mut c = Config::new(id, peers, seed);
    c.election_timeout_ticks = curve.min_ms * per_ms;
    c.election_timeout_max_ticks = curve.max_ms * per_ms + 1;
    c.election_timeout_step_ticks = (setup.timing.timeout_step_us / TICK_US).max(1);
    c.heartbeat_interval_ticks = (curve.min_ms * per_ms / 2).max(1);
    c.pre_vote = setup.pre_vote;
    c.check_quorum = setup.check_quorum;
    c.step_down_resets_timer = !setup.paper_timer;
    c.redraw_timeout = !setup.drawn_once;
    c.backoff_on_lost_vote = setup.backoff;
    c
}

/// The leader of the highest term among running nodes.
fn leader_of(world: &World) -> Option<(usize, Term)> {
    (0..world.nodes.len())
        .filter_map(|slot| match world.role(slot) {
            Some((RoleKind::Leader, term)) => Some((slot, term)),
            _ => None,
        })
        .max_by_key(|&(_, term)| term)
}

/// One trial: ms from the leader's crash until every other live server heard the new leader.
pub fn trial(curve: Curve, setup: &Setup, seed: u64) -> u64 {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let world_rng = ChaCha8Rng::seed_from_u64(rng.r#gen());
    let mut w = World::new(setup.servers, world_rng, setup.timing, |id, peers, s| {
        config(curve, setup, id, peers, s)
    });
    // Half the survivors (the last servers) keep shorter logs: they can never win (Raft §5.4.1).
    // With five servers that is the paper's "two of the four survivors".
    let n = setup.servers;
    for slot in n - (n - 1) / 2..n {
        w.starve[slot] = true;
    }
    // Node 1 leads; a few entries commit everywhere but on the starved servers.
    w.nodes[0].as_mut().expect("running").campaign();
    w.run(5_000_000, |w| leader_of(w).is_some());
    let Some((first, _)) = leader_of(&w) else {
        panic!("node 1 wins an undisturbed election ({setup:?}, {curve:?}, seed {seed})");
    };
    for i in 0..2u8 {
        let node = w.nodes[first].as_mut().expect("the leader runs");
        let _ = node.propose(vec![i]);
    }
    // Normal operation, then a crash of the leader of the highest term (with short timeouts
    // leadership may have moved) at a uniform point of the heartbeat interval.
    let heartbeat_us = (curve.min_ms / 2).max(1) * 1000;
    let crash_us = 1_000_000 + rng.gen_range(0..heartbeat_us);
    w.run(crash_us, |_| false);
    let (leader, _) = leader_of(&w).unwrap_or((first, Term(0)));
    let term = (0..n)
        .filter_map(|s| w.role(s))
        .map(|(_, t)| t)
        .max()
        .unwrap_or_default();
    w.crash(leader);
    w.watch_term = Term(term.0 + 1);
    let others: Vec<usize> = (0..n).filter(|&s| s != leader).collect();
    let done = |w: &World| match leader_of(w) {
        Some((new, _)) => others
            .iter()
            .filter(|&&s| s != new)
            .all(|&s| w.heard_at[s].is_some_and(|_| true)),
        None => false,
    };
    w.run(crash_us + TRIAL_CAP_MS * 1000, done);
    let Some((new, _)) = leader_of(&w) else {
        return TRIAL_CAP_MS;
    };
    let last = others
        .iter()
        .filter(|&&s| s != new)
        .filter_map(|&s| w.heard_at[s])
        .max()
        .unwrap_or(crash_us + TRIAL_CAP_MS * 1000);
    (last - crash_us).div_ceil(1000)
}

/// Every trial of `curve`, seeded from `(seed, curve, servers, trial)`.
pub fn run_curve(curve: Curve, setup: &Setup, seed: u64, trials: usize) -> Vec<u64> {
    (0..trials)
        .map(|t| {
            let s = trial_seed(&[
                seed,
                curve.min_ms,
                curve.max_ms,
                setup.servers as u64,
                t as u64,
            ]);
            trial(curve, setup, s)
        })
        .collect()
}

/// One trial's seed from its coordinates, each folded in through SplitMix64's finalizer, so
/// that no two coordinates share a seed (XOR-ing shifted fields did: seeds 1 and 3 ran the same
/// trials in another order).
pub(crate) fn trial_seed(parts: &[u64]) -> u64 {
    parts.iter().fold(0x6a09_e667_f3bc_c908, |acc, &p| {
        let mut z = (acc ^ p).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_timings_change_the_trials_and_are_named_in_the_report() {
        let curve = Curve {
            min_ms: 150,
            max_ms: 155,
            trials: 30,
        };
        let base = Setup::paper(5);
        let drifting = Setup {
            timing: Timing {
                drift_ppm: 50,
                disk_tail_us: 2_000,
                leader_disk: true,
                busy_disk: false,
                append_spread_us: 500,
                timeout_step_us: 0,
                ..Timing::default()
            },
            ..Setup::paper(5)
        };
        let a = run_curve(curve, &drifting, 3, 30);
        assert_eq!(
            a,
            run_curve(curve, &drifting, 3, 30),
            "same seed, same trials"
        );
        assert_ne!(a, run_curve(curve, &base, 3, 30));
        assert_eq!(Timing::default().differences(), "");
        assert_eq!(
            drifting.timing.differences(),
            "--disk-tail-us 2000 --drift-ppm 50 --leader-disk true --busy-disk false \
             --append-spread-us 500 --timeout-step-us 0"
        );
    }

    #[test]
    fn a_short_curve_is_deterministic_and_plausible() {
        let setup = Setup::paper(5);
        let curve = Curve {
            min_ms: 150,
            max_ms: 200,
            trials: 20,
        };
        let a = run_curve(curve, &setup, 7, 20);
        assert_eq!(a, run_curve(curve, &setup, 7, 20), "same seed, same trials");
        for ms in &a {
            assert!((100..=1000).contains(ms), "{a:?}");
        }
    }

    /// The paper's landmarks under the default model: 150-155's median near 287 ms, and
    /// 150-150 never electing within 10 s.
    #[test]
    fn the_default_model_keeps_the_papers_landmarks() {
        let setup = Setup::paper(5);
        let narrow = Curve {
            min_ms: 150,
            max_ms: 155,
            trials: 300,
        };
        let mut ms = run_curve(narrow, &setup, 1, 300);
        ms.sort_unstable();
        assert!((250..=330).contains(&ms[150]), "150-155 median {}", ms[150]);
        let identical = Curve {
            min_ms: 150,
            max_ms: 150,
            trials: 4,
        };
        let ms = run_curve(identical, &setup, 1, 4);
        assert!(ms.iter().all(|&m| m >= 10_000), "150-150: {ms:?}");
    }

    #[test]
    fn seeds_that_differ_in_low_bits_run_different_trials() {
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..4 {
            for t in 0..64 {
                assert!(
                    seen.insert(trial_seed(&[seed, 150, 155, 5, t])),
                    "{seed} {t}"
                );
            }
        }
        let curve = Curve {
            min_ms: 150,
            max_ms: 155,
            trials: 30,
        };
        let sorted = |seed| {
            let mut v = run_curve(curve, &Setup::paper(5), seed, 30);
            v.sort_unstable();
            v
        };
        assert_ne!(
            sorted(1),
            sorted(3),
            "seeds 1 and 3 once ran the same trials"
        );
    }
}

/// What `sim research elections` runs.
#[derive(Clone, Debug)]
pub struct ElectionsOptions {
    /// Trials per curve instead of Ongaro's counts.
    pub trials: Option<usize>,
    /// Cluster size of the main reproduction.
    pub servers: usize,
    /// Base seed.
    pub seed: u64,
    /// Output folder.
    pub out: std::path::PathBuf,
    /// Ongaro's CSV; `None` for the copy built in ([`ONGARO_CSV`]).
    pub ongaro_csv: Option<std::path::PathBuf>,
    /// Also run every curve with 9 servers.
    pub nine: bool,
    /// The world's timing (the reproduction's by default).
    pub timing: Timing,
}

/// Ongaro's measured election times behind the paper's Figure 16 (MIT licence; see
/// `sim/data/raft-paper-fig16/README.md`), built into the simulator so the experiment runs
/// from any directory.
pub const ONGARO_CSV: &str = include_str!("../../data/raft-paper-fig16/ongaro-fig16.csv");

/// Runs every curve, writes the report, returns the README text.
pub fn run_elections(opts: &ElectionsOptions) -> Result<String, String> {
    let text = match &opts.ongaro_csv {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        None => ONGARO_CSV.to_string(),
    };
    let ongaro = report::read_ongaro(&text)?;
    let mut results = Vec::new();
    let mut sizes = vec![opts.servers];
    if opts.nine && opts.servers != 9 {
        sizes.push(9);
    }
    for &servers in &sizes {
        let setup = Setup {
            timing: opts.timing,
            ..Setup::paper(servers)
        };
        for curve in CURVES {
            let trials = opts.trials.unwrap_or(curve.trials);
            let mut ms: Vec<f64> = run_curve(curve, &setup, opts.seed, trials)
                .into_iter()
                .map(|m| m as f64)
                .collect();
            ms.sort_by(f64::total_cmp);
            let label = if servers == opts.servers {
                curve.label()
            } else {
                format!("{} ({servers} servers)", curve.label())
            };
            results.push(report::CurveResult { label, ours: ms });
        }
    }
    // The 9-server rows compare with Ongaro's 5-server data (the paper: "similar").
    let mut ongaro_all = ongaro.clone();
    for (label, data) in &ongaro {
        ongaro_all.insert(format!("{label} (9 servers)"), data.clone());
    }
    let preamble = format!(
        "# Elections: Figure 16 of the Raft paper, reproduced\n\n\
         Regenerate with `cargo run --release -p sim -- research elections{}` (seed {}, {} servers{}). \
         Setup: `sim/src/fig16/mod.rs` (the module doc). KS: the two-sample Kolmogorov–Smirnov \
         statistic between Floe's trials and Ongaro's measured ones (`sim/data/raft-paper-fig16/`); \
         *KS 5% bound*: the KS that two samples of these sizes from one distribution exceed only 5% \
         of the time, so a KS under it is within sampling noise (with 100 trials a side it is 0.19, \
         and even a perfect model averages about 0.12). Trials cut off at {} ms count at the cap.\n",
        match opts.timing.differences() {
            d if d.is_empty() => String::new(),
            d => format!(" {d}"),
        },
        opts.seed,
        opts.servers,
        if sizes.len() > 1 { ", and 9" } else { "" },
        TRIAL_CAP_MS
    );
    let mut md = report::write_report(&opts.out, &results, &ongaro_all, &preamble)
        .map_err(|e| format!("cannot write {}: {e}", opts.out.display()))?;
    let split_trials = opts.trials.unwrap_or(SPLIT_TRIALS).min(SPLIT_TRIALS);
    md.push_str(&splitvote::markdown(
        &splitvote::table(opts.seed, split_trials),
        split_trials,
    ));
    md.push_str(&variants::markdown(
        opts.seed,
        opts.trials.unwrap_or(500),
        opts.timing,
    ));
    std::fs::write(opts.out.join("README.md"), &md)
        .map_err(|e| format!("cannot write {}: {e}", opts.out.display()))?;
    Ok(md)
}

/// Trials per cell of the split-vote table.
const SPLIT_TRIALS: usize = 400;
