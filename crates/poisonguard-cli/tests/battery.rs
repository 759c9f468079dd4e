//! The bad-input battery: every case of `tests/bad_input/cases.txt` (a command, its exit code and
//! a fragment of its error) run against the binary, with the small bad files beside it. All
//! failures are reported together.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::process::Command;

#[test]
fn every_bad_input_gets_its_exit_code_and_one_clear_line() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_input");
    let cases = std::fs::read_to_string(folder.join("cases.txt")).unwrap();
    let mut failures = Vec::new();
    let mut count = 0;
    for (line_no, line) in cases.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        count += 1;
        let parts: Vec<&str> = line.splitn(3, " | ").collect();
        assert_eq!(parts.len(), 3, "cases.txt line {}: {line}", line_no + 1);
        let code: i32 = parts[0].parse().unwrap();
        let fragment = parts[1];
        let tmp = tempfile::tempdir().unwrap();
        let args: Vec<String> = parts[2]
            .split_whitespace()
            .map(|a| {
                a.replace("{d}", folder.to_str().unwrap())
                    .replace("{t}", tmp.path().to_str().unwrap())
            })
            .collect();
        let out = Command::new(env!("CARGO_BIN_EXE_poisonguard")).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err.lines().next().unwrap_or("");
        // clap's usage errors span several lines and point to --help
        let usage = err.contains("For more information, try '--help'");
        let mut problems = Vec::new();
        if out.status.code() != Some(code) {
            problems.push(format!("exit {:?}, expected {code}", out.status.code()));
        }
        let shown = if usage { err.as_ref() } else { first };
        if !first.starts_with("error:") || !shown.contains(fragment) {
            problems.push(format!("error lacks {fragment:?}"));
        }
        if !usage && err.trim_end().lines().count() != 1 {
            problems.push("more than one line".into());
        }
        if err.contains("panicked") {
            problems.push("panicked".into());
        }
        if !problems.is_empty() {
            failures.push(format!(
                "line {}: {}: {}\n    stderr: {}",
                line_no + 1,
                parts[2],
                problems.join(", "),
                err.trim_end().replace('\n', "\n            ")
            ));
        }
    }
    assert!(count >= 40, "the battery has {count} cases");
    assert!(
        failures.is_empty(),
        "{} of {count} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
