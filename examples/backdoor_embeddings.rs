//! Spectral signatures on model embeddings: find the BadNets backdoor hidden in class 0 of the
//! shipped poisoned digits, from the MLP's hidden-layer activations.
//!
//! Run: `cargo run --example backdoor_embeddings [PATH]` (default:
//! `datasets/poisoned/digits_badnets_embeddings.parquet`). Prints the classes ranked by how
//! attacked they look and, from the `is_poison` column, how well the scores find the poison.

use std::error::Error;

use poisonguard::metrics::{recall_at_k, roc_auc};
use poisonguard::{Detector, FittedDetector, SpectralSignature};
use poisonguard_io::{LoadOptions, load};

fn main() -> Result<(), Box<dyn Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "datasets/poisoned/digits_badnets_embeddings.parquet".into());
    let opts = LoadOptions {
        label: Some("label".into()),
        truth: Some("is_poison".into()),
        ..LoadOptions::default()
    };
    let (data, truth) = load(&path, &opts)?.into_parts();
    let fitted = SpectralSignature::params().fit(&data)?;

    let mut classes = fitted.class_findings().to_vec();
    classes.sort_by(|a, b| b.score().total_cmp(&a.score()));
    println!("{path}: {} rows x {} features", data.n_samples(), data.n_features());
    println!("classes by variance inflation along their top singular direction:");
    for c in classes.iter().take(3) {
        println!("  class {:>3}: {:.3} ({} rows)", c.label(), c.score(), c.n_samples());
    }
    let detection = fitted.training();
    println!("flagged {} rows at threshold {:.3}", detection.n_flagged(), detection.threshold());
    if let Some(truth) = truth {
        let n_poison = truth.iter().filter(|&&t| t).count();
        let k = (1.5 * n_poison as f64).round() as usize;
        println!(
            "ROC-AUC {:.4}; recall of the {n_poison} poisoned rows in the top {k}: {:.3}",
            roc_auc(detection.scores(), &truth)?,
            recall_at_k(detection.scores(), &truth, k)?
        );
    }
    Ok(())
}
