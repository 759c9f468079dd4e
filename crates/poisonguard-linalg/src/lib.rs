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
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par};

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
    Some(((0..n).map(|i| s[i]).collect(), u))
}

/// `a^T b`.
pub fn at_b(a: MatRef<'_, f64>, b: MatRef<'_, f64>) -> Mat<f64> {
    let mut out = Mat::zeros(a.ncols(), b.ncols());
    matmul(out.as_mut(), Accum::Replace, a.transpose(), b, 1.0, Par::Seq);
    out
}

/// `a b`.
pub fn a_b(a: MatRef<'_, f64>, b: MatRef<'_, f64>) -> Mat<f64> {
    let mut out = Mat::zeros(a.nrows(), b.ncols());
    matmul(out.as_mut(), Accum::Replace, a, b, 1.0, Par::Seq);
    out
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
