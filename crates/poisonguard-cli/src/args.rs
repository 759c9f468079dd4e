//! Command-line arguments, parsed in two stages: clap's syntax, then checked values.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use poisonguard::{ThresholdRule, detector_ids};

/// Audit machine-learning training data for poisoning.
#[derive(Debug, Parser)]
#[command(name = "poisonguard", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Score every row of a table (CSV, Parquet, Arrow) or .npy array for poisoning and
    /// summarise the findings.
    Scan(ScanCommand),
    /// Audit a trusted table as `scan` does and save the fitted detectors as a model file, to
    /// audit incoming tables against it later with `scan --model`.
    Fit(FitArgs),
    /// Plant seeded poison into a clean table and measure how well detectors find it.
    Eval(EvalArgs),
    /// List the detectors, one tab-separated line each: id, family, needs (labels or any),
    /// default or on-request, paper.
    Detectors(DetectorsArgs),
}

/// Arguments of `poisonguard scan`: what to read and how, and optionally a saved model.
#[derive(Debug, Args)]
pub struct ScanCommand {
    /// Score the rows against a model saved by `poisonguard fit` instead of fitting the
    /// detectors on this table: each row is judged against the trusted table the model was
    /// fitted on. The model fixes the detectors and the feature columns.
    #[arg(
        long,
        value_name = "MODEL",
        conflicts_with_all = ["detectors", "per_class", "threshold", "pred_probs", "knn", "seed"]
    )]
    pub model: Option<PathBuf>,
    /// What to scan and how.
    #[command(flatten)]
    pub args: ScanArgs,
}

/// Arguments of `poisonguard fit`: those of `scan`, and where to save the model.
#[derive(Debug, Args)]
pub struct FitArgs {
    /// Write the fitted model here (a versioned MessagePack file; see the README).
    #[arg(long, value_name = "MODEL")]
    pub save: PathBuf,
    /// What to fit on and how (as `scan`).
    #[command(flatten)]
    pub scan: ScanArgs,
}

/// Arguments of `poisonguard detectors`.
#[derive(Debug, Args)]
pub struct DetectorsArgs {
    /// Print the README's Markdown table (id, family, needs, default, score, paper) instead.
    #[arg(long)]
    pub markdown: bool,
}

/// Arguments of `poisonguard eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Clean input table: .csv (with a header row) or .parquet.
    pub input: PathBuf,
    /// Label column.
    #[arg(long, value_name = "COL")]
    pub label: String,
    /// Attack spec, repeatable: badnets:target=T,eps=E (also side=, size=, value=, corner=,
    /// sources=), blend:target=T,eps=E,alpha=A, clean-label:target=T,eps=E,
    /// clean-label-blend:target=T,eps=E,alpha=A, flip:RATE,
    /// targeted-flip:from=A,to=B,rate=R, flood:copies=C,jitter=J, source:sources=S,rate=R,
    /// off-manifold:rate=R,scale=K.
    #[arg(long = "attack", value_name = "SPEC", required = true)]
    pub attacks: Vec<String>,
    /// Detectors to compare, comma-separated (default: the scan's default set).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub detectors: Option<Vec<String>>,
    /// Seeds per attack (poison placement; detectors use --seed).
    #[arg(long, default_value_t = 3)]
    pub seeds: u64,
    /// False-discovery rate of the audit's flagged rows (as scan).
    #[arg(long, value_name = "Q", default_value_t = poisonguard::DEFAULT_FDR)]
    pub fdr: f64,
    /// Columns to leave out of the features, comma-separated.
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    pub exclude: Option<Vec<String>>,
    /// Write one row per attack, seed and detector here (.csv or .json).
    #[arg(long, short, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Save each attack's poisoned table of the first seed here as attack_N.parquet (N = 0, 1, ... in --attack order), with
    /// `label`, `is_poison` (and `source`) columns, to re-score it with `scan --truth is_poison`.
    #[arg(long, value_name = "DIR")]
    pub save: Option<PathBuf>,
    /// kNN graphs: auto, exact or approx (as scan).
    #[arg(long, value_enum, default_value_t = KnnChoice::Auto)]
    pub knn: KnnChoice,
    /// Cells of the approximate index searched for each row (as scan).
    #[arg(long, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub knn_probes: Option<usize>,
    /// Seed of the detectors.
    #[arg(long, default_value_t = poisonguard::DetectorOptions::default().seed)]
    pub seed: u64,
    /// Worker threads (default: one per core). Results do not depend on it.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

/// Arguments of `poisonguard scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Input: a table (.csv with a header row, .parquet, or Arrow IPC .arrow/.feather/.ipc in
    /// the file or stream format), or a NumPy .npy feature array (2-D float16/32/64, C order)
    /// whose label, id, source and truth columns come from --meta; or a directory or glob of
    /// shards of one kind, read as one table in name order.
    pub input: PathBuf,
    /// A Parquet or Arrow column of float lists (List or FixedSizeList of float16/32/64: one
    /// embedding per row) that holds the features; the other columns are then not features.
    #[arg(long, value_name = "COL", conflicts_with_all = ["features", "exclude"])]
    pub embedding: Option<String>,
    /// Beside a .npy input: the table (.csv, .parquet or .arrow, one row per array row) that
    /// holds the columns named by --label, --id, --source and --truth, or a 1-D .npy array of
    /// labels.
    #[arg(long, value_name = "FILE")]
    pub meta: Option<PathBuf>,
    /// Label column (integers or strings).
    #[arg(long, value_name = "COL")]
    pub label: Option<String>,
    /// Sample-id column, copied to the report.
    #[arg(long, value_name = "COL")]
    pub id: Option<String>,
    /// Data-source (contributor) column.
    #[arg(long, value_name = "COL")]
    pub source: Option<String>,
    /// Ground-truth column (1 = known poison): prints ROC-AUC, average precision and recall.
    #[arg(long, value_name = "COL")]
    pub truth: Option<String>,
    /// Trusted column (1 = a row known to be clean, 0 otherwise; a vetted sample of the
    /// table): `knn_label` measures the agreement law of every class with at least 30 of them
    /// (a targeted flip is ranked far better), `scan_decomposition` (SCAn) fits its global model
    /// on them. They are audited too; the summary says how many were flagged. Used when
    /// fitting: not with --model.
    #[arg(long, value_name = "COL")]
    pub trusted: Option<String>,
    /// A vetted table in the same feature space (the same feature columns and label column,
    /// read as the input is): its rows are audited beside the input's as trusted rows, so the
    /// label nulls of every class with at least 30 of them are measured on them; the report
    /// covers the input's rows, and the summary says how many reference rows were flagged. With
    /// fit --save, the model is fitted on both and keeps what the reference's rows measured. Not
    /// with --model, --memory-limit or --pred-probs.
    #[arg(long, value_name = "FILE", conflicts_with = "pred_probs")]
    pub reference: Option<PathBuf>,
    /// Out-of-sample predicted probabilities for confident_learning: a CSV or Parquet file with
    /// one row per input row and one column per class, named as the label (`3`) or ending in
    /// `_<label>` (`prob_3`). Without it, confident_learning cross-validates its own classifier.
    #[arg(long, value_name = "FILE", requires = "label")]
    pub pred_probs: Option<PathBuf>,
    /// Feature columns to use, comma-separated (default: every other numeric column).
    #[arg(long, value_name = "A,B", value_delimiter = ',', conflicts_with = "exclude")]
    pub features: Option<Vec<String>>,
    /// Columns to leave out of the features, comma-separated.
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    pub exclude: Option<Vec<String>>,
    /// Detectors to run, comma-separated (`poisonguard detectors` lists them).
    #[arg(long, value_name = "LIST", value_delimiter = ',', long_help = detectors_help())]
    pub detectors: Option<Vec<String>>,
    /// Fit the outlier detectors within each class and score each row against its own class.
    #[arg(long, requires = "label")]
    pub per_class: bool,
    /// Threshold rule: auto | contamination:F | fixed:X | robust-z:C | tukey:K.
    #[arg(long, value_name = "RULE")]
    pub threshold: Option<String>,
    /// False-discovery rate of the flagged rows: among them, the expected share of clean rows
    /// is at most Q (Benjamini-Hochberg on the combined p-values).
    #[arg(long, value_name = "Q", default_value_t = poisonguard::DEFAULT_FDR)]
    pub fdr: f64,
    /// Write the per-row report here (.csv, .parquet, .arrow or .json).
    #[arg(long, short, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// kNN graphs shared by the detectors: exact, approximate (inverted-file index), or auto
    /// (approximate above 50,000 rows with more than 12 features).
    #[arg(long, value_enum, default_value_t = KnnChoice::Auto)]
    pub knn: KnnChoice,
    /// Cells of the approximate index searched for each row, where the search is approximate
    /// (default 16): more find more of the true neighbours and take longer (10^6 x 512: 4 cells
    /// 163 s, 6 cells 215 s, 16 cells 387 s; `examples/knn_recall` measures the recall on your
    /// table).
    #[arg(long, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub knn_probes: Option<usize>,
    /// Write the summary (per detector, class and source; quality with --truth) as JSON here.
    #[arg(long, value_name = "PATH")]
    pub summary: Option<PathBuf>,
    /// Write a self-contained HTML report here (summary, classes, score histograms, a 2-D view
    /// of the most suspicious class).
    #[arg(long, value_name = "PATH")]
    pub html: Option<PathBuf>,
    /// Write the input rows the audit did not flag here (.csv, .parquet or .arrow), every
    /// original column kept with its type.
    #[arg(long, value_name = "PATH")]
    pub clean_output: Option<PathBuf>,
    /// Write the flagged input rows here (.csv, .parquet or .arrow), with `poisonguard_row` and
    /// `poisonguard_reasons` columns added.
    #[arg(long, value_name = "PATH")]
    pub quarantine: Option<PathBuf>,
    /// Seed of every randomized step.
    #[arg(long, default_value_t = poisonguard::DetectorOptions::default().seed)]
    pub seed: u64,
    /// Worker threads (default: one per core). Results do not depend on it.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Memory the audit may use (bytes, or with a K, M, G or T suffix, powers of 1024; default
    /// half of the machine's memory). A Parquet or .npy input whose in-memory audit would not
    /// fit (about 3x its f32 features) is audited in batches: the detectors are fitted on a
    /// seeded class-stratified reference sample and every other row is scored against that fit,
    /// a batch at a time.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub memory_limit: Option<u64>,
    /// Print each stage's time on stderr when the audit ends: the shared neighbour graphs and
    /// each detector, with rows per second per thread.
    #[arg(long)]
    pub timings: bool,
    /// Exit with code 1 when any row is flagged.
    #[arg(long)]
    pub fail_on_flagged: bool,
}

/// `--knn` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KnnChoice {
    /// Exact up to 50,000 rows or 12 features, approximate above.
    Auto,
    /// Always exact.
    Exact,
    /// Always approximate (exact up to 12 features).
    Approx,
}

impl KnnChoice {
    /// The library's mode, seeded by `seed` (`--knn approx`), its approximate search probing
    /// `probes` cells per row where given (`--knn-probes`).
    ///
    /// # Errors
    /// `--knn-probes` with `--knn exact`, which probes no cells.
    pub fn mode(self, seed: u64, probes: Option<usize>) -> Result<poisonguard::KnnMode> {
        use poisonguard::{ApproxParams, KnnMode};
        let mode = match self {
            KnnChoice::Auto => KnnMode::Auto,
            KnnChoice::Exact => KnnMode::Exact,
            KnnChoice::Approx => {
                KnnMode::Approximate(ApproxParams { seed, ..ApproxParams::default() })
            }
        };
        match probes {
            None => Ok(mode),
            Some(p) => mode.with_probes(p).ok_or_else(|| {
                anyhow::anyhow!(
                    "--knn-probes sets the cells the approximate search probes; --knn exact \
                     searches every row (drop one of the two)"
                )
            }),
        }
    }
}

impl ScanArgs {
    /// The requested detectors, checked against the known ids; `None` for the default set.
    pub fn detector_list(&self) -> Result<Option<Vec<String>>> {
        detector_list(self.detectors.as_deref())
    }
}

/// The long help of `scan --detectors`, read off the registry.
fn detectors_help() -> String {
    let ids =
        |default: bool| -> Vec<String> {
            poisonguard::REGISTRY
                .iter()
                .filter(|r| r.is_default() == default)
                .map(|r| {
                    if r.info().needs_labels {
                        format!("{} (labels)", r.id())
                    } else {
                        r.id().into()
                    }
                })
                .collect()
        };
    format!(
        "Detectors to run, comma-separated. Default: {}; detectors marked (labels) run only with \
         --label. On request: {}. `poisonguard detectors` lists them with their papers.",
        ids(true).join(", "),
        ids(false).join(", ")
    )
}

/// Checks a `--detectors` list against the known ids; `None` for the default set.
pub fn detector_list(detectors: Option<&[String]>) -> Result<Option<Vec<String>>> {
    let Some(list) = detectors else {
        return Ok(None);
    };
    let list: Vec<String> =
        list.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    if list.is_empty() {
        bail!("--detectors is empty; known detectors: {}", known());
    }
    for name in &list {
        if poisonguard::registered(name).is_none() {
            bail!("unknown detector {name:?}; known detectors: {}", known());
        }
    }
    Ok(Some(list))
}

fn known() -> String {
    detector_ids().collect::<Vec<_>>().join(", ")
}

/// Parses a memory size: bytes, or a number with a K, M, G or T suffix (powers of 1024, an
/// optional trailing `B` or `iB`).
pub fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let t = text.trim();
    let t = t.strip_suffix("iB").or_else(|| t.strip_suffix('B')).unwrap_or(t);
    let (number, shift) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(format!("{text:?}: the unit is K, M, G or T")),
            };
            (&t[..i], shift)
        }
        _ => (t, 0),
    };
    let value: f64 =
        number.trim().parse().map_err(|_| format!("{text:?} is not a size (e.g. 4G, 512M)"))?;
    let bytes =
        value * f64::from(1u32 << shift.min(30)) * f64::from(1u32 << (shift - shift.min(30)));
    if !(bytes.is_finite() && bytes >= 1.0 && bytes < 2f64.powi(63)) {
        return Err(format!("{text:?} is not a size of at least one byte"));
    }
    Ok(bytes as u64)
}

/// Parses `auto`, `contamination:F`, `fixed:X`, `robust-z:C` or `tukey:K`, and checks the value.
pub fn parse_threshold(text: &str) -> Result<ThresholdRule> {
    let (kind, value) = match text.split_once(':') {
        Some((k, v)) => (k.trim(), Some(v.trim())),
        None => (text.trim(), None),
    };
    let number = |v: Option<&str>| -> Result<f64> {
        match v.map(str::parse::<f64>) {
            Some(Ok(x)) => Ok(x),
            _ => bail!("--threshold {text:?}: {kind} needs a number, e.g. {kind}:0.05"),
        }
    };
    let rule = match kind {
        "auto" if value.is_none() => ThresholdRule::Auto,
        "contamination" => ThresholdRule::Contamination(number(value)?),
        "fixed" => ThresholdRule::Fixed(number(value)?),
        "robust-z" => ThresholdRule::RobustZ { c: number(value)? },
        "tukey" => ThresholdRule::Tukey { iqr_multiplier: number(value)? },
        _ => bail!(
            "--threshold {text:?} is not a rule; use auto, contamination:F, fixed:X, robust-z:C or tukey:K"
        ),
    };
    rule.check().map_err(|e| anyhow::anyhow!("--threshold {text:?}: {e}"))?;
    Ok(rule)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_with_binary_units() {
        assert_eq!(parse_size("4G"), Ok(4 << 30));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1.5k"), Ok(1536));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("2TB"), Ok(2 << 40));
        assert!(parse_size("4X").is_err());
        assert!(parse_size("-1G").is_err());
        assert!(parse_size("G").is_err());
    }

    #[test]
    fn threshold_rules_parse_and_check() {
        assert_eq!(parse_threshold("auto").unwrap(), ThresholdRule::Auto);
        assert_eq!(
            parse_threshold("contamination:0.1").unwrap(),
            ThresholdRule::Contamination(0.1)
        );
        assert_eq!(parse_threshold("fixed:2.5").unwrap(), ThresholdRule::Fixed(2.5));
        assert_eq!(
            parse_threshold("tukey:3").unwrap(),
            ThresholdRule::Tukey { iqr_multiplier: 3.0 }
        );
        assert!(parse_threshold("contamination:0.9").is_err());
        assert!(parse_threshold("contamination").is_err());
        assert!(parse_threshold("sometimes").is_err());
    }
}
