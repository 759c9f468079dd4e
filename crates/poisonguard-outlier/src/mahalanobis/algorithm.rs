use faer::Mat;
use ndarray::{ArrayView1, ArrayView2};
use poisonguard_core::{Reason, ScoreNull};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::seq::index::sample;
use statrs::distribution::{ChiSquared, ContinuousCDF};

use super::hyperparams::MahalanobisModelParams;
use crate::error::{Error, Result};
use crate::model::{Outlier, OutlierModel};
use poisonguard_linalg::{a_b, at_b, sym_eigen};

/// A fitted robust Mahalanobis detector; see the [module docs](crate::mahalanobis).
pub type Mahalanobis = Outlier<MahalanobisModel>;

/// A location and covariance estimate with its pseudo-inverse and log-determinant.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
struct Estimate {
    location: Vec<f64>,
    #[serde(with = "poisonguard_linalg::mat_serde")]
    covariance: Mat<f64>,
    #[serde(with = "poisonguard_linalg::mat_serde")]
    precision: Mat<f64>,
    /// `ln det(covariance)`; `-inf` when singular.
    log_det: f64,
}

impl Estimate {
    /// Mean and maximum-likelihood covariance of the given rows of `x`.
    fn of_rows(x: &Mat<f64>, rows: &[usize]) -> Option<Estimate> {
        let d = x.ncols();
        let h = rows.len() as f64;
        // column by column: every column of `x` is contiguous (faer is column-major)
        let mut location = vec![0.0f64; d];
        let mut centred = Mat::<f64>::zeros(rows.len(), d);
        for (j, m) in location.iter_mut().enumerate() {
            let col = x.col_as_slice(j);
            *m = rows.iter().map(|&i| col[i]).sum::<f64>() / h;
            let out = centred.col_as_slice_mut(j);
            for (o, &i) in out.iter_mut().zip(rows) {
                *o = col[i] - *m;
            }
        }
        let mut covariance = at_b(centred.as_ref(), centred.as_ref());
        covariance *= faer::Scale(1.0 / h);
        Estimate::new(location, covariance)
    }

    fn new(location: Vec<f64>, covariance: Mat<f64>) -> Option<Estimate> {
        let d = covariance.nrows();
        let (vals, vecs) = sym_eigen(covariance.as_ref())?;
        let max = vals.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        // scipy.linalg.pinvh's cut-off: max(M, N) * eps * max |eigenvalue|
        let cutoff = d as f64 * f64::EPSILON * max;
        let log_det = if vals.iter().all(|&v| v > cutoff) {
            vals.iter().map(|v| v.ln()).sum()
        } else {
            f64::NEG_INFINITY
        };
        let inv: Vec<f64> = vals.iter().map(|&v| if v > cutoff { 1.0 / v } else { 0.0 }).collect();
        // pseudo-inverse V diag(inv) V^T
        let scaled = Mat::from_fn(d, d, |a, k| vecs[(a, k)] * inv[k]);
        let precision = a_b(scaled.as_ref(), vecs.transpose());
        Some(Estimate { location, covariance, precision, log_det })
    }

    /// Squared Mahalanobis distance of every row of `x`.
    fn distances(&self, x: &Mat<f64>) -> Vec<f64> {
        let (n, d) = (x.nrows(), x.ncols());
        let mut centred = Mat::<f64>::zeros(n, d);
        for j in 0..d {
            let m = self.location[j];
            for (o, &v) in centred.col_as_slice_mut(j).iter_mut().zip(x.col_as_slice(j)) {
                *o = v - m;
            }
        }
        let cp = a_b(centred.as_ref(), self.precision.as_ref());
        // sum over j in order for every row, column by column (contiguous reads)
        let mut out = vec![0.0f64; n];
        for j in 0..d {
            for ((o, &a), &b) in out.iter_mut().zip(cp.col_as_slice(j)).zip(centred.col_as_slice(j))
            {
                *o += a * b;
            }
        }
        out.iter_mut().for_each(|v| *v = v.max(0.0));
        out
    }
}

/// Indices of the `h` smallest values (ties by index), ascending by index. A linear-time
/// selection, not a sort: C-steps call it on every row at every iteration.
fn smallest(values: &[f64], h: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    if h < order.len() {
        order.select_nth_unstable_by(h, |&a, &b| values[a].total_cmp(&values[b]).then(a.cmp(&b)));
        order.truncate(h);
    }
    order.sort_unstable();
    order
}

/// C-steps from an initial support or estimate, at most `iterations`, as scikit-learn's
/// `_c_step`: stops when the determinant no longer decreases, keeping the better of the last two.
fn c_steps(x: &Mat<f64>, h: usize, start: Start, iterations: usize) -> Option<Estimate> {
    let support = match start {
        Start::Rows(rows) => rows,
        Start::Estimate(e) => smallest(&e.distances(x), h),
    };
    let mut current = Estimate::of_rows(x, &support)?;
    let mut remaining = iterations;
    let mut previous: Option<Estimate> = None;
    while remaining > 0 && current.log_det.is_finite() {
        if let Some(p) = &previous
            && current.log_det >= p.log_det
        {
            break;
        }
        let next = Estimate::of_rows(x, &smallest(&current.distances(x), h))?;
        previous = Some(std::mem::replace(&mut current, next));
        remaining -= 1;
    }
    match previous {
        Some(p) if current.log_det > p.log_det => Some(p),
        _ => Some(current),
    }
}

enum Start {
    Rows(Vec<usize>),
    Estimate(Estimate),
}

/// Runs C-steps from every start and keeps the `select` estimates of smallest determinant.
fn select_candidates(
    x: &Mat<f64>,
    h: usize,
    starts: Vec<Start>,
    select: usize,
    iterations: usize,
) -> Option<Vec<Estimate>> {
    // starts are independent: run them in parallel, collected in order (deterministic)
    #[cfg(feature = "parallel")]
    let found: Option<Vec<Estimate>> = {
        use rayon::prelude::*;
        starts.into_par_iter().map(|s| c_steps(x, h, s, iterations)).collect()
    };
    #[cfg(not(feature = "parallel"))]
    let found: Option<Vec<Estimate>> =
        starts.into_iter().map(|s| c_steps(x, h, s, iterations)).collect();
    let mut found = found?;
    // stable sort: ties keep the order of the starts, so the result is deterministic
    found.sort_by(|a, b| a.log_det.total_cmp(&b.log_det));
    found.truncate(select);
    Some(found)
}

fn random_starts(rng: &mut SmallRng, n: usize, h: usize, trials: usize) -> Vec<Start> {
    (0..trials).map(|_| Start::Rows(sample(rng, n, h).into_vec())).collect()
}

fn rows_of(x: &Mat<f64>, rows: &[usize]) -> Mat<f64> {
    Mat::from_fn(rows.len(), x.ncols(), |r, j| x[(rows[r], j)])
}

/// FAST-MCD (raw estimate), following scikit-learn's `fast_mcd`.
fn fast_mcd(x: &Mat<f64>, h: usize, rng: &mut SmallRng) -> Option<Estimate> {
    let n = x.nrows();
    if n <= 500 {
        let best = select_candidates(x, h, random_starts(rng, n, h, 30), 10, 2)?;
        let starts = best.into_iter().map(Start::Estimate).collect();
        return select_candidates(x, h, starts, 1, 30)?.pop();
    }
    let (mut n_subsets, mut subset_size) = (n / 300, n / (n / 300));
    if n_subsets > 5 {
        n_subsets = 5;
        subset_size = 300;
    }
    let h_subset = (subset_size as f64 * h as f64 / n as f64).ceil() as usize;
    let trials = (500 / n_subsets).max(10);
    let mut shuffled: Vec<usize> = (0..n).collect();
    shuffled.shuffle(rng);
    let mut pooled = Vec::new();
    for s in 0..n_subsets {
        let sub = rows_of(x, &shuffled[s * subset_size..(s + 1) * subset_size]);
        let starts = random_starts(rng, subset_size, h_subset, trials);
        pooled.extend(select_candidates(&sub, h_subset, starts, 10, 2)?);
    }
    let n_merged = n.min(1500);
    let h_merged = (n_merged as f64 * h as f64 / n as f64).ceil() as usize;
    let merged_rows = sample(rng, n, n_merged).into_vec();
    let merged = rows_of(x, &merged_rows);
    let select = if n > 1500 { 10 } else { 1 };
    let starts = pooled.into_iter().map(Start::Estimate).collect();
    let best = select_candidates(&merged, h_merged, starts, select, 30)?;
    let starts = best.into_iter().map(Start::Estimate).collect();
    select_candidates(x, h, starts, 1, 30)?.pop()
}

/// The re-weighted, consistency-corrected FAST-MCD estimate of the rows of `x`; `None` when an
/// eigendecomposition fails.
fn reweighted_mcd(x: &Mat<f64>, support_fraction: Option<f64>, seed: u64) -> Option<Estimate> {
    let (n, d) = (x.nrows(), x.ncols());
    let h = match support_fraction {
        Some(f) => ((f * n as f64).ceil() as usize).clamp(1, n),
        None => ((n + d + 1) as f64 / 2.0).ceil() as usize,
    }
    .min(n);
    let mut rng = SmallRng::seed_from_u64(seed);
    let raw = fast_mcd(x, h, &mut rng)?;
    // consistency at the normal model: the raw MCD covariance of the h = alpha n most central
    // rows underestimates the scatter by the factor of Croux & Haesbroeck (1999)
    let chi2 = ChiSquared::new(d as f64).ok()?;
    let chi2_2 = ChiSquared::new(d as f64 + 2.0).ok()?;
    let consistency = |alpha: f64| alpha / chi2_2.cdf(chi2.inverse_cdf(alpha));
    let factor = consistency(h as f64 / n as f64);
    let dist: Vec<f64> = raw.distances(x).into_iter().map(|v| v / factor).collect();
    // re-weighting: the rows inside the 97.5% chi-square quantile, again made consistent
    let cut = chi2.inverse_cdf(0.975);
    let keep: Vec<usize> = (0..n).filter(|&i| dist[i] < cut).collect();
    if keep.len() >= 2 {
        let kept = Estimate::of_rows(x, &keep)?;
        let mut cov = kept.covariance;
        cov *= faer::Scale(consistency(0.975));
        Estimate::new(kept.location, cov)
    } else {
        let mut cov = raw.covariance.clone();
        cov *= faer::Scale(factor);
        Estimate::new(raw.location.clone(), cov)
    }
}

/// Robust location and covariance of the rows of `x` (`n x d`, f64) by the re-weighted FAST-MCD
/// of this module (default support `h = ceil((n + d + 1) / 2)`, seeded): the estimator behind
/// [`Mahalanobis`], for other detectors that need a robust covariance (SPECTRE's whitening).
/// `None` when an eigendecomposition fails.
///
/// ```
/// use faer::Mat;
/// use poisonguard_outlier::mahalanobis::robust_covariance;
/// // 95 rows on a line-ish cloud and 5 far outliers: the robust mean ignores the outliers
/// let x = Mat::from_fn(100, 2, |i, j| if i < 95 { ((i * 7 + j * 3) % 11) as f64 } else { 1e3 });
/// let (mean, cov) = robust_covariance(&x, 0).unwrap();
/// assert!(mean[0] < 11.0 && cov[(0, 0)] < 50.0);
/// ```
pub fn robust_covariance(x: &Mat<f64>, seed: u64) -> Option<(Vec<f64>, Mat<f64>)> {
    reweighted_mcd(x, None, seed).map(|e| (e.location, e.covariance))
}

/// One fitted group of [`Mahalanobis`]: the re-weighted robust location and precision.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
pub struct MahalanobisModel {
    estimate: Estimate,
    n_features: usize,
}

fn to_f64(x: ArrayView2<'_, f32>) -> Mat<f64> {
    Mat::from_fn(x.nrows(), x.ncols(), |i, j| f64::from(x[[i, j]]))
}

impl OutlierModel for MahalanobisModel {
    type Params = MahalanobisModelParams;
    const INFO: poisonguard_core::DetectorInfo = poisonguard_core::DetectorInfo {
        id: poisonguard_core::DetectorId::new("mahalanobis"),
        family: poisonguard_core::Family::Outlier,
        threat: poisonguard_core::Threat::InjectedSamples,
        needs_labels: false,
        training_scores: poisonguard_core::TrainingScores::InSample,
        randomized: true,
        score: "squared robust Mahalanobis distance from the FAST-MCD centre (re-weighted)",
        auto: poisonguard_core::AutoThreshold::Null,
        auto_threshold: "99% quantile of chi-square(d), scaled up when the median score exceeds the law's",
        p_value: "robust exponential tail of the training scores (median and 90th percentile); not chi-square(d): real tails are heavier",
        paper: "P. J. Rousseeuw, K. Van Driessen. A Fast Algorithm for the Minimum Covariance Determinant Estimator. Technometrics 1999",
    };

    fn min_rows(_: &Self::Params) -> usize {
        2
    }

    fn fit(params: &Self::Params, x: ArrayView2<'_, f32>, seed: u64) -> Result<(Self, Vec<f64>)> {
        let d = x.ncols();
        crate::model::check_covariance_width("mahalanobis", d)?;
        let x = to_f64(x);
        let estimate = reweighted_mcd(&x, params.support_fraction, seed)
            .ok_or(Error::EigenNotConverged { detector: "mahalanobis" })?;
        let scores = estimate.distances(&x);
        Ok((Self { estimate, n_features: d }, scores))
    }

    fn score(&self, x: ArrayView2<'_, f32>) -> Result<Vec<f64>> {
        Ok(self.estimate.distances(&to_f64(x)))
    }

    fn explain(
        &self,
        _row: ArrayView1<'_, f32>,
        score: f64,
        _: &dyn Fn(usize) -> String,
    ) -> Option<Reason> {
        Some(Reason::RobustDistance { d2: score, dof: self.n_features })
    }

    fn null(&self) -> Option<ScoreNull> {
        Some(ScoreNull::ChiSquared { dof: self.n_features as f64 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn ignores_a_cluster_of_outliers() {
        // 90 rows on a tight line + 10 far rows: the classical covariance is inflated by them,
        // the MCD is not, so the far rows get huge distances and the bulk small ones
        let x = Array2::from_shape_fn((100, 2), |(i, j)| {
            if i < 90 { (i as f32 * 0.37).sin() * (1.0 + j as f32) } else { 50.0 + j as f32 }
        });
        let (_, d) =
            MahalanobisModel::fit(&MahalanobisModelParams { support_fraction: None }, x.view(), 1)
                .unwrap();
        let bulk_max = d[..90].iter().cloned().fold(0.0, f64::max);
        let far_min = d[90..].iter().cloned().fold(f64::INFINITY, f64::min);
        assert!(far_min > 100.0 * bulk_max.max(1.0), "bulk max {bulk_max}, far min {far_min}");
    }
}
