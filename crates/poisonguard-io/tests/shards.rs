//! A table given as shards: a directory, or a file name with `*`, read as one table with the
//! rows in file-name order.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use crate::common;

use common::{badnets, badnets_roles as opts, same, same_rows, write_npy, write_part};

use poisonguard_io::{LoadOptions, load};

#[test]
fn shards_read_as_the_whole_table() {
    let whole = load(badnets(), &opts()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // written out of order: the file names, not the directory listing, give the order
    write_part(&dir.path().join("part-2.parquet"), 1200, 1817);
    write_part(&dir.path().join("part-0.parquet"), 0, 600);
    write_part(&dir.path().join("part-1.parquet"), 600, 1200);
    std::fs::write(dir.path().join("README.txt"), "not a shard").unwrap();
    same(&whole, &load(dir.path(), &opts()).unwrap(), "directory");
    same(&whole, &load(dir.path().join("part-*.parquet"), &opts()).unwrap(), "wildcard");
    let one = load(dir.path().join("part-1*.parquet"), &opts()).unwrap();
    assert_eq!(one.dataset().n_samples(), 600);

    // .npy shards, with the labels and truth in one meta table
    let arrays = tempfile::tempdir().unwrap();
    for (k, (start, end)) in [(0, 1000), (1000, 1817)].into_iter().enumerate() {
        write_npy(&arrays.path().join(format!("emb-{k}.npy")), &whole, start, end);
    }
    let o = LoadOptions { meta: Some(badnets()), ..opts() };
    same_rows(&whole, &load(arrays.path(), &o).unwrap(), ".npy shards");
}

#[test]
fn shards_that_do_not_fit_together_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    write_part(&dir.path().join("a.parquet"), 0, 100);
    std::fs::write(dir.path().join("b.csv"), "x,label,is_poison\n1,0,0\n").unwrap();
    let e = load(dir.path(), &opts()).unwrap_err().to_string();
    assert!(e.contains("a shard of") && e.contains("b.csv"), "{e}");

    std::fs::write(dir.path().join("c.npy"), b"\x93NUMPY").unwrap();
    let e = load(dir.path(), &opts()).unwrap_err().to_string();
    assert!(e.contains("mixes .npy arrays and tables"), "{e}");

    let empty = tempfile::tempdir().unwrap();
    let e = load(empty.path(), &opts()).unwrap_err().to_string();
    assert!(e.contains("names no .csv, .parquet, .arrow (.feather, .ipc) or .npy file"), "{e}");
    let e = load(empty.path().join("none-*.parquet"), &opts()).unwrap_err().to_string();
    assert!(e.contains("names no .csv, .parquet, .arrow (.feather, .ipc) or .npy file"), "{e}");
}
