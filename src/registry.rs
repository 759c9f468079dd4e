//! The detectors this build offers ([`REGISTRY`]) and how the audit builds them from
//! [`DetectorOptions`].

use poisonguard_core::{
    Configure, Detector, DetectorInfo, DynDetector, FittedDetector, StateError, ThresholdRule,
};
use poisonguard_label::{ConfidentLearningParams, DuplicatesParams, KnnLabelParams};
use poisonguard_neighbors::KnnMode;
use poisonguard_outlier::{
    EcodParams, IsolationForestParams, KnnDistanceParams, LofParams, MahalanobisParams, PcaParams,
};
use poisonguard_spectral::{
    ActivationClusteringParams, ScanDecompositionParams, SpectralSignatureParams, SpectreParams,
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

impl Registered {
    /// A registry line: the detector whose parameters are `D`, and whether the default audit
    /// runs it. Its declaration is `D::INFO`; every detector is built the same way (`D`'s
    /// default parameters with the [`DetectorOptions`] every detector takes, [`Configure`]) and
    /// read back from a saved state by `D::Fitted`'s serde. A detector is added by its folder
    /// (parameters, fit, fitted state) and this one line in [`REGISTRY`].
    pub const fn of<D>(default: bool) -> Registered
    where
        D: Detector + Configure + Send + Sync + std::fmt::Debug + 'static,
        D::Fitted: serde::de::DeserializeOwned,
    {
        Registered { info: D::INFO, default, build: build::<D>, load: load_fitted::<D::Fitted> }
    }
}

/// Decodes a fitted state of type `F` and boxes it.
fn load_fitted<F>(state: &[u8]) -> Result<Box<dyn FittedDetector>, StateError>
where
    F: FittedDetector + serde::de::DeserializeOwned + 'static,
{
    Ok(Box::new(poisonguard_core::load_state::<F>(state)?))
}

/// `D`'s default parameters (the paper's) with the options every detector takes
/// ([`Configure`]): the seed, the per-class fit, the trusted rows and the threshold rule.
fn build<D>(opts: &DetectorOptions) -> Box<dyn DynDetector>
where
    D: Detector + Configure + Send + Sync + std::fmt::Debug + 'static,
{
    let mut params = D::default().with_seed(opts.seed).with_per_class(opts.per_class);
    if let Some(rows) = &opts.trusted {
        params = params.with_trusted(rows);
    }
    if let Some(rule) = opts.threshold {
        params = params.with_threshold(rule);
    }
    Box::new(params)
}

/// Every detector this build offers, in the order an audit reports them: the one list from
/// which the audit's default set, the label requirements, the outlier weight group, the CLI's help,
/// `poisonguard detectors` and the README's detector table are read. Adding a detector is a
/// folder in its family's crate and one line here.
pub static REGISTRY: &[Registered] = &[
    Registered::of::<SpectralSignatureParams>(true),
    Registered::of::<SpectreParams>(true),
    Registered::of::<ScanDecompositionParams>(false),
    Registered::of::<ActivationClusteringParams>(false),
    Registered::of::<IsolationForestParams>(true),
    Registered::of::<KnnDistanceParams>(false),
    Registered::of::<LofParams>(false),
    Registered::of::<EcodParams>(true),
    Registered::of::<MahalanobisParams>(false),
    Registered::of::<PcaParams>(false),
    Registered::of::<KnnLabelParams>(true),
    Registered::of::<ConfidentLearningParams>(true),
    Registered::of::<DuplicatesParams>(true),
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
