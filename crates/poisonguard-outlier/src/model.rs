//! The machinery every outlier detector shares: fitting one model on all rows or one per class,
//! thresholding once, explaining flagged rows, and scoring new rows against the fit.

use std::fmt::Debug;

use ndarray::{ArrayView1, ArrayView2, Axis};
use poisonguard_core::{
    DataError, Dataset, Detection, DetectorId, FitContext, FittedDetector, KnnGraph, LabelMap,
    Reason, ScoreNull, ThresholdRule,
};

use crate::error::{Error, Result};

/// Settings every outlier detector has.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Common {
    /// Fit within each label's rows and score each row against its own class.
    pub per_class: bool,
    /// Seed of every randomized step (per-class seeds are derived from it and the class).
    pub seed: u64,
    /// Threshold rule.
    pub threshold: ThresholdRule,
}

impl Default for Common {
    fn default() -> Self {
        Self {
            per_class: false,
            seed: poisonguard_core::DEFAULT_SEED,
            threshold: ThresholdRule::Auto,
        }
    }
}

/// Checks a neighbour count: at least 1 (the upper bound, below the row count, is checked at fit).
pub(crate) fn check_k(k: usize) -> std::result::Result<(), poisonguard_core::ParamError> {
    if k == 0 {
        return Err(poisonguard_core::ParamError::CountOutOfRange {
            name: "k",
            value: 0,
            allowed: "[1, n_samples)",
        });
    }
    Ok(())
}

/// Most features `mahalanobis` and `pca` accept: both hold `d x d` f64 matrices (128 MiB at this
/// limit) and decompose them in O(d^3); FAST-MCD keeps several at once. Wider tables get
/// [`Error::TooManyFeatures`] with a hint instead of running out of memory.
pub const MAX_COVARIANCE_FEATURES: usize = 4096;

/// Refuses `d` above [`MAX_COVARIANCE_FEATURES`] for `detector`.
pub(crate) fn check_covariance_width(detector: &'static str, d: usize) -> Result<()> {
    if d > MAX_COVARIANCE_FEATURES {
        return Err(Error::TooManyFeatures {
            detector,
            d,
            mib: d * d * 8 / (1024 * 1024),
            max: MAX_COVARIANCE_FEATURES,
        });
    }
    Ok(())
}

/// One fitted group (all rows, or one class) of an outlier detector.
///
/// Implemented by this crate's detectors; [`Outlier`] wraps it with per-class routing,
/// thresholding and reasons.
pub trait OutlierModel:
    Sized + Send + Sync + Debug + Clone + serde::Serialize + serde::de::DeserializeOwned
{
    /// Hyperparameters the model needs.
    type Params: Sync;

    /// What the detector declares about itself.
    const INFO: poisonguard_core::DetectorInfo;

    /// Fewest rows the model can be fitted on.
    fn min_rows(params: &Self::Params) -> usize;

    /// Fits on `x` and returns the model with the in-sample score of every row.
    ///
    /// # Errors
    /// When the rows cannot be fitted.
    fn fit(params: &Self::Params, x: ArrayView2<'_, f32>, seed: u64) -> Result<(Self, Vec<f64>)>;

    /// Fits for a scan of `x` only ([`FitContext::scan_only`]): the in-sample scores as
    /// [`OutlierModel::fit`] gives them, and a model that may keep only what explains the
    /// training rows ([`OutlierModel::member_reason`]), not what scores new rows. By default the
    /// full fit.
    ///
    /// # Errors
    /// When the rows cannot be fitted.
    fn fit_scan(
        params: &Self::Params,
        x: ArrayView2<'_, f32>,
        seed: u64,
    ) -> Result<(Self, Vec<f64>)> {
        Self::fit(params, x, seed)
    }

    /// The reason of training row `member` (its position among the rows the model was fitted
    /// on) kept by a scan-only fit; `None` (the default) when [`OutlierModel::explain`] says it.
    fn member_reason(
        &self,
        member: usize,
        feature_name: &dyn Fn(usize) -> String,
    ) -> Option<Reason> {
        let _ = (member, feature_name);
        None
    }

    /// Neighbours per row the model reads from a kNN graph of its rows, if it uses one.
    fn knn_k(params: &Self::Params) -> Option<usize> {
        let _ = params;
        None
    }

    /// Fits from a precomputed kNN graph of `x`'s rows (at least [`OutlierModel::knn_k`]
    /// neighbours); `None` for models that do not use one.
    ///
    /// # Errors
    /// When the rows cannot be fitted.
    fn fit_graph(
        params: &Self::Params,
        x: ArrayView2<'_, f32>,
        graph: &KnnGraph,
    ) -> Option<Result<(Self, Vec<f64>)>> {
        let _ = (params, x, graph);
        None
    }

    /// Scores new rows against the fit.
    ///
    /// # Errors
    /// When the rows cannot be scored.
    fn score(&self, x: ArrayView2<'_, f32>) -> Result<Vec<f64>>;

    /// Why a flagged row is suspicious, when the model can say more than "score above
    /// threshold". `feature_name(j)` names feature `j`.
    fn explain(
        &self,
        row: ArrayView1<'_, f32>,
        score: f64,
        feature_name: &dyn Fn(usize) -> String,
    ) -> Option<Reason>;

    /// The distribution of a clean row's score under the model, if known (see
    /// [`ThresholdRule::Auto`]).
    fn null(&self) -> Option<ScoreNull> {
        None
    }
}

/// An [`OutlierModel`] whose fit is a function of a summary of its rows that merges
/// ([`Merge`](poisonguard_core::Merge)): fitted on shards of rows, it equals the fit on all of
/// them. `fit_shards` on the detector's valid params (e.g. `PcaValidParams::fit_shards`) is the
/// two-pass fit this allows.
pub trait MergeableModel: OutlierModel {
    /// The summary of a set of rows the model is fitted from.
    type Summary: poisonguard_core::Merge + Send;

    /// The summary of the rows of `x`.
    ///
    /// # Errors
    /// When the rows cannot be summarized.
    fn summarize(params: &Self::Params, x: ArrayView2<'_, f32>) -> Result<Self::Summary>;

    /// The rows summarized.
    fn summary_rows(summary: &Self::Summary) -> usize;

    /// The model fitted from a summary (the same model [`OutlierModel::fit`] gives on the rows).
    ///
    /// # Errors
    /// When the summary cannot be fitted.
    fn from_summary(params: &Self::Params, summary: Self::Summary) -> Result<Self>;

    /// Scores rows that the model's summary holds: their in-sample scores, as
    /// [`OutlierModel::fit`] returns them (by default [`OutlierModel::score`]).
    ///
    /// # Errors
    /// When the rows cannot be scored.
    fn score_members(&self, x: ArrayView2<'_, f32>) -> Result<Vec<f64>> {
        self.score(x)
    }
}

/// Fits `M` on the rows of several shards, as [`fit`] on their concatenation (in shard order)
/// would: pass 1 summarizes each shard (per class in per-class mode) and merges the summaries in
/// shard order, pass 2 scores every shard against the merged model; the threshold and the
/// p-values are fitted on all the scores ([`assemble`]). Only the summaries and the scores are
/// held, never two shards' rows at once. Per class, the classes are the union of the shards'
/// labels.
pub(crate) fn fit_shards<M: MergeableModel>(
    params: &M::Params,
    common: &Common,
    shards: &[Dataset],
) -> Result<Outlier<M>> {
    use poisonguard_core::Merge;
    let id = M::INFO.id.as_str();
    let d = Dataset::shard_width(shards)?;
    let min = M::min_rows(params);
    // one group's model from its rows in every shard (`rows(s)`: the group's rows of shard `s`,
    // `None` for all of them, read in place)
    let group = |rows: &dyn Fn(usize) -> Option<Vec<usize>>| -> Result<M> {
        let mut summary: Option<M::Summary> = None;
        for (s, data) in shards.iter().enumerate() {
            let part = match rows(s) {
                None => M::summarize(params, data.features())?,
                Some(rows) if rows.is_empty() => continue,
                Some(rows) => M::summarize(params, data.features().select(Axis(0), &rows).view())?,
            };
            match summary.as_mut() {
                None => summary = Some(part),
                Some(acc) => acc
                    .merge(part)
                    .map_err(|e| DataError::Detector { detector: id, message: e.to_string() })?,
            }
        }
        M::from_summary(params, summary.ok_or(DataError::NoRows)?)
    };
    // `(shard, local row)` of every row, in concatenation order, for the reasons
    let origin: Vec<(usize, usize)> = shards
        .iter()
        .enumerate()
        .flat_map(|(s, data)| (0..data.n_samples()).map(move |i| (s, i)))
        .collect();
    let explain = |model: Option<&M>, i: usize, score: f64, threshold: f64| {
        let (s, local) = origin[i];
        explain_row(model, &shards[s], (local, None), score, threshold)
    };
    if !common.per_class {
        if origin.len() < min {
            return Err(Error::TooFewRows {
                detector: id,
                needed: min,
                what: "the shards".into(),
                actual: origin.len(),
            });
        }
        let model = group(&|_| None)?;
        let mut scores = Vec::with_capacity(origin.len());
        for s in shards {
            scores.extend(model.score_members(s.features())?);
        }
        let groups = Groups::Global(model);
        return assemble(groups, Vec::new(), d, scores, common, |groups, i, s, t| {
            explain(groups.model_of(None), i, s, t)
        });
    }

    let (map, ids) = Dataset::shard_classes(shards, id)?;
    let rows_of = |s: usize, c: usize| -> Vec<usize> {
        (0..ids[s].len()).filter(|&i| ids[s][i].index() == c).collect()
    };
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); map.n_classes()];
    for (g, &(s, i)) in origin.iter().enumerate() {
        by_class[ids[s][i].index()].push(g);
    }
    let skipped = poisonguard_core::SkippedClass::of(&by_class, &map, min);
    let models = (0..map.n_classes())
        .map(|c| {
            if by_class[c].len() < min {
                Ok(None)
            } else {
                group(&|s| Some(rows_of(s, c))).map(Some)
            }
        })
        .collect::<Result<Vec<Option<M>>>>()?;
    let mut scores = vec![0.0f64; origin.len()];
    for (c, model) in models.iter().enumerate() {
        let Some(model) = model else { continue };
        let mut at = by_class[c].iter();
        for (s, data) in shards.iter().enumerate() {
            let rows = rows_of(s, c);
            if rows.is_empty() {
                continue;
            }
            let x = data.features().select(Axis(0), &rows);
            // the scores first: `zip` stops on them without taking a row of the next shard
            for (v, &g) in model.score_members(x.view())?.into_iter().zip(at.by_ref()) {
                scores[g] = v;
            }
        }
    }
    let class_of: Vec<usize> = origin.iter().map(|&(s, i)| ids[s][i].index()).collect();
    let groups = Groups::PerClass { map, models };
    assemble(groups, skipped, d, scores, common, |groups, i, s, t| {
        explain(groups.model_of(Some(class_of[i])), i, s, t)
    })
}

/// The fitted detector from its groups and the training scores of all rows: the threshold by
/// the rule (with the models' stated null), p-values from the scores' robust tail (even where a
/// model states a law, as mahalanobis's chi-square: real tails are heavier), and
/// `explain(groups, row, score, threshold)` for each row's reason.
fn assemble<M: OutlierModel>(
    groups: Groups<M>,
    skipped: Vec<poisonguard_core::SkippedClass>,
    n_features: usize,
    scores: Vec<f64>,
    common: &Common,
    explain: impl Fn(&Groups<M>, usize, f64, f64) -> Reason,
) -> Result<Outlier<M>> {
    let null = match &groups {
        Groups::Global(model) => model.null(),
        Groups::PerClass { models, .. } => models.iter().flatten().find_map(OutlierModel::null),
    };
    let threshold = common.threshold.fit_with_null(&scores, null.as_ref())?;
    let training = Detection::with_threshold(scores, threshold, |i, s| {
        explain(&groups, i, s, threshold.value())
    })?;
    Ok(Outlier { groups, skipped, n_features, training })
}

impl<M> Groups<M> {
    /// The model of the global fit (`class` None) or of a class (None for a class too small).
    fn model_of(&self, class: Option<usize>) -> Option<&M> {
        match (self, class) {
            (Groups::Global(model), _) => Some(model),
            (Groups::PerClass { models, .. }, Some(c)) => models.get(c).and_then(Option::as_ref),
            (Groups::PerClass { .. }, None) => None,
        }
    }
}

/// A fitted group and its in-sample scores; `None` for a class too small to fit.
type GroupFit<M> = Result<Option<(M, Vec<f64>)>>;

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
#[serde(bound = "M: OutlierModel")]
enum Groups<M> {
    Global(M),
    /// One model per class id; `None` for classes too small to fit (their rows score 0).
    PerClass {
        map: LabelMap,
        models: Vec<Option<M>>,
    },
}

/// A fitted outlier detector: one model for all rows or one per class, with its training
/// detection. The public detector types (`KnnDistance`, `Lof`, ...) are this type.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
#[serde(bound = "")]
pub struct Outlier<M: OutlierModel> {
    groups: Groups<M>,
    /// Classes too small to fit, in per-class mode (their rows score 0).
    skipped: Vec<poisonguard_core::SkippedClass>,
    n_features: usize,
    training: Detection,
}

/// The reason of row `i` of `data` with `score`: the model's, for a training row (`member`: its
/// position among the model's rows) the one a scan-only fit kept, else a plain score.
fn explain_row<M: OutlierModel>(
    model: Option<&M>,
    data: &Dataset,
    (i, member): (usize, Option<usize>),
    score: f64,
    threshold: f64,
) -> Reason {
    let name = |j| data.feature_name(j);
    model
        .and_then(|m| {
            member
                .and_then(|p| m.member_reason(p, &name))
                .or_else(|| m.explain(data.features().row(i), score, &name))
        })
        .unwrap_or(Reason::Score { score, threshold })
}

/// Fits `M` on `data` (all rows, or per class) and thresholds the scores. A global fit uses the
/// context's kNN graph when it has one that covers the rows.
pub(crate) fn fit<M: OutlierModel>(
    params: &M::Params,
    common: &Common,
    data: &Dataset,
    ctx: &FitContext<'_>,
) -> Result<Outlier<M>> {
    let n = data.n_samples();
    let min = M::min_rows(params);
    if !common.per_class {
        if n < min {
            return Err(Error::TooFewRows {
                detector: M::INFO.id.as_str(),
                needed: min,
                what: "the dataset".into(),
                actual: n,
            });
        }
        let shared = M::knn_k(params)
            .and_then(|k| ctx.knn_for(n, k))
            .and_then(|g| M::fit_graph(params, data.features(), g));
        let (model, scores) = match shared {
            Some(fitted) => fitted?,
            None if ctx.scan_only => M::fit_scan(params, data.features(), common.seed)?,
            None => M::fit(params, data.features(), common.seed)?,
        };
        let groups = Groups::Global(model);
        return assemble(groups, Vec::new(), data.n_features(), scores, common, |g, i, s, t| {
            explain_row(g.model_of(None), data, (i, Some(i)), s, t)
        });
    }

    let labels = data.require_classes(M::INFO.id.as_str())?;
    let by_class = labels.rows_by_class();
    let skipped = poisonguard_core::SkippedClass::of(&by_class, labels.map(), min);
    let work = |(c, rows): (usize, &Vec<usize>)| -> GroupFit<M> {
        if rows.len() < min {
            return Ok(None);
        }
        let x = data.features().select(ndarray::Axis(0), rows);
        let seed = poisonguard_core::derive_seed(common.seed, c as u64);
        if ctx.scan_only {
            M::fit_scan(params, x.view(), seed)
        } else {
            M::fit(params, x.view(), seed)
        }
        .map(Some)
    };
    #[cfg(feature = "parallel")]
    let fitted: Vec<GroupFit<M>> = {
        use rayon::prelude::*;
        by_class.par_iter().enumerate().map(work).collect()
    };
    #[cfg(not(feature = "parallel"))]
    let fitted: Vec<GroupFit<M>> = by_class.iter().enumerate().map(work).collect();

    let mut scores = vec![0.0f64; n];
    let mut models = Vec::with_capacity(by_class.len());
    for (result, rows) in fitted.into_iter().zip(&by_class) {
        match result? {
            Some((model, s)) => {
                for (&i, v) in rows.iter().zip(s) {
                    scores[i] = v;
                }
                models.push(Some(model));
            }
            None => models.push(None),
        }
    }
    // each row's position among its class's rows, which its class's model was fitted on
    let mut member = vec![0usize; n];
    for rows in &by_class {
        for (p, &i) in rows.iter().enumerate() {
            member[i] = p;
        }
    }
    let groups = Groups::PerClass { map: labels.map().clone(), models };
    assemble(groups, skipped, data.n_features(), scores, common, |g, i, s, t| {
        explain_row(g.model_of(Some(labels.ids()[i].index())), data, (i, Some(member[i])), s, t)
    })
}

impl<M: OutlierModel> Outlier<M> {
    fn detect_impl(&self, data: &Dataset) -> Result<Detection> {
        if data.n_features() != self.n_features {
            return Err(DataError::FeatureCountMismatch {
                expected: self.n_features,
                actual: data.n_features(),
            }
            .into());
        }
        let fitted = self.training.fitted_threshold();
        let threshold = fitted.value();
        match &self.groups {
            Groups::Global(model) => {
                let scores = model.score(data.features())?;
                let calibration = self.training.calibration();
                Ok(Detection::with_calibration(scores, fitted, calibration, |i, s| {
                    explain_row(Some(model), data, (i, None), s, threshold)
                })?)
            }
            Groups::PerClass { map, models } => {
                let labels = data
                    .labels()
                    .ok_or(DataError::LabelsRequired { detector: M::INFO.id.as_str() })?;
                let mut class_of = Vec::with_capacity(data.n_samples());
                for i in 0..data.n_samples() {
                    let value = labels.value_of_row(i);
                    let c = map
                        .values()
                        .binary_search(value)
                        .map_err(|_| DataError::UnseenLabel { row: i, label: value.to_string() })?;
                    class_of.push(c);
                }
                let mut scores = vec![0.0f64; data.n_samples()];
                for (c, model) in models.iter().enumerate() {
                    let Some(model) = model else { continue };
                    let rows: Vec<usize> =
                        (0..data.n_samples()).filter(|&i| class_of[i] == c).collect();
                    if rows.is_empty() {
                        continue;
                    }
                    let x = data.features().select(ndarray::Axis(0), &rows);
                    for (&i, s) in rows.iter().zip(model.score(x.view())?) {
                        scores[i] = s;
                    }
                }
                let calibration = self.training.calibration();
                Ok(Detection::with_calibration(scores, fitted, calibration, |i, s| {
                    explain_row(models[class_of[i]].as_ref(), data, (i, None), s, threshold)
                })?)
            }
        }
    }
}

#[cfg(feature = "linfa")]
poisonguard_core::linfa_estimator!(predict impl[M: OutlierModel + 'static,] Outlier<M>);

impl<M: OutlierModel + 'static> FittedDetector for Outlier<M> {
    fn id(&self) -> DetectorId {
        M::INFO.id
    }

    fn training(&self) -> &Detection {
        &self.training
    }

    fn skipped_classes(&self) -> &[poisonguard_core::SkippedClass] {
        &self.skipped
    }

    fn detect(&self, data: &Dataset) -> std::result::Result<Detection, DataError> {
        self.detect_impl(data).map_err(|e| match e {
            Error::Data(d) => d,
            other => {
                DataError::Detector { detector: M::INFO.id.as_str(), message: other.to_string() }
            }
        })
    }
}

/// Implements the parameter plumbing every outlier detector shares: the common setters on the
/// unchecked params, [`ParamGuard`](poisonguard_core::ParamGuard), and
/// [`Detector`](poisonguard_core::Detector) on the checked params through [`fit`].
macro_rules! outlier_detector {
    ($params:ident, $valid:ident, $model:ty) => {
        impl $params {
            /// Fits within each label's rows and scores each row against its own class (classes
            /// in parallel); classes too small to fit score 0.
            pub fn per_class(mut self, per_class: bool) -> Self {
                self.0.common.per_class = per_class;
                self
            }

            /// Sets the seed of every randomized step.
            pub fn seed(mut self, seed: u64) -> Self {
                self.0.common.seed = seed;
                self
            }

            /// Sets the threshold rule.
            pub fn threshold(mut self, rule: poisonguard_core::ThresholdRule) -> Self {
                self.0.common.threshold = rule;
                self
            }
        }

        impl $valid {
            /// Whether the detector fits per class.
            pub fn is_per_class(&self) -> bool {
                self.common.per_class
            }

            /// The seed.
            pub fn seed(&self) -> u64 {
                self.common.seed
            }

            /// The threshold rule.
            pub fn threshold(&self) -> poisonguard_core::ThresholdRule {
                self.common.threshold
            }
        }

        impl poisonguard_core::Configure for $params {
            fn with_threshold(self, rule: poisonguard_core::ThresholdRule) -> Self {
                self.threshold(rule)
            }

            fn with_seed(self, seed: u64) -> Self {
                self.seed(seed)
            }

            fn with_per_class(self, per_class: bool) -> Self {
                self.per_class(per_class)
            }
        }

        impl poisonguard_core::ParamGuard for $params {
            type Checked = $valid;
            type Error = poisonguard_core::ParamError;

            fn check_ref(&self) -> std::result::Result<&$valid, poisonguard_core::ParamError> {
                self.0.common.threshold.check()?;
                self.0.check_model()?;
                Ok(&self.0)
            }

            fn check(self) -> std::result::Result<$valid, poisonguard_core::ParamError> {
                self.check_ref()?;
                Ok(self.0)
            }
        }

        #[cfg(feature = "linfa")]
        poisonguard_core::linfa_estimator!(fit: $params, $valid);

        impl poisonguard_core::Detector for $valid {
            type Fitted = crate::model::Outlier<$model>;
            type Error = crate::error::Error;
            const INFO: poisonguard_core::DetectorInfo =
                <$model as crate::model::OutlierModel>::INFO;

            fn fit(&self, data: &poisonguard_core::Dataset) -> crate::error::Result<Self::Fitted> {
                self.fit_in(data, &poisonguard_core::FitContext::default())
            }

            fn knn_k(&self, _data: &poisonguard_core::Dataset) -> Option<usize> {
                if self.common.per_class {
                    None
                } else {
                    <$model as crate::model::OutlierModel>::knn_k(&self.model)
                }
            }

            fn fit_in(
                &self,
                data: &poisonguard_core::Dataset,
                ctx: &poisonguard_core::FitContext<'_>,
            ) -> crate::error::Result<Self::Fitted> {
                crate::model::fit::<$model>(&self.model, &self.common, data, ctx)
            }
        }
    };
}
pub(crate) use outlier_detector;

/// The sharded fit of a detector whose model merges ([`MergeableModel`]).
macro_rules! mergeable_detector {
    ($valid:ident, $model:ty) => {
        impl $valid {
            /// Fits on several shards of rows (same columns; in per-class mode, labelled) as a
            /// fit on their concatenation, in shard order, would: one pass summarizes and
            /// merges the shards, a second scores them (see
            /// [`MergeableModel`](crate::MergeableModel)). The training detection covers the
            /// rows of all shards in that order.
            ///
            /// # Errors
            /// No shards, shards of different widths, too few rows, or what the fit refuses.
            pub fn fit_shards(
                &self,
                shards: &[poisonguard_core::Dataset],
            ) -> crate::error::Result<crate::model::Outlier<$model>> {
                crate::model::fit_shards::<$model>(&self.model, &self.common, shards)
            }
        }
    };
}
pub(crate) use mergeable_detector;
