//! Statistics, the Kolmogorov–Smirnov distance, and the report files: `trials.csv`,
//! `README.md`, `fig16-top.svg`, `fig16-bottom.svg`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// Ongaro's measured times per curve label (ms, ascending), from the CSV in
/// `sim/data/raft-paper-fig16/`.
pub fn read_ongaro(text: &str) -> Result<BTreeMap<String, Vec<f64>>, String> {
    let mut curves: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let [label, _, ms] = fields[..] else {
            return Err(format!("line {}: expected 3 fields", i + 1));
        };
        let ms: f64 = ms
            .parse()
            .map_err(|e| format!("line {}: bad time {ms:?}: {e}", i + 1))?;
        curves.entry(label.to_string()).or_default().push(ms);
    }
    for v in curves.values_mut() {
        v.sort_by(f64::total_cmp);
    }
    Ok(curves)
}

/// The two-sample Kolmogorov–Smirnov statistic: the largest distance between the two
/// empirical CDFs. Both samples sorted ascending.
pub fn ks_statistic(a: &[f64], b: &[f64]) -> f64 {
    let (mut i, mut j, mut d) = (0, 0, 0.0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        let fa = i as f64 / a.len() as f64;
        let fb = j as f64 / b.len() as f64;
        d = d.max((fa - fb).abs());
    }
    d
}

/// The KS statistic that two samples of `n` and `m` trials drawn from one distribution exceed
/// only 5% of the time (the asymptotic two-sample bound, c(0.05) = 1.358): a smaller KS is
/// within sampling noise.
pub fn ks_bound(n: usize, m: usize) -> f64 {
    if n == 0 || m == 0 {
        return 1.0;
    }
    let (n, m) = (n as f64, m as f64);
    1.358 * ((n + m) / (n * m)).sqrt()
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn stats_row(sorted: &[f64]) -> String {
    let mean = sorted.iter().sum::<f64>() / sorted.len() as f64;
    format!(
        "{} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0}",
        sorted.len(),
        sorted[0],
        quantile(sorted, 0.1),
        quantile(sorted, 0.5),
        mean,
        quantile(sorted, 0.9),
        quantile(sorted, 0.99),
        sorted[sorted.len() - 1]
    )
}

/// One curve's results.
pub struct CurveResult {
    /// `150-155`.
    pub label: String,
    /// Our trials, ms, ascending.
    pub ours: Vec<f64>,
}

const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

/// An SVG CDF plot: ours solid, Ongaro's dashed; `log` for a log time axis over
/// `[lo, hi]` ms.
fn svg_cdf(
    curves: &[(&CurveResult, Option<&Vec<f64>>)],
    (lo, hi): (f64, f64),
    log: bool,
) -> String {
    let (w, h, left, bottom) = (720.0, 420.0, 60.0, 50.0);
    let (pw, ph) = (w - left - 20.0, h - bottom - 20.0);
    let x = |ms: f64| {
        let t = if log {
            (ms.max(lo).ln() - lo.ln()) / (hi.ln() - lo.ln())
        } else {
            (ms - lo) / (hi - lo)
        };
        left + t.clamp(0.0, 1.0) * pw
    };
    let y = |p: f64| 20.0 + (1.0 - p) * ph;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>\n"
    );
    let ticks: Vec<f64> = if log {
        vec![100.0, 1000.0, 10000.0, 100000.0]
    } else {
        (0..=6).map(|i| i as f64 * 100.0).collect()
    };
    for t in ticks.iter().filter(|&&t| t >= lo && t <= hi) {
        let _ = writeln!(
            s,
            "<line x1=\"{0:.1}\" y1=\"20\" x2=\"{0:.1}\" y2=\"{1:.1}\" stroke=\"#ddd\"/><text x=\"{0:.1}\" y=\"{2:.1}\" text-anchor=\"middle\">{3}</text>",
            x(*t),
            y(0.0),
            y(0.0) + 16.0,
            t
        );
    }
    for p in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" y1=\"{0:.1}\" x2=\"{1:.1}\" y2=\"{0:.1}\" stroke=\"#ddd\"/><text x=\"{2}\" y=\"{3:.1}\" text-anchor=\"end\">{4:.0}%</text>",
            y(p),
            left + pw,
            left - 6.0,
            y(p) + 4.0,
            p * 100.0
        );
    }
    for (k, (curve, ongaro)) in curves.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let mut line = |data: &[f64], dash: &str| {
            let pts: Vec<String> = data
                .iter()
                .enumerate()
                .map(|(i, &ms)| {
                    format!(
                        "{:.1},{:.1}",
                        x(ms),
                        y((i as f64 + 0.5) / data.len() as f64)
                    )
                })
                .collect();
            let _ = writeln!(
                s,
                "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\"{dash} points=\"{}\"/>",
                pts.join(" ")
            );
        };
        line(&curve.ours, "");
        if let Some(o) = ongaro {
            line(o, " stroke-dasharray=\"5,3\"");
        }
        let ly = 34.0 + k as f64 * 16.0;
        let _ = writeln!(
            s,
            "<line x1=\"{0:.1}\" y1=\"{ly}\" x2=\"{1:.1}\" y2=\"{ly}\" stroke=\"{color}\" stroke-width=\"2\"/><text x=\"{2:.1}\" y=\"{3}\">{4} ms</text>",
            left + pw - 150.0,
            left + pw - 125.0,
            left + pw - 120.0,
            ly + 4.0,
            curve.label
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{0:.1}\" y=\"{1:.1}\" text-anchor=\"middle\">time without leader (ms){2}; solid: Floe, dashed: Ongaro 2014</text>",
        left + pw / 2.0,
        h - 8.0,
        if log { ", log scale" } else { "" }
    );
    s.push_str("<text x=\"14\" y=\"230\" transform=\"rotate(-90 14 230)\" text-anchor=\"middle\">cumulative percent</text>\n</svg>\n");
    s
}

/// Writes `trials.csv`, the two SVGs and `README.md` into `dir`; returns the README text.
pub fn write_report(
    dir: &Path,
    results: &[CurveResult],
    ongaro: &BTreeMap<String, Vec<f64>>,
    preamble: &str,
) -> std::io::Result<String> {
    std::fs::create_dir_all(dir)?;
    let mut csv = String::from("timeouts,trial,ms\n");
    for r in results {
        for (i, ms) in r.ours.iter().enumerate() {
            let _ = writeln!(csv, "{},{i},{ms}", r.label);
        }
    }
    std::fs::write(dir.join("trials.csv"), csv)?;
    let pick = |labels: &[&str]| -> Vec<(&CurveResult, Option<&Vec<f64>>)> {
        results
            .iter()
            .filter(|r| labels.contains(&r.label.as_str()))
            .map(|r| (r, ongaro.get(&r.label)))
            .collect()
    };
    let top = pick(&[
        "150-150", "150-151", "150-155", "150-175", "150-200", "150-300",
    ]);
    let bottom = pick(&["12-24", "25-50", "50-100", "100-200"]);
    std::fs::write(
        dir.join("fig16-top.svg"),
        svg_cdf(&top, (100.0, 100_000.0), true),
    )?;
    std::fs::write(
        dir.join("fig16-bottom.svg"),
        svg_cdf(&bottom, (0.0, 600.0), false),
    )?;
    let mut md = String::from(preamble);
    md.push_str("\n| timeouts | source | n | min | p10 | median | mean | p90 | p99 | max | KS | KS 5% bound |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in results {
        let ks = ongaro.get(&r.label).map(|o| ks_statistic(&r.ours, o));
        let ks = ks.map_or("-".into(), |k| format!("{k:.3}"));
        let bound = ongaro.get(&r.label).map_or("-".into(), |o| {
            format!("{:.3}", ks_bound(r.ours.len(), o.len()))
        });
        let _ = writeln!(
            md,
            "| {} | Floe | {} | {ks} | {bound} |",
            r.label,
            stats_row(&r.ours)
        );
        if let Some(o) = ongaro.get(&r.label) {
            let _ = writeln!(md, "| {} | Ongaro | {} | | |", r.label, stats_row(o));
        }
    }
    std::fs::write(dir.join("README.md"), &md)?;
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ks_of_identical_samples_is_zero_and_of_disjoint_ones_is_one() {
        let a = [1.0, 2.0, 3.0];
        assert_eq!(ks_statistic(&a, &a), 0.0);
        assert_eq!(ks_statistic(&a, &[10.0, 11.0]), 1.0);
        // F_a(2) = 2/3, F_b(2) = 1/3 at the largest gap.
        let d = ks_statistic(&[1.0, 2.0, 3.0], &[1.5, 2.5, 3.5]);
        assert!((d - 1.0 / 3.0).abs() < 1e-12, "{d}");
    }

    #[test]
    fn ks_bound_is_the_textbook_value() {
        assert!((ks_bound(100, 100) - 0.192).abs() < 0.001);
        assert!((ks_bound(1000, 1000) - 0.0607).abs() < 0.001);
        assert_eq!(ks_bound(0, 10), 1.0);
    }

    #[test]
    fn ongaro_csv_is_read_by_curve() {
        let text = "Follower Timeouts, Cumulative Percent, Time to elect Leader\n12-24,0.5,20.5\n12-24,0.1,15.0\n";
        let c = read_ongaro(text).expect("parses");
        assert_eq!(c["12-24"], vec![15.0, 20.5]);
        assert!(read_ongaro("h\n12-24,x").is_err());
    }
}
