//! Exact kNN by blocked matrix products.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use faer::{Accum, Mat, MatMut, MatRef};
use ndarray::ArrayView2;
use poisonguard_linalg::matmul;

use crate::Progress;
use crate::error::{Error, Result};
use crate::rows::{Block, Candidates, Centred, Rows, Source, TopK, centre_and_scale};
use poisonguard_core::KnnGraph;

/// Query rows per task (one GEMM panel of `REF_BLOCK x QUERY_BLOCK` f32 = 2 MiB).
const QUERY_BLOCK: usize = 256;
/// Reference rows per GEMM.
const REF_BLOCK: usize = 2048;
/// Reference rows tested at once in the scan of one query's products.
const SCAN_CHUNK: usize = 32;
const _: () = assert!(SCAN_CHUNK <= 64, "a chunk's tests are bits of a u64");
/// Extra candidates kept from the GEMM distances and re-ranked with exact differences, so that
/// rounding in `|a|^2 + |b|^2 - 2ab` cannot change which neighbours are returned (up to ties
/// closer than f32 resolution, which are broken by index).
pub(crate) const RERANK_EXTRA: usize = 8;

/// Up to this many features a k-d tree answers the queries; above, blocked matrix products.
/// Measured on 50k uniform rows (the worst case: intrinsic dimension = d), k = 10: at d = 10 the
/// tree takes 1.07 s against 3.55 s for the products, at d = 16 8.74 s against 3.69 s.
pub const KDTREE_MAX_DIM: usize = 12;

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
    let answer = |top: &TopK<f32>, i: u32| {
        let i = i as usize;
        let all = || (0..n_ref as u32).filter(|&j| !(exclude_self && j as usize == i)).collect();
        rerank(reference, queries.row(i), queries.norms[i], top, (k, cap), max_norm, all, work)
    };
    if exclude_self {
        // a self-search: one product per pair of tiles, then the re-rank of every row
        let tops = gemm_self_candidates(reference, cap, ids, progress);
        let block = |b: usize| -> Vec<Vec<(u32, f32)>> {
            let at = b * QUERY_BLOCK..((b + 1) * QUERY_BLOCK).min(ids.len());
            tops[at.clone()].iter().zip(&ids[at]).map(|(top, &i)| answer(top, i)).collect()
        };
        return crate::map_range(ids.len().div_ceil(QUERY_BLOCK), block)
            .into_iter()
            .flatten()
            .collect();
    }
    let all = reference.block(0..n_ref);
    let block = |start: usize| -> Vec<Vec<(u32, f32)>> {
        let block_ids = &ids[start..(start + QUERY_BLOCK).min(ids.len())];
        let tops = gemm_candidates(all, queries, cap, exclude_self, block_ids, None);
        let answers =
            tops.into_iter().zip(block_ids).map(|(top, &i)| answer(&top.into_top(), i)).collect();
        progress.add(block_ids.len());
        answers
    };
    crate::map_range(ids.len().div_ceil(QUERY_BLOCK), |b| block(b * QUERY_BLOCK))
        .into_iter()
        .flatten()
        .collect()
}

/// The `cap` reference rows nearest to each query row of `ids` by the GEMM expression
/// `|q|^2 + |r|^2 - 2 q.r` (f32; approximate), in `ids` order, each as the lazy list that
/// kept them ([`Candidates::into_top`] sorts it); single-threaded. With
/// `exclude_self` (queries = reference) a row is not its own candidate; with `limits` (one per
/// query) only rows at most that far (squared) are kept.
pub(crate) fn gemm_candidates<Q: Source>(
    reference: Block<'_>,
    queries: &Q,
    cap: usize,
    exclude_self: bool,
    ids: &[u32],
    limits: Option<&[f32]>,
) -> Vec<Candidates> {
    let n_ref = reference.mat.nrows();
    let mut tops: Vec<Candidates> = ids.iter().map(|_| Candidates::new(cap)).collect();
    PRODUCTS.with_borrow_mut(|products| {
        products.resize(REF_BLOCK.min(n_ref) * QUERY_BLOCK.min(ids.len()), 0.0);
        products_of(reference, queries, (exclude_self, ids, limits), products, &mut tops);
    });
    tops
}

thread_local! {
    /// Each thread's buffer of [`gemm_candidates`]' products (`REF_BLOCK x QUERY_BLOCK` at most).
    static PRODUCTS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// [`gemm_candidates`] into `tops`, the products in `products`.
fn products_of<Q: Source>(
    reference: Block<'_>,
    queries: &Q,
    (exclude_self, ids, limits): (bool, &[u32], Option<&[f32]>),
    products: &mut [f32],
    tops: &mut [Candidates],
) {
    let (data, n_ref) = (reference.mat, reference.mat.nrows());
    for (b, block_ids) in ids.chunks(QUERY_BLOCK).enumerate() {
        let tops = &mut tops[b * QUERY_BLOCK..b * QUERY_BLOCK + block_ids.len()];
        // the block's query rows, gathered (a block of the answered rows, not a copy of all)
        let rows = queries.gather(block_ids);
        let q = rows.mat();
        let mut r0 = 0;
        while r0 < n_ref {
            let r1 = (r0 + REF_BLOCK).min(n_ref);
            let r = data.subrows(r0, r1 - r0);
            // g = R Q^T, so that each query's products with the reference block are one
            // contiguous column and the scan below reads memory in order (in the thread's
            // buffer: a fresh zeroed matrix per call, thousands per search, was 5% of it)
            let products = &mut products[..(r1 - r0) * block_ids.len()];
            let mut g = MatMut::from_column_major_slice_mut(products, r1 - r0, block_ids.len());
            matmul(g.as_mut(), Accum::Replace, r, q.transpose(), 1.0f32);
            pulp::Arch::new().dispatch(ScanBlock {
                g: g.as_ref(),
                norms: &reference.norms[r0..r1],
                r0,
                queries,
                block_ids,
                limits: limits.map(|l| &l[b * QUERY_BLOCK..]),
                exclude_self,
                tops,
            });
            r0 = r1;
        }
    }
}

/// [`scan`] of every query of a block against one reference block's products (column `qi` of
/// `g` for query `block_ids[qi]`), in vector registers: `pulp` compiles it for the CPU's widest
/// vectors and picks that version at run time (the tests are the same comparisons of the same
/// f32 values, so the same candidates on every CPU).
struct ScanBlock<'a, 'b, Q> {
    g: MatRef<'a, f32>,
    norms: &'a [f32],
    r0: usize,
    queries: &'a Q,
    block_ids: &'a [u32],
    limits: Option<&'a [f32]>,
    exclude_self: bool,
    tops: &'b mut [Candidates],
}

impl<Q: Source> pulp::WithSimd for ScanBlock<'_, '_, Q> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        for (qi, top) in self.tops.iter_mut().enumerate() {
            let i = self.block_ids[qi] as usize;
            let limit = self.limits.map_or(f32::INFINITY, |l| l[qi]);
            let col = self.g.col(qi).try_as_col_major().expect("a column-major block").as_slice();
            let own = self.exclude_self.then_some(i);
            scan(col, self.norms, self.r0, (self.queries.norm(i), own, limit), top);
        }
    }
}

/// Pushes into `top` the reference rows `r0 + t` that can enter it by the GEMM expression
/// `nq + |r|^2 - 2 q.r`, from one query's products `products[t]` with them and their squared
/// norms `norms[t]`: `query` = (the query's squared norm `nq`, the row to leave out (itself),
/// the largest squared distance kept).
#[inline(always)]
fn scan(
    products: &[f32],
    norms: &[f32],
    r0: usize,
    (nq, own, limit): (f32, Option<usize>, f32),
    top: &mut Candidates,
) {
    // `nq + |r|^2 - 2 q.r <= worst`, with the query's norm moved to the bound
    let mut bound = top.bound().min(limit) - nq;
    // Chunks of SCAN_CHUNK: a branch-free test of the whole chunk (vectorized); in the rare
    // chunk with a candidate, the elements that passed (a bit each) are tested again against
    // the bound as it tightens, one at a time.
    let mut base = 0;
    for (gc, nc) in products.chunks(SCAN_CHUNK).zip(norms.chunks(SCAN_CHUNK)) {
        let mut passed = passing(gc.iter().zip(nc).map(|(&gj, &nj)| (nj - 2.0 * gj, bound)));
        while passed != 0 {
            let t = passed.trailing_zeros() as usize;
            passed &= passed - 1;
            let (gj, nj) = (gc[t], nc[t]);
            let j = r0 + base + t;
            if nj - 2.0 * gj <= bound && own != Some(j) {
                top.push((nq + nj - 2.0 * gj).max(0.0), j as u32);
                bound = top.bound().min(limit) - nq;
            }
        }
        base += gc.len();
    }
}

/// The bits `t` of one chunk's tests `(value, bound)` (at most 64) with `value <= bound`: first
/// a branch-free test of the whole chunk (vectorized), the mask only where one passed (rare).
#[inline(always)]
fn passing(tests: impl Iterator<Item = (f32, f32)> + Clone) -> u64 {
    if !tests.clone().fold(false, |hit, (v, b)| hit | (v <= b)) {
        return 0;
    }
    tests.enumerate().fold(0u64, |mask, (t, (v, b))| mask | (u64::from(v <= b) << t))
}

/// Rows per tile of [`gemm_self_candidates`].
const TILE: usize = 512;

/// [`gemm_candidates`] of the rows `ids` (ascending) among all the rows of `x` but
/// themselves, with each matrix product serving two blocks of rows: the product of tiles `A`
/// and `B` (`B` after `A`) gives the candidates of `A`'s rows among `B`'s and of `B`'s among
/// `A`'s, so the search multiplies half the pairs that searching every query block against
/// all rows does (the products are about all of the search's time: 15,000 x 512 CIFAR-10
/// embeddings, 50 neighbours, 2.2 s). Tiles go in parallel, pairs of block rows per task (row
/// `t` with row `nb - 1 - t`, so tasks cost the same); each row's list is behind its own lock.
/// A list keeps the `cap` smallest `(distance, index)` pairs it was offered, so it does not
/// depend on the order the tiles came in; which pairs are offered near the list's bound may
/// (the test is rounded against the list as it stands), which the exact re-rank absorbs, as it
/// absorbs the rounding of the expression itself.
fn gemm_self_candidates(
    x: &Centred,
    cap: usize,
    ids: &[u32],
    progress: &Progress<'_>,
) -> Vec<TopK<f32>> {
    let n = x.n;
    let tops: Vec<Mutex<Candidates>> =
        ids.iter().map(|_| Mutex::new(Candidates::new(cap))).collect();
    // the position in `ids` of every row asked for (`None` for the others)
    let mut slot = vec![None; n];
    ids.iter().enumerate().for_each(|(t, &i)| slot[i as usize] = Some(t));
    let data = x.mat();
    let nb = n.div_ceil(TILE);
    let range = |b: usize| b * TILE..((b + 1) * TILE).min(n);
    crate::map_range(nb.div_ceil(2), |t| {
        let mut g = Mat::<f32>::zeros(TILE, TILE);
        let blocks = if t == nb - 1 - t { vec![t] } else { vec![t, nb - 1 - t] };
        for &a in &blocks {
            let ra = range(a);
            for b in a..nb {
                let rb = range(b);
                let (la, lb) = (ra.len(), rb.len());
                // g = B A^T: column c holds the products of A's row c with B's rows
                let (rows_a, rows_b) = (data.subrows(ra.start, la), data.subrows(rb.start, lb));
                let gv = g.as_mut().submatrix_mut(0, 0, lb, la);
                matmul(gv, Accum::Replace, rows_b, rows_a.transpose(), 1.0f32);
                pulp::Arch::new().dispatch(OfferRows {
                    g: &g,
                    rows: ra.clone(),
                    other: rb.clone(),
                    x,
                    slot: &slot,
                    tops: &tops,
                });
                if b != a {
                    // B's rows as queries: the same products, read a row of A at a time
                    let mut guards: Vec<Option<MutexGuard<'_, Candidates>>> = rb
                        .clone()
                        .map(|i| {
                            slot[i].map(|t| tops[t].lock().unwrap_or_else(PoisonError::into_inner))
                        })
                        .collect();
                    pulp::Arch::new().dispatch(ScanColumns {
                        g: g.as_ref().submatrix(0, 0, lb, la),
                        ref_norms: &x.norms[ra.clone()],
                        j0: ra.start,
                        query_norms: &x.norms[rb],
                        tops: &mut guards,
                    });
                }
            }
            progress.add(ra.filter(|&i| slot[i].is_some()).count());
        }
    });
    tops.into_iter()
        .map(|m| m.into_inner().unwrap_or_else(PoisonError::into_inner).into_top())
        .collect()
}

/// [`scan`] of the rows `rows` as queries, their products with the rows `other` in the columns
/// of `g`, each row's list locked while it is scanned; in vector registers (`pulp`).
struct OfferRows<'a> {
    g: &'a Mat<f32>,
    rows: Range<usize>,
    other: Range<usize>,
    x: &'a Centred,
    slot: &'a [Option<usize>],
    tops: &'a [Mutex<Candidates>],
}

impl pulp::WithSimd for OfferRows<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let (x, other) = (self.x, self.other);
        for (c, i) in self.rows.enumerate() {
            let Some(t) = self.slot[i] else { continue };
            let mut top = self.tops[t].lock().unwrap_or_else(PoisonError::into_inner);
            let products = &self.g.col_as_slice(c)[..other.len()];
            let query = (x.norms[i], Some(i), f32::INFINITY);
            scan(products, &x.norms[other.clone()], other.start, query, &mut top);
        }
    }
}

/// [`scan`] of one tile's products for every query row at once, without a transposed copy:
/// column `c` of `g` holds reference row `j0 + c`'s products with the query rows (a row each),
/// and the reference rows are taken in order, each tested against every query row's bound
/// (vectorized down the column), so that each query row is offered the reference rows in the
/// order [`scan`] offers them, against the same bound: the same pushes. The transposed copy
/// this replaced was a tenth of the self-search of 15,000 x 512 embeddings. `tops`: the query
/// rows' lists, locked (`None` for a row not asked for).
struct ScanColumns<'a, 'b, 'g> {
    g: MatRef<'a, f32>,
    ref_norms: &'a [f32],
    j0: usize,
    query_norms: &'a [f32],
    tops: &'b mut [Option<MutexGuard<'g, Candidates>>],
}

impl pulp::WithSimd for ScanColumns<'_, '_, '_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let (nq, tops) = (self.query_norms, self.tops);
        // each query row's bound on `|r|^2 - 2 q.r` (its squared norm moved to the bound, as
        // in `scan`); no row passes `-inf`
        let mut bound: Vec<f32> = tops
            .iter()
            .zip(nq)
            .map(|(top, &q)| top.as_ref().map_or(f32::NEG_INFINITY, |t| t.bound() - q))
            .collect();
        for (c, &nj) in self.ref_norms.iter().enumerate() {
            let column = self.g.col(c).try_as_col_major().expect("a column-major tile").as_slice();
            for base in (0..column.len()).step_by(SCAN_CHUNK) {
                let end = (base + SCAN_CHUNK).min(column.len());
                let (gc, bc) = (&column[base..end], &bound[base..end]);
                let mut passed = passing(gc.iter().zip(bc).map(|(&gj, &b)| (nj - 2.0 * gj, b)));
                while passed != 0 {
                    let t = passed.trailing_zeros() as usize;
                    passed &= passed - 1;
                    let (r, gj) = (base + t, gc[t]);
                    if let Some(top) = tops[r].as_mut().filter(|_| nj - 2.0 * gj <= bound[r]) {
                        top.push((nq[r] + nj - 2.0 * gj).max(0.0), (self.j0 + c) as u32);
                        bound[r] = top.bound() - nq[r];
                    }
                }
            }
        }
    }
}

/// How far the GEMM expression `|q|^2 + |r|^2 - 2 q.r` in f32 can be from the exact squared
/// distance, for a query row of squared norm `row_norm` and reference rows of squared norm at
/// most `ref_norm`, in `d` dimensions.
pub(crate) fn gemm_rounding(d: usize, row_norm: f32, ref_norm: f64) -> f64 {
    2.0 * (d as f64 + 4.0) * f64::from(f32::EPSILON) * (f64::from(row_norm) + ref_norm)
}

/// Exact re-rank of a query row's GEMM candidates `top` (kept at most `cap`): its `k` nearest
/// `(reference row, distance)` by exact differences, ties by index. A reference row `j` left
/// out of `top` had a GEMM distance of at least its worst `w`, so its true squared distance is
/// at least `max(w, (|r_j| - |q|)^2)` less the rounding bound of the GEMM expression for its
/// own norm ([`gemm_rounding`] with `|r_j|^2`). The rows of `all()` (every row the candidates
/// were chosen from) whose bound does not clear the k-th exact distance of the candidates
/// (massive ties, duplicates, or distances concentrated within the rounding of a row of large
/// norm) are searched exhaustively. The bound was once read with the largest norm of the
/// reference for every row: on standardized real embeddings (one row of squared norm 31,000
/// among rows of 320) it failed on 42% of the rows at `k = 50`, which then scanned every row,
/// and the 50-neighbour graph of 15,000 CIFAR-10 embeddings took 30 s against 2 s for 10.
/// `max_norm` (the largest squared norm of a reference row) skips the row-by-row test where
/// the bound holds for every row. The exact distances computed are added to `work`.
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
    let mut done = top.items.len();
    if let Some(worst) = top.worst().filter(|_| top.items.len() >= cap) {
        let (w, kth) = (f64::from(worst), cands[k - 1].0);
        let (d, q) = (row.len(), f64::from(row_norm).sqrt());
        let cleared = |norm: f64| {
            let apart = (norm.sqrt() - q).powi(2);
            w.max(apart) - gemm_rounding(d, row_norm, norm) > kth
        };
        if w - gemm_rounding(d, row_norm, max_norm) <= kth {
            let mut kept: Vec<u32> = top.items.iter().map(|&(_, j)| j).collect();
            kept.sort_unstable();
            let doubtful: Vec<u32> = all()
                .into_iter()
                .filter(|j| {
                    kept.binary_search(j).is_err()
                        && !cleared(f64::from(reference.norm(*j as usize)))
                })
                .collect();
            done += doubtful.len();
            cands.extend(reference.distances(row, doubtful.into_iter()));
            rank(&mut cands);
        }
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
    use ndarray::Array2;
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

    /// Work counted: rows of large norm do not send the other rows to exhaustive scans (the
    /// re-rank's rounding bound is read for each reference row's own norm).
    #[test]
    fn a_far_row_costs_no_exhaustive_scans() {
        let mut rng = SmallRng::seed_from_u64(9);
        let mut x = Array2::from_shape_fn((3000, 128), |_| rng.random_range(-1.0f32..1.0));
        let work = |x: &Array2<f32>| {
            let (mean, scale) = centre_and_scale(&[x.view()]);
            let c = Centred::new(x.view(), &mean, scale);
            search(&c, &c, 50, true, &Progress::silent()).1
        };
        let clean = work(&x);
        x.row_mut(0).mapv_inplace(|v| 300.0 * v);
        let far = work(&x);
        assert!(far <= clean + 3000, "clean {clean}, with a far row {far}");
    }
}
