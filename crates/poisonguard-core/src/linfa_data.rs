//! linfa datasets in: `Dataset::try_from(&linfa::DatasetBase<Array2<F>, Array1<T>>)` for f32 or
//! f64 records and integer, bool or string targets, with linfa's feature names when it has
//! them. The records are checked as every [`Dataset`] is (finite, non-empty) and must fit in
//! f32.
//!
//! ```
//! use linfa::DatasetBase;
//! use ndarray::{array, Array1};
//! use poisonguard_core::Dataset;
//! let linfa = DatasetBase::new(array![[1.0f64, 2.0], [3.0, 4.0], [5.0, 6.0]], Array1::from(vec![0usize, 1, 1]))
//!     .with_feature_names(vec!["a", "b"]);
//! let data = Dataset::try_from(&linfa)?;
//! assert_eq!(data.n_samples(), 3);
//! assert_eq!(data.feature_names(), Some(&["a".to_string(), "b".to_string()][..]));
//! assert_eq!(data.labels().unwrap().n_present_classes(), 2);
//! # Ok::<(), poisonguard_core::DataError>(())
//! ```

use linfa::DatasetBase;
use ndarray::{Array1, Array2};

use crate::dataset::{Dataset, LabelValue, Labels};
use crate::detection::Detection;
use crate::detector::{BoxError, Detector, FittedDetector};
use crate::error::DataError;

/// A linfa record type poisonguard reads as a feature value (f32 or f64).
pub trait LinfaRecord: Copy {
    /// The value as f64 (exact).
    fn to_f64(self) -> f64;
}

impl LinfaRecord for f32 {
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
}

impl LinfaRecord for f64 {
    fn to_f64(self) -> f64 {
        self
    }
}

/// A linfa target type poisonguard reads as a label.
pub trait LinfaTarget: std::fmt::Display {
    /// The label, or `None` when it does not fit in an `i64`.
    fn to_label(&self) -> Option<LabelValue>;
}

macro_rules! int_targets {
    ($($t:ty),*) => {$(
        impl LinfaTarget for $t {
            fn to_label(&self) -> Option<LabelValue> {
                i64::try_from(*self).ok().map(LabelValue::Int)
            }
        }
    )*};
}
int_targets!(usize, u8, u16, u32, u64, isize, i8, i16, i32, i64);

impl LinfaTarget for bool {
    fn to_label(&self) -> Option<LabelValue> {
        Some(LabelValue::Int(i64::from(*self)))
    }
}

impl LinfaTarget for String {
    fn to_label(&self) -> Option<LabelValue> {
        Some(LabelValue::Str(self.trim().to_string()))
    }
}

impl LinfaTarget for &str {
    fn to_label(&self) -> Option<LabelValue> {
        Some(LabelValue::Str(self.trim().to_string()))
    }
}

/// An unlabelled [`Dataset`] of linfa records (checked, converted to f32).
fn from_records<F: LinfaRecord>(records: &Array2<F>) -> Result<Dataset, DataError> {
    let mut x = Array2::<f32>::zeros(records.dim());
    for ((row, col), &v) in records.indexed_iter() {
        let v = v.to_f64();
        if v.is_finite() && v.abs() > f64::from(f32::MAX) {
            return Err(DataError::OutOfF32Range { row, col, value: v });
        }
        x[[row, col]] = v as f32;
    }
    Dataset::new(x)
}

impl<F: LinfaRecord, T: LinfaTarget> TryFrom<&DatasetBase<Array2<F>, Array1<T>>> for Dataset {
    type Error = DataError;

    fn try_from(linfa: &DatasetBase<Array2<F>, Array1<T>>) -> Result<Self, DataError> {
        let mut data = from_records(linfa.records())?;
        let names = linfa.feature_names();
        if !names.is_empty() {
            data = data.with_feature_names(names.to_vec())?;
        }
        let targets = linfa.targets();
        let labels = targets
            .iter()
            .enumerate()
            .map(|(row, t)| {
                t.to_label().ok_or_else(|| DataError::LabelOutOfRange { row, value: t.to_string() })
            })
            .collect::<Result<Vec<_>, _>>()?;
        data.with_labels(Labels::from_values(&labels))
    }
}

/// What can go wrong when a detector is fitted through linfa's [`Fit`](linfa::traits::Fit).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinfaError {
    /// The linfa dataset is not a valid poisonguard [`Dataset`] (non-finite values, labels that
    /// do not fit, mismatched lengths).
    #[error(transparent)]
    Data(#[from] DataError),
    /// An error of linfa itself.
    #[error(transparent)]
    Linfa(#[from] linfa::Error),
    /// The detector could not fit (its parameters or the data it was given).
    #[error(transparent)]
    Detector(BoxError),
}

/// Fits `detector` on a linfa dataset: what the linfa [`Fit`](linfa::traits::Fit) of every
/// detector's parameters does (see [`linfa_estimator!`](crate::linfa_estimator)).
///
/// # Errors
/// [`LinfaError::Data`] for a dataset poisonguard refuses, [`LinfaError::Detector`] for a failed
/// fit.
pub fn fit_linfa<D: Detector, F: LinfaRecord, T: LinfaTarget>(
    detector: &D,
    dataset: &DatasetBase<Array2<F>, Array1<T>>,
) -> Result<D::Fitted, LinfaError> {
    let data = Dataset::try_from(dataset)?;
    detector.fit(&data).map_err(|e| LinfaError::Detector(Box::new(e)))
}

/// Scores linfa records with a fitted detector (no labels: a per-class detector answers
/// [`DataError::LabelsRequired`]).
///
/// # Errors
/// Records poisonguard refuses, or what [`FittedDetector::detect`] refuses.
pub fn detect_records<F: LinfaRecord>(
    fitted: &dyn FittedDetector,
    records: &Array2<F>,
) -> Result<Detection, DataError> {
    fitted.detect(&from_records(records)?)
}

/// Scores a labelled linfa dataset with a fitted detector.
///
/// # Errors
/// A dataset poisonguard refuses, or what [`FittedDetector::detect`] refuses.
pub fn detect_dataset<F: LinfaRecord, T: LinfaTarget>(
    fitted: &dyn FittedDetector,
    dataset: &DatasetBase<Array2<F>, Array1<T>>,
) -> Result<Detection, DataError> {
    fitted.detect(&Dataset::try_from(dataset)?)
}

/// Implements linfa's traits for poisonguard detectors, in the crate that defines them (linfa's
/// traits and the detectors are both foreign to the other's crate, so the impls live beside
/// the detectors):
/// - `fit: P1, P2, ...`: [`Fit`](linfa::traits::Fit)`<Array2<F>, Array1<T>, LinfaError>` for
///   detector parameters (checked or not) `P: Detector`, `F` = f32 or f64, `T` any
///   [`LinfaTarget`]: `params.fit(&linfa_dataset)` returns the fitted detector;
/// - `predict: X1, X2, ...`: [`PredictInplace`](linfa::traits::PredictInplace) for each fitted detector,
///   with the target `Result<Detection, DataError>` (scores, flags, p-values and reasons, or why
///   the rows were refused: linfa's predict cannot fail otherwise), from records
///   (`fitted.predict(&records)`; per-class detectors need labels and say so) and from a
///   labelled `DatasetBase<Array2<F>, Array1<T>>` (through `predict_inplace`: linfa's
///   `predict(&dataset)` reads the records only);
/// - `predict impl[GENERICS] X`: the same for a generic fitted type.
#[macro_export]
macro_rules! linfa_estimator {
    (fit: $($params:ty),* $(,)?) => {$(
        impl<F: $crate::LinfaRecord, T: $crate::LinfaTarget>
            $crate::__linfa::traits::Fit<
                $crate::__ndarray::Array2<F>,
                $crate::__ndarray::Array1<T>,
                $crate::LinfaError,
            > for $params
        {
            type Object = <$params as $crate::Detector>::Fitted;

            fn fit(
                &self,
                dataset: &$crate::__linfa::DatasetBase<
                    $crate::__ndarray::Array2<F>,
                    $crate::__ndarray::Array1<T>,
                >,
            ) -> ::std::result::Result<Self::Object, $crate::LinfaError> {
                $crate::fit_linfa(self, dataset)
            }
        }
    )*};
    (predict: $($fitted:ty),+ $(,)?) => {$(
        $crate::linfa_estimator!(predict impl[] $fitted);
    )+};
    (predict impl[$($gen:tt)*] $fitted:ty) => {
        impl<$($gen)* F: $crate::LinfaRecord>
            $crate::__linfa::traits::PredictInplace<
                $crate::__ndarray::Array2<F>,
                ::std::result::Result<$crate::Detection, $crate::DataError>,
            > for $fitted
        {
            fn predict_inplace(
                &self,
                x: &$crate::__ndarray::Array2<F>,
                y: &mut ::std::result::Result<$crate::Detection, $crate::DataError>,
            ) {
                *y = $crate::detect_records(self, x);
            }

            fn default_target(
                &self,
                _: &$crate::__ndarray::Array2<F>,
            ) -> ::std::result::Result<$crate::Detection, $crate::DataError> {
                Err($crate::DataError::NoRows)
            }
        }

        impl<$($gen)* F: $crate::LinfaRecord, T: $crate::LinfaTarget>
            $crate::__linfa::traits::PredictInplace<
                $crate::__linfa::DatasetBase<
                    $crate::__ndarray::Array2<F>,
                    $crate::__ndarray::Array1<T>,
                >,
                ::std::result::Result<$crate::Detection, $crate::DataError>,
            > for $fitted
        {
            fn predict_inplace(
                &self,
                x: &$crate::__linfa::DatasetBase<
                    $crate::__ndarray::Array2<F>,
                    $crate::__ndarray::Array1<T>,
                >,
                y: &mut ::std::result::Result<$crate::Detection, $crate::DataError>,
            ) {
                *y = $crate::detect_dataset(self, x);
            }

            fn default_target(
                &self,
                _: &$crate::__linfa::DatasetBase<
                    $crate::__ndarray::Array2<F>,
                    $crate::__ndarray::Array1<T>,
                >,
            ) -> ::std::result::Result<$crate::Detection, $crate::DataError> {
                Err($crate::DataError::NoRows)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn checks_apply_to_linfa_data() {
        let nan = DatasetBase::new(array![[1.0f64], [f64::NAN]], Array1::from(vec![0usize, 1]));
        assert!(matches!(Dataset::try_from(&nan), Err(DataError::NonFinite { row: 1, .. })));
        let huge = DatasetBase::new(array![[1.0f64], [1e300]], Array1::from(vec![0usize, 1]));
        assert!(matches!(Dataset::try_from(&huge), Err(DataError::OutOfF32Range { row: 1, .. })));
        let short = DatasetBase::new(array![[1.0f32], [2.0]], Array1::from(vec![0usize]));
        assert!(Dataset::try_from(&short).is_err());
        let big = DatasetBase::new(array![[1.0f32], [2.0]], Array1::from(vec![0u64, u64::MAX]));
        assert!(matches!(Dataset::try_from(&big), Err(DataError::LabelOutOfRange { row: 1, .. })));
        let words = DatasetBase::new(array![[1.0f32], [2.0]], Array1::from(vec!["cat", " dog"]));
        let data = Dataset::try_from(&words).unwrap();
        assert_eq!(data.labels().unwrap().value_of_row(1), &LabelValue::Str("dog".into()));
    }
}
