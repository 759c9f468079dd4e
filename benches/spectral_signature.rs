//! Criterion bench of spectral signatures: fit (all classes) at n = 10k / 100k rows and
//! d = 64 / 512 features, 10 classes, with a planted 5% sub-population in class 0.
//!
//! Run: `cargo bench --bench spectral_signature`. Ids are `spectral_signature/fit/n{n}_d{d}`.

#![allow(clippy::unwrap_used)] // bench code: a failed unwrap is a failed bench

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ndarray::Array2;
use poisonguard::{Dataset, Detector, LabelValue, Labels, SpectralSignature};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const N_CLASSES: usize = 10;

/// Seeded data: uniform noise with decaying scale per feature, 10 classes, and a shift along one
/// direction for 5% of class 0.
fn data(n: usize, d: usize) -> Dataset {
    let mut rng = SmallRng::seed_from_u64(2018);
    let scale: Vec<f32> = (0..d).map(|j| 1.0 / (1.0 + j as f32).sqrt()).collect();
    let mut x = Array2::from_shape_fn((n, d), |(_, j)| rng.random_range(-1.0f32..1.0) * scale[j]);
    let labels: Vec<LabelValue> = (0..n).map(|i| LabelValue::Int((i % N_CLASSES) as i64)).collect();
    let poisoned = (0..n).filter(|i| i % N_CLASSES == 0).take(n / N_CLASSES / 20);
    for i in poisoned {
        for j in 0..d.min(8) {
            x[[i, j]] += 2.0;
        }
    }
    Dataset::new(x).unwrap().with_labels(Labels::from_values(&labels)).unwrap()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("spectral_signature");
    group.sample_size(10);
    for n in [10_000, 100_000] {
        for d in [64, 512] {
            let dataset = data(n, d);
            group.throughput(Throughput::Elements(n as u64));
            group.bench_with_input(
                BenchmarkId::new("fit", format!("n{n}_d{d}")),
                &dataset,
                |b, ds| b.iter(|| SpectralSignature::params().fit(ds).unwrap()),
            );
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
