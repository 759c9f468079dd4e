//! The distributed audit's steps for Ray and Spark (`python/poisonguard/ray.py`, `spark.py`):
//! the batch plan, the seeded reference sample drawn from every row's labels, the reference fit
//! that travels to the workers as bytes, and each part's scores against it.

use std::sync::Arc;

use numpy::IntoPyArray;
use poisonguard::{Audit, Labels, RowKeys};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::{
    PoisonguardError, audit, detached, features, keyed_report_to_py, options, refused, two_classes,
};

/// The keys of every row of a table audited in parts: labels and sources.
pub(crate) fn row_keys(
    n_rows: usize,
    labels: Option<&Bound<'_, PyAny>>,
    sources: Option<Vec<String>>,
    feature_names: Option<Vec<String>>,
) -> PyResult<RowKeys> {
    let mut keys = RowKeys::new(n_rows);
    if let Some(y) = labels {
        keys =
            keys.with_labels(Labels::from_values(&crate::labels(y)?)).map_err(|e| refused(&e))?;
    }
    if let Some(sources) = sources {
        keys = keys.with_sources(sources).map_err(|e| refused(&e))?;
    }
    if let Some(names) = feature_names {
        keys = keys.with_feature_names(names);
    }
    Ok(keys)
}

/// The batched audit's plan for a memory budget (as `poisonguard scan --memory-limit`):
/// `(reference rows, batch rows)`.
#[pyfunction]
#[pyo3(signature = (budget, n_rows, n_features, seed=None))]
pub(crate) fn batch_plan(
    budget: u64,
    n_rows: usize,
    n_features: usize,
    seed: Option<u64>,
) -> PyResult<(usize, usize)> {
    let seed = seed.unwrap_or(poisonguard::DEFAULT_SEED);
    let plan = poisonguard::BatchPlan::for_budget(budget, n_rows, n_features, seed)
        .map_err(|e| refused(&e))?;
    Ok((plan.reference_rows, plan.batch_rows))
}

/// The reference sample of a table of `n_rows` rows with these `labels` (class-stratified,
/// seeded): its rows, ascending.
#[pyfunction]
#[pyo3(signature = (n_rows, reference_rows, labels=None, seed=None))]
pub(crate) fn reference_sample<'py>(
    py: Python<'py>,
    n_rows: usize,
    reference_rows: usize,
    labels: Option<&Bound<'py, PyAny>>,
    seed: Option<u64>,
) -> PyResult<Bound<'py, numpy::PyArray1<u64>>> {
    let keys = row_keys(n_rows, labels, None, None)?;
    let seed = seed.unwrap_or(poisonguard::DEFAULT_SEED);
    let rows: Vec<u64> = poisonguard::reference_sample(&keys, reference_rows, seed)
        .into_iter()
        .map(|i| i as u64)
        .collect();
    Ok(rows.into_pyarray(py))
}

/// Fits the audit on the reference rows of a table audited in parts.
#[pyfunction]
#[pyo3(signature = (x, reference, n_rows, labels=None, *, sources=None, feature_names=None, detectors=None, fdr=0.1, seed=None, per_class=false, knn="auto", knn_probes=None, progress=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn fit_reference(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    reference: Vec<usize>,
    n_rows: usize,
    labels: Option<&Bound<'_, PyAny>>,
    sources: Option<Vec<String>>,
    feature_names: Option<Vec<String>>,
    detectors: Option<Vec<String>>,
    fdr: f64,
    seed: Option<u64>,
    per_class: bool,
    knn: &str,
    knn_probes: Option<usize>,
    progress: Option<Py<PyAny>>,
) -> PyResult<ReferenceFit> {
    let features = features(x)?;
    let keys = row_keys(n_rows, labels, sources, feature_names)?;
    if let Some(labels) = keys.labels() {
        two_classes(labels)?;
    }
    let opts = options(seed, per_class, (knn, knn_probes), None, n_rows)?;
    let audit = audit(detectors, &opts, fdr, |o| Audit::for_labels(keys.labels(), o))?;
    let (keys, fit) = detached(py, progress, move |on_event| {
        let fit = audit.fit_reference(&keys, reference, features, on_event);
        (keys, fit)
    })?;
    let fit = fit.map_err(|e| refused(&e))?;
    Ok(ReferenceFit { fit: Arc::new(fit), keys: Arc::new(keys) })
}

/// The driver's side of an audit in parts: the detectors fitted on the reference sample, and
/// the assembly of the parts' scores into the report of the whole table.
#[pyclass(module = "poisonguard._native", frozen)]
#[derive(Debug)]
pub(crate) struct ReferenceFit {
    fit: Arc<poisonguard::ReferenceFit>,
    keys: Arc<RowKeys>,
}

#[pymethods]
impl ReferenceFit {
    /// The fitted model's bytes, for the workers.
    fn model_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let mut out = Vec::new();
        self.fit.model().save(&mut out).map_err(|e| refused(&e))?;
        Ok(PyBytes::new(py, &out))
    }

    /// The reference rows, ascending.
    #[getter]
    fn reference<'py>(&self, py: Python<'py>) -> Bound<'py, numpy::PyArray1<u64>> {
        let rows: Vec<u64> = self.fit.reference().iter().map(|&i| i as u64).collect();
        rows.into_pyarray(py)
    }

    /// The report of the whole table from the parts' scores (bytes of `Model.score_part`, in
    /// any order); returns `(columns, summary JSON)`.
    fn assemble<'py>(
        &self,
        py: Python<'py>,
        parts: Vec<Vec<u8>>,
    ) -> PyResult<(Bound<'py, PyList>, String)> {
        let (fit, keys) = (Arc::clone(&self.fit), Arc::clone(&self.keys));
        let report = detached(py, None, move |_| {
            let parts = parts
                .iter()
                .map(|b| poisonguard::PartScores::from_bytes(b))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| poisonguard::error_chain(&e))?;
            fit.assemble(&keys, parts).map_err(|e| poisonguard::error_chain(&e))
        })?
        .map_err(PoisonguardError::new_err)?;
        let n_features = self.fit.model().n_features();
        keyed_report_to_py(py, &report, self.keys.ids(), self.keys.labels(), n_features)
    }
}
