//! Scores pinned to stored values: every registered detector on the shipped `wine` table (a few
//! rows, the sum and the maximum of its scores, its threshold) against `tests/pinned_scores.txt`,
//! with a relative tolerance of 1e-4. Results are identical for any thread count on one machine; across CPUs the matrix products dispatch other
//! SIMD kernels (faer, gemm), which reorders float sums and may move scores in their last bits,
//! far inside the tolerance. A dependency bump or a code change that moves a score beyond it fails
//! here, so the move is seen and, if intended, recorded: rerun with `POISONGUARD_PIN=write` to
//! rewrite the file, and say why in the commit.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::fmt::Write;
use std::path::Path;

use poisonguard::{DetectorOptions, REGISTRY};
use poisonguard_io::{LoadOptions, load};

/// Rows pinned: spread over the table's three classes.
const ROWS: [usize; 5] = [0, 44, 88, 132, 177];
/// Relative tolerance (absolute below 1).
const TOLERANCE: f64 = 1e-4;

fn current() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let opts = LoadOptions { label: Some("label".into()), ..LoadOptions::default() };
    let data = load(root.join("datasets/tabular/wine.parquet"), &opts).unwrap().into_parts().0;
    let mut out = String::new();
    for r in REGISTRY {
        let fitted = r.build(&DetectorOptions::default()).fit_boxed(&data).unwrap();
        let scores = fitted.training().scores();
        let _ = write!(out, "{}", r.id());
        for i in ROWS {
            let _ = write!(out, " {:.9e}", scores[i]);
        }
        let sum: f64 = scores.iter().sum();
        let max = scores.iter().copied().fold(f64::MIN, f64::max);
        let _ = writeln!(
            out,
            " sum {sum:.9e} max {max:.9e} threshold {:.9e}",
            fitted.training().threshold()
        );
    }
    out
}

#[test]
fn scores_match_the_stored_values() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pinned_scores.txt");
    let now = current();
    if std::env::var("POISONGUARD_PIN").as_deref() == Ok("write") {
        std::fs::write(&path, &now).unwrap();
        return;
    }
    let stored = std::fs::read_to_string(&path).unwrap();
    assert_eq!(stored.lines().count(), now.lines().count(), "detectors differ:\n{now}");
    let mut moved = Vec::new();
    for (want, got) in stored.lines().zip(now.lines()) {
        let (w, g): (Vec<&str>, Vec<&str>) =
            (want.split_whitespace().collect(), got.split_whitespace().collect());
        assert_eq!((w[0], w.len()), (g[0], g.len()), "{want} / {got}");
        for (a, b) in w[1..].iter().zip(&g[1..]) {
            match (a.parse::<f64>(), b.parse::<f64>()) {
                (Ok(a), Ok(b)) if (a - b).abs() > TOLERANCE * a.abs().max(1.0) => {
                    moved.push(format!("{}: stored {a}, now {b}", w[0]));
                }
                (Ok(_), Ok(_)) => {}
                _ => assert_eq!(a, b, "{want} / {got}"),
            }
        }
    }
    assert!(moved.is_empty(), "scores moved beyond {TOLERANCE}:\n{}", moved.join("\n"));
}
