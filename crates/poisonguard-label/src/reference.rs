//! The training rows a neighbour-based label detector keeps to score new rows: standardized
//! (the default of `knn_label`) or as given, with the kNN search done the same way for both
//! detectors.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use ndarray::Array2;
use poisonguard_core::{DataError, Dataset, KnnGraph, Standardizer};
use poisonguard_neighbors::{AUTO_APPROX_ROWS, ApproxParams, IvfIndex, KDTREE_MAX_DIM};

use crate::error::Result;

/// The training rows a neighbour detector searches new rows among, shared with the dataset
/// they came from (no copy), and the standardizer that maps rows into the space it searches.
/// The standardized copy of the training rows is made only while a search needs it (a fit
/// without a shared graph, `detect`), never kept. An audit that scores batches against
/// `knn_label` and `duplicates` searches once in one of these for both
/// ([`FittedDetector::detect_in`](poisonguard_core::FittedDetector::detect_in)).
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
pub struct Reference {
    scaler: Option<Standardizer>,
    rows: Arc<Array2<f32>>,
    /// The index new rows are searched in, built at the first query of a large reference
    /// ([`Reference::query`]); not saved.
    #[serde(skip)]
    index: OnceLock<Option<IvfIndex>>,
}

impl Reference {
    /// The rows of `data`, searched standardized when `standardize` is set.
    pub fn new(data: &Dataset, standardize: bool) -> Self {
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
    /// asks batch after batch). `detector` names the search in errors.
    ///
    /// # Errors
    /// [`DataError::FeatureCountMismatch`], or [`DataError::Detector`] when the search fails
    /// (`k` not below the training rows).
    pub fn query(
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

    /// Whether the rows are searched standardized.
    pub(crate) fn standardizes(&self) -> bool {
        self.scaler.is_some()
    }

    /// [`Reference::query`], or the `shared` search of the same rows when it covers every row
    /// of `data` with at least `k` neighbours (truncated to `k`).
    pub(crate) fn query_or_shared<'g>(
        &self,
        data: &Dataset,
        k: usize,
        shared: Option<&'g KnnGraph>,
        detector: &'static str,
    ) -> std::result::Result<Cow<'g, KnnGraph>, DataError> {
        match shared.filter(|g| self.standardizes() && g.n_samples() == data.n_samples()) {
            Some(g) if g.k() == k => Ok(Cow::Borrowed(g)),
            Some(g) if g.k() > k => Ok(Cow::Owned(g.truncate(k))),
            _ => self.query(data, k, detector).map(Cow::Owned),
        }
    }
}

#[cfg(test)]
mod tests {
    use ndarray::Array2;
    use poisonguard_core::{Dataset, Detector, FittedDetector, LabelValue, Labels};

    use super::Reference;
    use crate::{Duplicates, KnnLabel};

    /// The search an audit shares gives `knn_label` and `duplicates` the detections of their
    /// own searches, row for row.
    #[test]
    fn a_shared_search_detects_as_the_detectors_own() {
        let table = |n: usize, shift: usize| {
            let x = Array2::from_shape_fn((n, 3), |(i, j)| {
                let i = i + shift;
                (i % 3) as f32 * 2.0 + ((i * 7 + j * 13) % 17) as f32 * 0.1
            });
            // every eleventh row carries the next class's label
            let y: Vec<LabelValue> = (0..n)
                .map(|i| {
                    LabelValue::Int(
                        (((i + shift) % 3) + usize::from((i + shift).is_multiple_of(11))) as i64
                            % 3,
                    )
                })
                .collect();
            Dataset::new(x).unwrap().with_labels(Labels::from_values(&y)).unwrap()
        };
        let (train, new) = (table(300, 0), table(120, 1000));
        // these three columns share one unit: standardized on request
        let knn = KnnLabel::params().standardize(true).fit(&train).unwrap();
        let dup = Duplicates::params().fit(&train).unwrap();
        let k =
            [knn.standardized_query_k(), dup.standardized_query_k()].into_iter().flatten().max();
        let k = k.expect("both search the standardized training rows");
        let shared = Reference::new(&train, true).query(&new, k, "test").unwrap();
        for fitted in [&knn as &dyn FittedDetector, &dup] {
            let (own, with) =
                (fitted.detect(&new).unwrap(), fitted.detect_in(&new, Some(&shared)).unwrap());
            assert_eq!(own.scores(), with.scores(), "{}", fitted.id());
            assert_eq!(own.p_values(), with.p_values(), "{}", fitted.id());
            assert_eq!(own.flagged(), with.flagged(), "{}", fitted.id());
        }
        assert!(knn.detect(&new).unwrap().n_flagged() > 0);
    }
}
