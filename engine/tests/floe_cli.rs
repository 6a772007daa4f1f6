//! The `floe` binary's start-up contract: good flags serve, bad ones exit non-zero with a clear
//! message and never serve wrong data (issue: a corrupt log, a data dir of another cluster, a
//! port in use, a bad `--initial-cluster`).

mod support;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use support::{FLOE, Proc, http, temp_dir, wait_healthy as wait_ready};

fn node_args(data: &Path, client: u16, peer: u16) -> Vec<String> {
    vec![
        "-name".into(),
        "solo".into(),
        "-data-dir".into(),
        data.display().to_string(),
        format!("-listen-client-urls=http://127.0.0.1:{client}"),
        format!("--listen-peer-urls=http://127.0.0.1:{peer}"),
    ]
}

fn start(args: &[String]) -> Proc {
    let child = Command::new(FLOE)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("floe starts");
    Proc {
        child,
        name: "floe".into(),
    }
}

/// Runs floe expecting it to exit by itself (within 10 s).
fn run_to_exit(args: &[String]) -> Output {
    let mut child = Command::new(FLOE)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("floe starts");
    for _ in 0..200 {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("floe {args:?} kept running; it should have exited with an error");
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_lists_the_flags() {
    let output = Command::new(FLOE).arg("--help").output().expect("runs");
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--initial-cluster",
        "--data-dir",
        "--listen-client-urls",
        "--election-timeout",
    ] {
        assert!(text.contains(flag), "--help should mention {flag}");
    }
}

#[test]
fn writes_survive_a_kill_and_restart() {
    let dir = temp_dir("restart");
    let args = node_args(&dir.join("data"), 25411, 25412);
    let node = start(&args);
    wait_ready(25411);
    for i in 0..20 {
        let r = http(
            25411,
            "PUT",
            &format!("/v2/keys/k{i}"),
            &format!("value=v{i}"),
        )
        .unwrap();
        assert!(r.starts_with("HTTP/1.0 201"), "{r}");
    }
    drop(node); // SIGKILL
    let _node = start(&args);
    wait_ready(25411);
    for i in 0..20 {
        let r = http(25411, "GET", &format!("/v2/keys/k{i}"), "").unwrap();
        assert!(r.contains(&format!("\"value\":\"v{i}\"")), "k{i} lost: {r}");
    }
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let dir = temp_dir("port");
    let _busy = TcpListener::bind("127.0.0.1:25421").expect("bind");
    let output = run_to_exit(&node_args(&dir.join("data"), 25421, 25422));
    assert!(!output.status.success());
    let text = stderr(&output);
    assert!(text.contains("127.0.0.1:25421"), "{text}");
}

#[test]
fn a_bad_initial_cluster_is_a_clear_error() {
    let dir = temp_dir("cluster");
    let mut args = node_args(&dir.join("data"), 25431, 25432);
    args.push("--initial-cluster=solo:http://127.0.0.1:25432".into());
    let output = run_to_exit(&args);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("initial-cluster"),
        "{}",
        stderr(&output)
    );
    let mut args = node_args(&dir.join("data"), 25431, 25432);
    args.push("--initial-cluster=other=http://127.0.0.1:25432".into());
    let output = run_to_exit(&args);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("no member named"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn another_clusters_data_dir_is_refused() {
    let dir = temp_dir("other");
    let data = dir.join("data");
    let args = node_args(&data, 25441, 25442);
    {
        let _node = start(&args);
        wait_ready(25441);
    }
    let mut other = args.clone();
    other.push("--initial-cluster-token=another".into());
    let output = run_to_exit(&other);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("another cluster"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_corrupt_log_is_refused_and_a_torn_tail_is_cut() {
    let dir = temp_dir("corrupt");
    let data = dir.join("data");
    let args = node_args(&data, 25451, 25452);
    {
        let _node = start(&args);
        wait_ready(25451);
        let big = "x".repeat(200_000);
        for i in 0..12 {
            let r = http(
                25451,
                "PUT",
                &format!("/v2/keys/big{i}"),
                &format!("value={big}"),
            );
            assert!(r.unwrap().starts_with("HTTP/1.0 201"));
        }
    }
    let wal = data.join("wal");
    let mut bytes = std::fs::read(&wal).expect("wal");
    // A torn tail: the last few bytes missing. Recovery cuts it and serves.
    let torn = bytes.len() - 7;
    std::fs::write(&wal, &bytes[..torn]).expect("write");
    {
        let _node = start(&args);
        wait_ready(25451);
        let r = http(25451, "GET", "/v2/keys/big0", "").unwrap();
        assert!(r.starts_with("HTTP/1.0 200"), "{r}");
    }
    // Damage near the start with megabytes of good records after it: not a torn write.
    bytes = std::fs::read(&wal).expect("wal");
    let at = 64;
    bytes[at] ^= 0xff;
    std::fs::write(&wal, &bytes).expect("write");
    let output = run_to_exit(&args);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("corrupt"), "{}", stderr(&output));
}

/// The `X-Etcd-Index` header of a response.
fn etcd_index(response: &str) -> u64 {
    response
        .lines()
        .find_map(|l| l.strip_prefix("X-Etcd-Index: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no X-Etcd-Index in {response}"))
}

#[test]
fn writes_survive_compaction_and_restart() {
    let dir = temp_dir("compaction");
    let data = dir.join("data");
    let mut args = node_args(&data, 25461, 25462);
    args.push("--snapshot-count=5".into());
    let node = start(&args);
    wait_ready(25461);
    for i in 0..30 {
        let r = http(
            25461,
            "PUT",
            &format!("/v2/keys/k{i}"),
            &format!("value=v{i}"),
        )
        .unwrap();
        assert!(r.starts_with("HTTP/1.0 201"), "{r}");
    }
    let r = http(25461, "DELETE", "/v2/keys/k0", "").unwrap();
    assert!(r.starts_with("HTTP/1.0 200"), "{r}");
    let r = http(25461, "PUT", "/v2/keys/dir?dir=true", "").unwrap();
    let index = etcd_index(&r);
    drop(node); // SIGKILL
    let wal = std::fs::read(data.join("wal")).expect("the log file");
    assert_eq!(
        (wal.get(8), wal.get(21 + 8)),
        (Some(&4), Some(&3)),
        "the log starts with its format header, then a snapshot record"
    );
    let _node = start(&args);
    wait_ready(25461);
    let r = http(25461, "GET", "/v2/keys/k0", "").unwrap();
    assert!(r.starts_with("HTTP/1.0 404"), "the delete survived: {r}");
    for i in 1..30 {
        let r = http(25461, "GET", &format!("/v2/keys/k{i}"), "").unwrap();
        assert!(r.contains(&format!("\"value\":\"v{i}\"")), "k{i} lost: {r}");
    }
    let r = http(25461, "GET", "/v2/keys/dir", "").unwrap();
    assert!(r.contains("\"dir\":true"), "{r}");
    assert_eq!(etcd_index(&r), index, "the store index survives");
    // The watch history came back with the snapshot: a past waitIndex answers at once.
    let path = format!("/v2/keys/k29?wait=true&waitIndex={}", index - 2);
    let r = http(25461, "GET", &path, "").unwrap();
    assert!(
        r.contains("\"action\":\"set\"") && r.contains("\"v29\""),
        "{r}"
    );
}

#[test]
fn a_member_behind_the_compacted_log_catches_up_from_a_snapshot() {
    let dir = temp_dir("install-snapshot");
    let members = [("a", 25471u16), ("b", 25473), ("c", 25475)];
    let cluster = members
        .iter()
        .map(|(name, client)| format!("{name}=http://127.0.0.1:{}", client + 1))
        .collect::<Vec<_>>()
        .join(",");
    let args = |name: &str, client: u16| -> Vec<String> {
        vec![
            format!("--name={name}"),
            format!("--data-dir={}", dir.join(name).display()),
            format!("--listen-client-urls=http://127.0.0.1:{client}"),
            format!("--listen-peer-urls=http://127.0.0.1:{}", client + 1),
            format!("--initial-cluster={cluster}"),
            "--snapshot-count=10".into(),
        ]
    };
    let start_member = |name: &str, client: u16, log: &str| {
        support::spawn(name, FLOE, &args(name, client), &dir.join(log))
    };
    let _a = start_member("a", 25471, "a.log");
    let _b = start_member("b", 25473, "b.log");
    let c = start_member("c", 25475, "c.log");
    for (_, client) in members {
        wait_ready(client);
    }
    drop(c); // SIGKILL: c misses everything below.
    for i in 0..60 {
        let r = http(
            25471,
            "PUT",
            &format!("/v2/keys/k{i}"),
            &format!("value=v{i}"),
        )
        .unwrap();
        assert!(r.starts_with("HTTP/1.0 201"), "{r}");
    }
    let _c = start_member("c", 25475, "c-again.log");
    wait_ready(25475);
    let mut caught_up = false;
    for _ in 0..200 {
        let r = http(25475, "GET", "/v2/keys/k59", "");
        if r.is_some_and(|r| r.contains("\"v59\"")) {
            caught_up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(caught_up, "c never caught up");
    for i in 0..60 {
        let r = http(25475, "GET", &format!("/v2/keys/k{i}"), "").unwrap();
        assert!(
            r.contains(&format!("\"value\":\"v{i}\"")),
            "k{i} missing on c: {r}"
        );
    }
    let log = std::fs::read_to_string(dir.join("c-again.log")).unwrap_or_default();
    assert!(
        log.contains("installed a snapshot"),
        "c caught up without a snapshot; its log:\n{log}"
    );
    // The leader's /v2/stats/leader measures both followers: answered requests and latencies
    // (c, back for a moment only, is given up to 10 s of heartbeats to pass 10 answers).
    let successes = |stats: &str| -> Vec<u64> {
        stats
            .split("\"success\":")
            .skip(1)
            .filter_map(|t| t.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
            .collect()
    };
    let mut last = String::new();
    for _ in 0..100 {
        let stats: Vec<String> = members
            .iter()
            .filter_map(|(_, client)| http(*client, "GET", "/v2/stats/leader", ""))
            .filter(|r| r.starts_with("HTTP/1.0 200"))
            .collect();
        if let [stats] = &stats[..] {
            let counts = successes(stats);
            if counts.len() == 2 && counts.iter().all(|&n| n > 10) {
                assert!(
                    !stats.contains("\"maximum\":0,"),
                    "latencies are measured: {stats}"
                );
                return;
            }
            last = stats.clone();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the leader's /v2/stats/leader never counted both followers' answers: {last}");
}

#[test]
fn a_lock_contender_that_hangs_up_leaves_the_queue() {
    use std::io::Write;
    let dir = temp_dir("lock-hangup");
    let _node = start(&node_args(&dir.join("data"), 25481, 25482));
    wait_ready(25481);
    let r = http(25481, "POST", "/mod/v2/lock/l?ttl=30", "").unwrap();
    assert!(r.starts_with("HTTP/1.0 200"), "{r}");
    let queue = || {
        let r = http(25481, "GET", "/v2/keys/_etcd/mod/lock/l", "").unwrap();
        r.matches("\"createdIndex\"").count() - 1 // the directory's own
    };
    // A second contender waits in the queue...
    let mut waiter = std::net::TcpStream::connect(("127.0.0.1", 25481)).unwrap();
    waiter
        .write_all(b"POST /mod/v2/lock/l?ttl=30 HTTP/1.0\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    let mut waited = 0;
    while queue() < 2 {
        waited += 1;
        assert!(waited < 100, "the second contender never queued");
        std::thread::sleep(Duration::from_millis(20));
    }
    // ...and hangs up: its entry goes at once, not when its 30 s TTL runs out.
    drop(waiter);
    let mut waited = 0;
    while queue() != 1 {
        waited += 1;
        assert!(
            waited < 100,
            "the entry of a contender that hung up stayed queued"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A failed fsync and a full disk on a one-member cluster (`--unsafe-disk-faults`): the node
/// stops with a message naming the disk error, and a restart on a healthy disk serves every
/// write it acknowledged, nothing corrupt.
#[test]
fn a_failed_fsync_or_a_full_disk_stops_the_node_clearly_and_loses_no_acknowledged_write() {
    for (var, port, message) in [
        ("sync-error-after=30", 25491, "Input/output error"),
        ("space=6000", 25493, "No space left on device"),
    ] {
        let dir = temp_dir(&format!("disk-fault-{port}"));
        let args = node_args(&dir.join("data"), port, port + 1);
        let mut child = Command::new(FLOE)
            .args(&args)
            .arg(format!("--unsafe-disk-faults={var}"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("floe starts");
        wait_ready(port);
        let mut acknowledged = Vec::new();
        for i in 0..500 {
            let path = format!("/v2/keys/k{i}");
            match http(port, "PUT", &path, &format!("value=v{i}")) {
                Some(r) if r.starts_with("HTTP/1.0 201") => acknowledged.push(i),
                _ => break,
            }
        }
        assert!(!acknowledged.is_empty(), "{var}: nothing was acknowledged");
        assert!(acknowledged.len() < 500, "{var}: the fault never hit");
        let mut exited = None;
        for _ in 0..200 {
            if let Some(status) = child.try_wait().expect("wait") {
                exited = Some(status);
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if exited.is_none() {
            let _ = child.kill();
        }
        let output = child.wait_with_output().expect("output");
        let status = exited.unwrap_or_else(|| panic!("{var}: floe kept running"));
        assert!(!status.success(), "{var}: exit {status}");
        let text = stderr(&output);
        assert!(text.contains(message), "{var}: {text}");
        // Restarted without the fault: every acknowledged write is there.
        let _node = start(&args);
        wait_ready(port);
        for i in acknowledged {
            let r = http(port, "GET", &format!("/v2/keys/k{i}"), "").unwrap();
            assert!(
                r.contains(&format!("\"value\":\"v{i}\"")),
                "{var}: k{i} lost: {r}"
            );
        }
    }
}
