//! `poisonguard eval`: plant seeded poison into a clean table, run the detectors, score them
//! against the ground truth with the same metrics as `scan --truth`.

use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use poisonguard::{Audit, AuditEvent, DetectorOptions, metrics};
use poisonguard_attacks::Attack;
use poisonguard_io::{LoadOptions, load, write_dataset};
use serde_json::json;

use crate::args::{EvalArgs, detector_list};

/// One detector's result on one poisoned dataset.
struct Row {
    attack: String,
    seed: u64,
    detector: String,
    n_poison: usize,
    roc_auc: f64,
    average_precision: f64,
    recall: f64,
    /// Share of the poison among the rows flagged (the detector's own flags; the audit's
    /// Benjamini-Hochberg flags for `suspicion`); 1 when nothing is flagged.
    flagged_precision: f64,
    /// Share of the poison flagged.
    flagged_recall: f64,
    seconds: f64,
}

/// Runs the evaluation and prints the table (means over seeds).
pub fn run(args: &EvalArgs, out: &mut impl Write) -> Result<()> {
    if args.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    Audit::new().fdr(args.fdr).context("--fdr")?;
    let attacks: Vec<Attack> =
        args.attacks.iter().map(|s| Attack::parse(s)).collect::<Result<_, _>>()?;
    if let Some(path) = &args.output {
        match path.extension().and_then(|e| e.to_str()) {
            Some("csv" | "json") => {}
            _ => bail!("{}: write the results as .csv or .json", path.display()),
        }
    }
    if let Some(dir) = &args.save {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create", dir.display()))?;
    }
    let requested = detector_list(args.detectors.as_deref())?;
    let load_opts = LoadOptions {
        label: Some(args.label.clone()),
        exclude: args.exclude.clone().unwrap_or_default(),
        ..LoadOptions::default()
    };
    let data = load(&args.input, &load_opts)?.into_parts().0;
    let opts = DetectorOptions {
        seed: args.seed,
        knn: args.knn.mode(args.seed, args.knn_probes)?,
        ..DetectorOptions::default()
    };

    let mut rows = Vec::new();
    for (a, attack) in attacks.iter().enumerate() {
        for seed in 0..args.seeds {
            let poisoned = attack.apply(&data, seed)?;
            if let (Some(dir), 0) = (&args.save, seed) {
                write_dataset(
                    dir.join(format!("attack_{a}.parquet")),
                    &poisoned.data,
                    Some(&poisoned.truth),
                )?;
            }
            let audit = match &requested {
                Some(names) => Audit::from_ids(names, &opts)?,
                None => Audit::for_dataset(&poisoned.data, &opts),
            }
            .fdr(args.fdr)
            .context("--fdr")?;
            let times = Mutex::new(Vec::<(String, Duration)>::new());
            let report = audit
                .run_with(&poisoned.data, &|e| {
                    if let AuditEvent::Finished(id, t) = e
                        && let Ok(mut v) = times.lock()
                    {
                        v.push((id.to_string(), t));
                    }
                })
                .with_context(|| attack.to_string())?;
            let times = times.into_inner().unwrap_or_default();
            for f in report.failures() {
                eprintln!("warning: {attack}, seed {seed}: {} failed: {}", f.id, f.error);
            }
            let truth = &poisoned.truth;
            let n_poison = truth.iter().filter(|&&t| t).count();
            let k = (1.5 * n_poison as f64).round() as usize;
            let mut scored: Vec<(String, &[f64], Vec<bool>)> = report
                .runs()
                .iter()
                .map(|r| (r.id.to_string(), r.detection.scores(), r.detection.flagged()))
                .collect();
            scored.push(("suspicion".into(), report.suspicion(), report.flagged()));
            for (name, scores, flags) in scored {
                let (flagged_precision, flagged_recall) =
                    metrics::flagged_precision_recall(&flags, truth)
                        .unwrap_or((f64::NAN, f64::NAN));
                let seconds =
                    times.iter().find(|(id, _)| *id == name).map_or(0.0, |(_, t)| t.as_secs_f64());
                rows.push(Row {
                    attack: attack.to_string(),
                    seed,
                    detector: name,
                    n_poison,
                    roc_auc: metrics::roc_auc(scores, truth).unwrap_or(f64::NAN),
                    average_precision: metrics::average_precision(scores, truth)
                        .unwrap_or(f64::NAN),
                    recall: metrics::recall_at_k(scores, truth, k).unwrap_or(f64::NAN),
                    flagged_precision,
                    flagged_recall,
                    seconds,
                });
            }
        }
    }

    writeln!(
        out,
        "{}: {} rows, {} features; {} seed(s) per attack; means over seeds",
        args.input.display(),
        data.n_samples(),
        data.n_features(),
        args.seeds
    )?;
    writeln!(
        out,
        "{:<44} {:<22} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}",
        "attack",
        "detector",
        "poison",
        "roc_auc",
        "avg_prec",
        "recall",
        "flag_rec",
        "flag_pre",
        "seconds"
    )?;
    let mut keys: Vec<(String, String)> = Vec::new();
    for r in &rows {
        let key = (r.attack.clone(), r.detector.clone());
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    for (attack, detector) in &keys {
        let group: Vec<&Row> =
            rows.iter().filter(|r| &r.attack == attack && &r.detector == detector).collect();
        let mean =
            |f: &dyn Fn(&Row) -> f64| group.iter().map(|r| f(r)).sum::<f64>() / group.len() as f64;
        writeln!(
            out,
            "{:<44} {:<22} {:>7.0} {:>8.4} {:>8.4} {:>8.3} {:>8.3} {:>8.3} {:>9.3}",
            attack,
            detector,
            mean(&|r| r.n_poison as f64),
            mean(&|r| r.roc_auc),
            mean(&|r| r.average_precision),
            mean(&|r| r.recall),
            mean(&|r| r.flagged_recall),
            mean(&|r| r.flagged_precision),
            mean(&|r| r.seconds)
        )?;
    }
    if let Some(path) = &args.output {
        write_rows(path, &rows)?;
        writeln!(out, "results written to {}", path.display())?;
    }
    Ok(())
}

fn write_rows(path: &std::path::Path, rows: &[Row]) -> Result<()> {
    let text = if path.extension().and_then(|e| e.to_str()) == Some("json") {
        let items: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                json!({
                    "attack": r.attack, "seed": r.seed, "detector": r.detector,
                    "poisoned_rows": r.n_poison, "roc_auc": r.roc_auc,
                    "average_precision": r.average_precision, "recall_at_1.5x": r.recall,
                    "flagged_recall": r.flagged_recall, "flagged_precision": r.flagged_precision,
                    "seconds": r.seconds,
                })
            })
            .collect();
        serde_json::to_string_pretty(&items)? + "\n"
    } else {
        let mut s = String::from(
            "attack,seed,detector,poisoned_rows,roc_auc,average_precision,recall_at_1.5x,\
             flagged_recall,flagged_precision,seconds\n",
        );
        for r in rows {
            s.push_str(&format!(
                "\"{}\",{},{},{},{},{},{},{},{},{}\n",
                r.attack,
                r.seed,
                r.detector,
                r.n_poison,
                r.roc_auc,
                r.average_precision,
                r.recall,
                r.flagged_recall,
                r.flagged_precision,
                r.seconds
            ));
        }
        s
    };
    std::fs::write(path, text).with_context(|| format!("{}: cannot write", path.display()))
}
