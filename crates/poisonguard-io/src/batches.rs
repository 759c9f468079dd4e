//! Tables read in row batches, for an audit of a table larger than memory
//! ([`poisonguard_core::RowSource`]): `.npy` arrays and Parquet files, one or the shards of one
//! table.

use std::ops::Range;
use std::path::{Path, PathBuf};

use ndarray::{Array2, Axis, concatenate};
use poisonguard_core::{BoxError, RowKeys, RowSource};
use polars::prelude::*;

use crate::error::{Error, Result};
use crate::pages::{self, ColumnPages};
use crate::table::{Format, LoadOptions, RowFlags};
use crate::{columns, files, read};
use polars_parquet::parquet::metadata::FileMetadata;

/// What the feature rows are read from.
#[derive(Debug)]
enum Kind {
    /// 2-D float `.npy` arrays.
    Npy,
    /// Parquet files: these feature columns, or this embedding (list) column.
    Parquet { columns: Vec<String>, embedding: Option<String> },
}

/// A table on disk read a batch of rows at a time: its keys (labels, ids, sources) and ground
/// truth are read whole when it is opened, its features when [`RowSource::read`] asks. Made by
/// [`open_batches`].
#[derive(Debug)]
pub struct RowBatches {
    /// Each file with its row count, in table order.
    parts: Vec<(PathBuf, usize)>,
    kind: Kind,
    n_features: usize,
    feature_names: Vec<String>,
    keys: RowKeys,
    flags: RowFlags,
    /// How each part's features are read: by the page reader while it takes them.
    cursors: Vec<Cursor>,
}

/// How a part's features are read.
#[derive(Debug)]
enum Cursor {
    /// Not yet read.
    Untried,
    /// An embedding column by the page reader, which stands at some row.
    Pages(Box<ColumnPages>),
    /// Numeric columns by the page reader, from the file's footer.
    Columns(Box<FileMetadata>),
    /// With polars: the page reader does not take them.
    Polars,
}

/// What a table to be read in batches is made of, known from the files' headers and first
/// rows: its files with their row counts, how the features are read, their names.
struct Layout {
    parts: Vec<(PathBuf, usize)>,
    kind: Kind,
    n_features: usize,
    feature_names: Vec<String>,
}

impl Layout {
    fn n_rows(&self) -> usize {
        self.parts.iter().map(|p| p.1).sum()
    }
}

/// The rows and features of the table [`open_batches`] would open, read from the files'
/// headers (`.npy`) or footers and first row (Parquet) only: what deciding whether a table fits
/// in memory needs, without reading a column.
///
/// # Errors
/// As [`open_batches`], except those of the role columns, which are not read.
pub fn table_shape(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<(usize, usize)> {
    let layout = layout(path.as_ref(), opts)?;
    Ok((layout.n_rows(), layout.n_features))
}

/// Opens `path` (a `.npy` array with its `--meta` table, or a Parquet file; a directory or
/// wildcard name of shards of either) for reading in batches, with the roles of `opts` as
/// [`load`](crate::load) reads them. Only the role columns are read now; the features are read
/// by [`RowSource::read`], each batch from the files it spans (a Parquet file reads only the
/// row groups of the batch, a `.npy` array seeks to the batch's first row).
///
/// # Errors
/// As [`load`](crate::load) for the file and the role columns (a bad feature value is found
/// when its batch is read, named by file, row and column); [`Error::Unsupported`] for a CSV or
/// Arrow input (convert it to Parquet) and for a trusted column.
pub fn open_batches(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<RowBatches> {
    let path = path.as_ref();
    let shown = path.display().to_string();
    let Layout { parts, kind, n_features, feature_names } = layout(path, opts)?;
    let n: usize = parts.iter().map(|p| p.1).sum();
    // the role columns of every row
    let (keys, flags) = match kind {
        Kind::Npy => match read::npy_roles(path, opts)? {
            None => (RowKeys::new(n), RowFlags::default()),
            Some((meta, roles)) => keys_of(&meta, roles, n)?,
        },
        Kind::Parquet { .. } if opts.roles().is_empty() => (RowKeys::new(n), RowFlags::default()),
        Kind::Parquet { .. } => {
            let files: Vec<PathBuf> = parts.iter().map(|p| p.0.clone()).collect();
            keys_of(&shown, read::parquet_roles(path, &files, opts)?, n)?
        }
    };
    let keys = keys.with_feature_names(feature_names.clone());
    let cursors = parts.iter().map(|_| Cursor::Untried).collect();
    Ok(RowBatches { parts, kind, n_features, feature_names, keys, flags, cursors })
}

/// The layout of the table at `path`, checked as [`open_batches`] checks it.
fn layout(path: &Path, opts: &LoadOptions) -> Result<Layout> {
    let shown = path.display().to_string();
    if opts.trusted.is_some() {
        return Err(Error::Unsupported {
            path: shown,
            what: "a trusted column is not read by a batched audit (its reference sample is drawn at random)".into(),
        });
    }
    let files = files::shards(path)?;
    if files.iter().all(|f| files::is_npy(f)) {
        return npy_layout(path, files, opts);
    }
    if let Some(f) = files.iter().find(|f| Format::of(f, false).ok() != Some(Format::Parquet)) {
        return Err(Error::Unsupported {
            path: f.display().to_string(),
            what: "a batched audit reads Parquet or .npy files (a CSV or Arrow table converts to Parquet with polars or pyarrow)".into(),
        });
    }
    if opts.meta.is_some() {
        return Err(Error::Unsupported {
            path: shown,
            what: "a meta file goes with a .npy feature array; a Parquet input holds its own label, id, source and truth columns".into(),
        });
    }
    let first = files[0].display().to_string();
    let parts = || -> Result<Vec<(PathBuf, usize)>> {
        files.iter().map(|f| parquet_rows(f).map(|rows| (f.clone(), rows))).collect()
    };
    // features the page reader takes: their names and number from the footers, no row read
    // (polars would decode the first row group to read the first row)
    let header = files::parquet_header(&files[0], opts)?;
    files::check_named_columns(&first, &header.names, opts)?;
    columns::check_roles(&first, opts)?;
    match &opts.embedding {
        Some(column) => {
            if let Some(pages) = ColumnPages::list(&files, column) {
                let n_features = pages.width();
                return Ok(Layout {
                    parts: parts()?,
                    kind: Kind::Parquet {
                        columns: vec![column.clone()],
                        embedding: Some(column.clone()),
                    },
                    n_features,
                    feature_names: columns::array_names(n_features),
                });
            }
        }
        None => {
            let names = columns::feature_columns(&first, &header.wanted, &header.names, opts)?;
            if pages::takes_columns(&files, &names) {
                return Ok(Layout {
                    parts: parts()?,
                    kind: Kind::Parquet { columns: names.clone(), embedding: None },
                    n_features: names.len(),
                    feature_names: names,
                });
            }
        }
    }
    // the feature columns: those `load` would take, found on the first rows of the first file
    let (head, names) = files::guarded(&first, "Parquet", || {
        let mut reader = ParquetReader::new(files::open(&files[0])?);
        let schema = reader.schema().map_err(|e| files::parquet_error(&first, &e))?;
        let (names, wanted) = files::arrow_columns(&first, &schema, Some(opts))?;
        let frame = reader
            .with_columns(Some(wanted))
            .with_slice(Some((0, 1)))
            .finish()
            .map_err(|e| files::parquet_error(&first, &e))?;
        Ok((frame, names))
    })?;
    if head.height() == 0 {
        return Err(Error::NoRows { path: first });
    }
    files::check_named_columns(&first, &names, opts)?;
    let table = columns::table_from_frame(&files[0], &head, &names, opts)?;
    let feature_names = table.feature_names().to_vec();
    let n_features = table.dataset().n_features();
    let kind = match &opts.embedding {
        Some(column) => {
            Kind::Parquet { columns: vec![column.clone()], embedding: Some(column.clone()) }
        }
        None => Kind::Parquet { columns: feature_names.clone(), embedding: None },
    };
    Ok(Layout { parts: parts()?, kind, n_features, feature_names })
}

/// The number of rows of a Parquet file, from its footer.
pub(crate) fn parquet_rows(file: &Path) -> Result<usize> {
    let shown = file.display().to_string();
    files::guarded(&shown, "Parquet", || {
        ParquetReader::new(files::open(file)?)
            .num_rows()
            .map_err(|e| files::parquet_error(&shown, &e))
    })
}

/// Rows `rows` of a Parquet file (only the row groups they are in are read): the named
/// `columns`, or every column.
pub(crate) fn parquet_slice(
    file: &Path,
    rows: Range<usize>,
    columns: Option<&[String]>,
) -> Result<DataFrame> {
    let shown = file.display().to_string();
    files::guarded(&shown, "Parquet", || {
        ParquetReader::new(files::open(file)?)
            .with_columns(columns.map(|c| c.iter().map(|c| c.as_str().into()).collect()))
            .with_slice(Some((rows.start, rows.len())))
            .finish()
            .map_err(|e| files::parquet_error(&shown, &e))
    })
}

/// The keys and flags of `n` rows from their role columns (read from `path`).
fn keys_of(path: &str, roles: columns::Roles, n: usize) -> Result<(RowKeys, RowFlags)> {
    let data_err = |error| Error::Data { path: path.to_string(), error };
    let mut keys = RowKeys::new(n);
    if let Some(labels) = roles.labels {
        keys = keys.with_labels(labels).map_err(data_err)?;
    }
    if let Some(ids) = roles.ids {
        keys = keys.with_ids(ids).map_err(data_err)?;
    }
    if let Some(sources) = roles.sources {
        keys = keys.with_sources(sources).map_err(data_err)?;
    }
    roles.flags.check_len(path, n)?;
    Ok((keys, roles.flags))
}

fn npy_layout(path: &Path, files: Vec<PathBuf>, opts: &LoadOptions) -> Result<Layout> {
    let shown = path.display().to_string();
    read::check_npy_columns(path, opts)?;
    let shapes = crate::npy::shapes(&files)?;
    let (n, d) = (shapes.iter().map(|s| s.0).sum::<usize>(), shapes[0].1);
    if n == 0 {
        return Err(Error::NoRows { path: shown });
    }
    if d == 0 {
        return Err(Error::NoFeatures { path: shown, available: String::new() });
    }
    let feature_names = columns::array_names(d);
    let parts = files.into_iter().zip(shapes.iter().map(|s| s.0)).collect();
    Ok(Layout { parts, kind: Kind::Npy, n_features: d, feature_names })
}

impl RowBatches {
    /// These batches with out-of-sample predicted probabilities read from `path` (a CSV or
    /// Parquet file, one row per row of the table, one column per class, matched to the labels
    /// as [`crate::attach_pred_probs`] does), held whole with the other keys and handed to
    /// every batch's rows.
    ///
    /// # Errors
    /// As [`crate::attach_pred_probs`].
    pub fn with_pred_probs(mut self, path: impl AsRef<Path>) -> Result<Self> {
        self.keys = read::with_pred_probs_of(self.keys, path.as_ref())?;
        Ok(self)
    }

    /// Ground truth, if a truth column was named.
    pub fn truth(&self) -> Option<&[bool]> {
        self.flags.truth.as_deref()
    }

    /// Names of the feature columns, in matrix column order.
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// Rows `rows` of the part `part` (one file).
    fn read_part(&mut self, part: usize, rows: Range<usize>) -> Result<Array2<f32>> {
        let d = self.n_features;
        if let Some(x) = self.page_rows(part, rows.clone()) {
            return Ok(x);
        }
        let file = &self.parts[part].0;
        let shown = file.display().to_string();
        match &self.kind {
            Kind::Npy => {
                let mut x = Array2::<f32>::zeros((rows.len(), d));
                let cells = x.as_slice_mut().expect("a fresh array is contiguous");
                crate::npy::read_rows(file, rows, d, cells)?;
                Ok(x)
            }
            Kind::Parquet { columns, embedding } => {
                let start = rows.start;
                parquet_features(file, &shown, rows, start, columns, embedding.as_deref(), d)
            }
        }
    }

    /// Rows `rows` of the part `part`'s features by the page reader: an embedding column from
    /// where its reader stands (batches come in order; an earlier row opens it again), numeric
    /// columns from the file's footer, their pages before the rows passed over. `None` where the
    /// part is read with polars: `.npy`, columns the page reader does not take, or a page or value
    /// it refused (polars then names the bad value, if it is in the rows).
    fn page_rows(&mut self, part: usize, rows: Range<usize>) -> Option<Array2<f32>> {
        let file = std::slice::from_ref(&self.parts[part].0);
        let cursor = &mut self.cursors[part];
        let column = match &self.kind {
            Kind::Npy => return None,
            Kind::Parquet { embedding: Some(column), .. } => column,
            Kind::Parquet { columns, embedding: None } => {
                // each batch's columns read from the footer, their pages before it unread
                if matches!(cursor, Cursor::Untried) {
                    *cursor = match pages::footers(file) {
                        Some(mut footer) => Cursor::Columns(Box::new(footer.remove(0))),
                        None => Cursor::Polars,
                    };
                }
                let Cursor::Columns(footer) = cursor else { return None };
                let x = pages::columns_in(file, std::slice::from_ref(footer), columns, rows);
                if x.is_none() {
                    *cursor = Cursor::Polars;
                }
                return x;
            }
        };
        let ahead = matches!(cursor, Cursor::Pages(p) if p.position() <= rows.start);
        if !ahead && !matches!(cursor, Cursor::Polars) {
            *cursor = match ColumnPages::list(file, column) {
                Some(pages) if pages.width() == self.n_features => Cursor::Pages(Box::new(pages)),
                _ => Cursor::Polars,
            };
        }
        let Cursor::Pages(pages) = cursor else { return None };
        let mut cells = Vec::with_capacity(rows.len() * self.n_features);
        let read = pages
            .skip(rows.start - pages.position())
            .and_then(|()| pages.read(rows.len(), &mut cells));
        if read.is_none() {
            *cursor = Cursor::Polars;
            return None;
        }
        Array2::from_shape_vec((rows.len(), self.n_features), cells).ok()
    }
}

/// Rows `rows` of the Parquet `file`'s `d` features: its list column `embedding`, or its numeric
/// `columns`. Errors name `shown` and count rows from `first_row` (the number `rows.start` goes
/// by there).
pub(crate) fn parquet_features(
    file: &Path,
    shown: &str,
    rows: Range<usize>,
    first_row: usize,
    columns: &[String],
    embedding: Option<&str>,
    d: usize,
) -> Result<Array2<f32>> {
    let frame = parquet_slice(file, rows, Some(columns))?;
    let x = match embedding {
        Some(column) => {
            columns::embedding_matrix(shown, columns::get(&frame, shown, column, "embedding")?)
        }
        None => columns::feature_matrix(shown, &frame, columns),
    }
    .map_err(|e| at_row(e, first_row))?;
    if x.ncols() != d {
        return Err(Error::Unsupported {
            path: shown.to_string(),
            what: format!(
                "rows from {first_row} have {} features where the first have {d}",
                x.ncols()
            ),
        });
    }
    Ok(x)
}

/// A reading error of rows counted from `start` of the file, with its row counted in the file.
fn at_row(e: Error, start: usize) -> Error {
    match e {
        Error::NonFinite { path, column, row, value } => {
            Error::NonFinite { path, column, row: row + start, value }
        }
        Error::OutOfF32Range { path, column, row, value } => {
            Error::OutOfF32Range { path, column, row: row + start, value }
        }
        Error::MissingValue { path, column, row } => {
            Error::MissingValue { path, column, row: row + start }
        }
        Error::EmbeddingLength { path, column, row, expected, found } => {
            Error::EmbeddingLength { path, column, row: row + start, expected, found }
        }
        e => e,
    }
}

impl RowSource for RowBatches {
    fn keys(&self) -> &RowKeys {
        &self.keys
    }

    fn n_features(&self) -> usize {
        self.n_features
    }

    fn read(&mut self, rows: Range<usize>) -> std::result::Result<Array2<f32>, BoxError> {
        let mut pieces = Vec::new();
        let mut offset = 0;
        for part in 0..self.parts.len() {
            let count = self.parts[part].1;
            let (lo, hi) = (rows.start.max(offset), rows.end.min(offset + count));
            if lo < hi {
                pieces.push(self.read_part(part, lo - offset..hi - offset)?);
            }
            offset += count;
        }
        if rows.end > offset || rows.start > rows.end {
            return Err(format!("rows {}..{} of a table of {offset}", rows.start, rows.end).into());
        }
        match pieces.len() {
            0 => Ok(Array2::zeros((0, self.n_features))),
            1 => Ok(pieces.swap_remove(0)),
            _ => {
                let views: Vec<_> = pieces.iter().map(Array2::view).collect();
                Ok(concatenate(Axis(0), &views)?)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
    use super::*;

    /// An embedding column the page reader takes is read by it, batch after batch.
    #[test]
    fn a_list_column_is_read_by_pages() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pages/dict_v1_snappy.parquet");
        let opts = LoadOptions { embedding: Some("emb".into()), ..LoadOptions::default() };
        let mut source = open_batches(&path, &opts).unwrap();
        assert_eq!((source.keys().n_rows(), source.n_features()), (300, 5));
        source.read(0..100).unwrap();
        assert!(matches!(&source.cursors[0], Cursor::Pages(p) if p.position() == 100));
        source.read(150..160).unwrap();
        assert!(matches!(&source.cursors[0], Cursor::Pages(p) if p.position() == 160));
        // numeric columns: each batch read from the footer
        let path = path.with_file_name("columns_v1_snappy.parquet");
        let opts = LoadOptions { label: Some("label".into()), ..LoadOptions::default() };
        let mut source = open_batches(&path, &opts).unwrap();
        assert_eq!(source.feature_names(), ["f0", "f1", "f2", "f3", "f4"]);
        let whole = crate::load(&path, &opts).unwrap();
        let x = source.read(130..170).unwrap();
        assert!(matches!(&source.cursors[0], Cursor::Columns(_)));
        assert_eq!(x, whole.dataset().features().slice_axis(Axis(0), (130..170).into()));
    }
}
