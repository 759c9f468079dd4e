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

    /// docs/detectors.md's table is the registry's: regenerate it with
    /// `cargo run -p poisonguard-cli -- detectors --markdown` when a declaration changes.
    #[test]
    fn the_detector_table_is_generated_from_the_registry() {
        let docs = include_str!("../../../docs/detectors.md");
        let table = markdown();
        assert!(
            docs.contains(&table),
            "docs/detectors.md's detector table differs from the registry; paste the output of \
             `cargo run -p poisonguard-cli -- detectors --markdown`:\n{table}"
        );
    }

    /// No list of detectors written by hand can omit one: README's table of threats names every
    /// default detector and its "On request" line every other one, and the facade's crate docs
    /// name them all.
    #[test]
    fn every_hand_written_list_names_every_detector() {
        let readme = include_str!("../../../README.md");
        let crate_docs = include_str!("../../../src/lib.rs");
        let on_request: String = readme
            .lines()
            .skip_while(|l| !l.starts_with("On request:"))
            .take_while(|l| !l.trim().is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let threats: Vec<&str> = readme
            .lines()
            .skip_while(|l| !l.starts_with("## Which detector sees which attack"))
            .take_while(|l| !l.starts_with("On request:"))
            .filter(|l| l.starts_with('|'))
            .collect();
        for r in REGISTRY {
            let name = format!("`{}`", r.id());
            if r.is_default() {
                assert!(threats.iter().any(|l| l.contains(&name)), "README's threat table: {name}");
            } else {
                assert!(on_request.contains(&name), "README's \"On request\" line: {name}");
            }
            assert!(crate_docs.contains(&name), "src/lib.rs's crate docs: {name}");
        }
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
