//! The machine-readable summary written with `--summary PATH`: per detector, per class, per
//! source, and the detection quality when ground truth is given.

use std::path::Path;

use anyhow::{Context, Result};
use poisonguard::{LabelValue, Report, SourceFinding};
use serde_json::{Map, Value, json};

use crate::summary::Audited;
use crate::view;

fn label(v: &LabelValue) -> Value {
    match v {
        LabelValue::Int(k) => json!(k),
        LabelValue::Str(s) => json!(s),
    }
}

fn sources(findings: &[SourceFinding]) -> Value {
    findings
        .iter()
        .map(|f| {
            json!({
                "source": f.source,
                "rows": f.n_samples,
                "flagged": f.n_flagged,
                "flag_rate": f.flag_rate(),
                "expected": f.expected,
                "p_value": f.p_value,
                "p_adjusted": f.p_adjusted,
            })
        })
        .collect()
}

/// Builds the summary document.
pub fn document(
    input: &Path,
    rows: &Audited<'_>,
    report: &Report,
    truth_column: Option<&str>,
) -> Value {
    let n = rows.n_rows;
    let detectors: Vec<Value> = report
        .runs()
        .iter()
        .map(|run| {
            let classes: Vec<Value> = run
                .class_findings
                .iter()
                .map(|f| {
                    let mut o = Map::new();
                    o.insert("label".into(), label(f.label()));
                    o.insert("rows".into(), json!(f.n_samples()));
                    o.insert("score".into(), json!(f.score()));
                    for (name, v) in f.statistics() {
                        o.insert(name.name().into(), json!(v));
                    }
                    Value::Object(o)
                })
                .collect();
            let mut o = Map::new();
            o.insert("id".into(), json!(run.id.as_str()));
            o.insert("threshold".into(), json!(run.detection.threshold()));
            o.insert("flagged".into(), json!(run.detection.n_flagged()));
            o.insert("classes".into(), Value::Array(classes));
            if !run.skipped_classes.is_empty() {
                let skipped: Vec<Value> = run
                    .skipped_classes
                    .iter()
                    .map(|c| json!({"label": label(&c.label), "rows": c.rows, "needed": c.needed}))
                    .collect();
                o.insert("skipped_classes".into(), Value::Array(skipped));
            }
            if let Some(m) = &run.noise_matrix {
                let k = m.labels().len();
                let counts: Vec<Vec<usize>> =
                    (0..k).map(|g| (0..k).map(|t| m.count(g, t)).collect()).collect();
                o.insert(
                    "noise_matrix".into(),
                    json!({
                        "labels": m.labels().iter().map(label).collect::<Vec<_>>(),
                        "given_by_true_counts": counts,
                        "estimated_mislabeled": m.n_mislabeled(),
                    }),
                );
            }
            if !run.source_findings.is_empty() {
                o.insert("sources".into(), sources(&run.source_findings));
            }
            Value::Object(o)
        })
        .collect();
    let failures: Vec<Value> =
        report.failures().iter().map(|f| json!({"id": f.id.as_str(), "error": f.error})).collect();
    let mut doc = Map::new();
    doc.insert("input".into(), json!(input.display().to_string()));
    doc.insert("verdict".into(), json!(view::headline(report)));
    let threats: Vec<Value> = report
        .threat_findings()
        .iter()
        .map(|t| {
            json!({
                "threat": t.threat.as_str(),
                "detectors": t.detectors.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
                "flagged": t.flagged.len(),
                "declared_classes": t.declared_classes,
            })
        })
        .collect();
    doc.insert("threats".into(), Value::Array(threats));
    doc.insert("rows".into(), json!(n));
    doc.insert("features".into(), json!(rows.n_features));
    if let Some(l) = rows.labels {
        doc.insert("classes".into(), json!(l.n_present_classes()));
    }
    doc.insert("flagged".into(), json!(report.n_flagged()));
    doc.insert("fdr".into(), json!(report.fdr()));
    let abstained: Vec<&str> = report.abstained().iter().map(|id| id.as_str()).collect();
    doc.insert("abstained".into(), json!(abstained));
    doc.insert("p_cutoff".into(), json!(report.p_cutoff()));
    if let Some(e) = report.estimate() {
        doc.insert(
            "estimated_poisoned".into(),
            json!({"rows": e.rows, "low": e.low, "high": e.high, "level": e.level,
                   "method": e.method.iter().map(ToString::to_string).collect::<Vec<_>>()}),
        );
    }
    doc.insert("detectors".into(), Value::Array(detectors));
    doc.insert("failures".into(), Value::Array(failures));
    if !report.source_findings().is_empty() {
        doc.insert("sources".into(), sources(report.source_findings()));
    }
    if let (Some(truth), Some(col)) = (rows.truth, truth_column) {
        let (n_poison, _, quality) = view::quality(report, truth);
        let mut q = Map::new();
        for row in quality {
            let (auc, ap, rec) = match row.metrics {
                Ok((auc, ap, rec)) => (Some(auc), Some(ap), Some(rec)),
                Err(_) => (None, None, None),
            };
            q.insert(
                row.name,
                json!({"roc_auc": auc, "average_precision": ap, "recall_at_1.5x": rec}),
            );
        }
        doc.insert(
            "quality".into(),
            json!({"truth_column": col, "poisoned_rows": n_poison, "scores": q}),
        );
    }
    Value::Object(doc)
}

/// Writes the summary document as pretty JSON.
pub fn write(path: &Path, doc: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(doc).context("cannot render the summary")?;
    std::fs::write(path, text + "\n").with_context(|| format!("{}: cannot write", path.display()))
}
