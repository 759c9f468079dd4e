//! kNN distance outlier score (Ramaswamy, Rastogi, Shim, SIGMOD 2000).
//!
//! # Algorithm
//! Exact k nearest neighbours of every row (self excluded) by blocked matrix products
//! (`poisonguard-neighbors`); the score is the distance to the k-th neighbour (`largest`, the
//! paper's and PyOD's default), or the mean or median of the k distances.
//!
//! # Score
//! Euclidean distance in the feature units, >= 0; higher = farther from its neighbours = more
//! suspicious. New rows are scored against the training rows.
//!
//! # References
//! S. Ramaswamy, R. Rastogi, K. Shim. *Efficient Algorithms for Mining Outliers from Large Data
//! Sets.* SIGMOD 2000.

mod algorithm;
mod hyperparams;

pub use algorithm::{KnnDistance, KnnDistanceModel};
pub use hyperparams::{DEFAULT_K, KnnDistanceParams, KnnDistanceValidParams, KnnStatistic};

// The parameters' builders, checks and `Detector` impl over the model (here, so that the
// parameters do not import the algorithm that imports them).
crate::model::outlier_detector!(
    KnnDistanceParams,
    KnnDistanceValidParams,
    algorithm::KnnDistanceModel
);
