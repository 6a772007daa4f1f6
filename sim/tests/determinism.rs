//! Same seed, same run; different seeds, different runs; faults pass every check; planted bugs
//! are caught. Runs in the dev profile, so the simulated phases are kept short.

use sim::options::{Bug, Overrides, Settings, SimConfig};
use sim::run::{RunReport, run_isolated};

fn run_seed(seed: u64, bug: Option<Bug>) -> RunReport {
    run_seed_with(seed, bug, None)
}

fn run_seed_with(seed: u64, bug: Option<Bug>, settings: Option<Settings>) -> RunReport {
    let overrides = Overrides {
        nodes: None,
        duration_ms: Some(5_000),
        bug,
        settings,
        reconfigure: false,
    };
    run_isolated(SimConfig::swarm(seed, overrides)).expect("the engine does not panic")
}

#[test]
fn same_seed_gives_the_same_trace_hash() {
    for seed in [1, 2, 3] {
        let first = run_seed(seed, None);
        let second = run_seed(seed, None);
        assert_eq!(
            first.trace_hash, second.trace_hash,
            "seed {seed} replays bit for bit"
        );
        assert_eq!(first.simulated_ms, second.simulated_ms);
        assert_eq!(first.commands_committed, second.commands_committed);
    }
}

#[test]
fn different_seeds_give_different_trace_hashes() {
    let hashes: std::collections::BTreeSet<String> = (10..20)
        .map(|seed| run_seed(seed, None).trace_hash)
        .collect();
    assert_eq!(hashes.len(), 10, "ten seeds, ten different runs");
}

#[test]
fn seeds_with_faults_pass_every_check_and_do_work() {
    let mut committed = 0;
    let mut faults = 0;
    let mut elections = 0;
    for seed in 100..130 {
        let report = run_seed(seed, None);
        assert!(report.ok, "seed {seed}: {:?}", report.violation);
        assert!(
            report.liveness_leader_ms.is_some(),
            "seed {seed} found a leader after healing"
        );
        committed += report.commands_committed;
        faults += report.faults_injected;
        elections += report.elections;
    }
    // Vacuity guards: a run that commits nothing or injects nothing proves nothing.
    assert!(committed > 1_000, "clients committed {committed} commands");
    assert!(faults > 30, "the nemesis injected {faults} faults");
    assert!(elections > 30, "{elections} elections");
}

#[test]
fn commit_old_term_is_caught_within_100_seeds() {
    // 5 s runs: the varied settings' fast elections (floe's 1-2 s timeouts leave few in 5 s).
    let caught = (1..=100).find_map(|seed| {
        let report = run_seed_with(seed, Some(Bug::CommitOldTerm), Some(Settings::Varied));
        report.violation.map(|v| (seed, v))
    });
    let (seed, violation) = caught.expect("the planted Figure 8 bug is caught");
    assert!(seed <= 100);
    assert!(
        violation.rule.contains("5.4.2")
            || violation.rule.contains("completeness")
            || violation.rule.contains("state machine"),
        "caught by a Raft safety rule, not something else: {violation}"
    );
}

#[test]
fn stale_read_is_caught_within_100_seeds() {
    // Full-length runs: a deposed leader must be asked a quorum read while a new leader has
    // acknowledged a write, which the 5 s runs of the other tests rarely reach.
    let caught = (1..=100).find_map(|seed| {
        let overrides = Overrides {
            nodes: None,
            duration_ms: None,
            bug: Some(Bug::StaleRead),
            // The production settings' CheckQuorum deposes a cut-off leader before a new one
            // commits, which hides this bug in most seeds; the varied ones show it.
            settings: Some(Settings::Varied),
            reconfigure: false,
        };
        let config = SimConfig::swarm(seed, overrides);
        run_isolated(config).expect("no panic").violation
    });
    let violation = caught.expect("the planted stale-read bug is caught");
    assert!(
        [
            "linearizable reads see acknowledged writes",
            "linearizability"
        ]
        .contains(&violation.rule),
        "caught by a read check or the linearizability checker: {violation}"
    );
}

#[test]
fn reference_world_runs_clean() {
    let report = run_isolated(SimConfig::bench(1, 10_000)).expect("no panic");
    assert!(report.ok, "{:?}", report.violation);
    assert_eq!(report.elections, 1, "no faults, one election");
    assert!(
        report.commands_committed >= 900,
        "about 100 commands a second: {}",
        report.commands_committed
    );
}

#[test]
fn peer_messages_go_through_the_codec_and_a_codec_bug_is_caught() {
    // Vacuity guard: a clean run encodes every message and opens connections with hellos
    // (crashes and cuts open new ones).
    let clean = run_seed(1, None);
    assert!(clean.ok, "{:?}", clean.violation);
    assert!(
        clean.net.hellos >= clean.config.nodes as u64,
        "{:?}",
        clean.net
    );
    assert!(clean.net.wire_bytes > clean.net.sent * 4, "{:?}", clean.net);
    let caught = run_seed(1, Some(Bug::SplitLengthPrefix));
    let violation = caught.violation.expect("the planted codec bug is caught");
    assert_eq!(violation.rule, "peer codec", "{violation}");
}
