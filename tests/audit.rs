//! The default audit on the shipped poisoned sets: the combined suspicion ranks the poison at the
//! top, within 0.02 ROC-AUC of the best single detector and above the detectors' mean.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;

use poisonguard::metrics::roc_auc;
use poisonguard::{Audit, DetectorOptions};
use poisonguard_io::{LoadOptions, load};

#[test]
fn combined_suspicion_keeps_up_with_the_best_detector() {
    // measured: 0.9930 / 0.9991 / 0.9902 against best single detectors 1.0000 / 0.9984 / 0.9980
    for (name, floor) in [
        ("poisoned/digits_badnets.parquet", 0.95),
        ("poisoned/digits_badnets_embeddings.parquet", 0.95),
        ("poisoned/digits_labelflip.parquet", 0.9),
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets").join(name);
        let opts = LoadOptions {
            label: Some("label".into()),
            truth: Some("is_poison".into()),
            ..LoadOptions::default()
        };
        let (data, truth) = load(path, &opts).unwrap().into_parts();
        let truth = truth.unwrap();
        let report = Audit::for_dataset(&data, &DetectorOptions::default()).run(&data).unwrap();
        let combined = roc_auc(report.suspicion(), &truth).unwrap();
        let singles: Vec<f64> =
            report.runs().iter().map(|r| roc_auc(r.detection.scores(), &truth).unwrap()).collect();
        let best = singles.iter().copied().fold(0.0, f64::max);
        let mean = singles.iter().sum::<f64>() / singles.len() as f64;
        assert!(combined >= floor, "{name}: {combined:.4} < {floor}");
        assert!(combined >= best - 0.02, "{name}: {combined:.4} vs best {best:.4}");
        assert!(combined > mean, "{name}: {combined:.4} vs mean {mean:.4}");
        // flagged is the automatic threshold 1 / (detectors + 1) on the suspicion
        let cut = 1.0 / (report.runs().len() + 1) as f64;
        for (i, &s) in report.suspicion().iter().enumerate() {
            assert_eq!(report.is_flagged(i), s > cut, "{name}: row {i}");
        }
    }
}
