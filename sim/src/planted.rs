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
    /// The first catching seed shrunk (`--shrink`).
    pub shrunk: Option<ShrinkRow>,
}

/// A planted bug's first catching run, shrunk.
#[derive(Clone, Debug)]
pub struct ShrinkRow {
    /// Before shrinking.
    pub before: crate::shrink::Size,
    /// After.
    pub after: crate::shrink::Size,
    /// Runs the search took.
    pub runs: u64,
    /// True if the shrunk scenario, read back from its file text and run on its own, breaks the
    /// same rule.
    pub replays: bool,
}

/// Shrinks `bug`'s failing run of `seed` and replays the scenario it writes (into `dir`).
pub fn shrink_row(bug: Bug, seed: u64, dir: &std::path::Path) -> Result<ShrinkRow, String> {
    let (config, overrides) = world(seed, Some(bug));
    let path = dir.join(format!("{}-seed-{seed}.toml", bug.name()));
    let name = path.display().to_string();
    let shrunk = crate::shrink::shrink(config, overrides, &name)?;
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&path, &shrunk.toml))
        .map_err(|e| format!("cannot write {name}: {e}"))?;
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {name}: {e}"))?;
    let scenario = crate::scenario::Scenario::parse(&name, &text)?;
    let replayed = run_isolated(scenario.config(seed, overrides))?;
    let replays = replayed
        .violation
        .is_some_and(|v| !replayed.ok && v.rule == shrunk.rule);
    Ok(ShrinkRow {
        before: shrunk.before,
        after: shrunk.after,
        runs: shrunk.runs,
        replays,
    })
}

/// The world a bug is swept in (as its regression line): the swarm, with the varied node
/// settings for the two ReadIndex bugs (floe's PreVote and CheckQuorum leave too few elections
/// to show them), and the `disk-corrupt` scenario for the three log-damage bugs (disk faults are
/// not drawn in ordinary seeds yet), and the `disk-fsync-stall` scenario for
/// `sync-blocks-loop` (a stall on the leader at fixed moments). Also the world of the bug-free
/// seeds (`bug` None).
pub fn world(seed: u64, bug: Option<Bug>) -> (SimConfig, Overrides) {
    let varied = matches!(bug, Some(Bug::StaleRead | Bug::ReadIndexEarly));
    let overrides = Overrides {
        bug,
        settings: varied.then_some(crate::options::Settings::Varied),
        ..Overrides::default()
    };
    let scenario = match bug {
        Some(Bug::TruncateOnCorruption | Bug::IgnoreChecksum | Bug::LostAckTrusted) => {
            Some("disk-corrupt")
        }
        Some(Bug::SyncBlocksLoop) => Some("disk-fsync-stall"),
        _ => None,
    };
    if let Some(name) = scenario {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        if let Ok(scenario) = crate::scenario::Scenario::load(&root, name) {
            return (scenario.config(seed, overrides), overrides);
        }
    }
    (SimConfig::swarm(seed, overrides), overrides)
}

fn violation_of(seed: u64, bug: Option<Bug>) -> Option<String> {
    match run_isolated(world(seed, bug).0) {
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
        shrunk: None,
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
        Bug::CasCreatedIndex => {
            "compare-and-swap/delete by prevIndex checks createdIndex, not modifiedIndex"
        }
        Bug::LocalExpiry => "replicas expire TTL keys on their own clocks",
        Bug::ForwardEarly => {
            "a forwarded command reported not applied once the term moves on (it may still commit)"
        }
        Bug::SplitLengthPrefix => {
            "the peer decoder loses a length prefix split across two reads (a TCP read ending inside it)"
        }
        Bug::ChunkAnyOffset => {
            "a follower writes each snapshot chunk after what it holds, whatever its offset"
        }
        Bug::ReadCtxReuse => {
            "read tags restart at each boot: a restarted node takes an old ReadIndex answer for a new read's"
        }
        Bug::TransferSameTerm => {
            "a leadership transfer's target campaigns in the old leader's term, voting twice in it"
        }
        Bug::AckBeforeSync => "a follower acknowledges appended entries before it syncs them",
        Bug::WatchDirDelete => "a watch inside a directory sleeps through the directory's removal",
        Bug::HttpPrevexistIgnored => {
            "the HTTP keys API drops prevExist=false from the form: a create overwrites a key"
        }
        Bug::ConfigFromCommitted => {
            "nodes act on the latest committed configuration, not the latest in their log"
        }
        Bug::SingleServerNoWait => {
            "voter changes one server at a time, a new leader's before its own term's first commit"
        }
        Bug::RemovedLeaderStays => {
            "a leader removed by a committed configuration keeps leading, counting itself"
        }
        Bug::TruncateOnCorruption => {
            "a damaged log is cut as a torn tail and the node votes with what is left"
        }
        Bug::IgnoreChecksum => "the log reads records without checking their CRC",
        Bug::MemberAddAnswersEarly => {
            "the members API answers an add (201) before the change commits"
        }
        Bug::LostAckTrusted => {
            "the leader takes a recovering follower's rejection for a stale one: it never catches up"
        }
        Bug::SyncBlocksLoop => {
            "the node loop awaits each log sync inline: a leader whose sync hangs goes on leading"
        }
        Bug::CommitWhileSyncing => {
            "a leader counts the entries its pending sync is writing towards a commit"
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
         seconds of faults and clients per seed; `stale-read` and `read-index-early` with the \
         varied node settings, `truncate-on-corruption` and `ignore-checksum` in the \
         `disk-corrupt` scenario, as their regression lines). \"First seed\": \
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
            // A panic's message can span lines; a table cell cannot.
            Some((seed, rule)) => (
                seed.to_string(),
                rule.split_whitespace().collect::<Vec<_>>().join(" "),
            ),
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
        "\nEach first catching seed shrunk (`--seed N --bug NAME --shrink`): the smallest \
         scenario found that breaks the same rule, read back from its file and replayed on its \
         own. Sizes: fault steps / clients / operations started / nodes / safety phase.\n"
    );
    let _ = writeln!(
        out,
        "| bug | seed | before | after | runs | shrunk scenario fails alone |"
    );
    let _ = writeln!(out, "|---|---:|---|---|---:|---|");
    let cells = |s: &crate::shrink::Size| {
        format!(
            "{} / {} / {} / {} / {} ms",
            s.faults, s.clients, s.ops, s.nodes, s.duration_ms
        )
    };
    for row in rows {
        let (Some((seed, _)), Some(shrunk)) = (&row.first, &row.shrunk) else {
            continue;
        };
        let _ = writeln!(
            out,
            "| `{}` | {seed} | {} | {} | {} | {} |",
            row.bug.name(),
            cells(&shrunk.before),
            cells(&shrunk.after),
            shrunk.runs,
            if shrunk.replays { "yes" } else { "NO" }
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
