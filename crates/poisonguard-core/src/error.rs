//! Errors shared by every poisonguard crate: bad data and bad hyperparameters.

use thiserror::Error;

/// A dataset, label vector or score vector that cannot be used as given.
///
/// Every variant carries the offending values (row, column, sizes) so that callers can name them.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum DataError {
    /// The feature matrix has no rows.
    #[error("the dataset has no rows")]
    NoRows,
    /// The feature matrix has no columns.
    #[error("the dataset has no feature columns")]
    NoFeatures,
    /// A feature value is NaN or infinite.
    #[error("feature value at row {row}, column {col} is not finite ({value})")]
    NonFinite {
        /// 0-based row.
        row: usize,
        /// 0-based feature column.
        col: usize,
        /// The offending value.
        value: f32,
    },
    /// A finite feature value beyond f32's range (features are stored as f32).
    #[error("feature value at row {row}, column {col} ({value}) is beyond the f32 range")]
    OutOfF32Range {
        /// 0-based row.
        row: usize,
        /// 0-based feature column.
        col: usize,
        /// The offending value.
        value: f64,
    },
    /// A label that poisonguard cannot hold (an integer beyond i64).
    #[error("label at row {row} ({value}) does not fit in a 64-bit integer")]
    LabelOutOfRange {
        /// 0-based row.
        row: usize,
        /// The label, rendered.
        value: String,
    },
    /// A per-row vector (labels, ids, sources, probabilities) does not have one entry per row.
    #[error("{what} has {actual} entries but the dataset has {expected} rows")]
    LengthMismatch {
        /// What was given (e.g. "labels").
        what: &'static str,
        /// Number of feature rows.
        expected: usize,
        /// Number of entries given.
        actual: usize,
    },
    /// A class id is not covered by the label map.
    #[error("row {row} has class id {class} but the label map has only {n_classes} classes")]
    UnknownClass {
        /// 0-based row.
        row: usize,
        /// The class id found.
        class: u32,
        /// Number of classes in the map.
        n_classes: usize,
    },
    /// The label map lists the same original label twice.
    #[error("label {label} appears twice in the label map")]
    DuplicateLabel {
        /// The repeated label, rendered.
        label: String,
    },
    /// A predicted probability is negative, above one, or not finite.
    #[error("predicted probability at row {row}, column {col} is {value}, outside [0, 1]")]
    InvalidProbability {
        /// 0-based row.
        row: usize,
        /// 0-based class column.
        col: usize,
        /// The offending value.
        value: f32,
    },
    /// A row of predicted probabilities does not sum to 1.
    #[error("predicted probabilities at row {row} sum to {sum}, not 1")]
    ProbabilitySum {
        /// 0-based row.
        row: usize,
        /// The row's sum.
        sum: f64,
    },
    /// The predicted-probability matrix does not have one column per class.
    #[error("predicted probabilities have {actual} columns but there are {expected} classes")]
    ProbabilityColumns {
        /// Number of classes.
        expected: usize,
        /// Number of columns given.
        actual: usize,
    },
    /// A detector that works per class was given a dataset without labels.
    #[error("detector {detector} needs labels")]
    LabelsRequired {
        /// The detector asking.
        detector: &'static str,
    },
    /// A detector that compares classes was given a dataset whose labels hold one class.
    #[error("detector {detector} needs at least two classes, but every row has label {label}")]
    SingleClass {
        /// The detector asking.
        detector: &'static str,
        /// The only label present.
        label: String,
    },
    /// New data holds a label that the detector did not see when it was fitted.
    #[error("row {row} has label {label}, which was not seen at fit time")]
    UnseenLabel {
        /// 0-based row.
        row: usize,
        /// The label, rendered.
        label: String,
    },
    /// New data given to a fitted detector has a different number of features.
    #[error("the detector was fitted on {expected} features but the data has {actual}")]
    FeatureCountMismatch {
        /// Features at fit time.
        expected: usize,
        /// Features now.
        actual: usize,
    },
    /// A fitted detector could not score new rows for a reason other than the data's shape.
    #[error("detector {detector} cannot score the rows: {message}")]
    Detector {
        /// The detector.
        detector: &'static str,
        /// What went wrong.
        message: String,
    },
    /// A score vector handed to the thresholding or to a metric holds a non-finite value.
    #[error("score at row {row} is not finite ({value})")]
    NonFiniteScore {
        /// 0-based row.
        row: usize,
        /// The offending score.
        value: f64,
    },
    /// A metric was asked of ground truth that holds only one kind of row.
    #[error(
        "ground truth has {positives} positive and {negatives} negative rows; the metric needs both"
    )]
    DegenerateTruth {
        /// Number of positive (poisoned) rows.
        positives: usize,
        /// Number of negative (clean) rows.
        negatives: usize,
    },
}

/// A hyperparameter outside its allowed range.
///
/// Each variant names the parameter, the value given and what is allowed.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum ParamError {
    /// A floating-point parameter outside its range.
    #[error("parameter {name} = {value} is outside the allowed range {allowed}")]
    OutOfRange {
        /// Parameter name.
        name: &'static str,
        /// The value given.
        value: f64,
        /// The allowed range, in words.
        allowed: &'static str,
    },
    /// An integer parameter outside its range.
    #[error("parameter {name} = {value} is outside the allowed range {allowed}")]
    CountOutOfRange {
        /// Parameter name.
        name: &'static str,
        /// The value given.
        value: usize,
        /// The allowed range, in words.
        allowed: &'static str,
    },
}
