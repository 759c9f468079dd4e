//! Core data model of [poisonguard](https://crates.io/crates/poisonguard): the checked
//! [`Dataset`], the [`Detector`] contract, [`Detection`] with its [`ThresholdRule`],
//! class-level [`ClassFinding`]s, the [`Report`] and evaluation [`metrics`].
//!
//! # Overview
//! Data flows one way: a caller (or `poisonguard-io`) builds a [`Dataset`] through its checked
//! constructor; a detector's hyperparameters are validated ([`ParamGuard`]) and `fit` on it,
//! producing a [`FittedDetector`] whose training [`Detection`] holds one score per row
//! (**higher = more suspicious**), a threshold fitted by a [`ThresholdRule`], flags derived as
//! `score > threshold` and a [`Reason`] per flagged row.
//!
//! ```
//! use ndarray::array;
//! use poisonguard_core::{Dataset, Detection, Reason, ThresholdRule};
//! let data = Dataset::new(array![[0.0f32], [0.1], [0.2], [9.0]])?;
//! // A toy score: distance from zero.
//! let scores: Vec<f64> = data.features().column(0).iter().map(|&v| f64::from(v)).collect();
//! let det = Detection::new(scores, &ThresholdRule::Auto, |_, s| Reason::Score { score: s, threshold: 0.0 })?;
//! assert_eq!(det.flagged(), vec![false, false, false, true]);
//! # Ok::<(), poisonguard_core::DataError>(())
//! ```
//!
//! # Design notes
//! - Features are `f32` (what embeddings are: half the memory, twice the SIMD width); long
//!   reductions accumulate in `f64`.
//! - Detectors never threshold by hand: [`Detection`]'s constructors apply the rule, so flags
//!   and scores cannot disagree.
//! - This crate has no I/O, no threads and no printing.

mod batches;
mod dataset;
mod detection;
mod detector;
mod error;
mod evidence;
mod findings;
mod info;
mod knn;
#[cfg(feature = "linfa")]
mod linfa_data;
pub mod metrics;
mod report;
mod scale;
mod state;
mod threshold;

/// The seed every randomized detector uses unless told another: one value for the whole
/// workspace, so a detector built alone scores as the same detector in an audit.
pub const DEFAULT_SEED: u64 = 0x5EED_5EED;

/// Derives the seed of one independent stream (a class, a tree, a trial) from a user seed, so that
/// every stream's randomness is fixed by the seed whatever the thread count (a splitmix64 step).
///
/// ```
/// use poisonguard_core::derive_seed;
/// assert_eq!(derive_seed(7, 3), derive_seed(7, 3));
/// assert_ne!(derive_seed(7, 3), derive_seed(7, 4));
/// ```
pub fn derive_seed(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub use batches::{InMemoryRows, RowKeys, RowSource};
pub use dataset::{
    ClassId, Dataset, LabelMap, LabelValue, Labels, ONE_UNIT_SPREAD, row_set, shares_one_unit,
};
pub use detection::{Detection, DetectionRows, DetectorId, Reason};
pub use detector::{BoxError, Configure, Detector, DynDetector, FittedDetector, ParamGuard};
pub use error::{DataError, ParamError};
pub use evidence::{
    Calibration, TAIL_KNOTS, TAIL_QUANTILE, TailFit, benjamini_hochberg, harmonic_mean_p,
    suspicion_of,
};
pub use findings::{
    ClassFinding, ClassStatistic, ESTIMATE_LEVEL, EstimateMethod, NoiseMatrix, PoisonEstimate,
    SkippedClass, SourceFinding,
};
pub use info::{AutoThreshold, DetectorInfo, Family, Threat, TrainingScores};
pub use knn::{FitContext, KnnGraph};
/// linfa, for [`linfa_estimator!`]'s expansions.
#[cfg(feature = "linfa")]
#[doc(hidden)]
pub use linfa as __linfa;
#[cfg(feature = "linfa")]
pub use linfa_data::{
    LinfaError, LinfaRecord, LinfaTarget, detect_dataset, detect_records, fit_linfa,
};
/// ndarray, for [`linfa_estimator!`]'s expansions.
#[doc(hidden)]
pub use ndarray as __ndarray;
pub use report::{
    DetectorFailure, DetectorRun, Report, ReportColumn, THREAT_RANKED_ROWS, ThreatFinding,
    declared_by,
};
pub use scale::Standardizer;
pub use state::{Merge, MergeError, SaveState, StateError, load_state};
pub use threshold::{
    AUTO_ALPHA, AUTO_ROBUST_Z, FittedThreshold, ScoreNull, ThresholdRule, quantile_sorted,
};
