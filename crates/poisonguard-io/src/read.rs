//! Reading a CSV, Parquet or Arrow IPC table (or `.npy` arrays) into a checked [`Dataset`].

use std::path::{Path, PathBuf};

use ndarray::Array2;
use poisonguard_core::{DataError, Dataset, Labels, RowKeys};
use polars::prelude::*;

use crate::columns::{
    Roles, array_names, attach, check_roles, feature_columns, feature_matrix, roles_of,
    table_from_frame,
};
use crate::error::{Error, Result};
use crate::files::{
    ParquetHeader, check_named_columns, column_list, is_npy, parquet_header, read_frame,
    read_shards, shard_mismatch, shards,
};
use crate::table::{Format, LoadOptions, RowFlags, Table};

/// Reads a CSV, Parquet or Arrow IPC file (by extension) into a [`Table`].
///
/// # Errors
/// Every [`Error`] variant that concerns reading: missing or empty file, unreadable format,
/// missing columns, non-numeric or non-finite features (naming column and row), bad labels or
/// truth values, no feature left.
///
/// # Example: load the shipped poisoned digits
/// ```no_run
/// use poisonguard_io::{load, LoadOptions};
/// let opts = LoadOptions {
///     label: Some("label".into()),
///     truth: Some("is_poison".into()),
///     ..LoadOptions::default()
/// };
/// let table = load("datasets/poisoned/digits_badnets.parquet", &opts)?;
/// assert_eq!(table.dataset().n_features(), 64);
/// # Ok::<(), poisonguard_io::Error>(())
/// ```
pub fn load(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<Table> {
    let path = path.as_ref();
    let files = shards(path)?;
    if files.iter().all(|f| is_npy(f)) {
        return load_npy(path, &files, opts);
    }
    if let Some(meta) = &opts.meta {
        return Err(Error::Unsupported {
            path: meta.display().to_string(),
            what: "a meta file goes with a .npy feature array; a CSV or Parquet input holds its own label, id, source and truth columns".into(),
        });
    }
    if files.iter().all(|f| Format::of(f, false).ok() == Some(Format::Parquet)) {
        return load_parquet(path, &files, opts, SLICE_BYTES);
    }
    let (frame, names) = read_shards(path, &files, Some(opts))?;
    check_named_columns(&path.display().to_string(), &names, opts)?;
    table_from_frame(path, &frame, &names, opts)
}

/// Bytes of a Parquet file (uncompressed, as its footer counts them) a load decodes at a time,
/// as whole row groups: consecutive groups are read together up to this size, a larger group
/// alone.
const SLICE_BYTES: usize = 64 << 20;

/// A Parquet table (a file or its shards) read as [`table_from_frame`] reads its frame: an
/// embedding column or numeric feature columns the page reader takes ([`crate::pages`]) a page
/// at a time, anything else a slice of whole row groups at a time. The first slice is read with
/// the role columns and converted as the frame of a whole table is (the table's structure, its
/// errors); a table that is one slice is just that. Otherwise the features of the first slice
/// and of every later one are copied into the matrix, and the role columns are read whole at
/// the end: the load holds the matrix and one slice, where the frame of every feature beside the
/// matrix held the features twice. (A slice inside a row group is not read alone: polars reads
/// and decodes a group's column chunk whole, so a file of one large group read in slices took
/// 1.6x the time and no less memory.) `slice_bytes` is [`SLICE_BYTES`] but in tests.
fn load_parquet(
    path: &Path,
    files: &[PathBuf],
    opts: &LoadOptions,
    slice_bytes: usize,
) -> Result<Table> {
    let shown = path.display().to_string();
    // the slices, each `(file, rows)`, in table order
    let mut slices: Vec<(&PathBuf, std::ops::Range<usize>)> = Vec::new();
    let mut first: Option<(Vec<String>, Vec<String>)> = None;
    for file in files {
        let ParquetHeader { names, wanted, groups } = parquet_header(file, opts)?;
        match &first {
            None => first = Some((names, wanted)),
            Some((first_names, _)) if *first_names != names => {
                return Err(shard_mismatch(path, file, &names, &files[0], first_names));
            }
            Some(_) => {}
        }
        let (mut start, mut end, mut bytes) = (0, 0, 0);
        for (rows, size) in groups {
            if end > start && bytes + size > slice_bytes {
                slices.push((file, start..end));
                (start, bytes) = (end, 0);
            }
            end += rows;
            bytes += size;
        }
        if end > start {
            slices.push((file, start..end));
        }
    }
    let (names, wanted) = first.expect("`shards` gives at least one file");
    check_named_columns(&shown, &names, opts)?;
    check_roles(&shown, opts)?;
    match opts.embedding.as_deref() {
        Some(column) => {
            if let Some(x) = crate::pages::embedding(files, column) {
                let feature_names = array_names(x.ncols());
                return finish_parquet(path, files, x, feature_names, opts);
            }
        }
        None => {
            let feature_names = feature_columns(&shown, &wanted, &names, opts)?;
            if let Some(x) = crate::pages::columns(files, &feature_names) {
                return finish_parquet(path, files, x, feature_names, opts);
            }
        }
    }
    let (file, rows) = slices[0].clone();
    let frame = crate::batches::parquet_slice(file, rows, Some(&wanted))?;
    let head = table_from_frame(path, &frame, &names, opts)?;
    drop(frame);
    if slices.len() == 1 {
        return Ok(head);
    }
    let Table { dataset: head, feature_names, .. } = head;
    let d = feature_names.len();
    let embedding = opts.embedding.as_deref();
    let columns = match embedding {
        Some(column) => vec![column.to_string()],
        None => feature_names.clone(),
    };
    let n: usize = slices.iter().map(|s| s.1.len()).sum();
    let mut x = Array2::<f32>::zeros((n, d));
    let mut offset = head.n_samples();
    x.slice_axis_mut(ndarray::Axis(0), ndarray::Slice::from(0..offset)).assign(&head.features());
    drop(head);
    for (file, rows) in &slices[1..] {
        let len = rows.len();
        let piece = crate::batches::parquet_features(
            file,
            &shown,
            rows.clone(),
            offset,
            &columns,
            embedding,
            d,
        )?;
        let rows = ndarray::Slice::from(offset..offset + len);
        x.slice_axis_mut(ndarray::Axis(0), rows).assign(&piece);
        offset += len;
    }
    finish_parquet(path, files, x, feature_names, opts)
}

/// The table of a Parquet table's features `x` (their names `feature_names`, `#0`, `#1`, ...
/// for an embedding column) with the role columns read from `files`.
fn finish_parquet(
    path: &Path,
    files: &[PathBuf],
    x: Array2<f32>,
    feature_names: Vec<String>,
    opts: &LoadOptions,
) -> Result<Table> {
    let shown = path.display().to_string();
    let data_err = |error| Error::Data { path: shown.clone(), error };
    let mut dataset = Dataset::new(x).map_err(data_err)?;
    if opts.embedding.is_none() {
        dataset = dataset.with_feature_names(feature_names.clone()).map_err(data_err)?;
    }
    if opts.roles().is_empty() {
        return Ok(Table { dataset, flags: RowFlags::default(), feature_names });
    }
    let (dataset, flags) = attach(&shown, dataset, parquet_roles(path, files, opts)?)?;
    Ok(Table { dataset, flags, feature_names })
}

/// The role columns `opts` names (at least one), read whole from the Parquet table at `path`
/// (its shards `files`) without its features: a Parquet load reads them after the features, a
/// batched audit when it opens the table.
pub(crate) fn parquet_roles(path: &Path, files: &[PathBuf], opts: &LoadOptions) -> Result<Roles> {
    let role_opts = LoadOptions {
        features: Some(Vec::new()),
        exclude: Vec::new(),
        embedding: None,
        ..opts.clone()
    };
    let (frame, _) = read_shards(path, files, Some(&role_opts))?;
    roles_of(&path.display().to_string(), &frame, opts)
}

/// A polars `DataFrame` a pipeline already holds, read as [`load`] reads a file's columns (the
/// same roles, feature selection, embedding column, checks and errors; the file name in errors
/// is `DataFrame`). [`load`] converts a CSV or Arrow file's frame as this does, and a Parquet
/// file's frame a few row groups at a time, so the two give the same table.
///
/// ```
/// use poisonguard_io::{LoadOptions, from_frame, polars::prelude::*};
/// let frame = df!("a" => [1.0f32, 2.0, 3.5], "b" => [0.5f32, 0.1, 0.2], "label" => [0i64, 1, 1])?;
/// let opts = LoadOptions { label: Some("label".into()), ..LoadOptions::default() };
/// let table = from_frame(&frame, &opts)?;
/// assert_eq!(table.dataset().n_features(), 2);
/// assert_eq!(table.feature_names(), ["a", "b"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// As [`load`], for the frame's columns.
pub fn from_frame(frame: &DataFrame, opts: &LoadOptions) -> Result<Table> {
    let path = Path::new("DataFrame");
    if let Some(meta) = &opts.meta {
        return Err(Error::Unsupported {
            path: meta.display().to_string(),
            what: "a meta file goes with a .npy feature array; a frame holds its own label, id, source and truth columns".into(),
        });
    }
    if frame.height() == 0 {
        return Err(Error::NoRows { path: "DataFrame".into() });
    }
    let names: Vec<String> = frame.get_column_names().iter().map(|s| s.to_string()).collect();
    check_named_columns("DataFrame", &names, opts)?;
    table_from_frame(path, frame, &names, opts)
}

/// Whether `path` (a file, a directory of shards or a wildcard name) is read as NumPy arrays
/// rather than tables: such an input has no table rows to copy (`write_rows`).
///
/// # Errors
/// As [`load`] when `path` names no readable file.
pub fn is_array_input(path: impl AsRef<Path>) -> Result<bool> {
    Ok(shards(path.as_ref())?.iter().all(|f| is_npy(f)))
}

/// A `.npy` feature array (or its shards `files`), with its role columns from `opts.meta`.
fn load_npy(path: &Path, files: &[PathBuf], opts: &LoadOptions) -> Result<Table> {
    let shown = path.display().to_string();
    check_npy_columns(path, opts)?;
    let x = crate::npy::read_matrix(files)?;
    let feature_names = array_names(x.ncols());
    let dataset = Dataset::new(x).map_err(|error| Error::Data { path: shown.clone(), error })?;
    match npy_roles(path, opts)? {
        None => Ok(Table { dataset, flags: RowFlags::default(), feature_names }),
        Some((meta, roles)) => {
            let (dataset, flags) = attach(&meta, dataset, roles)?;
            Ok(Table { dataset, flags, feature_names })
        }
    }
}

/// A `.npy` array's columns are all features: naming some (`--features`, `--exclude`,
/// `--embedding`) is an error.
pub(crate) fn check_npy_columns(path: &Path, opts: &LoadOptions) -> Result<()> {
    if opts.features.is_some() || !opts.exclude.is_empty() || opts.embedding.is_some() {
        return Err(Error::Unsupported {
            path: path.display().to_string(),
            what: "--features, --exclude and --embedding pick columns of a CSV or Parquet table; every column of a .npy array is a feature".into(),
        });
    }
    Ok(())
}

/// The role columns of a `.npy` feature array at `path`, from its `--meta` file (a table, or
/// 1-D `.npy` labels), with the meta file's name for errors; `None` when no role is named.
///
/// # Errors
/// A role named without a meta file, a meta file without a role, a role other than the label
/// from a `.npy` meta file, and the meta file's own reading errors.
pub(crate) fn npy_roles(path: &Path, opts: &LoadOptions) -> Result<Option<(String, Roles)>> {
    let roles = opts.roles();
    let meta = match (&opts.meta, roles.first()) {
        (None, None) => return Ok(None),
        (None, Some((role, column))) => {
            return Err(Error::Unsupported {
                path: path.display().to_string(),
                what: format!(
                    "a .npy array holds only features; give the {role} column {column:?} in a table beside it with --meta FILE"
                ),
            });
        }
        (Some(meta), None) => {
            return Err(Error::Unsupported {
                path: meta.display().to_string(),
                what: "a meta file is read for the label, id, source or truth column: name them (--label COL, ...)".into(),
            });
        }
        (Some(meta), Some(_)) => meta,
    };
    let meta_shown = meta.display().to_string();
    let meta_files = shards(meta)?;
    if meta_files.iter().all(|f| is_npy(f)) {
        if let Some((role, _)) = roles.iter().find(|(r, _)| *r != "label") {
            return Err(Error::Unsupported {
                path: meta_shown,
                what: format!(
                    "a .npy meta file holds labels only; give the {role} column in a CSV or Parquet meta table"
                ),
            });
        }
        let mut labels = Vec::new();
        for file in &meta_files {
            labels.extend(crate::npy::read_labels(file)?);
        }
        let roles = Roles {
            labels: Some(Labels::from_values(&labels)),
            ids: None,
            sources: None,
            flags: RowFlags::default(),
        };
        return Ok(Some((meta_shown, roles)));
    }
    let role_opts =
        LoadOptions { features: Some(Vec::new()), exclude: Vec::new(), meta: None, ..opts.clone() };
    let (frame, names) = read_shards(meta, &meta_files, Some(&role_opts))?;
    check_named_columns(&meta_shown, &names, &role_opts)?;
    let roles = roles_of(&meta_shown, &frame, opts)?;
    Ok(Some((meta_shown, roles)))
}

/// Reads out-of-sample predicted probabilities from a CSV or Parquet file with one row per row
/// of `table` (same order) and one column per class, and attaches them to its dataset.
///
/// The column of class `c` is the one named exactly as the label (`3`, `cat`) or, failing that,
/// the only one whose name ends in `_<label>` (`prob_3`, `p_cat`); other columns are ignored.
///
/// # Errors
/// Reading errors as [`load`]; [`Error::MissingColumn`] naming the class without a column;
/// [`Error::Data`] when the row count differs or a value lies outside [0, 1]; the table must
/// have labels.
pub fn attach_pred_probs(table: Table, path: impl AsRef<Path>) -> Result<Table> {
    let path = path.as_ref();
    let Table { dataset, flags, feature_names } = table;
    let probs = read_pred_probs(dataset.keys(), path)?;
    let dataset = dataset
        .with_pred_probs(probs)
        .map_err(|error| Error::Data { path: path.display().to_string(), error })?;
    Ok(Table { dataset, flags, feature_names })
}

/// `keys` with the predicted probabilities of `path` attached, as [`attach_pred_probs`] reads
/// and checks them.
pub(crate) fn with_pred_probs_of(keys: RowKeys, path: &Path) -> Result<RowKeys> {
    let probs = read_pred_probs(&keys, path)?;
    keys.with_pred_probs(probs)
        .map_err(|error| Error::Data { path: path.display().to_string(), error })
}

/// The predicted probabilities of `path` for the rows of `keys`, one column per class in
/// class-id order (the values are checked where they are attached).
fn read_pred_probs(keys: &RowKeys, path: &Path) -> Result<Array2<f32>> {
    let shown = path.display().to_string();
    let frame = read_frame(path)?;
    let data_err = |error| Error::Data { path: shown.clone(), error };
    let Some(labels) = keys.labels() else {
        return Err(data_err(DataError::LabelsRequired { detector: "confident_learning" }));
    };
    let names: Vec<String> =
        frame.get_column_names().iter().map(|s| s.as_str().to_string()).collect();
    let mut columns = Vec::with_capacity(labels.map().n_classes());
    for value in labels.map().values() {
        let label = value.to_string();
        let suffix = format!("_{label}");
        let exact = names.iter().find(|n| **n == label);
        let by_suffix: Vec<&String> = names.iter().filter(|n| n.ends_with(&suffix)).collect();
        match (exact, by_suffix.as_slice()) {
            (Some(name), _) => columns.push(name.clone()),
            (None, [name]) => columns.push((*name).clone()),
            _ => {
                return Err(Error::MissingColumn {
                    path: shown.clone(),
                    column: label,
                    role: "predicted probability of this class",
                    available: column_list(&frame),
                });
            }
        }
    }
    if frame.height() != keys.n_rows() {
        return Err(data_err(DataError::LengthMismatch {
            what: "predicted probabilities",
            expected: keys.n_rows(),
            actual: frame.height(),
        }));
    }
    feature_matrix(&shown, &frame, &columns)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
    use super::*;

    /// A Parquet file of `frame` in row groups of 7 rows.
    fn parquet(dir: &Path, name: &str, mut frame: DataFrame) -> PathBuf {
        let path = dir.join(name);
        ParquetWriter::new(std::fs::File::create(&path).unwrap())
            .with_row_group_size(Some(7))
            .finish(&mut frame)
            .unwrap();
        path
    }

    /// 50 rows: three float columns, the same values as a list column and as a fixed-size list
    /// column, labels and ids.
    fn frame(nan_at: Option<usize>) -> DataFrame {
        let value = |i: usize, j: usize| {
            if nan_at == Some(i) && j == 1 { f32::NAN } else { (i * 3 + j) as f32 * 0.25 - 7.0 }
        };
        let col = |j: usize| (0..50).map(|i| value(i, j)).collect::<Vec<f32>>();
        let lists: Vec<Series> = (0..50)
            .map(|i| Series::new("".into(), (0..3).map(|j| value(i, j)).collect::<Vec<_>>()))
            .collect();
        let mut frame = df!(
            "a" => col(0),
            "b" => col(1),
            "c" => col(2),
            "emb" => lists,
            "n" => (0..50).map(|i| i % 4 == 1).collect::<Vec<_>>(),
            "label" => (0..50).map(|i| (i % 3) as i64).collect::<Vec<_>>(),
            "id" => (0..50).map(|i| format!("r{i}")).collect::<Vec<_>>()
        )
        .unwrap();
        // the lists again as a fixed-size list column
        let fixed =
            frame.column("emb").unwrap().cast(&DataType::Array(Box::new(DataType::Float32), 3));
        frame.with_column(fixed.unwrap().with_name("fixed".into())).unwrap();
        frame
    }

    /// The table `load_parquet` reads (by the page reader, or through polars a slice of row
    /// groups at a time) is the one the whole frame gives, for numeric columns and for a list
    /// column, whatever the slice's size.
    #[test]
    fn a_parquet_load_in_slices_reads_the_frame_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = parquet(dir.path(), "t.parquet", frame(None));
        let only_a = LoadOptions { features: Some(vec!["a".into()]), ..LoadOptions::default() };
        let groups = parquet_header(&path, &only_a).unwrap().groups;
        let rows: Vec<usize> = groups.iter().map(|g| g.0).collect();
        assert_eq!(rows, [7, 7, 7, 7, 7, 7, 8]);
        // each group alone, two groups a slice, all of them in one
        let two = groups[0].1 + groups[1].1;
        let roles = LoadOptions {
            label: Some("label".into()),
            id: Some("id".into()),
            exclude: vec!["emb".into(), "fixed".into()],
            ..LoadOptions::default()
        };
        // without the boolean column `n` the features are read by the page reader, with it
        // through polars a slice at a time
        let floats = LoadOptions {
            exclude: vec!["emb".into(), "fixed".into(), "n".into()],
            ..roles.clone()
        };
        let embedded =
            LoadOptions { embedding: Some("emb".into()), exclude: Vec::new(), ..roles.clone() };
        let fixed = LoadOptions { embedding: Some("fixed".into()), ..embedded.clone() };
        for opts in [roles, floats, embedded, fixed] {
            let (whole, names) =
                read_shards(&path, std::slice::from_ref(&path), Some(&opts)).unwrap();
            let want = table_from_frame(&path, &whole, &names, &opts).unwrap();
            for slice_bytes in [1, two, usize::MAX] {
                let got =
                    load_parquet(&path, std::slice::from_ref(&path), &opts, slice_bytes).unwrap();
                assert_eq!(got.dataset().features(), want.dataset().features());
                assert_eq!(got.dataset().labels(), want.dataset().labels());
                assert_eq!(got.dataset().ids(), want.dataset().ids());
                assert_eq!(got.dataset().feature_names(), want.dataset().feature_names());
                assert_eq!(got.feature_names(), want.feature_names());
            }
        }
    }

    /// A bad value in a later slice is named by its row in the table, as the whole frame names it.
    #[test]
    fn a_bad_value_in_a_later_slice_is_named_by_its_table_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = parquet(dir.path(), "nan.parquet", frame(Some(23)));
        for embedding in [None, Some("emb".to_string()), Some("fixed".to_string())] {
            let opts = LoadOptions {
                label: Some("label".into()),
                exclude: match embedding {
                    None => vec!["emb".into(), "fixed".into(), "id".into()],
                    Some(_) => vec![],
                },
                embedding,
                ..LoadOptions::default()
            };
            let e =
                load_parquet(&path, std::slice::from_ref(&path), &opts, 1).unwrap_err().to_string();
            assert!(e.contains("row 23"), "{e}");
            let (whole, names) =
                read_shards(&path, std::slice::from_ref(&path), Some(&opts)).unwrap();
            let want = table_from_frame(&path, &whole, &names, &opts).unwrap_err().to_string();
            assert_eq!(e, want);
        }
    }
}
