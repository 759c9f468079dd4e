//! Finding and opening the input files: a path's shards, the checks that a file is there and
//! readable, polars' readers guarded against panics, and the columns a read selects.

use std::fs::File;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::error::{Error, Result};
use crate::table::{Format, LoadOptions};

/// The files `path` names: itself, or, for a directory or a file name with `*` wildcards, the
/// matching `.csv`, `.parquet`, `.pq` or `.npy` files (hidden files skipped), sorted by name
/// (byte order) so that the rows keep one order on every machine. All of one kind: tables
/// (CSV or Parquet) or `.npy` arrays.
pub(crate) fn shards(path: &Path) -> Result<Vec<PathBuf>> {
    let shown = path.display().to_string();
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let (dir, pattern) = if path.is_dir() {
        (path.to_path_buf(), "*".to_string())
    } else if name.contains('*') {
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        (parent.to_path_buf(), name.to_string())
    } else {
        return Ok(vec![path.to_path_buf()]);
    };
    let entries = std::fs::read_dir(&dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound { path: dir.display().to_string() },
        _ => Error::Io { path: dir.display().to_string(), source: e },
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::Io { path: shown.clone(), source: e })?;
        let file = entry.path();
        let Some(file_name) = file.file_name().and_then(|n| n.to_str()) else { continue };
        let extension = file.extension().and_then(|e| e.to_str()).unwrap_or_default();
        let known = ["csv", "parquet", "pq", "arrow", "feather", "ipc", "npy"]
            .iter()
            .any(|k| extension.eq_ignore_ascii_case(k));
        if file.is_file() && known && !file_name.starts_with('.') && wildcard(&pattern, file_name) {
            files.push(file);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(Error::Unsupported {
            path: shown,
            what: "names no .csv, .parquet, .arrow (.feather, .ipc) or .npy file".into(),
        });
    }
    if files.iter().any(|f| is_npy(f)) && !files.iter().all(|f| is_npy(f)) {
        return Err(Error::Unsupported {
            path: shown,
            what: "mixes .npy arrays and tables; the shards of one table are all of one kind"
                .into(),
        });
    }
    Ok(files)
}

/// Whether `name` matches `pattern`, where `*` matches any run of characters.
fn wildcard(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if parts.len() == 1 {
        return pattern == name;
    }
    if !name.starts_with(first) || !name[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// Reads the table shards `files` of `path` as one frame, rows in file order: every shard has
/// the columns of the first, in the same order.
pub(crate) fn read_shards(
    path: &Path,
    files: &[PathBuf],
    opts: Option<&LoadOptions>,
) -> Result<(DataFrame, Vec<String>)> {
    let (mut frame, names) = read_columns(&files[0], opts)?;
    for file in &files[1..] {
        let (part, part_names) = read_columns(file, opts)?;
        if part_names != names || part.get_column_names() != frame.get_column_names() {
            return Err(shard_mismatch(path, file, &part_names, &files[0], &names));
        }
        frame.vstack_mut(&part).map_err(|e| Error::Unsupported {
            path: file.display().to_string(),
            what: format!(
                "cannot stack on the shards before it: {}",
                e.to_string().lines().next().unwrap_or_default()
            ),
        })?;
    }
    if files.len() > 1 {
        frame.align_chunks_par();
    }
    Ok((frame, names))
}

/// The error of a shard `file` of the table at `path` whose columns `names` are not those of its
/// first shard (`first`, with `first_names`).
pub(crate) fn shard_mismatch(
    path: &Path,
    file: &Path,
    names: &[String],
    first: &Path,
    first_names: &[String],
) -> Error {
    Error::Unsupported {
        path: file.display().to_string(),
        what: format!(
            "a shard of {} with columns {} where {} has {}",
            path.display(),
            list_names(names),
            first.display(),
            list_names(first_names)
        ),
    }
}

/// Whether `path` names a NumPy array file.
pub(crate) fn is_npy(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("npy"))
}

/// Reads every column of the file (or of its shards, as one frame).
pub(crate) fn read_frame(path: &Path) -> Result<DataFrame> {
    read_shards(path, &shards(path)?, None).map(|(frame, _)| frame)
}

/// Every column `opts` names (roles, features, excluded) is one of the file's `names`.
pub(crate) fn check_named_columns(path: &str, names: &[String], opts: &LoadOptions) -> Result<()> {
    let named = opts
        .roles()
        .into_iter()
        .map(|(role, c)| (c, role))
        .chain(opts.embedding.iter().map(|c| (c, "embedding")))
        .chain(opts.features.iter().flatten().map(|c| (c, "feature")))
        .chain(opts.exclude.iter().map(|c| (c, "excluded")));
    for (column, role) in named {
        if !names.contains(column) {
            return Err(Error::MissingColumn {
                path: path.to_string(),
                column: column.clone(),
                role,
                available: list_names(names),
            });
        }
    }
    Ok(())
}

/// The columns a load with `opts` reads among `names`: the role columns, then the features
/// (`--features`, or every column without a role that is not excluded), in file order.
fn needed_columns(names: &[String], opts: &LoadOptions) -> Vec<String> {
    let roles = opts.roles();
    names
        .iter()
        .filter(|c| {
            roles.iter().any(|(_, rc)| rc == c)
                || opts.features.as_ref().map_or_else(|| opts.default_feature(c), |l| l.contains(c))
        })
        .cloned()
        .collect()
}

/// Whether a Parquet or Arrow column of this type is a list of floats (an embedding column).
fn float_list(dtype: &ArrowDataType) -> bool {
    use ArrowDataType as A;
    match dtype {
        A::List(f) | A::LargeList(f) | A::FixedSizeList(f, _) => {
            matches!(f.dtype(), A::Float16 | A::Float32 | A::Float64)
        }
        _ => false,
    }
}

/// Whether polars reads a Parquet or Arrow column of this type (with the dtypes this crate
/// enables).
fn readable(dtype: &ArrowDataType) -> bool {
    use ArrowDataType as A;
    matches!(
        dtype,
        A::Null
            | A::Boolean
            | A::Int8
            | A::Int16
            | A::Int32
            | A::Int64
            | A::UInt8
            | A::UInt16
            | A::UInt32
            | A::UInt64
            | A::Float16
            | A::Float32
            | A::Float64
            | A::Utf8
            | A::LargeUtf8
            | A::Utf8View
    )
}

/// An input file exists and is not empty (the errors every reader gives first).
pub(crate) fn check_input_file(path: &Path) -> Result<()> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound { path: shown.clone() },
        _ => Error::Io { path: shown.clone(), source: e },
    })?;
    if meta.len() == 0 {
        return Err(Error::EmptyFile { path: shown });
    }
    Ok(())
}

/// Reads the file; for Parquet and Arrow IPC, only the columns a load with `opts` uses (all with
/// `None`), so that an unused column of a type this build cannot read (struct, decimal, lists) is
/// never touched, and a used one is named in a clear error instead of failing inside the reader.
/// Returns the frame and the names of all the file's columns.
fn read_columns(path: &Path, opts: Option<&LoadOptions>) -> Result<(DataFrame, Vec<String>)> {
    let shown = path.display().to_string();
    let format = Format::of(path, false)?;
    check_input_file(path)?;
    let parse = |format: &'static str| {
        let path = shown.clone();
        // polars' first line says what is wrong; the rest is advice for its Python options
        move |e: PolarsError| {
            let message = e.to_string().lines().next().unwrap_or_default().trim().to_string();
            Error::Parse { path, format, message }
        }
    };
    let frame = match format {
        Format::Csv => CsvReadOptions::default()
            .with_has_header(true)
            // Infer types from every row, so that one bad value late in a column is reported as a
            // non-numeric column (with its row) rather than as a parse failure.
            .with_infer_schema_length(None)
            .try_into_reader_with_file_path(Some(path.to_path_buf()))
            .and_then(|r| r.finish())
            .map_err(parse("CSV"))
            .and_then(|frame| check_unique_header(&shown, frame))
            .map(|frame| {
                let names = frame.get_column_names().iter().map(|s| s.to_string()).collect();
                (frame, names)
            })?,
        Format::Parquet => guarded(&shown, "Parquet", || {
            let mut reader = ParquetReader::new(open(path)?);
            let schema = reader.schema().map_err(parse("Parquet"))?;
            let (names, wanted) = arrow_columns(&shown, &schema, opts)?;
            Ok((reader.with_columns(Some(wanted)).finish().map_err(parse("Parquet"))?, names))
        })?,
        Format::Ipc if ipc_file_format(path)? => guarded(&shown, "Arrow IPC", || {
            let mut reader = IpcReader::new(open(path)?);
            let schema = reader.schema().map_err(parse("Arrow IPC"))?;
            let (names, wanted) = arrow_columns(&shown, &schema, opts)?;
            Ok((reader.with_columns(Some(wanted)).finish().map_err(parse("Arrow IPC"))?, names))
        })?,
        // the stream format (`Format::of` gives no `Json` for an input)
        _ => guarded(&shown, "Arrow IPC stream", || {
            let mut reader = IpcStreamReader::new(open(path)?);
            let schema = reader.arrow_schema().map_err(parse("Arrow IPC stream"))?;
            let (names, wanted) = arrow_columns(&shown, &schema, opts)?;
            let frame = reader.with_columns(Some(wanted)).finish();
            Ok((frame.map_err(parse("Arrow IPC stream"))?, names))
        })?,
    };
    if frame.0.height() == 0 {
        return Err(Error::NoRows { path: shown });
    }
    Ok(frame)
}

/// A Parquet reading error of the file `path`: polars' first line (the rest is advice for its
/// Python options).
pub(crate) fn parquet_error(path: &str, e: &PolarsError) -> Error {
    Error::Parse {
        path: path.to_string(),
        format: "Parquet",
        message: e.to_string().lines().next().unwrap_or_default().trim().to_string(),
    }
}

/// What a Parquet file's footer says, read by [`parquet_header`].
pub(crate) struct ParquetHeader {
    /// Every column's name.
    pub(crate) names: Vec<String>,
    /// The columns a load reads (as [`arrow_columns`]).
    pub(crate) wanted: Vec<String>,
    /// Each row group's rows and uncompressed size (bytes, every column).
    pub(crate) groups: Vec<(usize, usize)>,
}

/// The [`ParquetHeader`] of a file for a load with `opts`, from its footer: no column is read.
/// An empty file, and a file of no rows, are errors as [`read_columns`] gives them.
pub(crate) fn parquet_header(path: &Path, opts: &LoadOptions) -> Result<ParquetHeader> {
    let shown = path.display().to_string();
    check_input_file(path)?;
    let parse = |e: PolarsError| parquet_error(&shown, &e);
    let header = guarded(&shown, "Parquet", || {
        let mut reader = ParquetReader::new(open(path)?);
        let schema = reader.schema().map_err(parse)?;
        let (names, wanted) = arrow_columns(&shown, &schema, Some(opts))?;
        let metadata = reader.get_metadata().map_err(parse)?;
        let groups = metadata.row_groups.iter().map(|g| (g.num_rows(), g.total_byte_size()));
        let groups: Vec<(usize, usize)> = groups.collect();
        Ok(ParquetHeader { names, wanted, groups })
    })?;
    if header.groups.iter().all(|g| g.0 == 0) {
        return Err(Error::NoRows { path: shown });
    }
    Ok(header)
}

/// Runs a binary reader on a file, turning a panic inside it into [`Error::Parse`]: polars'
/// Arrow readers assert on some malformed files (a damaged record batch of an IPC stream)
/// instead of returning an error, and a damaged input file is bad input, not a crash. The panic
/// hook still runs (the `poisonguard` binary keeps it quiet for panics inside polars).
pub(crate) fn guarded<T>(
    shown: &str,
    format: &'static str,
    read: impl FnOnce() -> Result<T>,
) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)).unwrap_or_else(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(Error::Parse {
            path: shown.to_string(),
            format,
            message: format!("damaged file (the reader failed: {what})"),
        })
    })
}

/// Opens an input file for reading.
pub(crate) fn open(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| Error::Io { path: path.display().to_string(), source: e })
}

/// Whether an Arrow IPC file is in the file format (it opens with the magic `ARROW1`), not the
/// stream format.
fn ipc_file_format(path: &Path) -> Result<bool> {
    use std::io::Read;
    let mut head = [0u8; 6];
    let n = open(path)?
        .read(&mut head)
        .map_err(|e| Error::Io { path: path.display().to_string(), source: e })?;
    Ok(n == 6 && &head == b"ARROW1")
}

/// The columns of a file with an Arrow schema (Parquet, Arrow IPC): all of its column names,
/// and the ones a load with `opts` reads (all with `None`). A used column of a type this build
/// cannot read, and an `--embedding` column that is not a list of floats, are clear errors; an
/// unused one is never touched.
pub(crate) fn arrow_columns(
    shown: &str,
    schema: &ArrowSchema,
    opts: Option<&LoadOptions>,
) -> Result<(Vec<String>, Vec<String>)> {
    let names: Vec<String> = schema.iter_names().map(|n| n.to_string()).collect();
    let wanted = match opts {
        Some(o) => needed_columns(&names, o),
        None => names.clone(),
    };
    let embedding = opts.and_then(|o| o.embedding.as_deref());
    for field in schema.iter_values() {
        let name = field.name.as_str();
        if embedding == Some(name) {
            if !float_list(field.dtype()) {
                return Err(Error::EmbeddingType {
                    path: shown.to_string(),
                    column: name.to_string(),
                    dtype: format!("{:?}", field.dtype()),
                });
            }
            continue;
        }
        if wanted.iter().any(|w| w == name) && !readable(field.dtype()) {
            if float_list(field.dtype()) {
                return Err(Error::ListColumn {
                    path: shown.to_string(),
                    column: name.to_string(),
                });
            }
            return Err(Error::UnsupportedColumnType {
                path: shown.to_string(),
                column: field.name.to_string(),
                dtype: format!("{:?}", field.dtype()),
            });
        }
    }
    // a projection that names no column would read them all: keep the first
    let wanted = if wanted.is_empty() { names.iter().take(1).cloned().collect() } else { wanted };
    Ok((names, wanted))
}

/// polars renames a repeated CSV header `a` to `a_duplicated_0`, `a_duplicated_1`, ...; both
/// would become features. A repeated name is an error instead.
fn check_unique_header(path: &str, frame: DataFrame) -> Result<DataFrame> {
    let names: Vec<String> = frame.get_column_names().iter().map(|s| s.to_string()).collect();
    for name in &names {
        if let Some((base, n)) = name.rsplit_once("_duplicated_")
            && n.parse::<usize>().is_ok()
            && names.iter().any(|c| c == base)
        {
            return Err(Error::DuplicateColumn {
                path: path.to_string(),
                column: base.to_string(),
                place: "in the header",
            });
        }
    }
    Ok(frame)
}

/// Columns named in an error message before the rest is summarised as a count.
const LISTED_COLUMNS: usize = 12;

pub(crate) fn column_list(frame: &DataFrame) -> String {
    let names: Vec<String> = frame.get_column_names().iter().map(|s| s.to_string()).collect();
    list_names(&names)
}

pub(crate) fn list_names(names: &[String]) -> String {
    if names.len() <= LISTED_COLUMNS {
        names.join(", ")
    } else {
        let more = names.len() - LISTED_COLUMNS;
        format!("{}, ... ({more} more)", names[..LISTED_COLUMNS].join(", "))
    }
}
