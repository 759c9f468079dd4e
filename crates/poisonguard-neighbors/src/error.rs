//! Errors of the neighbour search.

use thiserror::Error;

/// What can go wrong building a kNN graph.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// `k` must be at least 1.
    #[error("k must be at least 1")]
    ZeroK,
    /// Every row needs `k` neighbours other than itself: `k < n_samples`.
    #[error("k = {k} needs more than {k} rows, but there are {n_samples}")]
    KTooLarge {
        /// The k asked for.
        k: usize,
        /// Rows available.
        n_samples: usize,
    },
    /// More rows than a `u32` index can name.
    #[error("{n_samples} rows exceed the supported maximum of 2^32 - 1")]
    TooManyRows {
        /// Rows given.
        n_samples: usize,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
