//! The inverted-file index (IVF, as FAISS's `IndexIVFFlat`) the approximate search runs on:
//! k-means cells, each row's probed cells, and the blocked search of a batch of rows cell by
//! cell.

use std::sync::atomic::AtomicUsize;

use faer::{Accum, Mat};
use poisonguard_core::{KnnGraph, derive_seed};
use poisonguard_linalg::matmul;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand::seq::index::sample;

use crate::error::{Error, Result};
use crate::exact::{RERANK_EXTRA, gemm_candidates, gemm_rounding, rerank};
use crate::rows::{Candidates, Centred, Permuted, Source, TopK, centre_and_scale};

/// Parameters of [`approximate_knn`](crate::approximate_knn).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ApproxParams {
    /// Seed of the k-means sample and initial centroids.
    pub seed: u64,
    /// Cells of the index; 0 = `round(sqrt(n))`.
    pub n_lists: usize,
    /// Cells searched for each row: those whose centroids are nearest to the row.
    pub n_probe: usize,
    /// Lloyd iterations of the k-means that places the cells.
    pub kmeans_iter: usize,
    /// Share of the rows' variance a principal-component projection must hold for the index to
    /// place its cells and find its candidates in it ([`SHORTLIST_FACTOR`](crate::SHORTLIST_FACTOR)
    /// `k` per row, then re-ranked by exact distance in the full rows): the fewest leading
    /// directions that hold it, at most a quarter of the features; when a quarter do not hold it
    /// (data without a low-dimensional structure: isotropic noise, uniform) the full rows are
    /// searched. 0 (the default) = always the full rows: the projection is faster for `k = 10`
    /// (3.7x at 300,000 x 512) but slower for `k = 50` (2x at 100,000 x 512), the audit's
    /// standardized graph (benches/RESULTS.md); 0.9 is the share measured there.
    pub projection_variance: f64,
}

impl Default for ApproxParams {
    fn default() -> Self {
        Self { seed: 0x5EED, n_lists: 0, n_probe: 16, kmeans_iter: 10, projection_variance: 0.0 }
    }
}

/// A batch row and its `(GEMM distance^2, neighbour)` candidates within one cell.
type Found = (u32, Vec<(f32, u32)>);

/// Rows per query batch: enough that each cell is asked by about this many rows of a batch (one
/// blocked search of that size per cell; every batch reads every cell's rows, twice, through
/// the standardizing map: with 128, the 50-NN graph of 10^5 x 128 took 8.4-9.2 s, with 1,024
/// 6.3-6.5 s), few enough that a batch's lists (`2 (k + 8)` pairs per row) stay small beside the
/// graph.
const QUERIES_PER_CELL: usize = 1024;
/// Batches at least this many for a progress display (where batches of [`MIN_BATCH`] rows allow).
const PROGRESS_STEPS: usize = 16;
/// Cells searched side by side before their candidates are merged ([`search_cells`]).
const CELLS_AT_ONCE: usize = 64;
/// Most candidate-list entries (8 bytes each) of one query batch's rows: a batch's lists and
/// their copies (the rows' merged lists, the cells' lists, the candidates found) exist at once,
/// and glibc does not give all of it back between batches. At 10^6 x 512, 50 neighbours, the
/// 62,500-row batches (`PROGRESS_STEPS`) held 460 MiB beside the graph; with the 18,078 rows
/// this allows, the search's resident memory grows by the graph alone (at the price of reading
/// every cell's rows once per batch: about 15% more time there). Small tables' batches are
/// smaller already (10^5 rows: 6,250).
const BATCH_PAIRS: usize = 1 << 21;
/// Smallest query batch.
const MIN_BATCH: usize = 1024;

/// Training rows per cell for the k-means (FAISS samples 39 to 256 per centroid).
const TRAIN_PER_LIST: usize = 64;
/// Rows per block when assigning rows to cells.
pub(crate) const ASSIGN_BLOCK: usize = 1024;

/// The index's cells: k-means centroids and the rows of each cell (indices of the rows the
/// index was placed on), searched `n_probe` cells per query row.
#[derive(Clone)]
pub(crate) struct Cells {
    centroids: Centred,
    lists: Vec<Vec<u32>>,
    sizes: Vec<usize>,
    n_probe: usize,
    /// The largest squared norm of an indexed row (bounds the GEMM rounding).
    max_norm: f64,
    /// A copy of the indexed rows in cell order, where the index holds one ([`Held`]).
    held: Option<Held>,
}

/// The indexed rows in cell order (cell 0's rows, then cell 1's, ...), as FAISS's inverted lists
/// hold them: a cell is then one contiguous block for the products, and the candidates of one
/// query row, which come from its few probed cells, lie near each other for the exact re-rank.
/// Without it every query batch gathers each probed cell's rows into a block (through the
/// centring and standardizing map, for borrowed rows), and the re-rank reads its candidates
/// scattered over the whole table: at 10^5 x 128 a copy made once saves both.
#[derive(Clone)]
struct Held {
    rows: Centred,
    /// Where cell `c`'s rows start in `rows` (one more entry: the end).
    starts: Vec<usize>,
    /// Where row `i` sits in `rows`.
    pos: Vec<u32>,
}

impl Cells {
    /// `n_lists` cells placed by k-means on the rows of `data`, every row in its nearest cell;
    /// with `hold`, a copy of the rows in cell order ([`Held`]) that the search reads instead of
    /// `data` (the same values, so the same search).
    pub(crate) fn place<S: Source>(
        data: &S,
        n_lists: usize,
        params: ApproxParams,
        hold: bool,
    ) -> Self {
        let n = data.n();
        let centroids = kmeans(data, n_lists, params);
        let all: Vec<u32> = (0..n as u32).collect();
        let cell = nearest_cells(data, &all, &centroids, 1);
        let mut lists: Vec<Vec<u32>> = vec![Vec::new(); n_lists];
        for (i, &c) in cell.iter().enumerate() {
            lists[c as usize].push(i as u32);
        }
        let sizes = lists.iter().map(Vec::len).collect();
        let n_probe = params.n_probe.clamp(1, n_lists);
        let held = hold.then(|| {
            let order: Vec<u32> = lists.iter().flatten().copied().collect();
            let mut pos = vec![0u32; n];
            order.iter().enumerate().for_each(|(p, &i)| pos[i as usize] = p as u32);
            let starts = std::iter::once(0)
                .chain(lists.iter().scan(0, |end, list| {
                    *end += list.len();
                    Some(*end)
                }))
                .collect();
            Held { rows: data.gather(&order), starts, pos }
        });
        Self { centroids, lists, sizes, n_probe, max_norm: data.max_norm(), held }
    }

    /// Query rows per batch, of `n` in all, for `k` neighbours: at most [`BATCH_PAIRS`] list
    /// entries, as many as a row's candidate list reserves.
    pub(crate) fn batch_rows(&self, n: usize, k: usize) -> usize {
        let per_cell = QUERIES_PER_CELL * self.lists.len() / self.n_probe;
        let by_memory = BATCH_PAIRS / Candidates::reserved(k + RERANK_EXTRA);
        per_cell.min(n.div_ceil(PROGRESS_STEPS)).min(by_memory).max(MIN_BATCH).min(n.max(1))
    }

    /// The `k` nearest indexed rows of each row `batch` of `data` (the query itself left out
    /// when it is an indexed row), by exact distance, each passed through `finish(row, found)`.
    ///
    /// Each row's `n_probe` nearest cells, then the pairs are grouped by cell, so that each
    /// probed cell is one blocked search of the batch rows that probe it (its rows read once
    /// per batch, as in FAISS's search by inverted list). The per-(row, cell) lists exist for
    /// [`CELLS_AT_ONCE`] cells of one batch. Cells are searched in parallel, and a row's lists
    /// are merged into one that keeps the smallest by distance and index whatever order they
    /// come in, so the result is the same for any thread count and batching.
    pub(crate) fn search_batch<S: Source>(
        &self,
        data: &S,
        batch: &[u32],
        k: usize,
        work: &AtomicUsize,
        finish: &(impl Fn(usize, Vec<(u32, f32)>) -> Vec<(u32, f32)> + Sync),
    ) -> Vec<Vec<(u32, f32)>> {
        match &self.held {
            Some(held) => {
                let data = Permuted { rows: &held.rows, pos: &held.pos };
                self.search_batch_in(&data, batch, k, work, finish)
            }
            None => self.search_batch_in(data, batch, k, work, finish),
        }
    }

    /// [`Cells::search_batch`] reading the rows from `data`.
    fn search_batch_in<S: Source>(
        &self,
        data: &S,
        batch: &[u32],
        k: usize,
        work: &AtomicUsize,
        finish: &(impl Fn(usize, Vec<(u32, f32)>) -> Vec<(u32, f32)> + Sync),
    ) -> Vec<Vec<(u32, f32)>> {
        if batch.is_empty() {
            return Vec::new();
        }
        let (d, n_probe, lists, sizes) = (data.d(), self.n_probe, &self.lists, &self.sizes);
        let cap = k + RERANK_EXTRA;
        let probes = nearest_cells(data, batch, &self.centroids, n_probe);
        // rows beyond n_probe cells, for the rare row whose probed cells hold k rows or fewer
        // (empty for every other row)
        let extra: Vec<Vec<u32>> = probes
            .chunks(n_probe)
            .enumerate()
            .map(|(qi, cells)| {
                if cells.iter().map(|&c| sizes[c as usize]).sum::<usize>() <= k {
                    more_cells(data, batch[qi], &self.centroids, sizes, k)
                } else {
                    Vec::new()
                }
            })
            .collect();
        let probed = |qi: usize| -> Vec<u32> {
            let mut cells = probes[qi * n_probe..(qi + 1) * n_probe].to_vec();
            let more: Vec<u32> = extra[qi].iter().copied().filter(|c| !cells.contains(c)).collect();
            cells.extend(more);
            cells
        };
        // Pass 1, each row's nearest cell: its GEMM candidates there, whose `cap`-th distance
        // (self left out) bounds the `cap`-th over all its cells, plus the rounding by which
        // two evaluations of one distance can differ.
        let mut askers: Vec<Vec<u32>> = vec![Vec::new(); lists.len()];
        for qi in 0..batch.len() {
            askers[probes[qi * n_probe] as usize].push(qi as u32);
        }
        let mut merged: Vec<Candidates> = batch.iter().map(|_| Candidates::new(cap)).collect();
        search_cells(self, data, batch, &askers, cap, None, &mut merged);
        let max_norm = self.max_norm;
        let (mut merged, limits): (Vec<Candidates>, Vec<f32>) = merged
            .into_iter()
            .zip(batch)
            .map(|(top, &i)| {
                let top = top.into_top();
                let slack = 2.0 * gemm_rounding(d, data.norm(i as usize), max_norm);
                let limit = top.worst().map_or(f32::INFINITY, |w| (f64::from(w) + slack) as f32);
                (Candidates::from_top(top), limit)
            })
            .unzip();
        // Pass 2, the other probed cells, grouped by cell: each is one blocked search of the
        // batch rows that probe it, below their bounds (so few candidates are kept per cell).
        for list in &mut askers {
            list.clear();
        }
        for qi in 0..batch.len() {
            for c in probed(qi).into_iter().skip(1) {
                askers[c as usize].push(qi as u32);
            }
        }
        search_cells(self, data, batch, &askers, cap, Some(&limits), &mut merged);
        let merged: Vec<TopK<f32>> = merged.into_iter().map(Candidates::into_top).collect();
        let rerank_row = |qi: usize| -> Vec<(u32, f32)> {
            let i = batch[qi] as usize;
            // the rows the candidates came from: every row of the row's probed cells
            let rows = || -> Vec<u32> {
                let mut cells = probed(qi);
                cells.sort_unstable();
                cells
                    .iter()
                    .flat_map(|&c| lists[c as usize].iter().copied())
                    .filter(|&j| j as usize != i)
                    .collect()
            };
            rerank(data, &data.row(i), data.norm(i), &merged[qi], (k, cap), max_norm, rows, work)
        };
        crate::map_range(batch.len(), |qi| finish(batch[qi] as usize, rerank_row(qi)))
    }
}

/// An inverted-file index over a set of reference rows that answers queries by other rows (a fitted
/// detector's training rows, asked about new rows batch by batch): the cells are placed once, by
/// [`approximate_knn`](crate::approximate_knn)'s k-means and parameters, and each query is searched
/// as [`approximate_knn`](crate::approximate_knn) searches its own rows, in the reference's
/// centring and scale (so that a query's neighbours do not depend on the other queries of its
/// batch).
#[derive(Clone)]
pub struct IvfIndex {
    rows: Centred,
    mean: Vec<f64>,
    scale: f32,
    cells: Cells,
}

impl std::fmt::Debug for IvfIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IvfIndex")
            .field("rows", &self.rows.n)
            .field("features", &self.rows.d)
            .field("cells", &self.cells.lists.len())
            .field("n_probe", &self.cells.n_probe)
            .finish()
    }
}

impl IvfIndex {
    /// Places the index on `reference` (`sqrt(n)` cells unless `params.n_lists` says).
    ///
    /// # Errors
    /// [`Error::TooManyRows`]; [`Error::KTooLarge`] for fewer than two rows.
    pub fn build(reference: ndarray::ArrayView2<'_, f32>, params: ApproxParams) -> Result<Self> {
        let n = reference.nrows();
        if n > u32::MAX as usize {
            return Err(Error::TooManyRows { n_samples: n });
        }
        if n < 2 {
            return Err(Error::KTooLarge { k: 1, n_samples: n });
        }
        let (mean, scale) = centre_and_scale(&[reference]);
        let rows = Centred::new(reference, &mean, scale);
        let n_lists =
            if params.n_lists == 0 { (n as f64).sqrt().round() as usize } else { params.n_lists }
                .clamp(1, n);
        let cells = Cells::place(&rows, n_lists, params, false);
        Ok(Self { rows, mean, scale, cells })
    }

    /// Rows indexed.
    pub fn n_rows(&self) -> usize {
        self.rows.n
    }

    /// The `k` nearest reference rows of every row of `queries` (a query equal to a reference
    /// row has it as neighbour at distance 0), as a graph of the queries.
    ///
    /// # Errors
    /// [`Error::ZeroK`], [`Error::KTooLarge`] when `k` exceeds the reference rows,
    /// [`Error::DimensionMismatch`], [`Error::TooManyRows`].
    pub fn query(&self, queries: ndarray::ArrayView2<'_, f32>, k: usize) -> Result<KnnGraph> {
        let (m, q) = (self.rows.n, queries.nrows());
        if k == 0 {
            return Err(Error::ZeroK);
        }
        if k > m {
            return Err(Error::KTooLarge { k, n_samples: m });
        }
        if queries.ncols() != self.rows.d {
            return Err(Error::DimensionMismatch {
                reference: self.rows.d,
                queries: queries.ncols(),
            });
        }
        if m + q > u32::MAX as usize {
            return Err(Error::TooManyRows { n_samples: m + q });
        }
        let joined = Joined {
            reference: &self.rows,
            queries: Centred::new(queries, &self.mean, self.scale),
        };
        let work = AtomicUsize::new(0);
        let mut indices = Vec::with_capacity(q * k);
        let mut distances = Vec::with_capacity(q * k);
        let all: Vec<u32> = (m as u32..(m + q) as u32).collect();
        for batch in all.chunks(self.cells.batch_rows(q, k)) {
            for row in self.cells.search_batch(&joined, batch, k, &work, &|_, found| found) {
                for (j, dist) in row {
                    indices.push(j);
                    distances.push(dist);
                }
            }
        }
        Ok(KnnGraph::new(q, k, indices, distances).scale_distances(1.0 / self.scale))
    }
}

/// The reference rows followed by the query rows, as one source: indices below the
/// reference's count are reference rows (the only ones in the cells), the others queries.
struct Joined<'a> {
    reference: &'a Centred,
    queries: Centred,
}

impl Joined<'_> {
    fn get(&self, i: usize) -> &[f32] {
        let m = self.reference.n;
        if i < m { self.reference.row(i) } else { self.queries.row(i - m) }
    }
}

impl Source for Joined<'_> {
    fn n(&self) -> usize {
        self.reference.n + self.queries.n
    }

    fn d(&self) -> usize {
        self.reference.d
    }

    fn norm(&self, i: usize) -> f32 {
        let m = self.reference.n;
        if i < m { self.reference.norm(i) } else { self.queries.norm(i - m) }
    }

    fn max_norm(&self) -> f64 {
        self.reference.max_norm().max(self.queries.max_norm())
    }

    fn row(&self, i: usize) -> std::borrow::Cow<'_, [f32]> {
        std::borrow::Cow::Borrowed(self.get(i))
    }

    fn append_row(&self, i: usize, out: &mut Vec<f32>) {
        out.extend_from_slice(self.get(i));
    }

    fn distances(&self, q: &[f32], ids: impl Iterator<Item = u32>) -> Vec<(f64, u32)> {
        ids.map(|j| (crate::rows::exact_d2(q, self.get(j as usize)), j)).collect()
    }
}

/// The GEMM candidates (the `cap + 1` nearest, as a row may meet itself; below the row's
/// limit when given) of the batch rows `askers[c]` in each cell `c`, in global indices, merged
/// into the rows' lists ([`merge`]); [`CELLS_AT_ONCE`] cells in parallel at a time, so that the
/// candidates of those cells alone exist at once (all the cells' candidates of a batch of 62,500
/// rows of 512 dimensions, where few fall below the bounds, were 0.8 GB).
fn search_cells<S: Source>(
    cells: &Cells,
    data: &S,
    batch: &[u32],
    askers: &[Vec<u32>],
    cap: usize,
    limits: Option<&[f32]>,
    merged: &mut [Candidates],
) {
    let lists = &cells.lists;
    let search_cell = |c: usize| -> Vec<Found> {
        let asking = &askers[c];
        if asking.is_empty() {
            return Vec::new();
        }
        // the cell's rows: a block of the held copy, or gathered
        let gathered;
        let reference = match &cells.held {
            Some(held) => held.rows.block(held.starts[c]..held.starts[c + 1]),
            None => {
                gathered = data.gather(&lists[c]);
                gathered.block(0..gathered.n)
            }
        };
        let rows: Vec<u32> = asking.iter().map(|&qi| batch[qi as usize]).collect();
        let lim: Option<Vec<f32>> =
            limits.map(|l| asking.iter().map(|&qi| l[qi as usize]).collect());
        let n_cell = lists[c].len();
        let tops =
            gemm_candidates(reference, data, (cap + 1).min(n_cell), false, &rows, lim.as_deref());
        asking
            .iter()
            .zip(tops)
            .map(|(&qi, top)| {
                let items = top.into_items().into_iter();
                (qi, items.map(|(d2, j)| (d2, lists[c][j as usize])).collect())
            })
            .collect()
    };
    for start in (0..lists.len()).step_by(CELLS_AT_ONCE) {
        let end = (start + CELLS_AT_ONCE).min(lists.len());
        merge(merged, batch, crate::map_range(end - start, |c| search_cell(start + c)));
    }
}

/// Each batch row's candidates from its cells into its list of the `cap` nearest, self left out
/// (the same list whatever order they come in: it keeps the smallest by distance, then index).
/// The cells' lists are grouped by row, then rows are merged in parallel (merged one by one, it
/// was a twentieth of the search on one thread while the other waited).
fn merge(merged: &mut [Candidates], batch: &[u32], found: Vec<Vec<Found>>) {
    let mut found: Vec<Found> = found.into_iter().flatten().collect();
    found.sort_unstable_by_key(|f| f.0);
    let found = &found;
    crate::for_each_chunk_mut(merged, MERGE_ROWS, |first, tops| {
        let mut at = found.partition_point(|f| (f.0 as usize) < first);
        for (qi, top) in (first..).zip(tops.iter_mut()) {
            let i = batch[qi];
            while let Some((_, cands)) = found.get(at).filter(|f| f.0 as usize == qi) {
                for &(d2, j) in cands {
                    if j != i && d2 <= top.bound() {
                        top.push(d2, j);
                    }
                }
                at += 1;
            }
        }
    });
}

/// Rows per parallel task of [`merge`].
const MERGE_ROWS: usize = 256;

/// k-means centroids (Lloyd) trained on a seeded sample of the rows.
fn kmeans<S: Source>(data: &S, n_lists: usize, params: ApproxParams) -> Centred {
    let (n, d) = (data.n(), data.d());
    let mut rng = SmallRng::seed_from_u64(derive_seed(params.seed, 0));
    let train: Vec<u32> = if n > TRAIN_PER_LIST * n_lists {
        let mut s: Vec<u32> =
            sample(&mut rng, n, TRAIN_PER_LIST * n_lists).into_iter().map(|i| i as u32).collect();
        s.sort_unstable();
        s
    } else {
        (0..n as u32).collect()
    };
    let train = data.gather(&train);
    let init: Vec<u32> = sample(&mut rng, train.n, n_lists).into_iter().map(|i| i as u32).collect();
    let mut centroids = train.gather(&init);
    let all_train: Vec<u32> = (0..train.n as u32).collect();
    for _ in 0..params.kmeans_iter {
        let cell = nearest_cells(&train, &all_train, &centroids, 1);
        let mut sums = vec![0.0f64; n_lists * d];
        let mut counts = vec![0usize; n_lists];
        for (i, &c) in cell.iter().enumerate() {
            let c = c as usize;
            counts[c] += 1;
            for (s, &v) in sums[c * d..(c + 1) * d].iter_mut().zip(train.row(i)) {
                *s += f64::from(v);
            }
        }
        let mut next = Vec::with_capacity(n_lists * d);
        for c in 0..n_lists {
            if counts[c] == 0 {
                // an empty cell keeps its centroid
                next.extend_from_slice(centroids.row(c));
            } else {
                next.extend(sums[c * d..(c + 1) * d].iter().map(|s| (s / counts[c] as f64) as f32));
            }
        }
        centroids = Centred::from_rows(next, d);
    }
    centroids
}

/// The `p` nearest centroids of each of the rows `rows` of `data`, nearest first (ties by the
/// lower index), `rows.len() * p` cells in row order, by blocked GEMM.
fn nearest_cells<S: Source>(data: &S, rows: &[u32], centroids: &Centred, p: usize) -> Vec<u32> {
    let (n, m) = (rows.len(), centroids.n);
    let cmat = centroids.mat();
    let block = |start: usize| -> Vec<u32> {
        let end = (start + ASSIGN_BLOCK).min(n);
        let q = data.gather(&rows[start..end]);
        // g = C Q^T: each query's products with the centroids are one contiguous column
        let mut g = Mat::<f32>::zeros(m, end - start);
        matmul(g.as_mut(), Accum::Replace, cmat, q.mat().transpose(), 1.0f32);
        let mut out = Vec::with_capacity((end - start) * p);
        let mut scores: Vec<(f32, u32)> = Vec::with_capacity(m);
        for r in 0..end - start {
            // |q - c|^2 less the query's own norm, which does not change the order
            scores.clear();
            let products = g.col_as_slice(r).iter().zip(&centroids.norms);
            scores.extend(products.enumerate().map(|(c, (&gc, &nc))| (nc - 2.0 * gc, c as u32)));
            let order = |a: &(f32, u32), b: &(f32, u32)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
            if p < m {
                scores.select_nth_unstable_by(p - 1, order);
            }
            scores[..p].sort_unstable_by(order);
            out.extend(scores[..p].iter().map(|s| s.1));
        }
        out
    };
    crate::map_range(n.div_ceil(ASSIGN_BLOCK), |b| block(b * ASSIGN_BLOCK))
        .into_iter()
        .flatten()
        .collect()
}

/// Cells nearest to row `i` first, as many as it takes to hold more than `k` rows (for a row
/// whose `n_probe` nearest cells hold `k` rows or fewer).
fn more_cells<S: Source>(
    data: &S,
    i: u32,
    centroids: &Centred,
    sizes: &[usize],
    k: usize,
) -> Vec<u32> {
    let order = nearest_cells(data, &[i], centroids, centroids.n);
    let mut held = 0;
    let mut out = Vec::new();
    for c in order {
        if held > k {
            break;
        }
        held += sizes[c as usize];
        out.push(c);
    }
    out
}
