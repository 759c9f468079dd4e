use ndarray::{Array2, ArrayView1, ArrayView2};
use poisonguard_core::{KnnGraph, Reason};
use poisonguard_neighbors::{exact_knn, exact_knn_query};

use super::hyperparams::LofModelParams;
use crate::error::Result;
use crate::model::{Outlier, OutlierModel};

/// A fitted LOF detector; see the [module docs](crate::lof).
pub type Lof = Outlier<LofModel>;

/// One fitted group of [`Lof`]: training rows, their k-distances and local reachability
/// densities.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
pub struct LofModel {
    train: Array2<f32>,
    k: usize,
    kdist: Vec<f64>,
    lrd: Vec<f64>,
}

/// Local reachability density of a row whose neighbours (in the training rows) are `graph`'s
/// row `i`.
fn lrd_of(graph: &KnnGraph, i: usize, kdist: &[f64]) -> f64 {
    let k = graph.k() as f64;
    let reach: f64 = graph
        .neighbors(i)
        .iter()
        .zip(graph.distances(i))
        .map(|(&j, &d)| kdist[j as usize].max(f64::from(d)))
        .sum();
    1.0 / (reach / k + 1e-10)
}

fn lof_of(graph: &KnnGraph, i: usize, lrd_i: f64, lrd: &[f64]) -> f64 {
    let k = graph.k() as f64;
    graph.neighbors(i).iter().map(|&j| lrd[j as usize] / lrd_i).sum::<f64>() / k
}

impl OutlierModel for LofModel {
    type Params = LofModelParams;
    const INFO: poisonguard_core::DetectorInfo = poisonguard_core::DetectorInfo {
        id: poisonguard_core::DetectorId::new("lof"),
        family: poisonguard_core::Family::Outlier,
        threat: poisonguard_core::Threat::InjectedSamples,
        needs_labels: false,
        training_scores: poisonguard_core::TrainingScores::LeaveOneOut,
        randomized: false,
        score: "local outlier factor, k = 50: the neighbours' local density over the row's",
        auto: poisonguard_core::AutoThreshold::Null,
        auto_threshold: "robust z-score of the training scores (median + 3.5 MAD-sd)",
        p_value: "robust exponential tail of the training scores (median and 90th percentile)",
        paper: "M. M. Breunig, H.-P. Kriegel, R. T. Ng, J. Sander. LOF: Identifying Density-Based Local Outliers. SIGMOD 2000",
    };

    fn min_rows(params: &Self::Params) -> usize {
        params.k + 1
    }

    fn fit(params: &Self::Params, x: ArrayView2<'_, f32>, _seed: u64) -> Result<(Self, Vec<f64>)> {
        Ok(Self::from_graph(params, x, &exact_knn(x, params.k)?))
    }

    fn knn_k(params: &Self::Params) -> Option<usize> {
        Some(params.k)
    }

    fn fit_graph(
        params: &Self::Params,
        x: ArrayView2<'_, f32>,
        graph: &KnnGraph,
    ) -> Option<Result<(Self, Vec<f64>)>> {
        Some(Ok(Self::from_graph(params, x, &graph.truncate(params.k))))
    }

    fn score(&self, x: ArrayView2<'_, f32>) -> Result<Vec<f64>> {
        let graph = exact_knn_query(self.train.view(), x, self.k)?;
        Ok((0..graph.n_samples())
            .map(|i| lof_of(&graph, i, lrd_of(&graph, i, &self.kdist), &self.lrd))
            .collect())
    }

    fn explain(
        &self,
        _row: ArrayView1<'_, f32>,
        score: f64,
        _: &dyn Fn(usize) -> String,
    ) -> Option<Reason> {
        Some(Reason::LowLocalDensity { k: self.k, lof: score })
    }
}

impl LofModel {
    /// The model and the training LOF of every row, from the graph of its `k` neighbours.
    fn from_graph(
        params: &LofModelParams,
        x: ArrayView2<'_, f32>,
        graph: &KnnGraph,
    ) -> (Self, Vec<f64>) {
        let n = graph.n_samples();
        let kdist: Vec<f64> = (0..n).map(|i| f64::from(graph.distances(i)[params.k - 1])).collect();
        let lrd: Vec<f64> = (0..n).map(|i| lrd_of(graph, i, &kdist)).collect();
        let scores = (0..n).map(|i| lof_of(graph, i, lrd[i], &lrd)).collect();
        (Self { train: x.to_owned(), k: params.k, kdist, lrd }, scores)
    }
}
