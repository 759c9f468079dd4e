//! Recall of the approximate neighbour graph the audit builds, against the exact neighbours of a
//! seeded sample of rows, on the rows standardized as the audit's graph reads them (each feature
//! to zero mean and unit variance): for tables too large for the exact graph of every row.
//!
//! Run: `cargo run --release --example knn_recall FILE [K] [--embedding=COLUMN] [--sample=S]
//! [--lists=L] [--probe=P]`. FILE is a `.npy` f32 matrix or a CSV / Parquet table (its numeric
//! columns, or the list column `COLUMN`); K neighbours (default 50, the audit's standardized
//! graph); S sampled rows (default 1,000). Prints the graph's time and recall@10 / recall@K
//! (the share of each sampled row's exact 10 / K nearest that the graph's first 10 / K hold).

use std::error::Error;
use std::time::Instant;

use poisonguard_core::Standardizer;
use poisonguard_io::{LoadOptions, load};
use poisonguard_neighbors::{ApproxParams, approximate_knn, exact_knn_query};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand::seq::index::sample;

fn main() -> Result<(), Box<dyn Error>> {
    let all: Vec<String> = std::env::args().skip(1).collect();
    let mut params = ApproxParams::default();
    let (mut opts, mut n_sample) = (LoadOptions::default(), 1000usize);
    for a in &all {
        if let Some(v) = a.strip_prefix("--lists=") {
            params.n_lists = v.parse()?;
        } else if let Some(v) = a.strip_prefix("--probe=") {
            params.n_probe = v.parse()?;
        } else if let Some(v) = a.strip_prefix("--embedding=") {
            opts.embedding = Some(v.to_string());
        } else if let Some(v) = a.strip_prefix("--sample=") {
            n_sample = v.parse()?;
        }
    }
    let args: Vec<&String> = all.iter().filter(|a| !a.starts_with("--")).collect();
    let path = args.first().ok_or("usage: knn_recall FILE [K] [--embedding=COLUMN] ...")?;
    let k: usize = args.get(1).map(|v| v.parse()).transpose()?.unwrap_or(50);
    let table = load(path, &opts)?;
    let raw = table.dataset().features();
    let x = Standardizer::fit(raw.view()).transform(raw.view());
    let (n, d) = x.dim();
    println!("{path}: {n} x {d}, k = {k}");
    let start = Instant::now();
    let graph = approximate_knn(x.view(), k, params)?;
    println!("approximate graph: {:.2} s", start.elapsed().as_secs_f64());
    let mut rng = SmallRng::seed_from_u64(17);
    let mut rows: Vec<usize> = sample(&mut rng, n, n_sample.min(n)).into_vec();
    rows.sort_unstable();
    let queries = x.select(ndarray::Axis(0), &rows);
    let start = Instant::now();
    // k + 1: each sampled row finds itself first (distance 0), which the graph leaves out
    let exact = exact_knn_query(x.view(), queries.view(), k + 1)?;
    println!("exact neighbours of {} rows: {:.2} s", rows.len(), start.elapsed().as_secs_f64());
    let at_most: &[usize] = if k > 10 { &[10, k] } else { &[k] };
    for &at in at_most {
        let mut hit = 0usize;
        for (s, &i) in rows.iter().enumerate() {
            let truth: Vec<u32> =
                exact.neighbors(s).iter().copied().filter(|&j| j as usize != i).take(at).collect();
            let found = &graph.neighbors(i)[..at];
            hit += truth.iter().filter(|j| found.contains(j)).count();
        }
        println!("recall@{at}: {:.4}", hit as f64 / (at * rows.len()) as f64);
    }
    Ok(())
}
