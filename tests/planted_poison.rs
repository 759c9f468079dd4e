//! Detection quality on planted poison with known ground truth (the shipped `datasets/poisoned`).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};

use poisonguard::metrics::{recall_at_k, roc_auc};
use poisonguard::{ActivationClustering, Detector, FittedDetector, SpectralSignature, Spectre};
use poisonguard_io::{LoadOptions, load};

fn dataset(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets").join(name)
}

fn labelled(name: &str) -> (poisonguard::Dataset, Vec<bool>) {
    let opts = LoadOptions {
        label: Some("label".into()),
        truth: Some("is_poison".into()),
        ..LoadOptions::default()
    };
    let (data, truth) = load(dataset(name), &opts).expect("shipped dataset loads").into_parts();
    (data, truth.expect("truth column"))
}

/// Tran et al.'s protocol on the target class 0: the share of the poison among the class's
/// `1.5 x poison` highest scores.
pub(crate) fn recall_in_target(data: &poisonguard::Dataset, scores: &[f64], truth: &[bool]) -> f64 {
    let labels = data.labels().unwrap();
    let rows: Vec<usize> = (0..data.n_samples()).filter(|&i| labels.ids()[i].0 == 0).collect();
    let s: Vec<f64> = rows.iter().map(|&i| scores[i]).collect();
    let t: Vec<bool> = rows.iter().map(|&i| truth[i]).collect();
    let budget = (1.5 * t.iter().filter(|&&p| p).count() as f64).round() as usize;
    recall_at_k(&s, &t, budget).unwrap()
}

/// A class whose verdict is borderline (the BadNets embeddings' class 0: z 5.0 against a
/// critical 5.8, class p-value 0.008) grades its rows instead of switching them off: each row of a
/// class not declared attacked carries `max(class p-value, own p-value)`, so the p-values rank
/// the poison across the whole table (measured 0.988; the scores, which do not carry the class
/// evidence, 0.949), and scoring the same rows again (a saved model on new data) grades them
/// alike. Before, every p-value was 1 here.
#[test]
fn spectre_grades_the_rows_of_a_borderline_class() {
    let (data, truth) = labelled("poisoned/digits_badnets_embeddings.parquet");
    let fit = Spectre::params().fit(&data).unwrap();
    assert!(fit.class_findings().iter().all(|f| f.attacked() != Some(true)));
    let p = fit.training().p_values();
    let evidence: Vec<f64> = p.iter().map(|v| -v).collect();
    let auc = roc_auc(&evidence, &truth).unwrap();
    assert!(auc >= 0.95, "graded p-values rank the poison at {auc:.3}");
    assert!(p.iter().all(|&v| v > 0.001), "no row below the class evidence");
    // the same rows scored again: the same p-values up to the rounding of the two products
    for (a, b) in fit.detect(&data).unwrap().p_values().iter().zip(p) {
        assert!((a - b).abs() <= 1e-9 * b.max(1e-300).max(1.0), "{a} vs {b}");
    }
}

/// Tran et al.'s protocol: remove the top 1.5 x (number of poisons) rows of the target class and
/// count the poisons removed; plus ROC-AUC over all rows.
fn check_badnets(name: &str, min_auc: f64, min_recall: f64) {
    let (data, truth) = labelled(name);
    let fit = SpectralSignature::params().fit(&data).unwrap();
    check_scores(name, &data, fit.training().scores(), &truth, min_auc, min_recall);
    // the attacked class is the most suspicious one
    let top = fit.class_findings().iter().max_by(|a, b| a.score().total_cmp(&b.score())).unwrap();
    assert_eq!(top.label().to_string(), "0", "{name}");
}

fn check_scores(
    name: &str,
    data: &poisonguard::Dataset,
    scores: &[f64],
    truth: &[bool],
    min_auc: f64,
    min_recall: f64,
) {
    let auc = roc_auc(scores, truth).unwrap();
    assert!(auc >= min_auc, "{name}: ROC-AUC {auc:.4} < {min_auc}");
    let recall = recall_in_target(data, scores, truth);
    assert!(recall >= min_recall, "{name}: recall {recall:.3} < {min_recall}");
    println!("{name}: ROC-AUC {auc:.4}, recall in target class {recall:.3}");
}

#[test]
fn spectre_finds_badnets_and_declares_only_the_target_attacked() {
    // measured: ROC-AUC 1.0000 / 0.9492, recall in class 0 1.00 / 1.00 (every class scored);
    // verdict z of class 0 7.9 / 5.0 against a critical value of 5.8, next class 3.2 / 2.2. The
    // embeddings' class 0 is not declared today; the test asks only that it ranks first, so a
    // verdict that catches it passes (it used to pin the miss).
    for (name, declared) in [
        ("poisoned/digits_badnets.parquet", true),
        ("poisoned/digits_badnets_embeddings.parquet", false),
    ] {
        let (data, truth) = labelled(name);
        let all = Spectre::params().flag_all_classes(true).fit(&data).unwrap();
        check_scores(name, &data, all.training().scores(), &truth, 0.9, 0.9);
        let fit = Spectre::params().fit(&data).unwrap();
        let top =
            fit.class_findings().iter().max_by(|a, b| a.score().total_cmp(&b.score())).unwrap();
        assert_eq!(top.label().to_string(), "0", "{name}");
        if declared {
            assert_eq!(top.attacked(), Some(true), "{name}");
        }
        // every flagged row lies in a class declared attacked: where none is (the embeddings),
        // no row is flagged at all
        if fit.class_findings().iter().all(|f| f.attacked() != Some(true)) {
            assert_eq!(fit.training().n_flagged(), 0, "{name}: no class declared");
        }
        let attacked: Vec<String> = fit
            .class_findings()
            .iter()
            .filter(|f| f.attacked() == Some(true))
            .map(|f| f.label().to_string())
            .collect();
        let labels = data.labels().unwrap();
        for (i, _) in fit.training().reasons() {
            assert!(attacked.contains(&labels.value_of_row(*i).to_string()), "{name}: row {i}");
        }
        if declared {
            // the threshold from the other classes' scores flags the poison and little else
            // (measured: the 20 poisons and nothing else)
            let flagged = fit.training().flagged();
            let hits = flagged.iter().zip(&truth).filter(|(f, t)| **f && **t).count();
            let n_poison = truth.iter().filter(|&&t| t).count();
            let n_flagged = fit.training().n_flagged();
            assert!(hits as f64 >= 0.75 * n_poison as f64, "{name}: {hits} of {n_poison}");
            assert!(n_flagged <= 2 * n_poison, "{name}: {n_flagged} flagged");
        }
    }
}

#[test]
fn spectral_signature_finds_badnets_on_raw_pixels() {
    // measured: ROC-AUC 1.000, recall 1.00
    check_badnets("poisoned/digits_badnets.parquet", 0.95, 0.9);
}

#[test]
fn spectral_signature_finds_badnets_in_embeddings() {
    // measured: ROC-AUC 0.998, recall 1.00
    check_badnets("poisoned/digits_badnets_embeddings.parquet", 0.95, 0.9);
}

#[test]
fn csv_and_parquet_give_the_same_scores() {
    let (a, _) = labelled("poisoned/digits_badnets.csv");
    let (b, _) = labelled("poisoned/digits_badnets.parquet");
    assert_eq!(a.features(), b.features());
    let fa = SpectralSignature::params().fit(&a).unwrap();
    let fb = SpectralSignature::params().fit(&b).unwrap();
    assert_eq!(fa.training(), fb.training());
}

#[test]
fn default_threshold_flags_few_rows_of_clean_data() {
    // measured: digits 0.4%, wine 1.1%, breast_cancer 1.2% (chi-square(1) null at 99%)
    for name in ["digits/digits.parquet", "tabular/wine.parquet", "tabular/breast_cancer.parquet"] {
        let opts = LoadOptions { label: Some("label".into()), ..LoadOptions::default() };
        let data = load(dataset(name), &opts).unwrap().into_parts().0;
        let fit = SpectralSignature::params().fit(&data).unwrap();
        let rate = fit.training().n_flagged() as f64 / data.n_samples() as f64;
        assert!(rate <= 0.03, "{name}: {:.1}% flagged", 100.0 * rate);
    }
}

#[test]
fn activation_clustering_isolates_the_badnets_poisons() {
    // measured: class 0's smaller cluster is 10.1% of the class (the 20 poisons), silhouette
    // 0.53 / 0.56, the highest of all classes, verdict z 5.1 / 3.7 (next 1.9 / 1.9) against a
    // critical value of 5.8: ranked first, not declared; no clean class declared either
    // (ART's fixed silhouette rule declares classes 0, 1 and 9 here)
    for name in ["poisoned/digits_badnets.parquet", "poisoned/digits_badnets_embeddings.parquet"] {
        let (data, truth) = labelled(name);
        let fit = ActivationClustering::params().fit(&data).unwrap();
        let top =
            fit.class_findings().iter().max_by(|a, b| a.score().total_cmp(&b.score())).unwrap();
        assert_eq!(top.label().to_string(), "0", "{name}");
        for f in fit.class_findings().iter().filter(|f| f.label().to_string() != "0") {
            assert_eq!(f.attacked(), Some(false), "{name}: class {}", f.label());
        }
        let all = ActivationClustering::params().flag_all_classes(true).fit(&data).unwrap();
        let labels = data.labels().unwrap();
        let in_target: Vec<usize> =
            (0..data.n_samples()).filter(|&i| labels.ids()[i].0 == 0).collect();
        let flagged: Vec<usize> =
            in_target.iter().copied().filter(|&i| all.training().is_flagged(i)).collect();
        // recall >= 0.9 and precision >= 0.8 in the target class, whatever the poison count
        // (the shipped files: 20 poisons, all 20 flagged and nothing else)
        let hits = flagged.iter().filter(|&&i| truth[i]).count();
        let poisons = truth.iter().filter(|&&t| t).count();
        assert!(
            hits as f64 >= 0.9 * poisons as f64 && hits as f64 >= 0.8 * flagged.len() as f64,
            "{name}: {hits} of {poisons} poisons among {} flagged",
            flagged.len()
        );
    }
}

/// `scan_decomposition` (SCAn) on BadNets at 10% and on clean digits, at seeds 100-102: its
/// defaults were chosen on the synthetic classes of its unit tests, `examples/spectral_sweep`
/// (seeds 0-2) and the shipped raw BadNets file, none of which is used here.
#[test]
fn scan_decomposition_ranks_badnets_at_10_percent_and_is_quiet_on_clean_digits() {
    use poisonguard::ScanDecomposition;
    use poisonguard_attacks::{Attack, mlp_embeddings};
    let opts = LoadOptions { label: Some("label".into()), ..LoadOptions::default() };
    let clean = load(dataset("digits/digits.parquet"), &opts).unwrap().into_parts().0;
    let attack = Attack::parse("badnets:target=0,eps=0.1,side=8,size=2,value=16").unwrap();
    for seed in 100..103u64 {
        let poisoned = attack.apply(&clean, seed).unwrap();
        let raw = poisoned.data;
        let embedded = mlp_embeddings(&raw, seed).unwrap();
        for (space, data) in [("raw", &raw), ("mlp", &embedded)] {
            // the sweep on seeds 0-2 measured, within class 0, ROC-AUC 1.0000 (raw and mlp)
            // and recall at 1.5 x poisons 1.000; here ROC-AUC over all rows, recall in class 0
            let fit = ScanDecomposition::params().flag_all_classes(true).fit(data).unwrap();
            let name = format!("scan_decomposition {space} seed {seed}");
            check_scores(&name, data, fit.training().scores(), &poisoned.truth, 0.95, 0.9);
        }
        // clean digits, a 90% subsample that depends on the seed: no class declared, at most 1% of rows flagged
        // (the sweep: 0 of 21 runs declared, 0.0% flagged)
        let mut rows: Vec<usize> = (0..clean.n_samples())
            .filter(|i| !(i * 7 + seed as usize).is_multiple_of(10))
            .collect();
        rows.sort_unstable();
        let sub = clean.select_rows(&rows);
        for (space, data) in [("raw", sub.clone()), ("mlp", mlp_embeddings(&sub, seed).unwrap())] {
            let fit = ScanDecomposition::params().fit(&data).unwrap();
            let declared: Vec<String> = fit
                .class_findings()
                .iter()
                .filter(|f| f.attacked() == Some(true))
                .map(|f| f.label().to_string())
                .collect();
            assert!(declared.is_empty(), "clean {space} seed {seed}: {declared:?} declared");
            let rate = fit.training().n_flagged() as f64 / data.n_samples() as f64;
            assert!(rate <= 0.01, "clean {space} seed {seed}: {:.2}% flagged", 100.0 * rate);
        }
    }
}
