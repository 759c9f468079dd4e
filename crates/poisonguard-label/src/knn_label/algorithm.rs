use poisonguard_core::{
    ClassFinding, DataError, Dataset, Detection, Detector, DetectorId, FitContext, FittedDetector,
    KnnGraph, LabelMap, Labels, Reason,
};

use statrs::distribution::{Binomial, DiscreteCDF};

use super::{KnnLabelParams, KnnLabelValidParams, MAX_AUTO_K, MIN_AUTO_K};
use crate::error::Result;
use crate::reference::Reference;

/// A fitted Deep k-NN label detector; see the [module docs](crate::knn_label).
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
pub struct KnnLabel {
    k: usize,
    reference: Reference,
    reference_classes: Vec<u32>,
    label_map: LabelMap,
    training: Detection,
    findings: Vec<ClassFinding>,
}

impl KnnLabel {
    /// What the detector declares about itself (see `poisonguard detectors`).
    pub const INFO: poisonguard_core::DetectorInfo = poisonguard_core::DetectorInfo {
        id: poisonguard_core::DetectorId::new("knn_label"),
        family: poisonguard_core::Family::Label,
        needs_labels: true,
        scope: poisonguard_core::FitScope::Global,
        space: poisonguard_core::FeatureSpace::Standardized,
        graph: poisonguard_core::GraphNeed::Standardized,
        training_scores: poisonguard_core::TrainingScores::LeaveOneOut,
        randomized: false,
        score: "-log10 p of a sign test that the plurality label of the row's k nearest neighbours (standardized features, k = sqrt of the smallest class size in [5, 50]) outvotes its own",
        auto: poisonguard_core::AutoThreshold::Fixed(KNN_AUTO),
        auto_threshold: "p < 0.05: -log10(0.05)",
        p_value: "the sign test of the plurality neighbour label against the row's own (10^-score)",
        paper: "N. Peri, N. Gupta, W. R. Huang, L. Fowl, C. Zhu, S. Feizi, T. Goldstein, J. P. Dickerson. Deep k-NN Defense against Clean-label Data Poisoning Attacks. ECCV Workshops 2020",
    };

    /// The detector's id.
    pub const ID: DetectorId = Self::INFO.id;

    /// Default hyperparameters.
    ///
    /// # Example: a flipped label among clean clusters
    /// ```
    /// use ndarray::Array2;
    /// use poisonguard_core::{Dataset, Detector, FittedDetector, Labels, LabelValue};
    /// use poisonguard_label::KnnLabel;
    /// // two well separated clusters of 30 rows; row 0 sits in cluster 0 but is labelled 1
    /// let x = Array2::from_shape_fn((60, 2), |(i, j)| (i / 30) as f32 * 10.0 + ((i * 7 + j * 3) % 5) as f32 * 0.1);
    /// let mut y: Vec<LabelValue> = (0..60).map(|i| LabelValue::Int((i / 30) as i64)).collect();
    /// y[0] = LabelValue::Int(1);
    /// let data = Dataset::new(x)?.with_labels(Labels::from_values(&y))?;
    /// let fitted = KnnLabel::params().fit(&data)?;
    /// assert!(fitted.training().is_flagged(0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn params() -> KnnLabelParams {
        KnnLabelParams::default()
    }

    /// Neighbours per row used by the fit.
    pub fn k(&self) -> usize {
        self.k
    }
}

/// The automatic `k`: sqrt of the smallest present class's size, clamped, below `n`.
fn auto_k(labels: &Labels, n: usize) -> usize {
    let smallest =
        labels.rows_by_class().iter().map(Vec::len).filter(|&s| s > 0).min().unwrap_or(1);
    let k = (smallest as f64).sqrt().ceil() as usize;
    k.clamp(MIN_AUTO_K, MAX_AUTO_K).min(n.saturating_sub(1)).max(1)
}

/// One-sided sign-test p-value of `other` votes outvoting `own` votes:
/// `P(X >= other)`, `X ~ Binomial(own + other, 1/2)`.
fn sign_test(own: u32, other: u32) -> f64 {
    if other == 0 {
        return 1.0;
    }
    Binomial::new(0.5, u64::from(own + other)).map_or(1.0, |b| b.sf(u64::from(other - 1)))
}

/// What the vote of one row's neighbours says.
#[derive(Debug, Clone, Copy)]
struct Vote {
    plurality: u32,
    plurality_share: f64,
    own_share: f64,
    p_value: f64,
}

impl Vote {
    /// The score: `-log10` of the sign-test p-value.
    fn score(&self) -> f64 {
        -self.p_value.max(f64::MIN_POSITIVE).log10()
    }

    fn reason(&self, k: usize, map: &LabelMap) -> Reason {
        Reason::NeighborLabelDisagreement {
            k,
            plurality: map.values()[self.plurality as usize].clone(),
            plurality_share: self.plurality_share,
            own_share: self.own_share,
            p_value: self.p_value,
        }
    }
}

/// Vote of one row's neighbours.
fn vote(own: u32, neighbours: &[u32], classes: &[u32], counts: &mut [u32]) -> Vote {
    counts.iter_mut().for_each(|c| *c = 0);
    for &j in neighbours {
        counts[classes[j as usize] as usize] += 1;
    }
    let own_votes = counts[own as usize];
    let (mut best, mut best_votes) = (own, 0u32);
    for (c, &v) in counts.iter().enumerate() {
        if c as u32 != own && v > best_votes {
            best = c as u32;
            best_votes = v;
        }
    }
    let k = neighbours.len() as f64;
    Vote {
        plurality: best,
        plurality_share: f64::from(best_votes) / k,
        own_share: f64::from(own_votes) / k,
        p_value: sign_test(own_votes, best_votes),
    }
}

/// Votes of `graph`'s rows against `classes` of the reference rows.
fn votes(graph: &KnnGraph, own: &[u32], classes: &[u32], n_classes: usize) -> Vec<Vote> {
    let mut counts = vec![0u32; n_classes];
    (0..graph.n_samples()).map(|i| vote(own[i], graph.neighbors(i), classes, &mut counts)).collect()
}

/// The automatic threshold, `-log10(SIGN_TEST_ALPHA)`: the score of a sign-test p-value of
/// 0.05 (a test checks the literal against the level).
const KNN_AUTO: f64 = 1.301_029_995_663_981_3;

/// The score is `-log10` of the sign-test p-value: that test is the row's p-value.
const NEG_LOG10: poisonguard_core::Calibration = poisonguard_core::Calibration::NegLog10;

impl KnnLabelValidParams {
    fn fit_with(&self, data: &Dataset, shared: Option<&KnnGraph>) -> Result<KnnLabel> {
        let labels = data.require_classes(KnnLabel::ID.as_str())?;
        let n = data.n_samples();
        let k = self.k.unwrap_or_else(|| auto_k(labels, n));
        let reference = Reference::new(data, self.standardize);
        let graph = reference.graph(k, shared)?;
        let classes: Vec<u32> = labels.ids().iter().map(|c| c.0).collect();
        let n_classes = labels.map().n_classes();
        let why = votes(&graph, &classes, &classes, n_classes);
        let map = labels.map().clone();
        let scores: Vec<f64> = why.iter().map(Vote::score).collect();
        let threshold = self.threshold.resolve(KnnLabel::INFO.auto, None).fit(&scores)?;
        let training = Detection::with_calibration(scores, threshold, NEG_LOG10, |i, _| {
            why[i].reason(k, &map)
        })?;
        let findings = labels
            .rows_by_class()
            .iter()
            .enumerate()
            .filter(|(_, rows)| !rows.is_empty())
            .map(|(c, rows)| {
                let m = rows.len() as f64;
                let contradicted =
                    rows.iter().filter(|&&i| training.is_flagged(i)).count() as f64 / m;
                let agreement = rows.iter().map(|&i| why[i].own_share).sum::<f64>() / m;
                ClassFinding::new(
                    poisonguard_core::ClassId(c as u32),
                    map.values()[c].clone(),
                    rows.len(),
                    contradicted,
                    vec![
                        (poisonguard_core::ClassStatistic::ContradictedShare, contradicted),
                        (poisonguard_core::ClassStatistic::MeanAgreement, agreement),
                    ],
                )
            })
            .collect();
        Ok(KnnLabel {
            k,
            reference,
            reference_classes: classes,
            label_map: map,
            training,
            findings,
        })
    }
}

impl Detector for KnnLabelValidParams {
    type Fitted = KnnLabel;
    type Error = crate::Error;
    const INFO: poisonguard_core::DetectorInfo = KnnLabel::INFO;

    fn fit(&self, data: &Dataset) -> Result<KnnLabel> {
        self.fit_with(data, None)
    }

    /// Reads the audit's shared graph of the features as given when `standardize` is off and
    /// `k` is set.
    fn knn_k(&self) -> Option<usize> {
        if self.standardize { None } else { self.k }
    }

    fn standardized_knn_k(&self, data: &Dataset) -> Option<usize> {
        let labels = data.labels().filter(|_| self.standardize)?;
        Some(self.k.unwrap_or_else(|| auto_k(labels, data.n_samples())))
    }

    fn fit_in(&self, data: &Dataset, ctx: &FitContext<'_>) -> Result<KnnLabel> {
        let n = data.n_samples();
        let shared = match (self.standardize, self.standardized_knn_k(data), self.k) {
            (true, Some(k), _) => ctx.standardized_knn_for(n, k),
            (false, _, Some(k)) => ctx.knn_for(n, k),
            _ => None,
        };
        self.fit_with(data, shared)
    }
}

impl FittedDetector for KnnLabel {
    fn id(&self) -> DetectorId {
        Self::ID
    }

    fn training(&self) -> &Detection {
        &self.training
    }

    fn class_findings(&self) -> &[ClassFinding] {
        &self.findings
    }

    /// Scores new labelled rows by the vote of their `k` nearest training rows.
    fn detect(&self, data: &Dataset) -> std::result::Result<Detection, DataError> {
        let graph = self.reference.query(data, self.k, Self::ID.as_str())?;
        let labels =
            data.labels().ok_or(DataError::LabelsRequired { detector: Self::ID.as_str() })?;
        let own: Vec<u32> = labels.ids_in(&self.label_map)?.iter().map(|c| c.0).collect();
        let why = votes(&graph, &own, &self.reference_classes, self.label_map.n_classes());
        let scores = why.iter().map(Vote::score).collect();
        Detection::with_calibration(scores, self.training.fitted_threshold(), NEG_LOG10, |i, _| {
            why[i].reason(self.k, &self.label_map)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_declared_cut_off_is_the_sign_test_level() {
        assert_eq!(KNN_AUTO, -super::super::SIGN_TEST_ALPHA.log10());
    }
}
