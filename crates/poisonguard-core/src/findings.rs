//! Findings beyond one row: per-class verdicts, the estimate of how many rows are poisoned, the
//! estimated label-noise matrix and per-source verdicts.

use crate::dataset::{ClassId, LabelValue};
use crate::detection::DetectorId;

/// Estimated joint counts of given and true labels (confident learning's calibrated confident
/// joint): `count(given, true)` rows are estimated to carry label `given` while belonging to
/// class `true`. Rows sum to the number of rows with each given label.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
pub struct NoiseMatrix {
    labels: Vec<LabelValue>,
    counts: Vec<usize>,
}

impl NoiseMatrix {
    /// A `labels.len() x labels.len()` matrix from row-major counts (given label x true label).
    ///
    /// # Panics
    /// If `counts.len() != labels.len()^2` (a programming error of the detector).
    pub fn new(labels: Vec<LabelValue>, counts: Vec<usize>) -> Self {
        assert_eq!(counts.len(), labels.len() * labels.len(), "noise matrix shape");
        Self { labels, counts }
    }

    /// The class labels, in class-id order (rows and columns).
    pub fn labels(&self) -> &[LabelValue] {
        &self.labels
    }

    /// Estimated rows labelled `given` that truly belong to class `truth` (class ids).
    ///
    /// # Panics
    /// If an index is out of bounds.
    pub fn count(&self, given: usize, truth: usize) -> usize {
        self.counts[given * self.labels.len() + truth]
    }

    /// Estimated share of the rows labelled `given` whose label is wrong.
    ///
    /// # Panics
    /// If `given` is out of bounds.
    pub fn noise_rate(&self, given: usize) -> f64 {
        let k = self.labels.len();
        let row = &self.counts[given * k..(given + 1) * k];
        let total: usize = row.iter().sum();
        if total == 0 { 0.0 } else { 1.0 - row[given] as f64 / total as f64 }
    }

    /// Estimated number of rows whose label is wrong (the off-diagonal total).
    pub fn n_mislabeled(&self) -> usize {
        let k = self.labels.len();
        self.counts.iter().enumerate().filter(|(i, _)| i / k != i % k).map(|(_, c)| c).sum()
    }
}

/// Whether one data source holds more flagged rows than the dataset's flag rate predicts.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceFinding {
    /// The source, as in the source column.
    pub source: String,
    /// Rows from the source.
    pub n_samples: usize,
    /// Of them, flagged.
    pub n_flagged: usize,
    /// Flagged rows expected from the source at the dataset-wide rate.
    pub expected: f64,
    /// One-sided p-value of at least `n_flagged` flags (hypergeometric tail), uncorrected.
    pub p_value: f64,
    /// `p_value` adjusted for the number of sources (Holm), in [0, 1].
    pub p_adjusted: f64,
}

impl SourceFinding {
    /// Share of the source's rows that are flagged.
    pub fn flag_rate(&self) -> f64 {
        if self.n_samples == 0 { 0.0 } else { self.n_flagged as f64 / self.n_samples as f64 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_matrix_rates() {
        let m = NoiseMatrix::new(vec![LabelValue::Int(0), LabelValue::Int(1)], vec![8, 2, 1, 9]);
        assert_eq!(m.count(0, 1), 2);
        assert!((m.noise_rate(0) - 0.2).abs() < 1e-12);
        assert!((m.noise_rate(1) - 0.1).abs() < 1e-12);
        assert_eq!(m.n_mislabeled(), 3);
    }
}

/// A statistic behind a [`ClassFinding`]; its [`name`](ClassStatistic::name) is the key shown to
/// users and written to the JSON summary.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClassStatistic {
    /// The class verdict: 1 = declared attacked, 0 = not.
    Attacked,
    /// Robust z of the class's verdict statistic among the classes.
    VerdictZ,
    /// Variance along the top direction over its robust (median-based) estimate.
    VarianceInflation,
    /// Top eigenvalue over the second (`lambda_1 / lambda_2`).
    SpectralRatio,
    /// Top eigenvalue over the trace.
    ExplainedVariance,
    /// Top eigenvalue of the class covariance.
    TopEigenvalue,
    /// Principal dimensions the class was reduced to.
    Dims,
    /// Variance of the robustly whitened class beyond the identity's.
    ExcessVariance,
    /// Top eigenvalue of the robustly whitened class covariance.
    TopWhitenedEigenvalue,
    /// Share of the class in the smaller of two clusters.
    SmallerShare,
    /// Mean silhouette of the two-cluster split.
    Silhouette,
    /// Share of the class's rows whose neighbours outvote their label.
    ContradictedShare,
    /// Mean share of neighbours that agree with a row's label.
    MeanAgreement,
    /// Estimated share of the class's labels that are wrong.
    EstimatedNoiseRate,
    /// Share of the class's rows flagged.
    FlaggedShare,
    /// How much better two components explain the class than one (SCAn's statistic `J`).
    DecompositionGain,
    /// Trusted rows of the class, whose votes measured its label null (fewer than 20: the law
    /// of all trusted rows).
    TrustedRows,
}

impl ClassStatistic {
    /// The snake_case key (`variance_inflation`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            ClassStatistic::Attacked => "attacked",
            ClassStatistic::VerdictZ => "verdict_z",
            ClassStatistic::VarianceInflation => "variance_inflation",
            ClassStatistic::SpectralRatio => "spectral_ratio",
            ClassStatistic::ExplainedVariance => "explained_variance",
            ClassStatistic::TopEigenvalue => "top_eigenvalue",
            ClassStatistic::Dims => "dims",
            ClassStatistic::ExcessVariance => "excess_variance",
            ClassStatistic::TopWhitenedEigenvalue => "top_whitened_eigenvalue",
            ClassStatistic::SmallerShare => "smaller_share",
            ClassStatistic::Silhouette => "silhouette",
            ClassStatistic::ContradictedShare => "contradicted_share",
            ClassStatistic::MeanAgreement => "mean_agreement",
            ClassStatistic::EstimatedNoiseRate => "estimated_noise_rate",
            ClassStatistic::FlaggedShare => "flagged_share",
            ClassStatistic::DecompositionGain => "decomposition_gain",
            ClassStatistic::TrustedRows => "trusted_rows",
        }
    }
}

impl std::fmt::Display for ClassStatistic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

/// What a detector says about one class: how attacked it looks.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
pub struct ClassFinding {
    class: ClassId,
    label: LabelValue,
    n_samples: usize,
    score: f64,
    statistics: Vec<(ClassStatistic, f64)>,
}

impl ClassFinding {
    /// A finding for `class` with `n_samples` rows. `score` ranks classes: higher = looks more
    /// attacked. `statistics` are the values behind it, shown to the user in this order; a
    /// class verdict is [`ClassStatistic::Attacked`] (1 or 0).
    pub fn new(
        class: ClassId,
        label: LabelValue,
        n_samples: usize,
        score: f64,
        statistics: Vec<(ClassStatistic, f64)>,
    ) -> Self {
        Self { class, label, n_samples, score, statistics }
    }

    /// The class id.
    pub fn class(&self) -> ClassId {
        self.class
    }

    /// The original label of the class.
    pub fn label(&self) -> &LabelValue {
        &self.label
    }

    /// Rows in the class.
    pub fn n_samples(&self) -> usize {
        self.n_samples
    }

    /// How attacked the class looks; higher = more suspicious. Comparable across classes of the
    /// same detector only.
    pub fn score(&self) -> f64 {
        self.score
    }

    /// The statistics behind the score, in the detector's order.
    pub fn statistics(&self) -> &[(ClassStatistic, f64)] {
        &self.statistics
    }

    /// One statistic, if the detector reports it.
    pub fn statistic(&self, which: ClassStatistic) -> Option<f64> {
        self.statistics.iter().find(|(s, _)| *s == which).map(|(_, v)| *v)
    }

    /// The detector's verdict on the class, for detectors that declare classes attacked
    /// (`spectre`, `activation_clustering`); `None` for detectors that only rank classes.
    pub fn attacked(&self) -> Option<bool> {
        self.statistic(ClassStatistic::Attacked).map(|v| v == 1.0)
    }
}

/// Confidence level of every detector's interval of the number of poisoned rows.
pub const ESTIMATE_LEVEL: f64 = 0.95;

/// The dataset-level estimate of how many rows are poisoned, with an interval.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
pub struct PoisonEstimate {
    /// Point estimate of the number of poisoned rows.
    pub rows: f64,
    /// Lower end of the interval.
    pub low: f64,
    /// Upper end of the interval.
    pub high: f64,
    /// Confidence level of the interval (e.g. 0.95).
    pub level: f64,
    /// How the estimate was made: one contribution per detector that counted (with that
    /// detector's own estimate and interval once combined).
    pub method: Vec<EstimateMethod>,
}

/// One detector's contribution to a [`PoisonEstimate`]. Its `Display` is
/// `"<detector>: <what it counts>"`, or `"<detector>: <rows> [<low>, <high>]: <what it counts>"`
/// once combined.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
pub struct EstimateMethod {
    /// The detector that counted.
    pub detector: DetectorId,
    /// What it counts, in words.
    pub counts: String,
    /// Its own estimate `(rows, low, high)`, recorded when estimates are combined.
    pub own: Option<(f64, f64, f64)>,
}

impl EstimateMethod {
    /// What `detector` counts, in words.
    pub fn new(detector: DetectorId, counts: impl Into<String>) -> Self {
        Self { detector, counts: counts.into(), own: None }
    }
}

impl std::fmt::Display for EstimateMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.own {
            Some((rows, low, high)) => {
                write!(f, "{}: {rows:.0} [{low:.0}, {high:.0}]: {}", self.detector, self.counts)
            }
            None => write!(f, "{}: {}", self.detector, self.counts),
        }
    }
}

impl PoisonEstimate {
    /// Rows flagged beyond the false flags a threshold with per-row false-flag rate `alpha`
    /// makes among `at_risk` clean rows: false flags are `Binomial(at_risk, alpha)`, so the
    /// estimate is `flagged - alpha * at_risk` and the interval subtracts that law's upper and
    /// lower `(1 - level) / 2` quantiles, all clipped at 0. Counts the poison the detector
    /// sees, not the poison it misses.
    ///
    /// ```
    /// use poisonguard_core::{DetectorId, EstimateMethod, PoisonEstimate};
    /// let how = EstimateMethod::new(DetectorId::new("spectral"), "flags beyond the null");
    /// let e = PoisonEstimate::excess_over_null(38, 1800, 0.01, 0.95, how.clone());
    /// assert!((e.rows - 20.0).abs() < 1e-9);
    /// assert!(e.low < e.rows && e.rows < e.high);
    /// let clean = PoisonEstimate::excess_over_null(8, 1800, 0.01, 0.95, how);
    /// assert_eq!((clean.rows, clean.low), (0.0, 0.0));
    /// ```
    pub fn excess_over_null(
        flagged: usize,
        at_risk: usize,
        alpha: f64,
        level: f64,
        method: EstimateMethod,
    ) -> Self {
        use statrs::distribution::{Binomial, DiscreteCDF};
        let f = flagged as f64;
        let tail = (1.0 - level) / 2.0;
        let (lo_q, hi_q) = match Binomial::new(alpha.clamp(0.0, 1.0), at_risk as u64) {
            Ok(b) => (b.inverse_cdf(tail) as f64, b.inverse_cdf(1.0 - tail) as f64),
            Err(_) => (0.0, 0.0),
        };
        Self {
            rows: (f - alpha * at_risk as f64).max(0.0),
            low: (f - hi_q).max(0.0),
            high: (f - lo_q).max(0.0),
            level,
            method: vec![method],
        }
    }

    /// Combines the estimates of several detectors. Each detector counts the poison it can see:
    /// different attacks add up, the same poison seen by two detectors must not. So the point
    /// estimate and the lower end are the largest of the detectors' (at least that much poison
    /// is there), the upper end the sum of the upper ends (capped at `n_rows`). `None` when no
    /// detector counted.
    pub fn combine(estimates: &[PoisonEstimate], n_rows: usize) -> Option<Self> {
        let first = estimates.first()?;
        let max = |f: fn(&PoisonEstimate) -> f64| estimates.iter().map(f).fold(0.0, f64::max);
        let high: f64 = estimates.iter().map(|e| e.high).sum();
        Some(Self {
            rows: max(|e| e.rows),
            low: max(|e| e.low),
            high: high.min(n_rows as f64).max(max(|e| e.rows)),
            level: first.level,
            method: estimates
                .iter()
                .flat_map(|e| {
                    e.method
                        .iter()
                        .map(|m| EstimateMethod { own: Some((e.rows, e.low, e.high)), ..m.clone() })
                })
                .collect(),
        })
    }
}

/// A class a per-class detector left unscored because it has too few rows to fit (its rows
/// score 0 and are never flagged by that detector).
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
pub struct SkippedClass {
    /// The class id.
    pub class: ClassId,
    /// Its original label.
    pub label: LabelValue,
    /// Its rows.
    pub rows: usize,
    /// The fewest rows the detector fits a class on.
    pub needed: usize,
}

impl SkippedClass {
    /// The non-empty classes of `by_class` (rows per class id) with fewer than `needed` rows.
    pub fn of(by_class: &[Vec<usize>], map: &crate::LabelMap, needed: usize) -> Vec<SkippedClass> {
        by_class
            .iter()
            .enumerate()
            .filter(|(_, rows)| !rows.is_empty() && rows.len() < needed)
            .map(|(c, rows)| SkippedClass {
                class: ClassId(c as u32),
                label: map.values()[c].clone(),
                rows: rows.len(),
                needed,
            })
            .collect()
    }
}

impl std::fmt::Display for SkippedClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "class {} ({} rows, needs {})", self.label, self.rows, self.needed)
    }
}
