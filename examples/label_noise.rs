//! The label family with a data-source column: ten contributors send digits, one of them flips
//! 40% of its labels. The audit names that contributor and estimates the noise matrix.
//!
//! Run: `cargo run --example label_noise` (reads `datasets/digits/digits.parquet`).

use std::error::Error;

use poisonguard::{Audit, Dataset, DetectorOptions, LabelValue, Labels};
use poisonguard_io::{LoadOptions, load};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

fn main() -> Result<(), Box<dyn Error>> {
    let opts = LoadOptions { label: Some("label".into()), ..LoadOptions::default() };
    let digits = load("datasets/digits/digits.parquet", &opts)?.into_parts().0;
    let labels = digits.labels().ok_or("labels")?;

    // ten contributors; contributor_3 flips 40% of its labels to another digit
    let n = digits.n_samples();
    let mut rng = SmallRng::seed_from_u64(3);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng);
    let mut sources = vec![String::new(); n];
    let mut y: Vec<LabelValue> = (0..n).map(|i| labels.value_of_row(i).clone()).collect();
    let mut flipped = 0;
    for (pos, &i) in order.iter().enumerate() {
        sources[i] = format!("contributor_{}", pos % 10);
        if pos % 10 == 3
            && rng.random::<f64>() < 0.4
            && let LabelValue::Int(v) = y[i]
        {
            y[i] = LabelValue::Int((v + rng.random_range(1..10)) % 10);
            flipped += 1;
        }
    }
    let data = Dataset::new(digits.features().to_owned())?
        .with_labels(Labels::from_values(&y))?
        .with_sources(sources)?;
    println!("{n} rows from 10 contributors; contributor_3 flipped {flipped} labels");

    let audit = Audit::from_ids(
        &["knn_label", "confident_learning", "duplicates"],
        &DetectorOptions::default(),
    )?;
    let report = audit.run(&data)?;
    for run in report.runs() {
        println!("{:<20} flagged {:>4}", run.id, run.detection.n_flagged());
    }
    println!("sources ranked by the test of their flagged rows:");
    for f in report.source_findings().iter().take(4) {
        println!(
            "  {:<15} {:>4} of {:>3} flagged (expected {:>5.1}), adjusted p = {:.2e}",
            f.source, f.n_flagged, f.n_samples, f.expected, f.p_adjusted
        );
    }
    if let Some(m) = report.runs().iter().find_map(|r| r.noise_matrix.as_ref()) {
        println!("confident learning estimates {} wrong labels", m.n_mislabeled());
    }
    Ok(())
}
