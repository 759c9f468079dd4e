use poisonguard_core::Calibration::Given;
use poisonguard_core::{
    DataError, Dataset, Detection, Detector, DetectorId, ESTIMATE_LEVEL, FitContext,
    FittedDetector, KnnGraph, Labels, PoisonEstimate, Reason, ThresholdRule, quantile_sorted,
};

use super::{DuplicatesParams, DuplicatesValidParams};
use crate::error::Result;
use crate::reference::Reference;

/// Consistency constant of the MAD for a normal sample.
const MAD_TO_SD: f64 = 1.482_602_218_505_602;
/// Smallest robust z of the lower fence on log nearest-neighbour distances (Iglewicz & Hoaglin's
/// cut-off); on larger tables the fence moves out so that about one clean row is expected below
/// it ([`radius_z`]).
const RADIUS_Z: f64 = 3.5;

/// A fitted near-duplicate detector; see the [module docs](crate::duplicates).
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
pub struct Duplicates {
    radius: f64,
    /// Each class's radius (the labelled training rows' classes, in class order) when the
    /// radius comes from the data and the table has labels; empty: `radius` for every row.
    #[serde(default)]
    class_radii: Vec<f64>,
    fence: f64,
    /// Mean of the Poisson null of a clean row's near-duplicate count.
    null_mean: f64,
    reference: Reference,
    /// Group of each training row (`None` without near-duplicates).
    group_of: Vec<Option<usize>>,
    /// Size and sorted distinct labels (original values rendered) of each group.
    groups: Vec<(usize, Vec<String>)>,
    /// The training rows' labels, when they had labels: a new row that copies a training row
    /// under the same label is that row again.
    labels: Option<Labels>,
    training: Detection,
    estimate: Option<PoisonEstimate>,
}

impl Duplicates {
    /// What the detector declares about itself (see `poisonguard detectors`).
    pub const INFO: poisonguard_core::DetectorInfo = poisonguard_core::DetectorInfo {
        id: poisonguard_core::DetectorId::new("duplicates"),
        family: poisonguard_core::Family::Label,
        threat: poisonguard_core::Threat::Flooding,
        needs_labels: false,
        training_scores: poisonguard_core::TrainingScores::LeaveOneOut,
        randomized: false,
        score: "size of the row's near-duplicate group, + the flood fence when the group's labels conflict",
        auto: poisonguard_core::AutoThreshold::Fence,
        auto_threshold: "the flood fence: groups with conflicting labels or beyond the fence of group sizes",
        p_value: "groups of exact copies or conflicting labels: Poisson law of a clean row's near-duplicate count (mean of the rows at or below the flood fence); other groups: the share of rows with as many near-duplicates",
        paper: "near-duplicate flooding, ISO/IEC 27090; groups by a radius read off the nearest-neighbour distances",
    };

    /// The detector's id.
    pub const ID: DetectorId = Self::INFO.id;

    /// Default hyperparameters.
    ///
    /// # Example: one row copied under another label
    /// ```
    /// use ndarray::Array2;
    /// use poisonguard_core::{Dataset, Detector, FittedDetector, Labels, LabelValue};
    /// use poisonguard_label::Duplicates;
    /// let mut x = Array2::from_shape_fn((50, 3), |(i, j)| ((i * 31 + j * 17) % 43) as f32);
    /// let mut y: Vec<LabelValue> = (0..50).map(|i| LabelValue::Int((i % 2) as i64)).collect();
    /// for i in 45..50 {
    ///     let row = x.row(0).to_owned();
    ///     x.row_mut(i).assign(&row);
    ///     y[i] = LabelValue::Int(1);
    /// }
    /// let data = Dataset::new(x)?.with_labels(Labels::from_values(&y))?;
    /// let fitted = Duplicates::params().fit(&data)?;
    /// assert!((45..50).all(|i| fitted.training().is_flagged(i)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn params() -> DuplicatesParams {
        DuplicatesParams::default()
    }

    /// The near-duplicate radius used.
    pub fn radius(&self) -> f64 {
        self.radius
    }

    /// Each class's near-duplicate radius, in the order of the training labels' classes, when
    /// the radius came from a labelled table (empty otherwise: [`Self::radius`] for every row).
    pub fn class_radii(&self) -> &[f64] {
        &self.class_radii
    }

    /// The duplicate count above which a group counts as a flood.
    pub fn fence(&self) -> f64 {
        self.fence
    }

    /// Number of near-duplicate groups.
    pub fn n_groups(&self) -> usize {
        self.groups.len()
    }
}

/// The data-derived radius: robust lower fence of the log nearest-neighbour distances.
fn auto_radius(graph: &KnnGraph) -> f64 {
    fence_of((0..graph.n_samples()).map(|i| f64::from(graph.distances(i)[0])))
}

/// The radius row `i` of a table with `labels` is held to: its class's when there are class
/// radii, else the table's `radius`.
fn radius_of_row(class_radii: &[f64], labels: Option<&Labels>, radius: f64, i: usize) -> f64 {
    match labels {
        Some(l) if !class_radii.is_empty() => class_radii[l.ids()[i].index()],
        _ => radius,
    }
}

/// Each class's radius: [`fence_of`] the nearest-neighbour distances of its rows (the nearest
/// row of any class). Classes differ in density: on raw pixels the thin strokes of the ones sit
/// far closer to each other than other digits do, and one fence for the table made a third of
/// them near-duplicates of each other on a clean table. A class with no positive distance gets
/// the table's `fallback`.
fn class_radii(graph: &KnnGraph, labels: &Labels, fallback: f64) -> Vec<f64> {
    labels
        .rows_by_class()
        .iter()
        .map(|rows| {
            let fence = fence_of(rows.iter().map(|&i| f64::from(graph.distances(i)[0])));
            if rows.iter().any(|&i| graph.distances(i)[0] > 0.0) { fence } else { fallback }
        })
        .collect()
}

/// The robust lower fence of the logs of the positive `distances`:
/// `exp(median - z * 1.4826 * MAD)` with `z` = [`radius_z`] of their count; 0 when there are
/// none or their MAD is 0.
fn fence_of(distances: impl Iterator<Item = f64>) -> f64 {
    let mut logs: Vec<f64> = distances.filter(|&d| d > 0.0).map(f64::ln).collect();
    if logs.is_empty() {
        return 0.0;
    }
    logs.sort_by(f64::total_cmp);
    let med = quantile_sorted(&logs, 0.5);
    let mut dev: Vec<f64> = logs.iter().map(|v| (v - med).abs()).collect();
    dev.sort_by(f64::total_cmp);
    let mad = quantile_sorted(&dev, 0.5);
    if mad > 0.0 { (med - radius_z(logs.len()) * MAD_TO_SD * mad).exp() } else { 0.0 }
}

/// The robust z of the radius's fence for `n` rows: [`RADIUS_Z`], or, when larger, the normal
/// quantile below which one row of `n` is expected, `Phi^-1(1 - 1/n)` (a Bonferroni bound on
/// the rows a Gaussian spread of log distances puts below the fence by chance): 3.5 up to
/// about 4,300 rows, 4.75 at 10^6. A fixed 3.5 expects 2.3 chance near-duplicates per 10^4
/// rows; in high dimension, where nearest-neighbour distances concentrate, the fence then sits
/// a few percent below the median distance, and on 10^6 clean Gaussian rows in 128 dimensions
/// it made 76 rows near-duplicates with conflicting labels.
fn radius_z(n: usize) -> f64 {
    use statrs::distribution::{ContinuousCDF, Normal};
    let tail = Normal::standard().inverse_cdf(1.0 - 1.0 / n.max(2) as f64);
    RADIUS_Z.max(tail)
}

fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

/// Tukey's far-out fence of the rows' duplicate counts, at least 1.
fn flood_fence(counts: &[f64]) -> f64 {
    let mut sorted = counts.to_vec();
    sorted.sort_by(f64::total_cmp);
    let q1 = quantile_sorted(&sorted, 0.25);
    let q3 = quantile_sorted(&sorted, 0.75);
    (q3 + 3.0 * (q3 - q1)).max(1.0)
}

/// Rows of the flagged groups beyond what one clean original explains: in a group larger than
/// the flood fence every copy but one, in a group with conflicting labels the rows outside its
/// most common label. Exact given the groups (a point interval).
fn flagged_group_excess(
    training: &Detection,
    group_of: &[Option<usize>],
    groups: &[(usize, Vec<String>)],
    labels: Option<&poisonguard_core::Labels>,
    fence: f64,
) -> PoisonEstimate {
    let mut label_counts: std::collections::BTreeMap<(usize, usize), usize> = Default::default();
    let mut flagged_groups = std::collections::BTreeSet::new();
    for (i, g) in group_of.iter().enumerate() {
        let Some(g) = *g else { continue };
        if training.is_flagged(i) {
            flagged_groups.insert(g);
        }
        let class = labels.map_or(0, |l| l.ids()[i].index());
        *label_counts.entry((g, class)).or_default() += 1;
    }
    let excess: usize = flagged_groups
        .iter()
        .map(|&g| {
            let size = groups[g].0;
            if (size - 1) as f64 > fence {
                size - 1
            } else {
                let top = label_counts.range((g, 0)..(g + 1, 0)).map(|(_, &c)| c).max();
                size - top.unwrap_or(size)
            }
        })
        .sum();
    let rows = excess as f64;
    PoisonEstimate {
        rows,
        low: rows,
        high: rows,
        level: ESTIMATE_LEVEL,
        method: vec![poisonguard_core::EstimateMethod::new(
            Duplicates::ID,
            "copies beyond one original in flooding groups, minority labels in conflicting groups",
        )],
    }
}

/// The p-values of the rows' group scores under a Poisson null: a clean row's number of
/// near-duplicates is Poisson with the mean count of the rows at or below the flood fence
/// (floored at one near-duplicate per table, `1 / n`), and `p = P(Poisson >= score)` (a group
/// with conflicting labels scores as one `fence` rows larger). Natural pairs in a table with
/// few of them get p about the pair rate; a flood of copies, p ~ 0.
fn poisson_null_mean(scores: &[f64], fence: f64) -> f64 {
    let n = scores.len().max(1) as f64;
    let kept: Vec<f64> = scores.iter().copied().filter(|&s| s <= fence).collect();
    let mean = kept.iter().sum::<f64>() / kept.len().max(1) as f64;
    mean.max(1.0 / n)
}

/// The share of the rows with at least `count` near-duplicates (the row's own included): the
/// p-value of a group of one label and no exact copy, against the table's own spread of group
/// sizes. Valid whatever the law of a clean table's dense spots (conservative when the table
/// holds floods); 1 for a row without near-duplicates.
fn rank_p_value(counts: &[f64], count: f64) -> f64 {
    if count < 1.0 {
        return 1.0;
    }
    counts.iter().filter(|&&c| c >= count).count() as f64 / counts.len().max(1) as f64
}

/// `P(Poisson(mean) >= score)`; 1 for a score below 1 (no near-duplicate).
fn poisson_p_value(score: f64, mean: f64) -> f64 {
    use statrs::distribution::{DiscreteCDF, Poisson};
    match Poisson::new(mean) {
        Ok(null) if score >= 1.0 => null.sf(score.ceil() as u64 - 1),
        _ => 1.0,
    }
}

fn group_score(size: usize, distinct_labels: usize, fence: f64) -> f64 {
    (size - 1) as f64 + if distinct_labels > 1 { fence } else { 0.0 }
}

impl DuplicatesValidParams {
    fn fit_with(&self, data: &Dataset, shared: Option<&KnnGraph>) -> Result<Duplicates> {
        let n = data.n_samples();
        let k = self.k.min(n.saturating_sub(1)).max(1);
        let reference = Reference::new(data, self.standardize);
        let graph = reference.graph(k, shared)?;
        let radius = self.radius.unwrap_or_else(|| auto_radius(&graph));
        let class_radii = match (self.radius, data.labels()) {
            (None, Some(labels)) => class_radii(&graph, labels, radius),
            _ => Vec::new(),
        };
        // the radius a pair is held to: the smaller of its two rows' classes'
        let radius_of = |i: usize| radius_of_row(&class_radii, data.labels(), radius, i);
        let mut parent: Vec<usize> = (0..n).collect();
        for i in 0..n {
            for (&j, &d) in graph.neighbors(i).iter().zip(graph.distances(i)) {
                if f64::from(d) > radius_of(i) {
                    break;
                }
                if f64::from(d) > radius_of(i).min(radius_of(j as usize)) {
                    continue;
                }
                let (a, b) = (find(&mut parent, i), find(&mut parent, j as usize));
                if a != b {
                    // the smaller root wins, so groups do not depend on visiting order
                    let (lo, hi) = if a < b { (a, b) } else { (b, a) };
                    parent[hi] = lo;
                }
            }
        }
        let roots: Vec<usize> = (0..n).map(|i| find(&mut parent, i)).collect();
        let mut size = vec![0usize; n];
        for &r in &roots {
            size[r] += 1;
        }
        let labels = data.labels();
        let mut group_index = vec![usize::MAX; n];
        let mut groups: Vec<(usize, Vec<String>)> = Vec::new();
        let mut group_of = vec![None; n];
        for i in 0..n {
            let r = roots[i];
            if size[r] < 2 {
                continue;
            }
            if group_index[r] == usize::MAX {
                group_index[r] = groups.len();
                groups.push((size[r], Vec::new()));
            }
            let g = group_index[r];
            group_of[i] = Some(g);
            if let Some(l) = labels {
                let v = l.value_of_row(i).to_string();
                if let Err(pos) = groups[g].1.binary_search(&v) {
                    groups[g].1.insert(pos, v);
                }
            }
        }
        let counts: Vec<f64> =
            group_of.iter().map(|g| g.map_or(0.0, |g| (groups[g].0 - 1) as f64)).collect();
        let fence = flood_fence(&counts);
        let scores: Vec<f64> = group_of
            .iter()
            .map(|g| g.map_or(0.0, |g| group_score(groups[g].0, groups[g].1.len(), fence)))
            .collect();
        let rule = self.threshold.resolve(Duplicates::INFO.auto, Some(fence));
        let explain = |i: usize, _| explain(&groups, group_of[i].unwrap_or(0), 0, None);
        let null_mean = poisson_null_mean(&scores, fence);
        // a group whose rows all have an exact copy (distance 0) or whose labels conflict is
        // tested against the Poisson law; any other group is a dense spot of one class, which
        // clean data has (a tight cluster is a jittered flood to the geometry), and is ranked
        // among the table's own group sizes instead
        let exact: Vec<bool> = {
            let mut all_zero = vec![true; groups.len()];
            for (i, g) in group_of.iter().enumerate() {
                if let Some(g) = *g {
                    all_zero[g] &= graph.distances(i)[0] == 0.0;
                }
            }
            all_zero
        };
        let strong = |i: usize| group_of[i].is_some_and(|g| exact[g] || groups[g].1.len() > 1);
        let p_values = (0..n)
            .map(|i| {
                if strong(i) {
                    poisson_p_value(scores[i], null_mean)
                } else {
                    rank_p_value(&counts, counts[i])
                }
            })
            .collect();
        let threshold = rule.fit(&scores)?;
        let training =
            Detection::with_calibration(scores, threshold, Given, explain)?.with_p_values(p_values);
        let estimate = (self.threshold == ThresholdRule::Auto)
            .then(|| flagged_group_excess(&training, &group_of, &groups, labels, fence));
        let labels = data.labels().cloned();
        Ok(Duplicates {
            radius,
            class_radii,
            fence,
            null_mean,
            reference,
            group_of,
            groups,
            labels,
            training,
            estimate,
        })
    }
}

fn explain(
    groups: &[(usize, Vec<String>)],
    g: usize,
    extra: usize,
    new_label: Option<&str>,
) -> Reason {
    let (size, labels) = groups.get(g).map_or((1, &[][..]), |(s, l)| (*s, &l[..]));
    let distinct =
        labels.len() + usize::from(new_label.is_some_and(|v| !labels.iter().any(|l| l == v)));
    Reason::NearDuplicateGroup { group: g, size: size + extra, distinct_labels: distinct.max(1) }
}

impl Detector for DuplicatesValidParams {
    type Fitted = Duplicates;
    type Error = crate::Error;
    const INFO: poisonguard_core::DetectorInfo = Duplicates::INFO;

    fn fit(&self, data: &Dataset) -> Result<Duplicates> {
        self.fit_with(data, None)
    }

    /// Reads the audit's shared graph of the features as given when `standardize` is off.
    fn knn_k(&self, _data: &Dataset) -> Option<usize> {
        (!self.standardize).then_some(self.k)
    }

    fn standardized_knn_k(&self, _data: &Dataset) -> Option<usize> {
        self.standardize.then_some(self.k)
    }

    fn fit_in(&self, data: &Dataset, ctx: &FitContext<'_>) -> Result<Duplicates> {
        let k = self.k.min(data.n_samples().saturating_sub(1)).max(1);
        let shared = if self.standardize {
            ctx.standardized_knn_for(data.n_samples(), k)
        } else {
            ctx.knn_for(data.n_samples(), k)
        };
        self.fit_with(data, shared)
    }
}

impl FittedDetector for Duplicates {
    fn id(&self) -> DetectorId {
        Self::ID
    }

    fn training(&self) -> &Detection {
        &self.training
    }

    /// With the automatic threshold: copies beyond one original in flooding groups plus the
    /// minority labels of conflicting groups (exact, a point interval).
    fn poison_estimate(&self) -> Option<PoisonEstimate> {
        self.estimate.clone()
    }

    /// A new row within the radius of its nearest training row `j`:
    /// - under `j`'s label (or without labels on either side) it is a copy of `j` and gets
    ///   `j`'s training score, p-value and reason: copying a row of the table the detector was
    ///   fitted on (a trusted reference, or the same table) is not evidence;
    /// - under another label it joins `j`'s group (a new pair when `j` had none) with its
    ///   label added, and is scored as that group (conflicting labels pass the fence).
    ///
    /// A row farther from every training row scores 0 (p = 1). Floods among the new rows
    /// themselves are not searched: `detect` compares new rows with the training rows only.
    fn detect(&self, data: &Dataset) -> std::result::Result<Detection, DataError> {
        self.detect_in(data, None)
    }

    fn standardized_query_k(&self) -> Option<usize> {
        self.reference.standardizes().then_some(1)
    }

    fn detect_in(
        &self,
        data: &Dataset,
        query: Option<&KnnGraph>,
    ) -> std::result::Result<Detection, DataError> {
        let graph = self.reference.query_or_shared(data, 1, query, Self::ID.as_str())?;
        let labels = data.labels();
        let n = data.n_samples();
        let nearest: Vec<Option<usize>> = (0..n)
            .map(|i| {
                let (j, d) = (graph.neighbors(i)[0] as usize, f64::from(graph.distances(i)[0]));
                // held to the training row's class's radius
                let r = radius_of_row(&self.class_radii, self.labels.as_ref(), self.radius, j);
                (d <= r).then_some(j)
            })
            .collect();
        let same_label = |i: usize, j: usize| match (labels, &self.labels) {
            (Some(new), Some(train)) => new.value_of_row(i) == train.value_of_row(j),
            _ => true,
        };
        // the reason of a row that adds a label to its nearest training row's group
        let conflict = |i: usize, j: usize| {
            let label = labels.map(|l| l.value_of_row(i).to_string());
            explain(&self.groups, self.group_of[j].unwrap_or(usize::MAX), 1, label.as_deref())
        };
        let train = &self.training;
        let mut scores = vec![0.0; n];
        let mut p_values = vec![1.0; n];
        for (i, j) in nearest.iter().enumerate() {
            let Some(j) = *j else { continue };
            if same_label(i, j) {
                scores[i] = train.scores()[j];
                p_values[i] = train.p_values()[j];
            } else if let Reason::NearDuplicateGroup { size, distinct_labels, .. } = conflict(i, j)
            {
                scores[i] = group_score(size, distinct_labels, self.fence);
                p_values[i] = poisson_p_value(scores[i], self.null_mean);
            }
        }
        let threshold = train.threshold();
        let fallback = |s: f64| Reason::Score { score: s, threshold };
        let fitted = train.fitted_threshold();
        Ok(Detection::with_calibration(scores, fitted, Given, |i, s| match nearest[i] {
            Some(j) if same_label(i, j) => train.reason(j).cloned().unwrap_or(fallback(s)),
            Some(j) => conflict(i, j),
            None => fallback(s),
        })?
        .with_p_values(p_values))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a million rows whose log nearest-neighbour distances are Gaussian (no duplicates), about
    /// one row falls below the radius (Poisson(1): more than 5 has probability 6e-4), where a
    /// fixed 3.5 robust sd would put about 230 there; small tables keep the 3.5 fence.
    #[test]
    fn a_large_clean_table_has_about_one_chance_near_duplicate() {
        use rand::{Rng, SeedableRng};
        let n = 1_000_000;
        let mut rng = rand::rngs::SmallRng::seed_from_u64(5);
        // Box-Muller: sd 0.05 on the log scale
        let mut gauss = || {
            let (u, v): (f64, f64) = (1.0 - rng.random::<f64>(), rng.random());
            (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        };
        let distances: Vec<f32> = (0..n).map(|_| (0.05 * gauss()).exp() as f32).collect();
        let indices: Vec<u32> = (0..n as u32).map(|i| (i + 1) % n as u32).collect();
        let graph = KnnGraph::new(n, 1, indices, distances.clone());
        let radius = auto_radius(&graph);
        let below = distances.iter().filter(|&&d| f64::from(d) <= radius).count();
        assert!(below <= 5, "{below} rows below the radius {radius}");
        assert_eq!(radius_z(1797), RADIUS_Z);
        assert!((radius_z(1_000_000) - 4.753).abs() < 1e-3);
    }

    #[test]
    fn fence_is_at_least_one() {
        assert_eq!(flood_fence(&[0.0, 0.0, 0.0, 1.0]), 1.0);
        assert_eq!(flood_fence(&[2.0; 8]), 2.0);
    }
}
