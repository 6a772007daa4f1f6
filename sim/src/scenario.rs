//! Named scenarios: `scenarios/<name>.toml`, run with `sim --scenario NAME [--seeds A..B]`.
//!
//! A scenario starts from the swarm configuration its seed draws and fixes what the file says:
//!
//! ```toml
//! description = "the leader crashes; a new one must come within the bound"
//! nodes = 5                        # cluster size
//! election_timeout_ms = [150, 300] # [min, max) of the randomized election timeout
//! heartbeat_ms = 50                # leader heartbeat interval
//! pre_vote = false                 # Raft thesis §9.6
//! check_quorum = false             # Raft thesis §6.2
//! duration_ms = 20000              # safety phase; the liveness phase follows
//! clients = 2                      # workload: concurrent clients...
//! ops_per_s = 50                   # ...and their total rate
//!
//! [faults]
//! # Timed steps (in order), or probabilities drawn per seed, or none:
//! steps = [ { at_ms = 3000, action = "crash-leader" }, { at_ms = 5000, action = "restart-all" } ]
//! # kinds = { crash = 2, isolate-leader = 1 }   # random faults with weights (FaultKind names)
//! # interval_ms = [500, 2000]                   # gap between two random faults
//!
//! [expect]
//! outcome = "pass"                 # or "fail" (a scenario that must break a rule)
//! leader_within_ms = 3000          # a quiet majority must have a stable leader this soon
//! ```
//!
//! Step actions: `crash-leader`, `crash-random`, `restart-all`, `pause-leader`, `resume-all`,
//! `isolate-leader`, `isolate-random`, `heal`, `transfer-leader`, and any fault kind's name
//! (`partition-halves`, `majority-ring`, `bridge`, `one-way`, `lossy`, `slow`, ...).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::nemesis::FaultKind;
use crate::options::{Overrides, SimConfig};

/// One timed step of a fault schedule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// When, in simulated ms from the start.
    pub at_ms: u64,
    /// What (see the module doc).
    pub action: String,
}

/// The `[faults]` table.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Faults {
    #[serde(default)]
    steps: Vec<Step>,
    #[serde(default)]
    kinds: std::collections::BTreeMap<String, u32>,
    interval_ms: Option<(u64, u64)>,
}

/// The `[expect]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    #[serde(default = "pass")]
    outcome: String,
    leader_within_ms: Option<u64>,
    /// A stable leader reaching a majority must also come within the bound while a partial
    /// topology holds (not only once the network heals).
    #[serde(default)]
    leader_while_partial: bool,
}

fn pass() -> String {
    "pass".into()
}

/// A scenario file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    description: String,
    nodes: Option<usize>,
    election_timeout_ms: Option<(u64, u64)>,
    heartbeat_ms: Option<u64>,
    #[serde(default)]
    pre_vote: bool,
    #[serde(default)]
    check_quorum: bool,
    duration_ms: Option<u64>,
    clients: Option<usize>,
    ops_per_s: Option<u64>,
    #[serde(default)]
    faults: Faults,
    expect: Option<Expect>,
}

/// A loaded scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Its name (the file's stem).
    pub name: String,
    /// What it is about.
    pub description: String,
    /// True if every seed must pass; false if every seed must break a rule.
    pub expect_pass: bool,
    file: File,
}

const ACTIONS: [&str; 9] = [
    "crash-leader",
    "crash-random",
    "restart-all",
    "pause-leader",
    "resume-all",
    "isolate-leader",
    "isolate-random",
    "heal",
    "transfer-leader",
];

fn fault_kind(name: &str) -> Option<FaultKind> {
    FaultKind::ALL.into_iter().find(|k| k.name() == name)
}

impl Scenario {
    /// Reads `scenarios/<name>.toml` under `root` (the workspace).
    pub fn load(root: &Path, name: &str) -> Result<Scenario, String> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(format!(
                "bad scenario name {name:?}: letters, digits and '-' only"
            ));
        }
        let path = root.join("scenarios").join(format!("{name}.toml"));
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Scenario::parse(name, &text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses a scenario's text.
    pub fn parse(name: &str, text: &str) -> Result<Scenario, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        for step in &file.faults.steps {
            let action = step.action.as_str();
            if !ACTIONS.contains(&action)
                && !crate::nemesis::PARTIAL_ACTIONS.contains(&action)
                && fault_kind(action).is_none()
            {
                return Err(format!(
                    "unknown action {:?} at {} ms",
                    step.action, step.at_ms
                ));
            }
        }
        for kind in file.faults.kinds.keys() {
            if fault_kind(kind).is_none() {
                return Err(format!("unknown fault kind {kind:?}"));
            }
        }
        if let Some((min, max)) = file.election_timeout_ms
            && (min == 0 || max <= min)
        {
            return Err(format!(
                "election_timeout_ms [{min}, {max}): need 0 < min < max"
            ));
        }
        let expect_pass = match file.expect.as_ref().map_or("pass", |e| e.outcome.as_str()) {
            "pass" => true,
            "fail" => false,
            other => return Err(format!("expect.outcome {other:?}: \"pass\" or \"fail\"")),
        };
        Ok(Scenario {
            name: name.into(),
            description: file.description.clone(),
            expect_pass,
            file,
        })
    }

    /// The run configuration for `seed`: the seed's swarm world with the scenario's settings.
    pub fn config(&self, seed: u64, overrides: Overrides) -> SimConfig {
        let f = &self.file;
        let mut c = SimConfig::swarm(seed, overrides);
        c.scenario = Some(self.name.clone());
        c.nodes = overrides.nodes.or(f.nodes).unwrap_or(c.nodes);
        // A scenario fixes its election world: the seed's settings but its timing (on 10 ms
        // ticks) and its PreVote and CheckQuorum.
        let s = &mut c.settings;
        if f.election_timeout_ms.is_some() || f.heartbeat_ms.is_some() {
            s.tick_ms = 10;
            s.heartbeat_ticks = 1;
            s.election_ticks = 10;
            s.election_max_ticks = 20;
        }
        if let Some((min, max)) = f.election_timeout_ms {
            s.election_ticks = min.div_ceil(s.tick_ms);
            s.election_max_ticks = max.div_ceil(s.tick_ms).max(2);
        }
        if let Some(hb) = f.heartbeat_ms {
            s.heartbeat_ticks = hb.div_ceil(s.tick_ms).max(1);
        }
        s.pre_vote = f.pre_vote;
        s.check_quorum = f.check_quorum;
        c.duration_ms = overrides
            .duration_ms
            .or(f.duration_ms)
            .unwrap_or(c.duration_ms);
        c.clients = f.clients.unwrap_or(c.clients);
        c.ops_per_s = f.ops_per_s.unwrap_or(c.ops_per_s);
        if let Some(bound) = f.expect.as_ref().and_then(|e| e.leader_within_ms) {
            c.leader_bound_ms = bound;
        }
        c.leader_while_partial = f.expect.as_ref().is_some_and(|e| e.leader_while_partial);
        c.schedule = f.faults.steps.clone();
        c.schedule.sort_by_key(|step| step.at_ms);
        if !f.faults.steps.is_empty() || f.faults.kinds.is_empty() {
            c.faults = Vec::new();
        } else {
            c.faults = (f.faults.kinds.iter())
                .filter_map(|(k, &w)| fault_kind(k).map(|k| (k, w)))
                .collect();
        }
        if let Some(interval) = f.faults.interval_ms {
            c.fault_interval_ms = interval;
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_scenario_parses_and_configures() {
        let text = r#"
            description = "leader crash"
            nodes = 5
            election_timeout_ms = [150, 300]
            heartbeat_ms = 50
            pre_vote = true
            [faults]
            steps = [ { at_ms = 3000, action = "crash-leader" }, { at_ms = 4000, action = "majority-ring" } ]
            [expect]
            leader_within_ms = 3000
        "#;
        let s = Scenario::parse("leader-crash", text).expect("parses");
        assert!(s.expect_pass);
        let c = s.config(7, Overrides::default());
        assert_eq!(
            (
                c.nodes,
                (c.settings.election_ticks, c.settings.election_max_ticks),
                c.settings.heartbeat_ticks
            ),
            (5, (15, 30), 5)
        );
        assert!(c.settings.pre_vote && !c.settings.check_quorum);
        assert_eq!(c.schedule.len(), 2);
        assert!(c.faults.is_empty(), "timed steps replace random faults");
        assert_eq!(c.leader_bound_ms, 3000);
    }

    #[test]
    fn bad_scenarios_get_clear_errors() {
        let cases = [
            ("description = 1", "invalid type"),
            ("description = \"x\"\nnodez = 3", "unknown field"),
            (
                "description = \"x\"\n[faults]\nsteps = [{ at_ms = 1, action = \"explode\" }]",
                "unknown action",
            ),
            (
                "description = \"x\"\n[faults]\nkinds = { meteor = 1 }",
                "unknown fault kind",
            ),
            (
                "description = \"x\"\nelection_timeout_ms = [300, 150]",
                "need 0 < min < max",
            ),
            (
                "description = \"x\"\n[expect]\noutcome = \"maybe\"",
                "\"pass\" or \"fail\"",
            ),
        ];
        for (text, needle) in cases {
            let err = Scenario::parse("t", text).expect_err(text);
            assert!(err.contains(needle), "{text}: {err}");
        }
        assert!(Scenario::load(Path::new("."), "../etc").is_err());
    }
}
