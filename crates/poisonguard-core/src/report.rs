//! [`Report`]: the outcome of running several detectors on one dataset, as the facade's audit
//! builds it and `poisonguard-io` writes it.

use crate::detection::{Detection, DetectorId};
use crate::findings::{ClassFinding, NoiseMatrix, PoisonEstimate, SkippedClass, SourceFinding};
use crate::info::Family;

/// One detector's successful run.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorRun {
    /// Which detector.
    pub id: DetectorId,
    /// Its family of evidence (outlier detectors vote together in the combined suspicion).
    pub family: Family,
    /// Its scores, threshold, flags and reasons on the audited rows.
    pub detection: Detection,
    /// Its class-level findings.
    pub class_findings: Vec<ClassFinding>,
    /// Classes it left unscored for having too few rows.
    pub skipped_classes: Vec<SkippedClass>,
    /// Its estimated noise matrix, if it estimates one.
    pub noise_matrix: Option<NoiseMatrix>,
    /// Its estimate of the number of poisoned rows, if it counts.
    pub estimate: Option<PoisonEstimate>,
    /// Its flags aggregated by data source (empty without a source column), ascending by
    /// adjusted p-value.
    pub source_findings: Vec<SourceFinding>,
}

/// A detector that failed, with its error rendered (the others still ran).
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorFailure {
    /// Which detector.
    pub id: DetectorId,
    /// The error and its causes, rendered.
    pub error: String,
}

/// Per-row results of every detector plus the combined suspicion and the combined flag.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    runs: Vec<DetectorRun>,
    failures: Vec<DetectorFailure>,
    suspicion: Vec<f64>,
    suspicion_threshold: f64,
    source_findings: Vec<SourceFinding>,
    estimate: Option<PoisonEstimate>,
}

impl Report {
    /// Assembles a report. `suspicion` holds one value in [0, 1] per row; every run's detection
    /// has one score per row. Rows whose suspicion is strictly above `suspicion_threshold` are
    /// the report's flagged rows.
    ///
    /// # Panics
    /// If a run's detection length differs from `suspicion`'s: the audit builds both from the
    /// same dataset, so this is a programming error, not bad input.
    pub fn new(
        runs: Vec<DetectorRun>,
        failures: Vec<DetectorFailure>,
        suspicion: Vec<f64>,
        suspicion_threshold: f64,
    ) -> Self {
        for r in &runs {
            assert_eq!(r.detection.scores().len(), suspicion.len(), "detector {} row count", r.id);
        }
        Self {
            runs,
            failures,
            suspicion,
            suspicion_threshold,
            source_findings: Vec::new(),
            estimate: None,
        }
    }

    /// Attaches the per-source test of the report's flagged rows.
    pub fn with_source_findings(mut self, findings: Vec<SourceFinding>) -> Self {
        self.source_findings = findings;
        self
    }

    /// Attaches the dataset-level estimate of the number of poisoned rows.
    pub fn with_estimate(mut self, estimate: Option<PoisonEstimate>) -> Self {
        self.estimate = estimate;
        self
    }

    /// The dataset-level estimate of the number of poisoned rows, when the detectors that ran
    /// can count (see the audit's documentation).
    pub fn estimate(&self) -> Option<&PoisonEstimate> {
        self.estimate.as_ref()
    }

    /// Per-source test of the report's flagged rows (empty without a source column),
    /// ascending by adjusted p-value.
    pub fn source_findings(&self) -> &[SourceFinding] {
        &self.source_findings
    }

    /// Number of rows.
    pub fn n_samples(&self) -> usize {
        self.suspicion.len()
    }

    /// Successful runs, in the order the detectors were requested.
    pub fn runs(&self) -> &[DetectorRun] {
        &self.runs
    }

    /// The run of one detector.
    pub fn run(&self, id: DetectorId) -> Option<&DetectorRun> {
        self.runs.iter().find(|r| r.id == id)
    }

    /// Detectors that failed.
    pub fn failures(&self) -> &[DetectorFailure] {
        &self.failures
    }

    /// Combined suspicion of every row, in [0, 1]; higher = more suspicious.
    pub fn suspicion(&self) -> &[f64] {
        &self.suspicion
    }

    /// The automatic threshold on the suspicion: rows strictly above it are flagged.
    pub fn suspicion_threshold(&self) -> f64 {
        self.suspicion_threshold
    }

    /// Whether row `i` is flagged: its suspicion is above [`Report::suspicion_threshold`].
    ///
    /// # Panics
    /// If `i` is out of bounds.
    pub fn is_flagged(&self, i: usize) -> bool {
        self.suspicion[i] > self.suspicion_threshold
    }

    /// The combined flag of every row.
    pub fn flagged(&self) -> Vec<bool> {
        (0..self.n_samples()).map(|i| self.is_flagged(i)).collect()
    }

    /// Number of flagged rows.
    pub fn n_flagged(&self) -> usize {
        (0..self.n_samples()).filter(|&i| self.is_flagged(i)).count()
    }

    /// The reasons of row `i`, one `"<detector>: <sentence>"` per detector that flags it, joined
    /// by `"; "`; empty when no detector flags it. A row can carry a detector's reason without
    /// being flagged by the report (the combined rule may ask for more evidence).
    pub fn reasons_of_row(&self, i: usize) -> String {
        let parts: Vec<String> = self
            .runs
            .iter()
            .filter_map(|r| r.detection.reason(i).map(|why| format!("{}: {why}", r.id)))
            .collect();
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn est(rows: f64, low: f64, high: f64) -> PoisonEstimate {
        let method = vec![crate::EstimateMethod::new(DetectorId::new("d"), "counts")];
        PoisonEstimate { rows, low, high, level: 0.95, method }
    }

    #[test]
    fn estimates_combine_without_double_counting() {
        let e = PoisonEstimate::combine(&[est(20.0, 15.0, 30.0), est(5.0, 1.0, 12.0)], 100);
        let e = e.unwrap();
        assert_eq!((e.rows, e.low, e.high), (20.0, 15.0, 42.0));
        assert_eq!(e.method[0].to_string(), "d: 20 [15, 30]: counts");
        // the upper end never exceeds the rows
        let e = PoisonEstimate::combine(&[est(60.0, 50.0, 80.0), est(50.0, 40.0, 70.0)], 100);
        assert_eq!(e.unwrap().high, 100.0);
        assert!(PoisonEstimate::combine(&[], 100).is_none());
    }
}
