//! The checked [`Dataset`] every detector consumes, and its label types.

use std::collections::BTreeSet;
use std::fmt;

use std::sync::Arc;

use ndarray::{Array2, ArrayView2};

use crate::batches::RowKeys;
use crate::error::DataError;

/// A dense class id: `0..n_classes`, an index into a [`LabelMap`].
#[derive(
    serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub struct ClassId(pub u32);

impl ClassId {
    /// The id as an index.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// An original label value, as found in the input: an integer or a string.
#[derive(
    serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub enum LabelValue {
    /// An integer label (`7`).
    Int(i64),
    /// A string label (`"cat"`).
    Str(String),
}

impl fmt::Display for LabelValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabelValue::Int(v) => f.pad(&v.to_string()),
            LabelValue::Str(s) => f.pad(s),
        }
    }
}

/// Maps dense [`ClassId`]s back to the original label values, sorted ascending.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct LabelMap {
    values: Vec<LabelValue>,
}

impl LabelMap {
    /// Builds a map from distinct label values; they are sorted so that class ids do not depend
    /// on row order.
    ///
    /// # Errors
    /// [`DataError::DuplicateLabel`] if a value appears twice.
    pub fn new(mut values: Vec<LabelValue>) -> Result<Self, DataError> {
        values.sort();
        if let Some(w) = values.windows(2).find(|w| w[0] == w[1]) {
            return Err(DataError::DuplicateLabel { label: w[0].to_string() });
        }
        Ok(Self { values })
    }

    /// Encodes a column of original labels as dense class ids, returning the ids and the map.
    ///
    /// # Example: string labels
    /// ```
    /// use poisonguard_core::{LabelMap, LabelValue, ClassId};
    /// let raw = ["cat", "dog", "cat"].map(|s| LabelValue::Str(s.into()));
    /// let (ids, map) = LabelMap::encode(&raw);
    /// assert_eq!(ids, vec![ClassId(0), ClassId(1), ClassId(0)]);
    /// assert_eq!(map.value(ClassId(1)), Some(&LabelValue::Str("dog".into())));
    /// ```
    pub fn encode(raw: &[LabelValue]) -> (Vec<ClassId>, LabelMap) {
        let distinct: BTreeSet<&LabelValue> = raw.iter().collect();
        let values: Vec<LabelValue> = distinct.into_iter().cloned().collect();
        let ids = raw
            .iter()
            .map(|v| {
                // `values` holds every element of `raw`, sorted, so the search always succeeds.
                let pos = values.binary_search(v).unwrap_or(0);
                ClassId(pos as u32)
            })
            .collect();
        (ids, LabelMap { values })
    }

    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        self.values.len()
    }

    /// The original value of a class, if the id is in range.
    pub fn value(&self, class: ClassId) -> Option<&LabelValue> {
        self.values.get(class.index())
    }

    /// All original values, in class-id order.
    pub fn values(&self) -> &[LabelValue] {
        &self.values
    }
}

/// Labels of a dataset: one dense class id per row plus the map back to original values.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Labels {
    ids: Vec<ClassId>,
    map: LabelMap,
}

impl Labels {
    /// Checks that every id is covered by `map`.
    ///
    /// # Errors
    /// [`DataError::UnknownClass`] for the first id outside the map.
    pub fn new(ids: Vec<ClassId>, map: LabelMap) -> Result<Self, DataError> {
        if let Some((row, c)) = ids.iter().enumerate().find(|(_, c)| c.index() >= map.n_classes()) {
            return Err(DataError::UnknownClass { row, class: c.0, n_classes: map.n_classes() });
        }
        Ok(Self { ids, map })
    }

    /// Encodes original label values (see [`LabelMap::encode`]).
    pub fn from_values(raw: &[LabelValue]) -> Self {
        let (ids, map) = LabelMap::encode(raw);
        Self { ids, map }
    }

    /// Class id of every row.
    pub fn ids(&self) -> &[ClassId] {
        &self.ids
    }

    /// The map back to original values.
    pub fn map(&self) -> &LabelMap {
        &self.map
    }

    /// Original value of row `i`'s label.
    ///
    /// # Panics
    /// If `i` is out of bounds.
    pub fn value_of_row(&self, i: usize) -> &LabelValue {
        &self.map.values[self.ids[i].index()]
    }

    /// The labels of the rows `rows`, in that order, in the same label map.
    ///
    /// # Panics
    /// If an entry of `rows` is out of bounds.
    pub(crate) fn select(&self, rows: &[usize]) -> Labels {
        Labels { ids: rows.iter().map(|&i| self.ids[i]).collect(), map: self.map.clone() }
    }

    /// Row indices of every class, in class-id order; each list is ascending.
    pub fn rows_by_class(&self) -> Vec<Vec<usize>> {
        let mut rows = vec![Vec::new(); self.map.n_classes()];
        for (i, c) in self.ids.iter().enumerate() {
            rows[c.index()].push(i);
        }
        rows
    }

    /// Every row's class id in another label map (the one a detector was fitted with), so that
    /// new data is scored against the fit's classes.
    ///
    /// # Errors
    /// [`DataError::UnseenLabel`] for the first row whose label `map` does not hold.
    pub fn ids_in(&self, map: &LabelMap) -> Result<Vec<ClassId>, DataError> {
        self.ids
            .iter()
            .enumerate()
            .map(|(row, c)| {
                let value = &self.map.values[c.index()];
                map.values
                    .binary_search(value)
                    .map(|pos| ClassId(pos as u32))
                    .map_err(|_| DataError::UnseenLabel { row, label: value.to_string() })
            })
            .collect()
    }

    /// Number of classes that have at least one row.
    pub fn n_present_classes(&self) -> usize {
        let mut seen = vec![false; self.map.n_classes()];
        for c in &self.ids {
            seen[c.index()] = true;
        }
        seen.iter().filter(|&&s| s).count()
    }
}

/// A checked training set: `n_samples x n_features` f32 features (raw inputs or learned
/// embeddings), optional labels, sample ids, source (contributor) names and out-of-sample
/// predicted probabilities.
///
/// Built only through [`Dataset::new`] and the `with_*` methods, which reject empty input,
/// mismatched lengths and non-finite values, naming the row and column; detectors trust it.
///
/// # Example: a labelled dataset from an ndarray
/// ```
/// use ndarray::array;
/// use poisonguard_core::{Dataset, Labels, LabelValue};
/// let x = array![[0.0f32, 1.0], [1.0, 0.0], [0.5, 0.5]];
/// let y = Labels::from_values(&[LabelValue::Int(3), LabelValue::Int(7), LabelValue::Int(3)]);
/// let data = Dataset::new(x)?.with_labels(y)?;
/// assert_eq!(data.n_samples(), 3);
/// assert_eq!(data.labels().map(|l| l.map().n_classes()), Some(2));
/// # Ok::<(), poisonguard_core::DataError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Shared, so that a fitted detector can keep the training rows it needs for `detect`
    /// without copying them (cloning a dataset shares them too).
    features: Arc<Array2<f32>>,
    /// Labels, ids, sources, predicted probabilities and feature names.
    keys: RowKeys,
    /// Whether the feature columns read as one unit ([`shares_one_unit`]), once asked.
    one_unit: std::sync::OnceLock<bool>,
}

impl Dataset {
    /// Wraps a feature matrix after checking that it is non-empty and finite.
    ///
    /// # Errors
    /// [`DataError::NoRows`], [`DataError::NoFeatures`], or [`DataError::NonFinite`] naming the
    /// first offending row and column (row-major order).
    pub fn new(features: Array2<f32>) -> Result<Self, DataError> {
        if features.nrows() == 0 {
            return Err(DataError::NoRows);
        }
        if features.ncols() == 0 {
            return Err(DataError::NoFeatures);
        }
        for (row, r) in features.rows().into_iter().enumerate() {
            if let Some((col, &value)) = r.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                return Err(DataError::NonFinite { row, col, value });
            }
        }
        let n = features.nrows();
        Ok(Self {
            features: Arc::new(features),
            keys: RowKeys::new(n),
            one_unit: Default::default(),
        })
    }

    /// Attaches labels, one per row.
    ///
    /// # Errors
    /// [`DataError::LengthMismatch`] when the count differs from the number of rows.
    pub fn with_labels(mut self, labels: Labels) -> Result<Self, DataError> {
        self.keys = self.keys.with_labels(labels)?;
        Ok(self)
    }

    /// Attaches sample ids, one per row.
    ///
    /// # Errors
    /// [`DataError::LengthMismatch`] when the count differs from the number of rows.
    pub fn with_ids(mut self, ids: Vec<String>) -> Result<Self, DataError> {
        self.keys = self.keys.with_ids(ids)?;
        Ok(self)
    }

    /// Attaches the data source (contributor) of every row.
    ///
    /// # Errors
    /// [`DataError::LengthMismatch`] when the count differs from the number of rows.
    pub fn with_sources(mut self, sources: Vec<String>) -> Result<Self, DataError> {
        self.keys = self.keys.with_sources(sources)?;
        Ok(self)
    }

    /// Attaches the names of the feature columns (used in reasons).
    ///
    /// # Errors
    /// [`DataError::LengthMismatch`] when the count differs from the number of features.
    pub fn with_feature_names(mut self, names: Vec<String>) -> Result<Self, DataError> {
        if names.len() != self.n_features() {
            return Err(DataError::LengthMismatch {
                what: "feature names",
                expected: self.n_features(),
                actual: names.len(),
            });
        }
        self.keys = self.keys.with_feature_names(names);
        Ok(self)
    }

    /// Name of feature `j`: its column name when known, else `#j`.
    pub fn feature_name(&self, j: usize) -> String {
        match self.keys.feature_names() {
            Some(names) if j < names.len() => names[j].clone(),
            _ => format!("#{j}"),
        }
    }

    /// Feature names, if attached.
    pub fn feature_names(&self) -> Option<&[String]> {
        self.keys.feature_names()
    }

    /// A new dataset of the given rows (features, labels, ids, sources, probabilities and
    /// feature names follow), e.g. one class.
    ///
    /// # Panics
    /// If a row index is out of bounds.
    pub fn select_rows(&self, rows: &[usize]) -> Dataset {
        Dataset {
            features: Arc::new(self.features.select(ndarray::Axis(0), rows)),
            keys: self.keys.select(rows),
            one_unit: Default::default(),
        }
    }

    /// Whether the feature columns read as one unit ([`shares_one_unit`]: pixels, the
    /// coordinates of an embedding) rather than as quantities in units of their own (a
    /// tabular record); computed once per dataset.
    pub fn features_share_one_unit(&self) -> bool {
        *self.one_unit.get_or_init(|| shares_one_unit(self.features.view()))
    }

    /// The labels, ids, sources, predicted probabilities and feature names of the rows.
    pub fn keys(&self) -> &RowKeys {
        &self.keys
    }

    /// This dataset with `keys` (of as many rows, feature names checked by the caller).
    pub(crate) fn with_keys(mut self, keys: RowKeys) -> Self {
        debug_assert_eq!(keys.n_rows(), self.n_samples());
        self.keys = keys;
        self
    }

    /// Attaches out-of-sample predicted probabilities, `n_samples x n_classes`, columns in
    /// class-id order, each row summing to 1 (within 1e-3: f32 rounding of stored
    /// probabilities). Labels must be attached first.
    ///
    /// # Errors
    /// [`DataError::LabelsRequired`] without labels, [`DataError::LengthMismatch`],
    /// [`DataError::ProbabilityColumns`], [`DataError::InvalidProbability`] or
    /// [`DataError::ProbabilitySum`].
    pub fn with_pred_probs(mut self, probs: Array2<f32>) -> Result<Self, DataError> {
        self.keys = self.keys.with_pred_probs(probs)?;
        Ok(self)
    }

    /// The feature matrix, `n_samples x n_features`.
    pub fn features(&self) -> ArrayView2<'_, f32> {
        self.features.view()
    }

    /// The feature matrix, shared (no copy): what a fitted detector keeps to score new rows
    /// against its training rows.
    pub fn shared_features(&self) -> Arc<Array2<f32>> {
        Arc::clone(&self.features)
    }

    /// Number of rows.
    pub fn n_samples(&self) -> usize {
        self.features.nrows()
    }

    /// Number of feature columns.
    pub fn n_features(&self) -> usize {
        self.features.ncols()
    }

    /// Labels, if attached.
    pub fn labels(&self) -> Option<&Labels> {
        self.keys.labels()
    }

    /// Sample ids, if attached.
    pub fn ids(&self) -> Option<&[String]> {
        self.keys.ids()
    }

    /// Source of every row, if attached.
    pub fn sources(&self) -> Option<&[String]> {
        self.keys.sources()
    }

    /// Predicted probabilities, if attached.
    pub fn pred_probs(&self) -> Option<ArrayView2<'_, f32>> {
        self.keys.pred_probs()
    }

    /// The labels, or [`DataError::LabelsRequired`] naming `detector`; also rejects labels that
    /// hold a single class with [`DataError::SingleClass`]. For detectors that work per class.
    ///
    /// # Errors
    /// As described.
    pub fn require_classes(&self, detector: &'static str) -> Result<&Labels, DataError> {
        let labels = self.labels().ok_or(DataError::LabelsRequired { detector })?;
        if labels.n_present_classes() < 2 {
            let label = labels.value_of_row(0).to_string();
            return Err(DataError::SingleClass { detector, label });
        }
        Ok(labels)
    }

    /// The feature count of several shards of one table, for a fit on shards.
    ///
    /// # Errors
    /// [`DataError::NoRows`] without shards, [`DataError::FeatureCountMismatch`] for the first
    /// shard whose width differs from the first's.
    pub fn shard_width(shards: &[Dataset]) -> Result<usize, DataError> {
        let d = shards.first().ok_or(DataError::NoRows)?.n_features();
        match shards.iter().find(|s| s.n_features() != d) {
            Some(s) => Err(DataError::FeatureCountMismatch { expected: d, actual: s.n_features() }),
            None => Ok(d),
        }
    }

    /// The classes of several shards of one table, for a per-class fit on shards: the union of
    /// their labels as one map, and every shard's rows as class ids in it. Every shard must be
    /// labelled (a shard may hold one class), and the union must hold two classes or more.
    ///
    /// # Errors
    /// [`DataError::LabelsRequired`] for a shard without labels, [`DataError::SingleClass`] when
    /// all shards together hold one class, [`DataError::NoRows`] without shards.
    pub fn shard_classes(
        shards: &[Dataset],
        detector: &'static str,
    ) -> Result<(LabelMap, Vec<Vec<ClassId>>), DataError> {
        let mut values: Vec<LabelValue> = Vec::new();
        for s in shards {
            let labels = s.labels().ok_or(DataError::LabelsRequired { detector })?;
            let present = labels.rows_by_class().into_iter().map(|rows| !rows.is_empty());
            values.extend(
                labels
                    .map()
                    .values()
                    .iter()
                    .zip(present)
                    .filter(|(_, p)| *p)
                    .map(|(v, _)| v.clone()),
            );
        }
        values.sort();
        values.dedup();
        match values.len() {
            0 => return Err(DataError::NoRows),
            1 => return Err(DataError::SingleClass { detector, label: values[0].to_string() }),
            _ => {}
        }
        let map = LabelMap::new(values)?;
        let ids = shards
            .iter()
            .map(|s| s.labels().ok_or(DataError::LabelsRequired { detector })?.ids_in(&map))
            .collect::<Result<_, _>>()?;
        Ok((map, ids))
    }
}

/// Row indices as a set: ascending, each once. How a list of rows given by a caller (the
/// trusted rows of an audit or a detector) is kept.
pub fn row_set(rows: impl IntoIterator<Item = usize>) -> Vec<usize> {
    let mut rows: Vec<usize> = rows.into_iter().collect();
    rows.sort_unstable();
    rows.dedup();
    rows
}

/// Most the columns' ranges may spread (the 90th over the 10th percentile of `max - min` over
/// the columns that vary) for [`shares_one_unit`]: one decade.
pub const ONE_UNIT_SPREAD: f64 = 10.0;

/// Whether the feature columns of `x` read as measurements in one unit: the ranges (`max -
/// min`) of the columns that vary lie within one decade of each other ([`ONE_UNIT_SPREAD`],
/// 90th over 10th percentile). Pixels (every column in 0..255, or 0..16) and the coordinates of
/// a network's embedding do (spreads 1.2-2.7 and 5-7 on the tables of `datasets/` and
/// `tests/fixtures/`); a tabular record whose columns carry their own units does not (`wine`
/// 57, `breast_cancer` 4,500). Distances between rows of one unit are read as given:
/// z-scoring them lifts a column that hardly varies (a corner pixel) to the weight of any
/// other, and a trigger patch written there then decides every neighbourhood. Fewer than two
/// varying columns read as one unit.
pub fn shares_one_unit(x: ArrayView2<'_, f32>) -> bool {
    let mut ranges: Vec<f64> = x
        .columns()
        .into_iter()
        .filter_map(|c| {
            let (lo, hi) = c
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
            let r = f64::from(hi) - f64::from(lo);
            (r > 0.0).then_some(r)
        })
        .collect();
    if ranges.len() < 2 {
        return true;
    }
    ranges.sort_by(f64::total_cmp);
    let q = |p: f64| crate::quantile_sorted(&ranges, p);
    q(0.9) <= ONE_UNIT_SPREAD * q(0.1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    /// Pixels and coordinates of one vector share a unit; records whose columns span decades
    /// do not; constant columns are left out of the test.
    #[test]
    fn one_unit_is_read_off_the_column_ranges() {
        // 0..255 in every varying column, two blank columns
        let pixels = Array2::from_shape_fn((50, 6), |(i, j)| {
            if j < 2 { 0.0 } else { ((i * 53 + j * 7) % 256) as f32 }
        });
        assert!(shares_one_unit(pixels.view()));
        // ranges 1, 10, 100, 1000
        let record = Array2::from_shape_fn((50, 4), |(i, j)| (i % 2) as f32 * 10f32.powi(j as i32));
        assert!(!shares_one_unit(record.view()));
        let one = Array2::from_shape_fn((50, 3), |(i, j)| if j == 0 { i as f32 } else { 1.0 });
        assert!(shares_one_unit(one.view()));
        let data = Dataset::new(record).unwrap();
        assert!(!data.features_share_one_unit());
        assert!(!data.clone().features_share_one_unit());
    }

    #[test]
    fn rejects_empty_and_non_finite() {
        assert_eq!(Dataset::new(Array2::zeros((0, 3))).unwrap_err(), DataError::NoRows);
        assert_eq!(Dataset::new(Array2::zeros((3, 0))).unwrap_err(), DataError::NoFeatures);
        let x = array![[0.0f32, 1.0], [1.0, f32::INFINITY]];
        assert_eq!(
            Dataset::new(x).unwrap_err(),
            DataError::NonFinite { row: 1, col: 1, value: f32::INFINITY }
        );
        let x = array![[f32::NAN, 1.0]];
        assert!(matches!(Dataset::new(x), Err(DataError::NonFinite { row: 0, col: 0, .. })));
    }

    #[test]
    fn rejects_mismatched_lengths() {
        let d = Dataset::new(Array2::zeros((3, 2))).unwrap();
        let y = Labels::from_values(&[LabelValue::Int(0), LabelValue::Int(1)]);
        assert_eq!(
            d.with_labels(y).unwrap_err(),
            DataError::LengthMismatch { what: "labels", expected: 3, actual: 2 }
        );
    }

    #[test]
    fn encodes_labels_sorted() {
        let raw = [LabelValue::Int(9), LabelValue::Int(-1), LabelValue::Int(9)];
        let l = Labels::from_values(&raw);
        assert_eq!(l.ids(), &[ClassId(1), ClassId(0), ClassId(1)]);
        assert_eq!(l.rows_by_class(), vec![vec![1], vec![0, 2]]);
        assert_eq!(l.value_of_row(0), &LabelValue::Int(9));
    }

    #[test]
    fn single_class_is_rejected_where_classes_are_needed() {
        let d = Dataset::new(Array2::zeros((2, 2)))
            .unwrap()
            .with_labels(Labels::from_values(&[LabelValue::Int(4), LabelValue::Int(4)]))
            .unwrap();
        assert_eq!(
            d.require_classes("x").unwrap_err(),
            DataError::SingleClass { detector: "x", label: "4".into() }
        );
        let d = Dataset::new(Array2::zeros((2, 2))).unwrap();
        assert_eq!(
            d.require_classes("x").unwrap_err(),
            DataError::LabelsRequired { detector: "x" }
        );
    }

    #[test]
    fn checks_probabilities() {
        let d = Dataset::new(Array2::zeros((2, 1)))
            .unwrap()
            .with_labels(Labels::from_values(&[LabelValue::Int(0), LabelValue::Int(1)]))
            .unwrap();
        let p = array![[0.5f32, 0.5], [1.5, -0.5]];
        assert!(matches!(
            d.clone().with_pred_probs(p),
            Err(DataError::InvalidProbability { row: 1, col: 0, .. })
        ));
        assert!(matches!(
            d.clone().with_pred_probs(array![[0.5f32, 0.5], [0.7, 0.6]]),
            Err(DataError::ProbabilitySum { row: 1, .. })
        ));
        assert!(d.with_pred_probs(array![[1.0f32, 0.0], [0.0, 1.0]]).is_ok());
    }
}
