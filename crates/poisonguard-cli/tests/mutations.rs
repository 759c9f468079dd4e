//! Random byte mutations and truncations of a small valid CSV, Parquet and Arrow IPC file (file
//! and stream format): the binary exits
//! 0 (the mutation left a readable table) or 2 with one line `error: ...`, never panics.
//!
//! Bounded for CI: a fixed seed and `PROPTEST_CASES` cases per format (default 40); by hand,
//! e.g. `PROPTEST_CASES=1000 cargo test -p poisonguard-cli --test mutations`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::process::Command;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(40);
    Config {
        cases,
        rng_seed: RngSeed::Fixed(0xB17E),
        failure_persistence: None,
        ..Config::default()
    }
}

/// A mutation: keep the first `keep` (share of the file), then overwrite up to 8 bytes.
fn mutation() -> impl Strategy<Value = (f64, Vec<(f64, u8)>)> {
    (0.0f64..=1.0, proptest::collection::vec((0.0f64..1.0, any::<u8>()), 0..8))
}

fn check(
    name: &str,
    roles: &[&str],
    (keep, flips): (f64, Vec<(f64, u8)>),
) -> Result<(), TestCaseError> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_input");
    let mut bytes = std::fs::read(folder.join(name)).unwrap();
    bytes.truncate(((bytes.len() as f64) * keep).ceil() as usize);
    let len = bytes.len();
    for (at, b) in flips {
        if len > 0 {
            bytes[((len as f64 * at) as usize).min(len - 1)] = b;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, &bytes).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_poisonguard"))
        .args(["scan", path.to_str().unwrap(), "--detectors", "ecod,knn_label"])
        .args(roles)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    prop_assert!(!err.contains("panicked"), "{}", err);
    match out.status.code() {
        Some(0) => {}
        Some(2) => {
            prop_assert!(err.starts_with("error: "), "{}", err);
            prop_assert_eq!(err.trim_end().lines().count(), 1, "{}", err);
        }
        other => prop_assert!(false, "exit {:?}: {}", other, err),
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn mutated_csv_exits_cleanly(m in mutation()) {
        check("good.csv", &["--label", "label", "--id", "id", "--source", "source", "--truth", "truth"], m)?;
    }

    #[test]
    fn mutated_parquet_exits_cleanly(m in mutation()) {
        check("good.parquet", &["--label", "label"], m)?;
    }

    #[test]
    fn mutated_arrow_exits_cleanly(m in mutation()) {
        check("good.arrow", &["--label", "label"], m)?;
    }

    #[test]
    fn mutated_arrow_stream_exits_cleanly(m in mutation()) {
        check("good_stream.arrow", &["--label", "label"], m)?;
    }
}
