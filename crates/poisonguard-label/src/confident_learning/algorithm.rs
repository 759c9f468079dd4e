use ndarray::{Array2, ArrayView2};
use poisonguard_core::Calibration::Given;
use poisonguard_core::{
    ClassFinding, ClassId, DataError, Dataset, Detection, Detector, DetectorId, ESTIMATE_LEVEL,
    FittedDetector, LabelMap, NoiseMatrix, PoisonEstimate, Reason,
};

use super::calibration::{Calibrator, label_p_value};
use super::classifier::{FoldModels, cross_val_custom};
use super::cross_val::{FoldEnsemble, cross_val_sampled};
use super::logistic::LogisticSettings;
use super::{ConfidentLearningParams, ConfidentLearningValidParams, Ranking};
use crate::error::{Error, Result};

/// cleanlab's fuzz for probability comparisons.
const FUZZ: f64 = 1e-6;
/// cleanlab's lower bound on the per-class thresholds.
const MIN_THRESHOLD: f64 = 2e-6;

/// A fitted confident-learning detector; see the [module docs](crate::confident_learning).
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
pub struct ConfidentLearning {
    thresholds: Vec<f64>,
    /// Calibration of the label p-values; the probabilities as given in models saved before it.
    #[serde(default)]
    calibrator: Calibrator,
    ranking: Ranking,
    model: Option<FoldEnsemble>,
    /// The fold models of a user's classifier: in memory only.
    #[serde(skip)]
    custom: Option<FoldModels>,
    chosen_c: Option<f64>,
    label_map: LabelMap,
    training: Detection,
    noise: NoiseMatrix,
    findings: Vec<ClassFinding>,
    probabilities: Array2<f64>,
    estimate: PoisonEstimate,
}

impl ConfidentLearning {
    /// What the detector declares about itself (see `poisonguard detectors`).
    pub const INFO: poisonguard_core::DetectorInfo = poisonguard_core::DetectorInfo {
        id: poisonguard_core::DetectorId::new("confident_learning"),
        family: poisonguard_core::Family::Label,
        threat: poisonguard_core::Threat::LabelManipulation,
        needs_labels: true,
        training_scores: poisonguard_core::TrainingScores::OutOfFold,
        randomized: true,
        score: "1 - out-of-sample probability of the given label (given probabilities, or 5-fold cross-validated logistic regression with C chosen from 0.01-10 by the first fold's out-of-fold log loss), +1 for cleanlab's prune_by_noise_rate label issues",
        auto: poisonguard_core::AutoThreshold::Fixed(1.0),
        auto_threshold: "1: the label issues of the calibrated confident joint",
        p_value: "exact test of the given label under the out-of-fold class probabilities calibrated by maximum likelihood (a temperature and a uniform floor): sum of the probabilities of the labels at most as likely",
        paper: "C. G. Northcutt, L. Jiang, I. L. Chuang. Confident Learning: Estimating Uncertainty in Dataset Labels. JAIR 2021",
    };

    /// The detector's id.
    pub const ID: DetectorId = Self::INFO.id;

    /// Default hyperparameters.
    ///
    /// # Example: two classes, three flipped labels
    /// ```
    /// use ndarray::Array2;
    /// use poisonguard_core::{Dataset, Detector, FittedDetector, Labels, LabelValue};
    /// use poisonguard_label::ConfidentLearning;
    /// let x = Array2::from_shape_fn((80, 2), |(i, j)| (i % 2) as f32 * 4.0 + ((i * 7 + j * 5) % 9) as f32 * 0.2);
    /// let mut y: Vec<LabelValue> = (0..80).map(|i| LabelValue::Int((i % 2) as i64)).collect();
    /// for i in [0, 10, 20] { y[i] = LabelValue::Int(1); }
    /// let data = Dataset::new(x)?.with_labels(Labels::from_values(&y))?;
    /// let fitted = ConfidentLearning::params().fit(&data)?;
    /// // the three flipped rows score highest (which of them the count of label issues flags
    /// // depends on the folds' seed in so small a table)
    /// let s = fitted.training().scores();
    /// let mut order: Vec<usize> = (0..80).collect();
    /// order.sort_by(|&a, &b| s[b].total_cmp(&s[a]));
    /// order.truncate(3);
    /// order.sort();
    /// assert_eq!(order, [0, 10, 20]);
    /// assert!(fitted.training().n_flagged() >= 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn params() -> ConfidentLearningParams {
        ConfidentLearningParams::default()
    }

    /// The out-of-sample probabilities the fit used, `rows x classes`.
    pub fn probabilities(&self) -> ArrayView2<'_, f64> {
        self.probabilities.view()
    }

    /// The inverse L2 strength of the built-in classifier (chosen from
    /// [`C_GRID`](super::C_GRID) unless fixed); `None` when the dataset gave its own
    /// probabilities.
    pub fn chosen_c(&self) -> Option<f64> {
        self.chosen_c
    }

    /// The estimated number of wrong labels (the calibrated confident joint's off-diagonal
    /// total, as cleanlab's `estimate_num_label_issues`) with a bootstrap interval: label
    /// issues, natural class overlap included, not an estimate of poisoned rows.
    pub fn label_issue_estimate(&self) -> &PoisonEstimate {
        &self.estimate
    }

    /// The per-class confidence thresholds `t_j`.
    pub fn thresholds(&self) -> &[f64] {
        &self.thresholds
    }
}

/// Label quality of one row (lower = worse), as cleanlab's ranking methods.
fn quality(ranking: Ranking, p: &[f64], given: usize) -> f64 {
    let own = p[given];
    match ranking {
        Ranking::SelfConfidence => own,
        Ranking::NormalizedMargin => {
            let other = p
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != given)
                .map(|(_, &v)| v)
                .fold(f64::NEG_INFINITY, f64::max);
            (own - other + 1.0) / 2.0
        }
        Ranking::ConfidenceWeightedEntropy => {
            let k = p.len() as f64;
            let h: f64 = -p.iter().map(|&v| v.max(1e-6) * v.max(1e-6).ln()).sum::<f64>() / k.ln();
            let s = h / own.max(1e-6);
            (1.0 + s).ln() / s.max(1e-6)
        }
    }
}

/// The class a row confidently belongs to: among classes with `p(j) >= t_j`, the largest `p`.
fn confident_class(p: &[f64], thresholds: &[f64]) -> Option<usize> {
    // no list of the classes above (this runs for every row of 200 bootstrap resamples)
    let mut above = (0..p.len()).filter(|&j| p[j] >= thresholds[j] - FUZZ);
    match (above.next(), above.next()) {
        (None, _) => None,
        (Some(j), None) => Some(j),
        (Some(_), Some(_)) => Some(argmax(p)),
    }
}

fn argmax(p: &[f64]) -> usize {
    // first maximum, as numpy
    let mut best = 0;
    for j in 1..p.len() {
        if p[j] > p[best] {
            best = j;
        }
    }
    best
}

/// The argmax with the given label favoured by the fuzz: `true` when the given label wins.
fn given_is_top(p: &[f64], given: usize) -> bool {
    let mut q = p.to_vec();
    q[given] += FUZZ;
    argmax(&q) == given
}

/// Integers with the same (rounded) sum as `row`, as cleanlab's `round_preserving_sum`.
///
/// Callers pass counts of rows (finite, at most the row count). Anything else cannot loop: a
/// non-finite value gives all zeros, and the adjustment runs at most `row.len() + 1` rounds (one
/// suffices for finite counts, whose rounding errors sum to at most half the row's length).
fn round_preserving_sum(row: &[f64]) -> Vec<i64> {
    if row.iter().any(|v| !v.is_finite()) {
        return vec![0; row.len()];
    }
    let mut ints: Vec<f64> = row.iter().map(|v| v.round()).collect();
    let target = row.iter().sum::<f64>().round();
    for _ in 0..=row.len() {
        let diff = target - ints.iter().sum::<f64>();
        if diff.abs() < 0.5 {
            break;
        }
        let inc = if diff < 0.0 { -1.0 } else { 1.0 };
        let changes = (diff.abs().round() as usize).clamp(1, row.len().max(1));
        let mut order: Vec<usize> = (0..row.len()).collect();
        // largest residual first when adding, smallest first when removing
        order.sort_by(|&a, &b| {
            let (ra, rb) = (row[a] - ints[a], row[b] - ints[b]);
            if inc > 0.0 { rb.total_cmp(&ra) } else { ra.total_cmp(&rb) }
        });
        for &j in order.iter().take(changes) {
            ints[j] += inc;
        }
    }
    ints.iter().map(|&v| v as i64).collect()
}

/// The per-class thresholds `t_j` = mean `p(j)` over the `rows` labelled `j` (each row counted as
/// often as it appears); a class without rows can never be confidently predicted (cleanlab's
/// 2.0).
fn class_thresholds(probs: &Array2<f64>, given: &[usize], rows: &[(usize, u32)]) -> Vec<f64> {
    let k = probs.ncols();
    let mut sums = vec![0.0f64; k];
    let mut counts = vec![0usize; k];
    for &(i, w) in rows {
        counts[given[i]] += w as usize;
        sums[given[i]] += f64::from(w) * probs[[i, given[i]]];
    }
    sums.iter()
        .zip(&counts)
        .map(|(&s, &c)| if c > 0 { (s / c as f64).max(MIN_THRESHOLD) } else { 2.0 })
        .collect()
}

/// The calibrated confident joint (given x true, counts) of `rows` (each `(row, times)`: counted
/// `times` times) from probabilities and thresholds.
fn confident_joint(
    probs: &Array2<f64>,
    given: &[usize],
    thresholds: &[f64],
    rows: &[(usize, u32)],
) -> Vec<Vec<i64>> {
    let k = probs.ncols();
    let mut cj = vec![vec![0.0f64; k]; k];
    let mut label_counts = vec![0.0f64; k];
    for &(i, w) in rows {
        let p = probs.row(i);
        let p = p.as_slice().unwrap_or(&[]);
        label_counts[given[i]] += f64::from(w);
        if let Some(t) = confident_class(p, thresholds) {
            cj[given[i]][t] += f64::from(w);
        }
    }
    for (c, row) in cj.iter_mut().enumerate() {
        row[c] = row[c].max(1.0);
    }
    // rows to the label counts, then the whole to n
    for (row, &count) in cj.iter_mut().zip(&label_counts) {
        let s: f64 = row.iter().sum();
        row.iter_mut().for_each(|v| *v = *v / s.max(1e-100) * count);
    }
    let total: f64 = cj.iter().flatten().sum();
    let n: f64 = label_counts.iter().sum();
    cj.iter()
        .map(|row| round_preserving_sum(&row.iter().map(|v| v / total * n).collect::<Vec<_>>()))
        .collect()
}

/// Off-diagonal total of a confident joint: the estimated number of wrong labels.
fn off_diagonal(cj: &[Vec<i64>]) -> i64 {
    cj.iter().enumerate().map(|(g, row)| row.iter().sum::<i64>() - row[g]).sum()
}

/// Bootstrap replicates behind the interval of the estimated number of wrong labels.
pub(crate) const BOOTSTRAP_REPLICATES: usize = 200;

/// Percentile bootstrap interval (level `level`) of the estimated number of wrong labels: rows
/// resampled with replacement (seeded per replicate), thresholds and calibrated confident joint
/// recomputed on each resample, the probabilities held fixed.
fn mislabeled_interval(probs: &Array2<f64>, given: &[usize], seed: u64, level: f64) -> (f64, f64) {
    use rand::{Rng, SeedableRng, rngs::SmallRng};
    let n = given.len();
    let mut counts: Vec<i64> = crate::map_range(BOOTSTRAP_REPLICATES, |r| {
        let mut rng = SmallRng::seed_from_u64(poisonguard_core::derive_seed(seed, r as u64));
        // the resample as (row, times drawn), in row order: the rows read in memory order
        let mut times = vec![0u32; n];
        (0..n).for_each(|_| times[rng.random_range(0..n)] += 1);
        let rows: Vec<(usize, u32)> =
            times.into_iter().enumerate().filter(|&(_, w)| w > 0).collect();
        let t = class_thresholds(probs, given, &rows);
        off_diagonal(&confident_joint(probs, given, &t, &rows))
    });
    counts.sort_unstable();
    let tail = (1.0 - level) / 2.0;
    let at = |q: f64| {
        let pos = (q * (counts.len() - 1) as f64).round() as usize;
        counts[pos.min(counts.len() - 1)] as f64
    };
    (at(tail), at(1.0 - tail))
}

/// cleanlab's `_keep_at_least_n_per_class` (n = 1, frac_noise = 1) on the transposed joint:
/// returns `prune[given][true]`, rows to remove per off-diagonal pair.
fn prune_counts(cj: &[Vec<i64>]) -> Vec<Vec<f64>> {
    let k = cj.len();
    // column `given` of the transposed matrix is row `given` of the joint
    let mut out = vec![vec![0.0f64; k]; k];
    for (g, row) in cj.iter().enumerate() {
        let diag = row[g] as f64;
        let new_diag = diag.max(1.0);
        let diff = new_diag - diag;
        let nonzero = row.iter().filter(|&&v| v != 0).count() as f64;
        let per = diff / (nonzero - 1.0).max(1.0);
        for t in 0..k {
            out[g][t] = if t == g { new_diag } else { (row[t] as f64 - per).max(0.0) };
        }
    }
    out
}

impl ConfidentLearningValidParams {
    fn settings(&self) -> LogisticSettings {
        LogisticSettings { c: self.c.unwrap_or(1.0), max_iter: self.max_iter, gtol: 1e-4 }
    }
}

impl Detector for ConfidentLearningValidParams {
    type Fitted = ConfidentLearning;
    type Error = Error;
    const INFO: poisonguard_core::DetectorInfo = ConfidentLearning::INFO;

    fn fit(&self, data: &Dataset) -> Result<ConfidentLearning> {
        let id = Self::INFO.id.as_str();
        let labels = data.require_classes(id)?;
        let n = data.n_samples();
        let k = labels.map().n_classes();
        let given: Vec<usize> = labels.ids().iter().map(|c| c.index()).collect();
        let (probs, fitted, custom) = match data.pred_probs() {
            Some(p) => (p.mapv(f64::from), None, None),
            None => {
                if n < self.folds {
                    return Err(Error::TooFewRows { detector: id, needed: self.folds, actual: n });
                }
                let classes: Vec<u32> = labels.ids().iter().map(|c| c.0).collect();
                match &self.classifier {
                    Some(clf) => {
                        let x = data.features();
                        let (probs, models) =
                            cross_val_custom(&*clf.0, x, &classes, k, self.folds, self.seed)
                                .map_err(|message| DataError::Detector { detector: id, message })?;
                        (probs, None, Some(models))
                    }
                    None => {
                        let s = self.settings();
                        let cs = self.c.map_or_else(|| super::C_GRID.to_vec(), |c| vec![c]);
                        let x = data.features();
                        let (probs, models, c) =
                            cross_val_sampled(x, &classes, k, self.folds, self.seed, s, &cs);
                        (probs, Some((models, c)), None)
                    }
                }
            }
        };
        let all: Vec<(usize, u32)> = (0..n).map(|i| (i, 1)).collect();
        let thresholds = class_thresholds(&probs, &given, &all);
        let cj = confident_joint(&probs, &given, &thresholds, &all);
        let prune = prune_counts(&cj);

        let mut issue = vec![false; n];
        let by_class = labels.rows_by_class();
        for (g, rows) in by_class.iter().enumerate() {
            if rows.len() <= 1 {
                continue;
            }
            for t in (0..k).filter(|&t| t != g) {
                let m = prune[g][t].round() as usize;
                if m == 0 {
                    continue;
                }
                let mut order: Vec<(f64, usize)> =
                    rows.iter().map(|&i| (probs[[i, t]] - probs[[i, g]], i)).collect();
                order.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                for &(_, i) in order.iter().take(m) {
                    issue[i] = true;
                }
            }
        }
        let rowp = |i: usize| -> Vec<f64> { probs.row(i).to_vec() };
        for (i, flag) in issue.iter_mut().enumerate() {
            if *flag && given_is_top(&rowp(i), given[i]) {
                *flag = false;
            }
        }
        let scores: Vec<f64> = (0..n)
            .map(|i| {
                1.0 - quality(self.ranking, &rowp(i), given[i]) + f64::from(u8::from(issue[i]))
            })
            .collect();
        let map = labels.map().clone();
        let rule = self.threshold.resolve(ConfidentLearning::INFO.auto, None);
        let explain = |i: usize, _| explain_row(&map, &rowp(i), given[i]);
        // the calibration's sample: a stream apart from the folds' (classes, 1,000 + classes)
        // and the bootstrap's (replicates)
        let calibrator =
            Calibrator::fit(&probs, &given, poisonguard_core::derive_seed(self.seed, 2_000_000));
        let p_values = (0..n).map(|i| label_p_value(&rowp(i), given[i], &calibrator)).collect();
        let threshold = rule.fit(&scores)?;
        let training =
            Detection::with_calibration(scores, threshold, Given, explain)?.with_p_values(p_values);

        let noise = NoiseMatrix::new(
            map.values().to_vec(),
            cj.iter().flatten().map(|&v| v.max(0) as usize).collect(),
        );
        let findings = by_class
            .iter()
            .enumerate()
            .filter(|(_, rows)| !rows.is_empty())
            .map(|(c, rows)| {
                let rate = noise.noise_rate(c);
                let flagged = rows.iter().filter(|&&i| training.is_flagged(i)).count() as f64
                    / rows.len() as f64;
                ClassFinding::new(
                    ClassId(c as u32),
                    map.values()[c].clone(),
                    rows.len(),
                    rate,
                    vec![
                        (poisonguard_core::ClassStatistic::EstimatedNoiseRate, rate),
                        (poisonguard_core::ClassStatistic::FlaggedShare, flagged),
                    ],
                )
            })
            .collect();
        let (low, high) = mislabeled_interval(&probs, &given, self.seed, ESTIMATE_LEVEL);
        let estimate = PoisonEstimate {
            rows: off_diagonal(&cj) as f64,
            low,
            high,
            level: ESTIMATE_LEVEL,
            method: vec![poisonguard_core::EstimateMethod::new(
                ConfidentLearning::ID,
                format!(
                    "wrong labels in the calibrated confident joint, interval from \
                     {BOOTSTRAP_REPLICATES} row bootstraps"
                ),
            )],
        };
        Ok(ConfidentLearning {
            estimate,
            thresholds,
            calibrator,
            ranking: self.ranking,
            chosen_c: fitted.as_ref().map(|(_, c)| *c),
            model: fitted.map(|(m, _)| m),
            custom,
            label_map: map,
            training,
            noise,
            findings,
            probabilities: probs,
        })
    }
}

fn explain_row(map: &LabelMap, p: &[f64], given: usize) -> Reason {
    let likely =
        (0..p.len()).filter(|&j| j != given).max_by(|&a, &b| p[a].total_cmp(&p[b]).then(b.cmp(&a)));
    let likely = likely.unwrap_or(given);
    Reason::LikelyMislabeled {
        given: map.values()[given].clone(),
        likely: map.values()[likely].clone(),
        given_probability: p[given],
        likely_probability: p[likely],
    }
}

impl FittedDetector for ConfidentLearning {
    fn id(&self) -> DetectorId {
        Self::ID
    }

    fn training(&self) -> &Detection {
        &self.training
    }

    fn class_findings(&self) -> &[ClassFinding] {
        &self.findings
    }

    fn noise_matrix(&self) -> Option<&NoiseMatrix> {
        Some(&self.noise)
    }

    /// None: the confident joint counts label issues, not poison. On a table whose classes
    /// overlap naturally it counts the overlap (243 of 3,000 clean rows of real CIFAR-10
    /// embeddings); that count is [`ConfidentLearning::label_issue_estimate`] and the noise
    /// matrix. The label family's estimate of poisoned rows is `knn_label`'s, read off p-values
    /// whose null includes the overlap.
    fn poison_estimate(&self) -> Option<PoisonEstimate> {
        None
    }

    /// Scores new labelled rows with their own `pred_probs` if they carry them, else with the
    /// mean probabilities of the cross-validation's fold models; a row is a label issue when it
    /// confidently belongs to another class (`p(j) >= t_j`) and its given label is not the top
    /// prediction.
    fn detect(&self, data: &Dataset) -> std::result::Result<Detection, DataError> {
        let id = Self::ID.as_str();
        let labels = data.labels().ok_or(DataError::LabelsRequired { detector: id })?;
        let given: Vec<usize> = labels.ids_in(&self.label_map)?.iter().map(|c| c.index()).collect();
        let k = self.label_map.n_classes();
        let probs = match (data.pred_probs(), &self.model, &self.custom) {
            (Some(p), _, _) => {
                if p.ncols() != k {
                    return Err(DataError::ProbabilityColumns { expected: k, actual: p.ncols() });
                }
                p.mapv(f64::from)
            }
            (None, _, Some(models)) => models
                .predict(data.features(), k)
                .map_err(|message| DataError::Detector { detector: id, message })?,
            (None, Some(model), None) => {
                if data.n_features() != model.n_features() {
                    return Err(DataError::FeatureCountMismatch {
                        expected: model.n_features(),
                        actual: data.n_features(),
                    });
                }
                let rows: Vec<usize> = (0..data.n_samples()).collect();
                let flat = model.predict(data.features(), &rows);
                Array2::from_shape_vec((rows.len(), k), flat)
                    .map_err(|e| DataError::Detector { detector: id, message: e.to_string() })?
            }
            (None, None, None) => {
                return Err(DataError::Detector {
                    detector: id,
                    message: "fitted on given probabilities or with a user's classifier (whose \
                              fold models are not saved); new rows need pred_probs"
                        .into(),
                });
            }
        };
        let scores: Vec<f64> = (0..data.n_samples())
            .map(|i| {
                let p = probs.row(i).to_vec();
                let confident_other =
                    confident_class(&p, &self.thresholds).is_some_and(|t| t != given[i]);
                let issue = confident_other && !given_is_top(&p, given[i]);
                1.0 - quality(self.ranking, &p, given[i]) + f64::from(u8::from(issue))
            })
            .collect();
        let p_values = (0..data.n_samples())
            .map(|i| label_p_value(&probs.row(i).to_vec(), given[i], &self.calibrator))
            .collect();
        Ok(Detection::with_calibration(scores, self.training.fitted_threshold(), Given, |i, _| {
            explain_row(&self.label_map, &probs.row(i).to_vec(), given[i])
        })?
        .with_p_values(p_values))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_preserving_sum_ends_on_any_input() {
        assert_eq!(super::round_preserving_sum(&[0.6, 0.6, 0.8]), vec![0, 1, 1]);
        assert_eq!(super::round_preserving_sum(&[f64::NAN, 1.0]), vec![0, 0]);
        assert_eq!(super::round_preserving_sum(&[f64::INFINITY, 1.0]), vec![0, 0]);
        // beyond 2^53 sums are not exact integers: still ends
        assert_eq!(super::round_preserving_sum(&[1e300, 1e300, 0.5]).len(), 3);
        assert!(super::round_preserving_sum(&[]).is_empty());
    }

    use super::*;

    #[test]
    fn rounding_preserves_the_sum() {
        assert_eq!(round_preserving_sum(&[0.4, 0.4, 0.2]), vec![1, 0, 0]);
        assert_eq!(round_preserving_sum(&[2.6, 2.6, 0.8]).iter().sum::<i64>(), 6);
        assert_eq!(round_preserving_sum(&[1.0, 2.0]), vec![1, 2]);
    }

    #[test]
    fn quality_scores_match_cleanlab_formulas() {
        let p = [0.2, 0.7, 0.1];
        assert!((quality(Ranking::SelfConfidence, &p, 0) - 0.2).abs() < 1e-12);
        assert!((quality(Ranking::NormalizedMargin, &p, 0) - 0.25).abs() < 1e-12);
        // cleanlab: get_confidence_weighted_entropy_for_each_label([0], [[0.2, 0.7, 0.1]])
        let h = -(0.2f64 * 0.2f64.ln() + 0.7 * 0.7f64.ln() + 0.1 * 0.1f64.ln()) / 3f64.ln();
        let s = h / 0.2;
        let expected = (1.0 + s).ln() / s;
        assert!((quality(Ranking::ConfidenceWeightedEntropy, &p, 0) - expected).abs() < 1e-12);
    }

    #[test]
    fn confident_joint_is_calibrated() {
        // 4 rows labelled 0, 2 labelled 1; one row labelled 0 confidently looks like class 1
        let probs = Array2::from_shape_vec(
            (6, 2),
            vec![0.9, 0.1, 0.8, 0.2, 0.9, 0.1, 0.1, 0.9, 0.2, 0.8, 0.1, 0.9],
        )
        .unwrap();
        let given = [0, 0, 0, 0, 1, 1];
        let t = [0.675, 0.85];
        let rows: Vec<(usize, u32)> = (0..6).map(|i| (i, 1)).collect();
        let cj = confident_joint(&probs, &given, &t, &rows);
        assert_eq!(cj, vec![vec![3, 1], vec![0, 2]]);
        let prune = prune_counts(&cj);
        assert_eq!(prune[0][1], 1.0);
    }
}
