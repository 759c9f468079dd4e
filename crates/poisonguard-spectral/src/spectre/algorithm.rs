use faer::Mat;
use poisonguard_core::{
    ClassFinding, ClassId, DataError, Dataset, Detection, Detector, DetectorId, Reason,
    ThresholdRule,
};
use poisonguard_linalg::{a_b, at_b};

use crate::classes::{
    ClassGate, PerClass, ROW_BLOCK, Verdicts, class_principal, fit_classes, gated_calibration,
    gated_estimate, per_class_fitted,
};
use crate::linalg::{eig_desc, inv_sqrt};
use statrs::distribution::{ChiSquared, ContinuousCDF, Normal};

use super::{SpectreParams, SpectreValidParams};
use crate::error::{Error, Result};

/// Classes with fewer rows are not scored (score 0).
const MIN_CLASS_ROWS: usize = 8;
/// Rows of a class the robust covariance filter runs on (a seeded sample above).
const FILTER_ROWS: usize = 2_000;
/// Largest `k` searched: the robust covariance (FAST-MCD) is cubic in `k`; see the module docs.
const MAX_K: usize = 25;
/// Median of the chi-square distribution with one degree of freedom.
const CHI2_1_MEDIAN: f64 = 0.454_936_423_119_572_7;

/// What the fit keeps of one class to score rows.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
struct ClassFit {
    /// Class mean in feature space.
    mean: Vec<f64>,
    /// Top `k` principal directions, `d x k`.
    #[serde(with = "poisonguard_linalg::mat_serde")]
    basis: Mat<f64>,
    /// Mean of the kept rows in the `k` directions.
    centre: Vec<f64>,
    /// Whitening `k x k` times the eigenvectors of `M`: `y -> U^T W (y - centre)`.
    #[serde(with = "poisonguard_linalg::mat_serde")]
    projection: Mat<f64>,
    /// Eigen-weights of `M`, summing to 1.
    weights: Vec<f64>,
    /// Scale `c` and degrees of freedom `nu` with `tau / c ~ chi2(nu)` on clean rows.
    c: f64,
    nu: f64,
    /// Whether rows of this class may be flagged (class declared attacked, or all classes).
    flaggable: bool,
    /// The class verdict's p-value ([`Verdicts::p_value`]), the least p-value a row of a class
    /// not declared attacked carries (1 in models saved before it was kept).
    #[serde(default = "no_class_evidence")]
    class_p: f64,
}

/// [`ClassFit::class_p`] of a model saved without it.
fn no_class_evidence() -> f64 {
    1.0
}

impl ClassGate for ClassFit {
    fn flaggable(&self) -> bool {
        self.flaggable
    }
}

impl ClassFit {
    fn tau(&self, row: impl Iterator<Item = f32> + Clone) -> f64 {
        let k = self.centre.len();
        let y: Vec<f64> = (0..k)
            .map(|j| {
                row.clone()
                    .zip(&self.mean)
                    .enumerate()
                    .map(|(r, (v, m))| (f64::from(v) - m) * self.basis[(r, j)])
                    .sum::<f64>()
                    - self.centre[j]
            })
            .collect();
        (0..k)
            .map(|a| {
                let u: f64 = (0..k).map(|b| self.projection[(b, a)] * y[b]).sum();
                self.weights[a] * u * u
            })
            .sum()
    }

    fn score(&self, tau: f64) -> f64 {
        to_chi2_1(tau / self.c, self.nu)
    }
}

/// Maps a chi-square(`nu`) value to the chi-square(1) value with the same upper tail, through
/// the Wilson-Hilferty normal approximation (finite and monotone at any size).
fn to_chi2_1(x: f64, nu: f64) -> f64 {
    let v = 2.0 / (9.0 * nu);
    let z = ((x.max(0.0) / nu).cbrt() - (1.0 - v)) / v.sqrt();
    if z <= 0.0 {
        return 0.0;
    }
    if z > 37.0 {
        // the normal tail underflows; z^2 + 2 ln 2 is the limit of the exact map
        return z * z + 2.0 * std::f64::consts::LN_2;
    }
    let Ok(normal) = Normal::new(0.0, 1.0) else { return z * z };
    let q = normal.cdf(-z) / 2.0;
    let t = normal.inverse_cdf(q);
    t * t
}

/// Mean and maximum-likelihood covariance of `rows` of `y` in its first `k` columns.
fn mean_cov(y: &Mat<f64>, rows: &[usize], k: usize) -> (Vec<f64>, Mat<f64>) {
    let m = rows.len().max(1) as f64;
    let mut mean = vec![0.0f64; k];
    for &i in rows {
        for (j, mj) in mean.iter_mut().enumerate() {
            *mj += y[(i, j)];
        }
    }
    mean.iter_mut().for_each(|v| *v /= m);
    let c = Mat::from_fn(rows.len(), k, |r, j| y[(rows[r], j)] - mean[j]);
    let mut cov = at_b(c.as_ref(), c.as_ref());
    cov *= faer::Scale(1.0 / m);
    (mean, cov)
}

/// The covariance of the rows' first `k` coordinates whitened by `w` (symmetric), from the
/// covariance `cov_y` of all their coordinates: `w cov_y[..k, ..k] w`.
fn whitened_cov(cov_y: &Mat<f64>, k: usize, w: &Mat<f64>) -> Mat<f64> {
    let block = cov_y.as_ref().submatrix(0, 0, k, k);
    a_b(a_b(w.as_ref(), block).as_ref(), w.as_ref())
}

/// The quantum-entropy weights of a whitened covariance: eigenvalues `lambda`, weights
/// `exp(alpha (lambda - 1) / (lambda_max - 1))` normalized to sum 1 (uniform when no
/// eigenvalue exceeds 1), and the excess `tr(S M) / tr(M)`.
fn que_weights(vals: &[f64], alpha: f64) -> (Vec<f64>, f64) {
    let max = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let raw: Vec<f64> = if max > 1.0 + 1e-12 {
        vals.iter().map(|&l| (alpha * (l - 1.0) / (max - 1.0)).exp()).collect()
    } else {
        vec![1.0; vals.len()]
    };
    let total: f64 = raw.iter().sum();
    let w: Vec<f64> = raw.iter().map(|v| v / total).collect();
    let excess = vals.iter().zip(&w).map(|(l, wi)| l * wi).sum();
    (w, excess)
}

/// One class: `(fit, training scores, finding statistics)`.
fn fit_class(
    data: &Dataset,
    rows: &[usize],
    p: &SpectreValidParams,
    class: usize,
) -> Option<(ClassFit, Vec<f64>, [f64; 5])> {
    let (n, d) = (rows.len(), data.n_features());
    let dims = p.max_dims.min(d).min((n - 1) / 2).max(1);
    let (mean, basis, y) = class_principal(data, rows, dims)?;
    let seed = poisonguard_core::derive_seed(p.seed, class as u64);

    // SPECTRE's choice of k: the largest excess variance of the p-dimensional rows whitened by
    // the rows kept at k.
    let k_max = {
        let r = (dims.min(MAX_K) as f64).sqrt().floor() as usize;
        (r * r).max(1)
    };
    let sample: Vec<usize> = if n > FILTER_ROWS {
        use rand::SeedableRng;
        let mut rng = rand::rngs::SmallRng::seed_from_u64(poisonguard_core::derive_seed(seed, 13));
        let mut s = rand::seq::index::sample(&mut rng, n, FILTER_ROWS).into_vec();
        s.sort_unstable();
        s
    } else {
        (0..n).collect()
    };
    // the covariance of all the class's projected rows: whitening by `w` makes it `w cov_y w`
    // (the whitening centre does not move a covariance), so no whitened copy of the rows is made
    let all: Vec<usize> = (0..n).collect();
    let cov_y = mean_cov(&y, &all, dims).1;
    let limit = (2.0 * p.max_poison_share * sample.len() as f64).round() as usize;
    let mut best: Option<(f64, usize, Vec<usize>)> = None;
    let mut root = 1usize;
    while root * root <= k_max {
        let k = root * root;
        root += 1;
        let kept = if k == 1 {
            sample.clone()
        } else {
            super::filter::filter_rows(&y, &sample, k, p.max_poison_share, limit)
        };
        if kept.len() <= dims {
            continue;
        }
        let (_, cov) = mean_cov(&y, &kept, dims);
        let w = inv_sqrt(cov.as_ref())?;
        let (vals, _) = eig_desc(whitened_cov(&cov_y, dims, &w).as_ref())?;
        let (_, excess) = que_weights(&vals, p.alpha);
        if best.as_ref().is_none_or(|b| excess > b.0) {
            best = Some((excess, k, kept));
        }
    }
    let (excess, k, kept) = match best {
        Some(b) => b,
        None => (1.0, 1, (0..n).collect()),
    };

    // Scores at k: whiten by the kept rows, weight by M of the whitened covariance.
    let (centre, cov) = mean_cov(&y, &kept, k);
    let w = inv_sqrt(cov.as_ref())?;
    let (vals, u) = eig_desc(whitened_cov(&cov_y, k, &w).as_ref())?;
    let (weights, _) = que_weights(&vals, p.alpha);
    // The class verdict's statistic: along the class's top principal direction, the variance
    // over its robust estimate (median-centred, median of squares over the chi2(1) median);
    // about 1 for one Gaussian population, large when a minority sits far along it.
    let top_pc: Vec<f64> = (0..n).map(|i| y[(i, 0)]).collect();
    let inflation = variance_inflation(&top_pc);
    let log_se = log_inflation_se(&top_pc, seed);
    let projection = a_b(w.as_ref(), u.as_ref());
    // each row's whitened coordinates in the eigenbasis, `(y - centre) w u`, a block of rows at
    // a time
    let mut taus = Vec::with_capacity(n);
    for start in (0..n).step_by(ROW_BLOCK) {
        let len = ROW_BLOCK.min(n - start);
        let c = Mat::from_fn(len, k, |i, j| y[(start + i, j)] - centre[j]);
        let zu = a_b(c.as_ref(), projection.as_ref());
        taus.extend(
            (0..len).map(|i| (0..k).map(|a| weights[a] * zu[(i, a)] * zu[(i, a)]).sum::<f64>()),
        );
    }
    // Calibration on the class itself: tau is about c * chi2(nu), nu = 1 / sum(w^2)
    // (Satterthwaite), with the scale c taken from the median, as spectral signatures do: heavy
    // tails of real data and the rows left out of the covariance inflate every moment of tau, a
    // hidden minority does not move its median.
    let nu = 1.0 / weights.iter().map(|v| v * v).sum::<f64>();
    let mut sorted = taus.clone();
    sorted.sort_by(f64::total_cmp);
    let median_tau = poisonguard_core::quantile_sorted(&sorted, 0.5);
    let median_null = ChiSquared::new(nu).ok()?.inverse_cdf(0.5);
    let c_scale = if median_tau > 0.0 { median_tau / median_null } else { 1.0 / nu };
    let basis_k = Mat::from_fn(d, k, |r, j| basis[(r, j)]);
    let fit = ClassFit {
        mean,
        basis: basis_k,
        centre,
        projection,
        weights,
        c: c_scale,
        nu,
        flaggable: true,
        class_p: 1.0,
    };
    let scores = taus.iter().map(|&t| fit.score(t)).collect();
    let top = vals.first().copied().unwrap_or(0.0);
    Some((fit, scores, [k as f64, excess, top, inflation, log_se]))
}

/// Variance of `t` over its robust estimate (median-centred, median of squares over the
/// chi-square(1) median); about 1 for one Gaussian population, large when a minority sits far
/// along `t`.
fn variance_inflation(t: &[f64]) -> f64 {
    let n = t.len() as f64;
    let mean = t.iter().sum::<f64>() / n;
    let var = t.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    let mut work = t.to_vec();
    let med = median_of(&mut work);
    work.iter_mut().for_each(|v| *v = (*v - med) * (*v - med));
    let robust = median_of(&mut work) / CHI2_1_MEDIAN;
    if robust > 0.0 { var / robust } else { 1.0 }
}

/// `quantile_sorted(sorted values, 0.5)` by selection instead of a sort (the bootstrap of
/// [`log_inflation_se`] takes 400 medians per class); `values` is reordered.
fn median_of(values: &mut [f64]) -> f64 {
    let pos = 0.5 * (values.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    let (_, &mut low, above) = values.select_nth_unstable_by(lo, f64::total_cmp);
    let high =
        if hi == lo { low } else { above.iter().copied().min_by(f64::total_cmp).unwrap_or(low) };
    low + (high - low) * (pos - lo as f64)
}

/// Bootstrap replicates of the standard error of the log inflation.
const INFLATION_BOOTSTRAP: usize = 200;

/// Standard error of `ln variance_inflation(t)` over [`INFLATION_BOOTSTRAP`] seeded resamples of
/// the class's rows: how much the class's own verdict statistic moves with the sample.
fn log_inflation_se(t: &[f64], seed: u64) -> f64 {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::SmallRng::seed_from_u64(poisonguard_core::derive_seed(seed, 11));
    let n = t.len();
    let mut resample = vec![0.0f64; n];
    let logs: Vec<f64> = (0..INFLATION_BOOTSTRAP)
        .map(|_| {
            resample.iter_mut().for_each(|v| *v = t[rng.random_range(0..n)]);
            variance_inflation(&resample).max(f64::MIN_POSITIVE).ln()
        })
        .collect();
    let m = logs.iter().sum::<f64>() / logs.len() as f64;
    (logs.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (logs.len() - 1) as f64).sqrt()
}

/// A fitted SPECTRE detector; see the [module docs](crate::spectre).
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
#[serde(transparent)]
pub struct Spectre {
    state: PerClass<ClassFit>,
}

impl Spectre {
    /// What the detector declares about itself (see `poisonguard detectors`).
    pub const INFO: poisonguard_core::DetectorInfo = poisonguard_core::DetectorInfo {
        id: poisonguard_core::DetectorId::new("spectre"),
        family: poisonguard_core::Family::Spectral,
        threat: poisonguard_core::Threat::Backdoor,
        needs_labels: true,
        training_scores: poisonguard_core::TrainingScores::InSample,
        randomized: true,
        score: "quantum-entropy score of the row in its class's robustly whitened top principal directions (chi-square(1) scale); rows score only in classes declared attacked",
        auto: poisonguard_core::AutoThreshold::Null,
        auto_threshold: "99% quantile of the scores of the classes not declared attacked",
        p_value: "chi-square(1), scaled to the median and 99% quantile of the classes not declared attacked; outside classes declared attacked, at least the class verdict's p-value",
        paper: "J. Hayase, W. Kong, R. Somani, S. Oh. SPECTRE: Defending Against Backdoor Attacks Using Robust Statistics. ICML 2021",
    };

    /// The detector's id.
    pub const ID: DetectorId = Self::INFO.id;

    /// Default hyperparameters.
    ///
    /// # Example
    /// ```
    /// use ndarray::Array2;
    /// use poisonguard_core::{Dataset, Detector, FittedDetector, Labels, LabelValue};
    /// use poisonguard_spectral::Spectre;
    /// let x = Array2::from_shape_fn((120, 6), |(i, j)| ((i * 37 + j * 11) % 23) as f32);
    /// let y: Vec<LabelValue> = (0..120).map(|i| LabelValue::Int(i % 2)).collect();
    /// let data = Dataset::new(x)?.with_labels(Labels::from_values(&y))?;
    /// let fitted = Spectre::params().fit(&data)?;
    /// assert_eq!(fitted.training().scores().len(), 120);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn params() -> SpectreParams {
        SpectreParams::default()
    }
}

impl Detector for SpectreValidParams {
    type Fitted = Spectre;
    type Error = Error;
    const INFO: poisonguard_core::DetectorInfo = Spectre::INFO;

    fn fit(&self, data: &Dataset) -> Result<Spectre> {
        let labels = data.require_classes(Self::INFO.id.as_str())?;
        let by_class = labels.rows_by_class();
        let (fitted, skipped) = fit_classes(labels, &by_class, MIN_CLASS_ROWS, |c, rows| {
            fit_class(data, rows, self, c)
        })?;

        let mut scores = vec![0.0f64; data.n_samples()];
        let mut dims = vec![0usize; data.n_samples()];
        let mut fits: Vec<Option<(ClassFit, [f64; 5])>> = Vec::with_capacity(by_class.len());
        for (result, rows) in fitted.into_iter().zip(&by_class) {
            let Some((fit, class_scores, stats)) = result else {
                fits.push(None);
                continue;
            };
            for (&i, &s) in rows.iter().zip(&class_scores) {
                scores[i] = s;
                dims[i] = stats[0] as usize;
            }
            fits.push(Some((fit, stats)));
        }
        // Class verdicts: log variance inflation against the other classes.
        let log_inflation: Vec<Option<f64>> = fits
            .iter()
            .map(|f| f.as_ref().map(|(_, s)| s[3].max(f64::MIN_POSITIVE).ln()))
            .collect();
        let se = |c: usize| fits[c].as_ref().map_or(0.0, |(_, s)| s[4]);
        let verdicts = Verdicts::new(&log_inflation, se, self.seed);
        let attacked: Vec<bool> = (0..fits.len()).map(|c| verdicts.declared(c)).collect();
        // The rows of the classes not declared attacked are the empirical null of the
        // calibrated score.
        let (threshold, calibration) = gated_calibration(
            &scores,
            &by_class,
            |c| self.flag_all_classes || !attacked[c],
            self.threshold,
        )?;
        let uncapped = scores.clone();
        let mut classes = Vec::with_capacity(fits.len());
        let mut findings = Vec::new();
        let mut at_risk = 0;
        for (c, (entry, rows)) in fits.into_iter().zip(&by_class).enumerate() {
            let Some((mut fit, [k, excess, top, inflation, _])) = entry else {
                classes.push(None);
                continue;
            };
            let z = verdicts.z[c];
            let attacked = attacked[c];
            fit.flaggable = attacked || self.flag_all_classes;
            fit.class_p = verdicts.p_value(c);
            if fit.flaggable {
                at_risk += rows.len();
            } else {
                for &i in rows {
                    scores[i] = scores[i].min(threshold.value());
                }
            }
            findings.push(ClassFinding::new(
                ClassId(c as u32),
                labels.map().values()[c].clone(),
                rows.len(),
                z.unwrap_or(0.0),
                vec![
                    (poisonguard_core::ClassStatistic::Attacked, f64::from(u8::from(attacked))),
                    (poisonguard_core::ClassStatistic::VerdictZ, z.unwrap_or(f64::NAN)),
                    (poisonguard_core::ClassStatistic::VarianceInflation, inflation),
                    (poisonguard_core::ClassStatistic::Dims, k),
                    (poisonguard_core::ClassStatistic::ExcessVariance, excess),
                    (poisonguard_core::ClassStatistic::TopWhitenedEigenvalue, top),
                ],
            ));
            classes.push(Some(fit));
        }
        let explain = |i: usize, s: f64| Reason::QuantumEntropy {
            class: labels.value_of_row(i).clone(),
            score: s,
            dims: dims[i],
        };
        // p-values: the chi-square(1) null, its scale checked against the rows of the classes
        // not declared attacked (as the threshold is); rows of those classes carry their class
        // verdict's evidence at most (`grade`, after the paper's class gate of `PerClass::new`).
        let training = Detection::with_calibration(scores, threshold, calibration, explain)?;
        let estimate = (self.threshold == ThresholdRule::Auto)
            .then(|| gated_estimate(Spectre::ID, training.n_flagged(), at_risk));
        let mut state = PerClass::new(
            &by_class,
            labels.map().clone(),
            data.n_features(),
            (classes, skipped),
            training,
            findings,
            estimate,
        );
        let ids = labels.ids();
        grade(&state.classes, &mut state.training, |i| Some((ids[i].index(), uncapped[i])));
        Ok(Spectre { state })
    }
}

per_class_fitted!(Spectre);

/// The class evidence graded into the rows of the classes not declared attacked: row `i` of
/// class `c` with uncapped score `s` (`row(i) = Some((c, s))`) gets `max(p_c, p(s))`, the class
/// verdict's p-value and the row's own under the detector's calibration, where the gate gave it
/// a p-value of 1. A row of a clean class then has a p-value at or below `t` only when its
/// class's is (probability at most `t` when the class p-value is valid), and a minority that
/// `spectre` ranks first in a class whose verdict is borderline keeps the class's evidence.
fn grade(
    classes: &[Option<ClassFit>],
    detection: &mut Detection,
    row: impl Fn(usize) -> Option<(usize, f64)>,
) {
    let calibration = detection.calibration();
    detection.grade_evidence(|i| {
        let (c, s) = row(i)?;
        let fit = classes[c].as_ref()?;
        (!fit.flaggable).then(|| fit.class_p.max(calibration.p_value(s)))
    });
}

impl Spectre {
    /// Scores new rows against their class's fit ([`poisonguard_core::FittedDetector::detect`]).
    fn detect_rows(&self, data: &Dataset) -> std::result::Result<Detection, DataError> {
        let (labels, ids) = self.state.new_rows(data, Self::ID)?;
        let x = data.features();
        let uncapped: Vec<Option<f64>> = ids
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let fit = self.state.classes[c.index()].as_ref()?;
                Some(fit.score(fit.tau(x.row(i).iter().copied())))
            })
            .collect();
        let mut detection = self.state.score_rows(
            labels,
            &ids,
            (0.0, 0),
            |fit, i| (uncapped[i].unwrap_or(0.0), fit.centre.len()),
            |class, score, &dims| Reason::QuantumEntropy { class: class.clone(), score, dims },
        )?;
        grade(&self.state.classes, &mut detection, |i| uncapped[i].map(|s| (ids[i].index(), s)));
        Ok(detection)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use poisonguard_core::FittedDetector;

    #[test]
    fn bad_parameters_are_refused() {
        use poisonguard_core::{LabelValue, Labels, ParamGuard};
        for share in [0.0, 0.5, f64::NAN] {
            assert!(Spectre::params().max_poison_share(share).check_ref().is_err(), "{share}");
        }
        let x = ndarray::Array2::from_shape_fn((60, 3), |(i, j)| ((i * 7 + j * 3) % 11) as f32);
        let y: Vec<LabelValue> = (0..60).map(|i| LabelValue::Int((i % 2) as i64)).collect();
        let data = Dataset::new(x).unwrap().with_labels(Labels::from_values(&y)).unwrap();
        assert!(Spectre::params().max_poison_share(0.7).fit(&data).is_err());
        assert!(Spectre::params().max_poison_share(0.25).fit(&data).is_ok());
    }

    #[test]
    fn chi2_map_is_monotone_and_calibrated() {
        // chi2(1) itself maps to about itself
        let q99 = 6.634_896_601;
        assert!((to_chi2_1(q99, 1.0) - q99).abs() < 0.6, "{}", to_chi2_1(q99, 1.0));
        // chi2(10)'s 99% quantile maps near chi2(1)'s
        assert!((to_chi2_1(23.209, 10.0) - q99).abs() < 0.3, "{}", to_chi2_1(23.209, 10.0));
        let mut last = 0.0;
        for t in 0..2000 {
            let v = to_chi2_1(t as f64 * 0.5, 4.0);
            assert!(v >= last && v.is_finite());
            last = v;
        }
    }

    use ndarray::Array2;
    use poisonguard_core::{LabelValue, Labels};

    fn dataset(x: Array2<f32>, y: &[i64]) -> Dataset {
        let y: Vec<LabelValue> = y.iter().map(|&v| LabelValue::Int(v)).collect();
        Dataset::new(x).unwrap().with_labels(Labels::from_values(&y)).unwrap()
    }

    #[test]
    fn degenerate_classes_score_zero_or_finite() {
        // class 0: 40 rows with two constant columns; class 1: 5 rows (too few, scored 0)
        let mut y = vec![0i64; 40];
        y.extend([1; 5]);
        let x = Array2::from_shape_fn(
            (45, 4),
            |(i, j)| if j < 2 { 3.0 } else { ((i * 7 + j) % 11) as f32 },
        );
        let fit = Spectre::params().fit(&dataset(x, &y)).unwrap();
        let s = fit.training().scores();
        assert!(s.iter().all(|v| v.is_finite()));
        assert!(s[40..].iter().all(|&v| v == 0.0));
        // one class only is an error, as for every per-class detector
        let x = Array2::from_shape_fn((20, 3), |(i, j)| (i + j) as f32);
        assert!(Spectre::params().fit(&dataset(x, &[0; 20])).is_err());
    }

    #[test]
    fn same_seed_same_scores_and_detect_matches_training() {
        let x = Array2::from_shape_fn((200, 6), |(i, j)| {
            ((i * 37 + j * 11) % 23) as f32 + (i % 3) as f32
        });
        let y: Vec<i64> = (0..200).map(|i| (i % 4) as i64).collect();
        let data = dataset(x, &y);
        let a = Spectre::params().flag_all_classes(true).fit(&data).unwrap();
        let b = Spectre::params().flag_all_classes(true).fit(&data).unwrap();
        assert_eq!(a.training(), b.training());
        let again = a.detect(&data).unwrap();
        for (u, v) in again.scores().iter().zip(a.training().scores()) {
            assert!((u - v).abs() <= 1e-6 * v.abs().max(1.0), "{u} vs {v}");
        }
    }

    #[test]
    fn que_weights_favour_the_excess_direction() {
        let (w, excess) = que_weights(&[3.0, 1.0, 1.0], 4.0);
        assert!(w[0] > 0.9 && (w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(excess > 2.8);
        let (w, excess) = que_weights(&[0.9, 0.8], 4.0);
        assert_eq!(w, vec![0.5, 0.5]);
        assert!((excess - 0.85).abs() < 1e-12);
    }
}
