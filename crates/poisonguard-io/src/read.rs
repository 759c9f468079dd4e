//! Reading a CSV, Parquet or Arrow IPC table (or `.npy` arrays) into a checked [`Dataset`].

use std::path::{Path, PathBuf};

use ndarray::Array2;
use poisonguard_core::{DataError, Dataset, Labels, RowKeys};
use polars::prelude::*;

use crate::columns::{Roles, attach, feature_matrix, roles_of, table_from_frame};
use crate::error::{Error, Result};
use crate::files::{check_named_columns, column_list, is_npy, read_frame, read_shards, shards};
use crate::table::{LoadOptions, RowFlags, Table};

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
    let (frame, names) = read_shards(path, &files, Some(opts))?;
    check_named_columns(&path.display().to_string(), &names, opts)?;
    table_from_frame(path, &frame, &names, opts)
}

/// A polars `DataFrame` a pipeline already holds, read as [`load`] reads a file's columns (the
/// same roles, feature selection, embedding column, checks and errors; the file name in errors
/// is `DataFrame`). [`load`] itself reads the file into a frame and converts it here, so the
/// two give the same table.
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
    let feature_names = (0..x.ncols()).map(|j| format!("#{j}")).collect();
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
