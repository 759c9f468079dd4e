//! # poisonguard
//!
//! Audits machine-learning training data for **poisoning** before a model is trained on it:
//! backdoor triggers, label flips, injected samples, near-duplicate flooding, a poisoned
//! contributor (the poisoning part of ISO/IEC 27090).
//!
//! # Overview
//! Build a checked [`Dataset`] (features as raw inputs or model embeddings, labels, optional ids
//! and sources), choose detectors, and run an [`Audit`]. The [`Report`] holds, for every row,
//! each detector's score (higher = more suspicious), its flag and reason, and a combined
//! `suspicion` in [0, 1]; each detector's class-level findings say which classes look attacked.
//!
//! ```
//! use ndarray::Array2;
//! use poisonguard::{Audit, Dataset, DetectorOptions, Labels, LabelValue};
//! let x = Array2::from_shape_fn((90, 5), |(i, j)| ((i * 31 + j * 7) % 23) as f32);
//! let y: Vec<LabelValue> = (0..90).map(|i| LabelValue::Int(i % 3)).collect();
//! let data = Dataset::new(x)?.with_labels(Labels::from_values(&y))?;
//! let audit = Audit::for_dataset(&data, &DetectorOptions::default());
//! let report = audit.run(&data)?;
//! println!("{} of {} rows flagged", report.n_flagged(), report.n_samples());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Detectors
//! [`REGISTRY`] lists every detector with its declaration ([`DetectorInfo`]: id, family, what it
//! needs, its score, its automatic threshold and its paper); `poisonguard detectors` prints it.
//! Spectral: `spectral_signature` (Tran 2018), `spectre` (Hayase 2021), `activation_clustering`
//! (Chen 2019). Outlier: `isolation_forest`, `knn_distance`, `lof`, `ecod`, `mahalanobis`, `pca`.
//! Label: `knn_label` (Peri 2020), `confident_learning` (Northcutt 2021), `duplicates`.
//!
//! With a source column, every detector's flags (and the rows the audit flags) are
//! tested per source for an excess over the dataset's flag rate
//! ([`poisonguard_label::sources`]).
//!
//! # Design notes
//! The algorithms live in one crate per family (`poisonguard-spectral`, ...) and the data model
//! in `poisonguard-core`; this crate only chooses, runs and combines. Reading files is
//! `poisonguard-io`'s job, printing the CLI's.

use std::time::{Duration, Instant};

use rayon::prelude::*;

pub use poisonguard_core::{
    ClassFinding, ClassId, ClassStatistic, DataError, Dataset, Detection, Detector,
    DetectorFailure, DetectorId, DetectorInfo, DetectorRun, DynDetector, EstimateMethod, Family,
    FeatureSpace, FitContext, FitScope, FittedDetector, GraphNeed, KnnGraph, LabelMap, LabelValue,
    Labels, NoiseMatrix, ParamError, PoisonEstimate, Reason, Report, SkippedClass, SourceFinding,
    Standardizer, ThresholdRule, TrainingScores, metrics,
};
pub use poisonguard_label::{
    ConfidentLearning, ConfidentLearningParams, Duplicates, DuplicatesParams, KnnLabel,
    KnnLabelParams, Ranking,
};
pub use poisonguard_neighbors::{ApproxParams, KnnMode};
pub use poisonguard_outlier::{
    Ecod, EcodParams, IsolationForest, IsolationForestParams, KnnDistance, KnnDistanceParams,
    KnnStatistic, Lof, LofParams, Mahalanobis, MahalanobisParams, Pca, PcaParams,
};
pub use poisonguard_spectral::{
    ActivationClustering, ActivationClusteringParams, SignatureScore, SpectralSignature,
    SpectralSignatureParams, Spectre, SpectreParams,
};

/// One detector this build offers: its declaration, whether the default audit runs it, and how
/// the audit builds it from [`DetectorOptions`].
#[derive(Clone, Copy)]
pub struct Registered {
    info: DetectorInfo,
    default: bool,
    build: fn(&DetectorOptions) -> Box<dyn DynDetector>,
}

impl Registered {
    /// What the detector declares about itself.
    pub fn info(&self) -> &DetectorInfo {
        &self.info
    }

    /// The detector's id.
    pub fn id(&self) -> &'static str {
        self.info.id.as_str()
    }

    /// Whether [`Audit::for_dataset`] runs it (when the data has what it needs).
    pub fn is_default(&self) -> bool {
        self.default
    }

    /// Builds the detector with `opts`.
    pub fn build(&self, opts: &DetectorOptions) -> Box<dyn DynDetector> {
        (self.build)(opts)
    }
}

impl std::fmt::Debug for Registered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registered")
            .field("id", &self.id())
            .field("default", &self.default)
            .finish()
    }
}

/// A registry line: `D`'s declaration, its default flag and its builder.
const fn entry<D: Detector + Send + Sync + std::fmt::Debug + 'static>(
    default: bool,
    build: fn(&DetectorOptions) -> Box<dyn DynDetector>,
) -> Registered {
    Registered { info: D::INFO, default, build }
}

/// Boxes params after applying the shared threshold rule, if any.
fn boxed<P>(params: P, opts: &DetectorOptions) -> Box<dyn DynDetector>
where
    P: Threshold + Detector + Send + Sync + std::fmt::Debug + 'static,
{
    match opts.threshold {
        Some(rule) => Box::new(params.with_rule(rule)),
        None => Box::new(params),
    }
}

/// Params whose threshold rule can be set (every detector's).
trait Threshold {
    fn with_rule(self, rule: ThresholdRule) -> Self;
}

macro_rules! threshold_setter {
    ($($params:ty),* $(,)?) => {$(
        impl Threshold for $params {
            fn with_rule(self, rule: ThresholdRule) -> Self {
                self.threshold(rule)
            }
        }
    )*};
}
threshold_setter!(
    SpectralSignatureParams,
    SpectreParams,
    ActivationClusteringParams,
    IsolationForestParams,
    KnnDistanceParams,
    LofParams,
    EcodParams,
    MahalanobisParams,
    PcaParams,
    KnnLabelParams,
    ConfidentLearningParams,
    DuplicatesParams,
);

/// Every detector this build offers, in the order an audit reports them: the one list from
/// which the audit's default set, the label requirements, the vote groups, the CLI's help,
/// `poisonguard detectors` and the README's detector table are read. Adding a detector is a
/// folder in its family's crate and one line here.
pub static REGISTRY: &[Registered] = &[
    entry::<SpectralSignatureParams>(true, |o| boxed(SpectralSignature::params().seed(o.seed), o)),
    entry::<SpectreParams>(false, |o| boxed(Spectre::params().seed(o.seed), o)),
    entry::<ActivationClusteringParams>(false, |o| {
        boxed(ActivationClustering::params().seed(o.seed), o)
    }),
    entry::<IsolationForestParams>(true, |o| {
        boxed(IsolationForestParams::default().seed(o.seed).per_class(o.per_class), o)
    }),
    entry::<KnnDistanceParams>(false, |o| {
        boxed(KnnDistanceParams::default().seed(o.seed).per_class(o.per_class), o)
    }),
    entry::<LofParams>(false, |o| {
        boxed(LofParams::default().seed(o.seed).per_class(o.per_class), o)
    }),
    entry::<EcodParams>(true, |o| {
        boxed(EcodParams::default().seed(o.seed).per_class(o.per_class), o)
    }),
    entry::<MahalanobisParams>(false, |o| {
        boxed(MahalanobisParams::default().seed(o.seed).per_class(o.per_class), o)
    }),
    entry::<PcaParams>(false, |o| {
        boxed(PcaParams::default().seed(o.seed).per_class(o.per_class), o)
    }),
    entry::<KnnLabelParams>(true, |o| boxed(KnnLabel::params(), o)),
    entry::<ConfidentLearningParams>(true, |o| boxed(ConfidentLearning::params().seed(o.seed), o)),
    entry::<DuplicatesParams>(true, |o| boxed(Duplicates::params(), o)),
];

/// The registry line of the detector `id`.
pub fn registered(id: &str) -> Option<&'static Registered> {
    REGISTRY.iter().find(|r| r.id() == id)
}

/// Ids of every detector this build offers, in registry order.
pub fn detector_ids() -> impl Iterator<Item = &'static str> {
    REGISTRY.iter().map(Registered::id)
}

/// Ids of the detectors an audit runs when none are named ([`Audit::for_dataset`]).
pub fn default_detector_ids() -> impl Iterator<Item = &'static str> {
    REGISTRY.iter().filter(|r| r.default).map(Registered::id)
}

/// Settings shared by every detector an audit builds.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorOptions {
    /// Seed of every randomized step.
    pub seed: u64,
    /// Threshold rule for every detector; `None` keeps each detector's default.
    pub threshold: Option<ThresholdRule>,
    /// Fit the outlier detectors within each class (needs labels).
    pub per_class: bool,
    /// How the audit builds the kNN graphs it shares (exact, or approximate for large n).
    pub knn: KnnMode,
}

impl Default for DetectorOptions {
    fn default() -> Self {
        Self {
            seed: poisonguard_core::DEFAULT_SEED,
            threshold: None,
            per_class: false,
            knn: KnnMode::Auto,
        }
    }
}

/// An id that names no detector.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown detector {name:?}; known detectors: {}", detector_ids().collect::<Vec<_>>().join(", "))]
pub struct UnknownDetector {
    /// The name given.
    pub name: String,
}

/// Builds the detector with id `name`.
///
/// # Errors
/// [`UnknownDetector`] for a name not in [`REGISTRY`].
pub fn detector(
    name: &str,
    opts: &DetectorOptions,
) -> Result<Box<dyn DynDetector>, UnknownDetector> {
    registered(name)
        .map(|r| r.build(opts))
        .ok_or_else(|| UnknownDetector { name: name.to_string() })
}

/// What an audit reports while it runs (for progress displays).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum AuditEvent {
    /// The kNN graph shared by several detectors is being built, with this many neighbours.
    SharedKnn(usize),
    /// The kNN graph of standardized features shared by several detectors is being built.
    SharedStandardizedKnn(usize),
    /// A detector starts fitting.
    Started(DetectorId),
    /// A detector finished (successfully or not) after the given time.
    Finished(DetectorId, Duration),
}

/// No detector could run (every one failed, or none was chosen).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The audit has no detector.
    #[error("no detector to run")]
    NoDetectors,
    /// Every detector failed; the first failure is shown.
    #[error("every detector failed; {}: {}", .0.id, .0.error)]
    AllFailed(DetectorFailure),
}

/// Runs several detectors on one dataset and combines their scores into one [`Report`].
#[derive(Debug, Default)]
pub struct Audit {
    detectors: Vec<Box<dyn DynDetector>>,
    knn: KnnMode,
}

impl Audit {
    /// An audit with no detectors.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a detector.
    pub fn with_detector(mut self, detector: Box<dyn DynDetector>) -> Self {
        self.detectors.push(detector);
        self
    }

    /// An audit of the detectors named in `ids` (see [`REGISTRY`]), each built with `opts`,
    /// sharing kNN graphs as `opts.knn` says.
    ///
    /// # Errors
    /// [`UnknownDetector`] for the first id that names no detector.
    ///
    /// ```
    /// use poisonguard::{Audit, DetectorOptions};
    /// let audit = Audit::from_ids(&["knn_label", "duplicates"], &DetectorOptions::default())?;
    /// assert_eq!(audit.detector_ids().len(), 2);
    /// assert!(Audit::from_ids(&["nope"], &DetectorOptions::default()).is_err());
    /// # Ok::<(), poisonguard::UnknownDetector>(())
    /// ```
    pub fn from_ids<S: AsRef<str>>(
        ids: &[S],
        opts: &DetectorOptions,
    ) -> Result<Self, UnknownDetector> {
        let mut audit = Self::new().knn_mode(opts.knn);
        for id in ids {
            audit = audit.with_detector(detector(id.as_ref(), opts)?);
        }
        Ok(audit)
    }

    /// The default set (the [`REGISTRY`] lines marked default) for what `data` has: detectors
    /// that need labels only when it has labels with at least two classes.
    pub fn for_dataset(data: &Dataset, opts: &DetectorOptions) -> Self {
        let labelled = data.labels().is_some_and(|l| l.n_present_classes() >= 2);
        let mut audit = Self::new().knn_mode(opts.knn);
        for r in REGISTRY.iter().filter(|r| r.default) {
            if labelled || !r.info.needs_labels {
                audit = audit.with_detector(r.build(opts));
            }
        }
        audit
    }

    /// Sets how the shared kNN graphs are built (default [`KnnMode::Auto`]: exact up to
    /// [`poisonguard_neighbors::AUTO_APPROX_ROWS`] rows, approximate above).
    pub fn knn_mode(mut self, mode: KnnMode) -> Self {
        self.knn = mode;
        self
    }

    /// Ids of the detectors this audit runs.
    pub fn detector_ids(&self) -> Vec<DetectorId> {
        self.detectors.iter().map(|d| d.id()).collect()
    }

    /// Runs every detector; see [`Audit::run_with`].
    ///
    /// # Errors
    /// [`AuditError`] when no detector succeeds.
    pub fn run(&self, data: &Dataset) -> Result<Report, AuditError> {
        self.run_with(data, &|_| {})
    }

    /// Runs every detector, reporting progress to `on_event`. The shared kNN graphs are built
    /// first (both at once), then the detectors run in parallel; each detector's result does not
    /// depend on the scheduling, so the report is the same for any thread count, in the order the
    /// detectors were added. A failing detector is recorded in [`Report::failures`] and the others
    /// still run.
    ///
    /// The combined `suspicion` of a row is rank-based, so detectors with different score scales
    /// are comparable ([`combined_suspicion`]).
    ///
    /// # Errors
    /// [`AuditError`] when no detector succeeds.
    pub fn run_with(
        &self,
        data: &Dataset,
        on_event: &(dyn Fn(AuditEvent) + Sync),
    ) -> Result<Report, AuditError> {
        if self.detectors.is_empty() {
            return Err(AuditError::NoDetectors);
        }
        // One kNN graph (of the features as given, and one of the standardized features) for
        // every detector that reads neighbours, built as the audit's `KnnMode` says. If it
        // cannot be built (too few rows), each detector reports its own error. The two are built
        // one after the other (each search is parallel inside), so that at most one working
        // copy of the features exists beside them: the raw search centres a copy, the
        // standardized one centres its standardized matrix in place and drops it.
        let raw_k = self.detectors.iter().filter_map(|d| d.knn_k()).max();
        let standardized_k = self.detectors.iter().filter_map(|d| d.standardized_knn_k(data)).max();
        let shared = match raw_k {
            Some(k) if k < data.n_samples() => {
                on_event(AuditEvent::SharedKnn(k));
                poisonguard_neighbors::knn_graph(data.features(), k, self.knn).ok()
            }
            _ => None,
        };
        let standardized = match standardized_k {
            Some(k) if k < data.n_samples() => {
                on_event(AuditEvent::SharedStandardizedKnn(k));
                let z = Standardizer::fit(data.features()).transform(data.features());
                poisonguard_neighbors::knn_graph_owned(z, k, self.knn).ok()
            }
            _ => None,
        };
        let mut ctx = shared.as_ref().map(FitContext::with_knn).unwrap_or_default();
        if let Some(g) = &standardized {
            ctx = ctx.and_standardized_knn(g);
        }
        let test_sources = |flags: &[bool]| {
            data.sources()
                .and_then(|s| poisonguard_label::sources::test_sources(flags, s).ok())
                .unwrap_or_default()
        };
        let outcomes: Vec<Result<DetectorRun, DetectorFailure>> = self
            .detectors
            .par_iter()
            .map(|d| {
                let info = d.info();
                let id = info.id;
                on_event(AuditEvent::Started(id));
                let start = Instant::now();
                let outcome = match d.fit_boxed_in(data, &ctx) {
                    Ok(fitted) => Ok(DetectorRun {
                        id,
                        family: info.family,
                        detection: fitted.training().clone(),
                        class_findings: fitted.class_findings().to_vec(),
                        skipped_classes: fitted.skipped_classes().to_vec(),
                        noise_matrix: fitted.noise_matrix().cloned(),
                        estimate: fitted.poison_estimate(),
                        source_findings: test_sources(&fitted.training().flagged()),
                    }),
                    Err(e) => Err(DetectorFailure { id, error: error_chain(e.as_ref()) }),
                };
                on_event(AuditEvent::Finished(id, start.elapsed()));
                outcome
            })
            .collect();
        let (mut runs, mut failures) = (Vec::new(), Vec::new());
        for outcome in outcomes {
            match outcome {
                Ok(run) => runs.push(run),
                Err(failure) => failures.push(failure),
            }
        }
        if runs.is_empty() {
            return Err(AuditError::AllFailed(failures.swap_remove(0)));
        }
        let (suspicion, threshold) = combined_suspicion(&runs, data.n_samples());
        let estimates: Vec<PoisonEstimate> =
            runs.iter().filter_map(|r| r.estimate.clone()).collect();
        let estimate = PoisonEstimate::combine(&estimates, data.n_samples());
        let report = Report::new(runs, failures, suspicion, threshold).with_estimate(estimate);
        let flagged = report.flagged();
        Ok(report.with_source_findings(test_sources(&flagged)))
    }
}

/// Renders an error and its sources as `a: b: c`.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(s.to_string());
        cur = s.source();
    }
    parts.join(": ")
}

/// Combines the detectors into one suspicion per row, in (0, 1], and returns it with the
/// automatic threshold above which a row is flagged.
///
/// The evidence comes in *votes*: every label-consistency, spectral or other detector is one
/// voter, and the outlier detectors together are one more, which votes for a row when more than
/// half of them flag it. A row's suspicion is `(votes + r) / (voters + 1)`, where `r` is the
/// largest, over voters, of the row's normalized rank among that voter's scores,
/// `(rows scoring strictly lower + 1) / n` (ties share the lowest rank of their group); the
/// outlier voter's rank is the mean of its members' ranks. The threshold is
/// `1 / (voters + 1)`: a row is flagged exactly when it has a vote.
///
/// Each flag is calibrated by its detector's own threshold (its stated null, its test), so rows
/// are ordered by how much calibrated evidence they carry, then by their strongest rank; a
/// detector with no signal on the data at hand flags few rows and cannot outvote the ones that
/// see the poison, which a plain maximum of ranks lets it do, and one detector's vote still
/// places a row above every row without one. The outlier detectors vote together because an
/// outlier score is not specific to poisoning: every clean dataset has natural outliers, and each
/// outlier detector flags a few percent of them on its own; two detectors built on different
/// models (isolation depth, marginal tails, distances) agreeing on a row is the evidence worth a
/// vote. The label and spectral detectors flag only rows that break an explicit test (a sign
/// test on neighbours' labels, the confident joint, a chi-square null per class), so each keeps
/// its own vote.
///
/// Measured with the default detectors (the outlier pair voting together; in brackets every
/// detector voting alone and the largest rank over detectors), on clean data the share of rows
/// flagged: wine 2.2% (3.4%), breast_cancer 3.9% (6.7%), digits 1.7% (2.6%); on the shipped
/// poisoned sets the ROC-AUC of the suspicion against the poison, best single detector after
/// the slash: digits BadNets 0.9928 (0.9930) / 1.0000, BadNets embeddings 0.9957 (0.9991) /
/// 0.9984, digits label flips 0.9957 (0.9902) / 0.9980, wine flips 0.9839 (0.9748) / 0.9972,
/// breast_cancer flips 0.9643 (0.9497) / 0.9833.
pub fn combined_suspicion(runs: &[DetectorRun], n_samples: usize) -> (Vec<f64>, f64) {
    let mut votes = vec![0usize; n_samples];
    let mut outlier_votes = vec![0usize; n_samples];
    let mut strongest = vec![0.0f64; n_samples];
    let mut outlier_rank = vec![0.0f64; n_samples];
    let mut n_outlier = 0;
    for run in runs {
        let outlier = run.family == Family::Outlier;
        n_outlier += usize::from(outlier);
        let (target, ranks) = if outlier {
            (&mut outlier_votes, &mut outlier_rank)
        } else {
            (&mut votes, &mut strongest)
        };
        let scores = run.detection.scores();
        let threshold = run.detection.threshold();
        for ((v, s), (&score, r)) in
            target.iter_mut().zip(ranks.iter_mut()).zip(scores.iter().zip(normalized_rank(scores)))
        {
            *v += usize::from(score > threshold);
            // the outlier voter's rank is the mean of its members' ranks
            *s = if outlier { *s + r } else { s.max(r) };
        }
    }
    if n_outlier > 0 {
        for (s, o) in strongest.iter_mut().zip(&outlier_rank) {
            *s = s.max(o / n_outlier as f64);
        }
    }
    let voters = runs.len() - n_outlier + usize::from(n_outlier > 0);
    let scale = (voters + 1) as f64;
    let suspicion = votes
        .iter()
        .zip(&outlier_votes)
        .zip(&strongest)
        .map(|((&v, &o), &r)| (v as f64 + f64::from(u8::from(2 * o > n_outlier)) + r) / scale)
        .collect();
    (suspicion, 1.0 / scale)
}

/// For every score, `(scores strictly below it + 1) / n`, in (0, 1]: the normalized minimum
/// rank. Tied scores share the lowest rank of their group.
fn normalized_rank(scores: &[f64]) -> Vec<f64> {
    let n = scores.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut out = vec![0.0; n];
    let mut start = 0;
    while start < n {
        let mut end = start;
        while end + 1 < n && scores[order[end + 1]] == scores[order[start]] {
            end += 1;
        }
        let f = (start + 1) as f64 / n as f64;
        for &i in &order[start..=end] {
            out[i] = f;
        }
        start = end + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn detectors_sharing_one_knn_graph_score_as_alone() {
        let x = Array2::from_shape_fn((300, 3), |(i, j)| ((i * 37 + j * 11) % 101) as f32);
        let data = Dataset::new(x).unwrap();
        let opts = DetectorOptions::default();
        let audit = Audit::new()
            .with_detector(detector("knn_distance", &opts).unwrap())
            .with_detector(detector("lof", &opts).unwrap());
        let shared_k = std::sync::Mutex::new(None);
        let report = audit
            .run_with(&data, &|e| {
                if let AuditEvent::SharedKnn(k) = e {
                    *shared_k.lock().unwrap() = Some(k);
                }
            })
            .unwrap();
        assert_eq!(*shared_k.lock().unwrap(), Some(20));
        for name in ["knn_distance", "lof"] {
            let alone = detector(name, &opts).unwrap().fit_boxed(&data).unwrap();
            let run = report.runs().iter().find(|r| r.id.as_str() == name).unwrap();
            assert_eq!(run.detection.scores(), alone.training().scores(), "{name}");
        }
    }

    #[test]
    fn label_detectors_share_one_standardized_graph() {
        let x = Array2::from_shape_fn((200, 4), |(i, j)| {
            ((i * 37 + j * 11) % 53) as f32 * (j + 1) as f32
        });
        let y: Vec<LabelValue> = (0..200).map(|i| LabelValue::Int((i % 3) as i64)).collect();
        let data = Dataset::new(x).unwrap().with_labels(Labels::from_values(&y)).unwrap();
        let opts = DetectorOptions::default();
        let audit = Audit::new()
            .with_detector(detector("knn_label", &opts).unwrap())
            .with_detector(Box::new(Duplicates::params().standardize(true)));
        let shared_k = std::sync::Mutex::new(None);
        let report = audit
            .run_with(&data, &|e| {
                if let AuditEvent::SharedStandardizedKnn(k) = e {
                    *shared_k.lock().unwrap() = Some(k);
                }
            })
            .unwrap();
        assert_eq!(*shared_k.lock().unwrap(), Some(10));
        let knn = detector("knn_label", &opts).unwrap().fit_boxed(&data).unwrap();
        let dup = Duplicates::params().standardize(true).fit(&data).unwrap();
        for (name, alone) in [("knn_label", knn.training()), ("duplicates", dup.training())] {
            let run = report.runs().iter().find(|r| r.id.as_str() == name).unwrap();
            assert_eq!(run.detection.scores(), alone.scores(), "{name}");
        }
    }

    #[test]
    fn suspicion_orders_by_votes_then_rank() {
        let run = |scores: Vec<f64>, threshold: f64| DetectorRun {
            id: DetectorId::new("d"),
            family: Family::Label,
            detection: Detection::with_threshold(scores, threshold, |_, s| Reason::Score {
                score: s,
                threshold,
            })
            .unwrap(),
            class_findings: vec![],
            skipped_classes: vec![],
            noise_matrix: None,
            estimate: None,
            source_findings: vec![],
        };
        // row 0: flagged by both; row 1: flagged by one, top rank; row 2: flagged by none
        let runs = vec![run(vec![5.0, 9.0, 1.0, 0.0], 2.0), run(vec![5.0, 0.0, 4.0, 1.0], 4.5)];
        let (s, t) = combined_suspicion(&runs, 4);
        assert!(s[0] > s[1] && s[1] > s[2] && s[2] > s[3], "{s:?}");
        // flagged by some detector exactly above 1 / (detectors + 1)
        assert_eq!(t, 1.0 / 3.0);
        for (i, &v) in s.iter().enumerate() {
            assert_eq!(v > t, i < 2, "{s:?}");
        }
    }

    #[test]
    fn outlier_detectors_vote_together() {
        let run = |id: &'static str, scores: Vec<f64>| DetectorRun {
            id: DetectorId::new(id),
            family: registered(id).unwrap().info().family,
            detection: Detection::with_threshold(scores, 0.5, |_, s| Reason::Score {
                score: s,
                threshold: 0.5,
            })
            .unwrap(),
            class_findings: vec![],
            skipped_classes: vec![],
            noise_matrix: None,
            estimate: None,
            source_findings: vec![],
        };
        // row 0: both outlier detectors; row 1: one of them; row 2: the label detector only
        let runs = vec![
            run("isolation_forest", vec![1.0, 1.0, 0.0, 0.0]),
            run("ecod", vec![1.0, 0.0, 0.0, 0.0]),
            run("knn_label", vec![0.0, 0.0, 1.0, 0.0]),
        ];
        let (s, t) = combined_suspicion(&runs, 4);
        // two voters: the outlier pair and knn_label
        assert_eq!(t, 1.0 / 3.0);
        let flagged: Vec<bool> = s.iter().map(|&v| v > t).collect();
        assert_eq!(flagged, vec![true, false, true, false], "{s:?}");
    }

    #[test]
    fn ranks_handle_ties() {
        assert_eq!(normalized_rank(&[3.0, 1.0, 3.0, 2.0]), vec![0.75, 0.25, 0.75, 0.5]);
        assert_eq!(normalized_rank(&[0.0; 4]), vec![0.25; 4]);
    }

    #[test]
    fn unknown_detector_lists_known_ones() {
        let e = detector("nope", &DetectorOptions::default()).unwrap_err();
        assert!(e.to_string().contains("spectral_signature"));
    }

    #[test]
    fn failures_are_reported_not_swallowed() {
        let data = Dataset::new(Array2::from_elem((5, 2), 1.0f32)).unwrap();
        let audit = Audit::new()
            .with_detector(detector("spectral_signature", &DetectorOptions::default()).unwrap());
        match audit.run(&data) {
            Err(AuditError::AllFailed(f)) => {
                assert_eq!(f.id.as_str(), "spectral_signature");
                assert!(f.error.contains("needs labels"), "{}", f.error);
            }
            other => panic!("expected a failure, got {other:?}"),
        }
        let ids = Audit::for_dataset(&data, &DetectorOptions::default()).detector_ids();
        let ids: Vec<&str> = ids.iter().map(|d| d.as_str()).collect();
        assert_eq!(ids, vec!["isolation_forest", "ecod", "duplicates"]);
        assert_eq!(Audit::new().run(&data).unwrap_err(), AuditError::NoDetectors);

        // one detector fails (LOF's k = 20 needs 21 rows), the other still runs
        let opts = DetectorOptions::default();
        let audit = Audit::new()
            .with_detector(detector("lof", &opts).unwrap())
            .with_detector(detector("ecod", &opts).unwrap());
        let report = audit.run(&data).unwrap();
        assert_eq!(report.runs().len(), 1);
        assert_eq!(report.failures()[0].id.as_str(), "lof");
        assert!(
            report.failures()[0].error.contains("at least 21 rows"),
            "{}",
            report.failures()[0].error
        );
    }
}
