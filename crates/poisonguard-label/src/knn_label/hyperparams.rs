//! The parameters of `knn_label`: [`KnnLabelParams`] (the builder, `Default` the paper's) and
//! [`KnnLabelValidParams`] (what `fit` checks them into), with the constants their defaults come
//! from.

use poisonguard_core::{ParamError, ParamGuard, ThresholdRule};

/// Smallest `k` the automatic rule picks.
pub const MIN_AUTO_K: usize = 5;
/// Largest `k` the automatic rule picks.
pub const MAX_AUTO_K: usize = 50;
/// Level of the sign test behind the default threshold.
pub const SIGN_TEST_ALPHA: f64 = 0.05;

/// Checked hyperparameters of [`KnnLabel`](super::KnnLabel).
#[derive(Debug, Clone, PartialEq)]
pub struct KnnLabelValidParams {
    pub(crate) k: Option<usize>,
    pub(crate) standardize: Option<bool>,
    pub(crate) threshold: ThresholdRule,
    pub(crate) trusted: Option<Vec<usize>>,
}

impl KnnLabelValidParams {
    /// Neighbours per row; `None` = from the class sizes.
    pub fn k(&self) -> Option<usize> {
        self.k
    }

    /// Whether features are standardized before the neighbour search; `None` = unless they
    /// share one unit ([`poisonguard_core::shares_one_unit`]).
    pub fn standardize(&self) -> Option<bool> {
        self.standardize
    }

    /// How the threshold is fitted.
    pub fn threshold(&self) -> ThresholdRule {
        self.threshold
    }

    /// Rows known to be clean, whose votes set the agreement laws; `None` = the table's own law.
    pub fn trusted(&self) -> Option<&[usize]> {
        self.trusted.as_deref()
    }
}

/// Unchecked hyperparameters of [`KnnLabel`](super::KnnLabel); a consuming builder. `fit` checks
/// them first.
#[derive(Debug, Clone, PartialEq)]
pub struct KnnLabelParams(KnnLabelValidParams);

impl Default for KnnLabelParams {
    fn default() -> Self {
        Self(KnnLabelValidParams {
            k: None,
            standardize: None,
            threshold: ThresholdRule::Auto,
            trusted: None,
        })
    }
}

impl KnnLabelParams {
    /// Sets the number of neighbours (>= 1, < rows); the default derives it from the class
    /// sizes.
    pub fn k(mut self, k: usize) -> Self {
        self.0.k = Some(k);
        self
    }

    /// Standardizes the features before the search, or not, whatever their units (default:
    /// unless they share one unit).
    pub fn standardize(mut self, on: bool) -> Self {
        self.0.standardize = Some(on);
        self
    }

    /// Sets the threshold rule.
    pub fn threshold(mut self, rule: ThresholdRule) -> Self {
        self.0.threshold = rule;
        self
    }

    /// Rows of the training table known to be clean (a vetted sample; indices into the
    /// table): the agreement law of each class with at least [`MIN_CLASS_TRUSTED_ROWS`] of them
    /// is measured on them instead of fitted to the whole table (see the
    /// [module docs](super), "With trusted rows"); the other classes keep the table's law.
    pub fn trusted(mut self, rows: impl IntoIterator<Item = usize>) -> Self {
        self.0.trusted = Some(poisonguard_core::row_set(rows));
        self
    }
}

/// Fewest trusted rows of one class whose votes measure its agreement law
/// ([`KnnLabelParams::trusted`]); a class with fewer keeps the table's own law. Chosen on clean
/// synthetic tables of three overlapping classes (seeds 21-24): with 25 trusted rows per class
/// one seed of four put 2.3% of the rows at p <= 0.01, with 33 and more none above 1.5%.
pub const MIN_CLASS_TRUSTED_ROWS: usize = 30;

impl ParamGuard for KnnLabelParams {
    type Checked = KnnLabelValidParams;
    type Error = ParamError;

    fn check_ref(&self) -> Result<&Self::Checked, ParamError> {
        if self.0.k == Some(0) {
            return Err(ParamError::CountOutOfRange {
                name: "k",
                value: 0,
                allowed: "[1, n_samples)",
            });
        }
        self.0.threshold.check()?;
        Ok(&self.0)
    }

    fn check(self) -> Result<Self::Checked, ParamError> {
        self.check_ref()?;
        Ok(self.0)
    }
}

impl poisonguard_core::Configure for KnnLabelParams {
    fn with_threshold(self, rule: ThresholdRule) -> Self {
        self.threshold(rule)
    }

    fn with_trusted(self, rows: &[usize]) -> Self {
        self.trusted(rows.iter().copied())
    }
}
