//! Errors of the outlier detectors.

use poisonguard_core::{DataError, ParamError};
use thiserror::Error;

/// What can go wrong in an outlier detector.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The data cannot be used.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A hyperparameter is out of range.
    #[error(transparent)]
    Param(#[from] ParamError),
    /// The neighbour search refused the data (e.g. `k >= n_samples`).
    #[error(transparent)]
    Neighbors(#[from] poisonguard_neighbors::Error),
    /// Too few rows to fit (e.g. in one class in per-class mode).
    #[error("{detector} needs at least {needed} rows, but {what} has {actual}")]
    TooFewRows {
        /// The detector.
        detector: &'static str,
        /// Rows needed.
        needed: usize,
        /// Where ("the dataset" or "class 3").
        what: String,
        /// Rows available.
        actual: usize,
    },
    /// Too many features for a detector that builds a `d x d` covariance matrix.
    #[error(
        "{detector} builds {d} x {d} covariance matrices ({mib} MiB each), more than its limit of \
         {max} features; reduce the features first (e.g. to the top principal components or \
         model embeddings) or use isolation_forest, ecod or knn_distance, which scale with d"
    )]
    TooManyFeatures {
        /// The detector.
        detector: &'static str,
        /// Features given.
        d: usize,
        /// Size of one matrix in MiB.
        mib: usize,
        /// The limit ([`MAX_COVARIANCE_FEATURES`](crate::MAX_COVARIANCE_FEATURES)).
        max: usize,
    },
    /// The detector was fitted for a scan of its training rows only
    /// ([`FitContext::scan_only`](poisonguard_core::FitContext::scan_only)) and did not keep
    /// what scoring new rows needs.
    #[error(
        "{detector} was fitted for a scan of its own rows only and kept no state to score new \
         rows; fit it without FitContext::scan_only (e.g. `poisonguard fit --save`)"
    )]
    ScanOnly {
        /// The detector.
        detector: &'static str,
    },
    /// The symmetric eigensolver failed.
    #[error("{detector}: eigendecomposition did not converge")]
    EigenNotConverged {
        /// The detector.
        detector: &'static str,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
