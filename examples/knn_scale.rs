//! Exact kNN at scale, timed in-process. Either a seeded `N x D` f32 uniform matrix, or the
//! numeric columns of a CSV / Parquet file (minus one excluded column, e.g. `is_outlier`).
//! Used for peak memory above the input (`/usr/bin/time -v`) and for the comparison with
//! scikit-learn's brute-force `NearestNeighbors` in `benches/peers/outlier_pyod.py knn`.
//!
//! Run: `cargo run --release --example knn_scale [N D [K] | FILE [K [EXCLUDED_COLUMN]]] [--approx]
//! [--projection-variance=V] [--lists=L] [--probe=P]` (default 20000 x 128, K = 10). `--approx`
//! also times the approximate graph and prints its recall against the exact one;
//! `--projection-variance=V` sets the share of variance the index's projection must hold (0 =
//! full rows), `--lists=L` its cells (0 = sqrt of the rows) and `--probe=P` the cells searched
//! per row (defaults: [`ApproxParams::default`]'s).

use std::error::Error;
use std::time::Instant;

use ndarray::Array2;
use poisonguard_io::{LoadOptions, load};
use poisonguard_neighbors::{ApproxParams, approximate_knn, exact_knn};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn main() -> Result<(), Box<dyn Error>> {
    let all: Vec<String> = std::env::args().skip(1).collect();
    let approx = all.iter().any(|a| a == "--approx");
    let mut params = ApproxParams::default();
    for a in &all {
        if let Some(v) = a.strip_prefix("--projection-variance=") {
            params.projection_variance = v.parse()?;
        }
        if let Some(v) = a.strip_prefix("--lists=") {
            params.n_lists = v.parse()?;
        }
        if let Some(v) = a.strip_prefix("--probe=") {
            params.n_probe = v.parse()?;
        }
    }
    let args: Vec<String> = all.into_iter().filter(|a| !a.starts_with("--")).collect();
    let is_file = args.first().is_some_and(|a| a.ends_with(".parquet") || a.ends_with(".csv"));
    let (x, k) = if is_file {
        // FILE [K [EXCLUDED_COLUMN]]
        let mut opts = LoadOptions::default();
        if let Some(col) = args.get(2) {
            opts.exclude.push(col.clone());
        }
        let table = load(&args[0], &opts)?;
        let k = args.get(1).map(|v| v.parse()).transpose()?.unwrap_or(10);
        (table.dataset().features().to_owned(), k)
    } else {
        let n = args.first().map(|v| v.parse()).transpose()?.unwrap_or(20_000);
        let d = args.get(1).map(|v| v.parse()).transpose()?.unwrap_or(128);
        let k = args.get(2).map(|v| v.parse()).transpose()?.unwrap_or(10);
        let mut rng = SmallRng::seed_from_u64(7);
        (Array2::from_shape_fn((n, d), |_| rng.random::<f32>() - 0.5), k)
    };
    let (n, d) = x.dim();
    println!("input: {n} x {d} f32 = {:.1} MiB", (n * d * 4) as f64 / (1 << 20) as f64);
    let start = Instant::now();
    let graph = exact_knn(x.view(), k)?;
    println!("seconds: {:.4}", start.elapsed().as_secs_f64());
    println!("row 0: neighbours {:?}", graph.neighbors(0));
    if approx {
        let start = Instant::now();
        let fast = approximate_knn(x.view(), k, params)?;
        let hits: usize = (0..n)
            .map(|i| fast.neighbors(i).iter().filter(|j| graph.neighbors(i).contains(j)).count())
            .sum();
        println!(
            "approximate (IVF, {} cells, {} probed, projection variance {}): {:.4} s, recall@{k} {:.4}",
            params.n_lists,
            params.n_probe,
            params.projection_variance,
            start.elapsed().as_secs_f64(),
            hits as f64 / (n * k) as f64
        );
    }
    Ok(())
}
