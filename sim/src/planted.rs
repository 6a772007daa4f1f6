//! The planted-bug table (`sim planted-bugs`): for every planted bug, which checker caught it and
//! after how many seeds; and that the same seeds pass with no bug planted. It writes
//! `reports/planted-bugs.md`.

use std::fmt::Write as _;

use crate::options::{Bug, Overrides, SimConfig};
use crate::run::run_isolated;

/// What one bug's sweep found.
#[derive(Clone, Debug)]
pub struct BugRow {
    /// The bug.
    pub bug: Bug,
    /// The first seed that caught it, and the rule that did.
    pub first: Option<(u64, String)>,
    /// Seeds of the sample (`1..=sample`) that caught it.
    pub caught_in_sample: u64,
}

fn violation_of(seed: u64, bug: Option<Bug>) -> Option<String> {
    let overrides = Overrides {
        bug,
        ..Overrides::default()
    };
    match run_isolated(SimConfig::swarm(seed, overrides)) {
        Ok(report) => report.violation.map(|v| v.rule.to_string()),
        Err(panic) => Some(format!("engine assertion (panic): {panic}")),
    }
}

/// Sweeps seeds `1..=max_seeds` for `bug` until the first catch, and counts catches over
/// `1..=sample`.
pub fn sweep(bug: Bug, max_seeds: u64, sample: u64) -> BugRow {
    let mut first = None;
    let mut caught_in_sample = 0;
    for seed in 1..=max_seeds.max(sample) {
        if first.is_some() && seed > sample {
            break;
        }
        if let Some(rule) = violation_of(seed, Some(bug)) {
            if seed <= sample {
                caught_in_sample += 1;
            }
            if first.is_none() {
                first = Some((seed, rule));
            }
        }
    }
    BugRow {
        bug,
        first,
        caught_in_sample,
    }
}

/// Seeds of `1..=last` that fail with no bug planted.
pub fn clean_failures(last: u64) -> Vec<(u64, String)> {
    (1..=last)
        .filter_map(|seed| violation_of(seed, None).map(|rule| (seed, rule)))
        .collect()
}

fn what(bug: Bug) -> &'static str {
    match bug {
        Bug::StaleRead => "leader answers quorum reads without confirming leadership (etcd#741)",
        Bug::ReadIndexEarly => {
            "ReadIndex served before the leader committed an entry of its term (etcd#7331)"
        }
        Bug::VoteNotPersisted => "vote sent before it is synced: a restart can vote twice",
        Bug::NoTruncate => "follower appends without cutting a conflicting suffix",
        Bug::CommitOldTerm => "leader commits an old-term entry by counting replicas (Figure 8)",
        Bug::WatchSkip => "a watcher misses one event when two commit in the same batch",
        Bug::LockNoExpiryCheck => {
            "lock holder does not check its lease: keeps acting after it ran out (Jepsen 2020)"
        }
        Bug::IndexReuse => "store index goes back by one after a restart",
        Bug::LocalExpiry => "replicas expire TTL keys on their own clocks",
        Bug::ForwardEarly => {
            "a forwarded command reported not applied once the term moves on (it may still commit)"
        }
        Bug::ReadCtxReuse => {
            "read tags restart at each boot: a restarted node takes an old ReadIndex answer for a new read's"
        }
    }
}

/// The Markdown report.
pub fn render(
    rows: &[BugRow],
    sample: u64,
    max_seeds: u64,
    clean: &[(u64, String)],
    clean_last: u64,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Planted bugs and the checkers that catch them\n");
    let _ = writeln!(
        out,
        "Regenerate with `cargo run --release -p sim -- planted-bugs` (swarm configurations drawn \
         from each seed, `floe`'s default node settings in about 84% of them, 20 simulated \
         seconds of faults and clients per seed). \"First seed\": \
         seeds tried from 1 until one caught the bug (at most {max_seeds}); \"caught in 1..={sample}\": \
         how many of the first {sample} seeds caught it.\n"
    );
    let _ = writeln!(
        out,
        "| bug | what it breaks | first seed | caught in 1..={sample} | checker (rule) that caught it first |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---|");
    for row in rows {
        let (first, rule) = match &row.first {
            Some((seed, rule)) => (seed.to_string(), rule.clone()),
            None => (format!("not in {max_seeds}"), "-".into()),
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {first} | {} | {rule} |",
            row.bug.name(),
            what(row.bug),
            row.caught_in_sample
        );
    }
    let _ = writeln!(
        out,
        "\nWith no bug planted, seeds 1..={clean_last}: {} failed.",
        clean.len()
    );
    for (seed, rule) in clean {
        let _ = writeln!(out, "- seed {seed}: {rule}");
    }
    out
}
