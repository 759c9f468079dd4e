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
