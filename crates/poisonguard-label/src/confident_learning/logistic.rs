//! Multinomial logistic regression (L2, L-BFGS) and its stratified K-fold out-of-sample
//! probabilities: the built-in classifier of confident learning.

use faer::{Accum, Mat, MatRef};
use std::ops::Range;

use ndarray::{Array2, ArrayView2};
use poisonguard_linalg::matmul;
use pulp::{Arch, Simd, WithSimd};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;

use poisonguard_core::Standardizer as Scaler;

/// Settings of the classifier (scikit-learn's `LogisticRegression` defaults).
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq)]
pub(crate) struct LogisticSettings {
    /// Inverse L2 strength: the objective is `C * sum(log loss) + |W|^2 / 2`.
    pub c: f64,
    /// L-BFGS iteration cap.
    pub max_iter: usize,
    /// Stop when the largest gradient entry of the mean objective is below this.
    pub gtol: f64,
}

/// A fitted multinomial logistic model: `softmax(x W + b)`.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
pub(crate) struct Logistic {
    #[serde(with = "poisonguard_linalg::mat_serde")]
    w: Mat<f64>,
    b: Vec<f64>,
}

/// L-BFGS memory.
const MEMORY: usize = 10;
/// Relative objective decrease below which L-BFGS stops (as scikit-learn's `ftol`).
const FTOL: f64 = 64.0 * f64::EPSILON;

/// Up to this many values (256 MiB of f32) the cross-validation keeps the z-scores of its rows
/// (every row up to 50,000 rows of 1,280 features) instead of standardizing them at every
/// pass; the values are the same either way.
const CACHE_VALUES: usize = 1 << 26;

/// Rows standardized and multiplied together: bounds the working memory of a fit at a few
/// `ROW_BLOCK x d` blocks, whatever the number of rows.
const ROW_BLOCK: usize = 512;

/// The rows a model is fitted on or predicts, standardized a block at a time as they are read
/// (a standardized copy of them only where it is small, [`CACHE_VALUES`]): `rows` of `x` (all
/// rows when `None`), each value `scaler.z(j, v)` rounded to f32.
#[derive(Clone, Copy)]
pub(crate) struct Standardized<'a> {
    x: ArrayView2<'a, f32>,
    rows: Option<&'a [usize]>,
    scaler: &'a Scaler,
    /// The z-scores of all the rows, row-major, where they were computed once ([`Self::cached`]).
    cache: Option<&'a [f32]>,
}

impl<'a> Standardized<'a> {
    pub(crate) fn new(
        x: ArrayView2<'a, f32>,
        rows: Option<&'a [usize]>,
        scaler: &'a Scaler,
    ) -> Self {
        Self { x, rows, scaler, cache: None }
    }

    /// The z-scores of every row, row-major (`n x d`): what [`Self::cached`] reads the rows from.
    pub(crate) fn z_scores(&self) -> Vec<f32> {
        let d = self.d();
        let mut z = vec![0.0f32; self.n() * d];
        for (at, out) in z.chunks_exact_mut(d.max(1)).enumerate() {
            self.fill_row(at, out);
        }
        z
    }

    /// The same rows read from their z-scores computed once (`z`, from [`Self::z_scores`]),
    /// rather than standardized again at every pass: the same values, without the conversion
    /// that took a third of a fit's time on 15,000 x 512 embeddings.
    pub(crate) fn cached(self, z: &'a [f32]) -> Self {
        debug_assert_eq!(z.len(), self.n() * self.d());
        Self { cache: Some(z), ..self }
    }

    fn n(&self) -> usize {
        self.rows.map_or(self.x.nrows(), <[usize]>::len)
    }

    fn d(&self) -> usize {
        self.x.ncols()
    }

    /// Row at position `at` (of `rows`) standardized into `out`.
    fn fill_row(&self, at: usize, out: &mut [f32]) {
        let i = self.rows.map_or(at, |rows| rows[at]);
        let row = self.x.row(i);
        match row.as_slice() {
            Some(values) => self.scaler.z_row_into(values, out),
            None => self.scaler.z_row_into(&row.to_vec(), out),
        }
    }

    /// The rows at positions `start..start + len` (of `rows`), standardized, as a `d x len`
    /// column-major matrix (each row contiguous): a view of the cache where there is one, else
    /// written into `block`'s first `len` columns.
    fn block<'b>(&'b self, start: usize, len: usize, block: &'b mut Mat<f32>) -> MatRef<'b, f32> {
        let d = self.d();
        if let Some(z) = self.cache {
            return MatRef::from_column_major_slice(&z[start * d..(start + len) * d], d, len);
        }
        for r in 0..len {
            self.fill_row(start + r, block.col_as_slice_mut(r));
        }
        block.as_ref().subcols(0, len)
    }
}

/// Buffers of [`objective`], allocated once per fit: one block of standardized rows, their
/// logits (then residuals, `len x k` row-major), the `d x k` gradient of one block (f32,
/// column `j` for class `j`) and the gradient summed over blocks.
struct Work {
    block: Mat<f32>,
    logits: Vec<f32>,
    gt: Vec<f32>,
    grad: Vec<f64>,
}

impl Work {
    fn new(d: usize, k: usize) -> Self {
        Self {
            block: Mat::zeros(d, ROW_BLOCK),
            logits: vec![0.0; ROW_BLOCK * k],
            gt: vec![0.0; d * k],
            grad: vec![0.0; k * d],
        }
    }
}

// The two products of a block of rows with the model, `X W` (logits) and `X^T R` (gradient),
// have k = 2-10 columns, where a general matrix-product kernel ran at a fraction of this
// machine's rate: each row is read once per product, in vector registers (`pulp` compiles
// the two kernels below for AVX2 and picks it where the CPU has it).

/// Column `j` of `m` (column-major) as a slice.
#[inline(always)]
fn column(m: MatRef<'_, f32>, j: usize) -> &[f32] {
    m.col(j).try_as_col_major().expect("columns are contiguous").as_slice()
}

/// The logits `X W` of the rows of `block` (`d x len`, one row per column) under the weights
/// `w` (`d x k`), row-major into `out` (`len x k`).
struct Logits<'a> {
    block: MatRef<'a, f32>,
    w: MatRef<'a, f32>,
    /// Which rows are computed (the others, held out, are left as they are); all when `None`.
    train: Option<&'a [bool]>,
    out: &'a mut [f32],
}

impl WithSimd for Logits<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) {
        let k = self.w.ncols();
        for (r, out) in self.out.chunks_exact_mut(k).enumerate() {
            if self.train.is_some_and(|t| !t[r]) {
                continue;
            }
            let row = column(self.block, r);
            for (j, o) in out.iter_mut().enumerate() {
                *o = dot32(row, column(self.w, j));
            }
        }
    }
}

/// `gt += X^T R`: the residuals `R` (`len x k`, row-major) of the rows of `block` into the
/// gradient `gt` (`d x k`, column-major).
struct Gradient<'a> {
    block: MatRef<'a, f32>,
    /// Which rows count (the others, held out, are skipped); all when `None`.
    train: Option<&'a [bool]>,
    residuals: &'a [f32],
    gt: &'a mut [f32],
}

impl WithSimd for Gradient<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) {
        let d = self.block.nrows();
        let k = self.gt.len() / d.max(1);
        for (r, res) in self.residuals.chunks_exact(k).enumerate() {
            if self.train.is_some_and(|t| !t[r]) {
                continue;
            }
            let row = column(self.block, r);
            for (g, &a) in self.gt.chunks_exact_mut(d).zip(res) {
                for (gi, &xi) in g.iter_mut().zip(row) {
                    *gi += a * xi;
                }
            }
        }
    }
}

/// Partial sums of [`dot32`]: four AVX registers of f32, so that the additions do not
/// wait on each other.
const LANES: usize = 32;

/// `a . b` in f32: `LANES` partial sums added in order, then the tail; plain multiplications
/// and additions (no fused multiply-add), so the result is the same on every x86-64 CPU
/// whatever vector width runs it.
#[inline(always)]
fn dot32(a: &[f32], b: &[f32]) -> f32 {
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(&x, &y)| x * y).sum();
    let mut acc = [0.0f32; LANES];
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// The training rows of one cross-validation fold inside the matrix standardized once for all
/// folds: which rows train, how many, and per column the map `(scale, shift)` from the shared
/// z-scores to the fold's own (its standardizer is fitted on its training rows), so that no fold
/// copies its rows: the held-out rows weigh 0.
pub(crate) struct FoldRows<'a> {
    train: &'a [bool],
    n_train: usize,
    affine: &'a [(f64, f64)],
}

impl<'a> FoldRows<'a> {
    fn new(train: &'a [bool], affine: &'a [(f64, f64)]) -> Self {
        Self { train, n_train: train.iter().filter(|&&t| t).count(), affine }
    }
}

/// The weights and intercepts that act on the shared z-scores as `w(r, j)` and `b` act on the
/// fold's: `z_fold W + b = z (diag(scale) W) + (shift^T W + b)` (`W` is `d x k`).
fn effective(
    w: impl Fn(usize, usize) -> f64,
    b: &[f64],
    d: usize,
    fold: Option<&FoldRows<'_>>,
) -> (Mat<f32>, Vec<f64>) {
    let scale = |r: usize| fold.map_or(1.0, |f| f.affine[r].0);
    let weights = Mat::<f32>::from_fn(d, b.len(), |r, j| (w(r, j) * scale(r)) as f32);
    let bias = b
        .iter()
        .enumerate()
        .map(|(j, &bj)| {
            let shift: f64 = fold.map_or(0.0, |f| (0..d).map(|r| f.affine[r].1 * w(r, j)).sum());
            bj + shift
        })
        .collect();
    (weights, bias)
}

/// Mean log loss plus `|W|^2 / (2 C n)` at `theta` (`W` column-major `d x k`, then `b`), and its
/// gradient into `grad`; over the rows of `x`, or with `fold` over its training rows (in its
/// standardization) with the other rows weighing 0.
///
/// The rows go a block at a time ([`pass`]), in two halves fitted side by side where a thread
/// is free (the halves are fixed by the rows, not by the threads, and added in order): the
/// first fold's path of `C` is fitted alone while the other folds wait for its choice.
#[allow(clippy::too_many_arguments)] // the L-BFGS kernel's inputs, each used in the hot loop
fn objective(
    x: &Standardized<'_>,
    y: &[u32],
    k: usize,
    c: f64,
    theta: &[f64],
    grad: &mut [f64],
    work: &mut [Work; 2],
    fold: Option<&FoldRows<'_>>,
) -> f64 {
    let (n, d) = (x.n(), x.d());
    let (w, b) = effective(|r, j| theta[j * d + r], &theta[d * k..], d, fold);
    let model = (w.as_ref(), b.as_slice());
    let middle = n.div_ceil(ROW_BLOCK) / 2 * ROW_BLOCK;
    let [first, second] = work;
    let ((loss, mut bias_grad), (loss2, bias2)) = crate::join(
        || pass(x, y, model, 0..middle, first, fold),
        || pass(x, y, model, middle..n, second, fold),
    );
    let loss = loss + loss2;
    bias_grad.iter_mut().zip(&bias2).for_each(|(a, b)| *a += b);
    let nf = fold.map_or(n, |f| f.n_train) as f64;
    let mut reg = 0.0;
    for j in 0..k {
        for r in 0..d {
            let wv = theta[j * d + r];
            reg += wv * wv;
            // the gradient in the fold's z-scores: diag(scale) (z^T R) + shift (1^T R)
            let g = first.grad[j * d + r] + second.grad[j * d + r];
            let g = fold.map_or(g, |f| f.affine[r].0 * g + f.affine[r].1 * bias_grad[j]);
            grad[j * d + r] = g / nf + wv / (c * nf);
        }
        grad[d * k + j] = bias_grad[j] / nf;
    }
    loss / nf + reg / (2.0 * c * nf)
}

/// The summed log loss of the rows at positions `rows` (a whole number of blocks from its
/// start) under `model` (the effective weights and intercepts), its gradient with respect to
/// the weights into `work.grad` and the returned gradient of the intercepts. A block at a
/// time: standardized, then the two products with the data (logits `X W` and gradient
/// `X^T (P - Y)`) in f32, as the features are stored; the softmax, the loss, the gradient
/// summed over blocks and the parameters are f64.
fn pass(
    x: &Standardized<'_>,
    y: &[u32],
    (w, b): (MatRef<'_, f32>, &[f64]),
    rows: Range<usize>,
    work: &mut Work,
    fold: Option<&FoldRows<'_>>,
) -> (f64, Vec<f64>) {
    let k = b.len();
    let mut loss = 0.0;
    let mut bias_grad = vec![0.0f64; k];
    let mut z = vec![0.0f64; k];
    work.grad.fill(0.0);
    let Work { block: buffer, logits, gt, grad: total } = work;
    for start in rows.clone().step_by(ROW_BLOCK) {
        let len = ROW_BLOCK.min(rows.end - start);
        let block = x.block(start, len, buffer);
        let logits = &mut logits[..len * k];
        let train = fold.map(|f| &f.train[start..start + len]);
        Arch::new().dispatch(Logits { block, w, train, out: logits });
        let rows = y[start..start + len].iter().zip(logits.chunks_exact_mut(k));
        for (r, (&yi, row)) in rows.enumerate() {
            if train.is_some_and(|t| !t[r]) {
                continue;
            }
            let mut m = f64::NEG_INFINITY;
            for ((zj, &lj), bj) in z.iter_mut().zip(row.iter()).zip(b) {
                *zj = f64::from(lj) + bj;
                m = m.max(*zj);
            }
            let yi = yi as usize;
            let own = z[yi];
            let mut s = 0.0;
            for zj in z.iter_mut() {
                *zj = (*zj - m).exp();
                s += *zj;
            }
            loss += m + s.ln() - own;
            for zj in z.iter_mut() {
                *zj /= s;
            }
            z[yi] -= 1.0;
            // the row's residuals replace its logits
            for ((g, &zj), lj) in bias_grad.iter_mut().zip(&z).zip(row.iter_mut()) {
                *g += zj;
                *lj = zj as f32;
            }
        }
        gt.fill(0.0);
        Arch::new().dispatch(Gradient { block, train, residuals: logits, gt });
        for (t, &g) in total.iter_mut().zip(gt.iter()) {
            *t += f64::from(g);
        }
    }
    (loss, bias_grad)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

impl Logistic {
    /// Fits on standardized rows `x` with classes `y` in `0..k`, starting from the parameters
    /// `init` (a previous fit's, for a warm start along a regularization path) or from zero.
    /// Returns the model and its parameters.
    pub(crate) fn fit_from(
        x: &Standardized<'_>,
        y: &[u32],
        k: usize,
        s: LogisticSettings,
        init: Option<&[f64]>,
        fold: Option<&FoldRows<'_>>,
    ) -> (Self, Vec<f64>) {
        let d = x.d();
        let dim = d * k + k;
        let mut theta = init.map_or_else(|| vec![0.0f64; dim], <[f64]>::to_vec);
        let mut grad = vec![0.0f64; dim];
        let mut work = [Work::new(d, k), Work::new(d, k)];
        let mut f = objective(x, y, k, s.c, &theta, &mut grad, &mut work, fold);
        let mut hist_s: Vec<Vec<f64>> = Vec::new();
        let mut hist_y: Vec<Vec<f64>> = Vec::new();
        let mut new_grad = vec![0.0f64; dim];
        let mut trial = vec![0.0f64; dim];
        for iter in 0..s.max_iter {
            if grad.iter().fold(0.0f64, |m, g| m.max(g.abs())) <= s.gtol {
                break;
            }
            // Two-loop recursion: direction = -H grad.
            let mut q = grad.clone();
            let mut alphas = vec![0.0; hist_s.len()];
            for t in (0..hist_s.len()).rev() {
                let rho = 1.0 / dot(&hist_y[t], &hist_s[t]);
                alphas[t] = rho * dot(&hist_s[t], &q);
                q.iter_mut().zip(&hist_y[t]).for_each(|(qi, yi)| *qi -= alphas[t] * yi);
            }
            if let (Some(sl), Some(yl)) = (hist_s.last(), hist_y.last()) {
                let gamma = dot(sl, yl) / dot(yl, yl);
                q.iter_mut().for_each(|v| *v *= gamma);
            }
            for t in 0..hist_s.len() {
                let rho = 1.0 / dot(&hist_y[t], &hist_s[t]);
                let beta = rho * dot(&hist_y[t], &q);
                q.iter_mut().zip(&hist_s[t]).for_each(|(qi, si)| *qi += (alphas[t] - beta) * si);
            }
            let dir: Vec<f64> = q.iter().map(|v| -v).collect();
            let mut slope = dot(&dir, &grad);
            let dir = if slope < 0.0 {
                dir
            } else {
                // Not a descent direction: restart from steepest descent.
                hist_s.clear();
                hist_y.clear();
                slope = -dot(&grad, &grad);
                grad.iter().map(|g| -g).collect()
            };
            let mut step = if iter == 0 && hist_s.is_empty() {
                1.0 / dir.iter().map(|v| v * v).sum::<f64>().sqrt().max(1.0)
            } else {
                1.0
            };
            // Backtracking (Armijo) line search.
            let mut accepted = None;
            for _ in 0..50 {
                trial
                    .iter_mut()
                    .zip(&theta)
                    .zip(&dir)
                    .for_each(|((t, th), dv)| *t = th + step * dv);
                let ft = objective(x, y, k, s.c, &trial, &mut new_grad, &mut work, fold);
                if ft <= f + 1e-4 * step * slope {
                    accepted = Some(ft);
                    break;
                }
                step *= 0.5;
            }
            let Some(ft) = accepted else { break };
            let sv: Vec<f64> = trial.iter().zip(&theta).map(|(a, b)| a - b).collect();
            let yv: Vec<f64> = new_grad.iter().zip(&grad).map(|(a, b)| a - b).collect();
            let decrease = (f - ft) / f.abs().max(ft.abs()).max(1.0);
            std::mem::swap(&mut theta, &mut trial);
            std::mem::swap(&mut grad, &mut new_grad);
            f = ft;
            if dot(&sv, &yv) > 1e-12 * dot(&yv, &yv).max(f64::MIN_POSITIVE) {
                if hist_s.len() == MEMORY {
                    hist_s.remove(0);
                    hist_y.remove(0);
                }
                hist_s.push(sv);
                hist_y.push(yv);
            }
            if decrease <= FTOL {
                break;
            }
        }
        let w = Mat::from_fn(d, k, |r, j| theta[j * d + r]);
        (Self { w, b: theta[d * k..].to_vec() }, theta)
    }

    /// Class probabilities of the rows of `x` (with `fold`, mapped from the shared
    /// standardization to the fold's), a block at a time, handed to `each(position, p)` in
    /// order.
    fn predict_each(
        &self,
        x: &Standardized<'_>,
        fold: Option<&FoldRows<'_>>,
        mut each: impl FnMut(usize, &[f64]),
    ) {
        let k = self.b.len();
        let (w, b) = effective(|r, j| self.w[(r, j)], &self.b, self.w.nrows(), fold);
        // Every product has the shape of a full block (columns past the end keep the last
        // block's rows and are ignored), so a row's logits are computed the same way however
        // many rows are scored with it.
        let mut block = Mat::<f32>::zeros(x.d(), ROW_BLOCK);
        let mut z = Mat::<f32>::zeros(ROW_BLOCK, k);
        let mut p = vec![0.0f64; k];
        for start in (0..x.n()).step_by(ROW_BLOCK) {
            let len = ROW_BLOCK.min(x.n() - start);
            for r in 0..len {
                x.fill_row(start + r, block.col_as_slice_mut(r));
            }
            matmul(z.as_mut(), Accum::Replace, block.as_ref().transpose(), w.as_ref(), 1.0);
            for r in 0..len {
                let logit = |j: usize| f64::from(z[(r, j)]) + b[j];
                let m = (0..k).map(logit).fold(f64::NEG_INFINITY, f64::max);
                for (j, o) in p.iter_mut().enumerate() {
                    *o = (logit(j) - m).exp();
                }
                let s: f64 = p.iter().sum();
                p.iter_mut().for_each(|o| *o /= s);
                each(start + r, &p);
            }
        }
    }
}

/// A standardizer and a model fitted on the same rows.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
pub(crate) struct ScaledLogistic {
    scaler: Scaler,
    model: Logistic,
}

impl ScaledLogistic {
    /// Fits the scaler on `rows` of `x`, then one model per inverse L2 strength in `cs` (in
    /// that order, each warm-started from the previous one).
    pub(crate) fn fit_path(
        x: ArrayView2<'_, f32>,
        classes: &[u32],
        rows: &[usize],
        k: usize,
        s: LogisticSettings,
        cs: &[f64],
    ) -> Vec<Self> {
        let scaler = Scaler::fit_rows(x, rows);
        let xs = Standardized::new(x.view(), Some(rows), &scaler);
        let y: Vec<u32> = rows.iter().map(|&i| classes[i]).collect();
        let mut theta: Option<Vec<f64>> = None;
        cs.iter()
            .map(|&c| {
                let settings = LogisticSettings { c, ..s };
                let (model, t) = Logistic::fit_from(&xs, &y, k, settings, theta.as_deref(), None);
                theta = Some(t);
                Self { scaler: scaler.clone(), model }
            })
            .collect()
    }

    /// Features the model was fitted on.
    pub(crate) fn n_features(&self) -> usize {
        self.model.w.nrows()
    }

    /// Probabilities of `rows` of `x`, `rows.len() x k` row-major.
    pub(crate) fn predict(&self, x: ArrayView2<'_, f32>, rows: &[usize]) -> Vec<f64> {
        let mut out = Vec::with_capacity(rows.len() * self.model.b.len());
        let source = Standardized::new(x.view(), Some(rows), &self.scaler);
        self.model.predict_each(&source, None, |_, p| out.extend_from_slice(p));
        out
    }
}

/// The probabilities of the rows `rows[t]` of `x` for the positions `t` in `test` under a
/// fold's `model` (`x` in the shared standardization, mapped to the fold's), handed to
/// `each(position, probabilities)` in order.
fn for_held_out(
    x: ArrayView2<'_, f32>,
    rows: &[usize],
    shared: &Scaler,
    test: &[usize],
    model: &Logistic,
    fold: &FoldRows<'_>,
    mut each: impl FnMut(usize, &[f64]),
) {
    let ids: Vec<usize> = test.iter().map(|&t| rows[t]).collect();
    let source = Standardized::new(x.view(), Some(&ids), shared);
    model.predict_each(&source, Some(fold), |at, p| each(test[at], p));
}

/// Stratified fold of every row: each class's rows are shuffled (seeded per class) and dealt
/// round-robin into `folds` folds.
pub(crate) fn stratified_folds(classes: &[u32], k: usize, folds: usize, seed: u64) -> Vec<usize> {
    let mut by_class = vec![Vec::new(); k];
    for (i, &c) in classes.iter().enumerate() {
        by_class[c as usize].push(i);
    }
    let mut fold = vec![0usize; classes.len()];
    let mut offset = 0;
    for (c, mut rows) in by_class.into_iter().enumerate() {
        let mut rng = SmallRng::seed_from_u64(poisonguard_core::derive_seed(seed, c as u64));
        rows.shuffle(&mut rng);
        let len = rows.len();
        for (pos, i) in rows.into_iter().enumerate() {
            fold[i] = (pos + offset) % folds;
        }
        // Start the next class where this one stopped, so folds stay balanced in size.
        offset = (offset + len) % folds;
    }
    fold
}

/// The K models of a cross-validation, which score new rows by the mean of their probabilities
/// (as scikit-learn's `CalibratedClassifierCV(ensemble=True)`): no extra fit on all rows.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
pub(crate) struct FoldEnsemble {
    models: Vec<ScaledLogistic>,
}

impl FoldEnsemble {
    /// Features the models were fitted on.
    pub(crate) fn n_features(&self) -> usize {
        self.models.first().map_or(0, ScaledLogistic::n_features)
    }

    /// Mean probabilities of the fold models for `rows` of `x`, `rows.len() x k` row-major.
    pub(crate) fn predict(&self, x: ArrayView2<'_, f32>, rows: &[usize]) -> Vec<f64> {
        let mut sum: Vec<f64> = Vec::new();
        for m in &self.models {
            let p = m.predict(x, rows);
            if sum.is_empty() {
                sum = p;
            } else {
                sum.iter_mut().zip(&p).for_each(|(a, b)| *a += b);
            }
        }
        let m = self.models.len().max(1) as f64;
        sum.iter_mut().for_each(|v| *v /= m);
        sum
    }
}

/// Excess log loss per row, in nats, that the fold models may lose to a fit on every row:
/// the maximum-likelihood fit of `p` parameters on `m` rows is about `p / 2m` above the best
/// model of its family (the asymptotic excess risk of a well-specified fit), so `m = p / (2 x
/// this)` training rows per fold suffice.
const EXCESS_LOG_LOSS: f64 = 0.01;

/// Below this many rows every row is cross-validated whatever the bound.
const MIN_CV_ROWS: usize = 50_000;

/// Rows the cross-validation fits on for `d` features, `k` classes and `folds` folds: enough
/// that each fold's `folds - 1` parts hold `p / (2 EXCESS_LOG_LOSS)` rows, `p = (d + 1) k`
/// parameters (80,625 rows at 128 features and 10 classes), and at least [`MIN_CV_ROWS`].
pub(crate) fn cv_rows(d: usize, k: usize, folds: usize) -> usize {
    let p = ((d + 1) * k) as f64;
    let per_fold = p / (2.0 * EXCESS_LOG_LOSS);
    let rows = per_fold * folds as f64 / (folds.max(2) - 1) as f64;
    (rows.ceil() as usize).max(MIN_CV_ROWS)
}

/// A seeded class-stratified sample of `m` of the rows, ascending: each class its share
/// (rounded up), at least `min(class size, 50)`.
fn stratified_sample(classes: &[u32], k: usize, m: usize, seed: u64) -> Vec<usize> {
    let n = classes.len();
    let mut by_class = vec![Vec::new(); k];
    for (i, &c) in classes.iter().enumerate() {
        by_class[c as usize].push(i);
    }
    let mut picked = Vec::with_capacity(m + k);
    for (c, mut rows) in by_class.into_iter().enumerate() {
        let share = (rows.len() * m).div_ceil(n.max(1));
        let take = share.max(rows.len().min(50)).min(rows.len());
        let mut rng =
            SmallRng::seed_from_u64(poisonguard_core::derive_seed(seed, 1_000 + c as u64));
        rows.shuffle(&mut rng);
        picked.extend_from_slice(&rows[..take]);
    }
    picked.sort_unstable();
    picked
}

/// [`cross_val_proba`] on at most [`cv_rows`] rows: above that, the cross-validation runs on a
/// seeded class-stratified sample of that many rows, and every other row gets the mean
/// probabilities of the fold models, which never saw it (as rows scored against a fitted
/// detector do): out-of-sample all the same. Neither the sample nor the other rows are copied.
#[allow(clippy::too_many_arguments)] // cross_val_proba's inputs
pub(crate) fn cross_val_sampled(
    x: ArrayView2<'_, f32>,
    classes: &[u32],
    k: usize,
    folds: usize,
    seed: u64,
    s: LogisticSettings,
    cs: &[f64],
) -> (Array2<f64>, FoldEnsemble, f64) {
    let n = classes.len();
    let m = cv_rows(x.ncols(), k, folds);
    if n <= m {
        let all: Vec<usize> = (0..n).collect();
        return cross_val_proba(x, &all, classes, k, folds, seed, s, cs);
    }
    let sample = stratified_sample(classes, k, m, seed);
    let ys: Vec<u32> = sample.iter().map(|&i| classes[i]).collect();
    let (inside, models, c) = cross_val_proba(x, &sample, &ys, k, folds, seed, s, cs);
    let mut out = Array2::zeros((n, k));
    for (row, &i) in sample.iter().enumerate() {
        out.row_mut(i).assign(&inside.row(row));
    }
    drop(inside);
    let mut in_sample = vec![false; n];
    sample.iter().for_each(|&i| in_sample[i] = true);
    let others: Vec<usize> = (0..n).filter(|&i| !in_sample[i]).collect();
    // a block of rows at a time, so that no second n x k matrix exists beside `out`
    for block in others.chunks(PREDICT_BLOCK) {
        let p = models.predict(x, block);
        for (&i, probs) in block.iter().zip(p.chunks(k)) {
            out.row_mut(i).iter_mut().zip(probs).for_each(|(o, &v)| *o = v);
        }
    }
    (out, models, c)
}

/// Rows the fold ensemble predicts at a time in [`cross_val_sampled`].
const PREDICT_BLOCK: usize = 65_536;

/// Out-of-sample probabilities of the rows `rows` of `x` (`classes[t]` the class of `rows[t]`)
/// by stratified K-fold cross-validation, `rows.len() x k` in that order, the fold models and
/// the chosen inverse L2 strength. With several candidates in `cs` (ascending), the first fold
/// fits the path with warm starts until its out-of-fold log loss rises, and the `C` with the
/// smallest loss wins (ties: the stronger regularization); the other folds fit that `C`. Folds are fitted
/// in parallel, each single-threaded, so the result does not depend on the thread count.
#[allow(clippy::too_many_arguments)] // the cross-validation's inputs
pub(crate) fn cross_val_proba(
    x: ArrayView2<'_, f32>,
    rows: &[usize],
    classes: &[u32],
    k: usize,
    folds: usize,
    seed: u64,
    s: LogisticSettings,
    cs: &[f64],
) -> (Array2<f64>, FoldEnsemble, f64) {
    let fold = stratified_folds(classes, k, folds, seed);
    // One standardization of the rows (applied a block at a time as they are read, never
    // stored); each fold fits on all of them with its held-out rows weighing 0 and its own
    // standardizer (fitted on its training rows) applied as an affine map, so that no fold
    // copies its rows (the same model as a fit on a standardized copy of the fold's rows, up to
    // rounding).
    let shared = Scaler::fit_rows(x, rows);
    let z = Standardized::new(x.view(), Some(rows), &shared);
    // the z-scores computed once for every fit of every fold where they take little memory
    let cache = (rows.len() * x.ncols() <= CACHE_VALUES).then(|| z.z_scores());
    let z = cache.as_deref().map_or(z, |c| z.cached(c));
    let positions = 0..rows.len();
    // fold `f` fitted along `path` (ascending C, each fit warm-started from the previous one,
    // the first from `init`, until the out-of-fold log loss rises): each candidate's loss, the
    // models, their parameters and what predicting its held-out rows needs
    let work = |f: usize, path: &[f64], init: Option<&[f64]>| {
        let train: Vec<bool> = fold.iter().map(|&g| g != f).collect();
        let train_rows: Vec<usize> =
            positions.clone().filter(|&t| train[t]).map(|t| rows[t]).collect();
        let test: Vec<usize> = positions.clone().filter(|&t| !train[t]).collect();
        let scaler = Scaler::fit_rows(x, &train_rows);
        drop(train_rows);
        let affine = shared.affine_to(&scaler);
        let fold_rows = FoldRows::new(&train, &affine);
        let (mut losses, mut models, mut thetas) = (Vec::new(), Vec::new(), Vec::<Vec<f64>>::new());
        for &c in path {
            let settings = LogisticSettings { c, ..s };
            let start = thetas.last().map(Vec::as_slice).or(init);
            let (model, t) = Logistic::fit_from(&z, classes, k, settings, start, Some(&fold_rows));
            // its out-of-fold log loss; the held-out rows' probabilities are computed again
            // for the chosen candidate only, rather than kept for every one
            let mut loss = 0.0f64;
            for_held_out(x, rows, &shared, &test, &model, &fold_rows, |t, p| {
                loss -= p[classes[t] as usize].max(1e-15).ln();
            });
            thetas.push(t);
            models.push(ScaledLogistic { scaler: scaler.clone(), model });
            // the path stops where the loss turns up: a weaker penalty past the best one
            // fits the training rows ever closer and costs the most iterations
            let worse = losses.last().is_some_and(|&previous| loss > previous);
            losses.push(loss);
            if worse {
                break;
            }
        }
        (losses, models, thetas, affine, train, test)
    };
    // C is chosen on the first fold's path (the candidate with the smallest out-of-fold log
    // loss; ties: the stronger regularization); the other folds fit that C alone, warm-started
    // from the first fold's parameters at it: at most 4 + 4 fits for 5 folds and 4 candidates,
    // where every fold's whole path took 20
    let (first_losses, first_models, first_thetas, affine0, train0, test0) = work(0, cs, None);
    let best = (0..first_losses.len())
        .fold(0, |b, c| if first_losses[c] < first_losses[b] { c } else { b });
    // (a fixed C starts every fold from zero, as a user classifier's folds do)
    let start = first_thetas.get(best).map(Vec::as_slice).filter(|_| cs.len() > 1);
    let rest = crate::map_range(folds.saturating_sub(1), |f| work(f + 1, &cs[best..=best], start));
    let mut out = Array2::zeros((rows.len(), k));
    let mut models = Vec::with_capacity(folds);
    let first = (first_models.into_iter().nth(best), affine0, train0, test0);
    let rest = rest
        .into_iter()
        .map(|(_, m, _, affine, train, test)| (m.into_iter().next(), affine, train, test));
    for (chosen, affine, train, test) in std::iter::once(first).chain(rest) {
        let Some(chosen) = chosen else { continue };
        let fold_rows = FoldRows::new(&train, &affine);
        for_held_out(x, rows, &shared, &test, &chosen.model, &fold_rows, |t, p| {
            out.row_mut(t).iter_mut().zip(p).for_each(|(o, &v)| *o = v);
        });
        models.push(chosen);
    }
    (out, FoldEnsemble { models }, cs[best])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Above `cv_rows` the cross-validation runs on a class-stratified sample, and the rows
    /// outside it, scored by the fold models, are as out-of-sample as the cross-validated
    /// ones: the flipped labels among them are found as well (ROC-AUC of `1 - p(given)`).
    #[test]
    fn rows_beyond_the_cross_validation_sample_are_scored_out_of_sample() {
        use rand::Rng;
        assert_eq!(cv_rows(128, 10, 5), 80_625);
        assert_eq!(cv_rows(4, 3, 5), MIN_CV_ROWS);
        let (n, d, k) = (60_000, 4, 3);
        let mut rng = SmallRng::seed_from_u64(7);
        let truth: Vec<u32> = (0..n).map(|i| (i % k) as u32).collect();
        let x = Array2::from_shape_fn((n, d), |(i, j)| {
            let centre = if j == truth[i] as usize { 1.5 } else { 0.0 };
            centre + rng.random::<f32>() * 2.0 - 1.0
        });
        // 5% of the labels moved to the next class
        let flipped: Vec<bool> = (0..n).map(|_| rng.random::<f64>() < 0.05).collect();
        let given: Vec<u32> =
            (0..n).map(|i| if flipped[i] { (truth[i] + 1) % k as u32 } else { truth[i] }).collect();
        let s = LogisticSettings { c: 1.0, max_iter: 100, gtol: 1e-4 };
        let (p, models, _) = cross_val_sampled(x.view(), &given, k, 5, 3, s, &[1.0]);
        assert_eq!(models.models.len(), 5);
        let sample = stratified_sample(&given, k, MIN_CV_ROWS, 3);
        assert!(sample.len() >= MIN_CV_ROWS && sample.len() <= MIN_CV_ROWS + k);
        let mut inside = vec![false; n];
        sample.iter().for_each(|&i| inside[i] = true);
        let auc = |part: bool| {
            let rows: Vec<usize> = (0..n).filter(|&i| inside[i] == part).collect();
            let score: Vec<f64> = rows.iter().map(|&i| 1.0 - p[[i, given[i] as usize]]).collect();
            let truth: Vec<bool> = rows.iter().map(|&i| flipped[i]).collect();
            poisonguard_core::metrics::roc_auc(&score, &truth).unwrap()
        };
        let (cross_validated, beyond) = (auc(true), auc(false));
        assert!(cross_validated > 0.9, "{cross_validated}");
        assert!((beyond - cross_validated).abs() < 0.02, "{beyond} vs {cross_validated}");
        for row in p.rows() {
            assert!((row.sum() - 1.0).abs() < 1e-9);
        }
    }

    #[test]
    fn separable_classes_are_learned() {
        // three classes on a line with some overlap
        let n = 300;
        let x = Array2::from_shape_fn((n, 2), |(i, j)| {
            let c = (i % 3) as f32;
            if j == 0 {
                c * 3.0 + ((i * 37 % 101) as f32 / 101.0 - 0.5) * 2.0
            } else {
                (i * 13 % 7) as f32
            }
        });
        let classes: Vec<u32> = (0..n).map(|i| (i % 3) as u32).collect();
        let rows: Vec<usize> = (0..n).collect();
        let s = LogisticSettings { c: 1.0, max_iter: 100, gtol: 1e-4 };
        let m = ScaledLogistic::fit_path(x.view(), &classes, &rows, 3, s, &[1.0]).remove(0);
        let p = m.predict(x.view(), &rows);
        let correct = (0..n)
            .filter(|&i| {
                let row = &p[i * 3..i * 3 + 3];
                let arg = (0..3).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
                arg as u32 == classes[i]
            })
            .count();
        assert!(correct >= 290, "{correct}");
        for row in p.chunks(3) {
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        }
    }

    #[test]
    fn folds_are_stratified_and_balanced() {
        let classes: Vec<u32> = (0..103).map(|i| (i % 4) as u32).collect();
        let fold = stratified_folds(&classes, 4, 5, 7);
        for f in 0..5 {
            let size = fold.iter().filter(|&&g| g == f).count();
            assert!((19..=22).contains(&size), "fold {f}: {size}");
        }
        assert_eq!(fold, stratified_folds(&classes, 4, 5, 7));
    }
}
