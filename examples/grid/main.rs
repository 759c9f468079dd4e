//! The scenario grid: every attack of `poisonguard-attacks` on every shipped labelled table
//! (digits, wine, breast_cancer) at seeds 0-2, on the raw features and on the hidden layer of a
//! small network trained on the poisoned table, plus every clean table, audited with the default
//! detectors, and on digits backdoors at 0.5-2% poison and clean-label triggers at 5%
//! ([`scenarios::LOW_RATE_ATTACKS`], not asserted by the test). Prints, per scenario, the
//! poison's count and share of the table, each detector's ROC-AUC, the audit's suspicion
//! ROC-AUC, flagged recall and precision, the share of rows flagged and, for backdoors, in how
//! many seeds some detector declared the target class attacked. Defaults are chosen on these
//! seeds; `tests/grid.rs` asserts on seeds 100-102.
//!
//! Run in release: `cargo run --release --example grid [--markdown] [SEEDS...]` (`--markdown`
//! prints the table of benches/RESULTS.md; `GRID_FDR=Q` audits at another false-discovery
//! rate; `GRID_ONLY=TEXT` runs only the attacks whose `table (space) attack` line contains
//! TEXT; `GRID_DUMP=FILE` appends every audited row's p-values and scores to the CSV file FILE,
//! see [`scenarios::dump`]; `GRID_TRUSTED=SHARE` marks that share of each class's clean rows
//! trusted; `GRID_REFERENCE=SHARE` sets that share of each class's rows apart as a vetted
//! reference table and audits the poisoned rest against it, raw features only, see
//! [`scenarios::split_reference`]).

#[path = "scenarios.rs"]
mod scenarios;

use scenarios::{LOW_RATE_ATTACKS, REAL_TABLES, TABLES, attacks_for, load_table, run, spaces_of};

fn main() {
    let markdown = std::env::args().any(|a| a == "--markdown");
    let seeds: Vec<u64> = std::env::args().skip(1).filter_map(|s| s.parse().ok()).collect();
    let seeds = if seeds.is_empty() { vec![0, 1, 2] } else { seeds };
    let mut header_done = false;
    if !markdown {
        println!(
            "{:<20} {:<52} {:>6} {:>6} {:>7} {:>7} {:>7} {:>7} {:>6} {:>8}  detectors (ROC-AUC)",
            "table",
            "attack",
            "poison",
            "share",
            "best",
            "audit",
            "recall",
            "prec",
            "flag%",
            "target"
        );
    }
    let only = std::env::var("GRID_ONLY").unwrap_or_default();
    let mut gaps = Vec::new();
    let mut strong: Vec<(f64, f64)> = Vec::new();
    let mut clean_flagged = Vec::new();
    let mut sub_flagged: Vec<f64> = Vec::new();
    let mut real_rows: Vec<scenarios::Outcome> = Vec::new();
    for table in TABLES.iter().chain(REAL_TABLES) {
        let clean = load_table(table);
        for &space in spaces_of(table) {
            let name = format!("{} ({})", table.name, space.name());
            let c = scenarios::audit(
                &scenarios::in_space(clean.clone(), space, 0),
                &vec![false; clean.n_samples()],
                &format!("{name} clean"),
            );
            clean_flagged.push((name.clone(), 100.0 * c.flag_rate(), c.attacked_classes));
            if markdown {
                println!(
                    "\n**{name}** clean: {:.2}% of rows flagged, {} classes declared attacked\n",
                    100.0 * c.flag_rate(),
                    c.attacked_classes
                );
                header_done = false;
            } else {
                println!(
                    "{name:<20} {:<52} {:>6} {:>6} {:>7} {:>7} {:>7} {:>7} {:>6.2} {:>8}  attacked classes: {}",
                    "clean",
                    0,
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    100.0 * c.flag_rate(),
                    c.attacked_classes
                );
            }
            // seeded 90% subsamples of the clean table, each in its own network's space
            let subs: Vec<String> = seeds
                .iter()
                .map(|&seed| {
                    let sub = scenarios::in_space(scenarios::subsample(&clean, seed), space, seed);
                    let c = scenarios::audit(
                        &sub,
                        &vec![false; sub.n_samples()],
                        &format!("{name} clean 90% seed {seed}"),
                    );
                    sub_flagged.push(100.0 * c.flag_rate());
                    format!("{:.2}% ({} attacked)", 100.0 * c.flag_rate(), c.attacked_classes)
                })
                .collect();
            println!("{name} clean 90% subsamples, seeds {seeds:?}: {}", subs.join(", "));
            let low_rate = if table.image { LOW_RATE_ATTACKS } else { &[] };
            let specs = attacks_for(table);
            for spec in specs.iter().map(String::as_str).chain(low_rate.iter().copied()) {
                if !only.is_empty() && !format!("{name} {spec}").contains(&only) {
                    continue;
                }
                let outs: Vec<_> =
                    seeds.iter().map(|&s| run(table.name, &clean, spec, s, space)).collect();
                let mean = |f: &dyn Fn(&scenarios::Outcome) -> f64| {
                    outs.iter().map(f).sum::<f64>() / outs.len() as f64
                };
                let mut dets: Vec<(String, f64)> = outs[0].detectors.clone();
                for (k, d) in dets.iter_mut().enumerate() {
                    d.1 = mean(&|o| o.detectors[k].1);
                }
                let best = mean(&|o| o.best());
                let audit = mean(&|o| o.suspicion_auc);
                let poison = mean(&|o| o.n_poison as f64);
                let (recall, precision) = (mean(&|o| o.recall), mean(&|o| o.precision));
                let flagged = 100.0 * mean(&|o| o.flag_rate());
                let share = 100.0 * mean(&|o| o.n_poison as f64 / o.n_rows as f64);
                // in how many seeds some detector declared the backdoor's target class attacked
                let target = scenarios::target_of(spec).map_or("-".to_string(), |t| {
                    let hits = outs.iter().filter(|o| o.declared.contains(&t)).count();
                    format!("{hits}/{}", outs.len())
                });
                if table.embedding {
                    real_rows.extend(outs.iter().cloned());
                }
                // the summary covers the rows the test asserts on
                if !LOW_RATE_ATTACKS.contains(&spec) {
                    gaps.push(audit - best);
                    strong.extend(
                        outs.iter().filter(|o| o.best() >= 0.98).map(|o| (o.recall, o.precision)),
                    );
                }
                let aucs: Vec<String> = dets.iter().map(|(_, a)| format!("{a:.3}")).collect();
                if markdown {
                    if !header_done {
                        let names: Vec<&str> = dets.iter().map(|d| d.0.as_str()).collect();
                        println!(
                            "| attack | poison | share | best | audit | recall | precision | flagged | \
                             target declared | {} |",
                            names.join(" | ")
                        );
                        println!("|{}", " --- |".repeat(9 + names.len()));
                        header_done = true;
                    }
                    println!(
                        "| `{spec}` | {poison:.0} | {share:.2}% | {best:.4} | {audit:.4} | \
                         {recall:.3} | {precision:.3} | {flagged:.2}% | {target} | {} |",
                        aucs.join(" | ")
                    );
                } else {
                    let names = dets.iter().map(|(n, _)| n.as_str());
                    let pairs: Vec<String> =
                        names.zip(&aucs).map(|(n, a)| format!("{n} {a}")).collect();
                    println!(
                        "{name:<20} {spec:<52} {poison:>6.0} {share:>5.2}% {best:>7.4} {audit:>7.4} \
                         {recall:>7.3} {precision:>7.3} {flagged:>6.2} {target:>8}  {}",
                        pairs.join(", ")
                    );
                }
            }
        }
    }
    let worst = gaps.iter().copied().fold(f64::INFINITY, f64::min);
    let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
    println!("audit - best detector ROC-AUC: mean {mean:+.4}, worst {worst:+.4}");
    let k = strong.len().max(1) as f64;
    println!(
        "scenario-seeds whose best detector reaches 0.98: {}, mean flagged recall {:.3}, precision {:.3}",
        strong.len(),
        strong.iter().map(|s| s.0).sum::<f64>() / k,
        strong.iter().map(|s| s.1).sum::<f64>() / k
    );
    // the real-embedding tables, on the scenarios whose best detector reaches 0.95
    let real: Vec<&scenarios::Outcome> = real_rows.iter().filter(|o| o.best() >= 0.95).collect();
    let k = real.len().max(1) as f64;
    println!(
        "real embeddings, scenario-seeds whose best detector reaches 0.95: {}, audit within 0.02 \
         of it on {}, mean flagged recall {:.3}, precision {:.3}",
        real.len(),
        real.iter().filter(|o| o.suspicion_auc >= o.best() - 0.02).count(),
        real.iter().map(|o| o.recall).sum::<f64>() / k,
        real.iter().map(|o| o.precision).sum::<f64>() / k
    );
    let clean: Vec<String> =
        clean_flagged.iter().map(|(n, f, a)| format!("{n} {f:.2}% ({a} attacked)")).collect();
    println!("clean tables flagged: {}", clean.join(", "));
    let worst_sub = sub_flagged.iter().copied().fold(0.0, f64::max);
    let over = sub_flagged.iter().filter(|&&f| f > 1.0).count();
    println!(
        "clean 90% subsamples: worst {worst_sub:.2}% flagged, {over} of {} above 1%",
        sub_flagged.len()
    );
}
