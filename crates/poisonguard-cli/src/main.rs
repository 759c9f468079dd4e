//! `poisonguard`: audit a CSV or Parquet training set for data poisoning.
//!
//! Exit codes: 0 = ran, 1 = ran and rows were flagged (only with `--fail-on-flagged`),
//! 2 = bad input or failure (one line on stderr naming file, column and row).

mod args;
mod detectors;
mod eval;
mod html;
mod summary;
mod summary_json;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use poisonguard::{Audit, AuditEvent, DetectorOptions, Report};
use poisonguard_io::{
    Format, LoadOptions, Table, attach_pred_probs, load, write_report, write_rows,
};

use crate::args::{Cli, Command, ScanArgs};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Scan(args) => scan(&args),
        Command::Eval(args) => run_eval(&args),
        Command::Detectors(args) => list_detectors(&args),
    };
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

/// Work shorter than this shows no progress at all.
const PROGRESS_DELAY: Duration = Duration::from_secs(1);

/// A spinner on stderr, drawn only when stderr is a terminal and only once the work has taken
/// longer than [`PROGRESS_DELAY`].
fn spinner() -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
    let delayed = bar.clone();
    std::thread::spawn(move || {
        std::thread::sleep(PROGRESS_DELAY);
        if !delayed.is_finished() {
            delayed.set_draw_target(ProgressDrawTarget::stderr());
        }
    });
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

fn scan(args: &ScanArgs) -> Result<ExitCode> {
    configure_threads(args.threads)?;
    let threshold = args.threshold.as_deref().map(args::parse_threshold).transpose()?;
    let opts = DetectorOptions {
        seed: args.seed,
        threshold,
        per_class: args.per_class,
        knn: args.knn.mode(args.seed),
    };
    let requested = args.detector_list()?;
    // Fail on a bad false-discovery rate or an output path's extension before the work.
    Audit::new().fdr(args.fdr).context("--fdr")?;
    if let Some(out) = &args.output {
        Format::of(out, true)?;
    }
    for out in [&args.clean_output, &args.quarantine].into_iter().flatten() {
        Format::of(out, false)?;
    }
    if let Some(out) = &args.summary {
        if out.extension().and_then(|e| e.to_str()) != Some("json") {
            bail!("{}: the summary is written as JSON; name it *.json", out.display());
        }
    }
    if let Some(out) = &args.html {
        if !matches!(out.extension().and_then(|e| e.to_str()), Some("html" | "htm")) {
            bail!("{}: the HTML report needs a .html name", out.display());
        }
    }

    let bar = spinner();
    // The spinner is cleared on every path, so an error line never follows a stale spinner.
    let outcome = load_and_audit(args, &opts, requested.as_deref(), &bar);
    bar.finish_and_clear();
    let (table, report) = outcome?;

    for failure in report.failures() {
        eprintln!("warning: detector {} failed: {}", failure.id, failure.error);
    }
    let mut stdout = std::io::stdout().lock();
    summary::print(&mut stdout, args, &table, &report)?;
    if args.fail_on_flagged && report.n_flagged() > 0 {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads the input, runs the audit and writes the report, reporting stages on `bar`.
fn load_and_audit(
    args: &ScanArgs,
    opts: &DetectorOptions,
    requested: Option<&[String]>,
    bar: &ProgressBar,
) -> Result<(Table, Report)> {
    bar.set_message(format!("reading {}", args.input.display()));
    let load_opts = LoadOptions {
        label: args.label.clone(),
        id: args.id.clone(),
        source: args.source.clone(),
        truth: args.truth.clone(),
        features: args.features.clone(),
        exclude: args.exclude.clone().unwrap_or_default(),
    };
    let mut table = load(&args.input, &load_opts)?;
    if let Some(path) = &args.pred_probs {
        bar.set_message(format!("reading {}", path.display()));
        table = attach_pred_probs(table, path)?;
    }
    let data = table.dataset();
    if let (Some(labels), Some(column)) = (data.labels(), &args.label) {
        if labels.n_present_classes() < 2 {
            bail!(
                "{}: label column {column:?} holds a single class ({}); the per-class detectors compare classes",
                args.input.display(),
                labels.value_of_row(0)
            );
        }
    }

    let audit = match requested {
        Some(names) => Audit::from_ids(names, opts)?,
        None => Audit::for_dataset(data, opts),
    }
    .fdr(args.fdr)?;
    let report = audit
        .run_with(data, &|event| match event {
            AuditEvent::SharedKnn(k) => bar.set_message(format!("finding {k} nearest neighbours")),
            AuditEvent::SharedStandardizedKnn(k) => {
                bar.set_message(format!("finding {k} nearest neighbours (standardized)"))
            }
            AuditEvent::Started(id) => bar.set_message(format!("running {id}")),
            _ => {}
        })
        .with_context(|| args.input.display().to_string())?;
    if let Some(out) = &args.output {
        bar.set_message(format!("writing {}", out.display()));
        write_report(out, &report, data)?;
    }
    let flagged: Vec<bool> = (0..data.n_samples()).map(|i| report.is_flagged(i)).collect();
    if let Some(out) = &args.clean_output {
        bar.set_message(format!("writing {}", out.display()));
        let keep: Vec<bool> = flagged.iter().map(|f| !f).collect();
        write_rows(&args.input, &keep, out, None)?;
    }
    if let Some(out) = &args.quarantine {
        bar.set_message(format!("writing {}", out.display()));
        let reasons: Vec<String> =
            (0..data.n_samples()).map(|i| report.reasons_of_row(i)).collect();
        write_rows(&args.input, &flagged, out, Some(&reasons))?;
    }
    if let Some(out) = &args.summary {
        let doc = summary_json::document(&args.input, &table, &report, args.truth.as_deref());
        summary_json::write(out, &doc)?;
    }
    if let Some(out) = &args.html {
        bar.set_message(format!("writing {}", out.display()));
        html::write(out, &args.input, data, &report)?;
    }
    Ok((table, report))
}
