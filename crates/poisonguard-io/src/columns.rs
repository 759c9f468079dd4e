//! From a frame's columns to a checked [`Dataset`]: the feature matrix (numeric columns or one
//! embedding column), the role columns (labels, ids, sources, truth, trusted) and their errors.

use std::path::Path;

use ndarray::Array2;
use poisonguard_core::{Dataset, LabelValue, Labels};
use polars::prelude::*;

use crate::error::{Error, Result};
use crate::files::{column_list, list_names};
use crate::table::{LoadOptions, RowFlags, Table};

pub(crate) fn get<'a>(
    frame: &'a DataFrame,
    path: &str,
    name: &str,
    role: &'static str,
) -> Result<&'a Column> {
    frame.column(name).map_err(|_| Error::MissingColumn {
        path: path.to_string(),
        column: name.to_string(),
        role,
        available: column_list(frame),
    })
}

fn is_numeric(dtype: &DataType) -> bool {
    dtype.is_primitive_numeric() || dtype.is_bool()
}

/// The table from `frame` (the columns read of a file whose columns are `names`).
pub(crate) fn table_from_frame(
    path: &Path,
    frame: &DataFrame,
    names: &[String],
    opts: &LoadOptions,
) -> Result<Table> {
    let shown = path.display().to_string();
    let p = shown.as_str();
    check_roles(p, opts)?;

    if let Some(column) = &opts.embedding {
        let x = embedding_matrix(p, get(frame, p, column, "embedding")?)?;
        let feature_names = array_names(x.ncols());
        let dataset =
            Dataset::new(x).map_err(|error| Error::Data { path: shown.clone(), error })?;
        let (dataset, flags) = attach_roles(p, frame, dataset, opts)?;
        return Ok(Table { dataset, flags, feature_names });
    }

    let read: Vec<String> = frame.get_column_names().iter().map(|s| s.to_string()).collect();
    let feature_names = feature_columns(p, &read, names, opts)?;

    let features = feature_matrix(p, frame, &feature_names)?;
    // the header's names go with the features, so that reasons and a saved model name them
    let dataset = Dataset::new(features)
        .and_then(|d| d.with_feature_names(feature_names.clone()))
        .map_err(|error| Error::Data { path: shown.clone(), error })?;
    let (dataset, flags) = attach_roles(p, frame, dataset, opts)?;
    Ok(Table { dataset, flags, feature_names })
}

/// The names of `d` features read from an array (an embedding column, a `.npy` file): `#0`,
/// `#1`, ...
pub(crate) fn array_names(d: usize) -> Vec<String> {
    (0..d).map(|j| format!("#{j}")).collect()
}

/// The feature columns of a load with `opts` (no embedding column) among the columns `read` of
/// a file whose columns are `names`: `--features` in its order, or every column read without a
/// role that is not excluded, in file order.
pub(crate) fn feature_columns(
    path: &str,
    read: &[String],
    names: &[String],
    opts: &LoadOptions,
) -> Result<Vec<String>> {
    let roles = opts.roles();
    let feature_names: Vec<String> = match &opts.features {
        Some(list) => {
            for (k, c) in list.iter().enumerate() {
                if list[..k].contains(c) {
                    return Err(Error::DuplicateColumn {
                        path: path.to_string(),
                        column: c.clone(),
                        place: "in --features",
                    });
                }
                if let Some((r, _)) = roles.iter().find(|(_, rc)| *rc == c) {
                    return Err(Error::ColumnRoleConflict {
                        path: path.to_string(),
                        column: c.clone(),
                        first: "feature",
                        second: r,
                    });
                }
            }
            list.clone()
        }
        None => read.iter().filter(|c| opts.default_feature(c)).cloned().collect(),
    };
    if feature_names.is_empty() {
        return Err(Error::NoFeatures { path: path.to_string(), available: list_names(names) });
    }
    Ok(feature_names)
}

/// The column roles `opts` gives are distinct (every named column exists,
/// `check_named_columns`): no column has two roles, and an embedding column is the only feature.
pub(crate) fn check_roles(path: &str, opts: &LoadOptions) -> Result<()> {
    let roles = opts.roles();
    for (k, (r1, c1)) in roles.iter().enumerate() {
        if let Some((r2, _)) = roles[k + 1..].iter().find(|(_, c2)| c2 == c1) {
            return Err(Error::ColumnRoleConflict {
                path: path.to_string(),
                column: (*c1).clone(),
                first: r1,
                second: r2,
            });
        }
    }
    if let Some(column) = &opts.embedding {
        if opts.features.is_some() {
            return Err(Error::Unsupported {
                path: path.to_string(),
                what: "--features and --embedding both name the features; give one".into(),
            });
        }
        if let Some((r, _)) = roles.iter().find(|(_, rc)| *rc == column) {
            return Err(Error::ColumnRoleConflict {
                path: path.to_string(),
                column: column.clone(),
                first: "embedding",
                second: r,
            });
        }
    }
    Ok(())
}

/// Attaches the label, id and source columns of `frame` (read from `path`) to `dataset`, and
/// reads the truth and trusted columns.
fn attach_roles(
    path: &str,
    frame: &DataFrame,
    dataset: Dataset,
    opts: &LoadOptions,
) -> Result<(Dataset, RowFlags)> {
    attach(path, dataset, roles_of(path, frame, opts)?)
}

/// `dataset` with the role columns `roles` (read from `path`), and the 0/1 flags beside it.
pub(crate) fn attach(
    path: &str,
    mut dataset: Dataset,
    roles: Roles,
) -> Result<(Dataset, RowFlags)> {
    let data_err = |error| Error::Data { path: path.to_string(), error };
    if let Some(labels) = roles.labels {
        dataset = dataset.with_labels(labels).map_err(data_err)?;
    }
    if let Some(ids) = roles.ids {
        dataset = dataset.with_ids(ids).map_err(data_err)?;
    }
    if let Some(sources) = roles.sources {
        dataset = dataset.with_sources(sources).map_err(data_err)?;
    }
    roles.flags.check_len(path, dataset.n_samples())?;
    Ok((dataset, roles.flags))
}

/// The role columns (label, id, source, truth, trusted) `opts` names, read from `frame`.
pub(crate) struct Roles {
    pub(crate) labels: Option<Labels>,
    pub(crate) ids: Option<Vec<String>>,
    pub(crate) sources: Option<Vec<String>>,
    pub(crate) flags: RowFlags,
}

/// Reads the role columns `opts` names from `frame` (each checked for its role's values).
pub(crate) fn roles_of(path: &str, frame: &DataFrame, opts: &LoadOptions) -> Result<Roles> {
    let p = path;
    let labels = match &opts.label {
        Some(name) => Some(Labels::from_values(&label_values(p, get(frame, p, name, "label")?)?)),
        None => None,
    };
    let ids = match &opts.id {
        Some(name) => Some(text_values(p, get(frame, p, name, "id")?)?),
        None => None,
    };
    let sources = match &opts.source {
        Some(name) => Some(text_values(p, get(frame, p, name, "source")?)?),
        None => None,
    };
    let mut flags = RowFlags::default();
    for (role, name, slot) in
        [("truth", &opts.truth, &mut flags.truth), ("trusted", &opts.trusted, &mut flags.trusted)]
    {
        let Some(name) = name else { continue };
        *slot = Some(flag_values(p, get(frame, p, name, role)?, role)?);
    }
    Ok(Roles { labels, ids, sources, flags })
}

/// Fills the row-major f32 matrix one column at a time (one column-sized temporary at most).
pub(crate) fn feature_matrix(
    path: &str,
    frame: &DataFrame,
    names: &[String],
) -> Result<Array2<f32>> {
    let n = frame.height();
    let mut x = Array2::<f32>::zeros((n, names.len()));
    for (j, name) in names.iter().enumerate() {
        let col = get(frame, path, name, "feature")?;
        if matches!(col.dtype(), DataType::List(_) | DataType::Array(..)) {
            return Err(Error::ListColumn { path: path.to_string(), column: name.clone() });
        }
        if !is_numeric(col.dtype()) {
            return Err(non_numeric(path, name, col));
        }
        // read as f64 so that a finite value beyond f32's range is named as such, not as "inf"
        let cast = col.cast(&DataType::Float64).map_err(|e| Error::NonNumericColumn {
            path: path.to_string(),
            column: name.clone(),
            detail: e.to_string(),
        })?;
        let values = cast.f64().map_err(|e| Error::NonNumericColumn {
            path: path.to_string(),
            column: name.clone(),
            detail: e.to_string(),
        })?;
        for (i, v) in values.iter().enumerate() {
            let v = v.ok_or_else(|| Error::MissingValue {
                path: path.to_string(),
                column: name.clone(),
                row: i,
            })?;
            if !v.is_finite() {
                return Err(Error::NonFinite {
                    path: path.to_string(),
                    column: name.clone(),
                    row: i,
                    value: v,
                });
            }
            if v.abs() > f64::from(f32::MAX) {
                return Err(Error::OutOfF32Range {
                    path: path.to_string(),
                    column: name.clone(),
                    row: i,
                    value: v,
                });
            }
            x[[i, j]] = v as f32;
        }
    }
    Ok(x)
}

/// The feature matrix of a column of float lists, one list per row, every list of one length.
pub(crate) fn embedding_matrix(path: &str, col: &Column) -> Result<Array2<f32>> {
    let name = col.name().to_string();
    let not_floats = |detail: String| Error::EmbeddingType {
        path: path.to_string(),
        column: name.clone(),
        dtype: detail,
    };
    // half precision widens to f32 first (exact); f32 and f64 lists are read as they are
    let inner = match col.dtype() {
        DataType::List(inner) | DataType::Array(inner, _) => inner.as_ref().clone(),
        other => return Err(not_floats(other.to_string())),
    };
    let col = match (&inner, col.dtype()) {
        (DataType::Float16, DataType::Array(_, d)) => col
            .cast(&DataType::Array(Box::new(DataType::Float32), *d))
            .map_err(|e| not_floats(e.to_string()))?,
        (DataType::Float16, _) => col
            .cast(&DataType::List(Box::new(DataType::Float32)))
            .map_err(|e| not_floats(e.to_string()))?,
        (DataType::Float32 | DataType::Float64, _) => col.clone(),
        (other, _) => return Err(not_floats(format!("lists of {other}"))),
    };
    let n = col.len();
    if let Some(x) = fixed_f32_matrix(&col) {
        return Ok(x);
    }
    let mut width: Option<usize> = None;
    let mut cells: Vec<f32> = Vec::new();
    let mut push_row = |i: usize, row: Option<&Series>| -> Result<()> {
        let row = row.ok_or_else(|| Error::MissingValue {
            path: path.to_string(),
            column: name.clone(),
            row: i,
        })?;
        let d = *width.get_or_insert_with(|| {
            cells.reserve_exact(n * row.len());
            row.len()
        });
        if row.len() != d {
            return Err(Error::EmbeddingLength {
                path: path.to_string(),
                column: name.clone(),
                row: i,
                expected: d,
                found: row.len(),
            });
        }
        let values: Box<dyn Iterator<Item = Option<f64>>> = match row.dtype() {
            DataType::Float32 => Box::new(
                row.f32().map_err(|e| not_floats(e.to_string()))?.iter().map(|v| v.map(f64::from)),
            ),
            _ => Box::new(row.f64().map_err(|e| not_floats(e.to_string()))?.iter()),
        };
        for (j, v) in values.enumerate() {
            let column = || format!("{name}[{j}]");
            let v = v.ok_or_else(|| Error::MissingValue {
                path: path.to_string(),
                column: column(),
                row: i,
            })?;
            if !v.is_finite() {
                return Err(Error::NonFinite {
                    path: path.to_string(),
                    column: column(),
                    row: i,
                    value: v,
                });
            }
            if v.abs() > f64::from(f32::MAX) {
                return Err(Error::OutOfF32Range {
                    path: path.to_string(),
                    column: column(),
                    row: i,
                    value: v,
                });
            }
            cells.push(v as f32);
        }
        Ok(())
    };
    let series = col.as_materialized_series();
    match series.dtype() {
        DataType::Array(..) => {
            let ca = series.array().map_err(|e| not_floats(e.to_string()))?;
            for (i, row) in ca.amortized_iter().enumerate() {
                push_row(i, row.as_ref().map(|r| r.as_ref()))?;
            }
        }
        _ => {
            let ca = series.list().map_err(|e| not_floats(e.to_string()))?;
            for (i, row) in ca.amortized_iter().enumerate() {
                push_row(i, row.as_ref().map(|r| r.as_ref()))?;
            }
        }
    }
    let d = width.unwrap_or(0);
    if d == 0 {
        return Err(Error::Unsupported {
            path: path.to_string(),
            what: format!("embedding column {name:?} holds empty lists"),
        });
    }
    Ok(Array2::from_shape_vec((n, d), cells).expect("n rows of d values"))
}

/// The common case of [`embedding_matrix`] without a value at a time: a fixed-size list column
/// of f32 without a missing list or value, every value finite, is its inner values as they lie.
/// `None` for anything else (the caller's row-by-row reading then names the bad value).
fn fixed_f32_matrix(col: &Column) -> Option<Array2<f32>> {
    let DataType::Array(inner, d) = col.dtype() else { return None };
    if **inner != DataType::Float32 || *d == 0 || col.null_count() > 0 {
        return None;
    }
    let values = col.as_materialized_series().array().ok()?.get_inner();
    let values = values.f32().ok()?;
    if values.null_count() > 0 || values.len() != col.len() * d {
        return None;
    }
    let mut cells = Vec::with_capacity(values.len());
    for chunk in values.downcast_iter() {
        cells.extend_from_slice(chunk.values());
    }
    if !cells.iter().all(|v| v.is_finite()) {
        return None;
    }
    Array2::from_shape_vec((col.len(), *d), cells).ok()
}

fn non_numeric(path: &str, name: &str, col: &Column) -> Error {
    let mut detail = format!("type {}", col.dtype());
    if col.null_count() == col.len() {
        detail = "every value is missing".into();
    } else if let Ok(text) = col.str() {
        let bad = text.iter().enumerate().find_map(|(i, v)| {
            v.filter(|s| s.trim().parse::<f64>().is_err()).map(|s| (i, s.to_string()))
        });
        if let Some((row, value)) = bad {
            detail = format!("row {row} holds {value:?}");
        }
    }
    Error::NonNumericColumn { path: path.to_string(), column: name.to_string(), detail }
}

fn label_values(path: &str, col: &Column) -> Result<Vec<LabelValue>> {
    let name = col.name().to_string();
    let missing = |row| Error::MissingValue { path: path.to_string(), column: name.clone(), row };
    if col.dtype().is_integer() {
        let cast = col.cast(&DataType::Int64).map_err(|e| Error::LabelType {
            path: path.to_string(),
            column: name.clone(),
            dtype: e.to_string(),
        })?;
        let ca = cast.i64().map_err(|e| Error::LabelType {
            path: path.to_string(),
            column: name.clone(),
            dtype: e.to_string(),
        })?;
        ca.iter()
            .enumerate()
            .map(|(i, v)| match v {
                Some(v) => Ok(LabelValue::Int(v)),
                // an unsigned value above i64::MAX casts to null: name it, not "missing"
                None => match col.get(i) {
                    Ok(AnyValue::Null) | Err(_) => Err(missing(i)),
                    Ok(value) => Err(Error::LabelOverflow {
                        path: path.to_string(),
                        column: name.clone(),
                        row: i,
                        value: value.to_string(),
                    }),
                },
            })
            .collect()
    } else if let Ok(ca) = col.str() {
        // Leading and trailing whitespace is a formatting artefact (`"cat, dog"` in a CSV), not
        // a different class: string labels are trimmed.
        ca.iter()
            .enumerate()
            .map(|(i, v)| {
                v.map(|s| LabelValue::Str(s.trim().to_string())).ok_or_else(|| missing(i))
            })
            .collect()
    } else {
        Err(Error::LabelType {
            path: path.to_string(),
            column: name,
            dtype: col.dtype().to_string(),
        })
    }
}

fn text_values(path: &str, col: &Column) -> Result<Vec<String>> {
    let name = col.name().to_string();
    let cast = col.cast(&DataType::String).map_err(|e| Error::Parse {
        path: path.to_string(),
        format: "text",
        message: format!("column {name:?}: {e}"),
    })?;
    let ca = cast.str().map_err(|e| Error::Parse {
        path: path.to_string(),
        format: "text",
        message: format!("column {name:?}: {e}"),
    })?;
    ca.iter()
        .enumerate()
        .map(|(i, v)| {
            v.map(str::to_string).ok_or_else(|| Error::MissingValue {
                path: path.to_string(),
                column: name.clone(),
                row: i,
            })
        })
        .collect()
}

/// A 0/1 (or false/true) column of role `role` (truth, trusted).
fn flag_values(path: &str, col: &Column, role: &'static str) -> Result<Vec<bool>> {
    let name = col.name().to_string();
    let bad = |row: usize, value: String| Error::FlagValue {
        path: path.to_string(),
        role,
        column: name.clone(),
        row,
        value,
    };
    if !is_numeric(col.dtype()) {
        let first = col.get(0).map(|v| v.to_string()).unwrap_or_default();
        return Err(bad(0, first));
    }
    let cast = col.cast(&DataType::Float64).map_err(|e| bad(0, e.to_string()))?;
    let ca = cast.f64().map_err(|e| bad(0, e.to_string()))?;
    ca.iter()
        .enumerate()
        .map(|(i, v)| match v {
            Some(0.0) => Ok(false),
            Some(1.0) => Ok(true),
            Some(v) => Err(bad(i, v.to_string())),
            None => {
                Err(Error::MissingValue { path: path.to_string(), column: name.clone(), row: i })
            }
        })
        .collect()
}
