//! Disks that lie, met by the real `floe` binary (issue 16, item 6): a 3-process cluster under
//! writes; one member is stopped, bytes in the middle of its log (or inside the snapshot its log
//! starts with) are flipped, and it is restarted. It must repair from the other two: say that
//! its log is damaged, stay out of votes until caught up, and then hold every acknowledged write
//! with its acknowledged value. A member whose `fdatasync` fails, or whose disk is full
//! (`--unsafe-disk-faults`), must stop with a clear message, and its data directory must start
//! again and catch up once the disk is healthy.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::{FLOE, Proc, http, spawn, temp_dir, wait_healthy};

const CLIENT_BASE: u16 = 27800;
const PEER_BASE: u16 = 27810;

/// The tests share these ports: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Member `i` of a 3-member cluster in `dir`; `life` names its log; `extra` flags.
fn start(dir: &Path, i: u16, life: u32, extra: &[String]) -> Proc {
    let cluster: Vec<String> = (1..=3)
        .map(|j| format!("n{j}=http://127.0.0.1:{}", PEER_BASE + j))
        .collect();
    let mut args = vec![
        format!("--name=n{i}"),
        format!("--data-dir={}", data_dir(dir, i).display()),
        format!("--initial-cluster={}", cluster.join(",")),
        format!("--listen-client-urls=http://127.0.0.1:{}", CLIENT_BASE + i),
        format!("--listen-peer-urls=http://127.0.0.1:{}", PEER_BASE + i),
        "--heartbeat-interval=50".into(),
        "--election-timeout=500".into(),
    ];
    args.extend(extra.iter().cloned());
    spawn(&format!("n{i}"), FLOE, &args, &log_path(dir, i, life))
}

fn data_dir(dir: &Path, i: u16) -> PathBuf {
    dir.join(format!("n{i}"))
}

fn log_path(dir: &Path, i: u16, life: u32) -> PathBuf {
    dir.join(format!("n{i}-{life}.log"))
}

fn log_text(dir: &Path, i: u16, life: u32) -> String {
    std::fs::read_to_string(log_path(dir, i, life)).unwrap_or_default()
}

/// The status code and body of one request.
fn request(i: u16, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let text = http(CLIENT_BASE + i, method, path, body)?;
    let code = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    Some((code, body))
}

/// The member (among `alive`) that says it leads; waits up to 20 s.
fn leader(alive: &[u16]) -> u16 {
    for _ in 0..400 {
        for &i in alive {
            if request(i, "GET", "/v2/stats/self", "")
                .is_some_and(|(_, b)| b.contains("StateLeader"))
            {
                return i;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no leader among {alive:?}");
}

/// Writes `/v2/keys/disk/<key>` = `value` through any of `alive`, retrying for up to 20 s;
/// true once a member acknowledged it.
fn write(alive: &[u16], key: &str, value: &str) -> bool {
    for attempt in 0..200 {
        let i = alive[attempt % alive.len()];
        if let Some((code, _)) = request(
            i,
            "PUT",
            &format!("/v2/keys/disk/{key}"),
            &format!("value={value}"),
        ) && (code == 200 || code == 201)
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Writes keys `from..to` (value `v<round>-<n>`) through `alive`; the acknowledged ones go into
/// `acked` (key -> value).
fn write_keys(
    alive: &[u16],
    round: u32,
    keys: std::ops::Range<u32>,
    acked: &mut std::collections::BTreeMap<String, String>,
) {
    for n in keys {
        let (key, value) = (format!("k{n}"), format!("v{round}-{n}"));
        assert!(write(alive, &key, &value), "write {key} through {alive:?}");
        acked.insert(key, value);
    }
}

/// Member `i` holds every acknowledged write with its value (a local read, no quorum: what
/// this member itself applied), within 20 s.
fn holds_everything(i: u16, acked: &std::collections::BTreeMap<String, String>) {
    let mut missing = Vec::new();
    for _ in 0..100 {
        missing.clear();
        for (key, value) in acked {
            let got = request(i, "GET", &format!("/v2/keys/disk/{key}"), "");
            let wanted = format!("\"value\":\"{value}\"");
            if !got.is_some_and(|(code, body)| code == 200 && body.contains(&wanted)) {
                missing.push(key.clone());
            }
        }
        if missing.is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "n{i} lacks {} acknowledged writes, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
}

/// Flips `len` bytes of `file` starting at `at`.
fn flip(file: &Path, at: usize, len: usize) {
    let mut bytes = std::fs::read(file).expect("log readable");
    assert!(
        at + len <= bytes.len(),
        "{} has {} bytes",
        file.display(),
        bytes.len()
    );
    for b in &mut bytes[at..at + len] {
        *b ^= 0x5a;
    }
    std::fs::write(file, bytes).expect("log writable");
}

/// Stops member `i` (SIGTERM, waits for it to exit).
fn stop(member: Proc) {
    let id = member.child.id();
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(id.to_string())
        .status();
    drop(member);
}

/// A follower of the cluster's current leader.
fn a_follower(alive: &[u16]) -> u16 {
    let l = leader(alive);
    *alive.iter().find(|&&i| i != l).expect("three members")
}

/// Damages member `victim`'s stopped log with `damage`, writes more, restarts it, and checks it
/// says its log is damaged and repairs from the others.
fn damaged_member_repairs(name: &str, extra: &[String], damage: impl Fn(&Path)) {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = temp_dir(name);
    let mut members: Vec<Option<Proc>> = (1..=3).map(|i| Some(start(&dir, i, 1, extra))).collect();
    for i in 1..=3 {
        wait_healthy(CLIENT_BASE + i);
    }
    let mut acked = std::collections::BTreeMap::new();
    write_keys(&[1, 2, 3], 1, 0..300, &mut acked);
    let victim = a_follower(&[1, 2, 3]);
    let others: Vec<u16> = (1..=3).filter(|&i| i != victim).collect();
    holds_everything(victim, &acked);
    stop(members[victim as usize - 1].take().expect("running"));
    damage(&data_dir(&dir, victim).join("wal"));
    // The cluster goes on without it; then it comes back with its damaged log.
    write_keys(&others, 2, 150..400, &mut acked);
    members[victim as usize - 1] = Some(start(&dir, victim, 2, extra));
    wait_healthy(CLIENT_BASE + victim);
    holds_everything(victim, &acked);
    // And it is a full member again: writes through it are acknowledged and kept everywhere.
    write_keys(&[victim], 3, 400..420, &mut acked);
    for i in 1..=3 {
        holds_everything(i, &acked);
    }
    let log = log_text(&dir, victim, 2);
    assert!(
        log.contains("damaged"),
        "n{victim} says its log is damaged:\n{log}"
    );
    assert!(
        log.contains("votes again"),
        "n{victim} says when it has caught up and votes again:\n{log}"
    );
    println!(
        "{name}: n{victim} restarted with a damaged log, repaired from n{:?}, holds all {} acknowledged writes",
        others,
        acked.len()
    );
}

#[test]
fn a_member_whose_log_is_damaged_in_the_middle_repairs_from_the_others() {
    damaged_member_repairs("disk-mid-log", &[], |wal| {
        let len = std::fs::metadata(wal).expect("log").len() as usize;
        flip(wal, len / 2, 16);
    });
}

#[test]
fn a_member_whose_snapshot_is_damaged_repairs_from_the_others() {
    // A snapshot every 100 entries: the log starts with a snapshot record (after its header),
    // and the 300 writes make it several kilobytes; the flip lands inside it.
    damaged_member_repairs(
        "disk-snapshot",
        &["--snapshot-count=100".to_string()],
        |wal| {
            let len = std::fs::metadata(wal).expect("log").len() as usize;
            assert!(
                len > 4096,
                "a log starting with a sizeable snapshot ({len} bytes)"
            );
            flip(wal, 1024, 16);
        },
    );
}

/// Member `victim` runs with `faults` until it stops; it must exit non-zero with a message
/// naming `cause`; restarted without them it catches up and holds every acknowledged write.
fn failing_disk_stops_cleanly(name: &str, faults: &str, cause: &str) {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = temp_dir(name);
    let victim = 3;
    let with_faults = [format!("--unsafe-disk-faults={faults}")];
    let mut members: Vec<Option<Proc>> = (1..=3)
        .map(|i| {
            Some(start(
                &dir,
                i,
                1,
                if i == victim { &with_faults } else { &[] },
            ))
        })
        .collect();
    for i in 1..=2 {
        wait_healthy(CLIENT_BASE + i);
    }
    let others = [1, 2];
    let mut acked = std::collections::BTreeMap::new();
    let mut exit = None;
    for n in 0..2000 {
        write_keys(&others, 1, n..n + 1, &mut acked);
        if let Some(status) = members[victim as usize - 1]
            .as_mut()
            .and_then(|p| p.child.try_wait().expect("wait"))
        {
            exit = Some(status);
            break;
        }
    }
    let status = exit.expect("the member with the failing disk stops");
    assert!(!status.success(), "it exits with an error: {status:?}");
    let log = log_text(&dir, victim, 1);
    assert!(
        log.contains(cause),
        "n{victim} names the cause ({cause}) when it stops:\n{log}"
    );
    members[victim as usize - 1] = None;
    write_keys(&others, 2, 2000..2050, &mut acked);
    members[victim as usize - 1] = Some(start(&dir, victim, 2, &[]));
    wait_healthy(CLIENT_BASE + victim);
    holds_everything(victim, &acked);
    let last = log.lines().rev().find(|l| l.contains(cause)).unwrap_or("");
    println!(
        "{name}: n{victim} stopped after {} writes: {last}; restarted on a healthy disk it holds all {} acknowledged writes",
        acked.len() - 50,
        acked.len()
    );
}

#[test]
fn a_member_whose_fsync_fails_stops_with_a_clear_message_and_recovers() {
    failing_disk_stops_cleanly(
        "disk-fsync-error",
        "sync-error-after=40",
        "Input/output error",
    );
}

#[test]
fn a_member_whose_disk_is_full_stops_with_a_clear_message_and_recovers() {
    failing_disk_stops_cleanly("disk-full", "space=30000", "No space left on device");
}
