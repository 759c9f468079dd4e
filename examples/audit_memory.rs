//! Peak memory of the default audit, without the file reader: a seeded `N x D` f32 Gaussian
//! mixture of `C` classes is built in memory and audited with the default detectors. Run under
//! `/usr/bin/time -v` and compare the peak RSS with the feature matrix (`N * D * 4` bytes).
//!
//! Run: `cargo run --release --example audit_memory [N [D [C [DETECTORS]]]]` (default 100000 x
//! 128, 10 classes, the default detectors; `DETECTORS` a comma-separated list). Prints the
//! feature size, the wall time and the rows flagged.

use std::error::Error;
use std::time::Instant;

use ndarray::Array2;
use poisonguard::{Audit, Dataset, DetectorOptions, LabelValue, Labels};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn main() -> Result<(), Box<dyn Error>> {
    let all: Vec<String> = std::env::args().skip(1).collect();
    let detectors: Option<Vec<String>> =
        all.get(3).map(|list| list.split(',').map(str::to_string).collect());
    let args: Vec<usize> = all.iter().take(3).map(|a| a.parse()).collect::<Result<_, _>>()?;
    let n = args.first().copied().unwrap_or(100_000);
    let d = args.get(1).copied().unwrap_or(128);
    let classes = args.get(2).copied().unwrap_or(10).max(2);
    let mut rng = SmallRng::seed_from_u64(7);
    let centres: Vec<f32> = (0..classes * d).map(|_| 3.0 * (rng.random::<f32>() - 0.5)).collect();
    let mut labels = Vec::with_capacity(n);
    let mut x = Array2::<f32>::zeros((n, d));
    for (i, mut row) in x.rows_mut().into_iter().enumerate() {
        let c = i % classes;
        labels.push(LabelValue::Int(c as i64));
        for (j, v) in row.iter_mut().enumerate() {
            // a sum of 4 uniforms: near-Gaussian noise, cheap to draw
            let noise: f32 = (0..4).map(|_| rng.random::<f32>()).sum::<f32>() - 2.0;
            *v = centres[c * d + j] + noise;
        }
    }
    let data = Dataset::new(x)?.with_labels(Labels::from_values(&labels))?;
    println!(
        "{n} x {d} f32 in {classes} classes: {:.1} MiB of features",
        (n * d * 4) as f64 / (1024.0 * 1024.0)
    );
    let start = Instant::now();
    let opts = DetectorOptions::default();
    let audit = match &detectors {
        Some(ids) => Audit::from_ids(ids, &opts)?,
        None => Audit::for_dataset(&data, &opts),
    };
    let report = audit.run(&data)?;
    println!(
        "audit: {:.1} s, {} rows flagged, {} detectors failed",
        start.elapsed().as_secs_f64(),
        report.n_flagged(),
        report.failures().len()
    );
    Ok(())
}
