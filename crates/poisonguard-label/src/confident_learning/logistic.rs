//! Multinomial logistic regression (L2, L-BFGS) and its stratified K-fold out-of-sample
//! probabilities: the built-in classifier of confident learning.

use faer::{Accum, Mat, MatRef};
use std::ops::Range;

use ndarray::ArrayView2;
use poisonguard_linalg::matmul;
use pulp::Arch;

use poisonguard_core::Standardizer;

use super::kernels::{ExpInPlace, Gradient, Logits};

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
pub(crate) const CACHE_VALUES: usize = 1 << 26;

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
    scaler: &'a Standardizer,
    /// The z-scores of all the rows, row-major, where they were computed once ([`Self::cached`]).
    cache: Option<&'a [f32]>,
}

impl<'a> Standardized<'a> {
    pub(crate) fn new(
        x: ArrayView2<'a, f32>,
        rows: Option<&'a [usize]>,
        scaler: &'a Standardizer,
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
    /// A block's softmax numerators (`ROW_BLOCK x k`) and each row's largest logit and own
    /// class's logit.
    soft: Vec<f64>,
    max_own: Vec<(f64, f64)>,
    gt: Vec<f32>,
    grad: Vec<f64>,
}

impl Work {
    fn new(d: usize, k: usize) -> Self {
        Self {
            block: Mat::zeros(d, ROW_BLOCK),
            logits: vec![0.0; ROW_BLOCK * k],
            soft: vec![0.0; ROW_BLOCK * k],
            max_own: vec![(0.0, 0.0); ROW_BLOCK],
            gt: vec![0.0; d * k],
            grad: vec![0.0; k * d],
        }
    }
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
    pub(crate) fn new(train: &'a [bool], affine: &'a [(f64, f64)]) -> Self {
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
    work.grad.fill(0.0);
    let Work { block: buffer, logits, soft, max_own, gt, grad: total } = work;
    for start in rows.clone().step_by(ROW_BLOCK) {
        let len = ROW_BLOCK.min(rows.end - start);
        let block = x.block(start, len, buffer);
        let logits = &mut logits[..len * k];
        let train = fold.map(|f| &f.train[start..start + len]);
        Arch::new().dispatch(Logits { block, w, train, out: logits });
        // each training row's `z - max z` (z the logits plus intercepts), its max and its own
        // class's z, then every row's exponentials in one pass in vector registers
        let soft = &mut soft[..len * k];
        let rows = y[start..start + len].iter().zip(logits.chunks_exact(k));
        for (r, ((&yi, row), (sr, mo))) in
            rows.zip(soft.chunks_exact_mut(k).zip(max_own.iter_mut())).enumerate()
        {
            if train.is_some_and(|t| !t[r]) {
                sr.fill(0.0);
                continue;
            }
            let mut m = f64::NEG_INFINITY;
            for ((zj, &lj), bj) in sr.iter_mut().zip(row.iter()).zip(b) {
                *zj = f64::from(lj) + bj;
                m = m.max(*zj);
            }
            *mo = (m, sr[yi as usize]);
            sr.iter_mut().for_each(|zj| *zj -= m);
        }
        Arch::new().dispatch(ExpInPlace(soft));
        let rows = y[start..start + len].iter().zip(logits.chunks_exact_mut(k));
        for (r, ((&yi, row), (z, &(m, own)))) in
            rows.zip(soft.chunks_exact_mut(k).zip(max_own.iter())).enumerate()
        {
            if train.is_some_and(|t| !t[r]) {
                continue;
            }
            let yi = yi as usize;
            let s: f64 = z.iter().sum();
            loss += m + s.ln() - own;
            for zj in z.iter_mut() {
                *zj /= s;
            }
            z[yi] -= 1.0;
            // the row's residuals replace its logits
            for ((g, &zj), lj) in bias_grad.iter_mut().zip(z.iter()).zip(row.iter_mut()) {
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
    pub(crate) scaler: Standardizer,
    pub(crate) model: Logistic,
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
        let scaler = Standardizer::fit_rows(x, rows);
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
pub(crate) fn for_held_out(
    x: ArrayView2<'_, f32>,
    rows: &[usize],
    shared: &Standardizer,
    test: &[usize],
    model: &Logistic,
    fold: &FoldRows<'_>,
    mut each: impl FnMut(usize, &[f64]),
) {
    let ids: Vec<usize> = test.iter().map(|&t| rows[t]).collect();
    let source = Standardized::new(x.view(), Some(&ids), shared);
    model.predict_each(&source, Some(fold), |at, p| each(test[at], p));
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

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
}
