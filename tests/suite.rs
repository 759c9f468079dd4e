//! The root crate's integration tests, one module per subject, linked into one test binary: a
//! binary per file linked the whole tree (polars through `poisonguard-io`) a dozen times, 2.2 GB
//! of the disk a CI run fills. Run one subject with `cargo test --test suite <module>::`.

mod audit;
mod batched;
mod calibration;
mod conformance;
mod grid;
mod label_poison;
mod linfa_traits;
mod merge;
mod model;
mod outlier_adbench;
mod pinned_scores;
mod planted_poison;
mod properties;
