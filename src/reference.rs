//! Auditing a table against a vetted reference table in the same feature space
//! ([`Audit::run_with_reference`]): the reference's rows are audited beside the table's as
//! trusted rows, so the detectors that read trusted rows measure their nulls on them, and the
//! report covers the table's rows alone.

use ndarray::{Axis, concatenate};
use poisonguard_core::{
    Dataset, DetectionRows, DetectorRun, LabelValue, Labels, PoisonEstimate, Report,
};

use crate::AuditEvent;
use crate::combine::{combine_rows, source_findings_of};
use crate::error::AuditError;
use crate::{Audit, FittedAudit};

/// The rows a reference of `reference_rows` rows takes in the table
/// [`Audit::run_with_reference`] audits: after the `data_rows` rows of the data. Give them to
/// the detectors as trusted rows ([`DetectorOptions::trusted`](crate::DetectorOptions::trusted))
/// when building the audit.
pub fn reference_rows(data_rows: usize, reference_rows: usize) -> std::ops::Range<usize> {
    data_rows..data_rows + reference_rows
}

/// What the reference's own rows got in a reference audit.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceOutcome {
    /// Rows of the reference.
    pub rows: usize,
    /// Of them, the rows the audit flagged (every one is a false positive if the reference is
    /// clean: an observed false-positive rate).
    pub flagged: usize,
}

/// `data`'s rows followed by `reference`'s, with their labels (both or neither), ids and
/// sources (a reference row without one gets `reference:<row>` and `reference`).
fn stack(data: &Dataset, reference: &Dataset) -> Result<Dataset, AuditError> {
    let unfit = |why: &str| AuditError::Reference(why.to_string());
    if reference.n_features() != data.n_features() {
        return Err(AuditError::Reference(format!(
            "it has {} features, the audited table {}",
            reference.n_features(),
            data.n_features()
        )));
    }
    if data.pred_probs().is_some() {
        return Err(unfit("predicted probabilities cannot be given with a reference table"));
    }
    let features = concatenate(Axis(0), &[data.features(), reference.features()])
        .map_err(|e| AuditError::Reference(e.to_string()))?;
    let mut stacked = Dataset::new(features).map_err(AuditError::Data)?;
    if let Some(names) = data.feature_names() {
        stacked = stacked.with_feature_names(names.to_vec()).map_err(AuditError::Data)?;
    }
    match (data.labels(), reference.labels()) {
        (Some(own), Some(theirs)) => {
            let values: Vec<LabelValue> = (0..data.n_samples())
                .map(|i| own.value_of_row(i).clone())
                .chain((0..reference.n_samples()).map(|i| theirs.value_of_row(i).clone()))
                .collect();
            stacked =
                stacked.with_labels(Labels::from_values(&values)).map_err(AuditError::Data)?;
        }
        (None, None) => {}
        (Some(_), None) => {
            return Err(unfit("it has no labels"));
        }
        (None, Some(_)) => {
            return Err(unfit("it has labels and the audited table does not"));
        }
    }
    let column =
        |own: Option<&[String]>, theirs: Option<&[String]>, fill: &dyn Fn(usize) -> String| {
            own.map(|own| {
                own.iter()
                    .cloned()
                    .chain(
                        (0..reference.n_samples())
                            .map(|i| theirs.map_or_else(|| fill(i), |t| t[i].clone())),
                    )
                    .collect::<Vec<String>>()
            })
        };
    if let Some(ids) = column(data.ids(), reference.ids(), &|i| format!("reference:{i}")) {
        stacked = stacked.with_ids(ids).map_err(AuditError::Data)?;
    }
    if let Some(sources) = column(data.sources(), reference.sources(), &|_| "reference".into()) {
        stacked = stacked.with_sources(sources).map_err(AuditError::Data)?;
    }
    Ok(stacked)
}

/// The report of the first `n` rows of a report of more: every run's detection cut to them,
/// their p-values combined and flagged again (Benjamini-Hochberg over these rows), the
/// per-source tests on `sources`.
fn first_rows(report: &Report, n: usize, sources: Option<&[String]>) -> Result<Report, AuditError> {
    let mut runs: Vec<DetectorRun> = Vec::with_capacity(report.runs().len());
    for run in report.runs() {
        let mut rows = DetectionRows::with_capacity(n);
        (0..n).for_each(|i| rows.push(&run.detection, i));
        let mut run = run.clone();
        run.detection = rows.finish().map_err(AuditError::Data)?;
        run.source_findings = source_findings_of(sources, &run.detection.flagged());
        runs.push(run);
    }
    let estimates: Vec<PoisonEstimate> = runs.iter().filter_map(|r| r.estimate.clone()).collect();
    let estimate = PoisonEstimate::combine(&estimates, n);
    let trusted: Vec<usize> = report.trusted().iter().copied().filter(|&i| i < n).collect();
    Ok(combine_rows(runs, report.failures().to_vec(), n, sources, report.fdr())?
        .with_estimate(estimate)
        .with_trusted(trusted))
}

impl Audit {
    /// Audits `data` against a vetted `reference` table in the same feature space (the same
    /// columns, with labels when `data` has them): the reference's rows are appended to the
    /// table and audited with it, so every detector fits on both and the detectors built with
    /// the reference's rows as trusted rows ([`reference_rows`]) measure their nulls on them
    /// (`knn_label`'s agreement law of every class with at least 30 of them, `scan_decomposition`'s
    /// global model). The report covers `data`'s rows alone, flagged by Benjamini-Hochberg over
    /// them; the outcome says how many of the reference's rows the audit flagged.
    ///
    /// ```
    /// use ndarray::Array2;
    /// use poisonguard::{Audit, Dataset, DetectorOptions, LabelValue, Labels, reference_rows};
    /// let table = |n: usize, shift: usize| {
    ///     let x = Array2::from_shape_fn((n, 4), |(i, j)| ((i * 7 + j * 3 + shift) % 29) as f32);
    ///     let y: Vec<LabelValue> = (0..n).map(|i| LabelValue::Int((i % 3) as i64)).collect();
    ///     Dataset::new(x).unwrap().with_labels(Labels::from_values(&y)).unwrap()
    /// };
    /// let (data, vetted) = (table(120, 0), table(90, 5));
    /// let opts = DetectorOptions {
    ///     trusted: Some(reference_rows(data.n_samples(), vetted.n_samples()).collect()),
    ///     ..DetectorOptions::default()
    /// };
    /// let audit = Audit::for_dataset(&data, &opts);
    /// let (report, reference) = audit.run_with_reference(&data, &vetted, &|_| {})?;
    /// assert_eq!(report.n_samples(), 120);
    /// assert_eq!(reference.rows, 90);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`AuditError::Reference`] when the reference has another feature count, no labels where
    /// `data` has them (or labels where it has none), or `data` carries predicted
    /// probabilities; as [`Audit::run`] otherwise.
    pub fn run_with_reference(
        &self,
        data: &Dataset,
        reference: &Dataset,
        on_event: &(dyn Fn(AuditEvent) + Sync),
    ) -> Result<(Report, ReferenceOutcome), AuditError> {
        let stacked = stack(data, reference)?;
        let report = self.run_with(&stacked, on_event)?;
        split_report(&report, data)
    }

    /// [`Audit::run_with_reference`], keeping the fitted detectors: the model is fitted on
    /// `data`'s rows and the reference's (its training rows, the reference's last), and carries
    /// what the reference's rows measured (`knn_label`'s per-class laws and conformal floors), so
    /// that [`FittedAudit::scan`](crate::FittedAudit::scan) of new rows reads the same nulls.
    ///
    /// # Errors
    /// As [`Audit::run_with_reference`].
    pub fn fit_with_reference(
        &self,
        data: &Dataset,
        reference: &Dataset,
        on_event: &(dyn Fn(AuditEvent) + Sync),
    ) -> Result<(FittedAudit, Report, ReferenceOutcome), AuditError> {
        let stacked = stack(data, reference)?;
        let (model, report) = self.fit_with(&stacked, on_event)?;
        let (report, outcome) = split_report(&report, data)?;
        Ok((model, report, outcome))
    }
}

/// The report of a stacked table cut to `data`'s rows ([`first_rows`]), and what the rows after
/// them (the reference's) got.
fn split_report(report: &Report, data: &Dataset) -> Result<(Report, ReferenceOutcome), AuditError> {
    let n = data.n_samples();
    let rows = report.n_samples() - n;
    let flagged = (n..report.n_samples()).filter(|&i| report.is_flagged(i)).count();
    Ok((first_rows(report, n, data.sources())?, ReferenceOutcome { rows, flagged }))
}
