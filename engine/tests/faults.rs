//! A real 3-process floe cluster under faults: clients run random etcd v2 operations for
//! FLOE_FAULT_SECONDS (default 60) while members are killed with SIGKILL and restarted, or
//! stopped with SIGSTOP and resumed, the leader too. Afterwards no acknowledged write is missing
//! (`faults/cluster_under_faults.py` checks) and the recorded history passes the simulator's
//! checkers: index monotonicity and linearizability (Wing–Gong–Lowe against the etcd model).
//! Two shorter runs damage a stopped member's log at rest instead (bytes flipped in the middle
//! of its WAL, or in its snapshot record) and restart it: it must repair from the others, and
//! the same checks hold.

mod support;

use std::process::Command;

use support::{FLOE, repo, run_ok, temp_dir};

/// Runs the cluster script for `seconds` with `env`, then judges the history it recorded
/// (at least `min_ops` operations).
fn cluster_run(name: &str, seconds: &str, env: &[(&str, &str)], min_ops: usize) {
    let dir = temp_dir(name);
    let history = dir.join("history.jsonl");
    let mut command = Command::new("python3");
    command
        .arg(repo().join("engine/tests/faults/cluster_under_faults.py"))
        .arg(FLOE)
        .arg(dir.join("cluster"))
        .arg(seconds)
        .arg(&history);
    for (key, value) in env {
        command.env(key, value);
    }
    let out = run_ok("faults/cluster_under_faults.py", &mut command);
    println!("{out}");
    support::judge_history(&history, min_ops);
}

#[test]
fn no_acknowledged_write_is_lost_and_the_history_is_linearizable() {
    let seconds = std::env::var("FLOE_FAULT_SECONDS").unwrap_or_else(|_| "60".into());
    cluster_run("faults", &seconds, &[], 1000);
}

#[test]
fn a_member_whose_wal_is_damaged_in_the_middle_repairs_from_the_others() {
    let env = [("FLOE_FAULT_DISK", "wal"), ("FLOE_FAULT_PORT", "27111")];
    cluster_run("faults-wal", "15", &env, 200);
}

#[test]
fn a_member_whose_snapshot_is_damaged_repairs_from_the_others() {
    let env = [
        ("FLOE_FAULT_DISK", "snapshot"),
        ("FLOE_FAULT_PORT", "27211"),
    ];
    cluster_run("faults-snapshot", "15", &env, 200);
}
