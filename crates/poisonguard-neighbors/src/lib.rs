//! Exact k-nearest neighbours for [poisonguard](https://crates.io/crates/poisonguard): one
//! [`KnnGraph`] per scan, shared by every detector that needs neighbours.
//!
//! # Overview
//! [`exact_knn`] computes distances by blocked matrix products (`|a|^2 + |b|^2 - 2ab`, f32 GEMM
//! from faer) with a bounded top-k list per query row, never an `n x n` matrix; candidates are
//! re-ranked with exact differences (f64 accumulation), so results match a naive O(n^2) search.
//! Up to 12 features a k-d tree (median splits on the widest dimension, leaves of 32 rows)
//! answers the same queries exactly, without the quadratic cost. For large n where an
//! approximate graph will do, [`approximate_knn`] runs NN-Descent (Dong et al. 2011).
//! Query blocks run in parallel; results do not depend on the thread count.
//!
//! ```
//! use ndarray::Array2;
//! use poisonguard_neighbors::exact_knn;
//! let x = Array2::from_shape_fn((100, 4), |(i, j)| ((i * 7 + j) % 13) as f32);
//! let graph = exact_knn(x.view(), 5)?;
//! assert_eq!(graph.neighbors(0).len(), 5);
//! assert!(!graph.neighbors(0).contains(&0));
//! # Ok::<(), poisonguard_neighbors::Error>(())
//! ```

mod approx;
mod error;
mod exact;
mod kdtree;

pub use approx::{ApproxParams, approximate_knn};
pub use error::{Error, Result};
pub use exact::{exact_knn, exact_knn_query};
pub use poisonguard_core::KnnGraph;
