//! A real 3-process floe cluster under faults.
//!
//! Six clients (`faults/clients.py`, threads with one keep-alive connection each, to a random
//! member) run random etcd v2 operations on five keys for `FLOE_FAULT_SECONDS` (default 60),
//! recording every operation. Meanwhile this test, the nemesis, repeatedly picks a member (the
//! leader, found from `/v2/stats/self`, half the time) and either kills it with SIGKILL and
//! restarts it 1-3 s later, or stops it with SIGSTOP for 1-3 s and resumes it with SIGCONT.
//! Afterwards it heals the cluster; the clients wait for a leader, read every key with
//! `quorum=true` and check that no acknowledged write is lost, and the recorded history must pass
//! `sim check-history` (index rules and linearizability against the etcd model).
//!
//! `FLOE_FAULT_SEED` replays the nemesis's and the clients' random choices (not the timing). Every
//! member runs as a child of this test and is killed when the test ends, pass or fail (`Cluster`
//! and `Clients` are drop guards). Ports: clients 27011-27013, peers 27021-27023. Needs python3.

use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const FLOE: &str = env!("CARGO_BIN_EXE_floe");
const NAMES: [&str; 3] = ["n1", "n2", "n3"];
const CLIENT_PORTS: [u16; 3] = [27011, 27012, 27013];
const PEER_PORTS: [u16; 3] = [27021, 27022, 27023];
/// The nemesis and the waits below poll in slices of this length.
const SLICE_MS: u64 = 50;

#[test]
fn no_acknowledged_write_is_lost_and_the_history_is_linearizable_under_kills_and_stops() {
    let seconds: u64 = env_or("FLOE_FAULT_SECONDS", 60);
    let seed: u64 = env_or("FLOE_FAULT_SEED", RandomSeed::draw());
    println!("FLOE_FAULT_SEED={seed} FLOE_FAULT_SECONDS={seconds}");
    let work = fresh_dir();
    let mut cluster = Cluster::new(&work);
    cluster.start_all();
    cluster.wait_ready(30_000);
    let mut clients = Clients::start(&work, seconds, seed);
    let faults = nemesis(&mut cluster, &mut clients, &work, seed);
    cluster.heal();
    std::fs::write(work.join("healed"), b"").expect("write the healed marker");
    let status = clients.wait(&mut cluster, 120_000);
    let output = std::fs::read_to_string(work.join("clients.out")).unwrap_or_default();
    println!("{output}");
    println!("{} faults:", faults.len());
    for fault in &faults {
        println!("  {fault}");
    }
    assert!(
        status.success(),
        "clients.py failed ({status}); work dir kept at {} (seed {seed})",
        work.display()
    );
    let history = work.join("history.jsonl");
    let text = std::fs::read_to_string(&history).expect("clients.py wrote the history");
    let ops = text.lines().count();
    let acknowledged = text.lines().filter(|l| l.contains("\"r\":\"ok\"")).count();
    println!("history: {ops} operations, {acknowledged} acknowledged");
    assert!(ops as u64 >= 20 * seconds, "too few operations: {ops}");
    assert!(
        acknowledged * 4 >= ops,
        "too few acknowledged: {acknowledged}"
    );
    assert!(
        seconds < 10 || faults.len() >= 2,
        "the nemesis did too little: {faults:?}"
    );
    let (passed, verdict) = check_history(&history);
    println!("sim check-history:\n{verdict}");
    assert!(
        passed,
        "sim check-history rejected {} (seed {seed})",
        history.display()
    );
    let _ = std::fs::remove_dir_all(&work);
}

/// Kills/restarts or stops/resumes one member at a time until the clients' load is over;
/// returns what it did. The first two faults are one of each kind, the rest are drawn.
fn nemesis(cluster: &mut Cluster, clients: &mut Clients, work: &Path, seed: u64) -> Vec<String> {
    let mut rng = Rng(seed ^ 0x9E37_79B9_7F4A_7C15);
    let mut faults = Vec::new();
    let load_done = work.join("load-done");
    let first_is_kill = rng.below(2) == 0;
    loop {
        let gap_ms = rng.between(1_000, 3_000);
        if !cluster.pause_until(gap_ms, clients, &load_done) {
            return faults;
        }
        let leader = cluster.leader();
        let target = match leader {
            Some(leader) if rng.below(2) == 0 => leader,
            _ => rng.below(3) as usize,
        };
        let is_leader = leader == Some(target);
        let down_ms = rng.between(1_000, 3_000);
        let kill = match faults.len() {
            0 => first_is_kill,
            1 => !first_is_kill,
            _ => rng.below(2) == 0,
        };
        let name = NAMES[target];
        let role = if is_leader { " (leader)" } else { "" };
        let at_s = cluster.clock_ms as f64 / 1000.0;
        if kill {
            faults.push(format!(
                "~{at_s:.1}s SIGKILL {name}{role}, restarted after {down_ms} ms"
            ));
            cluster.members[target].kill();
            cluster.pause(down_ms);
            cluster.members[target].start();
        } else {
            faults.push(format!(
                "~{at_s:.1}s SIGSTOP {name}{role}, SIGCONT after {down_ms} ms"
            ));
            cluster.members[target].signal("STOP");
            cluster.pause(down_ms);
            cluster.members[target].signal("CONT");
        }
    }
}

/// One floe member: a child process while it runs, its data directory across restarts.
struct Member {
    index: usize,
    work: PathBuf,
    child: Option<Child>,
    stopped: bool,
}

impl Member {
    fn start(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name());
        let initial_cluster: Vec<String> = (0..3)
            .map(|i| format!("{}=http://127.0.0.1:{}", NAMES[i], PEER_PORTS[i]))
            .collect();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .expect("open the member's log");
        let child = Command::new(FLOE)
            .arg("--name")
            .arg(self.name())
            .arg("--data-dir")
            .arg(self.work.join(self.name()))
            .arg("--listen-client-urls")
            .arg(format!("http://127.0.0.1:{}", CLIENT_PORTS[self.index]))
            .arg("--listen-peer-urls")
            .arg(format!("http://127.0.0.1:{}", PEER_PORTS[self.index]))
            .arg("--initial-cluster")
            .arg(initial_cluster.join(","))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {FLOE}: {e}"));
        self.child = Some(child);
        self.stopped = false;
    }

    /// SIGKILL, then reap. A stopped member is resumed first so that it dies at once.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            if self.stopped {
                let _ = signal_pid(child.id(), "CONT");
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        self.stopped = false;
    }

    fn signal(&mut self, signal: &str) {
        let child = self.child.as_ref().expect("signal a running member");
        let sent = signal_pid(child.id(), signal);
        assert!(sent, "kill -{signal} {} failed", self.name());
        self.stopped = signal == "STOP";
    }

    /// Panics if the member exited although nobody killed it.
    fn assert_alive(&mut self) {
        let name = self.name();
        let log = self.log();
        let Some(child) = self.child.as_mut() else {
            return;
        };
        let Some(status) = child.try_wait().expect("poll the member") else {
            return;
        };
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(30)..];
        panic!(
            "{name} exited by itself ({status}); its log {}:\n{}",
            log.display(),
            tail.join("\n")
        );
    }

    fn name(&self) -> &'static str {
        NAMES[self.index]
    }

    fn log(&self) -> PathBuf {
        self.work.join(format!("{}.log", self.name()))
    }
}

/// The three members; dropping it kills every one of them.
struct Cluster {
    members: Vec<Member>,
    /// Milliseconds slept in `pause`: the nemesis's approximate clock (std's clocks are off
    /// limits in tests here; the HTTP polls between the sleeps take little time).
    clock_ms: u64,
}

impl Cluster {
    fn new(work: &Path) -> Cluster {
        for port in CLIENT_PORTS.iter().chain(PEER_PORTS.iter()) {
            assert!(
                TcpStream::connect(("127.0.0.1", *port)).is_err(),
                "port {port} is already in use (a leftover floe?)"
            );
        }
        let members = (0..3)
            .map(|index| Member {
                index,
                work: work.to_path_buf(),
                child: None,
                stopped: false,
            })
            .collect();
        Cluster {
            members,
            clock_ms: 0,
        }
    }

    fn start_all(&mut self) {
        for member in &mut self.members {
            member.start();
        }
    }

    /// Resumes stopped members and restarts killed ones.
    fn heal(&mut self) {
        for member in &mut self.members {
            if member.child.is_none() {
                member.start();
            } else if member.stopped {
                member.signal("CONT");
            }
        }
    }

    /// Sleeps `ms`, checking every slice that no member died by itself.
    fn pause(&mut self, ms: u64) {
        let mut left_ms = ms;
        while left_ms > 0 {
            let slice_ms = left_ms.min(SLICE_MS);
            std::thread::sleep(Duration::from_millis(slice_ms));
            self.clock_ms += slice_ms;
            left_ms -= slice_ms;
            for member in &mut self.members {
                member.assert_alive();
            }
        }
    }

    /// Like `pause`, but returns false as soon as `done` exists or the clients exited.
    fn pause_until(&mut self, ms: u64, clients: &mut Clients, done: &Path) -> bool {
        let mut left_ms = ms;
        while left_ms > 0 {
            if done.exists() || clients.exited() {
                return false;
            }
            let slice_ms = left_ms.min(SLICE_MS);
            self.pause(slice_ms);
            left_ms -= slice_ms;
        }
        !done.exists() && !clients.exited()
    }

    /// Every member healthy and one of them the leader, within `timeout_ms`.
    fn wait_ready(&mut self, timeout_ms: u64) {
        let mut waited_ms = 0;
        loop {
            let healthy = CLIENT_PORTS.iter().all(|&port| {
                http_get(port, "/health").is_some_and(|r| r.starts_with("HTTP/1.1 200"))
            });
            if healthy && self.leader().is_some() {
                return;
            }
            assert!(
                waited_ms < timeout_ms,
                "the cluster was not ready within {timeout_ms} ms"
            );
            self.pause(100);
            waited_ms += 100;
        }
    }

    /// The member that says it leads (`/v2/stats/self`), if exactly one does.
    fn leader(&self) -> Option<usize> {
        let leaders: Vec<usize> = (0..3)
            .filter(|&i| self.members[i].child.is_some() && !self.members[i].stopped)
            .filter(|&i| {
                http_get(CLIENT_PORTS[i], "/v2/stats/self")
                    .is_some_and(|r| r.contains("\"state\":\"StateLeader\""))
            })
            .collect();
        match leaders.as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for member in &mut self.members {
            member.kill();
        }
    }
}

/// The python clients; dropping it kills them.
struct Clients {
    child: Child,
}

impl Clients {
    fn start(work: &Path, seconds: u64, seed: u64) -> Clients {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/faults/clients.py");
        let out = std::fs::File::create(work.join("clients.out")).expect("create clients.out");
        let child = Command::new("python3")
            .arg(script)
            .arg(work)
            .arg(seconds.to_string())
            .arg(seed.to_string())
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("clone the output handle"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start python3: {e}"));
        Clients { child }
    }

    fn exited(&mut self) -> bool {
        self.child.try_wait().expect("poll the clients").is_some()
    }

    /// Waits for the clients to finish, at most `timeout_ms`, while watching the members.
    fn wait(&mut self, cluster: &mut Cluster, timeout_ms: u64) -> std::process::ExitStatus {
        let mut waited_ms = 0;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the clients") {
                return status;
            }
            assert!(
                waited_ms < timeout_ms,
                "the clients did not finish within {timeout_ms} ms after the load"
            );
            cluster.pause(100);
            waited_ms += 100;
        }
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `sim check-history FILE`; (passed, its output).
fn check_history(history: &Path) -> (bool, String) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut command = Command::new(cargo);
    command
        .current_dir(&repo)
        .args([
            "run",
            "--quiet",
            "--release",
            "-p",
            "sim",
            "--",
            "check-history",
        ])
        .arg(history);
    // Cargo locks target/<profile> while this test runs; a release test would wait on itself
    // if it built `sim` into the same directory.
    let exe = std::env::current_exe().expect("the test's path");
    let profile_dir = exe.parent().and_then(Path::parent);
    if let Some(dir) = profile_dir.filter(|d| d.ends_with("release")) {
        command.env("CARGO_TARGET_DIR", dir.join("faults-checker"));
    }
    let output = command.output().expect("run cargo");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// `kill -SIGNAL pid` (std has no way to send a signal other than SIGKILL).
fn signal_pid(pid: u32, signal: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .is_ok_and(|s| s.success())
}

/// One HTTP/1.1 GET with a short timeout (a stopped member must not hang the nemesis); the
/// whole response, or None.
fn http_get(port: u16, path: &str) -> Option<String> {
    let timeout = Some(Duration::from_millis(500));
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(timeout).ok()?;
    stream.set_write_timeout(timeout).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

fn env_or(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text} is not a number")),
        Err(_) => default,
    }
}

fn fresh_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("floe-faults-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the work dir");
    dir
}

/// A seed when none is given: std's randomly keyed hasher, the only entropy std offers.
struct RandomSeed;

impl RandomSeed {
    fn draw() -> u64 {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        hasher.finish() % 1_000_000
    }
}

/// xorshift64*: the nemesis's choices, replayable from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift's state must never be zero.
        if self.0 == 0 {
            self.0 = 0x2545_F491_4F6C_DD1D;
        }
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0);
        self.next() % n
    }

    fn between(&mut self, low: u64, high: u64) -> u64 {
        assert!(low <= high);
        low + self.below(high - low + 1)
    }
}
