//! Tables read in row batches (a batched audit's source): any batch of rows is what `load`
//! reads for those rows, from a Parquet file, Parquet shards, `.npy` shards with a meta table,
//! or an embedding list column; a bad value is named by its row in its file.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use crate::common;

use common::{badnets, badnets_roles as opts, fixture, write_npy, write_part};
use std::path::Path;

use ndarray::{Axis, concatenate};
use poisonguard_core::RowSource;
use poisonguard_io::polars::prelude::*;
use poisonguard_io::{LoadOptions, Table, load, open_batches, table_shape};

/// Opens `path` for batches, reads every row in batches of `batch` and checks them, the keys
/// and the shape read from the headers alone, against `whole`.
#[track_caller]
fn same_as_loaded(whole: &Table, path: &Path, opts: &LoadOptions, batch: usize, what: &str) {
    let mut source = open_batches(path, opts).unwrap();
    let n = whole.dataset().n_samples();
    assert_eq!(table_shape(path, opts).unwrap(), (n, whole.dataset().n_features()), "{what}");
    assert_eq!(source.keys().n_rows(), n, "{what}");
    assert_eq!(source.n_features(), whole.dataset().n_features(), "{what}");
    let parts: Vec<_> = (0..n.div_ceil(batch))
        .map(|b| source.read(b * batch..((b + 1) * batch).min(n)).unwrap())
        .collect();
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    assert_eq!(concatenate(Axis(0), &views).unwrap(), whole.dataset().features(), "{what}");
    assert_eq!(source.read(5..5).unwrap().nrows(), 0);
    assert!(source.read(n - 1..n + 1).is_err(), "{what}");
    let keys = source.keys();
    assert_eq!(keys.labels(), whole.dataset().labels(), "{what}");
    assert_eq!(keys.ids(), whole.dataset().ids(), "{what}");
    assert_eq!(source.truth(), whole.truth(), "{what}");
}

#[test]
fn batches_read_what_load_reads() {
    let whole = load(badnets(), &opts()).unwrap();
    same_as_loaded(&whole, &badnets(), &opts(), 250, "one Parquet file");
    assert_eq!(open_batches(badnets(), &opts()).unwrap().feature_names(), whole.feature_names());

    let dir = tempfile::tempdir().unwrap();
    write_part(&dir.path().join("part-0.parquet"), 0, 600);
    write_part(&dir.path().join("part-1.parquet"), 600, 1817);
    same_as_loaded(&whole, dir.path(), &opts(), 333, "Parquet shards");

    let arrays = tempfile::tempdir().unwrap();
    for (k, (start, end)) in [(0, 1000), (1000, 1817)].into_iter().enumerate() {
        write_npy(&arrays.path().join(format!("emb-{k}.npy")), &whole, start, end);
    }
    let o = LoadOptions { meta: Some(badnets()), ..opts() };
    same_as_loaded(&whole, arrays.path(), &o, 97, ".npy shards");

    let o = LoadOptions { embedding: Some("emb".into()), ..common::roles() };
    let lists = load(fixture("lists/fixed_f32.parquet"), &o).unwrap();
    same_as_loaded(&lists, &fixture("lists/fixed_f32.parquet"), &o, 2, "list column");

    // list columns read a page at a time: batches that begin and end inside pages and row
    // groups, and an earlier batch after a later one (the file is read from its start again)
    let o = LoadOptions {
        embedding: Some("emb".into()),
        label: Some("label".into()),
        ..LoadOptions::default()
    };
    for name in ["dict_v1_snappy", "split_v2_gzip", "plain_v1_lz4"] {
        let path = fixture(&format!("pages/{name}.parquet"));
        let whole = load(&path, &o).unwrap();
        same_as_loaded(&whole, &path, &o, 7, name);
        let mut source = open_batches(&path, &o).unwrap();
        let features = whole.dataset().features();
        for rows in [200..230, 3..9, 9..150, 290..300] {
            let want = features.slice_axis(Axis(0), rows.clone().into());
            assert_eq!(source.read(rows.clone()).unwrap(), want, "{name} {rows:?}");
        }
    }
}

#[test]
fn what_batches_cannot_read_is_a_clear_error() {
    let none = LoadOptions::default();
    let e = open_batches(fixture("npy/x.csv"), &none).unwrap_err().to_string();
    assert!(e.contains("convert"), "{e}");
    let e = table_shape(fixture("npy/x.csv"), &none).unwrap_err().to_string();
    assert!(e.contains("convert"), "{e}");
    let o = LoadOptions { trusted: Some("is_poison".into()), ..opts() };
    let e = open_batches(badnets(), &o).unwrap_err().to_string();
    assert!(e.contains("trusted"), "{e}");
    let o = LoadOptions { label: Some("nope".into()), ..LoadOptions::default() };
    assert!(open_batches(badnets(), &o).is_err());
    // a NaN is found when its batch is read, named by its row in the file
    let mut x = open_batches(fixture("npy/x_nan.npy"), &none).unwrap();
    let n = x.keys().n_rows();
    assert!(x.read(0..4).is_ok());
    let e = x.read(3..n).unwrap_err().to_string();
    assert!(e.contains("column \"#2\", row 4"), "{e}");
    // a Parquet NaN likewise
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nan.parquet");
    let mut frame = df!("a" => [1.0f32, 2.0, f32::NAN, 4.0], "label" => [0i64, 1, 0, 1]).unwrap();
    ParquetWriter::new(std::fs::File::create(&path).unwrap()).finish(&mut frame).unwrap();
    let mut t = open_batches(&path, &LoadOptions { label: Some("label".into()), ..none }).unwrap();
    assert!(t.read(0..2).is_ok());
    let e = t.read(1..4).unwrap_err().to_string();
    assert!(e.contains("row 2"), "{e}");
}
