//! The timeline: one SVG plot with a shared time axis (ms) over a faults panel, a row per node
//! (role and term) and a lane per client (operations), next to a fixed SVG column of row labels,
//! so the labels stay in view while the plot scrolls sideways.

use std::fmt::Write as _;

use super::html::esc;
use super::{
    NodeSpan, OpClass, ReportData, ReportOp, fault_end_us, first_bad_op, fmt_ms, merged_spans,
};

/// Width of the fixed label column.
const LABEL_W: f64 = 84.0;
/// Height of the tick-label band above and below the plot.
const AXIS_H: f64 = 24.0;
/// Height of a panel's title band.
const HEAD_H: f64 = 18.0;
const FAULT_ROW_H: f64 = 16.0;
const FAULT_ROWS_MAX: usize = 8;
const NODE_ROW_H: f64 = 18.0;
const LANE_H: f64 = 14.0;
/// Overlapping ops of one client get extra rows in its lane, up to this many.
const LANE_ROWS_MAX: usize = 4;
/// Blank margin left and right of the time range.
const PAD_X: f64 = 16.0;
/// Ops and instant faults shorter than this still show.
const OP_MIN_PX: f64 = 1.5;
const FAULT_MIN_PX: f64 = 2.0;
/// Plot width grows with the run's length, between these bounds: 0.1 px per ms caps at 40 s.
const PX_PER_MS: f64 = 0.1;
const PLOT_W_MIN: f64 = 1400.0;
const PLOT_W_MAX: f64 = 4000.0;
/// Rough advance of one 10 px character, to decide whether a label fits inside its bar.
const CHAR_PX: f64 = 6.2;
const TICK_GAP_MIN_PX: f64 = 80.0;

/// Maps simulated time onto the plot's x axis.
struct Scale {
    t_max_us: u64,
    plot_w: f64,
}

impl Scale {
    fn new(data: &ReportData) -> Scale {
        let ops = data.ops.iter().map(|op| op.complete_us.max(op.invoke_us));
        let spans = data.node_spans.iter().map(|s| s.to_us.max(s.from_us));
        let faults = data.faults.iter().map(|f| fault_end_us(f, data.end_us));
        let t_max_us = ops
            .chain(spans)
            .chain(faults)
            .fold(data.end_us, u64::max)
            .max(1000);
        let plot_w = (t_max_us as f64 / 1000.0 * PX_PER_MS).clamp(PLOT_W_MIN, PLOT_W_MAX);
        Scale { t_max_us, plot_w }
    }

    fn x(&self, t_us: u64) -> f64 {
        PAD_X + t_us.min(self.t_max_us) as f64 / self.t_max_us as f64 * self.plot_w
    }

    /// The bar for `[from, to]`: its left edge and a width of at least `min_px`.
    fn bar(&self, from_us: u64, to_us: u64, min_px: f64) -> (f64, f64) {
        let x0 = self.x(from_us);
        (x0, (self.x(to_us.max(from_us)) - x0).max(min_px))
    }

    fn us_per_px(&self, px: f64) -> u64 {
        (px * self.t_max_us as f64 / self.plot_w).ceil() as u64
    }

    fn width(&self) -> f64 {
        self.plot_w + 2.0 * PAD_X
    }

    /// The tick spacing: the smallest 1/2/5 × 10^k ms step at least `TICK_GAP_MIN_PX` apart.
    fn tick_step_us(&self) -> u64 {
        let min_us = self.us_per_px(TICK_GAP_MIN_PX);
        let mut decade = 1000u64;
        // Bounded: 10^3 · 10^15 µs is far past any run.
        for _ in 0..16 {
            for mult in [1, 2, 5] {
                if decade * mult >= min_us {
                    return decade * mult;
                }
            }
            decade *= 10;
        }
        self.t_max_us
    }
}

/// One client's lane: its ops and the row of each within the lane.
struct Lane {
    client: u64,
    y: f64,
    rows: usize,
    ops: Vec<(usize, usize)>,
}

/// Where every row of the plot sits.
struct Layout {
    faults_y: f64,
    fault_rows: Vec<usize>,
    nodes_y: f64,
    nodes: Vec<(u64, Vec<NodeSpan>)>,
    clients_y: f64,
    lanes: Vec<Lane>,
    height: f64,
}

impl Layout {
    fn new(data: &ReportData, scale: &Scale) -> Layout {
        let faults_y = AXIS_H + HEAD_H;
        let intervals: Vec<(u64, u64)> = data
            .faults
            .iter()
            .map(|f| (f.from_us, fault_end_us(f, data.end_us)))
            .collect();
        let gap_us = scale.us_per_px(FAULT_MIN_PX + 1.0);
        let (fault_rows, fault_row_count) = pack(&intervals, gap_us, FAULT_ROWS_MAX);
        let nodes_y = faults_y + fault_row_count as f64 * FAULT_ROW_H + HEAD_H;
        let nodes = merged_spans(&data.node_spans);
        let clients_y = nodes_y + nodes.len() as f64 * NODE_ROW_H + HEAD_H;
        let lanes = client_lanes(&data.ops, clients_y);
        let lanes_end = lanes
            .last()
            .map_or(clients_y, |l| l.y + l.rows as f64 * LANE_H);
        Layout {
            faults_y,
            fault_rows,
            nodes_y,
            nodes,
            clients_y,
            lanes,
            height: lanes_end + 4.0 + AXIS_H,
        }
    }

    /// The y range of everything between the two axes.
    fn body(&self) -> (f64, f64) {
        (AXIS_H, self.height - AXIS_H)
    }
}

/// Greedy interval packing: the row of each interval (in input order) and the number of rows.
/// Intervals less than `gap_us` apart count as overlapping; rows past `rows_max` share the last.
fn pack(intervals: &[(u64, u64)], gap_us: u64, rows_max: usize) -> (Vec<usize>, usize) {
    assert!(rows_max > 0, "packing needs at least one row");
    let mut order: Vec<usize> = (0..intervals.len()).collect();
    order.sort_by_key(|&i| intervals[i]);
    let mut row_ends: Vec<u64> = Vec::new();
    let mut rows = vec![0; intervals.len()];
    for i in order {
        let (from_us, to_us) = intervals[i];
        let row = match row_ends.iter().position(|&end| end <= from_us) {
            Some(row) => row,
            None if row_ends.len() < rows_max => {
                row_ends.push(0);
                row_ends.len() - 1
            }
            None => rows_max - 1,
        };
        row_ends[row] = row_ends[row].max(to_us.max(from_us).saturating_add(gap_us));
        rows[i] = row;
    }
    (rows, row_ends.len().max(1))
}

/// One lane per client id seen in the history, in ascending id order.
fn client_lanes(ops: &[ReportOp], top_y: f64) -> Vec<Lane> {
    let mut by_client: std::collections::BTreeMap<u64, Vec<usize>> = Default::default();
    for (i, op) in ops.iter().enumerate() {
        by_client.entry(op.client).or_default().push(i);
    }
    let mut y = top_y;
    let mut lanes = Vec::with_capacity(by_client.len());
    for (client, indices) in by_client {
        let intervals: Vec<(u64, u64)> = indices
            .iter()
            .map(|&i| (ops[i].invoke_us, ops[i].complete_us))
            .collect();
        let (rows, row_count) = pack(&intervals, 0, LANE_ROWS_MAX);
        let lane_ops = indices.into_iter().zip(rows).collect();
        lanes.push(Lane {
            client,
            y,
            rows: row_count,
            ops: lane_ops,
        });
        y += row_count as f64 * LANE_H;
    }
    lanes
}

/// Renders the timeline block: the label column and the scrolling plot.
pub(super) fn render(out: &mut String, data: &ReportData) {
    let scale = Scale::new(data);
    let layout = Layout::new(data, &scale);
    out.push_str("<div class=\"timeline\">\n");
    labels(out, &layout);
    let _ = writeln!(
        out,
        "<div class=\"scroll\"><svg class=\"plot\" width=\"{:.0}\" height=\"{:.0}\" \
         role=\"img\" aria-label=\"timeline\">",
        scale.width(),
        layout.height
    );
    out.push_str(
        "<defs><pattern id=\"hatch\" width=\"5\" height=\"5\" patternUnits=\"userSpaceOnUse\" \
         patternTransform=\"rotate(45)\"><rect width=\"5\" height=\"5\" fill=\"#edf2f7\"/>\
         <rect width=\"2\" height=\"5\" fill=\"#a0aec0\"/></pattern></defs>\n",
    );
    bands(out, &layout, &scale);
    axis(out, &layout, &scale);
    bad_band(out, data, &layout, &scale);
    faults(out, data, &layout, &scale);
    nodes(out, &layout, &scale);
    ops(out, data, &layout, &scale);
    out.push_str("</svg></div>\n</div>\n");
}

/// The fixed left column: panel titles and one label per row.
fn labels(out: &mut String, layout: &Layout) {
    let _ = writeln!(
        out,
        "<svg class=\"labels\" width=\"{LABEL_W:.0}\" height=\"{:.0}\">",
        layout.height
    );
    let right = LABEL_W - 8.0;
    let head = |out: &mut String, y: f64, name: &str| {
        let _ = writeln!(
            out,
            "<text class=\"head\" x=\"6\" y=\"{:.1}\">{name}</text>",
            y - HEAD_H + 13.0
        );
    };
    let row = |out: &mut String, y: f64, h: f64, name: String| {
        let _ = writeln!(
            out,
            "<text x=\"{right:.1}\" y=\"{:.1}\" text-anchor=\"end\">{name}</text>",
            y + h / 2.0 + 3.5
        );
    };
    row(out, 0.0, AXIS_H + 4.0, "time (ms)".to_string());
    row(
        out,
        layout.height - AXIS_H - 4.0,
        AXIS_H + 4.0,
        "time (ms)".to_string(),
    );
    head(out, layout.faults_y, "faults");
    head(out, layout.nodes_y, "nodes");
    for (i, (node, _)) in layout.nodes.iter().enumerate() {
        row(
            out,
            layout.nodes_y + i as f64 * NODE_ROW_H,
            NODE_ROW_H,
            format!("n{node}"),
        );
    }
    head(out, layout.clients_y, "clients");
    for lane in &layout.lanes {
        row(out, lane.y, LANE_H, format!("c{}", lane.client));
    }
    out.push_str("</svg>\n");
}

/// Background bands: panel title bands, and zebra stripes on client lanes.
fn bands(out: &mut String, layout: &Layout, scale: &Scale) {
    let w = scale.width();
    for y in [layout.faults_y, layout.nodes_y, layout.clients_y] {
        let _ = writeln!(
            out,
            "<rect class=\"headband\" x=\"0\" y=\"{:.1}\" width=\"{w:.0}\" height=\"{HEAD_H:.0}\"/>",
            y - HEAD_H
        );
    }
    for lane in layout.lanes.iter().skip(1).step_by(2) {
        let _ = writeln!(
            out,
            "<rect class=\"stripe\" x=\"0\" y=\"{:.1}\" width=\"{w:.0}\" height=\"{:.1}\"/>",
            lane.y,
            lane.rows as f64 * LANE_H
        );
    }
    if layout.fault_rows.is_empty() {
        let _ = writeln!(
            out,
            "<text x=\"{PAD_X:.0}\" y=\"{:.1}\" class=\"muted\">no faults injected</text>",
            layout.faults_y + 12.0
        );
    }
}

/// Vertical grid lines with tick labels above and below the plot.
fn axis(out: &mut String, layout: &Layout, scale: &Scale) {
    let step_us = scale.tick_step_us();
    let (top, bottom) = layout.body();
    let mut t_us = 0;
    while t_us <= scale.t_max_us {
        let x = scale.x(t_us);
        let ms = t_us / 1000;
        let _ = writeln!(
            out,
            "<line class=\"grid\" x1=\"{x:.1}\" y1=\"{top:.1}\" x2=\"{x:.1}\" y2=\"{bottom:.1}\"/>\
             <text class=\"tick\" x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{ms}</text>\
             <text class=\"tick\" x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{ms}</text>",
            top - 7.0,
            bottom + 15.0
        );
        t_us += step_us;
    }
}

/// A faint red column over the whole plot while the first bad op was in flight, with its id on
/// top, so the faults and roles at that moment line up with it.
fn bad_band(out: &mut String, data: &ReportData, layout: &Layout, scale: &Scale) {
    let Some(op) = first_bad_op(data) else {
        return;
    };
    let (top, bottom) = layout.body();
    let (x, w) = scale.bar(op.invoke_us, op.complete_us, OP_MIN_PX);
    let _ = writeln!(
        out,
        "<rect class=\"badband\" x=\"{x:.1}\" y=\"{top:.1}\" width=\"{w:.1}\" height=\"{:.1}\"/>\
         <line class=\"badline\" x1=\"{x:.1}\" y1=\"{top:.1}\" x2=\"{x:.1}\" y2=\"{bottom:.1}\"/>\
         <text class=\"badlabel\" x=\"{:.1}\" y=\"{:.1}\">&#x2717; #{}</text>",
        bottom - top,
        x + 3.0,
        layout.faults_y - 5.0,
        op.id
    );
}

/// The CSS class for a fault's colour, from the words in its kind.
fn fault_class(kind: &str) -> &'static str {
    let kind = kind.to_ascii_lowercase();
    let table = [
        ("partition", "f-partition"),
        ("crash", "f-crash"),
        ("kill", "f-crash"),
        ("restart", "f-crash"),
        ("pause", "f-pause"),
        ("loss", "f-loss"),
        ("drop", "f-loss"),
        ("clock", "f-clock"),
        ("skew", "f-clock"),
        ("disk", "f-disk"),
    ];
    table
        .iter()
        .find(|(word, _)| kind.contains(word))
        .map_or("f-other", |(_, class)| class)
}

fn faults(out: &mut String, data: &ReportData, layout: &Layout, scale: &Scale) {
    for (fault, &row) in data.faults.iter().zip(&layout.fault_rows) {
        let to_us = fault_end_us(fault, data.end_us);
        let (x, w) = scale.bar(fault.from_us, to_us, FAULT_MIN_PX);
        let y = layout.faults_y + row as f64 * FAULT_ROW_H + 1.0;
        let nodes: Vec<String> = fault.nodes.iter().map(|n| format!("n{n}")).collect();
        let _ = write!(
            out,
            "<g class=\"fault {}\"><rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" \
             height=\"{:.0}\" rx=\"2\"/><title>{} [{}]\n{} .. {} ms</title>",
            fault_class(&fault.kind),
            FAULT_ROW_H - 2.0,
            esc(&fault.kind),
            nodes.join(" "),
            fmt_ms(fault.from_us),
            fmt_ms(to_us)
        );
        if fault.kind.chars().count() as f64 * CHAR_PX + 8.0 <= w {
            let _ = write!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                x + 4.0,
                y + 11.0,
                esc(&fault.kind)
            );
        }
        out.push_str("</g>\n");
    }
}

/// The CSS class for a role's colour.
fn role_class(role: &str) -> &'static str {
    match role {
        "leader" => "r-leader",
        "candidate" => "r-candidate",
        "follower" => "r-follower",
        "down" => "r-down",
        "paused" => "r-paused",
        _ => "r-other",
    }
}

fn nodes(out: &mut String, layout: &Layout, scale: &Scale) {
    for (i, (node, spans)) in layout.nodes.iter().enumerate() {
        let y = layout.nodes_y + i as f64 * NODE_ROW_H + 2.0;
        for span in spans {
            let (x, w) = scale.bar(span.from_us, span.to_us, 1.0);
            let _ = write!(
                out,
                "<g class=\"role {}\"><rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" \
                 height=\"{:.0}\"/><title>n{node} {} term {}\n{} .. {} ms</title>",
                role_class(&span.role),
                NODE_ROW_H - 4.0,
                esc(&span.role),
                span.term,
                fmt_ms(span.from_us),
                fmt_ms(span.to_us)
            );
            let text = format!("t{}", span.term);
            if text.len() as f64 * CHAR_PX + 4.0 <= w {
                let _ = write!(
                    out,
                    "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{text}</text>",
                    x + w / 2.0,
                    y + 10.5
                );
            }
            out.push_str("</g>\n");
        }
    }
}

/// Every op as a bar in its client's lane; bad ops last, so their red outline is on top.
fn ops(out: &mut String, data: &ReportData, layout: &Layout, scale: &Scale) {
    for bad_pass in [false, true] {
        for lane in &layout.lanes {
            for &(i, row) in &lane.ops {
                let op = &data.ops[i];
                if op.bad == bad_pass {
                    op_bar(out, op, lane.y + row as f64 * LANE_H, scale);
                }
            }
        }
    }
}

fn op_bar(out: &mut String, op: &ReportOp, lane_y: f64, scale: &Scale) {
    let (x, w) = scale.bar(op.invoke_us, op.complete_us, OP_MIN_PX);
    let outcome = match op.outcome {
        OpClass::Ok => "o-ok",
        OpClass::Failed => "o-failed",
        OpClass::Unknown => "o-unknown",
    };
    let bad = if op.bad { " bad" } else { "" };
    let took_us = op.complete_us.saturating_sub(op.invoke_us);
    let _ = writeln!(
        out,
        "<rect id=\"op-{}\" class=\"op {outcome}{bad}\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" \
         height=\"{:.0}\"><title>#{} {} &#x2192; {} ({}){}\nclient {} &#x2192; node {}\n\
         {} .. {} ms ({} ms)</title></rect>",
        op.id,
        lane_y + 2.0,
        LANE_H - 4.0,
        op.id,
        esc(&op.label),
        esc(&op.result),
        op.outcome.word(),
        if op.bad { " NOT LINEARIZABLE" } else { "" },
        op.client,
        op.node,
        fmt_ms(op.invoke_us),
        fmt_ms(op.complete_us),
        fmt_ms(took_us)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_puts_overlaps_on_new_rows() {
        let (rows, count) = pack(&[(0, 10), (5, 15), (10, 20), (30, 40)], 0, 4);
        assert_eq!(rows, vec![0, 1, 0, 0]);
        assert_eq!(count, 2);
        let (rows, count) = pack(&[(0, 10), (1, 10), (2, 10)], 0, 2);
        assert_eq!(rows, vec![0, 1, 1]);
        assert_eq!(count, 2);
        assert_eq!(pack(&[], 0, 3), (vec![], 1));
    }

    #[test]
    fn tick_step_is_round_and_spaced() {
        let data = super::super::tests::sample();
        let scale = Scale::new(&data);
        let step_us = scale.tick_step_us();
        assert_eq!(step_us % 1000, 0);
        assert!(scale.x(step_us) - scale.x(0) >= TICK_GAP_MIN_PX);
    }
}
