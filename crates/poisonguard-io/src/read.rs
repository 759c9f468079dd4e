//! Reading a CSV, Parquet or Arrow IPC table (or `.npy` arrays) into a checked [`Dataset`].

use std::fs::File;
use std::path::{Path, PathBuf};

use ndarray::Array2;
use poisonguard_core::{DataError, Dataset, LabelValue, Labels, RowKeys};
use polars::prelude::*;

use crate::error::{Error, Result};

/// File formats, chosen by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// `.csv`: comma-separated with a header row.
    Csv,
    /// `.parquet` / `.pq`.
    Parquet,
    /// `.arrow` / `.feather` / `.ipc`: Arrow IPC, read in its file format (Feather v2) or its
    /// stream format (the cache files of Hugging Face `datasets`), told apart by the file's
    /// first bytes; written in the file format.
    Ipc,
    /// `.json`: an array of row objects (report output only).
    Json,
}

impl Format {
    /// The format of `path`, from its extension (case-insensitive).
    ///
    /// # Errors
    /// [`Error::UnsupportedFormat`] for any other extension.
    pub fn of(path: &Path, allow_json: bool) -> Result<Format> {
        let extension =
            path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
        match extension.as_str() {
            "csv" => Ok(Format::Csv),
            "parquet" | "pq" => Ok(Format::Parquet),
            "arrow" | "feather" | "ipc" => Ok(Format::Ipc),
            "json" if allow_json => Ok(Format::Json),
            _ => Err(Error::UnsupportedFormat {
                path: path.display().to_string(),
                extension,
                supported: if allow_json {
                    ".csv, .parquet, .arrow (.feather, .ipc) or .json"
                } else {
                    ".csv, .parquet or .arrow (.feather, .ipc)"
                },
            }),
        }
    }
}

/// Which columns play which role. Unnamed roles are absent; by default every numeric column that
/// has no other role is a feature.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Label column (integers or strings).
    pub label: Option<String>,
    /// Sample-id column (any type, kept as text).
    pub id: Option<String>,
    /// Data-source (contributor) column (any type, kept as text).
    pub source: Option<String>,
    /// Ground-truth column: 1 / true for a known poisoned row, 0 / false otherwise.
    pub truth: Option<String>,
    /// Trusted column: 1 / true for a row known to be clean (a clean reserve, which
    /// `scan_decomposition` fits its global model on), 0 / false otherwise.
    pub trusted: Option<String>,
    /// Exactly these feature columns, in this order (instead of the default).
    pub features: Option<Vec<String>>,
    /// Columns to leave out of the default feature set.
    pub exclude: Vec<String>,
    /// A Parquet or Arrow column of lists (List, LargeList or FixedSizeList of float16, float32
    /// or float64: how embedding datasets ship one vector per row) that holds the features: row
    /// `i`'s list is its feature vector, every list of one length. Other columns are then not
    /// features.
    pub embedding: Option<String>,
    /// Where the label, id, source and truth columns are when the input is a `.npy` feature
    /// array: a CSV or Parquet table with one row per array row (columns named by `label`,
    /// `id`, ...), or a 1-D `.npy` array of labels (integers, bool or unicode).
    pub meta: Option<PathBuf>,
}

impl LoadOptions {
    /// The named role columns with their role, in the order label, id, source, truth, trusted.
    pub(crate) fn roles(&self) -> Vec<(&'static str, &String)> {
        [
            ("label", &self.label),
            ("id", &self.id),
            ("source", &self.source),
            ("truth", &self.truth),
            ("trusted", &self.trusted),
        ]
        .into_iter()
        .filter_map(|(r, c)| c.as_ref().map(|c| (r, c)))
        .collect()
    }

    /// Whether column `c` is a feature of the default set: it has no role and is not excluded
    /// (with an embedding column, that column is the only feature).
    fn default_feature(&self, c: &String) -> bool {
        match &self.embedding {
            Some(e) => e == c,
            None => !self.roles().iter().any(|(_, rc)| *rc == c) && !self.exclude.contains(c),
        }
    }
}

/// A loaded table: the checked dataset plus what io keeps beside it.
#[derive(Debug, Clone)]
pub struct Table {
    dataset: Dataset,
    flags: RowFlags,
    feature_names: Vec<String>,
}

/// The 0/1 columns read beside the dataset.
#[derive(Debug, Clone, Default)]
pub(crate) struct RowFlags {
    pub(crate) truth: Option<Vec<bool>>,
    pub(crate) trusted: Option<Vec<bool>>,
}

impl Table {
    /// The checked dataset (features, labels, ids, sources).
    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    /// Ground truth, if a truth column was named.
    pub fn truth(&self) -> Option<&[bool]> {
        self.flags.truth.as_deref()
    }

    /// Rows known to be clean, if a trusted column was named.
    pub fn trusted(&self) -> Option<&[bool]> {
        self.flags.trusted.as_deref()
    }

    /// Names of the feature columns, in matrix column order.
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// Splits into the dataset and the ground truth.
    pub fn into_parts(self) -> (Dataset, Option<Vec<bool>>) {
        (self.dataset, self.flags.truth)
    }
}

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

/// Whether `path` names a NumPy array file.
pub(crate) fn is_npy(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("npy"))
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

fn column_list(frame: &DataFrame) -> String {
    let names: Vec<String> = frame.get_column_names().iter().map(|s| s.to_string()).collect();
    list_names(&names)
}

fn list_names(names: &[String]) -> String {
    if names.len() <= LISTED_COLUMNS {
        names.join(", ")
    } else {
        let more = names.len() - LISTED_COLUMNS;
        format!("{}, ... ({more} more)", names[..LISTED_COLUMNS].join(", "))
    }
}

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
    // Every named column exists (`check_named_columns`); roles must not overlap.
    let roles = opts.roles();
    for (k, (r1, c1)) in roles.iter().enumerate() {
        if let Some((r2, _)) = roles[k + 1..].iter().find(|(_, c2)| c2 == c1) {
            return Err(Error::ColumnRoleConflict {
                path: shown.clone(),
                column: (*c1).clone(),
                first: r1,
                second: r2,
            });
        }
    }

    if let Some(column) = &opts.embedding {
        if opts.features.is_some() {
            return Err(Error::Unsupported {
                path: shown,
                what: "--features and --embedding both name the features; give one".into(),
            });
        }
        if let Some((r, _)) = roles.iter().find(|(_, rc)| *rc == column) {
            return Err(Error::ColumnRoleConflict {
                path: shown,
                column: column.clone(),
                first: "embedding",
                second: r,
            });
        }
        let x = embedding_matrix(p, get(frame, p, column, "embedding")?)?;
        let feature_names = (0..x.ncols()).map(|j| format!("#{j}")).collect();
        let dataset =
            Dataset::new(x).map_err(|error| Error::Data { path: shown.clone(), error })?;
        let (dataset, flags) = attach_roles(p, frame, dataset, opts)?;
        return Ok(Table { dataset, flags, feature_names });
    }

    let feature_names: Vec<String> = match &opts.features {
        Some(list) => {
            for (k, c) in list.iter().enumerate() {
                if list[..k].contains(c) {
                    return Err(Error::DuplicateColumn {
                        path: shown.clone(),
                        column: c.clone(),
                        place: "in --features",
                    });
                }
                if let Some((r, _)) = roles.iter().find(|(_, rc)| *rc == c) {
                    return Err(Error::ColumnRoleConflict {
                        path: shown.clone(),
                        column: c.clone(),
                        first: "feature",
                        second: r,
                    });
                }
            }
            list.clone()
        }
        None => frame
            .get_column_names()
            .iter()
            .map(|s| s.to_string())
            .filter(|c| opts.default_feature(c))
            .collect(),
    };
    if feature_names.is_empty() {
        return Err(Error::NoFeatures { path: shown, available: list_names(names) });
    }

    let features = feature_matrix(p, frame, &feature_names)?;
    // the header's names go with the features, so that reasons and a saved model name them
    let dataset = Dataset::new(features)
        .and_then(|d| d.with_feature_names(feature_names.clone()))
        .map_err(|error| Error::Data { path: shown.clone(), error })?;
    let (dataset, flags) = attach_roles(p, frame, dataset, opts)?;
    Ok(Table { dataset, flags, feature_names })
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
fn attach(path: &str, mut dataset: Dataset, roles: Roles) -> Result<(Dataset, RowFlags)> {
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

impl RowFlags {
    /// Each flag column has `n` values.
    pub(crate) fn check_len(&self, path: &str, n: usize) -> Result<()> {
        for (role, values) in [("truth", &self.truth), ("trusted", &self.trusted)] {
            if let Some(values) = values.as_ref().filter(|v| v.len() != n) {
                return Err(Error::Data {
                    path: path.to_string(),
                    error: DataError::LengthMismatch {
                        what: role,
                        expected: n,
                        actual: values.len(),
                    },
                });
            }
        }
        Ok(())
    }
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
