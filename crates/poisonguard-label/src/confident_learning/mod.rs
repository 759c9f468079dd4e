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
//! [`Ranking::NormalizedMargin`] and [`Ranking::ConfidenceWeightedEntropy`]), plus 1 for the label
//! issues of step 4. So scores lie in [0, 2], higher = more suspicious, label issues rank first and
//! each group is ordered by quality. With the default
//! [`ThresholdRule::Auto`](poisonguard_core::ThresholdRule::Auto) the threshold is 1: exactly the
//! label issues of step 4 are flagged, with no contamination rate.
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
mod calibration;
pub mod classifier;
mod cross_val;
mod kernels;
pub(crate) mod logistic;

pub use algorithm::ConfidentLearning;
#[cfg(feature = "linfa")]
pub use classifier::LinfaClassifier;
pub use classifier::{BoxError, ClassProbabilities, LogisticRegression, ProbabilisticClassifier};
mod hyperparams;
pub use hyperparams::{C_GRID, ConfidentLearningParams, ConfidentLearningValidParams, Ranking};

// linfa's `Fit` for the parameters and `PredictInplace` for the fitted detector (feature
// `linfa`).
#[cfg(feature = "linfa")]
poisonguard_core::linfa_estimator!(fit: ConfidentLearningParams, ConfidentLearningValidParams);
#[cfg(feature = "linfa")]
poisonguard_core::linfa_estimator!(predict: ConfidentLearning);
