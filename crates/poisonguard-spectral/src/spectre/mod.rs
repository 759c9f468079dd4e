//! SPECTRE: robust whitening and quantum-entropy scores (Hayase, Kong, Somani, Oh, ICML 2021).
//!
//! # Algorithm
//! For every class (classes in parallel):
//! 1. centre the rows and project them on the top `p = min(max_dims, features, (rows - 1) / 2)`
//!    principal directions (default `max_dims` = 100, as the paper);
//! 2. estimate the clean rows' mean and covariance robustly in that space. The paper filters
//!    with Diakonikolas et al.'s covariance filter and needs the number of poisons to stop it;
//!    we use the re-weighted Minimum Covariance Determinant (FAST-MCD, the estimator of
//!    [`Mahalanobis`](poisonguard_outlier::Mahalanobis)), which tolerates up to half of the
//!    rows being outliers and needs no poison count;
//! 3. for every `k` in {1, 4, 9, ..., 100} (`k <= p`): take the rows whose robust distance in
//!    the first `k` directions lies within the chi-square(k) 97.5% quantile, whiten the
//!    `p`-dimensional rows by those rows' covariance, and measure how much variance is left in
//!    excess: with `S` the whitened covariance and `M = exp(alpha (S - I) / (|S| - 1))` (the
//!    quantum-entropy weighting, `alpha` = 4), the score of `k` is `tr(S M) / tr(M)`. Keep the
//!    `k` with the largest score (SPECTRE's automatic choice of dimension);
//! 4. at that `k`, whiten the `k`-dimensional rows by the kept rows' mean and covariance and
//!    score each row by its quantum-entropy score `tau_i = z_i^T M z_i / tr(M)` (`M` from the
//!    whitened covariance of all rows in `k` dimensions). Rows of a hidden sub-population carry
//!    the excess variance, which `M` concentrates on.
//!
//! # Score
//! `tau` is a quadratic form of a whitened row; on clean Gaussian data it is about
//! `c * chi2(nu)` with `c = tr(M^2)/tr(M)^2` and `nu = 1/c` (Satterthwaite). Each class's scores
//! are mapped to the chi-square(1) scale through that approximation (`F_1^-1(F_nu(tau / c))`), so
//! they are comparable across classes and the default [`ThresholdRule::Auto`] flags above the
//! chi-square(1) 99% quantile (6.63); higher = more suspicious. Classes too small to estimate a
//! covariance (fewer than 8 rows) score 0.
//!
//! Class-level findings: `dims` (the chosen `k`), `excess_variance` (the chosen `k`'s
//! `tr(S M) / tr(M)`, the score classes are ranked by: about 1 for a clean class), and
//! `top_whitened_eigenvalue` (`|S|` in `k` dimensions).
//!
//! [`ThresholdRule::Auto`]: poisonguard_core::ThresholdRule::Auto
//!
//! # Reference
//! J. Hayase, W. Kong, R. Somani, S. Oh. *SPECTRE: Defending Against Backdoor Attacks Using
//! Robust Statistics.* ICML 2021.

mod algorithm;

pub use algorithm::Spectre;

use poisonguard_core::{ParamError, ParamGuard, ThresholdRule};

/// Default seed of the robust covariance estimates.
pub const DEFAULT_SEED: u64 = 0x5EC7_0E00;

/// Checked hyperparameters of [`Spectre`].
#[derive(Debug, Clone, PartialEq)]
pub struct SpectreValidParams {
    pub(crate) alpha: f64,
    pub(crate) max_dims: usize,
    pub(crate) seed: u64,
    pub(crate) flag_all_classes: bool,
    pub(crate) threshold: ThresholdRule,
}

impl SpectreValidParams {
    /// Whether rows are flagged in every class, not only in classes declared attacked.
    pub fn flag_all_classes(&self) -> bool {
        self.flag_all_classes
    }

    /// Quantum-entropy parameter `alpha` (the paper's 4).
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    /// Most principal directions kept (the paper's 100).
    pub fn max_dims(&self) -> usize {
        self.max_dims
    }

    /// Seed of the robust covariance estimates.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// How the threshold is fitted.
    pub fn threshold(&self) -> ThresholdRule {
        self.threshold
    }
}

/// Unchecked hyperparameters of [`Spectre`]; a consuming builder. `fit` checks them.
#[derive(Debug, Clone, PartialEq)]
pub struct SpectreParams(SpectreValidParams);

impl Default for SpectreParams {
    fn default() -> Self {
        Self(SpectreValidParams {
            alpha: 4.0,
            max_dims: 100,
            seed: DEFAULT_SEED,
            flag_all_classes: false,
            threshold: ThresholdRule::Auto,
        })
    }
}

impl SpectreParams {
    /// Sets `alpha` (> 0).
    pub fn alpha(mut self, alpha: f64) -> Self {
        self.0.alpha = alpha;
        self
    }

    /// Sets the most principal directions kept (>= 1).
    pub fn max_dims(mut self, max_dims: usize) -> Self {
        self.0.max_dims = max_dims;
        self
    }

    /// Sets the seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.0.seed = seed;
        self
    }

    /// Flags rows in every class, not only in classes declared attacked (default `false`).
    pub fn flag_all_classes(mut self, on: bool) -> Self {
        self.0.flag_all_classes = on;
        self
    }

    /// Sets the threshold rule.
    pub fn threshold(mut self, rule: ThresholdRule) -> Self {
        self.0.threshold = rule;
        self
    }
}

impl ParamGuard for SpectreParams {
    type Checked = SpectreValidParams;
    type Error = ParamError;

    fn check_ref(&self) -> Result<&Self::Checked, ParamError> {
        let p = &self.0;
        if !(p.alpha > 0.0 && p.alpha.is_finite()) {
            return Err(ParamError::OutOfRange {
                name: "alpha",
                value: p.alpha,
                allowed: "(0, inf)",
            });
        }
        if p.max_dims == 0 {
            return Err(ParamError::CountOutOfRange {
                name: "max_dims",
                value: 0,
                allowed: "[1, inf)",
            });
        }
        p.threshold.check()?;
        Ok(p)
    }

    fn check(self) -> Result<Self::Checked, ParamError> {
        self.check_ref()?;
        Ok(self.0)
    }
}
