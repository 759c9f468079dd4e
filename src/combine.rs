//! How the detectors' p-values become one per row ([`combined_p_values`]) and one finding per
//! threat.

use poisonguard_core::{
    Dataset, DetectorFailure, DetectorRun, Family, Report, SourceFinding, Threat, ThreatFinding,
    benjamini_hochberg, harmonic_mean_p,
};

use crate::error::AuditError;
use crate::registry::registered;

/// The report of the detectors that ran on `data`: their p-values combined
/// ([`combined_p_values`]), the Benjamini-Hochberg flags at `fdr`, the per-source test of the
/// flagged rows.
pub(crate) fn combine(
    runs: Vec<DetectorRun>,
    failures: Vec<DetectorFailure>,
    data: &Dataset,
    fdr: f64,
) -> Result<Report, AuditError> {
    combine_rows(runs, failures, data.n_samples(), data.sources(), fdr)
}

/// [`combine`] for `n` rows with these sources.
pub(crate) fn combine_rows(
    runs: Vec<DetectorRun>,
    mut failures: Vec<DetectorFailure>,
    n: usize,
    sources: Option<&[String]>,
    fdr: f64,
) -> Result<Report, AuditError> {
    if runs.is_empty() {
        return Err(AuditError::AllFailed(failures.swap_remove(0)));
    }
    // each detector's enrichment once, for the combination and for each threat's
    let enriched = with_enrichment(&runs);
    let p_values = combined_p_values_of(&enriched, n);
    let threats = threat_findings(&enriched, n, fdr);
    let report = Report::new(runs, failures, p_values, fdr).with_threat_findings(threats);
    let flagged = report.flagged();
    Ok(report.with_source_findings(source_findings_of(sources, &flagged)))
}

/// The threat a run's evidence speaks to: its detector's declared [`Threat`], or, for a
/// detector outside the registry, its family's (spectral: backdoor, label: label manipulation,
/// outlier: injected samples).
fn threat_of(run: &DetectorRun) -> Threat {
    registered(run.id.as_str()).map_or(
        match run.family {
            Family::Spectral => Threat::Backdoor,
            Family::Label => Threat::LabelManipulation,
            Family::Outlier => Threat::InjectedSamples,
        },
        |r| r.info().threat,
    )
}

/// The report by threat: for every threat some run that did not abstain speaks to, those
/// runs' p-values combined as the report's are ([`combined_p_values`]), the rows
/// Benjamini-Hochberg selects on them at `fdr` and the rows they rank first, with the classes
/// they declared attacked. Each threat's flags control the false-discovery rate among its own
/// rows: a reader who acts on one threat (relabels, removes copies) has that guarantee for it.
fn threat_findings(runs: &[(&DetectorRun, f64)], n: usize, fdr: f64) -> Vec<ThreatFinding> {
    Threat::ALL
        .iter()
        .filter_map(|&threat| {
            let own: Vec<(&DetectorRun, f64)> = runs
                .iter()
                .filter(|(r, _)| !r.abstains() && threat_of(r) == threat)
                .copied()
                .collect();
            if own.is_empty() {
                return None;
            }
            let p = combined_p_values_of(&own, n);
            let flags = benjamini_hochberg(&p, fdr);
            let order =
                |a: &(usize, f64), b: &(usize, f64)| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0));
            let mut ranked: Vec<(usize, f64)> =
                p.iter().copied().enumerate().filter(|&(_, v)| v < 1.0).collect();
            let top = poisonguard_core::THREAT_RANKED_ROWS;
            if ranked.len() > top {
                ranked.select_nth_unstable_by(top, order);
                ranked.truncate(top);
            }
            ranked.sort_by(order);
            Some(ThreatFinding {
                threat,
                detectors: own.iter().map(|(r, _)| r.id).collect(),
                flagged: (0..n).filter(|&i| flags[i]).collect(),
                declared_classes: poisonguard_core::declared_by(own.iter().map(|(r, _)| *r)),
                ranked,
            })
        })
        .collect()
}

/// Combines the detectors' p-values into one p-value per row: their weighted harmonic mean
/// ([`harmonic_mean_p`], Wilson 2019). Every label-consistency, spectral or other detector has
/// a base weight of 1; the outlier detectors share one base weight of 1 among them. Each base
/// weight is multiplied by the detector's *enrichment* (at least 1): how many times more rows
/// have a small p-value than a clean table would give, a lower confidence bound of
/// `#{p <= t} / (n t)` at the level `t` where it is largest. On a clean table
/// every enrichment is about 1 and
/// the weights are the base weights; on a poisoned one the detectors that see the poison weigh
/// more, so the noise of the others (natural outliers, a sub-population along a top direction)
/// does not drown them. The weights are read off the detectors' p-values as a whole, not off
/// the row being combined.
///
/// The harmonic mean lets one strong, specific piece of evidence through (with `m` weights of
/// 1 the combined p is at most `m` times a detector's own) while several moderate p-values that
/// agree combine to a smaller one, and a detector with no evidence on a row (p = 1: a class its
/// gate did not declare attacked, a score below its median) adds nothing. The outlier
/// detectors share one weight because an outlier score is not specific to poisoning: every clean
/// table has natural outliers, and several outlier detectors reading the same rows would
/// otherwise outweigh one label or spectral test.
///
/// A detector whose every p-value is 1 abstains (weight 0): its own test found nothing
/// anywhere (activation clustering declared no class attacked, spectre had fewer than four
/// classes to judge and declared none, duplicates found no near-duplicate), and counting it
/// would only dilute the others.
pub fn combined_p_values(runs: &[DetectorRun], n_samples: usize) -> Vec<f64> {
    combined_p_values_of(&with_enrichment(runs), n_samples)
}

/// Each run with its [`enrichment`].
fn with_enrichment(runs: &[DetectorRun]) -> Vec<(&DetectorRun, f64)> {
    runs.iter().map(|r| (r, enrichment(r.detection.p_values()))).collect()
}

/// [`combined_p_values`] of borrowed runs, each with its enrichment.
fn combined_p_values_of(runs: &[(&DetectorRun, f64)], n_samples: usize) -> Vec<f64> {
    let n_outlier =
        runs.iter().filter(|(r, _)| r.family == Family::Outlier && !r.abstains()).count().max(1);
    let weights: Vec<f64> = runs
        .iter()
        .map(|(r, enrichment)| {
            let base = match (r.abstains(), r.family) {
                (true, _) => 0.0,
                (false, Family::Outlier) => 1.0 / n_outlier as f64,
                (false, _) => 1.0,
            };
            base * enrichment
        })
        .collect();
    let total: f64 = weights.iter().sum();
    if total == 0.0 {
        return vec![1.0; n_samples];
    }
    let weights: Vec<f64> = weights.iter().map(|w| w / total).collect();
    let mut row = vec![0.0; runs.len()];
    (0..n_samples)
        .map(|i| {
            for (p, (r, _)) in row.iter_mut().zip(runs) {
                *p = r.detection.p_values()[i];
            }
            harmonic_mean_p(&row, &weights)
        })
        .collect()
}

/// How many times more rows have a p-value at or below `t` than a clean table would give, at
/// least 1, read at the level where it is largest and counted conservatively: for each
/// [`ENRICHMENT_LEVELS`] `t` at which at least one clean row is expected (`n t >= 1`), the lower
/// 99% confidence bound of the count `#{p <= t}` (Garwood's Poisson bound,
/// `chi2_{0.01}(2 count) / 2`) over the `n t` rows a clean table gives; the largest, at
/// least 1. A clean detector's bound stays below its expected count at every level (1); one whose
/// evidence is a group of rows at p ~ 1e-3 weighs by how far that group exceeds the null there,
/// which a single level of 0.01 diluted with the clean rows between 1e-3 and 0.01: 53 blended
/// rows at p ~ 6e-4 in 3,000 real CIFAR-10 embeddings weighed 2.4 there and were not flagged
/// (benches/RESULTS.md).
fn enrichment(p: &[f64]) -> f64 {
    use statrs::distribution::{ChiSquared, ContinuousCDF};
    let n = p.len() as f64;
    let mut sorted = p.to_vec();
    sorted.sort_by(f64::total_cmp);
    ENRICHMENT_LEVELS
        .iter()
        .filter(|&&t| n * t >= 1.0)
        .map(|&t| {
            let count = sorted.partition_point(|&v| v <= t) as f64;
            let low = if count > 0.0 {
                ChiSquared::new(2.0 * count).map_or(0.0, |c| c.inverse_cdf(0.01) / 2.0)
            } else {
                0.0
            };
            low / (n * t)
        })
        .fold(1.0, f64::max)
}

/// The p-value levels [`enrichment`] reads, half a decade apart.
const ENRICHMENT_LEVELS: [f64; 7] = [0.1, 0.03, 0.01, 3e-3, 1e-3, 3e-4, 1e-4];

/// `flags` tested per source of `data` (empty without a source column).
pub(crate) fn source_findings(data: &Dataset, flags: &[bool]) -> Vec<SourceFinding> {
    source_findings_of(data.sources(), flags)
}

/// The per-source test of `flags` when there are sources.
pub(crate) fn source_findings_of(sources: Option<&[String]>, flags: &[bool]) -> Vec<SourceFinding> {
    sources
        .and_then(|s| poisonguard_label::sources::test_sources(flags, s).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::*;
    #[test]
    fn one_strong_detector_is_not_drowned_and_outliers_share_a_weight() {
        let run = |id: &'static str, p: Vec<f64>| {
            let threshold = ThresholdRule::Fixed(0.5).fit(&[0.0]).unwrap();
            let detection = Detection::with_threshold(vec![0.0; p.len()], threshold, |_, s| {
                Reason::Score { score: s, threshold: 0.5 }
            })
            .unwrap()
            .with_p_values(p);
            DetectorRun::new(DetectorId::new(id), registered(id).unwrap().info().family, detection)
        };
        // row 0: spectre alone is sure; row 1: both outlier detectors; row 2: nothing
        let runs = vec![
            run("spectre", vec![1e-12, 1.0, 1.0]),
            run("knn_label", vec![1.0, 1.0, 1.0]),
            run("isolation_forest", vec![1.0, 1e-12, 1.0]),
            run("ecod", vec![1.0, 1e-12, 1.0]),
        ];
        let p = combined_p_values(&runs, 3);
        // three voters of weight 1/3: spectre's 1e-12 becomes about 3e-12
        assert!(p[0] > 1e-12 && p[0] < 3.1e-12, "{p:?}");
        // the two outlier detectors together weigh as much as spectre alone
        assert!((p[1] / p[0] - 1.0).abs() < 1e-9, "{p:?}");
        assert_eq!(p[2], 1.0);
    }

    #[test]
    fn enrichment_weighs_the_detector_that_sees_something() {
        // 1000 rows: a clean detector's p-values are uniform, one that sees 100 poisoned rows
        // gives them p = 1e-4
        let uniform: Vec<f64> = (0..1000).map(|i| (i as f64 + 0.5) / 1000.0).collect();
        assert!((enrichment(&uniform) - 1.0).abs() < 1e-9);
        let mut seeing = uniform.clone();
        for v in seeing.iter_mut().take(100) {
            *v = 1e-4;
        }
        // largest at t = 1e-3 (1e-4 and 3e-4 expect fewer than one clean row: left out): 100
        // rows against 1 expected, the count's lower 99% bound 78.2
        let e = enrichment(&seeing);
        assert!((e - 78.22).abs() < 0.05, "{e}");
        // a clean detector with a few chance rows at the smallest levels stays at 1
        let mut lucky = uniform.clone();
        lucky[0] = 1e-5;
        lucky[1] = 1e-5;
        assert_eq!(enrichment(&lucky), 1.0);
        // conservative p-values (mostly 1) weigh as a clean detector, never less
        assert_eq!(enrichment(&[1.0; 50]), 1.0);
    }
}
