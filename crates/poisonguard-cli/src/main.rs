//! `poisonguard`: audit a training set (CSV, Parquet, Arrow or .npy) for data poisoning.
//!
//! Exit codes: 0 = ran, 1 = ran and rows were flagged (only with `--fail-on-flagged`),
//! 2 = bad input or failure (one line on stderr naming file, column and row).

mod args;
mod detectors;
mod eval;
mod html;
mod summary;
mod summary_json;
mod view;

use std::path::Path;
use std::process::ExitCode;
use std::sync::PoisonError;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use poisonguard::{
    Audit, AuditEvent, BatchPlan, DetectorId, DetectorOptions, FittedAudit, Report, RowSource,
    reference_sample,
};
use poisonguard_io::{
    Format, LoadOptions, RowBatches, Table, attach_pred_probs, is_array_input, load, open_batches,
    table_shape, write_report, write_report_keys, write_rows,
};

use crate::args::{Cli, Command, ScanArgs};

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
    bar.set_style(spinner_style());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// The spinner's look: a message and the time so far.
fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
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
        knn: args.knn.mode(args.seed),
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
    if model.is_some() && args.trusted.is_some() {
        bail!("--trusted: the trusted rows are used when fitting; a saved model is already fitted");
    }
    let fitted = match model {
        Some(path) => Some(read_model(path)?.fdr(args.fdr)?),
        None => None,
    };

    if let Some(batched) = batched_source(args, fitted.is_some())? {
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
    let (table, report) = outcome?;

    for failure in report.failures() {
        eprintln!("warning: detector {} failed: {}", failure.id, failure.error);
    }
    let mut stdout = std::io::stdout().lock();
    summary::print(&mut stdout, args, model, &summary::Audited::of(&table), &report)?;
    finished(args, &report)
}

/// The exit code of a scan that ran.
fn finished(args: &ScanArgs, report: &Report) -> Result<ExitCode> {
    if args.fail_on_flagged && report.n_flagged() > 0 {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// The memory limit: `--memory-limit`, else half of the machine's memory (`MemTotal` of
/// /proc/meminfo), else none.
fn memory_limit(args: &ScanArgs) -> Option<u64> {
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
fn batched_source(
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
fn size(bytes: u64) -> String {
    let b = bytes as f64;
    if bytes >= 1 << 30 {
        format!("{:.1} GiB", b / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", b / (1u64 << 20) as f64)
    }
}

/// What a batched scan does with its rows.
enum Batched<'a> {
    /// Fit on a reference sample and score the others; save the fit when a path is given.
    Fit { opts: &'a DetectorOptions, requested: Option<&'a [String]>, save: Option<&'a Path> },
    /// Score every row against a saved model (read from this path).
    Model(&'a FittedAudit, &'a Path),
}

/// The batched scan of `source`: the summary on stdout, the report to `--output`, and for a
/// fit the detectors fitted on the reference sample to `save`.
fn audit_batched(
    args: &ScanArgs,
    how: Batched<'_>,
    (mut source, plan, reference): (RowBatches, BatchPlan, usize),
    bar: &ProgressBar,
) -> Result<ExitCode> {
    let keys = source.keys().clone();
    let input = || args.input.display().to_string();
    let (report, stages, reference, model_path) = match how {
        Batched::Fit { opts, requested, save } => {
            if let (Some(labels), Some(column)) = (keys.labels(), &args.label)
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
                None => Audit::for_labels(keys.labels(), opts),
            }
            .fdr(args.fdr)?;
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

/// Writes what `--clean-output`, `--quarantine` and `--summary` ask for.
fn write_copies_and_summary(
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
enum How<'a> {
    /// Fit the detectors on the input and report.
    Run,
    /// Fit, report, and save the fitted detectors here.
    Fit(&'a Path),
    /// Score the input against a saved model.
    Model(&'a FittedAudit),
}

/// Reads a model file saved by `fit`.
fn read_model(path: &Path) -> Result<FittedAudit> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("{}: cannot open the model", path.display()))?;
    FittedAudit::load(std::io::BufReader::new(file))
        .with_context(|| format!("{}: cannot read the model", path.display()))
}

/// Writes the fitted detectors to `path` and says so on stderr.
fn write_model(path: &Path, model: &FittedAudit) -> Result<()> {
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

/// The audit's stages on the progress line: the shared neighbour graphs as a bar with an ETA
/// once their search reports its first rows (their search is most of the time on large tables,
/// and costs about the same per row; the approximate index first places its cells, shown as a
/// spinner), then the detectors, which run in parallel, by name and count.
struct Stages<'a> {
    bar: &'a ProgressBar,
    detectors: usize,
    state: std::sync::Mutex<StageState>,
}

/// What [`Stages`] remembers between events.
#[derive(Default)]
struct StageState {
    /// The graph's bar is drawn (its search has reported rows).
    bar_drawn: bool,
    /// Detectors running now.
    running: Vec<DetectorId>,
    /// Detectors finished.
    finished: usize,
    /// The batched audit's stage shown (reading or scoring).
    stage: Option<&'static str>,
    /// When the batched audit started reading, fitting and scoring.
    clock: [Option<std::time::Instant>; 3],
    /// The shared graph being built, since when.
    graph: Option<(String, std::time::Instant)>,
    /// Stages done: the graphs and the detectors, with their times.
    done: Vec<(String, std::time::Duration)>,
    /// A batched audit's detectors, each with its time scoring the batches.
    scored: Vec<(String, std::time::Duration)>,
}

impl StageState {
    /// The graph being built (if any) has ended.
    fn end_graph(&mut self) {
        if let Some((what, since)) = self.graph.take() {
            self.done.push((what, since.elapsed()));
        }
    }
}

impl<'a> Stages<'a> {
    fn new(bar: &'a ProgressBar, detectors: usize) -> Self {
        Self { bar, detectors, state: std::sync::Mutex::new(StageState::default()) }
    }

    /// A graph's search starts: a spinner until it reports rows.
    fn graph(&self, state: &mut StageState, what: String) {
        self.bar.set_style(spinner_style());
        self.bar.set_message(what);
        state.bar_drawn = false;
    }

    /// A stage with a known amount of work: a bar with an ETA from its first report.
    fn progress(&self, state: &mut StageState, done: usize, total: usize) {
        if !state.bar_drawn {
            self.bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {msg} [{elapsed}] {wide_bar} {percent}% ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            self.bar.set_length(total as u64);
            self.bar.set_position(0);
            self.bar.reset_eta();
            state.bar_drawn = true;
        }
        self.bar.set_position(done as u64);
    }

    fn on(&self, event: AuditEvent) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match event {
            AuditEvent::SharedKnn(k) | AuditEvent::SharedStandardizedKnn(k) => {
                let what = match event {
                    AuditEvent::SharedKnn(_) => format!("finding {k} nearest neighbours"),
                    _ => format!("finding {k} nearest neighbours (standardized)"),
                };
                state.end_graph();
                state.graph = Some((what.clone(), std::time::Instant::now()));
                self.graph(&mut state, what);
            }
            AuditEvent::Reading(done, total) | AuditEvent::Scoring(done, total) => {
                let what = if matches!(event, AuditEvent::Reading(..)) {
                    "reading the reference sample"
                } else {
                    "scoring the rows against the reference's fit"
                };
                let now = std::time::Instant::now();
                match event {
                    AuditEvent::Reading(..) => {
                        state.clock[0].get_or_insert(now);
                        if done == total {
                            state.clock[1] = Some(now);
                        }
                    }
                    _ => {
                        state.clock[2].get_or_insert(now);
                    }
                }
                if state.stage != Some(what) {
                    self.graph(&mut state, what.to_string());
                    state.stage = Some(what);
                }
                self.progress(&mut state, done, total);
            }
            AuditEvent::KnnProgress(done, total) => self.progress(&mut state, done, total),
            AuditEvent::Scored(_, took) | AuditEvent::Searched(took) => {
                let what = match event {
                    AuditEvent::Scored(id, _) => format!("scoring: {id}"),
                    _ => "scoring: shared standardized neighbour search".to_string(),
                };
                match state.scored.iter_mut().find(|(w, _)| *w == what) {
                    Some((_, total)) => *total += took,
                    None => state.scored.push((what, took)),
                }
            }
            AuditEvent::Started(id) | AuditEvent::Finished(id, _) => {
                state.end_graph();
                if let AuditEvent::Finished(_, took) = event {
                    state.done.push((id.as_str().to_string(), took));
                }
                if state.running.is_empty() && state.finished == 0 {
                    self.bar.set_style(spinner_style());
                }
                if matches!(event, AuditEvent::Started(_)) {
                    state.running.push(id);
                } else {
                    state.running.retain(|&r| r != id);
                    state.finished += 1;
                }
                let names: Vec<&str> = state.running.iter().map(|r| r.as_str()).collect();
                self.bar.set_message(format!(
                    "running {} ({} of {} detectors done)",
                    names.join(", "),
                    state.finished,
                    self.detectors
                ));
            }
            _ => {}
        }
    }

    /// The `--timings` lines: each graph and detector of a fit on `fitted` rows, and in a
    /// batched audit each detector's time scoring the other `scored` rows; with rows per second
    /// per thread (the detectors run side by side, so their times overlap).
    fn timings(&self, fitted: usize, scored: usize) -> String {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let threads = rayon::current_num_threads();
        let mut text = format!(
            "timings: fit on {fitted} rows, {threads} threads (detectors run side by side):\n  {:<48} {:>10} {:>16}",
            "stage", "seconds", "rows/s/thread"
        );
        let fit = state.done.iter().map(|s| (s, fitted));
        for ((what, took), rows) in fit.chain(state.scored.iter().map(|s| (s, scored))) {
            let secs = took.as_secs_f64();
            let rate = rows as f64 / secs.max(1e-9) / threads as f64;
            text.push_str(&format!("\n  {what:<48} {secs:>10.2} {rate:>16.0}"));
        }
        text
    }

    /// The batched audit's stages with their times and rates, once it has scored: reading
    /// the table for the reference, fitting on the reference, scoring the other rows.
    fn batched_times(&self, n: usize, reference: usize) -> Option<String> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let score = state.clock[2]?;
        let end = std::time::Instant::now();
        let cores = rayon::current_num_threads() as f64;
        let secs = |a: std::time::Instant, b: std::time::Instant| (b - a).as_secs_f64().max(1e-9);
        let rate = |rows: usize, s: f64| rows as f64 / s / cores;
        let t_score = secs(score, end);
        let scoring = format!(
            "scoring {} rows {t_score:.1} s ({:.0} rows/s/thread)",
            n - reference,
            rate(n - reference, t_score)
        );
        let [Some(read), Some(fit), _] = state.clock else {
            return Some(format!("stages on {cores} threads: {scoring}"));
        };
        let (t_read, t_fit) = (secs(read, fit), secs(fit, score));
        Some(format!(
            "stages on {cores} threads: reading {n} rows for the reference {t_read:.1} s \
             ({:.0} rows/s/thread); fitting on {reference} rows {t_fit:.1} s ({:.0} rows/s/thread); \
             {scoring}",
            rate(n, t_read),
            rate(reference, t_fit),
        ))
    }
}

/// The column roles the scan's arguments name.
fn load_options(args: &ScanArgs) -> LoadOptions {
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

/// Reads the input, runs the audit and writes the report, reporting stages on `bar`.
fn load_and_audit(
    args: &ScanArgs,
    opts: &DetectorOptions,
    requested: Option<&[String]>,
    how: How<'_>,
    bar: &ProgressBar,
) -> Result<(Table, Report)> {
    bar.set_message(format!("reading {}", args.input.display()));
    let mut table = load(&args.input, &load_options(args))?;
    if let Some(path) = &args.pred_probs {
        bar.set_message(format!("reading {}", path.display()));
        table = attach_pred_probs(table, path)?;
    }
    let data = table.dataset();
    // The trusted rows reach the detectors that fit on a clean reserve.
    let opts = &DetectorOptions {
        trusted: table.trusted().map(|t| (0..t.len()).filter(|&i| t[i]).collect()),
        ..opts.clone()
    };
    // Against a model, a batch of one class is fine: the model knows the others.
    if let (Some(labels), Some(column), false) =
        (data.labels(), &args.label, matches!(how, How::Model(_)))
        && labels.n_present_classes() < 2
    {
        bail!(
            "{}: label column {column:?} holds a single class ({}); the per-class detectors compare classes",
            args.input.display(),
            labels.value_of_row(0)
        );
    }

    let audit = || -> Result<(Audit, Stages<'_>)> {
        let audit = match requested {
            Some(names) => Audit::from_ids(names, opts)?,
            None => Audit::for_dataset(data, opts),
        }
        .fdr(args.fdr)?;
        let stages = Stages::new(bar, audit.detector_ids().len());
        Ok((audit, stages))
    };
    let input = || args.input.display().to_string();
    let timings = |stages: &Stages<'_>| {
        if args.timings {
            bar.suspend(|| eprintln!("{}", stages.timings(data.n_samples(), 0)));
        }
    };
    let report = match how {
        How::Run => {
            let (audit, stages) = audit()?;
            let report = audit.run_with(data, &|e| stages.on(e)).with_context(input)?;
            timings(&stages);
            report
        }
        How::Fit(path) => {
            let (audit, stages) = audit()?;
            let (model, report) = audit.fit_with(data, &|e| stages.on(e)).with_context(input)?;
            timings(&stages);
            bar.set_message(format!("writing {}", path.display()));
            write_model(path, &model)?;
            report
        }
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
    write_copies_and_summary(args, &report, &summary::Audited::of(&table), bar)?;
    if let Some(out) = &args.html {
        bar.set_message(format!("writing {}", out.display()));
        html::write(out, &args.input, data, &report)?;
    }
    Ok((table, report))
}
