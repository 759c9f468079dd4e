use faer::Mat;
use poisonguard_core::{
    ClassFinding, ClassId, ClassStatistic, DataError, Dataset, Detection, Detector, DetectorId,
    ParamError, Reason, ThresholdRule,
};
use poisonguard_linalg::{a_b, at_b};

use super::ScanDecompositionValidParams;
use crate::classes::{
    ClassGate, PerClass, Verdicts, fit_classes, gated_calibration, gated_estimate, per_class_fitted,
};
use crate::error::{Error, Result};
use crate::linalg::eig_desc;

/// Classes with fewer rows are not scored (score 0).
const MIN_CLASS_ROWS: usize = 8;
/// Principal directions whose variance is below this share of the largest are dropped.
const REDUCE_RCOND: f64 = 1e-9;
/// Eigenvalues of `S_e` below this share of the largest are treated as zero when whitening.
const RCOND: f64 = 1e-10;
/// EM of the global model: relative change of the covariances that ends it, and most iterations.
const EM_TOL: f64 = 1e-6;
const EM_MAX_ITER: usize = 100;
/// Most Lloyd iterations of a class's two-component split.
const LLOYD_MAX_ITER: usize = 100;
/// Rows per block when accumulating covariances and projecting.
const BLOCK: usize = 4_096;

/// The global model: reduction to `p` principal directions and whitening by `S_e`.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
struct Global {
    /// Mean of the rows the model was fitted on, in feature space.
    mean: Vec<f64>,
    /// `d x p`: feature space to whitened coordinates, `z = (x - mean) map`.
    #[serde(with = "poisonguard_linalg::mat_serde")]
    map: Mat<f64>,
    /// Eigenvalues (`p`) and eigenvectors (`p x p`) of `S_u` in whitened coordinates.
    su_values: Vec<f64>,
    #[serde(with = "poisonguard_linalg::mat_serde")]
    su_vectors: Mat<f64>,
}

impl Global {
    fn dims(&self) -> usize {
        self.map.ncols()
    }

    /// `rows` of `data` in the model's whitened coordinates.
    fn project(&self, data: &Dataset, rows: &[usize]) -> Mat<f64> {
        project(data, rows, &self.mean, &self.map)
    }

    /// Posterior mean of a class identity given the sum `s` of its `n` whitened rows.
    fn identity(&self, s: &[f64], n: f64) -> Vec<f64> {
        posterior_identity(&self.su_values, &self.su_vectors, s, n)
    }
}

/// `(n S_u + I)^-1 S_u s` in whitened coordinates, with `S_u = V diag(l) V^T` there: the
/// posterior mean of a class identity given the sum `s` of its `n` rows.
fn posterior_identity(l: &[f64], v: &Mat<f64>, s: &[f64], n: f64) -> Vec<f64> {
    let p = l.len();
    let coef: Vec<f64> = (0..p)
        .map(|a| {
            let proj: f64 = (0..p).map(|b| v[(b, a)] * s[b]).sum();
            proj * l[a] / (n * l[a] + 1.0)
        })
        .collect();
    (0..p).map(|b| (0..p).map(|a| v[(b, a)] * coef[a]).sum()).collect()
}

/// `rows` of `data` as `(x - mean) map` (`rows.len() x map.ncols()`), in blocks of rows.
fn project(data: &Dataset, rows: &[usize], mean: &[f64], map: &Mat<f64>) -> Mat<f64> {
    let x = data.features();
    let d = x.ncols();
    let mut out = Mat::zeros(rows.len(), map.ncols());
    for (b, chunk) in rows.chunks(BLOCK).enumerate() {
        let c = Mat::from_fn(chunk.len(), d, |r, j| f64::from(x[[chunk[r], j]]) - mean[j]);
        let z = a_b(c.as_ref(), map.as_ref());
        for r in 0..chunk.len() {
            for j in 0..map.ncols() {
                out[(b * BLOCK + r, j)] = z[(r, j)];
            }
        }
    }
    out
}

/// Sum of squared differences.
fn dist2(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(u, v)| (u - v) * (u - v)).sum()
}

/// Feature mean over `rows` and the top principal directions of their covariance (variance above
/// [`REDUCE_RCOND`] of the largest, at most `max_dims`), as `d x p`.
fn reduction(data: &Dataset, rows: &[usize], max_dims: usize) -> Option<(Vec<f64>, Mat<f64>)> {
    let x = data.features();
    let d = x.ncols();
    let mut mean = vec![0.0f64; d];
    for &i in rows {
        mean.iter_mut().zip(x.row(i)).for_each(|(m, &v)| *m += f64::from(v));
    }
    mean.iter_mut().for_each(|m| *m /= rows.len() as f64);
    let mut cov = Mat::<f64>::zeros(d, d);
    for chunk in rows.chunks(BLOCK) {
        let c = Mat::from_fn(chunk.len(), d, |r, j| f64::from(x[[chunk[r], j]]) - mean[j]);
        cov += at_b(c.as_ref(), c.as_ref());
    }
    let (vals, vecs) = eig_desc(cov.as_ref())?;
    let top = vals.first().copied().unwrap_or(0.0);
    let p = vals.iter().take_while(|&&v| v > REDUCE_RCOND * top && v > 0.0).count().min(max_dims);
    Some((mean, Mat::from_fn(d, p.max(1), |r, j| vecs[(r, j)])))
}

/// The paper's EM of the global model on the reduced rows `y` (`n x p`, centred on the fit rows'
/// mean) of the fit rows of each class: returns `(S_u, S_e)`.
fn global_em(y: &Mat<f64>, classes: &[Vec<usize>]) -> Option<(Mat<f64>, Mat<f64>)> {
    let p = y.ncols();
    let used: Vec<&Vec<usize>> = classes.iter().filter(|r| !r.is_empty()).collect();
    let counts: Vec<f64> = used.iter().map(|r| r.len() as f64).collect();
    let n: f64 = counts.iter().sum();
    let sums: Vec<Vec<f64>> = used
        .iter()
        .map(|rows| (0..p).map(|j| rows.iter().map(|&i| y[(i, j)]).sum()).collect())
        .collect();
    let means: Vec<Vec<f64>> =
        sums.iter().zip(&counts).map(|(s, &c)| s.iter().map(|v| v / c).collect()).collect();
    // pooled within-class scatter, fixed across iterations
    let mut within = Mat::<f64>::zeros(p, p);
    for (rows, m) in used.iter().zip(&means) {
        let c = Mat::from_fn(rows.len(), p, |r, j| y[(rows[r], j)] - m[j]);
        within += at_b(c.as_ref(), c.as_ref());
    }
    let denom = (n - 1.0).max(1.0);
    // M-step: the covariances (numpy's `cov`, n - 1) of the rows' identities and residuals
    let m_step = |u: &[Vec<f64>]| {
        let ubar: Vec<f64> = (0..p)
            .map(|j| u.iter().zip(&counts).map(|(uk, c)| c * uk[j]).sum::<f64>() / n)
            .collect();
        let diff: Vec<Vec<f64>> = u.iter().zip(&means).map(|(uk, mk)| sub(mk, uk)).collect();
        let ebar: Vec<f64> = (0..p)
            .map(|j| diff.iter().zip(&counts).map(|(dk, c)| c * dk[j]).sum::<f64>() / n)
            .collect();
        let su = Mat::from_fn(p, p, |a, b| {
            u.iter()
                .zip(&counts)
                .map(|(uk, c)| c * (uk[a] - ubar[a]) * (uk[b] - ubar[b]))
                .sum::<f64>()
                / denom
        });
        let se = Mat::from_fn(p, p, |a, b| {
            (within[(a, b)]
                + diff.iter().zip(&counts).map(|(dk, c)| c * dk[a] * dk[b]).sum::<f64>()
                - n * ebar[a] * ebar[b])
                / denom
        });
        (su, se)
    };
    let (mut su, mut se) = m_step(&means);
    for _ in 0..EM_MAX_ITER {
        // E-step in the coordinates that whiten S_e: identity = (n S_u + I)^-1 S_u s
        let (w, back, l, v) = whitening(&su, &se)?;
        let u: Vec<Vec<f64>> = sums
            .iter()
            .zip(&counts)
            .map(|(s, &c)| {
                let sz: Vec<f64> = (0..p).map(|a| (0..p).map(|b| w[(b, a)] * s[b]).sum()).collect();
                let iz = posterior_identity(&l, &v, &sz, c);
                (0..p).map(|b| (0..p).map(|a| back[(a, b)] * iz[a]).sum()).collect()
            })
            .collect();
        let (su_new, se_new) = m_step(&u);
        let change = (&su_new - &su).norm_l2() + (&se_new - &se).norm_l2();
        let scale = su_new.norm_l2() + se_new.norm_l2();
        su = su_new;
        se = se_new;
        if change <= EM_TOL * scale {
            break;
        }
    }
    Some((su, se))
}

/// Ledoit-Wolf shrinkage of `S_e` toward `tr(S_e) / p * I` (Ledoit & Wolf 2004, their optimal
/// intensity, estimated from the rows' residuals from their class means): with `p` dimensions
/// and few rows per dimension the sample covariance has eigenvalues near 0 along rarely used
/// features, and whitening by it makes single rows that use them tens of standard deviations
/// away, which the two-component split then isolates in every class.
fn shrink(se: &Mat<f64>, y: &Mat<f64>, classes: &[Vec<usize>]) -> Mat<f64> {
    let p = se.nrows();
    let mu = (0..p).map(|j| se[(j, j)]).sum::<f64>() / p as f64;
    let target = |a: usize, b: usize| if a == b { mu } else { 0.0 };
    let d2: f64 = (0..p)
        .flat_map(|a| (0..p).map(move |b| (a, b)))
        .map(|(a, b)| (se[(a, b)] - target(a, b)).powi(2))
        .sum();
    if d2 <= 0.0 {
        return se.clone();
    }
    let se_norm2: f64 =
        (0..p).flat_map(|a| (0..p).map(move |b| (a, b))).map(|(a, b)| se[(a, b)].powi(2)).sum();
    let (mut b2, mut n) = (0.0f64, 0usize);
    for rows in classes.iter().filter(|r| !r.is_empty()) {
        let m: Vec<f64> = (0..p)
            .map(|j| rows.iter().map(|&i| y[(i, j)]).sum::<f64>() / rows.len() as f64)
            .collect();
        for &i in rows {
            let e: Vec<f64> = (0..p).map(|j| y[(i, j)] - m[j]).collect();
            let e2: f64 = e.iter().map(|v| v * v).sum();
            let ese: f64 =
                (0..p).map(|a| e[a] * (0..p).map(|b| se[(a, b)] * e[b]).sum::<f64>()).sum();
            // |e e^T - S|_F^2
            b2 += e2 * e2 - 2.0 * ese + se_norm2;
            n += 1;
        }
    }
    let b2 = (b2 / (n as f64 * n as f64)).min(d2);
    let delta = b2 / d2;
    Mat::from_fn(p, p, |a, b| (1.0 - delta) * se[(a, b)] + delta * target(a, b))
}

fn sub(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(u, v)| u - v).collect()
}

/// `(W, B, eigenvalues, eigenvectors)`: `z = y W` whitens `S_e` (pseudo-inverse square root
/// `p x p`), `y = z B` maps back, and `W^T S_u W = V diag(l) V^T`.
type Whitening = (Mat<f64>, Mat<f64>, Vec<f64>, Mat<f64>);

fn whitening(su: &Mat<f64>, se: &Mat<f64>) -> Option<Whitening> {
    let p = se.nrows();
    let (vals, q) = eig_desc(se.as_ref())?;
    let top = vals.first().copied().unwrap_or(0.0).max(0.0);
    let keep = |v: f64| v > RCOND * top && v > 0.0;
    let w = Mat::from_fn(p, p, |r, c| if keep(vals[c]) { q[(r, c)] / vals[c].sqrt() } else { 0.0 });
    let back =
        Mat::from_fn(p, p, |r, c| if keep(vals[r]) { q[(c, r)] * vals[r].sqrt() } else { 0.0 });
    let su_w = a_b(at_b(w.as_ref(), su.as_ref()).as_ref(), w.as_ref());
    let (l, v) = eig_desc(su_w.as_ref())?;
    Some((w, back, l.iter().map(|x| x.max(0.0)).collect(), v))
}

/// A class's two-component split: `(assignment: true = component 1, mean 1, mean 2)`.
struct Split {
    one: Vec<bool>,
    m1: Vec<f64>,
    m2: Vec<f64>,
}

/// Means of the rows of `z` in each component.
fn component_means(z: &Mat<f64>, one: &[bool]) -> Option<(Vec<f64>, Vec<f64>)> {
    let p = z.ncols();
    let (mut m1, mut m2) = (vec![0.0f64; p], vec![0.0f64; p]);
    let (mut n1, mut n2) = (0usize, 0usize);
    for (i, &g) in one.iter().enumerate() {
        let (m, n) = if g { (&mut m1, &mut n1) } else { (&mut m2, &mut n2) };
        *n += 1;
        m.iter_mut().enumerate().for_each(|(j, v)| *v += z[(i, j)]);
    }
    if n1 == 0 || n2 == 0 {
        return None;
    }
    m1.iter_mut().for_each(|v| *v /= n1 as f64);
    m2.iter_mut().for_each(|v| *v /= n2 as f64);
    Some((m1, m2))
}

/// Lloyd's two-means on the rows of `z` from the assignment `one`; `None` when a component
/// empties.
fn lloyd(z: &Mat<f64>, mut one: Vec<bool>, max_iter: usize) -> Option<Split> {
    let p = z.ncols();
    let (mut m1, mut m2) = component_means(z, &one)?;
    for _ in 0..max_iter {
        let mut changed = false;
        for (i, g) in one.iter_mut().enumerate() {
            let row: Vec<f64> = (0..p).map(|j| z[(i, j)]).collect();
            let now = dist2(&row, &m1) < dist2(&row, &m2);
            changed |= now != *g;
            *g = now;
        }
        (m1, m2) = component_means(z, &one)?;
        if !changed {
            break;
        }
    }
    Some(Split { one, m1, m2 })
}

/// The paper's statistic `J` of a split of the rows of `z`: mean squared distance to the
/// identity's posterior mean minus mean squared distance to the row's component mean.
fn gain(global: &Global, z: &Mat<f64>, split: &Split) -> f64 {
    let (n, p) = (z.nrows(), z.ncols());
    let s: Vec<f64> = (0..p).map(|j| (0..n).map(|i| z[(i, j)]).sum()).collect();
    let mu = global.identity(&s, n as f64);
    let total: f64 = split
        .one
        .iter()
        .enumerate()
        .map(|(i, &g)| {
            let row: Vec<f64> = (0..p).map(|j| z[(i, j)]).collect();
            dist2(&row, &mu) - dist2(&row, if g { &split.m1 } else { &split.m2 })
        })
        .sum();
    total / n as f64
}

/// What the fit keeps of one class to score rows.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
struct ClassFit {
    /// Midpoint of the two component means (whitened).
    mid: Vec<f64>,
    /// Unit direction from the other component's mean to the suspect one's.
    direction: Vec<f64>,
    /// Median of the class's positions along `direction`. Positions are in the global model's
    /// unit: whitened rows have unit within-class variance along any direction (a class's own
    /// MAD collapsed where its split isolated a few rows along a feature the others leave at 0).
    median: f64,
    /// Share of the class in the suspect component.
    share: f64,
    /// Whether rows of this class may be flagged.
    flaggable: bool,
}

impl ClassGate for ClassFit {
    fn flaggable(&self) -> bool {
        self.flaggable
    }
}

impl ClassFit {
    fn z(&self, row: &[f64]) -> f64 {
        let t: f64 =
            row.iter().zip(&self.mid).zip(&self.direction).map(|((v, m), u)| (v - m) * u).sum();
        t - self.median
    }
}

/// A position `z` on the chi-square(1) scale: `z^2` toward the suspect component, 0 away from it.
fn chi2_score(z: f64) -> f64 {
    if z > 0.0 { z * z } else { 0.0 }
}

/// One class: `(fit, z of its rows, J)`.
fn fit_class(
    global: &Global,
    data: &Dataset,
    rows: &[usize],
    trusted: Option<&[bool]>,
) -> Option<(ClassFit, Vec<f64>, f64)> {
    let n = rows.len();
    let p = global.dims();
    let z = global.project(data, rows);
    // start from the split at the class's top principal direction
    let mean: Vec<f64> =
        (0..p).map(|j| (0..n).map(|i| z[(i, j)]).sum::<f64>() / n as f64).collect();
    let c = Mat::from_fn(n, p, |i, j| z[(i, j)] - mean[j]);
    let (_, vecs) = eig_desc(at_b(c.as_ref(), c.as_ref()).as_ref())?;
    let start: Vec<bool> =
        (0..n).map(|i| (0..p).map(|j| c[(i, j)] * vecs[(j, 0)]).sum::<f64>() > 0.0).collect();
    let split = lloyd(&z, start, LLOYD_MAX_ITER);
    let Some(split) = split else {
        // one component only: nothing to untangle
        let fit = ClassFit {
            mid: mean,
            direction: vec![0.0; p],
            median: 0.0,
            share: 0.0,
            flaggable: false,
        };
        let j = gain(
            global,
            &z,
            &Split { one: vec![true; n], m1: fit.mid.clone(), m2: fit.mid.clone() },
        );
        return Some((fit, vec![0.0; n], j));
    };
    let j = gain(global, &z, &split);
    let n1 = split.one.iter().filter(|&&g| g).count();
    // the suspect component: the one holding the smaller share of the trusted rows, else the
    // smaller one
    let one_suspect = match trusted {
        Some(t) if t.iter().any(|&v| v) => {
            let in1 = split.one.iter().zip(t).filter(|(g, t)| **g && **t).count() as f64;
            let in2 = split.one.iter().zip(t).filter(|(g, t)| !**g && **t).count() as f64;
            in1 / n1 as f64 <= in2 / (n - n1) as f64
        }
        _ => 2 * n1 <= n,
    };
    let (suspect, other) =
        if one_suspect { (&split.m1, &split.m2) } else { (&split.m2, &split.m1) };
    let gap = sub(suspect, other);
    let norm = gap.iter().map(|v| v * v).sum::<f64>().sqrt();
    let direction: Vec<f64> = gap.iter().map(|v| v / norm.max(f64::MIN_POSITIVE)).collect();
    let mid: Vec<f64> = suspect.iter().zip(other).map(|(a, b)| 0.5 * (a + b)).collect();
    let t: Vec<f64> =
        (0..n).map(|i| (0..p).map(|k| (z[(i, k)] - mid[k]) * direction[k]).sum()).collect();
    let mut sorted = t.clone();
    sorted.sort_by(f64::total_cmp);
    let median = poisonguard_core::quantile_sorted(&sorted, 0.5);
    let share = if one_suspect { n1 } else { n - n1 } as f64 / n as f64;
    let fit = ClassFit { mid, direction, median, share, flaggable: true };
    let zs = t.iter().map(|v| v - median).collect();
    Some((fit, zs, j))
}

/// A fitted SCAn detector; see the [module docs](crate::scan_decomposition).
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
pub struct ScanDecomposition {
    global: Global,
    state: PerClass<ClassFit>,
}

impl ScanDecomposition {
    /// What the detector declares about itself (see `poisonguard detectors`).
    pub const INFO: poisonguard_core::DetectorInfo = poisonguard_core::DetectorInfo {
        id: poisonguard_core::DetectorId::new("scan_decomposition"),
        family: poisonguard_core::Family::Spectral,
        threat: poisonguard_core::Threat::Backdoor,
        needs_labels: true,
        training_scores: poisonguard_core::TrainingScores::InSample,
        randomized: false,
        score: "position of the row toward the suspect one of two components of its class, in within-class standard deviations of the global model, from the class median (chi-square(1) scale); rows score only in classes declared attacked",
        auto: poisonguard_core::AutoThreshold::Null,
        auto_threshold: "99% quantile of the scores of the classes not declared attacked",
        p_value: "chi-square(1), scaled to the median and 99% quantile of the classes not declared attacked; p = 1 outside classes declared attacked",
        paper: "D. Tang, X. Wang, H. Tang, K. Zhang. Demon in the Variant: Statistical Analysis of DNNs for Robust Backdoor Contamination Detection. USENIX Security 2021",
    };

    /// The detector's id.
    pub const ID: DetectorId = Self::INFO.id;

    /// Default hyperparameters.
    ///
    /// # Example
    /// ```
    /// use ndarray::Array2;
    /// use poisonguard_core::{Dataset, Detector, FittedDetector, Labels, LabelValue};
    /// use poisonguard_spectral::ScanDecomposition;
    /// let x = Array2::from_shape_fn((120, 6), |(i, j)| ((i * 37 + j * 11) % 23) as f32);
    /// let y: Vec<LabelValue> = (0..120).map(|i| LabelValue::Int(i % 4)).collect();
    /// let data = Dataset::new(x)?.with_labels(Labels::from_values(&y))?;
    /// let fitted = ScanDecomposition::params().fit(&data)?;
    /// assert_eq!(fitted.training().scores().len(), 120);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn params() -> super::ScanDecompositionParams {
        super::ScanDecompositionParams::default()
    }
}

impl Detector for ScanDecompositionValidParams {
    type Fitted = ScanDecomposition;
    type Error = Error;
    const INFO: poisonguard_core::DetectorInfo = ScanDecomposition::INFO;

    fn fit(&self, data: &Dataset) -> Result<ScanDecomposition> {
        let labels = data.require_classes(Self::INFO.id.as_str())?;
        let by_class = labels.rows_by_class();
        let n = data.n_samples();
        // the rows the global model is fitted on: the trusted ones, or all
        let trusted_mask: Option<Vec<bool>> = match &self.trusted {
            Some(rows) => {
                let mut mask = vec![false; n];
                for &i in rows {
                    *mask.get_mut(i).ok_or(ParamError::CountOutOfRange {
                        name: "trusted row",
                        value: i,
                        allowed: "row indices of the dataset",
                    })? = true;
                }
                Some(mask)
            }
            None => None,
        };
        let fit_rows: Vec<Vec<usize>> = by_class
            .iter()
            .map(|rows| match &trusted_mask {
                Some(m) => rows.iter().copied().filter(|&i| m[i]).collect(),
                None => rows.clone(),
            })
            .collect();
        if fit_rows.iter().filter(|r| r.len() >= 2).count() < 2 {
            return Err(ParamError::CountOutOfRange {
                name: "trusted rows",
                value: fit_rows.iter().map(Vec::len).sum(),
                allowed: "at least 2 rows in each of 2 classes",
            }
            .into());
        }
        let all_fit: Vec<usize> = {
            let mut v: Vec<usize> = fit_rows.iter().flatten().copied().collect();
            v.sort_unstable();
            v
        };
        let not_converged = || Error::EigenNotConverged { class: "(all classes)".into() };
        let (mean, basis) = reduction(data, &all_fit, self.max_dims.min(all_fit.len() / 2).max(1))
            .ok_or_else(not_converged)?;
        // reduced rows of the fit set, indexed by position in `all_fit`
        let y = project(data, &all_fit, &mean, &basis);
        let position = |i: usize| all_fit.binary_search(&i).unwrap_or(0);
        let em_classes: Vec<Vec<usize>> =
            fit_rows.iter().map(|rows| rows.iter().map(|&i| position(i)).collect()).collect();
        let (su, se) = global_em(&y, &em_classes).ok_or_else(not_converged)?;
        let se = shrink(&se, &y, &em_classes);
        drop(y);
        let (w, _, su_values, su_vectors) = whitening(&su, &se).ok_or_else(not_converged)?;
        let global = Global { map: a_b(basis.as_ref(), w.as_ref()), mean, su_values, su_vectors };

        let (fitted, skipped) = fit_classes(labels, &by_class, MIN_CLASS_ROWS, |_, rows| {
            let trusted: Option<Vec<bool>> =
                trusted_mask.as_ref().map(|m| rows.iter().map(|&i| m[i]).collect());
            fit_class(&global, data, rows, trusted.as_deref())
        })?;

        let mut zs = vec![0.0f64; n];
        let mut fits: Vec<Option<(ClassFit, f64)>> = Vec::with_capacity(by_class.len());
        for (result, rows) in fitted.into_iter().zip(&by_class) {
            let Some((fit, class_z, stats)) = result else {
                fits.push(None);
                continue;
            };
            for (&i, &v) in rows.iter().zip(&class_z) {
                zs[i] = v;
            }
            fits.push(Some((fit, stats)));
        }
        let log_gain: Vec<Option<f64>> =
            fits.iter().map(|f| f.as_ref().map(|(_, j)| j.max(f64::MIN_POSITIVE).ln())).collect();
        let verdicts = Verdicts::new(&log_gain, |_| 0.0, self.seed);
        let verdict = &verdicts.z;
        let attacked: Vec<bool> = (0..fits.len()).map(|c| verdicts.declared(c)).collect();
        let mut scores: Vec<f64> = zs.iter().map(|&z| chi2_score(z)).collect();
        let (threshold, calibration) = gated_calibration(
            &scores,
            &by_class,
            |c| self.flag_all_classes || !attacked[c],
            self.threshold,
        )?;
        let mut classes = Vec::with_capacity(fits.len());
        let mut findings = Vec::new();
        let mut at_risk = 0;
        for (c, (entry, rows)) in fits.into_iter().zip(&by_class).enumerate() {
            let Some((mut fit, j)) = entry else {
                classes.push(None);
                continue;
            };
            fit.flaggable = fit.flaggable && (attacked[c] || self.flag_all_classes);
            if fit.flaggable {
                at_risk += rows.len();
            } else {
                rows.iter().for_each(|&i| scores[i] = scores[i].min(threshold.value()));
            }
            findings.push(ClassFinding::new(
                ClassId(c as u32),
                labels.map().values()[c].clone(),
                rows.len(),
                verdict[c].unwrap_or(0.0),
                vec![
                    (ClassStatistic::Attacked, f64::from(u8::from(attacked[c]))),
                    (ClassStatistic::VerdictZ, verdict[c].unwrap_or(f64::NAN)),
                    (ClassStatistic::DecompositionGain, j),
                    (ClassStatistic::SmallerShare, fit.share),
                    (ClassStatistic::Dims, global.dims() as f64),
                ],
            ));
            classes.push(Some(fit));
        }
        let share = |i: usize| classes[labels.ids()[i].index()].as_ref().map_or(0.0, |f| f.share);
        // rows of classes not declared attacked carry no evidence (the class gate, applied by
        // `PerClass::new`)
        let training = Detection::with_calibration(scores, threshold, calibration, |i, _| {
            Reason::Decomposition {
                class: labels.value_of_row(i).clone(),
                z: zs[i],
                share: share(i),
            }
        })?;
        let estimate = (self.threshold == ThresholdRule::Auto)
            .then(|| gated_estimate(ScanDecomposition::ID, training.n_flagged(), at_risk));
        let state = PerClass::new(
            &by_class,
            labels.map().clone(),
            data.n_features(),
            (classes, skipped),
            training,
            findings,
            estimate,
        );
        Ok(ScanDecomposition { global, state })
    }
}

per_class_fitted!(ScanDecomposition);

impl ScanDecomposition {
    /// Scores new rows by their position along their class's split
    /// ([`poisonguard_core::FittedDetector::detect`]).
    fn detect_rows(&self, data: &Dataset) -> std::result::Result<Detection, DataError> {
        let (labels, ids) = self.state.new_rows(data, Self::ID)?;
        let all: Vec<usize> = (0..data.n_samples()).collect();
        let z = self.global.project(data, &all);
        let p = self.global.dims();
        self.state.score_rows(
            labels,
            &ids,
            (0.0, (0.0, 0.0)),
            |fit, i| {
                let row: Vec<f64> = (0..p).map(|j| z[(i, j)]).collect();
                let position = fit.z(&row);
                (chi2_score(position), (position, fit.share))
            },
            |class, _, &(z, share)| Reason::Decomposition { class: class.clone(), z, share },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use poisonguard_core::FittedDetector;
    use poisonguard_core::{LabelValue, Labels, ParamGuard};
    use rand::{Rng, SeedableRng};

    fn dataset(x: Array2<f32>, y: &[i64]) -> Dataset {
        let y: Vec<LabelValue> = y.iter().map(|&v| LabelValue::Int(v)).collect();
        Dataset::new(x).unwrap().with_labels(Labels::from_values(&y)).unwrap()
    }

    /// Eight Gaussian classes of 150 rows in 12 dimensions; in class 0 the last `planted` rows
    /// are shifted by 6 sd along a direction no class varies along more than others.
    fn planted(planted: usize, seed: u64) -> (Dataset, Vec<bool>) {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        let mut normal = move || {
            let (u, v): (f64, f64) = (rng.random(), rng.random());
            ((-2.0 * (1.0 - u).ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
        };
        let (classes, per, d) = (8usize, 150usize, 12usize);
        let n = classes * per;
        let mut truth = vec![false; n];
        let x = Array2::from_shape_fn((n, d), |(i, j)| {
            let c = i / per;
            let centre = if j == c % d { 8.0 } else { 0.0 };
            let shift = if c == 0 && i % per >= per - planted && j == d - 1 { 6.0 } else { 0.0 };
            centre + shift + normal()
        });
        truth[per - planted..per].iter_mut().for_each(|t| *t = true);
        let y: Vec<i64> = (0..n).map(|i| (i / per) as i64).collect();
        (dataset(x, &y), truth)
    }

    #[test]
    fn bad_parameters_and_trusted_rows_are_refused() {
        assert!(ScanDecomposition::params().max_dims(0).check_ref().is_err());
        let (data, _) = planted(0, 1);
        let n = data.n_samples();
        assert!(ScanDecomposition::params().trusted([0, n]).fit(&data).is_err());
        // trusted rows in one class only
        assert!(ScanDecomposition::params().trusted(0..20).fit(&data).is_err());
        assert!(ScanDecomposition::params().trusted((0..n).step_by(3)).fit(&data).is_ok());
    }

    #[test]
    fn a_planted_component_is_declared_and_ranked_first() {
        for seed in 0..3 {
            let (data, truth) = planted(15, seed);
            let fit = ScanDecomposition::params().fit(&data).unwrap();
            let attacked: Vec<bool> =
                fit.class_findings().iter().map(|f| f.attacked() == Some(true)).collect();
            assert_eq!(attacked.iter().filter(|&&a| a).count(), 1, "seed {seed}: {attacked:?}");
            assert!(attacked[0], "seed {seed}");
            let auc = poisonguard_core::metrics::roc_auc(fit.training().scores(), &truth).unwrap();
            assert!(auc > 0.99, "seed {seed}: {auc}");
            // with a trusted quarter of the clean rows the within-class covariance is not inflated
            // by the poison: a larger gain in the attacked class, the same ranking
            let gain = |f: &ScanDecomposition| {
                f.class_findings()[0].statistic(ClassStatistic::DecompositionGain).unwrap()
            };
            let trusted = (0..data.n_samples()).filter(|&i| !truth[i] && i % 4 == 0);
            let reserve = ScanDecomposition::params()
                .trusted(trusted)
                .flag_all_classes(true)
                .fit(&data)
                .unwrap();
            assert!(gain(&reserve) > gain(&fit), "seed {seed}");
            let auc =
                poisonguard_core::metrics::roc_auc(reserve.training().scores(), &truth).unwrap();
            assert!(auc > 0.99, "seed {seed}: {auc}");
        }
    }

    #[test]
    fn clean_classes_are_not_declared() {
        for seed in 0..3 {
            let (data, _) = planted(0, 10 + seed);
            let fit = ScanDecomposition::params().fit(&data).unwrap();
            assert!(fit.class_findings().iter().all(|f| f.attacked() == Some(false)), "{seed}");
            assert_eq!(fit.training().n_flagged(), 0);
        }
    }

    #[test]
    fn same_seed_same_scores_and_detect_matches_training() {
        let (data, _) = planted(10, 5);
        let a = ScanDecomposition::params().flag_all_classes(true).fit(&data).unwrap();
        let b = ScanDecomposition::params().flag_all_classes(true).fit(&data).unwrap();
        assert_eq!(a.training(), b.training());
        let again = a.detect(&data).unwrap();
        for (u, v) in again.scores().iter().zip(a.training().scores()) {
            assert!((u - v).abs() <= 1e-9 * v.abs().max(1.0), "{u} vs {v}");
        }
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
        let fit = ScanDecomposition::params().fit(&dataset(x, &y)).unwrap();
        let s = fit.training().scores();
        assert!(s.iter().all(|v| v.is_finite()));
        assert!(s[40..].iter().all(|&v| v == 0.0));
        // identical rows: one component, nothing to untangle
        let x = Array2::from_elem((40, 3), 1.0f32);
        let y: Vec<i64> = (0..40).map(|i| i % 2).collect();
        let fit = ScanDecomposition::params().fit(&dataset(x, &y)).unwrap();
        assert!(fit.training().scores().iter().all(|&v| v == 0.0));
    }
}
