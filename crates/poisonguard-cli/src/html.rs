//! `--html PATH`: one self-contained HTML file (inline CSS and SVG, no script, no network) with
//! the summary, the classes that look attacked, a score histogram per detector and a 2-D
//! principal-component view of the most suspicious class with its flagged rows highlighted.
//! A table audited in batches gets the same page: the rows the view draws are read back from
//! the input in one more pass.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use ndarray::{Array2, Axis};
use poisonguard::{Dataset, Labels, Report, RowSource};

/// Bins of each histogram.
const BINS: usize = 30;
/// Rows of the most suspicious class drawn in the scatter plot at most, and flagged rows drawn
/// on top of them at most (every `step`-th of each, no seed needed).
const MAX_POINTS: usize = 4_000;

fn esc(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// What the page says of the table: its size and labels.
struct Shape<'a> {
    n_rows: usize,
    n_features: usize,
    labels: Option<&'a Labels>,
}

/// Writes the report page of a table held in memory.
pub fn write(path: &Path, input: &Path, data: &Dataset, report: &Report) -> Result<()> {
    let shape =
        Shape { n_rows: data.n_samples(), n_features: data.n_features(), labels: data.labels() };
    let view = drawn(shape.labels, report).map(|(label, drawn)| {
        let rows = data.features().select(Axis(0), &drawn.rows);
        (label, drawn, rows)
    });
    save(path, &render(input, &shape, report, view))
}

/// Writes the report page of a table audited in batches from `source` (`report` covers all of
/// its rows); the rows the scatter draws are read from `source`, `batch_rows` at a time.
pub fn write_batched(
    path: &Path,
    input: &Path,
    source: &mut dyn RowSource,
    batch_rows: usize,
    report: &Report,
) -> Result<()> {
    // the labels alone (not every key: ids, sources, probabilities) outlive the reads below
    let labels = source.keys().labels().cloned();
    let shape = Shape {
        n_rows: source.keys().n_rows(),
        n_features: source.n_features(),
        labels: labels.as_ref(),
    };
    let view = match drawn(shape.labels, report) {
        Some((label, drawn)) => {
            let rows = read_rows(source, &drawn.rows, batch_rows)
                .with_context(|| format!("{}: reading the rows to draw", input.display()))?;
            Some((label, drawn, rows))
        }
        None => None,
    };
    save(path, &render(input, &shape, report, view))
}

fn save(path: &Path, page: &str) -> Result<()> {
    std::fs::write(path, page).with_context(|| format!("{}: cannot write", path.display()))
}

/// The features of `rows` (ascending) from `source`, one range of at most `batch_rows` rows
/// read per stretch of the table that holds some of them.
fn read_rows(source: &mut dyn RowSource, rows: &[usize], batch_rows: usize) -> Result<Array2<f32>> {
    let d = source.n_features();
    let mut out = Array2::zeros((rows.len(), d));
    let mut next = 0;
    while next < rows.len() {
        let start = rows[next];
        let end = (start + batch_rows.max(1)).min(source.keys().n_rows());
        let batch = source.read(start..end).map_err(|e| anyhow::anyhow!(e))?;
        while next < rows.len() && rows[next] < end {
            out.row_mut(next).assign(&batch.row(rows[next] - start));
            next += 1;
        }
    }
    Ok(out)
}

/// The page as a string; `view`: the most suspicious class's label, the rows it draws and
/// their features.
fn render(
    input: &Path,
    shape: &Shape<'_>,
    report: &Report,
    view: Option<(String, Drawn, Array2<f32>)>,
) -> String {
    let n = shape.n_rows;
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
    let classes = shape.labels.map_or(0, Labels::n_present_classes);
    let _ = writeln!(
        h,
        "<p class=\"verdict\"><b>{}</b></p>",
        esc(&poisonguard::summary::headline(report))
    );
    if let Some(line) = poisonguard::summary::trusted_line(report) {
        let _ = writeln!(h, "<p>{}</p>", esc(&line));
    }
    if !report.threat_findings().is_empty() {
        let _ = writeln!(h, "<ul class=\"threats\">");
        for t in report.threat_findings() {
            let ranked = poisonguard::summary::ranked_line(t)
                .map_or(String::new(), |l| format!(" <small>({})</small>", esc(&l)));
            let _ = writeln!(h, "<li>{}{ranked}</li>", esc(&poisonguard::summary::threat_line(t)));
        }
        let _ = writeln!(h, "</ul>");
    }
    let _ = writeln!(
        h,
        "<p>{n} rows, {} features{}; <b>{} rows ({:.1}%) flagged</b> (false-discovery rate {}).</p>",
        shape.n_features,
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

    h.push_str(&flagged_table(report, shape.labels));

    h.push_str("<h2>Score distributions</h2>\n");
    for run in report.runs() {
        h.push_str(&histogram(run.id.as_str(), run.detection.scores(), run.detection.threshold()));
    }

    if let Some((label, drawn, x)) = view {
        h.push_str("<h2>Most suspicious class</h2>\n");
        h.push_str(&scatter(report, &label, &drawn, &x));
    }
    h.push_str("</body></html>\n");
    h
}

/// Flagged rows the page lists, smallest combined p-value first.
const FLAGGED_ROWS_SHOWN: usize = 200;

/// The table of flagged rows: row, label, combined p-value and every detector's reason, the
/// [`FLAGGED_ROWS_SHOWN`] with the smallest combined p-values (the per-row report has them all).
fn flagged_table(report: &Report, labels: Option<&Labels>) -> String {
    let mut rows: Vec<usize> = (0..report.n_samples()).filter(|&i| report.is_flagged(i)).collect();
    let p = report.p_values();
    rows.sort_by(|&a, &b| p[a].total_cmp(&p[b]).then(a.cmp(&b)));
    let mut h = String::from("<h2>Flagged rows</h2>\n");
    if rows.is_empty() {
        h.push_str("<p>No row passes the false-discovery control.</p>\n");
        return h;
    }
    if rows.len() > FLAGGED_ROWS_SHOWN {
        let _ = writeln!(
            h,
            "<p>The {FLAGGED_ROWS_SHOWN} of {} flagged rows with the smallest combined p-values; \
             the per-row report (<code>--output</code>) lists them all.</p>",
            rows.len()
        );
    }
    h.push_str("<table><tr><th>row</th><th>label</th><th>combined p</th><th>reasons</th></tr>\n");
    for &i in rows.iter().take(FLAGGED_ROWS_SHOWN) {
        let label = labels.map_or(String::new(), |l| l.value_of_row(i).to_string());
        let _ = writeln!(
            h,
            "<tr class=\"flagged\"><td>{i}</td><td>{}</td><td>{:.2e}</td>\
             <td style=\"text-align:left\">{}</td></tr>",
            esc(&label),
            p[i],
            esc(&report.reasons_of_row(i))
        );
    }
    h.push_str("</table>\n");
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

/// The rows of the most suspicious class that the scatter draws, ascending: every `step`-th
/// row of the class (the sample its principal directions are computed on; all of them up to
/// [`MAX_POINTS`]) and, drawn on top, every `step`-th of its flagged rows.
struct Drawn {
    /// Rows in the class.
    class_rows: usize,
    rows: Vec<usize>,
    /// Whether `rows[k]` is in the sample the directions come from.
    sampled: Vec<bool>,
}

/// The class with the most flagged rows (ties: the lower class id; classes of at least three
/// rows) and the rows drawn of it.
fn drawn(labels: Option<&Labels>, report: &Report) -> Option<(String, Drawn)> {
    let labels = labels?;
    let by_class = labels.rows_by_class();
    let (c, rows) = by_class.iter().enumerate().filter(|(_, r)| r.len() >= 3).max_by(|a, b| {
        let fa = a.1.iter().filter(|&&i| report.is_flagged(i)).count();
        let fb = b.1.iter().filter(|&&i| report.is_flagged(i)).count();
        fa.cmp(&fb).then(b.0.cmp(&a.0))
    })?;
    let every = |n: usize| n.div_ceil(MAX_POINTS).max(1);
    let step = every(rows.len());
    let flagged: Vec<usize> = rows.iter().copied().filter(|&i| report.is_flagged(i)).collect();
    let flag_step = every(flagged.len());
    let mut picked: Vec<(usize, bool)> = rows
        .iter()
        .step_by(step)
        .map(|&i| (i, true))
        .chain(flagged.iter().step_by(flag_step).map(|&i| (i, false)))
        .collect();
    // a flagged row also in the sample once, as sampled
    picked.sort_unstable_by_key(|&(i, sampled)| (i, !sampled));
    picked.dedup_by_key(|p| p.0);
    let drawn = Drawn {
        class_rows: rows.len(),
        rows: picked.iter().map(|p| p.0).collect(),
        sampled: picked.iter().map(|p| p.1).collect(),
    };
    Some((labels.map().values()[c].to_string(), drawn))
}

/// Mean and top two principal directions of the rows of `x` where `sampled` (power iteration
/// with deflation on their covariance).
fn top_two(x: &Array2<f32>, sampled: &[bool]) -> (Vec<f64>, [Vec<f64>; 2]) {
    let d = x.ncols();
    let rows: Vec<usize> = (0..x.nrows()).filter(|&r| sampled[r]).collect();
    let m = rows.len() as f64;
    let mut mean = vec![0.0f64; d];
    for &i in &rows {
        for (a, &v) in mean.iter_mut().zip(x.row(i)) {
            *a += f64::from(v) / m;
        }
    }
    let apply = |v: &[f64]| -> Vec<f64> {
        // C v = X^T (X v) / m on the centred rows
        let mut out = vec![0.0f64; d];
        for &i in &rows {
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

/// An SVG scatter of the drawn rows of the class (features `x`, one row each) on its top two
/// principal directions.
fn scatter(report: &Report, label: &str, drawn: &Drawn, x: &Array2<f32>) -> String {
    let (mean, dirs) = top_two(x, &drawn.sampled);
    let points: Vec<(usize, f64, f64)> = drawn
        .rows
        .iter()
        .enumerate()
        .map(|(r, &i)| {
            let proj = |dir: &[f64]| -> f64 {
                x.row(r)
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
        drawn.class_rows
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use poisonguard::{Audit, DetectorOptions, InMemoryRows, LabelValue};

    #[test]
    fn a_table_read_back_in_batches_draws_the_page_held_in_memory() {
        // two classes, class 1 with a shifted group that the audit flags
        let x = Array2::from_shape_fn((300, 5), |(i, j)| {
            // hashed noise in [0, 10), and 20 rows of class 1 shifted far along every feature
            let base = ((i * 2_654_435_761 + j * 40_503) % 1000) as f32 / 100.0;
            if i % 2 == 1 && i < 40 { base + 60.0 } else { base }
        });
        let y: Vec<LabelValue> = (0..300).map(|i| LabelValue::Int((i % 2) as i64)).collect();
        let data = Dataset::new(x).unwrap().with_labels(Labels::from_values(&y)).unwrap();
        let report = Audit::for_dataset(&data, &DetectorOptions::default()).run(&data).unwrap();
        assert!(report.n_flagged() > 0);
        let dir = tempfile::tempdir().unwrap();
        let (memory, batched) = (dir.path().join("m.html"), dir.path().join("b.html"));
        let input = Path::new("t.parquet");
        write(&memory, input, &data, &report).unwrap();
        // batches of 7 rows: the drawn rows come from many reads
        write_batched(&batched, input, &mut InMemoryRows::new(&data), 7, &report).unwrap();
        let page = std::fs::read_to_string(&memory).unwrap();
        assert_eq!(page, std::fs::read_to_string(&batched).unwrap());
        assert!(page.contains("class 1: 150 rows"), "{page}");
    }

    #[test]
    fn rows_are_read_across_batches_in_order() {
        let x = Array2::from_shape_fn((50, 3), |(i, j)| (i * 10 + j) as f32);
        let data = Dataset::new(x.clone()).unwrap();
        let rows = [0, 6, 7, 8, 20, 49];
        for batch in [1, 4, 7, 100] {
            let got = read_rows(&mut InMemoryRows::new(&data), &rows, batch).unwrap();
            for (k, &i) in rows.iter().enumerate() {
                assert_eq!(got.row(k), x.row(i), "batch {batch}, row {i}");
            }
        }
    }
}
