//! Label-consistency family of [poisonguard](https://crates.io/crates/poisonguard) detectors:
//! does a row's label disagree with its neighbourhood, with an out-of-sample classifier, or with
//! its own near-duplicates, and does one data source hold too many such rows?
//!
//! # Overview
//! - [`KnnLabel`] (`knn_label`, Peri et al. 2020): the plurality label of the row's nearest
//!   neighbours is another class.
//! - [`ConfidentLearning`] (`confident_learning`, Northcutt et al. 2021): cleanlab's
//!   `find_label_issues`, with the dataset's out-of-sample probabilities or with a built-in
//!   cross-validated logistic regression; reports the estimated noise matrix.
//! - [`Duplicates`] (`duplicates`): groups of near-duplicates whose labels conflict or that are
//!   unusually large (flooding).
//! - [`sources::test_sources`]: which data sources hold more flagged rows than chance.
//!
//! Every detector follows the `poisonguard-core` contract: checked-on-fit hyperparameters,
//! `fit(&Dataset)`, one score per row (higher = more suspicious), a threshold that needs no
//! contamination rate, reasons for flagged rows.
//!
//! ```
//! use ndarray::Array2;
//! use poisonguard_core::{Dataset, Detector, FittedDetector, Labels, LabelValue};
//! use poisonguard_label::KnnLabel;
//! let x = Array2::from_shape_fn((40, 2), |(i, j)| (i % 2) as f32 * 5.0 + ((i * 3 + j) % 7) as f32 * 0.1);
//! let y: Vec<LabelValue> = (0..40).map(|i| LabelValue::Int((i % 2) as i64)).collect();
//! let data = Dataset::new(x)?.with_labels(Labels::from_values(&y))?;
//! let fitted = KnnLabel::params().fit(&data)?;
//! assert_eq!(fitted.training().n_flagged(), 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Design notes
//! The detectors standardize features by default: label consistency is a question about
//! classes, and raw units (a feature in thousands beside one in fractions) would decide the
//! neighbours instead. Work runs in parallel with rayon (feature `parallel`, on by default);
//! every reduction has a fixed order, so results do not depend on the thread count.

pub mod confident_learning;
pub mod duplicates;
mod error;
pub mod knn_label;
pub mod reference;
pub mod sources;

pub use confident_learning::{ConfidentLearning, ConfidentLearningParams, Ranking};
use poisonguard_neighbors::map_range;

pub use duplicates::{Duplicates, DuplicatesParams};
pub use error::{Error, Result};
pub use knn_label::{KnnLabel, KnnLabelParams};
pub use reference::Reference;

/// The maximum of a unimodal `f` on `[lo, hi]` by golden-section search: `iterations` steps,
/// each shrinking the bracket by the golden ratio (ties keep the lower half), then its middle.
fn golden_max(f: impl Fn(f64) -> f64, lo: f64, hi: f64, iterations: usize) -> f64 {
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let (mut a, mut b) = (lo, hi);
    let (mut c, mut d) = (b - g * (b - a), a + g * (b - a));
    let (mut fc, mut fd) = (f(c), f(d));
    for _ in 0..iterations {
        if fc >= fd {
            (b, d, fd) = (d, c, fc);
            c = b - g * (b - a);
            fc = f(c);
        } else {
            (a, c, fc) = (c, d, fd);
            d = a + g * (b - a);
            fd = f(d);
        }
    }
    (a + b) / 2.0
}

/// `(a(), b())`, side by side with the `parallel` feature.
fn join<A: Send, B: Send>(a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B + Send) -> (A, B) {
    #[cfg(feature = "parallel")]
    {
        rayon::join(a, b)
    }
    #[cfg(not(feature = "parallel"))]
    {
        (a(), b())
    }
}
