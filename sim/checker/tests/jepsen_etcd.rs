//! The 102 Jepsen histories of etcd 2.0 with a published verdict (data/jepsen-etcd): the
//! register model must give every one the verdict the published checkers agree on.

use std::path::PathBuf;

use checker::jepsen;
use checker::linearizability::{Budget, Verdict};

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/jepsen-etcd")
}

#[test]
fn every_published_verdict_is_reproduced() {
    let csv = std::fs::read_to_string(data().join("verdicts.csv")).unwrap();
    let mut judged = 0;
    let mut disagree = Vec::new();
    for row in csv.lines().skip(1) {
        let (file, expected) = row.split_once(',').unwrap();
        let expected = match expected.trim() {
            "true" => Verdict::Linearizable,
            "false" => Verdict::NotLinearizable,
            other => panic!("{file}: verdict {other:?}"),
        };
        let text = std::fs::read_to_string(data().join(file)).unwrap();
        let found = jepsen::check(&text, Budget::UNLIMITED)
            .unwrap_or_else(|e| panic!("{file}: {e}"))
            .verdict;
        if found != expected {
            disagree.push(format!("{file}: expected {expected}, found {found}"));
        }
        judged += 1;
    }
    assert_eq!(judged, 102, "verdicts.csv lists 102 histories");
    assert!(disagree.is_empty(), "{disagree:#?}");
}

#[test]
fn the_empty_history_without_a_verdict_is_linearizable() {
    let text = std::fs::read_to_string(data().join("etcd_095.log")).unwrap();
    assert!(text.trim().is_empty());
    let verdict = jepsen::check(&text, Budget::UNLIMITED).unwrap().verdict;
    assert_eq!(verdict, Verdict::Linearizable);
}
