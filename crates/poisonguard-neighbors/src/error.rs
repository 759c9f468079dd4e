//! Errors of the neighbour search.

use thiserror::Error;

/// What can go wrong building a kNN graph.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// `k` must be at least 1.
    #[error("k must be at least 1")]
    ZeroK,
    /// Not enough rows for `k` neighbours (`k < n_samples` when a row cannot be its own
    /// neighbour).
    #[error("k = {k} neighbours need more rows than the {n_samples} given")]
    KTooLarge {
        /// The k asked for.
        k: usize,
        /// Rows available.
        n_samples: usize,
    },
    /// Queries and reference have different numbers of features.
    #[error("the reference has {reference} features but the queries have {queries}")]
    DimensionMismatch {
        /// Reference features.
        reference: usize,
        /// Query features.
        queries: usize,
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
