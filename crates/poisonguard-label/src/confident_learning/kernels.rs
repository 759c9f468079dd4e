//! The logistic regression's two products with a block of standardized rows, in `pulp`
//! kernels with a fixed order of sums.

use faer::MatRef;
use pulp::{Simd, WithSimd};

// The two products of a block of rows with the model, `X W` (logits) and `X^T R` (gradient),
// have k = 2-10 columns, where a general matrix-product kernel ran at a fraction of this
// machine's rate: each row is read once per product, in vector registers (`pulp` compiles
// the two kernels below for AVX2 and picks it where the CPU has it).

/// Column `j` of `m` (column-major) as a slice.
#[inline(always)]
pub(crate) fn column(m: MatRef<'_, f32>, j: usize) -> &[f32] {
    m.col(j).try_as_col_major().expect("columns are contiguous").as_slice()
}

/// The logits `X W` of the rows of `block` (`d x len`, one row per column) under the weights
/// `w` (`d x k`), row-major into `out` (`len x k`).
pub(crate) struct Logits<'a> {
    pub(crate) block: MatRef<'a, f32>,
    pub(crate) w: MatRef<'a, f32>,
    /// Which rows are computed (the others, held out, are left as they are); all when `None`.
    pub(crate) train: Option<&'a [bool]>,
    pub(crate) out: &'a mut [f32],
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
            // two classes at a time: eight chains of additions in flight instead of four
            for (p, pair) in out.chunks_mut(2).enumerate() {
                match pair {
                    [a, b] => {
                        (*a, *b) =
                            dot32_pair(row, column(self.w, 2 * p), column(self.w, 2 * p + 1));
                    }
                    [a] => *a = dot32(row, column(self.w, 2 * p)),
                    _ => {}
                }
            }
        }
    }
}

/// `gt += X^T R`: the residuals `R` (`len x k`, row-major) of the rows of `block` into the
/// gradient `gt` (`d x k`, column-major).
pub(crate) struct Gradient<'a> {
    pub(crate) block: MatRef<'a, f32>,
    /// Which rows count (the others, held out, are skipped); all when `None`.
    pub(crate) train: Option<&'a [bool]>,
    pub(crate) residuals: &'a [f32],
    pub(crate) gt: &'a mut [f32],
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
pub(crate) fn dot32(a: &[f32], b: &[f32]) -> f32 {
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

/// [`dot32`] of `a` with `b` and with `c` in one pass over `a`: each the same sums in the same
/// order as [`dot32`] (the same values), with twice the independent additions in flight (one
/// chain of `LANES` partial sums waited on the latency of its additions).
#[inline(always)]
pub(crate) fn dot32_pair(a: &[f32], b: &[f32], c: &[f32]) -> (f32, f32) {
    let (ca, cb, cc) = (a.chunks_exact(LANES), b.chunks_exact(LANES), c.chunks_exact(LANES));
    let tail =
        |other: &[f32]| -> f32 { ca.remainder().iter().zip(other).map(|(&x, &y)| x * y).sum() };
    let (tail_b, tail_c) = (tail(cb.remainder()), tail(cc.remainder()));
    let (mut acc_b, mut acc_c) = ([0.0f32; LANES], [0.0f32; LANES]);
    for ((x, y), z) in ca.clone().zip(cb).zip(cc) {
        for l in 0..LANES {
            acc_b[l] += x[l] * y[l];
            acc_c[l] += x[l] * z[l];
        }
    }
    (acc_b.iter().sum::<f32>() + tail_b, acc_c.iter().sum::<f32>() + tail_c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The paired dot products are [`dot32`]'s, bit for bit, at lengths with and without a tail
    /// and through the dispatched kernel.
    #[test]
    fn paired_dot_products_are_the_single_ones() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(5);
        for d in [0, 1, 7, 31, 32, 33, 100, 128, 512, 1000] {
            let mut draw = || -> Vec<f32> { (0..d).map(|_| rng.random_range(-3.0..3.0)).collect() };
            let (a, b, c) = (draw(), draw(), draw());
            let (ab, ac) = dot32_pair(&a, &b, &c);
            assert_eq!(ab.to_bits(), dot32(&a, &b).to_bits(), "d = {d}");
            assert_eq!(ac.to_bits(), dot32(&a, &c).to_bits(), "d = {d}");
        }
        // the logits of 3 rows for 5 classes (two pairs and a single class)
        let d = 77;
        let block = faer::Mat::<f32>::from_fn(d, 3, |_, _| rng.random_range(-1.0..1.0));
        let w = faer::Mat::<f32>::from_fn(d, 5, |_, _| rng.random_range(-1.0..1.0));
        let mut out = vec![0.0f32; 15];
        let logits = Logits { block: block.as_ref(), w: w.as_ref(), train: None, out: &mut out };
        pulp::Arch::new().dispatch(logits);
        for r in 0..3 {
            for j in 0..5 {
                let want = dot32(column(block.as_ref(), r), column(w.as_ref(), j));
                assert_eq!(out[r * 5 + j].to_bits(), want.to_bits(), "row {r}, class {j}");
            }
        }
    }
}
