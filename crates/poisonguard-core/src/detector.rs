//! The detector contract: checked hyperparameters -> `fit` -> a fitted detector with its
//! training [`Detection`] and class-level findings.

use std::error::Error as StdError;
use std::fmt;

use crate::dataset::Dataset;
use crate::detection::{Detection, DetectorId};
use crate::error::DataError;
use crate::findings::{ClassFinding, NoiseMatrix, PoisonEstimate, SkippedClass};
use crate::info::DetectorInfo;
use crate::knn::{FitContext, KnnGraph};
use crate::state::SaveState;
use crate::threshold::ThresholdRule;

/// Unchecked hyperparameters that become `Checked` ones after validation (as in linfa).
///
/// The unchecked type also implements [`Detector`] through a blanket impl: `fit` checks first.
pub trait ParamGuard {
    /// The validated hyperparameters.
    type Checked;
    /// The validation error.
    type Error;

    /// Validates, returning a reference to the checked parameters.
    ///
    /// # Errors
    /// When a parameter is out of range.
    fn check_ref(&self) -> Result<&Self::Checked, Self::Error>;

    /// Validates, consuming the unchecked parameters.
    ///
    /// # Errors
    /// When a parameter is out of range.
    fn check(self) -> Result<Self::Checked, Self::Error>;
}

/// A detector configuration that can be fitted on a [`Dataset`].
pub trait Detector {
    /// The fitted detector.
    type Fitted: FittedDetector + 'static;
    /// What can go wrong while fitting.
    type Error: StdError + Send + Sync + 'static;

    /// What the detector declares about itself (id, family, needs, paper).
    const INFO: DetectorInfo;

    /// Fits on `data`, scoring its rows (the training [`Detection`]).
    ///
    /// # Errors
    /// Data the detector cannot use (e.g. no labels for a per-class detector) or an algorithm
    /// failure.
    fn fit(&self, data: &Dataset) -> Result<Self::Fitted, Self::Error>;

    /// Neighbours per row this detector needs from a shared kNN graph of the features of
    /// `data` as given, if it uses one.
    fn knn_k(&self, data: &Dataset) -> Option<usize> {
        let _ = data;
        None
    }

    /// Neighbours per row this detector needs from a shared kNN graph of the *standardized*
    /// features of `data` (see [`Standardizer`](crate::Standardizer)), if it uses one.
    fn standardized_knn_k(&self, data: &Dataset) -> Option<usize> {
        let _ = data;
        None
    }

    /// Whether this detector reads the distances of the shared graphs it asks for (by
    /// default it does); an audit keeps a graph's distances only when a detector that reads the
    /// graph reads them ([`KnnGraph::without_distances`](crate::KnnGraph::without_distances)).
    fn knn_distances(&self) -> bool {
        true
    }

    /// Fits with what an audit shares (a kNN graph); by default the context is ignored.
    ///
    /// # Errors
    /// As [`Detector::fit`].
    fn fit_in(&self, data: &Dataset, ctx: &FitContext<'_>) -> Result<Self::Fitted, Self::Error> {
        let _ = ctx;
        self.fit(data)
    }
}

/// The settings an audit hands every detector it builds (the facade's `DetectorOptions`), as
/// part of the detector contract: a detector's parameters implement it (with `Default`, the
/// paper's parameters), so that the registry builds every detector the same way and a
/// detector is added by its folder and one registry line. A setting a detector has no use for
/// leaves it as it is (the defaults below).
pub trait Configure: Default {
    /// Sets the threshold rule.
    #[must_use]
    fn with_threshold(self, rule: ThresholdRule) -> Self;

    /// Sets the seed of every randomized step (a deterministic detector ignores it).
    #[must_use]
    fn with_seed(self, seed: u64) -> Self {
        let _ = seed;
        self
    }

    /// Fits within each label's rows (the outlier detectors; per-class detectors are per class
    /// by construction and ignore it).
    #[must_use]
    fn with_per_class(self, per_class: bool) -> Self {
        let _ = per_class;
        self
    }

    /// Rows of the table known to be clean (a vetted sample), for detectors that measure their
    /// nulls on them or fit on them; the others ignore it.
    #[must_use]
    fn with_trusted(self, rows: &[usize]) -> Self {
        let _ = rows;
        self
    }
}

impl<P> Detector for P
where
    P: ParamGuard,
    P::Checked: Detector,
    <P::Checked as Detector>::Error: From<P::Error>,
{
    type Fitted = <P::Checked as Detector>::Fitted;
    type Error = <P::Checked as Detector>::Error;

    const INFO: DetectorInfo = <P::Checked as Detector>::INFO;

    fn fit(&self, data: &Dataset) -> Result<Self::Fitted, Self::Error> {
        self.check_ref()?.fit(data)
    }

    fn knn_k(&self, data: &Dataset) -> Option<usize> {
        self.check_ref().ok().and_then(|c| c.knn_k(data))
    }

    fn standardized_knn_k(&self, data: &Dataset) -> Option<usize> {
        self.check_ref().ok().and_then(|c| c.standardized_knn_k(data))
    }

    fn knn_distances(&self) -> bool {
        self.check_ref().map_or(true, |c| c.knn_distances())
    }

    fn fit_in(&self, data: &Dataset, ctx: &FitContext<'_>) -> Result<Self::Fitted, Self::Error> {
        self.check_ref()?.fit_in(data, ctx)
    }
}

/// A fitted detector: its training detection, threshold and findings, and scoring of new rows.
///
/// Every fitted detector is serde-serializable ([`SaveState`]): it can be saved and read back
/// (with [`load_state`](crate::load_state) and its concrete type) to score new rows later.
pub trait FittedDetector: Send + Sync + fmt::Debug + SaveState {
    /// The detector's stable id.
    fn id(&self) -> DetectorId;

    /// In-sample scores of the rows it was fitted on (PyOD's `decision_scores_`).
    fn training(&self) -> &Detection;

    /// The fitted threshold.
    fn threshold(&self) -> f64 {
        self.training().threshold()
    }

    /// Class-level findings (which classes look attacked); empty for detectors without any.
    fn class_findings(&self) -> &[ClassFinding] {
        &[]
    }

    /// Classes the detector left unscored for having too few rows; empty for detectors that
    /// score every row.
    fn skipped_classes(&self) -> &[SkippedClass] {
        &[]
    }

    /// The estimated noise matrix (given label x true label), for detectors that estimate one.
    fn noise_matrix(&self) -> Option<&NoiseMatrix> {
        None
    }

    /// The detector's estimate of how many training rows are poisoned, with an interval, for
    /// detectors that can count (a model of clean data that tells how many rows break it);
    /// `None` for detectors that only rank rows.
    fn poison_estimate(&self) -> Option<PoisonEstimate> {
        None
    }

    /// Scores new rows against the fit, with the same threshold.
    ///
    /// # Errors
    /// Data that does not match the fit (feature count, labels).
    fn detect(&self, data: &Dataset) -> Result<Detection, DataError>;

    /// Neighbours per new row that [`FittedDetector::detect`] searches among the training
    /// rows in their standardized space (the [`Standardizer`](crate::Standardizer) fitted on
    /// the training rows), if it searches there: an audit scoring batches of rows against
    /// several such detectors searches once for all of them and hands the result to
    /// [`FittedDetector::detect_in`].
    fn standardized_query_k(&self) -> Option<usize> {
        None
    }

    /// [`FittedDetector::detect`] with the search an audit shares: `query` holds the nearest
    /// training rows of every row of `data` in the training rows' standardized space, found as
    /// the detector's own search finds them, with at least
    /// [`FittedDetector::standardized_query_k`] neighbours. By default it is ignored.
    ///
    /// # Errors
    /// As [`FittedDetector::detect`].
    fn detect_in(&self, data: &Dataset, query: Option<&KnnGraph>) -> Result<Detection, DataError> {
        let _ = query;
        self.detect(data)
    }
}

/// A boxed error from any detector.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// An object-safe detector, so that detectors of different types can run side by side.
/// Every [`Detector`] is one.
pub trait DynDetector: Send + Sync + fmt::Debug {
    /// What the detector declares about itself.
    fn info(&self) -> DetectorInfo;

    /// The detector's stable id.
    fn id(&self) -> DetectorId {
        self.info().id
    }

    /// Fits and boxes the result.
    ///
    /// # Errors
    /// The detector's fit error, boxed.
    fn fit_boxed(&self, data: &Dataset) -> Result<Box<dyn FittedDetector>, BoxError> {
        self.fit_boxed_in(data, &FitContext::default())
    }

    /// Fits with a shared context and boxes the result.
    ///
    /// # Errors
    /// The detector's fit error, boxed.
    fn fit_boxed_in(
        &self,
        data: &Dataset,
        ctx: &FitContext<'_>,
    ) -> Result<Box<dyn FittedDetector>, BoxError>;

    /// Neighbours per row this detector needs from a shared kNN graph of the features of
    /// `data` as given, if it uses one.
    fn knn_k(&self, data: &Dataset) -> Option<usize>;

    /// Neighbours per row this detector needs from a shared graph of standardized features.
    fn standardized_knn_k(&self, data: &Dataset) -> Option<usize>;

    /// Whether this detector reads the distances of the shared graphs it asks for.
    fn knn_distances(&self) -> bool;
}

impl<D> DynDetector for D
where
    D: Detector + Send + Sync + fmt::Debug,
{
    fn info(&self) -> DetectorInfo {
        D::INFO
    }

    fn fit_boxed_in(
        &self,
        data: &Dataset,
        ctx: &FitContext<'_>,
    ) -> Result<Box<dyn FittedDetector>, BoxError> {
        match self.fit_in(data, ctx) {
            Ok(f) => Ok(Box::new(f)),
            Err(e) => Err(Box::new(e)),
        }
    }

    fn knn_k(&self, data: &Dataset) -> Option<usize> {
        Detector::knn_k(self, data)
    }

    fn standardized_knn_k(&self, data: &Dataset) -> Option<usize> {
        Detector::standardized_knn_k(self, data)
    }

    fn knn_distances(&self) -> bool {
        Detector::knn_distances(self)
    }
}
