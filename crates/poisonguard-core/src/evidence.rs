//! Calibrated evidence: how a detector's scores become p-values ([`Calibration`]), and how the
//! p-values of several detectors become one verdict per row ([`harmonic_mean_p`],
//! [`benjamini_hochberg`]).
//!
//! A row's p-value answers "how surprising is this score if the row is clean": small = strong
//! evidence. Every detector states the null its p-values refer to (its [`Calibration`]); a
//! detector that cannot calibrate a row (a class it left unscored, a class its class-level test
//! did not declare attacked) gives it p = 1, never NaN.

use crate::threshold::{ScoreNull, quantile_sorted};

/// The last quantile of the training scores that a [`TailFit`] reads empirically; beyond it the
/// fitted generalized Pareto tail takes over. The 90th percentile, so up to 10% of rows can be
/// poisoned (and score anywhere above it) without moving the fit.
pub const TAIL_QUANTILE: f64 = 0.9;

/// Quantiles of the training scores a [`TailFit`] keeps: 0.500, 0.525, ..., 0.900
/// (the survival between two of them is interpolated, so a body p-value is off by less than
/// 0.025; the small p-values beyond them come from the fitted tail).
pub const TAIL_KNOTS: usize = 17;

/// A robust, semi-parametric null fitted on training scores. Up to the [`TAIL_QUANTILE`]
/// quantile `q` of the training scores, the p-value is the share of training scores at or
/// above the score (read off [`TAIL_KNOTS`] quantiles between the median and `q`, linearly
/// interpolated; 1 below the median). Beyond `q` the tail is a generalized Pareto law,
/// `p = 0.1 * (1 + xi (score - q) / scale)^(-1 / xi)` (exponential,
/// `0.1 * exp(-(score - q) / scale)`, at `xi = 0`), its shape and scale read off the quantiles
/// at 0.5, 0.75 and 0.875 by Pickands' estimator (Pickands 1975), with `xi` clamped at 0:
/// lighter-than-exponential tails are read as exponential (conservative), heavier ones keep
/// their weight. So the natural outliers of a clean table get p ~ 1/n, not p ~ 0, and rows far
/// beyond the clean tail get tiny p. Fitted on quantiles up to the 90th only, it is moved by no
/// more than 10% poisoned rows.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq)]
pub struct TailFit {
    /// The training scores' quantiles at 0.500, 0.525, ..., 0.900.
    pub knots: [f64; TAIL_KNOTS],
    /// Shape of the tail beyond the last knot, >= 0.
    pub xi: f64,
    /// Scale of the tail beyond the last knot (0 when no training score exceeds the median:
    /// then any larger score has p = 0).
    pub scale: f64,
}

impl TailFit {
    /// Fits the tail on `scores` (non-finite scores ignored).
    pub fn fit(scores: &[f64]) -> Self {
        let mut sorted: Vec<f64> = scores.iter().copied().filter(|s| s.is_finite()).collect();
        if sorted.is_empty() {
            return TailFit { knots: [0.0; TAIL_KNOTS], xi: 0.0, scale: 0.0 };
        }
        sorted.sort_by(f64::total_cmp);
        let mut knots = [0.0; TAIL_KNOTS];
        for (k, v) in knots.iter_mut().enumerate() {
            *v = quantile_sorted(&sorted, knot_level(k));
        }
        let q = |level: f64| quantile_sorted(&sorted, level);
        let (q50, q75, q875) = (q(0.5), q(0.75), q(0.875));
        let (xi, scale_at_median) = if q75 > q50 {
            // Pickands: each halving of the survival from 0.5 adds a gap 2^xi times the last
            let ratio = (q875 - q75) / (q75 - q50);
            let xi = if ratio > 0.0 { ratio.log2().max(0.0) } else { 0.0 };
            let scale = if xi > 1e-9 {
                xi * (q75 - q50) / (2f64.powf(xi) - 1.0)
            } else {
                (q75 - q50) / std::f64::consts::LN_2
            };
            (xi, scale)
        } else {
            // more than a quarter of the scores tie at the median (e.g. most rows in no
            // duplicate group): an exponential tail through the first higher quantile that
            // differs, or through the first score above the median
            let above = [0.9, 0.95, 0.99, 0.999]
                .into_iter()
                .map(|level| (q(level), 1.0 - level))
                .find(|&(v, _)| v > q50)
                .or_else(|| {
                    sorted.iter().find(|&&s| s > q50).map(|&next| {
                        let n_above = sorted.iter().filter(|&&s| s >= next).count();
                        (next, n_above as f64 / sorted.len() as f64)
                    })
                });
            match above {
                Some((v, share)) => (0.0, (v - q50) / (0.5 / share).ln().max(f64::MIN_POSITIVE)),
                None => (0.0, 0.0),
            }
        };
        // exceedances over the last knot: the same shape, the scale grown by xi per unit
        let scale = scale_at_median + xi * (knots[TAIL_KNOTS - 1] - q50);
        TailFit { knots, xi, scale }
    }

    /// The p-value of one score.
    pub fn p_value(&self, score: f64) -> f64 {
        let knots = &self.knots;
        let last = knots[TAIL_KNOTS - 1];
        if score <= knots[0] {
            return 1.0;
        }
        if score > last {
            let excess = score - last;
            let survival = if self.scale <= 0.0 {
                0.0
            } else if self.xi > 1e-9 {
                (1.0 + self.xi * excess / self.scale).powf(-1.0 / self.xi)
            } else {
                (-excess / self.scale).exp()
            };
            return (1.0 - TAIL_QUANTILE) * survival;
        }
        // the last knot below the score, then the survival read between it and the next
        let k = knots.partition_point(|&v| v < score).saturating_sub(1);
        let next = (k + 1).min(TAIL_KNOTS - 1);
        let (lo, hi) = (knots[k], knots[next]);
        let (s_lo, s_hi) = (1.0 - knot_level(k), 1.0 - knot_level(next));
        if hi > lo { s_lo + (s_hi - s_lo) * (score - lo) / (hi - lo) } else { s_hi }
    }
}

/// The null distribution a detector's p-values refer to, fitted on its training scores.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Calibration {
    /// The score is `scale` times a chi-square variable with `dof` degrees of freedom:
    /// `p = P(chi2(dof) > score / scale)`. `scale` >= 1 is the ratio of the median score to the
    /// null's median when the scores are inflated against the model, else 1 (as
    /// [`crate::ThresholdRule::Auto`] does for its threshold). Guarding it by the scores' own
    /// tail (the larger of the two p-values) was measured and not kept: on the grid it cost
    /// backdoor recall (digits BadNets 1.00 -> 0.82, clean-label 0.26 -> 0) and did not quiet
    /// the one clean table the law over-flags (a 2% sub-population of breast_cancer embeddings,
    /// which its Pareto extrapolation also calls far).
    ChiSquared {
        /// Degrees of freedom, > 0.
        dof: f64,
        /// Inflation of the scores over the null, >= 1.
        scale: f64,
    },
    /// The score is already `-log10 p` of the detector's own test (knn_label's sign test):
    /// `p = 10^-score`.
    NegLog10,
    /// The robust tail of the training scores ([`TailFit`]), for scores with no theory
    /// (outlier scores).
    Tail(TailFit),
    /// The p-values were given by the detector row by row (its own test, or a class gate).
    Given,
}

impl Calibration {
    /// Fits the calibration of `scores`: the detector's stated `null` (with its inflation), or
    /// [`Calibration::Tail`] when it states none.
    ///
    /// ```
    /// use poisonguard_core::{Calibration, ScoreNull};
    /// let clean: Vec<f64> = (0..1000).map(|i| (i as f64 / 1000.0)).collect();
    /// let tail = Calibration::fit(None, &clean);
    /// assert!(tail.p_value(0.95) > 0.05 && tail.p_value(20.0) < 1e-20);
    /// let chi = Calibration::fit(Some(&ScoreNull::ChiSquared { dof: 1.0 }), &[0.1, 0.3, 2.0]);
    /// assert!((chi.p_value(3.841_458_8) - 0.05).abs() < 1e-6);
    /// ```
    pub fn fit(null: Option<&ScoreNull>, scores: &[f64]) -> Self {
        match null {
            Some(&ScoreNull::ChiSquared { dof }) => {
                let mut sorted: Vec<f64> =
                    scores.iter().copied().filter(|s| s.is_finite()).collect();
                sorted.sort_by(f64::total_cmp);
                let median = if sorted.is_empty() { 0.0 } else { quantile_sorted(&sorted, 0.5) };
                let null_median = ScoreNull::ChiSquared { dof }.upper_quantile(0.5);
                let scale = (median / null_median).max(1.0);
                Calibration::ChiSquared { dof, scale }
            }
            None => Self::tail(scores),
        }
    }

    /// [`Calibration::Tail`] fitted on `scores` (non-finite scores ignored).
    pub fn tail(scores: &[f64]) -> Self {
        Calibration::Tail(TailFit::fit(scores))
    }

    /// The p-value of one score, in [0, 1]; 1 for a NaN score.
    pub fn p_value(&self, score: f64) -> f64 {
        use statrs::distribution::{ChiSquared, ContinuousCDF};
        if score.is_nan() {
            return 1.0;
        }
        let p = match *self {
            Calibration::ChiSquared { dof, scale } => match ChiSquared::new(dof) {
                Ok(d) if score > 0.0 => d.sf(score / scale),
                _ => 1.0,
            },
            Calibration::NegLog10 => 10f64.powf(-score),
            Calibration::Tail(ref tail) => tail.p_value(score),
            Calibration::Given => 1.0,
        };
        p.clamp(0.0, 1.0)
    }
}

/// The quantile level of knot `k` of a [`TailFit`].
fn knot_level(k: usize) -> f64 {
    0.5 + (TAIL_QUANTILE - 0.5) * k as f64 / (TAIL_KNOTS - 1) as f64
}

/// The weighted harmonic mean p-value (Wilson, *The harmonic mean p-value for combining
/// dependent tests*, PNAS 2019): `(sum_i w_i) / (sum_i w_i / p_i)`, weights summing to 1.
/// One very small p-value dominates the sum, so one strong, specific piece of evidence is not
/// drowned by many weak ones (with `m` equal weights the combined p is at most `m` times the
/// smallest, a Bonferroni bound valid under any dependence), while several moderate p-values
/// that agree combine to a smaller one. A p = 1 term (no evidence: a gated class, a row below a
/// detector's median) adds only its weight to the denominator. For small values the HMP is
/// close to an exact test under the dependence that arises between detectors reading the same
/// rows (Wilson 2019, Fig. 1); the Cauchy combination test (Liu & Xie 2020), the other
/// candidate, was not chosen because one p = 1 term sends its statistic to minus infinity, and
/// p = 1 is how our detectors say "no evidence".
///
/// `p` and `w` have equal lengths; p-values are clamped to [1e-300, 1]. Returns 1 for no
/// p-values.
///
/// ```
/// use poisonguard_core::harmonic_mean_p;
/// let w = [1.0 / 3.0; 3];
/// assert!((harmonic_mean_p(&[0.5, 0.5, 0.5], &w) - 0.5).abs() < 1e-12);
/// let one_strong = harmonic_mean_p(&[1e-12, 1.0, 1.0], &w);
/// assert!(one_strong < 3.1e-12 && one_strong > 1e-12);
/// ```
pub fn harmonic_mean_p(p: &[f64], w: &[f64]) -> f64 {
    debug_assert_eq!(p.len(), w.len());
    let total: f64 = w.iter().sum();
    if p.is_empty() || total <= 0.0 {
        return 1.0;
    }
    let inv: f64 = p
        .iter()
        .zip(w)
        .map(|(&p, &w)| w / if p.is_nan() { 1.0 } else { p.clamp(1e-300, 1.0) })
        .sum();
    (total / inv).clamp(0.0, 1.0)
}

/// The rows the Benjamini-Hochberg step-up procedure selects at false-discovery rate `q`
/// (Benjamini & Hochberg, 1995): with the p-values sorted ascending, the largest `k` with
/// `p_(k) <= q k / n`, and every row with `p <= p_(k)`. Among the selected rows, the expected
/// share of true nulls is at most `q` under independence or positive dependence (PRDS).
///
/// ```
/// use poisonguard_core::benjamini_hochberg;
/// let p = [0.001, 0.9, 0.012, 0.04, 0.5];
/// // sorted: 0.001 <= 0.01, 0.012 <= 0.02, 0.04 > 0.03, 0.5 > 0.04, 0.9 > 0.05
/// assert_eq!(benjamini_hochberg(&p, 0.05), vec![true, false, true, false, false]);
/// ```
pub fn benjamini_hochberg(p: &[f64], q: f64) -> Vec<bool> {
    let n = p.len();
    let mut sorted: Vec<f64> = p.iter().map(|&v| if v.is_nan() { 1.0 } else { v }).collect();
    sorted.sort_by(f64::total_cmp);
    let cut = sorted
        .iter()
        .enumerate()
        .filter(|&(k, &v)| v <= q * (k + 1) as f64 / n as f64)
        .map(|(_, &v)| v)
        .next_back();
    match cut {
        Some(cut) => p.iter().map(|&v| v <= cut).collect(),
        None => vec![false; n],
    }
}

/// The displayed suspicion of a combined p-value, in [0, 1): `L / (L + 1)` with
/// `L = -log10 p`, strictly decreasing in `p` (so it ranks rows as `p` does, without the ties
/// that `1 - p` has below 1e-16): 0 at p = 1, 0.5 at p = 0.1, 0.75 at p = 0.001, 0.9 at
/// p = 1e-9.
pub fn suspicion_of(p: f64) -> f64 {
    let l = -p.clamp(f64::MIN_POSITIVE, 1.0).log10();
    l / (l + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_is_robust_and_conservative_below_the_median() {
        // 1000 clean rows uniform on [0, 1): median 0.5, q90 0.9
        let mut scores: Vec<f64> = (0..1000).map(|i| i as f64 / 1000.0).collect();
        let clean = Calibration::tail(&scores);
        // 10% far outliers move nothing below the 90th percentile
        for s in scores.iter_mut().take(100) {
            *s += 100.0;
        }
        let Calibration::Tail(TailFit { knots, xi, scale }) = clean else { panic!() };
        assert!((knots[0] - 0.4995).abs() < 1e-9);
        // uniform scores have a light (bounded) tail: read as exponential
        assert_eq!(xi, 0.0);
        assert!((scale - 0.25 / std::f64::consts::LN_2).abs() < 1e-3, "{scale}");
        // the empirical survival up to the 90th percentile: a score at the 75th has p ~ 0.25
        assert!((clean.p_value(0.7495) - 0.25).abs() < 1e-3, "{}", clean.p_value(0.7495));
        assert_eq!(clean.p_value(0.0), 1.0);
        assert!(clean.p_value(100.0) < 1e-100);
        // 10% far outliers make the body's p-values larger (conservative) by at most 0.1
        let poisoned = Calibration::tail(&scores);
        let shift = poisoned.p_value(0.7) - clean.p_value(0.7);
        assert!((0.0..=0.101).contains(&shift), "{shift}");
        // most rows tied at 0 (no duplicate group): the slope comes from a higher quantile
        let mut ties = vec![0.0; 990];
        ties.extend([1.0; 10]);
        let t = Calibration::tail(&ties);
        assert!(t.p_value(0.0) == 1.0 && t.p_value(1.0) > 0.0 && t.p_value(1.0) < 0.02);
        assert!(t.p_value(30.0) < 1e-30);
        // an exponential law: the tail's shape is ~0 and p-values match its survival
        let expo: Vec<f64> = (1..10_000).map(|i| -(1.0 - i as f64 / 10_000.0).ln()).collect();
        let e = Calibration::tail(&expo);
        assert!((e.p_value(5.0) - (-5.0f64).exp()).abs() < 2e-4, "{}", e.p_value(5.0));
        // a Pareto law (survival x^-2): a heavy tail keeps its weight
        let pareto: Vec<f64> =
            (1..10_000).map(|i| (1.0 - i as f64 / 10_000.0).powf(-0.5)).collect();
        let h = Calibration::tail(&pareto);
        assert!((h.p_value(30.0) / (1.0 / 900.0) - 1.0).abs() < 0.2, "{}", h.p_value(30.0));
        // all equal: nothing above the median in training; new higher scores get p = 0
        let t = Calibration::tail(&[2.0; 5]);
        assert_eq!((t.p_value(2.0), t.p_value(3.0)), (1.0, 0.0));
    }

    #[test]
    fn chi_squared_p_values_and_inflation() {
        let null = ScoreNull::ChiSquared { dof: 1.0 };
        let c = Calibration::fit(Some(&null), &[0.1, 0.2, 3.0]);
        assert_eq!(c, Calibration::ChiSquared { dof: 1.0, scale: 1.0 });
        assert!((c.p_value(6.634_896_6) - 0.01).abs() < 1e-8);
        assert_eq!(c.p_value(0.0), 1.0);
        // median 2 x the null's: scores are read at half their value
        let med = null.upper_quantile(0.5);
        let c = Calibration::fit(Some(&null), &[0.0, 2.0 * med, 9.0]);
        assert!((c.p_value(2.0 * 6.634_896_6) - 0.01).abs() < 1e-8);
        assert!((Calibration::NegLog10.p_value(2.0) - 0.01).abs() < 1e-15);
        assert_eq!(Calibration::NegLog10.p_value(f64::NAN), 1.0);
    }

    #[test]
    fn hmp_is_exact_for_one_p_value_and_lets_a_strong_one_through() {
        for p in [1e-200, 1e-20, 1e-5, 0.01, 0.3, 0.7, 1.0] {
            let c = harmonic_mean_p(&[p], &[1.0]);
            assert!((c - p).abs() <= 1e-12 * p, "{p} -> {c}");
        }
        // equal p-values combine to themselves
        assert!((harmonic_mean_p(&[0.02; 4], &[0.25; 4]) - 0.02).abs() < 1e-12);
        // one strong among four no-evidence terms: at most 5x the smallest
        let c = harmonic_mean_p(&[1e-10, 1.0, 1.0, 1.0, 1.0], &[0.2; 5]);
        assert!(c > 1e-10 && c <= 5e-10, "{c}");
        // agreeing moderate evidence is stronger than its parts' Bonferroni bound
        assert!(harmonic_mean_p(&[0.01; 3], &[1.0 / 3.0; 3]) < 0.03);
        assert_eq!(harmonic_mean_p(&[], &[]), 1.0);
    }

    #[test]
    fn bh_selects_the_step_up_set() {
        assert_eq!(benjamini_hochberg(&[0.2, 0.3], 0.05), vec![false, false]);
        // 0.03 > 0.05 * 1/2 but the step-up takes p_(2) = 0.04 <= 0.05
        assert_eq!(benjamini_hochberg(&[0.04, 0.03], 0.05), vec![true, true]);
        assert_eq!(benjamini_hochberg(&[f64::NAN, 0.0], 0.05), vec![false, true]);
        assert!(benjamini_hochberg(&[], 0.05).is_empty());
    }

    #[test]
    fn suspicion_is_monotone() {
        assert_eq!(suspicion_of(1.0), 0.0);
        assert!((suspicion_of(0.1) - 0.5).abs() < 1e-12);
        assert!(suspicion_of(1e-20) < suspicion_of(1e-21));
        assert!(suspicion_of(0.0) < 1.0);
    }
}
