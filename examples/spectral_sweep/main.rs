//! Planted backdoors in `digits` (raw pixels), scored by the spectral family.
//!
//! For each scenario and seed: copy `n_p` images from classes 1..9, stamp a trigger, relabel
//! them 0, so that poisons are a share `eps` of the poisoned class 0; then score with
//! `spectral_signature`, `spectre`, `activation_clustering` and `scan_decomposition` (SCAn,
//! reserve-free, and in a second table with every tenth clean row as its clean reserve; rows of
//! every class scored, no verdict gating) and report,
//! within class 0, the recall of poison among the top `1.5 n_p` rows (Tran et al.'s protocol)
//! and the ROC-AUC. Triggers: a 2x2 patch at the bottom-right corner of value 16 or 8, a blended
//! random pattern (`x' = 0.8 x + 0.2 pattern`, pattern uniform on 0..16, one per seed), and two
//! different patches (bottom-right and top-left) into the same target, half the poisons each.
//!
//! Each scenario runs twice: on the raw pixels, and on embeddings, the 64 hidden ReLU units of a
//! one-hidden-layer MLP trained on that poisoned set (scikit-learn's `MLPClassifier` defaults,
//! seeded), with the attack success rate of that model (the share of clean images of classes
//! 1..9 that it calls 0 once triggered) to show the backdoor was learned. `spectre`'s verdict
//! column is the share of seeds where class 0 is declared attacked.
//!
//! Then, on clean data (`digits`, `wine`, `breast_cancer`, each whole and as 20 seeded
//! subsamples of 80% of the rows): in how many runs `spectre` declares some class attacked, and
//! the share of rows each detector flags at its default threshold (the largest over the runs);
//! the same count of runs with a verdict for `activation_clustering` and `scan_decomposition`.
//!
//! Run: `cargo run --release --example spectral_sweep [SEEDS] [raw]` (default 3 seeds; `raw`
//! skips the embeddings; `SWEEP_FIRST_SEED=100` starts the seeds at 100, seeds not used for
//! choosing any default).

use std::error::Error;

mod reference;

use ndarray::Array2;
use poisonguard::metrics::{recall_at_k, roc_auc};
use poisonguard::{
    ActivationClustering, Dataset, Detector, FittedDetector, LabelValue, Labels, ScanDecomposition,
    SignatureScore, SpectralSignature, Spectre,
};
use poisonguard_io::{LoadOptions, load};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

#[derive(Clone, Copy)]
enum Trigger {
    Patch(f32),
    Blend,
    TwoPatches,
}

const BOTTOM_RIGHT: [usize; 4] = [54, 55, 62, 63];
const TOP_LEFT: [usize; 4] = [0, 1, 8, 9];

fn plant(
    x: &Array2<f32>,
    y: &[i64],
    trigger: Trigger,
    eps: f64,
    seed: u64,
) -> (Dataset, Vec<bool>, Vec<f32>) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let n_target = y.iter().filter(|&&v| v == 0).count();
    let n_p = ((eps / (1.0 - eps)) * n_target as f64).round().max(1.0) as usize;
    let mut sources: Vec<usize> = (0..y.len()).filter(|&i| y[i] != 0).collect();
    sources.shuffle(&mut rng);
    let pattern: Vec<f32> = (0..64).map(|_| rng.random_range(0.0..16.0)).collect();
    let mut rows = x.clone().into_raw_vec_and_offset().0;
    let mut labels: Vec<LabelValue> = y.iter().map(|&v| LabelValue::Int(v)).collect();
    for (t, &s) in sources.iter().take(n_p).enumerate() {
        let mut img: Vec<f32> = x.row(s).to_vec();
        stamp(&mut img, trigger, &pattern, t);
        rows.extend(img);
        labels.push(LabelValue::Int(0));
    }
    let n = y.len() + n_p;
    let data = Dataset::new(Array2::from_shape_vec((n, 64), rows).expect("shape"))
        .and_then(|d| d.with_labels(Labels::from_values(&labels)))
        .expect("valid data");
    (data, (0..n).map(|i| i >= y.len()).collect(), pattern)
}

/// Stamps the trigger on one image; `t` alternates the two patches.
fn stamp(img: &mut [f32], trigger: Trigger, pattern: &[f32], t: usize) {
    match trigger {
        Trigger::Patch(v) => BOTTOM_RIGHT.iter().for_each(|&p| img[p] = v),
        Trigger::Blend => img.iter_mut().zip(pattern).for_each(|(a, b)| *a = 0.8 * *a + 0.2 * b),
        Trigger::TwoPatches => {
            let spot = if t.is_multiple_of(2) { BOTTOM_RIGHT } else { TOP_LEFT };
            spot.iter().for_each(|&p| img[p] = 16.0);
        }
    }
}

/// A one-hidden-layer MLP (64 ReLU units, softmax output) trained on the poisoned rows as
/// scikit-learn's `MLPClassifier` defaults (Glorot init, Adam with learning rate 1e-3, batch 200,
/// L2 1e-4, 200 epochs) on pixels scaled to [0, 1]; the model a victim would train, and its
/// hidden layer the embeddings a defender inspects.
struct Mlp {
    w1: Array2<f32>,
    b1: ndarray::Array1<f32>,
    w2: Array2<f32>,
    b2: ndarray::Array1<f32>,
}

impl Mlp {
    const HIDDEN: usize = 64;

    fn hidden(&self, x: &Array2<f32>) -> Array2<f32> {
        let mut h = (x / 16.0).dot(&self.w1) + &self.b1;
        h.mapv_inplace(|v| v.max(0.0));
        h
    }

    fn predict(&self, x: &Array2<f32>) -> Vec<usize> {
        let z = self.hidden(x).dot(&self.w2) + &self.b2;
        z.rows()
            .into_iter()
            .map(|r| (0..r.len()).fold(0, |b, j| if r[j] > r[b] { j } else { b }))
            .collect()
    }

    fn train(x: &Array2<f32>, y: &[usize], classes: usize, seed: u64) -> Self {
        use ndarray::{Array1, Axis};
        let mut rng = SmallRng::seed_from_u64(seed);
        let (n, d, h) = (x.nrows(), x.ncols(), Self::HIDDEN);
        let glorot = |rng: &mut SmallRng, a: usize, b: usize| {
            let bound = (6.0 / (a + b) as f32).sqrt();
            Array2::from_shape_fn((a, b), |_| rng.random_range(-bound..bound))
        };
        let mut params = [
            glorot(&mut rng, d, h),
            Array2::from_shape_fn((1, h), |_| rng.random_range(-0.1..0.1)),
            glorot(&mut rng, h, classes),
            Array2::from_shape_fn((1, classes), |_| rng.random_range(-0.1..0.1)),
        ];
        let mut m: Vec<Array2<f32>> = params.iter().map(|p| Array2::zeros(p.raw_dim())).collect();
        let mut v = m.clone();
        let (lr, b1, b2, eps, l2) = (1e-3f32, 0.9f32, 0.999f32, 1e-8f32, 1e-4f32);
        let xs = x / 16.0;
        let mut order: Vec<usize> = (0..n).collect();
        let mut step = 0i32;
        for _ in 0..200 {
            order.shuffle(&mut rng);
            for batch in order.chunks(200) {
                let xb = xs.select(Axis(0), batch);
                let a1 = xb.dot(&params[0]) + &params[1];
                let hb = a1.mapv(|v| v.max(0.0));
                let mut z = hb.dot(&params[2]) + &params[3];
                for mut row in z.rows_mut() {
                    let mx = row.fold(f32::MIN, |a, &b| a.max(b));
                    row.mapv_inplace(|v| (v - mx).exp());
                    let s = row.sum();
                    row /= s;
                }
                let bn = batch.len() as f32;
                for (r, &i) in batch.iter().enumerate() {
                    z[[r, y[i]]] -= 1.0;
                }
                z /= bn;
                let g2 = hb.t().dot(&z) + &(&params[2] * (l2 / bn));
                let gb2 = z.sum_axis(Axis(0)).insert_axis(Axis(0));
                let mut dh = z.dot(&params[2].t());
                dh.zip_mut_with(&a1, |g, &a| {
                    if a <= 0.0 {
                        *g = 0.0
                    }
                });
                let g1 = xb.t().dot(&dh) + &(&params[0] * (l2 / bn));
                let gb1 = dh.sum_axis(Axis(0)).insert_axis(Axis(0));
                step += 1;
                let (c1, c2) = (1.0 - b1.powi(step), 1.0 - b2.powi(step));
                for (((p, g), m), v) in
                    params.iter_mut().zip([g1, gb1, g2, gb2]).zip(&mut m).zip(&mut v)
                {
                    m.zip_mut_with(&g, |m, &g| *m = b1 * *m + (1.0 - b1) * g);
                    v.zip_mut_with(&g, |v, &g| *v = b2 * *v + (1.0 - b2) * g * g);
                    ndarray::Zip::from(p).and(&*m).and(&*v).for_each(|p, &m, &v| {
                        *p -= lr * (m / c1) / ((v / c2).sqrt() + eps);
                    });
                }
            }
        }
        let [w1, b1m, w2, b2m] = params;
        Mlp {
            w1,
            b1: Array1::from_iter(b1m.iter().copied()),
            w2,
            b2: Array1::from_iter(b2m.iter().copied()),
        }
    }
}

/// Recall of SPECTRE's reference filter among the `1.5 n_p` rows of class 0 it removes, told
/// the true poison count (`oracle`) or a tenth of the class (a user's upper guess).
fn reference_recall(truth: &[bool], data: &Dataset, oracle: bool) -> f64 {
    let labels = data.labels().expect("labels");
    let rows: Vec<usize> =
        (0..data.n_samples()).filter(|&i| *labels.value_of_row(i) == LabelValue::Int(0)).collect();
    let x = data.features();
    let class = Array2::from_shape_fn((rows.len(), x.ncols()), |(r, j)| f64::from(x[[rows[r], j]]));
    let n_p = rows.iter().filter(|&&i| truth[i]).count();
    let told = if oracle { n_p } else { (rows.len() as f64 * 0.1).round() as usize };
    let removed = reference::spectre_filter(&class, told, (1.5 * n_p as f64).round() as usize);
    let hits = rows.iter().zip(&removed).filter(|(i, r)| **r && truth[**i]).count();
    hits as f64 / n_p.max(1) as f64
}

/// Recall at 1.5 x poisons and ROC-AUC within class 0.
fn within_target(scores: &[f64], truth: &[bool], data: &Dataset) -> (f64, f64) {
    let labels = data.labels().expect("labels");
    let rows: Vec<usize> =
        (0..data.n_samples()).filter(|&i| *labels.value_of_row(i) == LabelValue::Int(0)).collect();
    let s: Vec<f64> = rows.iter().map(|&i| scores[i]).collect();
    let t: Vec<bool> = rows.iter().map(|&i| truth[i]).collect();
    let n_p = t.iter().filter(|&&v| v).count();
    let k = (1.5 * n_p as f64).round() as usize;
    (recall_at_k(&s, &t, k).unwrap_or(f64::NAN), roc_auc(&s, &t).unwrap_or(f64::NAN))
}

/// The poisoned rows as the hidden layer of an MLP trained on them, and the attack success rate
/// of that model: the share of the clean images of classes 1..9, triggered, that it calls 0.
fn embed(
    poisoned: &Dataset,
    x: &Array2<f32>,
    y: &[i64],
    trigger: Trigger,
    pattern: &[f32],
    seed: u64,
) -> Result<(Dataset, f64), Box<dyn Error>> {
    let labels = poisoned.labels().ok_or("labels")?;
    let ids: Vec<usize> = labels.ids().iter().map(|c| c.index()).collect();
    let features = poisoned.features().to_owned();
    let mlp = Mlp::train(&features, &ids, labels.map().n_classes(), 1000 + seed);
    let emb = Dataset::new(mlp.hidden(&features))?.with_labels(labels.clone())?;
    let others: Vec<usize> = (0..y.len()).filter(|&i| y[i] != 0).collect();
    let mut triggered = Array2::zeros((others.len(), 64));
    for (t, &i) in others.iter().enumerate() {
        let mut img = x.row(i).to_vec();
        stamp(&mut img, trigger, pattern, t);
        triggered.row_mut(t).iter_mut().zip(img).for_each(|(a, b)| *a = b);
    }
    let zero =
        labels.map().values().iter().position(|v| *v == LabelValue::Int(0)).ok_or("class 0")?;
    let hits = mlp.predict(&triggered).iter().filter(|&&c| c == zero).count();
    Ok((emb, hits as f64 / others.len() as f64))
}

fn main() -> Result<(), Box<dyn Error>> {
    let seeds: u64 = std::env::args().nth(1).map(|s| s.parse()).transpose()?.unwrap_or(3);
    let first: u64 =
        std::env::var("SWEEP_FIRST_SEED").ok().map(|s| s.parse()).transpose()?.unwrap_or(0);
    let embeddings = std::env::args().nth(2).is_none_or(|a| a != "raw");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/digits/digits.parquet");
    let opts = LoadOptions { label: Some("label".into()), ..LoadOptions::default() };
    let data = load(path, &opts)?.into_parts().0;
    let labels = data.labels().ok_or("labels")?;
    let y: Vec<i64> = (0..data.n_samples())
        .map(|i| match labels.value_of_row(i) {
            LabelValue::Int(v) => *v,
            LabelValue::Str(_) => -1,
        })
        .collect();
    let x = data.features().to_owned();
    let scenarios = [
        ("patch 16", Trigger::Patch(16.0)),
        ("patch 8", Trigger::Patch(8.0)),
        ("blend 0.2", Trigger::Blend),
        ("two patches", Trigger::TwoPatches),
    ];
    for space in ["raw pixels", "embeddings"] {
        if space == "embeddings" && !embeddings {
            continue;
        }
        println!("\n{space}:");
        println!(
            "{:<12} {:>5} | {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9} {:>9} {:>9} | {:>8} {:>9} {:>9} {:>6}",
            "",
            "",
            "recall",
            "",
            "",
            "",
            "",
            "ref.filt",
            "ref.filt",
            "roc_auc",
            "",
            "",
            "",
            "",
            "spectre",
            "act.clust",
            "scan",
            ""
        );
        println!(
            "{:<12} {:>5} | {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9} {:>9} {:>9} | {:>8} {:>9} {:>9} {:>6}",
            "trigger",
            "eps",
            "signature",
            "reference",
            "spectre",
            "act.clust",
            "scan",
            "true eps",
            "eps=10%",
            "signature",
            "reference",
            "spectre",
            "act.clust",
            "scan",
            "verdict",
            "verdict",
            "verdict",
            "asr"
        );
        let mut reserve_lines = Vec::new();
        for (name, trigger) in scenarios {
            for eps in [0.10, 0.05, 0.02, 0.01, 0.005] {
                let mut acc = [0.0f64; 16];
                let mut reserve = [0.0f64; 3];
                for seed in first..first + seeds {
                    let (raw, truth, pattern) = plant(&x, &y, trigger, eps, seed);
                    let (d, asr) = if space == "embeddings" {
                        embed(&raw, &x, &y, trigger, &pattern, seed)?
                    } else {
                        (raw, f64::NAN)
                    };
                    let sig = SpectralSignature::params().fit(&d)?;
                    let sref =
                        SpectralSignature::params().score(SignatureScore::Reference).fit(&d)?;
                    let spe = Spectre::params().flag_all_classes(true).fit(&d)?;
                    let (r1, a1) = within_target(sig.training().scores(), &truth, &d);
                    let (r2, a2) = within_target(sref.training().scores(), &truth, &d);
                    let (r3, a3) = within_target(spe.training().scores(), &truth, &d);
                    let ac = ActivationClustering::params().flag_all_classes(true).fit(&d)?;
                    let (r4, a4) = within_target(ac.training().scores(), &truth, &d);
                    let verdict = |findings: &[poisonguard::ClassFinding]| {
                        findings
                            .iter()
                            .find(|f| *f.label() == LabelValue::Int(0))
                            .and_then(|f| f.statistic(poisonguard::ClassStatistic::Attacked))
                            .unwrap_or(0.0)
                    };
                    let scan = ScanDecomposition::params().flag_all_classes(true).fit(&d)?;
                    let (r7, a7) = within_target(scan.training().scores(), &truth, &d);
                    // the paper's setting: a clean reserve, every tenth clean row (the verdict
                    // does not depend on flag_all_classes, as for the detectors above)
                    let trusted = (0..d.n_samples()).filter(|&i| !truth[i] && i % 10 == 0);
                    let with_reserve = ScanDecomposition::params()
                        .trusted(trusted)
                        .flag_all_classes(true)
                        .fit(&d)?;
                    let (r8, a8) = within_target(with_reserve.training().scores(), &truth, &d);
                    let verdict_reserve = verdict(with_reserve.class_findings());
                    for (slot, v) in reserve.iter_mut().zip([r8, a8, verdict_reserve]) {
                        *slot += v / seeds as f64;
                    }
                    let (v_spe, v_ac, v_scan) = (
                        verdict(spe.class_findings()),
                        verdict(ac.class_findings()),
                        verdict(scan.class_findings()),
                    );
                    let r5 = reference_recall(&truth, &d, true);
                    let r6 = reference_recall(&truth, &d, false);
                    for (slot, v) in acc.iter_mut().zip([
                        r1, r2, r3, r4, a1, a2, a3, a4, v_spe, v_ac, asr, r5, r6, r7, a7, v_scan,
                    ]) {
                        *slot += v / seeds as f64;
                    }
                }
                println!(
                    "{name:<12} {eps:>5.3} | {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} | {:>9.4} {:>9.4} {:>9.4} {:>9.4} {:>9.4} | {:>8.2} {:>9.2} {:>9.2} {:>6.2}",
                    acc[0],
                    acc[1],
                    acc[2],
                    acc[3],
                    acc[13],
                    acc[11],
                    acc[12],
                    acc[4],
                    acc[5],
                    acc[6],
                    acc[7],
                    acc[14],
                    acc[8],
                    acc[9],
                    acc[15],
                    acc[10]
                );
                reserve_lines.push(format!(
                    "{name:<12} {eps:>5.3} | {:>9.3} {:>9.3} | {:>9.4} {:>9.4} | {:>8.2} {:>8.2}",
                    acc[13], reserve[0], acc[14], reserve[1], acc[15], reserve[2]
                ));
            }
        }
        println!("\nSCAn reserve-free and with a clean reserve (every tenth clean row), {space}:");
        println!(
            "{:<12} {:>5} | {:>9} {:>9} | {:>9} {:>9} | {:>8} {:>8}",
            "trigger", "eps", "recall", "reserve", "roc_auc", "reserve", "verdict", "reserve"
        );
        reserve_lines.iter().for_each(|l| println!("{l}"));
    }
    println!();
    println!(
        "{:<22} {:>5} | {:>17} {:>17} {:>17} | {:>16} {:>16} {:>16}",
        "clean data",
        "runs",
        "spectre verdicts",
        "act.clust verdicts",
        "scan verdicts",
        "spectre flags",
        "signature flags",
        "scan flags"
    );
    for name in ["digits/digits", "tabular/wine", "tabular/breast_cancer"] {
        let path = format!("{}/datasets/{name}.parquet", env!("CARGO_MANIFEST_DIR"));
        let full = load(&path, &opts)?.into_parts().0;
        let (mut attacked_runs, mut ac_runs, mut scan_runs) = (0, 0, 0);
        let (mut spe_max, mut sig_max, mut scan_max) = (0.0f64, 0.0f64, 0.0f64);
        let runs = 21;
        for run in 0..runs {
            let data = if run == 0 {
                full.clone()
            } else {
                let mut rng = SmallRng::seed_from_u64(100 + run as u64);
                let mut rows: Vec<usize> = (0..full.n_samples()).collect();
                rows.shuffle(&mut rng);
                rows.truncate(full.n_samples() * 4 / 5);
                rows.sort_unstable();
                full.select_rows(&rows)
            };
            let spe = Spectre::params().fit(&data)?;
            let sig = SpectralSignature::params().fit(&data)?;
            let ac = ActivationClustering::params().fit(&data)?;
            let scan = ScanDecomposition::params().fit(&data)?;
            if scan.class_findings().iter().any(|f| f.attacked() == Some(true)) {
                scan_runs += 1;
            }
            if spe.class_findings().iter().any(|f| f.attacked() == Some(true)) {
                attacked_runs += 1;
            }
            if ac.class_findings().iter().any(|f| f.attacked() == Some(true)) {
                ac_runs += 1;
            }
            let n = data.n_samples() as f64;
            spe_max = spe_max.max(spe.training().n_flagged() as f64 / n);
            sig_max = sig_max.max(sig.training().n_flagged() as f64 / n);
            scan_max = scan_max.max(scan.training().n_flagged() as f64 / n);
        }
        println!(
            "{name:<22} {runs:>5} | {attacked_runs:>17} {ac_runs:>17} {scan_runs:>17} | {:>15.1}% {:>15.1}% {:>15.1}%",
            100.0 * spe_max,
            100.0 * sig_max,
            100.0 * scan_max
        );
    }
    Ok(())
}
