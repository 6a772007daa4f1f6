//! The failure report: `reports/<name>/summary.txt` (plain text) and `history.html` (one
//! self-contained page: inline CSS and SVG, no scripts, no network fetches).
//!
//! The caller flattens a run into a [`ReportData`]; this module only formats it, so it depends on
//! nothing else in the crate. Everything is sorted and uses simulated time only, so two runs of a
//! seed write byte-identical files and `diff` works (so a report is a plain function of the seed).

mod html;
mod summary;
mod timeline;

use std::path::Path;

use serde::Serialize;

pub use html::render_html;
pub use summary::render_summary;

/// Everything a report shows about one run.
#[derive(Clone, Debug, Serialize)]
pub struct ReportData {
    /// What ran, e.g. `seed 42 --bug stale-read`.
    pub title: String,
    /// The command line that replays the run.
    pub replay: String,
    /// The broken rule, one line; `None` if the run passed.
    pub violation: Option<String>,
    /// The simulated time the run ended, in µs.
    pub end_us: u64,
    /// How many clients the workload ran.
    pub clients: usize,
    /// How many nodes the cluster had.
    pub nodes: usize,
    /// The client history.
    pub ops: Vec<ReportOp>,
    /// The linearizability verdict of each key.
    pub keys: Vec<KeyVerdict>,
    /// Each node's role and term over time.
    pub node_spans: Vec<NodeSpan>,
    /// The faults the nemesis injected.
    pub faults: Vec<FaultSpan>,
    /// Extra lines for `summary.txt` (statistics and the like); the page shows them at the end.
    pub summary_lines: Vec<String>,
}

/// One client operation, from invocation to completion (or give-up).
#[derive(Clone, Debug, Serialize)]
pub struct ReportOp {
    /// The operation's id in the history.
    pub id: u64,
    /// The client that issued it.
    pub client: u64,
    /// The node it was sent to.
    pub node: u64,
    /// When the client invoked it, in µs.
    pub invoke_us: u64,
    /// When the answer arrived or the client gave up, in µs.
    pub complete_us: u64,
    /// What it did, e.g. `cas /k1 v3-7 if v2-5`.
    pub label: String,
    /// What came back, e.g. `ok idx 57`, `err 101`, `timeout`.
    pub result: String,
    /// How it ended.
    pub outcome: OpClass,
    /// The first operation that could not be linearized, or the one a checker blamed.
    pub bad: bool,
}

/// How an operation ended, as far as the checkers are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum OpClass {
    /// It happened, and the client saw the answer.
    Ok,
    /// It definitely did not take effect (or took effect as a refusal the client saw).
    Failed,
    /// No answer (timeout): it may or may not have happened.
    Unknown,
}

impl OpClass {
    /// The lower-case word the report uses.
    pub fn word(self) -> &'static str {
        match self {
            OpClass::Ok => "ok",
            OpClass::Failed => "failed",
            OpClass::Unknown => "unknown",
        }
    }
}

/// The linearizability checker's verdict on one key.
#[derive(Clone, Debug, Serialize)]
pub struct KeyVerdict {
    /// The key.
    pub key: String,
    /// `linearizable`, `NOT linearizable` or `unknown (budget)`.
    pub verdict: String,
    /// How many operations touched the key.
    pub ops: usize,
    /// The longest linearizable prefix found: op ids in linearization order.
    pub longest_prefix: Vec<u64>,
    /// The first operation that could not be linearized after that prefix.
    pub first_bad: Option<u64>,
    /// For a key that is not linearizable: the smallest set of its operations found that alone
    /// is still not linearizable (the others relaxed: reads dropped, writes maybe-happened),
    /// op ids in id order; empty otherwise.
    pub minimal: Vec<u64>,
    /// True when `minimal` is 1-minimal (no single operation of it can go).
    pub minimal_proven: bool,
}

/// One stretch of a node's life with a fixed role and term.
#[derive(Clone, Debug, Serialize)]
pub struct NodeSpan {
    /// The node.
    pub node: u64,
    /// Start, in µs.
    pub from_us: u64,
    /// End, in µs.
    pub to_us: u64,
    /// `leader`, `candidate`, `follower`, `down` or `paused`.
    pub role: String,
    /// The node's current term.
    pub term: u64,
}

/// One fault the nemesis held in place for a while.
#[derive(Clone, Debug, Serialize)]
pub struct FaultSpan {
    /// Start, in µs.
    pub from_us: u64,
    /// End, in µs (the same as `from_us` for an instant fault).
    pub to_us: u64,
    /// What it was: `partition`, `crash n2`, `pause n3`, `loss burst`, ...
    pub kind: String,
    /// The nodes it touched.
    pub nodes: Vec<u64>,
}

/// Creates `dir` and writes `summary.txt` and `history.html` into it, replacing old ones.
pub fn write_report(dir: &Path, data: &ReportData) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("summary.txt"), render_summary(data))?;
    std::fs::write(dir.join("history.html"), render_html(data))?;
    Ok(())
}

/// Formats µs as ms with three decimals (exact: `1234567` → `1234.567`).
fn fmt_ms(us: u64) -> String {
    format!("{}.{:03}", us / 1000, us % 1000)
}

/// The operation to name first: the earliest op marked `bad`, else the earliest op some key
/// names as its first non-linearizable one.
fn first_bad_op(data: &ReportData) -> Option<&ReportOp> {
    let marked = data.ops.iter().filter(|op| op.bad);
    let earliest = marked.min_by_key(|op| (op.invoke_us, op.id));
    earliest.or_else(|| {
        let blamed: Vec<u64> = data.keys.iter().filter_map(|k| k.first_bad).collect();
        let found = data.ops.iter().filter(|op| blamed.contains(&op.id));
        found.min_by_key(|op| (op.invoke_us, op.id))
    })
}

/// How many ops ended ok, failed, unknown.
fn outcome_counts(ops: &[ReportOp]) -> [usize; 3] {
    let mut counts = [0; 3];
    for op in ops {
        let slot = match op.outcome {
            OpClass::Ok => 0,
            OpClass::Failed => 1,
            OpClass::Unknown => 2,
        };
        counts[slot] += 1;
    }
    counts
}

/// A fault's end, with an unset or backwards end read as "until the run ended".
fn fault_end_us(fault: &FaultSpan, end_us: u64) -> u64 {
    if fault.to_us < fault.from_us {
        end_us.max(fault.from_us)
    } else {
        fault.to_us
    }
}

/// The spans of each node in time order, with neighbours of equal role and term merged.
fn merged_spans(spans: &[NodeSpan]) -> Vec<(u64, Vec<NodeSpan>)> {
    let mut by_node: std::collections::BTreeMap<u64, Vec<NodeSpan>> = Default::default();
    for span in spans {
        by_node.entry(span.node).or_default().push(span.clone());
    }
    let mut out = Vec::with_capacity(by_node.len());
    for (node, mut list) in by_node {
        list.sort_by_key(|s| (s.from_us, s.to_us));
        let mut merged: Vec<NodeSpan> = Vec::with_capacity(list.len());
        for span in list {
            match merged.last_mut() {
                Some(last) if last.role == span.role && last.term == span.term => {
                    last.to_us = last.to_us.max(span.to_us);
                }
                _ => merged.push(span),
            }
        }
        out.push((node, merged));
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn op(id: u64, client: u64, node: u64, span_ms: (u64, u64), outcome: OpClass) -> ReportOp {
        ReportOp {
            id,
            client,
            node,
            invoke_us: span_ms.0 * 1000,
            complete_us: span_ms.1 * 1000,
            label: format!("put /k1 v{client}-{id}"),
            result: match outcome {
                OpClass::Ok => format!("ok idx {id}"),
                OpClass::Failed => "err 101".to_string(),
                OpClass::Unknown => "timeout".to_string(),
            },
            outcome,
            bad: false,
        }
    }

    fn span(node: u64, from_ms: u64, to_ms: u64, role: &str, term: u64) -> NodeSpan {
        NodeSpan {
            node,
            from_us: from_ms * 1000,
            to_us: to_ms * 1000,
            role: role.into(),
            term,
        }
    }

    /// Three clients, two nodes, a partition, a crash, and one bad op (id 7).
    pub(crate) fn sample() -> ReportData {
        let mut ops = vec![
            op(1, 1, 1, (10, 40), OpClass::Ok),
            op(2, 2, 1, (12, 900), OpClass::Unknown),
            op(3, 3, 2, (15, 60), OpClass::Failed),
            op(4, 1, 1, (50, 80), OpClass::Ok),
            op(5, 3, 2, (70, 71), OpClass::Ok),
            op(6, 1, 2, (400, 450), OpClass::Ok),
            op(7, 3, 2, (420, 470), OpClass::Ok),
            op(8, 2, 1, (920, 960), OpClass::Ok),
        ];
        ops[6].bad = true;
        ops[6].label = "get /k1 <script>alert('x')</script> & \"q\"".to_string();
        ReportData {
            title: "seed 42 --bug stale-read".to_string(),
            replay: "cargo run -p sim -- --seed 42 --bug stale-read".to_string(),
            violation: Some("linearizability: key /k1 is NOT linearizable".to_string()),
            end_us: 1_000_000,
            clients: 3,
            nodes: 2,
            ops,
            keys: vec![KeyVerdict {
                key: "/k1".to_string(),
                verdict: "NOT linearizable".to_string(),
                ops: 8,
                longest_prefix: vec![1, 3, 5, 4, 6],
                first_bad: Some(7),
                minimal: vec![3, 7],
                minimal_proven: true,
            }],
            node_spans: vec![
                span(1, 0, 100, "follower", 0),
                span(1, 100, 300, "leader", 1),
                span(1, 300, 600, "down", 1),
                span(1, 600, 1000, "follower", 2),
                span(2, 0, 90, "follower", 0),
                span(2, 90, 100, "candidate", 1),
                span(2, 100, 350, "follower", 1),
                span(2, 350, 1000, "leader", 2),
            ],
            faults: vec![
                FaultSpan {
                    from_us: 250_000,
                    to_us: 500_000,
                    kind: "partition".into(),
                    nodes: vec![1],
                },
                FaultSpan {
                    from_us: 300_000,
                    to_us: 600_000,
                    kind: "crash n1".into(),
                    nodes: vec![1],
                },
            ],
            summary_lines: vec!["trace hash 0xdeadbeef".to_string()],
        }
    }

    #[test]
    fn summary_names_first_bad_op_and_replay() {
        let data = sample();
        let text = render_summary(&data);
        assert!(text.contains(&data.replay), "{text}");
        assert!(text.contains("#7 client 3 -> node 2"), "{text}");
        assert!(text.contains("420.000 ms"), "{text}");
        assert!(text.contains("NOT linearizable"), "{text}");
        assert!(text.contains("crash n1"), "{text}");
        assert!(text.contains("trace hash 0xdeadbeef"), "{text}");
    }

    #[test]
    fn summary_without_violation_says_passed() {
        let mut data = sample();
        data.violation = None;
        data.ops.iter_mut().for_each(|op| op.bad = false);
        data.keys.clear();
        let text = render_summary(&data);
        assert!(text.contains("violation: none"), "{text}");
        assert!(text.contains("first bad operation: none"), "{text}");
    }

    #[test]
    fn merged_spans_join_equal_neighbours() {
        let spans = vec![
            span(1, 0, 10, "follower", 1),
            span(1, 10, 20, "follower", 1),
            span(1, 20, 30, "leader", 1),
        ];
        let merged = merged_spans(&spans);
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].1.len(), 2);
        assert_eq!(merged[0].1[0].to_us, 20_000);
    }

    #[test]
    fn fmt_ms_is_exact() {
        assert_eq!(fmt_ms(0), "0.000");
        assert_eq!(fmt_ms(1_234_567), "1234.567");
    }

    #[test]
    fn write_report_writes_both_files() {
        let dir = std::env::temp_dir().join(format!("floe-report-test-{}", std::process::id()));
        let data = sample();
        write_report(&dir, &data).expect("write report");
        // A second write overwrites rather than failing.
        write_report(&dir, &data).expect("rewrite report");
        let summary = std::fs::read_to_string(dir.join("summary.txt")).expect("summary.txt");
        let html = std::fs::read_to_string(dir.join("history.html")).expect("history.html");
        std::fs::remove_dir_all(&dir).expect("clean up");
        assert_eq!(summary, render_summary(&data));
        assert_eq!(html, render_html(&data));
    }
}
