//! [`ThresholdRule`]: how a detector's scores become flags. Written once, here.

use crate::error::{DataError, ParamError};

/// Cut-off of the modified z-score used by [`ThresholdRule::Auto`] (Iglewicz & Hoaglin, 1993).
pub const AUTO_ROBUST_Z: f64 = 3.5;
/// Per-row false-flag rate of [`ThresholdRule::Auto`] for detectors that state a [`ScoreNull`].
pub const AUTO_ALPHA: f64 = 0.01;

/// A threshold fitted by a [`ThresholdRule`] on a detector's scores: rows scoring above it are
/// flagged. Only the rules build one, so every threshold a [`Detection`](crate::Detection)
/// applies was fitted here, in core; a detector declares its rule (its `Auto`, or the user's),
/// never a number. [`Detection::fitted_threshold`](crate::Detection::fitted_threshold) hands the
/// training threshold back for scoring new rows against the fit.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq)]
#[serde(transparent)]
pub struct FittedThreshold(pub(crate) f64);

impl FittedThreshold {
    /// The threshold's value.
    pub fn value(self) -> f64 {
        self.0
    }
}

/// The distribution a detector's score follows on clean rows under the detector's model, when
/// the detector can state one. [`ThresholdRule::Auto`] then flags at its upper
/// `1 - AUTO_ALPHA` quantile instead of using the robust z-score.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum ScoreNull {
    /// Chi-square with `dof` degrees of freedom: squared standardized distances or projections
    /// of Gaussian data.
    ChiSquared {
        /// Degrees of freedom, > 0.
        dof: f64,
    },
}

impl ScoreNull {
    /// The upper `1 - alpha` quantile of the distribution.
    pub fn upper_quantile(&self, alpha: f64) -> f64 {
        use statrs::distribution::{ChiSquared, ContinuousCDF};
        match *self {
            // `ChiSquared::new` fails only for dof <= 0 or NaN; detectors pass a positive count.
            ScoreNull::ChiSquared { dof } => {
                ChiSquared::new(dof).map(|d| d.inverse_cdf(1.0 - alpha)).unwrap_or(f64::INFINITY)
            }
        }
    }
}

/// Consistency constant that makes the MAD estimate the standard deviation of a normal sample.
const MAD_TO_SD: f64 = 1.482_602_218_505_602;
/// Consistency constant that makes the mean absolute deviation estimate a normal sd (sqrt(pi/2)).
const MEANAD_TO_SD: f64 = 1.253_314_137_315_500_3;

/// How a score threshold is fitted on a detector's training scores. Rows whose score is
/// strictly greater than the threshold are flagged.
///
/// The default, [`ThresholdRule::Auto`], needs no guess of the contamination rate.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub enum ThresholdRule {
    /// The automatic rule. For a detector that states the null distribution of its score
    /// ([`ScoreNull`]), its upper `1 - AUTO_ALPHA` = 99% quantile: about 1% of rows that fit the
    /// detector's model of clean data are flagged, whatever the poison rate. When the median
    /// score exceeds the null's median (the scores are inflated against the model, e.g. robust
    /// distances from a small sample), the quantile is multiplied by that ratio, never reduced.
    /// Otherwise the robust z-score with the cut-off [`AUTO_ROBUST_Z`] = 3.5:
    /// `median + 3.5 * 1.4826 * MAD`.
    ///
    /// The robust z-score rule is Iglewicz & Hoaglin's modified z-score rule (1993), which keeps a breakdown point of
    /// 50%: up to half of the rows can be poisoned without moving the threshold arbitrarily.
    /// When more than half of the scores are equal (MAD = 0) the mean absolute deviation from the
    /// median (times sqrt(pi/2)) replaces `1.4826 * MAD`; when all scores are equal nothing is
    /// flagged.
    #[default]
    Auto,
    /// The same robust z-score rule with a cut-off of your choice: `median + c * 1.4826 * MAD`.
    RobustZ {
        /// The cut-off `c`, > 0.
        c: f64,
    },
    /// Flag the given share of rows: the threshold is the `1 - f` quantile of the training scores
    /// (linear interpolation, as `numpy.percentile` and PyOD). `f` in (0, 0.5].
    Contamination(f64),
    /// A fixed threshold on the score scale of the detector.
    Fixed(f64),
    /// Tukey's fence: `Q3 + k * IQR`, with `k` > 0 (1.5 is Tukey's "outlier", 3 "far out").
    Tukey {
        /// The IQR multiplier `k`.
        iqr_multiplier: f64,
    },
}

impl ThresholdRule {
    /// The rule a detector fits: [`ThresholdRule::Auto`] as the detector declares it
    /// ([`DetectorInfo::auto`](crate::DetectorInfo::auto)): unchanged for
    /// [`AutoThreshold::Null`](crate::AutoThreshold::Null), [`ThresholdRule::Fixed`] at the
    /// declared cut-off, or at `fence` for [`AutoThreshold::Fence`](crate::AutoThreshold::Fence)
    /// (unchanged when the fit gives none). Any other rule is the user's and is returned as
    /// given.
    ///
    /// ```
    /// use poisonguard_core::{AutoThreshold, ThresholdRule};
    /// let auto = ThresholdRule::Auto;
    /// assert_eq!(auto.resolve(AutoThreshold::Fixed(1.0), None), ThresholdRule::Fixed(1.0));
    /// assert_eq!(auto.resolve(AutoThreshold::Fence, Some(4.5)), ThresholdRule::Fixed(4.5));
    /// assert_eq!(auto.resolve(AutoThreshold::Null, None), ThresholdRule::Auto);
    /// let mine = ThresholdRule::Contamination(0.1);
    /// assert_eq!(mine.resolve(AutoThreshold::Fixed(1.0), None), mine);
    /// ```
    pub fn resolve(self, auto: crate::AutoThreshold, fence: Option<f64>) -> ThresholdRule {
        use crate::AutoThreshold;
        match (self, auto) {
            (ThresholdRule::Auto, AutoThreshold::Fixed(cut)) => ThresholdRule::Fixed(cut),
            (ThresholdRule::Auto, AutoThreshold::Fence) => fence.map_or(self, ThresholdRule::Fixed),
            (rule, _) => rule,
        }
    }

    /// Checks the rule's parameter.
    ///
    /// # Errors
    /// [`ParamError::OutOfRange`] naming the parameter.
    pub fn check(&self) -> Result<(), ParamError> {
        let bad = |name, value, allowed| Err(ParamError::OutOfRange { name, value, allowed });
        match *self {
            ThresholdRule::Auto => Ok(()),
            ThresholdRule::RobustZ { c } if !(c.is_finite() && c > 0.0) => {
                bad("robust_z", c, "(0, inf)")
            }
            ThresholdRule::Contamination(f) if !(f > 0.0 && f <= 0.5) => {
                bad("contamination", f, "(0, 0.5]")
            }
            ThresholdRule::Fixed(x) if !x.is_finite() => bad("threshold", x, "finite"),
            ThresholdRule::Tukey { iqr_multiplier: k } if !(k.is_finite() && k > 0.0) => {
                bad("iqr_multiplier", k, "(0, inf)")
            }
            _ => Ok(()),
        }
    }

    /// Fits the threshold on training scores.
    ///
    /// # Errors
    /// [`DataError::NoRows`] for no scores, [`DataError::NonFiniteScore`] for a NaN or infinite
    /// score.
    ///
    /// # Example: the automatic rule ignores a far outlier
    /// ```
    /// use poisonguard_core::ThresholdRule;
    /// let scores = [1.0, 1.1, 0.9, 1.05, 0.95, 50.0];
    /// let t = ThresholdRule::Auto.fit(&scores)?.value();
    /// assert!(t > 1.1 && t < 50.0);
    /// # Ok::<(), poisonguard_core::DataError>(())
    /// ```
    pub fn fit(&self, scores: &[f64]) -> Result<FittedThreshold, DataError> {
        self.fit_with_null(scores, None)
    }

    /// Fits the threshold on training scores whose clean-row distribution is `null` (used only by
    /// [`ThresholdRule::Auto`]).
    ///
    /// # Errors
    /// [`DataError::NoRows`] for no scores, [`DataError::NonFiniteScore`] for a NaN or infinite
    /// score.
    ///
    /// # Example: a chi-square(1) null flags at its 99% quantile
    /// ```
    /// use poisonguard_core::{ScoreNull, ThresholdRule};
    /// let t = ThresholdRule::Auto.fit_with_null(&[0.1, 0.3, 2.0], Some(&ScoreNull::ChiSquared { dof: 1.0 }))?;
    /// assert!((t.value() - 6.6349).abs() < 1e-3);
    /// # Ok::<(), poisonguard_core::DataError>(())
    /// ```
    pub fn fit_with_null(
        &self,
        scores: &[f64],
        null: Option<&ScoreNull>,
    ) -> Result<FittedThreshold, DataError> {
        self.fit_value(scores, null).map(FittedThreshold)
    }

    /// Fits the threshold of a detector that gates rows by a class verdict: with
    /// [`ThresholdRule::Auto`], the `1 - AUTO_ALPHA` quantile of the scores of `reference` (the
    /// rows of the classes its verdict calls clean, sorted ascending; all scores when empty), and
    /// never below `null`'s own `1 - AUTO_ALPHA` quantile; any other rule as
    /// [`ThresholdRule::fit_with_null`] on `scores`.
    ///
    /// # Errors
    /// As [`ThresholdRule::fit_with_null`].
    pub fn fit_with_reference(
        &self,
        scores: &[f64],
        reference: &[f64],
        null: &ScoreNull,
    ) -> Result<FittedThreshold, DataError> {
        match self {
            // a non-finite reference score fails later, in `Detection::with_calibration`
            ThresholdRule::Auto => {
                let q = if reference.is_empty() {
                    check_finite(scores)?;
                    let mut sorted = scores.to_vec();
                    sorted.sort_by(f64::total_cmp);
                    quantile_sorted(&sorted, 1.0 - AUTO_ALPHA)
                } else {
                    quantile_sorted(reference, 1.0 - AUTO_ALPHA)
                };
                Ok(FittedThreshold(q.max(null.upper_quantile(AUTO_ALPHA))))
            }
            rule => rule.fit_with_null(scores, Some(null)),
        }
    }

    fn fit_value(&self, scores: &[f64], null: Option<&ScoreNull>) -> Result<f64, DataError> {
        if scores.is_empty() {
            return Err(DataError::NoRows);
        }
        check_finite(scores)?;
        let mut sorted = scores.to_vec();
        sorted.sort_by(f64::total_cmp);
        Ok(match *self {
            ThresholdRule::Auto => match null {
                // The null's scale is checked against the bulk of the data: when the median score
                // exceeds the null's median (e.g. robust distances inflated by a small sample), the
                // quantile is scaled up by that ratio; never down.
                Some(null) => {
                    let inflation = quantile_sorted(&sorted, 0.5) / null.upper_quantile(0.5);
                    null.upper_quantile(AUTO_ALPHA) * inflation.max(1.0)
                }
                None => robust_z(&sorted, AUTO_ROBUST_Z),
            },
            ThresholdRule::RobustZ { c } => robust_z(&sorted, c),
            ThresholdRule::Contamination(f) => quantile_sorted(&sorted, 1.0 - f),
            ThresholdRule::Fixed(x) => x,
            ThresholdRule::Tukey { iqr_multiplier } => {
                let q1 = quantile_sorted(&sorted, 0.25);
                let q3 = quantile_sorted(&sorted, 0.75);
                q3 + iqr_multiplier * (q3 - q1)
            }
        })
    }
}

/// Returns [`DataError::NonFiniteScore`] for the first non-finite score.
pub(crate) fn check_finite(scores: &[f64]) -> Result<(), DataError> {
    match scores.iter().enumerate().find(|(_, s)| !s.is_finite()) {
        Some((row, &value)) => Err(DataError::NonFiniteScore { row, value }),
        None => Ok(()),
    }
}

fn robust_z(sorted: &[f64], c: f64) -> f64 {
    let med = quantile_sorted(sorted, 0.5);
    let mut dev: Vec<f64> = sorted.iter().map(|s| (s - med).abs()).collect();
    dev.sort_by(f64::total_cmp);
    let mut scale = MAD_TO_SD * quantile_sorted(&dev, 0.5);
    if scale == 0.0 {
        scale = MEANAD_TO_SD * dev.iter().sum::<f64>() / dev.len() as f64;
    }
    med + c * scale
}

/// The `q` quantile of ascending `sorted` values with linear interpolation (numpy's default).
///
/// # Panics
/// If `sorted` is empty.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_matches_numpy() {
        // numpy.percentile([1, 2, 3, 4], 90) == 3.7
        assert!((quantile_sorted(&[1.0, 2.0, 3.0, 4.0], 0.9) - 3.7).abs() < 1e-12);
        assert_eq!(quantile_sorted(&[5.0], 0.3), 5.0);
    }

    #[test]
    fn auto_is_median_plus_scaled_mad() {
        // median 3, |dev| = [2, 1, 0, 1, 97] -> MAD 1
        let t = ThresholdRule::Auto.fit(&[1.0, 2.0, 3.0, 4.0, 100.0]).unwrap().value();
        assert!((t - (3.0 + 3.5 * MAD_TO_SD)).abs() < 1e-12);
    }

    #[test]
    fn auto_falls_back_to_mean_deviation_when_mad_is_zero() {
        // median 0, MAD 0, mean |dev| = 10/5 = 2
        let t = ThresholdRule::Auto.fit(&[0.0, 0.0, 0.0, 0.0, 10.0]).unwrap().value();
        assert!((t - 3.5 * MEANAD_TO_SD * 2.0).abs() < 1e-12);
        // all equal: nothing can exceed the threshold
        assert_eq!(ThresholdRule::Auto.fit(&[2.0; 4]).unwrap().value(), 2.0);
    }

    #[test]
    fn auto_uses_the_stated_null() {
        // chi-square(1) 99% quantile = 2.575829^2 = 6.634897; the median score (0.2) is below
        // the null's median (0.4549), so the quantile is used as it is
        let null = ScoreNull::ChiSquared { dof: 1.0 };
        let t = ThresholdRule::Auto.fit_with_null(&[0.1, 0.2, 100.0], Some(&null)).unwrap().value();
        assert!((t - 6.634_896_6).abs() < 1e-6, "{t}");
        // chi-square(10) 99% quantile = 23.209251
        let t = ScoreNull::ChiSquared { dof: 10.0 }.upper_quantile(0.01);
        assert!((t - 23.209_251).abs() < 1e-5, "{t}");
        // other rules ignore it
        let t = ThresholdRule::Fixed(3.0).fit_with_null(&[1.0], Some(&null)).unwrap().value();
        assert_eq!(t, 3.0);
        // scores whose median is twice the null's median: the quantile is doubled
        let med = null.upper_quantile(0.5);
        let t = ThresholdRule::Auto
            .fit_with_null(&[0.0, 2.0 * med, 50.0], Some(&null))
            .unwrap()
            .value();
        assert!((t - 2.0 * 6.634_896_6).abs() < 1e-5, "{t}");
    }

    #[test]
    fn contamination_is_upper_quantile() {
        let scores: Vec<f64> = (0..=100).map(f64::from).collect();
        let t = ThresholdRule::Contamination(0.1).fit(&scores).unwrap().value();
        assert!((t - 90.0).abs() < 1e-12);
        assert_eq!(scores.iter().filter(|&&s| s > t).count(), 10);
    }

    #[test]
    fn tukey_and_fixed() {
        // Q1 = 2, Q3 = 4 for [1..5]
        let t = ThresholdRule::Tukey { iqr_multiplier: 1.5 }
            .fit(&[1.0, 2.0, 3.0, 4.0, 5.0])
            .unwrap()
            .value();
        assert!((t - 7.0).abs() < 1e-12);
        assert_eq!(ThresholdRule::Fixed(0.5).fit(&[1.0]).unwrap().value(), 0.5);
    }

    #[test]
    fn rejects_bad_parameters_and_scores() {
        assert!(ThresholdRule::Contamination(0.0).check().is_err());
        assert!(ThresholdRule::Contamination(0.6).check().is_err());
        assert!(ThresholdRule::Contamination(0.5).check().is_ok());
        assert!(ThresholdRule::RobustZ { c: -1.0 }.check().is_err());
        assert!(ThresholdRule::Fixed(f64::NAN).check().is_err());
        assert!(ThresholdRule::Tukey { iqr_multiplier: 0.0 }.check().is_err());
        assert_eq!(ThresholdRule::Auto.fit(&[]).unwrap_err(), DataError::NoRows);
        assert!(matches!(
            ThresholdRule::Auto.fit(&[1.0, f64::NAN]),
            Err(DataError::NonFiniteScore { row: 1, .. })
        ));
    }
}
