//! Dense linear-algebra helpers on [faer] shared by poisonguard's detector crates.
//!
//! Every routine runs single-threaded (`Par::Seq`) with a fixed operation order: the detector
//! crates parallelise one level up (classes, trials), and results must be bit-identical for any
//! thread count.
//!
//! ```
//! use faer::Mat;
//! let a = Mat::from_fn(3, 2, |i, j| (i + 2 * j) as f64);
//! let g = poisonguard_linalg::at_b(a.as_ref(), a.as_ref());
//! let (values, _vectors) = poisonguard_linalg::sym_eigen(g.as_ref()).expect("converges");
//! assert!(values[0] <= values[1]);
//! ```

use faer::diag::Diag;
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::evd::{ComputeEigenvectors, self_adjoint_evd, self_adjoint_evd_scratch};
use faer::traits::ComplexField;
use faer::{Accum, Mat, MatMut, MatRef, Par};

/// Clears the upper halves of the CPU's vector registers (`vzeroupper`) where it has AVX; a
/// no-op elsewhere.
///
/// faer's x86 matrix-product kernels (hand-written assembly from the `private-gemm-x86`
/// crate, AVX2 or AVX-512) return with those halves set, and until something clears them
/// every legacy-SSE instruction the thread runs pays a transition penalty: that is all of this
/// workspace's scalar floating-point code (built for baseline x86-64) and libm's `exp`. Measured
/// on the 2-core Xeon (AVX-512) we develop on: a softmax over 10 classes took 74 ns per row
/// before any faer product and 1,850 ns after one, until cleared. [`matmul`] and
/// [`sym_eigen`] call this on return; call it after any other faer routine that multiplies
/// matrices.
#[inline]
pub fn clear_vector_state() {
    #[cfg(target_arch = "x86_64")]
    if let Some(avx) = pulp::core_arch::x86::Avx::try_new() {
        avx._mm256_zeroupper();
    }
}

/// `dst = alpha lhs rhs` (or `dst += alpha lhs rhs` with [`Accum::Add`]), single-threaded,
/// leaving the CPU's vector state clear ([`clear_vector_state`]): faer's `matmul` for every
/// product in the workspace.
pub fn matmul<T: ComplexField>(
    dst: MatMut<'_, T>,
    accum: Accum,
    lhs: MatRef<'_, T>,
    rhs: MatRef<'_, T>,
    alpha: T,
) {
    faer::linalg::matmul::matmul(dst, accum, lhs, rhs, alpha, Par::Seq);
    clear_vector_state();
}

/// Symmetric eigendecomposition of `a` (lower triangle read): eigenvalues ascending and the
/// eigenvectors as columns. `None` if the solver does not converge.
pub fn sym_eigen(a: MatRef<'_, f64>) -> Option<(Vec<f64>, Mat<f64>)> {
    let n = a.nrows();
    let mut s = Diag::<f64>::zeros(n);
    let mut u = Mat::<f64>::zeros(n, n);
    let par = Par::Seq;
    let mut buf = MemBuffer::new(self_adjoint_evd_scratch::<f64>(
        n,
        ComputeEigenvectors::Yes,
        par,
        Default::default(),
    ));
    self_adjoint_evd(
        a,
        s.as_mut(),
        Some(u.as_mut()),
        par,
        MemStack::new(&mut buf),
        Default::default(),
    )
    .ok()?;
    clear_vector_state();
    Some(((0..n).map(|i| s[i]).collect(), u))
}

/// `a^T b`.
pub fn at_b(a: MatRef<'_, f64>, b: MatRef<'_, f64>) -> Mat<f64> {
    let mut out = Mat::zeros(a.ncols(), b.ncols());
    matmul(out.as_mut(), Accum::Replace, a.transpose(), b, 1.0);
    out
}

/// `a b`.
pub fn a_b(a: MatRef<'_, f64>, b: MatRef<'_, f64>) -> Mat<f64> {
    let mut out = Mat::zeros(a.nrows(), b.ncols());
    matmul(out.as_mut(), Accum::Replace, a, b, 1.0);
    out
}

/// The count, column means and centred co-moment matrix `sum (x - mean)(x - mean)^T` of a set of
/// rows, in f64: the summary a covariance-based fit (PCA, spectral signatures) is computed from.
/// Two merge by the pairwise update of Chan, Golub & LeVeque (1979), so the moments of shards
/// merged equal the moments of all their rows up to floating-point rounding.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
pub struct Moments {
    /// Rows summarized.
    pub n: usize,
    /// Column means.
    pub mean: Vec<f64>,
    /// `d x d` co-moment matrix.
    #[serde(with = "mat_serde")]
    pub comoment: Mat<f64>,
}

impl Moments {
    /// The moments of rows given by their `mean` and their centred values (`n x d`).
    pub fn of_centred(mean: Vec<f64>, centred: MatRef<'_, f64>) -> Self {
        Self { n: centred.nrows(), mean, comoment: at_b(centred, centred) }
    }

    /// Merges `other` into `self`; `Err((d_self, d_other))` when their widths differ.
    ///
    /// ```
    /// use faer::Mat;
    /// use poisonguard_linalg::Moments;
    /// let x = Mat::from_fn(5, 2, |i, j| (i * i + j) as f64);
    /// let of = |rows: std::ops::Range<usize>| {
    ///     let n = rows.len() as f64;
    ///     let mean: Vec<f64> = (0..2).map(|j| rows.clone().map(|i| x[(i, j)]).sum::<f64>() / n).collect();
    ///     let c = Mat::from_fn(rows.len(), 2, |r, j| x[(rows.start + r, j)] - mean[j]);
    ///     Moments::of_centred(mean, c.as_ref())
    /// };
    /// let mut a = of(0..2);
    /// a.merge(of(2..5)).unwrap();
    /// let all = of(0..5);
    /// assert!((a.comoment[(0, 1)] - all.comoment[(0, 1)]).abs() < 1e-9);
    /// ```
    pub fn merge(&mut self, other: Self) -> Result<(), (usize, usize)> {
        let d = self.mean.len();
        if other.mean.len() != d {
            return Err((d, other.mean.len()));
        }
        if other.n == 0 {
            return Ok(());
        }
        if self.n == 0 {
            *self = other;
            return Ok(());
        }
        let (na, nb) = (self.n as f64, other.n as f64);
        let n = na + nb;
        let delta: Vec<f64> = other.mean.iter().zip(&self.mean).map(|(b, a)| b - a).collect();
        let w = na * nb / n;
        for c in 0..d {
            for r in 0..d {
                self.comoment[(r, c)] += other.comoment[(r, c)] + delta[r] * delta[c] * w;
            }
        }
        for (m, dv) in self.mean.iter_mut().zip(&delta) {
            *m += dv * nb / n;
        }
        self.n += other.n;
        Ok(())
    }
}

/// Serde for a faer `Mat<f64>` field (`#[serde(with = "poisonguard_linalg::mat_serde")]`):
/// `(rows, cols, column-major values)`, the values with their exact bits.
pub mod mat_serde {
    use faer::Mat;
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Writes `m` as `(rows, cols, values)`, column-major.
    ///
    /// # Errors
    /// The serializer's.
    pub fn serialize<S: Serializer>(m: &Mat<f64>, s: S) -> Result<S::Ok, S::Error> {
        let values: Vec<f64> =
            (0..m.ncols()).flat_map(|j| (0..m.nrows()).map(move |i| m[(i, j)])).collect();
        (m.nrows(), m.ncols(), values).serialize(s)
    }

    /// Reads what [`serialize`] wrote.
    ///
    /// # Errors
    /// The deserializer's, or a value count that is not `rows x cols`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Mat<f64>, D::Error> {
        let (rows, cols, values) = <(usize, usize, Vec<f64>)>::deserialize(d)?;
        if rows.checked_mul(cols) != Some(values.len()) {
            return Err(D::Error::custom(format!(
                "a {rows} x {cols} matrix needs {} values, found {}",
                rows.saturating_mul(cols),
                values.len()
            )));
        }
        Ok(Mat::from_fn(rows, cols, |i, j| values[j * rows + i]))
    }
}
