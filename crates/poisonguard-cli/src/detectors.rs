//! `poisonguard detectors`: the registry, rendered for people and scripts.

use std::fmt::Write;

use poisonguard::{REGISTRY, Registered};

fn needs(r: &Registered) -> &'static str {
    if r.info().needs_labels { "labels" } else { "any" }
}

fn default(r: &Registered) -> &'static str {
    if r.is_default() { "default" } else { "on-request" }
}

/// One tab-separated line per detector: id, family, needs (`labels` or `any`), `default` or
/// `on-request`, paper.
pub fn lines() -> String {
    let mut out = String::new();
    for r in REGISTRY {
        let i = r.info();
        // writing to a String cannot fail
        let _ =
            writeln!(out, "{}\t{}\t{}\t{}\t{}", r.id(), i.family, needs(r), default(r), i.paper);
    }
    out
}

/// The README's detector table (Markdown), generated from the registry.
pub fn markdown() -> String {
    let mut out = String::from(
        "| id | family | threat | needs | runs | score (higher = more suspicious) | auto threshold | p-value null | paper |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for r in REGISTRY {
        let i = r.info();
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.id(),
            i.family,
            i.threat.as_str(),
            needs(r),
            default(r),
            i.score,
            i.auto_threshold,
            i.p_value,
            i.paper
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's table is the registry's: regenerate it with
    /// `cargo run -p poisonguard-cli -- detectors --markdown` when a declaration changes.
    #[test]
    fn readme_table_is_generated_from_the_registry() {
        let readme = include_str!("../../../README.md");
        let table = markdown();
        assert!(
            readme.contains(&table),
            "README.md's detector table differs from the registry; paste the output of \
             `cargo run -p poisonguard-cli -- detectors --markdown`:\n{table}"
        );
    }

    #[test]
    fn one_line_per_detector_id_first() {
        let text = lines();
        assert_eq!(text.lines().count(), REGISTRY.len());
        for (line, r) in text.lines().zip(REGISTRY) {
            let fields: Vec<&str> = line.split('\t').collect();
            assert_eq!(fields.len(), 5, "{line}");
            assert_eq!(fields[0], r.id());
            assert!(["outlier", "label", "spectral"].contains(&fields[1]), "{line}");
            assert!(["labels", "any"].contains(&fields[2]), "{line}");
            assert!(["default", "on-request"].contains(&fields[3]), "{line}");
        }
    }
}
