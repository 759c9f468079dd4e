//! Parquet feature columns (an embedding list column of floats, or numeric columns) read page by
//! page straight into the feature matrix.
//!
//! polars reads and decodes a row group's column chunk whole, into its own arrays, before the
//! matrix is filled from them: a file written as one large row group (`pq.write_table` keeps up
//! to 1,048,576 rows per group) held its features twice while it was read. This reader decodes
//! one page at a time (a dictionary page, then data pages of v1 or v2, PLAIN, dictionary or
//! BYTE_STREAM_SPLIT values, any compression polars reads) and appends its values to the
//! matrix ([`embedding`]), or to a column of 16 that are then copied into the matrix's rows
//! ([`columns`]), so the load holds the features once and a page (or 16 columns) beside them.
//!
//! It takes only what it can read exactly as polars' frame is read: float or double leaves in a
//! list (List, LargeList or FixedSizeList of float32/float64; every list present and of one
//! length), or columns at the root of floats, doubles or integers of any width and sign (an
//! integer becomes f32 through f64, as the frame's cast reads it), every value present and
//! finite (and, for doubles, within f32's range). For anything else (`None`: booleans, float16,
//! dates, decimals, an encoding it does not know) the caller reads the columns with polars,
//! whose reading names the bad row, value or type.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::PathBuf;

use ndarray::Array2;
use polars_parquet::parquet::compression::{Compression, DecompressionContext, decompress};
use polars_parquet::parquet::metadata::{ColumnChunkMetadata, FileMetadata};
use polars_parquet::parquet::read::read_metadata;
use polars_parquet::parquet::schema::types::{
    IntegerType, PhysicalType, PrimitiveConvertedType, PrimitiveLogicalType, PrimitiveType,
};
use polars_parquet_format::thrift::protocol::TCompactInputProtocol;
use polars_parquet_format::{Encoding, PageHeader, PageType};
use rayon::prelude::*;

/// The largest page header read: headers are a few dozen bytes (statistics may add a few
/// hundred); a larger one is a damaged file.
const MAX_HEADER: usize = 1 << 20;

/// The embedding column `column` of the Parquet files `files` (one table in file order), as a
/// row-major matrix of one row per row, or `None` when this reader does not take the column
/// (see the module's notes), the file cannot be read, or a value is missing, of another length
/// or not finite.
pub(crate) fn embedding(files: &[PathBuf], column: &str) -> Option<Array2<f32>> {
    let mut pages = ColumnPages::list(files, column)?;
    let (n, d) = (pages.n_rows(), pages.width());
    let mut cells: Vec<f32> = Vec::with_capacity(n.checked_mul(d)?);
    pages.read(n, &mut cells)?;
    Array2::from_shape_vec((n, d), cells).ok()
}

/// Columns decoded before their values are copied into the matrix's rows: 16 f32 columns fill
/// a cache line of a row.
const COLUMNS_AT_ONCE: usize = 16;

/// The numeric columns `names` (floats, doubles, integers) of the Parquet files `files` (one
/// table in file order) as the matrix's columns, in that order, or `None` when this reader does
/// not take one of them (another type, a missing value, a value not finite or beyond f32's
/// range, a file it cannot read). The columns are decoded [`COLUMNS_AT_ONCE`] at a time and
/// copied into the rows, so the read holds the matrix and that many columns.
pub(crate) fn columns(files: &[PathBuf], names: &[String]) -> Option<Array2<f32>> {
    let metadata = footers(files)?;
    let n = metadata.iter().map(|m| m.num_rows).sum();
    columns_in(files, &metadata, names, 0..n)
}

/// Whether [`columns`] takes the columns `names` of `files`, from their footers: each a numeric
/// column at the root (a value in it may still be missing or not finite).
pub(crate) fn takes_columns(files: &[PathBuf], names: &[String]) -> bool {
    footers(files).is_some_and(|metadata| {
        names.iter().all(|name| ColumnPages::from_metadata(files, &metadata, name, false).is_some())
    })
}

/// The footers of `files`.
pub(crate) fn footers(files: &[PathBuf]) -> Option<Vec<FileMetadata>> {
    files.iter().map(|path| quiet(|| read_metadata(&mut File::open(path).ok()?).ok())).collect()
}

/// `read()`, or `None` if it panics: polars-parquet's readers panic on some damaged bytes
/// instead of returning an error (the CLI's panic hook keeps panics inside polars quiet), and
/// what this reader cannot read is read by polars, which reports a damaged file.
fn quiet<T>(read: impl FnOnce() -> Option<T>) -> Option<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)).ok().flatten()
}

/// Rows `rows` of [`columns`], from the files' footers `metadata`: each column's pages before
/// the rows are passed over unread (a batched audit reads a batch so).
pub(crate) fn columns_in(
    files: &[PathBuf],
    metadata: &[FileMetadata],
    names: &[String],
    rows: std::ops::Range<usize>,
) -> Option<Array2<f32>> {
    // every column is checked from the footers before one is read
    let pages = names
        .iter()
        .map(|name| ColumnPages::from_metadata(files, metadata, name, false))
        .collect::<Option<Vec<_>>>()?;
    let n = rows.len();
    let d = names.len();
    let mut x = Array2::<f32>::zeros((n, d));
    let mut pages = pages.into_iter();
    for first in (0..d).step_by(COLUMNS_AT_ONCE) {
        // the block's columns decoded on the audit's threads, each into its own vector (the
        // same values for any thread count); each column's page buffers go when it is read
        let columns: Vec<ColumnPages> = pages.by_ref().take(COLUMNS_AT_ONCE).collect();
        let block = columns
            .into_par_iter()
            .map(|mut column| {
                let mut cells = Vec::with_capacity(n);
                column.skip(rows.start)?;
                column.read(n, &mut cells)?;
                Some(cells)
            })
            .collect::<Option<Vec<Vec<f32>>>>()?;
        for (i, mut row) in x.rows_mut().into_iter().enumerate() {
            for (j, cells) in block.iter().enumerate() {
                row[first + j] = cells[i];
            }
        }
    }
    Some(x)
}

/// A column (a list column, or a column of one value per row) read a page at a time, its rows in
/// order: [`ColumnPages::read`] hands out the next rows (a batched audit reads a file's rows
/// batch after batch).
pub(crate) struct ColumnPages {
    files: Vec<PathBuf>,
    /// The column's chunks, in table order.
    chunks: Vec<Chunk>,
    width: usize,
    /// One value a row (no list): pages before the rows wanted can be passed over unread.
    flat: bool,
    n_rows: usize,
    /// Rows handed out.
    at: usize,
    /// The next chunk to open.
    next: usize,
    /// The chunk being read.
    reading: Option<Reading>,
    /// Values decoded beyond the rows handed out (less than a page).
    surplus: Vec<f32>,
    /// A page as it lies in the file.
    compressed: Vec<u8>,
    /// A page's bytes decompressed.
    page: Vec<u8>,
    /// The dictionary page's values of the chunk being read.
    dictionary: Vec<f32>,
}

impl std::fmt::Debug for ColumnPages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColumnPages")
            .field("files", &self.files)
            .field("width", &self.width)
            .field("n_rows", &self.n_rows)
            .field("at", &self.at)
            .finish_non_exhaustive()
    }
}

/// One column chunk of the column: where it lies and how its pages are read.
struct Chunk {
    file: usize,
    range: std::ops::Range<u64>,
    rows: usize,
    /// Its levels (one per value: no value is missing in a chunk this reader takes).
    values: usize,
    compression: Compression,
    /// Its bytes decompressed (the footer's count): no page of it is larger.
    full: usize,
    value: Value,
    max_rep: u32,
    max_def: u32,
}

/// The chunk being read: its pages, and where its rows stand.
struct Reading {
    /// The file from the chunk's start (the chunk ends where its levels are all read).
    reader: BufReader<File>,
    /// Levels of its data pages read.
    seen: usize,
    rows: Rows,
    context: DecompressionContext,
}

impl ColumnPages {
    /// The list column `column` of `files` (one table in file order), if this reader takes it:
    /// from the files' footers only (its width is the values of a chunk over its rows).
    pub(crate) fn list(files: &[PathBuf], column: &str) -> Option<Self> {
        Self::from_metadata(files, &footers(files)?, column, true)
    }

    /// The column `column` of `files`, whose footers are `metadata`: a list column (`list`) or
    /// a column of one value per row.
    fn from_metadata(
        files: &[PathBuf],
        metadata: &[FileMetadata],
        column: &str,
        list: bool,
    ) -> Option<Self> {
        let mut chunks = Vec::new();
        let mut width = None;
        for (k, metadata) in metadata.iter().enumerate() {
            for group in metadata.row_groups.iter().filter(|g| g.num_rows() > 0) {
                let chunk = leaf(group.columns_under_root_iter(column)?, list)?;
                let values = usize::try_from(chunk.num_values()).ok()?;
                let rows = group.num_rows();
                let w = values / rows;
                if w == 0 || w * rows != values || *width.get_or_insert(w) != w || (!list && w != 1)
                {
                    return None;
                }
                let descriptor = &chunk.descriptor().descriptor;
                chunks.push(Chunk {
                    file: k,
                    range: chunk.byte_range(),
                    rows,
                    values,
                    compression: chunk.compression(),
                    full: usize::try_from(chunk.uncompressed_size()).ok()?,
                    value: Value::of(&descriptor.primitive_type, list)?,
                    max_rep: u32::try_from(descriptor.max_rep_level).ok()?,
                    max_def: u32::try_from(descriptor.max_def_level).ok()?,
                });
            }
        }
        Some(Self {
            files: files.to_vec(),
            n_rows: chunks.iter().map(|c| c.rows).sum(),
            chunks,
            width: width?,
            flat: !list,
            at: 0,
            next: 0,
            reading: None,
            surplus: Vec::new(),
            compressed: Vec::new(),
            page: Vec::new(),
            dictionary: Vec::new(),
        })
    }

    /// Values per row.
    pub(crate) fn width(&self) -> usize {
        self.width
    }

    /// Rows of the table.
    pub(crate) fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// Rows handed out so far: the next [`Self::read`] begins at this row.
    pub(crate) fn position(&self) -> usize {
        self.at
    }

    /// Appends the next `count` rows' values to `cells`; `None` past the table's end or where
    /// the reader does not take a page or a value (the caller then reads with polars).
    pub(crate) fn read(&mut self, count: usize, cells: &mut Vec<f32>) -> Option<()> {
        if self.at.checked_add(count)? > self.n_rows {
            return None;
        }
        let target = cells.len().checked_add(count.checked_mul(self.width)?)?;
        let take = self.surplus.len().min(target - cells.len());
        cells.extend(self.surplus.drain(..take));
        while cells.len() < target {
            self.next_page(cells, 0)?;
        }
        self.surplus.extend(cells.drain(target..));
        self.at += count;
        Some(())
    }

    /// Passes over the next `count` rows: a column of one value a row passes over whole chunks
    /// and pages without reading them, a list column reads them.
    pub(crate) fn skip(&mut self, mut count: usize) -> Option<()> {
        if self.at.checked_add(count)? > self.n_rows {
            return None;
        }
        if self.flat {
            while count > 0 {
                if !self.surplus.is_empty() {
                    let take = self.surplus.len().min(count);
                    self.surplus.drain(..take);
                    (self.at, count) = (self.at + take, count - take);
                    continue;
                }
                // the next chunk or page passed over, or read into the surplus
                let mut cells = std::mem::take(&mut self.surplus);
                let passed = self.next_page(&mut cells, count)?;
                self.surplus = cells;
                (self.at, count) = (self.at + passed, count - passed);
            }
            return Some(());
        }
        let block = (1 << 20) / self.width.max(1) + 1;
        let mut scratch = Vec::new();
        while count > 0 {
            let rows = count.min(block);
            scratch.clear();
            self.read(rows, &mut scratch)?;
            count -= rows;
        }
        Some(())
    }

    /// Appends the values of the next data page to `cells` (opening the next chunk, reading
    /// its dictionary page, as they come) and answers 0; or, in a column of one value a row,
    /// passes over the next chunk or data page unread if it holds at most `pass` rows, and
    /// answers its rows.
    fn next_page(&mut self, cells: &mut Vec<f32>, pass: usize) -> Option<usize> {
        let Self {
            files, chunks, width, next, reading, compressed, page: buffer, dictionary, ..
        } = self;
        loop {
            if reading.is_none() {
                let chunk = chunks.get(*next)?;
                if chunk.max_rep == 0 && chunk.rows <= pass {
                    *next += 1;
                    return Some(chunk.rows);
                }
                let mut file = File::open(&files[chunk.file]).ok()?;
                file.seek(SeekFrom::Start(chunk.range.start)).ok()?;
                *reading = Some(Reading {
                    // a page (about 1 MiB) is read past the buffer; headers through it
                    reader: BufReader::with_capacity(64 << 10, file),
                    seen: 0,
                    rows: Rows { width: *width, begun: 0, in_row: 0 },
                    context: DecompressionContext::Unset,
                });
                dictionary.clear();
                *next += 1;
            }
            let chunk = &chunks[*next - 1];
            let state = reading.as_mut()?;
            let header = quiet(|| {
                let mut protocol = TCompactInputProtocol::new(&mut state.reader, MAX_HEADER);
                PageHeader::read_from_in_protocol(&mut protocol).ok()
            })?;
            let size = usize::try_from(header.compressed_page_size).ok()?;
            let full = usize::try_from(header.uncompressed_page_size).ok()?;
            // a damaged header must not make a buffer larger than its chunk
            let stored = usize::try_from(chunk.range.end - chunk.range.start).ok()?;
            if size > stored || full > chunk.full.max(stored) {
                return None;
            }
            let page_rows = match (&header.data_page_header, &header.data_page_header_v2) {
                (Some(v1), _) => Some(v1.num_values),
                (_, Some(v2)) => Some(v2.num_values),
                _ => None,
            };
            let start = cells.len();
            // the page's levels, and the rows passed over unread
            let (count, passed) = if let Some(rows) =
                page_rows.and_then(|r| usize::try_from(r).ok())
                && chunk.max_rep == 0
                && rows <= pass
            {
                // one level a row: the page's rows are known without reading it
                state.reader.seek_relative(i64::try_from(size).ok()?).ok()?;
                state.rows.levels(0, rows)?;
                (rows, rows)
            } else {
                compressed.resize(size, 0);
                state.reader.read_exact(compressed).ok()?;
                let (compression, value, context) =
                    (chunk.compression, chunk.value, &mut state.context);
                let count = match header.type_ {
                    PageType::DICTIONARY_PAGE => {
                        let page = header.dictionary_page_header?;
                        if !matches!(page.encoding, Encoding::PLAIN | Encoding::PLAIN_DICTIONARY) {
                            return None;
                        }
                        let count = usize::try_from(page.num_values).ok()?;
                        let bytes = inflate(compression, compressed, buffer, full, context)?;
                        // a bad entry only matters if a row uses it: it is kept as NaN, which the
                        // finiteness check of the rows refuses
                        dictionary.clear();
                        plain(bytes, count, value, dictionary, false)?;
                        continue;
                    }
                    PageType::DATA_PAGE => {
                        let page = header.data_page_header?;
                        let count = usize::try_from(page.num_values).ok()?;
                        // v1: each level section is its length (4 bytes, little-endian) and its
                        // runs, before the values, all compressed together (a level always 0 has
                        // no section, whatever encoding the header names)
                        if (chunk.max_rep > 0 && page.repetition_level_encoding != Encoding::RLE)
                            || (chunk.max_def > 0
                                && page.definition_level_encoding != Encoding::RLE)
                        {
                            return None;
                        }
                        let bytes = inflate(compression, compressed, buffer, full, context)?;
                        let (rep, bytes) = prefixed(bytes, chunk.max_rep)?;
                        let (def, bytes) = prefixed(bytes, chunk.max_def)?;
                        levels(rep, def, count, chunk, &mut state.rows)?;
                        values(bytes, page.encoding, count, value, dictionary, cells)?;
                        count
                    }
                    PageType::DATA_PAGE_V2 => {
                        let page = header.data_page_header_v2?;
                        let count = usize::try_from(page.num_values).ok()?;
                        let rep_len = usize::try_from(page.repetition_levels_byte_length).ok()?;
                        let def_len = usize::try_from(page.definition_levels_byte_length).ok()?;
                        // v2: the levels lie uncompressed before the (perhaps compressed) values
                        let rep = compressed.get(..rep_len)?;
                        let def = compressed.get(rep_len..rep_len.checked_add(def_len)?)?;
                        levels(rep, def, count, chunk, &mut state.rows)?;
                        let bytes = &compressed[rep_len + def_len..];
                        let bytes = if page.is_compressed.unwrap_or(true) {
                            let full = full.checked_sub(rep_len + def_len)?;
                            inflate(compression, bytes, buffer, full, context)?
                        } else {
                            bytes
                        };
                        values(bytes, page.encoding, count, value, dictionary, cells)?;
                        count
                    }
                    // an index page (never written in practice) holds no values
                    _ => continue,
                };
                (count, 0)
            };
            if !cells[start..].iter().all(|v| v.is_finite()) {
                return None;
            }
            state.seen += count;
            if state.seen >= chunk.values {
                let rows = &state.rows;
                let whole = rows.begun == chunk.rows && rows.in_row == *width;
                if state.seen > chunk.values || !whole {
                    return None;
                }
                *reading = None;
            }
            return Some(passed);
        }
    }
}

/// The one column chunk of a root column this reader takes: a list of floats or doubles (`list`),
/// or one numeric value per row ([`Value::of`]).
fn leaf<'a>(
    mut chunks: impl ExactSizeIterator<Item = &'a ColumnChunkMetadata>,
    list: bool,
) -> Option<&'a ColumnChunkMetadata> {
    if chunks.len() != 1 {
        return None;
    }
    let chunk = chunks.next()?;
    let column = chunk.descriptor();
    let descriptor = &column.descriptor;
    // `list.element` (or a legacy two-level list, or a repeated field): one repetition level,
    // and no struct inside the list; else a column at the root, required or optional
    let shape = match list {
        true => descriptor.max_rep_level == 1 && column.path_in_schema.len() <= 3,
        false => descriptor.max_rep_level == 0 && column.path_in_schema.len() == 1,
    };
    let known = Value::of(&descriptor.primitive_type, list).is_some();
    (shape && known && descriptor.max_def_level >= i16::from(list)).then_some(chunk)
}

/// The values of a column this reader takes, as they lie in a page, and as they become f32
/// (as the frame's reading converts them: integers through f64).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Value {
    F32,
    F64,
    I32,
    U32,
    I64,
    U64,
}

impl Value {
    /// The values of a leaf of type `t`: floats or doubles, and for a column of one value a
    /// row (not `list`: a list of integers is an error polars names) signed or unsigned
    /// integers without another logical type (a date, time or decimal is not a feature).
    fn of(t: &PrimitiveType, list: bool) -> Option<Value> {
        use PrimitiveConvertedType as C;
        let integer = |wide: bool| -> Option<Value> {
            let unsigned = match (&t.logical_type, &t.converted_type) {
                _ if list => return None,
                (None, None) => false,
                (Some(PrimitiveLogicalType::Integer(i)), _) => matches!(
                    i,
                    IntegerType::UInt8
                        | IntegerType::UInt16
                        | IntegerType::UInt32
                        | IntegerType::UInt64
                ),
                (None, Some(C::Uint8 | C::Uint16 | C::Uint32 | C::Uint64)) => true,
                (None, Some(C::Int8 | C::Int16 | C::Int32 | C::Int64)) => false,
                _ => return None,
            };
            Some(match (wide, unsigned) {
                (false, false) => Value::I32,
                (false, true) => Value::U32,
                (true, false) => Value::I64,
                (true, true) => Value::U64,
            })
        };
        match t.physical_type {
            PhysicalType::Float => Some(Value::F32),
            PhysicalType::Double => Some(Value::F64),
            PhysicalType::Int32 => integer(false),
            PhysicalType::Int64 => integer(true),
            _ => None,
        }
    }

    /// Bytes of a value.
    fn size(self) -> usize {
        match self {
            Value::F32 | Value::I32 | Value::U32 => 4,
            Value::F64 | Value::I64 | Value::U64 => 8,
        }
    }

    /// A little-endian value of [`Self::size`] bytes as f32; a double outside f32's range, or
    /// not finite, is NaN (refused by the caller's finiteness check).
    fn f32(self, bytes: &[u8]) -> f32 {
        let four = |b: &[u8]| [b[0], b[1], b[2], b[3]];
        let eight = |b: &[u8]| [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]];
        match self {
            Value::F32 => f32::from_le_bytes(four(bytes)),
            Value::F64 => {
                let v = f64::from_le_bytes(eight(bytes));
                if v.is_finite() && v.abs() <= f64::from(f32::MAX) { v as f32 } else { f32::NAN }
            }
            Value::I32 => f64::from(i32::from_le_bytes(four(bytes))) as f32,
            Value::U32 => f64::from(u32::from_le_bytes(four(bytes))) as f32,
            Value::I64 => i64::from_le_bytes(eight(bytes)) as f64 as f32,
            Value::U64 => u64::from_le_bytes(eight(bytes)) as f64 as f32,
        }
    }
}

/// Where the rows of a chunk stand: the number of rows begun, and the values of the last one.
struct Rows {
    width: usize,
    begun: usize,
    in_row: usize,
}

impl Rows {
    /// `count` repetition levels `rep`: a 0 begins a row, a 1 continues it.
    fn levels(&mut self, rep: u32, count: usize) -> Option<()> {
        match rep {
            0 if self.width == 1 => {
                // one value a row
                self.begun += count;
                self.in_row = 1;
            }
            0 => {
                for _ in 0..count {
                    if self.begun > 0 && self.in_row != self.width {
                        return None;
                    }
                    self.begun += 1;
                    self.in_row = 1;
                }
            }
            1 if self.begun > 0 => {
                self.in_row += count;
                if self.in_row > self.width {
                    return None;
                }
            }
            _ => return None,
        }
        Some(())
    }
}

/// Appends `count` values encoded as `encoding` in `bytes` (`dictionary`: the chunk's
/// dictionary page).
fn values(
    bytes: &[u8],
    encoding: Encoding,
    count: usize,
    value: Value,
    dictionary: &[f32],
    cells: &mut Vec<f32>,
) -> Option<()> {
    match encoding {
        Encoding::PLAIN => plain(bytes, count, value, cells, true),
        Encoding::PLAIN_DICTIONARY | Encoding::RLE_DICTIONARY => {
            let (&bits, indices) = bytes.split_first()?;
            let mut pushed = 0;
            runs(indices, u32::from(bits), count, |index, repeat| {
                let value = *dictionary.get(usize::try_from(index).ok()?)?;
                cells.extend(std::iter::repeat_n(value, repeat));
                pushed += repeat;
                Some(())
            })?;
            (pushed == count).then_some(())
        }
        Encoding::BYTE_STREAM_SPLIT => {
            let size = value.size();
            let streams = bytes.get(..count.checked_mul(size)?)?;
            cells.reserve(count);
            for i in 0..count {
                let mut one = [0u8; 8];
                for (b, byte) in one[..size].iter_mut().enumerate() {
                    *byte = streams[b * count + i];
                }
                cells.push(value.f32(&one[..size]));
            }
            Some(())
        }
        _ => None,
    }
}

/// `bytes` decompressed to `full` bytes (into `buffer`), or `bytes` if uncompressed.
fn inflate<'a>(
    compression: Compression,
    bytes: &'a [u8],
    buffer: &'a mut Vec<u8>,
    full: usize,
    context: &mut DecompressionContext,
) -> Option<&'a [u8]> {
    if compression == Compression::Uncompressed {
        return Some(bytes);
    }
    buffer.resize(full, 0);
    quiet(|| decompress(compression, bytes, buffer, context).ok())?;
    Some(buffer)
}

/// A v1 level section of levels up to `max`: its length (4 bytes, little-endian), its bytes,
/// and what follows (no section where `max` is 0).
fn prefixed(bytes: &[u8], max: u32) -> Option<(&[u8], &[u8])> {
    if max == 0 {
        return Some((&[], bytes));
    }
    let (len, rest) = bytes.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
    (len <= rest.len()).then(|| rest.split_at(len))
}

/// Checks a data page's `count` levels of `chunk`: every definition level is the largest (no
/// list or value missing), and the repetition levels make rows of the chunk's width (without
/// them, each value is a row).
fn levels(rep: &[u8], def: &[u8], count: usize, chunk: &Chunk, rows: &mut Rows) -> Option<()> {
    if chunk.max_def > 0 {
        let mut defined = 0;
        runs(def, bit_width(chunk.max_def), count, |level, repeat| {
            defined += repeat;
            (level == chunk.max_def).then_some(())
        })?;
        if defined != count {
            return None;
        }
    }
    if chunk.max_rep == 0 {
        return rows.levels(0, count);
    }
    let mut repeated = 0;
    runs(rep, 1, count, |level, repeat| {
        repeated += repeat;
        rows.levels(level, repeat)
    })?;
    (repeated == count).then_some(())
}

/// The bits of a level or index up to `max`.
fn bit_width(max: u32) -> u32 {
    u32::BITS - max.leading_zeros()
}

/// Decodes `count` values of the RLE / bit-packing hybrid encoding of width `bits` in `bytes`,
/// handing each run to `each` as `(value, repeat)` (a bit-packed value as a run of 1).
fn runs(
    mut bytes: &[u8],
    bits: u32,
    count: usize,
    mut each: impl FnMut(u32, usize) -> Option<()>,
) -> Option<()> {
    if bits > 32 {
        return None;
    }
    let mut left = count;
    while left > 0 {
        let header = uleb128(&mut bytes)?;
        if header & 1 == 1 {
            // bit-packed: `header >> 1` groups of 8 values, least significant bit first
            let values = usize::try_from(header >> 1).ok()?.checked_mul(8)?;
            let len = values.checked_mul(bits as usize)?.div_ceil(8);
            let packed = bytes.get(..len.min(bytes.len()))?;
            bytes = &bytes[packed.len()..];
            let mask = (1u64 << bits) - 1;
            for k in 0..values.min(left) {
                // the value's bits from an 8-byte window at its first byte (at most 7 + 32 bits)
                let at = k * bits as usize;
                let mut window = [0u8; 8];
                let tail = packed.get(at / 8..)?;
                let len = tail.len().min(8);
                window[..len].copy_from_slice(&tail[..len]);
                let value = (u64::from_le_bytes(window) >> (at % 8)) & mask;
                each(u32::try_from(value).ok()?, 1)?;
            }
            left -= values.min(left);
        } else {
            // a run: `header >> 1` repeats of one value of `ceil(bits / 8)` bytes
            let repeat = usize::try_from(header >> 1).ok()?;
            let width = (bits as usize).div_ceil(8);
            let mut value = [0u8; 4];
            value[..width].copy_from_slice(bytes.get(..width)?);
            bytes = &bytes[width..];
            if repeat == 0 {
                return None;
            }
            each(u32::from_le_bytes(value), repeat.min(left))?;
            left -= repeat.min(left);
        }
    }
    Some(())
}

/// An unsigned LEB128 integer from the front of `bytes`.
fn uleb128(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Appends `count` PLAIN values from `bytes`; `exact`: no more bytes than those.
fn plain(
    bytes: &[u8],
    count: usize,
    value: Value,
    cells: &mut Vec<f32>,
    exact: bool,
) -> Option<()> {
    let size = value.size();
    let values = bytes.get(..count.checked_mul(size)?)?;
    if exact && values.len() != bytes.len() {
        return None;
    }
    match value {
        // the common case: the values as they lie
        Value::F32 => cells.extend(values.chunks_exact(4).map(|b| Value::F32.f32(b))),
        _ => cells.extend(values.chunks_exact(size).map(|b| value.f32(b))),
    }
    Some(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
    use std::path::Path;

    use polars::prelude::*;

    use super::*;

    fn fixture(path: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join(path)
    }

    /// The matrix polars' frame of the whole file gives for `column`.
    fn polars_matrix(path: &Path, column: &str) -> Array2<f32> {
        let frame = ParquetReader::new(File::open(path).unwrap()).finish().unwrap();
        crate::columns::embedding_matrix("f", frame.column(column).unwrap()).unwrap()
    }

    /// Every page layout of `tests/pages/make.py` (pyarrow: data pages v1 and v2, dictionary
    /// pages with a fallback to PLAIN inside a chunk, BYTE_STREAM_SPLIT, six compressions, lists,
    /// large lists and fixed-size lists of float32 and float64, one to four row groups) and of
    /// `make_spark.py` (parquet-mr) is taken and read as polars reads it.
    #[test]
    fn every_page_layout_reads_as_polars_reads_it() {
        let names = [
            "dict_v1_snappy",
            "plain_v2_zstd",
            "split_v2_gzip",
            "dict_v2_none",
            "plain_v1_lz4",
            "dict_v1_brotli",
        ];
        for name in names {
            let path = fixture(&format!("pages/{name}.parquet"));
            let got = embedding(std::slice::from_ref(&path), "emb").expect(name);
            assert_eq!(got.dim(), (300, 5), "{name}");
            assert_eq!(got, polars_matrix(&path, "emb"), "{name}");
        }
        // parquet-mr (Spark): a required three-level list, BIT_PACKED named for absent levels
        let spark = fixture("pages/spark_mr.parquet");
        let got = embedding(std::slice::from_ref(&spark), "emb").expect("spark");
        assert_eq!(got, polars_matrix(&spark, "emb"));
        assert_eq!(got, polars_matrix(&fixture("pages/dict_v1_snappy.parquet"), "emb"));
        let frame = ParquetReader::new(File::open(&spark).unwrap()).finish().unwrap();
        let ab = ["a".to_string(), "b".to_string()];
        let got = columns(std::slice::from_ref(&spark), &ab).expect("spark columns");
        assert_eq!(got, crate::columns::feature_matrix("f", &frame, &ab).unwrap());
        // shards: the files' rows one after another
        let two = [fixture("pages/dict_v1_snappy.parquet"), fixture("pages/plain_v1_lz4.parquet")];
        let got = embedding(&two, "emb").unwrap();
        let one = polars_matrix(&two[0], "emb");
        let half = |k: usize| {
            got.slice_axis(ndarray::Axis(0), ndarray::Slice::from(k * 300..(k + 1) * 300))
        };
        assert_eq!(half(0), one);
        assert_eq!(half(1), one);
    }

    /// Rows handed out in uneven runs, with rows passed over between them, are the rows polars
    /// reads, across pages, dictionary pages and row groups.
    #[test]
    fn rows_read_in_runs_are_the_rows_polars_reads() {
        for name in ["dict_v1_snappy", "split_v2_gzip", "plain_v1_lz4"] {
            let path = fixture(&format!("pages/{name}.parquet"));
            let want = polars_matrix(&path, "emb");
            let mut pages = ColumnPages::list(std::slice::from_ref(&path), "emb").unwrap();
            let (mut at, mut cells) = (0, Vec::new());
            for (skip, take) in [(0, 1), (2, 13), (0, 64), (40, 77), (1, 0), (0, 100)] {
                pages.skip(skip).unwrap();
                at += skip;
                assert_eq!(pages.position(), at);
                cells.clear();
                pages.read(take, &mut cells).unwrap();
                let rows = want.slice_axis(ndarray::Axis(0), ndarray::Slice::from(at..at + take));
                assert_eq!(cells, rows.iter().copied().collect::<Vec<_>>(), "{name} at {at}");
                at += take;
            }
            assert_eq!(at, 298);
            assert!(pages.read(3, &mut cells).is_none(), "past the end");
        }
    }

    /// Numeric columns (nullable or required float32 and float64 without a missing value, v1
    /// and v2 pages, dictionary and PLAIN, several row groups; more columns than one block of
    /// them, in any order) read as polars' frame gives them; an integer, missing, null-holding or
    /// non-finite column is left to polars.
    #[test]
    fn numeric_columns_read_as_polars_reads_them() {
        let names: Vec<String> = (0..5).map(|j| format!("f{j}")).collect();
        let reversed: Vec<String> = names.iter().rev().cloned().collect();
        for name in ["columns_v1_snappy", "columns_v2_zstd", "columns_required"] {
            let path = fixture(&format!("pages/{name}.parquet"));
            let frame = ParquetReader::new(File::open(&path).unwrap()).finish().unwrap();
            for order in [&names, &reversed] {
                let got = columns(std::slice::from_ref(&path), order).expect(name);
                assert_eq!(got, crate::columns::feature_matrix("f", &frame, order).unwrap());
            }
            assert!(columns(std::slice::from_ref(&path), &["nope".into()]).is_none());
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wide.parquet");
        let wide: Vec<Column> = (0..40)
            .map(|j| {
                let values: Vec<f32> = (0..100).map(|i| (i * 40 + j) as f32 * 0.5 - 3.0).collect();
                Column::new(format!("c{j}").into(), values)
            })
            .collect();
        let mut frame = DataFrame::new_infer_height(wide).unwrap();
        ParquetWriter::new(File::create(&path).unwrap())
            .with_row_group_size(Some(30))
            .finish(&mut frame)
            .unwrap();
        let names: Vec<String> = (0..40).map(|j| format!("c{j}")).collect();
        let got = columns(std::slice::from_ref(&path), &names).unwrap();
        assert_eq!(got, crate::columns::feature_matrix("f", &frame, &names).unwrap());
        for (k, bad) in [None, Some(f32::NAN)].into_iter().enumerate() {
            let path = dir.path().join(format!("bad{k}.parquet"));
            let values: Vec<Option<f32>> =
                (0..20).map(|i| if i == 7 { bad } else { Some(i as f32) }).collect();
            let mut frame = df!("a" => values).unwrap();
            ParquetWriter::new(File::create(&path).unwrap()).finish(&mut frame).unwrap();
            assert!(columns(std::slice::from_ref(&path), &["a".into()]).is_none(), "{bad:?}");
        }
    }

    /// Integer columns of every width and sign (values near 2^53, 2^63 and 2^64 included) read
    /// as polars' frame gives them (through f64, as its cast does), at any offset; a boolean
    /// column and a list of integers are left to polars.
    #[test]
    fn integer_columns_read_as_polars_reads_them() {
        let names: Vec<String> = ["i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "label"]
            .map(String::from)
            .into();
        for name in ["ints_v1", "ints_v2"] {
            let path = fixture(&format!("pages/{name}.parquet"));
            let file = std::slice::from_ref(&path);
            let frame = ParquetReader::new(File::open(&path).unwrap()).finish().unwrap();
            let want = crate::columns::feature_matrix("f", &frame, &names).unwrap();
            assert_eq!(columns(file, &names).expect(name), want, "{name}");
            let footer = footers(file).unwrap();
            let rows = 100..231;
            let got = columns_in(file, &footer, &names, rows.clone()).unwrap();
            assert_eq!(got, want.slice_axis(ndarray::Axis(0), rows.into()), "{name}");
        }
        assert!(columns(&[fixture("lists/fixed_f32.parquet")], &["id".into()]).is_none());
        assert!(embedding(&[fixture("lists/list_int.parquet")], "emb").is_none());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bool.parquet");
        let mut frame = df!("b" => [true, false, true], "a" => [1.0f32, 2.0, 3.0]).unwrap();
        ParquetWriter::new(File::create(&path).unwrap()).finish(&mut frame).unwrap();
        assert!(columns(std::slice::from_ref(&path), &["b".into()]).is_none());
        assert!(columns(std::slice::from_ref(&path), &["a".into()]).is_some());
    }

    /// Any rows of numeric columns, the pages and row groups before them passed over unread,
    /// are those rows of polars' frame.
    #[test]
    fn rows_of_numeric_columns_are_the_frame_rows() {
        let names: Vec<String> = (0..5).map(|j| format!("f{j}")).collect();
        for name in ["columns_v1_snappy", "columns_v2_zstd", "columns_required"] {
            let path = fixture(&format!("pages/{name}.parquet"));
            let frame = ParquetReader::new(File::open(&path).unwrap()).finish().unwrap();
            let want = crate::columns::feature_matrix("f", &frame, &names).unwrap();
            let file = std::slice::from_ref(&path);
            let footer = footers(file).unwrap();
            for rows in [0..300, 0..1, 17..18, 100..260, 128..256, 255..257, 299..300, 5..133] {
                let got = columns_in(file, &footer, &names, rows.clone()).expect(name);
                let rows_of = want.slice_axis(ndarray::Axis(0), rows.clone().into());
                assert_eq!(got, rows_of, "{name} {rows:?}");
            }
            assert!(columns_in(file, &footer, &names, 290..301).is_none());
        }
    }

    /// A file polars writes (its own page layout, several row groups) reads as polars reads it.
    #[test]
    fn a_polars_file_reads_as_polars_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.parquet");
        let lists: Vec<Series> = (0..100)
            .map(|i| {
                Series::new("".into(), (0..4).map(|j| (i * 4 + j) as f32 / 3.0).collect::<Vec<_>>())
            })
            .collect();
        let mut frame =
            df!("emb" => lists, "label" => (0..100).map(|i| i % 2).collect::<Vec<i64>>()).unwrap();
        ParquetWriter::new(File::create(&path).unwrap())
            .with_row_group_size(Some(30))
            .finish(&mut frame)
            .unwrap();
        let got = embedding(std::slice::from_ref(&path), "emb").unwrap();
        assert_eq!(got, polars_matrix(&path, "emb"));
    }

    /// What the reader does not take is left to polars, which names the error: a missing list or
    /// value, lists of two lengths, half-precision or integer lists, a column that is no list, a
    /// value that is not finite or beyond f32's range.
    #[test]
    fn what_it_does_not_take_is_left_to_polars() {
        for file in ["null_row", "null_value", "ragged", "list_f16", "list_int"] {
            let path = fixture(&format!("lists/{file}.parquet"));
            assert!(embedding(&[path], "emb").is_none(), "{file}");
        }
        assert!(embedding(&[fixture("lists/fixed_f32.parquet")], "other").is_none());
        assert!(embedding(&[fixture("lists/fixed_f32.parquet")], "emb").is_some());
        let dir = tempfile::tempdir().unwrap();
        for (k, bad) in [f64::NAN, f64::INFINITY, 1e39].into_iter().enumerate() {
            let path = dir.path().join(format!("bad{k}.parquet"));
            let lists: Vec<Series> = (0..20)
                .map(|i| {
                    let v = if i == 13 { bad } else { f64::from(i) };
                    Series::new("".into(), vec![0.5, v])
                })
                .collect();
            let mut frame = df!("emb" => lists).unwrap();
            ParquetWriter::new(File::create(&path).unwrap()).finish(&mut frame).unwrap();
            assert!(embedding(std::slice::from_ref(&path), "emb").is_none(), "{bad}");
            let clean = dir.path().join(format!("clean{k}.parquet"));
            let mut frame = frame.slice(0, 13);
            ParquetWriter::new(File::create(&clean).unwrap()).finish(&mut frame).unwrap();
            assert_eq!(embedding(std::slice::from_ref(&clean), "emb").unwrap().nrows(), 13);
        }
    }

    /// A damaged file is never a panic: 400 bytes of each of three fixtures (a seeded sample of
    /// them and of their new values), changed one at a time, give a matrix or `None`.
    #[test]
    fn damaged_files_give_none_or_a_matrix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("damaged.parquet");
        let names: Vec<String> = (0..5).map(|j| format!("f{j}")).collect();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for name in ["dict_v1_snappy", "split_v2_gzip", "columns_v1_snappy"] {
            let bytes = std::fs::read(fixture(&format!("pages/{name}.parquet"))).unwrap();
            for _ in 0..400 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let at = (state >> 8) as usize % bytes.len();
                let mut damaged = bytes.clone();
                damaged[at] ^= (state % 255 + 1) as u8;
                std::fs::write(&path, &damaged).unwrap();
                let file = std::slice::from_ref(&path);
                match name {
                    "columns_v1_snappy" => drop(columns(file, &names)),
                    _ => drop(embedding(file, "emb")),
                }
            }
        }
    }

    /// The RLE / bit-packing hybrid: a run, then two bit-packed groups of width 3.
    #[test]
    fn hybrid_runs_decode_as_the_format_lays_them_out() {
        // run: header 5 << 1 = 10 (five repeats), value 4 (one byte for width 3)
        // bit-packed: header (2 << 1) | 1 = 5, values 0..8 then 7, 6, ..., 0, 3 bits each
        let values: Vec<u32> = (0..8).chain((0..8).rev()).collect();
        let mut bits = Vec::new();
        for (k, v) in values.iter().enumerate() {
            for b in 0..3 {
                let at = k * 3 + b;
                if at / 8 == bits.len() {
                    bits.push(0u8);
                }
                bits[at / 8] |= (((v >> b) & 1) as u8) << (at % 8);
            }
        }
        let mut bytes = vec![10, 4, 5];
        bytes.extend(&bits);
        let mut got = Vec::new();
        runs(&bytes, 3, 5 + 14, |v, r| {
            got.extend(std::iter::repeat_n(v, r));
            Some(())
        })
        .unwrap();
        let mut want = vec![4; 5];
        want.extend(&values[..14]);
        assert_eq!(got, want);
        assert_eq!(bit_width(0), 0);
        assert_eq!(bit_width(1), 1);
        assert_eq!(bit_width(3), 2);
        assert_eq!(bit_width(4), 3);
    }
}
