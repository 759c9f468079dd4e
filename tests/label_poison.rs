//! The label family on planted poison with known ground truth: flipped labels, a duplicate
//! flood, a poisoned source; and its false-flag rate on clean data.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};

use ndarray::Array2;
use poisonguard::metrics::{recall_at_k, roc_auc};
use poisonguard::{
    Audit, ConfidentLearning, Dataset, Detector, DetectorOptions, Duplicates, FittedDetector,
    KnnLabel, LabelValue, Labels, detector,
};
use poisonguard_io::{LoadOptions, load};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

fn dataset(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets").join(name)
}

fn load_labelled(name: &str, truth: bool) -> (Dataset, Option<Vec<bool>>) {
    let opts = LoadOptions {
        label: Some("label".into()),
        truth: truth.then(|| "is_poison".into()),
        ..LoadOptions::default()
    };
    load(dataset(name), &opts).expect("shipped dataset loads").into_parts()
}

fn label_detectors() -> Vec<(&'static str, Box<dyn poisonguard::DynDetector>)> {
    let opts = DetectorOptions::default();
    ["knn_label", "confident_learning", "duplicates"]
        .into_iter()
        .map(|name| (name, detector(name, &opts).unwrap()))
        .collect()
}

/// ROC-AUC floors on the shipped 10% random flips (measured: knn_label 0.998 / 0.993 / 0.972,
/// confident_learning 0.996 / 0.997 / 0.983 on digits / wine / breast_cancer).
#[test]
fn flipped_labels_rank_first() {
    for (name, knn_floor, cl_floor) in [
        ("poisoned/digits_labelflip.parquet", 0.99, 0.97),
        ("poisoned/wine_labelflip.parquet", 0.97, 0.96),
        ("poisoned/breast_cancer_labelflip.parquet", 0.95, 0.96),
    ] {
        let (data, truth) = load_labelled(name, true);
        let truth = truth.unwrap();
        let knn = KnnLabel::params().fit(&data).unwrap();
        let auc = roc_auc(knn.training().scores(), &truth).unwrap();
        assert!(auc >= knn_floor, "{name}: knn_label ROC-AUC {auc:.4} < {knn_floor}");
        let cl = ConfidentLearning::params().fit(&data).unwrap();
        let auc = roc_auc(cl.training().scores(), &truth).unwrap();
        assert!(auc >= cl_floor, "{name}: confident_learning ROC-AUC {auc:.4} < {cl_floor}");
        // the noise matrix counts about as many wrong labels as were planted
        let planted = truth.iter().filter(|&&t| t).count() as f64;
        let estimated = cl.noise_matrix().unwrap().n_mislabeled() as f64;
        assert!(
            (0.6 * planted..=1.6 * planted).contains(&estimated),
            "{name}: estimated {estimated} wrong labels, planted {planted}"
        );
    }
}

/// No contamination rate is guessed: on clean data each label detector's default threshold
/// flags at most 3% of rows.
#[test]
fn clean_data_is_left_alone() {
    for name in ["tabular/wine.parquet", "tabular/breast_cancer.parquet", "digits/digits.parquet"] {
        let (data, _) = load_labelled(name, false);
        for (id, d) in label_detectors() {
            let fit = d.fit_boxed(&data).unwrap();
            let rate = fit.training().n_flagged() as f64 / data.n_samples() as f64;
            assert!(rate <= 0.03, "{name}: {id} flags {:.1}% of clean rows", 100.0 * rate);
        }
    }
}

/// Copies of one row with another label, exact or jittered, appended to digits.
fn flood(copies: usize, jitter: f32, seed: u64) -> (Dataset, Vec<bool>) {
    let (data, _) = load_labelled("digits/digits.parquet", false);
    let labels = data.labels().unwrap();
    let n = data.n_samples();
    let mut rng = SmallRng::seed_from_u64(seed);
    let source = rng.random_range(0..n);
    let own = labels.value_of_row(source).clone();
    let wrong = match own {
        LabelValue::Int(v) => LabelValue::Int((v + 1) % 10),
        other => other,
    };
    let x = data.features();
    let mut rows = x.to_owned().into_raw_vec_and_offset().0;
    let mut y: Vec<LabelValue> = (0..n).map(|i| labels.value_of_row(i).clone()).collect();
    for _ in 0..copies {
        rows.extend(x.row(source).iter().map(|&v| v + jitter * (rng.random::<f32>() - 0.5)));
        y.push(wrong.clone());
    }
    let x = Array2::from_shape_vec((n + copies, x.ncols()), rows).unwrap();
    let truth = (0..n + copies).map(|i| i >= n).collect();
    (Dataset::new(x).unwrap().with_labels(Labels::from_values(&y)).unwrap(), truth)
}

#[test]
fn duplicate_flood_is_flagged() {
    // exact copies, and copies jittered by up to +-0.25 of a pixel level (0..16)
    for (jitter, seed) in [(0.0, 1), (0.5, 2), (0.5, 3)] {
        let (data, truth) = flood(30, jitter, seed);
        let fit = Duplicates::params().fit(&data).unwrap();
        let d = fit.training();
        let hit = truth.iter().enumerate().filter(|(i, t)| **t && d.is_flagged(*i)).count();
        let recall = hit as f64 / 30.0;
        assert!(recall >= 0.95, "jitter {jitter}: recall {recall:.2}");
        // the flood is one group, and little else is flagged
        assert!(d.n_flagged() <= 30 + 1 + 18, "jitter {jitter}: {} flagged", d.n_flagged());
        assert!(matches!(
            d.reason(data.n_samples() - 1),
            Some(poisonguard::Reason::NearDuplicateGroup { size: 31, distinct_labels: 2, .. })
        ));
        // the count: every copy beyond the original (plus any other flagged group)
        let e = fit.poison_estimate().unwrap();
        assert!((30.0..=30.0 + 18.0).contains(&e.rows), "jitter {jitter}: {e:?}");
    }
}

/// Ten sources on digits; one of them has 40% of its labels flipped.
#[test]
fn poisoned_source_is_named_first() {
    let (data, _) = load_labelled("digits/digits.parquet", false);
    let labels = data.labels().unwrap();
    let n = data.n_samples();
    let mut rng = SmallRng::seed_from_u64(11);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng);
    let mut sources = vec![String::new(); n];
    for (pos, &i) in order.iter().enumerate() {
        sources[i] = format!("contributor_{}", pos % 10);
    }
    let mut y: Vec<LabelValue> = (0..n).map(|i| labels.value_of_row(i).clone()).collect();
    for (pos, &i) in order.iter().enumerate() {
        if pos % 10 == 3
            && rng.random::<f64>() < 0.4
            && let LabelValue::Int(v) = y[i]
        {
            y[i] = LabelValue::Int((v + rng.random_range(1..10)) % 10);
        }
    }
    let data = Dataset::new(data.features().to_owned())
        .unwrap()
        .with_labels(Labels::from_values(&y))
        .unwrap()
        .with_sources(sources)
        .unwrap();
    let opts = DetectorOptions::default();
    let audit = Audit::new()
        .with_detector(detector("knn_label", &opts).unwrap())
        .with_detector(detector("confident_learning", &opts).unwrap());
    let report = audit.run(&data).unwrap();
    let mut lists = vec![report.source_findings()];
    lists.extend(report.runs().iter().map(|r| r.source_findings.as_slice()));
    for findings in lists {
        assert_eq!(findings.len(), 10);
        assert_eq!(findings[0].source, "contributor_3");
        assert!(findings[0].p_adjusted < 1e-3, "{:?}", findings[0]);
        for f in &findings[1..] {
            assert!(f.p_adjusted >= 0.01, "clean source named: {f:?}");
        }
    }
}

/// The flood's rows are found in the combined ranking too, with recall at 1.5 x their count.
#[test]
fn flood_ranks_first_in_the_label_family() {
    let (data, truth) = flood(30, 0.0, 5);
    let report = Audit::new()
        .with_detector(detector("duplicates", &DetectorOptions::default()).unwrap())
        .run(&data)
        .unwrap();
    let recall = recall_at_k(report.suspicion(), &truth, 45).unwrap();
    assert!(recall >= 0.95, "recall {recall:.2}");
}
