//! poisonguard inside a Rust data pipeline: embeddings already in memory as an `ndarray`, no
//! files. A batch of 2,000 embeddings in 8 classes, with 30 rows of class 2 carrying a planted
//! shift (a backdoor-like sub-population) and 40 flipped labels, is audited and the rows that no
//! detector flags are kept for training.
//!
//! Run: `cargo run --example pipeline`.

use std::error::Error;

use ndarray::{Array2, Axis};
use poisonguard::{Audit, Dataset, DetectorOptions, LabelValue, Labels};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn main() -> Result<(), Box<dyn Error>> {
    let (n, d, classes) = (2_000, 32, 8);
    let mut rng = SmallRng::seed_from_u64(42);
    let centres: Vec<Vec<f32>> =
        (0..classes).map(|_| (0..d).map(|_| rng.random_range(-3.0..3.0)).collect()).collect();
    let mut y: Vec<usize> = (0..n).map(|i| i % classes).collect();
    let mut x = Array2::from_shape_fn((n, d), |(i, j)| {
        let noise: f32 = (0..6).map(|_| rng.random::<f32>()).sum::<f32>() - 3.0;
        centres[y[i]][j] + noise
    });
    // 30 rows of class 2 shifted along one direction; 40 labels flipped elsewhere
    let mut poisoned = vec![false; n];
    for i in (2..n).step_by(classes).take(30) {
        x.row_mut(i).iter_mut().take(4).for_each(|v| *v += 6.0);
        poisoned[i] = true;
    }
    for i in (5..n).step_by(50).take(40) {
        y[i] = (y[i] + 1) % classes;
        poisoned[i] = true;
    }
    let labels: Vec<LabelValue> = y.iter().map(|&c| LabelValue::Int(c as i64)).collect();
    let data = Dataset::new(x.clone())?.with_labels(Labels::from_values(&labels))?;

    let audit = Audit::from_ids(
        &["spectre", "knn_label", "isolation_forest"],
        &DetectorOptions::default(),
    )?;
    let report = audit.run(&data)?;
    let keep: Vec<usize> = (0..n).filter(|&i| !report.is_flagged(i)).collect();
    let clean = x.select(Axis(0), &keep);
    let caught = (0..n).filter(|&i| poisoned[i] && report.is_flagged(i)).count();
    let total = poisoned.iter().filter(|&&p| p).count();
    println!(
        "kept {} of {n} rows for training; {caught} of the {total} planted rows removed, {} clean rows removed",
        clean.nrows(),
        n - clean.nrows() - caught
    );
    Ok(())
}
