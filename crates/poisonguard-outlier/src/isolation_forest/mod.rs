//! Isolation forest (Liu, Ting, Zhou, ICDM 2008).
//!
//! # Algorithm
//! `n_trees` = 100 isolation trees, each grown on `max_samples` = min(256, n) rows drawn without
//! replacement (seeded per tree; trees in parallel). A node splits on a feature drawn at random
//! among those not constant in the node, at a threshold uniform between the node's minimum and
//! maximum (`x <= t` goes left), until one row is left or the depth reaches
//! `ceil(log2(max_samples))`. The path length of a row in a tree is the depth of its leaf plus
//! `c(leaf size)`, where `c(m) = 2 H(m - 1) - 2 (m - 1) / m` is the average path length of an
//! unsuccessful search in a binary search tree of `m` keys (as scikit-learn, which PyOD wraps).
//!
//! # Score
//! `2^(-E[h(x)] / c(max_samples))` in (0, 1]; about 0.5 or less for ordinary rows, near 1 for
//! rows isolated by few splits; higher = more suspicious.
//!
//! # References
//! F. T. Liu, K. M. Ting, Z.-H. Zhou. *Isolation Forest.* ICDM 2008.

mod algorithm;
mod hyperparams;

pub use algorithm::{IsolationForest, IsolationForestModel};
pub use hyperparams::{
    DEFAULT_MAX_SAMPLES, DEFAULT_N_TREES, IsolationForestParams, IsolationForestValidParams,
};

// The parameters' builders, checks and `Detector` impl over the model (here, so that the
// parameters do not import the algorithm that imports them).
crate::model::outlier_detector!(
    IsolationForestParams,
    IsolationForestValidParams,
    algorithm::IsolationForestModel
);
