//! [`Audit`]: runs the chosen detectors on a dataset (sharing neighbour graphs and the
//! standardized copy), combines their evidence and builds the [`Report`].

use std::time::{Duration, Instant};

use poisonguard_core::{
    Dataset, DetectorFailure, DetectorId, DetectorInfo, DetectorRun, DynDetector, FitContext,
    FittedDetector, KnnGraph, Labels, ParamError, PoisonEstimate, Report, Standardizer,
};
use poisonguard_neighbors::KnnMode;
use rayon::prelude::*;

use crate::FittedAudit;
use crate::combine::{combine, source_findings};
use crate::error::{AuditError, error_chain};
use crate::registry::{DetectorOptions, REGISTRY, UnknownDetector, detector};

/// Largest table (bytes of f32 features) on which the detectors that read no neighbour graph
/// fit while the graphs are built ([`Audit::run_with`]): 10^5 x 128 is 51 MB.
const OVERLAP_BYTES: usize = 256 << 20;

/// What an audit reports while it runs (for progress displays).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum AuditEvent {
    /// The kNN graph shared by several detectors is being built, with this many neighbours.
    SharedKnn(usize),
    /// The kNN graph of standardized features shared by several detectors is being built.
    SharedStandardizedKnn(usize),
    /// Progress of the shared graph being built: the first many rows of the second have their
    /// neighbours. Increases within one graph and ends at the number of rows; about the same
    /// work per row, so it can drive an ETA.
    KnnProgress(usize, usize),
    /// A batched audit ([`Audit::run_batched`]) has read the first many rows of the second
    /// while collecting its reference sample.
    Reading(usize, usize),
    /// A batched audit has scored the first many rows of the second against its fit; sent
    /// with no rows done when the fit ends.
    Scoring(usize, usize),
    /// The shared graphs are built, after the given time (sent after [`AuditEvent::SharedKnn`]
    /// or [`AuditEvent::SharedStandardizedKnn`]; detectors that read no graph may have started
    /// meanwhile).
    GraphsBuilt(Duration),
    /// A detector starts fitting.
    Started(DetectorId),
    /// A detector finished (successfully or not) after the given time.
    Finished(DetectorId, Duration),
    /// A batched audit's detector scored a batch of rows in the given time.
    Scored(DetectorId, Duration),
    /// A batched audit searched a batch's rows among the standardized reference rows, once for
    /// every detector that reads them, in the given time.
    Searched(Duration),
}

/// Runs several detectors on one dataset and combines their scores into one [`Report`].
#[derive(Debug)]
pub struct Audit {
    pub(crate) detectors: Vec<Box<dyn DynDetector>>,
    pub(crate) knn: KnnMode,
    pub(crate) fdr: f64,
    pub(crate) trusted: Vec<usize>,
}

impl Default for Audit {
    fn default() -> Self {
        Self {
            detectors: Vec::new(),
            knn: KnnMode::default(),
            fdr: DEFAULT_FDR,
            trusted: Vec::new(),
        }
    }
}

/// The default false-discovery rate of the audit's flags ([`Audit::fdr`]): 0.1, chosen on the
/// scenario grid's seeds 0-2 (`examples/grid`): against 0.05 it raised the mean flagged recall
/// of the scenarios whose best detector reaches ROC-AUC 0.98 from 0.66 to 0.71, kept their mean
/// precision at 0.86 and every clean table under 1% flagged.
pub const DEFAULT_FDR: f64 = 0.1;

impl Audit {
    /// An audit with no detectors.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the false-discovery rate `q` of the flags (default [`DEFAULT_FDR`]): the audit flags
    /// the rows the Benjamini-Hochberg procedure selects on the combined p-values, so that among
    /// the flagged rows the expected share of clean ones is at most `q`.
    ///
    /// # Errors
    /// [`ParamError::OutOfRange`] unless `0 < q < 1`.
    pub fn fdr(mut self, q: f64) -> Result<Self, ParamError> {
        self.fdr = checked_fdr(q)?;
        Ok(self)
    }

    /// Adds a detector.
    pub fn with_detector(mut self, detector: Box<dyn DynDetector>) -> Self {
        self.detectors.push(detector);
        self
    }

    /// An audit of the detectors named in `ids` (see [`REGISTRY`]), each built with `opts`,
    /// sharing kNN graphs as `opts.knn` says.
    ///
    /// # Errors
    /// [`UnknownDetector`] for the first id that names no detector.
    ///
    /// ```
    /// use poisonguard::{Audit, DetectorOptions};
    /// let audit = Audit::from_ids(&["knn_label", "duplicates"], &DetectorOptions::default())?;
    /// assert_eq!(audit.detector_ids().len(), 2);
    /// assert!(Audit::from_ids(&["nope"], &DetectorOptions::default()).is_err());
    /// # Ok::<(), poisonguard::UnknownDetector>(())
    /// ```
    pub fn from_ids<S: AsRef<str>>(
        ids: &[S],
        opts: &DetectorOptions,
    ) -> Result<Self, UnknownDetector> {
        let mut audit =
            Self::new().knn_mode(opts.knn).trusted(opts.trusted.iter().flatten().copied());
        for id in ids {
            audit = audit.with_detector(detector(id.as_ref(), opts)?);
        }
        Ok(audit)
    }

    /// The default set (the [`REGISTRY`] lines marked default) for what `data` has: detectors
    /// that need labels only when it has labels with at least two classes.
    pub fn for_dataset(data: &Dataset, opts: &DetectorOptions) -> Self {
        Self::for_labels(data.labels(), opts)
    }

    /// The default set for rows with these labels (as [`Audit::for_dataset`]; for a table
    /// audited in batches, [`Audit::run_batched`], whose labels are known before its features).
    pub fn for_labels(labels: Option<&Labels>, opts: &DetectorOptions) -> Self {
        let labelled = labels.is_some_and(|l| l.n_present_classes() >= 2);
        let mut audit =
            Self::new().knn_mode(opts.knn).trusted(opts.trusted.iter().flatten().copied());
        for r in REGISTRY.iter().filter(|r| r.is_default()) {
            if labelled || !r.info().needs_labels {
                audit = audit.with_detector(r.build(opts));
            }
        }
        audit
    }

    /// Records the rows of the audited table known to be clean ([`Report::trusted`]); the
    /// detectors that use them are told through [`DetectorOptions::trusted`], which
    /// [`Audit::from_ids`] and [`Audit::for_dataset`] also record here.
    pub fn trusted(mut self, rows: impl IntoIterator<Item = usize>) -> Self {
        self.trusted = poisonguard_core::row_set(rows);
        self
    }

    /// Sets how the shared kNN graphs are built (default [`KnnMode::Auto`]: exact up to
    /// [`poisonguard_neighbors::AUTO_APPROX_ROWS`] rows, approximate above).
    pub fn knn_mode(mut self, mode: KnnMode) -> Self {
        self.knn = mode;
        self
    }

    /// Ids of the detectors this audit runs.
    pub fn detector_ids(&self) -> Vec<DetectorId> {
        self.detectors.iter().map(|d| d.id()).collect()
    }

    /// Runs every detector; see [`Audit::run_with`].
    ///
    /// # Errors
    /// [`AuditError`] when no detector succeeds.
    pub fn run(&self, data: &Dataset) -> Result<Report, AuditError> {
        self.run_with(data, &|_| {})
    }

    /// Runs every detector, reporting progress to `on_event`. The shared kNN graphs are built
    /// first, one after the other, then the detectors that read them run in parallel; the
    /// detectors that read no graph run beside the graphs' search on tables of up to 256 MiB of
    /// features, after it on larger ones. Each detector's result does not depend on the
    /// scheduling, so the report is the same for any thread count, in the order the detectors
    /// were added. A failing detector is recorded in [`Report::failures`] and the others
    /// still run.
    ///
    /// Every detector gives each row a p-value under its stated null; the audit combines them
    /// ([`combined_p_values`](crate::combined_p_values)) and flags the rows the Benjamini-Hochberg
    /// procedure selects at the audit's false-discovery rate ([`Audit::fdr`]).
    ///
    /// # Errors
    /// [`AuditError`] when no detector succeeds.
    pub fn run_with(
        &self,
        data: &Dataset,
        on_event: &(dyn Fn(AuditEvent) + Sync),
    ) -> Result<Report, AuditError> {
        self.fit_each(data, on_event, false).map(|(_, report)| report)
    }

    /// Fits every detector as [`Audit::run_with`] does and keeps the fitted detectors: the
    /// [`FittedAudit`] scores new rows against `data` later (and can be saved), the [`Report`]
    /// is the audit of `data` itself.
    ///
    /// # Errors
    /// [`AuditError`] when no detector succeeds.
    pub fn fit_with(
        &self,
        data: &Dataset,
        on_event: &(dyn Fn(AuditEvent) + Sync),
    ) -> Result<(FittedAudit, Report), AuditError> {
        let (fitted, report) = self.fit_each(data, on_event, true)?;
        Ok((FittedAudit::new(fitted, data), report))
    }

    /// Fits every detector on `data`, keeping the fitted detectors when `keep` is set.
    fn fit_each(
        &self,
        data: &Dataset,
        on_event: &(dyn Fn(AuditEvent) + Sync),
        keep: bool,
    ) -> Result<(Vec<Fitted>, Report), AuditError> {
        if self.detectors.is_empty() {
            return Err(AuditError::NoDetectors);
        }
        if let Some(&row) = self.trusted.last().filter(|&&row| row >= data.n_samples()) {
            return Err(AuditError::TrustedRow { row, n_samples: data.n_samples() });
        }
        // One kNN graph (of the features as given, and one of the standardized features) for
        // every detector that reads neighbours, built as the audit's `KnnMode` says. If it
        // cannot be built (too few rows), each detector reports its own error. The two are built
        // one after the other (each search is parallel inside), so that at most one working
        // copy of the features exists beside them: the exact search (smaller tables) centres a
        // copy of the rows, raw or standardized; the approximate index reads the features
        // centred, and standardized, as it goes, and holds no copy above 256 MiB.
        // A graph keeps its distances only when a detector reading it reads them: `knn_label`
        // reads who the neighbours are, and without the distances its graph (50 neighbours of
        // every row at 10^6 rows) holds 200 MB instead of 400.
        let reads_distances = |asks: &dyn Fn(&dyn DynDetector) -> bool| {
            self.detectors.iter().any(|d| asks(d.as_ref()) && d.knn_distances())
        };
        let trim = |g: KnnGraph, reads: bool| if reads { g } else { g.without_distances() };
        let raw_k = self.detectors.iter().filter_map(|d| d.knn_k(data)).max();
        let standardized_k = self.detectors.iter().filter_map(|d| d.standardized_knn_k(data)).max();
        let graphs = || {
            let started = Instant::now();
            let shared = match raw_k {
                Some(k) if k < data.n_samples() => {
                    on_event(AuditEvent::SharedKnn(k));
                    poisonguard_neighbors::knn_graph_with_progress(
                        data.features(),
                        k,
                        self.knn,
                        &|done, total| on_event(AuditEvent::KnnProgress(done, total)),
                    )
                    .ok()
                }
                _ => None,
            };
            let shared = shared.map(|g| trim(g, reads_distances(&|d| d.knn_k(data).is_some())));
            let standardized = match standardized_k {
                Some(k) if k < data.n_samples() => {
                    on_event(AuditEvent::SharedStandardizedKnn(k));
                    let z = Standardizer::fit(data.features());
                    poisonguard_neighbors::knn_graph_standardized_with_progress(
                        data.features(),
                        &z,
                        k,
                        self.knn,
                        &|done, total| on_event(AuditEvent::KnnProgress(done, total)),
                    )
                    .ok()
                }
                _ => None,
            };
            if raw_k.is_some() || standardized_k.is_some() {
                on_event(AuditEvent::GraphsBuilt(started.elapsed()));
            }
            let standardized = standardized
                .map(|g| trim(g, reads_distances(&|d| d.standardized_knn_k(data).is_some())));
            (shared, standardized)
        };
        let fit = |d: &dyn DynDetector, ctx: &FitContext<'_>| {
            let info = d.info();
            timed(info.id, on_event, || match d.fit_boxed_in(data, ctx) {
                Ok(fitted) => {
                    let run = training_run(&info, fitted.as_ref(), data);
                    Ok((run, keep.then_some((info, fitted))))
                }
                Err(e) => Err(DetectorFailure { id: info.id, error: error_chain(e.as_ref()) }),
            })
        };
        let reads_graph =
            |d: &dyn DynDetector| d.knn_k(data).is_some() || d.standardized_knn_k(data).is_some();
        let bare = if keep { FitContext::default() } else { FitContext::default().for_scan() };
        // On a table of at most OVERLAP_BYTES of features, the detectors that read no graph fit
        // while the graphs are built (the search leaves a core idle at times, and the two would
        // otherwise run one after the other); on larger ones after the graphs' readers, once the
        // graphs are dropped, so that the working memory of the search, of the graphs and of
        // those detectors does not add up (10^6 x 512: the 50-NN graph's 200 MB).
        let overlap =
            data.n_samples() * data.n_features() * std::mem::size_of::<f32>() <= OVERLAP_BYTES;
        let (readers, independent): (Vec<usize>, Vec<usize>) =
            (0..self.detectors.len()).partition(|&i| reads_graph(self.detectors[i].as_ref()));
        let fit_all = |which: &[usize], ctx: &FitContext<'_>| -> Vec<_> {
            which.par_iter().map(|&i| fit(self.detectors[i].as_ref(), ctx)).collect()
        };
        let ((shared, standardized), early) =
            rayon::join(graphs, || if overlap { fit_all(&independent, &bare) } else { Vec::new() });
        let read = {
            let mut ctx = shared.as_ref().map(FitContext::with_knn).unwrap_or_default();
            if let Some(g) = &standardized {
                ctx = ctx.and_standardized_knn(g);
            }
            if !keep {
                ctx = ctx.for_scan();
            }
            fit_all(&readers, &ctx)
        };
        drop((shared, standardized));
        let independent_fits = if overlap { early } else { fit_all(&independent, &bare) };
        // in the order the detectors were added
        let mut outcomes: Vec<_> = readers
            .into_iter()
            .zip(read)
            .chain(independent.into_iter().zip(independent_fits))
            .collect();
        outcomes.sort_by_key(|(i, _)| *i);
        let outcomes: Vec<Result<(DetectorRun, Option<Fitted>), DetectorFailure>> =
            outcomes.into_iter().map(|(_, o)| o).collect();
        let (done, failures) = split(outcomes);
        let (runs, fitted): (Vec<DetectorRun>, Vec<Option<Fitted>>) = done.into_iter().unzip();
        let fitted = fitted.into_iter().flatten().collect();
        let estimates: Vec<PoisonEstimate> =
            runs.iter().filter_map(|r| r.estimate.clone()).collect();
        let estimate = PoisonEstimate::combine(&estimates, data.n_samples());
        let report = combine(runs, failures, data, self.fdr)?
            .with_estimate(estimate)
            .with_trusted(self.trusted.clone());
        Ok((fitted, report))
    }
}

/// The detectors that succeeded, and those that failed, in audit order.
/// `work()`, reported to `on_event` as detector `id`'s start and, with its duration, its end.
pub(crate) fn timed<T>(
    id: DetectorId,
    on_event: &(dyn Fn(AuditEvent) + Sync),
    work: impl FnOnce() -> T,
) -> T {
    on_event(AuditEvent::Started(id));
    let start = Instant::now();
    let outcome = work();
    on_event(AuditEvent::Finished(id, start.elapsed()));
    outcome
}

pub(crate) fn split<T>(
    outcomes: Vec<Result<T, DetectorFailure>>,
) -> (Vec<T>, Vec<DetectorFailure>) {
    let (mut done, mut failures) = (Vec::new(), Vec::new());
    for outcome in outcomes {
        match outcome {
            Ok(t) => done.push(t),
            Err(failure) => failures.push(failure),
        }
    }
    (done, failures)
}

/// `q` when it is a false-discovery rate, `0 < q < 1`.
pub(crate) fn checked_fdr(q: f64) -> Result<f64, ParamError> {
    if q > 0.0 && q < 1.0 {
        Ok(q)
    } else {
        Err(ParamError::OutOfRange { name: "fdr", value: q, allowed: "(0, 1)" })
    }
}

/// A fitted detector with its declaration.
type Fitted = (DetectorInfo, Box<dyn FittedDetector>);

/// A detector's run on its training rows: its training detection and findings.
fn training_run(info: &DetectorInfo, fitted: &dyn FittedDetector, data: &Dataset) -> DetectorRun {
    DetectorRun {
        id: info.id,
        family: info.family,
        detection: fitted.training().clone(),
        class_findings: fitted.class_findings().to_vec(),
        skipped_classes: fitted.skipped_classes().to_vec(),
        noise_matrix: fitted.noise_matrix().cloned(),
        estimate: fitted.poison_estimate(),
        source_findings: source_findings(data, &fitted.training().flagged()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::*;
    use ndarray::Array2;

    #[test]
    fn detectors_sharing_one_knn_graph_score_as_alone() {
        let x = Array2::from_shape_fn((300, 3), |(i, j)| ((i * 37 + j * 11) % 101) as f32);
        let data = Dataset::new(x).unwrap();
        let opts = DetectorOptions::default();
        let audit = Audit::new()
            .with_detector(detector("knn_distance", &opts).unwrap())
            .with_detector(detector("lof", &opts).unwrap());
        let shared_k = std::sync::Mutex::new(None);
        let report = audit
            .run_with(&data, &|e| {
                if let AuditEvent::SharedKnn(k) = e {
                    *shared_k.lock().unwrap() = Some(k);
                }
            })
            .unwrap();
        assert_eq!(*shared_k.lock().unwrap(), Some(poisonguard_outlier::lof::DEFAULT_K));
        for name in ["knn_distance", "lof"] {
            let alone = detector(name, &opts).unwrap().fit_boxed(&data).unwrap();
            let run = report.runs().iter().find(|r| r.id.as_str() == name).unwrap();
            assert_eq!(run.detection.scores(), alone.training().scores(), "{name}");
        }
    }

    /// Progress of each shared graph: increasing, ending at the number of rows, after the event
    /// that names the graph; one event when both are built, after their progress, and the
    /// detector that reads no graph (`ecod`) fits beside them with the same scores as alone.
    #[test]
    fn graph_progress_follows_its_graph() {
        let x = Array2::from_shape_fn((3000, 4), |(i, j)| ((i * 37 + j * 11) % 101) as f32);
        let y: Vec<LabelValue> = (0..3000).map(|i| LabelValue::Int((i % 3) as i64)).collect();
        let data = Dataset::new(x).unwrap().with_labels(Labels::from_values(&y)).unwrap();
        let opts = DetectorOptions::default();
        let audit = Audit::new()
            .with_detector(detector("knn_distance", &opts).unwrap())
            .with_detector(Box::new(KnnLabel::params().standardize(true)))
            .with_detector(detector("ecod", &opts).unwrap());
        let events = std::sync::Mutex::new(Vec::new());
        let report = audit.run_with(&data, &|e| events.lock().unwrap().push(e)).unwrap();
        let events = events.into_inner().unwrap();
        let built: Vec<usize> = (0..events.len())
            .filter(|&i| matches!(events[i], AuditEvent::GraphsBuilt(_)))
            .collect();
        assert_eq!(built.len(), 1, "{events:?}");
        assert!(!events[built[0]..].iter().any(|e| matches!(e, AuditEvent::KnnProgress(..))));
        let alone =
            Audit::new().with_detector(detector("ecod", &opts).unwrap()).run(&data).unwrap();
        let ecod =
            |r: &Report| r.run(DetectorId::new("ecod")).map(|d| d.detection.scores().to_vec());
        assert_eq!(ecod(&report), ecod(&alone));
        let starts: Vec<usize> = (0..events.len())
            .filter(|&i| {
                matches!(events[i], AuditEvent::SharedKnn(_) | AuditEvent::SharedStandardizedKnn(_))
            })
            .collect();
        assert_eq!(starts.len(), 2, "{events:?}");
        for (a, &start) in starts.iter().enumerate() {
            let end = starts.get(a + 1).copied().unwrap_or(built[0]);
            let done: Vec<usize> = events[start..end]
                .iter()
                .filter_map(|e| match *e {
                    AuditEvent::KnnProgress(done, 3000) => Some(done),
                    _ => None,
                })
                .collect();
            assert!(done.windows(2).all(|w| w[0] < w[1]), "{done:?}");
            assert_eq!(done.last(), Some(&3000), "{events:?}");
        }
    }

    /// 200 rows of 4 features in units of their own (ranges a decade apart) in three classes,
    /// for the label detectors' shared graph of standardized features.
    fn three_classes() -> Dataset {
        let x = Array2::from_shape_fn((200, 4), |(i, j)| {
            ((i * 37 + j * 11) % 53) as f32 * 10f32.powi(j as i32)
        });
        let y: Vec<LabelValue> = (0..200).map(|i| LabelValue::Int((i % 3) as i64)).collect();
        Dataset::new(x).unwrap().with_labels(Labels::from_values(&y)).unwrap()
    }

    #[test]
    fn label_detectors_share_one_standardized_graph() {
        let data = three_classes();
        let opts = DetectorOptions::default();
        let audit = Audit::new()
            .with_detector(detector("knn_label", &opts).unwrap())
            .with_detector(Box::new(Duplicates::params().standardize(true)));
        let shared_k = std::sync::Mutex::new(None);
        let report = audit
            .run_with(&data, &|e| {
                if let AuditEvent::SharedStandardizedKnn(k) = e {
                    *shared_k.lock().unwrap() = Some(k);
                }
            })
            .unwrap();
        assert_eq!(*shared_k.lock().unwrap(), Some(10));
        let knn = detector("knn_label", &opts).unwrap().fit_boxed(&data).unwrap();
        let dup = Duplicates::params().standardize(true).fit(&data).unwrap();
        for (name, alone) in [("knn_label", knn.training()), ("duplicates", dup.training())] {
            let run = report.runs().iter().find(|r| r.id.as_str() == name).unwrap();
            assert_eq!(run.detection.scores(), alone.scores(), "{name}");
        }
    }

    /// Features in one unit (ranges within a decade): `knn_label` searches them as given and
    /// shares the one graph of the features as given with `knn_distance` (no standardized graph),
    /// scoring as when it searches alone.
    #[test]
    fn one_unit_features_share_one_graph() {
        let x = Array2::from_shape_fn((300, 4), |(i, j)| ((i * 37 + j * 11) % 53) as f32);
        let y: Vec<LabelValue> = (0..300).map(|i| LabelValue::Int((i % 3) as i64)).collect();
        let data = Dataset::new(x).unwrap().with_labels(Labels::from_values(&y)).unwrap();
        assert!(data.features_share_one_unit());
        let opts = DetectorOptions::default();
        let audit = Audit::new()
            .with_detector(detector("knn_distance", &opts).unwrap())
            .with_detector(detector("knn_label", &opts).unwrap());
        let events = std::sync::Mutex::new(Vec::new());
        let report = audit.run_with(&data, &|e| events.lock().unwrap().push(e)).unwrap();
        let events = events.into_inner().unwrap();
        let graphs: Vec<&AuditEvent> = events
            .iter()
            .filter(|e| {
                matches!(e, AuditEvent::SharedKnn(_) | AuditEvent::SharedStandardizedKnn(_))
            })
            .collect();
        assert_eq!(graphs.len(), 1, "{events:?}");
        assert!(matches!(graphs[0], AuditEvent::SharedKnn(_)), "{events:?}");
        let alone = detector("knn_label", &opts).unwrap().fit_boxed(&data).unwrap();
        let run = report.runs().iter().find(|r| r.id.as_str() == "knn_label").unwrap();
        assert_eq!(run.detection.scores(), alone.training().scores());
    }

    /// `knn_label` alone reads a standardized graph without distances (it declares it reads
    /// none) and scores as when it searches alone.
    #[test]
    fn a_graph_without_distances_votes_as_a_full_one() {
        let data = three_classes();
        let opts = DetectorOptions::default();
        let knn = detector("knn_label", &opts).unwrap();
        assert!(!knn.knn_distances());
        let report = Audit::new().with_detector(knn).run(&data).unwrap();
        let alone = detector("knn_label", &opts).unwrap().fit_boxed(&data).unwrap();
        assert_eq!(report.runs()[0].detection.scores(), alone.training().scores());
        assert_eq!(report.runs()[0].detection.p_values(), alone.training().p_values());
    }

    #[test]
    fn failures_are_reported_not_swallowed() {
        let data = Dataset::new(Array2::from_elem((5, 2), 1.0f32)).unwrap();
        let audit = Audit::new()
            .with_detector(detector("spectral_signature", &DetectorOptions::default()).unwrap());
        match audit.run(&data) {
            Err(AuditError::AllFailed(f)) => {
                assert_eq!(f.id.as_str(), "spectral_signature");
                assert!(f.error.contains("needs labels"), "{}", f.error);
            }
            other => panic!("expected a failure, got {other:?}"),
        }
        let ids = Audit::for_dataset(&data, &DetectorOptions::default()).detector_ids();
        let ids: Vec<&str> = ids.iter().map(|d| d.as_str()).collect();
        assert_eq!(ids, vec!["isolation_forest", "ecod", "duplicates"]);
        assert_eq!(Audit::new().run(&data).unwrap_err(), AuditError::NoDetectors);

        // one detector fails (LOF's k = 50 needs 51 rows), the other still runs
        let opts = DetectorOptions::default();
        let audit = Audit::new()
            .with_detector(detector("lof", &opts).unwrap())
            .with_detector(detector("ecod", &opts).unwrap());
        let report = audit.run(&data).unwrap();
        assert_eq!(report.runs().len(), 1);
        assert_eq!(report.failures()[0].id.as_str(), "lof");
        assert!(
            report.failures()[0].error.contains("at least 51 rows"),
            "{}",
            report.failures()[0].error
        );
    }
}
