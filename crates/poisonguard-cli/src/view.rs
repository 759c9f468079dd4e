//! What the three renderings of a scan (the stdout summary, the JSON summary, the HTML report)
//! read off a report in the same way: computed here once.

use poisonguard::{ClassFinding, DetectorRun, Report, ThreatFinding, metrics};

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

/// Confidence level of [`true_discoveries`].
const TRUE_DISCOVERY_LEVEL: f64 = 0.95;

/// A lower bound, at confidence [`TRUE_DISCOVERY_LEVEL`], on how many of the `flagged` rows that
/// Benjamini-Hochberg selected at `fdr` are not clean: with `a = 1 - level`, every threshold `t`
/// holds at most `c (1 + n t)` clean rows at once, with `c = ln(1/a) / ln(1 + ln(1/a))` (2.16 at
/// 95%; Katsevich and Ramdas, *Simultaneous high-probability bounds on the false discovery
/// proportion*, Annals of Statistics 2020, for independent valid p-values), and
/// Benjamini-Hochberg's threshold over `n` rows is `t = fdr R / n`. One or two flagged rows of a
/// clean table prove nothing (bound 0); 20 flagged rows at 0.1, at least 14.
pub fn true_discoveries(flagged: usize, fdr: f64) -> usize {
    let l = (1.0 / (1.0 - TRUE_DISCOVERY_LEVEL)).ln();
    let c = l / (1.0 + l).ln();
    let false_max = (c * (1.0 + fdr * flagged as f64)).floor() as usize;
    flagged.saturating_sub(false_max)
}

/// The one-line verdict every summary (text, JSON, HTML) leads with: "no evidence of poisoning"
/// when no row passes the false-discovery control, no detector declares a class attacked and
/// no estimate's lower end is above 0; "no finding" when no class is declared and the rows
/// flagged, if any, could all be clean ([`true_discoveries`] is 0): a count of poisoned rows
/// beyond a detector's null alone (a near-duplicate pair under two labels, a label law's excess)
/// is reported beside the verdict, not as one; otherwise "evidence of poisoning" and what the
/// evidence is.
pub fn headline(report: &Report) -> String {
    let declared = report.declared_classes();
    let flagged = report.n_flagged();
    let low = report.estimate().map_or(0.0, |e| e.low);
    let poisoned = true_discoveries(flagged, report.fdr());
    if flagged == 0 && declared.is_empty() && low <= 0.0 {
        return format!(
            "no evidence of poisoning: no row passes the false-discovery control at {}, no class \
             is declared attacked, no detector counts poisoned rows beyond its null",
            report.fdr()
        );
    }
    if poisoned == 0 && declared.is_empty() {
        let rows = if flagged == 0 {
            format!("no row passes the false-discovery control at {}", report.fdr())
        } else {
            format!(
                "{flagged} rows flagged at a false-discovery rate of {}, each worth a look, but as \
                 many could be clean",
                report.fdr()
            )
        };
        let counted = if low > 0.0 {
            "; a detector counts rows beyond its null (see its estimate)"
        } else {
            ""
        };
        return format!("no finding: {rows}; no class is declared attacked{counted}");
    }
    let mut parts = vec![format!(
        "{flagged} rows flagged at a false-discovery rate of {}, at least {poisoned} of them not \
         clean ({:.0}% confidence)",
        report.fdr(),
        100.0 * TRUE_DISCOVERY_LEVEL
    )];
    if !declared.is_empty() {
        parts.push(format!("classes declared attacked: {}", declared.join(", ")));
    }
    if let Some(e) = report.estimate().filter(|e| e.low > 0.0) {
        parts.push(format!(
            "about {:.0} poisoned rows ({:.0}% interval {:.0} to {:.0})",
            e.rows,
            100.0 * e.level,
            e.low,
            e.high
        ));
    }
    format!("evidence of poisoning: {}", parts.join("; "))
}

/// One line per threat of the report: its name, the rows flagged on its own evidence at the
/// report's false-discovery rate, the detectors that gave it, and the classes they declared
/// attacked, e.g. `label manipulation: 25 rows flagged (knn_label, confident_learning)`.
pub fn threat_line(t: &ThreatFinding) -> String {
    let ids: Vec<&str> = t.detectors.iter().map(|d| d.as_str()).collect();
    let mut line =
        format!("{}: {} rows flagged ({})", t.threat.as_str(), t.flagged.len(), ids.join(", "));
    if !t.declared_classes.is_empty() {
        line.push_str(&format!("; classes declared attacked: {}", t.declared_classes.join(", ")));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::true_discoveries;

    #[test]
    fn a_lone_flagged_row_proves_nothing_and_twenty_prove_fourteen() {
        assert_eq!(true_discoveries(0, 0.1), 0);
        assert_eq!(true_discoveries(1, 0.1), 0);
        assert_eq!(true_discoveries(2, 0.1), 0);
        assert_eq!(true_discoveries(3, 0.1), 1);
        assert_eq!(true_discoveries(20, 0.1), 14);
        assert!(true_discoveries(1000, 0.1) >= 780);
    }
}
