//! The robust covariance step of SPECTRE's reference code: the iterative covariance filter of
//! Diakonikolas, Kamath, Kane, Li, Moitra, Stewart (ICML 2017), on the fourth-moment operator
//! `T = E[vec(yy') vec(yy')'] - vec(I) vec(I)'` of the whitened rows.

use faer::Accum;
use faer::Mat;
use poisonguard_linalg::{a_b, at_b, matmul};

use crate::linalg::inv_sqrt;

/// The filter's constant `C` (the reference code's 10).
const C: f64 = 10.0;
/// Failure probability `tau` of the reference code.
const TAU: f64 = 0.1;
/// Shift of the filter's tail test (the reference code's 3).
const SHIFT: f64 = 3.0;
/// Power-iteration steps per round for the top eigenvector of `T` (warm-started across rounds).
const POWER_STEPS: usize = 30;

/// The reference code's tail bound of the filter.
fn tail(t: f64, eps: f64) -> f64 {
    if t <= 10.0 * (1.0 / eps).ln() { 1.0 } else { 3.0 * eps / (t * t.ln()).powi(2) }
}

/// `true` for the `m` smallest values.
fn lowest(values: &[f64], m: usize) -> Vec<bool> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]).then(a.cmp(&b)));
    let mut keep = vec![false; values.len()];
    order.iter().take(m).for_each(|&i| keep[i] = true);
    keep
}

/// `sum_j a[(r, j)] b[(r, j)]` for every row `r` of two `m x k` matrices, summed over `j` in
/// order, read a column at a time (faer's matrices are column-major: a row's entries are `m`
/// apart, and a row at a time strode through memory for every term).
fn row_dots(a: &Mat<f64>, b: &Mat<f64>) -> Vec<f64> {
    let mut out = vec![-0.0; a.nrows()];
    for j in 0..a.ncols() {
        for ((o, &x), &y) in out.iter_mut().zip(a.col_as_slice(j)).zip(b.col_as_slice(j)) {
            *o += x * y;
        }
    }
    out
}

/// Rows of `rows` (indices into `y`) kept by the iterated filter on the first `k` columns of
/// `y` (centred), for a poison share of at most `eps`, removing at most `limit` rows.
pub(crate) fn filter_rows(
    y: &Mat<f64>,
    rows: &[usize],
    k: usize,
    eps: f64,
    mut limit: usize,
) -> Vec<usize> {
    let mut idx = rows.to_vec();
    // the top eigenvector of T as a symmetric k x k matrix, warm-started across rounds
    let mut v = Mat::from_fn(k, k, |_, _| 1.0 / k as f64);
    while limit > 0 && idx.len() > k + 1 {
        let m = idx.len();
        let sub = Mat::from_fn(m, k, |r, j| y[(idx[r], j)]);
        let mut second = at_b(sub.as_ref(), sub.as_ref());
        second *= faer::Scale(1.0 / m as f64);
        let Some(w) = inv_sqrt(second.as_ref()) else { break };
        let z = a_b(sub.as_ref(), w.as_ref());
        let norms = row_dots(&z, &z);
        let floor = m.saturating_sub(limit);
        let early = C * k as f64 * (m as f64 / TAU).ln();
        let keep: Vec<bool> = if norms.iter().any(|&x| x >= early) {
            let low = lowest(&norms, floor);
            norms.iter().zip(low).map(|(&x, l)| x < early || l).collect()
        } else {
            // power iteration on T + k I (T >= -k I): (T V) = Z' diag(z_i' V z_i) Z / m - tr(V) I
            // the m x k products live in two buffers for the round (a fresh m x k matrix per
            // step was zeroed by faer and faulted in by the kernel: 6% of `spectre`'s time)
            let mut zv = Mat::<f64>::zeros(m, k);
            let mut scaled = Mat::<f64>::zeros(m, k);
            let mut quad = |v: &Mat<f64>| -> Vec<f64> {
                matmul(zv.as_mut(), Accum::Replace, z.as_ref(), v.as_ref(), 1.0);
                row_dots(&zv, &z)
            };
            let mut apply = |v: &Mat<f64>| -> Mat<f64> {
                let s = quad(v);
                for j in 0..k {
                    let (out, col) = (scaled.col_as_slice_mut(j), z.col_as_slice(j));
                    for ((o, &x), &sr) in out.iter_mut().zip(col).zip(&s) {
                        *o = x * sr;
                    }
                }
                // the mean over the rows once per entry of the k x k result (a division per
                // entry of the m x k matrix was an eighth of the filter's time)
                let mut t = at_b(z.as_ref(), scaled.as_ref());
                t *= faer::Scale(1.0 / m as f64);
                let trace: f64 = (0..k).map(|a| v[(a, a)]).sum();
                for a in 0..k {
                    t[(a, a)] -= trace;
                }
                Mat::from_fn(k, k, |a, b| t[(a, b)] + k as f64 * v[(a, b)])
            };
            let mut lambda = 0.0;
            for _ in 0..POWER_STEPS {
                let t = apply(&v);
                let norm = t.norm_l2();
                if norm == 0.0 {
                    break;
                }
                lambda = norm;
                v = Mat::from_fn(k, k, |a, b| 0.5 * (t[(a, b)] + t[(b, a)]) / norm);
            }
            let lambda = lambda - k as f64;
            if lambda <= 1.0 + C * eps * (1.0 / eps).ln().powi(2) {
                break;
            }
            let trace: f64 = (0..k).map(|a| v[(a, a)]).sum();
            let ps: Vec<f64> =
                quad(&v).iter().map(|q| (q - trace) / std::f64::consts::SQRT_2).collect();
            let mut sorted_ps = ps.clone();
            sorted_ps.sort_by(f64::total_cmp);
            let mu = poisonguard_core::quantile_sorted(&sorted_ps, 0.5);
            let diffs: Vec<f64> = ps.iter().map(|p| (p - mu).abs()).collect();
            let mut sorted = diffs.clone();
            sorted.sort_by(f64::total_cmp);
            let cut = sorted.iter().enumerate().find_map(|(i, &diff)| {
                let t = diff - SHIFT;
                (t > 0.0 && (i + 1) as f64 / m as f64 >= tail(t, eps)).then_some(t)
            });
            let Some(t) = cut else { break };
            let low = lowest(&diffs, floor);
            diffs.iter().zip(low).map(|(&d, l)| d <= t || l).collect()
        };
        let before = idx.len();
        idx = idx.into_iter().zip(keep).filter(|(_, keep)| *keep).map(|(i, _)| i).collect();
        let removed = before - idx.len();
        if removed == 0 {
            break;
        }
        limit = limit.saturating_sub(removed);
    }
    idx
}
