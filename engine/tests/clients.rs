//! The clients people already use, unchanged, against `floe`: python-etcd 0.4.5 (its API and its
//! own integration suite, which starts `floe` as `etcd`), dsoprea's `etcd` 2.0.8 (the 2014
//! client, with the two harness shims of engine/src/store/README.md §12.2), and etcdctl v2. Each script asserts
//! real results; the same scripts pass against a real etcd 3.4 (but for dsoprea's lock, which
//! needs the 0.x layer etcd 3.4 lacks).

mod support;

use std::process::Command;

use support::{FLOE, floe_single, repo, run_ok, setup, temp_dir};

fn venv_python(name: &str) -> String {
    repo()
        .join("target/venvs")
        .join(name)
        .join("bin/python")
        .display()
        .to_string()
}

fn script(name: &str) -> String {
    repo()
        .join("engine/tests/clients")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn python_etcd_api_calls() {
    setup(&["python-etcd"]);
    let dir = temp_dir("python-etcd-api");
    let _floe = floe_single(&dir, 26379, 26380);
    let out = run_ok(
        "python_etcd_api.py",
        Command::new(venv_python("python-etcd"))
            .arg(script("python_etcd_api.py"))
            .args(["127.0.0.1", "26379"]),
    );
    assert!(out.contains("all calls behaved"), "{out}");
}

#[test]
fn python_etcd_integration_suite_with_floe_as_etcd() {
    setup(&["python-etcd"]);
    let dir = temp_dir("python-etcd-suite");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("bin dir");
    std::os::unix::fs::symlink(FLOE, bin.join("etcd")).expect("symlink floe as etcd");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = run_ok(
        "python-etcd's test_simple",
        Command::new(venv_python("python-etcd"))
            .args([
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "--pyargs",
                "etcd.tests.integration.test_simple",
            ])
            .env("PATH", path)
            .current_dir(&dir),
    );
    assert!(out.contains("17 passed"), "{out}");
}

#[test]
fn dsoprea_etcd_2014_client() {
    setup(&["dsoprea"]);
    let dir = temp_dir("dsoprea");
    let _floe = floe_single(&dir, 26389, 26390);
    let out = run_ok(
        "dsoprea_etcd.py",
        Command::new(venv_python("dsoprea"))
            .arg(script("dsoprea_etcd.py"))
            .args(["127.0.0.1", "26389"]),
    );
    assert!(out.contains("behaved"), "{out}");
}

#[test]
fn etcdctl_v2_commands() {
    setup(&["etcd"]);
    let dir = temp_dir("etcdctl");
    let _floe = floe_single(&dir, 26399, 26400);
    let out = run_ok(
        "etcdctl.sh",
        Command::new("bash")
            .arg(script("etcdctl.sh"))
            .arg("http://127.0.0.1:26399"),
    );
    assert!(out.contains("behaved"), "{out}");
}
