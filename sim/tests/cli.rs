//! The command line: two processes agree on a seed's trace hash, `--check-determinism` holds, and
//! bad input gets a clear message and exit code 2, never a panic.

use std::process::{Command, Output};

fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sim"))
        .args(args)
        .output()
        .expect("the sim binary runs")
}

fn last_line(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn two_processes_print_the_same_last_line() {
    let a = sim(&["--seed", "5", "--duration", "3"]);
    let b = sim(&["--seed", "5", "--duration", "3"]);
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stdout));
    let line = last_line(&a);
    assert!(line.starts_with("ok seed=5 trace_hash="), "{line}");
    assert_eq!(line, last_line(&b));
    let c = sim(&["--seed", "6", "--duration", "3"]);
    assert_ne!(
        line.split("trace_hash=").nth(1),
        last_line(&c).split("trace_hash=").nth(1)
    );
}

#[test]
fn check_determinism_flag_holds() {
    let out = sim(&["--seed", "9", "--duration", "3", "--check-determinism"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(": same"));
}

#[test]
fn json_has_the_promised_fields() {
    let out = sim(&["--seeds", "1..3", "--duration", "2", "--json"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "one object per run");
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(line).expect("valid JSON");
        for field in [
            "seed",
            "ok",
            "violation",
            "trace_hash",
            "simulated_ms",
            "wall_ms",
            "elections",
            "max_term",
            "commands_committed",
            "faults_injected",
            "faults_by_kind",
        ] {
            assert!(v.get(field).is_some(), "missing {field} in {line}");
        }
        assert!(
            v["config"]["production"].is_boolean(),
            "config.production in {line}"
        );
        let faults = v["faults_by_kind"].as_object().expect("an object");
        let counted: u64 = faults.values().filter_map(serde_json::Value::as_u64).sum();
        assert_eq!(Some(counted), v["faults_injected"].as_u64(), "{line}");
    }
}

#[test]
fn a_failing_seed_prints_its_replay_command_and_writes_its_report() {
    let dir = std::env::temp_dir().join(format!("floe-cli-report-{}", std::process::id()));
    let dir_arg = dir.to_string_lossy().to_string();
    // Seed 11: the first that catches the bug with varied settings (it was 2 until the
    // simulator's clock shared one madsim timer per millisecond, which moved every draw).
    let out = sim(&[
        "--seed",
        "11",
        "--bug",
        "commit-old-term",
        "--settings",
        "varied",
        "--report-dir",
        &dir_arg,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let folder = dir.join("seed-11-commit-old-term");
    let html = std::fs::read_to_string(folder.join("history.html")).expect("history.html");
    assert!(html.contains("<svg") && !html.contains("http://") && !html.contains("https://"));
    let summary = std::fs::read_to_string(folder.join("summary.txt")).expect("summary.txt");
    assert!(
        summary.contains("--seed 11 --bug commit-old-term --settings varied"),
        "{summary}"
    );
    let history = std::fs::read_to_string(folder.join("history.jsonl")).expect("history.jsonl");
    let ops = sim::check::history_file::read_jsonl(&history).expect("the history reads back");
    assert!(!ops.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("replay: cargo run --release -p sim -- --seed 11 --bug commit-old-term"),
        "{text}"
    );
    assert!(
        last_line(&out).starts_with("FAILED seed=11 trace_hash="),
        "{text}"
    );
}

#[test]
fn bad_input_exits_2_with_a_message() {
    for args in [
        &["--seed", "abc"][..],
        &["--seeds", "5..2"],
        &["--seeds", "5"],
        &["--nodes", "0"],
        &["--duration", "0"],
        &["--bug", "no-such-bug"],
        &["--no-such-flag"],
    ] {
        let out = sim(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("error"), "{args:?} explains itself: {err}");
        assert!(!err.contains("panicked"), "{args:?} must not panic: {err}");
    }
}

#[test]
fn check_history_judges_jepsen_logs_with_the_promised_exit_codes() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/checker/data/jepsen-etcd/");
    let code = |file: &str| {
        let out = sim(&[
            "check-history",
            "--format",
            "jepsen",
            &format!("{data}{file}"),
        ]);
        (out.status.code(), last_line(&out))
    };
    // etcd_002: linearizable; etcd_000: not (verdicts.csv); Cargo.toml: not a Jepsen log.
    assert_eq!(code("etcd_002.log").0, Some(0));
    assert_eq!(code("etcd_000.log").0, Some(1));
    let (status, line) = code("../../Cargo.toml");
    assert_eq!(status, Some(2), "{line}");
    let out = sim(&[
        "check-history",
        "--format",
        "jepsen",
        &format!("{data}etcd_001.log"),
        &format!("{data}etcd_002.log"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        last_line(&out).contains("2 histories in"),
        "{}",
        last_line(&out)
    );
}

#[test]
fn shards_merge_into_the_whole_range() {
    let dir = std::env::temp_dir().join(format!("floe-shards-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut files = Vec::new();
    for k in 1..=3 {
        let shard = format!("{k}/3");
        let out = sim(&[
            "--seeds",
            "1..8",
            "--shard",
            &shard,
            "--duration",
            "2",
            "--json",
            "--jobs",
            "2",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let file = dir.join(format!("shard{k}.json"));
        std::fs::write(&file, &out.stdout).unwrap();
        files.push(file.display().to_string());
    }
    let mut args = vec!["merge-results", "--seeds", "1..8"];
    args.extend(files.iter().map(String::as_str));
    let out = sim(&args);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("seeds       7") && text.contains("missing     0"),
        "{text}"
    );
    // A shard given twice and one left out: duplicates and gaps fail the merge.
    let out = sim(&["merge-results", "--seeds", "1..8", &files[0], &files[0]]);
    assert_eq!(out.status.code(), Some(1));
    let out = sim(&["merge-results", "Cargo.toml"]);
    assert_eq!(out.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// vote-not-persisted breaks its rule on every seed (reports/planted-bugs.md), so the test does
/// not hang on one seed's draw.
#[test]
fn shrink_writes_a_smaller_scenario_that_fails_alone() {
    let dir = std::env::temp_dir().join(format!("floe-shrink-{}", std::process::id()));
    let dir_arg = dir.display().to_string();
    let out = sim(&[
        "--seed",
        "1",
        "--bug",
        "vote-not-persisted",
        "--shrink",
        "--report-dir",
        &dir_arg,
    ]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = dir.join("seed-1-vote-not-persisted/shrunk.toml");
    let toml = std::fs::read_to_string(&file).expect("shrunk.toml written");
    assert!(toml.contains("outcome = \"fail\""), "{toml}");
    let ms = |line: &str| -> u64 {
        line.split(", ")
            .last()
            .unwrap()
            .trim_end_matches(" ms")
            .parse()
            .unwrap()
    };
    let before = text.lines().find(|l| l.starts_with("before:")).unwrap();
    let after = text.lines().find(|l| l.starts_with("after:")).unwrap();
    assert!(ms(after) < ms(before), "{text}");
    let path = file.display().to_string();
    let replay = sim(&[
        "--seed",
        "1",
        "--scenario",
        &path,
        "--bug",
        "vote-not-persisted",
        "--report-dir",
        "none",
    ]);
    assert_eq!(
        replay.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&replay.stdout)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
