//! `--html PATH`: one self-contained HTML file (inline CSS and SVG, no script, no network) with
//! the summary, the classes that look attacked, a score histogram per detector and a 2-D
//! principal-component view of the most suspicious class with its flagged rows highlighted.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use poisonguard::{Dataset, Report};

/// Bins of each histogram.
const BINS: usize = 30;
/// Rows drawn in the scatter plot at most (seeded-free: every `step`-th row, flagged rows always).
const MAX_POINTS: usize = 4_000;

fn esc(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Writes the report page.
pub fn write(path: &Path, input: &Path, data: &Dataset, report: &Report) -> Result<()> {
    let page = render(input, data, report);
    std::fs::write(path, page).with_context(|| format!("{}: cannot write", path.display()))
}

/// The page as a string.
pub fn render(input: &Path, data: &Dataset, report: &Report) -> String {
    let n = data.n_samples();
    let mut h = String::new();
    let title = format!("poisonguard report: {}", input.display());
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>body{{font-family:sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}th{{background:#eee}}\
         .attacked{{color:#b00;font-weight:bold}}figure{{display:inline-block;margin:0 1em 1em 0}}\
         figcaption{{font-size:0.9em}}</style></head><body>\n<h1>{}</h1>\n",
        esc(&title),
        esc(&title)
    );
    let classes = data.labels().map_or(0, |l| l.n_present_classes());
    let _ = writeln!(
        h,
        "<p>{n} rows, {} features{}; <b>{} rows ({:.1}%) flagged</b> (false-discovery rate {}).</p>",
        data.n_features(),
        if classes > 0 { format!(", {classes} classes") } else { String::new() },
        report.n_flagged(),
        100.0 * report.n_flagged() as f64 / n.max(1) as f64,
        report.fdr()
    );
    if let Some(e) = report.estimate() {
        let _ = writeln!(
            h,
            "<p>Estimated poisoned rows: <b>{:.0}</b> ({:.0}% interval {:.0} to {:.0}).</p>\n<ul>{}</ul>",
            e.rows,
            100.0 * e.level,
            e.low,
            e.high,
            e.method
                .iter()
                .map(|m| format!("<li>{}</li>", esc(&m.to_string())))
                .collect::<String>()
        );
    }

    h.push_str(
        "<h2>Detectors</h2>\n<table><tr><th>detector</th><th>threshold</th><th>flagged</th></tr>\n",
    );
    for run in report.runs() {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{:.4}</td><td>{}</td></tr>",
            esc(run.id.as_str()),
            run.detection.threshold(),
            run.detection.n_flagged()
        );
    }
    for f in report.failures() {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td colspan=\"2\">failed: {}</td></tr>",
            esc(f.id.as_str()),
            esc(&f.error)
        );
    }
    h.push_str("</table>\n");

    // classes: the top three of every detector with class findings; attacked ones in red
    h.push_str("<h2>Classes</h2>\n");
    let mut any = false;
    for run in report.runs().iter().filter(|r| !r.class_findings.is_empty()) {
        any = true;
        let findings = crate::view::ranked_classes(run);
        let _ = writeln!(h, "<p>{}: ", esc(run.id.as_str()));
        for f in findings.iter().take(3) {
            let attacked = f.attacked() == Some(true);
            let _ = write!(
                h,
                "<span class=\"{}\">class {} (score {:.3}{})</span> ",
                if attacked { "attacked" } else { "" },
                esc(&f.label().to_string()),
                f.score(),
                if attacked { ", declared attacked" } else { "" }
            );
        }
        h.push_str("</p>\n");
    }
    if !any {
        h.push_str("<p>No detector with class-level findings ran.</p>\n");
    }
    if !report.source_findings().is_empty() {
        h.push_str("<h2>Sources</h2>\n<table><tr><th>source</th><th>rows</th><th>flagged</th><th>expected</th><th>adjusted p</th></tr>\n");
        for f in report.source_findings().iter().take(10) {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.2e}</td></tr>",
                esc(&f.source),
                f.n_samples,
                f.n_flagged,
                f.expected,
                f.p_adjusted
            );
        }
        h.push_str("</table>\n");
    }

    h.push_str("<h2>Score distributions</h2>\n");
    for run in report.runs() {
        h.push_str(&histogram(run.id.as_str(), run.detection.scores(), run.detection.threshold()));
    }

    if let Some((label, rows)) = most_suspicious_class(data, report) {
        h.push_str("<h2>Most suspicious class</h2>\n");
        h.push_str(&scatter(data, report, &label, &rows));
    }
    h.push_str("</body></html>\n");
    h
}

/// An SVG histogram of `scores` with the threshold marked.
fn histogram(id: &str, scores: &[f64], threshold: f64) -> String {
    let (w, ht) = (360.0, 160.0);
    let lo = scores.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max).max(threshold.min(f64::MAX));
    let span = if hi > lo { hi - lo } else { 1.0 };
    let mut counts = [0usize; BINS];
    for &s in scores {
        let b = (((s - lo) / span) * BINS as f64).floor() as usize;
        counts[b.min(BINS - 1)] += 1;
    }
    let max = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
    let bar = w / BINS as f64;
    let mut svg = format!(
        "<figure><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{}\" role=\"img\">",
        ht + 20.0
    );
    for (b, &c) in counts.iter().enumerate() {
        // log scale keeps the tail visible next to a tall bulk
        let hgt = if c == 0 { 0.0 } else { ht * (1.0 + c as f64).ln() / (1.0 + max).ln() };
        let _ = write!(
            svg,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{hgt:.1}\" fill=\"#4a78b0\"><title>{c} rows</title></rect>",
            b as f64 * bar,
            ht - hgt,
            bar - 1.0
        );
    }
    if threshold.is_finite() && threshold >= lo && threshold <= hi {
        let x = (threshold - lo) / span * w;
        let _ = write!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"0\" x2=\"{x:.1}\" y2=\"{ht}\" stroke=\"#b00\" stroke-width=\"2\"/>"
        );
    }
    let _ = write!(
        svg,
        "<text x=\"0\" y=\"{}\" font-size=\"11\">{lo:.3}</text><text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{hi:.3}</text></svg>",
        ht + 15.0,
        w,
        ht + 15.0
    );
    let _ = writeln!(
        svg,
        "<figcaption>{} (log counts; red: threshold {threshold:.3})</figcaption></figure>",
        esc(id)
    );
    svg
}

/// The class with the most flagged rows (ties: the lower class id) and its rows.
fn most_suspicious_class(data: &Dataset, report: &Report) -> Option<(String, Vec<usize>)> {
    let labels = data.labels()?;
    let by_class = labels.rows_by_class();
    let (c, rows) = by_class.iter().enumerate().filter(|(_, r)| r.len() >= 3).max_by(|a, b| {
        let fa = a.1.iter().filter(|&&i| report.is_flagged(i)).count();
        let fb = b.1.iter().filter(|&&i| report.is_flagged(i)).count();
        fa.cmp(&fb).then(b.0.cmp(&a.0))
    })?;
    Some((labels.map().values()[c].to_string(), rows.clone()))
}

/// Top two principal directions of `rows` (power iteration with deflation on the covariance).
fn top_two(data: &Dataset, rows: &[usize]) -> (Vec<f64>, [Vec<f64>; 2]) {
    let x = data.features();
    let d = x.ncols();
    let m = rows.len() as f64;
    let mut mean = vec![0.0f64; d];
    for &i in rows {
        for (a, &v) in mean.iter_mut().zip(x.row(i)) {
            *a += f64::from(v) / m;
        }
    }
    let apply = |v: &[f64]| -> Vec<f64> {
        // C v = X^T (X v) / m on the centred rows
        let mut out = vec![0.0f64; d];
        for &i in rows {
            let t: f64 = x
                .row(i)
                .iter()
                .zip(&mean)
                .zip(v)
                .map(|((&a, mu), b)| (f64::from(a) - mu) * b)
                .sum();
            for ((o, &a), mu) in out.iter_mut().zip(x.row(i)).zip(&mean) {
                *o += t * (f64::from(a) - mu) / m;
            }
        }
        out
    };
    let mut dirs: [Vec<f64>; 2] = [vec![0.0; d], vec![0.0; d]];
    for k in 0..2 {
        let mut v: Vec<f64> = (0..d).map(|j| 1.0 + ((j * 7 + k * 3) % 5) as f64).collect();
        for _ in 0..100 {
            let mut w = apply(&v);
            if k == 1 {
                let p: f64 = w.iter().zip(&dirs[0]).map(|(a, b)| a * b).sum();
                w.iter_mut().zip(&dirs[0]).for_each(|(a, b)| *a -= p * b);
            }
            let norm = w.iter().map(|a| a * a).sum::<f64>().sqrt();
            if norm == 0.0 {
                break;
            }
            v = w.iter().map(|a| a / norm).collect();
        }
        dirs[k] = v;
    }
    (mean, dirs)
}

/// An SVG scatter of the class's rows on its top two principal directions.
fn scatter(data: &Dataset, report: &Report, label: &str, rows: &[usize]) -> String {
    let (mean, dirs) = top_two(data, rows);
    let x = data.features();
    let step = rows.len().div_ceil(MAX_POINTS).max(1);
    let points: Vec<(usize, f64, f64)> = rows
        .iter()
        .enumerate()
        .filter(|(k, i)| k % step == 0 || report.is_flagged(**i))
        .map(|(_, &i)| {
            let proj = |dir: &[f64]| -> f64 {
                x.row(i)
                    .iter()
                    .zip(&mean)
                    .zip(dir)
                    .map(|((&a, mu), b)| (f64::from(a) - mu) * b)
                    .sum()
            };
            (i, proj(&dirs[0]), proj(&dirs[1]))
        })
        .collect();
    let (w, ht) = (480.0, 360.0);
    let bound = |f: &dyn Fn(&(usize, f64, f64)) -> f64| {
        let lo = points.iter().map(f).fold(f64::INFINITY, f64::min);
        let hi = points.iter().map(f).fold(f64::NEG_INFINITY, f64::max);
        (lo, if hi > lo { hi - lo } else { 1.0 })
    };
    let (x0, xs) = bound(&|p| p.1);
    let (y0, ys) = bound(&|p| p.2);
    let mut svg = format!(
        "<figure><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{ht}\" role=\"img\">\
         <rect width=\"{w}\" height=\"{ht}\" fill=\"#fafafa\" stroke=\"#ccc\"/>"
    );
    // clean rows first, flagged rows drawn on top
    for flagged in [false, true] {
        for &(i, a, b) in points.iter().filter(|p| report.is_flagged(p.0) == flagged) {
            let cx = 10.0 + (a - x0) / xs * (w - 20.0);
            let cy = ht - 10.0 - (b - y0) / ys * (ht - 20.0);
            let (fill, r) = if flagged { ("#c00", 3.5) } else { ("#7a9cc6", 2.0) };
            let _ = write!(
                svg,
                "<circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"{r}\" fill=\"{fill}\"><title>row {i}</title></circle>"
            );
        }
    }
    svg.push_str("</svg>");
    let _ = writeln!(
        svg,
        "<figcaption>class {}: {} rows on its top two principal directions; red = flagged</figcaption></figure>",
        esc(label),
        rows.len()
    );
    svg
}
