//! # poisonguard
//!
//! Audits machine-learning training data for **poisoning** before a model is trained on it:
//! backdoor triggers, label flips, injected samples, near-duplicate flooding, a poisoned
//! contributor (the poisoning part of ISO/IEC 27090).
//!
//! # Overview
//! Build a checked [`Dataset`] (features as raw inputs or model embeddings, labels, optional ids
//! and sources), choose detectors, and run an [`Audit`]. The [`Report`] holds, for every row,
//! each detector's score (higher = more suspicious), its flag, reason and p-value, and the
//! combined p-value with its `suspicion` in [0, 1) and the flag that false-discovery control
//! gives it; each detector's class-level findings say which classes look attacked.
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
//! Spectral: `spectral_signature` (Tran 2018), `spectre` (Hayase 2021), `scan_decomposition`
//! (SCAn, Tang 2021), `activation_clustering` (Chen 2019). Outlier: `isolation_forest`, `knn_distance`, `lof`, `ecod`, `mahalanobis`, `pca`.
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

mod audit;
mod batched;
mod combine;
mod distributed;
mod error;
mod model;
mod reference;
mod registry;
pub mod summary;
pub use audit::{Audit, AuditEvent, DEFAULT_FDR};
pub use batched::{BatchPlan, reference_sample};
pub use combine::combined_p_values;
pub use distributed::{PartScores, ReferenceFit};
pub use error::{AuditError, error_chain};
pub use model::{FittedAudit, MODEL_FORMAT, MODEL_VERSION, ModelError};
pub use poisonguard_core::DEFAULT_SEED;
pub use reference::{ReferenceOutcome, reference_rows};
pub use registry::{
    DetectorOptions, REGISTRY, Registered, UnknownDetector, default_detector_ids, detector,
    detector_ids, registered,
};

pub use poisonguard_core::{
    AutoThreshold, Calibration, ClassFinding, ClassId, ClassStatistic, Configure, DataError,
    Dataset, Detection, DetectionRows, Detector, DetectorFailure, DetectorId, DetectorInfo,
    DetectorRun, DynDetector, EstimateMethod, Family, FitContext, FittedDetector, InMemoryRows,
    KnnGraph, LabelMap, LabelValue, Labels, LinfaError, Merge, MergeError, NoiseMatrix, ParamError,
    ParamGuard, PoisonEstimate, Reason, Report, ReportColumn, RowKeys, RowSource, SaveState,
    SkippedClass, SourceFinding, Standardizer, StateError, THREAT_RANKED_ROWS, Threat,
    ThreatFinding, ThresholdRule, TrainingScores, benjamini_hochberg, harmonic_mean_p, metrics,
    suspicion_of,
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
    ActivationClustering, ActivationClusteringParams, ScanDecomposition, ScanDecompositionParams,
    SignatureScore, SpectralSignature, SpectralSignatureParams, Spectre, SpectreParams,
};
