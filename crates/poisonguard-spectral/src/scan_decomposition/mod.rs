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
//! class's median, squared where positive and 0 on the other side: the chi-square(1) scale of the other spectral detectors;
//! higher = more suspicious. The p-value is the chi-square(1) upper tail (twice the one-sided
//! normal tail: conservative), scaled by the median and 99% quantile of the rows of the classes not declared
//! attacked; rows of those classes carry no evidence (p = 1), and their scores are capped at the
//! threshold, as [`Spectre`](crate::Spectre) does. The default [`ThresholdRule::Auto`] is the 99%
//! quantile of the scores of those rows, never below the chi-square(1) 99% quantile (6.63).
//! Classes with fewer than 8 rows score 0.
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

use poisonguard_core::{ParamError, ParamGuard, ThresholdRule};

/// Checked hyperparameters of [`ScanDecomposition`].
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

/// Unchecked hyperparameters of [`ScanDecomposition`]; a consuming builder. `fit` checks them.
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

// linfa's `Fit` for the parameters and `PredictInplace` for the fitted detector (feature
// `linfa`).
#[cfg(feature = "linfa")]
poisonguard_core::linfa_estimator!(fit: ScanDecompositionParams, ScanDecompositionValidParams);
#[cfg(feature = "linfa")]
poisonguard_core::linfa_estimator!(predict: ScanDecomposition);
