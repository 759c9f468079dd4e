//! Tables too large to hold: rows read in batches ([`RowSource`]), with the small per-row
//! columns (labels, ids, sources) held whole ([`RowKeys`]).

use std::ops::Range;

use ndarray::{Array2, ArrayView2};

use crate::{BoxError, DataError, Dataset, Labels};

/// The columns of a table that are not features, for every row: labels, ids, sources,
/// out-of-sample predicted probabilities (each optional) and the feature names. They are a few
/// bytes a row (the probabilities one f32 per class), so a batched audit holds them whole while
/// it reads the features batch by batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowKeys {
    n_rows: usize,
    labels: Option<Labels>,
    ids: Option<Vec<String>>,
    sources: Option<Vec<String>>,
    pred_probs: Option<Array2<f32>>,
    feature_names: Option<Vec<String>>,
}

/// How far a row of predicted probabilities may sum from 1.
const PROBABILITY_SUM_TOLERANCE: f64 = 1e-3;

impl RowKeys {
    /// Keys of `n_rows` rows, with no column yet.
    pub fn new(n_rows: usize) -> Self {
        Self { n_rows, ..Self::default() }
    }

    /// Attaches labels, one per row.
    ///
    /// # Errors
    /// [`DataError::LengthMismatch`] when the count differs from the number of rows.
    pub fn with_labels(mut self, labels: Labels) -> Result<Self, DataError> {
        self.check_len("labels", labels.ids().len())?;
        self.labels = Some(labels);
        Ok(self)
    }

    /// Attaches sample ids, one per row.
    ///
    /// # Errors
    /// [`DataError::LengthMismatch`] when the count differs from the number of rows.
    pub fn with_ids(mut self, ids: Vec<String>) -> Result<Self, DataError> {
        self.check_len("ids", ids.len())?;
        self.ids = Some(ids);
        Ok(self)
    }

    /// Attaches data sources, one per row.
    ///
    /// # Errors
    /// [`DataError::LengthMismatch`] when the count differs from the number of rows.
    pub fn with_sources(mut self, sources: Vec<String>) -> Result<Self, DataError> {
        self.check_len("sources", sources.len())?;
        self.sources = Some(sources);
        Ok(self)
    }

    /// Attaches out-of-sample predicted probabilities, `n_rows x n_classes`, columns in
    /// class-id order, each row summing to 1 (within 1e-3: f32 rounding of stored
    /// probabilities). Labels must be attached first.
    ///
    /// # Errors
    /// [`DataError::LabelsRequired`] without labels, [`DataError::LengthMismatch`],
    /// [`DataError::ProbabilityColumns`], [`DataError::InvalidProbability`] or
    /// [`DataError::ProbabilitySum`].
    pub fn with_pred_probs(mut self, probs: Array2<f32>) -> Result<Self, DataError> {
        let n_classes = match &self.labels {
            Some(l) => l.map().n_classes(),
            None => return Err(DataError::LabelsRequired { detector: "pred_probs" }),
        };
        self.check_len("predicted probabilities", probs.nrows())?;
        if probs.ncols() != n_classes {
            return Err(DataError::ProbabilityColumns {
                expected: n_classes,
                actual: probs.ncols(),
            });
        }
        for (row, r) in probs.rows().into_iter().enumerate() {
            if let Some((col, &value)) =
                r.iter().enumerate().find(|(_, v)| !(v.is_finite() && (0.0..=1.0).contains(*v)))
            {
                return Err(DataError::InvalidProbability { row, col, value });
            }
            let sum: f64 = r.iter().map(|&v| f64::from(v)).sum();
            if (sum - 1.0).abs() > PROBABILITY_SUM_TOLERANCE {
                return Err(DataError::ProbabilitySum { row, sum });
            }
        }
        self.pred_probs = Some(probs);
        Ok(self)
    }

    /// Attaches the feature names (checked against the features when a dataset is built).
    #[must_use]
    pub fn with_feature_names(mut self, names: Vec<String>) -> Self {
        self.feature_names = Some(names);
        self
    }

    /// `actual` values for these rows are one per row.
    pub(crate) fn check_len(&self, what: &'static str, actual: usize) -> Result<(), DataError> {
        if actual == self.n_rows {
            Ok(())
        } else {
            Err(DataError::LengthMismatch { what, expected: self.n_rows, actual })
        }
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// Labels, if any.
    pub fn labels(&self) -> Option<&Labels> {
        self.labels.as_ref()
    }

    /// Sample ids, if any.
    pub fn ids(&self) -> Option<&[String]> {
        self.ids.as_deref()
    }

    /// Data sources, if any.
    pub fn sources(&self) -> Option<&[String]> {
        self.sources.as_deref()
    }

    /// Predicted probabilities, if attached.
    pub fn pred_probs(&self) -> Option<ArrayView2<'_, f32>> {
        self.pred_probs.as_ref().map(Array2::view)
    }

    /// Feature names, if any.
    pub fn feature_names(&self) -> Option<&[String]> {
        self.feature_names.as_deref()
    }

    /// The keys of a dataset (its labels, ids, sources, predicted probabilities and feature
    /// names).
    pub fn of(data: &Dataset) -> Self {
        data.keys().clone()
    }

    /// The keys of the rows `rows`, in that order (labels in the same label map).
    ///
    /// # Panics
    /// If an entry of `rows` is out of bounds.
    pub(crate) fn select(&self, rows: &[usize]) -> Self {
        let pick = |v: &Vec<String>| rows.iter().map(|&i| v[i].clone()).collect::<Vec<_>>();
        Self {
            n_rows: rows.len(),
            labels: self.labels.as_ref().map(|l| l.select(rows)),
            ids: self.ids.as_ref().map(pick),
            sources: self.sources.as_ref().map(pick),
            pred_probs: self.pred_probs.as_ref().map(|p| p.select(ndarray::Axis(0), rows)),
            feature_names: self.feature_names.clone(),
        }
    }

    /// The dataset of rows `rows` (ascending or not) whose features are `features` (one row
    /// each, in that order), with these rows' labels (in the same label map, so classes keep
    /// their ids across batches), ids, sources, predicted probabilities and the feature names.
    ///
    /// # Errors
    /// As [`Dataset::new`], with the row of a non-finite value counted in the whole table
    /// (`rows`' entry); [`DataError::LengthMismatch`] when `features` has not one row per entry
    /// of `rows`.
    ///
    /// # Panics
    /// If an entry of `rows` is out of bounds.
    pub fn dataset(&self, features: Array2<f32>, rows: &[usize]) -> Result<Dataset, DataError> {
        if features.nrows() != rows.len() {
            return Err(DataError::LengthMismatch {
                what: "feature rows",
                expected: rows.len(),
                actual: features.nrows(),
            });
        }
        let data = Dataset::new(features).map_err(|e| match e {
            DataError::NonFinite { row, col, value } => {
                DataError::NonFinite { row: rows[row], col, value }
            }
            e => e,
        })?;
        let keys = self.select(rows);
        if let Some(names) = keys.feature_names().filter(|n| n.len() != data.n_features()) {
            return Err(DataError::LengthMismatch {
                what: "feature names",
                expected: data.n_features(),
                actual: names.len(),
            });
        }
        Ok(data.with_keys(keys))
    }
}

/// A table whose feature rows are read in batches (a file larger than memory): its keys are
/// held whole, its features read a range of rows at a time, as often as asked, always the same
/// values for the same rows.
pub trait RowSource {
    /// The keys of every row; [`RowKeys::n_rows`] is the table's row count.
    fn keys(&self) -> &RowKeys;

    /// Number of feature columns.
    fn n_features(&self) -> usize;

    /// The features of rows `rows` (a range within the table), one matrix row each.
    ///
    /// # Errors
    /// Whatever reading fails with (the file, its format); the caller adds nothing to it.
    fn read(&mut self, rows: Range<usize>) -> Result<Array2<f32>, BoxError>;
}

/// A dataset already in memory, read as a [`RowSource`] (how a batched audit is tested
/// against the in-memory one on the same rows).
#[derive(Debug)]
pub struct InMemoryRows<'a> {
    data: &'a Dataset,
    keys: RowKeys,
}

impl<'a> InMemoryRows<'a> {
    /// `data`'s rows as a source.
    pub fn new(data: &'a Dataset) -> Self {
        Self { data, keys: RowKeys::of(data) }
    }
}

impl RowSource for InMemoryRows<'_> {
    fn keys(&self) -> &RowKeys {
        &self.keys
    }

    fn n_features(&self) -> usize {
        self.data.n_features()
    }

    fn read(&mut self, rows: Range<usize>) -> Result<Array2<f32>, BoxError> {
        if rows.end > self.data.n_samples() || rows.start > rows.end {
            return Err(format!(
                "rows {}..{} of a table of {}",
                rows.start,
                rows.end,
                self.data.n_samples()
            )
            .into());
        }
        Ok(self.data.features().slice_axis(ndarray::Axis(0), rows.into()).to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LabelValue;

    #[test]
    fn a_batch_keeps_the_tables_classes_and_names_its_rows_and_probabilities() {
        let labels = Labels::from_values(&[0, 1, 2, 1].map(LabelValue::Int));
        let keys = RowKeys::new(4)
            .with_labels(labels)
            .unwrap()
            .with_ids(["a", "b", "c", "d"].map(String::from).to_vec())
            .unwrap();
        let probs = Array2::from_shape_fn((4, 3), |(i, c)| if i % 3 == c { 1.0f32 } else { 0.0 });
        let keys = keys.with_pred_probs(probs.clone()).unwrap();
        let batch = keys.dataset(Array2::zeros((2, 3)), &[3, 2]).unwrap();
        // the probabilities of the batch's rows, in its order
        assert_eq!(batch.pred_probs().unwrap(), probs.select(ndarray::Axis(0), &[3, 2]));
        let l = batch.labels().unwrap();
        assert_eq!(l.n_present_classes(), 2);
        assert_eq!(l.map().n_classes(), 3);
        assert_eq!(l.value_of_row(0), &LabelValue::Int(1));
        assert_eq!(batch.ids().unwrap(), ["d", "c"]);
        let mut bad = Array2::zeros((2, 3));
        bad[[1, 2]] = f32::NAN;
        assert!(matches!(
            keys.dataset(bad, &[0, 3]),
            Err(DataError::NonFinite { row: 3, col: 2, .. })
        ));
        assert!(keys.dataset(Array2::zeros((1, 3)), &[0, 1]).is_err());
        assert!(RowKeys::new(3).with_ids(vec![String::new()]).is_err());
    }

    #[test]
    fn an_in_memory_source_reads_row_ranges() {
        let data =
            Dataset::new(Array2::from_shape_fn((5, 2), |(i, j)| (i * 2 + j) as f32)).unwrap();
        let mut source = InMemoryRows::new(&data);
        assert_eq!(source.keys().n_rows(), 5);
        assert_eq!(source.read(1..3).unwrap(), data.features().select(ndarray::Axis(0), &[1, 2]));
        assert!(source.read(4..6).is_err());
    }
}
