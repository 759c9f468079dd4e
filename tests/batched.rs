//! The batched audit (tables larger than memory): with the whole table as its reference it is
//! the in-memory audit, row for row; with a smaller reference it finds the shipped poison about
//! as well; its batch size never changes a result.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;

use poisonguard::metrics::roc_auc;
use poisonguard::{
    Audit, AuditError, AuditEvent, BatchPlan, Dataset, DetectorOptions, InMemoryRows, Report,
    RowKeys, reference_sample,
};
use poisonguard_io::{LoadOptions, load};

fn shipped(name: &str) -> (Dataset, Vec<bool>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/poisoned").join(name);
    let opts = LoadOptions {
        label: Some("label".into()),
        truth: Some("is_poison".into()),
        ..LoadOptions::default()
    };
    let (data, truth) = load(path, &opts).unwrap().into_parts();
    (data, truth.unwrap())
}

fn batched(data: &Dataset, reference_rows: usize, batch_rows: usize) -> Report {
    let audit = Audit::for_dataset(data, &DetectorOptions::default());
    let plan = BatchPlan { reference_rows, batch_rows, seed: 7 };
    audit.run_batched(&mut InMemoryRows::new(data), &plan, &|_| {}).unwrap()
}

fn same_rows(a: &Report, b: &Report) {
    assert_eq!(a.runs().len(), b.runs().len());
    for (x, y) in a.runs().iter().zip(b.runs()) {
        assert_eq!(x.id, y.id);
        assert_eq!(x.detection.scores(), y.detection.scores(), "{}", x.id);
        assert_eq!(x.detection.p_values(), y.detection.p_values(), "{}", x.id);
        assert_eq!(x.detection.reasons(), y.detection.reasons(), "{}", x.id);
        assert_eq!(format!("{:?}", x.class_findings), format!("{:?}", y.class_findings));
    }
    assert_eq!(a.p_values(), b.p_values());
    assert_eq!(a.flagged(), b.flagged());
}

#[test]
fn with_the_whole_table_as_reference_it_is_the_in_memory_audit() {
    let (data, _) = shipped("digits_badnets.parquet");
    let memory = Audit::for_dataset(&data, &DetectorOptions::default()).run(&data).unwrap();
    let events = std::sync::Mutex::new(Vec::new());
    let audit = Audit::for_dataset(&data, &DetectorOptions::default());
    let plan = BatchPlan { reference_rows: data.n_samples(), batch_rows: 500, seed: 1 };
    let report = audit
        .run_batched(&mut InMemoryRows::new(&data), &plan, &|e| events.lock().unwrap().push(e))
        .unwrap();
    same_rows(&report, &memory);
    let events = events.into_inner().unwrap();
    assert!(events.contains(&AuditEvent::Reading(data.n_samples(), data.n_samples())));
    assert!(events.contains(&AuditEvent::Scoring(data.n_samples(), data.n_samples())));
}

/// A saved model scores a table in batches as it scores it whole, row for row; and the
/// model `fit_batched` returns is the reference's fit.
#[test]
fn a_model_scores_batches_as_it_scores_the_whole_table() {
    let (data, _) = shipped("digits_labelflip.parquet");
    let audit = Audit::for_dataset(&data, &DetectorOptions::default());
    let plan = BatchPlan { reference_rows: data.n_samples() / 2, batch_rows: 300, seed: 3 };
    let (model, report) = audit.fit_batched(&mut InMemoryRows::new(&data), &plan, &|_| {}).unwrap();
    same_rows(&report, &audit.run_batched(&mut InMemoryRows::new(&data), &plan, &|_| {}).unwrap());
    assert_eq!(
        model.n_training_rows(),
        reference_sample(&RowKeys::of(&data), plan.reference_rows, 3).len()
    );
    let whole = model.scan(&data).unwrap();
    for batch_rows in [1000, 97] {
        let batched =
            model.scan_batched(&mut InMemoryRows::new(&data), batch_rows, &|_| {}).unwrap();
        same_rows(&batched, &whole);
    }
    let (other, _) = shipped("wine_labelflip.parquet");
    assert!(matches!(
        model.scan_batched(&mut InMemoryRows::new(&other), 100, &|_| {}),
        Err(AuditError::ModelMismatch(_))
    ));
}

#[test]
fn the_batch_size_changes_nothing() {
    let (data, _) = shipped("wine_labelflip.parquet");
    let m = data.n_samples() / 2;
    same_rows(&batched(&data, m, 17), &batched(&data, m, 1000));
}

#[test]
fn a_smaller_reference_finds_the_shipped_poison_about_as_well() {
    // A reference of 40% of the rows: the suspicion ROC-AUC of every shipped poisoned table
    // stays within 0.02 of the in-memory audit's (the reference has 40% of the poison and of
    // the neighbours to judge by).
    for name in [
        "digits_badnets.parquet",
        "digits_badnets_embeddings.parquet",
        "digits_labelflip.parquet",
        "wine_labelflip.parquet",
        "breast_cancer_labelflip.parquet",
    ] {
        let (data, truth) = shipped(name);
        let memory = Audit::for_dataset(&data, &DetectorOptions::default()).run(&data).unwrap();
        let report = batched(&data, data.n_samples() * 2 / 5, 256);
        let (full, part) = (
            roc_auc(memory.suspicion(), &truth).unwrap(),
            roc_auc(report.suspicion(), &truth).unwrap(),
        );
        println!("{name}: in memory {full:.4}, reference 40% {part:.4}");
        assert!(part >= full - 0.02, "{name}: {part} against {full}");
    }
}

#[test]
fn the_reference_keeps_every_class_share_and_its_seed() {
    let (data, _) = shipped("digits_badnets.parquet");
    let keys = RowKeys::of(&data);
    let rows = reference_sample(&keys, 500, 3);
    assert_eq!(rows, reference_sample(&keys, 500, 3));
    assert_ne!(rows, reference_sample(&keys, 500, 4));
    assert!(rows.windows(2).all(|w| w[0] < w[1]));
    let labels = data.labels().unwrap();
    for (c, class) in labels.rows_by_class().iter().enumerate() {
        let drawn = rows.iter().filter(|&&i| labels.ids()[i].index() == c).count();
        let share = (500 * class.len()).div_ceil(data.n_samples());
        assert_eq!(drawn, share.max(50).min(class.len()), "class {c}");
    }
    assert_eq!(reference_sample(&keys, 10_000, 3).len(), data.n_samples());
}

#[test]
fn a_budget_too_small_is_an_error_and_a_fitting_one_a_plan() {
    assert!(matches!(
        BatchPlan::for_budget(1 << 20, 1_000_000, 512, 0),
        Err(AuditError::Budget(_))
    ));
    let plan = BatchPlan::for_budget(4 << 30, 10_000_000, 128, 0).unwrap();
    assert!(plan.reference_rows >= 100_000 && plan.reference_rows < 10_000_000);
    assert!(plan.batch_rows >= 1000);
    let whole = BatchPlan::for_budget(4 << 30, 1797, 64, 0).unwrap();
    assert_eq!(whole.reference_rows, 1797);
}

/// The batched audit in the steps a distributed engine schedules (`Audit::fit_reference`,
/// `FittedAudit::score_part` on each part with the model and the scores travelling as bytes,
/// `ReferenceFit::assemble` of the parts in any order) gives the single-machine batched report,
/// row for row; parts that do not make up the table are refused.
#[test]
fn distributed_steps_give_the_batched_audit() {
    use poisonguard::{FittedAudit, PartScores};
    let (data, _) = shipped("digits_badnets.parquet");
    let n = data.n_samples();
    let expected = batched(&data, 600, 250);

    let keys = RowKeys::of(&data);
    let audit = Audit::for_dataset(&data, &DetectorOptions::default());
    let reference = reference_sample(&keys, 600, 7);
    let features = data.features().select(ndarray::Axis(0), &reference);
    let fit = audit.fit_reference(&keys, reference, features, &|_| {}).unwrap();
    let mut bytes = Vec::new();
    fit.model().save(&mut bytes).unwrap();
    let worker_model = FittedAudit::load(bytes.as_slice()).unwrap();
    let bounds = [0, 411, 412, 1000, 1500, n];
    let mut parts: Vec<PartScores> = bounds
        .windows(2)
        .map(|w| {
            let rows: Vec<usize> = (w[0]..w[1]).collect();
            let part =
                keys.dataset(data.features().select(ndarray::Axis(0), &rows), &rows).unwrap();
            let scores = worker_model.score_part(&part, w[0]).unwrap();
            PartScores::from_bytes(&scores.to_bytes().unwrap()).unwrap()
        })
        .collect();
    parts.reverse();
    let report = fit.assemble(&keys, parts.clone()).unwrap();
    same_rows(&report, &expected);
    assert_eq!(report.estimate(), expected.estimate());

    parts.pop();
    let err = fit.assemble(&keys, parts.clone()).unwrap_err();
    assert!(matches!(err, AuditError::Parts(_)), "{err}");
    parts.push(parts[0].clone());
    assert!(matches!(fit.assemble(&keys, parts).unwrap_err(), AuditError::Parts(_)));
}
