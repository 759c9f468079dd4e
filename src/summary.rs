//! What every rendering of an audit (the command line's text, JSON and HTML summaries, the
//! Python package's `Summary`) reads off a [`Report`] in the same words: the one-line verdict,
//! one line per threat, and the summary document.

use serde_json::{Map, Value, json};

use crate::{LabelValue, Labels, Report, SourceFinding, ThreatFinding};

/// Confidence level of [`true_discoveries`].
pub const TRUE_DISCOVERY_LEVEL: f64 = 0.95;

/// A lower bound, at confidence [`TRUE_DISCOVERY_LEVEL`], on how many of the `flagged` rows that
/// Benjamini-Hochberg selected at `fdr` are not clean: with `a = 1 - level`, every threshold `t`
/// holds at most `c (1 + n t)` clean rows at once, with `c = ln(1/a) / ln(1 + ln(1/a))` (2.16 at
/// 95%; Katsevich and Ramdas, *Simultaneous high-probability bounds on the false discovery
/// proportion*, Annals of Statistics 2020, for independent valid p-values), and
/// Benjamini-Hochberg's threshold over `n` rows is `t = fdr R / n`. One or two flagged rows of a
/// clean table prove nothing (bound 0); 20 flagged rows at 0.1, at least 14.
pub fn true_discoveries(flagged: usize, fdr: f64) -> usize {
    let l = (1.0 / (1.0 - TRUE_DISCOVERY_LEVEL)).ln();
    let c = l / (1.0 + l).ln();
    let false_max = (c * (1.0 + fdr * flagged as f64)).floor() as usize;
    flagged.saturating_sub(false_max)
}

/// The one-line verdict every summary (text, JSON, HTML) leads with: "no evidence of poisoning"
/// when no row passes the false-discovery control, no detector declares a class attacked and
/// no estimate's lower end is above 0; "no finding" when no class is declared and the rows
/// flagged, if any, could all be clean ([`true_discoveries`] is 0): a count of poisoned rows
/// beyond a detector's null alone (a near-duplicate pair under two labels, a label law's excess)
/// is reported beside the verdict, not as one; otherwise "evidence of poisoning" and what the
/// evidence is.
pub fn headline(report: &Report) -> String {
    let declared = report.declared_classes();
    let flagged = report.n_flagged();
    let low = report.estimate().map_or(0.0, |e| e.low);
    let poisoned = true_discoveries(flagged, report.fdr());
    if flagged == 0 && declared.is_empty() && low <= 0.0 {
        return format!(
            "no evidence of poisoning: no row passes the false-discovery control at {}, no class \
             is declared attacked, no detector counts poisoned rows beyond its null",
            report.fdr()
        );
    }
    if poisoned == 0 && declared.is_empty() {
        let rows = if flagged == 0 {
            format!("no row passes the false-discovery control at {}", report.fdr())
        } else {
            format!(
                "{flagged} rows flagged at a false-discovery rate of {}, each worth a look, but as \
                 many could be clean",
                report.fdr()
            )
        };
        let counted = if low > 0.0 {
            "; a detector counts rows beyond its null (see its estimate)"
        } else {
            ""
        };
        return format!("no finding: {rows}; no class is declared attacked{counted}");
    }
    let mut parts = vec![format!(
        "{flagged} rows flagged at a false-discovery rate of {}, at least {poisoned} of them not \
         clean ({:.0}% confidence)",
        report.fdr(),
        100.0 * TRUE_DISCOVERY_LEVEL
    )];
    if !declared.is_empty() {
        parts.push(format!("classes declared attacked: {}", declared.join(", ")));
    }
    if let Some(e) = report.estimate().filter(|e| e.low > 0.0) {
        parts.push(format!(
            "about {:.0} poisoned rows ({:.0}% interval {:.0} to {:.0})",
            e.rows,
            100.0 * e.level,
            e.low,
            e.high
        ));
    }
    format!("evidence of poisoning: {}", parts.join("; "))
}

/// One line per threat of the report: its name, the rows flagged on its own evidence at the
/// report's false-discovery rate, the detectors that gave it, and the classes they declared
/// attacked, e.g. `label manipulation: 25 rows flagged (knn_label, confident_learning)`.
pub fn threat_line(t: &ThreatFinding) -> String {
    let ids: Vec<&str> = t.detectors.iter().map(|d| d.as_str()).collect();
    let mut line =
        format!("{}: {} rows flagged ({})", t.threat.as_str(), t.flagged.len(), ids.join(", "));
    if !t.declared_classes.is_empty() {
        line.push_str(&format!("; classes declared attacked: {}", t.declared_classes.join(", ")));
    }
    line
}

/// The line on the trusted rows, when the audit was given some: how many, which classes'
/// label nulls were measured on them, and how many of them are flagged, e.g. `150 trusted rows
/// (known clean, audited as every row; knn_label's agreement law measured on them for classes
/// 0, 4, 6): 1 flagged (0.7%), an observed false-positive rate of the audit`. When the trusted
/// rows are a random sample of the clean rows, the share flagged estimates the share of all
/// clean rows flagged, whatever the detectors' nulls assume.
pub fn trusted_line(report: &Report) -> Option<String> {
    let m = report.trusted().len();
    (m > 0).then(|| {
        let min = poisonguard_label::knn_label::MIN_CLASS_TRUSTED_ROWS;
        let counts: Vec<(String, f64)> = report
            .runs()
            .iter()
            .flat_map(|r| &r.class_findings)
            .filter_map(|c| {
                let t = c.statistic(crate::ClassStatistic::TrustedRows)?;
                Some((c.label().to_string(), t))
            })
            .collect();
        let measured: Vec<&str> =
            counts.iter().filter(|(_, t)| *t >= min as f64).map(|(l, _)| l.as_str()).collect();
        let nulls = match (counts.is_empty(), measured.is_empty()) {
            (true, _) => String::new(),
            (false, true) => {
                format!("; no class has the {min} trusted rows a measured label law needs")
            }
            (false, false) => format!(
                "; knn_label's agreement law measured on them for classes {}",
                measured.join(", ")
            ),
        };
        let f = report.trusted_flagged();
        format!(
            "{m} trusted rows (known clean, audited as every row{nulls}): {f} flagged ({:.1}%), \
             an observed false-positive rate of the audit",
            100.0 * f as f64 / m as f64
        )
    })
}

/// The rows a threat ranks first, as the per-row report numbers them (`row`), each with its
/// p-value on that threat's evidence, e.g. `rows first: 17 (p 2.1e-9), 4 (p 3.0e-8)`; `None`
/// when no row has any evidence of it.
pub fn ranked_line(t: &ThreatFinding) -> Option<String> {
    (!t.ranked.is_empty()).then(|| {
        let rows: Vec<String> =
            t.ranked.iter().map(|&(row, p)| format!("{row} (p {p:.1e})")).collect();
        format!("rows first: {}", rows.join(", "))
    })
}

fn label(v: &LabelValue) -> Value {
    match v {
        LabelValue::Int(k) => json!(k),
        LabelValue::Str(s) => json!(s),
    }
}

/// The per-source findings as JSON objects.
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

/// The summary document of an audit of `n_features` columns with `labels`: `verdict`
/// ([`headline`]), `threats`, `rows`, `features`, `classes`, `flagged`, `fdr`, `abstained`,
/// `p_cutoff`, `estimated_poisoned`, and per detector its threshold, flagged rows, class
/// findings, skipped classes, noise matrix and sources; then `failures` and `sources`. The
/// command line's `--summary` file is this document with the input's path (and the detection
/// quality when ground truth is given).
pub fn document(report: &Report, n_features: usize, labels: Option<&Labels>) -> Value {
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
    let threats: Vec<Value> = report
        .threat_findings()
        .iter()
        .map(|t| {
            json!({
                "threat": t.threat.as_str(),
                "detectors": t.detectors.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
                "flagged": t.flagged.len(),
                "declared_classes": t.declared_classes,
                "ranked_rows": t.ranked.iter().map(|&(row, p)| json!({"row": row, "p_value": p})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut doc = Map::new();
    doc.insert("verdict".into(), json!(headline(report)));
    doc.insert("threats".into(), Value::Array(threats));
    doc.insert("rows".into(), json!(report.n_samples()));
    doc.insert("features".into(), json!(n_features));
    if let Some(l) = labels {
        doc.insert("classes".into(), json!(l.n_present_classes()));
    }
    doc.insert("flagged".into(), json!(report.n_flagged()));
    doc.insert("fdr".into(), json!(report.fdr()));
    let abstained: Vec<&str> = report.abstained().iter().map(|id| id.as_str()).collect();
    doc.insert("abstained".into(), json!(abstained));
    doc.insert("p_cutoff".into(), json!(report.p_cutoff()));
    if !report.trusted().is_empty() {
        doc.insert(
            "trusted".into(),
            json!({"rows": report.trusted().len(), "flagged": report.trusted_flagged()}),
        );
    }
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
    Value::Object(doc)
}

#[cfg(test)]
mod tests {
    use super::true_discoveries;

    #[test]
    fn a_lone_flagged_row_proves_nothing_and_twenty_prove_fourteen() {
        assert_eq!(true_discoveries(0, 0.1), 0);
        assert_eq!(true_discoveries(1, 0.1), 0);
        assert_eq!(true_discoveries(2, 0.1), 0);
        assert_eq!(true_discoveries(3, 0.1), 1);
        assert_eq!(true_discoveries(20, 0.1), 14);
        assert!(true_discoveries(1000, 0.1) >= 780);
    }
}
