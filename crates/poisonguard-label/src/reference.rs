//! The training rows a neighbour-based label detector keeps to score new rows: standardized
//! (the default of `knn_label`) or as given, with the kNN search done the same way for both
//! detectors.

use ndarray::Array2;
use poisonguard_core::{DataError, Dataset, KnnGraph, Standardizer};

use crate::error::Result;

/// Training rows in the space a detector searches, and the standardizer that maps new rows there.
#[derive(Debug, Clone)]
pub(crate) struct Reference {
    scaler: Option<Standardizer>,
    rows: Array2<f32>,
}

impl Reference {
    /// The rows of `data`, standardized when `standardize` is set.
    pub(crate) fn new(data: &Dataset, standardize: bool) -> Self {
        let scaler = standardize.then(|| Standardizer::fit(data.features()));
        let rows = match &scaler {
            Some(s) => s.transform(data.features()),
            None => data.features().to_owned(),
        };
        Self { scaler, rows }
    }

    /// The `k` nearest neighbours of every training row: the audit's `shared` graph of the same
    /// space when given, else an exact search.
    pub(crate) fn graph(&self, k: usize, shared: Option<&KnnGraph>) -> Result<KnnGraph> {
        Ok(match shared {
            Some(g) => g.truncate(k),
            None => poisonguard_neighbors::exact_knn(self.rows.view(), k)?,
        })
    }

    /// The `k` nearest training rows of every row of `data`, mapped into the same space.
    pub(crate) fn query(
        &self,
        data: &Dataset,
        k: usize,
        detector: &'static str,
    ) -> std::result::Result<KnnGraph, DataError> {
        if data.n_features() != self.rows.ncols() {
            return Err(DataError::FeatureCountMismatch {
                expected: self.rows.ncols(),
                actual: data.n_features(),
            });
        }
        let queries = match &self.scaler {
            Some(s) => s.transform(data.features()),
            None => data.features().to_owned(),
        };
        poisonguard_neighbors::exact_knn_query(self.rows.view(), queries.view(), k)
            .map_err(|e| DataError::Detector { detector, message: e.to_string() })
    }
}
