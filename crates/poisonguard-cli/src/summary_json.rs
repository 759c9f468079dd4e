//! The machine-readable summary written with `--summary PATH`: per detector, per class, per
//! source, and the detection quality when ground truth is given.

use std::path::Path;

use anyhow::{Context, Result};
use poisonguard::Report;
use serde_json::{Map, Value, json};

use crate::summary::Audited;
use crate::view;

/// Builds the summary document: the input's path, then [`poisonguard::summary::document`],
/// then the detection quality when ground truth is given.
pub fn document(
    input: &Path,
    rows: &Audited<'_>,
    report: &Report,
    truth_column: Option<&str>,
) -> Value {
    let mut doc = Map::new();
    doc.insert("input".into(), json!(input.display().to_string()));
    if let Value::Object(body) =
        poisonguard::summary::document(report, rows.n_features, rows.labels)
    {
        doc.extend(body);
    }
    if let Some((path, r)) = &rows.reference {
        doc.insert(
            "reference".into(),
            json!({"file": path.display().to_string(), "rows": r.rows, "flagged": r.flagged}),
        );
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
