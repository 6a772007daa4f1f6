//! Leadership transfer on SIGTERM (Raft thesis §3.10), on a real 3-process `floe` cluster: the
//! leader told to stop hands its leadership to a follower before it exits, so the others serve
//! writes again well within an election timeout; after a SIGKILL of the leader they wait for one.
//! Prints both figures.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::{FLOE, Proc, http, spawn, temp_dir, wait_healthy};

const CLIENT_BASE: u16 = 27700;
const PEER_BASE: u16 = 27710;
/// `--election-timeout` of every member, ms (the randomized timeout is 1x..2x this).
const ELECTION_MS: u64 = 1000;

/// Member `i`; `life` names its log (`n<i>-<life>.log`).
fn start_member(dir: &Path, i: u16, life: u32) -> Proc {
    let cluster: Vec<String> = (1..=3)
        .map(|j| format!("n{j}=http://127.0.0.1:{}", PEER_BASE + j))
        .collect();
    let args = vec![
        format!("--name=n{i}"),
        format!("--data-dir={}", dir.join(format!("n{i}")).display()),
        format!("--initial-cluster={}", cluster.join(",")),
        format!("--listen-client-urls=http://127.0.0.1:{}", CLIENT_BASE + i),
        format!("--listen-peer-urls=http://127.0.0.1:{}", PEER_BASE + i),
        "--heartbeat-interval=100".into(),
        format!("--election-timeout={ELECTION_MS}"),
    ];
    spawn(
        &format!("n{i}"),
        FLOE,
        &args,
        &dir.join(format!("n{i}-{life}.log")),
    )
}

/// The member (1..=3) that says it leads, among `alive`; waits up to 20 s.
fn leader(alive: &[u16]) -> u16 {
    for _ in 0..400 {
        for &i in alive {
            if http(CLIENT_BASE + i, "GET", "/v2/stats/self", "")
                .is_some_and(|r| r.contains("\"StateLeader\""))
            {
                return i;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no leader among {alive:?}");
}

/// True if a write through member `i` succeeded.
fn write(i: u16, value: &str) -> bool {
    http(
        CLIENT_BASE + i,
        "PUT",
        "/v2/keys/transfer",
        &format!("value={value}"),
    )
    .and_then(|r| r.split(' ').nth(1).map(str::to_string))
    .is_some_and(|code| code == "200" || code == "201")
}

/// Sends `signal` to `proc`.
fn signal(proc: &Proc, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(proc.child.id().to_string())
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{signal} failed");
}

/// Milliseconds from now until a write through `member` succeeds (retried), at most 30 s.
#[allow(
    clippy::disallowed_types,
    clippy::disallowed_methods,
    reason = "a process-level test measures real time between real processes"
)]
fn ms_until_write(member: u16, since: std::time::Instant) -> u64 {
    for attempt in 0..600 {
        if write(member, &format!("after-{attempt}")) {
            return since.elapsed().as_millis() as u64;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("no write through n{member} within 30 s");
}

#[allow(
    clippy::disallowed_types,
    clippy::disallowed_methods,
    reason = "a process-level test measures real time between real processes"
)]
fn now() -> std::time::Instant {
    std::time::Instant::now()
}

#[test]
fn sigterm_hands_leadership_over_faster_than_an_election() {
    let dir = temp_dir("leader-transfer");
    let mut members: Vec<Option<Proc>> = (1..=3).map(|i| Some(start_member(&dir, i, 1))).collect();
    for i in 1..=3 {
        wait_healthy(CLIENT_BASE + i);
    }
    let first = leader(&[1, 2, 3]);
    assert!(write(first, "before"), "a write before the transfer");
    let other = (1..=3).find(|&i| i != first).expect("three members");

    // SIGTERM of the leader: it hands over, then exits.
    let started = now();
    let mut proc = members[first as usize - 1].take().expect("running");
    signal(&proc, "TERM");
    let transfer_ms = ms_until_write(other, started);
    let exit = proc.child.wait().expect("waits");
    let exited_ms = started.elapsed().as_millis();
    assert!(exit.success(), "floe exits 0 after SIGTERM: {exit:?}");
    let log = std::fs::read_to_string(dir.join(format!("n{first}-1.log"))).unwrap_or_default();
    assert!(
        log.contains("leadership handed over"),
        "the leader logs the handover:\n{log}"
    );
    let second = leader(
        &[1, 2, 3]
            .into_iter()
            .filter(|&i| i != first)
            .collect::<Vec<_>>(),
    );

    // The stopped member comes back; then SIGKILL of the leader, for comparison.
    members[first as usize - 1] = Some(start_member(&dir, first, 2));
    wait_healthy(CLIENT_BASE + first);
    assert!(write(first, "rejoined"), "a write once the member is back");
    let third = leader(&[1, 2, 3]);
    let survivor = (1..=3).find(|&i| i != third).expect("three members");
    let killed = members[third as usize - 1].take().expect("running");
    let started = now();
    signal(&killed, "KILL");
    drop(killed);
    let crash_ms = ms_until_write(survivor, started);

    println!(
        "leader n{first} on SIGTERM: n{second} served a write after {transfer_ms} ms (the old leader exited after {exited_ms} ms)"
    );
    println!("leader n{third} on SIGKILL: n{survivor} served a write after {crash_ms} ms");
    println!("election timeout: {ELECTION_MS}..{} ms", 2 * ELECTION_MS);
    assert!(
        transfer_ms < ELECTION_MS,
        "a handover ({transfer_ms} ms) beats the minimum election timeout ({ELECTION_MS} ms)"
    );
    assert!(
        transfer_ms < crash_ms,
        "a handover ({transfer_ms} ms) beats an election after a crash ({crash_ms} ms)"
    );
}
