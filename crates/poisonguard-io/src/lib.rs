//! Input and output of [poisonguard](https://crates.io/crates/poisonguard): reads CSV and Parquet
//! tables, and NumPy `.npy` feature arrays with their labels beside them, into a checked
//! [`Dataset`](poisonguard_core::Dataset) and writes the per-row report as CSV, Parquet or JSON.
//! The only crate of the workspace that uses polars.
//!
//! # Overview
//! - [`load`] with [`LoadOptions`] (label / id / source / truth columns, feature selection) returns
//!   a [`Table`]: the dataset, the feature names and the optional ground truth. A `.npy` input
//!   (2-D float16/32/64, C order, either byte order) is the feature matrix, its columns named
//!   `#0`, `#1`, ...; its label, id, source and truth columns come from [`LoadOptions::meta`].
//! - [`write_report`] writes a [`Report`](poisonguard_core::Report) with the columns of
//!   [`report_columns`], one row per input row, in input order.
//!
//! Every error names the file and, where it applies, the column and the 0-based data row.
//!
//! ```no_run
//! use poisonguard_io::{load, LoadOptions};
//! let opts = LoadOptions { label: Some("label".into()), ..LoadOptions::default() };
//! let table = load("datasets/digits/digits.csv", &opts)?;
//! println!("{} rows x {} features", table.dataset().n_samples(), table.dataset().n_features());
//! # Ok::<(), poisonguard_io::Error>(())
//! ```
//!
//! # Design notes
//! Features are copied column by column into a row-major `f32` matrix (at most one column-sized
//! temporary for the cast). A Parquet embedding column, or numeric feature columns, are decoded
//! a page at a time straight into the matrix (`pages.rs`), and so is each batch of a batched
//! audit's features; other Parquet inputs are decoded a few row groups at a time (up to
//! 64 MiB of the file uncompressed, or one larger group) and copied into the matrix, so a load
//! holds the matrix and one such slice, not polars' frame of every feature beside it; a `.npy`
//! array is streamed in 1 MiB chunks. CSV and Arrow IPC inputs are read whole into a frame
//! first. Polars' `ndarray` feature is not
//! used: from polars 0.53 it builds against another ndarray than the rest of the workspace.

mod batches;
mod columns;
mod error;
mod files;
mod npy;
mod pages;
mod read;
mod table;
mod write;

pub use batches::{RowBatches, open_batches, table_shape};
pub use error::{Error, Result};
pub use read::{attach_pred_probs, from_frame, is_array_input, load};
pub use table::{Format, LoadOptions, Table};
pub use write::{
    report_columns, report_frame, write_dataset, write_report, write_report_keys, write_rows,
};

/// The polars this crate reads and writes frames with ([`from_frame`], [`report_frame`]): use it
/// to build frames of the same version.
pub use polars;
