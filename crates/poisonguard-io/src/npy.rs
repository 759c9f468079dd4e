//! NumPy `.npy` files (format versions 1.0, 2.0 and 3.0): a 2-D float array is a feature
//! matrix (`float16`, `float32` or `float64`, either byte order, C order), a 1-D integer, bool or
//! unicode array a column (labels beside the features).
//!
//! The array is streamed from the file into the matrix in chunks, so a read holds the matrix and
//! one chunk (1 MiB), never the file and the matrix together. (A memory map would need `unsafe`,
//! which the workspace forbids; the streamed read costs one pass over the bytes.)

use std::fs::File;
use std::io::{BufReader, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};

use ndarray::Array2;
use poisonguard_core::LabelValue;

use crate::error::{Error, Result};

/// Bytes converted per read.
const CHUNK: usize = 1 << 20;

/// The element type of an array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// IEEE float of this many bytes (2, 4, 8).
    Float(usize),
    /// Signed integer of this many bytes.
    Int(usize),
    /// Unsigned integer of this many bytes.
    Uint(usize),
    /// `bool`, one byte.
    Bool,
    /// Fixed-width UTF-32 string of this many characters.
    Unicode(usize),
}

impl Kind {
    fn size(self) -> usize {
        match self {
            Kind::Float(b) | Kind::Int(b) | Kind::Uint(b) => b,
            Kind::Bool => 1,
            Kind::Unicode(chars) => 4 * chars,
        }
    }
}

/// A parsed header: element type, byte order and shape.
#[derive(Debug)]
struct Header {
    kind: Kind,
    big_endian: bool,
    shape: Vec<usize>,
}

fn bad(path: &Path, message: impl Into<String>) -> Error {
    Error::Parse { path: path.display().to_string(), format: "NumPy .npy", message: message.into() }
}

fn open(path: &Path) -> Result<BufReader<File>> {
    crate::files::check_input_file(path)?;
    let file =
        File::open(path).map_err(|e| Error::Io { path: path.display().to_string(), source: e })?;
    Ok(BufReader::with_capacity(CHUNK, file))
}

/// Reads and checks the magic string, version and header dictionary.
fn read_header(path: &Path, r: &mut impl Read) -> Result<Header> {
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic).map_err(|_| bad(path, "shorter than a .npy header"))?;
    if &magic[..6] != b"\x93NUMPY" {
        return Err(bad(path, "no .npy magic string (not a NumPy array file)"));
    }
    let len = match magic[6] {
        1 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b).map_err(|_| bad(path, "truncated header"))?;
            usize::from(u16::from_le_bytes(b))
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            r.read_exact(&mut b).map_err(|_| bad(path, "truncated header"))?;
            u32::from_le_bytes(b) as usize
        }
        v => return Err(bad(path, format!("format version {v}.{} is not 1, 2 or 3", magic[7]))),
    };
    if len > 1 << 20 {
        return Err(bad(path, format!("a header of {len} bytes")));
    }
    let mut text = vec![0u8; len];
    r.read_exact(&mut text).map_err(|_| bad(path, "truncated header"))?;
    let text = String::from_utf8_lossy(&text);
    parse_header(&text).map_err(|m| bad(path, m))
}

/// The value after `'key':` in the header dictionary, up to the next top-level comma or brace.
fn value_of<'a>(text: &'a str, key: &str) -> std::result::Result<&'a str, String> {
    let at =
        text.find(&format!("'{key}'")).ok_or_else(|| format!("the header has no {key:?} entry"))?;
    let rest = text[at + key.len() + 2..].trim_start();
    let rest = rest.strip_prefix(':').ok_or("a malformed header")?.trim_start();
    let end =
        if rest.starts_with('(') { rest.find(')').map(|e| e + 1) } else { rest.find([',', '}']) }
            .ok_or("a malformed header")?;
    Ok(rest[..end].trim())
}

fn parse_header(text: &str) -> std::result::Result<Header, String> {
    let descr = value_of(text, "descr")?.trim_matches(|c| c == '\'' || c == '"');
    if value_of(text, "fortran_order")? != "False" {
        return Err("the array is in Fortran (column-major) order; save it in C order \
                    (numpy.ascontiguousarray) to read it here"
            .into());
    }
    let shape: Vec<usize> = value_of(text, "shape")?
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse::<usize>().map_err(|_| format!("shape entry {s:?}")))
        .collect::<std::result::Result<_, _>>()?;
    let mut chars = descr.chars();
    let order = chars.next().ok_or("an empty dtype")?;
    let big_endian = match order {
        '<' | '|' | '=' => false,
        '>' => true,
        _ => return Err(format!("dtype {descr:?} (structured or object arrays are not read)")),
    };
    let code = chars.next().ok_or("an empty dtype")?;
    let width: usize = chars.as_str().parse().map_err(|_| format!("dtype {descr:?}"))?;
    let kind = match (code, width) {
        ('f', 2 | 4 | 8) => Kind::Float(width),
        ('i', 1 | 2 | 4 | 8) => Kind::Int(width),
        ('u', 1 | 2 | 4 | 8) => Kind::Uint(width),
        ('b', 1) => Kind::Bool,
        ('U', w) if w > 0 => Kind::Unicode(w),
        _ => return Err(format!("dtype {descr:?} is not a float, integer, bool or unicode array")),
    };
    Ok(Header { kind, big_endian, shape })
}

/// IEEE half precision to f32 (exact: every f16 is an f32).
fn f16_to_f32(bits: u16) -> f32 {
    let sign = u32::from(bits >> 15) << 31;
    let exp = u32::from((bits >> 10) & 0x1f);
    let frac = u32::from(bits & 0x3ff);
    let magnitude = match (exp, frac) {
        (0, 0) => 0,
        (0, f) => {
            // subnormal: f * 2^-24
            let v = f as f32 * 2f32.powi(-24);
            return if sign != 0 { -v } else { v };
        }
        (0x1f, 0) => 0x7f80_0000,
        (0x1f, f) => 0x7f80_0000 | (f << 13),
        (e, f) => ((e + 127 - 15) << 23) | (f << 13),
    };
    f32::from_bits(sign | magnitude)
}

/// A float element as f64 (the file's exact value).
#[inline]
fn float_of(b: &[u8], width: usize, big_endian: bool) -> f64 {
    match (width, big_endian) {
        (2, false) => f64::from(f16_to_f32(u16::from_le_bytes([b[0], b[1]]))),
        (2, true) => f64::from(f16_to_f32(u16::from_be_bytes([b[0], b[1]]))),
        (4, false) => f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        (4, true) => f64::from(f32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        (_, false) => f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
        (_, true) => f64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
    }
}

/// An integer element (`size` bytes, signed or not) as i128, exactly.
fn int_of(b: &[u8], size: usize, signed: bool, big_endian: bool) -> i128 {
    let mut le = [0u8; 8];
    for (t, slot) in le.iter_mut().enumerate().take(size) {
        *slot = if big_endian { b[size - 1 - t] } else { b[t] };
    }
    if signed && le[size - 1] & 0x80 != 0 {
        le[size..].fill(0xff);
    }
    if signed { i128::from(i64::from_le_bytes(le)) } else { i128::from(u64::from_le_bytes(le)) }
}

/// Streams `count` elements of `size` bytes to `each(index, bytes)`.
fn stream(
    path: &Path,
    r: &mut impl Read,
    count: usize,
    size: usize,
    mut each: impl FnMut(usize, &[u8]) -> Result<()>,
) -> Result<()> {
    let per_chunk = (CHUNK / size).max(1);
    let mut buf = vec![0u8; per_chunk * size];
    let mut done = 0;
    while done < count {
        let k = per_chunk.min(count - done);
        r.read_exact(&mut buf[..k * size]).map_err(|_| {
            bad(path, format!("the file ends after {done} of {count} values (truncated)"))
        })?;
        for (t, element) in buf[..k * size].chunks_exact(size).enumerate() {
            each(done + t, element)?;
        }
        done += k;
    }
    Ok(())
}

/// The rows and columns of a 2-D float array, and its element width.
fn matrix_shape(path: &Path) -> Result<(usize, usize)> {
    let h = read_header(path, &mut open(path)?)?;
    let Kind::Float(_) = h.kind else {
        return Err(bad(path, "the feature array must hold floats (float16, float32 or float64)"));
    };
    match h.shape.as_slice() {
        [n, d] => Ok((*n, *d)),
        [_] => Err(bad(
            path,
            "a 1-D array holds no feature matrix (one row per sample, one column per feature)",
        )),
        s => Err(bad(path, format!("a {}-D array; the features must be 2-D", s.len()))),
    }
}

/// Reads 2-D float arrays (one, or the shards of one table, stacked in the order given) as one
/// f32 feature matrix, allocated once. Values beyond f32's range, NaN and infinities are errors
/// naming the file, row and column, as for CSV and Parquet.
pub(crate) fn read_matrix(paths: &[PathBuf]) -> Result<Array2<f32>> {
    let shapes = shapes(paths)?;
    let d = shapes[0].1;
    let n: usize = shapes.iter().map(|s| s.0).sum();
    let shown = paths[0].display().to_string();
    if n == 0 {
        return Err(Error::NoRows { path: shown });
    }
    if d == 0 {
        return Err(Error::NoFeatures { path: shown, available: String::new() });
    }
    let mut x = Array2::<f32>::zeros((n, d));
    let cells = x.as_slice_mut().expect("a fresh array is contiguous");
    let mut start = 0;
    for (path, &(rows, _)) in paths.iter().zip(&shapes) {
        read_rows(path, 0..rows, d, &mut cells[start * d..(start + rows) * d])?;
        start += rows;
    }
    Ok(x)
}

/// The shape of every array of `paths` (2-D floats, all of one width), checked.
pub(crate) fn shapes(paths: &[PathBuf]) -> Result<Vec<(usize, usize)>> {
    let mut shapes = Vec::with_capacity(paths.len());
    for path in paths {
        shapes.push(matrix_shape(path)?);
    }
    let d = shapes[0].1;
    if let Some(k) = shapes.iter().position(|s| s.1 != d) {
        return Err(bad(
            &paths[k],
            format!("{} columns where {} has {d}", shapes[k].1, paths[0].display()),
        ));
    }
    Ok(shapes)
}

/// Reads rows `rows` of the 2-D float array at `path` (`d` columns) into `out` (row-major,
/// `rows.len() x d`), seeking past the rows before. A value beyond f32's range, NaN or an
/// infinity is an error naming the file, its row in the file and the column.
pub(crate) fn read_rows(path: &Path, rows: Range<usize>, d: usize, out: &mut [f32]) -> Result<()> {
    let shown = path.display().to_string();
    let mut r = open(path)?;
    let h = read_header(path, &mut r)?;
    let Kind::Float(width) = h.kind else {
        return Err(bad(path, "the file changed while it was read"));
    };
    if h.shape.len() != 2 || h.shape[1] != d || h.shape[0] < rows.end {
        return Err(bad(path, "the file changed while it was read"));
    }
    let skip = i64::try_from(rows.start * d * width).map_err(|_| bad(path, "too large"))?;
    r.seek_relative(skip).map_err(|e| Error::Io { path: shown.clone(), source: e })?;
    let first = rows.start;
    stream(path, &mut r, rows.len() * d, width, |k, bytes| {
        let v = float_of(bytes, width, h.big_endian);
        if v.is_finite() && v.abs() <= f64::from(f32::MAX) {
            out[k] = v as f32;
            return Ok(());
        }
        let (path, column, row) = (shown.clone(), format!("#{}", k % d), first + k / d);
        Err(if v.is_finite() {
            Error::OutOfF32Range { path, column, row, value: v }
        } else {
            Error::NonFinite { path, column, row, value: v }
        })
    })
}

/// Reads a 1-D integer, bool or unicode array as label values.
pub(crate) fn read_labels(path: &Path) -> Result<Vec<LabelValue>> {
    let mut r = open(path)?;
    let h = read_header(path, &mut r)?;
    let [n] = h.shape.as_slice() else {
        return Err(bad(path, "labels must be a 1-D array, one per row"));
    };
    let size = h.kind.size();
    let mut out = Vec::with_capacity(*n);
    stream(path, &mut r, *n, size, |row, bytes| {
        let value = match h.kind {
            Kind::Int(_) | Kind::Uint(_) => {
                let v = int_of(bytes, size, matches!(h.kind, Kind::Int(_)), h.big_endian);
                LabelValue::Int(i64::try_from(v).map_err(|_| Error::LabelOverflow {
                    path: path.display().to_string(),
                    column: "label".into(),
                    row,
                    value: v.to_string(),
                })?)
            }
            Kind::Bool => LabelValue::Int(i64::from(bytes[0] != 0)),
            Kind::Unicode(_) => {
                let text: String = bytes
                    .chunks_exact(4)
                    .map(|c| {
                        let u = if h.big_endian {
                            u32::from_be_bytes([c[0], c[1], c[2], c[3]])
                        } else {
                            u32::from_le_bytes([c[0], c[1], c[2], c[3]])
                        };
                        char::from_u32(u).unwrap_or(char::REPLACEMENT_CHARACTER)
                    })
                    .take_while(|&c| c != '\0')
                    .collect();
                LabelValue::Str(text.trim().to_string())
            }
            Kind::Float(_) => {
                return Err(Error::LabelType {
                    path: path.display().to_string(),
                    column: "label".into(),
                    dtype: "float".into(),
                });
            }
        };
        out.push(value);
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse() {
        let h =
            parse_header("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }").unwrap();
        assert_eq!((h.kind, h.big_endian, h.shape), (Kind::Float(4), false, vec![3, 2]));
        let h = parse_header("{'descr': '>i8', 'fortran_order': False, 'shape': (5,), }").unwrap();
        assert_eq!((h.kind, h.big_endian, h.shape), (Kind::Int(8), true, vec![5]));
        let h = parse_header("{'descr': '<U7', 'fortran_order': False, 'shape': (5,), }").unwrap();
        assert_eq!(h.kind, Kind::Unicode(7));
        assert!(
            parse_header("{'descr': '<f4', 'fortran_order': True, 'shape': (3, 2), }").is_err()
        );
        assert!(parse_header("{'descr': '<c8', 'fortran_order': False, 'shape': (3,), }").is_err());
        assert!(
            parse_header("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,), }")
                .is_err()
        );
    }

    #[test]
    fn integers_read_in_both_byte_orders() {
        assert_eq!(int_of(&(-3i16).to_le_bytes(), 2, true, false), -3);
        assert_eq!(int_of(&(-3i32).to_be_bytes(), 4, true, true), -3);
        assert_eq!(int_of(&u64::MAX.to_le_bytes(), 8, false, false), i128::from(u64::MAX));
        assert_eq!(int_of(&[200u8], 1, false, false), 200);
        assert_eq!(int_of(&[200u8], 1, true, false), -56);
    }

    #[test]
    fn half_precision_converts_exactly() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x8001), -(2f32.powi(-24)));
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert!(f16_to_f32(0x7c00).is_infinite());
        assert!(f16_to_f32(0x7e00).is_nan());
    }
}
