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

/// `e^x` for `x <= 0`, branch-free so that a loop of it runs in vector registers (libm's `exp`,
/// a call per value, was a sixth of `confident_learning`'s time): Cody-Waite reduction
/// `x = n ln 2 + r` with `|r| <= ln 2 / 2`, `e^r` by its Taylor polynomial of degree 13
/// (truncated below `2^-57` relative), times `2^n` built in the exponent's bits. Within 2 ulp
/// of `f64::exp` (test), `e^0 = 1` exactly, and 0 below -708 (where `e^x < 2^-1021`:
/// nothing a softmax's sum of at least 1 can see). Plain multiplications and additions, so the
/// same value on every CPU.
#[inline(always)]
pub(crate) fn exp_nonpositive(x: f64) -> f64 {
    /// `1.5 * 2^52`: added to a value below `2^51` in magnitude, rounds it to an integer held in
    /// the low bits of the mantissa.
    const SHIFTER: f64 = 6_755_399_441_055_744.0;
    /// `ln 2` in two parts, the first with its low 32 bits zero (`n LN2_HI` exact).
    const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
    const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
    /// `1 / i!` for `i = 13` down to 2.
    const TAYLOR: [f64; 12] = [
        1.0 / 6_227_020_800.0,
        1.0 / 479_001_600.0,
        1.0 / 39_916_800.0,
        1.0 / 3_628_800.0,
        1.0 / 362_880.0,
        1.0 / 40_320.0,
        1.0 / 5_040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
    ];
    // (a NaN stays a NaN)
    let clamped = if x < -708.0 { -708.0 } else { x };
    let t = clamped * std::f64::consts::LOG2_E + SHIFTER;
    let n = t - SHIFTER;
    let r = (clamped - n * LN2_HI) - n * LN2_LO;
    let mut p = TAYLOR[0];
    for c in &TAYLOR[1..] {
        p = p * r + c;
    }
    let p = (p * r + 1.0) * r + 1.0;
    // `2^n`: t's mantissa holds `2^51 + n`; `n + 1023` shifted into the exponent
    let scale = f64::from_bits(t.to_bits().wrapping_add(1023u64.wrapping_sub(1 << 51)) << 52);
    if x < -708.0 { 0.0 } else { p * scale }
}

/// [`exp_nonpositive`] of every value in place, in vector registers.
pub(crate) struct ExpInPlace<'a>(pub(crate) &'a mut [f64]);

impl WithSimd for ExpInPlace<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) {
        for v in self.0.iter_mut() {
            *v = exp_nonpositive(*v);
        }
    }
}

/// Partial sums of [`dot32`]: four AVX registers of f32, so that the additions do not
/// wait on each other.
const LANES: usize = 32;

/// `a . b` in f32: `LANES` partial sums added pairwise in a fixed tree ([`tree_sum`]), then the
/// tail; plain multiplications and additions (no fused multiply-add), so the result is the
/// same on every x86-64 CPU whatever vector width runs it.
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
    tree_sum(&acc) + tail
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
    (tree_sum(&acc_b) + tail_b, tree_sum(&acc_c) + tail_c)
}

/// The sum of `LANES` partial sums, halves added lane by lane (`acc[i] + acc[i + 16]`, then
/// `+ 8`, ...): a fixed order, in a few vector additions (added one after the other, the 31
/// dependent additions cost as much as the products at 128 features).
#[inline(always)]
fn tree_sum(acc: &[f32; LANES]) -> f32 {
    let mut v = *acc;
    let mut half = LANES / 2;
    while half > 0 {
        for i in 0..half {
            v[i] += v[i + half];
        }
        half /= 2;
    }
    v[0]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Units in the last place between two positive values.
    fn ulps(a: f64, b: f64) -> u64 {
        a.to_bits().abs_diff(b.to_bits())
    }

    #[test]
    fn exp_is_within_two_ulp_of_libm() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(9);
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(-0.0), 1.0);
        let mut worst = 0;
        for i in 0..200_000 {
            // uniform over [-708, 0], and dense near 0 and near the reduction's boundaries
            let x = match i % 3 {
                0 => -rng.random_range(0.0..708.0),
                1 => -rng.random_range(0.0..1e-3),
                _ => -std::f64::consts::LN_2 * (0.5 + f64::from(rng.random_range(0..1000u32))),
            };
            let (got, want) = (exp_nonpositive(x), x.exp());
            worst = worst.max(ulps(got, want));
            assert!(ulps(got, want) <= 2, "exp({x}) = {got}, libm {want}");
        }
        assert!(worst >= 1, "compared against itself?");
        for x in [-708.5, -720.0, -745.2, -1e10, f64::NEG_INFINITY] {
            assert_eq!(exp_nonpositive(x), 0.0, "{x}");
        }
        assert!(exp_nonpositive(f64::NAN).is_nan());
        // through the dispatched loop, tails included
        let mut v: Vec<f64> = (0..37).map(|i| -0.37 * i as f64).collect();
        let want: Vec<f64> = v.iter().map(|&x| exp_nonpositive(x)).collect();
        pulp::Arch::new().dispatch(ExpInPlace(&mut v));
        assert_eq!(v, want);
    }

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
            // and the dot product within f32 rounding of the sums
            let exact: f64 = a.iter().zip(&b).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum();
            let size: f64 = a.iter().zip(&b).map(|(&x, &y)| f64::from(x * y).abs()).sum();
            let bound = (d as f64 + 2.0) * f64::from(f32::EPSILON) * size;
            assert!((f64::from(ab) - exact).abs() <= bound, "d = {d}: {ab} against {exact}");
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
