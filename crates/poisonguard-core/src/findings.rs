//! Findings beyond one row: the estimated label-noise matrix and per-source verdicts.

use crate::dataset::LabelValue;

/// Estimated joint counts of given and true labels (confident learning's calibrated confident
/// joint): `count(given, true)` rows are estimated to carry label `given` while belonging to
/// class `true`. Rows sum to the number of rows with each given label.
#[derive(Debug, Clone, PartialEq)]
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
