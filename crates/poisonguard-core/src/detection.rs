//! [`Detection`]: one detector's scores, threshold, derived flags and reasons.

use std::fmt;

use crate::dataset::LabelValue;
use crate::error::DataError;
use crate::evidence::Calibration;
use crate::threshold::{FittedThreshold, ScoreNull, ThresholdRule, check_finite};

/// The stable snake_case id of a detector; the single source of report column names
/// (`<id>_score`, `<id>_flagged`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DetectorId(&'static str);

impl DetectorId {
    /// Wraps a snake_case id.
    pub const fn new(id: &'static str) -> Self {
        Self(id)
    }

    /// The id as a string.
    pub const fn as_str(self) -> &'static str {
        self.0
    }
}

impl serde::Serialize for DetectorId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

impl<'de> serde::Deserialize<'de> for DetectorId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::state::static_str(d).map(Self)
    }
}

impl fmt::Display for DetectorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.0)
    }
}

/// A name fixed at compile time (spelled through an alias so that serde reads it back through
/// the state interner instead of borrowing it from the input).
type StaticName = &'static str;

/// Why a row was flagged: structured data, with a one-sentence [`Display`](fmt::Display).
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Reason {
    /// The row lies far along the top singular direction of its class (spectral signature).
    SpectralProjection {
        /// The row's class (original label).
        class: LabelValue,
        /// Signed projection of the centred row onto the direction, in robust standard
        /// deviations of the class along it.
        z: f64,
    },
    /// The row carries much of the excess variance of its class's robustly whitened
    /// representation (SPECTRE's quantum-entropy score).
    QuantumEntropy {
        /// The row's class (original label).
        class: LabelValue,
        /// The row's score on the chi-square(1) scale.
        score: f64,
        /// Principal dimensions the class was reduced to.
        dims: usize,
    },
    /// The row lies toward the suspect one of two components that its class decomposes into
    /// (SCAn's untangling of class identity and within-class variation).
    Decomposition {
        /// The row's class (original label).
        class: LabelValue,
        /// Position of the row along the line from the other component to the suspect one, in
        /// within-class standard deviations, from the class median.
        z: f64,
        /// Share of the class in the suspect component.
        share: f64,
    },
    /// The row belongs to the smaller of two clusters of its class's activations (activation
    /// clustering).
    SmallCluster {
        /// The row's class (original label).
        class: LabelValue,
        /// Share of the class in the smaller cluster.
        share: f64,
        /// Mean silhouette of the two-cluster split.
        silhouette: f64,
    },
    /// The row is far from its nearest neighbours (kNN distance).
    FarFromNeighbors {
        /// Neighbours considered.
        k: usize,
        /// The distance statistic: "k-th", "mean" or "median".
        #[serde(deserialize_with = "crate::state::static_str")]
        statistic: StaticName,
        /// The distance.
        distance: f64,
    },
    /// The row's local density is lower than its neighbours' (local outlier factor).
    LowLocalDensity {
        /// Neighbours considered.
        k: usize,
        /// The local outlier factor (1 = as dense as its neighbours).
        lof: f64,
    },
    /// The row is isolated by few random splits (isolation forest).
    ShortIsolationPath {
        /// Mean path length over the trees.
        mean_path: f64,
        /// Average path length of an unsuccessful search in a tree of the subsample size.
        expected: f64,
    },
    /// The row's values lie in the tails of the feature distributions (ECOD).
    TailProbability {
        /// The feature contributing most.
        feature: String,
        /// Its contribution, `-log` of its tail probability.
        contribution: f64,
    },
    /// The row is far from the robust centre (robust Mahalanobis distance).
    RobustDistance {
        /// Squared robust Mahalanobis distance.
        d2: f64,
        /// Features (degrees of freedom of its chi-square reference).
        dof: usize,
    },
    /// Most of the row's nearest neighbours carry another label (Deep k-NN).
    NeighborLabelDisagreement {
        /// Neighbours considered.
        k: usize,
        /// The most common label among the neighbours.
        plurality: LabelValue,
        /// Share of the neighbours with the plurality label.
        plurality_share: f64,
        /// Share of the neighbours with the row's own label.
        own_share: f64,
        /// One-sided sign-test p-value of the plurality outvoting the own label.
        p_value: f64,
    },
    /// An out-of-sample classifier confidently predicts another label (confident learning).
    LikelyMislabeled {
        /// The label the row carries.
        given: LabelValue,
        /// The label the classifier confidently predicts.
        likely: LabelValue,
        /// Out-of-sample probability of the given label.
        given_probability: f64,
        /// Out-of-sample probability of the likely label.
        likely_probability: f64,
    },
    /// The row belongs to a group of near-duplicates with conflicting labels or of unusual size.
    NearDuplicateGroup {
        /// Group id (0-based, in order of the group's first row).
        group: usize,
        /// Rows in the group.
        size: usize,
        /// Distinct labels in the group (1 when the labels agree or the data is unlabelled).
        distinct_labels: usize,
    },
    /// A score above the threshold, with no more specific explanation.
    Score {
        /// The row's score.
        score: f64,
        /// The detector's threshold.
        threshold: f64,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::SpectralProjection { class, z } => write!(
                f,
                "lies {z:+.1} robust sd along the top spectral direction of class {class}"
            ),
            Reason::QuantumEntropy { class, score, dims } => write!(
                f,
                "quantum-entropy score {score:.1} in the robustly whitened top {dims} principal \
                 directions of class {class}"
            ),
            Reason::Decomposition { class, z, share } => write!(
                f,
                "lies {z:+.1} within-class sd toward the suspect component of class {class} \
                 ({:.0}% of the class), beyond the class median",
                100.0 * share
            ),
            Reason::SmallCluster { class, share, silhouette } => write!(
                f,
                "in the smaller activation cluster of class {class} ({:.0}% of the class, \
                 silhouette {silhouette:.2})",
                100.0 * share
            ),
            Reason::FarFromNeighbors { k, statistic, distance } => {
                write!(f, "{statistic} distance to its {k} nearest neighbours is {distance:.4}")
            }
            Reason::LowLocalDensity { k, lof } => write!(
                f,
                "local density is {lof:.2} times lower than that of its {k} nearest neighbours"
            ),
            Reason::ShortIsolationPath { mean_path, expected } => write!(
                f,
                "isolated after {mean_path:.1} random splits on average (a typical row: {expected:.1})"
            ),
            Reason::TailProbability { feature, contribution } => write!(
                f,
                "lies in the tail of feature {feature} (-log tail probability {contribution:.2})"
            ),
            Reason::RobustDistance { d2, dof } => {
                write!(f, "squared robust Mahalanobis distance {d2:.2} over {dof} features")
            }
            Reason::NeighborLabelDisagreement {
                k,
                plurality,
                plurality_share,
                own_share,
                p_value,
            } => {
                write!(
                    f,
                    "{:.0}% of its {k} nearest neighbours are labelled {plurality}, {:.0}% share its \
                     label (sign test p = {p_value:.2e})",
                    100.0 * plurality_share,
                    100.0 * own_share
                )
            }
            Reason::LikelyMislabeled { given, likely, given_probability, likely_probability } => {
                write!(
                    f,
                    "labelled {given} but an out-of-sample classifier says {likely} \
                     (p = {likely_probability:.2} vs {given_probability:.2})"
                )
            }
            Reason::NearDuplicateGroup { group, size, distinct_labels } => {
                if *distinct_labels > 1 {
                    write!(
                        f,
                        "near-duplicate group {group} of {size} rows carries {distinct_labels} different labels"
                    )
                } else {
                    write!(f, "near-duplicate group {group} of {size} rows is unusually large")
                }
            }
            Reason::Score { score, threshold } => {
                write!(f, "score {score:.4} exceeds threshold {threshold:.4}")
            }
        }
    }
}

/// One detector's verdict on every row: scores (higher = more suspicious, finite), the fitted
/// threshold, flags derived as `score > threshold`, a [`Reason`] for each flagged row, and a
/// p-value per row under the detector's stated null ([`Calibration`]).
///
/// The only constructors apply the threshold, so flags and scores cannot disagree and no
/// detector can forget to threshold.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
pub struct Detection {
    scores: Vec<f64>,
    threshold: f64,
    /// `(row, reason)` for flagged rows, ascending by row.
    reasons: Vec<(usize, Reason)>,
    /// One p-value per row, in [0, 1].
    p_values: Vec<f64>,
    /// The null the p-values refer to.
    calibration: Calibration,
}

impl Detection {
    /// Fits `rule` on `scores` and explains every flagged row with `explain(row, score)`.
    ///
    /// # Errors
    /// [`DataError::NoRows`] or [`DataError::NonFiniteScore`].
    ///
    /// # Example: flags follow the threshold
    /// ```
    /// use poisonguard_core::{Detection, Reason, ThresholdRule};
    /// let d = Detection::new(vec![0.1, 0.2, 0.9], &ThresholdRule::Fixed(0.5), |_, score| {
    ///     Reason::Score { score, threshold: 0.5 }
    /// })?;
    /// assert_eq!(d.flagged(), vec![false, false, true]);
    /// assert!(d.reason(2).is_some());
    /// # Ok::<(), poisonguard_core::DataError>(())
    /// ```
    pub fn new(
        scores: Vec<f64>,
        rule: &ThresholdRule,
        explain: impl Fn(usize, f64) -> Reason,
    ) -> Result<Self, DataError> {
        Self::with_null(scores, rule, None, explain)
    }

    /// As [`Detection::new`], for a detector whose clean-row scores follow `null`
    /// (see [`ThresholdRule::Auto`]).
    ///
    /// # Errors
    /// [`DataError::NoRows`] or [`DataError::NonFiniteScore`].
    pub fn with_null(
        scores: Vec<f64>,
        rule: &ThresholdRule,
        null: Option<&ScoreNull>,
        explain: impl Fn(usize, f64) -> Reason,
    ) -> Result<Self, DataError> {
        let threshold = rule.fit_with_null(&scores, null)?;
        let calibration = Calibration::fit(null, &scores);
        Self::with_calibration(scores, threshold, calibration, explain)
    }

    /// Applies a threshold a [`ThresholdRule`] fitted (on these scores, or on the training
    /// scores of a fit that now scores new rows). The p-values come from [`Calibration::tail`]
    /// fitted on `scores`; a detector that knows better uses [`Detection::with_calibration`]
    /// (e.g. its training calibration, for new rows) or [`Detection::with_p_values`].
    ///
    /// # Errors
    /// [`DataError::NoRows`] or [`DataError::NonFiniteScore`].
    pub fn with_threshold(
        scores: Vec<f64>,
        threshold: FittedThreshold,
        explain: impl Fn(usize, f64) -> Reason,
    ) -> Result<Self, DataError> {
        let calibration = Calibration::tail(&scores);
        Self::with_calibration(scores, threshold, calibration, explain)
    }

    /// Applies a threshold a [`ThresholdRule`] fitted, the p-values read off `calibration`.
    ///
    /// # Errors
    /// [`DataError::NoRows`] or [`DataError::NonFiniteScore`].
    pub fn with_calibration(
        scores: Vec<f64>,
        threshold: FittedThreshold,
        calibration: Calibration,
        explain: impl Fn(usize, f64) -> Reason,
    ) -> Result<Self, DataError> {
        let threshold = threshold.value();
        if scores.is_empty() {
            return Err(DataError::NoRows);
        }
        check_finite(&scores)?;
        let reasons = scores
            .iter()
            .enumerate()
            .filter(|(_, s)| **s > threshold)
            .map(|(i, &s)| (i, explain(i, s)))
            .collect();
        let p_values = scores.iter().map(|&s| calibration.p_value(s)).collect();
        Ok(Self { scores, threshold, reasons, p_values, calibration })
    }

    /// Replaces the p-values by the detector's own, row by row ([`Calibration::Given`]); NaN
    /// becomes 1 and values are clamped to [0, 1].
    ///
    /// # Panics
    /// If `p` has not one value per row (a programming error of the detector).
    #[must_use]
    pub fn with_p_values(mut self, p: Vec<f64>) -> Self {
        assert_eq!(p.len(), self.scores.len(), "one p-value per row");
        self.p_values =
            p.into_iter().map(|v| if v.is_nan() { 1.0 } else { v.clamp(0.0, 1.0) }).collect();
        self.calibration = Calibration::Given;
        self
    }

    /// Sets the p-value of each row for which `p(i)` gives one (a class-level rule grading the
    /// rows of a class), keeping the calibration; values clamped to [0, 1], NaN read as 1.
    pub fn grade_evidence(&mut self, p: impl Fn(usize) -> Option<f64>) {
        for (i, v) in self.p_values.iter_mut().enumerate() {
            if let Some(g) = p(i) {
                *v = if g.is_nan() { 1.0 } else { g.clamp(0.0, 1.0) };
            }
        }
    }

    /// Sets the p-value of the rows `no_evidence` says to 1 (rows a class-level gate leaves
    /// out), keeping the calibration.
    #[must_use]
    pub fn without_evidence(mut self, no_evidence: impl Fn(usize) -> bool) -> Self {
        self.grade_evidence(|i| no_evidence(i).then_some(1.0));
        self
    }

    /// One p-value per row under the detector's null: how surprising the row's score is if the
    /// row is clean (small = strong evidence).
    pub fn p_values(&self) -> &[f64] {
        &self.p_values
    }

    /// The null the p-values refer to ([`Calibration::Given`] when the detector set them row by
    /// row).
    pub fn calibration(&self) -> Calibration {
        self.calibration
    }

    /// One score per row; higher = more suspicious.
    pub fn scores(&self) -> &[f64] {
        &self.scores
    }

    /// The fitted threshold.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// The fitted threshold, to apply to the scores of new rows
    /// ([`Detection::with_calibration`]).
    pub fn fitted_threshold(&self) -> FittedThreshold {
        FittedThreshold(self.threshold)
    }

    /// Whether row `i` is flagged (`score > threshold`).
    ///
    /// # Panics
    /// If `i` is out of bounds.
    pub fn is_flagged(&self, i: usize) -> bool {
        self.scores[i] > self.threshold
    }

    /// The flag of every row.
    pub fn flagged(&self) -> Vec<bool> {
        self.scores.iter().map(|&s| s > self.threshold).collect()
    }

    /// Number of flagged rows.
    pub fn n_flagged(&self) -> usize {
        self.reasons.len()
    }

    /// The reason of row `i`, if it is flagged.
    pub fn reason(&self, i: usize) -> Option<&Reason> {
        self.reasons.binary_search_by_key(&i, |(row, _)| *row).ok().map(|k| &self.reasons[k].1)
    }

    /// `(row, reason)` of every flagged row, ascending by row.
    pub fn reasons(&self) -> &[(usize, Reason)] {
        &self.reasons
    }
}

/// Assembles one [`Detection`] row by row from rows of others: how a batched scan joins the
/// detections of its batches (and of its reference sample) into one detection of the whole
/// table. The parts share one threshold (a fit's training detection and the detections of new
/// rows against that fit do); the calibration is the parts' common one, or
/// [`Calibration::Given`] when they differ.
#[derive(Debug, Clone, Default)]
pub struct DetectionRows {
    scores: Vec<f64>,
    reasons: Vec<(usize, Reason)>,
    p_values: Vec<f64>,
    /// Threshold and calibration of the first row pushed.
    first: Option<(f64, Calibration)>,
    mixed_calibration: bool,
}

impl DetectionRows {
    /// An empty assembly with room for `n` rows.
    pub fn with_capacity(n: usize) -> Self {
        Self { scores: Vec::with_capacity(n), p_values: Vec::with_capacity(n), ..Self::default() }
    }

    /// Appends row `i` of `part` (its score, p-value and reason).
    ///
    /// # Panics
    /// If `i` is out of bounds, or if `part`'s threshold is not the first part's (the flags
    /// would not follow the scores: a fit's detections of new rows apply its training
    /// threshold, by the [`FittedDetector`](crate::FittedDetector) contract).
    pub fn push(&mut self, part: &Detection, i: usize) {
        let (threshold, calibration) =
            *self.first.get_or_insert((part.threshold, part.calibration));
        assert!(
            threshold.to_bits() == part.threshold.to_bits(),
            "detections of one fit share its threshold"
        );
        self.mixed_calibration |= calibration != part.calibration;
        if let Some(reason) = part.reason(i) {
            self.reasons.push((self.scores.len(), reason.clone()));
        }
        self.scores.push(part.scores[i]);
        self.p_values.push(part.p_values[i]);
    }

    /// Rows pushed so far.
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    /// Whether no row was pushed.
    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    /// The detection of the rows pushed, in push order.
    ///
    /// # Errors
    /// [`DataError::NoRows`] when no row was pushed.
    pub fn finish(self) -> Result<Detection, DataError> {
        let (threshold, calibration) = self.first.ok_or(DataError::NoRows)?;
        Ok(Detection {
            scores: self.scores,
            threshold,
            reasons: self.reasons,
            p_values: self.p_values,
            calibration: if self.mixed_calibration { Calibration::Given } else { calibration },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(_: usize, score: f64) -> Reason {
        Reason::Score { score, threshold: 0.0 }
    }

    #[test]
    fn flags_are_derived_from_scores() {
        let t = ThresholdRule::Fixed(2.0).fit(&[0.0]).unwrap();
        let d = Detection::with_threshold(vec![1.0, 3.0, 2.0, 3.0], t, reason).unwrap();
        assert_eq!(d.flagged(), vec![false, true, false, true]);
        assert_eq!(d.n_flagged(), 2);
        assert!(d.reason(0).is_none());
        assert_eq!(d.reason(3), Some(&Reason::Score { score: 3.0, threshold: 0.0 }));
        assert_eq!(d.reasons().iter().map(|r| r.0).collect::<Vec<_>>(), vec![1, 3]);
    }

    #[test]
    fn rows_of_several_detections_assemble_into_one() {
        let t = ThresholdRule::Fixed(2.0).fit(&[0.0]).unwrap();
        let a = Detection::with_threshold(vec![1.0, 3.0], t, reason).unwrap();
        let b = Detection::with_threshold(vec![5.0, 0.5, 2.5], t, reason).unwrap();
        let mut rows = DetectionRows::with_capacity(4);
        for (part, i) in [(&b, 0), (&a, 0), (&a, 1), (&b, 1)] {
            rows.push(part, i);
        }
        let joined = rows.finish().unwrap();
        assert_eq!(joined.scores(), [5.0, 1.0, 3.0, 0.5]);
        assert_eq!(
            joined.p_values(),
            [b.p_values()[0], a.p_values()[0], a.p_values()[1], b.p_values()[1]]
        );
        assert_eq!(joined.reasons().iter().map(|r| r.0).collect::<Vec<_>>(), vec![0, 2]);
        assert_eq!(joined.reason(0), Some(&Reason::Score { score: 5.0, threshold: 0.0 }));
        // the two tails were fitted on different scores
        assert_eq!(joined.calibration(), Calibration::Given);
        assert_eq!(DetectionRows::default().finish().unwrap_err(), DataError::NoRows);
    }

    #[test]
    fn rejects_non_finite_scores() {
        let t = ThresholdRule::Fixed(1.0).fit(&[0.0]).unwrap();
        assert!(matches!(
            Detection::with_threshold(vec![0.0, f64::INFINITY], t, reason),
            Err(DataError::NonFiniteScore { row: 1, .. })
        ));
        assert_eq!(Detection::with_threshold(vec![], t, reason).unwrap_err(), DataError::NoRows);
    }

    #[test]
    fn reasons_read_as_sentences() {
        let r = Reason::SpectralProjection { class: LabelValue::Int(7), z: 4.26 };
        assert_eq!(
            r.to_string(),
            "lies +4.3 robust sd along the top spectral direction of class 7"
        );
    }
}
