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

mod apply;
mod embed;
mod spec;
pub use embed::{EPOCHS, HIDDEN, mlp_embeddings};

use poisonguard_core::{DataError, Dataset, LabelValue};
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
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ndarray::Array2;
    use poisonguard_core::Labels;

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
