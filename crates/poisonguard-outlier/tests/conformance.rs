//! One suite, run for every outlier detector: the detector contract, determinism, degenerate
//! data, and planted outliers found. Row-permutation equivariance, one and two threads and
//! `detect` on the training rows are checked for every registered detector, in
//! `tests/conformance.rs` at the workspace root.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use ndarray::Array2;
use poisonguard_core::metrics::roc_auc;
use poisonguard_core::{Dataset, Detector, FittedDetector, LabelValue, Labels};
use poisonguard_outlier::{
    EcodParams, IsolationForestParams, KnnDistanceParams, LofParams, MahalanobisParams, PcaParams,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn normal(rng: &mut SmallRng) -> f32 {
    (0..12).map(|_| rng.random::<f32>()).sum::<f32>() - 6.0
}

/// 400 rows of a correlated 5-d Gaussian cloud plus 20 rows displaced by 5 sd in random
/// directions; truth marks the displaced rows.
fn planted(seed: u64) -> (Dataset, Vec<bool>) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let (n, d, n_out) = (420, 5, 20);
    let mut x = Array2::zeros((n, d));
    let mut truth = vec![false; n];
    for i in 0..n {
        let z: Vec<f32> = (0..d).map(|_| normal(&mut rng)).collect();
        for j in 0..d {
            x[[i, j]] = z[j] + 0.5 * z[(j + 1) % d];
        }
        if i >= n - n_out {
            truth[i] = true;
            let dir: Vec<f32> = (0..d).map(|_| normal(&mut rng)).collect();
            let norm = dir.iter().map(|v| v * v).sum::<f32>().sqrt();
            for j in 0..d {
                x[[i, j]] += 5.0 * dir[j] / norm;
            }
        }
    }
    (Dataset::new(x).unwrap(), truth)
}

macro_rules! conformance {
    ($name:ident, $params:expr, $min_auc:expr) => {
        mod $name {
            use super::*;

            #[test]
            fn contract_and_planted_outliers() {
                let (data, truth) = planted(1);
                let fit = $params.fit(&data).unwrap();
                let det = fit.training();
                assert_eq!(det.scores().len(), data.n_samples());
                assert!(det.scores().iter().all(|s| s.is_finite()));
                for (i, &s) in det.scores().iter().enumerate() {
                    assert_eq!(det.is_flagged(i), s > det.threshold());
                    assert_eq!(det.reason(i).is_some(), s > det.threshold());
                }
                let auc = roc_auc(det.scores(), &truth).unwrap();
                assert!(auc >= $min_auc, "ROC-AUC {auc:.4} < {}", $min_auc);
                // scoring the training rows again gives the training scores
                let again = fit.detect(&data).unwrap();
                let auc_again = roc_auc(again.scores(), &truth).unwrap();
                assert!((auc - auc_again).abs() < 0.02, "{auc} vs {auc_again}");
            }

            #[test]
            fn same_seed_same_output() {
                let (data, _) = planted(2);
                let a = $params.seed(9).fit(&data).unwrap();
                let b = $params.seed(9).fit(&data).unwrap();
                assert_eq!(a.training(), b.training());
            }

            #[test]
            fn degenerate_data_is_scored_or_rejected_cleanly() {
                // identical rows, a constant column (more rows than LOF's default k)
                let x = Array2::from_shape_fn(
                    (60, 3),
                    |(i, j)| if j == 0 { 1.0 } else { (i % 2) as f32 },
                );
                let fit = $params.fit(&Dataset::new(x).unwrap()).unwrap();
                assert!(fit.training().scores().iter().all(|s| s.is_finite()));
                // too few rows for the detector: an error, not a panic
                let tiny = Dataset::new(Array2::zeros((1, 2))).unwrap();
                assert!($params.fit(&tiny).is_err());
            }

            #[test]
            fn per_class_scores_each_row_against_its_class() {
                // two far-apart classes; one row of class 0 sits in the middle: ordinary for the
                // pooled data's scale, an outlier within its own class
                let (base, _) = planted(4);
                let mut x = base.features().to_owned();
                let n = x.nrows();
                let labels: Vec<LabelValue> =
                    (0..n).map(|i| LabelValue::Int((i % 2) as i64)).collect();
                for i in 0..n {
                    if i % 2 == 1 {
                        x.row_mut(i).mapv_inplace(|v| v + 40.0);
                    }
                }
                x.row_mut(0).fill(20.0);
                let data =
                    Dataset::new(x).unwrap().with_labels(Labels::from_values(&labels)).unwrap();
                let fit = $params.per_class(true).fit(&data).unwrap();
                let s = fit.training().scores();
                let rank = s.iter().filter(|&&v| v > s[0]).count();
                assert!(rank < 5, "row 0 ranks {rank} in per-class mode");
                // unlabelled data cannot be fitted per class
                let unlabelled = Dataset::new(base.features().to_owned()).unwrap();
                assert!($params.per_class(true).fit(&unlabelled).is_err());
            }
        }
    };
}

conformance!(isolation_forest, IsolationForestParams::default(), 0.95);
conformance!(knn_distance, KnnDistanceParams::default(), 0.95);
conformance!(lof, LofParams::default(), 0.9);
conformance!(ecod, EcodParams::default(), 0.9);
conformance!(pca, PcaParams::default(), 0.9);
conformance!(mahalanobis, MahalanobisParams::default(), 0.95);

#[test]
fn k_at_least_n_is_an_error() {
    let data = Dataset::new(Array2::from_shape_fn((5, 2), |(i, j)| (i + j) as f32)).unwrap();
    let err = KnnDistanceParams::default().k(5).fit(&data).unwrap_err();
    assert!(err.to_string().contains("at least 6 rows"), "{err}");
    assert!(KnnDistanceParams::default().k(4).fit(&data).is_ok());
}

#[test]
fn covariance_detectors_refuse_very_wide_tables_with_a_hint() {
    let d = poisonguard_outlier::MAX_COVARIANCE_FEATURES + 1;
    let data =
        Dataset::new(Array2::from_shape_fn((30, d), |(i, j)| ((i * 7 + j) % 11) as f32)).unwrap();
    for e in [
        MahalanobisParams::default().fit(&data).unwrap_err().to_string(),
        PcaParams::default().fit(&data).unwrap_err().to_string(),
    ] {
        assert!(e.contains("4097 x 4097") && e.contains("reduce the features"), "{e}");
    }
}
