//! A detector added the way every detector is: its parameters, fit and fitted state (what its
//! folder in a family's crate would hold) and one registry line, [`TOY`], written as the lines of
//! `poisonguard::REGISTRY` are. Nothing else names it: the conformance suite
//! (`conformance.rs`) runs it beside every registered detector, and an audit runs it with them
//! and combines its evidence (below).

use poisonguard::{
    AutoThreshold, Configure, DataError, Dataset, Detection, Detector, DetectorId, DetectorInfo,
    Family, FittedDetector, Reason, Registered, Threat, ThresholdRule, TrainingScores,
};
use serde::{Deserialize, Serialize};

/// The toy's registry line, as `REGISTRY`'s are written (not run by default).
pub static TOY: Registered = Registered::of::<MaxRobustZParams>(false);

/// Consistency constant of the MAD for a normal sample.
const MAD_TO_SD: f64 = 1.482_602_218_505_602;

/// Parameters of the toy: a row's largest robust z-score over the features,
/// `max_j |x_j - median_j| / (1.4826 MAD_j)` (higher = more suspicious).
#[derive(Debug, Clone, Default)]
pub struct MaxRobustZParams {
    threshold: ThresholdRule,
}

impl Configure for MaxRobustZParams {
    fn with_threshold(self, rule: ThresholdRule) -> Self {
        Self { threshold: rule }
    }
}

/// The fitted toy: each feature's median and scale, and the training detection.
#[derive(Debug, Serialize, Deserialize)]
pub struct MaxRobustZ {
    median: Vec<f64>,
    scale: Vec<f64>,
    training: Detection,
}

fn median_of(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// Each row's largest robust z-score against these medians and scales.
fn scores(data: &Dataset, median: &[f64], scale: &[f64]) -> Vec<f64> {
    data.features()
        .rows()
        .into_iter()
        .map(|row| {
            row.iter()
                .zip(median.iter().zip(scale))
                .map(|(&v, (m, s))| (f64::from(v) - m).abs() / s)
                .fold(0.0, f64::max)
        })
        .collect()
}

impl Detector for MaxRobustZParams {
    type Fitted = MaxRobustZ;
    type Error = DataError;

    const INFO: DetectorInfo = DetectorInfo {
        id: DetectorId::new("max_robust_z"),
        family: Family::Outlier,
        threat: Threat::InjectedSamples,
        needs_labels: false,
        training_scores: TrainingScores::InSample,
        randomized: false,
        score: "the row's largest robust z-score over the features",
        auto: AutoThreshold::Null,
        auto_threshold: "core's robust z-score rule on the scores",
        p_value: "core's tail fit of the scores",
        paper: "P. J. Rousseeuw, M. Hubert. Robust statistics for outlier detection. WIREs 2011",
    };

    fn fit(&self, data: &Dataset) -> Result<MaxRobustZ, DataError> {
        let (mut median, mut scale) = (Vec::new(), Vec::new());
        for column in data.features().columns() {
            let values: Vec<f64> = column.iter().map(|&v| f64::from(v)).collect();
            let m = median_of(values.clone());
            let mad = median_of(values.iter().map(|v| (v - m).abs()).collect());
            median.push(m);
            // a constant column scores every row 0 on it
            scale.push((mad * MAD_TO_SD).max(f64::MIN_POSITIVE.sqrt() * (1.0 + m.abs())));
        }
        let scores = scores(data, &median, &scale);
        let threshold = self.threshold.fit(&scores)?;
        let training = Detection::with_threshold(scores, threshold, |_, score| Reason::Score {
            score,
            threshold: threshold.value(),
        })?;
        Ok(MaxRobustZ { median, scale, training })
    }
}

impl FittedDetector for MaxRobustZ {
    fn id(&self) -> DetectorId {
        MaxRobustZParams::INFO.id
    }

    fn training(&self) -> &Detection {
        &self.training
    }

    fn detect(&self, data: &Dataset) -> Result<Detection, DataError> {
        if data.n_features() != self.median.len() {
            return Err(DataError::FeatureCountMismatch {
                expected: self.median.len(),
                actual: data.n_features(),
            });
        }
        let threshold = self.training.threshold();
        Detection::with_calibration(
            scores(data, &self.median, &self.scale),
            self.training.fitted_threshold(),
            self.training.calibration(),
            |_, score| Reason::Score { score, threshold },
        )
    }
}

/// The toy runs in an audit beside the default detectors, from its registry line alone: its
/// columns are in the report and its evidence is combined with theirs.
#[test]
fn a_toy_detector_joins_an_audit_by_its_registry_line() {
    use ndarray::Array2;
    let mut x = Array2::from_shape_fn((300, 4), |(i, j)| ((i * 37 + j * 11) % 101) as f32);
    // five rows far out in one feature
    for i in 0..5 {
        x[[i * 60, 2]] = 1_000.0;
    }
    let data = Dataset::new(x).unwrap();
    let opts = poisonguard::DetectorOptions::default();
    let audit = poisonguard::Audit::for_dataset(&data, &opts).with_detector(TOY.build(&opts));
    let report = audit.run(&data).unwrap();
    let run = report.runs().iter().find(|r| r.id.as_str() == "max_robust_z").unwrap();
    let flagged: Vec<usize> = (0..300).filter(|&i| run.detection.is_flagged(i)).collect();
    assert_eq!(flagged, vec![0, 60, 120, 180, 240]);
    for i in flagged {
        assert!(report.is_flagged(i), "row {i}");
    }
}
