//! SPECTRE's own robust covariance step, for comparison only: the iterative covariance filter of
//! Diakonikolas, Kamath, Kane, Li, Moitra, Stewart (*Being Robust (in High Dimensions) Can Be
//! Practical*, ICML 2017) as the SPECTRE reference code runs it (`dkk17.jl`, `quantum_filters.jl`
//! of SewoongLab/spectre-defense), re-implemented here from the paper and that description. It
//! needs the number of poisoned rows `eps` (it removes up to `2 eps` rows while estimating, then
//! the `1.5 eps` highest QUE scores), which `poisonguard`'s `spectre` does not; the sweep gives it
//! the true count, an oracle no user has. `k` runs over 1, 4, 9, 16, 25 as in `spectre` (the
//! reference goes to 100; the filter's fourth-moment operator has `k^2` dimensions).

use ndarray::{Array1, Array2, Axis};

const ALPHA: f64 = 4.0;
const TAU: f64 = 0.1;
const C: f64 = 10.0;
const POWER_ITERS: usize = 100;

/// Symmetric eigen-decomposition by cyclic Jacobi rotations: eigenvalues (descending) and the
/// eigenvectors as columns.
pub fn sym_eig(a: &Array2<f64>) -> (Vec<f64>, Array2<f64>) {
    let n = a.nrows();
    let mut a = a.clone();
    let mut v = Array2::<f64>::eye(n);
    for _ in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).map(move |j| (i, j)))
            .filter(|(i, j)| i != j)
            .map(|(i, j)| a[[i, j]] * a[[i, j]])
            .sum();
        if off < 1e-22 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                if a[[p, q]].abs() < 1e-300 {
                    continue;
                }
                let theta = (a[[q, q]] - a[[p, p]]) / (2.0 * a[[p, q]]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[[k, p]], a[[k, q]]);
                    a[[k, p]] = c * akp - s * akq;
                    a[[k, q]] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[[p, k]], a[[q, k]]);
                    a[[p, k]] = c * apk - s * aqk;
                    a[[q, k]] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[[k, p]], v[[k, q]]);
                    v[[k, p]] = c * vkp - s * vkq;
                    v[[k, q]] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| a[[j, j]].total_cmp(&a[[i, i]]));
    let vals = order.iter().map(|&i| a[[i, i]]).collect();
    let vecs = Array2::from_shape_fn((n, n), |(r, c)| v[[r, order[c]]]);
    (vals, vecs)
}

/// `f(A)` of a symmetric matrix through its eigen-decomposition.
fn mat_fn(a: &Array2<f64>, f: impl Fn(f64) -> f64) -> Array2<f64> {
    let (vals, vecs) = sym_eig(a);
    let scaled = Array2::from_shape_fn(vecs.raw_dim(), |(r, c)| vecs[[r, c]] * f(vals[c]));
    scaled.dot(&vecs.t())
}

/// Covariance of the rows (centred by their mean, divided by `n - ddof`).
fn cov(x: &Array2<f64>, ddof: f64) -> Array2<f64> {
    let mean = x.mean_axis(Axis(0)).unwrap_or_else(|| Array1::zeros(x.ncols()));
    let c = x - &mean;
    c.t().dot(&c) / (x.nrows() as f64 - ddof).max(1.0)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len().is_multiple_of(2) { 0.5 * (s[m - 1] + s[m]) } else { s[m] }
}

/// Indices of the `m` smallest values.
fn lowest(values: &[f64], m: usize) -> Vec<bool> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut keep = vec![false; values.len()];
    for &i in order.iter().take(m) {
        keep[i] = true;
    }
    keep
}

enum Step {
    Done,
    Fail,
    Keep(Vec<bool>),
}

fn cov_tail(t: f64, eps: f64) -> f64 {
    if t <= 10.0 * (1.0 / eps).ln() { 1.0 } else { 3.0 * eps / (t * t.ln()).powi(2) }
}

/// One round of the DKK17 covariance filter on the rows of `s` (centred, `n x k`).
fn filter_step(s: &Array2<f64>, eps: f64, limit: usize) -> Step {
    let (n, k) = (s.nrows(), s.ncols());
    let sigma = s.t().dot(s) / n as f64;
    let inv_sqrt = mat_fn(&sigma, |v| if v > 1e-12 { 1.0 / v.sqrt() } else { 0.0 });
    let y = s.dot(&inv_sqrt);
    let norms: Vec<f64> = y.rows().into_iter().map(|r| r.dot(&r)).collect();
    let keep_floor = n.saturating_sub(limit);
    if norms.iter().any(|&v| v >= C * k as f64 * (n as f64 / TAU).ln()) {
        let low = lowest(&norms, keep_floor);
        let bound = C * k as f64 * (n as f64 / TAU).ln();
        return Step::Keep(norms.iter().zip(low).map(|(&v, l)| v < bound || l).collect());
    }
    // top eigenvector of T = E[vec(yy') vec(yy')'] - vec(I) vec(I)' by power iteration on
    // T + k I (T >= -k I)
    let kk = k * k;
    let z: Vec<Vec<f64>> =
        y.rows().into_iter().map(|r| (0..kk).map(|ab| r[ab / k] * r[ab % k]).collect()).collect();
    let apply = |v: &[f64]| -> Vec<f64> {
        let mut out = vec![0.0; kk];
        for zi in &z {
            let dot: f64 = zi.iter().zip(v).map(|(a, b)| a * b).sum();
            out.iter_mut().zip(zi).for_each(|(o, a)| *o += dot * a / n as f64);
        }
        let trace: f64 = (0..k).map(|a| v[a * k + a]).sum();
        for a in 0..k {
            out[a * k + a] -= trace;
        }
        out.iter_mut().zip(v).for_each(|(o, x)| *o += k as f64 * x);
        out
    };
    let mut v = vec![1.0 / (kk as f64).sqrt(); kk];
    let mut lambda = 0.0;
    for _ in 0..POWER_ITERS {
        let w = apply(&v);
        let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm == 0.0 {
            break;
        }
        lambda = norm;
        v = w.iter().map(|x| x / norm).collect();
    }
    let lambda = lambda - k as f64;
    if lambda <= 1.0 + C * eps * (1.0 / eps).ln().powi(2) {
        return Step::Done;
    }
    let vm = Array2::from_shape_fn((k, k), |(a, b)| 0.5 * (v[a * k + b] + v[b * k + a]));
    let tr: f64 = (0..k).map(|a| vm[[a, a]]).sum();
    let ps: Vec<f64> =
        y.rows().into_iter().map(|r| (r.dot(&vm.dot(&r)) - tr) / 2f64.sqrt()).collect();
    let mu = median(&ps);
    let diffs: Vec<f64> = ps.iter().map(|p| (p - mu).abs()).collect();
    let mut sorted = diffs.clone();
    sorted.sort_by(f64::total_cmp);
    for (i, &diff) in sorted.iter().enumerate() {
        if diff < 3.0 {
            continue;
        }
        let t = diff - 3.0;
        if t <= 0.0 {
            continue;
        }
        if (i + 1) as f64 / n as f64 >= cov_tail(t, eps) {
            let low = lowest(&diffs, keep_floor);
            return Step::Keep(diffs.iter().zip(low).map(|(&d, l)| d <= t || l).collect());
        }
    }
    Step::Fail
}

/// Rows kept by the iterated filter, removing at most `limit`.
fn filter(s: &Array2<f64>, eps: f64, mut limit: usize) -> Vec<bool> {
    let mut idx: Vec<usize> = (0..s.nrows()).collect();
    while limit > 0 {
        let sub = s.select(Axis(0), &idx);
        match filter_step(&sub, eps, limit) {
            Step::Done | Step::Fail => break,
            Step::Keep(keep) => {
                let before = idx.len();
                idx = idx.into_iter().zip(keep).filter(|(_, k)| *k).map(|(i, _)| i).collect();
                let removed = before - idx.len();
                if removed == 0 {
                    break;
                }
                limit = limit.saturating_sub(removed);
            }
        }
    }
    let mut keep = vec![false; s.nrows()];
    idx.into_iter().for_each(|i| keep[i] = true);
    keep
}

/// Top-`k` principal coordinates of the centred rows.
fn pca(x: &Array2<f64>, k: usize) -> Array2<f64> {
    let mean = x.mean_axis(Axis(0)).unwrap_or_else(|| Array1::zeros(x.ncols()));
    let c = x - &mean;
    let (_, vecs) = sym_eig(&(c.t().dot(&c) / x.nrows() as f64));
    let top = Array2::from_shape_fn((vecs.nrows(), k), |(r, j)| vecs[[r, j]]);
    c.dot(&top)
}

/// QUE scores of `reps_pca` whitened by the covariance of the `selected` rows, and the
/// selection statistic `tr(S M) / tr(M)`.
fn que(reps_pca: &Array2<f64>, selected: &[bool]) -> (Vec<f64>, f64) {
    let k = reps_pca.ncols();
    let rows: Vec<usize> = (0..selected.len()).filter(|&i| selected[i]).collect();
    let sigma = cov(&reps_pca.select(Axis(0), &rows), 0.0);
    let inv_sqrt = mat_fn(&sigma, |v| if v > 1e-12 { 1.0 / v.sqrt() } else { 0.0 });
    let white = reps_pca.dot(&inv_sqrt);
    let s = cov(&white, 1.0);
    let (vals, _) = sym_eig(&s);
    let op = vals[0];
    let shifted = &s - &Array2::<f64>::eye(k);
    let m = mat_fn(&shifted, |v| (ALPHA * v / (op - 1.0)).exp());
    let tr: f64 = (0..k).map(|a| m[[a, a]]).sum();
    let m = m / tr;
    let stat: f64 = (0..k).map(|a| s.row(a).dot(&m.column(a))).sum();
    let scores = white.rows().into_iter().map(|r| r.dot(&m.dot(&r))).collect();
    (scores, stat)
}

/// SPECTRE with the filter told `eps` poisoned rows: the `remove` rows of the class with the
/// highest QUE scores at the best `k` (the reference removes `1.5 eps`).
pub fn spectre_filter(class_rows: &Array2<f64>, eps: usize, remove: usize) -> Vec<bool> {
    let n = class_rows.nrows();
    let dims = class_rows.ncols().min(n - 1).min(100);
    let reps100 = pca(class_rows, dims);
    let remove = remove.min(n);
    let mut best: Option<(f64, Vec<bool>)> = None;
    for k in [1usize, 4, 9, 16, 25].into_iter().filter(|&k| k <= dims) {
        let reps = pca(class_rows, k);
        let selected =
            if k == 1 { vec![true; n] } else { filter(&reps, eps as f64 / n as f64, 2 * eps) };
        let (scores, _) = que(&reps, &selected);
        let removed = lowest(&scores.iter().map(|s| -s).collect::<Vec<_>>(), remove);
        let kept: Vec<bool> = removed.iter().map(|r| !r).collect();
        let (_, stat) = que(&reps100, &kept);
        if best.as_ref().is_none_or(|b| stat > b.0) {
            best = Some((stat, removed));
        }
    }
    best.map(|b| b.1).unwrap_or_else(|| vec![false; n])
}
