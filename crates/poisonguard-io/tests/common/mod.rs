//! What the io tests share: fixture paths, the column roles they load with, and the comparison
//! of two tables read from different forms of the same rows.

#![allow(dead_code)] // each test file uses part of it

use std::path::{Path, PathBuf};

use poisonguard_io::{LoadOptions, Table};
use polars::prelude::*;

/// A fixture under `tests/` (`"npy/x.csv"`).
pub fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join(path)
}

/// The shipped BadNets digits.
pub fn badnets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/poisoned/digits_badnets.parquet")
}

/// The roles of the shipped BadNets digits: `label`, and `is_poison` as truth.
pub fn badnets_roles() -> LoadOptions {
    LoadOptions {
        label: Some("label".into()),
        truth: Some("is_poison".into()),
        ..LoadOptions::default()
    }
}

/// The roles of the small fixtures: columns `label`, `id`, `source` and `truth`.
pub fn roles() -> LoadOptions {
    LoadOptions {
        label: Some("label".into()),
        id: Some("id".into()),
        source: Some("source".into()),
        truth: Some("truth".into()),
        ..LoadOptions::default()
    }
}

/// The same feature names and the same rows ([`same_rows`]).
#[track_caller]
pub fn same(a: &Table, b: &Table, what: &str) {
    assert_eq!(a.feature_names(), b.feature_names(), "{what}");
    same_rows(a, b, what);
}

/// The same features, labels, ids, sources and truth (an array's columns are named `#j`, not by
/// a table's header, so names are not compared).
#[track_caller]
pub fn same_rows(a: &Table, b: &Table, what: &str) {
    assert_eq!(a.dataset().features(), b.dataset().features(), "{what}");
    assert_eq!(a.dataset().labels(), b.dataset().labels(), "{what}");
    assert_eq!(a.dataset().ids(), b.dataset().ids(), "{what}");
    assert_eq!(a.dataset().sources(), b.dataset().sources(), "{what}");
    assert_eq!(a.truth(), b.truth(), "{what}");
}

/// Writes rows `[start, end)` of the shipped table to `path` as Parquet.
pub fn write_part(path: &Path, start: usize, end: usize) {
    let file = std::fs::File::open(badnets()).unwrap();
    let frame = ParquetReader::new(file).finish().unwrap();
    let mut part = frame.slice(start as i64, end - start);
    ParquetWriter::new(std::fs::File::create(path).unwrap()).finish(&mut part).unwrap();
}

/// A C-order little-endian float32 `.npy` file of `x`'s rows `[start, end)`.
pub fn write_npy(path: &Path, table: &Table, start: usize, end: usize) {
    let x = table.dataset().features();
    let d = x.ncols();
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {d}), }}", end - start);
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    for i in start..end {
        bytes.extend(x.row(i).iter().flat_map(|v| v.to_le_bytes()));
    }
    std::fs::write(path, bytes).unwrap();
}
