//! Spectral-signature family of [poisonguard](https://crates.io/crates/poisonguard) detectors:
//! does a class carry a hidden sub-population along one direction?
//!
//! # Overview
//! - [`SpectralSignature`] (Tran, Li, Madry 2018): per class, the squared projection of each
//!   centred row onto the class's top singular direction.
//! - [`Spectre`] (Hayase et al. 2021): per class, quantum-entropy scores of the rows whitened by
//!   a robust covariance, in an automatically chosen number of principal directions.
//! - [`ScanDecomposition`] (Tang et al. 2021, SCAn): a global model of class identities and
//!   within-class variation; per class, a likelihood-ratio test of two components against one.
//! - [`ActivationClustering`] (Chen et al. 2018): per class, two-means on the top principal
//!   directions; a small, well separated cluster is flagged.
//!
//! Detectors follow the `poisonguard-core` contract: `SpectralSignature::params()` gives
//! checked-on-fit hyperparameters; `fit(&Dataset)` returns a fitted detector with one score per
//! row (higher = more suspicious), a threshold, and class-level findings.
//!
//! ```
//! use ndarray::Array2;
//! use poisonguard_core::{Dataset, Detector, FittedDetector, Labels, LabelValue};
//! use poisonguard_spectral::SpectralSignature;
//! let x = Array2::from_shape_fn((60, 4), |(i, j)| ((i * 13 + j * 5) % 17) as f32);
//! let y: Vec<LabelValue> = (0..60).map(|i| LabelValue::Int(i % 3)).collect();
//! let data = Dataset::new(x)?.with_labels(Labels::from_values(&y))?;
//! let fitted = SpectralSignature::params().seed(1).fit(&data)?;
//! for finding in fitted.class_findings() {
//!     println!("class {}: spectral ratio {:.2}", finding.label(), finding.score());
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Design notes
//! Classes run in parallel (rayon, feature `parallel`, on by default); inside a class every
//! product is single-threaded with a fixed order, so results are bit-identical for any thread
//! count. Large classes never get a full SVD: see [`spectral_signature`].

pub mod activation_clustering;
mod classes;
mod error;
mod linalg;
pub mod scan_decomposition;
pub mod spectral_signature;
pub mod spectre;

pub use activation_clustering::{ActivationClustering, ActivationClusteringParams};
pub use error::{Error, Result};
pub use scan_decomposition::{ScanDecomposition, ScanDecompositionParams};
pub use spectral_signature::{
    SignatureScore, SpectralSignature, SpectralSignatureParams, SpectralSignatureValidParams,
};
pub use spectre::{Spectre, SpectreParams};
