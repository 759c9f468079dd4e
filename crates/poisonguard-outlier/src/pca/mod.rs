//! PCA outlier score, as PyOD's `PCA` detector (after Shyu, Chen, Sarinnapakorn, Chang 2003).
//!
//! # Algorithm
//! Standardize every feature (mean 0, population standard deviation 1; constant features become
//! 0), take all principal axes `v_j` of the standardized rows (`min(n, d)` of them, from an exact
//! symmetric eigendecomposition of the covariance) with their explained-variance ratios `w_j`.
//!
//! # Score
//! `sum_j ||x - v_j|| / w_j`: the Euclidean distance of the standardized row to each unit
//! principal axis, weighted by the inverse explained-variance ratio, as PyOD computes it
//! (`weighted=True`, all components selected). Minor components, with small `w_j`, dominate, so
//! rows that deviate along directions of little variance score high. >= 0; higher = more
//! suspicious.
//!
//! Fitted on shards (`PcaValidParams::fit_shards`), the summaries (row count, means, co-moment
//! matrix) merge: the result equals the fit on all rows up to floating-point rounding.
//!
//! # References
//! M.-L. Shyu, S.-C. Chen, K. Sarinnapakorn, L. Chang. *A Novel Anomaly Detection Scheme Based
//! on Principal Component Classifier.* ICDM 2003; PyOD's `pyod.models.pca.PCA`.

mod algorithm;
mod hyperparams;

pub use algorithm::{Pca, PcaModel};
pub use hyperparams::{PcaParams, PcaValidParams};

// The parameters' builders, checks and `Detector` impl over the model (here, so that the
// parameters do not import the algorithm that imports them).
crate::model::outlier_detector!(PcaParams, PcaValidParams, algorithm::PcaModel);
crate::model::mergeable_detector!(PcaValidParams, algorithm::PcaModel);
