//! What a read is told ([`LoadOptions`], [`Format`]) and what it gives ([`Table`]).

use std::path::{Path, PathBuf};

use poisonguard_core::Dataset;

use poisonguard_core::DataError;

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
    pub(crate) fn default_feature(&self, c: &String) -> bool {
        match &self.embedding {
            Some(e) => e == c,
            None => !self.roles().iter().any(|(_, rc)| *rc == c) && !self.exclude.contains(c),
        }
    }
}

/// A loaded table: the checked dataset plus what io keeps beside it.
#[derive(Debug, Clone)]
pub struct Table {
    pub(crate) dataset: Dataset,
    pub(crate) flags: RowFlags,
    pub(crate) feature_names: Vec<String>,
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

/// The 0/1 columns read beside the dataset.
#[derive(Debug, Clone, Default)]
pub(crate) struct RowFlags {
    pub(crate) truth: Option<Vec<bool>>,
    pub(crate) trusted: Option<Vec<bool>>,
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
