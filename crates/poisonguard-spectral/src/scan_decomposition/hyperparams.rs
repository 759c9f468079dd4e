//! The parameters of `scan_decomposition`: [`ScanDecompositionParams`] (the builder, `Default` the
//! paper's) and [`ScanDecompositionValidParams`] (what `fit` checks them into), with the constants
//! their defaults come from.

use poisonguard_core::{ParamError, ParamGuard, ThresholdRule};

/// Checked hyperparameters of [`ScanDecomposition`](super::ScanDecomposition).
#[derive(Debug, Clone, PartialEq)]
pub struct ScanDecompositionValidParams {
    pub(crate) max_dims: usize,
    pub(crate) seed: u64,
    pub(crate) flag_all_classes: bool,
    pub(crate) threshold: ThresholdRule,
    pub(crate) trusted: Option<Vec<usize>>,
}

impl ScanDecompositionValidParams {
    /// Most principal directions kept.
    pub fn max_dims(&self) -> usize {
        self.max_dims
    }

    /// Seed of the simulated critical value of the class verdicts.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Whether rows are flagged in every class, not only in classes declared attacked.
    pub fn flag_all_classes(&self) -> bool {
        self.flag_all_classes
    }

    /// How the threshold is fitted.
    pub fn threshold(&self) -> ThresholdRule {
        self.threshold
    }

    /// Rows known to be clean, if any (sorted, distinct).
    pub fn trusted(&self) -> Option<&[usize]> {
        self.trusted.as_deref()
    }
}

/// Unchecked hyperparameters of [`ScanDecomposition`](super::ScanDecomposition); a consuming
/// builder. `fit` checks them.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanDecompositionParams(ScanDecompositionValidParams);

impl Default for ScanDecompositionParams {
    fn default() -> Self {
        Self(ScanDecompositionValidParams {
            max_dims: 100,
            seed: poisonguard_core::DEFAULT_SEED,
            flag_all_classes: false,
            threshold: ThresholdRule::Auto,
            trusted: None,
        })
    }
}

impl ScanDecompositionParams {
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

    /// Rows (indices into the dataset `fit` is given) known to be clean: the paper's clean
    /// reserve. The global model is fitted on them alone and, within a class, the suspect
    /// component is the one holding the smaller share of them. Sorted and deduplicated here;
    /// `fit` refuses an index beyond the dataset, and fewer than two trusted rows in two
    /// classes.
    pub fn trusted(mut self, rows: impl IntoIterator<Item = usize>) -> Self {
        self.0.trusted = Some(poisonguard_core::row_set(rows));
        self
    }
}

impl ParamGuard for ScanDecompositionParams {
    type Checked = ScanDecompositionValidParams;
    type Error = ParamError;

    fn check_ref(&self) -> Result<&Self::Checked, ParamError> {
        let p = &self.0;
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

impl poisonguard_core::Configure for ScanDecompositionParams {
    fn with_threshold(self, rule: ThresholdRule) -> Self {
        self.threshold(rule)
    }

    fn with_seed(self, seed: u64) -> Self {
        self.seed(seed)
    }

    fn with_trusted(self, rows: &[usize]) -> Self {
        self.trusted(rows.iter().copied())
    }
}
