//! What the three renderings of a scan (the stdout summary, the JSON summary, the HTML report)
//! read off a report in the same way and only the command line shows (class rankings, the
//! detection quality against ground truth): computed here once. The verdict, the threat lines
//! and the summary document are the library's (`poisonguard::summary`), shared with Python.

use poisonguard::{ClassFinding, DetectorRun, Report, metrics};

/// A run's class findings, most suspicious first (by the finding's score).
pub fn ranked_classes(run: &DetectorRun) -> Vec<&ClassFinding> {
    let mut findings: Vec<&ClassFinding> = run.class_findings.iter().collect();
    findings.sort_by(|a, b| b.score().total_cmp(&a.score()));
    findings
}

/// The detection quality of one score column against the ground truth.
pub struct Quality {
    /// The detector id, or `suspicion` for the audit's combined score.
    pub name: String,
    /// ROC-AUC, average precision and recall among the top 1.5x the poisoned rows, or why they
    /// cannot be computed.
    pub metrics: Result<(f64, f64, f64), String>,
}

/// Poisoned rows in `truth`, the number of top rows recall is read at (1.5x them), and the
/// quality of every detector's scores and of the suspicion.
pub fn quality(report: &Report, truth: &[bool]) -> (usize, usize, Vec<Quality>) {
    let n_poison = truth.iter().filter(|&&t| t).count();
    let k = (1.5 * n_poison as f64).round() as usize;
    let mut columns: Vec<(String, &[f64])> =
        report.runs().iter().map(|r| (r.id.to_string(), r.detection.scores())).collect();
    columns.push(("suspicion".into(), report.suspicion()));
    let rows = columns
        .into_iter()
        .map(|(name, scores)| {
            let m = metrics::roc_auc(scores, truth).and_then(|auc| {
                let ap = metrics::average_precision(scores, truth)?;
                Ok((auc, ap, metrics::recall_at_k(scores, truth, k)?))
            });
            Quality { name, metrics: m.map_err(|e| e.to_string()) }
        })
        .collect();
    (n_poison, k, rows)
}
