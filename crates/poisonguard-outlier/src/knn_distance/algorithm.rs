use ndarray::{Array2, ArrayView1, ArrayView2};
use poisonguard_core::{KnnGraph, Reason};
use poisonguard_neighbors::{exact_knn, exact_knn_query};

use super::hyperparams::{KnnDistanceModelParams, KnnStatistic};
use crate::error::Result;
use crate::model::{Outlier, OutlierModel};

/// A fitted kNN distance detector; see the [module docs](crate::knn_distance).
pub type KnnDistance = Outlier<KnnDistanceModel>;

/// One fitted group of [`KnnDistance`]: the training rows it scores new rows against.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
pub struct KnnDistanceModel {
    train: Array2<f32>,
    params: KnnDistanceModelParams,
}

pub(crate) fn statistic(distances: &[f32], statistic: KnnStatistic) -> f64 {
    let k = distances.len();
    match statistic {
        KnnStatistic::Largest => f64::from(distances[k - 1]),
        KnnStatistic::Mean => distances.iter().map(|&d| f64::from(d)).sum::<f64>() / k as f64,
        // distances are ascending; numpy's median of an even count averages the middle two
        KnnStatistic::Median if k % 2 == 1 => f64::from(distances[k / 2]),
        KnnStatistic::Median => {
            (f64::from(distances[k / 2 - 1]) + f64::from(distances[k / 2])) / 2.0
        }
    }
}

fn scores(graph: &KnnGraph, stat: KnnStatistic) -> Vec<f64> {
    (0..graph.n_samples()).map(|i| statistic(graph.distances(i), stat)).collect()
}

impl OutlierModel for KnnDistanceModel {
    type Params = KnnDistanceModelParams;
    const INFO: poisonguard_core::DetectorInfo = poisonguard_core::DetectorInfo {
        id: poisonguard_core::DetectorId::new("knn_distance"),
        family: poisonguard_core::Family::Outlier,
        threat: poisonguard_core::Threat::InjectedSamples,
        needs_labels: false,
        training_scores: poisonguard_core::TrainingScores::LeaveOneOut,
        randomized: false,
        score: "distance to the k-th (or mean, median of the k) nearest neighbours, k = 5",
        auto: poisonguard_core::AutoThreshold::Null,
        auto_threshold: "robust z-score of the training scores (median + 3.5 MAD-sd)",
        p_value: "robust exponential tail of the training scores (median and 90th percentile)",
        paper: "S. Ramaswamy, R. Rastogi, K. Shim. Efficient Algorithms for Mining Outliers from Large Data Sets. SIGMOD 2000",
    };

    fn min_rows(params: &Self::Params) -> usize {
        params.k + 1
    }

    fn fit(params: &Self::Params, x: ArrayView2<'_, f32>, _seed: u64) -> Result<(Self, Vec<f64>)> {
        let graph = exact_knn(x, params.k)?;
        let s = scores(&graph, params.statistic);
        Ok((Self { train: x.to_owned(), params: *params }, s))
    }

    fn knn_k(params: &Self::Params) -> Option<usize> {
        Some(params.k)
    }

    fn fit_graph(
        params: &Self::Params,
        x: ArrayView2<'_, f32>,
        graph: &KnnGraph,
    ) -> Option<Result<(Self, Vec<f64>)>> {
        let s = scores(&graph.truncate(params.k), params.statistic);
        Some(Ok((Self { train: x.to_owned(), params: *params }, s)))
    }

    fn score(&self, x: ArrayView2<'_, f32>) -> Result<Vec<f64>> {
        let graph = exact_knn_query(self.train.view(), x, self.params.k)?;
        Ok(scores(&graph, self.params.statistic))
    }

    fn explain(
        &self,
        _row: ArrayView1<'_, f32>,
        score: f64,
        _: &dyn Fn(usize) -> String,
    ) -> Option<Reason> {
        Some(Reason::FarFromNeighbors {
            k: self.params.k,
            statistic: self.params.statistic.name(),
            distance: score,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_by_hand() {
        let d = [1.0f32, 2.0, 4.0, 8.0];
        assert_eq!(statistic(&d, KnnStatistic::Largest), 8.0);
        assert_eq!(statistic(&d, KnnStatistic::Mean), 3.75);
        assert_eq!(statistic(&d, KnnStatistic::Median), 3.0);
        assert_eq!(statistic(&d[..3], KnnStatistic::Median), 2.0);
    }
}
