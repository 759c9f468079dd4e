use poisonguard_core::ParamError;

use crate::model::{Common, check_k};

/// Default number of neighbours (PyOD's `KNN(n_neighbors=5)`).
pub const DEFAULT_K: usize = 5;

/// Which statistic of the k neighbour distances is the score.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum KnnStatistic {
    /// Distance to the k-th neighbour (the paper's score).
    #[default]
    Largest,
    /// Mean of the k distances.
    Mean,
    /// Median of the k distances.
    Median,
}

impl KnnStatistic {
    pub(crate) fn name(self) -> &'static str {
        match self {
            KnnStatistic::Largest => "k-th",
            KnnStatistic::Mean => "mean",
            KnnStatistic::Median => "median",
        }
    }
}

/// Model hyperparameters of the kNN distance detector.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq)]
pub struct KnnDistanceModelParams {
    pub(crate) k: usize,
    pub(crate) statistic: KnnStatistic,
}

/// Checked hyperparameters of [`KnnDistance`](super::KnnDistance).
#[derive(Debug, Clone, PartialEq)]
pub struct KnnDistanceValidParams {
    pub(crate) model: KnnDistanceModelParams,
    pub(crate) common: Common,
}

impl KnnDistanceValidParams {
    /// Neighbours per row.
    pub fn k(&self) -> usize {
        self.model.k
    }

    /// The distance statistic.
    pub fn statistic(&self) -> KnnStatistic {
        self.model.statistic
    }

    pub(super) fn check_model(&self) -> Result<(), ParamError> {
        check_k(self.model.k)
    }
}

/// Unchecked hyperparameters of [`KnnDistance`](super::KnnDistance): `k` = 5, statistic
/// `Largest`, global fit, automatic threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct KnnDistanceParams(pub(crate) KnnDistanceValidParams);

impl Default for KnnDistanceParams {
    fn default() -> Self {
        Self(KnnDistanceValidParams {
            model: KnnDistanceModelParams { k: DEFAULT_K, statistic: KnnStatistic::Largest },
            common: Common::default(),
        })
    }
}

impl KnnDistanceParams {
    /// Sets the number of neighbours (>= 1, < rows).
    pub fn k(mut self, k: usize) -> Self {
        self.0.model.k = k;
        self
    }

    /// Sets the distance statistic.
    pub fn statistic(mut self, statistic: KnnStatistic) -> Self {
        self.0.model.statistic = statistic;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use poisonguard_core::{ParamGuard, ThresholdRule};

    #[test]
    fn checks() {
        assert!(KnnDistanceParams::default().check().is_ok());
        assert!(matches!(
            KnnDistanceParams::default().k(0).check(),
            Err(ParamError::CountOutOfRange { name: "k", .. })
        ));
        assert!(
            KnnDistanceParams::default()
                .threshold(ThresholdRule::Contamination(0.0))
                .check()
                .is_err()
        );
    }
}
