//! The root crate's integration tests, one module per subject, linked into one test binary: a
//! binary per file linked the whole tree (polars through `poisonguard-io`) a dozen times, 2.2 GB
//! of the disk a CI run fills. Run one subject with `cargo test --test suite <module>::`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod audit;
mod batched;
mod calibration;
mod conformance;
mod docs;
mod grid;
mod label_poison;
mod linfa_traits;
mod merge;
mod model;
mod outlier_adbench;
mod pinned_scores;
mod planted_poison;
mod properties;
mod toy;
