//! The robust covariance step of SPECTRE's reference code: the iterative covariance filter of
//! Diakonikolas, Kamath, Kane, Li, Moitra, Stewart (ICML 2017), on the fourth-moment operator
//! `T = E[vec(zz') vec(zz')'] - vec(I) vec(I)'` of the whitened rows.
//!
//! `T` vanishes on antisymmetric matrices (`zz'` and `I` are symmetric), so it is worked with on
//! the `k (k + 1) / 2` coordinates of the symmetric `k x k` matrices in an orthonormal basis
//! ([`lift`]). With `z = W y` (`W` the inverse square root of the kept rows' second moment),
//! `zz' = W yy' W`, so `T = A M A / m - psi psi'` with `M = sum_i lift(y_i) lift(y_i)'` over the
//! kept rows (built once per `k`, rows removed subtracted), `A` the map `S -> W S W` and `psi`
//! the coordinates of `I`. Its top eigenpair comes from Lanczos iterations to convergence, as the
//! reference code's `eigsolve` (KrylovKit); each step costs about `k^4 / 4` multiply-adds,
//! independent of the number of rows.

use faer::Mat;
use poisonguard_linalg::{a_b, at_b, sym_eigen};

use crate::linalg::inv_sqrt;

/// The filter's constant `C` (the reference code's 10).
const C: f64 = 10.0;
/// Failure probability `tau` of the reference code.
const TAU: f64 = 0.1;
/// Shift of the filter's tail test (the reference code's 3).
const SHIFT: f64 = 3.0;
/// Lanczos stops when the top Ritz pair's residual is below this share of its eigenvalue
/// (KrylovKit's default tolerance is `1e-12`).
const LANCZOS_TOL: f64 = 1e-12;
/// Lanczos steps between two convergence tests.
const CHECK_EVERY: usize = 4;

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

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The entries `(a, b)`, `a <= b`, of a symmetric `k x k` matrix in the order of its
/// coordinates ([`lift`]): `(0, 0), (0, 1), .., (0, k - 1), (1, 1), ..`.
fn upper_entries(k: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..k).flat_map(move |a| (a..k).map(move |b| (a, b)))
}

/// The coordinates of `y y'` in the orthonormal basis of the symmetric `k x k` matrices
/// (`e_a e_a'`, and `(e_a e_b' + e_b e_a') / sqrt 2` for `a < b`): `y_a^2` and
/// `sqrt 2 y_a y_b`, in the order of [`upper_entries`].
fn lift(y: impl Fn(usize) -> f64, k: usize, out: &mut [f64]) {
    for (o, (a, b)) in out.iter_mut().zip(upper_entries(k)) {
        *o = if a == b { y(a) * y(a) } else { std::f64::consts::SQRT_2 * y(a) * y(b) };
    }
}

/// The symmetric matrix of coordinates `v` ([`lift`]'s basis).
fn to_sym(v: &[f64], k: usize) -> Mat<f64> {
    let mut out = Mat::zeros(k, k);
    for (&x, (a, b)) in v.iter().zip(upper_entries(k)) {
        let x = if a == b { x } else { x / std::f64::consts::SQRT_2 };
        out[(a, b)] = x;
        out[(b, a)] = x;
    }
    out
}

/// The coordinates ([`lift`]'s basis) of the symmetric part of `s`.
fn from_sym(s: &Mat<f64>, out: &mut [f64]) {
    for (o, (a, b)) in out.iter_mut().zip(upper_entries(s.nrows())) {
        *o = if a == b { s[(a, a)] } else { (s[(a, b)] + s[(b, a)]) / std::f64::consts::SQRT_2 };
    }
}

/// The largest eigenvalue of the symmetric operator `apply` on `R^p` and a unit eigenvector:
/// Lanczos iterations from `start` with full reorthogonalization, until the top Ritz pair's
/// residual is below [`LANCZOS_TOL`] of its eigenvalue or the Krylov space is exhausted.
/// `None` if the tridiagonal eigensolver fails.
fn top_eigenpair(
    mut apply: impl FnMut(&[f64], &mut [f64]),
    start: &[f64],
) -> Option<(f64, Vec<f64>)> {
    let p = start.len();
    let norm = dot(start, start).sqrt();
    let first: Vec<f64> = if norm > 0.0 {
        start.iter().map(|x| x / norm).collect()
    } else {
        vec![1.0 / (p as f64).sqrt(); p]
    };
    let mut basis: Vec<Vec<f64>> = vec![first];
    let (mut alpha, mut beta) = (Vec::new(), Vec::new());
    let mut w = vec![0.0; p];
    loop {
        let j = basis.len() - 1;
        apply(&basis[j], &mut w);
        alpha.push(dot(&basis[j], &w));
        // full reorthogonalization, twice ("twice is enough"), which also removes the
        // three-term recurrence's `alpha_j q_j + beta_{j-1} q_{j-1}`
        for _ in 0..2 {
            for q in &basis {
                let c = dot(q, &w);
                w.iter_mut().zip(q).for_each(|(x, &y)| *x -= c * y);
            }
        }
        let b = dot(&w, &w).sqrt();
        let n = alpha.len();
        // the top Ritz pair of the tridiagonal matrix so far, every few steps (its dense
        // eigensolver costs more than a step)
        let breakdown =
            b <= LANCZOS_TOL * alpha.iter().chain(&beta).fold(0.0_f64, |m, x| m.max(x.abs()));
        if n % CHECK_EVERY == 0 || n == p || breakdown {
            let tri = Mat::from_fn(n, n, |r, c| {
                if r == c {
                    alpha[r]
                } else if r.abs_diff(c) == 1 {
                    beta[r.min(c)]
                } else {
                    0.0
                }
            });
            let (vals, vecs) = sym_eigen(tri.as_ref())?;
            let theta = vals[n - 1];
            let scale = vals[0].abs().max(theta.abs());
            let residual = b * vecs[(n - 1, n - 1)].abs();
            if residual <= LANCZOS_TOL * scale || breakdown || n == p {
                let mut v = vec![0.0; p];
                for (i, q) in basis.iter().enumerate() {
                    let s = vecs[(i, n - 1)];
                    v.iter_mut().zip(q).for_each(|(x, &y)| *x += s * y);
                }
                let norm = dot(&v, &v).sqrt();
                v.iter_mut().for_each(|x| *x /= norm);
                return Some((theta, v));
            }
        }
        beta.push(b);
        basis.push(w.iter().map(|x| x / b).collect());
    }
}

/// `T = A M A / m - psi psi'` on the coordinates of the symmetric `k x k` matrices ([`lift`]),
/// for `M` ([`lift`]ed rows' co-moment over `m` rows) and the whitening `W` (`A: S -> W S W`):
/// the fourth-moment operator of the whitened rows `z = W y`.
fn fourth_moment_operator<'a>(
    moments: &'a Mat<f64>,
    w: &'a Mat<f64>,
    m: usize,
) -> impl FnMut(&[f64], &mut [f64]) + 'a {
    let k = w.nrows();
    let mut psi = vec![0.0; moments.nrows()];
    from_sym(&Mat::<f64>::identity(k, k), &mut psi);
    let whiten = move |x: &[f64], out: &mut [f64]| {
        let s = to_sym(x, k);
        from_sym(&a_b(a_b(w.as_ref(), s.as_ref()).as_ref(), w.as_ref()), out);
    };
    let mut aw = vec![0.0; moments.nrows()];
    move |x: &[f64], out: &mut [f64]| {
        whiten(x, &mut aw);
        let maw = a_b(moments.as_ref(), faer::ColRef::from_slice(&aw).as_mat());
        whiten(maw.col_as_slice(0), out);
        let c = dot(&psi, x);
        out.iter_mut().zip(&psi).for_each(|(o, &s)| *o = *o / m as f64 - c * s);
    }
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
    let p = k * (k + 1) / 2;
    // lift(y_i) of every row of `rows`, row-major, and M over the kept rows
    let mut lifted = vec![0.0; rows.len() * p];
    for (out, &r) in lifted.chunks_exact_mut(p).zip(rows) {
        lift(|a| y[(r, a)], k, out);
    }
    let mut moments = {
        let all = faer::MatRef::from_row_major_slice(&lifted, rows.len(), p);
        at_b(all, all)
    };
    // positions in `rows` of the rows kept so far
    let mut kept: Vec<usize> = (0..rows.len()).collect();
    // the top eigenvector of T, warm-starting the next round's Lanczos (the reference code's
    // start: the matrix of ones)
    let mut v = {
        let mut ones = vec![0.0; p];
        from_sym(&Mat::from_fn(k, k, |_, _| 1.0), &mut ones);
        ones
    };
    while limit > 0 && kept.len() > k + 1 {
        let m = kept.len();
        let sub = Mat::from_fn(m, k, |r, j| y[(rows[kept[r]], j)]);
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
            let apply = fourth_moment_operator(&moments, &w, m);
            let Some((lambda, top)) = top_eigenpair(apply, &v) else { break };
            v = top;
            if lambda <= 1.0 + C * eps * (1.0 / eps).ln().powi(2) {
                break;
            }
            let top = to_sym(&v, k);
            let trace: f64 = (0..k).map(|a| top[(a, a)]).sum();
            let ps: Vec<f64> = row_dots(&a_b(z.as_ref(), top.as_ref()), &z)
                .iter()
                .map(|q| (q - trace) / std::f64::consts::SQRT_2)
                .collect();
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
        let removed: Vec<usize> =
            kept.iter().zip(&keep).filter(|(_, keep)| !**keep).map(|(&i, _)| i).collect();
        if removed.is_empty() {
            break;
        }
        let gone: Vec<f64> =
            removed.iter().flat_map(|&i| lifted[i * p..(i + 1) * p].iter().copied()).collect();
        let gone = faer::MatRef::from_row_major_slice(&gone, removed.len(), p);
        moments -= at_b(gone, gone);
        kept = kept.into_iter().zip(keep).filter(|(_, keep)| *keep).map(|(i, _)| i).collect();
        limit = limit.saturating_sub(removed.len());
    }
    kept.into_iter().map(|i| rows[i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// `m x k` rows with entries uniform in (-1, 1) (sums of two: not Gaussian), the first
    /// `planted` of them shifted by `shift` along the first two coordinates.
    fn rows(m: usize, k: usize, planted: usize, shift: f64, seed: u64) -> Mat<f64> {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        Mat::from_fn(m, k, |r, j| {
            let x = rng.random_range(-1.0..1.0) + rng.random_range(-1.0..1.0);
            if r < planted && j < 2 { x + shift } else { x }
        })
    }

    #[test]
    fn lifted_coordinates_are_orthonormal() {
        let k = 5;
        let y = rows(1, k, 0, 0.0, 1);
        let s = rows(k, k, 0, 0.0, 2);
        let v = Mat::from_fn(k, k, |a, b| s[(a, b)] + s[(b, a)]);
        let mut coords = vec![0.0; k * (k + 1) / 2];
        from_sym(&v, &mut coords);
        let mut lifted = vec![0.0; coords.len()];
        lift(|a| y[(0, a)], k, &mut lifted);
        let quad: f64 = (0..k)
            .flat_map(|a| (0..k).map(move |b| (a, b)))
            .map(|(a, b)| y[(0, a)] * v[(a, b)] * y[(0, b)])
            .sum();
        assert!((dot(&lifted, &coords) - quad).abs() < 1e-12 * quad.abs().max(1.0));
        assert!((dot(&coords, &coords) - v.norm_l2().powi(2)).abs() < 1e-12 * v.norm_l2().powi(2));
        assert!((to_sym(&coords, k) - &v).norm_l2() < 1e-12 * v.norm_l2());
    }

    /// The operator built from the unwhitened rows' co-moment, through Lanczos, against the
    /// dense eigendecomposition of `T` formed from the whitened rows themselves.
    #[test]
    fn lanczos_finds_the_explicit_operators_top_eigenpair() {
        for (k, planted, seed) in [(4, 0, 3), (5, 30, 4), (9, 40, 5), (16, 0, 6)] {
            let m = 500;
            let y = rows(m, k, planted, 3.0, seed);
            let p = k * (k + 1) / 2;
            let mut lifted = vec![0.0; m * p];
            for (r, out) in lifted.chunks_exact_mut(p).enumerate() {
                lift(|a| y[(r, a)], k, out);
            }
            let all = faer::MatRef::from_row_major_slice(&lifted, m, p);
            let moments = at_b(all, all);
            let mut second = at_b(y.as_ref(), y.as_ref());
            second *= faer::Scale(1.0 / m as f64);
            let w = inv_sqrt(second.as_ref()).unwrap();
            let z = a_b(y.as_ref(), w.as_ref());
            let mut whitened = Mat::zeros(m, p);
            let mut row = vec![0.0; p];
            for r in 0..m {
                lift(|a| z[(r, a)], k, &mut row);
                row.iter().enumerate().for_each(|(j, &x)| whitened[(r, j)] = x);
            }
            let mut psi = vec![0.0; p];
            from_sym(&Mat::<f64>::identity(k, k), &mut psi);
            let mut t = at_b(whitened.as_ref(), whitened.as_ref());
            t *= faer::Scale(1.0 / m as f64);
            let t = Mat::from_fn(p, p, |a, b| t[(a, b)] - psi[a] * psi[b]);
            let (vals, vecs) = sym_eigen(t.as_ref()).unwrap();
            let start = vec![1.0; p];
            let (theta, v) =
                top_eigenpair(fourth_moment_operator(&moments, &w, m), &start).unwrap();
            let top = vals[p - 1];
            assert!((theta - top).abs() <= 1e-9 * top, "k {k}: {theta} against {top}");
            let gap = top - vals[p - 2];
            let cosine = (0..p).map(|i| v[i] * vecs[(i, p - 1)]).sum::<f64>().abs();
            assert!(1.0 - cosine <= 1e-8 / gap.min(1.0), "k {k}: cosine {cosine}, gap {gap}");
        }
    }
}
