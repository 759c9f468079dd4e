//! Outlier family of [poisonguard](https://crates.io/crates/poisonguard) detectors: is this
//! sample unlike the rest (of its class)? Poisoned and fabricated samples often are.
//!
//! # Overview
//! | detector | module | score |
//! | --- | --- | --- |
//! | [`IsolationForest`] (Liu 2008) | [`isolation_forest`] | `2^(-E[h]/c(psi))` |
//! | [`KnnDistance`] (Ramaswamy 2000) | [`knn_distance`] | distance to the k-th neighbour |
//! | [`Lof`] (Breunig 2000) | [`lof`] | local outlier factor |
//! | [`Ecod`] (Li 2022) | [`ecod`] | sum of `-ln` tail probabilities |
//! | [`Mahalanobis`] (Rousseeuw 1999) | [`mahalanobis`] | squared robust (MCD) Mahalanobis distance |
//! | [`Pca`] (PyOD) | [`pca`] | weighted distance to the principal axes |
//!
//! Every detector follows the `poisonguard-core` contract (`X::params()` -> `fit(&Dataset)` ->
//! fitted detector, higher score = more suspicious) and can fit per class
//! (`.per_class(true)`): one model per label, each row scored against its own class, classes in
//! parallel. Defaults are the papers' (and PyOD's).
//!
//! ```
//! use ndarray::Array2;
//! use poisonguard_core::{Dataset, Detector, FittedDetector};
//! use poisonguard_outlier::KnnDistanceParams;
//! let mut x = Array2::from_shape_fn((50, 2), |(i, j)| ((i * 7 + j * 3) % 10) as f32);
//! x.row_mut(0).fill(100.0);
//! let fitted = KnnDistanceParams::default().fit(&Dataset::new(x)?)?;
//! assert!(fitted.training().is_flagged(0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Design notes
//! One generic [`Outlier`] wraps each detector's per-group [`OutlierModel`]: global or per-class
//! fitting, thresholding, reasons and scoring of new rows are written once. Randomized detectors
//! derive per-tree and per-class seeds from one seed, so results do not depend on the thread
//! count.

pub mod ecod;
mod error;
pub mod isolation_forest;
pub mod knn_distance;
pub mod lof;
pub mod mahalanobis;
mod model;
pub mod pca;

pub use ecod::{Ecod, EcodParams};
pub use error::{Error, Result};
pub use isolation_forest::{IsolationForest, IsolationForestParams};
pub use knn_distance::{KnnDistance, KnnDistanceParams, KnnStatistic};
pub use lof::{Lof, LofParams};
pub use mahalanobis::{Mahalanobis, MahalanobisParams};
pub use model::{Common, MAX_COVARIANCE_FEATURES, MergeableModel, Outlier, OutlierModel};
pub use pca::{Pca, PcaParams};
