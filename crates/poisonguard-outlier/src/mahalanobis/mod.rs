//! Robust Mahalanobis distance from the Minimum Covariance Determinant (Rousseeuw 1984; FAST-MCD,
//! Rousseeuw & Van Driessen 1999), as scikit-learn's `MinCovDet`, which PyOD's `MCD` wraps.
//!
//! # Algorithm
//! FAST-MCD looks for the `h = ceil((n + d + 1) / 2)` rows whose covariance has the smallest
//! determinant: random h-subsets refined by C-steps (re-select the h rows closest to the current
//! estimate, which never increases the determinant). Up to 500 rows: 30 random starts, 2
//! C-steps each, the best 10 refined to convergence. Above: up to 5 disjoint subsets of 300 rows
//! with 100 starts each, the best 10 of each pooled on at most 1500 rows, then refined on all
//! rows. The raw estimate is rescaled for consistency at the normal model with Croux &
//! Haesbroeck's factor `alpha / F_{chi2(d+2)}(chi2_d^{-1}(alpha))`, `alpha = h / n`, and
//! re-weighted: location and covariance of the rows with `d^2 < chi2_d(0.975)`, rescaled with the
//! same factor at `alpha = 0.975` (as scikit-learn 1.9). Singular covariances use the
//! pseudo-inverse.
//!
//! # Score
//! The squared robust Mahalanobis distance `(x - mu)^T Sigma^+ (x - mu)`, >= 0; higher = farther
//! from the bulk = more suspicious. For clean Gaussian rows it follows a chi-square with d degrees
//! of freedom, so the automatic threshold is that distribution's 99% quantile.
//!
//! # References
//! P. J. Rousseeuw, K. Van Driessen. *A Fast Algorithm for the Minimum Covariance Determinant
//! Estimator.* Technometrics 41(3), 1999.

mod algorithm;
mod hyperparams;

pub use algorithm::{Mahalanobis, MahalanobisModel, robust_covariance};
pub use hyperparams::{MahalanobisParams, MahalanobisValidParams};

// The parameters' builders, checks and `Detector` impl over the model (here, so that the
// parameters do not import the algorithm that imports them).
crate::model::outlier_detector!(
    MahalanobisParams,
    MahalanobisValidParams,
    algorithm::MahalanobisModel
);
