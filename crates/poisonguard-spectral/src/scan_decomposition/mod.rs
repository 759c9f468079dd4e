//! SCAn: statistical contamination analysis, by untangling class identity from within-class
//! variation (Tang, Wang, Tang, Zhang, USENIX Security 2021).
//!
//! # Algorithm
//! 1. **Reduction.** Centre all rows (or the trusted rows, see below) and project them on the
//!    principal directions of their covariance whose variance exceeds `1e-9` of the largest, at
//!    most [`ScanDecompositionParams::max_dims`] (default 100, SPECTRE's; the paper keeps the whole
//!    representation and pseudo-inverts, which loses nothing on embeddings but costs `d^3` per
//!    class and iteration).
//! 2. **Global model** (the paper's): every row is `r = mu_c + e`, a class identity
//!    `mu_c ~ N(0, S_u)` plus within-class variation `e ~ N(0, S_e)`, the two covariances fitted
//!    by the paper's EM over all classes (E-step: each class's identity is its posterior mean
//!    `S_e (n_c S_u + S_e)^-1 S_u S_e^-1 sum r`; M-step: the covariances of the identities and of
//!    the residuals), until both move by less than `1e-6` of their norm, at most 100 iterations.
//!    Computed in the coordinates that whiten `S_e` and diagonalise `S_u`, so an iteration costs
//!    one `p x p` eigendecomposition whatever the number of classes. The final `S_e` is shrunk
//!    toward a multiple of the identity with Ledoit and Wolf's (2004) optimal intensity: with few
//!    rows per dimension, the raw estimate has near-zero variance along features that only a few
//!    rows use, and whitening by it put single rows tens of standard deviations away (on raw
//!    `digits`, every class's split then isolated one such row).
//! 3. **Local model**, per class in parallel: in the metric `S_e^-1` (rows whitened by `S_e`),
//!    split the class in two by Lloyd's two-means (the paper's EM of its two-component model),
//!    started from the split at the class's top principal direction instead of the paper's random
//!    one (deterministic, and the split most two-component alternatives start from). The
//!    statistic is the paper's likelihood-ratio `J = mean_i |r_i - mu_c|^2 - mean_i |r_i -
//!    m_g(i)|^2` (`S_e^-1` norms; `mu_c` the identity's posterior mean, `m_g` the row's component
//!    mean): how much better two components explain the class than one identity.
//! 4. **Which component is suspect.** The paper uses a clean reserve: the component holding
//!    fewer of its clean rows. Without one (the default, *reserve-free*), the smaller component:
//!    poison is a minority of the class it targets. With trusted rows
//!    ([`ScanDecompositionParams::trusted`]) the global model is fitted on them alone, as the
//!    paper's, and the suspect component is the one holding the smaller share of them.
//!
//! # Score
//! The row's position along the line from the other component's mean to the suspect one's
//! (whitened, so in units of the global model's within-class standard deviation), centred at its
//! class's median, squared where positive and 0 on the other side: the chi-square(1) scale of the
//! other spectral detectors; higher = more suspicious. The p-value is the chi-square(1) upper tail
//! (twice the one-sided normal tail: conservative), scaled by the median and 99% quantile of the
//! rows of the classes not declared attacked; rows of those classes carry no evidence (p = 1), and
//! their scores are capped at the threshold, as [`Spectre`](crate::Spectre) does. The default
//! [`ThresholdRule::Auto`] is the 99% quantile of the scores of those rows, never below the
//! chi-square(1) 99% quantile (6.63). Classes with fewer than 8 rows score 0.
//!
//! # Class verdicts
//! The paper flags a class whose `J` is an outlier among the classes (a two-sided robust z with
//! the MAD of all classes above `e^2`). Here a class is declared attacked when the robust z of
//! its `ln J` against the *other* classes exceeds the family-wise 5% critical value that
//! [`Spectre`](crate::Spectre)'s verdicts use (about 5.9 for 10 classes; no verdict below 4
//! classes). Spectre adds the class's own bootstrap standard error to the scale; tried here, it
//! made the verdict miss a 10% component 6 sd away in synthetic data (z 3.3 instead of 12.8),
//! while without it no class of clean `digits` (whole and 20 subsamples) was declared, so SCAn's
//! verdict has none. Class findings: `attacked`, `verdict_z`, `decomposition_gain` (`J`),
//! `smaller_share` (the suspect component's share of the class) and `dims` (`p`).
//!
//! [`ThresholdRule::Auto`]: poisonguard_core::ThresholdRule::Auto
//!
//! # Reference
//! D. Tang, X. Wang, H. Tang, K. Zhang. *Demon in the Variant: Statistical Analysis of DNNs for
//! Robust Backdoor Contamination Detection.* USENIX Security 2021.

mod algorithm;

pub use algorithm::ScanDecomposition;
mod hyperparams;
pub use hyperparams::{ScanDecompositionParams, ScanDecompositionValidParams};

// linfa's `Fit` for the parameters and `PredictInplace` for the fitted detector (feature
// `linfa`).
#[cfg(feature = "linfa")]
poisonguard_core::linfa_estimator!(fit: ScanDecompositionParams, ScanDecompositionValidParams);
#[cfg(feature = "linfa")]
poisonguard_core::linfa_estimator!(predict: ScanDecomposition);
