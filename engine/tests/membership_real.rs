//! The real node under membership changes (issue #17, item 5): a 3-process `floe` cluster under
//! write load adds a fourth member as a learner, promotes it, removes an original member, then
//! replaces its leader (the leader removes itself, handing over first, and a fifth member
//! joins), all through the etcd v2 members API (`membership_real/cluster_reconfig.py`). Removed
//! members must exit by themselves; every acknowledged write must be there at the end; the
//! recorded history must pass the simulator's checkers (index monotonicity, linearizability).
//! And etcdctl v2's `member list/add/update/remove` work against a floe cluster.

mod support;

use std::process::Command;

use support::{FLOE, Proc, repo, run_ok, setup, spawn, temp_dir, wait_healthy};

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
    support::judge_history(&history, 300);
}

/// Three founding members on `client_base + i` / `peer_base + i` (i = 1..=3), healthy.
fn three_members(dir: &std::path::Path, client_base: u16, peer_base: u16) -> Vec<Proc> {
    let cluster: Vec<String> = (1..=3)
        .map(|j| format!("n{j}=http://127.0.0.1:{}", peer_base + j))
        .collect();
    let members: Vec<Proc> = (1..=3)
        .map(|i| {
            let args = vec![
                format!("--name=n{i}"),
                format!("--data-dir={}", dir.join(format!("n{i}")).display()),
                format!("--initial-cluster={}", cluster.join(",")),
                format!("--listen-client-urls=http://127.0.0.1:{}", client_base + i),
                format!("--listen-peer-urls=http://127.0.0.1:{}", peer_base + i),
            ];
            spawn(
                &format!("n{i}"),
                FLOE,
                &args,
                &dir.join(format!("n{i}.log")),
            )
        })
        .collect();
    for i in 1..=3 {
        wait_healthy(client_base + i);
    }
    members
}

#[test]
fn etcdctl_member_list_add_update_remove() {
    setup(&["etcd"]);
    let dir = temp_dir("etcdctl-member");
    let _members = three_members(&dir, 27840, 27850);
    // Through a member that may not lead: changes are redirected to the leader.
    let out = run_ok(
        "etcdctl_members.sh",
        Command::new("bash")
            .arg(repo().join("engine/tests/clients/etcdctl_members.sh"))
            .arg("http://127.0.0.1:27842")
            .arg("http://127.0.0.1:27860"),
    );
    println!("{out}");
    assert!(out.contains("etcdctl member: ok"), "{out}");
}
