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
use crate::exact::{KDTREE_MAX_DIM, copies, exact_knn_rows};
use crate::ivf::{ASSIGN_BLOCK, ApproxParams, Cells};
use crate::rows::{Centred, Mapped, Rows, Source, centre_and_scale, centre_and_scale_of};

/// Candidates per neighbour that the projected search hands to the exact re-rank.
pub const SHORTLIST_FACTOR: usize = 4;
/// Largest copy of the rows (bytes of f32) the index holds in cell order (FAISS's inverted
/// lists) to search from instead of the caller's rows: the 50-NN graph of 10^5 x 128 (a 51 MB
/// copy) gathered each probed cell's rows for every query batch and re-ranked candidates
/// scattered over the table. Above it the rows are read where they are, so that a table near
/// the memory's limit gets no second copy (10^6 x 512 f32 is 2 GB).
const HELD_BYTES: usize = 256 << 20;
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
    approximate_search(rows, k, params, progress, HELD_BYTES).map(|(graph, _)| graph)
}

/// [`approximate_knn_rows`], and the exact distances its re-rank computed (0 when the exact
/// search answers instead): the work a flood must not blow up. The index holds a copy of the
/// rows in cell order when it takes at most `held_bytes` ([`HELD_BYTES`]).
fn approximate_search(
    rows: Rows<'_>,
    k: usize,
    params: ApproxParams,
    progress: &Progress<'_>,
    held_bytes: usize,
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
            return Ok(search(&data, k, (n_lists, held_bytes), params, progress, scale));
        }
        Rows::View(x) => (x, None),
        Rows::Standardized(x, z) => (x, Some(z)),
    };
    let (mean, scale) = centre_and_scale_of(&[x], z);
    let data = Mapped::new(x, z, mean, scale);
    Ok(search(&data, k, (n_lists, held_bytes), params, progress, scale))
}

/// The index's search of `data` ([`index_search`]); when few principal directions hold
/// `params.projection_variance` of the variance ([`principal_basis`], a `d x p` basis), in the
/// rows' projection on them (FAISS's `PCA` + `IVF` + `RFlat` re-ranking): the projected rows'
/// [`SHORTLIST_FACTOR`] `k` approximate neighbours, each query batch's then re-ranked to the `k`
/// nearest by exact distance in the full rows (ties by index), so that the candidates of one
/// batch exist at a time. The cells and candidates cost about `p / d` of the full search, the
/// re-rank `SHORTLIST_FACTOR k d` per row. Deterministic: the projection is blocked by row and
/// the search is. `cells` = (cells of the index, the most bytes of a held copy), as
/// [`index_search`] takes them.
fn search<S: Source>(
    data: &S,
    k: usize,
    cells: (usize, usize),
    params: ApproxParams,
    progress: &Progress<'_>,
    scale: f32,
) -> (KnnGraph, usize) {
    let Some(basis) = principal_basis(data, params.projection_variance, params.seed) else {
        return index_search(data, (k, k), cells, params, progress, scale, |_, found| found);
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
        index_search(&projected, (shortlist, k), cells, params, progress, scale, rerank);
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

/// The index's search of the rows of `data` (centred, scaled by `scale`), `n_lists = (cells,
/// held_bytes)` ([`approximate_search`]): cells by k-means,
/// each row's `n_probe` nearest cells searched for its `k` nearest, candidates re-ranked
/// exactly; `finish(i, neighbours)` then turns row `i`'s `k` neighbours (index, distance;
/// nearest first) into the `out_k` the graph keeps, a query batch at a time (the identity for
/// the plain search; the full rows' re-rank of the projected one in [`search`]). Returns the graph
/// (distances scaled back) and the exact distances the re-rank computed.
fn index_search<S: Source>(
    data: &S,
    (k, out_k): (usize, usize),
    (n_lists, held_bytes): (usize, usize),
    params: ApproxParams,
    progress: &Progress<'_>,
    scale: f32,
    finish: impl Fn(usize, Vec<(u32, f32)>) -> Vec<(u32, f32)> + Sync,
) -> (KnnGraph, usize) {
    let n = data.n();
    let work = AtomicUsize::new(0);
    let hold = n * data.d() * std::mem::size_of::<f32>() <= held_bytes;
    let cells = Cells::place(data, n_lists, params, hold);

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
    let batch_rows = cells.batch_rows(n, k);
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
#[cfg(test)]
mod tests {
    use super::*;
    use crate::exact::tests::table;
    use crate::ivf::IvfIndex;

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
                HELD_BYTES,
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

    /// The index's copy of the rows in cell order changes nothing: the same graph, bit for bit,
    /// as the search that reads the rows where they are (borrowed, standardized and owned).
    #[test]
    fn the_held_copy_searches_as_the_rows() {
        let params = ApproxParams { n_lists: 40, n_probe: 4, ..ApproxParams::default() };
        let x = table(true);
        let z = poisonguard_core::Standardizer::fit(x.view());
        let rows =
            || [Rows::View(x.view()), Rows::Standardized(x.view(), &z), Rows::Owned(x.clone())];
        for (a, b) in rows().into_iter().zip(rows()) {
            let silent = Progress::silent();
            let held = approximate_search(a, 10, params, &silent, usize::MAX).unwrap();
            let read = approximate_search(b, 10, params, &silent, 0).unwrap();
            assert_eq!(held, read);
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
        let (graph, _) =
            approximate_search(Rows::View(x.view()), 10, params, &progress, HELD_BYTES).unwrap();
        assert_eq!(graph, approximate_knn(x.view(), 10, params).unwrap());
        let seen = seen.into_inner().unwrap();
        assert!(seen.len() > 1, "{seen:?}");
        assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "{seen:?}");
        assert!(seen.iter().all(|&(_, total)| total == 4000));
        assert_eq!(seen.last(), Some(&(4000, 4000)));
    }
}
