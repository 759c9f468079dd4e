//! The scenario grid shared by the `grid` example (which prints it, seeds 0-2, where defaults are
//! chosen) and `tests/grid.rs` (which asserts on seeds 100-102, never used for choosing).

use std::path::{Path, PathBuf};

use poisonguard::{Audit, Dataset, DetectorOptions, Report, metrics};
use poisonguard_attacks::Attack;

use poisonguard_io::{LoadOptions, load};

/// One clean, labelled table of the grid.
pub struct Table {
    /// Short name.
    pub name: &'static str,
    /// Path under the repository root.
    pub path: &'static str,
    /// Whether its features are an 8x8 image (patch and blend triggers apply).
    pub image: bool,
    /// Whether it is a table of real model embeddings (a FixedSizeList column `embedding`):
    /// audited as given (no network is trained on it), with [`EMBEDDING_ATTACKS`].
    pub embedding: bool,
    /// The class a targeted flip relabels (to class 0).
    pub flip_from: &'static str,
    /// A pool of rows of the same embedding from classes the table does not hold (the
    /// `*_others` tables of `shared/datasets/real-embeddings/`, a seeded 300-row sample), the
    /// source of [`INJECT_ATTACKS`].
    pub others: Option<&'static str>,
}

/// The shipped labelled tables.
pub const TABLES: &[Table] = &[
    Table {
        name: "digits",
        path: "datasets/digits/digits.parquet",
        image: true,
        embedding: false,
        flip_from: "1",
        others: None,
    },
    Table {
        name: "wine",
        path: "datasets/tabular/wine.parquet",
        image: false,
        embedding: false,
        flip_from: "1",
        others: None,
    },
    Table {
        name: "breast_cancer",
        path: "datasets/tabular/breast_cancer.parquet",
        image: false,
        embedding: false,
        flip_from: "1",
        others: None,
    },
];

/// The real-embedding tables (ResNet-18 penultimate layer, 3 x 1,000 rows, classes that overlap
/// naturally): CIFAR-10, where the label nulls were chosen, and SVHN, held out (a test fixture:
/// SVHN is for non-commercial use).
pub const REAL_TABLES: &[Table] = &[
    Table {
        name: "cifar10_resnet18",
        path: "datasets/real-embeddings/cifar10_resnet18_3class_3000.parquet",
        image: false,
        embedding: true,
        flip_from: "4",
        others: Some("datasets/real-embeddings/cifar10_resnet18_others_300.parquet"),
    },
    Table {
        name: "svhn_resnet18",
        path: "tests/fixtures/svhn_resnet18_3class_3000.parquet",
        image: false,
        embedding: true,
        flip_from: "8",
        others: Some("tests/fixtures/svhn_resnet18_others_300.parquet"),
    },
];

/// Attacks on every table; `{from}` is the table's [`Table::flip_from`].
pub const TABULAR_ATTACKS: &[&str] = &[
    "flip:0.1",
    "flip:0.2",
    "targeted-flip:from={from},to=0,rate=0.3",
    "off-manifold:rate=0.05,scale=3",
    "off-manifold:rate=0.05,scale=1",
    "flood:copies=30,jitter=0",
    "source:sources=10,rate=0.4",
];

/// Attacks that need image features (digits: 8x8 pixels in 0..16).
pub const IMAGE_ATTACKS: &[&str] = &[
    "badnets:target=0,eps=0.05,side=8,size=2,value=16",
    "badnets:target=0,eps=0.1,side=8,size=2,value=16",
    "badnets:target=0,eps=0.05,side=8,size=2,value=16,sources=1",
    "badnets:target=0,eps=0.1,side=8,size=2,value=16,sources=1",
    "blend:target=0,eps=0.1,alpha=0.2",
    "clean-label:target=0,eps=0.1,side=8,size=2,value=16",
];

/// The feature-space trace of a backdoor in an embedding table: rows of other classes (blend)
/// or 5% of class 0's own rows (clean-label blend) moved a tenth of the way to one seeded
/// pattern, a sub-population along one direction.
pub const EMBEDDING_ATTACKS: &[&str] =
    &["blend:target=0,eps=0.05,alpha=0.1", "clean-label-blend:target=0,eps=0.05,alpha=0.1"];

/// Injected samples: real rows of classes the table does not hold (`{pool}`: the table's
/// [`Table::others`]), 5% of the table, each under a random class of the table or all under
/// class 0 (ISO/IEC 27090's injected samples; what a scraped or contributed batch brings).
pub const INJECT_ATTACKS: &[&str] = &[
    "inject-others:pool={pool},rate=0.05,label=random",
    "inject-others:pool={pool},rate=0.05,label=0",
];

/// Image attacks at low poison rates, a smaller clean-label share and the clean-label blend,
/// whose target class our verdicts declare rarely or never: the example prints them
/// (benches/RESULTS.md), `tests/grid.rs` does not assert on them (the audit's gap to the best
/// detector there is the open work, not a floor). `eps` is a share of the target class:
/// 0.005-0.02 put 1-4 rows in it (0.06-0.2% of the table); with the image attacks' 0.05 and 0.1
/// (0.5% and 1.1% of the table), 0.17 completes the low rates of the table, 2%.
pub const LOW_RATE_ATTACKS: &[&str] = &[
    "badnets:target=0,eps=0.17,side=8,size=2,value=16",
    "badnets:target=0,eps=0.02,side=8,size=2,value=16",
    "badnets:target=0,eps=0.01,side=8,size=2,value=16",
    "badnets:target=0,eps=0.005,side=8,size=2,value=16",
    "blend:target=0,eps=0.17,alpha=0.2",
    "blend:target=0,eps=0.05,alpha=0.2",
    "blend:target=0,eps=0.02,alpha=0.2",
    "blend:target=0,eps=0.01,alpha=0.2",
    "blend:target=0,eps=0.005,alpha=0.2",
    "clean-label:target=0,eps=0.05,side=8,size=2,value=16",
    "clean-label-blend:target=0,eps=0.1,alpha=0.2",
    "clean-label-blend:target=0,eps=0.05,alpha=0.2",
];

/// Loads a table of the grid.
pub fn load_table(table: &Table) -> Dataset {
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join(table.path);
    let opts = LoadOptions {
        label: Some("label".into()),
        embedding: table.embedding.then(|| "embedding".to_string()),
        ..LoadOptions::default()
    };
    load(path, &opts).expect("grid table loads").into_parts().0
}

/// The attacks of the grid for a table, as specs.
pub fn attacks_for(table: &Table) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if table.image {
        out.extend(IMAGE_ATTACKS.iter().map(ToString::to_string));
    }
    out.extend(TABULAR_ATTACKS.iter().map(|a| a.replace("{from}", table.flip_from)));
    if table.embedding {
        out.extend(EMBEDDING_ATTACKS.iter().map(ToString::to_string));
    }
    if let Some(pool) = table.others {
        out.extend(INJECT_ATTACKS.iter().map(|a| a.replace("{pool}", pool)));
    }
    out
}

/// The spaces a table is audited in: an embedding table as given, the others also in the
/// hidden layer of a network trained on them.
pub fn spaces_of(table: &Table) -> &'static [Space] {
    if table.embedding { &[Space::Raw] } else { &Space::ALL }
}

/// What one audit of one poisoned (or clean) table measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Poisoned rows (0 on a clean table).
    pub n_poison: usize,
    /// Rows.
    pub n_rows: usize,
    /// ROC-AUC of each detector's score against the truth, in run order.
    pub detectors: Vec<(String, f64)>,
    /// ROC-AUC of the audit's suspicion.
    pub suspicion_auc: f64,
    /// Flagged rows.
    pub n_flagged: usize,
    /// Share of the poison flagged (NaN without poison).
    pub recall: f64,
    /// Share of the flagged rows that are poison (1 when nothing is flagged; NaN without
    /// poison).
    pub precision: f64,
    /// Classes some detector declared attacked.
    pub attacked_classes: usize,
    /// The labels of the classes some detector declared attacked.
    pub declared: Vec<String>,
}

impl Outcome {
    /// The best single detector's ROC-AUC.
    pub fn best(&self) -> f64 {
        self.detectors.iter().map(|d| d.1).fold(f64::NAN, f64::max)
    }

    /// Share of the rows flagged.
    pub fn flag_rate(&self) -> f64 {
        self.n_flagged as f64 / self.n_rows as f64
    }
}

/// Classes any run declared attacked.
pub fn attacked_classes(report: &Report) -> usize {
    report
        .runs()
        .iter()
        .map(|r| r.class_findings.iter().filter(|f| f.attacked() == Some(true)).count())
        .max()
        .unwrap_or(0)
}

/// The target class of a backdoor spec, as the findings print labels; `None` for other attacks.
pub fn target_of(spec: &str) -> Option<String> {
    if spec.starts_with("inject-others:") {
        return None;
    }
    Attack::parse(spec).expect("grid spec parses").target().map(ToString::to_string)
}

/// A seeded 90% subsample of a clean table: clean data that differs from seed to seed.
pub fn subsample(data: &Dataset, seed: u64) -> Dataset {
    use rand::SeedableRng;
    use rand::seq::SliceRandom;
    let mut rows: Vec<usize> = (0..data.n_samples()).collect();
    rows.shuffle(&mut rand::rngs::SmallRng::seed_from_u64(seed));
    rows.truncate(data.n_samples() * 9 / 10);
    rows.sort_unstable();
    data.select_rows(&rows)
}

/// Runs the default audit on `data` against `truth` (all false for a clean table), with the
/// share of clean rows `GRID_TRUSTED` names marked trusted; with `GRID_DUMP=FILE` set, appends every row's p-values and scores to FILE ([`dump`]) under the
/// name `scenario`.
pub fn audit(data: &Dataset, truth: &[bool], scenario: &str) -> Outcome {
    let share = std::env::var("GRID_TRUSTED").ok().and_then(|v| v.parse().ok());
    audit_trusting(data, truth, scenario, share)
}

/// [`audit`] with `share` of each class's clean rows marked trusted ([`trusted_rows`]), or
/// none.
pub fn audit_trusting(
    data: &Dataset,
    truth: &[bool],
    scenario: &str,
    share: Option<f64>,
) -> Outcome {
    let fdr = std::env::var("GRID_FDR")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(poisonguard::DEFAULT_FDR);
    let trusted = share.and_then(|share| trusted_rows(data, truth, scenario, share));
    let opts = DetectorOptions { trusted, ..Default::default() };
    let report =
        Audit::for_dataset(data, &opts).fdr(fdr).expect("fdr in (0, 1)").run(data).expect("audit");
    outcome(data, truth, scenario, &report)
}

/// The outcome of an audit's `report` of `data` against `truth`; with `GRID_DUMP=FILE` set, every
/// row's p-values and scores are appended to FILE ([`dump`]) under the name `scenario` first.
fn outcome(
    data: &Dataset,
    truth: &[bool],
    scenario: &str,
    report: &poisonguard::Report,
) -> Outcome {
    if let Ok(path) = std::env::var("GRID_DUMP") {
        dump(Path::new(&path), scenario, data, truth, report)
            .unwrap_or_else(|e| panic!("GRID_DUMP={path}: {e}"));
    }
    let n_poison = truth.iter().filter(|&&t| t).count();
    let auc = |s: &[f64]| {
        if n_poison == 0 { f64::NAN } else { metrics::roc_auc(s, truth).unwrap_or(f64::NAN) }
    };
    let flagged = report.flagged();
    let (precision, recall) =
        metrics::flagged_precision_recall(&flagged, truth).unwrap_or((f64::NAN, f64::NAN));
    Outcome {
        n_poison,
        n_rows: data.n_samples(),
        detectors: report
            .runs()
            .iter()
            .map(|r| (r.id.to_string(), auc(r.detection.scores())))
            .collect(),
        suspicion_auc: auc(report.suspicion()),
        n_flagged: flagged.iter().filter(|&&f| f).count(),
        recall,
        precision,
        attacked_classes: attacked_classes(report),
        declared: report.declared_classes(),
    }
}

/// `share` of the clean rows of every class (`GRID_TRUSTED=SHARE` for the example), drawn with
/// a seed read off the scenario's name: the vetted sample a user marks trusted.
pub fn trusted_rows(
    data: &Dataset,
    truth: &[bool],
    scenario: &str,
    share: f64,
) -> Option<Vec<usize>> {
    use rand::SeedableRng;
    use rand::seq::SliceRandom;
    let seed = scenario
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let labels = data.labels()?;
    let mut rows = Vec::new();
    for class in labels.rows_by_class() {
        let mut clean: Vec<usize> = class.into_iter().filter(|&i| !truth[i]).collect();
        clean.shuffle(&mut rng);
        clean.truncate((share * clean.len() as f64).round() as usize);
        rows.extend(clean);
    }
    rows.sort_unstable();
    Some(rows)
}

/// Appends one CSV line per row of `data` to `path` (a header first when the file is empty):
/// `scenario` (quoted), `row`, `poison`, `label` (the class index), `combined_p`, then
/// `<detector>_p` and `<detector>_score` for each of the audit's detectors, so that the p-values
/// behind a grid row can be studied outside (`scripts/grid_label_null.py`). A file that holds
/// other columns (another detector set) is refused.
pub fn dump(
    path: &Path,
    scenario: &str,
    data: &Dataset,
    truth: &[bool],
    report: &Report,
) -> std::io::Result<()> {
    use std::io::{BufRead, Write};
    let columns: Vec<String> =
        report.runs().iter().map(|r| format!("{0}_p,{0}_score", r.id)).collect();
    let header = format!("scenario,row,poison,label,combined_p,{}", columns.join(","));
    let file = std::fs::OpenOptions::new().create(true).read(true).append(true).open(path)?;
    let mut first = String::new();
    std::io::BufReader::new(&file).read_line(&mut first)?;
    if !first.is_empty() && first.trim_end() != header {
        return Err(std::io::Error::other(format!(
            "holds other columns than this audit's ({header})"
        )));
    }
    let mut out = std::io::BufWriter::new(file);
    if first.is_empty() {
        writeln!(out, "{header}")?;
    }
    let labels = data.labels().map(|l| l.ids());
    for (i, &poison) in truth.iter().enumerate() {
        let label = labels.map_or(String::new(), |ids| ids[i].0.to_string());
        write!(out, "\"{scenario}\",{i},{},{label},{:e}", u8::from(poison), report.p_values()[i])?;
        for r in report.runs() {
            write!(out, ",{:e},{:e}", r.detection.p_values()[i], r.detection.scores()[i])?;
        }
        writeln!(out)?;
    }
    out.flush()
}

/// Which features the audit reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Space {
    /// The table's own features.
    Raw,
    /// The hidden layer of a small network trained on the poisoned table
    /// ([`poisonguard_attacks::mlp_embeddings`]).
    Mlp,
}

impl Space {
    /// Both spaces.
    pub const ALL: [Space; 2] = [Space::Raw, Space::Mlp];

    /// Its name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Space::Raw => "raw",
            Space::Mlp => "mlp",
        }
    }
}

/// `data` as the audit reads it in `space` (the network trained with `seed`).
pub fn in_space(data: Dataset, space: Space, seed: u64) -> Dataset {
    match space {
        Space::Raw => data,
        Space::Mlp => poisonguard_attacks::mlp_embeddings(&data, seed).expect("labels"),
    }
}

/// `clean` poisoned with `spec` at `seed`, as read in `space`, and which rows are poison.
pub fn poisoned(clean: &Dataset, spec: &str, seed: u64, space: Space) -> (Dataset, Vec<bool>) {
    if let Some(args) = spec.strip_prefix("inject-others:") {
        let (data, truth) = injected(clean, args, seed);
        return (in_space(data, space, seed), truth);
    }
    let attack = Attack::parse(spec).expect("grid spec parses");
    let poisoned = attack.apply(clean, seed).expect("grid attack applies");
    (in_space(poisoned.data, space, seed), poisoned.truth)
}

/// [`INJECT_ATTACKS`]: `clean` with `rate x rows` rows of the pool appended (a seeded sample
/// without replacement), labelled `label` (a class of the table) or each a seeded random class
/// (`random`); the appended rows are the poison.
fn injected(clean: &Dataset, args: &str, seed: u64) -> (Dataset, Vec<bool>) {
    use poisonguard::{LabelValue, Labels};
    use rand::{Rng, SeedableRng};
    let arg = |key: &str| {
        args.split(',')
            .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
            .unwrap_or_else(|| panic!("inject-others needs {key}"))
    };
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join(arg("pool"));
    let opts = LoadOptions { embedding: Some("embedding".into()), ..LoadOptions::default() };
    let pool = load(path, &opts).expect("grid pool loads").into_parts().0;
    let rate: f64 = arg("rate").parse().expect("rate");
    let n = clean.n_samples();
    let m = ((rate * n as f64).round() as usize).min(pool.n_samples());
    let mut rng =
        rand::rngs::SmallRng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 31);
    let picked = rand::seq::index::sample(&mut rng, pool.n_samples(), m).into_vec();
    let labels = clean.labels().expect("labelled table");
    let classes = labels.map().values();
    let mut values: Vec<LabelValue> = (0..n).map(|i| labels.value_of_row(i).clone()).collect();
    let chosen = arg("label");
    for _ in 0..m {
        values.push(match chosen {
            "random" => classes[rng.random_range(0..classes.len())].clone(),
            c => classes.iter().find(|v| v.to_string() == c).expect("label of the table").clone(),
        });
    }
    let x = clean.features();
    let extra = pool.features();
    let features = ndarray::Array2::from_shape_fn((n + m, x.ncols()), |(i, j)| {
        if i < n { x[[i, j]] } else { extra[[picked[i - n], j]] }
    });
    let data = Dataset::new(features)
        .expect("finite rows")
        .with_labels(Labels::from_values(&values))
        .expect("one label per row");
    let truth = (0..n + m).map(|i| i >= n).collect();
    (data, truth)
}

/// Poisons `clean` (the table named `table`) with `spec` at `seed` and audits it in `space`.
pub fn run(table: &str, clean: &Dataset, spec: &str, seed: u64, space: Space) -> Outcome {
    let name = format!("{table} ({}) {spec} seed {seed}", space.name());
    // `GRID_REFERENCE=SHARE`: that share of each class's rows (seeded) is a vetted reference
    // table, the rest is poisoned and audited against it (raw features only: a network's
    // hidden layer is trained on the poisoned table, which the reference is not part of)
    let reference = std::env::var("GRID_REFERENCE").ok().and_then(|v| v.parse::<f64>().ok());
    if let (Some(share), Space::Raw) = (reference, space) {
        let (vetted, rest) = split_reference(clean, share, seed);
        let (data, truth) = poisoned(&rest, spec, seed, space);
        return audit_against(&data, &truth, &name, &vetted);
    }
    let (data, truth) = poisoned(clean, spec, seed, space);
    audit(&data, &truth, &name)
}

/// `share` of each class's rows of `clean` (seeded), and the other rows: a vetted reference
/// table and the table audited against it.
pub fn split_reference(clean: &Dataset, share: f64, seed: u64) -> (Dataset, Dataset) {
    let none = vec![false; clean.n_samples()];
    let vetted =
        trusted_rows(clean, &none, &format!("reference {seed}"), share).unwrap_or_default();
    let mut in_reference = vec![false; clean.n_samples()];
    vetted.iter().for_each(|&i| in_reference[i] = true);
    let rest: Vec<usize> = (0..clean.n_samples()).filter(|&i| !in_reference[i]).collect();
    (clean.select_rows(&vetted), clean.select_rows(&rest))
}

/// [`audit`] of `data` against the vetted `reference` table (`Audit::run_with_reference`).
pub fn audit_against(
    data: &Dataset,
    truth: &[bool],
    scenario: &str,
    reference: &Dataset,
) -> Outcome {
    let trusted = poisonguard::reference_rows(data.n_samples(), reference.n_samples()).collect();
    let opts = DetectorOptions { trusted: Some(trusted), ..Default::default() };
    let (report, _) = Audit::for_dataset(data, &opts)
        .run_with_reference(data, reference, &|_| {})
        .expect("audit");
    outcome(data, truth, scenario, &report)
}
