//! Conflicting and flooding near-duplicates.
//!
//! # Algorithm
//! 1. Find every row's `k` nearest neighbours (default 10) in the features as given (a kNN
//!    graph shared by an audit is reused). Copies are copies in any units, and standardizing
//!    would blow up a copy's small jitter in near-constant columns: on `digits`, 30 copies
//!    jittered by +-0.25 of a pixel level were all found on the raw pixels and none after
//!    standardization. `standardize(true)` searches z-scores instead.
//! 2. The near-duplicate radius comes from the data: on the log of every row's distance to its
//!    nearest neighbour (rows at distance 0 left out), the robust lower fence
//!    `median - z * 1.4826 * MAD`, with `z = 3.5` or, on tables of more than about 4,300 rows,
//!    the normal quantile below which one of the `n` rows is expected by chance
//!    (`Phi^-1(1 - 1/n)`, 4.75 at 10^6 rows: in high dimension nearest-neighbour distances
//!    concentrate, and a fixed 3.5 made 76 of 10^6 clean Gaussian rows near-duplicates); two
//!    rows are near-duplicates when they are neighbours at most that far apart. Exact
//!    duplicates always are. When the MAD is 0 (most rows share one nearest-neighbour distance,
//!    as on coarse integer data) only exact duplicates count. With labels, each class gets its
//!    own fence, from its own rows' nearest-neighbour distances, and a pair is held to the
//!    smaller of its two rows' radii: classes differ in density (the thin strokes of a real
//!    handwritten "1" sit far closer to each other than other digits do), and one fence for the
//!    table made dense classes of clean tables near-duplicate groups.
//! 3. Groups are the connected components of the near-duplicate pairs (union-find), numbered
//!    in order of their first row.
//! 4. A group is flagged when its labels conflict (two or more distinct labels: one of them is
//!    wrong, or someone copied a row under another label) or when it is unusually large
//!    (duplicate flooding): more duplicates per row than Tukey's far-out fence
//!    `Q3 + 3 IQR` of every row's duplicate count, and never for a lone pair.
//!
//! # Score
//! A row's duplicate count (group size - 1, 0 for rows without near-duplicates), plus the fence
//! when its group's labels conflict; higher = more suspicious. The default
//! [`ThresholdRule::Auto`](poisonguard_core::ThresholdRule::Auto) threshold is the fence, which
//! flags exactly the groups of step 4. Works without labels (then only flooding is detected).
//!
//! # P-value
//! A row in a group of exact copies (every row of it at distance 0 from another) or under
//! conflicting labels: `P(Poisson(m) >= score)`, with `m` the mean duplicate count of the rows at
//! or below the flood fence (at least `1 / n`). A row in any other group, a dense spot of one
//! class: the share of the rows with at least as many near-duplicates. Clean data has dense
//! spots (a tight cluster is, to the geometry, a jittered flood): under the Poisson law 150 rows
//! of a cluster 20 times tighter than the rest of their class put 5.1% of a clean table at
//! p <= 0.01; ranked among the table's own group sizes, none (`tests/calibration.rs`, the
//! `tight` stress table). A flood under its own label and with jitter is then ranked, not
//! flagged; floods under another label, and exact copies, keep their evidence.
//!
//! # References
//! The threat is ISO/IEC 27090's near-duplicate flooding; grouping by a nearest-neighbour radius
//! follows the near-duplicate detection of A. Z. Broder, *On the resemblance and containment of
//! documents* (1997) in metric form; the fence is J. W. Tukey's (*Exploratory Data Analysis*,
//! 1977).

mod algorithm;

pub use algorithm::Duplicates;
mod hyperparams;
pub use hyperparams::{DEFAULT_K, DuplicatesParams, DuplicatesValidParams};

// linfa's `Fit` for the parameters and `PredictInplace` for the fitted detector (feature
// `linfa`).
#[cfg(feature = "linfa")]
poisonguard_core::linfa_estimator!(fit: DuplicatesParams, DuplicatesValidParams);
#[cfg(feature = "linfa")]
poisonguard_core::linfa_estimator!(predict: Duplicates);
