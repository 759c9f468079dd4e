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
            for (j, o) in out.iter_mut().enumerate() {
                *o = dot32(row, column(self.w, j));
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
