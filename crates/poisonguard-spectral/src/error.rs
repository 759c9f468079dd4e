//! Errors of the spectral detectors.

use poisonguard_core::{DataError, ParamError};
use thiserror::Error;

/// What can go wrong in a spectral detector.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The data cannot be used (no labels, one class, ...).
    #[error(transparent)]
    Data(#[from] DataError),
    /// A hyperparameter is out of range.
    #[error(transparent)]
    Param(#[from] ParamError),
    /// The symmetric eigensolver did not converge on a class's covariance.
    #[error("eigendecomposition did not converge for class {class}")]
    EigenNotConverged {
        /// The class, rendered.
        class: String,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
