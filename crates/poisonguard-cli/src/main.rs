//! `poisonguard`: audit a training set (CSV, Parquet, Arrow or .npy) for data poisoning.
//!
//! Exit codes: 0 = ran, 1 = ran and rows were flagged (only with `--fail-on-flagged`),
//! 2 = bad input or failure (one line on stderr naming file, column and row).

mod args;
mod batched;
mod detectors;
mod eval;
mod html;
mod progress;
mod scan;
mod summary;
mod summary_json;
mod view;

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Parser;
use poisonguard::{Audit, DetectorOptions};
use poisonguard_io::{Format, is_array_input};

use crate::args::{Cli, Command, ScanArgs};
use crate::batched::{Batched, audit_batched, batched_source};
use crate::progress::spinner;
use crate::scan::{How, finished, load_and_audit, read_model};

fn main() -> ExitCode {
    quiet_reader_panics();
    let cli = Cli::parse();
    let run = std::panic::AssertUnwindSafe(|| match cli.command {
        Command::Scan(cmd) => scan(&cmd.args, cmd.model.as_deref(), None),
        Command::Fit(args) => scan(&args.scan, None, Some(&args.save)),
        Command::Eval(args) => run_eval(&args),
        Command::Detectors(args) => list_detectors(&args),
    });
    // a panic the readers did not catch (a bug): one line, whatever the hook printed
    let result = std::panic::catch_unwind(run).unwrap_or_else(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(anyhow::anyhow!("internal failure, please report it: {what}"))
    });
    match result {
        Ok(code) => code,
        // A closed stdout (`poisonguard scan ... | head`) is not a failure.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// polars' file readers panic on some damaged files instead of returning an error;
/// `poisonguard_io` catches those panics and reports the file as damaged, in the one `error:`
/// line. The default hook would first print the panic: it stays silent for panics raised inside
/// polars and speaks for every other.
fn quiet_reader_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let in_polars = info.location().is_some_and(|l| l.file().contains("/polars-"));
        if !in_polars {
            default(info);
        }
    }));
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn run_eval(args: &args::EvalArgs) -> Result<ExitCode> {
    configure_threads(args.threads)?;
    eval::run(args, &mut std::io::stdout().lock())?;
    Ok(ExitCode::SUCCESS)
}

/// `poisonguard detectors`: one line per registered detector, or the README's table.
fn list_detectors(args: &args::DetectorsArgs) -> Result<ExitCode> {
    use std::io::Write;
    let text = if args.markdown { detectors::markdown() } else { detectors::lines() };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// Builds the global thread pool with `threads` workers, if given.
fn configure_threads(threads: Option<usize>) -> Result<()> {
    if let Some(n) = threads {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .context("cannot configure the thread pool")?;
    }
    Ok(())
}

/// `scan` (against the saved `model` when given), and `fit`, which also saves the fitted
/// detectors to `save`.
fn scan(args: &ScanArgs, model: Option<&Path>, save: Option<&Path>) -> Result<ExitCode> {
    configure_threads(args.threads)?;
    let threshold = args.threshold.as_deref().map(args::parse_threshold).transpose()?;
    let opts = DetectorOptions {
        seed: args.seed,
        threshold,
        per_class: args.per_class,
        knn: args.knn.mode(args.seed, args.knn_probes)?,
        trusted: None,
    };
    let requested = args.detector_list()?;
    // Fail on a bad false-discovery rate or an output path's extension before the work.
    Audit::new().fdr(args.fdr).context("--fdr")?;
    if let Some(out) = &args.output {
        Format::of(out, true)?;
    }
    for out in [&args.clean_output, &args.quarantine].into_iter().flatten() {
        Format::of(out, false)?;
        // they copy input rows with every column: a table's, not an array's
        if is_array_input(&args.input)? {
            bail!(
                "{}: --clean-output and --quarantine copy rows of a CSV, Parquet or Arrow input",
                out.display()
            );
        }
    }
    if let Some(out) = &args.summary
        && out.extension().and_then(|e| e.to_str()) != Some("json")
    {
        bail!("{}: the summary is written as JSON; name it *.json", out.display());
    }
    if let Some(out) = &args.html
        && !matches!(out.extension().and_then(|e| e.to_str()), Some("html" | "htm"))
    {
        bail!("{}: the HTML report needs a .html name", out.display());
    }

    if let Some(path) = save {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        if dir.is_some_and(|d| !d.is_dir()) {
            bail!("--save {}: no such directory", path.display());
        }
    }
    if args.reference.is_some() && model.is_some() {
        bail!(
            "--reference: the reference's rows set the nulls when fitting; a saved model is \
             already fitted (fit --save --reference keeps what they measured)"
        );
    }
    if model.is_some() && args.trusted.is_some() {
        bail!("--trusted: the trusted rows are used when fitting; a saved model is already fitted");
    }
    let fitted = match model {
        Some(path) => Some(read_model(path)?.fdr(args.fdr)?),
        None => None,
    };

    if let Some(batched) = batched_source(args, fitted.is_some())? {
        if args.reference.is_some() {
            bail!(
                "--reference: the reference audit runs in memory, not in batches (--memory-limit)"
            );
        }
        let bar = spinner();
        let how = match (&fitted, model) {
            (Some(fitted), Some(path)) => Batched::Model(fitted, path),
            _ => Batched::Fit { opts: &opts, requested: requested.as_deref(), save },
        };
        let outcome = audit_batched(args, how, batched, &bar);
        bar.finish_and_clear();
        return outcome;
    }

    let bar = spinner();
    // The spinner is cleared on every path, so an error line never follows a stale spinner.
    let how = match (&fitted, save) {
        (Some(fitted), _) => How::Model(fitted),
        (None, Some(path)) => How::Fit(path),
        (None, None) => How::Run,
    };
    let outcome = load_and_audit(args, &opts, requested.as_deref(), how, &bar);
    bar.finish_and_clear();
    let (table, report, reference) = outcome?;

    for failure in report.failures() {
        eprintln!("warning: detector {} failed: {}", failure.id, failure.error);
    }
    let mut stdout = std::io::stdout().lock();
    let rows = summary::Audited {
        reference: scan::audited_reference(args, &reference),
        ..summary::Audited::of(&table)
    };
    summary::print(&mut stdout, args, model, &rows, &report)?;
    finished(args, &report)
}
