//! Reading tables and writing reports: column roles, label types, formats.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};

use poisonguard_core::{
    Detection, DetectorId, DetectorRun, LabelValue, Reason, Report, ThresholdRule,
};
use poisonguard_io::{Error, LoadOptions, load, report_columns, write_report, write_rows};
use polars::prelude::*;

fn datasets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn default_features_are_the_numeric_columns_without_a_role() {
    let opts = LoadOptions {
        label: Some("label".into()),
        truth: Some("is_poison".into()),
        ..LoadOptions::default()
    };
    let t = load(datasets().join("poisoned/digits_badnets.parquet"), &opts).unwrap();
    assert_eq!(t.feature_names().len(), 64);
    assert_eq!(t.feature_names()[0], "f0");
    assert_eq!(t.truth().unwrap().iter().filter(|&&p| p).count(), 20);
    assert_eq!(t.dataset().labels().unwrap().map().n_classes(), 10);
}

#[test]
fn explicit_features_exclude_string_labels_ids_and_sources() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "t.csv",
        "id,x,y,z,species,vendor\na1,1.5,2,9,cat,v1\na2,2.5,3,9,dog,v2\na3,0.5,1,9,cat,v1\n",
    );
    let opts = LoadOptions {
        label: Some("species".into()),
        id: Some("id".into()),
        source: Some("vendor".into()),
        exclude: vec!["z".into()],
        ..LoadOptions::default()
    };
    let t = load(&p, &opts).unwrap();
    assert_eq!(t.feature_names(), &["x".to_string(), "y".to_string()]);
    let d = t.dataset();
    assert_eq!(d.features().row(1).to_vec(), vec![2.5f32, 3.0]);
    assert_eq!(d.labels().unwrap().value_of_row(1), &LabelValue::Str("dog".into()));
    assert_eq!(d.ids().unwrap()[2], "a3");
    assert_eq!(d.sources().unwrap()[1], "v2");

    let only = LoadOptions { features: Some(vec!["y".into()]), ..opts.clone() };
    assert_eq!(load(&p, &only).unwrap().feature_names(), &["y".to_string()]);

    // the string id column would be a non-numeric feature if it had no role
    let err = load(&p, &LoadOptions { label: Some("species".into()), ..LoadOptions::default() });
    assert!(matches!(err, Err(Error::NonNumericColumn { ref column, .. }) if column == "id"));
}

#[test]
fn float_labels_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "f.csv", "x,label\n1,0.5\n2,1.5\n");
    let opts = LoadOptions { label: Some("label".into()), ..LoadOptions::default() };
    assert!(matches!(load(&p, &opts), Err(Error::LabelType { .. })));
}

#[test]
fn unsupported_input_extension() {
    let opts = LoadOptions::default();
    assert!(matches!(load("table.xlsx", &opts), Err(Error::UnsupportedFormat { .. })));
}

fn small_report(dir: &Path) -> (Report, poisonguard_core::Dataset) {
    let p = write(dir, "s.csv", "id,x,label\nr0,1,a\nr1,2,b\nr2,30,a\n");
    let opts = LoadOptions {
        label: Some("label".into()),
        id: Some("id".into()),
        ..LoadOptions::default()
    };
    let data = load(&p, &opts).unwrap().into_parts().0;
    let det = Detection::new(vec![0.1, 0.2, 5.0], &ThresholdRule::Fixed(1.0), |_, s| {
        Reason::Score { score: s, threshold: 1.0 }
    })
    .unwrap();
    let run = DetectorRun::new(DetectorId::new("demo"), poisonguard_core::Family::Outlier, det);
    (Report::new(vec![run], vec![], vec![0.5, 0.9, 1e-6], 0.1), data)
}

#[test]
fn parquet_arrow_csv_and_json_reports_round_trip_with_types() {
    let dir = tempfile::tempdir().unwrap();
    let (report, data) = small_report(dir.path());
    let expected = [
        "row",
        "id",
        "label",
        "demo_score",
        "demo_flagged",
        "demo_p",
        "suspicion",
        "p_value",
        "flagged",
        "threats",
        "reasons",
    ];
    assert_eq!(report_columns(&report, &data), expected);

    let pq = dir.path().join("r.parquet");
    write_report(&pq, &report, &data).unwrap();
    let df = ParquetReader::new(std::fs::File::open(&pq).unwrap()).finish().unwrap();
    let names: Vec<&str> = df.get_column_names().iter().map(|s| s.as_str()).collect();
    assert_eq!(names, expected);
    assert_eq!(df.height(), 3);
    assert_eq!(df.column("row").unwrap().dtype(), &DataType::Int64);
    assert_eq!(df.column("label").unwrap().dtype(), &DataType::String);
    assert_eq!(df.column("demo_flagged").unwrap().dtype(), &DataType::Boolean);
    let reasons = df.column("reasons").unwrap();
    assert_eq!(reasons.str().unwrap().get(2), Some("demo: score 5.0000 exceeds threshold 1.0000"));
    assert_eq!(reasons.str().unwrap().get(0), Some(""));

    // the Arrow IPC file format: the same frame as the Parquet report
    let arrow = dir.path().join("r.arrow");
    write_report(&arrow, &report, &data).unwrap();
    let back = IpcReader::new(std::fs::File::open(&arrow).unwrap()).finish().unwrap();
    assert!(back.equals_missing(&df), "the Arrow report is the Parquet report");

    let csv = dir.path().join("r.csv");
    write_report(&csv, &report, &data).unwrap();
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(text.lines().next().unwrap(), expected.join(","));
    assert_eq!(text.lines().count(), 4);
    // row 0: below the demo detector's median (p = 1), combined p 0.5, not flagged
    assert!(text.lines().nth(1).unwrap().starts_with("0,r0,a,0.1,false,1.0,0.2313"), "{text}");
    assert!(text.lines().nth(1).unwrap().ends_with(",0.5,false,\"\",\"\""), "{text}");

    let json = dir.path().join("r.json");
    write_report(&json, &report, &data).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v[2]["id"], "r2");
    assert_eq!(v[2]["flagged"], true);
    assert_eq!(v[1]["demo_score"], 0.2);
    assert_eq!(v[2]["p_value"], 1e-6);
}

#[test]
fn kept_rows_round_trip_with_columns_and_types() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("mixed.parquet");
    let mut frame = DataFrame::new(
        4,
        vec![
            Column::new("a".into(), vec![1i64, 2, 3, 4]),
            Column::new("b".into(), vec![0.5f32, 1.5, 2.5, 3.5]),
            Column::new("name".into(), vec!["w", "x", "y", "z"]),
            Column::new("ok".into(), vec![true, false, true, false]),
            Column::new("small".into(), vec![1u8, 2, 3, 4]),
        ],
    )
    .unwrap();
    ParquetWriter::new(std::fs::File::create(&input).unwrap()).finish(&mut frame).unwrap();
    let keep = [true, false, true, true];
    for ext in ["parquet", "arrow", "csv"] {
        let out = dir.path().join(format!("clean.{ext}"));
        assert_eq!(write_rows(&input, &keep, &out, None).unwrap(), 3);
        let back = if ext == "parquet" {
            ParquetReader::new(std::fs::File::open(&out).unwrap()).finish().unwrap()
        } else if ext == "arrow" {
            IpcReader::new(std::fs::File::open(&out).unwrap()).finish().unwrap()
        } else {
            CsvReadOptions::default()
                .with_has_header(true)
                .try_into_reader_with_file_path(Some(out.clone()))
                .unwrap()
                .finish()
                .unwrap()
        };
        assert_eq!(back.get_column_names(), frame.get_column_names(), "{ext}");
        assert_eq!(back.height(), 3);
        if ext != "csv" {
            assert_eq!(back.schema(), frame.schema(), "types survive in {ext}");
            let expected = frame.filter(&BooleanChunked::from_slice("k".into(), &keep)).unwrap();
            assert!(back.equals(&expected));
        }
    }
    // quarantine: the flagged rows with their input row and reasons
    let out = dir.path().join("q.parquet");
    let flagged = [false, true, false, false];
    let reasons = |i: usize| if i == 1 { "why".to_string() } else { String::new() };
    assert_eq!(write_rows(&input, &flagged, &out, Some(&reasons)).unwrap(), 1);
    let back = ParquetReader::new(std::fs::File::open(&out).unwrap()).finish().unwrap();
    assert_eq!(back.column("poisonguard_row").unwrap().i64().unwrap().get(0), Some(1));
    assert_eq!(back.column("poisonguard_reasons").unwrap().str().unwrap().get(0), Some("why"));
    // a mask of the wrong length, a JSON target
    assert!(matches!(write_rows(&input, &[true], &out, None), Err(Error::Data { .. })));
    assert!(matches!(
        write_rows(&input, &keep, dir.path().join("x.json"), None),
        Err(Error::UnsupportedFormat { .. })
    ));
}

/// Writes `frame` as Parquet into `dir`.
fn parquet(dir: &Path, name: &str, mut frame: DataFrame) -> PathBuf {
    let p = dir.join(name);
    let file = std::fs::File::create(&p).unwrap();
    ParquetWriter::new(file).finish(&mut frame).unwrap();
    p
}

#[test]
fn a_finite_value_beyond_f32_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "big.csv", "a,b\n1,2\n3,1e40\n");
    let e = load(&p, &LoadOptions::default()).unwrap_err().to_string();
    assert!(e.contains("row 1") && e.contains("beyond the f32 range"), "{e}");
    assert!(!e.contains("not finite"), "{e}");
    // just inside f32's range is read
    let p = write(dir.path(), "edge.csv", "a,b\n1,2\n3,3e38\n");
    assert!(load(&p, &LoadOptions::default()).is_ok());
}

#[test]
fn a_column_named_twice_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "dup.csv", "a,b,a\n1,2,3\n4,5,6\n");
    let e = load(&p, &LoadOptions::default()).unwrap_err().to_string();
    assert!(e.contains("\"a\" appears twice in the header"), "{e}");
    let p = write(dir.path(), "ok.csv", "a,b,c\n1,2,3\n4,5,6\n");
    let opts = LoadOptions {
        features: Some(vec!["a".into(), "b".into(), "a".into()]),
        ..LoadOptions::default()
    };
    let e = load(&p, &opts).unwrap_err().to_string();
    assert!(e.contains("\"a\" appears twice in --features"), "{e}");
}

#[test]
fn string_labels_are_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "pad.csv", "x,label\n1,cat\n2, cat\n3,dog \n4,dog\n");
    let opts = LoadOptions { label: Some("label".into()), ..LoadOptions::default() };
    let t = load(&p, &opts).unwrap();
    let map = t.dataset().labels().unwrap().map().clone();
    assert_eq!(map.values(), &[LabelValue::Str("cat".into()), LabelValue::Str("dog".into())]);
}

#[test]
fn an_unsigned_label_beyond_i64_is_named_not_missing() {
    let dir = tempfile::tempdir().unwrap();
    let frame = df!("x" => [1.0f32, 2.0, 3.0], "label" => [1u64, 2, u64::MAX]).unwrap();
    let p = parquet(dir.path(), "u64.parquet", frame);
    let opts = LoadOptions { label: Some("label".into()), ..LoadOptions::default() };
    let e = load(&p, &opts).unwrap_err().to_string();
    assert!(e.contains("row 2") && e.contains("18446744073709551615"), "{e}");
    assert!(e.contains("64-bit signed integer") && !e.contains("missing"), "{e}");
}

/// A report of more rows than one write holds (65,536) is written a chunk at a time, as CSV
/// lines, Parquet row groups and JSON objects: the file is the one-frame write of the same
/// report, byte for byte for CSV, value for value for Parquet and JSON; keys given without a
/// dataset (a batched audit's) write the same columns.
#[test]
fn a_long_report_is_written_in_chunks_as_if_whole() {
    let n = 150_000;
    let scores: Vec<f64> = (0..n).map(|i| ((i * 7919) % 1000) as f64 / 100.0).collect();
    let det = Detection::new(scores, &ThresholdRule::Fixed(9.9), |_, s| Reason::Score {
        score: s,
        threshold: 9.9,
    })
    .unwrap();
    let run = DetectorRun::new(DetectorId::new("demo"), poisonguard_core::Family::Outlier, det);
    let p: Vec<f64> = (0..n).map(|i| ((i * 104_729) % n) as f64 / n as f64).collect();
    let report = Report::new(vec![run], vec![], p, 0.1);
    let labels: Vec<LabelValue> = (0..n).map(|i| LabelValue::Int((i % 3) as i64)).collect();
    let keys = poisonguard_core::RowKeys::new(n)
        .with_labels(poisonguard_core::Labels::from_values(&labels))
        .unwrap()
        .with_ids((0..n).map(|i| format!("r{i}")).collect())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let features = ndarray::Array2::<f32>::zeros((n, 1));
    let data = keys.dataset(features, &(0..n).collect::<Vec<_>>()).unwrap();
    let mut whole = poisonguard_io::report_frame(&report, &data).unwrap();
    let one = dir.path().join("one.csv");
    CsvWriter::new(std::fs::File::create(&one).unwrap()).finish(&mut whole).unwrap();
    for name in ["r.csv", "r.parquet", "r.json"] {
        let path = dir.path().join(name);
        poisonguard_io::write_report_keys(&path, &report, &keys).unwrap();
        let chunked = dir.path().join(format!("k-{name}"));
        write_report(&chunked, &report, &data).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), std::fs::read(&chunked).unwrap(), "{name}");
    }
    assert_eq!(std::fs::read(&one).unwrap(), std::fs::read(dir.path().join("r.csv")).unwrap());
    let back = ParquetReader::new(std::fs::File::open(dir.path().join("r.parquet")).unwrap())
        .finish()
        .unwrap();
    assert!(back.equals(&whole));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("r.json")).unwrap()).unwrap();
    assert_eq!(json.as_array().unwrap().len(), n);
    assert_eq!(json[n - 1]["id"], "r149999");
}

/// A long Parquet table, and the same table as two shards, are copied 65,536 rows at a time:
/// the kept rows (with the quarantine's row and reasons columns) are those of the whole
/// frame filtered at once, in every output format; shards with other columns are refused.
#[test]
fn kept_rows_of_a_long_table_and_its_shards_are_copied_in_chunks() {
    let n = 150_000usize;
    let table = |rows: std::ops::Range<usize>| {
        DataFrame::new(
            rows.len(),
            vec![
                Column::new("a".into(), rows.clone().map(|i| i as i64).collect::<Vec<_>>()),
                Column::new("b".into(), rows.clone().map(|i| i as f32 / 7.0).collect::<Vec<_>>()),
                Column::new("name".into(), rows.map(|i| format!("n{i}")).collect::<Vec<_>>()),
            ],
        )
        .unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let write = |path: &Path, mut frame: DataFrame| {
        let file = std::fs::File::create(path).unwrap();
        ParquetWriter::new(file).with_row_group_size(Some(10_000)).finish(&mut frame).unwrap();
    };
    let whole = dir.path().join("whole.parquet");
    write(&whole, table(0..n));
    let shards = dir.path().join("shards");
    std::fs::create_dir(&shards).unwrap();
    write(&shards.join("part-0.parquet"), table(0..90_000));
    write(&shards.join("part-1.parquet"), table(90_000..n));
    let keep: Vec<bool> = (0..n).map(|i| i % 7 != 3).collect();
    let reasons = |i: usize| format!("why {i}");
    let mut expected = table(0..n);
    expected
        .with_column(Column::new("poisonguard_row".into(), (0..n as i64).collect::<Vec<_>>()))
        .unwrap();
    let why: Vec<String> =
        (0..n).map(|i| if keep[i] { reasons(i) } else { String::new() }).collect();
    expected.with_column(Column::new("poisonguard_reasons".into(), why)).unwrap();
    let expected = expected.filter(&BooleanChunked::from_slice("k".into(), &keep)).unwrap();
    for input in [&whole, &shards] {
        for ext in ["parquet", "arrow", "csv"] {
            let out = dir.path().join(format!("kept.{ext}"));
            let written = write_rows(input, &keep, &out, Some(&reasons)).unwrap();
            assert_eq!(written, expected.height());
            let back = match ext {
                "parquet" => ParquetReader::new(std::fs::File::open(&out).unwrap()).finish(),
                "arrow" => IpcReader::new(std::fs::File::open(&out).unwrap()).finish(),
                _ => CsvReadOptions::default()
                    .with_has_header(true)
                    .with_schema(Some(expected.schema().clone()))
                    .try_into_reader_with_file_path(Some(out.clone()))
                    .unwrap()
                    .finish(),
            }
            .unwrap();
            assert!(back.equals(&expected), "{} -> {ext}", input.display());
        }
    }
    // a shard with other columns
    let mut other = table(0..10);
    other.rename("b", "c".into()).unwrap();
    write(&shards.join("part-2.parquet"), other);
    let keep = vec![true; n + 10];
    let out = dir.path().join("kept.parquet");
    let err = write_rows(&shards, &keep, &out, None).unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("part-2.parquet"), "{err}");
}
