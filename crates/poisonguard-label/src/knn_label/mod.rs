//! Deep k-NN label disagreement (Peri et al. 2020).
//!
//! # Algorithm
//! 1. Standardize every feature column (z-scores) when the columns carry units of their own, so
//!    that no feature wins the distance by its unit alone (on `tabular/wine` the raw features
//!    make a k-NN vote wrong on 26% of clean rows, the standardized ones on 2%); features that
//!    share one unit (pixels, embeddings: [`poisonguard_core::shares_one_unit`]) are searched as
//!    given. Z-scores of pixels lift a corner that is almost always blank to the weight of the
//!    strokes: on 2,400 real MNIST digits with a BadNets patch on 5% of one class (relabelled
//!    rows of other classes), the 15-NN vote ranks the poison at ROC-AUC 0.54-0.68 on z-scores
//!    and 0.98-0.99 as given, because the patched rows find each other; on the real CIFAR-10 and
//!    SVHN embeddings with 10% random flips it is 0.005-0.02 better as given, on `digits` the
//!    same. `standardize(true)` / `standardize(false)` decide it for every table.
//! 2. Find each row's `k` nearest neighbours (exact, self excluded, ties by index).
//! 3. Count the neighbours' labels. The paper removes a row when the most common label among
//!    them (the plurality) is another class. We ask in addition that the plurality outvotes the
//!    row's own label significantly: a one-sided sign test of `b` plurality votes against `a`
//!    own votes, `p = P(X >= b)` with `X ~ Binomial(a + b, 1/2)`, at level
//!    [`SIGN_TEST_ALPHA`] = 0.05. A 4-to-3 vote in the overlap of two classes is a coin flip, not
//!    evidence: the plain plurality rule flagged 3.4% of clean `wine`, 3.5% of clean
//!    `breast_cancer` and 2.6% of clean `digits`; the test flags 0.6%, 1.4% and 0.7% with the
//!    same ranking (ROC-AUC on 10% flips 0.993, 0.972, 0.998 either way).
//!
//! `k` defaults to the square root of the smallest class's size (the classic `sqrt(n)` rule
//! for k-NN, applied per class as the paper ties `k` to the class sizes), clamped to
//! [`MIN_AUTO_K`, `MAX_AUTO_K`]: at least a few votes, and beyond fifty votes the vote share's
//! standard error is under 7% while the search cost keeps growing.
//!
//! # Score
//! `-log10 p` of the sign test, >= 0, higher = more suspicious (0 when no neighbour carries another
//! label). With the default [`ThresholdRule::Auto`](poisonguard_core::ThresholdRule::Auto) rows are
//! flagged when `p < 0.05` (score above 1.30); any other rule applies to the score.
//!
//! # P-value
//! The sign test asks whether another label beats the row's own, as if a clean row's label were
//! a coin flip against its plurality's; on a table whose classes overlap naturally a clean row
//! deep in another class's region is outvoted as plainly as a flipped one (on the real CIFAR-10
//! embeddings of `shared/datasets/real-embeddings/` its p-value was <= 0.001 on 4.1% of the
//! clean rows). The p-value the audit combines is therefore not the sign test's but
//! `p = P(X <= own votes)`, where `X` follows the table's own agreement law: a beta-binomial
//! over `k` votes (mean agreement and intra-neighbourhood correlation `rho`) fitted by maximum
//! likelihood to the rows whose own label holds more than 15% of their votes, truncated there.
//! This is Efron's empirical null fitted where the null dominates: a flipped or injected label
//! sits among neighbours of another class and holds a few of their votes at most, so the rows
//! below the cut (the second group of a two-group model) do not widen the law they are tested
//! against, while everything above it, the natural overlap of the classes included, shapes the
//! law's lower tail. A law fitted to the rows that hold at least half of their votes (the
//! previous rule) was far too thin there on real embeddings. One law for the table: per-class
//! laws were measured and not kept (a class that received many flips fits a law too wide to
//! test them; see benches/RESULTS.md). The score and threshold stay the sign test's: they rank
//! and flag rows for the detector alone.
//!
//! # With trusted rows
//! Given rows known to be clean (a vetted sample of the table, [`KnnLabelParams::trusted`]),
//! the agreement law of every class with at least [`MIN_CLASS_TRUSTED_ROWS`] trusted rows is
//! *measured* on them instead of fitted to the table: one correlation `rho` over the trusted
//! rows of those classes and one mean agreement per class, by maximum likelihood, then made
//! conservative for their sampling error (each mean lowered by two standard errors, `rho` the
//! upper end of its 95% profile-likelihood interval). A row's p-value is the lower tail of its
//! own votes among its `k` nearest rows of the table under its class's law, and never below its
//! conformal p-value among the class's `m` trusted rows, `(1 + #{trusted rows with at most as
//! many own votes}) / (m + 1)` (Bates, Candes, Lei, Romano and Sesia, *Testing for outliers
//! with conformal p-values*, Annals of Statistics 2023): exact for a clean row whatever the
//! shape of the class's lower tail, which two parameters fitted to a few hundred rows miss
//! where classes overlap (benches/RESULTS.md, "a conformal floor"). A class with fewer trusted
//! rows keeps the table's law, and says so (its class finding's `trusted_rows`).
//!
//! Trusted rows are clean rows drawn from the table and voted on as every row is (flipped
//! neighbours included), so a clean row's votes and a trusted row's follow one law. What the
//! table's law cannot see is what a targeted flip does: 30% of a class relabelled into another
//! hold about 30% of their votes (they vote for each other), as rows in a natural overlap do,
//! and they widen the law of the class they joined; the trusted rows of that class show how
//! much its clean rows really agree. On the held-out SVHN embeddings (seeds 100-102) the
//! audit's ranking of such a flip rose from ROC-AUC 0.596 to 0.781 with 5% of the clean rows
//! trusted (the best single detector: 0.766; benches/RESULTS.md). It ranks them; it does not
//! yet flag them: their p-values stay near 0.01, where natural overlap also puts clean rows.
//!
//! The frame is that of conformal p-values (Bates, Candes, Lei, Romano and Sesia 2023, *Testing
//! for outliers with conformal p-values*): a null measured on clean rows exchangeable with the
//! clean rows tested. The law is a fitted beta-binomial, not the trusted rows' ranks: a rank
//! p-value cannot go below `1 / (m + 1)` for `m` trusted rows, and Benjamini-Hochberg over `n`
//! rows then flags nothing unless more than `n / (q (m + 1))` rows are poisoned (200 rows of
//! 3,000 with 5% trusted at q = 0.1). The margins are what keeps a fitted law valid: a plain
//! maximum-likelihood law of 75 trusted rows (25 per class) put 4.8% of a clean synthetic
//! table's rows at p <= 0.01, and with 25 rows per class the margins were not enough on one
//! seed of four (2.3%), hence the minimum of 30. A second vote, each row's among its nearest
//! *trusted* rows, was measured and not kept (it lowered the ranking of random flips).
//!
//! Class-level findings: per class, `contradicted_share` (share of its rows flagged, the score
//! classes are ranked by) and `mean_agreement` (mean share of neighbours agreeing with the
//! label). A class that received flipped labels shows both. With trusted rows, also
//! `trusted_rows` (how many the class had; a measured law from 30).
//!
//! # Reference
//! N. Peri, N. Gupta, W. R. Huang, L. Fowl, C. Zhu, S. Feizi, T. Goldstein, J. P. Dickerson.
//! *Deep k-NN Defense against Clean-label Data Poisoning Attacks.* ECCV 2020 Workshops.

mod algorithm;

pub use algorithm::KnnLabel;
mod hyperparams;
pub use hyperparams::{
    KnnLabelParams, KnnLabelValidParams, MAX_AUTO_K, MIN_AUTO_K, MIN_CLASS_TRUSTED_ROWS,
    SIGN_TEST_ALPHA,
};

// linfa's `Fit` for the parameters and `PredictInplace` for the fitted detector (feature
// `linfa`).
#[cfg(feature = "linfa")]
poisonguard_core::linfa_estimator!(fit: KnnLabelParams, KnnLabelValidParams);
#[cfg(feature = "linfa")]
poisonguard_core::linfa_estimator!(predict: KnnLabel);
