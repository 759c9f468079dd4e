//! The training rows a neighbour-based label detector keeps to score new rows: standardized
//! (the default of `knn_label`) or as given, with the kNN search done the same way for both
//! detectors.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use ndarray::Array2;
use poisonguard_core::{DataError, Dataset, KnnGraph, Standardizer};
use poisonguard_neighbors::{AUTO_APPROX_ROWS, ApproxParams, IvfIndex, KDTREE_MAX_DIM};

use crate::error::Result;

/// The training rows, shared with the dataset they came from (no copy), and the standardizer
/// that maps rows into the space the detector searches. The standardized copy of the training
/// rows is made only while a search needs it (a fit without a shared graph, `detect`), never
/// kept.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
pub(crate) struct Reference {
    scaler: Option<Standardizer>,
    rows: Arc<Array2<f32>>,
    /// The index new rows are searched in, built at the first query of a large reference
    /// ([`Reference::query`]); not saved.
    #[serde(skip)]
    index: OnceLock<Option<IvfIndex>>,
}

impl Reference {
    /// The rows of `data`, searched standardized when `standardize` is set.
    pub(crate) fn new(data: &Dataset, standardize: bool) -> Self {
        let scaler = standardize.then(|| Standardizer::fit(data.features()));
        Self { scaler, rows: data.shared_features(), index: OnceLock::new() }
    }

    /// The `k` nearest neighbours of every training row: the audit's `shared` graph of the same
    /// space when given (borrowed when it has exactly `k` neighbours), else an exact search.
    pub(crate) fn graph<'g>(
        &self,
        k: usize,
        shared: Option<&'g KnnGraph>,
    ) -> Result<Cow<'g, KnnGraph>> {
        Ok(match (shared, &self.scaler) {
            (Some(g), _) if g.k() == k => Cow::Borrowed(g),
            (Some(g), _) => Cow::Owned(g.truncate(k)),
            (None, Some(s)) => Cow::Owned(poisonguard_neighbors::knn_graph_owned(
                s.transform(self.rows.view()),
                k,
                poisonguard_neighbors::KnnMode::Exact,
            )?),
            (None, None) => Cow::Owned(poisonguard_neighbors::exact_knn(self.rows.view(), k)?),
        })
    }

    /// The `k` nearest training rows of every row of `data`, mapped into the same space: by an
    /// exact search, or, above [`AUTO_APPROX_ROWS`] training rows with more than 12 features
    /// (where the audit's own graphs are approximate), in an inverted-file index over the
    /// training rows, placed at the first query and kept for the next ones (a batched audit
    /// asks batch after batch).
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
        let (n, d) = self.rows.dim();
        let large = n > AUTO_APPROX_ROWS && d > KDTREE_MAX_DIM;
        let index = large.then(|| {
            self.index.get_or_init(|| {
                let built = match &self.scaler {
                    Some(s) => IvfIndex::build(
                        s.transform(self.rows.view()).view(),
                        ApproxParams::default(),
                    ),
                    None => IvfIndex::build(self.rows.view(), ApproxParams::default()),
                };
                built.ok()
            })
        });
        let found = match (index.and_then(Option::as_ref), &self.scaler) {
            (Some(index), Some(s)) => index.query(s.transform(data.features()).view(), k),
            (Some(index), None) => index.query(data.features(), k),
            (None, Some(s)) => {
                let reference = s.transform(self.rows.view());
                let queries = s.transform(data.features());
                poisonguard_neighbors::exact_knn_query(reference.view(), queries.view(), k)
            }
            (None, None) => {
                poisonguard_neighbors::exact_knn_query(self.rows.view(), data.features(), k)
            }
        };
        found.map_err(|e| DataError::Detector { detector, message: e.to_string() })
    }
}
