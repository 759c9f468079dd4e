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
//! suspicious.
//!
//! # Default k = 50
//! Breunig et al. (section 6) bound the neighbourhood size from below (at least 10, or LOF
//! fluctuates with the sample) and from above by "the maximum number of close-by objects that can
//! potentially be local outliers": a group of up to `k` rows far from the rest is seen as
//! outlying only when `k` exceeds the group. Injected poisons come in groups (a trigger's rows, a
//! flood of copies), so the default is large: 50, not PyOD's 20. Measured
//! (benches/RESULTS.md, "LOF's neighbourhood size"): mean ROC-AUC over 23 ADBench sets 0.680 at
//! k = 20, 0.703 at 50; on the hidden layer of a network trained on digits with a clean-label
//! blended key in 10% of class 0 (18 rows, seeds 0-2), 0.642 at 20 and 0.907 at 50.
//!
//! # References
//! M. M. Breunig, H.-P. Kriegel, R. T. Ng, J. Sander. *LOF: Identifying Density-Based Local
//! Outliers.* SIGMOD 2000.

mod algorithm;
mod hyperparams;

pub use algorithm::{Lof, LofModel};
pub use hyperparams::{DEFAULT_K, LofParams, LofValidParams};

// The parameters' builders, checks and `Detector` impl over the model (here, so that the
// parameters do not import the algorithm that imports them).
crate::model::outlier_detector!(LofParams, LofValidParams, algorithm::LofModel);
