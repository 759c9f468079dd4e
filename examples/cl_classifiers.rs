//! Confident learning with the built-in logistic regression against linfa's
//! (`linfa-logistic`), on seeded label flips in the shipped tables: ROC-AUC of the label-quality
//! score against the flipped rows, and the fit's wall time (median over seeds), both classifiers
//! cross-validated with the same folds. The table of benches/RESULTS.md.
//!
//! Run in release: `cargo run --release --example cl_classifiers [SEEDS...]` (default 0 1 2).

use std::error::Error;
use std::time::Instant;

use poisonguard::{Dataset, Detector, FittedDetector, metrics};
use poisonguard_attacks::Attack;
use poisonguard_io::{LoadOptions, load};
use poisonguard_label::ConfidentLearning;
use poisonguard_label::confident_learning::{LinfaClassifier, LogisticRegression};

/// The classifiers compared, by name.
fn fit(name: &str, data: &Dataset) -> Result<ConfidentLearning, Box<dyn Error>> {
    let params = ConfidentLearning::params();
    let params = match name {
        "ours, C chosen (default)" => params,
        "ours, C = 1" => params.classifier(LogisticRegression { c: 1.0, max_iter: 100 }),
        "ours, C = 0.1" => params.classifier(LogisticRegression { c: 0.1, max_iter: 100 }),
        "linfa, alpha = 1 (C = 1)" => params.classifier(LinfaClassifier::multi_logistic(1.0, 100)),
        "linfa, alpha = 10 (C = 0.1)" => {
            params.classifier(LinfaClassifier::multi_logistic(10.0, 100))
        }
        _ => return Err(format!("unknown classifier {name}").into()),
    };
    Ok(params.fit(data)?)
}

const CLASSIFIERS: [&str; 5] = [
    "ours, C chosen (default)",
    "ours, C = 1",
    "ours, C = 0.1",
    "linfa, alpha = 1 (C = 1)",
    "linfa, alpha = 10 (C = 0.1)",
];

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn Error>> {
    let seeds: Vec<u64> = std::env::args().skip(1).filter_map(|s| s.parse().ok()).collect();
    let seeds = if seeds.is_empty() { vec![0, 1, 2] } else { seeds };
    let opts = LoadOptions { label: Some("label".into()), ..LoadOptions::default() };
    println!("| table | attack | classifier | ROC-AUC (mean) | fit time (median) |");
    println!("| --- | --- | --- | --- | --- |");
    for path in ["digits/digits.parquet", "tabular/wine.parquet", "tabular/breast_cancer.parquet"] {
        let clean = load(format!("datasets/{path}"), &opts)?.into_parts().0;
        for spec in ["flip:0.1", "flip:0.2", "targeted-flip:from=1,to=0,rate=0.3"] {
            for name in CLASSIFIERS {
                let (mut aucs, mut times) = (Vec::new(), Vec::new());
                for &seed in &seeds {
                    let poisoned = Attack::parse(spec)?.apply(&clean, seed)?;
                    let start = Instant::now();
                    let fitted = fit(name, &poisoned.data)?;
                    times.push(start.elapsed().as_secs_f64());
                    aucs.push(metrics::roc_auc(fitted.training().scores(), &poisoned.truth)?);
                }
                let auc = aucs.iter().sum::<f64>() / aucs.len() as f64;
                let table = path.rsplit('/').next().unwrap_or(path).trim_end_matches(".parquet");
                println!(
                    "| {table} | `{spec}` | {name} | {auc:.4} | {:.1} ms |",
                    1e3 * median(times)
                );
            }
        }
    }
    Ok(())
}
