//! Detection-quality metrics against known poison: ROC-AUC, average precision, precision and
//! recall at k. Scores follow the crate convention: higher = more suspicious; `truth[i]` is true
//! for a poisoned row.

use crate::error::DataError;
use crate::threshold::check_finite;

fn check(scores: &[f64], truth: &[bool]) -> Result<(usize, usize), DataError> {
    if scores.len() != truth.len() {
        return Err(DataError::LengthMismatch {
            what: "ground truth",
            expected: scores.len(),
            actual: truth.len(),
        });
    }
    check_finite(scores)?;
    let positives = truth.iter().filter(|&&t| t).count();
    let negatives = truth.len() - positives;
    if positives == 0 || negatives == 0 {
        return Err(DataError::DegenerateTruth { positives, negatives });
    }
    Ok((positives, negatives))
}

/// Row indices from most to least suspicious; equal scores keep ascending row order, so the
/// ranking is deterministic.
pub fn ranking(scores: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order
}

/// The 1-based rank of every score in ascending order, tied scores sharing the mean of their
/// ranks (mid-ranks, as `scipy.stats.rankdata`).
///
/// ```
/// use poisonguard_core::metrics::mid_ranks;
/// assert_eq!(mid_ranks(&[3.0, 1.0, 3.0, 2.0]), vec![3.5, 1.0, 3.5, 2.0]);
/// ```
pub fn mid_ranks(scores: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut ranks = vec![0.0; scores.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start;
        while end + 1 < order.len() && scores[order[end + 1]] == scores[order[start]] {
            end += 1;
        }
        let mid_rank = (start + end) as f64 / 2.0 + 1.0;
        for &i in &order[start..=end] {
            ranks[i] = mid_rank;
        }
        start = end + 1;
    }
    ranks
}

/// Area under the ROC curve: the probability that a random poisoned row scores above a random
/// clean one, ties counting one half (Mann-Whitney U with mid-ranks).
///
/// # Errors
/// Length mismatch, non-finite scores, or truth without both classes.
///
/// # Example
/// ```
/// use poisonguard_core::metrics::roc_auc;
/// let auc = roc_auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true])?;
/// assert!((auc - 0.75).abs() < 1e-12);
/// # Ok::<(), poisonguard_core::DataError>(())
/// ```
pub fn roc_auc(scores: &[f64], truth: &[bool]) -> Result<f64, DataError> {
    let (pos, neg) = check(scores, truth)?;
    // Sum of the ranks of positive rows (halves and integers: exact in any order).
    let rank_sum: f64 =
        mid_ranks(scores).iter().zip(truth).filter(|(_, t)| **t).map(|(r, _)| r).sum();
    let (p, n) = (pos as f64, neg as f64);
    Ok((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// Average precision: `sum_k (R_k - R_{k-1}) P_k` over the distinct score thresholds, from the
/// highest down (scikit-learn's `average_precision_score`; tied rows enter together).
///
/// # Errors
/// Length mismatch, non-finite scores, or truth without both classes.
pub fn average_precision(scores: &[f64], truth: &[bool]) -> Result<f64, DataError> {
    let (pos, _) = check(scores, truth)?;
    let order = ranking(scores);
    let (mut tp, mut seen, mut ap, mut prev_recall) = (0usize, 0usize, 0.0, 0.0);
    let mut start = 0;
    while start < order.len() {
        let mut end = start;
        while end + 1 < order.len() && scores[order[end + 1]] == scores[order[start]] {
            end += 1;
        }
        tp += order[start..=end].iter().filter(|&&i| truth[i]).count();
        seen += end - start + 1;
        let recall = tp as f64 / pos as f64;
        ap += (recall - prev_recall) * (tp as f64 / seen as f64);
        prev_recall = recall;
        start = end + 1;
    }
    Ok(ap)
}

/// Share of poisoned rows among the `k` most suspicious rows (ties broken by row order, see
/// [`ranking`]). `k` is capped at the number of rows.
///
/// # Errors
/// Length mismatch, non-finite scores, or truth without both classes.
pub fn precision_at_k(scores: &[f64], truth: &[bool], k: usize) -> Result<f64, DataError> {
    check(scores, truth)?;
    let k = k.min(scores.len());
    if k == 0 {
        return Ok(0.0);
    }
    Ok(hits_in_top(scores, truth, k) as f64 / k as f64)
}

/// Recall when the `k` most suspicious rows are removed: the share of all poisoned rows that are
/// among them (ties broken by row order, see [`ranking`]). This is the metric of Tran et al.
/// (2018), who remove the top `1.5 * eps * n` rows of a class.
///
/// # Errors
/// Length mismatch, non-finite scores, or truth without both classes.
pub fn recall_at_k(scores: &[f64], truth: &[bool], k: usize) -> Result<f64, DataError> {
    let (pos, _) = check(scores, truth)?;
    Ok(hits_in_top(scores, truth, k.min(scores.len())) as f64 / pos as f64)
}

/// Precision and recall of a set of flags: the share of the flagged rows that are poisoned (1
/// when nothing is flagged: no flag is false) and the share of the poisoned rows that are
/// flagged.
///
/// ```
/// use poisonguard_core::metrics::flagged_precision_recall;
/// let (p, r) = flagged_precision_recall(&[true, true, false, false], &[true, false, true, false])?;
/// assert_eq!((p, r), (0.5, 0.5));
/// assert_eq!(flagged_precision_recall(&[false, false], &[true, false])?, (1.0, 0.0));
/// # Ok::<(), poisonguard_core::DataError>(())
/// ```
///
/// # Errors
/// Length mismatch, or truth without a poisoned row.
pub fn flagged_precision_recall(flags: &[bool], truth: &[bool]) -> Result<(f64, f64), DataError> {
    if flags.len() != truth.len() {
        return Err(DataError::LengthMismatch {
            what: "ground truth",
            expected: flags.len(),
            actual: truth.len(),
        });
    }
    let positives = truth.iter().filter(|&&t| t).count();
    if positives == 0 {
        return Err(DataError::DegenerateTruth { positives, negatives: truth.len() });
    }
    let flagged = flags.iter().filter(|&&f| f).count();
    let hits = flags.iter().zip(truth).filter(|(f, t)| **f && **t).count();
    let precision = if flagged == 0 { 1.0 } else { hits as f64 / flagged as f64 };
    Ok((precision, hits as f64 / positives as f64))
}

fn hits_in_top(scores: &[f64], truth: &[bool], k: usize) -> usize {
    ranking(scores)[..k].iter().filter(|&&i| truth[i]).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: [f64; 6] = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4];
    const T: [bool; 6] = [true, false, true, false, false, true];

    #[test]
    fn auc_by_hand() {
        // positives 0.9, 0.7, 0.4 vs negatives 0.8, 0.6, 0.5: wins 3 + 2 + 0 = 5 of 9
        assert!((roc_auc(&S, &T).unwrap() - 5.0 / 9.0).abs() < 1e-12);
        // perfect and reversed rankings
        assert_eq!(roc_auc(&[2.0, 1.0], &[true, false]).unwrap(), 1.0);
        assert_eq!(roc_auc(&[1.0, 2.0], &[true, false]).unwrap(), 0.0);
    }

    #[test]
    fn auc_counts_ties_as_half() {
        assert_eq!(roc_auc(&[1.0, 1.0, 1.0], &[true, false, false]).unwrap(), 0.5);
        // positive 1.0 ties one negative and beats one: (1 + 0.5) / 2
        assert_eq!(roc_auc(&[1.0, 1.0, 0.0], &[true, false, false]).unwrap(), 0.75);
    }

    #[test]
    fn average_precision_by_hand() {
        // hits at ranks 1, 3, 6: (1/1 + 2/3 + 3/6) / 3
        let expected = (1.0 + 2.0 / 3.0 + 0.5) / 3.0;
        assert!((average_precision(&S, &T).unwrap() - expected).abs() < 1e-12);
        // a tie of one positive and one negative at the top: precision 1/2 at recall 1
        assert_eq!(average_precision(&[1.0, 1.0], &[true, false]).unwrap(), 0.5);
    }

    #[test]
    fn precision_and_recall_at_k() {
        assert!((precision_at_k(&S, &T, 3).unwrap() - 2.0 / 3.0).abs() < 1e-12);
        assert!((recall_at_k(&S, &T, 3).unwrap() - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(recall_at_k(&S, &T, 100).unwrap(), 1.0);
        assert_eq!(precision_at_k(&S, &T, 0).unwrap(), 0.0);
        // ties broken by row order: row 1 (clean) comes before row 2 (poison)
        assert_eq!(recall_at_k(&[0.0, 1.0, 1.0], &[false, false, true], 1).unwrap(), 0.0);
    }

    #[test]
    fn metric_errors() {
        assert!(matches!(roc_auc(&[1.0], &[true, false]), Err(DataError::LengthMismatch { .. })));
        assert_eq!(
            roc_auc(&[1.0, 2.0], &[true, true]).unwrap_err(),
            DataError::DegenerateTruth { positives: 2, negatives: 0 }
        );
        assert!(matches!(
            average_precision(&[f64::NAN, 1.0], &[true, false]),
            Err(DataError::NonFiniteScore { row: 0, .. })
        ));
    }
}
