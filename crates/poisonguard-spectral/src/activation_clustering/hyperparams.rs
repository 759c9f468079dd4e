//! The parameters of `activation_clustering`: [`ActivationClusteringParams`] (the builder,
//! `Default` the paper's) and [`ActivationClusteringValidParams`] (what `fit` checks them into),
//! with the constants their defaults come from.

use poisonguard_core::{ParamError, ParamGuard, ThresholdRule};

/// Checked hyperparameters of [`ActivationClustering`](super::ActivationClustering).
#[derive(Debug, Clone, PartialEq)]
pub struct ActivationClusteringValidParams {
    pub(crate) dims: usize,
    pub(crate) n_init: usize,
    pub(crate) size_threshold: f64,
    pub(crate) silhouette_threshold: Option<f64>,
    pub(crate) seed: u64,
    pub(crate) flag_all_classes: bool,
    pub(crate) threshold: ThresholdRule,
}

impl ActivationClusteringValidParams {
    /// Principal directions kept.
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// Seeded k-means restarts.
    pub fn n_init(&self) -> usize {
        self.n_init
    }

    /// Largest share of the smaller cluster in an attacked class.
    pub fn size_threshold(&self) -> f64 {
        self.size_threshold
    }

    /// ART's fixed smallest mean silhouette of an attacked class's split; `None` (the default)
    /// compares the silhouette with the other classes'.
    pub fn silhouette_threshold(&self) -> Option<f64> {
        self.silhouette_threshold
    }

    /// Seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Whether rows are flagged in every class.
    pub fn flag_all_classes(&self) -> bool {
        self.flag_all_classes
    }

    /// How the threshold is fitted.
    pub fn threshold(&self) -> ThresholdRule {
        self.threshold
    }
}

/// Unchecked hyperparameters of [`ActivationClustering`](super::ActivationClustering); a consuming
/// builder.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivationClusteringParams(ActivationClusteringValidParams);

impl Default for ActivationClusteringParams {
    fn default() -> Self {
        Self(ActivationClusteringValidParams {
            dims: 10,
            n_init: 10,
            size_threshold: 0.35,
            silhouette_threshold: None,
            seed: poisonguard_core::DEFAULT_SEED,
            flag_all_classes: false,
            threshold: ThresholdRule::Auto,
        })
    }
}

impl ActivationClusteringParams {
    /// Sets the principal directions kept (>= 1).
    pub fn dims(mut self, dims: usize) -> Self {
        self.0.dims = dims;
        self
    }

    /// Sets the k-means restarts (>= 1).
    pub fn n_init(mut self, n_init: usize) -> Self {
        self.0.n_init = n_init;
        self
    }

    /// Sets the size threshold, in (0, 0.5].
    pub fn size_threshold(mut self, v: f64) -> Self {
        self.0.size_threshold = v;
        self
    }

    /// Uses ART's fixed rule with this silhouette threshold, in [-1, 1) (ART: 0.10), instead of
    /// the comparison with the other classes.
    pub fn silhouette_threshold(mut self, v: f64) -> Self {
        self.0.silhouette_threshold = Some(v);
        self
    }

    /// Sets the seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.0.seed = seed;
        self
    }

    /// Flags rows in every class, not only in attacked ones (default `false`).
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

impl ParamGuard for ActivationClusteringParams {
    type Checked = ActivationClusteringValidParams;
    type Error = ParamError;

    fn check_ref(&self) -> Result<&Self::Checked, ParamError> {
        let p = &self.0;
        for (name, v) in [("dims", p.dims), ("n_init", p.n_init)] {
            if v == 0 {
                return Err(ParamError::CountOutOfRange { name, value: 0, allowed: "[1, inf)" });
            }
        }
        if !(p.size_threshold > 0.0 && p.size_threshold <= 0.5) {
            return Err(ParamError::OutOfRange {
                name: "size_threshold",
                value: p.size_threshold,
                allowed: "(0, 0.5]",
            });
        }
        if let Some(t) = p.silhouette_threshold.filter(|t| !(-1.0..1.0).contains(t)) {
            return Err(ParamError::OutOfRange {
                name: "silhouette_threshold",
                value: t,
                allowed: "[-1, 1)",
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

impl poisonguard_core::Configure for ActivationClusteringParams {
    fn with_threshold(self, rule: ThresholdRule) -> Self {
        self.threshold(rule)
    }

    fn with_seed(self, seed: u64) -> Self {
        self.seed(seed)
    }
}
