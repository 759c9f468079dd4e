//! Criterion benches of the label and spectral families (every detector but the outlier ones,
//! which `benches/outlier.rs` covers): fit on a seeded 10-class mixture with 5% flipped labels
//! and a planted sub-population in class 0, at n = 1k / 10k / 100k rows and d = 16 / 128 / 512.
//! Detectors that search neighbours exactly (`knn_label`, `duplicates`) are quadratic in n above
//! 12 features and stop at 10k there (the audit switches to the approximate graph above 50k
//! rows). Ids: `<detector>/fit/n{n}_d{d}`, stable across runs so baselines compare.
//!
//! Run: `cargo bench --bench families` (or `-- spectre` for one detector).

#![allow(clippy::unwrap_used)] // bench code: a failed unwrap is a failed bench

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ndarray::Array2;
use poisonguard::{Dataset, DetectorOptions, Family, LabelValue, Labels, REGISTRY, detector};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const CLASSES: usize = 10;

/// Seeded data, built outside the timed loop.
fn data(n: usize, d: usize) -> Dataset {
    let mut rng = SmallRng::seed_from_u64(2027);
    let centres: Vec<Vec<f32>> =
        (0..CLASSES).map(|_| (0..d).map(|_| rng.random_range(-2.0..2.0)).collect()).collect();
    let mut y: Vec<usize> = (0..n).map(|i| i % CLASSES).collect();
    let x = Array2::from_shape_fn((n, d), |(i, j)| {
        let shift = if y[i] == 0 && i % 200 == 0 && j < 4 { 4.0 } else { 0.0 };
        centres[y[i]][j] + (0..4).map(|_| rng.random::<f32>()).sum::<f32>() - 2.0 + shift
    });
    for label in y.iter_mut().step_by(20) {
        *label = (*label + 1) % CLASSES;
    }
    let labels: Vec<LabelValue> = y.iter().map(|&c| LabelValue::Int(c as i64)).collect();
    Dataset::new(x).unwrap().with_labels(Labels::from_values(&labels)).unwrap()
}

fn bench(c: &mut Criterion) {
    let mut sizes = Vec::new();
    for n in [1_000, 10_000, 100_000] {
        for d in [16, 128, 512] {
            sizes.push((n, d));
        }
    }
    // every label and spectral detector of the registry (a new one is benched without a new
    // line here)
    let ids = REGISTRY.iter().filter(|r| r.info().family != Family::Outlier).map(|r| r.id());
    for id in ids {
        let mut group = c.benchmark_group(id);
        group.sample_size(10);
        for &(n, d) in &sizes {
            let quadratic = matches!(id, "knn_label" | "duplicates") && d > 12 && n > 10_000;
            // activation clustering's exact silhouette is quadratic per class up to 5,000 rows;
            // at 100k x 512 one fit takes minutes of sampling time: the 100k rows are run at d <= 128
            let heavy = matches!(id, "spectre" | "activation_clustering" | "scan_decomposition")
                && n > 10_000
                && d > 128;
            if quadratic || heavy {
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
