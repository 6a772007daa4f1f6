//! `history.html`: one self-contained page (inline CSS and SVG, no scripts, no fonts, no network
//! fetches) with the header, a legend, the timeline and the per-key verdicts.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::summary::describe_op;
use super::{KeyVerdict, ReportData, ReportOp, first_bad_op, outcome_counts, timeline};

/// The page's style sheet. Colours: roles blue/amber/grey/black/purple, outcomes
/// green/orange/hatched grey, the bad op red.
const CSS: &str = r#"
body{margin:20px 24px;background:#f7f8fa;color:#1a202c;
 font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
h1{font-size:21px;margin:0 0 10px}
h2{font-size:16px;margin:22px 0 8px}
code,pre{font:13px/1.4 ui-monospace,"SFMono-Regular",Menlo,Consolas,"Liberation Mono",monospace}
pre.replay{background:#edf2f7;border:1px solid #e2e8f0;border-radius:4px;padding:8px 12px;
 overflow-x:auto;margin:6px 0}
.violation{color:#c53030;background:#fff5f5;border-left:4px solid #e53e3e;padding:6px 12px;
 font-weight:600;margin:6px 0}
.passed{color:#276749;background:#f0fff4;border-left:4px solid #38a169;padding:6px 12px;
 font-weight:600;margin:6px 0}
.facts{color:#4a5568;margin:4px 0}
.firstbad{margin:6px 0}.firstbad code{background:#fff5f5;border:1px solid #feb2b2;
 border-radius:3px;padding:1px 5px}
.legend{display:flex;flex-wrap:wrap;gap:6px 18px;align-items:center;margin:12px 0 8px;
 font-size:13px;color:#2d3748}
.legend b{font-weight:600;color:#4a5568;margin-right:-8px}
.sw{display:inline-block;width:18px;height:11px;vertical-align:-1px;margin-right:5px;
 border:1px solid rgba(0,0,0,.15);border-radius:2px}
.timeline{display:flex;background:#fff;border:1px solid #e2e8f0;border-radius:4px}
.timeline .scroll{overflow-x:auto;flex:1}
.timeline svg{display:block}
svg.labels{border-right:1px solid #e2e8f0;flex:none}
svg text{font-size:10px;fill:#4a5568;
 font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif}
svg text.head{font-size:11px;font-weight:700;fill:#2d3748}
svg text.muted{fill:#a0aec0;font-style:italic}
.headband{fill:#f1f4f8}.stripe{fill:#f8fafc}.grid{stroke:#e2e8f0;stroke-width:1}
.badband{fill:#e53e3e;fill-opacity:.07}
.badline{stroke:#e53e3e;stroke-width:1;stroke-dasharray:4 3}
svg text.badlabel{fill:#c53030;font-weight:700}
.r-leader rect,.sw.r-leader{fill:#2b6cb0;background:#2b6cb0}
.r-candidate rect,.sw.r-candidate{fill:#ecc94b;background:#ecc94b}
.r-follower rect,.sw.r-follower{fill:#cbd5e0;background:#cbd5e0}
.r-down rect,.sw.r-down{fill:#2d3748;background:#2d3748}
.r-paused rect,.sw.r-paused{fill:#9f7aea;background:#9f7aea}
.r-other rect,.sw.r-other{fill:#81e6d9;background:#81e6d9}
.role rect{stroke:#fff;stroke-width:.5}
.r-leader text,.r-down text,.r-paused text{fill:#fff}
.fault rect{fill-opacity:.85}.fault text{fill:#fff;font-weight:600}
.f-partition rect,.sw.f-partition{fill:#dd6b20;background:#dd6b20}
.f-crash rect,.sw.f-crash{fill:#742a2a;background:#742a2a}
.f-pause rect,.sw.f-pause{fill:#6b46c1;background:#6b46c1}
.f-loss rect,.sw.f-loss{fill:#b7791f;background:#b7791f}
.f-clock rect,.sw.f-clock{fill:#2c7a7b;background:#2c7a7b}
.f-disk rect,.sw.f-disk{fill:#2a4365;background:#2a4365}
.f-other rect,.sw.f-other{fill:#718096;background:#718096}
.op{stroke-width:0}.op:hover,.op:target{stroke:#000;stroke-width:1.5}
.o-ok,.sw.o-ok{fill:#38a169;background:#38a169}
.o-failed,.sw.o-failed{fill:#ed8936;background:#ed8936}
.o-unknown{fill:url(#hatch);fill-opacity:.9}
.sw.o-unknown{background:repeating-linear-gradient(45deg,#a0aec0 0 2px,#edf2f7 2px 5px)}
.op.bad,.op.bad:hover{stroke:#e53e3e;stroke-width:3}
.sw.bad{background:#fff;border:3px solid #e53e3e;width:14px;height:7px}
table.keys{border-collapse:collapse;background:#fff;border:1px solid #e2e8f0;min-width:60%}
table.keys th,table.keys td{border-bottom:1px solid #edf2f7;padding:5px 10px;text-align:left;
 vertical-align:top}
table.keys th{background:#f1f4f8;font-size:13px}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.v-ok{color:#276749;font-weight:600}.v-bad{color:#c53030;font-weight:700}
.v-unknown{color:#975a16;font-weight:600}
td.badop{background:#fff5f5;color:#9b2c2c}
ol.prefix{margin:4px 0;padding-left:3.5em;font:12px/1.5 ui-monospace,Menlo,Consolas,monospace}
ol.prefix li.bad{color:#c53030;font-weight:700;list-style-type:"\2717  "}
a{color:#2b6cb0;text-decoration:none}a:hover{text-decoration:underline}
details summary{cursor:pointer;color:#2b6cb0}
pre.stats{background:#fff;border:1px solid #e2e8f0;border-radius:4px;padding:8px 12px}
"#;

/// Escapes text for HTML element content and quoted attribute values.
pub(super) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Renders `history.html`: header (title, violation, replay command, first bad op), legend,
/// timeline (faults, node roles, client lanes on one time axis) and the per-key verdicts.
pub fn render_html(data: &ReportData) -> String {
    // About 400 bytes per op bar with its tooltip, plus room for the rest.
    let mut out = String::with_capacity(64 * 1024 + data.ops.len() * 400);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>Floe report: {}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        esc(&data.title)
    );
    header(&mut out, data);
    out.push_str("<h2>Timeline</h2>\n");
    legend(&mut out);
    timeline::render(&mut out, data);
    keys(&mut out, data);
    minimal(&mut out, data);
    if !data.summary_lines.is_empty() {
        out.push_str("<h2>Statistics</h2>\n<pre class=\"stats\">");
        for line in &data.summary_lines {
            let _ = writeln!(out, "{}", esc(line));
        }
        out.push_str("</pre>\n");
    }
    out.push_str("</body>\n</html>\n");
    out
}

fn header(out: &mut String, data: &ReportData) {
    let _ = writeln!(out, "<h1>Floe report: {}</h1>", esc(&data.title));
    match &data.violation {
        Some(violation) => {
            let _ = writeln!(out, "<div class=\"violation\">{}</div>", esc(violation));
        }
        None => out.push_str("<div class=\"passed\">No violation: the run passed.</div>\n"),
    }
    let _ = writeln!(
        out,
        "<div>Replay:</div><pre class=\"replay\"><code>{}</code></pre>",
        esc(&data.replay)
    );
    match first_bad_op(data) {
        Some(op) => {
            let _ = writeln!(
                out,
                "<div class=\"firstbad\">First bad operation: <a href=\"#op-{}\"><code>{}</code>\
                 </a></div>",
                op.id,
                esc(&describe_op(op))
            );
        }
        None => out.push_str("<div class=\"firstbad\">First bad operation: none</div>\n"),
    }
    let [ok, failed, unknown] = outcome_counts(&data.ops);
    let _ = writeln!(
        out,
        "<div class=\"facts\">{} ms simulated &#xb7; {} nodes &#xb7; {} clients &#xb7; {} \
         operations: {ok} ok, {failed} failed, {unknown} unknown &#xb7; {} faults</div>",
        super::fmt_ms(data.end_us),
        data.nodes,
        data.clients,
        data.ops.len(),
        data.faults.len()
    );
}

fn legend(out: &mut String) {
    let groups: [(&str, &[(&str, &str)]); 3] = [
        (
            "faults",
            &[
                ("f-partition", "partition"),
                ("f-crash", "crash"),
                ("f-pause", "pause"),
                ("f-loss", "message loss"),
                ("f-clock", "clock"),
                ("f-disk", "disk"),
                ("f-other", "other"),
            ],
        ),
        (
            "roles",
            &[
                ("r-leader", "leader"),
                ("r-candidate", "candidate"),
                ("r-follower", "follower"),
                ("r-down", "down"),
                ("r-paused", "paused"),
            ],
        ),
        (
            "operations",
            &[
                ("o-ok", "ok"),
                ("o-failed", "failed"),
                ("o-unknown", "unknown (timeout, until give-up)"),
                ("bad", "not linearizable / blamed"),
            ],
        ),
    ];
    out.push_str("<div class=\"legend\">");
    for (group, items) in groups {
        let _ = write!(out, "<b>{group}:</b>");
        for (class, name) in items {
            let _ = write!(out, "<span><span class=\"sw {class}\"></span>{name}</span>");
        }
    }
    out.push_str(
        "<span>term: <code>t3</code> inside role bars; hover any bar for details</span></div>\n",
    );
}

fn keys(out: &mut String, data: &ReportData) {
    out.push_str("<h2>Keys</h2>\n");
    if data.keys.is_empty() {
        out.push_str("<p>No key was checked.</p>\n");
        return;
    }
    let by_id: BTreeMap<u64, &ReportOp> = data.ops.iter().map(|op| (op.id, op)).collect();
    out.push_str(
        "<table class=\"keys\"><thead><tr><th>key</th><th>verdict</th><th>ops</th>\
         <th>longest linearizable prefix</th><th>first op that cannot be linearized</th></tr>\
         </thead><tbody>\n",
    );
    for key in &data.keys {
        key_row(out, key, &by_id);
    }
    out.push_str("</tbody></table>\n");
}

/// Per key that is not linearizable: its minimal failing history on a timeline of its own,
/// beside the full one above.
fn minimal(out: &mut String, data: &ReportData) {
    for key in data.keys.iter().filter(|k| !k.minimal.is_empty()) {
        let _ = writeln!(
            out,
            "<h2>Minimal failing history: <code>{}</code></h2>\n<p>{} of the key's {} \
             operations are not linearizable on their own{}. The others were relaxed, which \
             only allows more orders: reads dropped, writes taken as maybe-happened (at any \
             time after their call, or never).</p>",
            esc(&key.key),
            key.minimal.len(),
            key.ops,
            if key.minimal_proven {
                "; removing any one of them makes the rest linearizable"
            } else {
                " (the search stopped before proving no single one can go)"
            }
        );
        let only = ReportData {
            ops: (data.ops.iter())
                .filter(|op| key.minimal.contains(&op.id))
                .cloned()
                .collect(),
            keys: Vec::new(),
            ..data.clone()
        };
        // Element ids stay unique on the page: the full timeline's bars own `op-N`.
        let mut plot = String::new();
        timeline::render(&mut plot, &only);
        out.push_str(&plot.replace("id=\"op-", "id=\"minimal-op-"));
        out.push_str("<ol class=\"prefix\">");
        for op in &only.ops {
            let _ = write!(out, "<li>{}</li>", esc(&describe_op(op)));
        }
        out.push_str("</ol>\n");
    }
}

fn verdict_class(verdict: &str) -> &'static str {
    if verdict == "linearizable" {
        "v-ok"
    } else if verdict.starts_with("NOT") {
        "v-bad"
    } else {
        "v-unknown"
    }
}

fn key_row(out: &mut String, key: &KeyVerdict, by_id: &BTreeMap<u64, &ReportOp>) {
    let _ = write!(
        out,
        "<tr><td><code>{}</code></td><td class=\"{}\">{}</td><td class=\"num\">{}</td><td>",
        esc(&key.key),
        verdict_class(&key.verdict),
        esc(&key.verdict),
        key.ops
    );
    let _ = write!(
        out,
        "<details><summary>{} ops</summary><ol class=\"prefix\">",
        key.longest_prefix.len()
    );
    for id in &key.longest_prefix {
        let _ = write!(out, "<li>{}</li>", op_ref(*id, by_id));
    }
    if let Some(id) = key.first_bad {
        let _ = write!(out, "<li class=\"bad\">{}</li>", op_ref(id, by_id));
    }
    out.push_str("</ol></details></td>");
    match key.first_bad {
        Some(id) => {
            let _ = writeln!(out, "<td class=\"badop\">{}</td></tr>", op_ref(id, by_id));
        }
        None => out.push_str("<td>&#x2014;</td></tr>\n"),
    }
}

/// `#id` linked to its bar, then client, node, label and result when the op is known.
fn op_ref(id: u64, by_id: &BTreeMap<u64, &ReportOp>) -> String {
    match by_id.get(&id) {
        Some(op) => format!(
            "<a href=\"#op-{id}\">#{id}</a> c{} n{} {} &#x2192; {}",
            op.client,
            op.node,
            esc(&op.label),
            esc(&op.result)
        ),
        None => format!("#{id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::sample;
    use super::*;

    #[test]
    fn html_has_svg_lanes_bad_op_and_legend() {
        let data = sample();
        let page = render_html(&data);
        let (html, minimal) = page.split_at(page.find("<h2>Minimal failing history").unwrap());
        // The minimal history's own timeline: its two ops, ids of their own.
        assert_eq!(minimal.matches("<rect id=\"minimal-op-").count(), 2);
        assert!(minimal.contains("2 of the key's 8 operations"));
        assert!(!minimal.contains("id=\"op-"));
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<svg"));
        for client in 1..=3 {
            let label = format!(">c{client}</text>");
            assert_eq!(
                html.matches(&label).count(),
                1,
                "one lane label for c{client}"
            );
        }
        assert!(html.contains("class=\"legend\""));
        assert!(html.contains("id=\"op-7\" class=\"op o-ok bad\""));
        assert!(html.contains("First bad operation: <a href=\"#op-7\">"));
        assert!(html.contains("<td class=\"badop\"><a href=\"#op-7\">#7</a>"));
        assert!(html.contains("crash n1"));
        assert!(html.contains(">n1</text>") && html.contains(">n2</text>"));
        assert_eq!(html.matches("<rect id=\"op-").count(), data.ops.len());
    }

    #[test]
    fn html_fetches_nothing() {
        let html = render_html(&sample());
        for needle in ["http://", "https://", "<script", "<link", "@import", "src="] {
            assert!(!html.contains(needle), "html contains {needle}");
        }
    }

    #[test]
    fn html_escapes_labels() {
        let html = render_html(&sample());
        assert!(html.contains("get /k1 &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
        assert!(html.contains("&amp; &quot;q&quot;"));
        assert_eq!(
            esc("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
    }

    #[test]
    fn html_renders_empty_and_passing_runs() {
        let mut data = sample();
        data.violation = None;
        data.ops.clear();
        data.keys.clear();
        data.node_spans.clear();
        data.faults.clear();
        data.end_us = 0;
        let html = render_html(&data);
        assert!(html.contains("the run passed"));
        assert!(html.contains("no faults injected"));
        assert!(html.contains("First bad operation: none"));
    }
}
