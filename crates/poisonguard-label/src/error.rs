//! Errors of the label detectors.

use poisonguard_core::{DataError, ParamError};
use thiserror::Error;

/// What can go wrong in a label detector.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The data cannot be used (no labels, one class, ...).
    #[error(transparent)]
    Data(#[from] DataError),
    /// A hyperparameter is out of range.
    #[error(transparent)]
    Param(#[from] ParamError),
    /// The neighbour search refused the data (e.g. `k >= n_samples`).
    #[error(transparent)]
    Neighbors(#[from] poisonguard_neighbors::Error),
    /// Too few rows for the requested work (e.g. fewer rows than cross-validation folds).
    #[error("{detector} needs at least {needed} rows, but the dataset has {actual}")]
    TooFewRows {
        /// The detector.
        detector: &'static str,
        /// Rows needed.
        needed: usize,
        /// Rows available.
        actual: usize,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
