//! Exact kNN with a k-d tree, for low-dimensional data where matrix products waste their work.

use crate::rows::{Centred, TopK, exact_d2};

/// Rows per leaf.
const LEAF_SIZE: usize = 32;

/// A node: a split on `dim` at `value` over `rows[start..end]` (left: `start..mid`), or a leaf.
#[derive(Debug, Clone, Copy)]
struct Node {
    start: u32,
    end: u32,
    dim: u32,
    value: f32,
    /// Child node indices; `u32::MAX` for a leaf.
    left: u32,
    right: u32,
}

/// A k-d tree over the reference rows: median splits on the dimension of largest spread.
pub(crate) struct KdTree<'a> {
    data: &'a Centred,
    order: Vec<u32>,
    nodes: Vec<Node>,
}

impl<'a> KdTree<'a> {
    pub(crate) fn new(data: &'a Centred) -> Self {
        let mut order: Vec<u32> = (0..data.n as u32).collect();
        let mut nodes = Vec::new();
        Self::build(data, &mut order, 0, data.n, &mut nodes);
        Self { data, order, nodes }
    }

    fn build(
        data: &Centred,
        order: &mut [u32],
        start: usize,
        end: usize,
        nodes: &mut Vec<Node>,
    ) -> u32 {
        let id = nodes.len();
        nodes.push(Node {
            start: start as u32,
            end: end as u32,
            dim: 0,
            value: 0.0,
            left: u32::MAX,
            right: u32::MAX,
        });
        if end - start <= LEAF_SIZE {
            return id as u32;
        }
        // dimension of largest spread
        let (mut best_dim, mut best_spread) = (0usize, -1.0f32);
        for j in 0..data.d {
            let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
            for &i in &order[start..end] {
                let v = data.row(i as usize)[j];
                lo = lo.min(v);
                hi = hi.max(v);
            }
            if hi - lo > best_spread {
                best_spread = hi - lo;
                best_dim = j;
            }
        }
        if best_spread <= 0.0 {
            return id as u32; // all rows equal: a leaf, however large
        }
        let mid = start + (end - start) / 2;
        let slice = &mut order[start..end];
        slice.select_nth_unstable_by(mid - start, |&a, &b| {
            let (va, vb) = (data.row(a as usize)[best_dim], data.row(b as usize)[best_dim]);
            va.total_cmp(&vb).then(a.cmp(&b))
        });
        let value = data.row(order[mid] as usize)[best_dim];
        let left = Self::build(data, order, start, mid, nodes);
        let right = Self::build(data, order, mid, end, nodes);
        nodes[id] =
            Node { start: start as u32, end: end as u32, dim: best_dim as u32, value, left, right };
        id as u32
    }

    /// The `k` nearest reference rows of `query` (exact, ties by index); `skip` is excluded.
    pub(crate) fn query(&self, query: &[f32], k: usize, skip: Option<usize>) -> Vec<(u32, f32)> {
        let mut top = TopK::<f64>::new(k);
        let mut offsets = vec![0.0f64; self.data.d];
        self.search(0, query, skip, 0.0, &mut offsets, &mut top);
        top.items.iter().map(|&(d2, j)| (j, d2.sqrt() as f32)).collect()
    }

    /// Depth-first search with the incremental distance to each node's cell (Arya & Mount
    /// 1993): `offsets[j]` is the query's offset from the cell along dimension `j` and
    /// `lower = sum_j offsets[j]^2` a lower bound on the distance to any row in the cell.
    fn search(
        &self,
        id: usize,
        q: &[f32],
        skip: Option<usize>,
        lower: f64,
        offsets: &mut [f64],
        top: &mut TopK<f64>,
    ) {
        let node = self.nodes[id];
        if node.left == u32::MAX {
            for &j in &self.order[node.start as usize..node.end as usize] {
                if Some(j as usize) == skip {
                    continue;
                }
                let row = self.data.row(j as usize);
                // a cheap f32 distance rejects most rows; its relative error is below
                // (d + 2) * eps_f32 (non-negative terms), far inside the 1e-4 margin
                if let Some(worst) = top.worst() {
                    let approx: f32 = q.iter().zip(row).map(|(a, b)| (a - b) * (a - b)).sum();
                    if f64::from(approx) > worst * (1.0 + 1e-4) {
                        continue;
                    }
                }
                let d2 = exact_d2(q, row);
                if top.admits(d2) {
                    top.push(d2, j);
                }
            }
            return;
        }
        let dim = node.dim as usize;
        let diff = f64::from(q[dim]) - f64::from(node.value);
        let (near, far) =
            if diff <= 0.0 { (node.left, node.right) } else { (node.right, node.left) };
        self.search(near as usize, q, skip, lower, offsets, top);
        // rows equal to the split value can sit on either side: `admits` keeps ties
        let old = offsets[dim];
        let far_lower = lower - old * old + diff * diff;
        if top.admits(far_lower) {
            offsets[dim] = diff;
            self.search(far as usize, q, skip, far_lower, offsets, top);
            offsets[dim] = old;
        }
    }
}

/// Queries answered per parallel task.
const QUERY_CHUNK: usize = 1024;

/// kNN of the query rows `ids` (ascending) against the reference rows through a k-d tree, in
/// `ids` order. When the queries are the reference rows, they are answered in the tree's leaf
/// order, so that consecutive queries touch the same leaves (cache locality); answers are
/// returned by row, so the order of work does not change them.
pub(crate) fn answers(
    reference: &Centred,
    queries: &Centred,
    k: usize,
    exclude_self: bool,
    ids: &[u32],
    progress: &crate::Progress<'_>,
) -> Vec<Vec<(u32, f32)>> {
    let tree = KdTree::new(reference);
    let wanted = |i: &u32| ids.binary_search(i).is_ok();
    let sequence: Vec<u32> = if exclude_self {
        tree.order.iter().copied().filter(wanted).collect()
    } else {
        ids.to_vec()
    };
    let chunk = |chunk_ids: &[u32]| -> Vec<Vec<(u32, f32)>> {
        let answers = chunk_ids
            .iter()
            .map(|&i| tree.query(queries.row(i as usize), k, exclude_self.then_some(i as usize)))
            .collect();
        progress.add(chunk_ids.len());
        answers
    };
    let found = crate::map_range(sequence.len().div_ceil(QUERY_CHUNK), |c| {
        chunk(&sequence[c * QUERY_CHUNK..((c + 1) * QUERY_CHUNK).min(sequence.len())])
    });
    let mut out = vec![Vec::new(); ids.len()];
    for (i, answer) in sequence.iter().zip(found.into_iter().flatten()) {
        if let Ok(at) = ids.binary_search(i) {
            out[at] = answer;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exact::gemm_search;
    use crate::rows::centre_and_scale;
    use ndarray::Array2;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    #[test]
    fn tree_and_matrix_products_agree() {
        let mut rng = SmallRng::seed_from_u64(11);
        // integer-valued data: many exact ties, which both paths must break by index
        let x = Array2::from_shape_fn((3000, 6), |_| rng.random_range(0..4) as f32);
        let (mean, scale) = centre_and_scale(&[x.view()]);
        let c = Centred::new(x.view(), &mean, scale);
        let all: Vec<u32> = (0..3000).collect();
        let a = answers(&c, &c, 7, true, &all, &crate::Progress::silent());
        let b = gemm_search(&c, &c, 7, true);
        for (i, answer) in a.iter().enumerate() {
            let d = |j: u32| exact_d2(c.row(i), c.row(j as usize));
            let ja: Vec<u32> = answer.iter().map(|&(j, _)| j).collect();
            let da: Vec<f64> = ja.iter().map(|&j| d(j)).collect();
            let db: Vec<f64> = b.neighbors(i).iter().map(|&j| d(j)).collect();
            assert_eq!(ja, b.neighbors(i), "row {i}: {da:?} vs {db:?}");
        }
    }
}
