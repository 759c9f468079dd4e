//! Local outlier factor (Breunig, Kriegel, Ng, Sander, SIGMOD 2000).
//!
//! # Algorithm
//! With the exact k nearest neighbours `N_k(a)` (self excluded) and `kdist(b)` the distance of
//! `b` to its k-th neighbour: `reach(a, b) = max(kdist(b), d(a, b))`, the local reachability
//! density `lrd(a) = 1 / (mean_{b in N_k(a)} reach(a, b) + 1e-10)`, and
//! `LOF(a) = mean_{b in N_k(a)} lrd(b) / lrd(a)` (as scikit-learn and PyOD compute it).
//!
//! # Score
//! The LOF, > 0; about 1 inside a cluster, higher = sparser than its neighbourhood = more
//! suspicious. Default k = 20 (PyOD's default).
//!
//! # References
//! M. M. Breunig, H.-P. Kriegel, R. T. Ng, J. Sander. *LOF: Identifying Density-Based Local
//! Outliers.* SIGMOD 2000.

mod algorithm;
mod hyperparams;

pub use algorithm::{Lof, LofModel};
pub use hyperparams::{DEFAULT_K, LofParams, LofValidParams};
