//! `--shrink`: turns a failing run into the smallest scenario file found that still fails the
//! same rule, searched deterministically.
//!
//! 1. The run's faults become an explicit schedule (`RunReport::fault_steps`): the nemesis
//!    draws its decisions from a stream of their own, so the schedule replays them exactly
//!    (if it does not fail the same way, the random faults are kept and only the rest shrinks).
//! 2. Delta debugging (ddmin) over the schedule's steps, then one step at a time.
//! 3. Fewer clients, a lower request rate, three nodes instead of five or seven, a shorter
//!    safety phase: each kept only if the run still fails the same rule.
//!
//! Every candidate is written as scenario TOML and read back before it runs, so what is tried is
//! exactly what the file written at the end replays. A removed step shifts the random draws of
//! the steps after it, so the search is over runs, not over a fixed world: the result is small
//! and fails on its own, not the smallest possible.

use std::fmt::Write as _;

use crate::options::{Overrides, SimConfig};
use crate::run::{RunReport, run_isolated};
use crate::scenario::{Scenario, Step};

/// Most runs one shrink may take.
pub const RUNS_MAX: u64 = 400;

/// What a shrunk scenario fixes; the rest comes from the seed.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Candidate {
    nodes: usize,
    clients: usize,
    ops_per_s: u64,
    duration_ms: u64,
    /// `None`: the original random faults (kinds and interval) stay.
    steps: Option<Vec<Step>>,
}

/// The outcome of a shrink.
#[derive(Clone, Debug)]
pub struct Shrunk {
    /// The scenario file's text.
    pub toml: String,
    /// The rule both the original and the shrunk run break.
    pub rule: String,
    /// Runs taken.
    pub runs: u64,
    /// Fault steps, clients, operations started, nodes and duration (ms), before and after.
    pub before: Size,
    /// The same for the shrunk run.
    pub after: Size,
    /// The shrunk run's report.
    pub report: RunReport,
}

/// How big a run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size {
    /// Fault steps applied.
    pub faults: usize,
    /// Clients.
    pub clients: usize,
    /// Operations the clients started.
    pub ops: u64,
    /// Nodes.
    pub nodes: usize,
    /// Safety phase, ms.
    pub duration_ms: u64,
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} fault steps, {} clients, {} operations, {} nodes, {} ms",
            self.faults, self.clients, self.ops, self.nodes, self.duration_ms
        )
    }
}

fn size(report: &RunReport) -> Size {
    Size {
        faults: report.fault_steps.len(),
        clients: report.config.clients,
        ops: report.clients.started,
        nodes: report.config.nodes,
        duration_ms: report.config.duration_ms,
    }
}

/// The scenario TOML of `c` over `base` (the original run's configuration).
fn to_toml(base: &SimConfig, c: &Candidate, rule: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "description = \"shrunk from seed {}: breaks {}\"",
        base.seed,
        rule.replace('"', "'")
    );
    let _ = writeln!(out, "nodes = {}", c.nodes);
    let s = &base.settings;
    // A scenario's timing runs on 10 ms ticks; a seed on another tick (production's) keeps the
    // timing the seed draws, so the file names none.
    if s.tick_ms == 10 {
        let _ = writeln!(
            out,
            "election_timeout_ms = [{}, {}]",
            s.election_ticks * s.tick_ms,
            s.election_max_ticks * s.tick_ms
        );
        let _ = writeln!(out, "heartbeat_ms = {}", s.heartbeat_ticks * s.tick_ms);
    }
    let _ = writeln!(out, "pre_vote = {}", s.pre_vote);
    let _ = writeln!(out, "check_quorum = {}", s.check_quorum);
    let _ = writeln!(out, "duration_ms = {}", c.duration_ms);
    let _ = writeln!(out, "clients = {}", c.clients);
    let _ = writeln!(out, "ops_per_s = {}", c.ops_per_s);
    out.push_str("\n[faults]\n");
    match &c.steps {
        Some(steps) => {
            out.push_str("steps = [\n");
            for step in steps {
                let _ = writeln!(
                    out,
                    "  {{ at_ms = {}, action = \"{}\" }},",
                    step.at_ms, step.action
                );
            }
            out.push_str("]\n");
        }
        None => {
            let kinds: Vec<String> = (base.faults.iter())
                .map(|(kind, weight)| format!("{} = {weight}", kind.name()))
                .collect();
            let _ = writeln!(out, "kinds = {{ {} }}", kinds.join(", "));
            let _ = writeln!(
                out,
                "interval_ms = [{}, {}]",
                base.fault_interval_ms.0, base.fault_interval_ms.1
            );
        }
    }
    let _ = writeln!(
        out,
        "\n[expect]\noutcome = \"fail\"\nleader_within_ms = {}",
        base.leader_bound_ms
    );
    out
}

/// The search's state: the best candidate so far and its run.
struct Search<'a> {
    base: SimConfig,
    overrides: Overrides,
    name: &'a str,
    rule: String,
    runs: u64,
    best: Candidate,
    report: RunReport,
}

impl Search<'_> {
    /// Runs `c` (as a scenario file's text, read back); if it breaks the same rule it becomes
    /// the best candidate.
    fn try_run(&mut self, c: Candidate) -> bool {
        if self.runs >= RUNS_MAX {
            return false;
        }
        self.runs += 1;
        let text = to_toml(&self.base, &c, &self.rule);
        let Ok(scenario) = Scenario::parse(self.name, &text) else {
            return false;
        };
        let Ok(report) = run_isolated(scenario.config(self.base.seed, self.overrides)) else {
            return false;
        };
        let same = !report.ok && (report.violation.as_ref()).is_some_and(|v| v.rule == self.rule);
        if same {
            self.best = c;
            self.report = report;
        }
        same
    }

    /// ddmin over the fault steps (drop a chunk while the rest still fails; finer chunks when
    /// none can go), down to single steps.
    fn shrink_steps(&mut self) {
        let Some(mut kept) = self.best.steps.clone() else {
            return;
        };
        let mut chunks = 2;
        while kept.len() >= 2 {
            let size = kept.len().div_ceil(chunks);
            let mut reduced = false;
            for from in (0..kept.len()).step_by(size) {
                let rest: Vec<Step> = (kept.iter().enumerate())
                    .filter(|(i, _)| *i < from || *i >= from + size)
                    .map(|(_, s)| s.clone())
                    .collect();
                let candidate = Candidate {
                    steps: Some(rest.clone()),
                    ..self.best.clone()
                };
                if self.try_run(candidate) {
                    kept = rest;
                    chunks = (chunks - 1).max(2);
                    reduced = true;
                    break;
                }
            }
            if !reduced {
                if chunks >= kept.len() {
                    break;
                }
                chunks = (chunks * 2).min(kept.len());
            }
        }
        if kept.len() == 1 {
            let none = Candidate {
                steps: Some(Vec::new()),
                ..self.best.clone()
            };
            self.try_run(none);
        }
    }

    /// Applies `next` while the result still fails the same rule.
    fn shrink_while(&mut self, next: impl Fn(&Candidate) -> Option<Candidate>) {
        while let Some(candidate) = next(&self.best) {
            if !self.try_run(candidate) {
                break;
            }
        }
    }

    /// The safety phase cut to `duration_ms`, with the steps it leaves out dropped.
    fn cut(c: &Candidate, duration_ms: u64) -> Candidate {
        Candidate {
            duration_ms,
            steps: (c.steps.as_ref()).map(|s| {
                s.iter()
                    .filter(|s| s.at_ms < duration_ms)
                    .cloned()
                    .collect()
            }),
            ..c.clone()
        }
    }
}

/// Shrinks the failing run of `config`. `overrides` are the command line's (`--nodes`, `--bug`)
/// and apply to every candidate; `name` is what the scenario will be called (its path).
pub fn shrink(config: SimConfig, overrides: Overrides, name: &str) -> Result<Shrunk, String> {
    let first = run_isolated(config.clone())?;
    let Some(violation) = first.violation.clone().filter(|_| !first.ok) else {
        return Err(format!("seed {} passes: nothing to shrink", config.seed));
    };
    let before = size(&first);
    let best = Candidate {
        nodes: config.nodes,
        clients: config.clients,
        ops_per_s: config.ops_per_s,
        duration_ms: config.duration_ms,
        steps: Some(first.fault_steps.clone()),
    };
    let mut search = Search {
        base: config,
        overrides,
        name,
        rule: violation.rule.to_string(),
        runs: 1,
        best: best.clone(),
        report: first,
    };
    // The schedule as it ran; else the random faults as they were.
    if !search.try_run(best.clone()) {
        let random = Candidate {
            steps: None,
            ..best
        };
        if !search.try_run(random) {
            return Err(format!(
                "seed {} does not fail the same way as a scenario",
                search.base.seed
            ));
        }
    }
    search.shrink_steps();
    search.shrink_while(|c| {
        (c.clients > 1).then(|| Candidate {
            clients: c.clients / 2,
            ..c.clone()
        })
    });
    search.shrink_while(|c| {
        (c.ops_per_s > 1).then(|| Candidate {
            ops_per_s: c.ops_per_s / 2,
            ..c.clone()
        })
    });
    if overrides.nodes.is_none() {
        search.shrink_while(|c| {
            (c.nodes > 3).then(|| Candidate {
                nodes: 3,
                ..c.clone()
            })
        });
    }
    // The safety phase: first cut just after the violation, then halved.
    let seen_ms = (search.report.violation.as_ref()).map_or(u64::MAX, |v| v.at_ms);
    let cut_ms = seen_ms.saturating_add(1000).div_ceil(1000) * 1000;
    if cut_ms < search.best.duration_ms {
        search.try_run(Search::cut(&search.best, cut_ms));
    }
    search.shrink_while(|c| {
        (c.duration_ms > 1000).then(|| Search::cut(c, (c.duration_ms / 2).max(1000) / 100 * 100))
    });
    Ok(Shrunk {
        toml: to_toml(&search.base, &search.best, &search.rule),
        after: size(&search.report),
        rule: search.rule,
        runs: search.runs,
        before,
        report: search.report,
    })
}
