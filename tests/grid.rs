//! The scenario grid (`examples/grid`) on seeds 100-102. Every default (the false-discovery
//! rate, the combination, the calibrations) was chosen on seeds 0-2; nothing here was looked at
//! while choosing. Floors sit below what seeds 0-2 measured (in brackets), so an improvement
//! never fails them, except where a floor is the bar (flagged recall and precision).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

// shared with the example, which prints fields this test does not read
#[allow(dead_code)]
#[path = "../examples/grid/scenarios.rs"]
mod scenarios;

use crate::planted_poison::recall_in_target;
use poisonguard::{Detector, FittedDetector, Spectre};
use scenarios::{Outcome, REAL_TABLES, Space, TABLES, attacks_for, load_table, subsample};

const SEEDS: [u64; 3] = [100, 101, 102];

/// BadNets from every other class into class 0 at 20 rows, 10% of the class and 1.1% of the
/// table (the low-rate issue's "1% poison").
const BADNETS_ONE_PERCENT: &str = "badnets:target=0,eps=0.1,side=8,size=2,value=16";

#[test]
fn grid_on_seeds_not_used_for_choosing() {
    let mut strong: Vec<(String, Outcome)> = Vec::new();
    let mut gaps = Vec::new();
    // at 1% poison, raw and embeddings: seeds in which the audit declares class 0 attacked, and
    // SPECTRE's mean recall in class 0 (every class scored)
    let mut declared = [0usize; 2];
    let mut spectre_recall = [0.0f64; 2];
    for table in TABLES {
        let clean = load_table(table);
        for (space, seed) in Space::ALL.into_iter().flat_map(|s| SEEDS.map(|seed| (s, seed))) {
            // clean tables, raw and in the hidden layer of a network trained on each: at most
            // 1% flagged, no class declared attacked [seeds 0-2: 0.00-0.56%]
            let sub = scenarios::in_space(subsample(&clean, seed), space, seed);
            let name = format!("{} ({}) clean seed {seed}", table.name, space.name());
            let c = scenarios::audit(&sub, &vec![false; sub.n_samples()], &name);
            assert!(c.flag_rate() <= 0.01, "{name}: {:.2}% flagged", 100.0 * c.flag_rate());
            assert_eq!(c.attacked_classes, 0, "{name}");
        }
        for spec in attacks_for(table) {
            let spec = spec.as_str();
            for (space, seed) in Space::ALL.into_iter().flat_map(|s| SEEDS.map(|seed| (s, seed))) {
                let (data, truth) = scenarios::poisoned(&clean, spec, seed, space);
                let name = format!("{} ({}) {spec} seed {seed}", table.name, space.name());
                let o = scenarios::audit(&data, &truth, &name);
                if spec == BADNETS_ONE_PERCENT {
                    let all = Spectre::params().flag_all_classes(true).fit(&data).unwrap();
                    let s = usize::from(space == Space::Mlp);
                    spectre_recall[s] += recall_in_target(&data, all.training().scores(), &truth)
                        / SEEDS.len() as f64;
                    declared[s] += usize::from(o.declared.iter().any(|c| c == "0"));
                }
                let gap = o.suspicion_auc - o.best();
                gaps.push(gap);
                // raw features, backdoors, injected outliers and floods: within 0.02 of the
                // best detector [worst -0.007]; label flips, poisoned sources and the
                // embeddings are not (see RESULTS.md)
                let label_attack = ["flip", "targeted-flip", "source"]
                    .iter()
                    .any(|k| spec.split(':').next() == Some(*k));
                if space == Space::Raw && !label_attack {
                    assert!(
                        gap >= -0.02,
                        "{name}: audit {:.4} vs best {:.4}",
                        o.suspicion_auc,
                        o.best()
                    );
                }
                if o.best() >= 0.98 {
                    strong.push((name, o));
                }
            }
        }
    }
    // the target class declared attacked in at least 2 of 3 seeds, raw and embeddings (the
    // issue's bar) [seeds 0-2: 3/3 raw, 2/3 embeddings]
    eprintln!(
        "1% BadNets: class 0 declared in {declared:?} of 3 seeds, spectre recall {spectre_recall:?}"
    );
    assert!(declared.iter().all(|&d| d >= 2), "class 0 declared in {declared:?} of 3 seeds");
    // recall at 1.5x the poison budget >= 0.9 (the bar) [seeds 0-2: 1.00 raw, 0.95
    // embeddings (1.00, 1.00, 0.85)]
    assert!(
        spectre_recall.iter().all(|&r| r >= 0.9),
        "spectre recall in class 0 {spectre_recall:?}"
    );
    // mean gap to the best detector over the whole grid, raw and embeddings [seeds 0-2 with the
    // real tables, 2026-12-06: -0.0221]
    let mean_gap = gaps.iter().sum::<f64>() / gaps.len() as f64;
    assert!(mean_gap >= -0.04, "mean gap {mean_gap:.4}");
    // where the best detector reaches 0.98: mean flagged recall and precision; the floors are
    // the calibrated-evidence issue's bar, not chosen on any seed (the example's whole grid,
    // real tables included, on 2026-12-06: seeds 0-2 0.786 / 0.925, held-out 100-102 0.833 /
    // 0.918)
    let n = strong.len() as f64;
    let recall = strong.iter().map(|(_, o)| o.recall).sum::<f64>() / n;
    let precision = strong.iter().map(|(_, o)| o.precision).sum::<f64>() / n;
    eprintln!(
        "seeds {SEEDS:?}: mean gap {mean_gap:+.4}; {n} strong scenarios: recall {recall:.3}, \
         precision {precision:.3}"
    );
    assert!(recall >= 0.8, "mean flagged recall {recall:.3} over {n} scenarios");
    assert!(precision >= 0.8, "mean flagged precision {precision:.3} over {n} scenarios");
}

/// A clean-label blended key (labels kept) in the hidden layer of a network trained on the
/// poisoned digits: no default detector sees it, `lof` at its default `k` (chosen on seeds 0-2,
/// where it measured 0.899-0.989) ranks the poisons above the clean rows with ROC-AUC >= 0.9
/// (issue: "the best poisonguard detector reaches ROC-AUC >= 0.9").
/// The real-embedding grid on the held-out table (SVHN: CIFAR-10 chose the label nulls and the
/// enrichment's levels) at the held-out seeds: clean 90% subsamples flag at most 1% of rows and
/// declare nothing; on the scenarios whose best single detector reaches 0.95 the audit's
/// suspicion is within 0.02 of it on at least 90% of them, with mean flagged recall >= 0.7 and
/// precision >= 0.8 (measured on seeds 100-102: 15 of 15, recall 1.000, precision 0.994; see
/// benches/RESULTS.md). Random and targeted flips, where the label detectors reach 0.75-0.84
/// on this table, are outside the bar and are audited all the same.
#[test]
fn real_embedding_grid_on_the_held_out_table() {
    let table = REAL_TABLES.iter().find(|t| t.name == "svhn_resnet18").unwrap();
    let clean = load_table(table);
    for seed in SEEDS {
        let sub = subsample(&clean, seed);
        let c = scenarios::audit(&sub, &vec![false; sub.n_samples()], "svhn clean");
        assert!(c.flag_rate() <= 0.01, "seed {seed}: {:.2}% flagged", 100.0 * c.flag_rate());
        assert_eq!(c.attacked_classes, 0, "seed {seed}");
    }
    let mut strong: Vec<(String, Outcome)> = Vec::new();
    for spec in attacks_for(table) {
        for seed in SEEDS {
            let (data, truth) = scenarios::poisoned(&clean, &spec, seed, Space::Raw);
            let name = format!("{} {spec} seed {seed}", table.name);
            let o = scenarios::audit(&data, &truth, &name);
            eprintln!(
                "{name}: best {:.4} audit {:.4} recall {:.3} precision {:.3}",
                o.best(),
                o.suspicion_auc,
                o.recall,
                o.precision
            );
            if o.best() >= 0.95 {
                strong.push((name, o));
            }
        }
    }
    let n = strong.len() as f64;
    assert!(n >= 9.0, "only {n} scenarios reach 0.95");
    let within = strong.iter().filter(|(_, o)| o.suspicion_auc >= o.best() - 0.02).count();
    let recall = strong.iter().map(|(_, o)| o.recall).sum::<f64>() / n;
    let precision = strong.iter().map(|(_, o)| o.precision).sum::<f64>() / n;
    assert!(within as f64 >= 0.9 * n, "audit within 0.02 of the best on {within} of {n}");
    assert!(recall >= 0.7, "mean flagged recall {recall:.3} over {n} scenarios");
    assert!(precision >= 0.8, "mean flagged precision {precision:.3} over {n} scenarios");
}

#[test]
fn lof_sees_a_clean_label_blend_in_embeddings() {
    use poisonguard::{DetectorOptions, detector, metrics::roc_auc};
    let clean = load_table(&TABLES[0]);
    for spec in [
        "clean-label-blend:target=0,eps=0.05,alpha=0.2",
        "clean-label-blend:target=0,eps=0.1,alpha=0.2",
    ] {
        for seed in SEEDS {
            let (data, truth) = scenarios::poisoned(&clean, spec, seed, Space::Mlp);
            let fitted =
                detector("lof", &DetectorOptions::default()).unwrap().fit_boxed(&data).unwrap();
            let auc = roc_auc(fitted.training().scores(), &truth).unwrap();
            assert!(auc >= 0.9, "{spec} seed {seed}: lof ROC-AUC {auc:.3}");
        }
    }
}

/// A trusted sample (#36): 5% of each class's clean rows, whose votes measure `knn_label`'s
/// agreement law of every class with at least 30 of them. A targeted flip (30% of one class
/// relabelled) on the held-out real embeddings (SVHN, seeds 100-102) is ranked at least as well
/// as by the best single detector less 0.02, and far better than without the sample [chosen on
/// CIFAR-10, seeds 0-2: 0.897 with, 0.741 without, best detector 0.850; SVHN there: 0.733,
/// 0.587, 0.752].
#[test]
fn a_trusted_sample_ranks_a_targeted_flip_on_real_embeddings() {
    let table = &REAL_TABLES[1];
    assert_eq!(table.name, "svhn_resnet18");
    let clean = load_table(table);
    let spec = format!("targeted-flip:from={},to=0,rate=0.3", table.flip_from);
    let (mut with, mut without, mut best) = (0.0, 0.0, 0.0);
    for seed in SEEDS {
        let (data, truth) = scenarios::poisoned(&clean, &spec, seed, Space::Raw);
        // the example's name for the scenario, so that both draw the same trusted rows
        let name = format!("{} (raw) {spec} seed {seed}", table.name);
        let trusting = scenarios::audit_trusting(&data, &truth, &name, Some(0.05));
        with += trusting.suspicion_auc / 3.0;
        best += trusting.best() / 3.0;
        without += scenarios::audit_trusting(&data, &truth, &name, None).suspicion_auc / 3.0;
    }
    eprintln!(
        "SVHN targeted flip: audit {with:.4} with 5% trusted, {without:.4} without, best \
         detector {best:.4}"
    );
    assert!(with >= best - 0.02, "{with:.4} vs best {best:.4}");
    assert!(with >= without + 0.1, "{with:.4} vs {without:.4} without");
}
