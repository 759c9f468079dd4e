//! The rows a search reads: the reference and query rows centred (and, where the audit asks,
//! standardized) once, as an owned f32 copy ([`Centred`]) or through a per-column map of the
//! caller's rows ([`Mapped`]), behind one [`Source`] trait; the bounded neighbour list
//! ([`TopK`]) and the exact squared distance ([`exact_d2`]) every search shares.

use faer::MatRef;
use ndarray::{Array2, ArrayView2};
use poisonguard_core::Standardizer;
use std::borrow::Cow;

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

/// The `cap` smallest `(distance^2, index)` pairs offered, kept lazily for the blocked search's
/// scans: offers go to a buffer of up to `2 cap` pairs, cut back to the `cap` smallest when it
/// is full, so that the admission bound tightens every `cap` offers and an offer costs a push
/// (a sorted list's insertion at every offer, about `cap (1 + ln(n / cap))` of them per row,
/// took a sixth of the exact search's time). The pairs kept in the end are those [`TopK`]
/// keeps from the same offers.
///
/// A pair is held as one `u64` key (the distance's order-preserving bits, then the index), so
/// the cuts compare integers: `select_nth_unstable` with the `(f32, u32)` comparator was a sixth
/// of the 50-NN graph of 10^5 x 128 rows.
pub(crate) struct Candidates {
    cap: usize,
    items: Vec<u64>,
    bound: f32,
}

/// The key of `(d2, idx)`: keys order as [`TopK`] orders pairs, by distance (0 and -0 equal;
/// no NaN), then index. The distance's bits are mapped to an unsigned order (sign bit set for
/// positive values, every bit flipped for negative ones).
#[inline]
fn key(d2: f32, idx: u32) -> u64 {
    let bits = (d2 + 0.0).to_bits(); // -0 + 0 = +0
    let ordered = if bits >> 31 == 1 { !bits } else { bits | 1 << 31 };
    (u64::from(ordered) << 32) | u64::from(idx)
}

/// The pair of a [`key`].
#[inline]
fn pair(key: u64) -> (f32, u32) {
    let ordered = (key >> 32) as u32;
    let bits = if ordered >> 31 == 1 { ordered & !(1 << 31) } else { !ordered };
    (f32::from_bits(bits), key as u32)
}

impl Candidates {
    pub(crate) fn new(cap: usize) -> Self {
        Self { cap, items: Vec::with_capacity(Self::reserved(cap)), bound: f32::INFINITY }
    }

    /// Entries a list of `cap` reserves when it is made.
    pub(crate) const fn reserved(cap: usize) -> usize {
        2 * cap
    }

    /// A distance at or above the `cap`-th smallest offered so far (infinite until `cap` were
    /// kept): an offer above it cannot be kept.
    #[inline]
    pub(crate) fn bound(&self) -> f32 {
        self.bound
    }

    #[inline]
    pub(crate) fn push(&mut self, d2: f32, idx: u32) {
        self.items.push(key(d2, idx));
        if self.items.len() >= 2 * self.cap {
            self.cut();
        }
    }

    /// Keeps the `cap` smallest pairs; the bound becomes the largest of them.
    fn cut(&mut self) {
        if self.cap == 0 {
            self.items.clear();
            return;
        }
        let (_, &mut largest, _) = self.items.select_nth_unstable(self.cap - 1);
        self.bound = pair(largest).0;
        self.items.truncate(self.cap);
    }

    /// A lazy list holding the pairs of `top` (its `cap`), to be offered more.
    pub(crate) fn from_top(top: TopK<f32>) -> Self {
        let bound = top.worst().unwrap_or(f32::INFINITY);
        let mut items = Vec::with_capacity(2 * top.cap);
        items.extend(top.items.iter().map(|&(d2, idx)| key(d2, idx)));
        Self { cap: top.cap, items, bound }
    }

    /// The `cap` smallest pairs offered, in no particular order (a list to merge into another).
    pub(crate) fn into_items(mut self) -> Vec<(f32, u32)> {
        if self.items.len() > self.cap {
            self.cut();
        }
        self.items.into_iter().map(pair).collect()
    }

    /// The `cap` smallest pairs offered, sorted.
    pub(crate) fn into_top(mut self) -> TopK<f32> {
        self.items.sort_unstable();
        self.items.truncate(self.cap);
        TopK { cap: self.cap, items: self.items.into_iter().map(pair).collect() }
    }
}

/// Exact squared Euclidean distance, accumulated in f64: eight partial sums (then added in
/// order), so that the additions do not wait on each other and vectorize; the same order for
/// every pair. A single running sum took a sixth of the exact search's time on 15,000 x 512
/// embeddings (the re-rank of 58 candidates per row).
#[inline(always)]
pub(crate) fn exact_d2(a: &[f32], b: &[f32]) -> f64 {
    const LANES: usize = 8;
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum();
    let mut acc = [0.0f64; LANES];
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            let t = f64::from(x[l]) - f64::from(y[l]);
            acc[l] += t * t;
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// [`exact_d2`] from `q` to the rows `ids` of `x`, in vector registers (`pulp` compiles it for
/// AVX2 and picks it where the CPU has it; the sums' order is [`exact_d2`]'s on every CPU): the
/// exact re-rank's distances, a tenth of the exact search's time before.
struct Distances<'a, I> {
    q: &'a [f32],
    x: &'a Centred,
    /// Where each row of the source sits in `x` (`None`: row `j` is `x`'s row `j`).
    pos: Option<&'a [u32]>,
    ids: I,
}

impl<I: Iterator<Item = u32>> pulp::WithSimd for Distances<'_, I> {
    type Output = Vec<(f64, u32)>;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> Self::Output {
        // a loop written here, not an iterator's `map`: the closure of a `map` is compiled in
        // the iterator's own function, outside this one's CPU features (SSE2 only)
        let at = |j: u32| self.pos.map_or(j, |p| p[j as usize]) as usize;
        let ids: Vec<u32> = self.ids.collect();
        let prefetch = Prefetch::new();
        let mut out = Vec::with_capacity(ids.len());
        for (t, &j) in ids.iter().enumerate() {
            if let Some(&ahead) = ids.get(t + PREFETCH_AHEAD) {
                prefetch.row(Centred::row(self.x, at(ahead)));
            }
            out.push((exact_d2(self.q, Centred::row(self.x, at(j))), j));
        }
        out
    }
}

/// Rows ahead of the one whose distance is computed that [`Prefetch`] asks for: the re-rank's
/// candidates lie scattered over the table, and the first read of each was a cache miss that
/// took most of the re-rank's time.
const PREFETCH_AHEAD: usize = 4;

/// Asks the CPU to bring rows into its cache ahead of their use (a hint: x86-64 only, nothing
/// elsewhere; the values read are the same either way).
struct Prefetch {
    #[cfg(target_arch = "x86_64")]
    sse: Option<pulp::core_arch::x86::Sse>,
}

impl Prefetch {
    #[inline(always)]
    fn new() -> Self {
        Self {
            #[cfg(target_arch = "x86_64")]
            sse: pulp::core_arch::x86::Sse::try_new(),
        }
    }

    /// Every cache line of `row`.
    #[inline(always)]
    fn row(&self, row: &[f32]) {
        #[cfg(target_arch = "x86_64")]
        if let Some(sse) = self.sse {
            const LINE: usize = 64 / std::mem::size_of::<f32>();
            for line in row.chunks(LINE) {
                sse._mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(line.as_ptr().cast());
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = row;
    }
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
    pub(crate) fn materialized(self) -> Self {
        match self {
            Rows::Standardized(x, z) => Rows::Owned(z.transform(x)),
            rows => rows,
        }
    }
}

/// Rows of a matrix, centred by given column means, with their squared norms.
#[derive(Clone)]
pub(crate) struct Centred {
    data: Vec<f32>,
    pub(crate) norms: Vec<f32>,
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

    /// The rows `range`, borrowed, as a blocked search multiplies them.
    pub(crate) fn block(&self, range: std::ops::Range<usize>) -> Block<'_> {
        let data = &self.data[range.start * self.d..range.end * self.d];
        Block {
            mat: MatRef::from_row_major_slice(data, range.len(), self.d),
            norms: &self.norms[range],
        }
    }
}

/// Centred rows and their squared norms, borrowed: the reference of a blocked search.
#[derive(Clone, Copy)]
pub(crate) struct Block<'a> {
    pub(crate) mat: MatRef<'a, f32>,
    pub(crate) norms: &'a [f32],
}

/// Rows held in another order: row `i` of the source is row `pos[i]` of `rows` (the index's
/// copy of the rows in cell order, read by the rows' own indices).
pub(crate) struct Permuted<'a> {
    pub(crate) rows: &'a Centred,
    pub(crate) pos: &'a [u32],
}

impl Source for Permuted<'_> {
    fn n(&self) -> usize {
        self.rows.n
    }

    fn d(&self) -> usize {
        self.rows.d
    }

    fn norm(&self, i: usize) -> f32 {
        self.rows.norms[self.pos[i] as usize]
    }

    fn max_norm(&self) -> f64 {
        self.rows.max_norm()
    }

    fn row(&self, i: usize) -> Cow<'_, [f32]> {
        Cow::Borrowed(self.rows.row(self.pos[i] as usize))
    }

    fn append_row(&self, i: usize, out: &mut Vec<f32>) {
        out.extend_from_slice(self.rows.row(self.pos[i] as usize));
    }

    fn distances(&self, q: &[f32], ids: impl Iterator<Item = u32>) -> Vec<(f64, u32)> {
        pulp::Arch::new().dispatch(Distances { q, x: self.rows, pos: Some(self.pos), ids })
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
        pulp::Arch::new().dispatch(Distances { q, x: self, pos: None, ids })
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

    /// Asks `prefetch` for the caller's row [`PREFETCH_AHEAD`] after position `t` of `ids`,
    /// where it is contiguous (the rows a gather or a re-rank reads lie scattered over the
    /// table).
    #[inline(always)]
    fn prefetch_ahead(&self, prefetch: &Prefetch, ids: &[u32], t: usize) {
        if let Some(ahead) =
            ids.get(t + PREFETCH_AHEAD).and_then(|&a| self.x.row(a as usize).to_slice())
        {
            prefetch.row(ahead);
        }
    }

    /// Row `i` into `out` (`d` values).
    #[inline(always)]
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
        pulp::Arch::new().dispatch(MappedDistances { q, x: self, ids })
    }

    fn gather(&self, idx: &[u32]) -> Centred {
        pulp::Arch::new().dispatch(MappedGather { x: self, idx })
    }
}

/// [`Source::gather`] of [`Mapped`] rows: each row mapped straight into the copy, in vector
/// registers, the rows [`PREFETCH_AHEAD`] ahead prefetched (an index's cell is rows scattered
/// over the table: at 10^6 x 512 the gathers of each query batch's cells, one `append_row` at a
/// time, were a tenth of the search).
struct MappedGather<'a, 'b> {
    x: &'a Mapped<'b>,
    idx: &'a [u32],
}

impl pulp::WithSimd for MappedGather<'_, '_> {
    type Output = Centred;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> Self::Output {
        let (n, d) = (self.idx.len(), self.x.x.ncols());
        let mut data = vec![0.0; n * d];
        if d > 0 {
            let prefetch = Prefetch::new();
            for (t, (&i, out)) in self.idx.iter().zip(data.chunks_exact_mut(d)).enumerate() {
                self.x.prefetch_ahead(&prefetch, self.idx, t);
                self.x.row_into(i as usize, out);
            }
        }
        let norms = self.idx.iter().map(|&i| self.x.norms[i as usize]).collect();
        Centred { data, norms, n, d }
    }
}

/// [`Distances`] of [`Mapped`] rows: each row mapped, then [`exact_d2`], in vector registers.
struct MappedDistances<'a, 'b, I> {
    q: &'a [f32],
    x: &'a Mapped<'b>,
    ids: I,
}

impl<I: Iterator<Item = u32>> pulp::WithSimd for MappedDistances<'_, '_, I> {
    type Output = Vec<(f64, u32)>;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> Self::Output {
        let ids: Vec<u32> = self.ids.collect();
        let prefetch = Prefetch::new();
        let mut row = vec![0.0; self.x.x.ncols()];
        let mut out = Vec::with_capacity(ids.len());
        for (t, &j) in ids.iter().enumerate() {
            self.x.prefetch_ahead(&prefetch, &ids, t);
            self.x.row_into(j as usize, &mut row);
            out.push((exact_d2(self.q, &row), j));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    /// A gather of mapped rows (vectorized, prefetched) is the rows as `row` maps them one by
    /// one, bit for bit: raw and standardized rows, a strided view, and rows large enough to be
    /// scaled down (the f64 map).
    #[test]
    fn a_mapped_gather_is_its_rows() {
        let mut rng = SmallRng::seed_from_u64(5);
        let x = ndarray::Array2::from_shape_fn((300, 37), |_| rng.random_range(-4.0f32..9.0));
        let z = Standardizer::fit(x.view());
        let large = x.mapv(|v| v * 1e25);
        let idx: Vec<u32> = (0..120).map(|t| (t * 53 % 300) as u32).collect();
        let strided = x.slice_axis(ndarray::Axis(1), ndarray::Slice::new(0, None, 2));
        let views = [(x.view(), None), (x.view(), Some(&z)), (strided, None), (large.view(), None)];
        for (t, (view, z)) in views.into_iter().enumerate() {
            let (mean, scale) = centre_and_scale_of(&[view], z);
            // only the large rows are scaled (and read through the f64 map)
            assert_eq!(scale == 1.0, t != 3);
            let mapped = Mapped::new(view, z, mean, scale);
            let gathered = mapped.gather(&idx);
            for (r, &i) in idx.iter().enumerate() {
                assert_eq!(gathered.row(r), &*mapped.row(i as usize));
                assert_eq!(gathered.norms[r], mapped.norm(i as usize));
            }
        }
    }

    /// The lazy list keeps what the sorted one keeps from the same offers, ties included: the
    /// `cap` smallest `(distance, index)` pairs, in order.
    #[test]
    fn candidates_keep_what_a_sorted_list_keeps() {
        let mut rng = SmallRng::seed_from_u64(3);
        for (cap, offers, levels) in [(1, 50, 5), (8, 500, 20), (58, 5_000, 1_000), (10, 9, 3)] {
            let mut sorted = TopK::new(cap);
            let mut lazy = Candidates::new(cap);
            for j in 0..offers {
                // few distinct distances: many exact ties, offered in index order and not
                let d2 = rng.random_range(0..levels) as f32 * 0.5;
                let idx = if j % 2 == 0 { j } else { offers * 2 - j } as u32;
                sorted.push(d2, idx);
                if d2 <= lazy.bound() {
                    lazy.push(d2, idx);
                }
            }
            assert_eq!(lazy.into_top().items, sorted.items, "cap {cap}, {offers} offers");
        }
    }

    /// Keys order as the pairs do (distance, then index; 0 and -0 equal) and give them back.
    #[test]
    fn keys_order_as_pairs() {
        let values = [-f32::INFINITY, -3.5, -1e-30, -0.0, 0.0, 1e-40, 1e-30, 2.0, 3.5, f32::MAX];
        for (a, &x) in values.iter().enumerate() {
            for &i in &[0u32, 7, u32::MAX] {
                let back = pair(key(x, i));
                assert_eq!((back.0 + 0.0).to_bits(), (x + 0.0).to_bits());
                assert_eq!(back.1, i);
                for (b, &y) in values.iter().enumerate() {
                    for &j in &[0u32, 7, u32::MAX] {
                        let expect = x.partial_cmp(&y).unwrap().then(i.cmp(&j));
                        assert_eq!(key(x, i).cmp(&key(y, j)), expect, "{a} {b} {i} {j}");
                    }
                }
            }
        }
    }
}
