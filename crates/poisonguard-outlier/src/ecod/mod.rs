//! ECOD: empirical-cumulative-distribution-based outlier detection (Li, Zhao, Hu, Botta,
//! Ionescu, Chen, TKDE 2022). Parameter-free.
//!
//! # Algorithm
//! Per feature `j` (features in parallel), from the empirical CDF of the training column:
//! left and right tail probabilities `F_l(x) = P(X_j <= x)` and `F_r(x) = P(X_j >= x)` (ties
//! count fully), `U_l = -ln F_l`, `U_r = -ln F_r`; with `s_j` the sign of the column's skewness,
//! the skew-corrected term is `U_l` for left-skewed (s < 0), `U_r` for right-skewed (s > 0) and
//! `U_l + U_r` for symmetric columns; the feature's contribution is
//! `O_j = max(skew-corrected, U_l, U_r)`. This is PyOD 3.x's `ECOD` (the maximum is taken per
//! feature; the paper's Algorithm 1 takes it after summing over features).
//!
//! # Score
//! `sum_j O_j`: a sum of `-ln` tail probabilities, >= 0; higher = more extreme in more features =
//! more suspicious. A new row is scored on the ECDFs and skewness signs of the training columns
//! (a tail count of 0 counts as 1): a training row scored again gets its training score, and a
//! row's score does not depend on the rows scored beside it. (PyOD instead pools a batch of new
//! rows with the training rows, so that a row's score changes with the batch it comes in; a
//! batched audit here gives the same scores for any batch size.) The reason names the feature
//! with the largest contribution.
//!
//! Fitted on shards (`EcodValidParams::fit_shards`), the summaries (every column, sorted) merge:
//! the result is the fit on all rows, bit for bit.
//!
//! Fitted for a scan of its own rows only
//! ([`FitContext::scan_only`](poisonguard_core::FitContext::scan_only), what `Audit::run` asks),
//! the model keeps no sorted column (an `n x d` f32 copy of the features): the columns are
//! sorted and scored one at a time and each row keeps its largest contribution for its reason.
//! The training detection is the same; scoring new rows is refused (`Error::ScanOnly`).
//!
//! # References
//! Z. Li, Y. Zhao, X. Hu, N. Botta, C. Ionescu, G. H. Chen. *ECOD: Unsupervised Outlier Detection
//! Using Empirical Cumulative Distribution Functions.* IEEE TKDE 2022.

mod algorithm;
mod hyperparams;

pub use algorithm::{Ecod, EcodModel};
pub use hyperparams::{EcodParams, EcodValidParams};

// The parameters' builders, checks and `Detector` impl over the model (here, so that the
// parameters do not import the algorithm that imports them).
crate::model::outlier_detector!(EcodParams, EcodValidParams, algorithm::EcodModel);
crate::model::mergeable_detector!(EcodValidParams, algorithm::EcodModel);
