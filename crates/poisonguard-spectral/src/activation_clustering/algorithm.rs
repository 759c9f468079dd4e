use faer::Mat;
use poisonguard_core::{
    ClassFinding, ClassId, DataError, Dataset, Detection, Detector, DetectorId, Reason,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{ActivationClusteringParams, ActivationClusteringValidParams};
use crate::classes::{
    ClassGate, PerClass, Verdicts, class_principal, fit_classes, per_class_fitted,
};
use crate::error::{Error, Result};

/// Classes with fewer rows are not clustered (score -1 for all rows: never flagged).
const MIN_CLASS_ROWS: usize = 6;
/// Rows on which the silhouette is computed exactly; above, a seeded sample of this size.
const SILHOUETTE_ROWS: usize = 5_000;
/// k-means iteration cap and relative inertia tolerance (scikit-learn's defaults).
const KMEANS_MAX_ITER: usize = 300;
const KMEANS_TOL: f64 = 1e-4;

/// What the fit keeps of one class.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
struct ClassFit {
    mean: Vec<f64>,
    /// `d x dims` principal directions.
    #[serde(with = "poisonguard_linalg::mat_serde")]
    basis: Mat<f64>,
    large: Vec<f64>,
    small: Vec<f64>,
    share: f64,
    silhouette: f64,
    /// Standard error of the mean silhouette (sd of the rows' silhouettes over sqrt(rows)).
    silhouette_se: f64,
    flaggable: bool,
}

impl ClassGate for ClassFit {
    fn flaggable(&self) -> bool {
        self.flaggable
    }
}

impl ClassFit {
    fn reduce(&self, row: &[f32]) -> Vec<f64> {
        (0..self.basis.ncols())
            .map(|j| {
                row.iter()
                    .zip(&self.mean)
                    .enumerate()
                    .map(|(r, (&v, m))| (f64::from(v) - m) * self.basis[(r, j)])
                    .sum()
            })
            .collect()
    }

    fn score(&self, z: &[f64]) -> f64 {
        let gap = dist(&self.large, &self.small);
        if gap > 0.0 { (dist(z, &self.large) - dist(z, &self.small)) / gap } else { -1.0 }
    }
}

fn dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt()
}

fn d2(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Two-means on `rows` (each `dims` long): k-means++ seeding, Lloyd iterations; returns
/// `(assignment, centres, inertia)`.
fn two_means(points: &[Vec<f64>], rng: &mut SmallRng) -> (Vec<usize>, [Vec<f64>; 2], f64) {
    let n = points.len();
    let first = rng.random_range(0..n);
    let d0: Vec<f64> = points.iter().map(|p| d2(p, &points[first])).collect();
    let total: f64 = d0.iter().sum();
    let second = if total > 0.0 {
        let mut u = rng.random::<f64>() * total;
        let mut pick = n - 1;
        for (i, &w) in d0.iter().enumerate() {
            if u < w {
                pick = i;
                break;
            }
            u -= w;
        }
        pick
    } else {
        (first + 1) % n
    };
    let mut centres = [points[first].clone(), points[second].clone()];
    let mut assign = vec![0usize; n];
    let mut inertia = f64::INFINITY;
    for _ in 0..KMEANS_MAX_ITER {
        let mut next = 0.0;
        for (a, p) in assign.iter_mut().zip(points) {
            let (e0, e1) = (d2(p, &centres[0]), d2(p, &centres[1]));
            *a = usize::from(e1 < e0);
            next += e0.min(e1);
        }
        for (c, centre) in centres.iter_mut().enumerate() {
            let members: Vec<&Vec<f64>> =
                points.iter().zip(&assign).filter(|(_, a)| **a == c).map(|(p, _)| p).collect();
            if members.is_empty() {
                continue;
            }
            for (j, v) in centre.iter_mut().enumerate() {
                *v = members.iter().map(|p| p[j]).sum::<f64>() / members.len() as f64;
            }
        }
        let done = (inertia - next).abs() <= KMEANS_TOL * next.max(f64::MIN_POSITIVE);
        inertia = next;
        if done {
            break;
        }
    }
    (assign, centres, inertia)
}

/// The run of [`two_means`] with the smallest inertia among `n_init` (the first on ties).
fn best_two_means(
    points: &[Vec<f64>],
    rng: &mut SmallRng,
    n_init: usize,
) -> Option<(Vec<usize>, [Vec<f64>; 2], f64)> {
    let mut best: Option<(Vec<usize>, [Vec<f64>; 2], f64)> = None;
    for _ in 0..n_init {
        let run = two_means(points, rng);
        if best.as_ref().is_none_or(|b| run.2 < b.2) {
            best = Some(run);
        }
    }
    best
}

/// Activation clustering's clustering step on the rows of `points`: the best of `n_init`
/// k-means++ seeded two-means runs, the random stream seeded by `seed`; `(assignment,
/// inertia)`. Not part of the API: public only for `examples/linfa_compare.rs`, which measures
/// it against linfa's k-means.
#[doc(hidden)]
pub fn two_means_for_comparison(
    points: ndarray::ArrayView2<'_, f64>,
    seed: u64,
    n_init: usize,
) -> Option<(Vec<usize>, f64)> {
    let rows: Vec<Vec<f64>> = points.rows().into_iter().map(|r| r.to_vec()).collect();
    let mut rng = SmallRng::seed_from_u64(seed);
    best_two_means(&rows, &mut rng, n_init).map(|(a, _, inertia)| (a, inertia))
}

/// Mean silhouette of a two-cluster split (exact on the given points) and its standard error.
fn silhouette(points: &[Vec<f64>], assign: &[usize]) -> (f64, f64) {
    let n = points.len();
    let sizes =
        [assign.iter().filter(|&&a| a == 0).count(), assign.iter().filter(|&&a| a == 1).count()];
    if sizes[0] < 2 || sizes[1] < 2 {
        return (0.0, 0.0);
    }
    let mut values = Vec::with_capacity(n);
    for i in 0..n {
        let mut sums = [0.0f64; 2];
        for j in 0..n {
            if i != j {
                sums[assign[j]] += dist(&points[i], &points[j]);
            }
        }
        let own = assign[i];
        let a = sums[own] / (sizes[own] - 1) as f64;
        let b = sums[1 - own] / sizes[1 - own] as f64;
        let m = a.max(b);
        values.push(if m > 0.0 { (b - a) / m } else { 0.0 });
    }
    let nf = n as f64;
    let mean = values.iter().sum::<f64>() / nf;
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (nf - 1.0);
    (mean, (var / nf).sqrt())
}

fn fit_class(
    data: &Dataset,
    rows: &[usize],
    p: &ActivationClusteringValidParams,
    class: usize,
) -> Option<(ClassFit, Vec<f64>)> {
    let (n, d) = (rows.len(), data.n_features());
    let dims = p.dims.min(d).min(n - 1).max(1);
    let (mean, basis, y) = class_principal(data, rows, dims)?;
    let points: Vec<Vec<f64>> = (0..n).map(|i| (0..dims).map(|j| y[(i, j)]).collect()).collect();
    let mut rng = SmallRng::seed_from_u64(poisonguard_core::derive_seed(p.seed, class as u64));
    let (assign, centres, _) = best_two_means(&points, &mut rng, p.n_init)?;
    let count1 = assign.iter().filter(|&&a| a == 1).count();
    let (small_id, small_n) = if count1 <= n - count1 { (1, count1) } else { (0, n - count1) };
    let share = small_n as f64 / n as f64;
    let (silhouette, silhouette_se) = if n <= SILHOUETTE_ROWS {
        silhouette(&points, &assign)
    } else {
        let pick = rand::seq::index::sample(&mut rng, n, SILHOUETTE_ROWS).into_vec();
        let pts: Vec<Vec<f64>> = pick.iter().map(|&i| points[i].clone()).collect();
        let asg: Vec<usize> = pick.iter().map(|&i| assign[i]).collect();
        silhouette(&pts, &asg)
    };
    let fit = ClassFit {
        mean,
        basis,
        large: centres[1 - small_id].clone(),
        small: centres[small_id].clone(),
        share,
        silhouette,
        silhouette_se,
        flaggable: p.flag_all_classes,
    };
    let scores = points.iter().map(|z| fit.score(z)).collect();
    Some((fit, scores))
}

/// A fitted activation-clustering detector; see the [module docs](crate::activation_clustering).
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
#[serde(transparent)]
pub struct ActivationClustering {
    state: PerClass<ClassFit>,
}

impl ActivationClustering {
    /// What the detector declares about itself (see `poisonguard detectors`).
    pub const INFO: poisonguard_core::DetectorInfo = poisonguard_core::DetectorInfo {
        id: poisonguard_core::DetectorId::new("activation_clustering"),
        family: poisonguard_core::Family::Spectral,
        threat: poisonguard_core::Threat::Backdoor,
        needs_labels: true,
        training_scores: poisonguard_core::TrainingScores::InSample,
        randomized: true,
        score: "position of the row toward the smaller of two k-means clusters of its class (PCA to 10); rows score only in classes declared attacked",
        auto: poisonguard_core::AutoThreshold::Fixed(0.0),
        auto_threshold: "0: rows on the small cluster's side in a class declared attacked",
        p_value: "robust exponential tail of the training scores; p = 1 outside classes declared attacked",
        paper: "B. Chen, W. Carvalho, N. Baracaldo, H. Ludwig, B. Edwards, T. Lee, I. Molloy, B. Srivastava. Detecting Backdoor Attacks on Deep Neural Networks by Activation Clustering. AAAI SafeAI 2019",
    };

    /// The detector's id.
    pub const ID: DetectorId = Self::INFO.id;

    /// Default hyperparameters.
    ///
    /// # Example
    /// ```
    /// use ndarray::Array2;
    /// use poisonguard_core::{Dataset, Detector, FittedDetector, Labels, LabelValue};
    /// use poisonguard_spectral::ActivationClustering;
    /// let x = Array2::from_shape_fn((100, 4), |(i, j)| ((i * 13 + j * 7) % 17) as f32);
    /// let y: Vec<LabelValue> = (0..100).map(|i| LabelValue::Int(i % 2)).collect();
    /// let data = Dataset::new(x)?.with_labels(Labels::from_values(&y))?;
    /// let fitted = ActivationClustering::params().fit(&data)?;
    /// assert_eq!(fitted.class_findings().len(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn params() -> ActivationClusteringParams {
        ActivationClusteringParams::default()
    }
}

impl Detector for ActivationClusteringValidParams {
    type Fitted = ActivationClustering;
    type Error = Error;
    const INFO: poisonguard_core::DetectorInfo = ActivationClustering::INFO;

    fn fit(&self, data: &Dataset) -> Result<ActivationClustering> {
        let labels = data.require_classes(Self::INFO.id.as_str())?;
        let by_class = labels.rows_by_class();
        let (fitted, skipped) = fit_classes(labels, &by_class, MIN_CLASS_ROWS, |c, rows| {
            fit_class(data, rows, self, c)
        })?;

        // The rule is fitted on the uncapped scores. `Auto` is 0: a row's score is positive
        // exactly when it sits in its class's smaller cluster, and rows of classes the verdict
        // does not call attacked are capped at the threshold below.
        let rule = self.threshold.resolve(ActivationClustering::INFO.auto, None);
        let mut all = vec![-1.0f64; data.n_samples()];
        for (r, rows) in fitted.iter().zip(&by_class) {
            if let Some((_, s)) = r {
                for (&i, &v) in rows.iter().zip(s) {
                    all[i] = v;
                }
            }
        }
        let fitted_threshold = rule.fit(&all)?;
        let threshold = fitted_threshold.value();
        // Class verdicts: ART's size test, and the silhouette against the other classes' (or
        // ART's fixed threshold when set).
        let stats: Vec<Option<f64>> =
            fitted.iter().map(|r| r.as_ref().map(|(f, _)| f.silhouette)).collect();
        let se = |c: usize| fitted[c].as_ref().map_or(0.0, |(f, _)| f.silhouette_se);
        let verdicts = Verdicts::new(&stats, se, self.seed);
        let mut scores = vec![-1.0f64; data.n_samples()];
        let mut classes = Vec::with_capacity(by_class.len());
        let mut findings = Vec::new();
        for (c, (result, rows)) in fitted.into_iter().zip(&by_class).enumerate() {
            let Some((mut fit, class_scores)) = result else {
                classes.push(None);
                continue;
            };
            let z = verdicts.z[c];
            let split = match self.silhouette_threshold {
                Some(t) => fit.silhouette > t,
                None => verdicts.declared(c),
            };
            let small = fit.share < self.size_threshold;
            let attacked = small && split;
            fit.flaggable = attacked || self.flag_all_classes;
            for (&i, &s) in rows.iter().zip(&class_scores) {
                scores[i] = if fit.flaggable { s } else { s.min(threshold) };
            }
            findings.push(ClassFinding::new(
                ClassId(c as u32),
                labels.map().values()[c].clone(),
                rows.len(),
                if small { z.unwrap_or(0.0) } else { 0.0 },
                vec![
                    (poisonguard_core::ClassStatistic::Attacked, f64::from(u8::from(attacked))),
                    (poisonguard_core::ClassStatistic::SmallerShare, fit.share),
                    (poisonguard_core::ClassStatistic::Silhouette, fit.silhouette),
                    (poisonguard_core::ClassStatistic::VerdictZ, z.unwrap_or(f64::NAN)),
                ],
            ));
            classes.push(Some(fit));
        }
        let explain = |i: usize, _| {
            let c = labels.ids()[i].index();
            let (share, silhouette) =
                classes[c].as_ref().map_or((0.0, 0.0), |f| (f.share, f.silhouette));
            Reason::SmallCluster { class: labels.value_of_row(i).clone(), share, silhouette }
        };
        // p-values: the robust tail of the scores; rows of classes not declared attacked carry
        // no evidence (the paper's class gate, applied by `PerClass::new`)
        let training = Detection::with_threshold(scores, fitted_threshold, explain)?;
        let state = PerClass::new(
            &by_class,
            labels.map().clone(),
            data.n_features(),
            (classes, skipped),
            training,
            findings,
            None,
        );
        Ok(ActivationClustering { state })
    }
}

per_class_fitted!(ActivationClustering);

impl ActivationClustering {
    /// Scores new rows by their position between the two clusters of their class
    /// ([`poisonguard_core::FittedDetector::detect`]).
    fn detect_rows(&self, data: &Dataset) -> std::result::Result<Detection, DataError> {
        let (labels, ids) = self.state.new_rows(data, Self::ID)?;
        let x = data.features();
        self.state.score_rows(
            labels,
            &ids,
            (-1.0, (0.0, 0.0)),
            |fit, i| {
                let row: Vec<f32> = x.row(i).iter().copied().collect();
                (fit.score(&fit.reduce(&row)), (fit.share, fit.silhouette))
            },
            |class, _, &(share, silhouette)| Reason::SmallCluster {
                class: class.clone(),
                share,
                silhouette,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silhouette_of_two_tight_clusters_is_near_one() {
        let mut pts: Vec<Vec<f64>> = (0..20).map(|i| vec![f64::from(i % 3) * 0.01]).collect();
        pts.extend((0..5).map(|i| vec![10.0 + f64::from(i) * 0.01]));
        let assign: Vec<usize> = (0..25).map(|i| usize::from(i >= 20)).collect();
        assert!(silhouette(&pts, &assign).0 > 0.99);
        let mut rng = SmallRng::seed_from_u64(1);
        let (a, _, _) = two_means(&pts, &mut rng);
        assert!(a[..20].iter().all(|&v| v == a[0]) && a[20..].iter().all(|&v| v != a[0]));
    }
}
