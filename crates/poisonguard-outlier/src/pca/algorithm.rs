use faer::Mat;
use ndarray::{ArrayView1, ArrayView2};
use poisonguard_core::Reason;

use super::hyperparams::PcaModelParams;
use crate::error::{Error, Result};
use crate::model::{MergeableModel, Outlier, OutlierModel};
use poisonguard_linalg::{Moments, a_b, sym_eigen};

/// A fitted PCA detector; see the [module docs](crate::pca).
pub type Pca = Outlier<PcaModel>;

/// Explained-variance ratios are floored at this share of the total variance, so that
/// numerically null components (rank-deficient data) weigh heavily but finitely.
const MIN_RATIO: f64 = 1e-12;

/// One fitted group of [`Pca`]: standardization, principal axes and their weights.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
pub struct PcaModel {
    mean: Vec<f64>,
    scale: Vec<f64>,
    /// `d x m`: the principal axes as columns.
    #[serde(with = "poisonguard_linalg::mat_serde")]
    axes: Mat<f64>,
    /// Explained-variance ratio of each axis.
    ratio: Vec<f64>,
}

impl PcaModel {
    fn standardized(&self, x: ArrayView2<'_, f32>) -> Mat<f64> {
        Mat::from_fn(x.nrows(), x.ncols(), |i, j| {
            (f64::from(x[[i, j]]) - self.mean[j]) / self.scale[j]
        })
    }

    fn scores(&self, x: ArrayView2<'_, f32>) -> Vec<f64> {
        let z = self.standardized(x);
        let proj = a_b(z.as_ref(), self.axes.as_ref()); // n x m
        (0..z.nrows())
            .map(|i| {
                let norm2: f64 = (0..z.ncols()).map(|j| z[(i, j)] * z[(i, j)]).sum();
                (0..self.ratio.len())
                    .map(|c| (norm2 - 2.0 * proj[(i, c)] + 1.0).max(0.0).sqrt() / self.ratio[c])
                    .sum()
            })
            .collect()
    }
}

/// The summary PCA is fitted from: the row count, the column means and the centred co-moment
/// matrix ([`Moments`], merged by Chan, Golub & LeVeque's pairwise update): a fit on shards equals
/// the fit on all rows up to floating-point rounding. Its size is `d x d`, whatever the rows.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
pub struct PcaSummary(Moments);

impl poisonguard_core::Merge for PcaSummary {
    fn merge(&mut self, other: Self) -> std::result::Result<(), poisonguard_core::MergeError> {
        self.0
            .merge(other.0)
            .map_err(|(left, right)| poisonguard_core::MergeError::FeatureCount { left, right })
    }
}

impl MergeableModel for PcaModel {
    type Summary = PcaSummary;

    fn summarize(_: &Self::Params, x: ArrayView2<'_, f32>) -> Result<PcaSummary> {
        let (n, d) = (x.nrows(), x.ncols());
        crate::model::check_covariance_width("pca", d)?;
        let mut mean = vec![0.0f64; d];
        for row in x.rows() {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += f64::from(v);
            }
        }
        mean.iter_mut().for_each(|m| *m /= n.max(1) as f64);
        let c = Mat::from_fn(n, d, |i, j| f64::from(x[[i, j]]) - mean[j]);
        Ok(PcaSummary(Moments::of_centred(mean, c.as_ref())))
    }

    fn summary_rows(summary: &PcaSummary) -> usize {
        summary.0.n
    }

    /// Standardization (population sd of each column, 1 for a constant one, as scikit-learn's
    /// `StandardScaler`), the covariance of the standardized rows (`/ (n - 1)`), its top
    /// `min(n, d)` eigenvectors and their explained-variance ratios.
    fn from_summary(params: &Self::Params, summary: PcaSummary) -> Result<Self> {
        let Moments { n, mean, comoment } = summary.0;
        let d = mean.len();
        let scale: Vec<f64> = (0..d)
            .map(|j| {
                let var = comoment[(j, j)] / n as f64;
                if params.standardize && var > 0.0 { var.sqrt() } else { 1.0 }
            })
            .collect();
        let denom = n as f64 - 1.0;
        let cov = Mat::from_fn(d, d, |r, c| comoment[(r, c)] / (scale[r] * scale[c] * denom));
        let (vals, vecs) =
            sym_eigen(cov.as_ref()).ok_or(Error::EigenNotConverged { detector: "pca" })?;
        let total: f64 = vals.iter().map(|v| v.max(0.0)).sum();
        let m = n.min(d);
        // eigenvalues ascending: the top m are the last m
        let order: Vec<usize> = (d - m..d).rev().collect();
        let axes = Mat::from_fn(d, m, |r, c| vecs[(r, order[c])]);
        let ratio = order
            .iter()
            .map(|&k| if total > 0.0 { (vals[k].max(0.0) / total).max(MIN_RATIO) } else { 1.0 })
            .collect();
        Ok(Self { mean, scale, axes, ratio })
    }
}

impl OutlierModel for PcaModel {
    type Params = PcaModelParams;
    const INFO: poisonguard_core::DetectorInfo = poisonguard_core::DetectorInfo {
        id: poisonguard_core::DetectorId::new("pca"),
        family: poisonguard_core::Family::Outlier,
        threat: poisonguard_core::Threat::InjectedSamples,
        needs_labels: false,
        training_scores: poisonguard_core::TrainingScores::InSample,
        randomized: false,
        score: "weighted distance of the standardized row to every principal axis (PyOD's PCA score)",
        auto: poisonguard_core::AutoThreshold::Null,
        auto_threshold: "robust z-score of the training scores (median + 3.5 MAD-sd)",
        p_value: "robust exponential tail of the training scores (median and 90th percentile)",
        paper: "M.-L. Shyu, S.-C. Chen, K. Sarinnapakorn, L. Chang. A Novel Anomaly Detection Scheme Based on Principal Component Classifier. ICDM 2003",
    };

    fn min_rows(_: &Self::Params) -> usize {
        2
    }

    fn fit(params: &Self::Params, x: ArrayView2<'_, f32>, _seed: u64) -> Result<(Self, Vec<f64>)> {
        let model = Self::from_summary(params, Self::summarize(params, x)?)?;
        let scores = model.scores(x);
        Ok((model, scores))
    }

    fn score(&self, x: ArrayView2<'_, f32>) -> Result<Vec<f64>> {
        Ok(self.scores(x))
    }

    fn explain(
        &self,
        _row: ArrayView1<'_, f32>,
        _score: f64,
        _: &dyn Fn(usize) -> String,
    ) -> Option<Reason> {
        None
    }
}
