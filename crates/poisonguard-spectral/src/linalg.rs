//! Top eigenpairs of a class covariance without a full SVD when the class is large.
//!
//! Everything here runs single-threaded (`Par::Seq`): classes run in parallel one level up, and
//! a fixed operation order makes the results bit-identical for any thread count.

use faer::{Mat, MatRef};
use poisonguard_linalg::{a_b, at_b, sym_eigen};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// When `min(n_samples, n_features)` of a class is at most this, the exact route is taken: a full
/// symmetric eigendecomposition of the smaller of covariance (`d x d`) and Gram (`n x n`) matrix.
pub(crate) const EXACT_MAX_DIM: usize = 128;
/// Block size of the subspace iteration (two wanted eigenpairs plus oversampling, which makes
/// the convergence rate `lambda_{b+1} / lambda_1` rather than `lambda_2 / lambda_1`).
const BLOCK: usize = 8;

/// The top two eigenvalues of a centred class's covariance `X^T X / n`, its trace and the top
/// eigenvector (unit length, sign fixed so that its largest-magnitude entry is positive).
#[derive(Debug, Clone)]
pub(crate) struct TopEigen {
    pub lambda1: f64,
    pub lambda2: f64,
    pub trace: f64,
    pub vector: Vec<f64>,
}

/// Options of the subspace iteration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Iteration {
    pub max_iter: usize,
    pub tol: f64,
    pub seed: u64,
}

/// A centred class matrix `X` (`n x d`) as the solvers of this module read it: its products with
/// a few columns and its co-moment matrices. Either a dense f64 copy ([`MatRef`]) or the class's
/// f32 rows centred a block at a time ([`ClassRows`](crate::classes::ClassRows)), which gives the
/// same values up to the order of the sums over rows, without the `n x d` f64 copy (10^5 rows x
/// 512 features are 410 MB a class).
pub(crate) trait ClassMatrix {
    /// `(n, d)`.
    fn shape(&self) -> (usize, usize);
    /// `sum_ij x_ij^2`.
    fn squared_norm(&self) -> f64;
    /// `X Q` (`n x b`).
    fn times(&self, q: MatRef<'_, f64>) -> Mat<f64>;
    /// `X^T Y` (`d x b`).
    fn t_times(&self, y: MatRef<'_, f64>) -> Mat<f64>;
    /// `(X Q, X^T X Q)`: one pass over the rows where they are read a block at a time.
    fn times_and_back(&self, q: MatRef<'_, f64>) -> (Mat<f64>, Mat<f64>) {
        let y = self.times(q);
        let back = self.t_times(y.as_ref());
        (y, back)
    }
    /// `X^T X` (`d x d`).
    fn comoment(&self) -> Mat<f64>;
    /// `X X^T` (`n x n`).
    fn gram(&self) -> Mat<f64>;
}

impl ClassMatrix for MatRef<'_, f64> {
    fn shape(&self) -> (usize, usize) {
        (self.nrows(), self.ncols())
    }
    fn squared_norm(&self) -> f64 {
        self.squared_norm_l2()
    }
    fn times(&self, q: MatRef<'_, f64>) -> Mat<f64> {
        a_b(*self, q)
    }
    fn t_times(&self, y: MatRef<'_, f64>) -> Mat<f64> {
        at_b(*self, y)
    }
    fn comoment(&self) -> Mat<f64> {
        at_b(*self, *self)
    }
    fn gram(&self) -> Mat<f64> {
        a_b(*self, self.transpose())
    }
}

/// Top eigenpairs of `X^T X / n` for a centred `n x d` matrix `x` (n >= 1, d >= 1).
/// Returns `None` when the symmetric eigensolver fails.
pub(crate) fn top_eigen(x: &impl ClassMatrix, it: Iteration) -> Option<TopEigen> {
    let (n, d) = x.shape();
    let trace = x.squared_norm() / n as f64;
    let (lambda1, lambda2, mut vector) =
        if n.min(d) <= EXACT_MAX_DIM { exact(x)? } else { subspace(x, it)? };
    fix_sign(&mut vector);
    Some(TopEigen { lambda1, lambda2, trace, vector })
}

/// The top eigenpair of a covariance matrix (`d x d`, already divided by the rows), by the exact
/// symmetric eigendecomposition, with [`top_eigen`]'s sign convention: the route of fits that
/// hold moments ([`poisonguard_linalg::Moments`]) instead of rows.
pub(crate) fn top_eigen_of_covariance(cov: MatRef<'_, f64>) -> Option<TopEigen> {
    let d = cov.nrows();
    let trace = (0..d).map(|j| cov[(j, j)]).sum();
    let (vals, vecs) = sym_eigen(cov)?;
    let l1 = vals[d - 1];
    let l2 = if d > 1 { vals[d - 2] } else { 0.0 };
    let mut vector: Vec<f64> = vecs.col(d - 1).iter().copied().collect();
    fix_sign(&mut vector);
    Some(TopEigen { lambda1: l1.max(0.0), lambda2: l2.max(0.0), trace, vector })
}

fn exact(x: &impl ClassMatrix) -> Option<(f64, f64, Vec<f64>)> {
    let (n, d) = x.shape();
    let scale = 1.0 / n as f64;
    if d <= n {
        let mut c = x.comoment();
        c *= faer::Scale(scale);
        let (vals, vecs) = sym_eigen(c.as_ref())?;
        let l1 = vals[d - 1];
        let l2 = if d > 1 { vals[d - 2] } else { 0.0 };
        Some((l1.max(0.0), l2.max(0.0), vecs.col(d - 1).iter().copied().collect()))
    } else {
        // Gram route: X X^T u = lambda u  =>  v = X^T u / |X^T u|.
        let mut g = x.gram();
        g *= faer::Scale(scale);
        let (vals, vecs) = sym_eigen(g.as_ref())?;
        let l1 = vals[n - 1];
        let l2 = if n > 1 { vals[n - 2] } else { 0.0 };
        let v = x.t_times(vecs.col(n - 1).as_mat());
        let mut v: Vec<f64> = v.col(0).iter().copied().collect();
        normalize(&mut v);
        Some((l1.max(0.0), l2.max(0.0), v))
    }
}

/// Block subspace iteration with Rayleigh-Ritz; stops when the top two Ritz values change by
/// less than `tol` (relative) or after `max_iter` iterations, returning the best Ritz pair found.
///
/// Each step multiplies through the rows (`X`, then `X^T`: `4 n d` times the block). When the
/// class has at least as many rows as features and the iteration has not converged after `d /
/// (4 b)` steps (where those products have cost as much as forming the covariance, `n d^2`), it
/// forms the covariance once and multiplies by it (`2 d^2` times the block per step): the
/// iteration converges slowly exactly on clean classes, whose top eigenvalues are nearly equal,
/// and on 2 x 10^5 x 512 Gaussian rows in ten classes it ran all 300 steps through `X` (39 s for
/// `spectral_signature`, 4.9 s through the covariance). So a step costs at most about twice the
/// cheaper of the two routes, whether the iteration converges fast or not.
fn subspace(x: &impl ClassMatrix, it: Iteration) -> Option<(f64, f64, Vec<f64>)> {
    let (n, d) = x.shape();
    let b = BLOCK.min(d);
    let mut rng = SmallRng::seed_from_u64(it.seed);
    let mut q = Mat::from_fn(d, b, |_, _| rng.random_range(-1.0..1.0));
    orthonormalize(&mut q);
    let switch_at = if d <= n { d / (4 * b) } else { usize::MAX };
    let mut cov: Option<Mat<f64>> = None;
    // `C Q` (d x b, up to scale) and `Q^T C Q` (b x b), through the covariance or the rows
    let step = |q: &Mat<f64>, cov: &Option<Mat<f64>>| -> (Mat<f64>, Mat<f64>) {
        match cov {
            Some(c) => {
                let cq = a_b(c.as_ref(), q.as_ref());
                let t = at_b(q.as_ref(), cq.as_ref());
                (cq, t)
            }
            None => {
                let (y, back) = x.times_and_back(q.as_ref()); // n x b, d x b
                let mut t = at_b(y.as_ref(), y.as_ref());
                t *= faer::Scale(1.0 / n as f64);
                (back, t)
            }
        }
    };
    let mut prev = (f64::NAN, f64::NAN);
    let mut ritz = None;
    for iter in 0..it.max_iter.max(1) {
        if iter == switch_at {
            let mut c = x.comoment();
            c *= faer::Scale(1.0 / n as f64);
            cov = Some(c);
        }
        let (cq, t) = step(&q, &cov);
        let (vals, w) = sym_eigen(t.as_ref())?;
        let (l1, l2) = (vals[b - 1], if b > 1 { vals[b - 2] } else { 0.0 });
        let v = a_b(q.as_ref(), w.col(b - 1).as_mat());
        ritz = Some((l1.max(0.0), l2.max(0.0), v.col(0).iter().copied().collect::<Vec<f64>>()));
        let close = |a: f64, p: f64| (a - p).abs() <= it.tol * l1.abs().max(f64::MIN_POSITIVE);
        if close(l1, prev.0) && close(l2, prev.1) {
            break;
        }
        prev = (l1, l2);
        q = cq;
        orthonormalize(&mut q);
    }
    let (l1, l2, mut v) = ritz?;
    normalize(&mut v);
    Some((l1, l2, v))
}

/// Modified Gram-Schmidt, twice ("twice is enough"); a column that vanishes is replaced by a
/// unit vector orthogonal to the previous ones where possible.
fn orthonormalize(q: &mut Mat<f64>) {
    let (d, b) = (q.nrows(), q.ncols());
    for _pass in 0..2 {
        for j in 0..b {
            for i in 0..j {
                let dot: f64 = (0..d).map(|r| q[(r, i)] * q[(r, j)]).sum();
                for r in 0..d {
                    q[(r, j)] -= dot * q[(r, i)];
                }
            }
            let norm = (0..d).map(|r| q[(r, j)] * q[(r, j)]).sum::<f64>().sqrt();
            if norm > 1e-300 {
                for r in 0..d {
                    q[(r, j)] /= norm;
                }
            } else {
                for r in 0..d {
                    q[(r, j)] = if r == j % d { 1.0 } else { 0.0 };
                }
            }
        }
    }
}

fn normalize(v: &mut [f64]) {
    let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|a| *a /= norm);
    }
}

fn fix_sign(v: &mut [f64]) {
    let mut best = 0.0f64;
    for &a in v.iter() {
        if a.abs() > best.abs() {
            best = a;
        }
    }
    if best < 0.0 {
        v.iter_mut().for_each(|a| *a = -*a);
    }
}

/// `(eigenvalues descending, eigenvectors as columns)` of a symmetric matrix.
pub(crate) fn eig_desc(a: MatRef<'_, f64>) -> Option<(Vec<f64>, Mat<f64>)> {
    let (vals, vecs) = sym_eigen(a)?;
    let n = vals.len();
    let order: Vec<usize> = (0..n).rev().collect();
    Some((order.iter().map(|&i| vals[i]).collect(), Mat::from_fn(n, n, |r, c| vecs[(r, order[c])])))
}

/// The top `p` eigenvectors (`d x p`) of the co-moment matrix `sum x x^T` of `n` centred rows.
pub(crate) fn top_directions(mut comoment: Mat<f64>, n: usize, p: usize) -> Option<Mat<f64>> {
    comoment *= faer::Scale(1.0 / n as f64);
    let (_, vecs) = eig_desc(comoment.as_ref())?;
    Some(Mat::from_fn(comoment.nrows(), p, |r, j| vecs[(r, j)]))
}

/// The top `p` principal directions of the centred class matrix (`d x p`) and the projected rows.
pub(crate) fn principal(c: &impl ClassMatrix, p: usize) -> Option<(Mat<f64>, Mat<f64>)> {
    let (n, d) = c.shape();
    let basis = if d <= n {
        top_directions(c.comoment(), n, p)?
    } else {
        // Gram route: C C^T u = lambda u  =>  v = C^T u / |C^T u|
        let g = c.gram();
        let (_, u) = eig_desc(g.as_ref())?;
        let v = c.t_times(u.as_ref());
        Mat::from_fn(d, p, |r, j| {
            let norm = (0..d).map(|t| v[(t, j)] * v[(t, j)]).sum::<f64>().sqrt();
            if norm > 0.0 { v[(r, j)] / norm } else { 0.0 }
        })
    };
    let y = c.times(basis.as_ref());
    Some((basis, y))
}

/// Eigenvalues below this share of the largest are treated as zero by [`inv_sqrt`].
const INV_SQRT_RCOND: f64 = 1e-10;

/// `cov^(-1/2)` of a symmetric positive semi-definite matrix: the pseudo-inverse square root,
/// directions with eigenvalues below [`INV_SQRT_RCOND`] of the largest left out. `None` when
/// the eigendecomposition fails.
pub(crate) fn inv_sqrt(cov: MatRef<'_, f64>) -> Option<Mat<f64>> {
    let (vals, vecs) = eig_desc(cov)?;
    let max = vals.first().copied().unwrap_or(0.0).max(0.0);
    let s: Vec<f64> = vals
        .iter()
        .map(|&v| if v > INV_SQRT_RCOND * max && v > 0.0 { 1.0 / v.sqrt() } else { 0.0 })
        .collect();
    let scaled = Mat::from_fn(vecs.nrows(), vecs.ncols(), |r, c| vecs[(r, c)] * s[c]);
    Some(a_b(scaled.as_ref(), vecs.transpose()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn centred(n: usize, d: usize, seed: u64, spike: f64) -> Mat<f64> {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut x =
            Mat::from_fn(n, d, |_, j| rng.random_range(-1.0..1.0) / (1.0 + j as f64).sqrt());
        // a spike along e_0 + e_1 for the first tenth of the rows
        for i in 0..n / 10 {
            x[(i, 0)] += spike;
            x[(i, 1)] += spike;
        }
        for j in 0..d {
            let m = (0..n).map(|i| x[(i, j)]).sum::<f64>() / n as f64;
            for i in 0..n {
                x[(i, j)] -= m;
            }
        }
        x
    }

    #[test]
    fn subspace_iteration_matches_exact() {
        let it = Iteration { max_iter: 500, tol: 1e-13, seed: 7 };
        for (n, d) in [(300, 200), (150, 400)] {
            let x = centred(n, d, 3, 4.0);
            let (e1, e2, ev) = exact(&x.as_ref()).unwrap();
            let (s1, s2, sv) = subspace(&x.as_ref(), it).unwrap();
            assert!((e1 - s1).abs() < 1e-9 * e1, "lambda1 {e1} vs {s1}");
            assert!((e2 - s2).abs() < 1e-6 * e2, "lambda2 {e2} vs {s2}");
            let cos: f64 = ev.iter().zip(&sv).map(|(a, b)| a * b).sum();
            assert!(cos.abs() > 1.0 - 1e-8, "cosine {cos}");
        }
    }

    #[test]
    fn finds_the_planted_direction() {
        let x = centred(400, 20, 1, 5.0);
        let t = top_eigen(&x.as_ref(), Iteration { max_iter: 100, tol: 1e-10, seed: 0 }).unwrap();
        let s = std::f64::consts::FRAC_1_SQRT_2;
        assert!(
            t.vector[0] > 0.65 && (t.vector[0] - s).abs() < 0.05 && (t.vector[1] - s).abs() < 0.05
        );
        assert!(t.lambda1 > 3.0 * t.lambda2);
        assert!(t.trace >= t.lambda1 + t.lambda2);
    }

    #[test]
    fn orthonormalize_handles_dependent_columns() {
        let mut q = Mat::from_fn(4, 2, |i, _| i as f64);
        orthonormalize(&mut q);
        let dot: f64 = (0..4).map(|r| q[(r, 0)] * q[(r, 1)]).sum();
        assert!(dot.abs() < 1e-12);
    }
}
