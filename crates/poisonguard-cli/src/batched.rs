//! The scan of a table too large to hold (`--memory-limit`, or larger than the memory): the
//! plan, a reference sample to fit on, and the report written a chunk of rows at a time.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use indicatif::ProgressBar;
use poisonguard::{BatchPlan, DetectorOptions, FittedAudit, RowSource, reference_sample};
use poisonguard_io::{RowBatches, open_batches, table_shape, write_report_keys};

use crate::args::ScanArgs;
use crate::progress::Stages;
use crate::scan::{build_audit, finished, load_options, write_copies_and_summary, write_model};
use crate::{html, summary};

/// The memory limit: `--memory-limit`, else half of the machine's memory (`MemTotal` of
/// /proc/meminfo), else none.
pub(crate) fn memory_limit(args: &ScanArgs) -> Option<u64> {
    args.memory_limit.or_else(|| {
        let info = std::fs::read_to_string("/proc/meminfo").ok()?;
        let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024 / 2)
    })
}

/// The input opened for a batched scan (`with_model`: against a saved model, with no
/// reference sample), with its plan and its reference sample's size, when
/// it is a Parquet or .npy input whose in-memory audit would exceed the memory limit (its size
/// read from the files' headers); `None` otherwise, and for an input that cannot be read in
/// batches: it is then read whole, and any reading error is reported by that read.
pub(crate) fn batched_source(
    args: &ScanArgs,
    with_model: bool,
) -> Result<Option<(RowBatches, BatchPlan, usize)>> {
    let Some(limit) = memory_limit(args) else { return Ok(None) };
    // the size from the files' headers; an input that cannot be read in batches is read whole
    let Ok((n, d)) = table_shape(&args.input, &load_options(args)) else { return Ok(None) };
    let need = BatchPlan::in_memory_bytes(n, d);
    if need <= limit {
        return Ok(None);
    }
    let mut source = open_batches(&args.input, &load_options(args))?;
    if let Some(path) = &args.pred_probs {
        source = source.with_pred_probs(path)?;
    }
    // the probabilities are held whole beside the labels: the plan shares what is left
    let probs = source.keys().pred_probs().map_or(0, |p| 4 * p.len() as u64);
    let plan =
        BatchPlan::for_budget(limit.saturating_sub(probs), n, d, args.seed).with_context(|| {
            match probs {
                0 => format!("{}: --memory-limit", args.input.display()),
                _ => format!(
                    "{}: --memory-limit, less {probs} bytes of predicted probabilities",
                    args.input.display()
                ),
            }
        })?;
    let reference = if with_model {
        0
    } else {
        reference_sample(source.keys(), plan.reference_rows, plan.seed).len()
    };
    let what = if with_model {
        format!("scoring it against the model {} rows at a time", plan.batch_rows)
    } else {
        format!(
            "fitting on a reference sample of {reference} rows and scoring the others {} rows \
             at a time",
            plan.batch_rows
        )
    };
    eprintln!(
        "{}: {n} x {d} features need about {} audited in memory, more than the memory \
         limit of {}: {what}",
        args.input.display(),
        size(need),
        size(limit),
    );
    Ok(Some((source, plan, reference)))
}

/// `bytes` in GiB, or MiB below one GiB.
pub(crate) fn size(bytes: u64) -> String {
    let b = bytes as f64;
    if bytes >= 1 << 30 {
        format!("{:.1} GiB", b / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", b / (1u64 << 20) as f64)
    }
}

/// What a batched scan does with its rows.
pub(crate) enum Batched<'a> {
    /// Fit on a reference sample and score the others; save the fit when a path is given.
    Fit { opts: &'a DetectorOptions, requested: Option<&'a [String]>, save: Option<&'a Path> },
    /// Score every row against a saved model (read from this path).
    Model(&'a FittedAudit, &'a Path),
}

/// The batched scan of `source`: the summary on stdout, the report to `--output`, and for a
/// fit the detectors fitted on the reference sample to `save`.
pub(crate) fn audit_batched(
    args: &ScanArgs,
    how: Batched<'_>,
    (mut source, plan, reference): (RowBatches, BatchPlan, usize),
    bar: &ProgressBar,
) -> Result<ExitCode> {
    let keys = source.keys().clone();
    let input = || args.input.display().to_string();
    let (report, stages, reference, model_path) = match how {
        Batched::Fit { opts, requested, save } => {
            let audit = build_audit(args, keys.labels(), opts, requested)?;
            let stages = Stages::new(bar, audit.detector_ids().len());
            let (model, report) =
                audit.fit_batched(&mut source, &plan, &|e| stages.on(e)).with_context(input)?;
            if let Some(path) = save {
                bar.set_message(format!("writing {}", path.display()));
                write_model(path, &model)?;
            }
            (report, stages, reference, None)
        }
        Batched::Model(model, path) => {
            let stages = Stages::new(bar, model.detector_ids().len());
            let report = model
                .scan_batched(&mut source, plan.batch_rows, &|e| stages.on(e))
                .with_context(input)?;
            (report, stages, 0, Some(path))
        }
    };
    let times = stages.batched_times(keys.n_rows(), reference);
    if let Some(out) = &args.output {
        bar.set_message(format!("writing {}", out.display()));
        write_report_keys(out, &report, &keys)?;
    }
    if let Some(out) = &args.html {
        // the rows the page draws are read back from the input
        bar.set_message(format!("writing {}", out.display()));
        html::write_batched(out, &args.input, &mut source, plan.batch_rows, &report)?;
    }
    let rows = summary::Audited {
        n_rows: keys.n_rows(),
        n_features: source.n_features(),
        labels: keys.labels(),
        truth: source.truth(),
        reference: None,
    };
    write_copies_and_summary(args, &report, &rows, bar)?;
    bar.finish_and_clear();
    if let Some(times) = times {
        eprintln!("{times}");
    }
    if args.timings {
        eprintln!("{}", stages.timings(reference, keys.n_rows() - reference));
    }
    for failure in report.failures() {
        eprintln!("warning: detector {} failed: {}", failure.id, failure.error);
    }
    summary::print(&mut std::io::stdout().lock(), args, model_path, &rows, &report)?;
    finished(args, &report)
}
