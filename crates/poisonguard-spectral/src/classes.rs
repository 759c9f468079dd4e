//! What every per-class detector of this crate does the same way: fit the classes in parallel,
//! centre a class's rows, declare classes attacked, keep one fitted state ([`PerClass`]), check
//! and score new rows, answer as a [`FittedDetector`](poisonguard_core::FittedDetector).

use faer::{Accum, Mat, MatRef};
use poisonguard_core::{
    AUTO_ALPHA, Calibration, ClassFinding, ClassId, DataError, Dataset, Detection, DetectorId,
    ESTIMATE_LEVEL, LabelMap, LabelValue, Labels, PoisonEstimate, Reason, ScoreNull, SkippedClass,
    ThresholdRule,
};
use poisonguard_linalg::matmul;

use crate::error::{Error, Result};
use crate::linalg::ClassMatrix;

/// Runs `fit(class, rows)` on every class with at least `min_rows` rows, classes in parallel
/// (feature `parallel`), results in class order; `None` for smaller classes, which are also
/// returned as skipped (empty classes are neither fitted nor reported). A `None` from `fit` (an
/// eigensolver that did not converge) becomes [`Error::EigenNotConverged`] naming the class.
pub(crate) fn fit_classes<T: Send>(
    labels: &Labels,
    by_class: &[Vec<usize>],
    min_rows: usize,
    fit: impl Fn(usize, &[usize]) -> Option<T> + Sync,
) -> Result<(Vec<Option<T>>, Vec<SkippedClass>)> {
    let skipped = SkippedClass::of(by_class, labels.map(), min_rows);
    let work = |(c, rows): (usize, &Vec<usize>)| {
        if rows.len() < min_rows {
            return Ok(None);
        }
        fit(c, rows)
            .map(Some)
            .ok_or_else(|| Error::EigenNotConverged { class: labels.map().values()[c].to_string() })
    };
    #[cfg(feature = "parallel")]
    let fitted: Result<Vec<Option<T>>> = {
        use rayon::prelude::*;
        by_class.par_iter().enumerate().map(work).collect()
    };
    #[cfg(not(feature = "parallel"))]
    let fitted: Result<Vec<Option<T>>> = by_class.iter().enumerate().map(work).collect();
    Ok((fitted?, skipped))
}

/// The class mean (f64 accumulation) and the centred rows as an f64 matrix.
pub(crate) fn centred(data: &Dataset, rows: &[usize]) -> (Vec<f64>, Mat<f64>) {
    let x = data.features();
    let mean = class_mean(data, rows);
    let c = Mat::from_fn(rows.len(), x.ncols(), |r, j| f64::from(x[[rows[r], j]]) - mean[j]);
    (mean, c)
}

/// Rows of a class worked on at a time where the whole class would otherwise be copied
/// (spectre's scores): bounds the working copy at `ROW_BLOCK x d`.
pub(crate) const ROW_BLOCK: usize = 4096;
/// Bytes of one block of [`ClassRows`] (f64): small enough to stay in the core's cache between
/// being written and being multiplied (a block of 4,096 x 512 went through memory both ways).
const BLOCK_BYTES: usize = 1 << 20;

/// A class's rows of the features centred at the class mean (f64), read a block of rows at a
/// time: the [`ClassMatrix`] of [`centred`] without its `n x d` f64 copy (10^5 rows of 512
/// features are 410 MB a class, and classes fit in parallel). Each product converts the blocks
/// as it goes (a pass over the class's f32 rows); sums over rows add the blocks in order.
pub(crate) struct ClassRows<'a> {
    x: ndarray::ArrayView2<'a, f32>,
    rows: &'a [usize],
    mean: Vec<f64>,
}

impl<'a> ClassRows<'a> {
    pub(crate) fn new(data: &'a Dataset, rows: &'a [usize]) -> Self {
        Self { x: data.features(), rows, mean: class_mean(data, rows) }
    }

    /// The class mean.
    pub(crate) fn into_mean(self) -> Vec<f64> {
        self.mean
    }

    /// Calls `f(first row, block)` for every block of rows in order, the block transposed
    /// (`d x len`: a row of the class is a column, filled as the row is read).
    fn each_block(&self, mut f: impl FnMut(usize, MatRef<'_, f64>)) {
        let d = self.x.ncols();
        let per_block = (BLOCK_BYTES / (8 * d.max(1))).clamp(16, ROW_BLOCK);
        let mut block = Mat::<f64>::zeros(d, per_block.min(self.rows.len()));
        for (b, part) in self.rows.chunks(per_block).enumerate() {
            for (r, &i) in part.iter().enumerate() {
                let (out, row) = (block.col_as_slice_mut(r), self.x.row(i));
                match row.as_slice() {
                    // a plain slice loop vectorizes; an ndarray iterator does not
                    Some(row) => centre_into(out, row, &self.mean),
                    None => centre_into(out, &row.to_vec(), &self.mean),
                }
            }
            f(b * per_block, block.as_ref().subcols(0, part.len()));
        }
    }

    /// Each centred row's dot product with `v`, summed over the features in order.
    pub(crate) fn projections(&self, v: &[f64]) -> Vec<f64> {
        self.rows
            .iter()
            .map(|&i| {
                let row = self.x.row(i);
                row.iter().zip(&self.mean).zip(v).map(|((&a, m), w)| (f64::from(a) - m) * w).sum()
            })
            .collect()
    }
}

/// `out[j] = row[j] - mean[j]` in f64.
fn centre_into(out: &mut [f64], row: &[f32], mean: &[f64]) {
    for ((o, &a), m) in out.iter_mut().zip(row).zip(mean) {
        *o = f64::from(a) - m;
    }
}

impl ClassMatrix for ClassRows<'_> {
    fn shape(&self) -> (usize, usize) {
        (self.rows.len(), self.x.ncols())
    }

    fn squared_norm(&self) -> f64 {
        let mut total = 0.0;
        self.each_block(|_, t| total += t.squared_norm_l2());
        total
    }

    fn times(&self, q: MatRef<'_, f64>) -> Mat<f64> {
        let mut out = Mat::<f64>::zeros(self.rows.len(), q.ncols());
        self.each_block(|start, t| {
            let rows = out.as_mut().subrows_mut(start, t.ncols());
            matmul(rows, Accum::Replace, t.transpose(), q, 1.0);
        });
        out
    }

    fn t_times(&self, y: MatRef<'_, f64>) -> Mat<f64> {
        let mut out = Mat::<f64>::zeros(self.x.ncols(), y.ncols());
        self.each_block(|start, t| {
            matmul(out.as_mut(), Accum::Add, t, y.subrows(start, t.ncols()), 1.0);
        });
        out
    }

    fn times_and_back(&self, q: MatRef<'_, f64>) -> (Mat<f64>, Mat<f64>) {
        let mut y = Mat::<f64>::zeros(self.rows.len(), q.ncols());
        let mut back = Mat::<f64>::zeros(self.x.ncols(), q.ncols());
        self.each_block(|start, t| {
            let len = t.ncols();
            matmul(y.as_mut().subrows_mut(start, len), Accum::Replace, t.transpose(), q, 1.0);
            matmul(back.as_mut(), Accum::Add, t, y.as_ref().subrows(start, len), 1.0);
        });
        (y, back)
    }

    fn comoment(&self) -> Mat<f64> {
        let d = self.x.ncols();
        let mut out = Mat::<f64>::zeros(d, d);
        self.each_block(|_, t| matmul(out.as_mut(), Accum::Add, t, t.transpose(), 1.0));
        out
    }

    fn gram(&self) -> Mat<f64> {
        // rows beyond features: the Gram route's `n x n` (every pair of blocks)
        let n = self.rows.len();
        let mut out = Mat::<f64>::zeros(n, n);
        self.each_block(|a, ta| {
            let ta = ta.to_owned();
            self.each_block(|b, tb| {
                let dst = out.as_mut().submatrix_mut(a, b, ta.ncols(), tb.ncols());
                matmul(dst, Accum::Replace, ta.transpose(), tb, 1.0);
            });
        });
        out
    }
}

/// The class mean, its top `p` principal directions (`d x p`) and its centred rows projected on
/// them (`n x p`): [`principal`](crate::linalg::principal) of the class's rows, read a block
/// at a time ([`ClassRows`]).
pub(crate) fn class_principal(
    data: &Dataset,
    rows: &[usize],
    p: usize,
) -> Option<(Vec<f64>, Mat<f64>, Mat<f64>)> {
    let x = ClassRows::new(data, rows);
    let (basis, y) = crate::linalg::principal(&x, p)?;
    Some((x.into_mean(), basis, y))
}

/// The class mean, f64 accumulation.
fn class_mean(data: &Dataset, rows: &[usize]) -> Vec<f64> {
    let x = data.features();
    let mut mean = vec![0.0f64; x.ncols()];
    for &i in rows {
        for (m, &v) in mean.iter_mut().zip(x.row(i)) {
            *m += f64::from(v);
        }
    }
    mean.iter_mut().for_each(|m| *m /= rows.len().max(1) as f64);
    mean
}

/// New rows to score against a fit: same feature count, labelled, every label seen at fit time.
/// Returns the labels and each row's class in the fit's label map.
pub(crate) fn new_rows<'a>(
    data: &'a Dataset,
    n_features: usize,
    map: &LabelMap,
    detector: &'static str,
) -> std::result::Result<(&'a Labels, Vec<ClassId>), DataError> {
    if data.n_features() != n_features {
        return Err(DataError::FeatureCountMismatch {
            expected: n_features,
            actual: data.n_features(),
        });
    }
    let labels = data.labels().ok_or(DataError::LabelsRequired { detector })?;
    let ids = labels.ids_in(map)?;
    Ok((labels, ids))
}

/// One class's fit, as [`PerClass`] scores rows with it.
pub(crate) trait ClassGate {
    /// Whether the class's verdict lets its rows be flagged. A detector without class verdicts
    /// flags in every class (the default).
    fn flaggable(&self) -> bool {
        true
    }
}

/// The fitted state of every per-class detector of this crate: each class's fit (`None`: too
/// small to fit), the classes skipped, the label map and feature count new rows are checked
/// against, the training detection, the class findings and the poison estimate.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
pub(crate) struct PerClass<C> {
    pub(crate) skipped: Vec<SkippedClass>,
    pub(crate) classes: Vec<Option<C>>,
    pub(crate) label_map: LabelMap,
    pub(crate) n_features: usize,
    pub(crate) training: Detection,
    pub(crate) findings: Vec<ClassFinding>,
    pub(crate) estimate: Option<PoisonEstimate>,
}

impl<C: ClassGate> PerClass<C> {
    /// The state from its parts; the rows (`by_class[c]`: the rows of class `c`) of a class that
    /// is not fitted or not flaggable carry no evidence in `training` (the class gate).
    pub(crate) fn new(
        by_class: &[Vec<usize>],
        label_map: LabelMap,
        n_features: usize,
        fit: (Vec<Option<C>>, Vec<SkippedClass>),
        training: Detection,
        findings: Vec<ClassFinding>,
        estimate: Option<PoisonEstimate>,
    ) -> Self {
        let (classes, skipped) = fit;
        let mut gated = vec![false; training.scores().len()];
        for (fit, rows) in classes.iter().zip(by_class) {
            if !fit.as_ref().is_some_and(ClassGate::flaggable) {
                rows.iter().for_each(|&i| gated[i] = true);
            }
        }
        let training = training.without_evidence(|i| gated[i]);
        PerClass { skipped, classes, label_map, n_features, training, findings, estimate }
    }

    /// New rows checked against the fit ([`new_rows`]): their labels and classes.
    pub(crate) fn new_rows<'a>(
        &self,
        data: &'a Dataset,
        id: DetectorId,
    ) -> std::result::Result<(&'a Labels, Vec<ClassId>), DataError> {
        new_rows(data, self.n_features, &self.label_map, id.as_str())
    }

    /// Scores checked new rows (`ids` from [`Self::new_rows`]): `score(fit, i)` is row `i`'s
    /// score and detail under its class's fit, `unscored` those of a row whose class was too
    /// small to fit, `reason(label, score, detail)` its reason. As in training, a row of a class
    /// its verdict does not let be flagged is capped at the threshold and carries no evidence;
    /// the threshold and p-values are the training's.
    pub(crate) fn score_rows<D: Clone>(
        &self,
        labels: &Labels,
        ids: &[ClassId],
        unscored: (f64, D),
        score: impl Fn(&C, usize) -> (f64, D),
        reason: impl Fn(&LabelValue, f64, &D) -> Reason,
    ) -> std::result::Result<Detection, DataError> {
        let cap = self.training.threshold();
        let mut details = Vec::with_capacity(ids.len());
        let scores: Vec<f64> = ids
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let (s, detail) = match &self.classes[c.index()] {
                    Some(fit) => {
                        let (s, detail) = score(fit, i);
                        (if fit.flaggable() { s } else { s.min(cap) }, detail)
                    }
                    None => unscored.clone(),
                };
                details.push(detail);
                s
            })
            .collect();
        let detection = Detection::with_calibration(
            scores,
            self.training.fitted_threshold(),
            self.training.calibration(),
            |i, s| reason(labels.value_of_row(i), s, &details[i]),
        )?;
        Ok(detection.without_evidence(|i| {
            !self.classes[ids[i].index()].as_ref().is_some_and(ClassGate::flaggable)
        }))
    }
}

/// Implements [`FittedDetector`](poisonguard_core::FittedDetector) for a per-class detector
/// whose fitted state is the [`PerClass`] field `state` and whose inherent `detect_rows` scores
/// new rows.
macro_rules! per_class_fitted {
    ($ty:ty) => {
        impl poisonguard_core::FittedDetector for $ty {
            fn id(&self) -> poisonguard_core::DetectorId {
                Self::ID
            }

            fn training(&self) -> &poisonguard_core::Detection {
                &self.state.training
            }

            fn skipped_classes(&self) -> &[poisonguard_core::SkippedClass] {
                &self.state.skipped
            }

            fn class_findings(&self) -> &[poisonguard_core::ClassFinding] {
                &self.state.findings
            }

            fn poison_estimate(&self) -> Option<poisonguard_core::PoisonEstimate> {
                self.state.estimate.clone()
            }

            fn detect(
                &self,
                data: &poisonguard_core::Dataset,
            ) -> std::result::Result<poisonguard_core::Detection, poisonguard_core::DataError> {
                self.detect_rows(data)
            }
        }
    };
}
pub(crate) use per_class_fitted;

/// Class verdicts from one statistic per class (`None`: the class was not fitted): each class's
/// robust z against the others ([`verdict_z`], with the class's own standard error `se(c)`)
/// and the critical value ([`critical_of`]) for the classes that have a statistic.
pub(crate) struct Verdicts {
    /// Each class's robust z (`None`: no statistic, or too few other classes).
    pub(crate) z: Vec<Option<f64>>,
    /// The family-wise critical value of `z`.
    pub(crate) critical: f64,
    /// The simulated null of one class's `z` ([`null_z`]), ascending.
    null: Vec<f64>,
}

impl Verdicts {
    pub(crate) fn new(stats: &[Option<f64>], se: impl Fn(usize) -> f64, seed: u64) -> Self {
        let z = (0..stats.len()).map(|c| verdict_z(stats, c, se(c))).collect();
        let classes = stats.iter().filter(|s| s.is_some()).count();
        let null = null_z(classes, seed);
        let critical = critical_of(&null, classes);
        Verdicts { z, critical, null }
    }

    /// Class `c`'s p-value: the share of the simulated null's `z` at or above its own, `(1 +
    /// count) / (1 + draws)` (1 without a `z`). The same simulation as the critical value: a
    /// class whose `z` reaches it has a p-value of at most `VERDICT_ALPHA / classes`.
    pub(crate) fn p_value(&self, c: usize) -> f64 {
        match self.z[c] {
            Some(z) if !self.null.is_empty() => {
                let above = self.null.len() - self.null.partition_point(|&v| v < z);
                (1 + above) as f64 / (1 + self.null.len()) as f64
            }
            _ => 1.0,
        }
    }

    /// Whether class `c`'s z exceeds the critical value.
    pub(crate) fn declared(&self, c: usize) -> bool {
        self.z[c].is_some_and(|z| z > self.critical)
    }
}

/// Family-wise level of the class verdicts: the chance that some class of a clean dataset is
/// declared attacked.
pub(crate) const VERDICT_ALPHA: f64 = 0.05;

/// Consistency constant of the MAD for a normal sample.
const MAD_TO_SD: f64 = 1.482_602_218_505_602;

/// The critical value of [`verdict_z`] for `classes` classes at family-wise level
/// [`VERDICT_ALPHA`], from their simulated null `null` ([`null_z`]): its `1 - alpha / classes`
/// quantile. The MAD of few classes is itself noisy, so the cut-off is far above the normal
/// quantile when there are few classes: about 5.9 for 10 classes, 10.9 for 5; infinite (no
/// verdict) below 4 classes.
fn critical_of(null: &[f64], classes: usize) -> f64 {
    if classes < 4 || null.is_empty() {
        return f64::INFINITY;
    }
    poisonguard_core::quantile_sorted(null, 1.0 - VERDICT_ALPHA / classes as f64)
}

/// The seeded simulation behind [`critical_of`] and [`Verdicts::p_value`]: `min(1000 classes,
/// 100,000)` draws of the leave-one-out robust z of one class among `classes` independent
/// standard normal statistics (own standard error 0), ascending; empty below 4 classes.
fn null_z(classes: usize, seed: u64) -> Vec<f64> {
    use rand::{Rng, SeedableRng};
    if classes < 4 {
        return Vec::new();
    }
    let draws = (1000 * classes).min(100_000);
    let mut rng = rand::rngs::SmallRng::seed_from_u64(poisonguard_core::derive_seed(seed, 7));
    let mut z: Vec<f64> = (0..draws)
        .map(|_| {
            // Box-Muller
            let x: Vec<Option<f64>> = (0..classes)
                .map(|_| {
                    let (u, v): (f64, f64) = (rng.random(), rng.random());
                    Some((-2.0 * (1.0 - u).ln()).sqrt() * (std::f64::consts::TAU * v).cos())
                })
                .collect();
            verdict_z(&x, 0, 0.0).unwrap_or(f64::NEG_INFINITY)
        })
        .collect();
    z.sort_by(f64::total_cmp);
    z
}

/// Robust z of class `c`'s statistic against the other classes' (leave-one-out median and MAD),
/// with the class's own standard error `se` added to the scale in quadrature:
/// `(own - median) / sqrt(MAD^2 + se^2)`. Conservative against [`critical_of`], which assumes
/// `se = 0`. `None` with fewer than three other classes, or when the scale is 0.
pub(crate) fn verdict_z(stats: &[Option<f64>], c: usize, se: f64) -> Option<f64> {
    let own = stats[c]?;
    let mut others: Vec<f64> =
        stats.iter().enumerate().filter(|(j, _)| *j != c).filter_map(|(_, s)| *s).collect();
    if others.len() < 3 {
        return None;
    }
    others.sort_by(f64::total_cmp);
    let med = poisonguard_core::quantile_sorted(&others, 0.5);
    let mut dev: Vec<f64> = others.iter().map(|v| (v - med).abs()).collect();
    dev.sort_by(f64::total_cmp);
    let mad = poisonguard_core::quantile_sorted(&dev, 0.5) * MAD_TO_SD;
    let scale = mad.hypot(se);
    (scale > 0.0).then(|| (own - med) / scale)
}

/// Threshold and p-value calibration of a detector whose scores are on the chi-square(1) scale
/// and that flags rows only in classes declared attacked: the rows of the classes for which
/// `null_class(c)` holds (those not declared attacked, or every class) are the empirical null.
/// [`ThresholdRule::Auto`] is their 99% quantile, never below the chi-square(1) one; the p-values
/// are chi-square(1) scaled by the larger of the ratios of the same rows' median and 99% quantile
/// to the law's (all rows when no class is in the null), so that the p-value at the threshold is
/// at most its 1%. Scaled by the median alone, a heavier-tailed reference (embeddings) left clean
/// rows of a declared class at p ~ 1e-6 below the threshold: on the scenario grid's seeds 0-2
/// the audit's flagged precision 0.790 -> 0.801, recall unchanged (benches/RESULTS.md).
pub(crate) fn gated_calibration(
    scores: &[f64],
    by_class: &[Vec<usize>],
    null_class: impl Fn(usize) -> bool,
    rule: ThresholdRule,
) -> Result<(poisonguard_core::FittedThreshold, Calibration)> {
    let null = ScoreNull::ChiSquared { dof: 1.0 };
    let mut reference: Vec<f64> = by_class
        .iter()
        .enumerate()
        .filter(|(c, _)| null_class(*c))
        .flat_map(|(_, rows)| rows.iter().map(|&i| scores[i]))
        .collect();
    if reference.is_empty() {
        reference = scores.to_vec();
    }
    reference.sort_by(f64::total_cmp);
    let threshold = rule.fit_with_reference(scores, &reference, &null)?;
    let calibration = match Calibration::fit(Some(&null), &reference) {
        Calibration::ChiSquared { dof, scale } => {
            Calibration::ChiSquared { dof, scale: scale.max(tail_ratio(&reference)) }
        }
        other => other,
    };
    Ok((threshold, calibration))
}

/// The 99% quantile of `sorted` (chi-square(1)-scale scores of a reference, ascending) over
/// chi-square(1)'s (6.63), never below 1: how much heavier the reference's tail is than the law's
/// (1 for an empty reference).
pub(crate) fn tail_ratio(sorted: &[f64]) -> f64 {
    if sorted.is_empty() {
        return 1.0;
    }
    tail_ratio_of(poisonguard_core::quantile_sorted(sorted, 1.0 - AUTO_ALPHA))
}

/// [`tail_ratio`] of a reference whose 99% quantile is `q99`.
pub(crate) fn tail_ratio_of(q99: f64) -> f64 {
    (q99 / ScoreNull::ChiSquared { dof: 1.0 }.upper_quantile(AUTO_ALPHA)).max(1.0)
}

/// The poison estimate of a detector thresholded by [`gated_calibration`]'s automatic rule: the
/// `flagged` rows beyond the rule's false-flag rate among the `at_risk` rows of the classes it
/// may flag, with a binomial interval.
pub(crate) fn gated_estimate(id: DetectorId, flagged: usize, at_risk: usize) -> PoisonEstimate {
    PoisonEstimate::excess_over_null(
        flagged,
        at_risk,
        AUTO_ALPHA,
        ESTIMATE_LEVEL,
        poisonguard_core::EstimateMethod::new(
            id,
            format!(
                "flagged rows beyond the {AUTO_ALPHA} false-flag rate of its threshold (the other \
                 classes' 99% quantile) among the {at_risk} rows of classes it may flag"
            ),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// The blocked route (a class of more than one block of rows) computes the principal
    /// directions and projections of the centred copy, up to rounding and each direction's sign.
    #[test]
    fn blocked_principal_matches_the_centred_copy() {
        let (n, d) = (9_000, 6);
        // independent columns of distinct spreads, far from the origin
        let x = Array2::from_shape_fn((n + 7, d), |(i, j)| {
            let t = ((i * 7 + j) * 2_654_435_761 % 1_000_003) as f32 / 1_000_003.0;
            (t - 0.5) * (j + 1) as f32 + 100.0
        });
        let data = Dataset::new(x).unwrap();
        let rows: Vec<usize> = (3..n + 3).collect();
        let (mean, basis, y) = class_principal(&data, &rows, 3).unwrap();
        let (mean0, c) = centred(&data, &rows);
        let (basis0, y0) = crate::linalg::principal(&c.as_ref(), 3).unwrap();
        assert_eq!(mean, mean0);
        for j in 0..3 {
            let sign = if basis[(0, j)] * basis0[(0, j)] < 0.0 { -1.0 } else { 1.0 };
            for r in 0..d {
                assert!((basis[(r, j)] - sign * basis0[(r, j)]).abs() < 1e-9, "basis {r} {j}");
            }
            for i in 0..n {
                assert!((y[(i, j)] - sign * y0[(i, j)]).abs() < 1e-9, "row {i} {j}");
            }
        }
    }
}
