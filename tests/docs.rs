//! README's numbers come from the summary table at the top of benches/RESULTS.md, where each has
//! its command, commit and date.

use std::path::Path;

/// The measured numbers of a prose text: decimals with two or more places, percentages and
/// ratios (`5.3x`), each as written; versions (after "Rust" or "Python") are not measurements.
fn measured_numbers(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut previous = "";
    for word in text.split(|c: char| c.is_whitespace() || "()[];:*`/".contains(c)) {
        for token in word.split('-') {
            let token = token.trim_end_matches([',', '.']);
            let digits = token.trim_end_matches(['%', 'x']);
            let decimals = digits.split_once('.').map_or(0, |(_, d)| d.len());
            let number = !digits.is_empty()
                && digits.chars().all(|c| c.is_ascii_digit() || c == '.' || c == ',')
                && digits.starts_with(|c: char| c.is_ascii_digit());
            let measured = decimals >= 2 || token.ends_with('%') || token.ends_with('x');
            if number && measured && !matches!(previous, "Rust" | "Python") {
                found.push(token.to_string());
            }
        }
        if !word.is_empty() {
            previous = word;
        }
    }
    found
}

#[test]
fn every_number_in_the_readme_is_in_the_results_summary() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let results = std::fs::read_to_string(root.join("benches/RESULTS.md")).unwrap();
    let start = results.find("## Summary").expect("RESULTS.md has a summary table");
    let end = results[start..].find("\n## Current").map_or(results.len(), |e| start + e);
    let summary = &results[start..end];
    // prose only: the fenced blocks are sample outputs (checked against the CLI by a test)
    let prose: String = readme.split("```").step_by(2).collect::<Vec<_>>().join("\n");
    let numbers = measured_numbers(&prose);
    assert!(numbers.len() >= 10, "README's measured numbers: {numbers:?}");
    let missing: Vec<&String> = numbers.iter().filter(|n| !summary.contains(n.as_str())).collect();
    assert!(missing.is_empty(), "README numbers not in RESULTS' summary table: {missing:?}");
}

#[test]
fn measured_numbers_are_read_as_written() {
    let text = "Rust 1.95, 5.3x faster (S6); recall 0.870 and 1.27% at 0.9405-0.9756, 3,000 rows.";
    assert_eq!(measured_numbers(text), ["5.3x", "0.870", "1.27%", "0.9405", "0.9756"]);
}
