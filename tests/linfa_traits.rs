//! Detectors as linfa estimators: every detector's parameters implement linfa's `Fit` and the
//! fitted detectors `PredictInplace`, with the same scores as the poisonguard path and errors,
//! not panics, on rows poisonguard refuses.

use linfa::DatasetBase;
use linfa::traits::{Fit, Predict, PredictInplace};
use ndarray::{Array1, Array2};
use poisonguard::{
    DataError, Dataset, Detection, EcodParams, FittedDetector, IsolationForestParams, KnnLabel,
    LinfaError, SpectralSignature,
};

/// A linfa dataset of 3 classes of 40 rows, 4 features.
fn linfa_data() -> DatasetBase<Array2<f64>, Array1<usize>> {
    let x = Array2::from_shape_fn((120, 4), |(i, j)| {
        (i % 3) as f64 * 2.0 + ((i * 31 + j * 17) % 23) as f64 / 23.0 + j as f64 * 0.1
    });
    let y: Array1<usize> = (0..120).map(|i| i % 3).collect();
    DatasetBase::new(x, y)
}

/// Fits any linfa estimator of this dataset type: the place a pipeline would put a model.
fn fit_any<E: Fit<Array2<f64>, Array1<usize>, LinfaError>>(
    estimator: &E,
    data: &DatasetBase<Array2<f64>, Array1<usize>>,
) -> Result<E::Object, LinfaError> {
    estimator.fit(data)
}

#[test]
fn a_detector_fitted_through_linfa_scores_as_through_poisonguard() {
    let linfa = linfa_data();
    let ours = Dataset::try_from(&linfa).unwrap();
    // a global detector: fit, then predict on bare records
    let forest = fit_any(&IsolationForestParams::default(), &linfa).unwrap();
    let direct = poisonguard::Detector::fit(&IsolationForestParams::default(), &ours).unwrap();
    assert_eq!(forest.training().scores(), direct.training().scores());
    let predicted: Result<Detection, DataError> = forest.predict(linfa.records());
    assert_eq!(predicted.unwrap().scores(), direct.detect(&ours).unwrap().scores());
    // a per-class detector: the labels come with the linfa dataset
    let signature = fit_any(&SpectralSignature::params(), &linfa).unwrap();
    let mut out = signature.default_target(&linfa);
    signature.predict_inplace(&linfa, &mut out);
    assert_eq!(out.unwrap().scores(), signature.detect(&ours).unwrap().scores());
    // linfa's predict reads the records only: a per-class detector says what it misses
    let records_only: Result<Detection, DataError> = signature.predict(linfa.records());
    assert!(matches!(records_only, Err(DataError::LabelsRequired { .. })), "{records_only:?}");
    // label detectors too
    let knn = fit_any(&KnnLabel::params(), &linfa).unwrap();
    assert_eq!(knn.training().scores().len(), 120);
}

#[test]
fn rows_poisonguard_refuses_are_errors_not_panics() {
    let mut bad = linfa_data();
    bad.records[[5, 1]] = f64::NAN;
    let err = EcodParams::default().fit(&bad).unwrap_err();
    assert!(matches!(err, LinfaError::Data(DataError::NonFinite { row: 5, .. })), "{err}");
    let fitted = EcodParams::default().fit(&linfa_data()).unwrap();
    let refused: Result<Detection, DataError> = fitted.predict(bad.records());
    assert!(matches!(refused, Err(DataError::NonFinite { row: 5, .. })), "{refused:?}");
    let narrow = Array2::<f64>::zeros((3, 2));
    let refused: Result<Detection, DataError> = fitted.predict(&narrow);
    assert!(refused.is_err());
    // a parameter out of range is the detector's error
    let err = fit_any(&KnnLabel::params().k(0), &linfa_data()).unwrap_err();
    assert!(matches!(err, LinfaError::Detector(_)), "{err}");
}
