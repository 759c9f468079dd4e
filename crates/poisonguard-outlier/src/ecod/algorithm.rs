use ndarray::{ArrayView1, ArrayView2};
use poisonguard_core::Reason;

use super::hyperparams::EcodModelParams;
use crate::error::Result;
use crate::model::{MergeableModel, Outlier, OutlierModel};

/// A fitted ECOD detector; see the [module docs](crate::ecod).
pub type Ecod = Outlier<EcodModel>;

/// Most features processed together before their contributions are added to the row scores: a
/// chunk is one feature per worker thread, at most this many (bounds the temporary memory at
/// `n_samples x COLUMN_CHUNK` f64; at 10^6 rows on 2 threads, 16 MB instead of 128 MB).
const COLUMN_CHUNK: usize = 16;

/// One fitted group of [`Ecod`]: every training column, sorted; fitted for a scan only, each
/// training row's largest contribution instead.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
pub struct EcodModel {
    /// `sorted[j]`: column `j` of the training rows, ascending (empty in a scan-only fit).
    sorted: Vec<Vec<f32>>,
    /// Sign of each column's skewness on the training rows.
    skew_sign: Vec<f64>,
    /// A scan-only fit's reasons: per training row, the feature with the largest contribution
    /// and that contribution (what [`OutlierModel::explain`] reads off `sorted`); empty
    /// otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    reasons: Vec<(u32, f64)>,
}

/// Sample skewness sign (Fisher-Pearson, biased, as `scipy.stats.skew`): -1, 0 or 1.
fn skew_sign(values: impl Iterator<Item = f32> + Clone) -> f64 {
    let (mut n, mut sum) = (0.0f64, 0.0f64);
    for v in values.clone() {
        n += 1.0;
        sum += f64::from(v);
    }
    let mean = sum / n;
    let (mut m2, mut m3) = (0.0f64, 0.0f64);
    for v in values {
        let d = f64::from(v) - mean;
        m2 += d * d;
        m3 += d * d * d;
    }
    let (m2, m3) = (m2 / n, m3 / n);
    // scipy returns 0 for a constant column (m2 == 0)
    if m2 <= f64::EPSILON * mean.abs().max(1.0) * 1e-3 {
        return 0.0;
    }
    let g1 = m3 / m2.powf(1.5);
    if g1 > 0.0 {
        1.0
    } else if g1 < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// `O_j` from the counts `le` = #values <= x and `ge` = #values >= x among `n`.
fn contribution(le: usize, ge: usize, n: usize, sign: f64) -> f64 {
    combine(neg_ln_share(le, n), neg_ln_share(ge, n), sign)
}

/// `-ln(c / n)`, the tail's term of a count `c` among `n`.
#[inline]
fn neg_ln_share(c: usize, n: usize) -> f64 {
    -(c as f64 / n as f64).ln()
}

/// `O_j` from the two tails' terms: the skewed side's, never below the larger of the two.
#[inline]
fn combine(u_l: f64, u_r: f64, sign: f64) -> f64 {
    let skewed = if sign < 0.0 {
        u_l
    } else if sign > 0.0 {
        u_r
    } else {
        u_l + u_r
    };
    skewed.max(u_l.max(u_r))
}

/// [`neg_ln_share`] of every count `0..=n`, so that a column's contributions read two terms
/// instead of computing two logarithms per value (the same values, bit for bit): `n + 1`
/// logarithms for the fit instead of two per value of every column (at 10^5 x 128 they were
/// a third of ECOD's time).
struct TailTerms {
    terms: Vec<f64>,
}

impl TailTerms {
    fn new(n: usize) -> Self {
        Self { terms: (0..=n).map(|c| neg_ln_share(c, n)).collect() }
    }

    /// [`contribution`] of the counts `le` and `ge` (at most `n`).
    #[inline]
    fn contribution(&self, le: usize, ge: usize, sign: f64) -> f64 {
        combine(self.terms[le], self.terms[ge], sign)
    }
}

fn upper_bound(sorted: &[f32], v: f32) -> usize {
    sorted.partition_point(|&s| s <= v)
}

fn lower_bound(sorted: &[f32], v: f32) -> usize {
    sorted.partition_point(|&s| s < v)
}

/// `f(le, ge)` of every value, in the values' order, from its counts in `sorted` (`le` as
/// [`upper_bound`], `ge` as `n - lower_bound` give them): the values are sorted once and both
/// bounds walk `sorted` forward, reading memory in order instead of one binary search per value
/// that misses the cache at every step (ECOD's fit on 10^6 x 32 uniform rows, median of 3:
/// 8.0 s before, 4.2 s). New rows are counted in the training columns the same way.
fn counts_in(
    sorted: &[f32],
    values: ArrayView1<'_, f32>,
    f: impl Fn(usize, usize) -> f64,
) -> Vec<f64> {
    counts_of_keys(sorted, &ordered_keys(values.iter().copied()), f)
}

/// The values as sortable keys, ascending: the f32's bits flipped into unsigned order (the order
/// of `f32::total_cmp`) above the value's position.
fn ordered_keys(values: impl Iterator<Item = f32>) -> Vec<u64> {
    let mut keys: Vec<u64> = values
        .enumerate()
        .map(|(i, v)| {
            let b = v.to_bits();
            let ordered = if b >> 31 == 1 { !b } else { b | 0x8000_0000 };
            (u64::from(ordered) << 32) | i as u64
        })
        .collect();
    keys.sort_unstable();
    keys
}

/// The value of an [`ordered_keys`] key.
fn key_value(key: u64) -> f32 {
    let ordered = (key >> 32) as u32;
    f32::from_bits(if ordered >> 31 == 1 { ordered & 0x7FFF_FFFF } else { !ordered })
}

/// [`counts_in`] of the values behind `keys` ([`ordered_keys`]), in their positions' order.
fn counts_of_keys(sorted: &[f32], keys: &[u64], f: impl Fn(usize, usize) -> f64) -> Vec<f64> {
    let n = sorted.len();
    let mut out = vec![0.0f64; keys.len()];
    let (mut lo, mut hi) = (0usize, 0usize);
    for &key in keys {
        let (i, v) = ((key & 0xFFFF_FFFF) as usize, key_value(key));
        // the values ascend, so both partition points only move forward
        while lo < n && sorted[lo] < v {
            lo += 1;
        }
        hi = hi.max(lo);
        while hi < n && sorted[hi] <= v {
            hi += 1;
        }
        out[i] = f(hi, n - lo);
    }
    out
}

/// The columns of `x`, [`COLUMN_CHUNK`] at a time, each block as `(its first column, the
/// columns as contiguous vectors)`, copied out of the rows in one pass (a column read alone
/// strides through every row: at 10^6 x 512 a cache miss per value).
fn column_blocks(x: ArrayView2<'_, f32>) -> impl Iterator<Item = (usize, Vec<Vec<f32>>)> + '_ {
    (0..x.ncols()).step_by(COLUMN_CHUNK).map(move |start| {
        let range = start..(start + COLUMN_CHUNK).min(x.ncols());
        let mut out: Vec<Vec<f32>> = range.clone().map(|_| Vec::with_capacity(x.nrows())).collect();
        for row in x.rows() {
            for (col, j) in out.iter_mut().zip(range.clone()) {
                col.push(row[j]);
            }
        }
        (start, out)
    })
}

/// Adds every column's contributions to `scores`, columns in parallel in chunks, summed in
/// column order so the result does not depend on the thread count.
fn accumulate(n_cols: usize, scores: &mut [f64], column: impl Fn(usize) -> Vec<f64> + Sync) {
    accumulate_each(n_cols, column, |_, part| {
        for (s, o) in scores.iter_mut().zip(part) {
            *s += o;
        }
    });
}

/// `add(j, column(j))` for every column in order, the columns computed in parallel in chunks of
/// one per worker thread (at most [`COLUMN_CHUNK`]); the order of the additions, and so the
/// result, does not depend on the chunks.
fn accumulate_each<T: Send>(
    n_cols: usize,
    column: impl Fn(usize) -> T + Sync,
    mut add: impl FnMut(usize, T),
) {
    #[cfg(feature = "parallel")]
    let chunk = rayon::current_num_threads().clamp(1, COLUMN_CHUNK);
    #[cfg(not(feature = "parallel"))]
    let chunk = 1;
    let mut start = 0;
    while start < n_cols {
        let end = (start + chunk).min(n_cols);
        #[cfg(feature = "parallel")]
        let parts: Vec<T> = {
            use rayon::prelude::*;
            (start..end).into_par_iter().map(&column).collect()
        };
        #[cfg(not(feature = "parallel"))]
        let parts: Vec<T> = (start..end).map(&column).collect();
        for (j, part) in (start..end).zip(parts) {
            add(j, part);
        }
        start = end;
    }
}

impl OutlierModel for EcodModel {
    type Params = EcodModelParams;
    const INFO: poisonguard_core::DetectorInfo = poisonguard_core::DetectorInfo {
        id: poisonguard_core::DetectorId::new("ecod"),
        family: poisonguard_core::Family::Outlier,
        threat: poisonguard_core::Threat::InjectedSamples,
        needs_labels: false,
        training_scores: poisonguard_core::TrainingScores::InSample,
        randomized: false,
        score: "sum over features of -ln of the row's empirical tail probability",
        auto: poisonguard_core::AutoThreshold::Null,
        auto_threshold: "robust z-score of the training scores (median + 3.5 MAD-sd)",
        p_value: "robust exponential tail of the training scores (median and 90th percentile)",
        paper: "Z. Li, Y. Zhao, X. Hu, N. Botta, C. Ionescu, G. H. Chen. ECOD: Unsupervised Outlier Detection Using Empirical Cumulative Distribution Functions. IEEE TKDE 2022",
    };

    fn min_rows(_: &Self::Params) -> usize {
        2
    }

    fn fit(params: &Self::Params, x: ArrayView2<'_, f32>, _seed: u64) -> Result<(Self, Vec<f64>)> {
        let model = Self::from_summary(params, Self::summarize(params, x)?)?;
        let scores = model.score_members(x)?;
        Ok((model, scores))
    }

    /// One column at a time: sorted, every row's contribution added to its score and compared
    /// with its largest so far; no column is kept. The scores are those of [`OutlierModel::fit`]
    /// (the same counts and skewness signs, added in the same order), and each row's reason is
    /// the one [`OutlierModel::explain`] would give it.
    fn fit_scan(_: &Self::Params, x: ArrayView2<'_, f32>, _seed: u64) -> Result<(Self, Vec<f64>)> {
        let n = x.nrows();
        let mut scores = vec![0.0f64; n];
        let mut reasons = vec![(0u32, f64::NEG_INFINITY); n];
        let mut skew = vec![0.0f64; x.ncols()];
        let terms = TailTerms::new(n);
        // a column's values sorted once, as keys that also say where each value sits
        let column = |values: &[f32]| {
            let keys = ordered_keys(values.iter().copied());
            let sorted: Vec<f32> = keys.iter().map(|&k| key_value(k)).collect();
            let sign = skew_sign(sorted.iter().copied());
            (sign, counts_of_keys(&sorted, &keys, |le, ge| terms.contribution(le, ge, sign)))
        };
        // columns a block at a time (read alone, 152 s of the fit at 10^6 x 512)
        for (start, block) in column_blocks(x) {
            accumulate_each(
                block.len(),
                |c| column(&block[c]),
                |c, (sign, part)| {
                    let j = start + c;
                    skew[j] = sign;
                    for ((s, best), o) in scores.iter_mut().zip(reasons.iter_mut()).zip(part) {
                        *s += o;
                        if o > best.1 {
                            *best = (j as u32, o);
                        }
                    }
                },
            );
        }
        Ok((Self { sorted: Vec::new(), skew_sign: skew, reasons }, scores))
    }

    fn member_reason(&self, member: usize, name: &dyn Fn(usize) -> String) -> Option<Reason> {
        let &(j, contribution) = self.reasons.get(member)?;
        Some(Reason::TailProbability { feature: name(j as usize), contribution })
    }

    fn score(&self, x: ArrayView2<'_, f32>) -> Result<Vec<f64>> {
        if !self.reasons.is_empty() {
            return Err(crate::error::Error::ScanOnly { detector: "ecod" });
        }
        // Each new row on the ECDFs of the training columns alone (a tail count of 0 counts as
        // 1), with their skewness: a training row scored again gets its training score, and a
        // row's score does not depend on which other rows are scored with it.
        let n = self.sorted.first().map_or(0, Vec::len);
        let mut scores = vec![0.0f64; x.nrows()];
        // the table of terms where it costs fewer logarithms than the values
        let terms = (2 * x.nrows() * x.ncols() > n).then(|| TailTerms::new(n));
        accumulate(x.ncols(), &mut scores, |j| {
            counts_in(&self.sorted[j], x.column(j), |le, ge| {
                let (le, ge, sign) = (le.max(1), ge.max(1), self.skew_sign[j]);
                match &terms {
                    Some(t) => t.contribution(le, ge, sign),
                    None => contribution(le, ge, n, sign),
                }
            })
        });
        Ok(scores)
    }

    fn explain(
        &self,
        row: ArrayView1<'_, f32>,
        _: f64,
        name: &dyn Fn(usize) -> String,
    ) -> Option<Reason> {
        if self.sorted.len() != row.len() {
            // a scan-only fit keeps no columns (its training rows' reasons are kept instead)
            return None;
        }
        let mut best = (0usize, f64::NEG_INFINITY);
        for (j, &v) in row.iter().enumerate() {
            let s = &self.sorted[j];
            let n = s.len();
            let o = contribution(
                upper_bound(s, v).max(1),
                (n - lower_bound(s, v)).max(1),
                n,
                self.skew_sign[j],
            );
            if o > best.1 {
                best = (j, o);
            }
        }
        Some(Reason::TailProbability { feature: name(best.0), contribution: best.1 })
    }
}

/// The summary ECOD is fitted from: every column of the rows, sorted (the exact empirical
/// distributions; merging two is merging sorted lists, so a fit on shards is the fit on all rows,
/// bit for bit). Its size is that of the rows: it merges, it does not shrink.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
pub struct EcodSummary {
    sorted: Vec<Vec<f32>>,
}

impl poisonguard_core::Merge for EcodSummary {
    fn merge(&mut self, other: Self) -> std::result::Result<(), poisonguard_core::MergeError> {
        if self.sorted.len() != other.sorted.len() {
            return Err(poisonguard_core::MergeError::FeatureCount {
                left: self.sorted.len(),
                right: other.sorted.len(),
            });
        }
        for (a, b) in self.sorted.iter_mut().zip(other.sorted) {
            let mut out = Vec::with_capacity(a.len() + b.len());
            let (mut i, mut j) = (0, 0);
            while i < a.len() && j < b.len() {
                if b[j].total_cmp(&a[i]).is_lt() {
                    out.push(b[j]);
                    j += 1;
                } else {
                    out.push(a[i]);
                    i += 1;
                }
            }
            out.extend_from_slice(&a[i..]);
            out.extend_from_slice(&b[j..]);
            *a = out;
        }
        Ok(())
    }
}

impl MergeableModel for EcodModel {
    type Summary = EcodSummary;

    /// Every column sorted, `COLUMN_CHUNK` columns copied out of the rows at a time (as the
    /// scan fit reads them: a column read alone strides through every row).
    fn summarize(_: &Self::Params, x: ArrayView2<'_, f32>) -> Result<EcodSummary> {
        let mut sorted = Vec::with_capacity(x.ncols());
        for (_, block) in column_blocks(x) {
            for mut column in block {
                column.sort_by(f32::total_cmp);
                sorted.push(column);
            }
        }
        Ok(EcodSummary { sorted })
    }

    fn summary_rows(summary: &EcodSummary) -> usize {
        summary.sorted.first().map_or(0, Vec::len)
    }

    fn from_summary(_: &Self::Params, summary: EcodSummary) -> Result<Self> {
        // the skewness of each column from its sorted values: the same values in any order
        let skew_sign = summary.sorted.iter().map(|c| skew_sign(c.iter().copied())).collect();
        Ok(Self { sorted: summary.sorted, skew_sign, reasons: Vec::new() })
    }

    /// The training rows' scores: their tail probabilities among the summarized rows (which
    /// hold them), not among the summarized rows plus them.
    fn score_members(&self, x: ArrayView2<'_, f32>) -> Result<Vec<f64>> {
        let n = self.sorted.first().map_or(0, Vec::len);
        let mut scores = vec![0.0f64; x.nrows()];
        let terms = TailTerms::new(n);
        accumulate(x.ncols(), &mut scores, |j| {
            counts_in(&self.sorted[j], x.column(j), |le, ge| {
                terms.contribution(le, ge, self.skew_sign[j])
            })
        });
        Ok(scores)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    /// The table's contributions are [`contribution`]'s, bit for bit, for every pair of counts
    /// (zeros included) and skewness sign.
    #[test]
    fn tail_terms_are_the_contributions() {
        for n in [1, 2, 7, 100, 1000] {
            let terms = TailTerms::new(n);
            for le in 0..=n {
                for ge in [0, 1, n / 3, n - le, n] {
                    for sign in [-1.0, 0.0, 1.0] {
                        let (a, b) =
                            (terms.contribution(le, ge, sign), contribution(le, ge, n, sign));
                        assert_eq!(a.to_bits(), b.to_bits(), "n {n}, le {le}, ge {ge}");
                    }
                }
            }
        }
    }

    /// The sort keys order values as `f32::total_cmp` does (signed zeros, extremes, subnormals)
    /// and give them back bit for bit, so a column sorted by its keys is the column sorted.
    #[test]
    fn sort_keys_order_and_return_the_values() {
        let values = [
            3.5f32,
            -0.0,
            0.0,
            -1e30,
            f32::MIN_POSITIVE / 4.0,
            -f32::MIN_POSITIVE,
            f32::MAX,
            f32::MIN,
            1.0,
            -1.0,
            1.0,
        ];
        let keys = ordered_keys(values.iter().copied());
        let from_keys: Vec<u32> = keys.iter().map(|&k| key_value(k).to_bits()).collect();
        let mut sorted = values.to_vec();
        sorted.sort_by(f32::total_cmp);
        assert_eq!(from_keys, sorted.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        for &k in &keys {
            assert_eq!(key_value(k).to_bits(), values[(k & 0xFFFF_FFFF) as usize].to_bits());
        }
    }

    /// The sorted walk gives every value the binary searches' counts: ties, signed zeros,
    /// values outside the summary's range, a part of the summarized rows and all of them.
    #[test]
    fn walked_counts_equal_the_binary_searches() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
        let mut pool: Vec<f32> =
            (0..2000).map(|_| (rng.random_range(-20i32..20) as f32) / 4.0).collect();
        pool.extend([0.0, -0.0, -0.0, 1e30, -1e30]);
        let mut sorted = pool.clone();
        sorted.sort_by(f32::total_cmp);
        for values in [pool.clone(), pool[..300].to_vec(), vec![-100.0, 100.0, -0.0, 0.25]] {
            let n = sorted.len();
            let code = |le: usize, ge: usize| (le * (n + 1) + ge) as f64;
            let got = counts_in(&sorted, ndarray::ArrayView1::from(&values), code);
            for (&v, &g) in values.iter().zip(&got) {
                assert_eq!(g, code(upper_bound(&sorted, v), n - lower_bound(&sorted, v)), "{v}");
            }
        }
    }

    /// A scan-only fit keeps no columns but gives the full fit's training detection: scores,
    /// threshold, p-values and every flagged row's reason, globally and per class (with ties
    /// between features, so that the first largest contribution must win as in `explain`);
    /// scoring new rows is refused with an error.
    #[test]
    fn a_scan_only_fit_audits_its_rows_as_the_full_fit() {
        use poisonguard_core::{Dataset, Detector, FitContext, FittedDetector};
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(11);
        let x = ndarray::Array2::from_shape_fn((600, 5), |(i, j)| {
            let v = rng.random_range(-3.0f32..3.0).round();
            if i % 50 == 0 { v * 10.0 + j as f32 } else { v }
        });
        let labels: Vec<poisonguard_core::LabelValue> =
            (0..600).map(|i| poisonguard_core::LabelValue::Int(i % 3)).collect();
        let labels = poisonguard_core::Labels::from_values(&labels);
        let data = Dataset::new(x).unwrap().with_labels(labels).unwrap();
        for per_class in [false, true] {
            let params = crate::EcodParams::default().per_class(per_class);
            let full = params.fit_in(&data, &FitContext::default()).unwrap();
            let scan = params.fit_in(&data, &FitContext::default().for_scan()).unwrap();
            let (a, b) = (full.training(), scan.training());
            assert_eq!(a.scores(), b.scores());
            assert_eq!(a.p_values(), b.p_values());
            assert!(a.n_flagged() > 0);
            for i in 0..600 {
                assert_eq!(a.reason(i), b.reason(i), "row {i}");
            }
            let err = scan.detect(&data).unwrap_err().to_string();
            assert!(err.contains("scan of its own rows only"), "{err}");
            assert_eq!(full.detect(&data).unwrap().scores().len(), 600);
        }
    }

    #[test]
    fn matches_pyod_on_a_tiny_column() {
        // x = [1, 2, 3, 10]: skew > 0 -> O = max(U_r, max(U_l, U_r))
        let x = array![[1.0f32], [2.0], [3.0], [10.0]];
        let (_, s) = EcodModel::fit(&EcodModelParams, x.view(), 0).unwrap();
        let o = |le: f64, ge: f64| {
            let (ul, ur) = (-(le / 4.0).ln(), -(ge / 4.0).ln());
            ur.max(ul.max(ur))
        };
        let want = [o(1.0, 4.0), o(2.0, 3.0), o(3.0, 2.0), o(4.0, 1.0)];
        for (a, b) in s.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
        // with max(U_l, U_r) both ends of the column are equally extreme, the middle less so
        assert!(s[3] == s[0] && s[0] > s[1]);
    }

    #[test]
    fn ties_count_fully_and_constant_columns_are_symmetric() {
        let x = array![[5.0f32], [5.0], [5.0]];
        let (_, s) = EcodModel::fit(&EcodModelParams, x.view(), 0).unwrap();
        // le = ge = 3 of 3: every term is -ln 1 = 0
        assert!(s.iter().all(|&v| v == 0.0));
    }
}
