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

impl<F: LinfaRecord, T: LinfaTarget> TryFrom<&DatasetBase<Array2<F>, Array1<T>>> for Dataset {
    type Error = DataError;

    fn try_from(linfa: &DatasetBase<Array2<F>, Array1<T>>) -> Result<Self, DataError> {
        let records = linfa.records();
        let mut x = Array2::<f32>::zeros(records.dim());
        for ((row, col), &v) in records.indexed_iter() {
            let v = v.to_f64();
            if v.is_finite() && v.abs() > f64::from(f32::MAX) {
                return Err(DataError::OutOfF32Range { row, col, value: v });
            }
            x[[row, col]] = v as f32;
        }
        let mut data = Dataset::new(x)?;
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
