//! The native module of the `poisonguard` Python package (`poisonguard._native`): the audit of a
//! numpy feature matrix, fitted models, and their bytes in the command line's model format.
//!
//! The Python package (`python/poisonguard`) turns numpy, pyarrow, polars and pandas inputs
//! into the arrays this module takes, and its results into a pyarrow table and a `Summary`;
//! users import `poisonguard`, not this module.
//!
//! Every call releases the GIL while it works: the audit runs on a worker thread while the
//! calling thread waits, checking for Ctrl-C every tenth of a second (a `KeyboardInterrupt`
//! returns control at once; the work already under way finishes in the background and is
//! dropped). Every error is a `poisonguard.PoisonguardError` (a `ValueError`) carrying the
//! message the command line prints; a panic becomes one too, never an abort.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use ndarray::Array2;
use numpy::{IntoPyArray, PyReadonlyArray1, PyReadonlyArray2};
use poisonguard::{
    Audit, AuditEvent, Dataset, DetectorOptions, FittedAudit, KnnMode, LabelValue, Labels, Report,
    ReportColumn,
};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

mod distributed;

use distributed::{ReferenceFit, batch_plan, fit_reference, reference_sample};

pyo3::create_exception!(
    _native,
    PoisonguardError,
    pyo3::exceptions::PyValueError,
    "An input, an option or a model that poisonguard refuses, with the command line's message."
);

/// `e` and its sources as the exception, in the command line's words (`outer: inner: ...`).
fn refused(e: &(dyn std::error::Error + 'static)) -> PyErr {
    PoisonguardError::new_err(poisonguard::error_chain(e))
}

/// A false-discovery rate outside `(0, 1)`.
fn bad_fdr(e: poisonguard::ParamError) -> PyErr {
    PoisonguardError::new_err(format!("fdr: {e}"))
}

/// Refuses labels of a single class to a fit, as `poisonguard scan` does: the per-class
/// detectors compare classes.
fn two_classes(labels: &Labels) -> PyResult<()> {
    if labels.n_present_classes() < 2 && !labels.ids().is_empty() {
        return Err(PoisonguardError::new_err(format!(
            "labels hold a single class ({}); the per-class detectors compare classes",
            labels.value_of_row(0)
        )));
    }
    Ok(())
}

/// The feature matrix: a 2-D float32 or float64 numpy array, copied once into the audit's f32
/// matrix.
fn features(x: &Bound<'_, PyAny>) -> PyResult<Array2<f32>> {
    if let Ok(a) = x.extract::<PyReadonlyArray2<'_, f32>>() {
        return Ok(a.as_array().to_owned());
    }
    if let Ok(a) = x.extract::<PyReadonlyArray2<'_, f64>>() {
        return Ok(a.as_array().mapv(|v| v as f32));
    }
    Err(PoisonguardError::new_err(
        "X: expected a 2-D numpy array of float32 or float64 (the Python package converts other inputs)",
    ))
}

/// The labels: a 1-D int64 numpy array or a list of strings.
fn labels(y: &Bound<'_, PyAny>) -> PyResult<Vec<LabelValue>> {
    if let Ok(a) = y.extract::<PyReadonlyArray1<'_, i64>>() {
        return Ok(a.as_array().iter().map(|&k| LabelValue::Int(k)).collect());
    }
    if let Ok(v) = y.extract::<Vec<String>>() {
        return Ok(v.into_iter().map(LabelValue::Str).collect());
    }
    Err(PoisonguardError::new_err("labels: expected a 1-D int64 numpy array or a list of str"))
}

/// The dataset of `x` with its optional labels, feature names, ids and sources; `fitting`
/// refuses labels of a single class ([`two_classes`]).
fn dataset(
    x: &Bound<'_, PyAny>,
    y: Option<&Bound<'_, PyAny>>,
    names: Option<Vec<String>>,
    ids: Option<Vec<String>>,
    sources: Option<Vec<String>>,
    fitting: bool,
) -> PyResult<Dataset> {
    let mut data = Dataset::new(features(x)?).map_err(|e| refused(&e))?;
    if let Some(names) = names {
        data = data.with_feature_names(names).map_err(|e| refused(&e))?;
    }
    if let Some(y) = y {
        let labels = Labels::from_values(&labels(y)?);
        if fitting {
            two_classes(&labels)?;
        }
        data = data.with_labels(labels).map_err(|e| refused(&e))?;
    }
    if let Some(ids) = ids {
        data = data.with_ids(ids).map_err(|e| refused(&e))?;
    }
    if let Some(sources) = sources {
        data = data.with_sources(sources).map_err(|e| refused(&e))?;
    }
    Ok(data)
}

/// One progress event as `(kind, detector, done, total)`: `("knn", "", rows done, rows)` while
/// a shared neighbour graph is built, `("started", id, 0, 0)` and `("finished", id, 0, 0)` per
/// detector.
fn event(e: &AuditEvent) -> Option<(&'static str, String, usize, usize)> {
    Some(match e {
        AuditEvent::KnnProgress(done, total) => ("knn", String::new(), *done, *total),
        AuditEvent::Started(id) => ("started", id.to_string(), 0, 0),
        AuditEvent::Finished(id, _) => ("finished", id.to_string(), 0, 0),
        _ => return None,
    })
}

/// Runs `work` on a worker thread with the GIL released, handing it the progress callback,
/// and waits for it, checking for Ctrl-C.
fn detached<T: Send + 'static>(
    py: Python<'_>,
    progress: Option<Py<PyAny>>,
    work: impl FnOnce(&(dyn Fn(AuditEvent) + Sync)) -> T + Send + 'static,
) -> PyResult<T> {
    let (tx, rx) = mpsc::channel();
    let abandoned = Arc::new(AtomicBool::new(false));
    let gone = Arc::clone(&abandoned);
    std::thread::Builder::new()
        .name("poisonguard".into())
        .spawn(move || {
            let on_event = |e: AuditEvent| {
                let (Some(callback), Some(args)) = (&progress, event(&e)) else { return };
                if gone.load(Ordering::Relaxed) {
                    return;
                }
                // a failing callback must not stop the audit: its error is printed by Python
                Python::attach(|py| {
                    if let Err(err) = callback.call1(py, args) {
                        err.print(py);
                    }
                });
            };
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| work(&on_event)));
            // the receiver is gone after a Ctrl-C: nothing to do with the result
            let _ = tx.send(outcome);
        })
        .map_err(|e| PoisonguardError::new_err(format!("cannot start the worker thread: {e}")))?;
    let mut rx = rx;
    loop {
        // the receiver travels into the GIL-free wait and back (it is not `Sync`)
        let (received, back) = py.detach(move || (rx.recv_timeout(Duration::from_millis(100)), rx));
        rx = back;
        match received {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(panic)) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown".into());
                return Err(PoisonguardError::new_err(format!(
                    "internal error (please report it): {what}"
                )));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Err(interrupt) = py.check_signals() {
                    abandoned.store(true, Ordering::Relaxed);
                    return Err(interrupt);
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(PoisonguardError::new_err("the worker thread ended without a result"));
            }
        }
    }
}

/// The report as `(columns, summary)`: the per-row columns as `(name, values)` pairs (numpy
/// arrays, lists of str for text), and the summary document as JSON text.
fn report_to_py<'py>(
    py: Python<'py>,
    report: &Report,
    data: &Dataset,
) -> PyResult<(Bound<'py, PyList>, String)> {
    keyed_report_to_py(py, report, data.ids(), data.labels(), data.n_features())
}

/// [`report_to_py`] for rows known by their keys.
fn keyed_report_to_py<'py>(
    py: Python<'py>,
    report: &Report,
    ids: Option<&[String]>,
    labels: Option<&Labels>,
    n_features: usize,
) -> PyResult<(Bound<'py, PyList>, String)> {
    let (columns, doc) = report_parts(py, report, ids, labels, n_features)?;
    Ok((columns, doc.to_string()))
}

/// The report's columns (as [`report_to_py`]) and its summary document.
fn report_parts<'py>(
    py: Python<'py>,
    report: &Report,
    ids: Option<&[String]>,
    labels: Option<&Labels>,
    n_features: usize,
) -> PyResult<(Bound<'py, PyList>, serde_json::Value)> {
    let columns = PyList::empty(py);
    for (name, values) in report.columns(ids, labels, 0..report.n_samples()) {
        let values: Bound<'py, PyAny> = match values {
            ReportColumn::Int(v) => v.into_pyarray(py).into_any(),
            ReportColumn::Float(v) => v.into_pyarray(py).into_any(),
            ReportColumn::Bool(v) => v.into_pyarray(py).into_any(),
            ReportColumn::Text(v) => PyList::new(py, v)?.into_any(),
        };
        columns.append(PyTuple::new(py, [name.into_pyobject(py)?.into_any(), values])?)?;
    }
    Ok((columns, poisonguard::summary::document(report, n_features, labels)))
}

/// The audit's options, checked, for `n_rows` rows; no `seed` is the command line's default
/// seed, `knn_probes` the cells the approximate neighbour search probes per row (`--knn-probes`),
/// `trusted` holds one flag per row.
fn options(
    seed: Option<u64>,
    per_class: bool,
    (knn, knn_probes): (&str, Option<usize>),
    trusted: Option<Vec<bool>>,
    n_rows: usize,
) -> PyResult<DetectorOptions> {
    if let Some(t) = trusted.as_ref().filter(|t| t.len() != n_rows) {
        return Err(PoisonguardError::new_err(format!(
            "trusted: {} flags for {n_rows} rows; give one per row",
            t.len()
        )));
    }
    let seed = seed.unwrap_or(poisonguard::DEFAULT_SEED);
    let knn = match knn {
        "auto" => KnnMode::Auto,
        "exact" => KnnMode::Exact,
        "approx" => KnnMode::Approximate(poisonguard::ApproxParams {
            seed,
            ..poisonguard::ApproxParams::default()
        }),
        other => {
            return Err(PoisonguardError::new_err(format!(
                "knn={other:?}: use \"auto\", \"exact\" or \"approx\""
            )));
        }
    };
    let knn = match knn_probes {
        None => knn,
        Some(0) => {
            return Err(PoisonguardError::new_err("knn_probes=0: probe at least one cell"));
        }
        Some(p) => knn.with_probes(p).ok_or_else(|| {
            PoisonguardError::new_err(
                "knn_probes sets the cells the approximate search probes; knn=\"exact\" \
                 searches every row (drop one of the two)",
            )
        })?,
    };
    Ok(DetectorOptions {
        seed,
        threshold: None,
        per_class,
        knn,
        trusted: trusted.map(|t| (0..t.len()).filter(|&i| t[i]).collect()),
    })
}

/// The audit: the `detectors` named, else `default` (the default set for what the data has),
/// flagging at `fdr`.
fn audit(
    detectors: Option<Vec<String>>,
    opts: &DetectorOptions,
    fdr: f64,
    default: impl FnOnce(&DetectorOptions) -> Audit,
) -> PyResult<Audit> {
    let audit = match detectors {
        Some(ids) => Audit::from_ids(&ids, opts).map_err(|e| refused(&e))?,
        None => default(opts),
    };
    audit.fdr(fdr).map_err(bad_fdr)
}

/// The dataset and the audit of a `scan` or `fit` call, checked.
#[allow(clippy::too_many_arguments)]
fn prepare(
    x: &Bound<'_, PyAny>,
    labels: Option<&Bound<'_, PyAny>>,
    feature_names: Option<Vec<String>>,
    ids: Option<Vec<String>>,
    sources: Option<Vec<String>>,
    detectors: Option<Vec<String>>,
    fdr: f64,
    seed: Option<u64>,
    per_class: bool,
    knn: (&str, Option<usize>),
    trusted: Option<Vec<bool>>,
) -> PyResult<(Dataset, Audit)> {
    let data = dataset(x, labels, feature_names, ids, sources, true)?;
    let opts = options(seed, per_class, knn, trusted, data.n_samples())?;
    let audit = audit(detectors, &opts, fdr, |o| Audit::for_dataset(&data, o))?;
    Ok((data, audit))
}

/// Audits `x` (see the package's `poisonguard.scan`); returns `(columns, summary JSON)`. With a
/// `reference` (a vetted table in the same feature space, with `reference_labels` where `x` has
/// labels), its rows are audited beside `x`'s as trusted rows
/// ([`Audit::run_with_reference`]) and the summary gains `"reference": {"rows", "flagged"}`.
#[pyfunction]
#[pyo3(signature = (x, labels=None, *, feature_names=None, ids=None, sources=None, detectors=None, fdr=0.1, seed=None, per_class=false, knn="auto", knn_probes=None, trusted=None, progress=None, reference=None, reference_labels=None))]
#[allow(clippy::too_many_arguments)]
fn scan<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    labels: Option<&Bound<'py, PyAny>>,
    feature_names: Option<Vec<String>>,
    ids: Option<Vec<String>>,
    sources: Option<Vec<String>>,
    detectors: Option<Vec<String>>,
    fdr: f64,
    seed: Option<u64>,
    per_class: bool,
    knn: &str,
    knn_probes: Option<usize>,
    trusted: Option<Vec<bool>>,
    progress: Option<Py<PyAny>>,
    reference: Option<&Bound<'py, PyAny>>,
    reference_labels: Option<&Bound<'py, PyAny>>,
) -> PyResult<(Bound<'py, PyList>, String)> {
    if reference.is_none() && reference_labels.is_some() {
        return Err(PoisonguardError::new_err("reference_labels given without a reference"));
    }
    let data = dataset(x, labels, feature_names, ids, sources, true)?;
    let vetted = reference
        .map(|r| dataset(r, reference_labels, None, None, None, false))
        .transpose()
        .map_err(|e| PoisonguardError::new_err(format!("reference: {e}")))?;
    let mut opts = options(seed, per_class, (knn, knn_probes), trusted, data.n_samples())?;
    if let Some(vetted) = &vetted {
        // the reference's rows are trusted, after the table's
        let mut trusted = opts.trusted.take().unwrap_or_default();
        trusted.extend(poisonguard::reference_rows(data.n_samples(), vetted.n_samples()));
        opts.trusted = Some(trusted);
    }
    let audit = audit(detectors, &opts, fdr, |o| Audit::for_dataset(&data, o))?;
    let (data, outcome) = detached(py, progress, move |on_event| {
        let outcome = match &vetted {
            Some(vetted) => {
                audit.run_with_reference(&data, vetted, on_event).map(|(r, o)| (r, Some(o)))
            }
            None => audit.run_with(&data, on_event).map(|r| (r, None)),
        };
        (data, outcome)
    })?;
    let (report, outcome) = outcome.map_err(|e| refused(&e))?;
    let (columns, mut doc) =
        report_parts(py, &report, data.ids(), data.labels(), data.n_features())?;
    if let (Some(outcome), serde_json::Value::Object(body)) = (outcome, &mut doc) {
        body.insert(
            "reference".into(),
            serde_json::json!({"rows": outcome.rows, "flagged": outcome.flagged}),
        );
    }
    Ok((columns, doc.to_string()))
}

/// Fits the audit on `x` (see the package's `poisonguard.fit`); returns the model with the
/// training rows' `(columns, summary JSON)`.
#[pyfunction]
#[pyo3(signature = (x, labels=None, *, feature_names=None, ids=None, sources=None, detectors=None, fdr=0.1, seed=None, per_class=false, knn="auto", knn_probes=None, trusted=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn fit<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    labels: Option<&Bound<'py, PyAny>>,
    feature_names: Option<Vec<String>>,
    ids: Option<Vec<String>>,
    sources: Option<Vec<String>>,
    detectors: Option<Vec<String>>,
    fdr: f64,
    seed: Option<u64>,
    per_class: bool,
    knn: &str,
    knn_probes: Option<usize>,
    trusted: Option<Vec<bool>>,
    progress: Option<Py<PyAny>>,
) -> PyResult<(Model, Bound<'py, PyList>, String)> {
    let (data, audit) = prepare(
        x,
        labels,
        feature_names,
        ids,
        sources,
        detectors,
        fdr,
        seed,
        per_class,
        (knn, knn_probes),
        trusted,
    )?;
    let (data, outcome) = detached(py, progress, move |on_event| {
        let outcome = audit.fit_with(&data, on_event);
        (data, outcome)
    })?;
    let (model, report) = outcome.map_err(|e| refused(&e))?;
    let model = model.fdr(fdr).map_err(bad_fdr)?;
    let (columns, summary) = report_to_py(py, &report, &data)?;
    Ok((Model { inner: Arc::new(model) }, columns, summary))
}

/// The detectors of an audit fitted on a trusted table: scores new rows against it, and
/// travels as bytes in the command line's model format (`poisonguard fit --save`).
#[pyclass(module = "poisonguard._native", frozen)]
#[derive(Debug)]
struct Model {
    inner: Arc<FittedAudit>,
}

#[pymethods]
impl Model {
    /// Scores `x` against the model; returns `(columns, summary JSON)`.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (x, labels=None, *, feature_names=None, ids=None, sources=None, progress=None))]
    fn scan<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        labels: Option<&Bound<'py, PyAny>>,
        feature_names: Option<Vec<String>>,
        ids: Option<Vec<String>>,
        sources: Option<Vec<String>>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<(Bound<'py, PyList>, String)> {
        let data = dataset(x, labels, feature_names, ids, sources, false)?;
        let model = Arc::clone(&self.inner);
        let (data, outcome) = detached(py, progress, move |on_event| {
            let outcome = model.scan_with(&data, on_event);
            (data, outcome)
        })?;
        let report = outcome.map_err(|e| refused(&e))?;
        report_to_py(py, &report, &data)
    }

    /// Scores `x`, rows `start..start + len(x)` of a table audited in parts, for
    /// `ReferenceFit.assemble`; returns the part's scores as bytes.
    #[pyo3(signature = (x, labels=None, *, start, feature_names=None))]
    fn score_part<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        labels: Option<&Bound<'py, PyAny>>,
        start: usize,
        feature_names: Option<Vec<String>>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let data = dataset(x, labels, feature_names, None, None, false)?;
        let model = Arc::clone(&self.inner);
        let scored = detached(py, None, move |_| model.score_part(&data, start))?;
        let bytes = scored.map_err(|e| refused(&e))?.to_bytes().map_err(|e| refused(&e))?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// The model file's bytes (what `poisonguard fit --save` writes).
    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let mut out = Vec::new();
        self.inner.save(&mut out).map_err(|e| refused(&e))?;
        Ok(PyBytes::new(py, &out))
    }

    /// The model in `data` (a model file's bytes), flagging at false-discovery rate `fdr`.
    #[staticmethod]
    #[pyo3(signature = (data, fdr=0.1))]
    fn from_bytes(data: &[u8], fdr: f64) -> PyResult<Model> {
        let model = FittedAudit::load(data).map_err(|e| refused(&e))?;
        let model = model.fdr(fdr).map_err(bad_fdr)?;
        Ok(Model { inner: Arc::new(model) })
    }

    /// Ids of the fitted detectors, in audit order.
    #[getter]
    fn detectors(&self) -> Vec<String> {
        self.inner.detector_ids().iter().map(ToString::to_string).collect()
    }

    /// Rows the detectors were fitted on.
    #[getter]
    fn n_training_rows(&self) -> usize {
        self.inner.n_training_rows()
    }

    /// Feature columns the detectors were fitted on.
    #[getter]
    fn n_features(&self) -> usize {
        self.inner.n_features()
    }

    fn __repr__(&self) -> String {
        format!(
            "Model(detectors={:?}, n_training_rows={}, n_features={})",
            self.detectors(),
            self.n_training_rows(),
            self.n_features()
        )
    }
}

/// Ids of every detector, and of the default set.
#[pyfunction]
fn detector_ids() -> (Vec<&'static str>, Vec<&'static str>) {
    (poisonguard::detector_ids().collect(), poisonguard::default_detector_ids().collect())
}

/// The native module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(scan, m)?)?;
    m.add_function(wrap_pyfunction!(fit, m)?)?;
    m.add_function(wrap_pyfunction!(detector_ids, m)?)?;
    m.add_function(wrap_pyfunction!(batch_plan, m)?)?;
    m.add_function(wrap_pyfunction!(reference_sample, m)?)?;
    m.add_function(wrap_pyfunction!(fit_reference, m)?)?;
    m.add_class::<Model>()?;
    m.add_class::<ReferenceFit>()?;
    m.add("PoisonguardError", m.py().get_type::<PoisonguardError>())?;
    m.add("MODEL_VERSION", poisonguard::MODEL_VERSION)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
