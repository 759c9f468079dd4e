//! Exact kNN at scale: builds a seeded `N x D` f32 Gaussian matrix and finds every row's `K`
//! nearest neighbours, printing the time. Used to measure peak memory above the input, e.g.
//! `/usr/bin/time -v target/release/examples/knn_scale 200000 128 10`.
//!
//! Run: `cargo run --release --example knn_scale [N] [D] [K]` (default 20000 128 10).

use std::error::Error;
use std::time::Instant;

use ndarray::Array2;
use poisonguard_neighbors::exact_knn;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn arg(i: usize, default: usize) -> Result<usize, Box<dyn Error>> {
    Ok(match std::env::args().nth(i) {
        Some(v) => v.parse()?,
        None => default,
    })
}

fn main() -> Result<(), Box<dyn Error>> {
    let (n, d, k) = (arg(1, 20_000)?, arg(2, 128)?, arg(3, 10)?);
    let mut rng = SmallRng::seed_from_u64(7);
    let x = Array2::from_shape_fn((n, d), |_| rng.random::<f32>() - 0.5);
    println!("input: {n} x {d} f32 = {:.1} MiB", (n * d * 4) as f64 / (1 << 20) as f64);
    let start = Instant::now();
    let graph = exact_knn(x.view(), k)?;
    println!("exact {k}-NN of every row: {:.2} s", start.elapsed().as_secs_f64());
    println!("row 0: neighbours {:?}", graph.neighbors(0));
    Ok(())
}
