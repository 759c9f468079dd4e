//! The blocked kNN against a naive O(n^2) oracle, on seeded data and degenerate cases.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use ndarray::Array2;
use poisonguard_neighbors::{Error, exact_knn};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Naive search: every pair, f64 distances, ties by index.
fn naive(x: &Array2<f32>, k: usize) -> Vec<Vec<(u32, f64)>> {
    let n = x.nrows();
    (0..n)
        .map(|i| {
            let mut all: Vec<(u32, f64)> = (0..n)
                .filter(|&j| j != i)
                .map(|j| {
                    let d2: f64 = x
                        .row(i)
                        .iter()
                        .zip(x.row(j))
                        .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
                        .sum();
                    (j as u32, d2.sqrt())
                })
                .collect();
            all.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
            all.truncate(k);
            all
        })
        .collect()
}

fn check(x: &Array2<f32>, k: usize) {
    let g = exact_knn(x.view(), k).unwrap();
    let oracle = naive(x, k);
    for (i, want) in oracle.iter().enumerate() {
        let got: Vec<u32> = g.neighbors(i).to_vec();
        let want_idx: Vec<u32> = want.iter().map(|w| w.0).collect();
        assert_eq!(got, want_idx, "row {i}");
        for (d, w) in g.distances(i).iter().zip(want) {
            assert!((f64::from(*d) - w.1).abs() <= 1e-5 * (1.0 + w.1), "row {i}: {d} vs {}", w.1);
        }
    }
}

#[test]
fn matches_naive_across_block_boundaries() {
    // 2300 rows in 7 dimensions: the k-d tree's answers
    let mut rng = SmallRng::seed_from_u64(1);
    let x = Array2::from_shape_fn((2300, 7), |_| rng.random_range(-1.0f32..1.0));
    check(&x, 10);
}

#[test]
fn matches_naive_across_the_tiles_of_the_matrix_products() {
    // above 12 features the self-search multiplies tiles of 512 rows once per pair: 1,300 rows
    // are three tiles (the last one short), two block rows paired in one task and one alone;
    // clusters put most of a row's neighbours in other tiles than its own
    let mut rng = SmallRng::seed_from_u64(5);
    let x =
        Array2::from_shape_fn((1300, 16), |(i, _)| (i % 7) as f32 + rng.random_range(-0.5..0.5));
    check(&x, 12);
    let x = Array2::from_shape_fn((1300, 40), |_| rng.random_range(-1.0f32..1.0));
    check(&x, 50);
}

#[test]
fn matches_naive_in_higher_dimension_with_offset() {
    // large common offset: the norm-expansion cancels badly without the exact re-rank
    let mut rng = SmallRng::seed_from_u64(2);
    let x = Array2::from_shape_fn((300, 64), |_| 1000.0 + rng.random_range(-1.0f32..1.0));
    check(&x, 5);
}

#[test]
fn duplicates_and_ties_break_by_index() {
    let x = Array2::from_shape_fn((6, 2), |(i, _)| (i / 3) as f32); // two groups of 3 equal rows
    let g = exact_knn(x.view(), 3).unwrap();
    assert_eq!(g.neighbors(0), &[1, 2, 3]);
    assert_eq!(g.distances(0), &[0.0, 0.0, std::f32::consts::SQRT_2]);
    assert_eq!(g.neighbors(4), &[3, 5, 0]);
    check(&x, 5);
}

#[test]
fn constant_column_and_k_limits() {
    let x = Array2::from_shape_fn((4, 2), |(i, j)| if j == 0 { 5.0 } else { i as f32 });
    let g = exact_knn(x.view(), 3).unwrap();
    assert_eq!(g.neighbors(3), &[2, 1, 0]);
    assert_eq!(exact_knn(x.view(), 4).unwrap_err(), Error::KTooLarge { k: 4, n_samples: 4 });
    assert_eq!(exact_knn(x.view(), 0).unwrap_err(), Error::ZeroK);
    let t = g.truncate(1);
    assert_eq!(t.k(), 1);
    assert_eq!(t.neighbors(3), &[2]);
}

#[test]
fn query_matches_naive_and_keeps_equal_rows() {
    let mut rng = SmallRng::seed_from_u64(3);
    let reference = Array2::from_shape_fn((500, 5), |_| rng.random_range(-1.0f32..1.0));
    let queries = Array2::from_shape_fn((40, 5), |_| rng.random_range(-1.0f32..1.0));
    let g = poisonguard_neighbors::exact_knn_query(reference.view(), queries.view(), 4).unwrap();
    for (i, q) in queries.rows().into_iter().enumerate() {
        let mut all: Vec<(u32, f64)> = reference
            .rows()
            .into_iter()
            .enumerate()
            .map(|(j, r)| {
                let d2: f64 =
                    q.iter().zip(r).map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2)).sum();
                (j as u32, d2)
            })
            .collect();
        all.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        let want: Vec<u32> = all[..4].iter().map(|a| a.0).collect();
        assert_eq!(g.neighbors(i), want.as_slice(), "query {i}");
    }
    // a query equal to a reference row finds it at distance 0
    let g = poisonguard_neighbors::exact_knn_query(
        reference.view(),
        reference.select(ndarray::Axis(0), &[7]).view(),
        1,
    )
    .unwrap();
    assert_eq!((g.neighbors(0)[0], g.distances(0)[0]), (7, 0.0));
    assert!(matches!(
        poisonguard_neighbors::exact_knn_query(reference.view(), Array2::zeros((1, 3)).view(), 1),
        Err(Error::DimensionMismatch { .. })
    ));
}

#[test]
fn approximate_graph_recall_against_exact() {
    use poisonguard_neighbors::{ApproxParams, approximate_knn};
    let mut rng = SmallRng::seed_from_u64(5);
    // clustered data in 24 dimensions: 20 centres, 200 rows each
    let centres = Array2::from_shape_fn((20, 24), |_| rng.random_range(-4.0f32..4.0));
    let x = Array2::from_shape_fn((4000, 24), |(i, j)| {
        centres[[i % 20, j]] + rng.random_range(-1.0f32..1.0)
    });
    let k = 10;
    let exact = exact_knn(x.view(), k).unwrap();
    let approx = approximate_knn(x.view(), k, ApproxParams::default()).unwrap();
    let hits: usize = (0..x.nrows())
        .map(|i| approx.neighbors(i).iter().filter(|j| exact.neighbors(i).contains(j)).count())
        .sum();
    let recall = hits as f64 / (x.nrows() * k) as f64;
    println!("IVF recall@{k}: {recall:.4}");
    assert!(recall >= 0.9, "recall {recall:.4}");
    // seeded: the same graph twice; rows never list themselves
    let again = approximate_knn(x.view(), k, ApproxParams::default()).unwrap();
    assert_eq!(approx, again);
    assert!((0..x.nrows()).all(|i| !approx.neighbors(i).contains(&(i as u32))));
    assert_eq!(
        approximate_knn(x.view(), 4000, ApproxParams::default()).unwrap_err(),
        Error::KTooLarge { k: 4000, n_samples: 4000 }
    );
}

/// One finite value near 1e20: squared norms overflow f32 unless the rows are scaled (it used
/// to make the search bound NaN, admit no candidate and panic); the graph must still match the
/// naive search, for the k-d tree (d <= 12) and the matrix products (d > 12).
#[test]
fn huge_finite_values_neither_panic_nor_mislead() {
    for d in [6, 16] {
        let mut rng = SmallRng::seed_from_u64(7);
        let mut x = Array2::from_shape_fn((300, d), |_| rng.random_range(-1.0f32..1.0));
        x[[0, 1]] = 1e20;
        x[[1, 1]] = -3e19;
        check(&x, 5);
        // values at the edge of f32's range: finite distances and the far row's neighbours
        // right (the bulk's mutual distances fall below f32 resolution at that scale)
        x[[2, 0]] = 3.0e38;
        let g = exact_knn(x.view(), 5).unwrap();
        for i in 0..x.nrows() {
            assert!(g.distances(i).iter().all(|v| v.is_finite()), "d = {d}, row {i}");
        }
        let want: Vec<u32> = naive(&x, 5)[2].iter().map(|w| w.0).collect();
        assert_eq!(g.neighbors(2), want.as_slice(), "d = {d}");
    }
}

/// A flood: rows with more than `k` identical copies are answered by their copies (distance 0,
/// lowest indices), which must be exactly what the search returns; in low dimension (k-d tree)
/// and high (blocked products), with a group smaller than `k` that is searched as usual.
#[test]
fn floods_of_identical_rows_match_naive() {
    let mut rng = SmallRng::seed_from_u64(41);
    for d in [4, 20] {
        // rows over three tiles of the products, copies in each (rows left out of every tile)
        let mut x = Array2::from_shape_fn((1200, d), |_| rng.random_range(-3.0f32..3.0));
        let flood = x.row(7).to_owned();
        let small = x.row(11).to_owned();
        for i in (0..1200).filter(|i| i % 4 == 1) {
            x.row_mut(i).assign(&flood); // 300 copies
        }
        for i in [40, 90, 300] {
            x.row_mut(i).assign(&small); // 4 copies with row 11
        }
        for k in [5, 10] {
            check(&x, k);
        }
    }
}

/// The approximate graph's contract beyond recall: every listed neighbour is at its exact
/// distance, lists ascend (ties by index), no row lists itself or a row twice; the graph does
/// not depend on the thread count; a flood is answered by its copies; rows whose probed cells
/// hold `k` rows or fewer are searched in more cells.
#[test]
fn approximate_graph_distances_threads_floods_and_small_cells() {
    use poisonguard_neighbors::{ApproxParams, approximate_knn};
    let mut rng = SmallRng::seed_from_u64(9);
    let centres = Array2::from_shape_fn((12, 20), |_| rng.random_range(-3.0f32..3.0));
    let mut x = Array2::from_shape_fn((3000, 20), |(i, j)| {
        centres[[i % 12, j]] + rng.random_range(-1.5f32..1.5)
    });
    let flood = x.row(5).to_owned();
    for i in (0..3000).filter(|i| i % 10 == 3) {
        x.row_mut(i).assign(&flood); // 300 copies of row 5
    }
    let exact_d = |i: usize, j: usize| -> f64 {
        x.row(i)
            .iter()
            .zip(x.row(j))
            .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    let k = 8;
    let cases = [
        ApproxParams::default(),
        // cells of about two rows, one probed: every row needs more cells to hold k + 1 rows
        ApproxParams { n_lists: 1500, n_probe: 1, ..ApproxParams::default() },
    ];
    for params in cases {
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let two = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let g = one.install(|| approximate_knn(x.view(), k, params)).unwrap();
        assert_eq!(g, two.install(|| approximate_knn(x.view(), k, params)).unwrap());
        for i in 0..x.nrows() {
            let nb = g.neighbors(i);
            let dist = g.distances(i);
            assert!(!nb.contains(&(i as u32)), "row {i} lists itself");
            for s in 0..k {
                let want = exact_d(i, nb[s] as usize);
                assert!((f64::from(dist[s]) - want).abs() <= 1e-5 * (1.0 + want), "row {i}");
                if s > 0 {
                    assert!(nb[s - 1] != nb[s], "row {i} lists a row twice");
                    assert!((dist[s - 1], nb[s - 1]) < (dist[s], nb[s]), "row {i} not ascending");
                }
            }
        }
        // the copies of the flood: the k lowest-indexed other copies, at distance 0
        let copies: Vec<u32> = (0..3000).filter(|&i| i == 5 || i % 10 == 3).collect();
        for &i in &copies {
            let want: Vec<u32> = copies.iter().copied().filter(|&j| j != i).take(k).collect();
            assert_eq!(g.neighbors(i as usize), want.as_slice(), "copy {i}");
            assert!(g.distances(i as usize).iter().all(|&d| d == 0.0));
        }
    }
}

/// Rows with a low-dimensional structure (a 15-cluster mixture on a 6-dimensional subspace of 64
/// features, plus small noise), the case where the index places its cells and finds its
/// candidates in the rows' principal-component projection and re-ranks them exactly: recall
/// against the exact graph, the same graph for any thread count, exact distances in ascending
/// order, no row listed twice or as its own neighbour, and a flood of copies.
#[test]
fn projected_index_keeps_recall_and_exact_distances() {
    use poisonguard_neighbors::{ApproxParams, approximate_knn};
    let mut rng = SmallRng::seed_from_u64(13);
    let (n, d, rank) = (4000, 64, 6);
    let basis = Array2::from_shape_fn((rank, d), |_| rng.random_range(-1.0f32..1.0));
    let centres = Array2::from_shape_fn((15, rank), |_| rng.random_range(-4.0f32..4.0));
    let mut x = Array2::from_shape_fn((n, d), |_| rng.random_range(-0.05f32..0.05));
    for i in 0..n {
        let z: Vec<f32> =
            (0..rank).map(|a| centres[[i % 15, a]] + rng.random_range(-1.0f32..1.0)).collect();
        for j in 0..d {
            x[[i, j]] += (0..rank).map(|a| z[a] * basis[[a, j]]).sum::<f32>();
        }
    }
    let flood = x.row(7).to_owned();
    for i in (0..n).filter(|i| i % 20 == 11) {
        x.row_mut(i).assign(&flood); // 200 copies of row 7
    }
    let k = 10;
    let exact = exact_knn(x.view(), k).unwrap();
    let params = ApproxParams { projection_variance: 0.9, ..ApproxParams::default() };
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let two = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let g = one.install(|| approximate_knn(x.view(), k, params)).unwrap();
    assert_eq!(g, two.install(|| approximate_knn(x.view(), k, params)).unwrap());
    let hits: usize = (0..n)
        .map(|i| g.neighbors(i).iter().filter(|j| exact.neighbors(i).contains(j)).count())
        .sum();
    let recall = hits as f64 / (n * k) as f64;
    println!("projected IVF recall@{k}: {recall:.4}");
    assert!(recall >= 0.9, "recall {recall:.4}");
    for i in 0..n {
        let (nb, dist) = (g.neighbors(i), g.distances(i));
        assert!(!nb.contains(&(i as u32)), "row {i} lists itself");
        for s in 0..k {
            let want = x
                .row(i)
                .iter()
                .zip(x.row(nb[s] as usize))
                .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
                .sum::<f64>()
                .sqrt();
            assert!((f64::from(dist[s]) - want).abs() <= 1e-4 * (1.0 + want), "row {i}");
            if s > 0 {
                assert!(nb[s - 1] != nb[s], "row {i} lists a row twice");
                assert!((dist[s - 1], nb[s - 1]) <= (dist[s], nb[s]), "row {i} not ascending");
            }
        }
    }
    // a copy of the flooded row has only copies (distance 0) as neighbours
    assert!(g.distances(11).iter().all(|&v| v == 0.0));
}

#[test]
fn matches_naive_with_concentrated_distances_and_a_far_row() {
    // 256 Gaussian dimensions (the k-th and (k + 8)-th distances close together, as in real
    // embeddings) and rows of squared norm ~10^4 times the others: the re-rank's rounding bound
    // is read row by row, and must still never drop a true neighbour
    let mut rng = SmallRng::seed_from_u64(5);
    let mut x = Array2::from_shape_fn((1500, 256), |_| {
        let (u, v): (f32, f32) = (rng.random(), rng.random());
        (-2.0 * (1.0 - u).ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    });
    for i in [3, 700, 1499] {
        x.row_mut(i).mapv_inplace(|v| 100.0 * v);
    }
    check(&x, 50);
}
