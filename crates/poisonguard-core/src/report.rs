//! [`Report`]: the outcome of running several detectors on one dataset, as the facade's audit
//! builds it and `poisonguard-io` writes it.

use std::ops::Range;

use crate::dataset::{LabelValue, Labels};
use crate::detection::{Detection, DetectorId};
use crate::findings::{ClassFinding, NoiseMatrix, PoisonEstimate, SkippedClass, SourceFinding};
use crate::info::Family;

/// One detector's successful run.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorRun {
    /// Which detector.
    pub id: DetectorId,
    /// Its family of evidence (outlier detectors share one weight in the combined p-value).
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

impl DetectorRun {
    /// A run that has only its detection: no class findings, skipped classes, noise matrix,
    /// estimate or source tests (what scoring new rows against a fit gives; set the fields that
    /// apply).
    pub fn new(id: DetectorId, family: Family, detection: Detection) -> Self {
        Self {
            id,
            family,
            detection,
            class_findings: Vec::new(),
            skipped_classes: Vec::new(),
            noise_matrix: None,
            estimate: None,
            source_findings: Vec::new(),
        }
    }

    /// Whether the detector has no evidence on any row (every p-value is 1: its class gate
    /// declared no class attacked, it found no near-duplicate): it then abstains from the
    /// audit's combination.
    pub fn abstains(&self) -> bool {
        self.detection.p_values().iter().all(|&p| p >= 1.0)
    }
}

/// A detector that failed, with its error rendered (the others still ran).
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorFailure {
    /// Which detector.
    pub id: DetectorId,
    /// The error and its causes, rendered.
    pub error: String,
}

/// One threat's evidence in a report: the detectors that speak to it, the rows the
/// Benjamini-Hochberg procedure selects on their combined p-values alone (at the report's
/// false-discovery rate), and the classes those detectors declared attacked.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreatFinding {
    /// The threat.
    pub threat: crate::Threat,
    /// The detectors whose evidence speaks to it (those that ran and did not abstain).
    pub detectors: Vec<DetectorId>,
    /// The rows flagged on this threat's evidence, ascending.
    pub flagged: Vec<usize>,
    /// The labels of the classes its detectors declared attacked, sorted.
    pub declared_classes: Vec<String>,
    /// The rows this threat's evidence ranks first, with their combined p-values: at most
    /// [`THREAT_RANKED_ROWS`], every one with p < 1, by ascending p (ties by row).
    pub ranked: Vec<(usize, f64)>,
}

/// How many rows a [`ThreatFinding`] ranks.
pub const THREAT_RANKED_ROWS: usize = 5;

/// Per-row results of every detector plus the combined evidence: one combined p-value per row,
/// its displayed suspicion, and the flag the Benjamini-Hochberg procedure gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    runs: Vec<DetectorRun>,
    failures: Vec<DetectorFailure>,
    p_values: Vec<f64>,
    suspicion: Vec<f64>,
    flagged: Vec<bool>,
    fdr: f64,
    source_findings: Vec<SourceFinding>,
    estimate: Option<PoisonEstimate>,
    threats: Vec<ThreatFinding>,
    trusted: Vec<usize>,
}

impl Report {
    /// Assembles a report from one combined p-value per row (in [0, 1]; every run's detection
    /// has one score per row). The rows the Benjamini-Hochberg procedure selects at
    /// false-discovery rate `fdr` are the report's flagged rows; the suspicion of a row is
    /// [`crate::suspicion_of`] its p-value.
    ///
    /// # Panics
    /// If a run's detection length differs from `p_values`'s: the audit builds both from the
    /// same dataset, so this is a programming error, not bad input.
    pub fn new(
        runs: Vec<DetectorRun>,
        failures: Vec<DetectorFailure>,
        p_values: Vec<f64>,
        fdr: f64,
    ) -> Self {
        for r in &runs {
            assert_eq!(r.detection.scores().len(), p_values.len(), "detector {} row count", r.id);
        }
        let flagged = crate::evidence::benjamini_hochberg(&p_values, fdr);
        let suspicion = p_values.iter().map(|&p| crate::evidence::suspicion_of(p)).collect();
        Self {
            runs,
            failures,
            p_values,
            suspicion,
            flagged,
            fdr,
            source_findings: Vec::new(),
            estimate: None,
            threats: Vec::new(),
            trusted: Vec::new(),
        }
    }

    /// Records the rows the audit was told are clean (ascending): they are audited as every
    /// row is, so the share of them flagged is an observed false-positive rate
    /// ([`Report::trusted_flagged`]).
    pub fn with_trusted(mut self, rows: Vec<usize>) -> Self {
        self.trusted = rows;
        self
    }

    /// The rows the audit was told are clean (empty when none were given).
    pub fn trusted(&self) -> &[usize] {
        &self.trusted
    }

    /// How many of the trusted rows are flagged: clean rows flagged, drawn from the clean rows
    /// at random when the trusted rows are a random sample of them.
    pub fn trusted_flagged(&self) -> usize {
        self.trusted.iter().filter(|&&i| self.flagged[i]).count()
    }

    /// Attaches the findings by threat.
    pub fn with_threat_findings(mut self, threats: Vec<ThreatFinding>) -> Self {
        self.threats = threats;
        self
    }

    /// The findings by threat, in [`Threat::ALL`](crate::Threat::ALL) order: one per threat that
    /// some detector of the audit speaks to (empty when the audit did not attach them).
    pub fn threat_findings(&self) -> &[ThreatFinding] {
        &self.threats
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

    /// The detectors that abstained from the combination ([`DetectorRun::abstains`]).
    pub fn abstained(&self) -> Vec<DetectorId> {
        self.runs.iter().filter(|r| r.abstains()).map(|r| r.id).collect()
    }

    /// The labels (as printed) of the classes some detector declared attacked
    /// ([`ClassFinding::attacked`](crate::ClassFinding::attacked)), sorted, once each.
    pub fn declared_classes(&self) -> Vec<String> {
        declared_by(self.runs.iter())
    }

    /// Detectors that failed.
    pub fn failures(&self) -> &[DetectorFailure] {
        &self.failures
    }

    /// Combined p-value of every row: how surprising the row's evidence, from every detector
    /// together, is if the row is clean.
    pub fn p_values(&self) -> &[f64] {
        &self.p_values
    }

    /// Combined suspicion of every row, in [0, 1), [`crate::suspicion_of`] its p-value;
    /// higher = more suspicious.
    pub fn suspicion(&self) -> &[f64] {
        &self.suspicion
    }

    /// The false-discovery rate at which rows are flagged.
    pub fn fdr(&self) -> f64 {
        self.fdr
    }

    /// The largest combined p-value among the flagged rows (`None` when none is flagged): the
    /// Benjamini-Hochberg cut-off.
    pub fn p_cutoff(&self) -> Option<f64> {
        self.p_values
            .iter()
            .zip(&self.flagged)
            .filter(|(_, f)| **f)
            .map(|(p, _)| *p)
            .reduce(f64::max)
    }

    /// Whether row `i` is flagged: among the flagged rows, the expected share of clean ones is
    /// at most [`Report::fdr`].
    ///
    /// # Panics
    /// If `i` is out of bounds.
    pub fn is_flagged(&self, i: usize) -> bool {
        self.flagged[i]
    }

    /// The combined flag of every row.
    pub fn flagged(&self) -> Vec<bool> {
        self.flagged.clone()
    }

    /// Number of flagged rows.
    pub fn n_flagged(&self) -> usize {
        self.flagged.iter().filter(|&&f| f).count()
    }

    /// The reasons of row `i`, one `"<detector>: <sentence>"` per detector that flags it, joined
    /// by `"; "`. A row can carry a detector's reason without being flagged by the report (its
    /// p-value may not survive the false-discovery control); a row the report flags although no
    /// detector's own threshold does is explained by its combined evidence, the two smallest
    /// p-values: `"combined evidence: <detector> p = ..., <detector> p = ..."`. Empty for a row
    /// neither flags.
    pub fn reasons_of_row(&self, i: usize) -> String {
        let parts: Vec<String> = self
            .runs
            .iter()
            .filter_map(|r| r.detection.reason(i).map(|why| format!("{}: {why}", r.id)))
            .collect();
        if parts.is_empty() && self.flagged[i] {
            let mut evidence: Vec<(f64, DetectorId)> = self
                .runs
                .iter()
                .map(|r| (r.detection.p_values()[i], r.id))
                .filter(|(p, _)| *p < 1.0)
                .collect();
            evidence.sort_by(|a, b| a.0.total_cmp(&b.0));
            let shown: Vec<String> =
                evidence.iter().take(2).map(|(p, id)| format!("{id} p = {p:.1e}")).collect();
            return format!("combined evidence: {}", shown.join(", "));
        }
        parts.join("; ")
    }
}

/// The labels (as printed) of the classes the `runs` declared attacked, sorted, once each.
pub fn declared_by<'a>(runs: impl Iterator<Item = &'a DetectorRun>) -> Vec<String> {
    let mut labels: Vec<String> = runs
        .flat_map(|r| r.class_findings.iter())
        .filter(|f| f.attacked() == Some(true))
        .map(|f| f.label().to_string())
        .collect();
    labels.sort_unstable();
    labels.dedup();
    labels
}

/// One column of the per-row report ([`Report::columns`]), typed.
#[derive(Debug, Clone, PartialEq)]
pub enum ReportColumn {
    /// Integers: `row`, and `label` when every class is an integer.
    Int(Vec<i64>),
    /// Scores, p-values and the suspicion.
    Float(Vec<f64>),
    /// Flags.
    Bool(Vec<bool>),
    /// Ids, text labels and reasons.
    Text(Vec<String>),
}

impl Report {
    /// The per-row report of rows `rows`, one named column at a time, in the order every writer
    /// keeps (files, the Python package's table): `row`, `id` (with `ids`), `label` (with
    /// `labels`: integers when every class is one, else text), then per detector run
    /// `<detector>_score`, `<detector>_flagged` and `<detector>_p` (its p-value), then
    /// `suspicion`, `p_value` (combined), `flagged`, `threats` (the threats whose own evidence
    /// flags the row, [`Report::threat_findings`]) and `reasons`.
    ///
    /// # Panics
    /// When `rows` reaches past the report's rows, or `ids` / `labels` hold fewer rows.
    pub fn columns(
        &self,
        ids: Option<&[String]>,
        labels: Option<&Labels>,
        rows: Range<usize>,
    ) -> Vec<(String, ReportColumn)> {
        let floats = |v: &[f64]| ReportColumn::Float(v[rows.clone()].to_vec());
        let mut cols = vec![(
            "row".to_string(),
            ReportColumn::Int((rows.start as i64..rows.end as i64).collect()),
        )];
        if let Some(ids) = ids {
            cols.push(("id".into(), ReportColumn::Text(ids[rows.clone()].to_vec())));
        }
        if let Some(labels) = labels {
            // one type for the column, whichever rows are asked: the classes' values decide
            let values = if labels.map().values().iter().all(|v| matches!(v, LabelValue::Int(_))) {
                let int = |i: usize| match labels.value_of_row(i) {
                    LabelValue::Int(k) => *k,
                    LabelValue::Str(_) => 0,
                };
                ReportColumn::Int(rows.clone().map(int).collect())
            } else {
                ReportColumn::Text(
                    rows.clone().map(|i| labels.value_of_row(i).to_string()).collect(),
                )
            };
            cols.push(("label".into(), values));
        }
        for run in self.runs() {
            let d = &run.detection;
            cols.push((format!("{}_score", run.id), floats(d.scores())));
            cols.push((
                format!("{}_flagged", run.id),
                ReportColumn::Bool(rows.clone().map(|i| d.is_flagged(i)).collect()),
            ));
            cols.push((format!("{}_p", run.id), floats(d.p_values())));
        }
        cols.push(("suspicion".into(), floats(self.suspicion())));
        cols.push(("p_value".into(), floats(self.p_values())));
        cols.push((
            "flagged".into(),
            ReportColumn::Bool(rows.clone().map(|i| self.is_flagged(i)).collect()),
        ));
        cols.push(("threats".into(), ReportColumn::Text(self.threats_of_rows(rows.clone()))));
        cols.push((
            "reasons".into(),
            ReportColumn::Text(rows.map(|i| self.reasons_of_row(i)).collect()),
        ));
        cols
    }

    /// For each row of `rows`, the threats whose own evidence flags it ([`ThreatFinding`]),
    /// `; `-separated in [`crate::Threat::ALL`]'s order; empty when none does.
    fn threats_of_rows(&self, rows: std::ops::Range<usize>) -> Vec<String> {
        let mut out = vec![String::new(); rows.len()];
        for t in &self.threats {
            let from = t.flagged.partition_point(|&i| i < rows.start);
            for &i in t.flagged[from..].iter().take_while(|&&i| i < rows.end) {
                let cell = &mut out[i - rows.start];
                if !cell.is_empty() {
                    cell.push_str("; ");
                }
                cell.push_str(t.threat.as_str());
            }
        }
        out
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
    fn a_row_flagged_by_combined_evidence_says_so() {
        let t = crate::ThresholdRule::Fixed(1.0).fit(&[0.0]).unwrap();
        let det = Detection::with_threshold(vec![0.0, 0.0, 0.0], t, |_, s| crate::Reason::Score {
            score: s,
            threshold: 1.0,
        })
        .unwrap()
        .with_p_values(vec![1e-6, 0.5, 1.0]);
        let run = DetectorRun::new(DetectorId::new("d"), Family::Outlier, det);
        let report = Report::new(vec![run], vec![], vec![1e-6, 0.5, 1.0], 0.1);
        assert!(report.is_flagged(0) && !report.is_flagged(1));
        assert_eq!(report.reasons_of_row(0), "combined evidence: d p = 1.0e-6");
        assert_eq!(report.reasons_of_row(1), "");
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
