//! The parameters of `confident_learning`: [`ConfidentLearningParams`] (the builder, `Default` the
//! paper's) and [`ConfidentLearningValidParams`] (what `fit` checks them into), with the constants
//! their defaults come from.

use poisonguard_core::{ParamError, ParamGuard, ThresholdRule};

use super::classifier::{self, ProbabilisticClassifier};

/// Candidate inverse L2 strengths of the built-in classifier, chosen by out-of-fold log loss.
pub const C_GRID: &[f64] = &[0.01, 0.1, 1.0, 10.0];

/// How a row's given label is scored from its predicted probabilities (cleanlab's ranking
/// methods; all lower = worse label, turned into `1 - quality`).
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Ranking {
    /// `p(given)`.
    #[default]
    SelfConfidence,
    /// `(p(given) - max_{j != given} p(j) + 1) / 2`.
    NormalizedMargin,
    /// `log(1 + H/p(given)) / max(H/p(given), 1e-6)` with `H` the entropy normalized by
    /// `log(classes)`.
    ConfidenceWeightedEntropy,
}

/// Checked hyperparameters of [`ConfidentLearning`](super::ConfidentLearning).
#[derive(Debug, Clone, PartialEq)]
pub struct ConfidentLearningValidParams {
    pub(crate) folds: usize,
    pub(crate) seed: u64,
    pub(crate) c: Option<f64>,
    pub(crate) max_iter: usize,
    pub(crate) ranking: Ranking,
    pub(crate) threshold: ThresholdRule,
    pub(crate) classifier: Option<classifier::Classifier>,
}

impl ConfidentLearningValidParams {
    /// Cross-validation folds of the built-in classifier.
    pub fn folds(&self) -> usize {
        self.folds
    }

    /// Seed of the folds.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Inverse L2 strength of the built-in logistic regression; `None` (the default) chooses
    /// it from [`C_GRID`] by out-of-fold log loss.
    pub fn c(&self) -> Option<f64> {
        self.c
    }

    /// L-BFGS iteration cap of the logistic regression.
    pub fn max_iter(&self) -> usize {
        self.max_iter
    }

    /// The ranking score.
    pub fn ranking(&self) -> Ranking {
        self.ranking
    }

    /// How the threshold is fitted.
    pub fn threshold(&self) -> ThresholdRule {
        self.threshold
    }

    /// The user's classifier that replaces the built-in one, if any.
    pub fn classifier(&self) -> Option<&dyn ProbabilisticClassifier> {
        self.classifier.as_ref().map(|c| &*c.0)
    }
}

/// Unchecked hyperparameters of [`ConfidentLearning`](super::ConfidentLearning); a consuming
/// builder. `fit` checks them.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfidentLearningParams(ConfidentLearningValidParams);

impl Default for ConfidentLearningParams {
    fn default() -> Self {
        Self(ConfidentLearningValidParams {
            folds: 5,
            seed: poisonguard_core::DEFAULT_SEED,
            c: None,
            max_iter: 100,
            ranking: Ranking::SelfConfidence,
            threshold: ThresholdRule::Auto,
            classifier: None,
        })
    }
}

impl ConfidentLearningParams {
    /// Sets the number of cross-validation folds (>= 2).
    pub fn folds(mut self, folds: usize) -> Self {
        self.0.folds = folds;
        self
    }

    /// Sets the seed of the folds.
    pub fn seed(mut self, seed: u64) -> Self {
        self.0.seed = seed;
        self
    }

    /// Fixes the inverse L2 strength (> 0) instead of choosing it from [`C_GRID`].
    pub fn c(mut self, c: f64) -> Self {
        self.0.c = Some(c);
        self
    }

    /// Sets the L-BFGS iteration cap (>= 1).
    pub fn max_iter(mut self, max_iter: usize) -> Self {
        self.0.max_iter = max_iter;
        self
    }

    /// Sets the ranking score.
    pub fn ranking(mut self, ranking: Ranking) -> Self {
        self.0.ranking = ranking;
        self
    }

    /// Sets the threshold rule.
    pub fn threshold(mut self, rule: ThresholdRule) -> Self {
        self.0.threshold = rule;
        self
    }

    /// Cross-validates `classifier` instead of the built-in logistic regression (same folds;
    /// [`c`](Self::c) and [`max_iter`](Self::max_iter) then do not apply). Its fold models score
    /// new rows in memory; they are not saved with the fitted detector, so a fitted detector
    /// read back from a model file needs `pred_probs` on new rows. See
    /// [`ProbabilisticClassifier`].
    pub fn classifier(mut self, classifier: impl ProbabilisticClassifier + 'static) -> Self {
        self.0.classifier = Some(classifier::Classifier(std::sync::Arc::new(classifier)));
        self
    }
}

impl ParamGuard for ConfidentLearningParams {
    type Checked = ConfidentLearningValidParams;
    type Error = ParamError;

    fn check_ref(&self) -> Result<&Self::Checked, ParamError> {
        let p = &self.0;
        if p.folds < 2 {
            return Err(ParamError::CountOutOfRange {
                name: "folds",
                value: p.folds,
                allowed: "[2, n_samples]",
            });
        }
        if p.max_iter == 0 {
            return Err(ParamError::CountOutOfRange {
                name: "max_iter",
                value: 0,
                allowed: "[1, inf)",
            });
        }
        if let Some(c) = p.c.filter(|c| !(*c > 0.0 && c.is_finite())) {
            return Err(ParamError::OutOfRange { name: "c", value: c, allowed: "(0, inf)" });
        }
        p.threshold.check()?;
        Ok(p)
    }

    fn check(self) -> Result<Self::Checked, ParamError> {
        self.check_ref()?;
        Ok(self.0)
    }
}

impl poisonguard_core::Configure for ConfidentLearningParams {
    fn with_threshold(self, rule: ThresholdRule) -> Self {
        self.threshold(rule)
    }

    fn with_seed(self, seed: u64) -> Self {
        self.seed(seed)
    }
}
