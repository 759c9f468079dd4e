//! Why an audit did not run ([`AuditError`]), and how an error prints ([`error_chain`]).

use poisonguard_core::{DataError, DetectorFailure};

/// No detector could run (every one failed, or none was chosen).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The audit has no detector.
    #[error("no detector to run")]
    NoDetectors,
    /// Every detector failed; the first failure is shown.
    #[error("every detector failed; {}: {}", .0.id, .0.error)]
    AllFailed(DetectorFailure),
    /// The data does not match the fitted model it is scored against
    /// ([`FittedAudit::scan`](crate::FittedAudit::scan)).
    #[error("the data does not match the model: {0}")]
    ModelMismatch(String),
    /// A batched audit's source could not be read
    /// ([`Audit::run_batched`](crate::Audit::run_batched)).
    #[error("cannot read the rows: {0}")]
    Read(String),
    /// A batched audit's rows are not valid data (a non-finite value, no rows).
    #[error(transparent)]
    Data(DataError),
    /// The memory budget of a batched audit is too small
    /// ([`BatchPlan::for_budget`](crate::BatchPlan::for_budget)).
    #[error("memory budget too small: {0}")]
    Budget(String),
    /// The steps of a distributed audit do not fit together
    /// ([`ReferenceFit::assemble`](crate::ReferenceFit::assemble)).
    #[error("the parts do not make up the table: {0}")]
    Parts(String),
    /// A reference table ([`Audit::run_with_reference`](crate::Audit::run_with_reference)) that
    /// does not fit the audited table.
    #[error("the reference table does not fit the audited one: {0}")]
    Reference(String),
    /// A row given as trusted ([`Audit::trusted`](crate::Audit::trusted)) is not a row of the
    /// table.
    #[error("trusted row {row} is not a row of the table ({n_samples} rows)")]
    TrustedRow {
        /// The first such row (0-based).
        row: usize,
        /// Rows of the table.
        n_samples: usize,
    },
}

/// Renders an error and its sources as `a: b: c`: how the command line, the Python package and
/// the audit's failure records print an error.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(s.to_string());
        cur = s.source();
    }
    parts.join(": ")
}
