//! [`Attack::apply`]: a labelled dataset poisoned by an attack, with the poisoned rows marked.

use ndarray::Array2;
use poisonguard_core::{Dataset, LabelValue, Labels, derive_seed};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::{Attack, Error, Patch, Poisoned};

impl Attack {
    /// Poisons `data` (which must have labels) with `seed`.
    ///
    /// # Errors
    /// [`Error::Unsuitable`] when the data cannot take the attack, [`Error::Data`] when the
    /// result fails the dataset checks.
    pub fn apply(&self, data: &Dataset, seed: u64) -> Result<Poisoned, Error> {
        let unsuitable = |message: String| Error::Unsuitable { attack: self.to_string(), message };
        let no_row = |label: &LabelValue| {
            let message = format!("no row has label {label}");
            move || unsuitable(message)
        };
        let labels = data.labels().ok_or_else(|| unsuitable("the data has no labels".into()))?;
        let n = data.n_samples();
        let x = data.features();
        let mut rng = SmallRng::seed_from_u64(derive_seed(seed, 0xA77A));
        let mut y: Vec<LabelValue> = (0..n).map(|i| labels.value_of_row(i).clone()).collect();
        let classes: Vec<LabelValue> = labels.map().values().to_vec();
        let mut rows: Vec<f32> = x.iter().copied().collect();
        let mut truth = vec![false; n];
        let mut sources: Option<Vec<String>> = data.sources().map(<[String]>::to_vec);
        let d = x.ncols();
        let check_patch = |p: &Patch| {
            if p.side * p.side > d {
                Err(unsuitable(format!(
                    "a {0}x{0} image needs {1} features, the data has {d}",
                    p.side,
                    p.side * p.side
                )))
            } else {
                Ok(())
            }
        };
        let poison_count = |target: &LabelValue, eps: f64| -> Result<usize, Error> {
            let n_target = y.iter().filter(|v| *v == target).count();
            if n_target == 0 {
                return Err(no_row(target)());
            }
            Ok(((eps / (1.0 - eps)) * n_target as f64).round().max(1.0) as usize)
        };
        match self {
            Attack::BadNets { patch, target, eps, sources: from } => {
                check_patch(patch)?;
                let k = poison_count(target, *eps)?;
                let mut pool: Vec<usize> = (0..n)
                    .filter(|&i| &y[i] != target && (from.is_empty() || from.contains(&y[i])))
                    .collect();
                if pool.len() < k {
                    return Err(unsuitable(format!(
                        "{k} poisons wanted, {} source rows",
                        pool.len()
                    )));
                }
                pool.shuffle(&mut rng);
                let pixels = patch.pixels();
                for &s in pool.iter().take(k) {
                    let mut row = x.row(s).to_vec();
                    pixels.iter().for_each(|&p| row[p] = patch.value);
                    rows.extend(row);
                    y.push(target.clone());
                    truth.push(true);
                }
            }
            Attack::Blend { target, eps, alpha } => {
                let k = poison_count(target, *eps)?;
                let pattern = blend_pattern(data, &mut rng);
                let mut pool: Vec<usize> = (0..n).filter(|&i| &y[i] != target).collect();
                pool.shuffle(&mut rng);
                for &s in pool.iter().take(k) {
                    rows.extend(
                        x.row(s).iter().zip(&pattern).map(|(&v, &p)| (1.0 - alpha) * v + alpha * p),
                    );
                    y.push(target.clone());
                    truth.push(true);
                }
            }
            Attack::CleanLabel { patch, target, eps } => {
                check_patch(patch)?;
                for i in share_of(&y, target, *eps, &mut rng).ok_or_else(no_row(target))? {
                    for p in patch.pixels() {
                        rows[i * d + p] = patch.value;
                    }
                    truth[i] = true;
                }
            }
            Attack::CleanLabelBlend { target, eps, alpha } => {
                let pattern = blend_pattern(data, &mut rng);
                for i in share_of(&y, target, *eps, &mut rng).ok_or_else(no_row(target))? {
                    for (v, &p) in rows[i * d..(i + 1) * d].iter_mut().zip(&pattern) {
                        *v = (1.0 - alpha) * *v + alpha * p;
                    }
                    truth[i] = true;
                }
            }
            Attack::Flip { rate } => {
                let mut order: Vec<usize> = (0..n).collect();
                order.shuffle(&mut rng);
                for &i in order.iter().take((rate * n as f64).round() as usize) {
                    y[i] = other_label(&classes, &y[i], &mut rng)
                        .ok_or_else(|| unsuitable("one class only".into()))?;
                    truth[i] = true;
                }
            }
            Attack::TargetedFlip { from, to, rate } => {
                for i in share_of(&y, from, *rate, &mut rng).ok_or_else(no_row(from))? {
                    y[i] = to.clone();
                    truth[i] = true;
                }
            }
            Attack::Flood { copies, jitter } => {
                let s = rng.random_range(0..n);
                let wrong = other_label(&classes, &y[s], &mut rng)
                    .ok_or_else(|| unsuitable("one class only".into()))?;
                for _ in 0..*copies {
                    rows.extend(x.row(s).iter().map(|&v| v + jitter * (rng.random::<f32>() - 0.5)));
                    y.push(wrong.clone());
                    truth.push(true);
                }
            }
            Attack::Source { sources: m, rate } => {
                let mut order: Vec<usize> = (0..n).collect();
                order.shuffle(&mut rng);
                let mut src = vec![String::new(); n];
                for (pos, &i) in order.iter().enumerate() {
                    src[i] = format!("source_{}", pos % m);
                    if pos % m == 0 && rng.random::<f64>() < *rate {
                        y[i] = other_label(&classes, &y[i], &mut rng)
                            .ok_or_else(|| unsuitable("one class only".into()))?;
                        truth[i] = true;
                    }
                }
                sources = Some(src);
            }
            Attack::OffManifold { rate, scale } => {
                let (lo, hi) = ranges(data);
                let k = ((rate * n as f64).round() as usize).max(1);
                for _ in 0..k {
                    rows.extend((0..d).map(|j| {
                        let w = (hi[j] - lo[j]).max(f32::EPSILON);
                        lo[j] - scale * w + rng.random::<f32>() * (1.0 + 2.0 * scale) * w
                    }));
                    y.push(classes[rng.random_range(0..classes.len())].clone());
                    truth.push(true);
                }
            }
        }
        let total = truth.len();
        let features = Array2::from_shape_vec((total, d), rows)
            .map_err(|e| unsuitable(format!("internal shape error: {e}")))?;
        let mut out = Dataset::new(features)?.with_labels(Labels::from_values(&y))?;
        if let Some(names) = data.feature_names() {
            out = out.with_feature_names(names.to_vec())?;
        }
        if let Some(mut src) = sources {
            // added rows come from the attacker's own contributor
            src.resize(total, "attacker".to_string());
            out = out.with_sources(src)?;
        }
        Ok(Poisoned { data: out, truth })
    }
}

/// A label drawn uniformly from the classes other than `own`.
fn other_label(classes: &[LabelValue], own: &LabelValue, rng: &mut SmallRng) -> Option<LabelValue> {
    let others: Vec<&LabelValue> = classes.iter().filter(|c| *c != own).collect();
    (!others.is_empty()).then(|| others[rng.random_range(0..others.len())].clone())
}

/// Per-feature minimum and maximum.
/// A seeded share of the rows labelled `label` (rounded, at least one), in the drawn order;
/// `None` when no row has that label.
fn share_of(
    y: &[LabelValue],
    label: &LabelValue,
    share: f64,
    rng: &mut SmallRng,
) -> Option<Vec<usize>> {
    let mut pool: Vec<usize> = (0..y.len()).filter(|&i| &y[i] == label).collect();
    if pool.is_empty() {
        return None;
    }
    pool.shuffle(rng);
    let k = ((share * pool.len() as f64).round() as usize).max(1);
    pool.truncate(k);
    Some(pool)
}

/// A blending key: one value per feature, uniform over that feature's range.
fn blend_pattern(data: &Dataset, rng: &mut SmallRng) -> Vec<f32> {
    let (lo, hi) = ranges(data);
    lo.iter().zip(&hi).map(|(l, h)| l + rng.random::<f32>() * (h - l)).collect()
}

fn ranges(data: &Dataset) -> (Vec<f32>, Vec<f32>) {
    let x = data.features();
    let lo =
        x.columns().into_iter().map(|c| c.iter().copied().fold(f32::INFINITY, f32::min)).collect();
    let hi = x
        .columns()
        .into_iter()
        .map(|c| c.iter().copied().fold(f32::NEG_INFINITY, f32::max))
        .collect();
    (lo, hi)
}
