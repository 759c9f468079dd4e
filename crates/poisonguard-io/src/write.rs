//! Writing the per-row report as CSV, Parquet, Arrow IPC or JSON (by extension).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use poisonguard_core::{Dataset, LabelValue, Labels, Report, ReportColumn, RowKeys};
use polars::prelude::*;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::table::Format;

/// The report's column names, in order: `row`, `id` (if the dataset has ids), `label` (if it has
/// labels), `<detector>_score`, `<detector>_flagged` and `<detector>_p` (its p-value) per
/// detector run, then `suspicion`, `p_value` (combined), `flagged`, `reasons`
/// ([`Report::columns`]).
pub fn report_columns(report: &Report, data: &Dataset) -> Vec<String> {
    report.columns(data.ids(), data.labels(), 0..0).into_iter().map(|(name, _)| name).collect()
}

/// Rows of the report built and written at a time: the text of their reasons is held for one
/// chunk, not for the whole table.
const ROWS_PER_WRITE: usize = 1 << 16;

/// `0..n` in chunks of [`ROWS_PER_WRITE`] rows; one empty chunk when `n` is 0.
fn chunks(n: usize) -> impl Iterator<Item = Range<usize>> {
    (0..n.div_ceil(ROWS_PER_WRITE).max(1))
        .map(move |c| c * ROWS_PER_WRITE..((c + 1) * ROWS_PER_WRITE).min(n))
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
    let n = report.n_samples();
    let chunks = chunks(n);
    if format == Format::Json {
        let mut out = BufWriter::new(file);
        let json_err =
            |e: std::io::Error| Error::Write { path: shown.clone(), message: e.to_string() };
        out.write_all(b"[").map_err(json_err)?;
        for rows in chunks {
            let first = rows.start == 0;
            write_json_rows(&mut out, &report.columns(ids, labels, rows), first)
                .map_err(json_err)?;
        }
        return out.write_all(b"\n]\n").and_then(|()| out.flush()).map_err(json_err);
    }
    // CSV lines and Parquet row groups, a chunk of rows at a time (at least one chunk)
    let mut sink = Sink::new(format, file);
    for rows in chunks {
        sink.write(frame_of(report, ids, labels, rows).map_err(write_err)?).map_err(write_err)?;
    }
    sink.finish().map(|_| ()).map_err(write_err)
}

/// Writes `frame` to `file` as `format` (CSV, Parquet or the Arrow IPC file format).
fn write_frame(format: Format, file: File, frame: &mut DataFrame) -> PolarsResult<()> {
    match format {
        Format::Csv => CsvWriter::new(BufWriter::new(file)).finish(frame),
        Format::Ipc => IpcWriter::new(BufWriter::new(file)).finish(frame),
        _ => ParquetWriter::new(file).finish(frame).map(|_| ()),
    }
}

/// A CSV or Parquet file written a chunk of rows at a time.
enum Batched {
    Csv(polars::io::csv::write::BatchedWriter<BufWriter<File>>),
    Parquet(Box<polars::io::parquet::write::BatchedWriter<File>>),
}

impl Batched {
    /// A CSV or Parquet writer of frames shaped as `first`.
    fn new(format: Format, file: File, first: &DataFrame) -> PolarsResult<Self> {
        match format {
            Format::Csv => {
                CsvWriter::new(BufWriter::new(file)).batched(first.schema()).map(Batched::Csv)
            }
            _ => ParquetWriter::new(file)
                .batched(first.schema())
                .map(|w| Batched::Parquet(Box::new(w))),
        }
    }

    fn write(&mut self, frame: &DataFrame) -> PolarsResult<()> {
        match self {
            Batched::Csv(w) => w.write_batch(frame),
            Batched::Parquet(w) => w.write_batch(frame),
        }
    }

    fn finish(self) -> PolarsResult<()> {
        match self {
            Batched::Csv(mut w) => w.finish(),
            Batched::Parquet(w) => w.finish().map(|_| ()),
        }
    }
}

/// The report as a polars `DataFrame`, one row per input row, in input order, with the columns of
/// [`report_columns`]: what [`write_report`] writes as CSV, Parquet or Arrow, for a pipeline
/// that keeps working in polars.
///
/// # Errors
/// [`Error::Write`] if polars refuses the columns (it does not for a report of `data`).
pub fn report_frame(report: &Report, data: &Dataset) -> Result<DataFrame> {
    frame_of(report, data.ids(), data.labels(), 0..report.n_samples())
        .map_err(|e| Error::Write { path: "DataFrame".into(), message: e.to_string() })
}

fn frame_of(
    report: &Report,
    ids: Option<&[String]>,
    labels: Option<&Labels>,
    rows: Range<usize>,
) -> PolarsResult<DataFrame> {
    let height = rows.len();
    let columns: Vec<Column> = report
        .columns(ids, labels, rows)
        .into_iter()
        .map(|(name, v)| {
            let name = PlSmallStr::from(name.as_str());
            match v {
                ReportColumn::Int(v) => Column::new(name, v),
                ReportColumn::Float(v) => Column::new(name, v),
                ReportColumn::Bool(v) => Column::new(name, v),
                ReportColumn::Text(v) => Column::new(name, v),
            }
        })
        .collect();
    DataFrame::new(height, columns)
}

/// Writes the rows of `columns` as JSON objects (after a comma unless they are the `first`).
fn write_json_rows(
    mut out: impl Write,
    columns: &[(String, ReportColumn)],
    first: bool,
) -> std::io::Result<()> {
    let n = match columns.first() {
        Some((_, ReportColumn::Int(v))) => v.len(),
        _ => 0,
    };
    for i in 0..n {
        let mut obj = Map::new();
        for (name, col) in columns {
            let v = match col {
                ReportColumn::Int(v) => Value::from(v[i]),
                ReportColumn::Float(v) => Value::from(v[i]),
                ReportColumn::Bool(v) => Value::from(v[i]),
                ReportColumn::Text(v) => Value::from(v[i].as_str()),
            };
            obj.insert(name.clone(), v);
        }
        if i > 0 || !first {
            out.write_all(b",")?;
        }
        out.write_all(b"\n")?;
        serde_json::to_writer(&mut out, &obj)?;
    }
    Ok(())
}

/// Writes the rows of the table at `input` where `keep` is true to `output` (CSV, Parquet or
/// Arrow by its extension), with every original column and its type; with `reasons` (the text
/// of an input row's reasons, asked for the rows written) two columns are added:
/// `poisonguard_row` (the 0-based input row) and `poisonguard_reasons`.
/// Returns the number of rows written.
///
/// A Parquet input (one file, or the shards of one table) is copied 65,536 rows at a time (only
/// their row groups are read), so a table larger than memory can be copied; a CSV or Arrow
/// input is read whole. A CSV or Parquet output is written as the rows come, an Arrow output
/// at the end.
///
/// This is how the CLI writes a cleaned dataset (`--clean-output`: the rows not flagged) and a
/// quarantine (`--quarantine`: the flagged rows with why).
///
/// # Errors
/// Reading errors as [`load`](crate::load); [`Error::UnsupportedFormat`] when `output` is not
/// `.csv`, `.parquet` or Arrow; [`Error::Unsupported`] for shards with different columns;
/// [`Error::Data`] when `keep` does not have one entry per input row; [`Error::Write`] /
/// [`Error::Io`] when the file cannot be written.
pub fn write_rows(
    input: impl AsRef<Path>,
    keep: &[bool],
    output: impl AsRef<Path>,
    reasons: Option<&dyn Fn(usize) -> String>,
) -> Result<usize> {
    let (input, output) = (input.as_ref(), output.as_ref());
    let shown = output.display().to_string();
    let format = Format::of(output, false)?;
    let files = crate::files::shards(input)?;
    // A Parquet table is read a chunk of rows at a time; another is read whole.
    let parquet = files.iter().all(|f| Format::of(f, false).ok() == Some(Format::Parquet));
    let whole = if parquet { None } else { Some(crate::files::read_frame(input)?) };
    let parts: Vec<(PathBuf, usize)> = match &whole {
        Some(frame) => vec![(input.to_path_buf(), frame.height())],
        None => files
            .iter()
            .map(|f| crate::batches::parquet_rows(f).map(|n| (f.clone(), n)))
            .collect::<Result<_>>()?,
    };
    let n: usize = parts.iter().map(|p| p.1).sum();
    if keep.len() != n {
        return Err(Error::Data {
            path: input.display().to_string(),
            error: poisonguard_core::DataError::LengthMismatch {
                what: "row mask",
                expected: n,
                actual: keep.len(),
            },
        });
    }
    let write_err = |e: PolarsError| Error::Write { path: shown.clone(), message: e.to_string() };
    let file = File::create(output).map_err(|e| Error::Io { path: shown.clone(), source: e })?;
    let mut sink = Sink::new(format, file);
    let mut first_names: Option<Vec<String>> = None;
    let mut offset = 0;
    for (file, rows) in &parts {
        for chunk in chunks(*rows) {
            let mut frame = match &whole {
                Some(frame) => frame.slice(chunk.start as i64, chunk.len()),
                None => crate::batches::parquet_slice(file, chunk.clone(), None)?,
            };
            let names: Vec<String> =
                frame.get_column_names().iter().map(|c| c.to_string()).collect();
            match &first_names {
                None => first_names = Some(names),
                Some(first) if *first != names => {
                    let first_file = &parts[0].0;
                    return Err(crate::files::shard_mismatch(
                        input, file, &names, first_file, first,
                    ));
                }
                Some(_) => {}
            }
            let rows = offset + chunk.start..offset + chunk.end;
            if let Some(reasons) = reasons {
                let index: Vec<i64> = (rows.start as i64..rows.end as i64).collect();
                let why: Vec<String> = rows
                    .clone()
                    .map(|i| if keep[i] { reasons(i) } else { String::new() })
                    .collect();
                frame
                    .with_column(Column::new("poisonguard_row".into(), index))
                    .map_err(write_err)?;
                frame
                    .with_column(Column::new("poisonguard_reasons".into(), why))
                    .map_err(write_err)?;
            }
            let mask = BooleanChunked::from_slice("keep".into(), &keep[rows]);
            sink.write(frame.filter(&mask).map_err(write_err)?).map_err(write_err)?;
        }
        offset += rows;
    }
    sink.finish().map_err(write_err)
}

/// An output table written a chunk of rows at a time: CSV lines and Parquet row groups as they
/// come, an Arrow IPC file as one frame at the end.
struct Sink {
    format: Format,
    file: Option<File>,
    writer: Option<Batched>,
    ipc: Option<DataFrame>,
    rows: usize,
}

impl Sink {
    fn new(format: Format, file: File) -> Self {
        Self { format, file: Some(file), writer: None, ipc: None, rows: 0 }
    }

    fn write(&mut self, mut frame: DataFrame) -> PolarsResult<()> {
        // the writers need every column in chunks of the same lengths
        frame.align_chunks_par();
        self.rows += frame.height();
        if self.format == Format::Ipc {
            match &mut self.ipc {
                Some(all) => {
                    all.vstack_mut(&frame)?;
                }
                None => self.ipc = Some(frame),
            }
            return Ok(());
        }
        if self.writer.is_none() {
            let file = self.file.take().expect("the file is taken once, by the first chunk");
            self.writer = Some(Batched::new(self.format, file, &frame)?);
        }
        self.writer.as_mut().expect("made above").write(&frame)
    }

    /// Finishes the file; the number of rows written.
    fn finish(mut self) -> PolarsResult<usize> {
        if let (Some(file), Some(mut frame)) = (self.file.take(), self.ipc.take()) {
            frame.align_chunks_par();
            write_frame(self.format, file, &mut frame)?;
        } else if let Some(writer) = self.writer.take() {
            writer.finish()?;
        }
        Ok(self.rows)
    }
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
