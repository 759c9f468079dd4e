//! Property tests: random small tables with extreme finite values, constant and duplicate
//! columns, duplicate rows, one-row classes and n <= k. Every registered detector returns a
//! detection that keeps its contract (finite scores, flags = score > threshold) or a one-line
//! error, and the default audit never panics.
//!
//! Bounded for CI: a fixed seed and `PROPTEST_CASES` cases (default 48, about ten seconds here);
//! for a longer run by hand: `PROPTEST_CASES=2000 cargo test --release --test suite properties::`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::panic::{AssertUnwindSafe, catch_unwind};

use ndarray::Array2;
use poisonguard::{Audit, Dataset, DetectorOptions, LabelValue, Labels, REGISTRY};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

/// One cell: mostly ordinary values, sometimes the edges of f32.
fn value() -> impl Strategy<Value = f32> {
    prop_oneof![
        6 => -10.0f32..10.0,
        1 => Just(3.0e38f32),
        1 => Just(-3.0e38f32),
        1 => Just(1.0e-38f32),
        1 => Just(0.0f32),
        1 => Just(1.0e20f32),
    ]
}

/// A table of 1 to 40 rows and 1 to 6 columns with labels of 1 to 3 classes; some columns made
/// constant or copies of another, some rows copies of the first.
fn table() -> impl Strategy<Value = (Array2<f32>, Vec<i64>)> {
    (1usize..=40, 1usize..=6).prop_flat_map(|(n, d)| {
        (
            proptest::collection::vec(value(), n * d),
            proptest::collection::vec(0i64..3, n),
            proptest::collection::vec(0u8..4, d),
            0usize..=n,
        )
            .prop_map(move |(cells, labels, column_kind, copies)| {
                let mut x = Array2::from_shape_vec((n, d), cells).unwrap();
                for (j, kind) in column_kind.iter().enumerate() {
                    match kind {
                        0 => x.column_mut(j).fill(7.0),
                        1 if j > 0 => {
                            let prev = x.column(j - 1).to_owned();
                            x.column_mut(j).assign(&prev);
                        }
                        _ => {}
                    }
                }
                let first = x.row(0).to_owned();
                for i in 1..copies.min(n) {
                    x.row_mut(i).assign(&first);
                }
                (x, labels)
            })
    })
}

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(48);
    Config {
        cases,
        rng_seed: RngSeed::Fixed(0x5EED),
        failure_persistence: None,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn detectors_score_finitely_or_refuse_in_one_line((x, labels) in table()) {
        let values: Vec<LabelValue> = labels.iter().map(|&l| LabelValue::Int(l)).collect();
        let data = Dataset::new(x).unwrap().with_labels(Labels::from_values(&values)).unwrap();
        for r in REGISTRY {
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                r.build(&DetectorOptions::default()).fit_boxed(&data).map(|f| f.training().clone())
            }));
            match outcome {
                Err(_) => prop_assert!(false, "{} panicked", r.id()),
                Ok(Ok(det)) => {
                    prop_assert_eq!(det.scores().len(), data.n_samples());
                    prop_assert!(det.threshold().is_finite(), "{}", r.id());
                    for (i, &s) in det.scores().iter().enumerate() {
                        prop_assert!(s.is_finite(), "{}: row {} scores {}", r.id(), i, s);
                        prop_assert_eq!(det.is_flagged(i), s > det.threshold());
                    }
                }
                Ok(Err(e)) => {
                    let msg = e.to_string();
                    prop_assert!(!msg.is_empty() && !msg.contains('\n'), "{}: {:?}", r.id(), msg);
                }
            }
        }
        let audit = catch_unwind(AssertUnwindSafe(|| {
            Audit::for_dataset(&data, &DetectorOptions::default()).run(&data).map(|r| r.n_flagged())
        }));
        prop_assert!(audit.is_ok(), "the default audit panicked");
    }
}
