//! The algorithms we wrote by hand against linfa's on the same data: exact k nearest
//! neighbours (`poisonguard_neighbors::exact_knn` against `linfa-nn`'s k-d tree, ball tree and
//! linear search), PCA (the covariance eigendecomposition of the `pca` detector and of
//! activation clustering against `linfa-reduction`'s `Pca`) and the two-means of activation
//! clustering (against `linfa-clustering`'s `KMeans`, k-means++ seeding, same number of
//! restarts). Speed (median wall time of 5 runs), result (agreement with ours) and determinism
//! (two runs with one seed). The tables of benches/RESULTS.md.
//!
//! Run in release: `cargo run --release --example linfa_compare`.

use std::error::Error;
use std::time::Instant;

use faer::Mat;
use linfa::DatasetBase;
use linfa::traits::Fit;
use linfa_clustering::{KMeans, KMeansInit};
use linfa_nn::distance::L2Dist;
use linfa_nn::{BallTree, KdTree, LinearSearch, NearestNeighbour};
use linfa_reduction::Pca;
use ndarray::{Array2, ArrayView2, Axis};
use poisonguard_io::{LoadOptions, load};
use poisonguard_neighbors::exact_knn;
use poisonguard_spectral::activation_clustering::two_means_for_comparison;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256Plus;
use rand_xoshiro::rand_core::SeedableRng as _;

const RUNS: usize = 5;

/// What the examples' steps return.
type Res<T> = Result<T, Box<dyn Error>>;
/// Every row's neighbours.
type Neighbours = Vec<Vec<usize>>;

/// Median wall time of `RUNS` calls of `f` in milliseconds, and the last result.
fn timed<T>(mut f: impl FnMut() -> T) -> (f64, T) {
    let mut times = Vec::with_capacity(RUNS);
    let mut out = None;
    for _ in 0..RUNS {
        let start = Instant::now();
        out = Some(f());
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    (times[RUNS / 2], out.expect("RUNS > 0"))
}

/// Standardized digits (1,797 x 64) and a seeded 20,000 x 16 mixture of 10 Gaussians.
fn tables() -> Res<Vec<(String, Array2<f32>)>> {
    let opts = LoadOptions { label: Some("label".into()), ..LoadOptions::default() };
    let digits = load("datasets/digits/digits.parquet", &opts)?.into_parts().0;
    let digits = poisonguard::Standardizer::fit(digits.features()).transform(digits.features());
    let mut rng = SmallRng::seed_from_u64(7);
    let centres: Vec<f32> = (0..10 * 16).map(|_| rng.random_range(-3.0..3.0)).collect();
    let mixture = Array2::from_shape_fn((20_000, 16), |(i, j)| {
        centres[(i % 10) * 16 + j] + rng.random_range(-1.0f32..1.0) + rng.random_range(-1.0..1.0)
    });
    Ok(vec![("digits (1,797 x 64)".into(), digits), ("mixture (20,000 x 16)".into(), mixture)])
}

/// Share of rows whose `k` neighbours (as sets) are the same in both answers.
fn same_sets(a: &[Vec<usize>], b: &[Vec<usize>]) -> f64 {
    let same = a
        .iter()
        .zip(b)
        .filter(|(x, y)| {
            let (mut x, mut y) = ((*x).clone(), (*y).clone());
            x.sort_unstable();
            y.sort_unstable();
            x == y
        })
        .count();
    same as f64 / a.len() as f64
}

fn knn(name: &str, x: &Array2<f32>) -> Result<(), Box<dyn Error>> {
    let k = 10;
    let (ours_ms, ours) = timed(|| exact_knn(x.view(), k));
    let graph = ours?;
    let ours: Vec<Vec<usize>> =
        (0..x.nrows()).map(|i| graph.neighbors(i).iter().map(|&j| j as usize).collect()).collect();
    let again = exact_knn(x.view(), k)?;
    println!(
        "| {name} | poisonguard exact (k-d tree / blocked GEMM, rayon) | {ours_ms:.1} ms | 1.0000 | {} |",
        if again == graph { "yes" } else { "no" }
    );
    let xd = x.mapv(f64::from);
    let algos: [(&str, &dyn Fn() -> Res<Neighbours>); 3] = [
        ("linfa-nn k-d tree", &|| linfa_knn(&KdTree, &xd, k)),
        ("linfa-nn ball tree", &|| linfa_knn(&BallTree, &xd, k)),
        ("linfa-nn linear search", &|| linfa_knn(&LinearSearch, &xd, k)),
    ];
    for (algo, f) in algos {
        let (ms, res) = timed(f);
        let res = res?;
        let again = f()?;
        println!(
            "| {name} | {algo} (one thread) | {ms:.1} ms | {:.4} | {} |",
            same_sets(&ours, &res),
            if again == res { "yes" } else { "no" }
        );
    }
    Ok(())
}

/// Every row's `k` nearest other rows by a linfa-nn index (the row itself removed).
fn linfa_knn(
    algo: &dyn NearestNeighbourDyn,
    x: &Array2<f64>,
    k: usize,
) -> Result<Vec<Vec<usize>>, Box<dyn Error>> {
    algo.knn(x, k)
}

/// linfa-nn's builders behind one object-safe call.
trait NearestNeighbourDyn {
    fn knn(&self, x: &Array2<f64>, k: usize) -> Result<Vec<Vec<usize>>, Box<dyn Error>>;
}

impl<N: NearestNeighbour> NearestNeighbourDyn for N {
    fn knn(&self, x: &Array2<f64>, k: usize) -> Result<Vec<Vec<usize>>, Box<dyn Error>> {
        let index = self.from_batch(x, L2Dist)?;
        x.axis_iter(Axis(0))
            .enumerate()
            .map(|(i, row)| {
                let found = index.k_nearest(row, k + 1)?;
                let mut ids: Vec<usize> =
                    found.into_iter().map(|(_, j)| j).filter(|&j| j != i).collect();
                ids.truncate(k);
                Ok(ids)
            })
            .collect()
    }
}

/// The covariance of the rows, as our detectors compute it: `X^T X / (n - 1)` of the centred
/// rows, in f64.
fn covariance(x: ArrayView2<'_, f32>) -> Mat<f64> {
    let (n, d) = x.dim();
    let mean: Vec<f64> =
        (0..d).map(|j| x.column(j).iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64).collect();
    let c = Mat::from_fn(n, d, |i, j| f64::from(x[[i, j]]) - mean[j]);
    let mut cov = poisonguard_linalg::at_b(c.as_ref(), c.as_ref());
    cov *= faer::Scale(1.0 / (n as f64 - 1.0));
    cov
}

/// Top `m` eigenvalues (descending) and axes (columns) of the covariance, as our detectors
/// compute them: the covariance, then a symmetric eigendecomposition.
fn our_pca(x: ArrayView2<'_, f32>, m: usize) -> Option<(Vec<f64>, Mat<f64>)> {
    let d = x.ncols();
    let (vals, vecs) = poisonguard_linalg::sym_eigen(covariance(x).as_ref())?;
    let top: Vec<usize> = (d - m..d).rev().collect();
    Some((top.iter().map(|&t| vals[t]).collect(), Mat::from_fn(d, m, |r, c| vecs[(r, top[c])])))
}

fn pca(name: &str, x: &Array2<f32>) -> Result<(), Box<dyn Error>> {
    let m = 10;
    let (ours_ms, ours) = timed(|| our_pca(x.view(), m));
    let (vals, axes) = ours.ok_or("eigendecomposition did not converge")?;
    let same = our_pca(x.view(), m).is_some_and(|(v, _)| v == vals);
    println!(
        "| {name} | poisonguard covariance + faer eigen | {ours_ms:.1} ms | 0 | 0 | {} |",
        if same { "yes" } else { "no" }
    );
    let xd = x.mapv(f64::from);
    let data = DatasetBase::from(xd);
    let (ms, fitted) = timed(|| Pca::params(m).fit(&data));
    let fitted = fitted?;
    let again = Pca::params(m).fit(&data)?;
    // linfa 0.8.1's `explained_variance` divides the squared singular values by the number of
    // components less one, not by the rows less one: the variances are computed here
    let n = x.nrows() as f64;
    let theirs: Vec<f64> = fitted.singular_values().iter().map(|s| s * s / (n - 1.0)).collect();
    let worst_value = vals
        .iter()
        .zip(&theirs)
        .map(|(a, b)| ((a - b) / a.abs().max(f64::MIN_POSITIVE)).abs())
        .fold(0.0, f64::max);
    // variance of the data captured by each top-m subspace (equal for any optimal subspace,
    // also where eigenvalues tie and single axes are arbitrary)
    let cov = covariance(x.view());
    let comps = fitted.components();
    let captured = |axis: &dyn Fn(usize, usize) -> f64| -> f64 {
        (0..m)
            .map(|c| {
                let d = cov.nrows();
                (0..d)
                    .map(|r| axis(r, c) * (0..d).map(|s| cov[(r, s)] * axis(s, c)).sum::<f64>())
                    .sum::<f64>()
            })
            .sum()
    };
    let ours_captured = captured(&|r, c| axes[(r, c)]);
    let theirs_captured = captured(&|r, c| comps[[c, r]]);
    println!(
        "| {name} | linfa-reduction Pca (truncated SVD, LOBPCG) | {ms:.1} ms | {worst_value:.1e} | {:.1e} | {} |",
        (theirs_captured - ours_captured) / ours_captured,
        if again.singular_values() == fitted.singular_values() { "yes" } else { "no" }
    );
    Ok(())
}

fn two_means(name: &str, x: &Array2<f32>) -> Result<(), Box<dyn Error>> {
    // activation clustering's input: the rows projected on their top 10 principal axes
    let (_, axes) = our_pca(x.view(), 10).ok_or("eigendecomposition did not converge")?;
    let (n, d) = x.dim();
    let mean: Vec<f64> =
        (0..d).map(|j| x.column(j).iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64).collect();
    let points = Array2::from_shape_fn((n, 10), |(i, c)| {
        (0..d).map(|j| (f64::from(x[[i, j]]) - mean[j]) * axes[(j, c)]).sum::<f64>()
    });
    let n_init = 10;
    let (ours_ms, ours) = timed(|| two_means_for_comparison(points.view(), 7, n_init));
    let (assign, inertia) = ours.ok_or("no rows")?;
    // linfa reports the mean squared distance to the nearest centre
    let inertia = inertia / n as f64;
    let same = two_means_for_comparison(points.view(), 7, n_init).is_some_and(|o| o.0 == assign);
    println!(
        "| {name} | poisonguard two-means (k-means++, {n_init} restarts) | {ours_ms:.1} ms | {inertia:.3} | 1.0000 | {} |",
        if same { "yes" } else { "no" }
    );
    let data = DatasetBase::from(points.clone());
    let fit = || {
        KMeans::params_with_rng(2, Xoshiro256Plus::seed_from_u64(7))
            .n_runs(n_init)
            .init_method(KMeansInit::KMeansPlusPlus)
            .max_n_iterations(300)
            .tolerance(1e-4)
            .fit(&data)
    };
    let (ms, fitted) = timed(fit);
    let fitted = fitted?;
    let theirs: Vec<usize> = {
        use linfa::traits::Predict;
        fitted.predict(&points).to_vec()
    };
    let again: Vec<usize> = {
        use linfa::traits::Predict;
        fit()?.predict(&points).to_vec()
    };
    let agree = assign.iter().zip(&theirs).filter(|(a, b)| a == b).count() as f64 / n as f64;
    println!(
        "| {name} | linfa-clustering KMeans (k-means++, {n_init} runs) | {ms:.1} ms | {:.3} | {:.4} | {} |",
        fitted.inertia(),
        agree.max(1.0 - agree),
        if again == theirs { "yes" } else { "no" }
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let tables = tables()?;
    println!("k = 10 nearest neighbours (self excluded):\n");
    println!(
        "| table | search | time (median of {RUNS}) | same neighbour set as ours | deterministic |"
    );
    println!("| --- | --- | --- | --- | --- |");
    for (name, x) in &tables {
        knn(name, x)?;
    }
    println!("\nTop 10 principal axes:\n");
    println!(
        "| table | PCA | time (median of {RUNS}) | largest relative eigenvalue difference | variance captured by the 10 axes, relative to ours | deterministic |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for (name, x) in &tables {
        pca(name, x)?;
    }
    println!("\nTwo-means on the top 10 principal coordinates (activation clustering's step):\n");
    println!(
        "| table | k-means | time (median of {RUNS}) | inertia (mean squared distance to the centre) | share of rows assigned alike | deterministic |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for (name, x) in &tables {
        two_means(name, x)?;
    }
    Ok(())
}
