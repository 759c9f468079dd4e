//! The parameters of `duplicates`: [`DuplicatesParams`] (the builder, `Default` the paper's) and
//! [`DuplicatesValidParams`] (what `fit` checks them into), with the constants their defaults come
//! from.

use poisonguard_core::{ParamError, ParamGuard, ThresholdRule};

/// Default neighbours searched per row for near-duplicates.
pub const DEFAULT_K: usize = 10;

/// Checked hyperparameters of [`Duplicates`](super::Duplicates).
#[derive(Debug, Clone, PartialEq)]
pub struct DuplicatesValidParams {
    pub(crate) k: usize,
    pub(crate) radius: Option<f64>,
    pub(crate) standardize: bool,
    pub(crate) threshold: ThresholdRule,
}

impl DuplicatesValidParams {
    /// Neighbours searched per row.
    pub fn k(&self) -> usize {
        self.k
    }

    /// A fixed near-duplicate radius, if set (otherwise derived from the data).
    pub fn radius(&self) -> Option<f64> {
        self.radius
    }

    /// Whether features are standardized before the search.
    pub fn standardize(&self) -> bool {
        self.standardize
    }

    /// How the threshold is fitted.
    pub fn threshold(&self) -> ThresholdRule {
        self.threshold
    }
}

/// Unchecked hyperparameters of [`Duplicates`](super::Duplicates); a consuming builder. `fit`
/// checks them.
#[derive(Debug, Clone, PartialEq)]
pub struct DuplicatesParams(DuplicatesValidParams);

impl Default for DuplicatesParams {
    fn default() -> Self {
        Self(DuplicatesValidParams {
            k: DEFAULT_K,
            radius: None,
            standardize: false,
            threshold: ThresholdRule::Auto,
        })
    }
}

impl DuplicatesParams {
    /// Sets the neighbours searched per row (>= 1).
    pub fn k(mut self, k: usize) -> Self {
        self.0.k = k;
        self
    }

    /// Fixes the near-duplicate radius (>= 0, in the searched space's distance units).
    pub fn radius(mut self, radius: f64) -> Self {
        self.0.radius = Some(radius);
        self
    }

    /// Standardizes the features before the search (default `false`).
    pub fn standardize(mut self, on: bool) -> Self {
        self.0.standardize = on;
        self
    }

    /// Sets the threshold rule.
    pub fn threshold(mut self, rule: ThresholdRule) -> Self {
        self.0.threshold = rule;
        self
    }
}

impl ParamGuard for DuplicatesParams {
    type Checked = DuplicatesValidParams;
    type Error = ParamError;

    fn check_ref(&self) -> Result<&Self::Checked, ParamError> {
        let p = &self.0;
        if p.k == 0 {
            return Err(ParamError::CountOutOfRange {
                name: "k",
                value: 0,
                allowed: "[1, n_samples)",
            });
        }
        if let Some(r) = p.radius
            && !(r >= 0.0 && r.is_finite())
        {
            return Err(ParamError::OutOfRange { name: "radius", value: r, allowed: "[0, inf)" });
        }
        p.threshold.check()?;
        Ok(p)
    }

    fn check(self) -> Result<Self::Checked, ParamError> {
        self.check_ref()?;
        Ok(self.0)
    }
}

impl poisonguard_core::Configure for DuplicatesParams {
    fn with_threshold(self, rule: ThresholdRule) -> Self {
        self.threshold(rule)
    }
}
