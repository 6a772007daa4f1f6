//! A real 3-process floe cluster under faults: clients run random etcd v2 operations for
//! FLOE_FAULT_SECONDS (default 60) while members are killed with SIGKILL and restarted, or
//! stopped with SIGSTOP and resumed, the leader too. Afterwards no acknowledged write is missing
//! (`faults/cluster_under_faults.py` checks) and the recorded history passes the simulator's
//! checkers: index monotonicity and linearizability (Wing–Gong–Lowe against the etcd model).

mod support;

use std::process::Command;

use checker::linearizability::{Budget, Verdict, check};
use support::{FLOE, repo, run_ok, temp_dir};

#[test]
fn no_acknowledged_write_is_lost_and_the_history_is_linearizable() {
    let seconds = std::env::var("FLOE_FAULT_SECONDS").unwrap_or_else(|_| "60".into());
    let dir = temp_dir("faults");
    let history = dir.join("history.jsonl");
    let out = run_ok(
        "faults/cluster_under_faults.py",
        Command::new("python3")
            .arg(repo().join("engine/tests/faults/cluster_under_faults.py"))
            .arg(FLOE)
            .arg(dir.join("cluster"))
            .arg(&seconds)
            .arg(&history),
    );
    println!("{out}");
    let text = std::fs::read_to_string(&history).expect("history written");
    let ops = checker::history_file::read_jsonl(&text).expect("a well-formed history");
    assert!(ops.len() > 1000, "too few operations: {}", ops.len());
    if let Err(v) = checker::index::check_index(&ops) {
        panic!(
            "index rule broken: {v} (history kept at {})",
            history.display()
        );
    }
    let report = check(&ops, Budget::steps(checker::linearizability::STEPS_MAX));
    println!("linearizability: {report}");
    assert_eq!(
        report.verdict(),
        Verdict::Linearizable,
        "{report} (history kept at {})",
        history.display()
    );
}
