//! Regression pins: each outlier detector's ROC-AUC on three shipped ADBench sets, fitted and
//! scored on all rows (as PyOD's `decision_scores_`), with default parameters and seed. The
//! floors are the values measured when the detectors were written, minus 0.01; they match
//! PyOD 3.6.7 on the same files (see benches/RESULTS.md).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;

use poisonguard::metrics::roc_auc;
use poisonguard::{DetectorOptions, detector};
use poisonguard_io::{LoadOptions, load};

fn auc(file: &str, id: &str) -> f64 {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/adbench").join(file);
    let opts = LoadOptions { truth: Some("is_outlier".into()), ..LoadOptions::default() };
    let (data, truth) = load(path, &opts).unwrap().into_parts();
    let fitted = detector(id, &DetectorOptions::default()).unwrap().fit_boxed(&data).unwrap();
    roc_auc(fitted.training().scores(), &truth.unwrap()).unwrap()
}

fn pin(file: &str, measured: &[(&str, f64)]) {
    for &(id, value) in measured {
        let got = auc(file, id);
        assert!(got >= value - 0.01, "{file} {id}: ROC-AUC {got:.4}, pinned {value:.4}");
    }
}

#[test]
fn cardio() {
    pin(
        "6_cardio.parquet",
        &[
            ("isolation_forest", 0.9369),
            ("knn_distance", 0.7127),
            ("lof", 0.6790),
            ("ecod", 0.9350),
            ("mahalanobis", 0.8277),
            ("pca", 0.9500),
        ],
    );
}

#[test]
fn ionosphere() {
    pin(
        "18_Ionosphere.parquet",
        &[
            ("isolation_forest", 0.8571),
            ("knn_distance", 0.9259),
            ("lof", 0.8824),
            ("ecod", 0.7284),
            ("mahalanobis", 0.9550),
            ("pca", 0.7842),
        ],
    );
}

#[test]
fn wbc() {
    pin(
        "42_WBC.parquet",
        &[
            ("isolation_forest", 0.9948),
            ("knn_distance", 0.9941),
            ("lof", 0.9840),
            ("ecod", 0.9948),
            ("mahalanobis", 0.9958),
            ("pca", 0.9934),
        ],
    );
}
