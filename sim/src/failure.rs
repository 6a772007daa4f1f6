//! A failing run's report folder: `summary.txt`, `history.html` (from `report`) and the
//! history itself as `history.jsonl` (the format `sim check-history` reads).

use std::path::Path;

use crate::check::history::{Call, Op, Ret};
use crate::cluster::{RoleChange, WorldEvent};
use crate::report::{FaultSpan, KeyVerdict, NodeSpan, OpClass, ReportData, ReportOp, write_report};
use crate::run::RunReport;

/// A short description of a call, for the report's bars.
pub fn label(call: &Call) -> String {
    let cond = |v: &Option<String>, i: &Option<u64>| match (v, i) {
        (Some(v), _) => format!(" if {v}"),
        (None, Some(i)) => format!(" if @{i}"),
        (None, None) => String::new(),
    };
    let until = |at: Option<u64>| {
        at.map(|at| format!(" ttl until {} ms", at / 1000))
            .unwrap_or_default()
    };
    match call {
        Call::Get { key, quorum } => {
            format!("get {key}{}", if *quorum { " (quorum)" } else { "" })
        }
        Call::Set {
            key,
            value,
            expire_at_us,
        } => match expire_at_us {
            Some(at) => format!("set {key} = {value} ttl until {} ms", at / 1000),
            None => format!("set {key} = {value}"),
        },
        Call::Create { key, value } => format!("create {key} = {value}"),
        Call::Update { key, value } => format!("update {key} = {value}"),
        Call::Cas {
            key,
            value,
            prev_value,
            prev_index,
        } => format!("cas {key} = {value}{}", cond(prev_value, prev_index)),
        Call::Cad {
            key,
            prev_value,
            prev_index,
        } => format!("cad {key}{}", cond(prev_value, prev_index)),
        Call::Delete { key } => format!("delete {key}"),
        Call::DeleteRecursive { key } => format!("delete -r {key}"),
        Call::CreateInOrder { dir, value } => format!("post {dir} = {value}"),
        Call::Watch {
            key,
            recursive,
            wait_index,
        } => format!(
            "watch {key}{} from {wait_index}",
            if *recursive { " -r" } else { "" }
        ),
        Call::Lock { name, .. } => format!("lock {name}"),
        Call::List {
            key,
            sorted,
            quorum,
        } => format!(
            "list -r {key}{}{}",
            if *sorted { " sorted" } else { "" },
            if *quorum { " (quorum)" } else { "" }
        ),
        Call::Rmdir { key } => format!("rmdir {key}"),
        Call::Refresh { key, expire_at_us } => {
            format!("refresh {key}{}", until(*expire_at_us))
        }
        Call::Mkdir { key, expire_at_us } => format!("mkdir {key}{}", until(*expire_at_us)),
        Call::UpdateDir { key, expire_at_us } => {
            format!("update dir {key}{}", until(*expire_at_us))
        }
    }
}

fn result(ret: &Ret) -> (String, OpClass) {
    match ret {
        Ret::Ok {
            index,
            action,
            key,
            value,
            ..
        } => {
            let value = value
                .as_deref()
                .map(|v| format!(" = {v}"))
                .unwrap_or_default();
            (format!("{action} {key}{value} @{index}"), OpClass::Ok)
        }
        Ret::Listing { index, nodes } => {
            let listed: Vec<String> = nodes
                .iter()
                .map(|n| match &n.value {
                    Some(v) => format!("{} = {v}", n.key),
                    None => format!("{}/", n.key),
                })
                .collect();
            (
                format!("listed [{}] @{index}", listed.join(", ")),
                OpClass::Ok,
            )
        }
        Ret::Err { code } => (format!("error {code}"), OpClass::Failed),
        Ret::Fail => ("refused".into(), OpClass::Failed),
        Ret::Unknown => ("timeout".into(), OpClass::Unknown),
    }
}

fn ops(history: &[Op], bad: Option<u64>) -> Vec<ReportOp> {
    history
        .iter()
        .map(|op| {
            let (result, outcome) = result(&op.ret);
            ReportOp {
                id: op.id,
                client: op.client,
                node: op.node,
                invoke_us: op.invoke_us,
                complete_us: op.complete_us,
                label: label(&op.call),
                result,
                outcome,
                bad: Some(op.id) == bad,
            }
        })
        .collect()
}

fn node_spans(roles: &[RoleChange], nodes: usize, end_us: u64) -> Vec<NodeSpan> {
    let mut spans = Vec::new();
    for node in 1..=nodes as u64 {
        let changes: Vec<&RoleChange> = roles.iter().filter(|c| c.node == node).collect();
        for (i, c) in changes.iter().enumerate() {
            let to_us = changes.get(i + 1).map_or(end_us, |n| n.at_us);
            spans.push(NodeSpan {
                node,
                from_us: c.at_us,
                to_us,
                role: c.role.into(),
                term: c.term,
            });
        }
    }
    spans
}

fn fault_spans(events: &[WorldEvent], end_us: u64) -> Vec<FaultSpan> {
    let mut spans = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let later = &events[i + 1..];
        let ends = |what: &str, same_nodes: bool| {
            later
                .iter()
                .find(|l| l.what == what && (!same_nodes || l.nodes == e.nodes))
                .map_or(end_us, |l| l.at_us)
        };
        let (to_us, kind) = match e.what.as_str() {
            "crash" => (ends("restart", true), format!("crash n{}", nodes(e))),
            "pause" => (ends("resume", true), format!("pause n{}", nodes(e))),
            "restart" | "resume" | "heal" => continue,
            "leader-churn" => (e.at_us, "leader churn starts".into()),
            other => (ends("heal", false), other.to_string()),
        };
        spans.push(FaultSpan {
            from_us: e.at_us,
            to_us,
            kind,
            nodes: e.nodes.clone(),
        });
    }
    spans
}

fn nodes(e: &WorldEvent) -> String {
    e.nodes
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The report's data for a run.
pub fn report_data(report: &RunReport, replay: &str, keys: Vec<KeyVerdict>) -> ReportData {
    let history = report.history.checker_ops();
    let end_us = report.simulated_ms * 1000;
    let bad = report
        .bad_op
        .or_else(|| keys.iter().find_map(|k| k.first_bad));
    let mut title = format!("seed {}", report.seed);
    if let Some(bug) = report.config.bug {
        title.push_str(&format!(" --bug {}", bug.name()));
    }
    ReportData {
        title,
        replay: replay.into(),
        violation: report.violation.as_ref().map(ToString::to_string),
        end_us,
        clients: report.config.clients,
        nodes: report.config.nodes,
        ops: ops(&history, bad),
        keys,
        node_spans: node_spans(&report.roles, report.config.nodes, end_us),
        faults: fault_spans(&report.world_events, end_us),
        summary_lines: vec![
            format!("trace hash {}", report.trace_hash),
            format!(
                "{} elections, max term {}, {} faults injected",
                report.elections, report.max_term, report.faults_injected
            ),
        ],
    }
}

/// Writes the report folder `dir`: summary, page and the history as JSON lines.
pub fn write_failure(dir: &Path, data: &ReportData, history: &[Op]) -> std::io::Result<()> {
    write_report(dir, data)?;
    let file = std::fs::File::create(dir.join("history.jsonl"))?;
    crate::check::history_file::write_jsonl(history, std::io::BufWriter::new(file))
}

/// Search steps of each trial of the minimal-history search (a trial out of budget keeps the
/// operation it tried to remove).
const MINIMAL_TRIAL_STEPS: u64 = 200_000;

/// The linearizability checker's verdict per key, for the report, with the minimal failing
/// history of each key that is not linearizable.
pub fn linearizability_verdicts(history: &[Op]) -> Vec<KeyVerdict> {
    use crate::check::linearizability::{Budget, Verdict, check, minimal_failure};
    let report = check(
        history,
        Budget::steps(crate::run::LINEARIZABILITY_STEPS_MAX),
    );
    report
        .partitions
        .into_iter()
        .map(|p| {
            let minimal = (p.verdict == Verdict::NotLinearizable)
                .then(|| minimal_failure(history, &p.partition, Budget::steps(MINIMAL_TRIAL_STEPS)))
                .flatten();
            KeyVerdict {
                key: p.partition,
                verdict: match p.verdict {
                    Verdict::Linearizable => "linearizable".into(),
                    Verdict::NotLinearizable => "NOT linearizable".into(),
                    Verdict::Unknown => "unknown (budget)".into(),
                },
                ops: p.ops,
                longest_prefix: p.longest_prefix,
                first_bad: p.first_bad,
                minimal: minimal.as_ref().map_or_else(Vec::new, |m| m.ops.clone()),
                minimal_proven: minimal.is_some_and(|m| m.one_minimal),
            }
        })
        .collect()
}
