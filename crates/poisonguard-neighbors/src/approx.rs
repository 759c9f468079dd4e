//! Approximate kNN graph by neighbour-of-neighbour exploration (NN-Descent, Dong, Charikar, Li,
//! WWW 2011), for large n where the exact search's quadratic cost is too high.

use poisonguard_core::{KnnGraph, derive_seed};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand::seq::index::sample;

use crate::error::{Error, Result};
use crate::exact::{Centred, TopK, column_means, exact_d2};

/// Parameters of [`approximate_knn`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ApproxParams {
    /// Seed of the random initial graph.
    pub seed: u64,
    /// Most rounds.
    pub max_iter: usize,
    /// Stop when fewer than `delta * n * k` neighbour slots changed in a round (the paper's 0.001).
    pub delta: f64,
}

impl Default for ApproxParams {
    fn default() -> Self {
        Self { seed: 0x5EED, max_iter: 12, delta: 0.001 }
    }
}

/// Reverse neighbours kept per row (the paper samples a bounded number).
const MAX_REVERSE: usize = 2;

/// The approximate `k` nearest neighbours of every row (self excluded).
///
/// Start from `k` random neighbours per row (seeded per row), then repeat: every row's candidate
/// set is its neighbours, up to `2k` reverse neighbours, and their neighbours; keep the `k`
/// closest (exact distances, ties by index). Rounds read only the previous round's graph, so the
/// result is identical for any thread count. Each round costs about `n * (3k)^2` distances,
/// against `n^2` for the exact search: it pays off only for large n. Measured with
/// `examples/knn_scale --approx`, k = 10: CIFAR10_0 embeddings (5,263 x 512) recall 0.90 in
/// 3.15 s against 0.16 s exact; 50k uniform rows in 128 dimensions (no neighbourhood structure)
/// recall 0.17. Use the exact search unless n makes it impractical.
///
/// # Errors
/// [`Error::ZeroK`], [`Error::KTooLarge`] when `k >= n_samples`.
pub fn approximate_knn(
    x: ndarray::ArrayView2<'_, f32>,
    k: usize,
    params: ApproxParams,
) -> Result<KnnGraph> {
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
    let data = Centred::new(x, &column_means(x));
    let dist = |a: usize, b: usize| exact_d2(data.row(a), data.row(b));
    let keep = |i: usize, cands: &mut Vec<u32>| -> Vec<(f64, u32)> {
        cands.sort_unstable();
        cands.dedup();
        let mut top = TopK::<f64>::new(k);
        for &j in cands.iter() {
            if j as usize != i {
                let d2 = dist(i, j as usize);
                if top.admits(d2) {
                    top.push(d2, j);
                }
            }
        }
        top.items
    };
    let par_rows = |f: &(dyn Fn(usize) -> Vec<(f64, u32)> + Sync)| -> Vec<Vec<(f64, u32)>> {
        #[cfg(feature = "parallel")]
        {
            use rayon::prelude::*;
            (0..n).into_par_iter().map(f).collect()
        }
        #[cfg(not(feature = "parallel"))]
        (0..n).map(f).collect()
    };

    let mut graph: Vec<Vec<(f64, u32)>> = par_rows(&|i| {
        let mut rng = SmallRng::seed_from_u64(derive_seed(params.seed, i as u64));
        let mut cands: Vec<u32> = sample(&mut rng, n - 1, k)
            .into_iter()
            .map(|j| (if j >= i { j + 1 } else { j }) as u32)
            .collect();
        keep(i, &mut cands)
    });
    for _ in 0..params.max_iter {
        // reverse neighbours, the first MAX_REVERSE * k in row order
        let mut reverse: Vec<Vec<u32>> = vec![Vec::new(); n];
        for (i, row) in graph.iter().enumerate() {
            for &(_, j) in row {
                let r = &mut reverse[j as usize];
                if r.len() < MAX_REVERSE * k {
                    r.push(i as u32);
                }
            }
        }
        let previous = &graph;
        let next = par_rows(&|i| {
            let base: Vec<u32> =
                previous[i].iter().map(|&(_, j)| j).chain(reverse[i].iter().copied()).collect();
            let mut cands = base.clone();
            for &b in &base {
                cands.extend(previous[b as usize].iter().map(|&(_, j)| j));
            }
            keep(i, &mut cands)
        });
        let changed: usize = next
            .iter()
            .zip(&graph)
            .map(|(a, b)| a.iter().filter(|x| !b.iter().any(|y| y.1 == x.1)).count())
            .sum();
        graph = next;
        if (changed as f64) < params.delta * (n * k) as f64 {
            break;
        }
    }
    let mut indices = Vec::with_capacity(n * k);
    let mut distances = Vec::with_capacity(n * k);
    for row in graph {
        for (d2, j) in row {
            indices.push(j);
            distances.push(d2.sqrt() as f32);
        }
    }
    Ok(KnnGraph::new(n, k, indices, distances))
}
