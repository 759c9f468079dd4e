//! The parameters of `spectre`: [`SpectreParams`] (the builder, `Default` the paper's) and
//! [`SpectreValidParams`] (what `fit` checks them into), with the constants their defaults come
//! from.

use poisonguard_core::{ParamError, ParamGuard, ThresholdRule};

/// Checked hyperparameters of [`Spectre`](super::Spectre).
#[derive(Debug, Clone, PartialEq)]
pub struct SpectreValidParams {
    pub(crate) alpha: f64,
    pub(crate) max_dims: usize,
    pub(crate) max_poison_share: f64,
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

    /// Upper bound on the poisoned share of a class given to the covariance filter.
    pub fn max_poison_share(&self) -> f64 {
        self.max_poison_share
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

/// Unchecked hyperparameters of [`Spectre`](super::Spectre); a consuming builder. `fit` checks
/// them.
#[derive(Debug, Clone, PartialEq)]
pub struct SpectreParams(SpectreValidParams);

impl Default for SpectreParams {
    fn default() -> Self {
        Self(SpectreValidParams {
            alpha: 4.0,
            max_dims: 100,
            max_poison_share: 0.1,
            seed: poisonguard_core::DEFAULT_SEED,
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

    /// Sets the upper bound on the poisoned share of a class given to the covariance filter,
    /// in (0, 0.5) (default 0.1; the filter removes at most twice this share while estimating).
    pub fn max_poison_share(mut self, share: f64) -> Self {
        self.0.max_poison_share = share;
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
        if !(p.max_poison_share > 0.0 && p.max_poison_share < 0.5) {
            return Err(ParamError::OutOfRange {
                name: "max_poison_share",
                value: p.max_poison_share,
                allowed: "(0, 0.5)",
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

impl poisonguard_core::Configure for SpectreParams {
    fn with_threshold(self, rule: ThresholdRule) -> Self {
        self.threshold(rule)
    }

    fn with_seed(self, seed: u64) -> Self {
        self.seed(seed)
    }
}
