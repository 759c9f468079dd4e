//! Exact kNN by blocked matrix products.

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par};
use ndarray::ArrayView2;

use crate::error::{Error, Result};
use crate::graph::KnnGraph;

/// Query rows per task (one GEMM panel of `QUERY_BLOCK x REF_BLOCK` f32 = 1 MiB).
const QUERY_BLOCK: usize = 128;
/// Reference rows per GEMM.
const REF_BLOCK: usize = 2048;
/// Extra candidates kept from the GEMM distances and re-ranked with exact differences, so that
/// rounding in `|a|^2 + |b|^2 - 2ab` cannot change which neighbours are returned (up to ties
/// closer than f32 resolution, which are broken by index).
const RERANK_EXTRA: usize = 8;

/// A bounded list of the `cap` smallest `(distance^2, index)` pairs, sorted ascending.
struct TopK {
    cap: usize,
    items: Vec<(f32, u32)>,
}

impl TopK {
    fn new(cap: usize) -> Self {
        Self {
            cap,
            items: Vec::with_capacity(cap + 1),
        }
    }

    #[inline]
    fn worst(&self) -> f32 {
        if self.items.len() < self.cap {
            f32::INFINITY
        } else {
            self.items[self.cap - 1].0
        }
    }

    #[inline]
    fn push(&mut self, d2: f32, idx: u32) {
        if self.items.len() == self.cap {
            let (wd, wi) = self.items[self.cap - 1];
            if d2 > wd || (d2 == wd && idx > wi) {
                return;
            }
        }
        let pos = self
            .items
            .partition_point(|&(d, i)| d < d2 || (d == d2 && i < idx));
        self.items.insert(pos, (d2, idx));
        self.items.truncate(self.cap);
    }
}

/// Exact squared Euclidean distance, accumulated in f64.
#[inline]
fn exact_d2(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let t = f64::from(x) - f64::from(y);
            t * t
        })
        .sum()
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
    let n = x.nrows();
    if k == 0 {
        return Err(Error::ZeroK);
    }
    if k >= n {
        return Err(Error::KTooLarge { k, n_samples: n });
    }
    if n > u32::MAX as usize {
        return Err(Error::TooManyRows { n_samples: n });
    }
    let x = x.as_standard_layout();
    let d = x.ncols();
    let flat = x.as_slice().unwrap_or(&[]);
    // Distances are translation invariant; centring first keeps `|a|^2 + |b|^2 - 2ab` from
    // cancelling catastrophically when the data sit far from the origin.
    let mut mean = vec![0.0f64; d];
    for row in flat.chunks_exact(d.max(1)) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += f64::from(v);
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let centred: Vec<f32> = flat
        .chunks_exact(d.max(1))
        .flat_map(|row| {
            row.iter()
                .zip(&mean)
                .map(|(&v, &m)| (f64::from(v) - m) as f32)
        })
        .collect();
    let data = MatRef::from_row_major_slice(&centred, n, d);
    let norms: Vec<f32> = centred
        .chunks_exact(d.max(1))
        .map(|row| {
            row.iter()
                .map(|&v| f64::from(v) * f64::from(v))
                .sum::<f64>() as f32
        })
        .collect();
    let cap = (k + RERANK_EXTRA).min(n - 1);

    let block = |start: usize| -> Vec<(u32, f32)> {
        let end = (start + QUERY_BLOCK).min(n);
        let q = data.subrows(start, end - start);
        let mut tops: Vec<TopK> = (start..end).map(|_| TopK::new(cap)).collect();
        let mut g = Mat::<f32>::zeros(end - start, REF_BLOCK.min(n));
        let mut r0 = 0;
        while r0 < n {
            let r1 = (r0 + REF_BLOCK).min(n);
            let r = data.subrows(r0, r1 - r0);
            matmul(
                g.as_mut().subcols_mut(0, r1 - r0),
                Accum::Replace,
                q,
                r.transpose(),
                1.0f32,
                Par::Seq,
            );
            let gv = g.as_ref();
            for (qi, top) in tops.iter_mut().enumerate() {
                let i = start + qi;
                let nq = norms[i];
                let mut worst = top.worst();
                for (rj, j) in (r0..r1).enumerate() {
                    let d2 = (nq + norms[j] - 2.0 * gv[(qi, rj)]).max(0.0);
                    if d2 <= worst && j != i {
                        top.push(d2, j as u32);
                        worst = top.worst();
                    }
                }
            }
            r0 = r1;
        }
        // Exact re-rank of the candidates.
        let mut out = Vec::with_capacity((end - start) * k);
        for (qi, top) in tops.into_iter().enumerate() {
            let i = start + qi;
            let row = &flat[i * d..(i + 1) * d];
            let mut cands: Vec<(f64, u32)> = top
                .items
                .iter()
                .map(|&(_, j)| {
                    (
                        exact_d2(row, &flat[j as usize * d..(j as usize + 1) * d]),
                        j,
                    )
                })
                .collect();
            cands.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            out.extend(cands.iter().take(k).map(|&(d2, j)| (j, d2.sqrt() as f32)));
        }
        out
    };

    let starts: Vec<usize> = (0..n).step_by(QUERY_BLOCK).collect();
    #[cfg(feature = "parallel")]
    let blocks: Vec<Vec<(u32, f32)>> = {
        use rayon::prelude::*;
        starts.par_iter().map(|&s| block(s)).collect()
    };
    #[cfg(not(feature = "parallel"))]
    let blocks: Vec<Vec<(u32, f32)>> = starts.iter().map(|&s| block(s)).collect();

    let mut indices = Vec::with_capacity(n * k);
    let mut distances = Vec::with_capacity(n * k);
    for (j, dist) in blocks.into_iter().flatten() {
        indices.push(j);
        distances.push(dist);
    }
    Ok(KnnGraph::new(n, k, indices, distances))
}
