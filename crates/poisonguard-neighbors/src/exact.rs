//! Exact kNN by blocked matrix products.

use std::sync::atomic::{AtomicUsize, Ordering};

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par};
use ndarray::{Array2, ArrayView2};

use crate::Progress;
use crate::error::{Error, Result};
use poisonguard_core::{KnnGraph, Standardizer};
use std::borrow::Cow;

/// Query rows per task (one GEMM panel of `REF_BLOCK x QUERY_BLOCK` f32 = 2 MiB).
const QUERY_BLOCK: usize = 256;
/// Reference rows per GEMM.
const REF_BLOCK: usize = 2048;
/// Reference rows tested at once in the scan of one query's products.
const SCAN_CHUNK: usize = 32;
/// Extra candidates kept from the GEMM distances and re-ranked with exact differences, so that
/// rounding in `|a|^2 + |b|^2 - 2ab` cannot change which neighbours are returned (up to ties
/// closer than f32 resolution, which are broken by index).
pub(crate) const RERANK_EXTRA: usize = 8;

/// A bounded list of the `cap` smallest `(distance^2, index)` pairs, sorted ascending.
pub(crate) struct TopK<T> {
    cap: usize,
    pub(crate) items: Vec<(T, u32)>,
}

impl<T: Copy + PartialOrd> TopK<T> {
    pub(crate) fn new(cap: usize) -> Self {
        Self { cap, items: Vec::with_capacity(cap + 1) }
    }

    /// The largest kept distance, or `None` while the list is not full.
    #[inline]
    pub(crate) fn worst(&self) -> Option<T> {
        if self.items.len() < self.cap { None } else { Some(self.items[self.cap - 1].0) }
    }

    /// Whether `d2` could enter the list (ignoring the index tie-break).
    #[inline]
    pub(crate) fn admits(&self, d2: T) -> bool {
        self.worst().is_none_or(|w| d2 <= w)
    }

    #[inline]
    pub(crate) fn push(&mut self, d2: T, idx: u32) {
        if self.items.len() == self.cap {
            let (wd, wi) = self.items[self.cap - 1];
            if d2 > wd || (d2 == wd && idx > wi) {
                return;
            }
        }
        let pos = self.items.partition_point(|&(d, i)| d < d2 || (d == d2 && i < idx));
        self.items.insert(pos, (d2, idx));
        self.items.truncate(self.cap);
    }
}

/// Exact squared Euclidean distance, accumulated in f64.
#[inline]
pub(crate) fn exact_d2(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let t = f64::from(x) - f64::from(y);
            t * t
        })
        .sum()
}

/// Largest centred magnitude times sqrt(d) that the search takes as it is: its square, 2^100, is
/// far inside f32's range (2^128), with room for the GEMM's sums.
const MAX_CENTRED_NORM: f64 = 1_125_899_906_842_624.0; // 2^50

/// A power of two `s` such that every centred row, times `s`, has a norm of at most 2^50:
/// squared norms and the products `ab` then stay finite in f32, whatever the input's range (a
/// value of 1e20 squared overflows f32). `range` holds each column's smallest and largest value
/// over every row searched; the largest `|v - centre|` of a column is at one of them, so no pass
/// over the rows is needed. Multiplying by a power of two is exact, so the neighbour order is
/// that of the unscaled rows; distances are scaled back by `1 / s`.
fn range_scale(range: &[(f32, f32)], centre: &[f64]) -> f32 {
    let max = range
        .iter()
        .zip(centre)
        .map(|(&(lo, hi), &m)| (f64::from(hi) - m).abs().max((f64::from(lo) - m).abs()))
        .fold(0.0f64, f64::max);
    let norm = max * (range.len().max(1) as f64).sqrt();
    if norm.is_finite() && norm > MAX_CENTRED_NORM {
        let shift = (norm / MAX_CENTRED_NORM).log2().ceil() as i32;
        2f32.powi(-shift)
    } else {
        1.0
    }
}

/// The centre and scale the search uses for rows `xs` (the reference first): column means and
/// scale 1 for inputs of moderate range (every ordinary table); when one value is so large that
/// the rows must be scaled down ([`range_scale`]), column medians instead of means, so that the
/// bulk of the rows stays near 0 and keeps its f32 precision rather than sitting at a mean
/// dragged away by the extreme value. The means and the column ranges come from one pass.
pub(crate) fn centre_and_scale(xs: &[ArrayView2<'_, f32>]) -> (Vec<f64>, f32) {
    centre_and_scale_of(xs, None)
}

/// The value the search reads at column `j` for an input value `v`: its z-score (rounded to
/// f32, as [`Standardizer::transform`] gives it) when the rows are searched standardized.
#[inline]
fn input(z: Option<&Standardizer>, j: usize, v: f32) -> f32 {
    z.map_or(v, |s| s.z(j, v) as f32)
}

/// [`centre_and_scale`] of the rows `xs` read through [`input`]: of their z-scores under `z`
/// when given (the same centre and scale as for `z.transform(xs[0])`).
pub(crate) fn centre_and_scale_of(
    xs: &[ArrayView2<'_, f32>],
    z: Option<&Standardizer>,
) -> (Vec<f64>, f32) {
    let x = xs[0];
    let d = x.ncols();
    let mut mean = vec![0.0f64; d];
    let mut range = vec![(f32::INFINITY, f32::NEG_INFINITY); d];
    for row in x.rows() {
        for (j, ((m, r), &v)) in mean.iter_mut().zip(range.iter_mut()).zip(row).enumerate() {
            let v = input(z, j, v);
            *m += f64::from(v);
            *r = (r.0.min(v), r.1.max(v));
        }
    }
    mean.iter_mut().for_each(|m| *m /= x.nrows().max(1) as f64);
    for other in &xs[1..] {
        for row in other.rows() {
            for (r, &v) in range.iter_mut().zip(row) {
                *r = (r.0.min(v), r.1.max(v));
            }
        }
    }
    let scale = range_scale(&range, &mean);
    if scale == 1.0 {
        return (mean, scale);
    }
    let median: Vec<f64> = (0..d)
        .map(|j| {
            let mut col: Vec<f64> =
                x.column(j).iter().map(|&v| f64::from(input(z, j, v))).collect();
            let mid = col.len() / 2;
            col.select_nth_unstable_by(mid, f64::total_cmp);
            col[mid]
        })
        .collect();
    let scale = range_scale(&range, &median);
    (median, scale)
}

/// The rows a search starts from: borrowed (the exact search copies them once into the centred
/// form, the index reads them through [`Mapped`]), owned (centred in place, no copy: for a matrix
/// made only for the search), or borrowed and searched by their z-scores under a standardizer
/// (the search of `Owned(z.transform(x))`; the index reads them without that matrix, the same
/// up to f32 rounding).
pub(crate) enum Rows<'a> {
    /// Rows the caller keeps.
    View(ArrayView2<'a, f32>),
    /// Rows the search may overwrite.
    Owned(Array2<f32>),
    /// Rows the caller keeps, searched standardized.
    Standardized(ArrayView2<'a, f32>, &'a Standardizer),
}

impl Rows<'_> {
    /// The number of rows and features.
    pub(crate) fn dim(&self) -> (usize, usize) {
        match self {
            Rows::View(v) | Rows::Standardized(v, _) => v.dim(),
            Rows::Owned(a) => a.dim(),
        }
    }

    /// Rows as the exact search reads them: standardized rows materialized (the exact search
    /// is for tables small enough that one more copy does not matter), the others as they are.
    fn materialized(self) -> Self {
        match self {
            Rows::Standardized(x, z) => Rows::Owned(z.transform(x)),
            rows => rows,
        }
    }
}

/// Rows of a matrix, centred by given column means, with their squared norms.
pub(crate) struct Centred {
    data: Vec<f32>,
    norms: Vec<f32>,
    pub(crate) n: usize,
    pub(crate) d: usize,
}

impl Centred {
    /// The rows of `x` minus `mean`, times `scale` (see [`range_scale`]).
    pub(crate) fn new(x: ArrayView2<'_, f32>, mean: &[f64], scale: f32) -> Self {
        let (n, d) = (x.nrows(), x.ncols());
        let s = f64::from(scale);
        let mut data = Vec::with_capacity(n * d);
        for row in x.rows() {
            data.extend(row.iter().zip(mean).map(|(&v, &m)| ((f64::from(v) - m) * s) as f32));
        }
        let norms = data
            .chunks_exact(d.max(1))
            .map(|r| r.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() as f32)
            .collect();
        Self { data, norms, n, d }
    }

    /// The rows minus `mean`, times `scale`: a copy of borrowed rows, owned rows in place (the
    /// same arithmetic either way, so both give the same search).
    pub(crate) fn from_rows_of(rows: Rows<'_>, mean: &[f64], scale: f32) -> Self {
        match rows.materialized() {
            Rows::View(x) | Rows::Standardized(x, _) => Self::new(x, mean, scale),
            Rows::Owned(x) => {
                let d = x.ncols();
                let x = if x.is_standard_layout() { x } else { x.as_standard_layout().to_owned() };
                let (mut data, _) = x.into_raw_vec_and_offset();
                let s = f64::from(scale);
                for row in data.chunks_exact_mut(d.max(1)) {
                    for (v, &m) in row.iter_mut().zip(mean) {
                        *v = ((f64::from(*v) - m) * s) as f32;
                    }
                }
                Self::from_rows(data, d)
            }
        }
    }

    /// Rows already centred, row-major `n x d`.
    pub(crate) fn from_rows(data: Vec<f32>, d: usize) -> Self {
        let n = data.len().checked_div(d).unwrap_or(0);
        let norms = data
            .chunks_exact(d.max(1))
            .map(|r| r.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() as f32)
            .collect();
        Self { data, norms, n, d }
    }

    /// A copy of the rows `idx`, in that order.
    pub(crate) fn gather(&self, idx: &[u32]) -> Self {
        let mut data = Vec::with_capacity(idx.len() * self.d);
        let mut norms = Vec::with_capacity(idx.len());
        for &i in idx {
            data.extend_from_slice(self.row(i as usize));
            norms.push(self.norms[i as usize]);
        }
        Self { data, norms, n: idx.len(), d: self.d }
    }

    pub(crate) fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.d..(i + 1) * self.d]
    }

    pub(crate) fn norm(&self, i: usize) -> f32 {
        self.norms[i]
    }

    /// The largest squared norm of a row (0 without rows).
    pub(crate) fn max_norm(&self) -> f64 {
        self.norms.iter().fold(0.0f64, |m, &v| m.max(f64::from(v)))
    }

    pub(crate) fn mat(&self) -> MatRef<'_, f32> {
        MatRef::from_row_major_slice(&self.data, self.n, self.d)
    }
}

/// Rows a search reads, centred (and scaled): held in memory ([`Centred`]), or computed from the
/// caller's rows as they are read ([`Mapped`], the same values up to f32 rounding).
pub(crate) trait Source: Sync {
    /// Number of rows.
    fn n(&self) -> usize;
    /// Number of features.
    fn d(&self) -> usize;
    /// The squared norm of row `i`.
    fn norm(&self, i: usize) -> f32;
    /// The largest squared norm of a row (0 without rows).
    fn max_norm(&self) -> f64;
    /// Row `i`.
    fn row(&self, i: usize) -> Cow<'_, [f32]>;
    /// Appends row `i` to `out`.
    fn append_row(&self, i: usize, out: &mut Vec<f32>);
    /// The exact squared distances ([`exact_d2`]) from `q` to the rows `ids`, with their index.
    fn distances(&self, q: &[f32], ids: impl Iterator<Item = u32>) -> Vec<(f64, u32)>;

    /// A copy of the rows `idx`, in that order.
    fn gather(&self, idx: &[u32]) -> Centred {
        let d = self.d();
        let mut data = Vec::with_capacity(idx.len() * d);
        let mut norms = Vec::with_capacity(idx.len());
        for &i in idx {
            self.append_row(i as usize, &mut data);
            norms.push(self.norm(i as usize));
        }
        Centred { data, norms, n: idx.len(), d }
    }
}

impl Source for Centred {
    fn n(&self) -> usize {
        self.n
    }

    fn d(&self) -> usize {
        self.d
    }

    fn norm(&self, i: usize) -> f32 {
        self.norms[i]
    }

    fn max_norm(&self) -> f64 {
        Centred::max_norm(self)
    }

    fn row(&self, i: usize) -> Cow<'_, [f32]> {
        Cow::Borrowed(Centred::row(self, i))
    }

    fn append_row(&self, i: usize, out: &mut Vec<f32>) {
        out.extend_from_slice(Centred::row(self, i));
    }

    fn distances(&self, q: &[f32], ids: impl Iterator<Item = u32>) -> Vec<(f64, u32)> {
        ids.map(|j| (exact_d2(q, Centred::row(self, j as usize)), j)).collect()
    }

    fn gather(&self, idx: &[u32]) -> Centred {
        Centred::gather(self, idx)
    }
}

/// The caller's rows, centred and scaled (after standardizing them, with a standardizer) as
/// they are read: each value `v` of column `j` is read as `(v - shift_j) * mul_j`, without
/// holding the centred rows; only the squared norms are kept (one f32 per row). The index reads
/// a cell's rows once per batch of queries, so this map runs often: it is computed in f32
/// (a subtraction and a multiplication, vectorized), which differs from [`Centred`]'s f64 map
/// by rounding only. The f32 subtraction is exact or correctly rounded; the shift's own
/// rounding to f32 moves every row of a column by the same amount, which no distance sees.
/// Rows so extreme that the search scales them down ([`range_scale`]) are mapped in f64, as
/// [`Centred`] does, where the f32 difference could overflow.
pub(crate) struct Mapped<'a> {
    x: ArrayView2<'a, f32>,
    map: ColumnMap,
    norms: Vec<f32>,
}

/// `(v - shift_j) * mul_j` per column: in f32, or in f64 for extreme ranges.
enum ColumnMap {
    F32 { shift: Vec<f32>, mul: Vec<f32> },
    F64 { shift: Vec<f64>, mul: Vec<f64> },
}

impl<'a> Mapped<'a> {
    /// The rows of `x` (their z-scores under `z`, when given) minus `centre`, times `scale`.
    pub(crate) fn new(
        x: ArrayView2<'a, f32>,
        z: Option<&Standardizer>,
        centre: Vec<f64>,
        scale: f32,
    ) -> Self {
        let s = f64::from(scale);
        let (shift, mul): (Vec<f64>, Vec<f64>) = match z {
            None => (centre, vec![s; x.ncols()]),
            // (((v - mean) * inv) - centre) * s = (v - (mean + centre / inv)) * (inv * s)
            Some(z) => centre
                .iter()
                .enumerate()
                .map(|(j, &c)| match z.column(j) {
                    (mean, 0.0) => (mean, 0.0),
                    (mean, inv) => (mean + c / inv, inv * s),
                })
                .unzip(),
        };
        let map = if scale == 1.0 {
            let narrow = |v: Vec<f64>| v.into_iter().map(|a| a as f32).collect();
            ColumnMap::F32 { shift: narrow(shift), mul: narrow(mul) }
        } else {
            ColumnMap::F64 { shift, mul }
        };
        let mut mapped = Self { x, map, norms: Vec::new() };
        let norm = |i: usize| {
            let mut row = vec![0.0f32; x.ncols()];
            mapped.row_into(i, &mut row);
            row.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() as f32
        };
        let norms = crate::map_range(x.nrows(), norm);
        mapped.norms = norms;
        mapped
    }

    /// Row `i` into `out` (`d` values).
    #[inline]
    fn row_into(&self, i: usize, out: &mut [f32]) {
        let row = self.x.row(i);
        let contiguous = row.as_slice();
        match (&self.map, contiguous) {
            // contiguous rows: loops over slices, which the compiler vectorizes
            (ColumnMap::F32 { shift, mul }, Some(r)) => {
                for ((o, &v), (&c, &a)) in out.iter_mut().zip(r).zip(shift.iter().zip(mul)) {
                    *o = (v - c) * a;
                }
            }
            (ColumnMap::F32 { shift, mul }, None) => {
                for ((o, &v), (&c, &a)) in out.iter_mut().zip(&row).zip(shift.iter().zip(mul)) {
                    *o = (v - c) * a;
                }
            }
            (ColumnMap::F64 { shift, mul }, _) => {
                for ((o, &v), (&c, &a)) in out.iter_mut().zip(&row).zip(shift.iter().zip(mul)) {
                    *o = ((f64::from(v) - c) * a) as f32;
                }
            }
        }
    }
}

impl Source for Mapped<'_> {
    fn n(&self) -> usize {
        self.x.nrows()
    }

    fn d(&self) -> usize {
        self.x.ncols()
    }

    fn norm(&self, i: usize) -> f32 {
        self.norms[i]
    }

    fn max_norm(&self) -> f64 {
        self.norms.iter().fold(0.0f64, |m, &v| m.max(f64::from(v)))
    }

    fn row(&self, i: usize) -> Cow<'_, [f32]> {
        let mut out = vec![0.0; self.x.ncols()];
        self.row_into(i, &mut out);
        Cow::Owned(out)
    }

    fn append_row(&self, i: usize, out: &mut Vec<f32>) {
        let start = out.len();
        out.resize(start + self.x.ncols(), 0.0);
        self.row_into(i, &mut out[start..]);
    }

    fn distances(&self, q: &[f32], ids: impl Iterator<Item = u32>) -> Vec<(f64, u32)> {
        let mut row = vec![0.0; self.x.ncols()];
        ids.map(|j| {
            self.row_into(j as usize, &mut row);
            (exact_d2(q, &row), j)
        })
        .collect()
    }
}

/// Up to this many features a k-d tree answers the queries; above, blocked matrix products.
/// Measured on 50k uniform rows (the worst case: intrinsic dimension = d), k = 10: at d = 10 the
/// tree takes 1.07 s against 3.55 s for the products, at d = 16 8.74 s against 3.69 s.
pub(crate) const KDTREE_MAX_DIM: usize = 12;

/// `k` nearest reference rows of every query row; with `exclude_self` (queries = reference) a
/// row is not its own neighbour. A k-d tree in low dimension, blocked GEMM otherwise. With
/// `exclude_self`, a row with at least `k` exact copies is answered by them ([`copies`]) and
/// not searched: a flood of identical rows would otherwise defeat both searches (the tree's
/// pruning and the GEMM re-rank's completeness check both stall on ties at distance 0).
///
/// Also returns the exact distances it computed in the blocked search's re-rank (candidates and
/// exhaustive scans; 0 for the tree): the work a flood must not blow up.
fn search(
    reference: &Centred,
    queries: &Centred,
    k: usize,
    exclude_self: bool,
    progress: &Progress<'_>,
) -> (KnnGraph, usize) {
    let work = AtomicUsize::new(0);
    let copied = if exclude_self { copies(reference, k) } else { Vec::new() };
    progress.add(copied.len());
    let ids: Vec<u32> = (0..queries.n as u32)
        .filter(|&i| copied.binary_search_by_key(&i, |c| c.0).is_err())
        .collect();
    let answers = if reference.d <= KDTREE_MAX_DIM {
        crate::kdtree::answers(reference, queries, k, exclude_self, &ids, progress)
    } else {
        gemm_answers(reference, queries, k, exclude_self, &ids, &work, progress)
    };
    let answered = ids.iter().copied().zip(answers).chain(copied.into_iter().map(|(i, c)| {
        let neighbours: Vec<(u32, f32)> = c.into_iter().map(|j| (j, 0.0)).collect();
        (i, neighbours)
    }));
    (graph_of(queries.n, k, answered), work.into_inner())
}

/// The graph of `n` rows from each row's `k` `(neighbour, distance)` pairs, rows in any order.
fn graph_of(
    n: usize,
    k: usize,
    answered: impl Iterator<Item = (u32, Vec<(u32, f32)>)>,
) -> KnnGraph {
    let mut indices = vec![0u32; n * k];
    let mut distances = vec![0.0f32; n * k];
    for (i, answer) in answered {
        let at = i as usize * k;
        for (slot, (j, d)) in answer.into_iter().enumerate() {
            indices[at + slot] = j;
            distances[at + slot] = d;
        }
    }
    KnnGraph::new(n, k, indices, distances)
}

/// The rows of `x` that have at least `k` exact copies (equal centred rows, so at distance
/// exactly 0), each with its answer: the `k` lowest-indexed copies other than itself, which is
/// what the exact search returns (no row is nearer than 0; ties go to the lower index). Sorted by
/// row. Rows are grouped by a hash of their bits, then compared, in O(n d + n log n).
pub(crate) fn copies<S: Source>(x: &S, k: usize) -> Vec<(u32, Vec<u32>)> {
    let hash = |i: usize| {
        // FNV-1a over the values' bits, -0.0 read as 0.0 (they are at distance 0)
        x.row(i).iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &v| {
            (h ^ u64::from((v + 0.0).to_bits())).wrapping_mul(0x0100_0000_01b3)
        })
    };
    let mut keyed: Vec<(u64, u32)> = crate::map_range(x.n(), |i| (hash(i), i as u32));
    keyed.sort_unstable();
    let same = |a: u32, b: u32| {
        x.row(a as usize).iter().zip(x.row(b as usize).iter()).all(|(&p, &q)| p == q)
    };
    let mut out = Vec::new();
    for run in keyed.chunk_by(|a, b| a.0 == b.0).filter(|run| run.len() > k) {
        // within one hash, split into classes of equal rows (a collision is not a copy)
        let mut rest: Vec<u32> = run.iter().map(|&(_, i)| i).collect();
        while rest.len() > k {
            let first = rest[0];
            let (class, others): (Vec<u32>, Vec<u32>) = rest.iter().partition(|&&i| same(first, i));
            if class.len() > k {
                let lowest = &class[..=k];
                for &i in &class {
                    let answer: Vec<u32> =
                        lowest.iter().copied().filter(|&j| j != i).take(k).collect();
                    out.push((i, answer));
                }
            }
            rest = others;
        }
    }
    out.sort_unstable_by_key(|c| c.0);
    out
}

/// The blocked search: `k` nearest reference rows of every query row; with `exclude_self`
/// (queries = reference) a row is not its own neighbour.
#[cfg(test)]
pub(crate) fn gemm_search(
    reference: &Centred,
    queries: &Centred,
    k: usize,
    exclude_self: bool,
) -> KnnGraph {
    let ids: Vec<u32> = (0..queries.n as u32).collect();
    let work = AtomicUsize::new(0);
    let answers =
        gemm_answers(reference, queries, k, exclude_self, &ids, &work, &Progress::silent());
    graph_of(queries.n, k, ids.into_iter().zip(answers))
}

/// The blocked search for the query rows `ids`: their `k` nearest reference rows, in `ids`
/// order; the exact distances computed are added to `work`, the rows answered to `progress`.
fn gemm_answers(
    reference: &Centred,
    queries: &Centred,
    k: usize,
    exclude_self: bool,
    ids: &[u32],
    work: &AtomicUsize,
    progress: &Progress<'_>,
) -> Vec<Vec<(u32, f32)>> {
    let n_ref = reference.n;
    let cap = (k + RERANK_EXTRA).min(n_ref - usize::from(exclude_self));
    let max_norm = reference.max_norm();
    let block = |start: usize| -> Vec<Vec<(u32, f32)>> {
        let block_ids = &ids[start..(start + QUERY_BLOCK).min(ids.len())];
        let tops = gemm_candidates(reference, queries, cap, exclude_self, block_ids, None);
        let answers = tops
            .iter()
            .zip(block_ids)
            .map(|(top, &i)| {
                let i = i as usize;
                let all =
                    || (0..n_ref as u32).filter(|&j| !(exclude_self && j as usize == i)).collect();
                rerank(
                    reference,
                    queries.row(i),
                    queries.norms[i],
                    top,
                    (k, cap),
                    max_norm,
                    all,
                    work,
                )
            })
            .collect();
        progress.add(block_ids.len());
        answers
    };
    crate::map_range(ids.len().div_ceil(QUERY_BLOCK), |b| block(b * QUERY_BLOCK))
        .into_iter()
        .flatten()
        .collect()
}

/// The `cap` reference rows nearest to each query row of `ids` by the GEMM expression
/// `|q|^2 + |r|^2 - 2 q.r` (f32; approximate), in `ids` order; single-threaded. With
/// `exclude_self` (queries = reference) a row is not its own candidate; with `limits` (one per
/// query) only rows at most that far (squared) are kept.
pub(crate) fn gemm_candidates<Q: Source>(
    reference: &Centred,
    queries: &Q,
    cap: usize,
    exclude_self: bool,
    ids: &[u32],
    limits: Option<&[f32]>,
) -> Vec<TopK<f32>> {
    let n_ref = reference.n;
    let data = reference.mat();
    let d = reference.d;
    let mut tops: Vec<TopK<f32>> = ids.iter().map(|_| TopK::new(cap)).collect();
    for (b, block_ids) in ids.chunks(QUERY_BLOCK).enumerate() {
        let tops = &mut tops[b * QUERY_BLOCK..b * QUERY_BLOCK + block_ids.len()];
        // the block's query rows, gathered (a block of the answered rows, not a copy of all)
        let mut rows = Vec::with_capacity(block_ids.len() * d);
        for &i in block_ids {
            queries.append_row(i as usize, &mut rows);
        }
        let q = MatRef::from_row_major_slice(&rows, block_ids.len(), d);
        // g = R Q^T, so that each query's products with the reference block are one contiguous
        // column and the scan below reads memory in order.
        let mut g = Mat::<f32>::zeros(REF_BLOCK.min(n_ref), block_ids.len());
        let mut r0 = 0;
        while r0 < n_ref {
            let r1 = (r0 + REF_BLOCK).min(n_ref);
            let r = data.subrows(r0, r1 - r0);
            matmul(
                g.as_mut().subrows_mut(0, r1 - r0),
                Accum::Replace,
                r,
                q.transpose(),
                1.0f32,
                Par::Seq,
            );
            let ref_norms = &reference.norms[r0..r1];
            for (qi, top) in tops.iter_mut().enumerate() {
                let i = block_ids[qi] as usize;
                let nq = queries.norm(i);
                let limit = limits.map_or(f32::INFINITY, |l| l[b * QUERY_BLOCK + qi]);
                let col = &g.col_as_slice(qi)[..r1 - r0];
                // `nq + |r|^2 - 2 q.r <= worst`, with the query's norm moved to the bound
                let mut bound = top.worst().unwrap_or(limit).min(limit) - nq;
                // Chunks of SCAN_CHUNK: a branch-free test of the whole chunk (vectorized),
                // then the rare chunk with a candidate is scanned element by element.
                let mut base = 0;
                for (gc, nc) in col.chunks(SCAN_CHUNK).zip(ref_norms.chunks(SCAN_CHUNK)) {
                    let hit =
                        gc.iter().zip(nc).fold(false, |h, (&gj, &nj)| h | (nj - 2.0 * gj <= bound));
                    if hit {
                        for (t, (&gj, &nj)) in gc.iter().zip(nc).enumerate() {
                            let j = r0 + base + t;
                            if nj - 2.0 * gj <= bound && !(exclude_self && j == i) {
                                top.push((nq + nj - 2.0 * gj).max(0.0), j as u32);
                                bound = top.worst().unwrap_or(limit).min(limit) - nq;
                            }
                        }
                    }
                    base += gc.len();
                }
            }
            r0 = r1;
        }
    }
    tops
}

/// How far the GEMM expression `|q|^2 + |r|^2 - 2 q.r` in f32 can be from the exact squared
/// distance, for a query row of squared norm `row_norm` among reference rows of squared norm at
/// most `max_norm`, in `d` dimensions.
pub(crate) fn gemm_rounding(d: usize, row_norm: f32, max_norm: f64) -> f64 {
    2.0 * (d as f64 + 4.0) * f64::from(f32::EPSILON) * (f64::from(row_norm) + max_norm)
}

/// Exact re-rank of a query row's GEMM candidates `top` (kept at most `cap`): its `k` nearest
/// `(reference row, distance)` by exact differences, ties by index. A reference row left out of
/// `top` had a GEMM distance of at least its worst, so its true distance is at least that minus
/// the rounding bound of the GEMM expression (`max_norm`: the largest squared norm of a
/// reference row); when this does not clear the k-th exact distance (massive ties, duplicates),
/// the rows `all()` (every row the candidates were chosen from) are searched exhaustively. The
/// exact distances computed are added to `work`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn rerank<S: Source>(
    reference: &S,
    row: &[f32],
    row_norm: f32,
    top: &TopK<f32>,
    (k, cap): (usize, usize),
    max_norm: f64,
    all: impl FnOnce() -> Vec<u32>,
    work: &AtomicUsize,
) -> Vec<(u32, f32)> {
    let rank = |cands: &mut Vec<(f64, u32)>| {
        cands.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        cands.truncate(k);
    };
    let mut cands = reference.distances(row, top.items.iter().map(|&(_, j)| j));
    rank(&mut cands);
    let complete = top.items.len() < cap || {
        let tol = gemm_rounding(row.len(), row_norm, max_norm);
        top.worst().is_none_or(|w| f64::from(w) - tol > cands[k - 1].0)
    };
    let mut done = top.items.len();
    if !complete {
        cands = reference.distances(row, all().into_iter());
        done += cands.len();
        rank(&mut cands);
    }
    work.fetch_add(done, Ordering::Relaxed);
    cands.iter().map(|&(d2, j)| (j, d2.sqrt() as f32)).collect()
}

fn check_rows(n: usize) -> Result<()> {
    if n > u32::MAX as usize {
        return Err(Error::TooManyRows { n_samples: n });
    }
    Ok(())
}

/// The `k` nearest neighbours of every row of `x` (Euclidean, self excluded, ties broken by the
/// lower index), by blocked matrix products: never an `n x n` matrix in memory; query blocks in
/// parallel with the `parallel` feature; identical results for any thread count.
///
/// # Errors
/// [`Error::ZeroK`], [`Error::KTooLarge`] when `k >= n_samples`, [`Error::TooManyRows`].
///
/// # Example
/// ```
/// use ndarray::array;
/// use poisonguard_neighbors::exact_knn;
/// let x = array![[0.0f32], [1.0], [3.0], [7.0]];
/// let g = exact_knn(x.view(), 2)?;
/// assert_eq!(g.neighbors(0), &[1, 2]);
/// assert_eq!(g.distances(3), &[4.0, 6.0]);
/// # Ok::<(), poisonguard_neighbors::Error>(())
/// ```
pub fn exact_knn(x: ArrayView2<'_, f32>, k: usize) -> Result<KnnGraph> {
    exact_knn_rows(Rows::View(x), k, &Progress::silent())
}

/// [`exact_knn`] of borrowed or owned rows.
pub(crate) fn exact_knn_rows(
    rows: Rows<'_>,
    k: usize,
    progress: &Progress<'_>,
) -> Result<KnnGraph> {
    let n = rows.dim().0;
    if k == 0 {
        return Err(Error::ZeroK);
    }
    if k >= n {
        return Err(Error::KTooLarge { k, n_samples: n });
    }
    check_rows(n)?;
    let rows = rows.materialized();
    // Distances are translation invariant; centring first keeps `|a|^2 + |b|^2 - 2ab` from
    // cancelling catastrophically when the data sit far from the origin.
    let (mean, scale) = match &rows {
        Rows::View(x) | Rows::Standardized(x, _) => centre_and_scale(&[x.view()]),
        Rows::Owned(x) => centre_and_scale(&[x.view()]),
    };
    let centred = Centred::from_rows_of(rows, &mean, scale);
    Ok(search(&centred, &centred, k, true, progress).0.scale_distances(1.0 / scale))
}

/// The `k` nearest rows of `reference` for every row of `queries` (no row is excluded: a query
/// equal to a reference row has it as neighbour at distance 0). Same method and guarantees as
/// [`exact_knn`].
///
/// # Errors
/// [`Error::ZeroK`], [`Error::KTooLarge`] when `k > reference rows`,
/// [`Error::DimensionMismatch`], [`Error::TooManyRows`].
pub fn exact_knn_query(
    reference: ArrayView2<'_, f32>,
    queries: ArrayView2<'_, f32>,
    k: usize,
) -> Result<KnnGraph> {
    if k == 0 {
        return Err(Error::ZeroK);
    }
    if k > reference.nrows() {
        return Err(Error::KTooLarge { k, n_samples: reference.nrows() });
    }
    if reference.ncols() != queries.ncols() {
        return Err(Error::DimensionMismatch {
            reference: reference.ncols(),
            queries: queries.ncols(),
        });
    }
    check_rows(reference.nrows())?;
    check_rows(queries.nrows())?;
    let (mean, scale) = centre_and_scale(&[reference.view(), queries.view()]);
    let r = Centred::new(reference, &mean, scale);
    let q = Centred::new(queries, &mean, scale);
    Ok(search(&r, &q, k, false, &Progress::silent()).0.scale_distances(1.0 / scale))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    /// 4,000 rows in 20 clusters of 20 dimensions; with `flood`, 10% of them copies of row 0
    /// (the issue's 10^4 identical rows in 10^5, scaled down).
    pub(crate) fn table(flood: bool) -> Array2<f32> {
        let mut rng = SmallRng::seed_from_u64(17);
        let centres = Array2::from_shape_fn((20, 20), |_| rng.random_range(-4.0f32..4.0));
        let mut x = Array2::from_shape_fn((4000, 20), |(i, j)| {
            centres[[i % 20, j]] + rng.random_range(-1.0f32..1.0)
        });
        if flood {
            let copy = x.row(0).to_owned();
            for i in (0..4000).filter(|i| i % 10 == 7) {
                x.row_mut(i).assign(&copy);
            }
        }
        x
    }

    /// Work counted, not time: a flood of identical rows costs the exact search's re-rank at
    /// most twice the clean table's exact distances (before the copies were answered by
    /// themselves, every copy scanned all rows: about 20x).
    #[test]
    fn a_flood_costs_at_most_twice_the_clean_work() {
        let work = |x: &Array2<f32>| {
            let (mean, scale) = centre_and_scale(&[x.view()]);
            let c = Centred::new(x.view(), &mean, scale);
            search(&c, &c, 10, true, &Progress::silent()).1
        };
        let (clean, flooded) = (work(&table(false)), work(&table(true)));
        assert!(clean > 0);
        assert!(flooded <= 2 * clean, "clean {clean}, flooded {flooded}");
    }
}
