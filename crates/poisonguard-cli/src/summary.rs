//! The human summary printed on stdout after a scan.

use std::io::Write;

use anyhow::Result;
use poisonguard::{NoiseMatrix, Report};

use crate::args::ScanArgs;
use crate::view;

/// Classes listed per detector in the summary.
const TOP_CLASSES: usize = 5;

fn pct(part: usize, whole: usize) -> f64 {
    100.0 * part as f64 / whole.max(1) as f64
}

/// What the summary reads of the audited rows (a table in memory, or one audited in batches).
pub struct Audited<'a> {
    /// Rows audited.
    pub n_rows: usize,
    /// Feature columns.
    pub n_features: usize,
    /// Their labels.
    pub labels: Option<&'a poisonguard::Labels>,
    /// Their ground truth.
    pub truth: Option<&'a [bool]>,
    /// The reference table audited beside them (`--reference`), and what its rows got.
    pub reference: Option<(&'a std::path::Path, poisonguard::ReferenceOutcome)>,
}

impl<'a> Audited<'a> {
    /// The rows of a table read whole.
    pub fn of(table: &'a poisonguard_io::Table) -> Self {
        let data = table.dataset();
        Self {
            n_rows: data.n_samples(),
            n_features: data.n_features(),
            labels: data.labels(),
            truth: table.truth(),
            reference: None,
        }
    }
}

/// Prints rows / classes, flags per detector, the most suspicious classes, and with ground
/// truth the detection quality of every detector and of the combined suspicion.
pub fn print(
    out: &mut impl Write,
    args: &ScanArgs,
    model: Option<&std::path::Path>,
    rows: &Audited<'_>,
    report: &Report,
) -> Result<()> {
    let n = rows.n_rows;
    write!(out, "{}: {} rows, {} features", args.input.display(), n, rows.n_features)?;
    if let Some(labels) = rows.labels {
        write!(out, ", {} classes", labels.n_present_classes())?;
    }
    writeln!(out)?;
    if let Some(model) = model {
        writeln!(out, "scored against the model {} (no refit)", model.display())?;
    }
    writeln!(out, "verdict: {}", poisonguard::summary::headline(report))?;
    if let Some(line) = poisonguard::summary::trusted_line(report) {
        writeln!(out, "{line}")?;
    }
    if let Some((path, r)) = &rows.reference {
        writeln!(
            out,
            "reference: {}: {} vetted rows audited beside the table as trusted rows (the label \
             nulls of classes with at least 30 of them measured on them): {} flagged ({:.1}%), an \
             observed false-positive rate",
            path.display(),
            r.rows,
            r.flagged,
            pct(r.flagged, r.rows)
        )?;
    }
    if !report.threat_findings().is_empty() {
        writeln!(
            out,
            "by threat (each on its own detectors' evidence, false-discovery rate {}):",
            report.fdr()
        )?;
        for t in report.threat_findings() {
            writeln!(out, "  {}", poisonguard::summary::threat_line(t))?;
            if let Some(line) = poisonguard::summary::ranked_line(t) {
                writeln!(out, "    {line}")?;
            }
        }
    }

    writeln!(out, "\n{:<22} {:>12} {:>16}", "detector", "threshold", "flagged")?;
    for run in report.runs() {
        let k = run.detection.n_flagged();
        let flagged = format!("{k} ({:.1}%)", pct(k, n));
        writeln!(out, "{:<22} {:>12.4} {:>16}", run.id, run.detection.threshold(), flagged)?;
    }
    for f in report.failures() {
        writeln!(out, "{:<22} failed: {}", f.id, f.error)?;
    }
    for run in report.runs().iter().filter(|r| !r.skipped_classes.is_empty()) {
        let classes: Vec<String> = run.skipped_classes.iter().map(ToString::to_string).collect();
        writeln!(out, "{:<22} left unscored, too few rows: {}", run.id, classes.join(", "))?;
    }
    let abstained: Vec<&str> = report.abstained().iter().map(|id| id.as_str()).collect();
    if !abstained.is_empty() {
        writeln!(
            out,
            "no evidence on any row (every p-value 1), left out of the combination: {}",
            abstained.join(", ")
        )?;
    }
    let k = report.n_flagged();
    writeln!(
        out,
        "rows flagged: {k} ({:.1}%): Benjamini-Hochberg on the combined p-values at a false-discovery \
         rate of {}{}",
        pct(k, n),
        report.fdr(),
        report.p_cutoff().map_or(String::new(), |p| format!(" (combined p <= {p:.2e})"))
    )?;
    if let Some(e) = report.estimate() {
        writeln!(
            out,
            "estimated poisoned rows: {:.0} ({:.0}% interval {:.0} to {:.0})",
            e.rows,
            100.0 * e.level,
            e.low,
            e.high
        )?;
        for m in &e.method {
            writeln!(out, "  {m}")?;
        }
    }

    for run in report.runs().iter().filter(|r| !r.class_findings.is_empty()) {
        let findings = view::ranked_classes(run);
        writeln!(out, "\nmost suspicious classes ({}):", run.id)?;
        let stats: Vec<_> = findings[0].statistics().iter().map(|(s, _)| *s).collect();
        write!(out, "  {:<12} {:>7} {:>8}", "class", "rows", "flagged")?;
        for s in &stats {
            write!(out, " {s:>18}")?;
        }
        writeln!(out)?;
        let labels = rows.labels;
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
                write!(out, " {:>18.4}", f.statistic(*s).unwrap_or(f64::NAN))?;
            }
            writeln!(out)?;
        }
    }

    for run in report.runs() {
        if let Some(m) = &run.noise_matrix {
            print_noise_matrix(out, run.id.as_str(), m)?;
        }
    }
    if !report.source_findings().is_empty() {
        print_sources(out, report)?;
    }

    if let (Some(truth), Some(col)) = (rows.truth, &args.truth) {
        let (n_poison, k, quality) = view::quality(report, truth);
        writeln!(
            out,
            "\ndetection quality against {col:?} ({n_poison} poisoned rows; recall in the top {k}):"
        )?;
        writeln!(
            out,
            "  {:<22} {:>8} {:>14} {:>10}",
            "scores", "roc_auc", "avg_precision", "recall"
        )?;
        for q in quality {
            match q.metrics {
                Ok((auc, ap, rec)) => {
                    writeln!(out, "  {:<22} {auc:>8.4} {ap:>14.4} {rec:>10.4}", q.name)?
                }
                Err(e) => writeln!(out, "  {:<22} n/a: {e}", q.name)?,
            }
        }
    }
    if let Some(path) = &args.output {
        writeln!(out, "\nreport written to {}", path.display())?;
    }
    Ok(())
}

/// Rows of the noise matrix shown: the given labels with the most estimated errors.
const TOP_NOISE_ROWS: usize = 5;
/// Sources listed.
const TOP_SOURCES: usize = 10;
/// Adjusted p-value below which a source is called poisoned.
const SOURCE_ALPHA: f64 = 0.01;

/// The given labels with the largest estimated error counts and where their rows truly belong.
fn print_noise_matrix(out: &mut impl Write, id: &str, m: &NoiseMatrix) -> Result<()> {
    let k = m.labels().len();
    writeln!(
        out,
        "
estimated label noise ({id}): about {} rows carry a wrong label (label issues, not a count of \
         poisoned rows: where classes overlap naturally, the overlap counts here too)",
        m.n_mislabeled()
    )?;
    let mut given: Vec<usize> = (0..k).collect();
    given.sort_by(|&a, &b| m.noise_rate(b).total_cmp(&m.noise_rate(a)).then(a.cmp(&b)));
    for &g in given.iter().take(TOP_NOISE_ROWS).filter(|&&g| m.noise_rate(g) > 0.0) {
        let mut parts: Vec<(usize, usize)> =
            (0..k).filter(|&t| t != g && m.count(g, t) > 0).map(|t| (m.count(g, t), t)).collect();
        parts.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let likely: Vec<String> = parts
            .iter()
            .take(3)
            .map(|(c, t)| format!("{c} look like {}", m.labels()[*t]))
            .collect();
        writeln!(
            out,
            "  labelled {:<10} {:>5.1}% wrong: {}",
            m.labels()[g].to_string(),
            100.0 * m.noise_rate(g),
            likely.join(", ")
        )?;
    }
    Ok(())
}

/// Sources ranked by the test of their share of the rows the audit flags.
fn print_sources(out: &mut impl Write, report: &Report) -> Result<()> {
    let findings = report.source_findings();
    let named = findings.iter().filter(|f| f.p_adjusted < SOURCE_ALPHA).count();
    writeln!(
        out,
        "
sources ({} in all; {named} look poisoned at adjusted p < {SOURCE_ALPHA}):",
        findings.len()
    )?;
    writeln!(
        out,
        "  {:<16} {:>7} {:>8} {:>9} {:>9} {:>11}",
        "source", "rows", "flagged", "rate", "expected", "p_adjusted"
    )?;
    for f in findings.iter().take(TOP_SOURCES) {
        writeln!(
            out,
            "  {:<16} {:>7} {:>8} {:>8.1}% {:>9.1} {:>11.2e}",
            f.source,
            f.n_samples,
            f.n_flagged,
            100.0 * f.flag_rate(),
            f.expected,
            f.p_adjusted
        )?;
    }
    Ok(())
}
