//! The calibration of the out-of-fold probabilities behind `confident_learning`'s label
//! p-values: a temperature and a uniform floor fitted by maximum likelihood, and the exact test of
//! the given label under the calibrated probabilities.

use ndarray::Array2;

use super::kernels::{ExpInPlace, exp_nonpositive};

/// How the out-of-sample probabilities are calibrated for the label p-values: `q = (1 - eps)
/// softmax(beta ln p) + eps / K` over `K` classes, both fitted by maximum likelihood of the given
/// labels ([`Calibrator::fit`]).
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq)]
pub(crate) struct Calibrator {
    /// Inverse temperature (temperature scaling; Guo, Pleiss, Sun and Weinberger, *On
    /// Calibration of Modern Neural Networks*, ICML 2017).
    beta: f64,
    /// Share of labels the classifier cannot tell at all, spread uniformly over the classes: a
    /// floor under every probability.
    eps: f64,
}

impl Default for Calibrator {
    /// The probabilities as given (models saved before the calibration).
    fn default() -> Self {
        Calibrator { beta: 1.0, eps: 0.0 }
    }
}

/// Bounds of the inverse temperature searched by [`Calibrator::fit`].
const BETA_RANGE: (f64, f64) = (0.02, 50.0);

/// `ln v` of a probability, `-inf` for a zero.
fn ln_or_neg_inf(v: f64) -> f64 {
    if v > 0.0 { v.ln() } else { f64::NEG_INFINITY }
}

/// Rows whose likelihood [`Calibrator::fit`] maximizes at most (a seeded sample above it).
pub(crate) const CALIBRATION_ROWS: usize = 20_000;

/// The floors [`Calibrator::fit`] tries.
const EPS_GRID: [f64; 10] = [0.0, 1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.02, 0.05, 0.1, 0.2];

impl Calibrator {
    /// `q` of one row's probabilities `p` (zeros stay zeros before the floor; uniform when no
    /// probability is positive).
    pub(crate) fn apply(&self, p: &[f64]) -> Vec<f64> {
        let mut q: Vec<f64> = p.iter().map(|&v| ln_or_neg_inf(v)).collect();
        self.apply_logs(&mut q);
        q
    }

    /// [`Self::apply`] in place, from the row's log-probabilities (`-inf` for a zero).
    fn apply_logs(&self, q: &mut [f64]) {
        let k = q.len().max(1) as f64;
        match self.softmax_logs(q) {
            Some(total) => q.iter_mut().for_each(|v| *v = self.mixed(*v, total, k)),
            None => q.iter_mut().for_each(|v| *v = 1.0 / k),
        }
    }

    /// `(1 - eps) e / total + eps / k`: a class's calibrated probability from its softmax
    /// numerator `e` and the row's `total` over `k` classes.
    fn mixed(&self, e: f64, total: f64, k: f64) -> f64 {
        (1.0 - self.eps) * e / total + self.eps / k
    }

    /// `beta l - max` of the log-probabilities `l` in place; `false` when every probability is
    /// zero (no finite maximum).
    fn shift_logs(&self, q: &mut [f64]) -> bool {
        q.iter_mut().for_each(|l| *l *= self.beta);
        let top = q.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if !top.is_finite() {
            return false;
        }
        q.iter_mut().for_each(|l| *l -= top);
        true
    }

    /// `exp(beta l - max)` of the log-probabilities `l` in place and their sum; `None` when
    /// every probability is zero.
    fn softmax_logs(&self, q: &mut [f64]) -> Option<f64> {
        if !self.shift_logs(q) {
            return None;
        }
        q.iter_mut().for_each(|l| *l = exp_nonpositive(*l));
        Some(q.iter().sum())
    }

    /// `-ln q[given]` (`q` of [`Self::apply_logs`], floored at the least positive value) of
    /// every row of `logs` (`k` log-probabilities per row) with its given class, summed in the
    /// rows' order: [`Self::softmax_logs`]'s steps, the rows' exponentials in one pass in vector
    /// registers (a call of libm's `exp` per value was a tenth of `confident_learning`'s time),
    /// so the same values as [`Self::apply_logs`]'s.
    fn neg_log_likelihood(&self, logs: &[f64], k: usize, given: &[usize]) -> f64 {
        let mut scratch = logs.to_vec();
        let finite: Vec<bool> = scratch
            .chunks_exact_mut(k)
            .map(|row| {
                let finite = self.shift_logs(row);
                if !finite {
                    row.fill(0.0);
                }
                finite
            })
            .collect();
        pulp::Arch::new().dispatch(ExpInPlace(&mut scratch));
        let kf = k as f64;
        scratch
            .chunks_exact(k)
            .zip(given)
            .zip(finite)
            .map(|((q, &g), finite)| {
                let p = if finite { self.mixed(q[g], q.iter().sum(), kf) } else { 1.0 / kf };
                -p.max(f64::MIN_POSITIVE).ln()
            })
            .sum()
    }

    /// The maximum-likelihood `(beta, eps)` of the given labels under `probs`: for each floor of
    /// [`EPS_GRID`], a golden-section search of `beta` on [`BETA_RANGE`] (on a log scale), the
    /// best pair kept. A classifier fitted on hundreds of dimensions is over-confident out of
    /// fold (on real CIFAR-10 embeddings 7.9% of the clean rows got a label p-value <= 0.01 at
    /// the raw probabilities); a linear one is over-confident far out in heavy tails, where the
    /// class posteriors level off instead of going to 0 (Student t rows: 0.7% of the clean rows
    /// at p <= 0.001 with temperature alone), which the floor absorbs. Flipped labels raise both
    /// the temperature and the floor, which only makes the p-values conservative.
    ///
    /// Above [`CALIBRATION_ROWS`] rows the likelihood is that of a seeded sample of that many rows
    /// (`seed`): two parameters are fitted, and 20,000 rows give them a standard error far below
    /// what moves a p-value (10^5 rows of 10 Gaussian classes with 10% flips: every label p-value
    /// within 0.03 in log10 of the full fit's, the same rows flagged), where the 430-odd
    /// likelihoods over every row were half of the detector's time.
    pub(crate) fn fit(probs: &Array2<f64>, given: &[usize], seed: u64) -> Self {
        use rand::SeedableRng;
        let (n, k) = probs.dim();
        let rows: Vec<usize> = if n > CALIBRATION_ROWS {
            let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
            let mut rows = rand::seq::index::sample(&mut rng, n, CALIBRATION_ROWS).into_vec();
            rows.sort_unstable();
            rows
        } else {
            (0..n).collect()
        };
        // the rows' log-probabilities once, for the 400-odd likelihoods of the search
        let logs: Vec<f64> =
            rows.iter().flat_map(|&i| probs.row(i).to_vec()).map(ln_or_neg_inf).collect();
        let given: Vec<usize> = rows.iter().map(|&i| given[i]).collect();
        let k = k.max(1);
        let nll = |c: &Calibrator| -> f64 { c.neg_log_likelihood(&logs, k, &given) };
        // one golden-section search of beta per floor, side by side; the best kept in the grid's
        // order (ties: the smaller floor)
        let search = |e: usize| {
            let eps = EPS_GRID[e];
            let at = |lb: f64| Calibrator { beta: lb.exp(), eps };
            let (lo, hi) = (BETA_RANGE.0.ln(), BETA_RANGE.1.ln());
            let c = at(crate::golden_max(|lb| -nll(&at(lb)), lo, hi, 40));
            (nll(&c), c)
        };
        let mut best = (f64::INFINITY, Calibrator::default());
        for (f, c) in crate::map_range(EPS_GRID.len(), search) {
            if f < best.0 {
                best = (f, c);
            }
        }
        best.1
    }
}

/// The p-value of the given label under the calibrated out-of-sample probabilities
/// `q = calibrator(p)`: the probability that a label drawn from `q` is at most as likely as the
/// given one, `sum_{c: q_c <= q_given} q_c` (an exact test of the categorical distribution). If
/// `q` is calibrated and the row's label was drawn from it (a clean row), `P(p-value <= a) <= a`.
pub(crate) fn label_p_value(p: &[f64], given: usize, calibrator: &Calibrator) -> f64 {
    let q = calibrator.apply(p);
    let own = q[given];
    q.iter().filter(|&&v| v <= own).sum::<f64>().min(1.0)
}
