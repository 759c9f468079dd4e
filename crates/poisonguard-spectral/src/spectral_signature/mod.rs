//! Spectral signatures (Tran, Li & Madry, NeurIPS 2018).
//!
//! # Algorithm
//! For every class `c` (classes in parallel):
//! 1. centre the class's rows: `x_i - mu_c` (mean accumulated in f64);
//! 2. find the top right singular vector `v_c` of the centred class matrix, i.e. the top
//!    eigenvector of its covariance. When `min(rows, features) <= 128` this is an exact symmetric
//!    eigendecomposition of the smaller of the covariance and Gram matrices; above that a seeded
//!    block subspace iteration (block 8, Rayleigh-Ritz) stops when the top two eigenvalues are
//!    stable to `tol`, never forming a full SVD;
//! 3. project: `p_i = <x_i - mu_c, v_c>`; the paper's score is `p_i^2`.
//!
//! Backdoored rows form a small sub-population that is shifted along one direction, which then
//! dominates the top singular vector: their squared projections are the largest of the class.
//!
//! # Score
//! `p_i^2 / s_c^2`, higher = more suspicious, >= 0. Dividing by the class's robust variance along
//! `v_c`, `s_c^2 = median_i(p_i^2) / 0.4549` (the median of a chi-square with one degree of
//! freedom), keeps the paper's ranking within each class and makes scores comparable across
//! classes: a clean, roughly Gaussian class scores like a chi-square(1). Classes with fewer than
//! three rows score 0.
//!
//! The reference code (MadryLab/backdoor_data_poisoning) scores `|<x, v>|` of the *uncentred*
//! row instead; [`SignatureScore::Reference`] offers it (in units of the robust sd, no stated
//! null). It is not the default: it adds the class mean's projection `<mu, v>` to every row, so
//! it ranks by the signed projection and misses poisons on the side opposite the mean. Measured
//! on planted BadNets / blend / two-trigger poisons in `digits` (`examples/spectral_sweep`, 3
//! seeds), recall in the target class at 1.5x the poison count 0.00-0.57 against 0.00-1.00 for
//! the centred score (ROC-AUC 0.18-0.76 against 0.60-1.00).
//!
//! Threshold: the default [`ThresholdRule::Auto`](poisonguard_core::ThresholdRule::Auto) uses
//! that chi-square(1) null and flags above its 99% quantile (6.63, |projection| > 2.58 robust
//! sd): about 1% of the rows of a clean Gaussian class, whatever the poison rate.
//!
//! P-value (centred score), two tests, the larger p-value of the two (each valid, so their
//! maximum is):
//! 1. **The law**: `P(chi2(1) > score / t_c)`, where `t_c` >= 1 is how much heavier the tail of
//!    the *other* classes' scores is than the law's: their 99% quantile over 6.63, never below 1.
//!    Embeddings are often not Gaussian along a class's top direction (ReLU units: 2-3% of a
//!    clean breast_cancer class's hidden-layer rows lie beyond the law's 99% quantile). The tail
//!    is read off the other classes, which share the representation, because a class's
//!    backdoored rows sit in its own tail and would widen its own law.
//! 2. **The group**: the paper's premise is that the poison is a *sub-population*, so a row
//!    is evidence only together with the rows at least as far out. For each group size `r` in
//!    1, 2, 3, 4, 6, 8, 11, ... (about 1.41x apart) up to the class's `n_c` rows, with `s_(r)`
//!    the class's `r`-th largest score and `F = (1 + #{other classes' scores >= s_(r)}) / (N + 1)`
//!    their conformal tail there, `q_r = P(Binomial(n_c, F) >= r)`; a row ranked `rho` in its
//!    class gets `min(1, m min(q'_rho, min_{r >= rho} q_r))`, Bonferroni over the `m` sizes,
//!    where `q'_rho` is the test of the largest size `r <= rho` at the row's own score (a row
//!    between two sizes is one of that many rows at least as far out). A lone row far
//!    out (clean digits embeddings have single rows 16-19 robust sd out along their class's top
//!    direction, p ~ 1e-50 under the law) is as surprising as the other classes' own lone far
//!    rows say (`F >= 1 / (N + 1)`): no evidence; nine backdoored rows 7-10 sd out where the
//!    other classes have a handful get `q_9` ~ 1e-6. A class alone (no other class fitted) keeps
//!    the law.
//!
//! Poison spread over every class (injected outliers) widens every class's tail and is no group
//! against the others: those rows are the outlier detectors' to find. New rows
//! ([`poisonguard_core::FittedDetector::detect`]) get their class's law alone, row by row: a
//! row's p-value must not depend on the batch it comes in (the batched audit scores a table
//! larger than memory batch by batch; a group test over each batch's rows broke that, measured
//! by `tests/batched.rs`). Measured on the scenario grid (benches/RESULTS.md, "A lone far row is no
//! sub-population", seeds 0-2): 90% subsamples of the clean tables, raw and in the hidden layer
//! of a network trained on each, worst 0.78% -> 0.56% of rows flagged (held-out seeds 100-102:
//! 2.15% -> 0.62%), flagged precision 0.816 -> 0.840, recall 0.809 -> 0.793 (injected outliers
//! spread over every class and backdoors of two to four rows lose their flags).
//! [`SignatureScore::Reference`] has no stated null: its p-values come from the robust tail of
//! its training scores.
//!
//! Class-level findings: `top_eigenvalue` (lambda_1), `second_eigenvalue`, `spectral_ratio`
//! (lambda_1 / lambda_2, the gap a planted direction opens) and `explained_variance`
//! (lambda_1 / trace). Classes are ranked by `spectral_ratio`.
//!
//! Fitted on shards (`SpectralSignatureValidParams::fit_shards`), each class's count, mean and
//! co-moment matrix merge over the shards and a second pass projects the rows: the result equals
//! the fit on all rows up to rounding (to the subspace iteration's tolerance where the fit on all
//! rows iterates).
//!
//! # References
//! B. Tran, J. Li, A. Madry. *Spectral Signatures in Backdoor Attacks.* NeurIPS 2018.

mod algorithm;
mod hyperparams;

pub use algorithm::SpectralSignature;
pub use hyperparams::{
    DEFAULT_MAX_ITER, DEFAULT_TOL, SignatureScore, SpectralSignatureParams,
    SpectralSignatureValidParams,
};

// linfa's `Fit` for the parameters and `PredictInplace` for the fitted detector (feature
// `linfa`).
#[cfg(feature = "linfa")]
poisonguard_core::linfa_estimator!(fit: SpectralSignatureParams, SpectralSignatureValidParams);
#[cfg(feature = "linfa")]
poisonguard_core::linfa_estimator!(predict: SpectralSignature);
