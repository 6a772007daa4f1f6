//! The real node under membership changes (issue #17, item 5): a 3-process `floe` cluster under
//! write load adds a fourth member as a learner, promotes it, removes an original member, then
//! replaces its leader (the leader removes itself, handing over first, and a fifth member
//! joins), all through the etcd v2 members API (`membership_real/cluster_reconfig.py`). Removed
//! members must exit by themselves; every acknowledged write must be there at the end; the
//! recorded history must pass the simulator's checkers (index monotonicity, linearizability).

mod support;

use std::process::Command;

use checker::linearizability::{Budget, Verdict, check};
use support::{FLOE, repo, run_ok, temp_dir};

#[test]
fn a_cluster_replaces_members_and_its_leader_under_load_without_losing_a_write() {
    let seconds = std::env::var("FLOE_RECONFIG_SECONDS").unwrap_or_else(|_| "25".into());
    let dir = temp_dir("membership-real");
    let history = dir.join("history.jsonl");
    let out = run_ok(
        "membership_real/cluster_reconfig.py",
        Command::new("python3")
            .arg(repo().join("engine/tests/membership_real/cluster_reconfig.py"))
            .arg(FLOE)
            .arg(dir.join("cluster"))
            .arg(&seconds)
            .arg(&history),
    );
    println!("{out}");
    let text = std::fs::read_to_string(&history).expect("history written");
    let ops = checker::history_file::read_jsonl(&text).expect("a well-formed history");
    assert!(ops.len() > 300, "too few operations: {}", ops.len());
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
