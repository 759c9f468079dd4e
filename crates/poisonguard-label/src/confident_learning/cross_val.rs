//! Cross-validated out-of-sample probabilities: stratified folds, the fold models kept as an
//! ensemble, and the sampled cross-validation of large tables.

use ndarray::{Array2, ArrayView2};
use poisonguard_core::Standardizer;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;

use super::logistic::{
    CACHE_VALUES, FoldRows, Logistic, LogisticSettings, ScaledLogistic, Standardized, for_held_out,
};

/// Stratified fold of every row: each class's rows are shuffled (seeded per class) and dealt
/// round-robin into `folds` folds.
pub(crate) fn stratified_folds(classes: &[u32], k: usize, folds: usize, seed: u64) -> Vec<usize> {
    let mut by_class = vec![Vec::new(); k];
    for (i, &c) in classes.iter().enumerate() {
        by_class[c as usize].push(i);
    }
    let mut fold = vec![0usize; classes.len()];
    let mut offset = 0;
    for (c, mut rows) in by_class.into_iter().enumerate() {
        let mut rng = SmallRng::seed_from_u64(poisonguard_core::derive_seed(seed, c as u64));
        rows.shuffle(&mut rng);
        let len = rows.len();
        for (pos, i) in rows.into_iter().enumerate() {
            fold[i] = (pos + offset) % folds;
        }
        // Start the next class where this one stopped, so folds stay balanced in size.
        offset = (offset + len) % folds;
    }
    fold
}

/// The K models of a cross-validation, which score new rows by the mean of their probabilities
/// (as scikit-learn's `CalibratedClassifierCV(ensemble=True)`): no extra fit on all rows.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
pub(crate) struct FoldEnsemble {
    models: Vec<ScaledLogistic>,
}

impl FoldEnsemble {
    /// Features the models were fitted on.
    pub(crate) fn n_features(&self) -> usize {
        self.models.first().map_or(0, ScaledLogistic::n_features)
    }

    /// Mean probabilities of the fold models for `rows` of `x`, `rows.len() x k` row-major.
    pub(crate) fn predict(&self, x: ArrayView2<'_, f32>, rows: &[usize]) -> Vec<f64> {
        let mut sum: Vec<f64> = Vec::new();
        for m in &self.models {
            let p = m.predict(x, rows);
            if sum.is_empty() {
                sum = p;
            } else {
                sum.iter_mut().zip(&p).for_each(|(a, b)| *a += b);
            }
        }
        let m = self.models.len().max(1) as f64;
        sum.iter_mut().for_each(|v| *v /= m);
        sum
    }
}

/// Excess log loss per row, in nats, that the fold models may lose to a fit on every row:
/// the maximum-likelihood fit of `p` parameters on `m` rows is about `p / 2m` above the best
/// model of its family (the asymptotic excess risk of a well-specified fit), so `m = p / (2 x
/// this)` training rows per fold suffice.
const EXCESS_LOG_LOSS: f64 = 0.01;

/// Below this many rows every row is cross-validated whatever the bound.
const MIN_CV_ROWS: usize = 50_000;

/// Rows the cross-validation fits on for `d` features, `k` classes and `folds` folds: enough
/// that each fold's `folds - 1` parts hold `p / (2 EXCESS_LOG_LOSS)` rows, `p = (d + 1) k`
/// parameters (80,625 rows at 128 features and 10 classes), and at least [`MIN_CV_ROWS`].
pub(crate) fn cv_rows(d: usize, k: usize, folds: usize) -> usize {
    let p = ((d + 1) * k) as f64;
    let per_fold = p / (2.0 * EXCESS_LOG_LOSS);
    let rows = per_fold * folds as f64 / (folds.max(2) - 1) as f64;
    (rows.ceil() as usize).max(MIN_CV_ROWS)
}

/// A seeded class-stratified sample of `m` of the rows, ascending: each class its share
/// (rounded up), at least `min(class size, 50)`.
fn stratified_sample(classes: &[u32], k: usize, m: usize, seed: u64) -> Vec<usize> {
    let n = classes.len();
    let mut by_class = vec![Vec::new(); k];
    for (i, &c) in classes.iter().enumerate() {
        by_class[c as usize].push(i);
    }
    let mut picked = Vec::with_capacity(m + k);
    for (c, mut rows) in by_class.into_iter().enumerate() {
        let share = (rows.len() * m).div_ceil(n.max(1));
        let take = share.max(rows.len().min(50)).min(rows.len());
        let mut rng =
            SmallRng::seed_from_u64(poisonguard_core::derive_seed(seed, 1_000 + c as u64));
        rows.shuffle(&mut rng);
        picked.extend_from_slice(&rows[..take]);
    }
    picked.sort_unstable();
    picked
}

/// [`cross_val_proba`] on at most [`cv_rows`] rows: above that, the cross-validation runs on a
/// seeded class-stratified sample of that many rows, and every other row gets the mean
/// probabilities of the fold models, which never saw it (as rows scored against a fitted
/// detector do): out-of-sample all the same. Neither the sample nor the other rows are copied.
#[allow(clippy::too_many_arguments)] // cross_val_proba's inputs
pub(crate) fn cross_val_sampled(
    x: ArrayView2<'_, f32>,
    classes: &[u32],
    k: usize,
    folds: usize,
    seed: u64,
    s: LogisticSettings,
    cs: &[f64],
) -> (Array2<f64>, FoldEnsemble, f64) {
    let n = classes.len();
    let m = cv_rows(x.ncols(), k, folds);
    if n <= m {
        let all: Vec<usize> = (0..n).collect();
        return cross_val_proba(x, &all, classes, k, folds, seed, s, cs);
    }
    let sample = stratified_sample(classes, k, m, seed);
    let ys: Vec<u32> = sample.iter().map(|&i| classes[i]).collect();
    let (inside, models, c) = cross_val_proba(x, &sample, &ys, k, folds, seed, s, cs);
    let mut out = Array2::zeros((n, k));
    for (row, &i) in sample.iter().enumerate() {
        out.row_mut(i).assign(&inside.row(row));
    }
    drop(inside);
    let mut in_sample = vec![false; n];
    sample.iter().for_each(|&i| in_sample[i] = true);
    let others: Vec<usize> = (0..n).filter(|&i| !in_sample[i]).collect();
    // a block of rows at a time, so that no second n x k matrix exists beside `out`
    for block in others.chunks(PREDICT_BLOCK) {
        let p = models.predict(x, block);
        for (&i, probs) in block.iter().zip(p.chunks(k)) {
            out.row_mut(i).iter_mut().zip(probs).for_each(|(o, &v)| *o = v);
        }
    }
    (out, models, c)
}

/// Rows the fold ensemble predicts at a time in [`cross_val_sampled`].
const PREDICT_BLOCK: usize = 65_536;

/// Out-of-sample probabilities of the rows `rows` of `x` (`classes[t]` the class of `rows[t]`)
/// by stratified K-fold cross-validation, `rows.len() x k` in that order, the fold models and
/// the chosen inverse L2 strength. With several candidates in `cs` (ascending), the first fold
/// fits the path with warm starts until its out-of-fold log loss rises, and the `C` with the
/// smallest loss wins (ties: the stronger regularization); the other folds fit that `C`. Folds are fitted
/// in parallel, each single-threaded, so the result does not depend on the thread count.
#[allow(clippy::too_many_arguments)] // the cross-validation's inputs
pub(crate) fn cross_val_proba(
    x: ArrayView2<'_, f32>,
    rows: &[usize],
    classes: &[u32],
    k: usize,
    folds: usize,
    seed: u64,
    s: LogisticSettings,
    cs: &[f64],
) -> (Array2<f64>, FoldEnsemble, f64) {
    let fold = stratified_folds(classes, k, folds, seed);
    // One standardization of the rows (applied a block at a time as they are read, never
    // stored); each fold fits on all of them with its held-out rows weighing 0 and its own
    // standardizer (fitted on its training rows) applied as an affine map, so that no fold
    // copies its rows (the same model as a fit on a standardized copy of the fold's rows, up to
    // rounding).
    let shared = Standardizer::fit_rows(x, rows);
    let z = Standardized::new(x.view(), Some(rows), &shared);
    // the z-scores computed once for every fit of every fold where they take little memory
    let cache = (rows.len() * x.ncols() <= CACHE_VALUES).then(|| z.z_scores());
    let z = cache.as_deref().map_or(z, |c| z.cached(c));
    let positions = 0..rows.len();
    // fold `f` fitted along `path` (ascending C, each fit warm-started from the previous one,
    // the first from `init`, until the out-of-fold log loss rises): each candidate's loss, the
    // models, their parameters and what predicting its held-out rows needs
    let work = |f: usize, path: &[f64], init: Option<&[f64]>| {
        let train: Vec<bool> = fold.iter().map(|&g| g != f).collect();
        let train_rows: Vec<usize> =
            positions.clone().filter(|&t| train[t]).map(|t| rows[t]).collect();
        let test: Vec<usize> = positions.clone().filter(|&t| !train[t]).collect();
        let scaler = Standardizer::fit_rows(x, &train_rows);
        drop(train_rows);
        let affine = shared.affine_to(&scaler);
        let fold_rows = FoldRows::new(&train, &affine);
        let (mut losses, mut models, mut thetas) = (Vec::new(), Vec::new(), Vec::<Vec<f64>>::new());
        for &c in path {
            let settings = LogisticSettings { c, ..s };
            let start = thetas.last().map(Vec::as_slice).or(init);
            let (model, t) = Logistic::fit_from(&z, classes, k, settings, start, Some(&fold_rows));
            // its out-of-fold log loss; the held-out rows' probabilities are computed again
            // for the chosen candidate only, rather than kept for every one
            let mut loss = 0.0f64;
            for_held_out(x, rows, &shared, &test, &model, &fold_rows, |t, p| {
                loss -= p[classes[t] as usize].max(1e-15).ln();
            });
            thetas.push(t);
            models.push(ScaledLogistic { scaler: scaler.clone(), model });
            // the path stops where the loss turns up: a weaker penalty past the best one
            // fits the training rows ever closer and costs the most iterations
            let worse = losses.last().is_some_and(|&previous| loss > previous);
            losses.push(loss);
            if worse {
                break;
            }
        }
        (losses, models, thetas, affine, train, test)
    };
    // C is chosen on the first fold's path (the candidate with the smallest out-of-fold log
    // loss; ties: the stronger regularization); the other folds fit that C alone, warm-started
    // from the first fold's parameters at it: at most 4 + 4 fits for 5 folds and 4 candidates,
    // where every fold's whole path took 20
    let (first_losses, first_models, first_thetas, affine0, train0, test0) = work(0, cs, None);
    let best = (0..first_losses.len())
        .fold(0, |b, c| if first_losses[c] < first_losses[b] { c } else { b });
    // (a fixed C starts every fold from zero, as a user classifier's folds do)
    let start = first_thetas.get(best).map(Vec::as_slice).filter(|_| cs.len() > 1);
    let rest = crate::map_range(folds.saturating_sub(1), |f| work(f + 1, &cs[best..=best], start));
    let mut out = Array2::zeros((rows.len(), k));
    let mut models = Vec::with_capacity(folds);
    let first = (first_models.into_iter().nth(best), affine0, train0, test0);
    let rest = rest
        .into_iter()
        .map(|(_, m, _, affine, train, test)| (m.into_iter().next(), affine, train, test));
    for (chosen, affine, train, test) in std::iter::once(first).chain(rest) {
        let Some(chosen) = chosen else { continue };
        let fold_rows = FoldRows::new(&train, &affine);
        for_held_out(x, rows, &shared, &test, &chosen.model, &fold_rows, |t, p| {
            out.row_mut(t).iter_mut().zip(p).for_each(|(o, &v)| *o = v);
        });
        models.push(chosen);
    }
    (out, FoldEnsemble { models }, cs[best])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Above `cv_rows` the cross-validation runs on a class-stratified sample, and the rows
    /// outside it, scored by the fold models, are as out-of-sample as the cross-validated
    /// ones: the flipped labels among them are found as well (ROC-AUC of `1 - p(given)`).
    #[test]
    fn rows_beyond_the_cross_validation_sample_are_scored_out_of_sample() {
        use rand::Rng;
        assert_eq!(cv_rows(128, 10, 5), 80_625);
        assert_eq!(cv_rows(4, 3, 5), MIN_CV_ROWS);
        let (n, d, k) = (60_000, 4, 3);
        let mut rng = SmallRng::seed_from_u64(7);
        let truth: Vec<u32> = (0..n).map(|i| (i % k) as u32).collect();
        let x = Array2::from_shape_fn((n, d), |(i, j)| {
            let centre = if j == truth[i] as usize { 1.5 } else { 0.0 };
            centre + rng.random::<f32>() * 2.0 - 1.0
        });
        // 5% of the labels moved to the next class
        let flipped: Vec<bool> = (0..n).map(|_| rng.random::<f64>() < 0.05).collect();
        let given: Vec<u32> =
            (0..n).map(|i| if flipped[i] { (truth[i] + 1) % k as u32 } else { truth[i] }).collect();
        let s = LogisticSettings { c: 1.0, max_iter: 100, gtol: 1e-4 };
        let (p, models, _) = cross_val_sampled(x.view(), &given, k, 5, 3, s, &[1.0]);
        assert_eq!(models.models.len(), 5);
        let sample = stratified_sample(&given, k, MIN_CV_ROWS, 3);
        assert!(sample.len() >= MIN_CV_ROWS && sample.len() <= MIN_CV_ROWS + k);
        let mut inside = vec![false; n];
        sample.iter().for_each(|&i| inside[i] = true);
        let auc = |part: bool| {
            let rows: Vec<usize> = (0..n).filter(|&i| inside[i] == part).collect();
            let score: Vec<f64> = rows.iter().map(|&i| 1.0 - p[[i, given[i] as usize]]).collect();
            let truth: Vec<bool> = rows.iter().map(|&i| flipped[i]).collect();
            poisonguard_core::metrics::roc_auc(&score, &truth).unwrap()
        };
        let (cross_validated, beyond) = (auc(true), auc(false));
        assert!(cross_validated > 0.9, "{cross_validated}");
        assert!((beyond - cross_validated).abs() < 0.02, "{beyond} vs {cross_validated}");
        for row in p.rows() {
            assert!((row.sum() - 1.0).abs() < 1e-9);
        }
    }

    #[test]
    fn folds_are_stratified_and_balanced() {
        let classes: Vec<u32> = (0..103).map(|i| (i % 4) as u32).collect();
        let fold = stratified_folds(&classes, 4, 5, 7);
        for f in 0..5 {
            let size = fold.iter().filter(|&&g| g == f).count();
            assert!((19..=22).contains(&size), "fold {f}: {size}");
        }
        assert_eq!(fold, stratified_folds(&classes, 4, 5, 7));
    }
}
