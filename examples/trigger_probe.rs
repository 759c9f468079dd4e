//! What a representation keeps of a trigger: a supervised linear probe, the oracle no detector
//! has. Within the target class of a poisoned `digits`, a logistic regression (linfa, L2 1.0, on
//! standardized features) is told which rows are poison and cross-validated (5 folds by
//! position in the class); the ROC-AUC of its out-of-fold probabilities says how linearly
//! visible the trigger is, on the raw pixels and on the hidden layer of the MLP trained on the
//! poisoned table (`poisonguard_attacks::mlp_embeddings`, as the grid). A detector without
//! labels for the poison cannot be expected to beat it by much.
//!
//! Run: `cargo run --release --example trigger_probe` (seeds 0-2).

use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2, Axis};
use poisonguard::metrics::roc_auc;
use poisonguard_attacks::{Attack, mlp_embeddings};
use poisonguard_io::{LoadOptions, load};

const FOLDS: usize = 5;

/// Out-of-fold probabilities of `y` from `x`.
fn cross_validated(x: &Array2<f64>, y: &[bool]) -> Result<Vec<f64>, Box<dyn std::error::Error>> {
    let n = x.nrows();
    let mut out = vec![0.0; n];
    for fold in 0..FOLDS {
        let train: Vec<usize> = (0..n).filter(|i| i % FOLDS != fold).collect();
        let test: Vec<usize> = (0..n).filter(|i| i % FOLDS == fold).collect();
        let xt = x.select(Axis(0), &train);
        let (mean, sd) = (xt.mean_axis(Axis(0)).ok_or("no rows")?, xt.std_axis(Axis(0), 0.0));
        let scale = |m: &Array2<f64>| (m - &mean) / &sd.mapv(|s| if s > 0.0 { s } else { 1.0 });
        let yt: Array1<usize> = train.iter().map(|&i| usize::from(y[i])).collect();
        let model = LogisticRegression::default()
            .max_iterations(200)
            .fit(&DatasetBase::new(scale(&xt), yt))?;
        let p = model.predict_probabilities(&scale(&x.select(Axis(0), &test)));
        // the probability of the model's positive class, whichever label linfa made it
        let poison_is_positive = model.labels().pos.class == 1;
        for (&i, &v) in test.iter().zip(&p) {
            out[i] = if poison_is_positive { v } else { 1.0 - v };
        }
    }
    Ok(out)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/digits/digits.parquet");
    let opts = LoadOptions { label: Some("label".into()), ..LoadOptions::default() };
    let clean = load(path, &opts)?.into_parts().0;
    let specs = [
        "badnets:target=0,eps=0.1,side=8,size=2,value=16",
        "blend:target=0,eps=0.1,alpha=0.2",
        "clean-label:target=0,eps=0.1,side=8,size=2,value=16",
        "clean-label-blend:target=0,eps=0.1,alpha=0.2",
        "clean-label-blend:target=0,eps=0.05,alpha=0.2",
    ];
    println!("{:<52} {:>8} {:>8}", "attack (poison vs clean rows of class 0)", "raw", "mlp");
    for spec in specs {
        let attack = Attack::parse(spec)?;
        let mut auc = [0.0f64; 2];
        for seed in 0..3u64 {
            let poisoned = attack.apply(&clean, seed)?;
            let embedded = mlp_embeddings(&poisoned.data, seed)?;
            for (slot, data) in auc.iter_mut().zip([&poisoned.data, &embedded]) {
                let labels = data.labels().ok_or("labels")?;
                let rows: Vec<usize> =
                    (0..data.n_samples()).filter(|&i| labels.ids()[i].0 == 0).collect();
                let x = data.features().select(Axis(0), &rows).mapv(f64::from);
                let y: Vec<bool> = rows.iter().map(|&i| poisoned.truth[i]).collect();
                *slot += roc_auc(&cross_validated(&x, &y)?, &y)? / 3.0;
            }
        }
        println!("{spec:<52} {:>8.4} {:>8.4}", auc[0], auc[1]);
    }
    Ok(())
}
