//! Embedding columns: one float list per row in a Parquet or Arrow column (`--embedding COL`).
//! The fixtures in `tests/lists/` were written by pyarrow 26 with the 6 x 3 values of
//! `tests/npy/x.csv` as FixedSizeList<float32>, List<float64>, List<float16> and
//! LargeList<float32>, beside label, id, source, truth and an unrelated numeric column. The
//! `.arrow` and `.feather` ones hold the FixedSizeList<float32> table in the Arrow IPC file format
//! (`fixed_f32.arrow`), the stream format in two record batches (`stream_f32.arrow`, as Hugging
//! Face `datasets` caches tables), and Feather v2 with LZ4 compression and an extra struct
//! column (`struct_lz4.feather`).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use crate::common;

use common::fixture;
use poisonguard_io::{LoadOptions, load};

fn roles(embedding: Option<&str>) -> LoadOptions {
    LoadOptions { embedding: embedding.map(str::to_string), ..common::roles() }
}

#[test]
fn every_list_type_reads_as_the_csv_columns() {
    let csv = load(fixture("npy/x.csv"), &roles(None)).unwrap();
    for file in ["fixed_f32", "list_f64", "list_f16", "large_list_f32"] {
        let t = load(fixture(&format!("lists/{file}.parquet")), &roles(Some("emb"))).unwrap();
        common::same(&t, &csv, file);
    }
    for file in ["fixed_f32.arrow", "stream_f32.arrow", "struct_lz4.feather"] {
        let t = load(fixture(&format!("lists/{file}")), &roles(Some("emb"))).unwrap();
        common::same(&t, &csv, file);
    }
}

#[test]
fn arrow_columns_read_as_parquet_columns() {
    // the plain columns, without the embedding: `other` is the one feature (the Feather file's
    // struct column is excluded by name, so the reader never touches it)
    let without = |columns: &[&str]| LoadOptions {
        exclude: columns.iter().map(|c| c.to_string()).collect(),
        ..common::roles()
    };
    let pq = load(fixture("lists/fixed_f32.parquet"), &without(&["emb"])).unwrap();
    for (file, excluded) in [
        ("fixed_f32.arrow", &["emb"][..]),
        ("stream_f32.arrow", &["emb"][..]),
        ("struct_lz4.feather", &["emb", "meta"][..]),
    ] {
        let t = load(fixture(&format!("lists/{file}")), &without(excluded)).unwrap();
        common::same(&t, &pq, file);
    }
}

#[test]
fn bad_embedding_columns_are_clear_errors() {
    let cases = [
        ("lists/ragged.parquet", Some("emb"), "row 3: 2 values where the first row has 3"),
        ("lists/null_value.parquet", Some("emb"), "column \"emb[1]\", row 2"),
        ("lists/null_row.parquet", Some("emb"), "row 1"),
        ("lists/list_int.parquet", Some("emb"), "must hold lists of float16, float32 or float64"),
        ("lists/fixed_f32.parquet", Some("label"), "embedding column \"label\""),
        ("lists/fixed_f32.parquet", Some("nope"), "no column \"nope\" (embedding)"),
        ("lists/fixed_f32.parquet", None, "read it as the features with --embedding emb"),
        ("lists/struct_lz4.feather", Some("meta"), "embedding column \"meta\""),
        ("lists/fixed_f32.arrow", None, "read it as the features with --embedding emb"),
        ("npy/x.csv", Some("#0"), "must hold lists"),
    ];
    for (file, embedding, fragment) in cases {
        let e = load(fixture(file), &roles(embedding)).unwrap_err().to_string();
        assert!(e.contains(fragment), "{file} {embedding:?}: {e}");
    }
    let opts = LoadOptions { features: Some(vec!["other".into()]), ..roles(Some("emb")) };
    let e = load(fixture("lists/fixed_f32.parquet"), &opts).unwrap_err().to_string();
    assert!(e.contains("give one"), "{e}");
}
