//! Criterion benches of the outlier detectors: fit on seeded data (built outside the timed loop)
//! at n = 1k / 10k / 100k rows and d = 16 / 128 / 512, and 1M rows at d = 16 for the detectors
//! linear in n (isolation forest, ECOD, PCA). kNN-based detectors are quadratic in n above 12
//! features and stop at 10k there; MCD stops at 10k rows for d = 512. Ids:
//! `<detector>/fit/n{n}_d{d}`, stable across runs so baselines compare.
//!
//! Run: `cargo bench --bench outlier` (or `-- lof` for one detector).

#![allow(clippy::unwrap_used)] // bench code: a failed unwrap is a failed bench

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ndarray::Array2;
use poisonguard::{Dataset, DetectorOptions, Family, REGISTRY, detector};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn data(n: usize, d: usize) -> Dataset {
    let mut rng = SmallRng::seed_from_u64(2000);
    let x =
        Array2::from_shape_fn((n, d), |_| (0..4).map(|_| rng.random::<f32>()).sum::<f32>() - 2.0);
    Dataset::new(x).unwrap()
}

fn bench(c: &mut Criterion) {
    let sizes = [
        (1_000, 16),
        (10_000, 16),
        (100_000, 16),
        (1_000_000, 16),
        (1_000, 128),
        (10_000, 128),
        (100_000, 128),
        (1_000, 512),
        (10_000, 512),
        (100_000, 512),
    ];
    // every outlier detector of the registry (a new one is benched without a new line here)
    let ids = REGISTRY.iter().filter(|r| r.info().family == Family::Outlier).map(|r| r.id());
    for id in ids {
        let mut group = c.benchmark_group(id);
        group.sample_size(10);
        for &(n, d) in &sizes {
            let quadratic = matches!(id, "knn_distance" | "lof");
            let linear = matches!(id, "isolation_forest" | "ecod" | "pca");
            if (quadratic && d > 12 && n > 10_000)
                || (n > 100_000 && !linear)
                || (id == "mahalanobis" && d > 128 && n > 10_000)
            {
                continue;
            }
            let dataset = data(n, d);
            let det = detector(id, &DetectorOptions::default()).unwrap();
            group.throughput(Throughput::Elements(n as u64));
            group.bench_with_input(
                BenchmarkId::new("fit", format!("n{n}_d{d}")),
                &dataset,
                |b, ds| b.iter(|| det.fit_boxed(ds).unwrap()),
            );
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
