//! Every registered detector's p-values are valid on clean data: a clean row's p-value is at
//! most as often below `t` as `t` says (super-uniform), checked with the one-sided
//! Kolmogorov-Smirnov statistic `D+ = max_t (F_n(t) - t)` on a clean Gaussian table and on clean
//! digits. Conservative p-values (mostly 1: a sign test that finds no disagreement, a gate that
//! stays closed) pass; p-values that are too small too often fail.
//!
//! Tolerance: the one-sided KS critical value at level 0.01, `sqrt(ln(100) / 2) / sqrt(n)`
//! (1.517 / sqrt(n)), for n independent uniform p-values. The rows of one fit are not
//! independent, so this is a yardstick, not an exact test.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;

use ndarray::Array2;
use poisonguard::{Dataset, DetectorOptions, LabelValue, Labels, REGISTRY};
use poisonguard_io::{LoadOptions, load};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn normal(rng: &mut SmallRng) -> f32 {
    (0..12).map(|_| rng.random::<f32>()).sum::<f32>() - 6.0
}

/// Three clean Gaussian classes of 300 rows in 8 dimensions, means 3 sd apart.
fn gaussian(seed: u64) -> Dataset {
    let mut rng = SmallRng::seed_from_u64(seed);
    let (per, d) = (300, 8);
    let x = Array2::from_shape_fn((3 * per, d), |(i, j)| {
        normal(&mut rng) + if j % 3 == i / per { 3.0 } else { 0.0 }
    });
    let y: Vec<LabelValue> = (0..3 * per).map(|i| LabelValue::Int((i / per) as i64)).collect();
    Dataset::new(x).unwrap().with_labels(Labels::from_values(&y)).unwrap()
}

fn table(name: &str) -> Dataset {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets").join(name);
    let opts = LoadOptions { label: Some("label".into()), ..LoadOptions::default() };
    load(path, &opts).unwrap().into_parts().0
}

/// A real table whose rows are one vector in column `embedding`: ResNet-18 embeddings (512
/// columns, three classes of 1,000 rows whose classes overlap naturally) of CIFAR-10
/// (`datasets/real-embeddings/`, on which the label nulls were chosen) or SVHN (`tests/fixtures/`,
/// held out: nothing was chosen on it), or 2,400 real MNIST digits (`tests/fixtures/`, 784 raw
/// pixels, ten classes with natural sub-populations; held out).
pub(crate) fn real_embeddings(path: &str) -> Dataset {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let opts = LoadOptions {
        label: Some("label".into()),
        embedding: Some("embedding".into()),
        ..LoadOptions::default()
    };
    load(path, &opts).unwrap().into_parts().0
}

/// The clean real tables: CIFAR-10 embeddings (chosen on), SVHN embeddings and MNIST pixels
/// (held out).
pub(crate) const REAL_TABLES: [&str; 3] = [
    "datasets/real-embeddings/cifar10_resnet18_3class_3000.parquet",
    "tests/fixtures/svhn_resnet18_3class_3000.parquet",
    MNIST,
];

/// 2,400 real MNIST digits, raw pixels (`tests/fixtures/README.md`).
pub(crate) const MNIST: &str = "tests/fixtures/mnist_2400.parquet";

/// The share of `p` at or below `t` is at most `allowed + 3` binomial standard errors of a
/// share `allowed` among `p.len()` rows: the bars of the levels that matter to a
/// false-discovery rate (1.5 times 0.01 and 2 times 0.001).
fn check_levels(p: &[f64], name: &str, id: &str) {
    let n = p.len() as f64;
    for (t, allowed) in [(0.01, 0.015), (0.001, 0.002)] {
        let share = p.iter().filter(|&&v| v <= t).count() as f64 / n;
        let bar = allowed + 3.0 * (allowed * (1.0 - allowed) / n).sqrt();
        eprintln!("{name}: {id} share of p <= {t}: {share:.4} (bar {bar:.4})");
        assert!(share <= bar, "{name}: {id} share of p <= {t} is {share:.4} > {bar:.4}");
    }
}

/// `max_t (share of p <= t) - t`, over the p-values themselves.
fn d_plus(p: &[f64]) -> f64 {
    let mut sorted = p.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len() as f64;
    sorted.iter().enumerate().map(|(i, &v)| (i + 1) as f64 / n - v).fold(0.0, f64::max)
}

fn check(data: &Dataset, name: &str) {
    let tolerance = (100f64.ln() / 2.0).sqrt() / (data.n_samples() as f64).sqrt();
    for r in REGISTRY {
        let fitted = r.build(&DetectorOptions::default()).fit_boxed(data).unwrap();
        let p = fitted.training().p_values();
        assert_eq!(p.len(), data.n_samples());
        assert!(p.iter().all(|v| (0.0..=1.0).contains(v)), "{}: p outside [0, 1]", r.id());
        // a gated detector that declares no class gives every row p = 1: its D+ is 0 by
        // construction, so what is checked is that it abstains for that reason
        if p.iter().all(|&v| v == 1.0) {
            let declared = fitted.class_findings().iter().any(|f| f.attacked() == Some(true));
            assert!(!declared, "{name}: {} declares a class yet gives every row p = 1", r.id());
            eprintln!("{name}: {} abstains (no class declared)", r.id());
            continue;
        }
        let d = d_plus(p);
        eprintln!("{name}: {} D+ = {d:.4} (tolerance {tolerance:.4})", r.id());
        assert!(d <= tolerance, "{name}: {} D+ = {d:.4} > {tolerance:.4}", r.id());
    }
}

#[test]
fn p_values_are_valid_on_a_clean_gaussian_table() {
    for seed in [100, 101] {
        check(&gaussian(seed), &format!("gaussian seed {seed}"));
    }
}

#[test]
fn p_values_are_valid_on_clean_digits() {
    check(&table("digits/digits.parquet"), "digits");
}

#[test]
fn p_values_are_valid_on_clean_embeddings() {
    // the hidden layer of a small network trained on the clean table: ReLU features, skewed
    // and heavy-tailed, unlike the Gaussian table
    for name in ["digits/digits.parquet", "tabular/breast_cancer.parquet"] {
        let emb = poisonguard_attacks::mlp_embeddings(&table(name), 0).unwrap();
        check(&emb, &format!("{name} embeddings"));
    }
}

/// Real embeddings whose classes overlap (a 10-NN vote is wrong on a fifth to a third of the
/// rows) and real pixels: every default detector's p-values hold at 0.01 and 0.001, where the
/// table's own overlap, not a textbook law, sets how often a clean row is outvoted or far out.
#[test]
fn p_values_hold_at_small_levels_on_real_embeddings() {
    for name in REAL_TABLES {
        let data = real_embeddings(name);
        for r in REGISTRY.iter().filter(|r| r.is_default()) {
            let fitted = r.build(&DetectorOptions::default()).fit_boxed(&data).unwrap();
            check_levels(fitted.training().p_values(), name, r.id());
        }
    }
}

/// With a trusted sample (5% or 10% of each class's rows, two seeds), `knn_label`'s measured
/// agreement laws hold at 0.01 and 0.001 on the clean real tables, as its own law does: every
/// class of CIFAR-10 and SVHN has 50-100 trusted rows (a measured law), MNIST's 12-24 (fewer
/// than 30: the table's law).
#[test]
fn measured_label_laws_hold_at_small_levels_on_real_tables() {
    use poisonguard::{Detector, FittedDetector, KnnLabel};
    use rand::seq::SliceRandom;
    for name in REAL_TABLES {
        let data = real_embeddings(name);
        for (share, seed) in [(0.05, 100), (0.05, 101), (0.1, 100), (0.1, 101)] {
            let mut rng = SmallRng::seed_from_u64(seed);
            let mut rows = Vec::new();
            for mut class in data.labels().unwrap().rows_by_class() {
                class.shuffle(&mut rng);
                class.truncate((share * class.len() as f64).round() as usize);
                rows.extend(class);
            }
            let fitted = KnnLabel::params().trusted(rows).fit(&data).unwrap();
            let what = format!("knn_label, {share} trusted, seed {seed}");
            check_levels(fitted.training().p_values(), name, &what);
        }
    }
}

/// Clean synthetic tables that do to the nulls what real data does, 3 classes of 1,000 rows each
/// (`seed` places every row): `overlap`, Gaussian classes in 50 dimensions whose means are
/// 2.2 sd apart along one axis each (a Bayes error of about 13%); `modes`, classes made of
/// three sub-populations of 60%, 30% and 10% of their rows, 4 sd apart in 32 dimensions;
/// `tight`, Gaussian classes in 64 dimensions where 150 rows of class 0 sit in a cluster 20 times
/// tighter than the rest (the thin strokes of real handwritten ones); `heavy`, Student t rows with
/// 3 degrees of freedom in 20 dimensions, means 3 scale units apart.
fn stress(kind: &str, seed: u64) -> Dataset {
    let mut rng = SmallRng::seed_from_u64(seed);
    let per = 1000;
    let n = 3 * per;
    let d = match kind {
        "overlap" => 50,
        "modes" => 32,
        "tight" => 64,
        _ => 20,
    };
    let mut x = Array2::<f32>::zeros((n, d));
    for i in 0..n {
        let class = i / per;
        let within = i % per;
        // the heavy table's common scale: sqrt(3 / chi2_3) for a Student t row
        let t_scale = if kind == "heavy" {
            let chi2: f32 = (0..3).map(|_| normal(&mut rng).powi(2)).sum();
            (3.0 / chi2.max(1e-6)).sqrt()
        } else {
            1.0
        };
        let (spread, offset) = match kind {
            "modes" => {
                let mode = if within < 600 {
                    0
                } else if within < 900 {
                    1
                } else {
                    2
                };
                (1.0, 4.0 * mode as f32)
            }
            "tight" if class == 0 && within < 150 => (0.05, 0.0),
            _ => (1.0, 0.0),
        };
        for j in 0..d {
            let mean = match kind {
                "overlap" => {
                    if j == class {
                        2.2
                    } else {
                        0.0
                    }
                }
                "modes" => {
                    (if j == class { 6.0 } else { 0.0 }) + if j == 3 + class { offset } else { 0.0 }
                }
                "heavy" => {
                    if j == class {
                        3.0
                    } else {
                        0.0
                    }
                }
                _ => {
                    if j % 3 == class {
                        3.0
                    } else {
                        0.0
                    }
                }
            };
            x[[i, j]] = mean + spread * t_scale * normal(&mut rng);
        }
    }
    let y: Vec<LabelValue> = (0..n).map(|i| LabelValue::Int((i / per) as i64)).collect();
    Dataset::new(x).unwrap().with_labels(Labels::from_values(&y)).unwrap()
}

/// The stress tables at two seeds: every default detector's p-values hold at 0.01 and 0.001,
/// and the default audit flags at most 1% of the rows and declares no class attacked.
#[test]
fn p_values_hold_on_stress_tables_that_mimic_real_data() {
    use poisonguard::Audit;
    for kind in ["overlap", "modes", "tight", "heavy"] {
        for seed in [7, 8] {
            let data = stress(kind, seed);
            let name = format!("{kind} seed {seed}");
            for r in REGISTRY.iter().filter(|r| r.is_default()) {
                let fitted = r.build(&DetectorOptions::default()).fit_boxed(&data).unwrap();
                check_levels(fitted.training().p_values(), &name, r.id());
            }
            let report = Audit::for_dataset(&data, &DetectorOptions::default()).run(&data).unwrap();
            let share = report.n_flagged() as f64 / data.n_samples() as f64;
            assert!(share <= 0.01, "{name}: {} rows flagged", report.n_flagged());
            for run in report.runs() {
                assert!(
                    run.class_findings.iter().all(|f| f.attacked() != Some(true)),
                    "{name}: {} declares a class",
                    run.id
                );
            }
        }
    }
}

#[test]
fn d_plus_sees_anti_conservative_p_values() {
    let uniform: Vec<f64> = (1..=1000).map(|i| i as f64 / 1000.0).collect();
    assert!(d_plus(&uniform) < 1e-9);
    // a tenth of the p-values at 1e-6: D+ about 0.1
    let mut bad = uniform.clone();
    for v in bad.iter_mut().step_by(10) {
        *v = 1e-6;
    }
    assert!(d_plus(&bad) > 0.09);
}
