//! Errors of reading tables and writing reports, each naming the file, and where it applies the
//! column and the row (0-based data row, the same numbering as the report's `row` column).

use poisonguard_core::DataError;
use thiserror::Error;

/// What can go wrong reading an input table or writing a report.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The input file does not exist.
    #[error("{path}: file not found")]
    NotFound {
        /// The file.
        path: String,
    },
    /// The operating system refused a read or write.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file extension names no supported format.
    #[error("{path}: unsupported file type {extension:?}; use {supported}")]
    UnsupportedFormat {
        /// The file.
        path: String,
        /// Its extension (empty if none).
        extension: String,
        /// The supported extensions.
        supported: &'static str,
    },
    /// A column of float lists given no `--embedding` role.
    #[error(
        "{path}: column {column:?} holds lists of floats; read it as the features with --embedding {column}, or leave it out with --exclude {column}"
    )]
    ListColumn {
        /// The file.
        path: String,
        /// The column.
        column: String,
    },
    /// The `--embedding` column is not a column of float lists.
    #[error(
        "{path}: embedding column {column:?} has type {dtype}; it must hold lists of float16, float32 or float64"
    )]
    EmbeddingType {
        /// The file.
        path: String,
        /// The column.
        column: String,
        /// Its type.
        dtype: String,
    },
    /// One row's embedding differs in length from the first row's.
    #[error(
        "{path}: embedding column {column:?}, row {row}: {found} values where the first row has {expected}"
    )]
    EmbeddingLength {
        /// The file.
        path: String,
        /// The column.
        column: String,
        /// The row (0-based).
        row: usize,
        /// The first row's length.
        expected: usize,
        /// This row's.
        found: usize,
    },
    /// An option that does not apply to this input.
    #[error("{path}: {what}")]
    Unsupported {
        /// The file.
        path: String,
        /// What does not apply, and what to do instead.
        what: String,
    },
    /// The file has zero bytes.
    #[error("{path}: the file is empty")]
    EmptyFile {
        /// The file.
        path: String,
    },
    /// The file has a header or schema but no data rows.
    #[error("{path}: the table has no rows")]
    NoRows {
        /// The file.
        path: String,
    },
    /// The file is not valid CSV, Parquet or Arrow IPC (truncated, corrupt, ragged).
    #[error("{path}: cannot read as {format}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// "CSV", "Parquet", "Arrow IPC" or "Arrow IPC stream".
        format: &'static str,
        /// The parser's message.
        message: String,
    },
    /// A named column does not exist.
    #[error("{path}: no column {column:?} ({role}); the columns are {available}")]
    MissingColumn {
        /// The file.
        path: String,
        /// The column asked for.
        column: String,
        /// What it was asked for (label, id, feature, ...).
        role: &'static str,
        /// The columns that exist, rendered.
        available: String,
    },
    /// A feature column holds non-numeric values.
    #[error(
        "{path}: feature column {column:?} is not numeric ({detail}); fix the value or leave the column out with --exclude {column}"
    )]
    NonNumericColumn {
        /// The file.
        path: String,
        /// The column.
        column: String,
        /// The type found, and the first offending row and value where one can be named.
        detail: String,
    },
    /// A feature, label or truth value is missing (null / empty).
    #[error("{path}: column {column:?}, row {row}: missing value")]
    MissingValue {
        /// The file.
        path: String,
        /// The column.
        column: String,
        /// 0-based data row.
        row: usize,
    },
    /// A feature value is NaN or infinite.
    #[error("{path}: column {column:?}, row {row}: value {value} is not finite")]
    NonFinite {
        /// The file.
        path: String,
        /// The column.
        column: String,
        /// 0-based data row.
        row: usize,
        /// The value.
        value: f64,
    },
    /// A finite feature value beyond the range of f32, the type features are held in.
    #[error(
        "{path}: column {column:?}, row {row}: value {value:e} is beyond the f32 range of features \
         (+-3.4e38); rescale the column"
    )]
    OutOfF32Range {
        /// The file.
        path: String,
        /// The column.
        column: String,
        /// 0-based data row.
        row: usize,
        /// The value.
        value: f64,
    },
    /// A Parquet or Arrow column the load needs has a type this build cannot read.
    #[error(
        "{path}: column {column:?} has type {dtype}, which poisonguard cannot read; \
         --exclude it, or name the features with --features"
    )]
    UnsupportedColumnType {
        /// The file.
        path: String,
        /// The column.
        column: String,
        /// Its Arrow type, rendered.
        dtype: String,
    },
    /// A column name appears twice in the header, or twice in a column list.
    #[error("{path}: column {column:?} appears twice {place}; every column needs its own name")]
    DuplicateColumn {
        /// The file.
        path: String,
        /// The column.
        column: String,
        /// Where: "in the header" or "in --features".
        place: &'static str,
    },
    /// An integer label that does not fit a 64-bit signed integer.
    #[error(
        "{path}: label column {column:?}, row {row}: {value} does not fit a 64-bit signed integer"
    )]
    LabelOverflow {
        /// The file.
        path: String,
        /// The column.
        column: String,
        /// 0-based data row.
        row: usize,
        /// The value, rendered.
        value: String,
    },
    /// The label column has a type that is neither integer nor string.
    #[error(
        "{path}: label column {column:?} holds {dtype} values; labels must be integers or strings"
    )]
    LabelType {
        /// The file.
        path: String,
        /// The column.
        column: String,
        /// Its type.
        dtype: String,
    },
    /// A 0/1 column (ground truth, trusted rows) holds something other than 0/1 or true/false.
    #[error("{path}: {role} column {column:?}, row {row}: {value} is not 0 or 1")]
    FlagValue {
        /// The file.
        path: String,
        /// The column's role (`truth`, `trusted`).
        role: &'static str,
        /// The column.
        column: String,
        /// 0-based data row.
        row: usize,
        /// The value, rendered.
        value: String,
    },
    /// The same column was given two roles.
    #[error("{path}: column {column:?} is used both as {first} and as {second}")]
    ColumnRoleConflict {
        /// The file.
        path: String,
        /// The column.
        column: String,
        /// One role.
        first: &'static str,
        /// The other role.
        second: &'static str,
    },
    /// Column selection left no feature column.
    #[error("{path}: no feature columns are left after selection (columns: {available})")]
    NoFeatures {
        /// The file.
        path: String,
        /// The columns that exist, rendered.
        available: String,
    },
    /// The assembled data was rejected by the core checks (the message includes the check's, so
    /// the check is not repeated as an error source).
    #[error("{path}: {error}")]
    Data {
        /// The file.
        path: String,
        /// What the check found.
        error: DataError,
    },
    /// Writing the output failed.
    #[error("{path}: cannot write: {message}")]
    Write {
        /// The file.
        path: String,
        /// The cause.
        message: String,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
