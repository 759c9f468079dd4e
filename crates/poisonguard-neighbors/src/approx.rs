//! Approximate kNN graph by an inverted-file index (IVF, as FAISS's `IndexIVFFlat`: Jegou,
//! Douze, Schmid, *Product quantization for nearest neighbor search*, TPAMI 2011, without the
//! quantization), for large n where the exact search's quadratic cost is too high.

use std::sync::atomic::AtomicUsize;

use faer::{Accum, Mat};
use poisonguard_core::{KnnGraph, derive_seed};
use poisonguard_linalg::matmul;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand::seq::index::sample;

use crate::Progress;
use crate::error::{Error, Result};
use crate::exact::{
    KDTREE_MAX_DIM, RERANK_EXTRA, copies, exact_knn_rows, gemm_candidates, gemm_rounding, rerank,
};
use crate::rows::{Centred, Mapped, Rows, Source, TopK, centre_and_scale, centre_and_scale_of};

/// Parameters of [`approximate_knn`].
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
    /// place its cells and find its candidates in it ([`SHORTLIST_FACTOR`] `k` per row, then
    /// re-ranked by exact distance in the full rows): the fewest leading directions that hold
    /// it, at most a quarter of the features; when a quarter do not hold it (data without a
    /// low-dimensional structure: isotropic noise, uniform) the full rows are searched. 0 (the
    /// default) = always the full rows: the projection is faster for `k = 10` (3.7x at 300,000 x
    /// 512) but slower for `k = 50` (2x at 100,000 x 512), the audit's standardized graph
    /// (benches/RESULTS.md); 0.9 is the share measured there.
    pub projection_variance: f64,
}

impl Default for ApproxParams {
    fn default() -> Self {
        Self { seed: 0x5EED, n_lists: 0, n_probe: 16, kmeans_iter: 10, projection_variance: 0.0 }
    }
}

/// A batch row and its `(GEMM distance^2, neighbour)` candidates within one cell.
type Found = (u32, Vec<(f32, u32)>);

/// Rows per query batch: enough that each cell is asked by about this many rows of a batch
/// (one blocked search of that size per cell), few enough that the batch's per-cell lists stay
/// small beside the graph.
const QUERIES_PER_CELL: usize = 128;
/// Smallest query batch.
const MIN_BATCH: usize = 1024;

/// Training rows per cell for the k-means (FAISS samples 39 to 256 per centroid).
const TRAIN_PER_LIST: usize = 64;
/// Rows per block when assigning rows to cells.
const ASSIGN_BLOCK: usize = 1024;

/// Candidates per neighbour that the projected search hands to the exact re-rank.
pub const SHORTLIST_FACTOR: usize = 4;
/// Rows (a seeded sample) whose covariance gives the projection's principal directions.
const PROJECTION_SAMPLE: usize = 20_000;

/// The approximate `k` nearest neighbours of every row (self excluded).
///
/// 1. Place `n_lists` cells by k-means (seeded sample of 64 rows per cell, seeded initial
///    centroids, `kmeans_iter` Lloyd iterations) and put every row in the cell of its nearest
///    centroid.
/// 2. Search each row among the rows of the `n_probe` cells whose centroids are nearest to the
///    row itself (more cells if needed to hold `k + 1` rows), as FAISS's `IndexIVFFlat` does:
///    matrix products give candidates, exact differences re-rank them (ties by index). Rows go
///    a batch at a time and are grouped by probed cell, so that each cell is one blocked
///    product with the batch rows that probe it; the row's nearest cell is searched first and
///    its `k + 8`-th distance bounds what the other cells may add. Rows with at least `k` exact
///    copies are answered by their copies, as in the exact search.
/// 3. With `projection_variance` > 0 (off by default) and rows of a low-dimensional structure
///    (the fewest leading principal directions of a seeded sample's covariance that hold that
///    share of its variance are at most a quarter of the features: model embeddings, not
///    isotropic noise), steps 1-2 run on the rows projected on those directions, for
///    [`SHORTLIST_FACTOR`] `k` candidates per row, and each row keeps the `k` nearest of them by
///    exact distance in the full rows (FAISS's `PCA` + `IVF` + `RFlat`). Measured at 0.9
///    (benches/RESULTS.md): `k = 10`, 300,000 x 512 rows built from `CIFAR10_0`, 77 s -> 21 s
///    at recall 0.9997 against the full rows' index, `CIFAR10_0` itself recall@10 0.986 (0.987
///    on the full rows); `k = 50`, 100,000 x 512, 13-15 s -> 27-29 s.
///
/// Cost: about `n * n_probe * n / n_lists * d` multiply-adds, against `n^2 d` for the exact
/// search (with the defaults, `n_probe / sqrt(n)` of it). Cells run in parallel and a row's
/// candidates are merged by distance and index, so the graph is identical for any thread count.
/// Up to 12 features the exact k-d tree is fast and is used instead, and also when there are too
/// few cells to skip any.
///
/// Recall@10 against the exact graph, and time (2 cores; `examples/knn_scale --approx`,
/// benches/RESULTS.md): `CIFAR10_0` embeddings (5,263 x 512) 0.987; `24_mnist` (7,603 x 100)
/// 0.998. Probing the cells nearest to each row rather than those nearest to the row's cell
/// (the first version of this index) lifted these from 0.77 and 0.86 at the same cost. Where
/// the data have no structure within a region (isotropic noise, uniform) many rows are almost
/// equally near and recall is lower: for votes and densities the approximate neighbours are
/// still rows of the same region.
///
/// # Errors
/// [`Error::ZeroK`], [`Error::KTooLarge`] when `k >= n_samples`, [`Error::TooManyRows`].
pub fn approximate_knn(
    x: ndarray::ArrayView2<'_, f32>,
    k: usize,
    params: ApproxParams,
) -> Result<KnnGraph> {
    approximate_knn_rows(Rows::View(x), k, params, &Progress::silent())
}

/// [`approximate_knn`] of borrowed or owned rows.
pub(crate) fn approximate_knn_rows(
    rows: Rows<'_>,
    k: usize,
    params: ApproxParams,
    progress: &Progress<'_>,
) -> Result<KnnGraph> {
    approximate_search(rows, k, params, progress).map(|(graph, _)| graph)
}

/// [`approximate_knn_rows`], and the exact distances its re-rank computed (0 when the exact
/// search answers instead): the work a flood must not blow up.
fn approximate_search(
    rows: Rows<'_>,
    k: usize,
    params: ApproxParams,
    progress: &Progress<'_>,
) -> Result<(KnnGraph, usize)> {
    let (n, d) = rows.dim();
    if k == 0 {
        return Err(Error::ZeroK);
    }
    if k >= n {
        return Err(Error::KTooLarge { k, n_samples: n });
    }
    if n > u32::MAX as usize {
        return Err(Error::TooManyRows { n_samples: n });
    }
    let n_lists =
        if params.n_lists == 0 { (n as f64).sqrt().round() as usize } else { params.n_lists }
            .clamp(1, n);
    if d <= KDTREE_MAX_DIM || n_lists <= params.n_probe.max(1) {
        return exact_knn_rows(rows, k, progress).map(|graph| (graph, 0));
    }
    // The rows as the index reads them: owned rows centred in place, borrowed rows (raw or
    // standardized) centred as they are read, so that no n x d copy exists beside them.
    let (x, z) = match rows {
        Rows::Owned(x) => {
            let (mean, scale) = centre_and_scale(&[x.view()]);
            let data = Centred::from_rows_of(Rows::Owned(x), &mean, scale);
            return Ok(search(&data, k, n_lists, params, progress, scale));
        }
        Rows::View(x) => (x, None),
        Rows::Standardized(x, z) => (x, Some(z)),
    };
    let (mean, scale) = centre_and_scale_of(&[x], z);
    Ok(search(&Mapped::new(x, z, mean, scale), k, n_lists, params, progress, scale))
}

/// The index's search of `data` ([`index_search`]); when few principal directions hold
/// `params.projection_variance` of the variance ([`principal_basis`], a `d x p` basis), in the
/// rows' projection on them (FAISS's `PCA` + `IVF` + `RFlat` re-ranking): the projected rows'
/// [`SHORTLIST_FACTOR`] `k` approximate neighbours, each query batch's then re-ranked to the `k`
/// nearest by exact distance in the full rows (ties by index), so that the candidates of one
/// batch exist at a time. The cells and candidates cost about `p / d` of the full search, the
/// re-rank `SHORTLIST_FACTOR k d` per row. Deterministic: the projection is blocked by row and
/// the search is.
fn search<S: Source>(
    data: &S,
    k: usize,
    n_lists: usize,
    params: ApproxParams,
    progress: &Progress<'_>,
    scale: f32,
) -> (KnnGraph, usize) {
    let Some(basis) = principal_basis(data, params.projection_variance, params.seed) else {
        return index_search(data, (k, k), n_lists, params, progress, scale, |_, found| found);
    };
    let n = data.n();
    let projected = project(data, basis.as_ref());
    let shortlist = (SHORTLIST_FACTOR * k).min(n - 1);
    let rerank = |i: usize, found: Vec<(u32, f32)>| -> Vec<(u32, f32)> {
        let mut near = data.distances(&data.row(i), found.into_iter().map(|(j, _)| j));
        near.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        near.into_iter().take(k).map(|(d2, j)| (j, d2.sqrt() as f32)).collect()
    };
    let (graph, work) =
        index_search(&projected, (shortlist, k), n_lists, params, progress, scale, rerank);
    (graph, work + n * shortlist)
}

/// The fewest leading principal directions (`d x p`, f32) of the covariance of a seeded sample
/// of the rows (all rows up to [`PROJECTION_SAMPLE`]) that hold a share `variance` of its
/// trace, if at most `d / 4` do (a projection that does not shrink the rows fourfold is not
/// worth its re-rank); `None` otherwise, or when `variance` is 0 or the eigendecomposition fails.
fn principal_basis<S: Source>(data: &S, variance: f64, seed: u64) -> Option<Mat<f32>> {
    let (n, d) = (data.n(), data.d());
    if variance <= 0.0 || d < 4 {
        return None;
    }
    let mut rng = SmallRng::seed_from_u64(derive_seed(seed, 1));
    let mut rows: Vec<u32> = if n > PROJECTION_SAMPLE {
        sample(&mut rng, n, PROJECTION_SAMPLE).into_iter().map(|i| i as u32).collect()
    } else {
        (0..n as u32).collect()
    };
    rows.sort_unstable();
    let sampled = data.gather(&rows);
    let mean: Vec<f64> = (0..d)
        .map(|j| (0..sampled.n).map(|r| f64::from(sampled.row(r)[j])).sum::<f64>())
        .map(|s| s / sampled.n.max(1) as f64)
        .collect();
    let centred = Mat::<f64>::from_fn(sampled.n, d, |r, j| f64::from(sampled.row(r)[j]) - mean[j]);
    let cov = poisonguard_linalg::at_b(centred.as_ref(), centred.as_ref());
    // eigenvalues ascending: the leading directions are the last columns
    let (values, vectors) = poisonguard_linalg::sym_eigen(cov.as_ref())?;
    let total: f64 = values.iter().map(|v| v.max(0.0)).sum();
    let mut held = 0.0;
    let dims = (1..=d / 4).find(|&p| {
        held += values[d - p].max(0.0);
        held >= variance * total
    })?;
    (total > 0.0).then(|| Mat::from_fn(d, dims, |j, a| vectors[(j, d - 1 - a)] as f32))
}

/// The rows of `data` times `basis` (`d x dims`): `n x dims`, a block of rows at a time.
fn project<S: Source>(data: &S, basis: faer::MatRef<'_, f32>) -> Centred {
    let (n, dims) = (data.n(), basis.ncols());
    let block = |b: usize| -> Vec<f32> {
        let rows: Vec<u32> =
            (b * ASSIGN_BLOCK..((b + 1) * ASSIGN_BLOCK).min(n)).map(|i| i as u32).collect();
        let q = data.gather(&rows);
        let mut out = Mat::<f32>::zeros(rows.len(), dims);
        matmul(out.as_mut(), Accum::Replace, q.mat(), basis, 1.0f32);
        (0..rows.len())
            .flat_map(|r| (0..dims).map(move |a| (r, a)))
            .map(|(r, a)| out[(r, a)])
            .collect()
    };
    let data: Vec<f32> =
        crate::map_range(n.div_ceil(ASSIGN_BLOCK), block).into_iter().flatten().collect();
    Centred::from_rows(data, dims)
}

/// The index's search of the rows of `data` (centred, scaled by `scale`): cells by k-means,
/// each row's `n_probe` nearest cells searched for its `k` nearest, candidates re-ranked
/// exactly; `finish(i, neighbours)` then turns row `i`'s `k` neighbours (index, distance;
/// nearest first) into the `out_k` the graph keeps, a query batch at a time (the identity for
/// the plain search; the full rows' re-rank of the projected one in [`search`]). Returns the graph
/// (distances scaled back) and the exact distances the re-rank computed.
fn index_search<S: Source>(
    data: &S,
    (k, out_k): (usize, usize),
    n_lists: usize,
    params: ApproxParams,
    progress: &Progress<'_>,
    scale: f32,
    finish: impl Fn(usize, Vec<(u32, f32)>) -> Vec<(u32, f32)> + Sync,
) -> (KnnGraph, usize) {
    let n = data.n();
    let work = AtomicUsize::new(0);
    let cells = Cells::place(data, n_lists, params);

    let mut indices = vec![0u32; n * out_k];
    let mut distances = vec![0f32; n * out_k];
    let mut write = |i: usize, row: Vec<(u32, f32)>| {
        for (slot, (j, dist)) in row.into_iter().enumerate() {
            indices[i * out_k + slot] = j;
            distances[i * out_k + slot] = dist;
        }
    };
    // rows with at least k exact copies are answered by them, as in the exact search (a flood
    // of identical rows would otherwise send every copy to the exhaustive re-rank)
    let copied = copies(data, k);
    for (i, answer) in &copied {
        let i = *i as usize;
        write(i, finish(i, answer.iter().map(|&j| (j, 0.0)).collect()));
    }
    let batch_rows = cells.batch_rows(n);
    for start in (0..n).step_by(batch_rows) {
        let end = (start + batch_rows).min(n);
        let batch: Vec<u32> = (start as u32..end as u32)
            .filter(|&i| copied.binary_search_by_key(&i, |c| c.0).is_err())
            .collect();
        let rows = cells.search_batch(data, &batch, k, &work, &finish);
        for (qi, row) in rows.into_iter().enumerate() {
            write(batch[qi] as usize, row);
        }
        progress.add(end - start);
    }
    (KnnGraph::new(n, out_k, indices, distances).scale_distances(1.0 / scale), work.into_inner())
}

/// The index's cells: k-means centroids and the rows of each cell (indices of the rows the
/// index was placed on), searched `n_probe` cells per query row.
#[derive(Clone)]
struct Cells {
    centroids: Centred,
    lists: Vec<Vec<u32>>,
    sizes: Vec<usize>,
    n_probe: usize,
    /// The largest squared norm of an indexed row (bounds the GEMM rounding).
    max_norm: f64,
}

impl Cells {
    /// `n_lists` cells placed by k-means on the rows of `data`, every row in its nearest cell.
    fn place<S: Source>(data: &S, n_lists: usize, params: ApproxParams) -> Self {
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
        Self { centroids, lists, sizes, n_probe, max_norm: data.max_norm() }
    }

    /// Query rows per batch, of `n` in all.
    fn batch_rows(&self, n: usize) -> usize {
        (QUERIES_PER_CELL * self.lists.len() / self.n_probe).max(MIN_BATCH).min(n.max(1))
    }

    /// The `k` nearest indexed rows of each row `batch` of `data` (the query itself left out
    /// when it is an indexed row), by exact distance, each passed through `finish(row, found)`.
    ///
    /// Each row's `n_probe` nearest cells, then the pairs are grouped by cell, so that each
    /// probed cell is one blocked search of the batch rows that probe it (its rows read once
    /// per batch, as in FAISS's search by inverted list). The per-(row, cell) lists exist for
    /// one batch. Cells are searched in parallel, and a row's lists are merged by exact
    /// distance and index, so the result is the same for any thread count and batching.
    fn search_batch<S: Source>(
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
        let first = search_cells(data, lists, batch, &askers, cap, None);
        let mut merged: Vec<TopK<f32>> = batch.iter().map(|_| TopK::new(cap)).collect();
        merge(&mut merged, batch, first);
        let max_norm = self.max_norm;
        let limits: Vec<f32> = merged
            .iter()
            .zip(batch)
            .map(|(top, &i)| {
                let slack = 2.0 * gemm_rounding(d, data.norm(i as usize), max_norm);
                top.worst().map_or(f32::INFINITY, |w| (f64::from(w) + slack) as f32)
            })
            .collect();
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
        let rest = search_cells(data, lists, batch, &askers, cap, Some(&limits));
        merge(&mut merged, batch, rest);
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

/// An inverted-file index over a set of reference rows that answers queries by other rows (a
/// fitted detector's training rows, asked about new rows batch by batch): the cells are placed
/// once, by [`approximate_knn`]'s k-means and parameters, and each query is searched as
/// [`approximate_knn`] searches its own rows, in the reference's centring and scale (so that a
/// query's neighbours do not depend on the other queries of its batch).
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
        let cells = Cells::place(&rows, n_lists, params);
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
        for batch in all.chunks(self.cells.batch_rows(q)) {
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
/// limit when given) of the batch rows `askers[c]` in each cell `c`, in global indices; cells
/// in parallel.
fn search_cells<S: Source>(
    data: &S,
    lists: &[Vec<u32>],
    batch: &[u32],
    askers: &[Vec<u32>],
    cap: usize,
    limits: Option<&[f32]>,
) -> Vec<Vec<Found>> {
    let search_cell = |c: usize| -> Vec<Found> {
        let asking = &askers[c];
        if asking.is_empty() {
            return Vec::new();
        }
        let reference = data.gather(&lists[c]);
        let rows: Vec<u32> = asking.iter().map(|&qi| batch[qi as usize]).collect();
        let lim: Option<Vec<f32>> =
            limits.map(|l| asking.iter().map(|&qi| l[qi as usize]).collect());
        let tops = gemm_candidates(
            &reference,
            data,
            (cap + 1).min(reference.n),
            false,
            &rows,
            lim.as_deref(),
        );
        asking
            .iter()
            .zip(tops)
            .map(|(&qi, top)| {
                (qi, top.items.into_iter().map(|(d2, j)| (d2, lists[c][j as usize])).collect())
            })
            .collect()
    };
    crate::map_range(lists.len(), search_cell)
}

/// Each batch row's candidates from its cells into its list of the `cap` nearest, self left out
/// (the same list whatever order they come in: it orders by distance, then index).
fn merge(merged: &mut [TopK<f32>], batch: &[u32], found: Vec<Vec<Found>>) {
    for (qi, cands) in found.into_iter().flatten() {
        let i = batch[qi as usize];
        let top = &mut merged[qi as usize];
        for (d2, j) in cands {
            if j != i {
                top.push(d2, j);
            }
        }
    }
}

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
        let mut g = Mat::<f32>::zeros(end - start, m);
        matmul(g.as_mut(), Accum::Replace, q.mat(), cmat.transpose(), 1.0f32);
        let mut out = Vec::with_capacity((end - start) * p);
        let mut scores: Vec<(f32, u32)> = Vec::with_capacity(m);
        for r in 0..end - start {
            // |q - c|^2 less the query's own norm, which does not change the order
            scores.clear();
            scores.extend((0..m).map(|c| (centroids.norm(c) - 2.0 * g[(r, c)], c as u32)));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exact::tests::table;

    /// The projection is taken where few directions hold 90% of the variance (rank-4 structure
    /// in 48 features: at most 4 of the 12 allowed) and not where none do (uniform rows).
    #[test]
    fn projection_only_where_few_directions_hold_the_variance() {
        let mut rng = SmallRng::seed_from_u64(3);
        let (n, d) = (2000, 48);
        let basis: Vec<f32> =
            (0..4 * d).map(|_| rand::Rng::random_range(&mut rng, -1.0..1.0)).collect();
        let mut low = Vec::with_capacity(n * d);
        for _ in 0..n {
            let z: Vec<f32> =
                (0..4).map(|_| rand::Rng::random_range(&mut rng, -3.0..3.0)).collect();
            low.extend((0..d).map(|j| (0..4).map(|a| z[a] * basis[a * d + j]).sum::<f32>()));
        }
        let low = Centred::from_rows(low, d);
        let p = principal_basis(&low, 0.9, 1).expect("a projection");
        assert!(p.ncols() <= 4 && p.nrows() == d, "{} directions", p.ncols());
        assert!(principal_basis(&low, 0.0, 1).is_none());
        let uniform: Vec<f32> =
            (0..n * d).map(|_| rand::Rng::random_range(&mut rng, -1.0..1.0)).collect();
        assert!(principal_basis(&Centred::from_rows(uniform, d), 0.9, 1).is_none());
    }

    /// The index answers rows it does not hold: recall@10 against the exact query of at least
    /// 0.9 on clustered rows (4,000 indexed, 1,000 asked), the same answer for any split of the
    /// queries into calls, and an indexed row asked again finds itself at distance 0.
    #[test]
    fn the_index_answers_new_rows() {
        let x = table(false);
        let (reference, queries) = (
            x.slice_axis(ndarray::Axis(0), (0..3000).into()),
            x.slice_axis(ndarray::Axis(0), (3000..4000).into()),
        );
        let index = IvfIndex::build(reference, ApproxParams::default()).unwrap();
        assert_eq!(index.n_rows(), 3000);
        let found = index.query(queries, 10).unwrap();
        let exact = crate::exact_knn_query(reference, queries, 10).unwrap();
        let hits: usize = (0..1000)
            .map(|i| found.neighbors(i).iter().filter(|j| exact.neighbors(i).contains(j)).count())
            .sum();
        let recall = hits as f64 / 10_000.0;
        println!("recall@10 {recall}");
        assert!(recall >= 0.9, "recall {recall}");
        let halves = [
            index.query(queries.slice_axis(ndarray::Axis(0), (0..400).into()), 10).unwrap(),
            index.query(queries.slice_axis(ndarray::Axis(0), (400..1000).into()), 10).unwrap(),
        ];
        for i in 0..1000 {
            let (h, r) = if i < 400 { (&halves[0], i) } else { (&halves[1], i - 400) };
            assert_eq!(found.neighbors(i), h.neighbors(r), "row {i}");
            assert_eq!(found.distances(i), h.distances(r), "row {i}");
        }
        // fewer neighbours are the first of more (one search serves every k up to its own)
        let nearest = index.query(queries, 1).unwrap();
        let first = found.truncate(1);
        for i in 0..1000 {
            assert_eq!(nearest.neighbors(i), first.neighbors(i), "row {i}");
            assert_eq!(nearest.distances(i), first.distances(i), "row {i}");
        }
        let again = index.query(reference.slice_axis(ndarray::Axis(0), (0..50).into()), 3).unwrap();
        for i in 0..50 {
            assert_eq!(again.neighbors(i)[0] as usize, i);
            assert_eq!(again.distances(i)[0], 0.0);
        }
        assert!(index.query(queries, 0).is_err());
        assert!(index.query(x.slice_axis(ndarray::Axis(1), (0..5).into()), 3).is_err());
    }

    /// As the exact search's test: a flood costs the index's re-rank at most twice the clean
    /// table's exact distances.
    #[test]
    fn a_flood_costs_at_most_twice_the_clean_work() {
        let work = |x: &ndarray::Array2<f32>| {
            approximate_search(
                Rows::View(x.view()),
                10,
                ApproxParams::default(),
                &Progress::silent(),
            )
            .unwrap()
            .1
        };
        let (clean, flooded) = (work(&table(false)), work(&table(true)));
        assert!(clean > 0);
        assert!(flooded <= 2 * clean, "clean {clean}, flooded {flooded}");
    }

    /// The index reads borrowed rows centred (and standardized) as it goes: the same graph, up
    /// to rounding, as from the centred copy it held before (owned rows); with and without a
    /// flood, with features of very different scales and with one so large that the rows are
    /// scaled down (the median centre).
    #[test]
    fn rows_read_as_they_go_search_as_their_copy() {
        let params = ApproxParams { n_lists: 40, n_probe: 4, ..ApproxParams::default() };
        let search = |rows: Rows<'_>| approximate_knn_rows(rows, 10, params, &Progress::silent());
        let mut huge = table(false);
        huge[[3, 5]] = 1e30;
        for mut x in [table(false), table(true), huge] {
            for (j, mut col) in x.columns_mut().into_iter().enumerate() {
                col.mapv_inplace(|v| v * (1 + 7 * j) as f32 + j as f32);
            }
            // rows read through the f32 map differ from the copy's by rounding (a few f32
            // ulps), so may the distances (relative 1e-5 is 100 ulps) and, at near-ties, the
            // order of the neighbours
            let agree = |read: &KnnGraph, copy: &KnnGraph| {
                let mut same = 0;
                for i in 0..x.nrows() {
                    let pairs = read.neighbors(i).iter().zip(copy.neighbors(i));
                    same += pairs.filter(|(a, b)| a == b).count();
                    for (a, b) in read.distances(i).iter().zip(copy.distances(i)) {
                        assert!((a - b).abs() <= 1e-5 * (1.0 + b), "row {i}: {a} against {b}");
                    }
                }
                assert!(same as f64 >= 0.999 * (10 * x.nrows()) as f64, "{same} agree");
            };
            let copy = search(Rows::Owned(x.clone())).unwrap();
            agree(&search(Rows::View(x.view())).unwrap(), &copy);
            let z = poisonguard_core::Standardizer::fit(x.view());
            let standardized = search(Rows::Owned(z.transform(x.view()))).unwrap();
            agree(&search(Rows::Standardized(x.view(), &z)).unwrap(), &standardized);
            assert_ne!(standardized, copy);
        }
    }

    /// Progress of the index search: every row counted once (the flood's copies too), in
    /// increasing order, ending at `n`; the graph is the one the silent search builds.
    #[test]
    fn progress_counts_every_row_once() {
        let x = table(true);
        let params = ApproxParams { n_lists: 40, n_probe: 4, ..ApproxParams::default() };
        let seen = std::sync::Mutex::new(Vec::new());
        let report = |done: usize, total: usize| seen.lock().unwrap().push((done, total));
        let progress = Progress::new(x.nrows(), &report);
        let (graph, _) = approximate_search(Rows::View(x.view()), 10, params, &progress).unwrap();
        assert_eq!(graph, approximate_knn(x.view(), 10, params).unwrap());
        let seen = seen.into_inner().unwrap();
        assert!(seen.len() > 1, "{seen:?}");
        assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "{seen:?}");
        assert!(seen.iter().all(|&(_, total)| total == 4000));
        assert_eq!(seen.last(), Some(&(4000, 4000)));
    }
}
