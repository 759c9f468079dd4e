//! [`Report`]: the outcome of running several detectors on one dataset, as the facade's audit
//! builds it and `poisonguard-io` writes it.

use crate::detection::{Detection, DetectorId};
use crate::detector::ClassFinding;
use crate::findings::{NoiseMatrix, SourceFinding};

/// One detector's successful run.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorRun {
    /// Which detector.
    pub id: DetectorId,
    /// Its scores, threshold, flags and reasons on the audited rows.
    pub detection: Detection,
    /// Its class-level findings.
    pub class_findings: Vec<ClassFinding>,
    /// Its estimated noise matrix, if it estimates one.
    pub noise_matrix: Option<NoiseMatrix>,
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

/// Per-row results of every detector plus the combined suspicion.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    runs: Vec<DetectorRun>,
    failures: Vec<DetectorFailure>,
    suspicion: Vec<f64>,
    source_findings: Vec<SourceFinding>,
}

impl Report {
    /// Assembles a report. `suspicion` holds one value in [0, 1] per row; every run's detection
    /// has one score per row.
    ///
    /// # Panics
    /// If a run's detection length differs from `suspicion`'s: the audit builds both from the
    /// same dataset, so this is a programming error, not bad input.
    pub fn new(
        runs: Vec<DetectorRun>,
        failures: Vec<DetectorFailure>,
        suspicion: Vec<f64>,
    ) -> Self {
        for r in &runs {
            assert_eq!(r.detection.scores().len(), suspicion.len(), "detector {} row count", r.id);
        }
        Self { runs, failures, suspicion, source_findings: Vec::new() }
    }

    /// Attaches the per-source test of the rows flagged by any detector.
    pub fn with_source_findings(mut self, findings: Vec<SourceFinding>) -> Self {
        self.source_findings = findings;
        self
    }

    /// Per-source test of the rows flagged by any detector (empty without a source column),
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

    /// Whether row `i` is flagged by at least one detector.
    ///
    /// # Panics
    /// If `i` is out of bounds.
    pub fn is_flagged(&self, i: usize) -> bool {
        self.runs.iter().any(|r| r.detection.is_flagged(i))
    }

    /// Number of rows flagged by at least one detector.
    pub fn n_flagged(&self) -> usize {
        (0..self.n_samples()).filter(|&i| self.is_flagged(i)).count()
    }

    /// The reasons of row `i`, one `"<detector>: <sentence>"` per flagging detector, joined by
    /// `"; "`; empty when the row is not flagged.
    pub fn reasons_of_row(&self, i: usize) -> String {
        let parts: Vec<String> = self
            .runs
            .iter()
            .filter_map(|r| r.detection.reason(i).map(|why| format!("{}: {why}", r.id)))
            .collect();
        parts.join("; ")
    }
}
