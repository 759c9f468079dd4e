//! poisonguard inside a linfa pipeline: the wine-quality table that ships with
//! `linfa-datasets` (no network) is split into training and held-out rows; a copy of the
//! training rows gets 30% of its labels flipped (`poisonguard-attacks`); poisonguard audits it and
//! the flagged rows are dropped; a linfa multinomial logistic regression is trained on the clean
//! rows, on the poisoned rows and on the poisoned rows after the audit, and scored on the
//! held-out rows (which are never poisoned).
//!
//! Run: `cargo run --example linfa_pipeline` (CI runs it; README quotes its output).

use linfa::prelude::*;
use linfa_logistic::MultiLogisticRegression;
use ndarray::{Array1, Array2, Axis};
use poisonguard::{Audit, Dataset, DetectorOptions, LabelValue};
use poisonguard_attacks::Attack;

/// Seed of the poison placement.
const SEED: u64 = 7;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let wine = linfa_datasets::winequality();
    let (records, targets) = (wine.records().clone(), wine.targets().clone());
    // every third row is held out; the others train
    let held: Vec<usize> = (0..records.nrows()).filter(|i| i % 3 == 0).collect();
    let kept: Vec<usize> = (0..records.nrows()).filter(|i| i % 3 != 0).collect();
    let (x_train, y_train) = (records.select(Axis(0), &kept), targets.select(Axis(0), &kept));
    let (x_test, y_test) = (records.select(Axis(0), &held), targets.select(Axis(0), &held));

    // linfa data in, poison planted in a copy
    let train = DatasetBase::new(x_train.clone(), y_train.clone())
        .with_feature_names(wine.feature_names().to_vec());
    let clean = Dataset::try_from(&train)?;
    let poisoned = Attack::parse("flip:0.3")?.apply(&clean, SEED)?;
    let y_poisoned: Array1<usize> = (0..clean.n_samples())
        .map(|i| match poisoned.data.labels().map(|l| l.value_of_row(i)) {
            Some(LabelValue::Int(v)) => usize::try_from(*v).map_err(|e| e.to_string()),
            other => Err(format!("row {i}: label {other:?}")),
        })
        .collect::<Result<_, _>>()?;

    // the audit, and the rows it keeps
    let report =
        Audit::for_dataset(&poisoned.data, &DetectorOptions::default()).run(&poisoned.data)?;
    let keep: Vec<usize> = (0..clean.n_samples()).filter(|&i| !report.is_flagged(i)).collect();
    let flagged = clean.n_samples() - keep.len();
    let caught = poisoned.truth.iter().enumerate().filter(|&(i, &t)| t && report.is_flagged(i));
    let n_poison = poisoned.truth.iter().filter(|&&t| t).count();

    let accuracy =
        |x: &Array2<f64>, y: &Array1<usize>| -> Result<f64, Box<dyn std::error::Error>> {
            let (mean, sd) = (x.mean_axis(Axis(0)).ok_or("no rows")?, x.std_axis(Axis(0), 0.0));
            let scale = |m: &Array2<f64>| (m - &mean) / &sd.mapv(|s| if s > 0.0 { s } else { 1.0 });
            let model = MultiLogisticRegression::default()
                .max_iterations(200)
                .fit(&DatasetBase::new(scale(x), y.clone()))?;
            let predicted = model.predict(&scale(&x_test));
            let right = predicted.iter().zip(&y_test).filter(|(p, t)| p == t).count();
            Ok(right as f64 / y_test.len() as f64)
        };
    let clean_acc = accuracy(&x_train, &y_train)?;
    let poisoned_acc = accuracy(&x_train, &y_poisoned)?;
    let audited_acc =
        accuracy(&x_train.select(Axis(0), &keep), &y_poisoned.select(Axis(0), &keep))?;

    println!(
        "winequality (linfa-datasets): {} training rows, {} held out, {} classes",
        clean.n_samples(),
        held.len(),
        clean.labels().map_or(0, |l| l.n_present_classes())
    );
    println!(
        "flip:0.3 poisoned {n_poison} training labels; the audit flagged {flagged} rows, {} of them poisoned",
        caught.count()
    );
    println!("held-out accuracy of a linfa multinomial logistic regression trained on");
    println!("  the clean training rows           {clean_acc:.3}");
    println!("  the poisoned training rows        {poisoned_acc:.3}");
    println!("  the poisoned rows after the audit {audited_acc:.3}");
    Ok(())
}
