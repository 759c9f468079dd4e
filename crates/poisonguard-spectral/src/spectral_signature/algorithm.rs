use poisonguard_core::{
    AUTO_ALPHA, Calibration, ClassFinding, ClassId, DataError, Dataset, Detection, Detector,
    DetectorId, ESTIMATE_LEVEL, LabelMap, PoisonEstimate, Reason, ScoreNull, ThresholdRule,
};

use super::hyperparams::{SignatureScore, SpectralSignatureParams, SpectralSignatureValidParams};
use crate::classes::{
    ClassGate, ClassRows, PerClass, centred, fit_classes, per_class_fitted, tail_ratio_of,
};
use crate::error::{Error, Result};
use crate::linalg::{Iteration, TopEigen, top_eigen, top_eigen_of_covariance};
use poisonguard_linalg::Moments;

/// Median of the chi-square distribution with one degree of freedom.
const CHI2_1_MEDIAN: f64 = 0.454_936_423_119_572_7;
/// Classes with fewer rows are not scored (score 0).
const MIN_CLASS_ROWS: usize = 3;

/// What the fit keeps of one class to score rows.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
struct ClassFit {
    mean: Vec<f64>,
    direction: Vec<f64>,
    /// Robust variance along `direction`; 0 when the class has no spread along it.
    scale2: f64,
    /// `<mean, direction>`: the uncentred projection is the centred one plus this.
    offset: f64,
    /// Which score.
    kind: SignatureScore,
    /// How much heavier the other classes' tail is than chi-square(1)'s (>= 1): the p-value of
    /// a score `s` is `P(chi2(1) > s / tail)`.
    tail: f64,
}

impl ClassGate for ClassFit {}

impl ClassFit {
    fn projection(&self, row: impl Iterator<Item = f32>) -> f64 {
        projection(row, &self.mean, &self.direction)
    }

    /// The p-value of a centred score `s` ([`tail_inflation`]).
    fn p_value(&self, s: f64) -> f64 {
        Calibration::ChiSquared { dof: 1.0, scale: self.tail }.p_value(s)
    }

    /// The score of a row with centred projection `p`.
    fn score(&self, p: f64) -> f64 {
        if self.scale2 <= 0.0 {
            return 0.0;
        }
        match self.kind {
            SignatureScore::Centred => p * p / self.scale2,
            SignatureScore::Reference => (p + self.offset).abs() / self.scale2.sqrt(),
        }
    }
}

/// `<row - mean, direction>`.
fn projection(row: impl Iterator<Item = f32>, mean: &[f64], direction: &[f64]) -> f64 {
    row.zip(mean).zip(direction).map(|((x, m), v)| (f64::from(x) - m) * v).sum()
}

/// A fitted spectral-signature detector; see the [module docs](crate::spectral_signature).
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
#[serde(transparent)]
pub struct SpectralSignature {
    state: PerClass<ClassFit>,
}

impl SpectralSignature {
    /// What the detector declares about itself (see `poisonguard detectors`).
    pub const INFO: poisonguard_core::DetectorInfo = poisonguard_core::DetectorInfo {
        id: poisonguard_core::DetectorId::new("spectral_signature"),
        family: poisonguard_core::Family::Spectral,
        threat: poisonguard_core::Threat::Backdoor,
        needs_labels: true,
        training_scores: poisonguard_core::TrainingScores::InSample,
        randomized: true,
        score: "squared projection of the centred row onto its class's top singular direction, in units of the class's robust variance along it",
        auto: poisonguard_core::AutoThreshold::Null,
        auto_threshold: "99% quantile of chi-square(1)",
        p_value: "the larger of chi-square(1) scaled up to the other classes' 99% quantile and a group test: rows at least as far out, binomial against the other classes' tail",
        paper: "B. Tran, J. Li, A. Madry. Spectral Signatures in Backdoor Attacks. NeurIPS 2018",
    };

    /// The detector's id.
    pub const ID: DetectorId = Self::INFO.id;

    /// Default hyperparameters.
    ///
    /// # Example: fit on a labelled dataset
    /// ```
    /// use ndarray::Array2;
    /// use poisonguard_core::{Dataset, Detector, FittedDetector, Labels, LabelValue};
    /// use poisonguard_spectral::SpectralSignature;
    /// let x = Array2::from_shape_fn((40, 3), |(i, j)| ((i * 7 + j * 3) % 11) as f32);
    /// let y: Vec<LabelValue> = (0..40).map(|i| LabelValue::Int(i % 2)).collect();
    /// let data = Dataset::new(x)?.with_labels(Labels::from_values(&y))?;
    /// let fitted = SpectralSignature::params().fit(&data)?;
    /// assert_eq!(fitted.training().scores().len(), 40);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn params() -> SpectralSignatureParams {
        SpectralSignatureParams::default()
    }
}

fn fit_class(
    data: &Dataset,
    rows: &[usize],
    p: &SpectralSignatureValidParams,
    class: usize,
) -> Option<(ClassFit, TopEigen, Vec<f64>)> {
    let x = ClassRows::new(data, rows);
    let it = Iteration {
        max_iter: p.max_iter,
        tol: p.tol,
        seed: poisonguard_core::derive_seed(p.seed, class as u64),
    };
    let eig = top_eigen(&x, it)?;
    let proj = x.projections(&eig.vector);
    let fit = class_fit(x.into_mean(), &eig, &proj, p.score);
    Some((fit, eig, proj))
}

/// What the fit keeps of a class with mean `mean`, top eigenpair `eig` and its rows' centred
/// projections `proj` on the top direction: the robust variance along it is the median squared
/// projection over chi-square(1)'s median (`lambda1` when that is 0).
fn class_fit(mean: Vec<f64>, eig: &TopEigen, proj: &[f64], kind: SignatureScore) -> ClassFit {
    let mut sq: Vec<f64> = proj.iter().map(|p| p * p).collect();
    sq.sort_by(f64::total_cmp);
    let mut scale2 = poisonguard_core::quantile_sorted(&sq, 0.5) / CHI2_1_MEDIAN;
    if scale2 <= 0.0 {
        scale2 = eig.lambda1;
    }
    let offset = mean.iter().zip(&eig.vector).map(|(m, v)| m * v).sum();
    ClassFit { mean, direction: eig.vector.clone(), scale2, offset, kind, tail: 1.0 }
}

/// Each class's tail inflation (1 for a class `fitted(c)` denies): the 99% quantile of the
/// centred scores of the *other* fitted classes over chi-square(1)'s (6.63), never below 1.
///
/// The chi-square(1) law of the centred score holds when a clean class is Gaussian along its
/// top direction. Embeddings often are not (ReLU units: a clean class of breast_cancer's hidden
/// layer has 2-3% of its rows beyond the law's 99% quantile). Backdoored rows sit in the tail of
/// their own class, so the tail is read off the other classes, which share the representation:
/// a class's own poison cannot widen its law, and the p-value at the tail's 99% quantile is
/// 0.01, as in the auto threshold's reading of the law. Poison spread over every class (injected
/// outliers) widens every class's law; the outlier family reads those rows.
fn tail_inflation(sorted: &[Vec<f64>], fitted: impl Fn(usize) -> bool) -> Vec<f64> {
    // one sort of every fitted row, not one of the other classes per class: an order statistic
    // of the others is read off it and the class's own sorted scores (`kth_without`)
    let mut all: Vec<f64> = sorted.iter().flatten().copied().collect();
    all.sort_by(f64::total_cmp);
    sorted
        .iter()
        .enumerate()
        .map(|(c, class)| {
            let n = all.len() - class.len();
            if !fitted(c) || n == 0 {
                return 1.0;
            }
            // `quantile_sorted` of the others at 99%, from their two order statistics
            let pos = (1.0 - AUTO_ALPHA) * (n - 1) as f64;
            let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
            let (a, b) = (kth_without(&all, class, lo), kth_without(&all, class, hi));
            tail_ratio_of(a + (b - a) * (pos - lo as f64))
        })
        .collect()
}

/// Each class's scores in ascending order (`total_cmp`), empty for a class `fitted(c)` denies:
/// what [`tail_inflation`] and [`group_p_values`] read the classes' tails from.
fn sorted_by_class(
    scores: &[f64],
    by_class: &[Vec<usize>],
    fitted: impl Fn(usize) -> bool,
) -> Vec<Vec<f64>> {
    by_class
        .iter()
        .enumerate()
        .map(|(c, rows)| {
            let mut v: Vec<f64> =
                if fitted(c) { rows.iter().map(|&i| scores[i]).collect() } else { Vec::new() };
            v.sort_by(f64::total_cmp);
            v
        })
        .collect()
}

/// The `j`-th smallest (from 0) of the multiset `all` minus its sub-multiset `part` (both
/// sorted by `total_cmp`): the first value `v` of `all` with more than `j` elements of the
/// difference at or below it. `j` < `all.len() - part.len()`.
fn kth_without(all: &[f64], part: &[f64], j: usize) -> f64 {
    let at_or_below = |s: &[f64], v: f64| s.partition_point(|x| x.total_cmp(&v).is_le());
    // the difference's count at or below `all[i]` grows with `i`: binary search on `i`
    let i = all.partition_point(|&v| at_or_below(all, v) - at_or_below(part, v) <= j);
    all[i]
}

/// The group sizes the group test looks at: 1, 2, 3, 4, then about 1.41x apart, up to `n`.
fn group_ranks(n: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut r = 1usize;
    while r <= n {
        out.push(r);
        r = (r + 1).max((r as f64 * std::f64::consts::SQRT_2).round() as usize);
    }
    out
}

/// The group p-values of one class's rows `order`, most extreme first (`score(i)` row `i`'s
/// score, `tail(s)` the reference's conformal tail at `s`), as `(row, p)` pairs.
///
/// With `n_c` rows, the test of size `r` (one of the `m` [`group_ranks`]) at threshold `s` is
/// `P(Binomial(n_c, tail(s)) >= r)`: how surprising `r` rows at or above `s` are in rows
/// exchangeable with the reference. A row ranked `rho` (score `s_rho`) is one of `r` rows at or
/// above `s_rho` for the largest size `r <= rho`, and one of the `r` rows at or above the
/// class's `r`-th score `s_(r)` for every size `r >= rho`; its group p-value is `m` times the
/// smallest of those tests, at most 1. Each test at a size `r` is at least the one at `s_(r)`
/// (the highest threshold `r` rows reach), so a row's group p-value <= `a` only when some size's
/// test at `s_(r)` is <= `a / m`: Bonferroni over the sizes keeps it valid.
fn group_test(
    order: &[usize],
    score: impl Fn(usize) -> f64,
    tail: impl Fn(f64) -> f64,
) -> Vec<(usize, f64)> {
    use statrs::distribution::{Binomial, DiscreteCDF};
    let n_c = order.len() as u64;
    let test =
        |r: usize, s: f64| Binomial::new(tail(s).min(1.0), n_c).map_or(1.0, |b| b.sf(r as u64 - 1));
    let ranks = group_ranks(order.len());
    // each size's test at its own threshold, then the smallest over the sizes from each up
    let mut from: Vec<f64> = ranks.iter().map(|&r| test(r, score(order[r - 1]))).collect();
    for g in (0..from.len().saturating_sub(1)).rev() {
        from[g] = from[g].min(from[g + 1]);
    }
    let m = ranks.len() as f64;
    order
        .iter()
        .enumerate()
        .map(|(rank0, &i)| {
            // sizes up to the row's rank: the largest one, at the row's own score
            let below = ranks.partition_point(|&r| r <= rank0 + 1);
            let own = test(ranks[below - 1], score(i));
            let above = from.get(ranks.partition_point(|&r| r <= rank0)).copied().unwrap_or(1.0);
            (i, (m * own.min(above)).min(1.0))
        })
        .collect()
}

/// `(1 + #{x in sorted slices >= s}) / (N + 1)`: the conformal tail at `s` of the `N` values
/// of `sorted` (each slice ascending).
fn conformal_tail(sorted: &[&[f64]], s: f64) -> f64 {
    let n: usize = sorted.iter().map(|v| v.len()).sum();
    let above: usize = sorted.iter().map(|v| v.len() - v.partition_point(|&x| x < s)).sum();
    (1 + above) as f64 / (n + 1) as f64
}

/// The training p-values: each row's `law` p-value, raised to its class's group p-value
/// ([`group_test`]) where that is larger ([`SpectralSignature`]'s module docs, "P-value"). The
/// reference of class `c` is the other fitted classes' scores (`sorted`, from
/// [`sorted_by_class`]); a class with no reference (the only fitted class) keeps the law.
fn group_p_values(
    scores: &[f64],
    by_class: &[Vec<usize>],
    sorted: &[Vec<f64>],
    fitted: impl Fn(usize) -> bool + Sync,
    law: &[f64],
) -> Vec<f64> {
    // one class's group p-values, as (row, p) pairs; classes in parallel
    let class_groups = |(c, rows): (usize, &Vec<usize>)| -> Vec<(usize, f64)> {
        let others: Vec<&[f64]> = (0..by_class.len())
            .filter(|&o| o != c && fitted(o))
            .map(|o| sorted[o].as_slice())
            .collect();
        if !fitted(c) || others.iter().all(|v| v.is_empty()) {
            return Vec::new();
        }
        let mut order = rows.clone();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        group_test(&order, |i| scores[i], |s| conformal_tail(&others, s))
    };
    #[cfg(feature = "parallel")]
    let groups: Vec<Vec<(usize, f64)>> = {
        use rayon::prelude::*;
        by_class.par_iter().enumerate().map(class_groups).collect()
    };
    #[cfg(not(feature = "parallel"))]
    let groups: Vec<Vec<(usize, f64)>> = by_class.iter().enumerate().map(class_groups).collect();
    let mut p = law.to_vec();
    for (i, group) in groups.into_iter().flatten() {
        p[i] = p[i].max(group);
    }
    p
}

/// One fitted class: what the fit keeps, its top eigenpair, its rows' centred projections.
type FittedClass = (ClassFit, TopEigen, Vec<f64>);

impl Detector for SpectralSignatureValidParams {
    type Fitted = SpectralSignature;
    type Error = Error;
    const INFO: poisonguard_core::DetectorInfo = SpectralSignature::INFO;

    fn fit(&self, data: &Dataset) -> Result<SpectralSignature> {
        let labels = data.require_classes(Self::INFO.id.as_str())?;
        let by_class = labels.rows_by_class();
        let (fitted, skipped) = fit_classes(labels, &by_class, MIN_CLASS_ROWS, |c, rows| {
            fit_class(data, rows, self, c)
        })?;

        let label_of = |i: usize| labels.value_of_row(i).clone();
        self.assemble(labels.map(), &by_class, fitted, skipped, data.n_features(), &label_of)
    }
}

impl SpectralSignatureValidParams {
    /// The fitted detector from every class's fit (`None`: too small), `by_class[c]` the rows of
    /// class `c` in the order of its projections: scores, findings, threshold, p-values and the
    /// estimate. `label_of(i)` is row `i`'s label.
    fn assemble(
        &self,
        map: &LabelMap,
        by_class: &[Vec<usize>],
        fitted: Vec<Option<FittedClass>>,
        skipped: Vec<poisonguard_core::SkippedClass>,
        n_features: usize,
        label_of: &dyn Fn(usize) -> poisonguard_core::LabelValue,
    ) -> Result<SpectralSignature> {
        let n: usize = by_class.iter().map(Vec::len).sum();
        let mut scores = vec![0.0f64; n];
        let mut z = vec![0.0f64; n];
        let mut classes = Vec::with_capacity(by_class.len());
        let mut findings = Vec::new();
        let mut at_risk = 0;
        for (c, (result, rows)) in fitted.into_iter().zip(by_class).enumerate() {
            let Some((fit, eig, proj)) = result else {
                classes.push(None);
                continue;
            };
            at_risk += rows.len();
            for (&i, &p) in rows.iter().zip(&proj) {
                scores[i] = fit.score(p);
                z[i] = if fit.scale2 > 0.0 { p / fit.scale2.sqrt() } else { 0.0 };
            }
            let ratio = if eig.lambda2 > 0.0 { eig.lambda1 / eig.lambda2 } else { 0.0 };
            let explained = if eig.trace > 0.0 { eig.lambda1 / eig.trace } else { 0.0 };
            let inflation = if fit.scale2 > 0.0 { eig.lambda1 / fit.scale2 } else { 0.0 };
            findings.push(ClassFinding::new(
                ClassId(c as u32),
                map.values()[c].clone(),
                rows.len(),
                inflation,
                vec![
                    (poisonguard_core::ClassStatistic::VarianceInflation, inflation),
                    (poisonguard_core::ClassStatistic::SpectralRatio, ratio),
                    (poisonguard_core::ClassStatistic::ExplainedVariance, explained),
                    (poisonguard_core::ClassStatistic::TopEigenvalue, eig.lambda1),
                ],
            ));
            classes.push(Some(fit));
        }
        // the centred score has a chi-square(1) null; the reference score none
        let null = match self.score {
            SignatureScore::Centred => Some(ScoreNull::ChiSquared { dof: 1.0 }),
            SignatureScore::Reference => None,
        };
        let explain = |i, _| Reason::SpectralProjection { class: label_of(i), z: z[i] };
        let training = match &null {
            // the centred score's p-values: each class's law scaled by the other classes' tail
            Some(law) => {
                let threshold = self.threshold.fit_with_null(&scores, Some(law))?;
                let fitted: Vec<bool> = classes.iter().map(Option::is_some).collect();
                let sorted = sorted_by_class(&scores, by_class, |c| fitted[c]);
                let tails = tail_inflation(&sorted, |c| fitted[c]);
                let mut p = vec![1.0; n];
                for ((fit, rows), tail) in classes.iter_mut().zip(by_class).zip(tails) {
                    if let Some(fit) = fit {
                        fit.tail = tail;
                        rows.iter().for_each(|&i| p[i] = fit.p_value(scores[i]));
                    }
                }
                let p = group_p_values(&scores, by_class, &sorted, |c| fitted[c], &p);
                Detection::with_calibration(scores, threshold, Calibration::Given, explain)?
                    .with_p_values(p)
            }
            None => Detection::with_null(scores, &self.threshold, None, explain)?,
        };
        let estimate = (null.is_some() && self.threshold == ThresholdRule::Auto).then(|| {
            PoisonEstimate::excess_over_null(
                training.n_flagged(),
                at_risk,
                AUTO_ALPHA,
                ESTIMATE_LEVEL,
                poisonguard_core::EstimateMethod::new(
                    SpectralSignature::ID,
                    format!(
                        "flagged rows beyond the {AUTO_ALPHA} false-flag rate of its \
                         chi-square(1) threshold among {at_risk} scored rows"
                    ),
                ),
            )
        });
        let state = PerClass::new(
            by_class,
            map.clone(),
            n_features,
            (classes, skipped),
            training,
            findings,
            estimate,
        );
        Ok(SpectralSignature { state })
    }

    /// Fits on several labelled shards of rows (same columns) as a fit on their concatenation,
    /// in shard order, would, holding one class's moments per class instead of the rows: pass 1
    /// merges every class's count, mean and co-moment matrix over the shards
    /// ([`Moments`](poisonguard_linalg::Moments)), whose covariance gives the class's top
    /// direction (exact eigendecomposition of the `d x d` matrix); pass 2 projects every
    /// shard's rows; the robust scale, scores, threshold and p-values then follow as in
    /// [`Detector::fit`]. The classes are the union of the shards' labels. Equal to the fit on
    /// all rows up to rounding where that fit is exact (`min(class rows, features) <= 128`), and
    /// up to its subspace iteration's tolerance beyond.
    ///
    /// # Errors
    /// No shards, shards of different widths or without labels, a class whose
    /// eigendecomposition fails.
    pub fn fit_shards(&self, shards: &[Dataset]) -> Result<SpectralSignature> {
        let id = SpectralSignature::ID.as_str();
        let d = Dataset::shard_width(shards)?;
        let (map, shard_ids) = Dataset::shard_classes(shards, id)?;
        let k = map.n_classes();
        // every shard's rows by class, and the rows of each class in concatenation order
        let mut local: Vec<Vec<Vec<usize>>> = Vec::with_capacity(shards.len());
        let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); k];
        let mut offset = 0;
        for (s, ids) in shards.iter().zip(&shard_ids) {
            let mut rows = vec![Vec::new(); k];
            for (i, c) in ids.iter().enumerate() {
                rows[c.index()].push(i);
                by_class[c.index()].push(offset + i);
            }
            offset += s.n_samples();
            local.push(rows);
        }
        let skipped = poisonguard_core::SkippedClass::of(&by_class, &map, MIN_CLASS_ROWS);
        let fit_class = |c: usize| -> Result<Option<FittedClass>> {
            if by_class[c].len() < MIN_CLASS_ROWS {
                return Ok(None);
            }
            let mut moments: Option<Moments> = None;
            for (s, rows) in shards.iter().zip(&local) {
                if rows[c].is_empty() {
                    continue;
                }
                let (mean, centred) = centred(s, &rows[c]);
                let part = Moments::of_centred(mean, centred.as_ref());
                match moments.as_mut() {
                    None => moments = Some(part),
                    Some(m) => m.merge(part).map_err(|(left, right)| DataError::Detector {
                        detector: id,
                        message: format!("cannot merge moments of {left} and {right} features"),
                    })?,
                }
            }
            let Moments { n, mean, comoment } = moments.ok_or(DataError::NoRows)?;
            let mut cov = comoment;
            cov *= faer::Scale(1.0 / n as f64);
            let eig = top_eigen_of_covariance(cov.as_ref())
                .ok_or_else(|| Error::EigenNotConverged { class: map.values()[c].to_string() })?;
            let mut proj = Vec::with_capacity(n);
            for (s, rows) in shards.iter().zip(&local) {
                let x = s.features();
                for &i in &rows[c] {
                    proj.push(projection(x.row(i).iter().copied(), &mean, &eig.vector));
                }
            }
            let fit = class_fit(mean, &eig, &proj, self.score);
            Ok(Some((fit, eig, proj)))
        };
        let fitted = (0..k).map(fit_class).collect::<Result<Vec<_>>>()?;
        let mut class_of = vec![0usize; offset];
        for (c, rows) in by_class.iter().enumerate() {
            for &g in rows {
                class_of[g] = c;
            }
        }
        let label_of = |g: usize| map.values()[class_of[g]].clone();
        self.assemble(&map, &by_class, fitted, skipped, d, &label_of)
    }
}

per_class_fitted!(SpectralSignature);

impl SpectralSignature {
    /// Scores new rows against their class's fit ([`poisonguard_core::FittedDetector::detect`]).
    fn detect_rows(&self, data: &Dataset) -> std::result::Result<Detection, DataError> {
        let (labels, ids) = self.state.new_rows(data, Self::ID)?;
        let x = data.features();
        let detection = self.state.score_rows(
            labels,
            &ids,
            (0.0, 0.0),
            |fit, i| {
                let p = fit.projection(x.row(i).iter().copied());
                let z = if fit.scale2 > 0.0 { p / fit.scale2.sqrt() } else { 0.0 };
                (fit.score(p), z)
            },
            |class, _, &z| Reason::SpectralProjection { class: class.clone(), z },
        )?;
        // the reference score keeps the training's tail calibration; the centred score's law
        // is its class's
        let centred =
            self.state.classes.iter().flatten().any(|f| f.kind == SignatureScore::Centred);
        if !centred {
            return Ok(detection);
        }
        // one row at a time: a row's p-value must not depend on the batch it comes in (the
        // batched audit scores a table larger than memory batch by batch)
        let p = ids
            .iter()
            .zip(detection.scores())
            .map(|(c, &s)| self.state.classes[c.index()].as_ref().map_or(1.0, |fit| fit.p_value(s)))
            .collect();
        Ok(detection.with_p_values(p))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tail_inflation_reads_the_other_classes_as_one_sort_of_them_would() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
        // heavy-tailed scores with ties, four classes of unequal sizes, one not fitted
        let scores: Vec<f64> =
            (0..900).map(|_| (rng.random::<f64>() * 20.0).powi(3).round() / 50.0).collect();
        let by_class: Vec<Vec<usize>> = vec![
            (0..100).collect(),
            (100..450).collect(),
            (450..460).collect(),
            (460..900).collect(),
        ];
        let fitted = |c: usize| c != 2;
        let naive: Vec<f64> = (0..4)
            .map(|c| {
                if !fitted(c) {
                    return 1.0;
                }
                let mut r: Vec<f64> = (0..4)
                    .filter(|&o| o != c && fitted(o))
                    .flat_map(|o| by_class[o].iter().map(|&i| scores[i]))
                    .collect();
                r.sort_by(f64::total_cmp);
                crate::classes::tail_ratio(&r)
            })
            .collect();
        let fast =
            super::tail_inflation(&super::sorted_by_class(&scores, &by_class, fitted), fitted);
        assert_eq!(fast, naive);
        assert!(fast.iter().any(|&t| t > 1.0), "{fast:?}");
    }

    use super::*;
    use ndarray::Array2;
    use poisonguard_core::FittedDetector;
    use poisonguard_core::metrics::roc_auc;
    use poisonguard_core::{LabelValue, Labels};
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    /// Two Gaussian-ish classes in `d` dims; in class 0 a share `eps` of rows carries a shift of
    /// `delta` along a random unit direction (a planted backdoor sub-population).
    fn planted(
        n_per_class: usize,
        d: usize,
        eps: f64,
        delta: f32,
        seed: u64,
    ) -> (Dataset, Vec<bool>) {
        let mut rng = SmallRng::seed_from_u64(seed);
        let n = 2 * n_per_class;
        let mut x = Array2::from_shape_fn((n, d), |_| {
            // sum of uniforms: roughly normal, unit variance
            (0..12).map(|_| rng.random::<f32>()).sum::<f32>() - 6.0
        });
        let mut dir: Vec<f32> = (0..d).map(|_| rng.random_range(-1.0..1.0)).collect();
        let norm = dir.iter().map(|a| a * a).sum::<f32>().sqrt();
        dir.iter_mut().for_each(|a| *a /= norm);
        let n_poison = (eps * n_per_class as f64).round() as usize;
        let mut truth = vec![false; n];
        for i in 0..n_poison {
            truth[i] = true;
            for j in 0..d {
                x[[i, j]] += delta * dir[j];
            }
        }
        let y: Vec<LabelValue> =
            (0..n).map(|i| LabelValue::Int((i >= n_per_class) as i64)).collect();
        let data = Dataset::new(x).unwrap().with_labels(Labels::from_values(&y)).unwrap();
        (data, truth)
    }

    #[test]
    fn finds_planted_subpopulation_small_and_large_d() {
        // exact route (d = 32) and subspace-iteration route (min(n, d) = 200 > 128)
        for (n, d) in [(500, 32), (400, 200)] {
            let (data, truth) = planted(n, d, 0.1, 8.0, 11);
            let fit = SpectralSignature::params().fit(&data).unwrap();
            let auc = roc_auc(fit.training().scores(), &truth).unwrap();
            assert!(auc > 0.98, "d = {d}: auc {auc}");
            // the attacked class ranks first
            let top =
                fit.class_findings().iter().max_by(|a, b| a.score().total_cmp(&b.score())).unwrap();
            assert_eq!(top.label(), &LabelValue::Int(0));
        }
    }

    /// The p-values read the representation's tail off the other classes: heavy-tailed clean
    /// classes are not reported as backdoors, and a planted sub-population keeps tiny p-values
    /// because its own class's poison does not widen its law.
    #[test]
    fn p_values_read_the_tail_off_the_other_classes() {
        // three clean classes whose rows are Gaussian with a spread of 1 (95%) or 4 (5%)
        let mut rng = SmallRng::seed_from_u64(5);
        let (n, d) = (1200, 16);
        let spread: Vec<f32> =
            (0..n).map(|_| if rng.random::<f64>() < 0.05 { 4.0 } else { 1.0 }).collect();
        let x = Array2::from_shape_fn((n, d), |(i, _)| {
            spread[i] * ((0..12).map(|_| rng.random::<f32>()).sum::<f32>() - 6.0)
        });
        let y: Vec<LabelValue> = (0..n).map(|i| LabelValue::Int((i % 3) as i64)).collect();
        let data = Dataset::new(x).unwrap().with_labels(Labels::from_values(&y)).unwrap();
        let fit = SpectralSignature::params().fit(&data).unwrap();
        let share_below =
            |p: &mut dyn Iterator<Item = f64>| p.filter(|&v| v < 0.01).count() as f64 / n as f64;
        let law = Calibration::ChiSquared { dof: 1.0, scale: 1.0 };
        let plain = share_below(&mut fit.training().scores().iter().map(|&s| law.p_value(s)));
        let read = share_below(&mut fit.training().p_values().iter().copied());
        // the chi-square law alone: far more than 1% of clean rows below p = 0.01; scaled by the
        // other classes' 99% quantile: about 1% (each class's own quantile is one draw)
        assert!(plain > 0.03, "plain law {plain}");
        assert!(read <= 0.02, "scaled law {read}");

        // a planted sub-population (10% of class 0, 8 sd out) beside a clean Gaussian class: its
        // law is class 1's, not widened by its own poison
        let (data, truth) = planted(500, 32, 0.1, 8.0, 11);
        let fit = SpectralSignature::params().fit(&data).unwrap();
        let p = fit.training().p_values();
        let worst = (0..truth.len()).filter(|&i| truth[i]).map(|i| p[i]).fold(0.0, f64::max);
        let clean = (0..truth.len()).filter(|&i| !truth[i]).map(|i| p[i]).fold(1.0, f64::min);
        // measured: planted rows 6e-9 to 7e-4, clean rows from 0.008 up
        assert!(worst < 1e-3 && worst < clean, "planted rows up to {worst}, clean from {clean}");
    }

    /// A lone row far out along its class's top direction is no sub-population: the law calls
    /// it (p ~ 0), the group test does not, and the training p-value is the larger. A planted
    /// group as far out keeps a tiny p-value.
    #[test]
    fn a_lone_far_row_is_not_a_group() {
        let (mut data, _) = planted(300, 16, 0.0, 0.0, 3);
        let mut x = data.features().to_owned();
        x[[0, 0]] = 40.0;
        let labels = data.labels().unwrap().clone();
        data = Dataset::new(x).unwrap().with_labels(labels).unwrap();
        let fit = SpectralSignature::params().fit(&data).unwrap();
        let class0 = fit.state.classes[0].as_ref().unwrap();
        let law = class0.p_value(fit.training().scores()[0]);
        let p = fit.training().p_values()[0];
        assert!(law < 1e-100, "law {law}");
        // one row beyond every other class's: F = 1 / (N + 1), q_1 = 1 - (1 - F)^300 ~ 0.63
        assert!(p > 0.5, "group {p}");

        // ten rows (3%) that far, beyond every row of the other class: the top eight get
        // 16 sizes x P(Binomial(300, 1/301) >= 8) ~ 1.6e-4 or less (the 9th and 10th count as a
        // group of 8, the largest size on the grid below their rank; 11 would take in a clean row)
        let (data, truth) = planted(300, 16, 0.033, 40.0, 3);
        let fit = SpectralSignature::params().fit(&data).unwrap();
        let p = fit.training().p_values();
        let worst = (0..truth.len()).filter(|&i| truth[i]).map(|i| p[i]).fold(0.0, f64::max);
        assert!(worst < 2e-4, "planted group up to {worst}");
    }

    /// New rows get their class's law alone, row by row: detect on the training rows gives
    /// p-values no larger than the training's (which also ask for a group), whatever the batch.
    #[test]
    fn new_rows_get_the_law_row_by_row() {
        let (data, _) = planted(500, 32, 0.1, 8.0, 11);
        let fit = SpectralSignature::params().fit(&data).unwrap();
        let again = fit.detect(&data).unwrap();
        let p = fit.training().p_values();
        assert!(again.p_values().iter().zip(p).all(|(a, b)| a <= b));
        let head = data.select_rows(&(0..40).collect::<Vec<_>>());
        assert_eq!(fit.detect(&head).unwrap().p_values(), &again.p_values()[..40]);
    }

    #[test]
    fn same_seed_same_scores_and_detect_matches_training() {
        let (data, _) = planted(300, 150, 0.05, 6.0, 5);
        let a = SpectralSignature::params().seed(3).fit(&data).unwrap();
        let b = SpectralSignature::params().seed(3).fit(&data).unwrap();
        assert_eq!(a.training(), b.training());
        let again = a.detect(&data).unwrap();
        for (s, t) in again.scores().iter().zip(a.training().scores()) {
            assert!((s - t).abs() <= 1e-9 * (1.0 + t.abs()));
        }
    }

    #[test]
    fn row_permutation_permutes_scores() {
        let (data, _) = planted(200, 10, 0.1, 6.0, 9);
        let n = data.n_samples();
        let perm: Vec<usize> = (0..n).rev().collect();
        let x = data.features().select(ndarray::Axis(0), &perm);
        let y: Vec<LabelValue> =
            perm.iter().map(|&i| data.labels().unwrap().value_of_row(i).clone()).collect();
        let permuted = Dataset::new(x).unwrap().with_labels(Labels::from_values(&y)).unwrap();
        let a = SpectralSignature::params().fit(&data).unwrap();
        let b = SpectralSignature::params().fit(&permuted).unwrap();
        for (k, &i) in perm.iter().enumerate() {
            let (s, t) = (a.training().scores()[i], b.training().scores()[k]);
            assert!((s - t).abs() <= 1e-8 * (1.0 + s.abs()), "row {i}: {s} vs {t}");
        }
    }

    #[test]
    fn degenerate_data() {
        // constant features: every score 0, nothing flagged
        let x = Array2::from_elem((10, 3), 1.5f32);
        let y: Vec<LabelValue> = (0..10).map(|i| LabelValue::Int(i % 2)).collect();
        let data = Dataset::new(x).unwrap().with_labels(Labels::from_values(&y)).unwrap();
        let fit = SpectralSignature::params().fit(&data).unwrap();
        assert!(fit.training().scores().iter().all(|&s| s == 0.0));
        assert_eq!(fit.training().n_flagged(), 0);
        // a class with two rows is left unscored; duplicates are fine
        let x = Array2::from_shape_fn((7, 2), |(i, j)| (i / 2 + j) as f32);
        let y: Vec<LabelValue> = [0, 0, 0, 0, 0, 1, 1].map(LabelValue::Int).to_vec();
        let data = Dataset::new(x).unwrap().with_labels(Labels::from_values(&y)).unwrap();
        let fit = SpectralSignature::params().fit(&data).unwrap();
        assert_eq!(&fit.training().scores()[5..], &[0.0, 0.0]);
        assert_eq!(fit.class_findings().len(), 1);
    }

    #[test]
    fn errors_instead_of_panics() {
        let x = Array2::from_elem((4, 2), 1.0f32);
        let unlabeled = Dataset::new(x.clone()).unwrap();
        assert!(matches!(
            SpectralSignature::params().fit(&unlabeled),
            Err(Error::Data(DataError::LabelsRequired { .. }))
        ));
        let one = unlabeled.with_labels(Labels::from_values(&vec![LabelValue::Int(1); 4])).unwrap();
        assert!(matches!(
            SpectralSignature::params().fit(&one),
            Err(Error::Data(DataError::SingleClass { .. }))
        ));
        assert!(matches!(
            SpectralSignature::params().threshold(ThresholdRule::Fixed(f64::NAN)).fit(&one),
            Err(Error::Param(_))
        ));
    }
}

#[cfg(test)]
mod autotraits {
    use super::*;

    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn params_models_and_errors_are_send_and_sync() {
        send_sync::<SpectralSignatureParams>();
        send_sync::<SpectralSignatureValidParams>();
        send_sync::<SpectralSignature>();
        send_sync::<Error>();
    }
}
