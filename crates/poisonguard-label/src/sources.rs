//! Poisoned sources: does one data source hold more flagged rows than the dataset's rate?
//!
//! For each source with `m` rows of which `f` are flagged, among `n` rows with `F` flagged in
//! all, the p-value is the hypergeometric upper tail `P(X >= f)`, `X ~ Hypergeometric(n, F, m)`
//! (drawing the source's rows without replacement from the dataset), adjusted for the number of
//! sources with Holm's step-down method, which controls the family-wise error rate.
//!
//! ```
//! use poisonguard_label::sources::test_sources;
//! // ten sources of 50 rows; source "s3" has 20 flagged rows, the others 1 each
//! let sources: Vec<String> = (0..500).map(|i| format!("s{}", i / 50)).collect();
//! let flagged: Vec<bool> = (0..500).map(|i| if i / 50 == 3 { i % 50 < 20 } else { i % 50 == 0 }).collect();
//! let findings = test_sources(&flagged, &sources).unwrap();
//! assert_eq!(findings[0].source, "s3");
//! assert!(findings[0].p_adjusted < 1e-3);
//! assert!(findings[1..].iter().all(|f| f.p_adjusted > 0.01));
//! ```
//!
//! # References
//! S. Holm. *A simple sequentially rejective multiple test procedure.* Scandinavian Journal of
//! Statistics 6, 1979.

use std::collections::BTreeMap;

use poisonguard_core::{DataError, SourceFinding};
use statrs::distribution::{DiscreteCDF, Hypergeometric};

/// Tests every source; findings ascending by adjusted p-value (then by source).
///
/// # Errors
/// [`DataError::LengthMismatch`] when `flagged` and `sources` differ in length,
/// [`DataError::NoRows`] when they are empty.
pub fn test_sources(flagged: &[bool], sources: &[String]) -> Result<Vec<SourceFinding>, DataError> {
    if flagged.len() != sources.len() {
        return Err(DataError::LengthMismatch {
            what: "sources",
            expected: flagged.len(),
            actual: sources.len(),
        });
    }
    if flagged.is_empty() {
        return Err(DataError::NoRows);
    }
    let n = flagged.len() as u64;
    let total = flagged.iter().filter(|&&f| f).count() as u64;
    let mut per: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for (s, &f) in sources.iter().zip(flagged) {
        let e = per.entry(s.as_str()).or_default();
        e.0 += 1;
        e.1 += u64::from(f);
    }
    let mut out: Vec<SourceFinding> = per
        .into_iter()
        .map(|(source, (m, f))| {
            let p = if f == 0 {
                1.0
            } else {
                // n >= total and n >= m by construction, so the distribution exists
                Hypergeometric::new(n, total, m).map_or(1.0, |h| h.sf(f - 1))
            };
            SourceFinding {
                source: source.to_string(),
                n_samples: m as usize,
                n_flagged: f as usize,
                expected: m as f64 * total as f64 / n as f64,
                p_value: p.clamp(0.0, 1.0),
                p_adjusted: 1.0,
            }
        })
        .collect();
    out.sort_by(|a, b| a.p_value.total_cmp(&b.p_value).then_with(|| a.source.cmp(&b.source)));
    let m = out.len() as f64;
    let mut running = 0.0f64;
    for (rank, f) in out.iter_mut().enumerate() {
        running = running.max(((m - rank as f64) * f.p_value).min(1.0));
        f.p_adjusted = running;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_matches_a_hand_computation() {
        // 4 rows, 2 flagged, source "a" has 2 rows both flagged: P = 1 / C(4, 2) = 1/6
        let sources: Vec<String> = ["a", "a", "b", "b"].iter().map(|s| s.to_string()).collect();
        let f = test_sources(&[true, true, false, false], &sources).unwrap();
        assert_eq!(f[0].source, "a");
        assert!((f[0].p_value - 1.0 / 6.0).abs() < 1e-12);
        assert!((f[0].p_adjusted - 2.0 / 6.0).abs() < 1e-12);
        assert_eq!(f[1].p_value, 1.0);
        assert!((f[0].expected - 1.0).abs() < 1e-12);
    }

    #[test]
    fn mismatched_lengths_are_an_error() {
        assert!(matches!(
            test_sources(&[true], &[]),
            Err(DataError::LengthMismatch { what: "sources", .. })
        ));
        assert_eq!(test_sources(&[], &[]).unwrap_err(), DataError::NoRows);
    }
}
