//! Shared by the tests that run real processes: `floe` members, a real etcd, client tools.
//! They install what they need (`setup.sh`) and fail loudly when they cannot: never skip.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The `floe` binary cargo built for these tests.
pub const FLOE: &str = env!("CARGO_BIN_EXE_floe");

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `engine/tests/support/setup.sh WHAT...` (apt-get etcd, python venvs), once per
/// process and argument set; panics with its output on failure.
pub fn setup(what: &[&str]) {
    let script = repo().join("engine/tests/support/setup.sh");
    let output = Command::new("bash")
        .arg(&script)
        .args(what)
        .current_dir(repo())
        .output()
        .expect("bash runs");
    assert!(
        output.status.success(),
        "setup.sh {what:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A fresh directory under the system temp dir, removed when the test that made it passes (kept
/// for a look when it panics). Declared before the processes that use it, it outlives them.
pub struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept for a look: {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A fresh directory under the system temp dir (see [`TempDir`]).
pub fn temp_dir(name: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!("floe-it-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    TempDir(dir)
}

/// A child process killed (SIGKILL) and reaped when dropped, so a failing test leaves nothing.
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `program args`, logging to `log`.
pub fn spawn(name: &str, program: &str, args: &[String], log: &Path) -> Proc {
    let out = std::fs::File::create(log).expect("log file");
    let err = out.try_clone().expect("log file");
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    Proc {
        child,
        name: name.to_string(),
    }
}

/// A one-member floe on `client`/`peer` ports with its data in `dir`.
pub fn floe_single(dir: &Path, client: u16, peer: u16) -> Proc {
    let args = vec![
        "--name".to_string(),
        "solo".to_string(),
        "--data-dir".to_string(),
        dir.join("data").display().to_string(),
        "--listen-client-urls".to_string(),
        format!("http://127.0.0.1:{client}"),
        "--listen-peer-urls".to_string(),
        format!("http://127.0.0.1:{peer}"),
    ];
    let node = spawn("floe", FLOE, &args, &dir.join("floe.log"));
    wait_healthy(client);
    node
}

/// A one-member real etcd 3.4 with the v2 API on.
pub fn etcd_single(dir: &Path, client: u16, peer: u16) -> Proc {
    let args = vec![
        "--name".to_string(),
        "ref".to_string(),
        "--data-dir".to_string(),
        dir.join("etcd-data").display().to_string(),
        "--enable-v2=true".to_string(),
        format!("--listen-client-urls=http://127.0.0.1:{client}"),
        format!("--advertise-client-urls=http://127.0.0.1:{client}"),
        format!("--listen-peer-urls=http://127.0.0.1:{peer}"),
        format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"),
        format!("--initial-cluster=ref=http://127.0.0.1:{peer}"),
        "--log-level=error".to_string(),
    ];
    let node = spawn("etcd", "etcd", &args, &dir.join("etcd.log"));
    wait_healthy(client);
    node
}

/// One HTTP/1.0 request; the whole response as text, `None` if it could not be sent.
pub fn http(port: u16, method: &str, path: &str, body: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut out = String::new();
    stream.read_to_string(&mut out).ok()?;
    Some(out)
}

/// Waits (up to 20 s) until `/health` on `port` says true.
pub fn wait_healthy(port: u16) {
    for _ in 0..400 {
        if let Some(r) = http(port, "GET", "/health", "")
            && r.contains("true")
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the server on port {port} never became healthy");
}

/// Runs a command to completion; panics with its output unless it succeeds.
pub fn run_ok(what: &str, command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{what} failed:\n{text}");
    text
}

/// The number in environment variable `name`, or `default` when it is unset or not a number.
pub fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The peak resident set (VmHWM) of process `pid`, in bytes.
pub fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .expect("VmHWM")
        * 1024
}

/// Judges a history a real-cluster script recorded (JSON lines of `checker::history::Op`): at
/// least `min_ops` operations, the index rules, and linearizability against the etcd model.
pub fn judge_history(history: &Path, min_ops: usize) {
    use checker::linearizability::{Budget, STEPS_MAX, Verdict, check};
    let text = std::fs::read_to_string(history).expect("history written");
    let ops = checker::history_file::read_jsonl(&text).expect("a well-formed history");
    assert!(ops.len() > min_ops, "too few operations: {}", ops.len());
    if let Err(v) = checker::index::check_index(&ops) {
        panic!(
            "index rule broken: {v} (history kept at {})",
            history.display()
        );
    }
    let report = check(&ops, Budget::steps(STEPS_MAX));
    println!("linearizability: {report}");
    assert_eq!(
        report.verdict(),
        Verdict::Linearizable,
        "{report} (history kept at {})",
        history.display()
    );
}
