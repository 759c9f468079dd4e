//! Writing the per-row report as CSV, Parquet, Arrow IPC or JSON (by extension).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use poisonguard_core::{Dataset, LabelValue, Labels, Report, RowKeys};
use polars::prelude::*;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::read::Format;

/// The report's column names, in order: `row`, `id` (if the dataset has ids), `label` (if it has
/// labels), `<detector>_score`, `<detector>_flagged` and `<detector>_p` (its p-value) per
/// detector run, then `suspicion`, `p_value` (combined), `flagged`, `reasons`.
pub fn report_columns(report: &Report, data: &Dataset) -> Vec<String> {
    columns(report, data.ids(), data.labels())
}

fn columns(report: &Report, ids: Option<&[String]>, labels: Option<&Labels>) -> Vec<String> {
    let mut names = vec!["row".to_string()];
    if ids.is_some() {
        names.push("id".into());
    }
    if labels.is_some() {
        names.push("label".into());
    }
    for run in report.runs() {
        names.push(format!("{}_score", run.id));
        names.push(format!("{}_flagged", run.id));
        names.push(format!("{}_p", run.id));
    }
    names.extend(["suspicion", "p_value", "flagged", "reasons"].map(String::from));
    names
}

/// One column of the report, typed.
enum Values {
    Int(Vec<i64>),
    Float(Vec<f64>),
    Bool(Vec<bool>),
    Text(Vec<String>),
}

fn report_values(report: &Report, ids: Option<&[String]>, labels: Option<&Labels>) -> Vec<Values> {
    let n = report.n_samples();
    let mut cols = vec![Values::Int((0..n as i64).collect())];
    if let Some(ids) = ids {
        cols.push(Values::Text(ids.to_vec()));
    }
    if let Some(labels) = labels {
        let values: Vec<&LabelValue> = (0..n).map(|i| labels.value_of_row(i)).collect();
        if values.iter().all(|v| matches!(v, LabelValue::Int(_))) {
            let ints = values.iter().map(|v| if let LabelValue::Int(k) = v { *k } else { 0 });
            cols.push(Values::Int(ints.collect()));
        } else {
            cols.push(Values::Text(values.iter().map(|v| v.to_string()).collect()));
        }
    }
    for run in report.runs() {
        cols.push(Values::Float(run.detection.scores().to_vec()));
        cols.push(Values::Bool(run.detection.flagged()));
        cols.push(Values::Float(run.detection.p_values().to_vec()));
    }
    cols.push(Values::Float(report.suspicion().to_vec()));
    cols.push(Values::Float(report.p_values().to_vec()));
    cols.push(Values::Bool((0..n).map(|i| report.is_flagged(i)).collect()));
    cols.push(Values::Text((0..n).map(|i| report.reasons_of_row(i)).collect()));
    cols
}

/// Writes one row per input row, in input order, to `path` as CSV, Parquet or JSON (an array of
/// objects) chosen by its extension. Columns: [`report_columns`].
///
/// # Errors
/// [`Error::UnsupportedFormat`] for another extension, [`Error::Write`] / [`Error::Io`] when the
/// file cannot be written.
pub fn write_report(path: impl AsRef<Path>, report: &Report, data: &Dataset) -> Result<()> {
    write_keyed(path.as_ref(), report, data.ids(), data.labels())
}

/// [`write_report`] for rows known by their keys (a table audited in batches,
/// `Audit::run_batched`): the same columns, the ids and labels read from `keys`.
///
/// # Errors
/// As [`write_report`].
pub fn write_report_keys(path: impl AsRef<Path>, report: &Report, keys: &RowKeys) -> Result<()> {
    write_keyed(path.as_ref(), report, keys.ids(), keys.labels())
}

fn write_keyed(
    path: &Path,
    report: &Report,
    ids: Option<&[String]>,
    labels: Option<&Labels>,
) -> Result<()> {
    let shown = path.display().to_string();
    let format = Format::of(path, true)?;
    let file = File::create(path).map_err(|e| Error::Io { path: shown.clone(), source: e })?;
    let write_err = |e: PolarsError| Error::Write { path: shown.clone(), message: e.to_string() };
    if format == Format::Json {
        let (names, values) = (columns(report, ids, labels), report_values(report, ids, labels));
        return write_json(BufWriter::new(file), &names, &values)
            .map_err(|e| Error::Write { path: shown.clone(), message: e.to_string() });
    }
    let mut frame = frame_of(report, ids, labels).map_err(write_err)?;
    write_frame(format, file, &mut frame).map_err(write_err)
}

/// Writes `frame` to `file` as `format` (CSV, Parquet or the Arrow IPC file format).
fn write_frame(format: Format, file: File, frame: &mut DataFrame) -> PolarsResult<()> {
    match format {
        Format::Csv => CsvWriter::new(BufWriter::new(file)).finish(frame),
        Format::Ipc => IpcWriter::new(BufWriter::new(file)).finish(frame),
        _ => ParquetWriter::new(file).finish(frame).map(|_| ()),
    }
}

/// The report as a polars `DataFrame`, one row per input row, in input order, with the columns of
/// [`report_columns`]: what [`write_report`] writes as CSV, Parquet or Arrow, for a pipeline
/// that keeps working in polars.
///
/// # Errors
/// [`Error::Write`] if polars refuses the columns (it does not for a report of `data`).
pub fn report_frame(report: &Report, data: &Dataset) -> Result<DataFrame> {
    frame_of(report, data.ids(), data.labels())
        .map_err(|e| Error::Write { path: "DataFrame".into(), message: e.to_string() })
}

fn frame_of(
    report: &Report,
    ids: Option<&[String]>,
    labels: Option<&Labels>,
) -> PolarsResult<DataFrame> {
    let columns: Vec<Column> = columns(report, ids, labels)
        .iter()
        .zip(report_values(report, ids, labels))
        .map(|(name, v)| {
            let name = PlSmallStr::from(name.as_str());
            match v {
                Values::Int(v) => Column::new(name, v),
                Values::Float(v) => Column::new(name, v),
                Values::Bool(v) => Column::new(name, v),
                Values::Text(v) => Column::new(name, v),
            }
        })
        .collect();
    DataFrame::new(report.n_samples(), columns)
}

fn write_json(mut out: impl Write, names: &[String], values: &[Values]) -> std::io::Result<()> {
    let n = match values.first() {
        Some(Values::Int(v)) => v.len(),
        _ => 0,
    };
    out.write_all(b"[")?;
    for i in 0..n {
        let mut obj = Map::new();
        for (name, col) in names.iter().zip(values) {
            let v = match col {
                Values::Int(v) => Value::from(v[i]),
                Values::Float(v) => Value::from(v[i]),
                Values::Bool(v) => Value::from(v[i]),
                Values::Text(v) => Value::from(v[i].as_str()),
            };
            obj.insert(name.clone(), v);
        }
        if i > 0 {
            out.write_all(b",")?;
        }
        out.write_all(b"\n")?;
        serde_json::to_writer(&mut out, &obj)?;
    }
    out.write_all(b"\n]\n")?;
    out.flush()
}

/// Writes the rows of the table at `input` where `keep` is true to `output` (CSV, Parquet or
/// Arrow by its extension), with every original column and its type; with `reasons` (one per
/// input row) two columns are added: `poisonguard_row` (the 0-based input row) and
/// `poisonguard_reasons`.
/// Returns the number of rows written.
///
/// This is how the CLI writes a cleaned dataset (`--clean-output`: the rows not flagged) and a
/// quarantine (`--quarantine`: the flagged rows with why).
///
/// # Errors
/// Reading errors as [`load`](crate::load); [`Error::UnsupportedFormat`] when `output` is not
/// `.csv` or `.parquet`; [`Error::Data`] when `keep` (or `reasons`) does not have one entry per
/// input row; [`Error::Write`] / [`Error::Io`] when the file cannot be written.
pub fn write_rows(
    input: impl AsRef<Path>,
    keep: &[bool],
    output: impl AsRef<Path>,
    reasons: Option<&[String]>,
) -> Result<usize> {
    let (input, output) = (input.as_ref(), output.as_ref());
    let shown = output.display().to_string();
    let format = Format::of(output, false)?;
    let mut frame = crate::read::read_frame(input)?;
    let n = frame.height();
    for (what, len) in [("row mask", Some(keep.len())), ("reasons", reasons.map(<[String]>::len))] {
        if let Some(len) = len.filter(|&l| l != n) {
            return Err(Error::Data {
                path: input.display().to_string(),
                error: poisonguard_core::DataError::LengthMismatch {
                    what,
                    expected: n,
                    actual: len,
                },
            });
        }
    }
    let write_err = |e: PolarsError| Error::Write { path: shown.clone(), message: e.to_string() };
    if let Some(reasons) = reasons {
        let rows: Vec<i64> = (0..n as i64).collect();
        frame.with_column(Column::new("poisonguard_row".into(), rows)).map_err(write_err)?;
        frame
            .with_column(Column::new("poisonguard_reasons".into(), reasons.to_vec()))
            .map_err(write_err)?;
    }
    let mask = BooleanChunked::from_slice("keep".into(), keep);
    let mut kept = frame.filter(&mask).map_err(write_err)?;
    let file = File::create(output).map_err(|e| Error::Io { path: shown.clone(), source: e })?;
    write_frame(format, file, &mut kept).map_err(write_err)?;
    Ok(kept.height())
}

/// Writes a dataset as a table (CSV, Parquet or Arrow by extension): its feature columns (named
/// as the dataset's feature names, else `f0`, `f1`, ...), `label` (when labelled), `source`
/// (when it has sources) and, when `truth` is given, `is_poison` (0/1). This is how
/// `poisonguard eval` saves a poisoned dataset so that `poisonguard scan --truth is_poison` can
/// score it again.
///
/// # Errors
/// [`Error::UnsupportedFormat`] for another extension, [`Error::Data`] when `truth` does not
/// have one entry per row, [`Error::Write`] / [`Error::Io`] when the file cannot be written.
pub fn write_dataset(path: impl AsRef<Path>, data: &Dataset, truth: Option<&[bool]>) -> Result<()> {
    let path = path.as_ref();
    let shown = path.display().to_string();
    let format = Format::of(path, false)?;
    let n = data.n_samples();
    if let Some(t) = truth.filter(|t| t.len() != n) {
        return Err(Error::Data {
            path: shown,
            error: poisonguard_core::DataError::LengthMismatch {
                what: "truth",
                expected: n,
                actual: t.len(),
            },
        });
    }
    let x = data.features();
    let mut columns: Vec<Column> = (0..data.n_features())
        .map(|j| {
            let name = data.feature_names().map_or_else(|| format!("f{j}"), |f| f[j].clone());
            Column::new(name.as_str().into(), x.column(j).to_vec())
        })
        .collect();
    if let Some(labels) = data.labels() {
        let values: Vec<&LabelValue> = (0..n).map(|i| labels.value_of_row(i)).collect();
        if values.iter().all(|v| matches!(v, LabelValue::Int(_))) {
            let ints: Vec<i64> =
                values.iter().map(|v| if let LabelValue::Int(k) = v { *k } else { 0 }).collect();
            columns.push(Column::new("label".into(), ints));
        } else {
            let text: Vec<String> = values.iter().map(|v| v.to_string()).collect();
            columns.push(Column::new("label".into(), text));
        }
    }
    if let Some(sources) = data.sources() {
        columns.push(Column::new("source".into(), sources.to_vec()));
    }
    if let Some(t) = truth {
        columns.push(Column::new(
            "is_poison".into(),
            t.iter().map(|&b| i8::from(b)).collect::<Vec<i8>>(),
        ));
    }
    let write_err = |e: PolarsError| Error::Write { path: shown.clone(), message: e.to_string() };
    let mut frame = DataFrame::new(n, columns).map_err(write_err)?;
    let file = File::create(path).map_err(|e| Error::Io { path: shown.clone(), source: e })?;
    write_frame(format, file, &mut frame).map_err(write_err)
}
