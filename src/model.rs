//! A fitted audit: the detectors of an [`Audit`](crate::Audit) fitted on one table, kept to
//! score new rows against it, and saved to a model file that outlives the process.
//!
//! The model file's layout is documented on [`FittedAudit`].

use std::io::{Read, Write};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{
    AuditError, AuditEvent, DEFAULT_FDR, Dataset, DetectorFailure, DetectorId, DetectorInfo,
    DetectorRun, FittedDetector, ParamError, Report, StateError, error_chain, registered,
};

/// The `format` field of every model file.
pub const MODEL_FORMAT: &str = "poisonguard-model";

/// The model file format this build writes and reads.
pub const MODEL_VERSION: u32 = 7;

/// A model file that cannot be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// Reading or writing the bytes failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The file is not a poisonguard model (or is damaged).
    #[error("not a poisonguard model file: {0}")]
    NotAModel(String),
    /// The file is a model of another format version.
    #[error(
        "model format version {found} (written by {written_by}); this build reads version {MODEL_VERSION}: fit the model again with this build"
    )]
    Version {
        /// The version in the file.
        found: u32,
        /// The program that wrote it.
        written_by: String,
    },
    /// The model names a detector this build does not have.
    #[error("the model holds detector {0:?}, which this build does not offer")]
    UnknownDetector(String),
    /// A detector's state could not be encoded or decoded.
    #[error("detector {id}: {source}")]
    State {
        /// The detector.
        id: String,
        /// What went wrong.
        source: StateError,
    },
    /// The model could not be encoded.
    #[error("cannot encode the model: {0}")]
    Encode(String),
    /// The model holds no detector.
    #[error("the model holds no fitted detector")]
    Empty,
    /// The bytes decode, but their checksum is not the one written: damaged in storage or on
    /// the way.
    #[error(
        "the model file is damaged (checksum {found:08x}, written {expected:08x}): copy or fit it again"
    )]
    Checksum {
        /// The checksum written in the file.
        expected: u32,
        /// The checksum of what was read.
        found: u32,
    },
}

/// The detectors of an audit, fitted on one table: scores new rows against it
/// ([`FittedAudit::scan`]) and saves to a model file ([`FittedAudit::save`]) that
/// [`FittedAudit::load`] reads back, so that incoming data can be audited against a trusted
/// reference in another process.
///
/// # The model file (format version 6)
/// One [MessagePack](https://msgpack.org) map with named fields:
///
/// | field | type | meaning |
/// | --- | --- | --- |
/// | `format` | string | always `"poisonguard-model"` |
/// | `version` | integer | the format version, [`MODEL_VERSION`] |
/// | `written_by` | string | `poisonguard` and its crate version |
/// | `n_rows` | integer | rows the detectors were fitted on |
/// | `n_features` | integer | feature columns |
/// | `feature_names` | array of strings or nil | their names, when the table had them |
/// | `detectors` | array of maps | one per fitted detector, in audit order |
/// | `checksum` | integer | CRC-32 (IEEE) of every field above, as [`FittedAudit::load`] reads them |
///
/// Each `detectors` entry is `{ "id": string, "state": binary }`: the registry id and the fitted
/// detector's own state, itself a MessagePack map with the fields of the detector's fitted type
/// (its training scores and p-value calibration, its class models, the reference rows a
/// neighbour-based detector searches). A state's fields belong to the format version: a model
/// of another version is refused, never half read. Model files travel between machines (the
/// Python package's workers, `scan --model` elsewhere): a file whose fields decode but do not
/// match the checksum is refused ([`ModelError::Checksum`]).
///
/// ```
/// use ndarray::Array2;
/// use poisonguard::{Audit, Dataset, DetectorOptions, FittedAudit};
/// let x = Array2::from_shape_fn((120, 3), |(i, j)| ((i * 31 + j * 7) % 23) as f32);
/// let trusted = Dataset::new(x)?;
/// let audit = Audit::for_dataset(&trusted, &DetectorOptions::default());
/// let (model, _report) = audit.fit_with(&trusted, &|_| {})?;
/// let mut file = Vec::new();
/// model.save(&mut file)?;
/// let model = FittedAudit::load(file.as_slice())?;
/// let incoming = Dataset::new(Array2::from_shape_fn((10, 3), |(i, j)| (i * j) as f32))?;
/// let report = model.scan(&incoming)?;
/// assert_eq!(report.n_samples(), 10);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct FittedAudit {
    detectors: Vec<(DetectorInfo, Box<dyn FittedDetector>)>,
    n_rows: usize,
    n_features: usize,
    feature_names: Option<Vec<String>>,
    fdr: f64,
}

/// The model file's top level.
#[derive(Serialize, Deserialize)]
struct ModelFile {
    format: String,
    version: u32,
    written_by: String,
    n_rows: usize,
    n_features: usize,
    feature_names: Option<Vec<String>>,
    detectors: Vec<SavedDetector>,
    checksum: u32,
}

impl ModelFile {
    /// CRC-32 of every field but the checksum, each length-prefixed, so that no two files'
    /// fields run into the same bytes.
    fn checksum(&self) -> u32 {
        let mut h = crc32fast::Hasher::new();
        let mut bytes = |b: &[u8]| {
            h.update(&(b.len() as u64).to_le_bytes());
            h.update(b);
        };
        bytes(self.format.as_bytes());
        bytes(&self.version.to_le_bytes());
        bytes(self.written_by.as_bytes());
        bytes(&(self.n_rows as u64).to_le_bytes());
        bytes(&(self.n_features as u64).to_le_bytes());
        match &self.feature_names {
            None => bytes(&[0]),
            Some(names) => {
                bytes(&[1]);
                names.iter().for_each(|n| bytes(n.as_bytes()));
            }
        }
        for d in &self.detectors {
            bytes(d.id.as_bytes());
            bytes(&d.state);
        }
        h.finalize()
    }
}

/// One detector of the model file.
#[derive(Serialize, Deserialize)]
struct SavedDetector {
    id: String,
    #[serde(with = "serde_bytes")]
    state: Vec<u8>,
}

/// Only the format fields, read first so that another version is named, not misparsed.
#[derive(Deserialize)]
struct Header {
    format: String,
    version: u32,
    #[serde(default)]
    written_by: String,
}

impl FittedAudit {
    pub(crate) fn new(
        detectors: Vec<(DetectorInfo, Box<dyn FittedDetector>)>,
        data: &Dataset,
    ) -> Self {
        Self {
            detectors,
            n_rows: data.n_samples(),
            n_features: data.n_features(),
            feature_names: data.feature_names().map(<[String]>::to_vec),
            fdr: DEFAULT_FDR,
        }
    }

    /// Sets the false-discovery rate of [`FittedAudit::scan`]'s flags (as [`Audit::fdr`](crate::Audit::fdr)).
    ///
    /// # Errors
    /// [`ParamError::OutOfRange`] unless `0 < q < 1`.
    pub fn fdr(mut self, q: f64) -> Result<Self, ParamError> {
        self.fdr = crate::audit::checked_fdr(q)?;
        Ok(self)
    }

    /// The fitted detectors with their declarations, in audit order.
    pub(crate) fn detectors(&self) -> &[(DetectorInfo, Box<dyn FittedDetector>)] {
        &self.detectors
    }

    /// Ids of the fitted detectors, in audit order.
    pub fn detector_ids(&self) -> Vec<DetectorId> {
        self.detectors.iter().map(|(info, _)| info.id).collect()
    }

    /// Rows the detectors were fitted on.
    pub fn n_training_rows(&self) -> usize {
        self.n_rows
    }

    /// Feature columns the detectors were fitted on.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Scores the rows of `data` against the fit: every detector's
    /// [`detect`](FittedDetector::detect) (its training threshold and p-value null), combined
    /// and flagged as [`Audit::run`](crate::Audit::run) does. Class-level findings and the
    /// poison estimate belong to a fit, so the report has none; per-source tests are made on
    /// `data`'s sources. A detector that cannot score the rows (labels it never saw, no labels
    /// for a per-class detector) is listed in [`Report::failures`].
    ///
    /// # Errors
    /// [`AuditError::ModelMismatch`] when `data`'s feature columns are not the model's (count,
    /// or names when both have names); [`AuditError::AllFailed`] when no detector can score.
    pub fn scan(&self, data: &Dataset) -> Result<Report, AuditError> {
        self.scan_with(data, &|_| {})
    }

    /// [`FittedAudit::scan`], reporting each detector's start and end to `on_event` (as
    /// [`Audit::run_with`](crate::Audit::run_with) does).
    ///
    /// # Errors
    /// As [`FittedAudit::scan`].
    pub fn scan_with(
        &self,
        data: &Dataset,
        on_event: &(dyn Fn(AuditEvent) + Sync),
    ) -> Result<Report, AuditError> {
        self.check_columns(data.n_features(), data.feature_names())?;
        let outcomes: Vec<Result<DetectorRun, DetectorFailure>> = self
            .detectors
            .par_iter()
            .map(|(info, fitted)| {
                crate::audit::timed(info.id, on_event, || match fitted.detect(data) {
                    Ok(detection) => {
                        let mut run = DetectorRun::new(info.id, info.family, detection);
                        run.source_findings =
                            crate::combine::source_findings(data, &run.detection.flagged());
                        Ok(run)
                    }
                    Err(e) => Err(DetectorFailure { id: info.id, error: error_chain(&e) }),
                })
            })
            .collect();
        let (runs, failures) = crate::audit::split(outcomes);
        crate::combine::combine(runs, failures, data, self.fdr)
    }

    /// [`FittedAudit::scan`] of a table too large to hold: the rows of `source` are read
    /// `batch_rows` at a time and scored against the fit, and their p-values combined and
    /// flagged over the whole table (the same report as [`FittedAudit::scan`] of all rows: a
    /// row's score does not depend on the rows scored with it). `on_event` gets
    /// [`AuditEvent::Scoring`] after each batch and [`AuditEvent::Scored`] for each
    /// detector's part.
    ///
    /// # Errors
    /// As [`FittedAudit::scan`]; [`AuditError::Read`] / [`AuditError::Data`] as
    /// [`Audit::run_batched`](crate::Audit::run_batched) for the batches.
    pub fn scan_batched(
        &self,
        source: &mut dyn poisonguard_core::RowSource,
        batch_rows: usize,
        on_event: &(dyn Fn(AuditEvent) + Sync),
    ) -> Result<Report, AuditError> {
        let keys = source.keys().clone();
        self.check_columns(source.n_features(), keys.feature_names())?;
        let n = keys.n_rows();
        if n == 0 {
            return Err(AuditError::Data(poisonguard_core::DataError::NoRows));
        }
        on_event(AuditEvent::Scoring(0, n));
        let (rows, failures) = crate::batched::score_batches(
            source,
            &keys,
            &self.detectors,
            None,
            batch_rows,
            None,
            on_event,
        )?;
        let mut runs = Vec::new();
        for (acc, (info, _)) in rows.into_iter().zip(&self.detectors) {
            let Some(acc) = acc else { continue };
            let detection = acc.finish().map_err(AuditError::Data)?;
            let mut run = DetectorRun::new(info.id, info.family, detection);
            run.source_findings =
                crate::combine::source_findings_of(keys.sources(), &run.detection.flagged());
            runs.push(run);
        }
        crate::combine::combine_rows(runs, failures, n, keys.sources(), self.fdr)
    }

    /// The rows' feature count and names (when both sides have names) are the model's.
    pub(crate) fn check_columns(
        &self,
        n_features: usize,
        names: Option<&[String]>,
    ) -> Result<(), AuditError> {
        if n_features != self.n_features {
            return Err(AuditError::ModelMismatch(format!(
                "the model was fitted on {} feature columns, the data has {}",
                self.n_features, n_features
            )));
        }
        if let (Some(ours), Some(theirs)) = (&self.feature_names, names)
            && let Some(j) = (0..ours.len()).find(|&j| ours[j] != theirs[j])
        {
            return Err(AuditError::ModelMismatch(format!(
                "feature column {j} is {:?} in the data but {:?} in the model",
                theirs[j], ours[j]
            )));
        }
        Ok(())
    }

    /// Writes the model file (its layout is documented on [`FittedAudit`]).
    ///
    /// # Errors
    /// [`ModelError::Io`] when writing fails, [`ModelError::State`] when a state cannot be
    /// encoded.
    pub fn save<W: Write>(&self, mut writer: W) -> Result<(), ModelError> {
        let detectors = self
            .detectors
            .iter()
            .map(|(info, fitted)| {
                let id = info.id.as_str().to_string();
                match fitted.save_state() {
                    Ok(state) => Ok(SavedDetector { id, state }),
                    Err(source) => Err(ModelError::State { id, source }),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut file = ModelFile {
            format: MODEL_FORMAT.to_string(),
            version: MODEL_VERSION,
            written_by: format!("poisonguard {}", env!("CARGO_PKG_VERSION")),
            n_rows: self.n_rows,
            n_features: self.n_features,
            feature_names: self.feature_names.clone(),
            detectors,
            checksum: 0,
        };
        file.checksum = file.checksum();
        rmp_serde::encode::write_named(&mut writer, &file).map_err(|e| match e {
            rmp_serde::encode::Error::InvalidValueWrite(w) => {
                ModelError::Io(std::io::Error::other(w))
            }
            other => ModelError::Encode(other.to_string()),
        })?;
        writer.flush()?;
        Ok(())
    }

    /// Reads a model file written by [`FittedAudit::save`]. Its detectors are looked up in
    /// [`REGISTRY`](crate::REGISTRY); the false-discovery rate is [`DEFAULT_FDR`] until
    /// [`FittedAudit::fdr`] sets another.
    ///
    /// # Errors
    /// [`ModelError`]: not a model file, another format version, a detector this build does
    /// not offer, a checksum that does not match, a state that does not decode.
    pub fn load<R: Read>(mut reader: R) -> Result<Self, ModelError> {
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes)?;
        let header: Header =
            rmp_serde::from_slice(&bytes).map_err(|e| ModelError::NotAModel(e.to_string()))?;
        if header.format != MODEL_FORMAT {
            return Err(ModelError::NotAModel(format!("format {:?}", header.format)));
        }
        if header.version != MODEL_VERSION {
            return Err(ModelError::Version {
                found: header.version,
                written_by: header.written_by,
            });
        }
        let file: ModelFile =
            rmp_serde::from_slice(&bytes).map_err(|e| ModelError::NotAModel(e.to_string()))?;
        drop(bytes);
        if file.detectors.is_empty() {
            return Err(ModelError::Empty);
        }
        if file.feature_names.as_ref().is_some_and(|n| n.len() != file.n_features) {
            return Err(ModelError::NotAModel("feature names do not match n_features".into()));
        }
        // a detector this build lacks is named before the checksum is read: a newer build's
        // model says so, not "damaged"
        let entries = file
            .detectors
            .iter()
            .map(|saved| {
                registered(&saved.id).ok_or_else(|| ModelError::UnknownDetector(saved.id.clone()))
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        let found = file.checksum();
        if found != file.checksum {
            return Err(ModelError::Checksum { expected: file.checksum, found });
        }
        let detectors = file
            .detectors
            .into_iter()
            .zip(entries)
            .map(|(saved, entry)| {
                let fitted = entry
                    .load(&saved.state)
                    .map_err(|source| ModelError::State { id: saved.id.clone(), source })?;
                Ok((*entry.info(), fitted))
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        Ok(Self {
            detectors,
            n_rows: file.n_rows,
            n_features: file.n_features,
            feature_names: file.feature_names,
            fdr: DEFAULT_FDR,
        })
    }
}
