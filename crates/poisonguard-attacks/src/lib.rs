//! Seeded poison injection for evaluating [poisonguard](https://crates.io/crates/poisonguard)
//! detectors: each [`Attack`] takes a clean labelled [`Dataset`] and returns the poisoned dataset
//! with its ground truth ([`Poisoned`]).
//!
//! | attack | spec | imitates |
//! | --- | --- | --- |
//! | [`Attack::BadNets`] | `badnets:target=0,eps=0.1,side=8,size=2,value=16,corner=br` | Gu, Dolan-Gavitt, Garg, *BadNets*, 2017: rows of other classes get a square patch and the target label |
//! | [`Attack::Blend`] | `blend:target=0,eps=0.1,alpha=0.2` | Chen, Liu, Li, Lu, Song, *Targeted Backdoor Attacks ... Using Data Poisoning* (blended key), 2017 |
//! | [`Attack::CleanLabel`] | `clean-label:target=0,eps=0.1,side=8,size=2,value=16,corner=br` | Turner, Tsipras, Madry, *Label-Consistent Backdoor Attacks*, 2019 (target rows get the trigger, labels kept) |
//! | [`Attack::CleanLabelBlend`] | `clean-label-blend:target=0,eps=0.1,alpha=0.2` | the blended key of Chen et al. 2017 applied label-consistently, as Turner et al. 2019 (target rows blended, labels kept) |
//! | [`Attack::Flip`] | `flip:0.1` | random label noise / flipping (Biggio, Nelson, Laskov, 2011) |
//! | [`Attack::TargetedFlip`] | `targeted-flip:from=1,to=7,rate=0.3` | targeted label flipping |
//! | [`Attack::Flood`] | `flood:copies=30,jitter=0` | near-duplicate flooding with a conflicting label |
//! | [`Attack::Source`] | `source:sources=10,rate=0.4` | a poisoned contributor among `sources` |
//! | [`Attack::OffManifold`] | `off-manifold:rate=0.02,scale=3` | injected fabricated points far from the data |
//!
//! Image triggers treat each row as a `side x side` image stored row-major (the first `side^2`
//! features). Every random choice is drawn from the seed, so the same seed gives the same poison.
//!
//! ```
//! use ndarray::Array2;
//! use poisonguard_attacks::Attack;
//! use poisonguard_core::{Dataset, Labels, LabelValue};
//! let x = Array2::from_shape_fn((100, 4), |(i, j)| ((i * 7 + j) % 11) as f32);
//! let y: Vec<LabelValue> = (0..100).map(|i| LabelValue::Int(i % 2)).collect();
//! let data = Dataset::new(x)?.with_labels(Labels::from_values(&y))?;
//! let poisoned = Attack::parse("flip:0.1")?.apply(&data, 7)?;
//! assert_eq!(poisoned.truth.iter().filter(|&&t| t).count(), 10);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

mod embed;
pub use embed::{EPOCHS, HIDDEN, mlp_embeddings};

use ndarray::Array2;
use poisonguard_core::{DataError, Dataset, LabelValue, Labels, derive_seed};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use thiserror::Error;

/// A poisoned dataset and which of its rows are poison.
#[derive(Debug, Clone)]
pub struct Poisoned {
    /// The poisoned dataset (clean rows first, in their order, then any added rows).
    pub data: Dataset,
    /// `true` for a poisoned row.
    pub truth: Vec<bool>,
}

/// What can go wrong building an attack.
#[derive(Debug, Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// The spec cannot be parsed.
    #[error("attack spec {spec:?}: {message}")]
    Spec {
        /// The spec given.
        spec: String,
        /// What is wrong with it.
        message: String,
    },
    /// The data cannot take this attack (no labels, too few features for the image, no row of
    /// the source class, ...).
    #[error("attack {attack}: {message}")]
    Unsuitable {
        /// The attack.
        attack: String,
        /// Why.
        message: String,
    },
    /// The poisoned data failed the dataset checks.
    #[error(transparent)]
    Data(#[from] DataError),
}

/// Which corner of the image a patch goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corner {
    /// Top left.
    TopLeft,
    /// Top right.
    TopRight,
    /// Bottom left.
    BottomLeft,
    /// Bottom right.
    BottomRight,
}

/// A square patch trigger on `side x side` images.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Patch {
    /// Image side (the row's first `side^2` features are the pixels, row-major).
    pub side: usize,
    /// Patch side.
    pub size: usize,
    /// Value written into the patch.
    pub value: f32,
    /// Where the patch goes.
    pub corner: Corner,
}

impl Patch {
    fn pixels(&self) -> Vec<usize> {
        let (r0, c0) = match self.corner {
            Corner::TopLeft => (0, 0),
            Corner::TopRight => (0, self.side - self.size),
            Corner::BottomLeft => (self.side - self.size, 0),
            Corner::BottomRight => (self.side - self.size, self.side - self.size),
        };
        (0..self.size)
            .flat_map(|r| (0..self.size).map(move |c| (r0 + r) * self.side + c0 + c))
            .collect()
    }
}

/// A seeded poisoning attack; see the crate docs for the specs and the papers.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Attack {
    /// Rows of other classes (or of `sources`) copied with the patch and labelled `target`, so
    /// that they are a share `eps` of the poisoned target class.
    BadNets {
        /// The trigger.
        patch: Patch,
        /// Label the poisons get.
        target: LabelValue,
        /// Share of the poisoned target class that is poison, in (0, 1).
        eps: f64,
        /// Classes the poisons are copied from (all others when empty).
        sources: Vec<LabelValue>,
    },
    /// Rows of other classes copied as `(1 - alpha) x + alpha pattern` (a seeded pattern uniform
    /// over each feature's range) and labelled `target`.
    Blend {
        /// Label the poisons get.
        target: LabelValue,
        /// Share of the poisoned target class that is poison.
        eps: f64,
        /// Blend weight of the pattern, in (0, 1].
        alpha: f32,
    },
    /// A share `eps` of the target class's own rows get the patch; labels are kept.
    CleanLabel {
        /// The trigger.
        patch: Patch,
        /// The attacked class.
        target: LabelValue,
        /// Share of the target class triggered.
        eps: f64,
    },
    /// A share `eps` of the target class's own rows become `(1 - alpha) x + alpha pattern` (a
    /// seeded pattern uniform over each feature's range); labels are kept.
    CleanLabelBlend {
        /// The attacked class.
        target: LabelValue,
        /// Share of the target class triggered.
        eps: f64,
        /// Blend weight of the pattern, in (0, 1].
        alpha: f32,
    },
    /// A share `rate` of all rows get a label drawn uniformly from the other classes.
    Flip {
        /// Share of rows flipped, in (0, 1).
        rate: f64,
    },
    /// A share `rate` of the rows of class `from` are relabelled `to`.
    TargetedFlip {
        /// Class flipped.
        from: LabelValue,
        /// Label given.
        to: LabelValue,
        /// Share of `from` flipped.
        rate: f64,
    },
    /// One row copied `copies` times (each feature jittered uniformly by up to `jitter / 2`)
    /// under another class's label.
    Flood {
        /// Number of copies.
        copies: usize,
        /// Jitter width per feature (0 = exact copies).
        jitter: f32,
    },
    /// Rows are spread over `sources` contributors (a seeded round-robin); `source_0` flips a
    /// share `rate` of its labels. The dataset gets a source column.
    Source {
        /// Number of sources (>= 2).
        sources: usize,
        /// Share of `source_0`'s labels flipped.
        rate: f64,
    },
    /// `round(rate * n)` fabricated rows: each feature drawn uniformly over its range widened by
    /// `scale` ranges on both sides, with a random label.
    OffManifold {
        /// Share of rows added.
        rate: f64,
        /// Widening of each feature's range, in ranges.
        scale: f32,
    },
}

impl fmt::Display for Attack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attack::BadNets { patch, target, eps, .. } => {
                write!(
                    f,
                    "badnets(target={target},eps={eps},size={},value={})",
                    patch.size, patch.value
                )
            }
            Attack::Blend { target, eps, alpha } => {
                write!(f, "blend(target={target},eps={eps},alpha={alpha})")
            }
            Attack::CleanLabel { target, eps, patch } => {
                write!(f, "clean-label(target={target},eps={eps},value={})", patch.value)
            }
            Attack::CleanLabelBlend { target, eps, alpha } => {
                write!(f, "clean-label-blend(target={target},eps={eps},alpha={alpha})")
            }
            Attack::Flip { rate } => write!(f, "flip({rate})"),
            Attack::TargetedFlip { from, to, rate } => {
                write!(f, "targeted-flip({from}->{to},rate={rate})")
            }
            Attack::Flood { copies, jitter } => write!(f, "flood(copies={copies},jitter={jitter})"),
            Attack::Source { sources, rate } => write!(f, "source(sources={sources},rate={rate})"),
            Attack::OffManifold { rate, scale } => {
                write!(f, "off-manifold(rate={rate},scale={scale})")
            }
        }
    }
}

fn label_of(text: &str) -> LabelValue {
    text.trim()
        .parse::<i64>()
        .map_or_else(|_| LabelValue::Str(text.trim().to_string()), LabelValue::Int)
}

/// `key=value` pairs of a spec's argument list (a bare value is stored under `""`).
fn pairs(args: &str) -> Vec<(String, String)> {
    args.split(',')
        .filter(|a| !a.trim().is_empty())
        .map(|a| match a.split_once('=') {
            Some((k, v)) => (k.trim().to_string(), v.trim().to_string()),
            None => (String::new(), a.trim().to_string()),
        })
        .collect()
}

impl Attack {
    /// The class a backdoor (BadNets, blend, or their clean-label variants) teaches the model to
    /// predict for triggered inputs; `None` for the other attacks.
    ///
    /// ```
    /// use poisonguard_attacks::Attack;
    /// use poisonguard_core::LabelValue;
    /// let a = Attack::parse("badnets:target=3,eps=0.1").unwrap();
    /// assert_eq!(a.target(), Some(&LabelValue::Int(3)));
    /// assert_eq!(Attack::parse("flip:0.1").unwrap().target(), None);
    /// ```
    pub fn target(&self) -> Option<&LabelValue> {
        match self {
            Attack::BadNets { target, .. }
            | Attack::Blend { target, .. }
            | Attack::CleanLabel { target, .. }
            | Attack::CleanLabelBlend { target, .. } => Some(target),
            _ => None,
        }
    }

    /// Parses a spec such as `badnets:target=0,eps=0.1` (see the crate docs for every kind and
    /// its defaults: `side=8,size=2,value=16,corner=br`, `alpha=0.2`, `copies=30,jitter=0`,
    /// `sources=10,rate=0.4`, `rate=0.02,scale=3`).
    ///
    /// # Errors
    /// [`Error::Spec`] naming the spec and the problem.
    pub fn parse(spec: &str) -> Result<Attack, Error> {
        /// Largest side of a square image a patch attack accepts.
        const MAX_PATCH_SIDE: usize = 1 << 16;
        /// Largest number of copies or sources.
        const MAX_COUNT: usize = 1 << 20;
        let bad = |message: String| Error::Spec { spec: spec.to_string(), message };
        let (kind, args) = spec.split_once(':').unwrap_or((spec, ""));
        let args = pairs(args);
        let known: &[&str] = match kind.trim() {
            "badnets" => &["target", "eps", "side", "size", "value", "corner", "sources"],
            "blend" => &["target", "eps", "alpha"],
            "clean-label" => &["target", "eps", "side", "size", "value", "corner"],
            "clean-label-blend" => &["target", "eps", "alpha"],
            "flip" => &["", "rate"],
            "targeted-flip" => &["from", "to", "rate"],
            "flood" => &["copies", "jitter"],
            "source" => &["sources", "rate"],
            "off-manifold" => &["rate", "scale"],
            other => {
                return Err(bad(format!(
                    "unknown attack {other:?}; known: badnets, blend, clean-label, \
                     clean-label-blend, flip, targeted-flip, flood, source, off-manifold"
                )));
            }
        };
        if let Some((k, _)) = args.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            return Err(bad(format!("unknown argument {k:?}; allowed: {}", known.join(", "))));
        }
        let get = |k: &str| args.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        // every number is finite and within f32's range (features are f32)
        let num = |k: &str, default: Option<f64>| -> Result<f64, Error> {
            let v = match get(k) {
                Some(v) => v.parse::<f64>().map_err(|_| bad(format!("{k}={v} is not a number")))?,
                None => default.ok_or_else(|| bad(format!("{k}= is required")))?,
            };
            if v.is_finite() && v.abs() <= f64::from(f32::MAX) {
                Ok(v)
            } else {
                Err(bad(format!("{k}={v} must be a finite number")))
            }
        };
        // counts are whole numbers in a stated range, so nothing allocates without bound
        let count = |k: &str, default: f64, min: usize, max: usize| -> Result<usize, Error> {
            let v = num(k, Some(default))?;
            if v.fract() == 0.0 && v >= min as f64 && v <= max as f64 {
                Ok(v as usize)
            } else {
                Err(bad(format!("{k}={v} must be a whole number in [{min}, {max}]")))
            }
        };
        let share = |k: &str, v: f64| -> Result<f64, Error> {
            if v > 0.0 && v < 1.0 { Ok(v) } else { Err(bad(format!("{k}={v} must lie in (0, 1)"))) }
        };
        let target =
            || get("target").map(label_of).ok_or_else(|| bad("target= is required".into()));
        let patch = || -> Result<Patch, Error> {
            let side = count("side", 8.0, 1, MAX_PATCH_SIDE)?;
            let size = count("size", 2.0, 1, MAX_PATCH_SIDE)?;
            if size == 0 || size > side {
                return Err(bad(format!("patch size {size} must lie in [1, side = {side}]")));
            }
            let corner = match get("corner").unwrap_or("br") {
                "tl" => Corner::TopLeft,
                "tr" => Corner::TopRight,
                "bl" => Corner::BottomLeft,
                "br" => Corner::BottomRight,
                c => return Err(bad(format!("corner={c}: use tl, tr, bl or br"))),
            };
            Ok(Patch { side, size, value: num("value", Some(16.0))? as f32, corner })
        };
        Ok(match kind.trim() {
            "badnets" => Attack::BadNets {
                patch: patch()?,
                target: target()?,
                eps: share("eps", num("eps", Some(0.1))?)?,
                sources: get("sources")
                    .map_or_else(Vec::new, |s| s.split('|').map(label_of).collect()),
            },
            "blend" | "clean-label-blend" => {
                let alpha = num("alpha", Some(0.2))?;
                if !(alpha > 0.0 && alpha <= 1.0) {
                    return Err(bad(format!("alpha={alpha} must lie in (0, 1]")));
                }
                let (target, eps) = (target()?, share("eps", num("eps", Some(0.1))?)?);
                let alpha = alpha as f32;
                if kind.trim() == "blend" {
                    Attack::Blend { target, eps, alpha }
                } else {
                    Attack::CleanLabelBlend { target, eps, alpha }
                }
            }
            "clean-label" => Attack::CleanLabel {
                patch: patch()?,
                target: target()?,
                eps: share("eps", num("eps", Some(0.1))?)?,
            },
            "flip" => {
                let rate = match get("") {
                    Some(v) => v.parse::<f64>().map_err(|_| bad(format!("{v} is not a number")))?,
                    None => num("rate", None)?,
                };
                Attack::Flip { rate: share("rate", rate)? }
            }
            "targeted-flip" => Attack::TargetedFlip {
                from: get("from").map(label_of).ok_or_else(|| bad("from= is required".into()))?,
                to: get("to").map(label_of).ok_or_else(|| bad("to= is required".into()))?,
                rate: share("rate", num("rate", None)?)?,
            },
            "flood" => {
                let copies = count("copies", 30.0, 1, MAX_COUNT)?;
                let jitter = num("jitter", Some(0.0))?;
                if jitter < 0.0 {
                    return Err(bad(format!("jitter={jitter} must be >= 0")));
                }
                Attack::Flood { copies, jitter: jitter as f32 }
            }
            "source" => {
                let sources = count("sources", 10.0, 2, MAX_COUNT)?;
                Attack::Source { sources, rate: share("rate", num("rate", Some(0.4))?)? }
            }
            _ => {
                let scale = num("scale", Some(3.0))?;
                if scale < 0.0 {
                    return Err(bad(format!("scale={scale} must be >= 0")));
                }
                Attack::OffManifold {
                    rate: share("rate", num("rate", Some(0.02))?)?,
                    scale: scale as f32,
                }
            }
        })
    }

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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn data() -> Dataset {
        let x = Array2::from_shape_fn((200, 64), |(i, j)| ((i * 7 + j * 3) % 17) as f32);
        let y: Vec<LabelValue> = (0..200).map(|i| LabelValue::Int((i % 4) as i64)).collect();
        Dataset::new(x).unwrap().with_labels(Labels::from_values(&y)).unwrap()
    }

    #[test]
    fn badnets_adds_patched_relabelled_rows() {
        let p = Attack::parse("badnets:target=0,eps=0.1").unwrap().apply(&data(), 1).unwrap();
        // 50 rows of class 0: eps 0.1 -> round(50 / 9) = 6 poisons
        assert_eq!(p.truth.iter().filter(|&&t| t).count(), 6);
        assert_eq!(p.data.n_samples(), 206);
        let labels = p.data.labels().unwrap();
        for i in 200..206 {
            assert_eq!(labels.value_of_row(i), &LabelValue::Int(0));
            for px in [54, 55, 62, 63] {
                assert_eq!(p.data.features()[[i, px]], 16.0);
            }
        }
        let again = Attack::parse("badnets:target=0,eps=0.1").unwrap().apply(&data(), 1).unwrap();
        assert_eq!(again.data.features(), p.data.features());
    }

    #[test]
    fn clean_label_blend_keeps_labels_and_blends_target_rows() {
        let clean = data();
        let p = Attack::parse("clean-label-blend:target=1,eps=0.2,alpha=0.5")
            .unwrap()
            .apply(&clean, 4)
            .unwrap();
        assert_eq!(p.data.n_samples(), clean.n_samples());
        assert_eq!(p.data.labels(), clean.labels());
        let labels = clean.labels().unwrap();
        let poisoned: Vec<usize> = (0..clean.n_samples()).filter(|&i| p.truth[i]).collect();
        // 20% of class 1's 50 rows
        assert_eq!(poisoned.len(), 10);
        for i in 0..clean.n_samples() {
            let same = p.data.features().row(i) == clean.features().row(i);
            assert_eq!(same, !p.truth[i], "row {i}");
            if p.truth[i] {
                assert_eq!(labels.value_of_row(i), &LabelValue::Int(1));
            }
        }
    }

    #[test]
    fn every_attack_marks_its_rows() {
        for spec in [
            "blend:target=1,eps=0.05",
            "clean-label:target=2,eps=0.2",
            "clean-label-blend:target=2,eps=0.2,alpha=0.3",
            "flip:0.1",
            "targeted-flip:from=1,to=3,rate=0.5",
            "flood:copies=30,jitter=0.5",
            "source:sources=10,rate=0.4",
            "off-manifold:rate=0.05,scale=2",
        ] {
            let p = Attack::parse(spec).unwrap().apply(&data(), 3).unwrap();
            let k = p.truth.iter().filter(|&&t| t).count();
            assert!(k > 0, "{spec}");
            assert_eq!(p.truth.len(), p.data.n_samples(), "{spec}");
        }
        let p = Attack::parse("source:sources=10,rate=0.4").unwrap().apply(&data(), 3).unwrap();
        assert!(p.data.sources().is_some());
    }

    #[test]
    fn bad_specs_are_named() {
        for (spec, needle) in [
            ("nope:1", "unknown attack"),
            ("flip:2", "must lie in (0, 1)"),
            ("badnets:eps=0.1", "target= is required"),
            ("badnets:target=0,colour=red", "unknown argument"),
            ("badnets:target=0,size=9", "patch size"),
            // non-finite and unbounded numbers: a clear error, never a panic or a huge allocation
            ("flip:NaN", "rate=NaN must lie in (0, 1)"),
            ("blend:target=0,alpha=inf", "must be a finite number"),
            ("badnets:target=0,side=4294967296", "whole number in [1, 65536]"),
            ("badnets:target=0,side=8.5", "whole number"),
            ("badnets:target=0,value=1e39", "must be a finite number"),
            ("flood:copies=inf", "must be a finite number"),
            ("flood:copies=1e12", "whole number in [1, 1048576]"),
            ("flood:copies=0", "whole number in [1, 1048576]"),
            ("flood:jitter=-1", "jitter=-1 must be >= 0"),
            ("source:sources=1", "whole number in [2, 1048576]"),
            ("off-manifold:scale=-inf", "must be a finite number"),
        ] {
            let e = Attack::parse(spec).unwrap_err().to_string();
            assert!(e.contains(needle) && e.contains(spec), "{e}");
        }
        let small = Dataset::new(Array2::zeros((10, 4)))
            .unwrap()
            .with_labels(Labels::from_values(&vec![LabelValue::Int(0); 10]))
            .unwrap();
        let e = Attack::parse("badnets:target=0").unwrap().apply(&small, 0).unwrap_err();
        assert!(e.to_string().contains("needs 64 features"), "{e}");
    }
}
