//! The human summary printed on stdout after a scan.

use std::io::Write;

use anyhow::Result;
use poisonguard::{Report, metrics};
use poisonguard_io::Table;

use crate::args::ScanArgs;

/// Classes listed per detector in the summary.
const TOP_CLASSES: usize = 5;

fn pct(part: usize, whole: usize) -> f64 {
    100.0 * part as f64 / whole.max(1) as f64
}

/// Prints rows / classes, flags per detector, the most suspicious classes, and with ground
/// truth the detection quality of every detector and of the combined suspicion.
pub fn print(out: &mut impl Write, args: &ScanArgs, table: &Table, report: &Report) -> Result<()> {
    let data = table.dataset();
    let n = data.n_samples();
    write!(out, "{}: {} rows, {} features", args.input.display(), n, data.n_features())?;
    if let Some(labels) = data.labels() {
        write!(out, ", {} classes", labels.n_present_classes())?;
    }
    writeln!(out)?;

    writeln!(out, "\n{:<22} {:>12} {:>16}", "detector", "threshold", "flagged")?;
    for run in report.runs() {
        let k = run.detection.n_flagged();
        let flagged = format!("{k} ({:.1}%)", pct(k, n));
        writeln!(out, "{:<22} {:>12.4} {:>16}", run.id, run.detection.threshold(), flagged)?;
    }
    for f in report.failures() {
        writeln!(out, "{:<22} failed: {}", f.id, f.error)?;
    }
    let k = report.n_flagged();
    writeln!(out, "rows flagged by any detector: {k} ({:.1}%)", pct(k, n))?;

    for run in report.runs().iter().filter(|r| !r.class_findings.is_empty()) {
        let mut findings: Vec<_> = run.class_findings.iter().collect();
        findings.sort_by(|a, b| b.score().total_cmp(&a.score()));
        writeln!(out, "\nmost suspicious classes ({}):", run.id)?;
        let stats: Vec<&str> = findings[0].statistics().iter().map(|(name, _)| *name).collect();
        write!(out, "  {:<12} {:>7} {:>8}", "class", "rows", "flagged")?;
        for s in &stats {
            write!(out, " {s:>18}")?;
        }
        writeln!(out)?;
        let labels = data.labels();
        for f in findings.iter().take(TOP_CLASSES) {
            let flagged = labels.map_or(0, |l| {
                l.ids()
                    .iter()
                    .enumerate()
                    .filter(|(i, c)| **c == f.class() && run.detection.is_flagged(*i))
                    .count()
            });
            write!(out, "  {:<12} {:>7} {:>8}", f.label().to_string(), f.n_samples(), flagged)?;
            for s in &stats {
                write!(out, " {:>18.4}", f.statistic(s).unwrap_or(f64::NAN))?;
            }
            writeln!(out)?;
        }
    }

    if let (Some(truth), Some(col)) = (table.truth(), &args.truth) {
        let n_poison = truth.iter().filter(|&&t| t).count();
        let k = (1.5 * n_poison as f64).round() as usize;
        writeln!(
            out,
            "\ndetection quality against {col:?} ({n_poison} poisoned rows; recall in the top {k}):"
        )?;
        writeln!(
            out,
            "  {:<22} {:>8} {:>14} {:>10}",
            "scores", "roc_auc", "avg_precision", "recall"
        )?;
        let mut rows: Vec<(String, &[f64])> =
            report.runs().iter().map(|r| (r.id.to_string(), r.detection.scores())).collect();
        rows.push(("suspicion".into(), report.suspicion()));
        for (name, scores) in rows {
            let auc = metrics::roc_auc(scores, truth);
            let ap = metrics::average_precision(scores, truth);
            let rec = metrics::recall_at_k(scores, truth, k);
            match (auc, ap, rec) {
                (Ok(auc), Ok(ap), Ok(rec)) => {
                    writeln!(out, "  {name:<22} {auc:>8.4} {ap:>14.4} {rec:>10.4}")?
                }
                (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => {
                    writeln!(out, "  {name:<22} n/a: {e}")?
                }
            }
        }
    }
    if let Some(path) = &args.output {
        writeln!(out, "\nreport written to {}", path.display())?;
    }
    Ok(())
}
