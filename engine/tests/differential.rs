//! Differential test: the same scripted requests to a real etcd 3.4 (`--enable-v2=true`) and to
//! Floe; status, headers and JSON must agree after the normalisation of
//! engine/src/store/README.md §12.5 (index shift, expirations, ids). The scripts
//! (`differential/cases/*.txt`) follow the recorded transcripts of that README's §Transcripts.

mod support;

use std::process::Command;

use support::{etcd_single, floe_single, repo, run_ok, setup, temp_dir};

#[test]
fn floe_answers_as_etcd_does() {
    setup(&["etcd"]);
    let dir = temp_dir("differential");
    let _etcd = etcd_single(&dir, 42479, 42480);
    let _floe = floe_single(&dir, 24479, 24480);
    let cases = repo().join("engine/tests/differential/cases");
    let mut files: Vec<_> = std::fs::read_dir(&cases)
        .expect("cases dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let output = run_ok(
        "differential/run.py",
        Command::new("python3")
            .arg(repo().join("engine/tests/differential/run.py"))
            .arg("http://127.0.0.1:42479")
            .arg("http://127.0.0.1:24479")
            .args(&files),
    );
    println!("{output}");
    assert!(output.contains(" 0 mismatches"), "{output}");
}
