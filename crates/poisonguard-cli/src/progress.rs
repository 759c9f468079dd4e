//! Progress on stderr: a spinner that appears after a second, and the audit's stages (each
//! detector's fit and score, each shared neighbour graph) with their times for `--timings`.

use std::sync::PoisonError;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use poisonguard::{AuditEvent, DetectorId};

/// Work shorter than this shows no progress at all.
const PROGRESS_DELAY: Duration = Duration::from_secs(1);

/// A spinner on stderr, drawn only when stderr is a terminal and only once the work has taken
/// longer than [`PROGRESS_DELAY`].
pub(crate) fn spinner() -> ProgressBar {
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
pub(crate) fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

/// The audit's stages on the progress line: the shared neighbour graphs as a bar with an ETA
/// once their search reports its first rows (their search is most of the time on large tables,
/// and costs about the same per row; the approximate index first places its cells, shown as a
/// spinner), then the detectors, which run in parallel, by name and count.
pub(crate) struct Stages<'a> {
    bar: &'a ProgressBar,
    detectors: usize,
    state: std::sync::Mutex<StageState>,
}

/// What [`Stages`] remembers between events.
#[derive(Default)]
pub(crate) struct StageState {
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
    pub(crate) fn new(bar: &'a ProgressBar, detectors: usize) -> Self {
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

    /// The running detectors on the progress line, after the graph being built if any (the
    /// detectors that read no graph run beside its search).
    fn show_running(&self, state: &StageState) {
        let names: Vec<&str> = state.running.iter().map(|r| r.as_str()).collect();
        let running = format!(
            "running {} ({} of {} detectors done)",
            names.join(", "),
            state.finished,
            self.detectors
        );
        match &state.graph {
            Some((what, _)) => self.bar.set_message(format!("{what}; {running}")),
            None => self.bar.set_message(running),
        }
    }

    pub(crate) fn on(&self, event: AuditEvent) {
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
            AuditEvent::GraphsBuilt(_) => {
                state.end_graph();
                self.bar.set_style(spinner_style());
                self.show_running(&state);
            }
            AuditEvent::Started(id) | AuditEvent::Finished(id, _) => {
                if let AuditEvent::Finished(_, took) = event {
                    state.done.push((id.as_str().to_string(), took));
                }
                if matches!(event, AuditEvent::Started(_)) {
                    state.running.push(id);
                } else {
                    state.running.retain(|&r| r != id);
                    state.finished += 1;
                }
                self.show_running(&state);
            }
            _ => {}
        }
    }

    /// The `--timings` lines: each graph and detector of a fit on `fitted` rows, and in a
    /// batched audit each detector's time scoring the other `scored` rows; with rows per second
    /// per thread (the detectors run side by side, so their times overlap).
    pub(crate) fn timings(&self, fitted: usize, scored: usize) -> String {
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
    pub(crate) fn batched_times(&self, n: usize, reference: usize) -> Option<String> {
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
