//! [`DetectorInfo`]: what a detector declares about itself, once, beside its code. The audit's
//! detector list, the default set, the outlier weight group, the CLI's help and `poisonguard detectors`
//! and the README's detector table are all read from these declarations.

use std::fmt;

use crate::detection::DetectorId;

/// The poisoning threat a detector's evidence speaks to (the poisoning attacks of ISO/IEC
/// 27090); a report groups its findings by threat ([`crate::ThreatFinding`]). A poisoned source
/// is judged from the flagged rows of every threat ([`crate::SourceFinding`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Threat {
    /// A backdoor trigger or another planted sub-population: a minority of a class along few
    /// directions (the spectral family).
    Backdoor,
    /// Flipped or chosen labels: a label its neighbourhood or a model contradicts.
    LabelManipulation,
    /// Injected samples: rows unlike the rest of the table or of their class (the outlier
    /// family; natural outliers exist in every table).
    InjectedSamples,
    /// Near-duplicate flooding: many copies of a few rows, or copies under conflicting labels.
    Flooding,
}

impl Threat {
    /// Every threat, in the order a report lists them.
    pub const ALL: [Threat; 4] =
        [Threat::Backdoor, Threat::LabelManipulation, Threat::InjectedSamples, Threat::Flooding];

    /// The threat in words, as the report prints it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Threat::Backdoor => "backdoor or planted sub-population",
            Threat::LabelManipulation => "label manipulation",
            Threat::InjectedSamples => "injected samples",
            Threat::Flooding => "near-duplicate flooding",
        }
    }
}

/// The family of evidence a detector gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// Is this row unlike the rest (of its class)? Natural outliers exist in every clean table,
    /// so an outlier score alone is weak evidence of poisoning.
    Outlier,
    /// Does this row's label disagree with its neighbourhood, a model, or its near-duplicates?
    Label,
    /// Does a class carry a hidden sub-population along few directions?
    Spectral,
}

impl Family {
    /// The family's lower-case name (`outlier`, `label`, `spectral`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Family::Outlier => "outlier",
            Family::Label => "label",
            Family::Spectral => "spectral",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// How a detector scores the rows it was fitted on, against how it scores new rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrainingScores {
    /// As new rows: scoring the training rows again gives the training scores.
    InSample,
    /// Each training row without itself (its neighbours exclude it); a training row scored
    /// again as a new row finds itself at distance 0, so its score differs, its rank little.
    LeaveOneOut,
    /// Out of fold: each training row by models fitted without it (cross-fitting); new rows by
    /// the mean of the fold models, which saw the training rows.
    OutOfFold,
}

/// What [`ThresholdRule::Auto`](crate::ThresholdRule::Auto) is for a detector, declared as
/// data: [`ThresholdRule::resolve`](crate::ThresholdRule::resolve) turns it into the rule the
/// detector fits.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum AutoThreshold {
    /// Core's automatic rule: the 99% quantile of the score's stated null law (checked against
    /// the rows the detector names as its reference), or the robust z-score rule when the score
    /// has no null.
    Null,
    /// A fixed cut-off on the score's scale: a test's level, a sign, a count.
    Fixed(f64),
    /// A fence the fit reads off the data it is given (e.g. a fence of group sizes); the fit
    /// supplies its value.
    Fence,
}

/// What a detector declares about itself: identity, family, the data it needs, how it fits,
/// where its threshold comes from, and its paper.
///
/// Every detector has one, as [`Detector::INFO`](crate::Detector::INFO); nothing else restates
/// these facts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorInfo {
    /// Stable snake_case id: report columns are `<id>_score`, `<id>_flagged`.
    pub id: DetectorId,
    /// The family of evidence.
    pub family: Family,
    /// The threat its evidence speaks to.
    pub threat: Threat,
    /// Whether the detector needs labels (with at least two classes).
    pub needs_labels: bool,
    /// How its training scores relate to scoring the same rows again with `detect`.
    pub training_scores: TrainingScores,
    /// Whether its scores depend on the seed (random trees, subsamples, k-means starts, folds).
    /// A randomized detector is deterministic for a given seed, but permuting the rows changes
    /// which rows the seeded draws pick, so its scores are permutation-equivariant only in
    /// distribution.
    pub randomized: bool,
    /// What a row's score means (higher = more suspicious), in one sentence.
    pub score: &'static str,
    /// What [`ThresholdRule::Auto`](crate::ThresholdRule::Auto) is for this detector.
    pub auto: AutoThreshold,
    /// The same in words: the law of a clean row's score it uses, the cut-off, or the fence.
    pub auto_threshold: &'static str,
    /// The null its per-row p-values refer to ([`crate::Calibration`]), in one sentence.
    pub p_value: &'static str,
    /// The paper the algorithm follows (authors, title, venue, year).
    pub paper: &'static str,
}
