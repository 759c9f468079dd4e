//! What every `scan` does around the audit: the load options and the audit its arguments ask
//! for, the in-memory run, the model file, the report files and the exit code.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use indicatif::ProgressBar;
use poisonguard::{
    Audit, DetectorOptions, FittedAudit, Labels, ReferenceOutcome, Report, reference_rows,
};
use poisonguard_io::{LoadOptions, Table, attach_pred_probs, load, write_report, write_rows};

use crate::args::ScanArgs;
use crate::progress::Stages;
use crate::{html, summary, summary_json};

/// The exit code of a scan that ran.
pub(crate) fn finished(args: &ScanArgs, report: &Report) -> Result<ExitCode> {
    if args.fail_on_flagged && report.n_flagged() > 0 {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes what `--clean-output`, `--quarantine` and `--summary` ask for.
pub(crate) fn write_copies_and_summary(
    args: &ScanArgs,
    report: &Report,
    rows: &summary::Audited<'_>,
    bar: &ProgressBar,
) -> Result<()> {
    if let Some(out) = &args.clean_output {
        bar.set_message(format!("writing {}", out.display()));
        let keep: Vec<bool> = (0..rows.n_rows).map(|i| !report.is_flagged(i)).collect();
        write_rows(&args.input, &keep, out, None)?;
    }
    if let Some(out) = &args.quarantine {
        bar.set_message(format!("writing {}", out.display()));
        let flagged: Vec<bool> = (0..rows.n_rows).map(|i| report.is_flagged(i)).collect();
        write_rows(&args.input, &flagged, out, Some(&|i| report.reasons_of_row(i)))?;
    }
    if let Some(out) = &args.summary {
        let doc = summary_json::document(&args.input, rows, report, args.truth.as_deref());
        summary_json::write(out, &doc)?;
    }
    Ok(())
}

/// How `scan` gets its report.
pub(crate) enum How<'a> {
    /// Fit the detectors on the input and report.
    Run,
    /// Fit, report, and save the fitted detectors here.
    Fit(&'a Path),
    /// Score the input against a saved model.
    Model(&'a FittedAudit),
}

/// Reads a model file saved by `fit`.
pub(crate) fn read_model(path: &Path) -> Result<FittedAudit> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("{}: cannot open the model", path.display()))?;
    FittedAudit::load(std::io::BufReader::new(file))
        .with_context(|| format!("{}: cannot read the model", path.display()))
}

/// Writes the fitted detectors to `path` and says so on stderr.
pub(crate) fn write_model(path: &Path, model: &FittedAudit) -> Result<()> {
    let file = std::fs::File::create(path)
        .with_context(|| format!("{}: cannot create the model file", path.display()))?;
    model
        .save(std::io::BufWriter::new(file))
        .with_context(|| format!("{}: cannot write the model", path.display()))?;
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "model: {} detectors fitted on {} rows saved to {} ({:.1} MiB)",
        model.detector_ids().len(),
        model.n_training_rows(),
        path.display(),
        size as f64 / (1024.0 * 1024.0)
    );
    Ok(())
}

/// The column roles the scan's arguments name.
pub(crate) fn load_options(args: &ScanArgs) -> LoadOptions {
    LoadOptions {
        label: args.label.clone(),
        id: args.id.clone(),
        source: args.source.clone(),
        truth: args.truth.clone(),
        trusted: args.trusted.clone(),
        features: args.features.clone(),
        exclude: args.exclude.clone().unwrap_or_default(),
        embedding: args.embedding.clone(),
        meta: args.meta.clone(),
    }
}

/// The audit a fit runs on rows with these labels: the `requested` detectors or the default set,
/// at the scan's false-discovery rate. A label column of a single class is refused: the
/// per-class detectors compare classes.
pub(crate) fn build_audit(
    args: &ScanArgs,
    labels: Option<&Labels>,
    opts: &DetectorOptions,
    requested: Option<&[String]>,
) -> Result<Audit> {
    if let (Some(labels), Some(column)) = (labels, &args.label)
        && labels.n_present_classes() < 2
    {
        bail!(
            "{}: label column {column:?} holds a single class ({}); the per-class detectors compare classes",
            args.input.display(),
            labels.value_of_row(0)
        );
    }
    let audit = match requested {
        Some(names) => Audit::from_ids(names, opts)?,
        None => Audit::for_labels(labels, opts),
    };
    Ok(audit.fdr(args.fdr)?)
}

/// Reads the input, runs the audit and writes the report, reporting stages on `bar`.
pub(crate) fn load_and_audit(
    args: &ScanArgs,
    opts: &DetectorOptions,
    requested: Option<&[String]>,
    how: How<'_>,
    bar: &ProgressBar,
) -> Result<(Table, Report, Option<ReferenceOutcome>)> {
    bar.set_message(format!("reading {}", args.input.display()));
    let mut table = load(&args.input, &load_options(args))?;
    let vetted = match &args.reference {
        Some(path) => Some(load_reference(args, path, &table, bar)?),
        None => None,
    };
    if let Some(path) = &args.pred_probs {
        bar.set_message(format!("reading {}", path.display()));
        table = attach_pred_probs(table, path)?;
    }
    let data = table.dataset();
    // The trusted rows reach the detectors that fit on a clean reserve.
    // (and the reference's rows, after the table's)
    let mut trusted: Vec<usize> =
        table.trusted().map(|t| (0..t.len()).filter(|&i| t[i]).collect()).unwrap_or_default();
    if let Some(vetted) = &vetted {
        trusted.extend(reference_rows(data.n_samples(), vetted.dataset().n_samples()));
    }
    let opts = &DetectorOptions {
        trusted: (table.trusted().is_some() || vetted.is_some()).then_some(trusted),
        ..opts.clone()
    };
    let mut outcome = None;
    let input = || args.input.display().to_string();
    let timings = |stages: &Stages<'_>| {
        if args.timings {
            bar.suspend(|| eprintln!("{}", stages.timings(data.n_samples(), 0)));
        }
    };
    let report = match how {
        How::Run => {
            let audit = build_audit(args, data.labels(), opts, requested)?;
            let stages = Stages::new(bar, audit.detector_ids().len());
            let report = match &vetted {
                Some(vetted) => {
                    let (report, reference) = audit
                        .run_with_reference(data, vetted.dataset(), &|e| stages.on(e))
                        .with_context(input)?;
                    outcome = Some(reference);
                    report
                }
                None => audit.run_with(data, &|e| stages.on(e)).with_context(input)?,
            };
            timings(&stages);
            report
        }
        How::Fit(path) => {
            let audit = build_audit(args, data.labels(), opts, requested)?;
            let stages = Stages::new(bar, audit.detector_ids().len());
            let (model, report) = match &vetted {
                Some(vetted) => {
                    let (model, report, reference) = audit
                        .fit_with_reference(data, vetted.dataset(), &|e| stages.on(e))
                        .with_context(input)?;
                    outcome = Some(reference);
                    (model, report)
                }
                None => audit.fit_with(data, &|e| stages.on(e)).with_context(input)?,
            };
            timings(&stages);
            bar.set_message(format!("writing {}", path.display()));
            write_model(path, &model)?;
            report
        }
        // Against a model, a batch of one class is fine: the model knows the others.
        How::Model(model) => {
            bar.set_message("scoring against the model".to_string());
            let stages = Stages::new(bar, model.detector_ids().len());
            let report = model.scan_with(data, &|e| stages.on(e)).with_context(input)?;
            timings(&stages);
            report
        }
    };
    if let Some(out) = &args.output {
        bar.set_message(format!("writing {}", out.display()));
        write_report(out, &report, data)?;
    }
    let rows = summary::Audited {
        reference: audited_reference(args, &outcome),
        ..summary::Audited::of(&table)
    };
    write_copies_and_summary(args, &report, &rows, bar)?;
    if let Some(out) = &args.html {
        bar.set_message(format!("writing {}", out.display()));
        html::write(out, &args.input, data, &report)?;
    }
    Ok((table, report, outcome))
}

/// The reference of a scan and what its rows got, for the summaries.
pub(crate) fn audited_reference<'a>(
    args: &'a ScanArgs,
    outcome: &Option<ReferenceOutcome>,
) -> Option<(&'a Path, ReferenceOutcome)> {
    args.reference.as_deref().zip(outcome.clone())
}

/// Reads `--reference`: the input's feature columns (by name, or its embedding column) and
/// label column; its id, source, truth and trusted columns are not read.
fn load_reference(args: &ScanArgs, path: &Path, table: &Table, bar: &ProgressBar) -> Result<Table> {
    bar.set_message(format!("reading {}", path.display()));
    let features = match &args.embedding {
        Some(_) => None,
        None => Some(table.feature_names().to_vec()),
    };
    let opts = LoadOptions {
        id: None,
        source: None,
        truth: None,
        trusted: None,
        features,
        exclude: Vec::new(),
        ..load_options(args)
    };
    let vetted = load(path, &opts).with_context(|| format!("--reference {}", path.display()))?;
    if vetted.dataset().n_features() != table.dataset().n_features() {
        bail!(
            "--reference {}: {} features, {} has {}",
            path.display(),
            vetted.dataset().n_features(),
            args.input.display(),
            table.dataset().n_features()
        );
    }
    Ok(vetted)
}
