//! `cargo run -p sim -- --seed N`: run the simulator on one seed, a range of seeds, or twice on
//! one seed to check determinism.

/// glibc's malloc, free and page faults were a fifth of a reference run (perf).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::Write;
use std::ops::Range;
use std::process::ExitCode;

use clap::Parser;
use sim::check::Violation;
use sim::options::{Bug, Overrides, SimConfig};
use sim::run::{RunReport, run_isolated};

/// Floe's deterministic Raft simulator: one seed, one exact run.
#[derive(Parser, Debug)]
#[command(name = "sim", version, about, long_about = None)]
struct Cli {
    /// Run this one seed.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Run seeds A..B (B excluded), stopping at the first failure unless --keep-going.
    #[arg(long, value_parser = parse_seeds)]
    seeds: Option<Range<u64>>,
    /// Cluster size (default: drawn from the seed among 3, 5, 7).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=15))]
    nodes: Option<u64>,
    /// Length of the safety phase, in simulated seconds (default 20).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    duration: Option<u64>,
    /// Print one JSON object per run instead of text.
    #[arg(long)]
    json: bool,
    /// Run each seed twice and compare the trace hashes.
    #[arg(long)]
    check_determinism: bool,
    /// With --seeds: go on after a failing seed.
    #[arg(long)]
    keep_going: bool,
    /// With --seeds: seeds run at once, each on its own thread (default: every core). The
    /// output, the stop at the first failure and every result are those of a serial run.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    jobs: Option<u64>,
    /// With --seeds: run only shard K of N (K from 1): every N-th seed of the range, from its
    /// K-th. The N shards split the range exactly; `merge-results` combines their `--json`.
    #[arg(long, value_parser = sim::sweep::Shard::parse, requires = "seeds")]
    shard: Option<sim::sweep::Shard>,
    /// Run the fixed reference world of the speed benchmark (5 nodes, 50 ms heartbeats,
    /// 150-300 ms election timeouts, 100 commands/s, no faults) instead of a seed-drawn one.
    #[arg(long)]
    reference: bool,
    /// Run the named scenario, `scenarios/NAME.toml`, or the scenario file at a path ending in
    /// `.toml` (with --seed or --seeds).
    #[arg(long, conflicts_with = "reference")]
    scenario: Option<String>,
    /// With --seed: turn a failing run into the smallest scenario found that fails the same
    /// rule (fewest fault steps, clients, request rate, nodes, shortest duration); writes it as
    /// `shrunk.toml` in the report folder and prints the command that replays it.
    #[arg(long, requires = "seed", conflicts_with_all = ["seeds", "reference"])]
    shrink: bool,
    /// Switch on a deliberately planted bug.
    #[arg(long, value_enum)]
    bug: Option<Bug>,
    /// Run `floe`'s default node settings, or the seed's varied ones, whatever the seed draws.
    #[arg(long, value_enum)]
    settings: Option<sim::options::Settings>,
    /// Membership changes among the faults of every swarm seed (the `reconfigure` fault kind:
    /// add, remove and promote members, the leader too).
    #[arg(long)]
    reconfigure: bool,
    /// Where a failing seed writes its report folder (summary.txt, history.jsonl,
    /// history.html); `none` to write nothing. The default lies under `target/`, outside the
    /// tracked tree; the path is printed.
    #[arg(long, default_value = "target/sim-reports")]
    report_dir: String,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Other jobs than running seeds.
// Parsed once at start-up: the size of the largest variant (research's flags) costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Sweep every planted bug and write the table of which checker caught it, and when.
    PlantedBugs {
        /// Most seeds tried per bug before giving up on it.
        #[arg(long, default_value_t = 1000)]
        max_seeds: u64,
        /// Catches are also counted over seeds 1..=SAMPLE.
        #[arg(long, default_value_t = 100)]
        sample: u64,
        /// The Markdown file written.
        #[arg(long, default_value = "reports/planted-bugs.md")]
        out: std::path::PathBuf,
    },
    /// Research experiments: `research elections` reproduces the Raft paper's Figure 16.
    Research {
        /// The experiment: `elections` (Figure 16) or `partial` (liveness under partial
        /// connectivity, plain Raft against PreVote + CheckQuorum).
        experiment: String,
        /// Trials per curve (default: Ongaro's, 100 or 1,000).
        #[arg(long)]
        trials: Option<usize>,
        /// Servers (default 5); `--nine` adds every curve with 9 servers.
        #[arg(long, default_value_t = 5)]
        servers: usize,
        /// Also run with 9 servers.
        #[arg(long)]
        nine: bool,
        /// Base seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output folder.
        #[arg(long, default_value = "reports/elections")]
        out: std::path::PathBuf,
        /// Ongaro's measured data as CSV (default: the copy built into the simulator, from
        /// `sim/data/raft-paper-fig16/`).
        #[arg(long)]
        ongaro: Option<std::path::PathBuf>,
        /// One-way network latency, µs: `A..B` (uniform) or `A` (default 1556..1637).
        #[arg(long, value_parser = parse_us_range)]
        latency_us: Option<(u64, u64)>,
        /// Disk time before an answer leaves, µs: `A..B` or `A` (default 653..5251).
        #[arg(long, value_parser = parse_us_range)]
        disk_us: Option<(u64, u64)>,
        /// Mean of an exponential extra disk time, µs (default 0).
        #[arg(long, value_parser = parse_us)]
        disk_tail_us: Option<u64>,
        /// A new candidate's write of its term and vote, µs: `A..B` or `A` (default 1126..2065).
        #[arg(long, value_parser = parse_us_range)]
        vote_disk_us: Option<(u64, u64)>,
        /// Most lateness of a timer thread, µs (default 1769).
        #[arg(long, value_parser = parse_us)]
        timer_late_us: Option<u64>,
        /// Clock drift: each server runs fast or slow by up to this many ppm (default 38, at most
        /// 100000).
        #[arg(long, value_parser = clap::value_parser!(u64).range(..=100_000))]
        drift_ppm: Option<u64>,
        /// A new leader's first AppendEntries wait for its disk write (`--leader-disk` or
        /// `--leader-disk true|false`; default false).
        #[arg(long, num_args = 0..=1, default_missing_value = "true")]
        leader_disk: Option<bool>,
        /// A server handles nothing, not even its timer, while its disk writes (`--busy-disk`
        /// or `--busy-disk true|false`; default true).
        #[arg(long, num_args = 0..=1, default_missing_value = "true")]
        busy_disk: Option<bool>,
        /// Most extra delay of each AppendEntries before it leaves, µs (default 65).
        #[arg(long, value_parser = parse_us)]
        append_spread_us: Option<u64>,
        /// Granularity of the drawn election timeouts, µs (default 1000, LogCabin's whole
        /// milliseconds; 0 draws any 100 µs tick).
        #[arg(long, value_parser = parse_us)]
        timeout_step_us: Option<u64>,
    },
    /// Merge the `--json` lines of several sweeps (shards) into one summary. Exit 0 when every
    /// seed passed, once, and (with --seeds) none of the range is missing; 1 otherwise; 2 if a
    /// file is unreadable.
    MergeResults {
        /// Files of `--json` lines (one object per seed).
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
        /// The range the shards were to cover: seeds missing from it are reported.
        #[arg(long, value_parser = parse_seeds)]
        seeds: Option<Range<u64>>,
    },
    /// Judge a recorded history (JSON lines of `check::history::Op`, as a failing seed's
    /// `history.jsonl`): index rules, locks, linearizability.
    CheckHistory {
        /// The history files (`--format floe` takes exactly one).
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
        /// `floe`: JSON lines of `check::history::Op`; `jepsen`: a Jepsen/Knossos log of one
        /// register (`:invoke`/`:ok`/`:fail`/`:info` of `:read`/`:write`/`:cas`), judged with
        /// a register model. Exit 0 linearizable, 1 not, 2 unreadable.
        #[arg(long, value_enum, default_value_t = HistoryFormat::Floe)]
        format: HistoryFormat,
    },
}

/// The format of a history given to `check-history`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum HistoryFormat {
    /// The simulator's own: JSON lines of `check::history::Op` (a failing seed's
    /// `history.jsonl`).
    Floe,
    /// A Jepsen/Knossos single-register log.
    Jepsen,
}

/// A whole number of µs, at most 10 s.
fn parse_us(text: &str) -> Result<u64, String> {
    let us = text
        .trim()
        .parse::<u64>()
        .map_err(|_| format!("{text:?} is not a whole number of µs"))?;
    if us > 10_000_000 {
        return Err(format!("{text:?}: more than 10 s"));
    }
    Ok(us)
}

/// `A..B` (inclusive, A ≤ B) or `A`, in µs, each at most 10 s.
fn parse_us_range(text: &str) -> Result<(u64, u64), String> {
    let (a, b) = match text.split_once("..") {
        Some((a, b)) => (parse_us(a)?, parse_us(b)?),
        None => {
            let a = parse_us(text)?;
            (a, a)
        }
    };
    if a > b {
        return Err(format!("{text:?}: the range runs backwards"));
    }
    Ok((a, b))
}

fn check_history(file: &std::path::Path) -> ExitCode {
    use sim::check::linearizability::{Budget, Verdict, check};
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let ops = match sim::check::history_file::read_jsonl(&text) {
        Ok(ops) => ops,
        Err(e) => {
            eprintln!("error: {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    println!("{} operations", ops.len());
    let mut ok = true;
    for (name, verdict) in [
        ("index", sim::check::index::check_index(&ops)),
        ("locks", sim::check::locks::check_locks(&ops)),
    ] {
        match verdict {
            Ok(()) => println!("{name}: ok"),
            Err(v) => {
                ok = false;
                println!("{name}: VIOLATION {v}");
            }
        }
    }
    let lin = check(&ops, Budget::steps(sim::run::LINEARIZABILITY_STEPS_MAX));
    println!("linearizability: {lin}");
    for p in (lin.partitions.iter()).filter(|p| p.verdict == Verdict::NotLinearizable) {
        let budget = Budget::steps(sim::run::LINEARIZABILITY_STEPS_MAX / 25);
        if let Some(m) = sim::check::linearizability::minimal_failure(&ops, &p.partition, budget) {
            let ids: Vec<String> = m.ops.iter().map(|id| format!("#{id}")).collect();
            println!(
                "  minimal failing history of {}: {} of {} ops{}: {}",
                p.partition,
                m.ops.len(),
                m.of,
                if m.one_minimal { " (1-minimal)" } else { "" },
                ids.join(" ")
            );
        }
    }
    ok &= lin.verdict() == Verdict::Linearizable;
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `check-history --format jepsen`: each file's verdict, then the time for all of them. Exit 2 if
/// any file is unreadable, else 1 if any is not linearizable (or undecided), else 0.
fn check_jepsen(files: &[std::path::PathBuf]) -> ExitCode {
    use sim::check::linearizability::{Budget, Verdict};
    let mut start = None;
    wall_ms_since(&mut start);
    let (mut unreadable, mut failed) = (0, 0);
    for file in files {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) => {
                println!("{}: unreadable: {e}", file.display());
                unreadable += 1;
                continue;
            }
        };
        match sim::check::jepsen::check(&text, Budget::UNLIMITED) {
            Ok(found) => {
                println!(
                    "{}: {} ({} steps)",
                    file.display(),
                    found.verdict,
                    found.steps
                );
                if found.verdict != Verdict::Linearizable {
                    failed += 1;
                }
            }
            Err(e) => {
                println!("{}: unreadable: {e}", file.display());
                unreadable += 1;
            }
        }
    }
    let ms = wall_ms_since(&mut start);
    println!(
        "{} histories in {ms} ms: {} linearizable, {failed} not, {unreadable} unreadable",
        files.len(),
        files.len() - failed - unreadable
    );
    if unreadable > 0 {
        ExitCode::from(2)
    } else if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn planted_bugs(max_seeds: u64, sample: u64, out: &std::path::Path) -> ExitCode {
    let mut rows = Vec::new();
    for bug in Bug::ALL {
        let mut row = sim::planted::sweep(bug, max_seeds, sample);
        if let Some((seed, _)) = &row.first {
            let dir = std::path::Path::new("target/sim-reports/shrunk");
            match sim::planted::shrink_row(bug, *seed, dir) {
                Ok(shrunk) => {
                    println!(
                        "{:22} shrunk: {} -> {} ({} runs; replays alone: {})",
                        bug.name(),
                        shrunk.before,
                        shrunk.after,
                        shrunk.runs,
                        shrunk.replays
                    );
                    row.shrunk = Some(shrunk);
                }
                Err(e) => println!("{:22} not shrunk: {e}", bug.name()),
            }
        }
        match &row.first {
            Some((seed, rule)) => println!(
                "{:22} first caught at seed {seed} by \"{rule}\"; {} of seeds 1..={sample}",
                bug.name(),
                row.caught_in_sample
            ),
            None => println!("{:22} NOT caught in {max_seeds} seeds", bug.name()),
        }
        rows.push(row);
    }
    let clean_last = rows
        .iter()
        .filter_map(|r| r.first.as_ref().map(|f| f.0))
        .max()
        .unwrap_or(0)
        .max(sample);
    let clean = sim::planted::clean_failures(clean_last);
    println!("no bug, seeds 1..={clean_last}: {} failed", clean.len());
    let text = sim::planted::render(&rows, sample, max_seeds, &clean, clean_last);
    if let Err(e) = std::fs::write(out, text) {
        eprintln!("cannot write {}: {e}", out.display());
        return ExitCode::from(2);
    }
    println!("wrote {}", out.display());
    let all_caught = rows.iter().all(|r| r.first.is_some());
    if all_caught && clean.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn parse_seeds(text: &str) -> Result<Range<u64>, String> {
    let (a, b) = text
        .split_once("..")
        .ok_or_else(|| format!("expected A..B, got {text:?}"))?;
    let a: u64 = a
        .trim()
        .parse()
        .map_err(|e| format!("bad start {a:?}: {e}"))?;
    let b: u64 = b
        .trim()
        .parse()
        .map_err(|e| format!("bad end {b:?}: {e}"))?;
    if a >= b {
        return Err(format!(
            "empty range {a}..{b}: the end must be greater than the start"
        ));
    }
    Ok(a..b)
}

/// Wall-clock time, for reporting speed only: it never reaches the simulation.
#[allow(clippy::disallowed_types, clippy::disallowed_methods)]
fn wall_ms_since(start: &mut Option<std::time::Instant>) -> u64 {
    match start {
        None => {
            *start = Some(std::time::Instant::now());
            0
        }
        Some(t) => t.elapsed().as_millis() as u64,
    }
}

/// A run and how long it took on the wall clock.
struct Timed {
    report: RunReport,
    wall_ms: u64,
}

/// Runs one seed on a fresh thread, turning a panic into a violation.
fn run_seed(config: SimConfig) -> Timed {
    let mut start = None;
    wall_ms_since(&mut start);
    let fallback = config.clone();
    let report = run_isolated(config).unwrap_or_else(|message| panicked(fallback, message));
    Timed {
        report,
        wall_ms: wall_ms_since(&mut start),
    }
}

fn panicked(config: SimConfig, message: String) -> RunReport {
    let violation = Violation::new(
        "engine assertion (panic)",
        sim::check::raft::NodeId(0),
        sim::check::raft::Term(0),
        sim::check::raft::Index(0),
        message,
    );
    RunReport {
        seed: config.seed,
        ok: false,
        violation: Some(violation),
        trace_hash: "panic".into(),
        simulated_ms: 0,
        elections: 0,
        max_term: 0,
        commands_committed: 0,
        faults_injected: 0,
        faults_by_kind: Default::default(),
        reconfigurations: 0,
        member_requests: Default::default(),
        final_membership: None,
        snapshots_installed: 0,
        clients: Default::default(),
        ops: Default::default(),
        net: Default::default(),
        liveness_leader_ms: None,
        handovers: Default::default(),
        write_latency: Default::default(),
        config,
        history: Default::default(),
        bad_op: None,
        checked_ops: Vec::new(),
        world_events: Vec::new(),
        fault_steps: Vec::new(),
        request_shapes: Default::default(),
        http_requests: 0,
        partial_leader_ms: None,
        partial_led_per_mille: None,
        leaderless_ms: 0,
        roles: Vec::new(),
    }
}

fn json_line(t: &Timed) -> String {
    let mut value = serde_json::to_value(&t.report).expect("reports serialize");
    value["config"]["production"] = t.report.config.production().into();
    value["wall_ms"] = t.wall_ms.into();
    serde_json::to_string(&value).expect("json values serialize")
}

fn print_human(t: &Timed, replay: &str) {
    let r = &t.report;
    let c = &r.config;
    println!("SEED={}", r.seed);
    println!(
        "cluster: {} nodes, {} settings, tick {} ms, heartbeat {} ticks, election {}..{} ticks, latency {}..{} ms, {} clients at {} ops/s",
        c.nodes,
        if c.production() {
            "production"
        } else {
            "varied"
        },
        c.settings.tick_ms,
        c.settings.heartbeat_ticks,
        c.settings.election_ticks,
        c.settings.election_max_ticks,
        c.latency.min_ms,
        c.latency.max_ms,
        c.clients,
        c.ops_per_s
    );
    let speed = r.simulated_ms as f64 / t.wall_ms.max(1) as f64;
    println!(
        "simulated {:.1} s in {:.2} s wall ({speed:.0}x); elections {}, max term {}; faults {}; snapshots every {} entries, {} installed",
        r.simulated_ms as f64 / 1000.0,
        t.wall_ms as f64 / 1000.0,
        r.elections,
        r.max_term,
        r.faults_injected,
        c.settings.snapshot_entries,
        r.snapshots_installed
    );
    println!(
        "operations: {} started, {} writes committed, {} failed, {} timed out; messages: {} sent, {} delivered, {} dropped, {} duplicated",
        r.clients.started,
        r.clients.writes_committed,
        r.clients.failed,
        r.clients.timed_out,
        r.net.sent,
        r.net.delivered,
        r.net.dropped,
        r.net.duplicated
    );
    let kinds: Vec<String> = r
        .ops
        .iter()
        .map(|(kind, s)| format!("{kind:?} {}/{}/{}", s.ok, s.failed, s.timed_out))
        .collect();
    println!("by kind (ok/failed/timed out): {}", kinds.join(", "));
    if let Some(ms) = r.liveness_leader_ms {
        println!("liveness: stable leader {ms} ms after healing");
    }
    let w = &r.write_latency;
    let ms = |us: Option<u64>| us.map_or("-".into(), |us| format!("{:.1}", us as f64 / 1000.0));
    println!(
        "acknowledged writes: {} at the leader (p50 {} ms, p99 {} ms), {} through a follower (p50 {} ms, p99 {} ms)",
        w.at_leader.count,
        ms(w.at_leader.p50_us),
        ms(w.at_leader.p99_us),
        w.at_follower.count,
        ms(w.at_follower.p50_us),
        ms(w.at_follower.p99_us),
    );
    let h = &r.handovers;
    if !h.transfer_us.is_empty() || !h.crash_us.is_empty() || h.transfers_not_done > 0 {
        let median = |v: &[u64]| sim::handover::percentile(v, 50).map_or(0, |us| us / 1000);
        println!(
            "without a leader: {} transfers, median {} ms ({} not done); {} leader crashes, median {} ms",
            h.transfer_us.len(),
            median(&h.transfer_us),
            h.transfers_not_done,
            h.crash_us.len(),
            median(&h.crash_us)
        );
    }
    println!(
        "no leader that can commit for {} ms of the safety phase",
        r.leaderless_ms
    );
    match &r.violation {
        None => println!("ok seed={} trace_hash={}", r.seed, r.trace_hash),
        Some(v) => {
            println!("VIOLATION: {v}");
            println!("replay: {replay}");
            println!("FAILED seed={} trace_hash={}", r.seed, r.trace_hash);
        }
    }
}

fn config_for(cli: &Cli, seed: u64) -> SimConfig {
    let overrides = Overrides {
        nodes: cli.nodes.map(|n| n as usize),
        duration_ms: cli.duration.map(|s| s * 1000),
        bug: cli.bug,
        settings: cli.settings,
        reconfigure: cli.reconfigure,
    };
    if cli.reference {
        let mut config = SimConfig::bench(seed, overrides.duration_ms.unwrap_or(60_000));
        config.bug = cli.bug;
        return config;
    }
    if let Some(name) = &cli.scenario {
        return match load_scenario(name) {
            Ok(scenario) => scenario.config(seed, overrides),
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(2);
            }
        };
    }
    SimConfig::swarm(seed, overrides)
}

/// Reads a scenario given as a path to a TOML file (it ends in `.toml` or names a folder), or
/// finds `scenarios/NAME.toml` from the current directory, or from the workspace the binary was
/// built in.
fn load_scenario(name: &str) -> Result<sim::scenario::Scenario, String> {
    if name.ends_with(".toml") || name.contains('/') {
        let text = std::fs::read_to_string(name).map_err(|e| format!("cannot read {name}: {e}"))?;
        return sim::scenario::Scenario::parse(name, &text).map_err(|e| format!("{name}: {e}"));
    }
    let here = std::path::Path::new(".");
    if here.join("scenarios").is_dir() {
        return sim::scenario::Scenario::load(here, name);
    }
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    sim::scenario::Scenario::load(&workspace, name)
}

/// `research partial`: the partial-connectivity table.
fn research_partial(trials: u64, seed: u64, out: &std::path::Path, jobs: Option<u64>) -> ExitCode {
    let mut scenarios = Vec::new();
    for name in sim::partial::SCENARIOS {
        match load_scenario(name) {
            Ok(s) => scenarios.push(s),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let jobs = jobs.map_or_else(sim::sweep::default_jobs, |j| j as usize);
    let rows = sim::partial::measure(&scenarios, seed, trials, jobs);
    let text = sim::partial::render(&rows, seed, trials);
    // The default folder is Figure 16's; this report sits beside it.
    let dir = if out == std::path::Path::new("reports/elections") {
        std::path::Path::new("reports")
    } else {
        out
    };
    let file = dir.join("partial-connectivity.md");
    print!("{text}");
    if let Err(e) = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&file, &text)) {
        eprintln!("error: cannot write {}: {e}", file.display());
        return ExitCode::from(2);
    }
    println!("wrote {}", file.display());
    ExitCode::SUCCESS
}

/// `--shrink`: shrinks the seed's failing run and writes the scenario that replays it.
fn shrink(cli: &Cli, seed: u64) -> ExitCode {
    let config = config_for(cli, seed);
    let overrides = Overrides {
        nodes: cli.nodes.map(|n| n as usize),
        duration_ms: None,
        bug: cli.bug,
        settings: cli.settings,
        reconfigure: cli.reconfigure,
    };
    let mut folder = format!("seed-{seed}");
    if let Some(bug) = cli.bug {
        folder.push_str(&format!("-{}", bug.name()));
    }
    let report_dir = if cli.report_dir == "none" {
        "target/sim-reports"
    } else {
        cli.report_dir.as_str()
    };
    let dir = std::path::Path::new(report_dir).join(folder);
    let path = dir.join("shrunk.toml");
    let name = path.display().to_string();
    let shrunk = match sim::shrink::shrink(config, overrides, &name) {
        Ok(shrunk) => shrunk,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let written = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, &shrunk.toml));
    if let Err(e) = written {
        eprintln!("error: cannot write {name}: {e}");
        return ExitCode::from(2);
    }
    // The file fixes the duration: no --duration in the replay.
    let replay = (shrunk.report.config).replay_command(cli.nodes.is_some(), false);
    println!("rule:    {}", shrunk.rule);
    println!("before:  {}", shrunk.before);
    println!("after:   {}", shrunk.after);
    println!("runs:    {}", shrunk.runs);
    println!("wrote:   {name}");
    println!("replay:  {replay}");
    ExitCode::SUCCESS
}

fn replay(cli: &Cli, config: &SimConfig) -> String {
    let command = config.replay_command(cli.nodes.is_some(), cli.duration.is_some());
    if cli.reference {
        format!("{command} --reference")
    } else {
        command
    }
}

/// Writes a failing run's report folder under `--report-dir` and says where.
fn write_report(cli: &Cli, report: &RunReport, replay: &str) {
    if cli.report_dir == "none" || report.ok {
        return;
    }
    let mut name = format!("seed-{}", report.seed);
    if let Some(bug) = report.config.bug {
        name.push_str(&format!("-{}", bug.name()));
    }
    let dir = std::path::Path::new(&cli.report_dir).join(name);
    let keys = sim::failure::linearizability_verdicts(&report.checked_ops);
    let data = sim::failure::report_data(report, replay, keys);
    let resolved = dir.join("history-resolved.jsonl");
    let written =
        sim::failure::write_failure(&dir, &data, &report.history.checker_ops()).and_then(|()| {
            let file = std::fs::File::create(resolved)?;
            sim::check::history_file::write_jsonl(
                &report.checked_ops,
                std::io::BufWriter::new(file),
            )
        });
    match written {
        Ok(()) => {
            let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
            eprintln!("report: {}", dir.join("history.html").display());
        }
        Err(e) => eprintln!("could not write the report to {}: {e}", dir.display()),
    }
}

fn one_seed(cli: &Cli, seed: u64) -> ExitCode {
    let first = run_seed(config_for(cli, seed));
    let replay = replay(cli, &first.report.config);
    if cli.check_determinism {
        let second = run_seed(config_for(cli, seed));
        let same = first.report.trace_hash == second.report.trace_hash;
        if !cli.json {
            println!(
                "determinism: run 1 {} / run 2 {}: {}",
                first.report.trace_hash,
                second.report.trace_hash,
                if same { "same" } else { "DIFFERENT" }
            );
        }
        if !same {
            println!(
                "NON-DETERMINISM seed={seed} trace_hash={} vs {}",
                first.report.trace_hash, second.report.trace_hash
            );
            return ExitCode::FAILURE;
        }
    }
    if cli.json {
        println!("{}", json_line(&first));
    } else {
        print_human(&first, &replay);
    }
    write_report(cli, &first.report, &replay);
    if first.report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn many_seeds(cli: &Cli, range: Range<u64>) -> ExitCode {
    let seeds: Vec<u64> = match cli.shard {
        Some(shard) => shard.seeds(range),
        None => range.collect(),
    };
    let bar = if cli.json {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(seeds.len() as u64)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} seeds, {elapsed} ({msg})")
            .expect("a valid template"),
    );
    let (mut passed, mut failed, mut simulated_ms, mut wall_ms) = (0u64, Vec::new(), 0u64, 0u64);
    let mut clock = None;
    wall_ms_since(&mut clock);
    let jobs = cli
        .jobs
        .map_or_else(sim::sweep::default_jobs, |j| j as usize);
    let work = |seed: u64| seed_checked(cli, seed);
    let stop = |t: &Timed| !t.report.ok && !cli.keep_going;
    sim::sweep::run_ordered(&seeds, jobs, work, stop, |seed, t| {
        simulated_ms += t.report.simulated_ms;
        wall_ms += t.wall_ms;
        if cli.json {
            println!("{}", json_line(&t));
        }
        bar.inc(1);
        if t.report.ok {
            passed += 1;
        } else {
            let replay = replay(cli, &t.report.config);
            let v = t
                .report
                .violation
                .clone()
                .expect("a failed run has a violation");
            bar.suspend(|| {
                eprintln!("seed {seed} FAILED: {v}\n  replay: {replay}");
                if failed.is_empty() {
                    write_report(cli, &t.report, &replay);
                }
            });
            failed.push((seed, v, replay));
        }
        bar.set_message(format!("{} failed", failed.len()));
    });
    bar.finish_and_clear();
    let total_wall = wall_ms_since(&mut clock);
    if !cli.json {
        println!("seeds run   {}", passed + failed.len() as u64);
        println!("passed      {passed}");
        println!("failed      {}", failed.len());
        println!("simulated   {:.1} s", simulated_ms as f64 / 1000.0);
        println!(
            "wall        {:.1} s (runs {:.1} s, {jobs} jobs)",
            total_wall as f64 / 1000.0,
            wall_ms as f64 / 1000.0
        );
        for (seed, v, replay) in &failed {
            println!("FAILED seed={seed}: {v}\n  replay: {replay}");
        }
    }
    let _ = std::io::stdout().flush();
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// One seed of a sweep, run twice with `--check-determinism` (a differing trace hash fails it).
fn seed_checked(cli: &Cli, seed: u64) -> Timed {
    let mut t = run_seed(config_for(cli, seed));
    if cli.check_determinism {
        let again = run_seed(config_for(cli, seed));
        if again.report.trace_hash != t.report.trace_hash {
            let detail = format!(
                "trace hash {} then {}",
                t.report.trace_hash, again.report.trace_hash
            );
            let v = Violation::new(
                "determinism",
                sim::check::raft::NodeId(0),
                Default::default(),
                Default::default(),
                detail,
            );
            t.report.ok = false;
            t.report.violation = Some(v);
        }
    }
    t
}

/// `merge-results`: one summary of several sweeps' `--json` lines.
fn merge_results(files: &[std::path::PathBuf], seeds: Option<Range<u64>>) -> ExitCode {
    let mut texts = Vec::new();
    for file in files {
        match std::fs::read_to_string(file) {
            Ok(text) => texts.push((file.display().to_string(), text)),
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", file.display());
                return ExitCode::from(2);
            }
        }
    }
    let merged = match sim::sweep::merge(&texts, seeds.clone()) {
        Ok(merged) => merged,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    println!("files       {}", files.len());
    println!("seeds       {}", merged.seeds);
    println!("passed      {}", merged.passed);
    println!("failed      {}", merged.failed.len());
    println!("duplicated  {}", merged.duplicated.len());
    if let Some(range) = &seeds {
        println!(
            "missing     {} (of {}..{})",
            merged.missing.len(),
            range.start,
            range.end
        );
    }
    for (seed, rule) in &merged.failed {
        println!("FAILED seed={seed}: {rule}");
    }
    let list = |seeds: &[u64]| {
        let shown: Vec<String> = seeds.iter().take(20).map(u64::to_string).collect();
        let more = seeds.len().saturating_sub(20);
        if more > 0 {
            format!("{} and {more} more", shown.join(" "))
        } else {
            shown.join(" ")
        }
    };
    if !merged.duplicated.is_empty() {
        println!("DUPLICATED seeds: {}", list(&merged.duplicated));
    }
    if !merged.missing.is_empty() {
        println!("MISSING seeds: {}", list(&merged.missing));
    }
    if merged.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The subcommands that only read files or sweep: planted bugs, merge-results, check-history.
fn simple_command(cli: &Cli) -> Option<ExitCode> {
    match &cli.command {
        Some(Command::PlantedBugs {
            max_seeds,
            sample,
            out,
        }) => Some(planted_bugs(*max_seeds, *sample, out)),
        Some(Command::MergeResults { files, seeds }) => Some(merge_results(files, seeds.clone())),
        Some(Command::CheckHistory { files, format }) => Some(match (format, &files[..]) {
            (HistoryFormat::Floe, [file]) => check_history(file),
            (HistoryFormat::Floe, _) => {
                eprintln!("error: --format floe judges one history at a time");
                ExitCode::from(2)
            }
            (HistoryFormat::Jepsen, files) => check_jepsen(files),
        }),
        _ => None,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(code) = simple_command(&cli) {
        return code;
    }
    if let Some(Command::Research {
        experiment,
        trials,
        servers,
        nine,
        seed,
        out,
        ongaro,
        latency_us,
        disk_us,
        disk_tail_us,
        vote_disk_us,
        timer_late_us,
        drift_ppm,
        leader_disk,
        busy_disk,
        append_spread_us,
        timeout_step_us,
    }) = &cli.command
    {
        if experiment == "partial" {
            return research_partial(trials.unwrap_or(100) as u64, *seed, out, cli.jobs);
        }
        if experiment != "elections" {
            eprintln!("error: unknown experiment {experiment:?} (known: elections, partial)");
            return ExitCode::from(2);
        }
        if *servers < 3 {
            eprintln!("error: --servers must be at least 3 (two of them keep shorter logs)");
            return ExitCode::from(2);
        }
        let opts = sim::fig16::ElectionsOptions {
            trials: *trials,
            servers: *servers,
            seed: *seed,
            out: out.clone(),
            ongaro_csv: ongaro.clone(),
            nine: *nine,
            timing: {
                let d = sim::fig16::Timing::default();
                sim::fig16::Timing {
                    latency_us: latency_us.unwrap_or(d.latency_us),
                    disk_us: disk_us.unwrap_or(d.disk_us),
                    disk_tail_us: disk_tail_us.unwrap_or(d.disk_tail_us),
                    vote_disk_us: vote_disk_us.unwrap_or(d.vote_disk_us),
                    timer_late_us: timer_late_us.unwrap_or(d.timer_late_us),
                    drift_ppm: drift_ppm.unwrap_or(d.drift_ppm),
                    leader_disk: leader_disk.unwrap_or(d.leader_disk),
                    busy_disk: busy_disk.unwrap_or(d.busy_disk),
                    append_spread_us: append_spread_us.unwrap_or(d.append_spread_us),
                    timeout_step_us: timeout_step_us.unwrap_or(d.timeout_step_us),
                }
            },
        };
        let mut clock = None;
        wall_ms_since(&mut clock);
        return match sim::fig16::run_elections(&opts) {
            Ok(md) => {
                println!("{md}");
                println!(
                    "wall {:.1} s; wrote {}",
                    wall_ms_since(&mut clock) as f64 / 1000.0,
                    out.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        };
    }
    if cli.shrink {
        return shrink(&cli, cli.seed.unwrap_or(1));
    }
    match (&cli.seeds, cli.seed) {
        (Some(seeds), _) => many_seeds(&cli, seeds.clone()),
        (None, seed) => one_seed(&cli, seed.unwrap_or(1)),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_us_range;

    #[test]
    fn microsecond_ranges_parse_and_bad_ones_are_refused() {
        assert_eq!(parse_us_range("1500..1900"), Ok((1500, 1900)));
        assert_eq!(parse_us_range("700"), Ok((700, 700)));
        assert!(parse_us_range("9..3").unwrap_err().contains("backwards"));
        assert!(
            parse_us_range("x..3")
                .unwrap_err()
                .contains("not a whole number")
        );
        assert!(parse_us_range("20000000").unwrap_err().contains("10 s"));
        assert!(parse_us_range("1..20000000").unwrap_err().contains("10 s"));
        assert_eq!(super::parse_us(" 80 "), Ok(80));
    }
}
