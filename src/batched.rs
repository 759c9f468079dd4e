//! The audit of a table larger than memory: fit on a seeded, class-stratified reference sample,
//! then score every row against that fit, one batch of rows at a time ([`Audit::run_batched`]).

use std::ops::Range;

use poisonguard_core::{
    DataError, Dataset, Detection, DetectionRows, DetectorFailure, DetectorRun, Report, RowKeys,
    RowSource,
};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand::seq::index;
use rayon::prelude::*;

use crate::{Audit, AuditError, AuditEvent, error_chain};

/// Bytes per row a batched audit holds for the whole table besides the features: every
/// detector's score and p-value (16 bytes each, eight detectors), the combined p-value,
/// suspicion and flag, the labels and the reference index. Ids and sources come on top.
const BYTES_PER_ROW: u64 = 8 * 16 + 17 + 4 + 8;

/// How many times the reference sample's feature matrix its fit holds at its peak, with room:
/// the in-memory scan peaks at 1.5-2.7x its features (benches/RESULTS.md), and a fit that
/// scores new rows keeps more (ECOD's sorted columns, the neighbour index over the reference).
const FIT_PEAK_FACTOR: u64 = 6;

/// How many times its f32 features the in-memory audit holds at its peak: 2.72x measured on
/// 10^6 x 128 and 1.54x on 10^6 x 512 embeddings (benches/RESULTS.md), rounded up.
const IN_MEMORY_FACTOR: u64 = 3;

/// Fewest reference rows per class (all of a smaller class).
const MIN_PER_CLASS: usize = 50;

/// Fewest reference rows a budget must hold (all of a smaller table): fifty rows for each of
/// ten classes.
const MIN_REFERENCE: usize = 500;

/// How a batched audit ([`Audit::run_batched`]) reads a table: the reference sample the
/// detectors are fitted on and the rows scored at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPlan {
    /// Rows of the reference sample (about: every class keeps its share, and at least
    /// `min(class size, 50)` rows).
    pub reference_rows: usize,
    /// Rows read and scored at a time.
    pub batch_rows: usize,
    /// Seed of the reference sample.
    pub seed: u64,
}

impl BatchPlan {
    /// About how many bytes the in-memory audit ([`Audit::run`]) of `n_rows` x `n_features`
    /// holds at its peak (3x its f32 features): above a memory budget, audit in batches.
    pub fn in_memory_bytes(n_rows: usize, n_features: usize) -> u64 {
        (n_rows as u64).saturating_mul(n_features as u64).saturating_mul(4 * IN_MEMORY_FACTOR)
    }

    /// The plan that keeps a batched audit of `n_rows` x `n_features` within `budget` bytes:
    /// the per-row results (about 160 bytes a row) are set aside, the rest is split so that
    /// the reference fit (about 6x the reference's features at its peak) takes three quarters
    /// and a batch's features a sixteenth.
    ///
    /// # Errors
    /// [`AuditError::Budget`] when the budget does not hold the per-row results and a
    /// reference of `min(n_rows, 500)` rows.
    pub fn for_budget(
        budget: u64,
        n_rows: usize,
        n_features: usize,
        seed: u64,
    ) -> Result<Self, AuditError> {
        let row_bytes = 4 * n_features.max(1) as u64;
        let left = budget.saturating_sub(BYTES_PER_ROW * n_rows as u64);
        let reference_rows = (left * 3 / 4 / (FIT_PEAK_FACTOR * row_bytes)) as usize;
        let least = n_rows.min(MIN_REFERENCE);
        if reference_rows < least {
            return Err(AuditError::Budget(format!(
                "{budget} bytes cannot hold the results of {n_rows} rows ({} bytes) and a \
                 reference sample of {least} rows of {n_features} features",
                BYTES_PER_ROW * n_rows as u64
            )));
        }
        let batch_rows = ((left / 16 / row_bytes) as usize).clamp(1, n_rows.max(1));
        Ok(Self { reference_rows: reference_rows.min(n_rows), batch_rows, seed })
    }
}

/// Rows of the reference sample, ascending: within each class (all rows when unlabelled) a
/// seeded uniform draw of its share of `m` rows (rounded up), at least `min(class size,
/// MIN_PER_CLASS)`; every row when `m >= n`.
pub fn reference_sample(keys: &RowKeys, m: usize, seed: u64) -> Vec<usize> {
    let n = keys.n_rows();
    if m >= n {
        return (0..n).collect();
    }
    let groups = match keys.labels() {
        Some(labels) => labels.rows_by_class(),
        None => vec![(0..n).collect()],
    };
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x5E1E_C7ED);
    let mut rows = Vec::with_capacity(m + groups.len() * MIN_PER_CLASS);
    for group in groups.iter().filter(|g| !g.is_empty()) {
        let share = (m as u128 * group.len() as u128).div_ceil(n as u128) as usize;
        let take = share.max(MIN_PER_CLASS).min(group.len());
        rows.extend(index::sample(&mut rng, group.len(), take).into_iter().map(|k| group[k]));
    }
    rows.sort_unstable();
    rows
}

/// The reference rows of a batched audit: each row's position in the reference (`u32::MAX`
/// outside it) and the fit's training runs, whose detections those rows keep.
pub(crate) struct Kept<'a> {
    slot: &'a [u32],
    training: &'a [DetectorRun],
}

/// One detection per fitted detector for every row of `source`, read `batch_rows` at a time:
/// the rows `kept` names keep their training detections, the others are scored by each
/// detector's `detect_in`, with `search` (standardized reference rows and neighbours) done once
/// per batch for the detectors that read it. A detector that fails on a batch is left out
/// (`None`) and its failure returned, naming the batch's rows.
pub(crate) fn score_batches(
    source: &mut dyn RowSource,
    keys: &RowKeys,
    fitted: &[(poisonguard_core::DetectorInfo, Box<dyn poisonguard_core::FittedDetector>)],
    kept: Option<&Kept<'_>>,
    batch_rows: usize,
    search: Option<&(poisonguard_label::Reference, usize)>,
    on_event: &(dyn Fn(AuditEvent) + Sync),
) -> Result<(Vec<Option<DetectionRows>>, Vec<DetectorFailure>), AuditError> {
    let n = keys.n_rows();
    let slot_of = |i: usize| kept.map_or(u32::MAX, |k| k.slot[i]);
    let mut rows: Vec<Option<DetectionRows>> =
        fitted.iter().map(|_| Some(DetectionRows::with_capacity(n))).collect();
    let mut failures = Vec::new();
    for range in batches(n, batch_rows) {
        let others: Vec<usize> = range.clone().filter(|&i| slot_of(i) == u32::MAX).collect();
        let batch: Option<Dataset> = if others.is_empty() {
            None
        } else {
            let mut all = read(source, range.clone())?;
            if others.len() < range.len() {
                let at: Vec<usize> = others.iter().map(|&i| i - range.start).collect();
                all = all.select(ndarray::Axis(0), &at);
            }
            Some(keys.dataset(all, &others).map_err(AuditError::Data)?)
        };
        // a failed search leaves each detector to search (and fail) on its own
        let query = match (&batch, search) {
            (Some(b), Some((reference, k))) => {
                let start = std::time::Instant::now();
                let found = reference.query(b, *k, "audit").ok();
                on_event(AuditEvent::Searched(start.elapsed()));
                found
            }
            _ => None,
        };
        let detected: Vec<Option<Result<Detection, DataError>>> = fitted
            .par_iter()
            .zip(rows.par_iter())
            .map(|((info, f), live)| match (&batch, live) {
                (Some(b), Some(_)) => {
                    let start = std::time::Instant::now();
                    let detected = f.detect_in(b, query.as_ref());
                    on_event(AuditEvent::Scored(info.id, start.elapsed()));
                    Some(detected)
                }
                _ => None,
            })
            .collect();
        for (j, outcome) in detected.into_iter().enumerate() {
            let Some(acc) = rows[j].as_mut() else { continue };
            let part = match outcome {
                Some(Ok(part)) => Some(part),
                Some(Err(e)) => {
                    failures.push(DetectorFailure {
                        id: fitted[j].0.id,
                        error: format!("rows {}..{}: {}", range.start, range.end, error_chain(&e)),
                    });
                    rows[j] = None;
                    continue;
                }
                None => None,
            };
            let mut next = 0;
            for i in range.clone() {
                match (slot_of(i), kept) {
                    (k, Some(kept)) if k != u32::MAX => {
                        acc.push(&kept.training[j].detection, k as usize);
                    }
                    _ => {
                        acc.push(
                            part.as_ref().expect("rows outside the reference were scored"),
                            next,
                        );
                        next += 1;
                    }
                }
            }
        }
        on_event(AuditEvent::Scoring(range.end, n));
    }
    Ok((rows, failures))
}

/// Consecutive ranges of `batch` rows covering `0..n`.
fn batches(n: usize, batch: usize) -> impl Iterator<Item = Range<usize>> {
    let batch = batch.max(1);
    (0..n.div_ceil(batch)).map(move |b| b * batch..((b + 1) * batch).min(n))
}

fn read(
    source: &mut dyn RowSource,
    rows: Range<usize>,
) -> Result<ndarray::Array2<f32>, AuditError> {
    let (start, end) = (rows.start, rows.end);
    let features = source.read(rows).map_err(|e| AuditError::Read(error_chain(e.as_ref())))?;
    if features.nrows() != end - start || features.ncols() != source.n_features() {
        return Err(AuditError::Read(format!(
            "rows {start}..{end}: the source gave {} x {}, not {} x {}",
            features.nrows(),
            features.ncols(),
            end - start,
            source.n_features()
        )));
    }
    Ok(features)
}

impl Audit {
    /// Audits a table that does not fit in memory, in two passes over `source`:
    ///
    /// 1. the seeded, class-stratified reference sample of `plan.reference_rows` rows
    ///    ([`reference_sample`]) is read and every detector is fitted on it, as
    ///    [`Audit::fit_with`] fits on a table in memory;
    /// 2. the other rows are read `plan.batch_rows` at a time and scored against that fit
    ///    ([`FittedAudit::scan`](crate::FittedAudit::scan)'s per-detector scoring: each
    ///    detector's training threshold and p-value null); the reference rows keep their
    ///    training scores.
    ///
    /// The detectors' p-values are then combined and flagged over the whole table as
    /// [`Audit::run`] does (Benjamini-Hochberg at the audit's false-discovery rate), and each
    /// data source is tested on its flags.
    ///
    /// It holds the reference sample and its fit, one batch, and a few numbers per row
    /// ([`BatchPlan::for_budget`]). How it differs from [`Audit::run`] on the same rows: every
    /// row outside the reference is judged against the reference's neighbours, class
    /// statistics and thresholds rather than the whole table's (with `reference_rows >= n` it
    /// gives the in-memory report, row for row); the class findings and the poison estimate
    /// are the reference's, the estimate scaled to the table's rows; a detector that cannot
    /// score some batch (a class the reference lacks) is reported failed for the whole table.
    ///
    /// `on_event` gets [`AuditEvent::Reading`] while the reference is read,
    /// the fit's own events, then [`AuditEvent::Scoring`] once with no rows done when the fit
    /// ends and again after each batch, with [`AuditEvent::Searched`] for the batch's shared
    /// neighbour search and [`AuditEvent::Scored`] for each detector's part.
    ///
    /// # Errors
    /// [`AuditError::Read`] when the source fails or gives a batch of the wrong shape,
    /// [`AuditError::Data`] for a batch with a non-finite value (its row in the table),
    /// [`AuditError`] as [`Audit::run`] otherwise.
    pub fn run_batched(
        &self,
        source: &mut dyn RowSource,
        plan: &BatchPlan,
        on_event: &(dyn Fn(AuditEvent) + Sync),
    ) -> Result<Report, AuditError> {
        self.fit_batched(source, plan, on_event).map(|(_, report)| report)
    }

    /// [`Audit::run_batched`], keeping the detectors fitted on the reference sample: a model
    /// that scores new rows ([`FittedAudit::scan`](crate::FittedAudit::scan)) and can be saved,
    /// as [`Audit::fit_with`] gives for a table in memory.
    ///
    /// # Errors
    /// As [`Audit::run_batched`].
    pub fn fit_batched(
        &self,
        source: &mut dyn RowSource,
        plan: &BatchPlan,
        on_event: &(dyn Fn(AuditEvent) + Sync),
    ) -> Result<(crate::FittedAudit, Report), AuditError> {
        let keys = source.keys().clone();
        let n = keys.n_rows();
        let d = source.n_features();
        if n == 0 {
            return Err(AuditError::Data(DataError::NoRows));
        }
        let reference = reference_sample(&keys, plan.reference_rows, plan.seed);
        // position of each row in the reference, or none
        let mut slot = vec![u32::MAX; n];
        for (k, &i) in reference.iter().enumerate() {
            slot[i] = k as u32;
        }

        // Pass 1: the reference rows.
        let mut features = ndarray::Array2::<f32>::zeros((reference.len(), d));
        for range in batches(n, plan.batch_rows) {
            let first = reference.partition_point(|&i| i < range.start);
            let last = reference.partition_point(|&i| i < range.end);
            if first < last {
                let batch = read(source, range.clone())?;
                for (k, &i) in reference.iter().enumerate().take(last).skip(first) {
                    features.row_mut(k).assign(&batch.row(i - range.start));
                }
            }
            on_event(AuditEvent::Reading(range.end, n));
        }
        let reference_data = keys.dataset(features, &reference).map_err(AuditError::Data)?;
        let (model, fit_report) = self.fit_with(&reference_data, on_event)?;
        // One search of each batch among the standardized reference rows for every detector
        // that searches there (`knn_label`, `duplicates`): the reference shares the rows the
        // detectors keep, and searches as theirs do.
        let query_k = model.detectors().iter().filter_map(|(_, f)| f.standardized_query_k()).max();
        let search = query_k.map(|k| (poisonguard_label::Reference::new(&reference_data, true), k));
        drop(reference_data);
        on_event(AuditEvent::Scoring(0, n));

        // Pass 2: every row, in order; the reference rows keep their training detections (the
        // fit's runs and fitted detectors are the detectors that succeeded, in one order).
        let fitted = model.detectors();
        let training = fit_report.runs();
        debug_assert!(fitted.iter().zip(training).all(|((info, _), run)| info.id == run.id));
        let kept = Kept { slot: &slot, training };
        let (rows, failures) = score_batches(
            source,
            &keys,
            fitted,
            Some(&kept),
            plan.batch_rows,
            search.as_ref(),
            on_event,
        )?;
        let report = whole_table(rows, failures, &fit_report, &keys, reference.len(), self.fdr)?;
        Ok((model, report))
    }
}

/// The report of a table of `keys.n_rows()` rows from every detector's `rows` (`None` for a
/// detector that failed on some rows, named in `failures`): the reference fit's class findings,
/// noise matrices and failures, each source tested on the flags, the p-values combined and
/// flagged over the whole table at `fdr`, the fit's estimate scaled from its `reference_rows` to
/// the table.
pub(crate) fn whole_table(
    rows: Vec<Option<DetectionRows>>,
    mut failures: Vec<DetectorFailure>,
    fit_report: &Report,
    keys: &RowKeys,
    reference_rows: usize,
    fdr: f64,
) -> Result<Report, AuditError> {
    let n = keys.n_rows();
    failures.splice(0..0, fit_report.failures().iter().cloned());
    let mut runs = Vec::new();
    for (acc, run) in rows.into_iter().zip(fit_report.runs()) {
        let Some(acc) = acc else { continue };
        let detection = acc.finish().map_err(AuditError::Data)?;
        let mut whole = DetectorRun::new(run.id, run.family, detection);
        whole.class_findings = run.class_findings.clone();
        whole.skipped_classes = run.skipped_classes.clone();
        whole.noise_matrix = run.noise_matrix.clone();
        whole.source_findings =
            crate::combine::source_findings_of(keys.sources(), &whole.detection.flagged());
        runs.push(whole);
    }
    let scale = n as f64 / reference_rows.max(1) as f64;
    let estimate = fit_report.estimate().cloned().map(|mut e| {
        e.rows *= scale;
        e.low *= scale;
        e.high *= scale;
        e
    });
    Ok(crate::combine::combine_rows(runs, failures, n, keys.sources(), fdr)?
        .with_estimate(estimate))
}
