//! Confident learning (Northcutt, Jiang, Chuang 2021), as cleanlab's `find_label_issues`.
//!
//! # Algorithm
//! 1. Out-of-sample predicted probabilities `p(class | row)`: the dataset's own
//!    ([`Dataset::with_pred_probs`](poisonguard_core::Dataset::with_pred_probs), which must be
//!    out-of-sample, e.g. from cross-validation) or, when it has none, stratified `folds`-fold
//!    cross-validation of the built-in classifier: multinomial logistic regression with L2
//!    penalty `C` (objective and L-BFGS cap as scikit-learn's, 100 iterations) on standardized
//!    features. Folds are seeded and fitted in parallel. `C` is chosen from
//!    [`C_GRID`] = 0.01, 0.1, 1, 10 by the out-of-fold log loss of the first fold (its path
//!    fitted with warm starts, as scikit-learn's `LogisticRegressionCV`, and stopped where the
//!    loss rises; the other folds then fit the chosen `C` alone: 8 fits at most instead of
//!    20, the whole CIFAR-10 embedding table's 6.5-8.0 s down to 3.6-3.9 s; then the rows'
//!    z-scores kept once and the two products with the data in vector kernels: 1.5 s), or
//!    fixed with [`ConfidentLearningParams::c`]. Noisy labels are what this detector looks for,
//!    and a weakly regularized model fits flipped labels in the folds that hold them: on the
//!    shipped label-flip sets the held-out log loss picks `C = 0.1` for wine and digits and
//!    `C = 1` for breast_cancer, and the ROC-AUC of the label-quality score rises against
//!    scikit-learn's default `C = 1` (see `benches/RESULTS.md`). Large tables: the
//!    cross-validation runs on a seeded class-stratified sample of `m` rows, `m` the larger of
//!    50,000 and `1.25 x 50 p` for `p = (d + 1) k` parameters (enough that each fold's fit is
//!    within about `p / 2m = 0.01` nats per row of the log loss of a fit on all rows), and
//!    every other row gets the mean probabilities of the fold models, which never saw it:
//!    out-of-sample like the others.
//! 2. Per-class thresholds `t_j` = mean `p(j)` over the rows labelled `j`.
//! 3. Confident joint `C[i][j]`: rows labelled `i` whose `p(j) >= t_j` (the largest such `p` when
//!    several pass), calibrated so that row `i` sums to the number of rows labelled `i` and the
//!    whole to `n`. This estimated noise matrix (given label x true label) is reported.
//! 4. `prune_by_noise_rate` (cleanlab's default filter): for every off-diagonal pair
//!    (given `i`, true `j`), the `C[i][j]` rows labelled `i` with the largest margin
//!    `p(j) - p(i)` are label issues; rows whose given label is the classifier's top prediction
//!    are then cleared.
//!
//! # Score
//! `1 - quality`, where quality is the chosen ranking score of the given label (cleanlab's
//! `get_label_quality_scores`: [`Ranking::SelfConfidence`] by default, also
//! [`Ranking::NormalizedMargin`] and [`Ranking::ConfidenceWeightedEntropy`]), plus 1 for the
//! label issues of step 4. So scores lie in [0, 2], higher = more suspicious, label issues rank
//! first and each group is ordered by quality. With the default [`ThresholdRule::Auto`] the
//! threshold is 1: exactly the label issues of step 4 are flagged, with no contamination rate.
//!
//! # P-value
//! The exact test of the given label under the out-of-sample probabilities `q`,
//! `sum_{c: q_c <= q_given} q_c`: valid when `q` is calibrated and a clean row's label is drawn
//! from it. Out-of-fold probabilities of a classifier fitted on hundreds of dimensions are
//! over-confident, and a linear classifier is over-confident far out in heavy tails, so `q` is
//! `(1 - eps) softmax(beta ln p) + eps / K`: temperature scaling (Guo et al. 2017) with a
//! uniform floor, `beta` and `eps` fitted by maximum likelihood of the given labels (a grid of
//! floors, a golden-section search of `beta` at each). On 3,000 real CIFAR-10 embeddings the
//! share of clean rows at p <= 0.01 was 7.9% at the raw probabilities (scikit-learn's `C = 1`
//! probe) and 0.2% calibrated (SVHN, held out: 0.0%); on Student t rows with 3 degrees of
//! freedom, temperature alone left 0.7% of the clean rows at p <= 0.001. Flipped labels raise
//! the temperature and the floor, which only makes the p-values conservative. The score, flags
//! and noise matrix use the raw probabilities, as cleanlab does.
//!
//! Class-level findings: per given label, `estimated_noise_rate` (off-diagonal share of its row
//! of the noise matrix, the score classes are ranked by) and `flagged_share`.
//!
//! # Reference
//! C. Northcutt, L. Jiang, I. Chuang. *Confident Learning: Estimating Uncertainty in Dataset
//! Labels.* Journal of Artificial Intelligence Research 70, 2021.

mod algorithm;
pub mod classifier;
mod cross_val;
mod kernels;
pub(crate) mod logistic;

pub use algorithm::ConfidentLearning;
#[cfg(feature = "linfa")]
pub use classifier::LinfaClassifier;
pub use classifier::{BoxError, ClassProbabilities, LogisticRegression, ProbabilisticClassifier};

use poisonguard_core::{ParamError, ParamGuard, ThresholdRule};

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

/// Checked hyperparameters of [`ConfidentLearning`].
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

/// Unchecked hyperparameters of [`ConfidentLearning`]; a consuming builder. `fit` checks them.
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

// linfa's `Fit` for the parameters and `PredictInplace` for the fitted detector (feature
// `linfa`).
#[cfg(feature = "linfa")]
poisonguard_core::linfa_estimator!(fit: ConfidentLearningParams, ConfidentLearningValidParams);
#[cfg(feature = "linfa")]
poisonguard_core::linfa_estimator!(predict: ConfidentLearning);
