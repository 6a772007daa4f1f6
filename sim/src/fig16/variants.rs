//! Beyond the paper: the same experiment with one thing changed at a time, and a
//! partial-connectivity case. Each variant's finding is written from the numbers it measured.
//!
//! One finding depends on the timing model, measured with `sim research elections` (seed 1,
//! 500 trials): back-off after a lost vote costs 1.42× on 150-155's median under the default
//! timing, 1.08× with the earlier 0.87-1.43 ms candidate write (`--vote-disk-us 869..1434`)
//! and 1.01× under the whole earlier timing; turning off whole-millisecond timeouts
//! (`--timeout-step-us 0`) or the busy disk (`--busy-disk false`) leaves it at 1.42× and
//! 1.37×. The likely reason, not traced: a longer write lets the others start their own
//! campaigns before an eligible candidate's RequestVotes arrive, so a majority refuses it and
//! it backs off a whole maximum timeout.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::world::{TICK_US, World};
use super::{Curve, Setup, Timing, run_curve};
use engine::raft::{Config, NodeId, RoleKind};

/// The two curves each variant runs: a narrow range (split votes matter) and a wide one.
const CURVES: [Curve; 2] = [
    Curve {
        min_ms: 150,
        max_ms: 155,
        trials: 500,
    },
    Curve {
        min_ms: 150,
        max_ms: 300,
        trials: 500,
    },
];

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn p90(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() * 9 / 10]
}

/// One variant's row: (name, per curve: median and p90 ms).
struct Row {
    name: String,
    cells: Vec<(u64, u64)>,
}

fn row(name: &str, setup: &Setup, seed: u64, trials: usize) -> Row {
    let cells = CURVES
        .iter()
        .map(|&c| {
            let v = run_curve(c, setup, seed, trials.min(c.trials));
            (median(v.clone()), p90(v))
        })
        .collect();
    Row {
        name: name.to_string(),
        cells,
    }
}

/// Partial connectivity: 5 servers, all eligible; after a second, server 5 can reach only
/// server 4 (and only server 4 reaches it). Over the next `span_s` seconds: how long no stable
/// leader (a leader that a majority follows in its term), and how many terms went by.
fn partial(pre_vote_check_quorum: bool, seed: u64, span_s: u64) -> (f64, u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let per_ms = 1000 / TICK_US;
    let mut w = World::new(
        5,
        ChaCha8Rng::seed_from_u64(rng.r#gen()),
        Timing {
            disk_us: (6_000, 10_000),
            ..Timing::none((1_000, 3_000))
        },
        |id: NodeId, peers, s| {
            let mut c = Config::new(id, peers, s);
            c.election_timeout_ticks = 150 * per_ms;
            c.election_timeout_max_ticks = 300 * per_ms + 1;
            c.heartbeat_interval_ticks = 75 * per_ms;
            c.pre_vote = pre_vote_check_quorum;
            c.check_quorum = pre_vote_check_quorum;
            c
        },
    );
    w.nodes[0].as_mut().expect("runs").campaign();
    w.run(1_000_000, |_| false);
    for other in 0..3 {
        w.cut[4][other] = true;
        w.cut[other][4] = true;
    }
    let term_at_cut = (0..5)
        .filter_map(|s| w.role(s))
        .map(|(_, t)| t.0)
        .max()
        .unwrap_or(0);
    let mut leaderless_ms = 0u64;
    let start = w.now_us;
    for ms in 1..=span_s * 1000 {
        w.run(start + ms * 1000, |_| false);
        let stable = (0..5).any(|s| {
            let Some((RoleKind::Leader, term)) = w.role(s) else {
                return false;
            };
            let id = NodeId(s as u64 + 1);
            let followers = (0..5)
                .filter(|&f| {
                    w.nodes[f].as_ref().is_some_and(|n| {
                        let st = n.status();
                        st.term == term && (f == s || st.leader == Some(id))
                    })
                })
                .count();
            followers >= 3
        });
        leaderless_ms += u64::from(!stable);
    }
    let term_end = (0..5)
        .filter_map(|s| w.role(s))
        .map(|(_, t)| t.0)
        .max()
        .unwrap_or(0);
    (leaderless_ms as f64 / 1000.0, term_end - term_at_cut)
}

/// Runs every variant and returns the report section.
pub fn markdown(seed: u64, trials: usize, timing: Timing) -> String {
    let base = Setup {
        timing,
        ..Setup::paper(5)
    };
    let mut rows = vec![row("the reproduction (5 servers)", &base, seed, trials)];
    let variants: [(&str, Setup); 4] = [
        (
            "PreVote on",
            Setup {
                pre_vote: true,
                ..base.clone()
            },
        ),
        (
            "CheckQuorum on",
            Setup {
                check_quorum: true,
                ..base.clone()
            },
        ),
        (
            "timeouts drawn once at start",
            Setup {
                drawn_once: true,
                ..base.clone()
            },
        ),
        (
            "back-off after a lost vote",
            Setup {
                backoff: true,
                ..base.clone()
            },
        ),
    ];
    for (name, setup) in &variants {
        rows.push(row(name, setup, seed, trials));
    }
    for servers in [3usize, 7, 9] {
        rows.push(row(
            &format!("{servers} servers"),
            &Setup {
                timing,
                ..Setup::paper(servers)
            },
            seed,
            trials,
        ));
    }
    let mut md = String::from("\n## Variants (beyond the paper)\n\n");
    md.push_str(&format!(
        "The reproduction's setup with one change each; {} trials per cell; milliseconds from \
         the leader's crash until every other server heard the new leader (median / p90).\n\n",
        trials.min(CURVES[0].trials)
    ));
    md.push_str("| variant | 150-155 median | 150-155 p90 | 150-300 median | 150-300 p90 |\n|---|---:|---:|---:|---:|\n");
    for r in &rows {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            r.name, r.cells[0].0, r.cells[0].1, r.cells[1].0, r.cells[1].1
        ));
    }
    let b = &rows[0].cells;
    let finding = |r: &Row| {
        let narrow = r.cells[0].0 as f64 / b[0].0.max(1) as f64;
        let wide = r.cells[1].0 as f64 / b[1].0.max(1) as f64;
        format!(
            "**{}**: median {:.2}× the reproduction's on 150-155 and {:.2}× on 150-300.",
            r.name, narrow, wide
        )
    };
    md.push_str("\nFindings (ratios of medians to the reproduction's):\n\n");
    for r in &rows[1..] {
        md.push_str(&format!("- {}\n", finding(r)));
    }
    let span = 10;
    let mut plain = (0.0, 0);
    let mut guarded = (0.0, 0);
    let runs = 10u64;
    for i in 0..runs {
        let run_seed = super::trial_seed(&[seed, i]);
        let (a, ta) = partial(false, run_seed, span);
        let (c, tc) = partial(true, run_seed, span);
        plain = (plain.0 + a, plain.1 + ta);
        guarded = (guarded.0 + c, guarded.1 + tc);
    }
    md.push_str(&format!(
        "\n### Partial connectivity\n\n5 servers (150-300 ms, the same network); after a second \
         of normal operation server 5 can reach only server 4, and only server 4 reaches it. Over \
         the next {span} s ({runs} runs): plain Raft spends on average {:.2} s without a stable \
         leader (a leader followed by a majority in its term) and goes through {:.1} terms; with \
         PreVote and CheckQuorum, {:.2} s and {:.1} terms.\n",
        plain.0 / runs as f64,
        plain.1 as f64 / runs as f64,
        guarded.0 / runs as f64,
        guarded.1 as f64 / runs as f64,
    ));
    md
}

#[cfg(test)]
mod tests {
    use super::partial;

    #[test]
    fn partial_connectivity_is_measured_and_deterministic() {
        let a = partial(true, 3, 2);
        assert_eq!(a, partial(true, 3, 2));
        assert!(a.0 >= 0.0 && a.0 <= 2.0, "{a:?}");
    }
}
