//! The batched audit ([`Audit::fit_batched`]) in steps that another engine schedules: the
//! Python package's Ray and Spark audits run them on many workers and give the report the
//! single-machine batched audit gives for the same table, seed and reference size.
//!
//! 1. the driver gathers every row's keys (labels, sources) and draws the reference sample
//!    ([`reference_sample`](crate::reference_sample));
//! 2. it fits the detectors on the reference rows ([`Audit::fit_reference`]) and sends the
//!    fitted model's bytes ([`FittedAudit::save`]) to the workers;
//! 3. each worker scores its part of the table, consecutive rows, against the model
//!    ([`FittedAudit::score_part`]; a row's scores do not depend on the rows scored with it)
//!    and sends the [`PartScores`] back as bytes;
//! 4. the driver assembles the parts in row order ([`ReferenceFit::assemble`]): the reference
//!    rows keep their training detections, the p-values are combined and flagged over the
//!    whole table (Benjamini-Hochberg over every row, not per part), and each source is tested
//!    on all its rows, as [`Audit::run_batched`] does.

use poisonguard_core::{Dataset, Detection, DetectionRows, DetectorFailure, Report, RowKeys};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Audit, AuditError, AuditEvent, FittedAudit, ModelError, error_chain};

/// The detections of one part of a table (rows `start..start + n_rows`), one per fitted
/// detector in the model's order, or why the detector could not score the part.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartScores {
    start: usize,
    n_rows: usize,
    detections: Vec<Result<Detection, String>>,
}

impl PartScores {
    /// The first row of the part in the table.
    pub fn start(&self) -> usize {
        self.start
    }

    /// Rows of the part.
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// The part as bytes (MessagePack), to travel from a worker to the driver.
    ///
    /// # Errors
    /// [`ModelError::Encode`] when a detection cannot be encoded.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ModelError> {
        rmp_serde::to_vec_named(self).map_err(|e| ModelError::Encode(e.to_string()))
    }

    /// The part in `bytes` ([`PartScores::to_bytes`]).
    ///
    /// # Errors
    /// [`ModelError::NotAModel`] when the bytes are not a part's scores.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ModelError> {
        rmp_serde::from_slice(bytes)
            .map_err(|e| ModelError::NotAModel(format!("not the scores of a part: {e}")))
    }
}

impl FittedAudit {
    /// Scores `data`, rows `start..start + data.n_samples()` of a table, for
    /// [`ReferenceFit::assemble`]: every detector's detection as
    /// [`FittedAudit::scan`] makes it, before any combination.
    ///
    /// # Errors
    /// [`AuditError::ModelMismatch`] when `data`'s feature columns are not the model's. A
    /// detector that cannot score the part is kept in the part as its error.
    pub fn score_part(&self, data: &Dataset, start: usize) -> Result<PartScores, AuditError> {
        self.check_columns(data.n_features(), data.feature_names())?;
        let detections = self
            .detectors()
            .par_iter()
            .map(|(_, fitted)| fitted.detect(data).map_err(|e| error_chain(&e)))
            .collect();
        Ok(PartScores { start, n_rows: data.n_samples(), detections })
    }
}

/// The detectors fitted on the reference sample of a table, with the training detections its
/// rows keep: what the driver of a distributed audit holds ([`Audit::fit_reference`]).
#[derive(Debug)]
pub struct ReferenceFit {
    model: FittedAudit,
    report: Report,
    reference: Vec<usize>,
    n_rows: usize,
    fdr: f64,
}

impl Audit {
    /// Fits the detectors on the reference rows of a table (`reference`, ascending, as
    /// [`reference_sample`](crate::reference_sample) draws them, with their `features` in that
    /// order) whose rows have `keys`, as [`Audit::fit_batched`] fits.
    ///
    /// # Errors
    /// [`AuditError::Parts`] when `reference` is not ascending rows of the table,
    /// [`AuditError::Data`] when `features` has another number of rows or a value that is not
    /// finite; as [`Audit::fit_with`] otherwise.
    pub fn fit_reference(
        &self,
        keys: &RowKeys,
        reference: Vec<usize>,
        features: ndarray::Array2<f32>,
        on_event: &(dyn Fn(AuditEvent) + Sync),
    ) -> Result<ReferenceFit, AuditError> {
        if reference.windows(2).any(|w| w[0] >= w[1])
            || reference.last().is_some_and(|&i| i >= keys.n_rows())
        {
            return Err(AuditError::Parts(
                "the reference rows must be ascending rows of the table".into(),
            ));
        }
        let data = keys.dataset(features, &reference).map_err(AuditError::Data)?;
        let (model, report) = self.fit_with(&data, on_event)?;
        Ok(ReferenceFit { model, report, reference, n_rows: keys.n_rows(), fdr: self.fdr })
    }
}

impl ReferenceFit {
    /// The fitted detectors, to save and send to the workers.
    pub fn model(&self) -> &FittedAudit {
        &self.model
    }

    /// The reference rows, ascending.
    pub fn reference(&self) -> &[usize] {
        &self.reference
    }

    /// The report of the whole table from its `parts` (in any order; together they must cover
    /// every row once): per detector, the reference rows keep their training detections and
    /// the other rows take their part's; a detector that failed on a part is reported failed
    /// for the whole table. Then as [`Audit::run_batched`]: class findings from the fit, each
    /// source tested on its flags, the p-values combined and flagged over every row.
    ///
    /// # Errors
    /// [`AuditError::Parts`] when `keys` is not the table's, or the parts do not cover its
    /// rows once or hold another model's detectors; as [`Audit::run`] otherwise.
    pub fn assemble(
        &self,
        keys: &RowKeys,
        mut parts: Vec<PartScores>,
    ) -> Result<Report, AuditError> {
        let n = self.n_rows;
        let bad = AuditError::Parts;
        if keys.n_rows() != n {
            return Err(bad(format!("keys of {} rows for a table of {n}", keys.n_rows())));
        }
        parts.sort_by_key(|p| p.start);
        let mut next = 0;
        for p in &parts {
            if p.start != next {
                return Err(bad(format!(
                    "the parts leave rows {next}..{} out or repeat them",
                    p.start
                )));
            }
            next += p.n_rows;
        }
        if next != n {
            return Err(bad(format!("the parts cover {next} rows of {n}")));
        }
        let training = self.report.runs();
        if parts.iter().any(|p| p.detections.len() != training.len()) {
            return Err(bad("a part holds the scores of another model".into()));
        }
        let mut slot = vec![u32::MAX; n];
        for (k, &i) in self.reference.iter().enumerate() {
            slot[i] = k as u32;
        }
        let mut failures = Vec::new();
        let rows: Vec<Option<DetectionRows>> = training
            .iter()
            .enumerate()
            .map(|(j, run)| {
                let mut acc = DetectionRows::with_capacity(n);
                for part in &parts {
                    let end = part.start + part.n_rows;
                    let detected = match &part.detections[j] {
                        Ok(d) if d.scores().len() == part.n_rows => Ok(d),
                        Ok(_) => Err("a part's detection of another length".to_string()),
                        Err(e) => Err(e.clone()),
                    };
                    let detected = match detected {
                        Ok(d) => d,
                        Err(error) => {
                            failures.push(DetectorFailure {
                                id: run.id,
                                error: format!("rows {}..{end}: {error}", part.start),
                            });
                            return None;
                        }
                    };
                    for (at, &k) in slot[part.start..end].iter().enumerate() {
                        match k {
                            u32::MAX => acc.push(detected, at),
                            k => acc.push(&run.detection, k as usize),
                        }
                    }
                }
                Some(acc)
            })
            .collect();
        crate::batched::whole_table(
            rows,
            failures,
            &self.report,
            keys,
            self.reference.len(),
            self.fdr,
        )
    }
}
