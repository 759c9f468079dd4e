//! The detectors this build offers ([`REGISTRY`]) and how the audit builds them from
//! [`DetectorOptions`].

use poisonguard_core::{
    Detector, DetectorInfo, DynDetector, FittedDetector, StateError, ThresholdRule,
};
use poisonguard_label::{
    ConfidentLearning, ConfidentLearningParams, Duplicates, DuplicatesParams, KnnLabel,
    KnnLabelParams,
};
use poisonguard_neighbors::KnnMode;
use poisonguard_outlier::{
    EcodParams, IsolationForestParams, KnnDistanceParams, LofParams, MahalanobisParams, PcaParams,
};
use poisonguard_spectral::{
    ActivationClustering, ActivationClusteringParams, ScanDecomposition, ScanDecompositionParams,
    SpectralSignature, SpectralSignatureParams, Spectre, SpectreParams,
};

/// One detector this build offers: its declaration, whether the default audit runs it, and how
/// the audit builds it from [`DetectorOptions`].
#[derive(Clone, Copy)]
pub struct Registered {
    info: DetectorInfo,
    default: bool,
    build: fn(&DetectorOptions) -> Box<dyn DynDetector>,
    load: LoadFn,
}

/// Reads a fitted state back into a boxed detector.
type LoadFn = fn(&[u8]) -> Result<Box<dyn FittedDetector>, StateError>;

impl Registered {
    /// What the detector declares about itself.
    pub fn info(&self) -> &DetectorInfo {
        &self.info
    }

    /// The detector's id.
    pub fn id(&self) -> &'static str {
        self.info.id.as_str()
    }

    /// Whether [`Audit::for_dataset`](crate::Audit::for_dataset) runs it (when the data has what it
    /// needs).
    pub fn is_default(&self) -> bool {
        self.default
    }

    /// Builds the detector with `opts`.
    pub fn build(&self, opts: &DetectorOptions) -> Box<dyn DynDetector> {
        (self.build)(opts)
    }

    /// Reads back a fitted state of this detector written by
    /// [`SaveState::save_state`](crate::SaveState::save_state).
    ///
    /// # Errors
    /// [`StateError::Decode`] when the bytes are not this detector's state.
    pub fn load(&self, state: &[u8]) -> Result<Box<dyn FittedDetector>, StateError> {
        (self.load)(state)
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
const fn entry<D>(default: bool, build: fn(&DetectorOptions) -> Box<dyn DynDetector>) -> Registered
where
    D: Detector + Send + Sync + std::fmt::Debug + 'static,
    D::Fitted: serde::de::DeserializeOwned,
{
    Registered { info: D::INFO, default, build, load: load_fitted::<D::Fitted> }
}

/// Decodes a fitted state of type `F` and boxes it.
fn load_fitted<F>(state: &[u8]) -> Result<Box<dyn FittedDetector>, StateError>
where
    F: FittedDetector + serde::de::DeserializeOwned + 'static,
{
    Ok(Box::new(poisonguard_core::load_state::<F>(state)?))
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
    ScanDecompositionParams,
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
/// which the audit's default set, the label requirements, the outlier weight group, the CLI's help,
/// `poisonguard detectors` and the README's detector table are read. Adding a detector is a
/// folder in its family's crate and one line here.
pub static REGISTRY: &[Registered] = &[
    entry::<SpectralSignatureParams>(true, |o| boxed(SpectralSignature::params().seed(o.seed), o)),
    entry::<SpectreParams>(true, |o| boxed(Spectre::params().seed(o.seed), o)),
    entry::<ScanDecompositionParams>(false, |o| {
        let params = ScanDecomposition::params().seed(o.seed);
        match &o.trusted {
            Some(rows) => boxed(params.trusted(rows.iter().copied()), o),
            None => boxed(params, o),
        }
    }),
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
    entry::<KnnLabelParams>(true, |o| match &o.trusted {
        Some(rows) => boxed(KnnLabel::params().trusted(rows.iter().copied()), o),
        None => boxed(KnnLabel::params(), o),
    }),
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

/// Ids of the detectors an audit runs when none are named
/// ([`Audit::for_dataset`](crate::Audit::for_dataset)).
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
    /// Rows of the audited dataset known to be clean (a vetted sample), if any: detectors that can
    /// use one measure their nulls on them (`knn_label`'s agreement law of every class with at
    /// least 30 of them) or fit on them (`scan_decomposition`'s global model); the others ignore
    /// it. The audit records them ([`Report::trusted`](crate::Report::trusted)): they are audited
    /// as every row is, and the share of them flagged is an observed false-positive rate.
    pub trusted: Option<Vec<usize>>,
}

impl Default for DetectorOptions {
    fn default() -> Self {
        Self {
            seed: poisonguard_core::DEFAULT_SEED,
            threshold: None,
            per_class: false,
            knn: KnnMode::Auto,
            trusted: None,
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

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn unknown_detector_lists_known_ones() {
        let e = detector("nope", &DetectorOptions::default()).unwrap_err();
        assert!(e.to_string().contains("spectral_signature"));
    }
}
