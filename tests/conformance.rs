//! One conformance suite over every registered detector (`poisonguard::REGISTRY`), as
//! regex-test runs one corpus over every engine: the contract of a detection, determinism for
//! any thread count, row-permutation equivariance, scoring the training rows again, and
//! degenerate input. A detector added to the registry is tested here without a new line; so is
//! the toy detector of `toy.rs`, which is added by its registry line alone.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::panic::{AssertUnwindSafe, catch_unwind};

use ndarray::{Array2, Axis};
use poisonguard::metrics::mid_ranks;
use poisonguard::{
    AutoThreshold, Dataset, Detection, DetectorOptions, FittedDetector, LabelValue, Labels,
    REGISTRY, Registered, TrainingScores,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn normal(rng: &mut SmallRng) -> f32 {
    (0..12).map(|_| rng.random::<f32>()).sum::<f32>() - 6.0
}

/// Three Gaussian classes of 100 rows in 6 dimensions (class means 3 sd apart, correlated
/// noise), the last 10 rows of class 0 carrying a trigger (two features set to 4) and the last 10
/// rows of class 2 relabelled 1: something for every family to see.
fn corpus(seed: u64) -> (Array2<f32>, Vec<LabelValue>) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let (per, d) = (100, 6);
    let mut x = Array2::zeros((3 * per, d));
    let mut y = Vec::with_capacity(3 * per);
    for i in 0..3 * per {
        let c = i / per;
        let z: Vec<f32> = (0..d).map(|_| normal(&mut rng)).collect();
        for j in 0..d {
            x[[i, j]] = z[j] + 0.5 * z[(j + 1) % d] + if j % 3 == c { 3.0 } else { 0.0 };
        }
        let within = i % per;
        if c == 0 && within >= per - 10 {
            x[[i, 0]] = 4.0;
            x[[i, 1]] = 4.0;
        }
        let label = if c == 2 && within >= per - 10 { 1 } else { c as i64 };
        y.push(LabelValue::Int(label));
    }
    (x, y)
}

/// Every registered detector, and the toy of `toy.rs`.
fn detectors() -> impl Iterator<Item = &'static Registered> {
    REGISTRY.iter().chain([&crate::toy::TOY])
}

fn dataset(x: Array2<f32>, y: &[LabelValue]) -> Dataset {
    Dataset::new(x).unwrap().with_labels(Labels::from_values(y)).unwrap()
}

fn fit(r: &Registered, data: &Dataset) -> Box<dyn FittedDetector> {
    r.build(&DetectorOptions::default())
        .fit_boxed(data)
        .unwrap_or_else(|e| panic!("{}: {e}", r.id()))
}

fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(f)
}

fn check_contract(id: &str, det: &Detection, n: usize) {
    assert_eq!(det.scores().len(), n, "{id}");
    assert!(det.threshold().is_finite(), "{id}: threshold {}", det.threshold());
    for (i, &s) in det.scores().iter().enumerate() {
        assert!(s.is_finite(), "{id}: row {i} scores {s}");
        assert_eq!(det.is_flagged(i), s > det.threshold(), "{id}: row {i}");
        assert_eq!(det.reason(i).is_some(), det.is_flagged(i), "{id}: row {i}");
    }
    // one p-value per row, in [0, 1], never NaN
    assert_eq!(det.p_values().len(), n, "{id}");
    for (i, &p) in det.p_values().iter().enumerate() {
        assert!((0.0..=1.0).contains(&p), "{id}: row {i} p-value {p}");
    }
}

/// Spearman's rank correlation (average ranks for ties).
fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let (ra, rb) = (mid_ranks(a), mid_ranks(b));
    let n = a.len() as f64;
    let mean = (n + 1.0) / 2.0;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        sab += (x - mean) * (y - mean);
        saa += (x - mean) * (x - mean);
        sbb += (y - mean) * (y - mean);
    }
    if saa == 0.0 || sbb == 0.0 {
        return f64::from(u8::from(ra == rb));
    }
    sab / (saa * sbb).sqrt()
}

#[test]
fn every_detector_keeps_the_detection_contract() {
    let (x, y) = corpus(11);
    let data = dataset(x, &y);
    for r in detectors() {
        // a registry line builds the detector it declares
        assert_eq!(r.build(&DetectorOptions::default()).info(), *r.info(), "{}", r.id());
        let fitted = fit(r, &data);
        assert_eq!(fitted.id().as_str(), r.id());
        check_contract(r.id(), fitted.training(), data.n_samples());
        // a declared fixed cut-off is the threshold the default fit applies
        if let AutoThreshold::Fixed(cut) = r.info().auto {
            assert_eq!(fitted.training().threshold(), cut, "{}", r.id());
        }
    }
}

#[test]
fn every_detector_gives_the_same_output_for_one_and_two_threads() {
    let (x, y) = corpus(12);
    let data = dataset(x, &y);
    for r in detectors() {
        let one = in_pool(1, || fit(r, &data));
        let two = in_pool(2, || fit(r, &data));
        // compared as text: a statistic may be NaN (a verdict z with too few classes)
        let text = |f: &dyn FittedDetector| {
            format!("{:?} {:?} {:?}", f.training(), f.class_findings(), f.poison_estimate())
        };
        assert_eq!(text(one.as_ref()), text(two.as_ref()), "{}", r.id());
    }
}

/// Permuting the rows permutes the scores. For a detector that declares itself randomized
/// (random trees, subsamples, k-means starts, folds), the seeded draws pick other rows after a
/// permutation, so the scores agree in distribution, not row for row: there the test asks for
/// a rank correlation of at least 0.8 and the same threshold within 10%.
#[test]
fn permuting_the_rows_permutes_the_scores() {
    let (x, y) = corpus(13);
    let n = x.nrows();
    let data = dataset(x.clone(), &y);
    // a fixed permutation: stride 7 modulo n (n = 300 and 7 are coprime)
    let perm: Vec<usize> = (0..n).map(|i| (i * 7) % n).collect();
    let xp = x.select(Axis(0), &perm);
    let yp: Vec<LabelValue> = perm.iter().map(|&i| y[i].clone()).collect();
    let permuted = dataset(xp, &yp);
    for r in detectors() {
        let a = fit(r, &data);
        let b = fit(r, &permuted);
        let expected: Vec<f64> = perm.iter().map(|&i| a.training().scores()[i]).collect();
        let got = b.training().scores();
        if r.info().randomized {
            let rho = spearman(&expected, got);
            assert!(rho >= 0.8, "{}: rank correlation {rho:.3} after a permutation", r.id());
            let (ta, tb) = (a.training().threshold(), b.training().threshold());
            assert!(
                (ta - tb).abs() <= 0.1 * ta.abs().max(tb.abs()).max(1e-9),
                "{}: threshold {ta} vs {tb}",
                r.id()
            );
        } else {
            for (i, (e, g)) in expected.iter().zip(got).enumerate() {
                assert!(
                    (e - g).abs() <= 1e-5 * e.abs().max(1.0),
                    "{}: permuted row {i} scores {g}, was {e}",
                    r.id()
                );
            }
        }
    }
}

/// `detect` on the training rows scores them as the fit did, for the detectors whose training
/// scores are in-sample. A leave-one-out detector scores a training row without itself and a new
/// row against every training row (a training row met again has one more neighbour, at distance
/// 0); an out-of-fold detector scores a training row by models that did not see it and a new row
/// by the mean of the fold models. For those the test asks that the order of the rows is kept
/// (rank correlation at least 0.9).
#[test]
fn scoring_the_training_rows_again_gives_the_training_scores() {
    let (x, y) = corpus(14);
    let data = dataset(x, &y);
    for r in detectors() {
        let fitted = fit(r, &data);
        let again = fitted.detect(&data).unwrap_or_else(|e| panic!("{}: {e}", r.id()));
        check_contract(r.id(), &again, data.n_samples());
        assert_eq!(again.threshold(), fitted.training().threshold(), "{}", r.id());
        let (train, new) = (fitted.training().scores(), again.scores());
        if r.info().training_scores == TrainingScores::InSample {
            for (i, (t, s)) in train.iter().zip(new).enumerate() {
                assert!(
                    (t - s).abs() <= 1e-6 * t.abs().max(1.0),
                    "{}: row {i} scores {s} again, {t} in training",
                    r.id()
                );
            }
        } else {
            let rho = spearman(train, new);
            assert!(rho >= 0.9, "{}: rank correlation {rho:.3}", r.id());
        }
    }
}

/// A fitted detector saved and read back (through the registry) is the same detector: the same
/// training detection and findings, and bit-identical scores and p-values on new rows; for the
/// outlier detectors fitted globally and per class.
#[test]
fn a_saved_detector_reads_back_and_scores_as_the_fitted_one() {
    let (x, y) = corpus(21);
    let data = dataset(x, &y);
    let (x_new, y_new) = corpus(22);
    let new = dataset(x_new, &y_new);
    for per_class in [false, true] {
        let opts = DetectorOptions { per_class, ..DetectorOptions::default() };
        for r in detectors() {
            let fitted = r.build(&opts).fit_boxed(&data).unwrap();
            let state = fitted.save_state().unwrap_or_else(|e| panic!("{}: {e}", r.id()));
            let back = r.load(&state).unwrap_or_else(|e| panic!("{}: {e}", r.id()));
            assert_eq!(back.id(), fitted.id());
            assert_eq!(back.training(), fitted.training(), "{}", r.id());
            // Debug, not ==: a statistic a class cannot have is NaN, and NaN != NaN
            let shown = |f: &dyn FittedDetector| {
                format!("{:?} {:?}", f.class_findings(), f.poison_estimate())
            };
            assert_eq!(shown(back.as_ref()), shown(fitted.as_ref()), "{}", r.id());
            let (a, b) = (fitted.detect(&new).unwrap(), back.detect(&new).unwrap());
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(a.scores()), bits(b.scores()), "{} per_class={per_class}", r.id());
            assert_eq!(bits(a.p_values()), bits(b.p_values()), "{}", r.id());
            assert_eq!(a, b, "{}", r.id());
            // another detector's state is an error, not a wrong detector
            let other =
                REGISTRY.iter().find(|o| o.id() != r.id() && o.info().family != r.info().family);
            if let Some(o) = other {
                assert!(o.load(&state).is_err(), "{} read as {}", r.id(), o.id());
            }
        }
    }
}

/// Degenerate tables: every detector returns an error or a detection that keeps the contract;
/// none panics.
#[test]
fn degenerate_input_gives_an_error_or_finite_scores_never_a_panic() {
    let (x, y) = corpus(15);
    let mut constant_column = x.clone();
    constant_column.column_mut(2).fill(7.0);
    let one_feature = x.select(Axis(1), &[0]);
    // class 3 has one row
    let mut one_row_class = y.clone();
    one_row_class[0] = LabelValue::Int(3);
    let tiny = x.select(Axis(0), &[0, 1, 100, 101, 200, 201]);
    let tiny_y: Vec<LabelValue> = [0, 0, 1, 1, 2, 2].map(LabelValue::Int).to_vec();
    let mut duplicated = x.clone();
    for i in 0..50 {
        duplicated.row_mut(i).assign(&x.row(0));
    }
    let all_equal = Array2::from_elem((40, 3), 1.5f32);
    let all_equal_y: Vec<LabelValue> = (0..40).map(|i| LabelValue::Int(i % 2)).collect();
    let cases: Vec<(&str, Dataset)> = vec![
        ("constant column", dataset(constant_column, &y)),
        ("one feature", dataset(one_feature, &y)),
        ("a class of one row", dataset(x.clone(), &one_row_class)),
        ("six rows (n <= k)", dataset(tiny, &tiny_y)),
        ("50 identical rows", dataset(duplicated, &y)),
        ("every row equal", dataset(all_equal, &all_equal_y)),
    ];
    for (what, data) in &cases {
        for r in detectors() {
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                r.build(&DetectorOptions::default()).fit_boxed(data).map(|f| f.training().clone())
            }));
            match outcome {
                Err(_) => panic!("{} panics on {what}", r.id()),
                Ok(Ok(det)) => check_contract(r.id(), &det, data.n_samples()),
                Ok(Err(e)) => {
                    let msg = e.to_string();
                    assert!(!msg.is_empty() && !msg.contains('\n'), "{}: {what}: {msg:?}", r.id());
                }
            }
        }
    }
}
