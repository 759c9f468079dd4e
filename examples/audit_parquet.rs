//! The full audit of a CSV or Parquet file from the library: the default detectors for what the
//! file has, one report, the most suspicious rows and the classes that look attacked.
//!
//! Run: `cargo run --example audit_parquet [PATH]` (default:
//! `datasets/poisoned/digits_badnets.parquet`, with its `label` and `is_poison` columns).

use std::error::Error;

use poisonguard::metrics::roc_auc;
use poisonguard::{Audit, DetectorOptions};
use poisonguard_io::{LoadOptions, load};

fn main() -> Result<(), Box<dyn Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "datasets/poisoned/digits_badnets.parquet".into());
    let opts = LoadOptions {
        label: Some("label".into()),
        truth: Some("is_poison".into()),
        ..LoadOptions::default()
    };
    let (data, truth) = load(&path, &opts)?.into_parts();
    let audit = Audit::for_dataset(&data, &DetectorOptions::default());
    let report = audit.run(&data)?;

    println!("{path}: {} rows x {} features", data.n_samples(), data.n_features());
    for run in report.runs() {
        println!("  {:<20} flagged {:>4}", run.id, run.detection.n_flagged());
    }
    for failure in report.failures() {
        println!("  {:<20} failed: {}", failure.id, failure.error);
    }

    // the most suspicious rows and why
    let mut order: Vec<usize> = (0..report.n_samples()).collect();
    order.sort_by(|&a, &b| report.suspicion()[b].total_cmp(&report.suspicion()[a]));
    println!("most suspicious rows:");
    for &i in order.iter().take(5) {
        println!(
            "  row {i:>5} suspicion {:.4}: {}",
            report.suspicion()[i],
            report.reasons_of_row(i)
        );
    }

    // the class each class-level detector finds most attacked
    for run in report.runs().iter().filter(|r| !r.class_findings.is_empty()) {
        if let Some(top) = run.class_findings.iter().max_by(|a, b| a.score().total_cmp(&b.score()))
        {
            println!(
                "{}: most suspicious class {} (score {:.3})",
                run.id,
                top.label(),
                top.score()
            );
        }
    }
    if let Some(truth) = truth.filter(|t| t.iter().any(|&v| v) && t.iter().any(|&v| !v)) {
        println!("ROC-AUC of the combined suspicion: {:.4}", roc_auc(report.suspicion(), &truth)?);
    }
    Ok(())
}
