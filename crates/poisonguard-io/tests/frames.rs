//! polars frames in and out: a frame a pipeline holds reads as the file it came from, and the
//! report comes back as a frame.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use crate::common;

use common::{badnets, badnets_roles as opts};

use poisonguard_core::{Detection, DetectorId, DetectorRun, Family, Reason, Report, ThresholdRule};
use poisonguard_io::polars::prelude::*;
use poisonguard_io::{LoadOptions, from_frame, load, report_columns, report_frame};

#[test]
fn a_frame_reads_as_its_file_and_the_report_comes_back_as_a_frame() {
    let frame = ParquetReader::new(std::fs::File::open(badnets()).unwrap()).finish().unwrap();
    let from_file = load(badnets(), &opts()).unwrap();
    let table = from_frame(&frame, &opts()).unwrap();
    common::same(&table, &from_file, "frame and file");

    let data = table.dataset();
    let scores: Vec<f64> = (0..data.n_samples()).map(|i| (i % 7) as f64).collect();
    let detection = Detection::new(scores, &ThresholdRule::Fixed(5.5), |_, s| Reason::Score {
        score: s,
        threshold: 5.5,
    })
    .unwrap();
    let run = DetectorRun::new(DetectorId::new("toy"), Family::Outlier, detection);
    let p = vec![0.5; data.n_samples()];
    let report = Report::new(vec![run], Vec::new(), p, 0.1);
    let out = report_frame(&report, data).unwrap();
    assert_eq!(out.height(), data.n_samples());
    let names: Vec<String> = out.get_column_names().iter().map(|s| s.to_string()).collect();
    assert_eq!(names, report_columns(&report, data));
    let toy = out.column("toy_score").unwrap().f64().unwrap();
    assert_eq!(toy.get(6), Some(6.0));
}

#[test]
fn a_frame_gets_the_errors_a_file_gets() {
    let frame = df!("a" => [1.0f32, 2.0], "label" => ["x", "y"]).unwrap();
    let o = LoadOptions { label: Some("nope".into()), ..LoadOptions::default() };
    let e = from_frame(&frame, &o).unwrap_err().to_string();
    assert!(e.starts_with("DataFrame: no column \"nope\" (label)"), "{e}");
    let text = df!("a" => ["1", "oops"], "label" => [0i64, 1]).unwrap();
    let o = LoadOptions { label: Some("label".into()), ..LoadOptions::default() };
    let e = from_frame(&text, &o).unwrap_err().to_string();
    assert!(e.contains("row 1 holds \"oops\""), "{e}");
    let empty = df!("a" => Vec::<f32>::new()).unwrap();
    let e = from_frame(&empty, &LoadOptions::default()).unwrap_err().to_string();
    assert!(e.contains("no rows"), "{e}");
}

#[test]
fn a_table_written_as_arrow_reads_back_as_the_parquet_table() {
    // `write_dataset` (what `poisonguard eval` saves) in the Arrow IPC file format, read back
    let from_parquet = load(badnets(), &opts()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let arrow = dir.path().join("badnets.arrow");
    poisonguard_io::write_dataset(&arrow, from_parquet.dataset(), from_parquet.truth()).unwrap();
    let from_arrow = load(&arrow, &opts()).unwrap();
    common::same(&from_arrow, &from_parquet, "Arrow and Parquet");
}
