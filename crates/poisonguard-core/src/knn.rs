//! [`KnnGraph`]: the k nearest neighbours of every row, shared by several detectors, and the
//! [`FitContext`] that carries it to them.

/// The `k` nearest neighbours of every row (self excluded), ascending by distance, ties by index.
#[derive(Debug, Clone, PartialEq)]
pub struct KnnGraph {
    n_samples: usize,
    k: usize,
    indices: Vec<u32>,
    distances: Vec<f32>,
}

impl KnnGraph {
    /// Wraps row-major `n_samples x k` neighbour indices and Euclidean distances (built by
    /// `poisonguard-neighbors`).
    ///
    /// # Panics
    /// If the lengths are not `n_samples * k` (a programming error of the builder).
    pub fn new(n_samples: usize, k: usize, indices: Vec<u32>, distances: Vec<f32>) -> Self {
        assert_eq!(indices.len(), n_samples * k, "indices length");
        assert_eq!(distances.len(), n_samples * k, "distances length");
        Self { n_samples, k, indices, distances }
    }

    /// Rows.
    pub fn n_samples(&self) -> usize {
        self.n_samples
    }

    /// Neighbours per row.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Neighbour indices of row `i`, nearest first.
    ///
    /// # Panics
    /// If `i >= n_samples`.
    pub fn neighbors(&self, i: usize) -> &[u32] {
        &self.indices[i * self.k..(i + 1) * self.k]
    }

    /// Euclidean distances of row `i`'s neighbours, ascending.
    ///
    /// # Panics
    /// If `i >= n_samples`, or the graph keeps no distances ([`KnnGraph::without_distances`]:
    /// an audit drops them when no detector that reads the graph declares it reads them,
    /// [`Detector::knn_distances`](crate::Detector::knn_distances)).
    pub fn distances(&self, i: usize) -> &[f32] {
        assert!(self.has_distances(), "this kNN graph keeps neighbour indices only");
        &self.distances[i * self.k..(i + 1) * self.k]
    }

    /// Whether the graph keeps its distances (see [`KnnGraph::without_distances`]).
    pub fn has_distances(&self) -> bool {
        self.distances.len() == self.indices.len()
    }

    /// The graph without its distances, half its memory (`4 n k` bytes of `8 n k`), for
    /// detectors that read only who the neighbours are ([`KnnGraph::distances`] then panics).
    pub fn without_distances(mut self) -> Self {
        self.distances = Vec::new();
        self
    }

    /// The same graph with every distance multiplied by `factor` (> 0): a search run on rows
    /// scaled by `1 / factor` (to keep squared norms in f32 range) reports distances in the
    /// original units.
    pub fn scale_distances(mut self, factor: f32) -> Self {
        if factor != 1.0 {
            self.distances.iter_mut().for_each(|d| *d *= factor);
        }
        self
    }

    /// The graph restricted to the first `k` neighbours of every row (`k <= self.k()`), so that
    /// one search serves detectors with different `k`.
    ///
    /// # Panics
    /// If `k` is 0 or larger than [`KnnGraph::k`].
    pub fn truncate(&self, k: usize) -> KnnGraph {
        assert!(k >= 1 && k <= self.k, "truncate to {k} of {}", self.k);
        let mut indices = Vec::with_capacity(self.n_samples * k);
        let mut distances =
            Vec::with_capacity(if self.has_distances() { self.n_samples * k } else { 0 });
        for i in 0..self.n_samples {
            indices.extend_from_slice(&self.neighbors(i)[..k]);
            if self.has_distances() {
                distances.extend_from_slice(&self.distances(i)[..k]);
            }
        }
        Self { n_samples: self.n_samples, k, indices, distances }
    }
}

/// What an audit shares with the detectors it fits: kNN graphs of the dataset's rows, computed
/// once for every detector that needs neighbours, and whether the fitted detector outlives the
/// audit of its own rows.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct FitContext<'a> {
    /// The exact kNN graph of the dataset's rows (self excluded), if one was computed.
    pub knn: Option<&'a KnnGraph>,
    /// The exact kNN graph of the dataset's standardized rows
    /// ([`Standardizer`](crate::Standardizer)), if one was computed.
    pub standardized_knn: Option<&'a KnnGraph>,
    /// The fit is for a scan of these rows only: the caller reads the fitted detector's
    /// training detection and findings and drops it (it will not score new rows or be saved).
    /// A detector may then keep less: its fitted state may refuse
    /// [`detect`](crate::FittedDetector::detect) with a clear error. Off by default.
    pub scan_only: bool,
}

impl<'a> FitContext<'a> {
    /// The same context, for a scan only ([`FitContext::scan_only`]).
    #[must_use]
    pub fn for_scan(mut self) -> Self {
        self.scan_only = true;
        self
    }

    /// A context carrying `graph` of the features as given.
    pub fn with_knn(graph: &'a KnnGraph) -> Self {
        Self { knn: Some(graph), standardized_knn: None, scan_only: false }
    }

    /// Adds a graph of the standardized features.
    pub fn and_standardized_knn(mut self, graph: &'a KnnGraph) -> Self {
        self.standardized_knn = Some(graph);
        self
    }

    /// The shared graph when it covers `n_samples` rows with at least `k` neighbours.
    pub fn knn_for(&self, n_samples: usize, k: usize) -> Option<&'a KnnGraph> {
        self.knn.filter(|g| g.n_samples() == n_samples && g.k() >= k)
    }

    /// The shared graph of standardized features when it covers `n_samples` rows with at least
    /// `k` neighbours.
    pub fn standardized_knn_for(&self, n_samples: usize, k: usize) -> Option<&'a KnnGraph> {
        self.standardized_knn.filter(|g| g.n_samples() == n_samples && g.k() >= k)
    }
}

#[cfg(test)]
mod tests {
    use super::KnnGraph;

    fn graph() -> KnnGraph {
        KnnGraph::new(3, 2, vec![1, 2, 0, 2, 1, 0], vec![1.0, 2.0, 1.0, 1.5, 1.5, 2.0])
    }

    #[test]
    fn a_graph_without_distances_keeps_its_neighbours_and_truncates() {
        let full = graph();
        let bare = graph().without_distances();
        assert!(full.has_distances() && !bare.has_distances());
        for i in 0..3 {
            assert_eq!(full.neighbors(i), bare.neighbors(i));
        }
        let cut = bare.truncate(1);
        assert!(!cut.has_distances());
        assert_eq!((0..3).map(|i| cut.neighbors(i)[0]).collect::<Vec<_>>(), [1, 0, 1]);
        assert_eq!(full.truncate(1).distances(2), [1.5]);
    }

    #[test]
    #[should_panic(expected = "neighbour indices only")]
    fn reading_distances_a_graph_dropped_panics_with_why() {
        let _ = graph().without_distances().distances(0);
    }
}
