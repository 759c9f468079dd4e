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

/// Confidence level of every detector's interval of the number of poisoned rows.
pub const ESTIMATE_LEVEL: f64 = 0.95;

/// The dataset-level estimate of how many rows are poisoned, with an interval.
#[derive(Debug, Clone, PartialEq)]
pub struct PoisonEstimate {
    /// Point estimate of the number of poisoned rows.
    pub rows: f64,
    /// Lower end of the interval.
    pub low: f64,
    /// Upper end of the interval.
    pub high: f64,
    /// Confidence level of the interval (e.g. 0.95).
    pub level: f64,
    /// How the estimate was made, one `"<detector>: <what it counts>"` per contribution (with
    /// that detector's own estimate and interval once combined).
    pub method: Vec<String>,
}

impl PoisonEstimate {
    /// Rows flagged beyond the false flags a threshold with per-row false-flag rate `alpha`
    /// makes among `at_risk` clean rows: false flags are `Binomial(at_risk, alpha)`, so the
    /// estimate is `flagged - alpha * at_risk` and the interval subtracts that law's upper and
    /// lower `(1 - level) / 2` quantiles, all clipped at 0. Counts the poison the detector
    /// sees, not the poison it misses.
    ///
    /// ```
    /// use poisonguard_core::PoisonEstimate;
    /// let e = PoisonEstimate::excess_over_null(38, 1800, 0.01, 0.95, "spectral".into());
    /// assert!((e.rows - 20.0).abs() < 1e-9);
    /// assert!(e.low < e.rows && e.rows < e.high);
    /// let clean = PoisonEstimate::excess_over_null(8, 1800, 0.01, 0.95, "spectral".into());
    /// assert_eq!((clean.rows, clean.low), (0.0, 0.0));
    /// ```
    pub fn excess_over_null(
        flagged: usize,
        at_risk: usize,
        alpha: f64,
        level: f64,
        method: String,
    ) -> Self {
        use statrs::distribution::{Binomial, DiscreteCDF};
        let f = flagged as f64;
        let tail = (1.0 - level) / 2.0;
        let (lo_q, hi_q) = match Binomial::new(alpha.clamp(0.0, 1.0), at_risk as u64) {
            Ok(b) => (b.inverse_cdf(tail) as f64, b.inverse_cdf(1.0 - tail) as f64),
            Err(_) => (0.0, 0.0),
        };
        Self {
            rows: (f - alpha * at_risk as f64).max(0.0),
            low: (f - hi_q).max(0.0),
            high: (f - lo_q).max(0.0),
            level,
            method: vec![method],
        }
    }

    /// Combines the estimates of several detectors. Each detector counts the poison it can see:
    /// different attacks add up, the same poison seen by two detectors must not. So the point
    /// estimate and the lower end are the largest of the detectors' (at least that much poison
    /// is there), the upper end the sum of the upper ends (capped at `n_rows`). `None` when no
    /// detector counted.
    pub fn combine(estimates: &[PoisonEstimate], n_rows: usize) -> Option<Self> {
        let first = estimates.first()?;
        let max = |f: fn(&PoisonEstimate) -> f64| estimates.iter().map(f).fold(0.0, f64::max);
        let high: f64 = estimates.iter().map(|e| e.high).sum();
        Some(Self {
            rows: max(|e| e.rows),
            low: max(|e| e.low),
            high: high.min(n_rows as f64).max(max(|e| e.rows)),
            level: first.level,
            method: estimates
                .iter()
                .flat_map(|e| {
                    let counts = format!("{:.0} [{:.0}, {:.0}]", e.rows, e.low, e.high);
                    e.method.iter().map(move |m| match m.split_once(": ") {
                        Some((who, how)) => format!("{who}: {counts}: {how}"),
                        None => format!("{counts}: {m}"),
                    })
                })
                .collect(),
        })
    }
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
        PoisonEstimate { rows, low, high, level: 0.95, method: vec!["d: counts".into()] }
    }

    #[test]
    fn estimates_combine_without_double_counting() {
        let e = PoisonEstimate::combine(&[est(20.0, 15.0, 30.0), est(5.0, 1.0, 12.0)], 100);
        let e = e.unwrap();
        assert_eq!((e.rows, e.low, e.high), (20.0, 15.0, 42.0));
        assert_eq!(e.method[0], "d: 20 [15, 30]: counts");
        // the upper end never exceeds the rows
        let e = PoisonEstimate::combine(&[est(60.0, 50.0, 80.0), est(50.0, 40.0, 70.0)], 100);
        assert_eq!(e.unwrap().high, 100.0);
        assert!(PoisonEstimate::combine(&[], 100).is_none());
    }
}
