//! Approximate kNN graph by an inverted-file index (IVF, as FAISS's `IndexIVFFlat`: Jegou,
//! Douze, Schmid, *Product quantization for nearest neighbor search*, TPAMI 2011, without the
//! quantization), for large n where the exact search's quadratic cost is too high.

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, Par};
use poisonguard_core::{KnnGraph, derive_seed};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand::seq::index::sample;

use crate::error::{Error, Result};
use crate::exact::{Centred, KDTREE_MAX_DIM, Rows, centre_and_scale, exact_knn_rows, gemm_search};

/// Parameters of [`approximate_knn`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ApproxParams {
    /// Seed of the k-means sample and initial centroids.
    pub seed: u64,
    /// Cells of the index; 0 = `round(sqrt(n))`.
    pub n_lists: usize,
    /// Cells searched for the rows of each cell (the cell itself and its nearest cells).
    pub n_probe: usize,
    /// Lloyd iterations of the k-means that places the cells.
    pub kmeans_iter: usize,
}

impl Default for ApproxParams {
    fn default() -> Self {
        Self { seed: 0x5EED, n_lists: 0, n_probe: 8, kmeans_iter: 10 }
    }
}

/// A row and its `(neighbour, distance)` list.
type Found = (u32, Vec<(u32, f32)>);

/// Cells searched between two writes into the graph (bounds the per-row lists held at once).
const CELL_BATCH: usize = 64;

/// Training rows per cell for the k-means (FAISS samples 39 to 256 per centroid).
const TRAIN_PER_LIST: usize = 64;
/// Rows per block when assigning rows to cells.
const ASSIGN_BLOCK: usize = 1024;

/// The approximate `k` nearest neighbours of every row (self excluded).
///
/// 1. Place `n_lists` cells by k-means (seeded sample of 64 rows per cell, seeded initial
///    centroids, `kmeans_iter` Lloyd iterations) and put every row in the cell of its nearest
///    centroid.
/// 2. For the rows of each cell, search exactly (blocked GEMM, exact re-rank, ties by index)
///    among the rows of the `n_probe` cells whose centroids are nearest to the cell's own
///    (more cells if needed to hold `k + 1` rows).
///
/// Cost: about `n * n_probe * n / n_lists * d` multiply-adds, against `n^2 d` for the exact
/// search (with the defaults, `8 / sqrt(n)` of it). Cells run in parallel and each is
/// single-threaded, so the graph is identical for any thread count. Up to 12 features the exact
/// k-d tree is fast and is used instead, and also when there are too few cells to skip any.
///
/// Measured with `examples/knn_scale --approx`, k = 10, 2 cores (exact time in brackets):
/// 20 well-separated clusters (`tests/oracle.rs`) recall 1.00; `24_mnist` (7,603 x 100) 0.86 in
/// 0.05 s (0.15 s); `CIFAR10_0` embeddings (5,263 x 512) 0.77 in 0.11 s (0.18 s); a 10-class
/// Gaussian mixture of 100,000 x 128 with heavy within-class noise 0.52 in 1.6 s (19.2 s). Low
/// recall there means near-ties among many equally distant rows: for votes and densities the
/// approximate neighbours are still rows of the same region.
///
/// # Errors
/// [`Error::ZeroK`], [`Error::KTooLarge`] when `k >= n_samples`, [`Error::TooManyRows`].
pub fn approximate_knn(
    x: ndarray::ArrayView2<'_, f32>,
    k: usize,
    params: ApproxParams,
) -> Result<KnnGraph> {
    approximate_knn_rows(Rows::View(x), k, params)
}

/// [`approximate_knn`] of borrowed or owned rows.
pub(crate) fn approximate_knn_rows(
    rows: Rows<'_>,
    k: usize,
    params: ApproxParams,
) -> Result<KnnGraph> {
    let (n, d) = rows.view().dim();
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
        return exact_knn_rows(rows, k);
    }
    let (mean, scale) = centre_and_scale(&[rows.view()]);
    let data = Centred::from_rows_of(rows, &mean, scale);
    let centroids = kmeans(&data, n_lists, params);
    let cell = assign(&data, &centroids);
    let mut lists: Vec<Vec<u32>> = vec![Vec::new(); n_lists];
    for (i, &c) in cell.iter().enumerate() {
        lists[c as usize].push(i as u32);
    }

    let search_cell = |c: usize| -> Vec<Found> {
        let queries = &lists[c];
        if queries.is_empty() {
            return Vec::new();
        }
        // cells by centroid distance to this one, ties by index
        let mut order: Vec<(f64, usize)> = (0..n_lists)
            .map(|e| {
                let d2: f64 = centroids
                    .row(c)
                    .iter()
                    .zip(centroids.row(e))
                    .map(|(&a, &b)| f64::from(a - b) * f64::from(a - b))
                    .sum();
                (d2, e)
            })
            .collect();
        order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut cands: Vec<u32> = Vec::new();
        for (taken, &(_, e)) in order.iter().enumerate() {
            if taken >= params.n_probe && cands.len() > k {
                break;
            }
            cands.extend_from_slice(&lists[e]);
        }
        // Candidates in cell order, nearest cell (the query's own) first, so the bound of the
        // top-k scan tightens early; exact ties are put back in global index order below.
        let reference = data.gather(&cands);
        let q = data.gather(queries);
        let kk = (k + 1).min(cands.len());
        let local = gemm_search(&reference, &q, kk, false);
        queries
            .iter()
            .enumerate()
            .map(|(qi, &i)| {
                let mut row: Vec<(u32, f32)> = local
                    .neighbors(qi)
                    .iter()
                    .zip(local.distances(qi))
                    .map(|(&j, &dist)| (cands[j as usize], dist))
                    .filter(|&(j, _)| j != i)
                    .collect();
                row.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
                row.truncate(k);
                (i, row)
            })
            .collect()
    };
    let mut indices = vec![0u32; n * k];
    let mut distances = vec![0f32; n * k];
    // Cells are searched in parallel a batch at a time and their rows written into the graph at
    // once, so the per-row neighbour lists exist for one batch of cells, not for all n rows
    // beside the graph (at 10^6 rows and k = 50 that was 0.45 GB). The result does not depend
    // on the batching.
    let cells: Vec<usize> = (0..n_lists).collect();
    for batch in cells.chunks(CELL_BATCH) {
        #[cfg(feature = "parallel")]
        let found: Vec<Vec<Found>> = {
            use rayon::prelude::*;
            batch.par_iter().map(|&c| search_cell(c)).collect()
        };
        #[cfg(not(feature = "parallel"))]
        let found: Vec<Vec<Found>> = batch.iter().map(|&c| search_cell(c)).collect();
        for (i, row) in found.into_iter().flatten() {
            let i = i as usize;
            for (slot, (j, dist)) in row.into_iter().enumerate() {
                indices[i * k + slot] = j;
                distances[i * k + slot] = dist;
            }
        }
    }
    Ok(KnnGraph::new(n, k, indices, distances).scale_distances(1.0 / scale))
}

/// k-means centroids (Lloyd) trained on a seeded sample of the rows.
fn kmeans(data: &Centred, n_lists: usize, params: ApproxParams) -> Centred {
    let (n, d) = (data.n, data.d);
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
    for _ in 0..params.kmeans_iter {
        let cell = assign(&train, &centroids);
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

/// The nearest centroid of every row (ties by the lower index), by blocked GEMM.
fn assign(data: &Centred, centroids: &Centred) -> Vec<u32> {
    let (n, m) = (data.n, centroids.n);
    let cmat = centroids.mat();
    let block = |start: usize| -> Vec<u32> {
        let end = (start + ASSIGN_BLOCK).min(n);
        let mut g = Mat::<f32>::zeros(end - start, m);
        let rows = data.mat().subrows(start, end - start);
        matmul(g.as_mut(), Accum::Replace, rows, cmat.transpose(), 1.0f32, Par::Seq);
        (0..end - start)
            .map(|r| {
                let mut best = (f32::INFINITY, 0u32);
                for c in 0..m {
                    let score = centroids.norm(c) - 2.0 * g[(r, c)];
                    if score < best.0 {
                        best = (score, c as u32);
                    }
                }
                best.1
            })
            .collect()
    };
    let starts: Vec<usize> = (0..n).step_by(ASSIGN_BLOCK).collect();
    #[cfg(feature = "parallel")]
    let parts: Vec<Vec<u32>> = {
        use rayon::prelude::*;
        starts.par_iter().map(|&s| block(s)).collect()
    };
    #[cfg(not(feature = "parallel"))]
    let parts: Vec<Vec<u32>> = starts.iter().map(|&s| block(s)).collect();
    parts.into_iter().flatten().collect()
}
