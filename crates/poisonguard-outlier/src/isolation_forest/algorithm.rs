use ndarray::{ArrayView1, ArrayView2};
use poisonguard_core::Reason;
use rand::rngs::SmallRng;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};

use super::hyperparams::IsolationForestModelParams;
use crate::error::Result;
use crate::model::{Outlier, OutlierModel};

/// A fitted isolation forest; see the [module docs](crate::isolation_forest).
pub type IsolationForest = Outlier<IsolationForestModel>;

/// Marks a leaf in [`Node::feature`].
const LEAF: u32 = u32::MAX;
/// Euler-Mascheroni constant.
const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;

/// A tree node: a split (`x[feature] <= threshold` goes to `left`), or a leaf holding `size`
/// training rows (`feature == LEAF`, `left` = size).
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy)]
struct Node {
    feature: u32,
    threshold: f32,
    left: u32,
    right: u32,
}

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
struct Tree {
    nodes: Vec<Node>,
}

/// Average path length of an unsuccessful search in a binary search tree of `m` keys.
pub(crate) fn c(m: usize) -> f64 {
    match m {
        0 | 1 => 0.0,
        2 => 1.0,
        _ => {
            let m = m as f64;
            2.0 * ((m - 1.0).ln() + EULER_GAMMA) - 2.0 * (m - 1.0) / m
        }
    }
}

impl Tree {
    fn grow(
        x: ArrayView2<'_, f32>,
        rows: Vec<usize>,
        max_depth: usize,
        rng: &mut SmallRng,
    ) -> Tree {
        let mut nodes: Vec<Node> = Vec::new();
        // (node index, rows, depth)
        let mut stack = vec![(0usize, rows, 0usize)];
        nodes.push(Node { feature: LEAF, threshold: 0.0, left: 0, right: 0 });
        let d = x.ncols();
        while let Some((id, rows, depth)) = stack.pop() {
            let leaf = Node { feature: LEAF, threshold: 0.0, left: rows.len() as u32, right: 0 };
            if rows.len() < 2 || depth >= max_depth {
                nodes[id] = leaf;
                continue;
            }
            // draw features without replacement until one is not constant in the node
            let mut candidates: Vec<usize> = (0..d).collect();
            let mut split = None;
            while !candidates.is_empty() {
                let f = candidates.swap_remove(rng.random_range(0..candidates.len()));
                let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
                for &i in &rows {
                    let v = x[[i, f]];
                    lo = lo.min(v);
                    hi = hi.max(v);
                }
                if hi > lo {
                    // rand's f32 range needs `hi - lo` finite in f32; a column spanning more
                    // (e.g. -3e38 to 3e38) draws the same uniform point in f64
                    let mut t = if (hi - lo).is_finite() {
                        rng.random_range(lo..hi)
                    } else {
                        let u: f64 = rng.random();
                        (f64::from(lo) + u * (f64::from(hi) - f64::from(lo))) as f32
                    };
                    if t >= hi {
                        t = lo;
                    }
                    split = Some((f, t));
                    break;
                }
            }
            let Some((f, t)) = split else {
                nodes[id] = leaf;
                continue;
            };
            let (left, right): (Vec<usize>, Vec<usize>) =
                rows.iter().partition(|&&i| x[[i, f]] <= t);
            let (l, r) = (nodes.len(), nodes.len() + 1);
            nodes.push(leaf);
            nodes.push(leaf);
            nodes[id] = Node { feature: f as u32, threshold: t, left: l as u32, right: r as u32 };
            stack.push((r, right, depth + 1));
            stack.push((l, left, depth + 1));
        }
        Tree { nodes }
    }

    fn path_length(&self, row: &[f32]) -> f64 {
        let mut id = 0usize;
        let mut depth = 0usize;
        loop {
            let node = self.nodes[id];
            if node.feature == LEAF {
                return depth as f64 + c(node.left as usize);
            }
            id = if row[node.feature as usize] <= node.threshold { node.left } else { node.right }
                as usize;
            depth += 1;
        }
    }
}

/// One fitted group of [`IsolationForest`]: its trees.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
pub struct IsolationForestModel {
    trees: Vec<Tree>,
    /// `c(max_samples)`: the normaliser of the mean path length.
    c_psi: f64,
}

/// Rows scored together, tree by tree, so that each tree stays in cache.
const ROW_BLOCK: usize = 512;

impl IsolationForestModel {
    fn mean_path(&self, row: &[f32]) -> f64 {
        self.trees.iter().map(|t| t.path_length(row)).sum::<f64>() / self.trees.len() as f64
    }

    fn scores(&self, x: ArrayView2<'_, f32>) -> Vec<f64> {
        let x = x.as_standard_layout();
        let d = x.ncols();
        let flat = x.as_slice().unwrap_or(&[]);
        let n_trees = self.trees.len() as f64;
        // each row sums its path lengths in tree order, as `mean_path` does
        let block = |rows: &[f32]| -> Vec<f64> {
            let mut sums = vec![0.0f64; rows.len() / d.max(1)];
            for tree in &self.trees {
                for (s, row) in sums.iter_mut().zip(rows.chunks_exact(d.max(1))) {
                    *s += tree.path_length(row);
                }
            }
            sums.into_iter().map(|s| (-(s / n_trees) / self.c_psi).exp2()).collect()
        };
        let chunks = flat.chunks(ROW_BLOCK * d.max(1));
        #[cfg(feature = "parallel")]
        let parts: Vec<Vec<f64>> = {
            use rayon::prelude::*;
            chunks.collect::<Vec<_>>().into_par_iter().map(block).collect()
        };
        #[cfg(not(feature = "parallel"))]
        let parts: Vec<Vec<f64>> = chunks.map(block).collect();
        parts.into_iter().flatten().collect()
    }
}

impl OutlierModel for IsolationForestModel {
    type Params = IsolationForestModelParams;
    const INFO: poisonguard_core::DetectorInfo = poisonguard_core::DetectorInfo {
        id: poisonguard_core::DetectorId::new("isolation_forest"),
        family: poisonguard_core::Family::Outlier,
        threat: poisonguard_core::Threat::InjectedSamples,
        needs_labels: false,
        training_scores: poisonguard_core::TrainingScores::InSample,
        randomized: true,
        score: "2^(-E[h]/c(256)): how few random splits isolate the row (100 trees of 256 rows)",
        auto: poisonguard_core::AutoThreshold::Null,
        auto_threshold: "robust z-score of the training scores (median + 3.5 MAD-sd)",
        p_value: "robust exponential tail of the training scores (median and 90th percentile)",
        paper: "F. T. Liu, K. M. Ting, Z.-H. Zhou. Isolation Forest. ICDM 2008",
    };

    fn min_rows(_: &Self::Params) -> usize {
        2
    }

    fn fit(params: &Self::Params, x: ArrayView2<'_, f32>, seed: u64) -> Result<(Self, Vec<f64>)> {
        let n = x.nrows();
        let psi = params.max_samples.min(n);
        let max_depth = (psi as f64).log2().ceil() as usize;
        let grow = |t: usize| {
            let mut rng = SmallRng::seed_from_u64(poisonguard_core::derive_seed(seed, t as u64));
            let rows = sample(&mut rng, n, psi).into_vec();
            Tree::grow(x, rows, max_depth, &mut rng)
        };
        #[cfg(feature = "parallel")]
        let trees: Vec<Tree> = {
            use rayon::prelude::*;
            (0..params.n_trees).into_par_iter().map(grow).collect()
        };
        #[cfg(not(feature = "parallel"))]
        let trees: Vec<Tree> = (0..params.n_trees).map(grow).collect();
        let model = Self { trees, c_psi: c(psi) };
        let scores = model.scores(x);
        Ok((model, scores))
    }

    fn score(&self, x: ArrayView2<'_, f32>) -> Result<Vec<f64>> {
        Ok(self.scores(x))
    }

    fn explain(
        &self,
        row: ArrayView1<'_, f32>,
        _: f64,
        _: &dyn Fn(usize) -> String,
    ) -> Option<Reason> {
        let row: Vec<f32> = row.to_vec();
        Some(Reason::ShortIsolationPath { mean_path: self.mean_path(&row), expected: self.c_psi })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn average_path_length_by_hand() {
        assert_eq!(c(1), 0.0);
        assert_eq!(c(2), 1.0);
        // c(256) = 2 (ln 255 + gamma) - 2 * 255 / 256 = 10.2448
        assert!((c(256) - 10.244_770_920_116_851).abs() < 1e-9, "{}", c(256));
    }

    #[test]
    fn isolates_a_far_point_and_is_seeded() {
        let mut x = Array2::from_shape_fn((300, 3), |(i, j)| ((i * 17 + j * 5) % 29) as f32 / 29.0);
        x.row_mut(7).fill(9.0);
        let p = IsolationForestModelParams { n_trees: 50, max_samples: 256 };
        let (_, a) = IsolationForestModel::fit(&p, x.view(), 1).unwrap();
        let (_, b) = IsolationForestModel::fit(&p, x.view(), 1).unwrap();
        assert_eq!(a, b);
        let max = a.iter().cloned().fold(f64::MIN, f64::max);
        assert_eq!(a[7], max);
        assert!(a[7] > 0.7, "{}", a[7]);
        // constant data: every tree is a single leaf of 256 rows; all scores equal
        let flat = Array2::from_elem((300, 2), 1.0f32);
        let (_, s) = IsolationForestModel::fit(&p, flat.view(), 1).unwrap();
        assert!(s.iter().all(|&v| (v - 0.5).abs() < 1e-12), "{}", s[0]);
    }

    #[test]
    fn a_column_spanning_more_than_f32_range_is_split_not_a_panic() {
        // -3e38 to 3e38: `hi - lo` overflows f32 (rand's range used to panic)
        let mut x = Array2::from_shape_fn((100, 2), |(i, j)| (i * (j + 1)) as f32);
        x[[0, 0]] = -3e38;
        x[[1, 0]] = 3e38;
        let p = IsolationForestModelParams { n_trees: 20, max_samples: 64 };
        let (_, s) = IsolationForestModel::fit(&p, x.view(), 3).unwrap();
        assert!(s.iter().all(|v| v.is_finite() && *v > 0.0 && *v <= 1.0));
        // the two extreme rows are isolated first
        let mut order: Vec<usize> = (0..100).collect();
        order.sort_by(|&a, &b| s[b].total_cmp(&s[a]));
        assert!(order[..2].contains(&0) && order[..2].contains(&1), "{order:?}");
    }
}
