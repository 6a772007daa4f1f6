//! `summary.txt`: the report as plain text, one fact per line, for terminals and `diff`.

use std::fmt::Write as _;

use super::{
    KeyVerdict, ReportData, ReportOp, fault_end_us, first_bad_op, fmt_ms, merged_spans,
    outcome_counts,
};

/// Role changes shown per node before the middle ones are elided.
const NODE_CHANGES_MAX: usize = 40;

/// Renders `summary.txt`: title, violation, replay command, the first bad operation, per-key
/// verdicts, op counts, the fault timeline, each node's role/term changes and `summary_lines`.
pub fn render_summary(data: &ReportData) -> String {
    let mut out = String::new();
    header(&mut out, data);
    first_bad(&mut out, data);
    keys(&mut out, &data.keys);
    counts(&mut out, &data.ops);
    faults(&mut out, data);
    nodes(&mut out, data);
    if !data.summary_lines.is_empty() {
        out.push_str("\nstatistics:\n");
        for line in &data.summary_lines {
            let _ = writeln!(out, "  {line}");
        }
    }
    out
}

fn header(out: &mut String, data: &ReportData) {
    let _ = writeln!(out, "Floe report: {}", data.title);
    match &data.violation {
        Some(violation) => {
            let _ = writeln!(out, "violation: {violation}");
        }
        None => out.push_str("violation: none (the run passed)\n"),
    }
    let _ = writeln!(out, "replay: {}", data.replay);
    let _ = writeln!(
        out,
        "ran {} ms simulated; {} nodes, {} clients, {} operations",
        fmt_ms(data.end_us),
        data.nodes,
        data.clients,
        data.ops.len()
    );
}

/// One operation on one line: `#7 client 3 -> node 2, 420.000 ms .. 470.000 ms: label -> result (ok)`.
pub(super) fn describe_op(op: &ReportOp) -> String {
    format!(
        "#{} client {} -> node {}, {} ms .. {} ms: {} -> {} ({})",
        op.id,
        op.client,
        op.node,
        fmt_ms(op.invoke_us),
        fmt_ms(op.complete_us),
        op.label,
        op.result,
        op.outcome.word()
    )
}

fn first_bad(out: &mut String, data: &ReportData) {
    match first_bad_op(data) {
        Some(op) => {
            let _ = writeln!(out, "\nfirst bad operation:\n  {}", describe_op(op));
        }
        None => out.push_str("\nfirst bad operation: none\n"),
    }
}

fn keys(out: &mut String, keys: &[KeyVerdict]) {
    if keys.is_empty() {
        out.push_str("\nkeys: none checked\n");
        return;
    }
    out.push_str("\nkeys:\n");
    let key_w = keys.iter().map(|k| k.key.len()).max().unwrap_or(0);
    let verdict_w = keys.iter().map(|k| k.verdict.len()).max().unwrap_or(0);
    for key in keys {
        let bad = key
            .first_bad
            .map_or_else(|| "-".to_string(), |id| format!("#{id}"));
        let _ = writeln!(
            out,
            "  {:key_w$}  {:>6} ops  {:verdict_w$}  longest prefix {:>6}  first bad {bad}",
            key.key,
            key.ops,
            key.verdict,
            key.longest_prefix.len(),
        );
    }
    for key in keys.iter().filter(|k| !k.minimal.is_empty()) {
        let ids: Vec<String> = key.minimal.iter().map(|id| format!("#{id}")).collect();
        let _ = writeln!(
            out,
            "  minimal failing history of {}: {} of {} ops{}: {}",
            key.key,
            key.minimal.len(),
            key.ops,
            if key.minimal_proven {
                " (1-minimal)"
            } else {
                ""
            },
            ids.join(" ")
        );
    }
}

fn counts(out: &mut String, ops: &[ReportOp]) {
    let [ok, failed, unknown] = outcome_counts(ops);
    let _ = writeln!(
        out,
        "\noperations: {} total, {ok} ok, {failed} failed, {unknown} unknown",
        ops.len()
    );
}

fn faults(out: &mut String, data: &ReportData) {
    if data.faults.is_empty() {
        out.push_str("\nfaults: none\n");
        return;
    }
    out.push_str("\nfaults:\n");
    let mut faults: Vec<_> = data.faults.iter().collect();
    faults.sort_by_key(|f| (f.from_us, f.to_us));
    for fault in faults {
        let nodes: Vec<String> = fault.nodes.iter().map(|n| format!("n{n}")).collect();
        let _ = writeln!(
            out,
            "  {:>12} ms .. {:>12} ms  {}  nodes [{}]",
            fmt_ms(fault.from_us),
            fmt_ms(fault_end_us(fault, data.end_us)),
            fault.kind,
            nodes.join(" ")
        );
    }
}

/// One line per node: `n1: 0.000 follower t0 | 100.000 leader t1 | ...`, long ones elided
/// in the middle.
fn nodes(out: &mut String, data: &ReportData) {
    let per_node = merged_spans(&data.node_spans);
    if per_node.is_empty() {
        return;
    }
    out.push_str("\nnodes (ms role term):\n");
    for (node, spans) in per_node {
        let steps: Vec<String> = spans
            .iter()
            .map(|s| format!("{} {} t{}", fmt_ms(s.from_us), s.role, s.term))
            .collect();
        let shown = if steps.len() > NODE_CHANGES_MAX {
            let half = NODE_CHANGES_MAX / 2;
            let elided = format!("... {} more ...", steps.len() - 2 * half);
            let mut shown = steps[..half].to_vec();
            shown.push(elided);
            shown.extend_from_slice(&steps[steps.len() - half..]);
            shown
        } else {
            steps
        };
        let _ = writeln!(out, "  n{node}: {}", shown.join(" | "));
    }
}
