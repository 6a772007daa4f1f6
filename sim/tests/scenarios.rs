//! Every named scenario under `scenarios/` parses, and one seed of each behaves as it expects.

use std::path::Path;

use sim::options::Overrides;
use sim::run::run_isolated;
use sim::scenario::Scenario;

fn scenario_names() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("scenarios/ exists")
        .filter_map(|e| {
            let path = e.expect("a directory entry").path();
            (path.extension()? == "toml").then(|| path.file_stem()?.to_str().map(String::from))?
        })
        .collect();
    names.sort();
    names
}

#[test]
fn the_election_family_exists_and_every_scenario_runs_as_expected() {
    let names = scenario_names();
    for family in [
        "cold-start",
        "leader-crash",
        "symmetric-partition",
        "one-way",
        "majority-ring",
        "bridge",
        "rolling-restarts",
    ] {
        let name = format!("elections-{family}");
        assert!(names.contains(&name), "scenarios/{name}.toml is missing");
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for name in names {
        let scenario = Scenario::load(&root, &name).unwrap_or_else(|e| panic!("{e}"));
        let report = run_isolated(scenario.config(1, Overrides::default())).expect("no panic");
        assert_eq!(
            report.ok, scenario.expect_pass,
            "{name} seed 1: {:?}",
            report.violation
        );
    }
}

#[test]
fn a_scenario_replays_with_its_name() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let scenario = Scenario::load(&root, "elections-leader-crash").expect("loads");
    let config = scenario.config(9, Overrides::default());
    assert!(
        config
            .replay_command(false, false)
            .contains("--seed 9 --scenario elections-leader-crash")
    );
    let a = run_isolated(config.clone()).expect("no panic");
    let b = run_isolated(config).expect("no panic");
    assert_eq!(a.trace_hash, b.trace_hash, "same seed, same run");
    assert!(
        a.faults_injected >= 9,
        "the timed steps ran: {}",
        a.faults_injected
    );
}

/// The partial-topology liveness rule bites: the chained scenario, run as etcd-io/raft's plain
/// Raft (PreVote and CheckQuorum off, a refused vote restarting the election timer), goes
/// without a leader that can commit for longer than the bound. (With this core's default timer
/// rule, a refused vote keeping the timer, plain Raft passed seeds 1..200 of it. Plain
/// Raft on Howard–Abraham loses its leader often, 61% of the time, but in gaps under the
/// 3 s bound: reports/partial-connectivity.md.) First caught at seed 58 since the clients speak
/// HTTP (their draws from the shared random stream moved every seed's faults and timings).
#[test]
fn plain_raft_fails_the_partial_topology_liveness_rule() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let name = "partial-chained";
    let scenario = Scenario::load(&root, name).unwrap_or_else(|e| panic!("{e}"));
    // Re-found after workload changes, like the regression seeds.
    let caught = (1..=200).find_map(|seed| {
        let mut config = scenario.config(seed, Overrides::default());
        config.settings.pre_vote = false;
        config.settings.check_quorum = false;
        config.settings.refused_vote_resets_timer = true;
        let report = run_isolated(config).expect("no panic");
        let rule = report.violation.map(|v| v.rule)?;
        Some((seed, rule))
    });
    let (seed, rule) = caught.unwrap_or_else(|| panic!("{name}: plain Raft passed 200 seeds"));
    assert!(
        rule.starts_with("liveness: a leader while a partial topology"),
        "{name} seed {seed}: {rule}"
    );
}

/// The aimed crashes land: every armed moment is reached and its node crashed there (counted by
/// kind), and the run passes every checker.
#[test]
fn aimed_crashes_hit_their_moments() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let scenario = Scenario::load(&root, "aimed-crashes").unwrap_or_else(|e| panic!("{e}"));
    let kinds = [
        "crash-sync-in-flight",
        "crash-after-persist",
        "crash-after-commit",
    ];
    let mut hits = [0; 3];
    for seed in 1..=3 {
        let report = run_isolated(scenario.config(seed, Overrides::default())).expect("no panic");
        assert!(report.ok, "seed {seed}: {:?}", report.violation);
        for (kind, hits) in kinds.iter().zip(&mut hits) {
            *hits += report.faults_by_kind.get(*kind).copied().unwrap_or(0);
        }
    }
    // Each is armed 4 times a seed; a moment that does not come within its window (no leader
    // commits while a new one is being elected) is a miss, not a failure.
    for (kind, hits) in kinds.iter().zip(hits) {
        assert!(hits >= 9, "{kind} hit {hits} of 12 times in seeds 1..=3");
    }
}
