//! Exact k-nearest neighbours for [poisonguard](https://crates.io/crates/poisonguard): one
//! [`KnnGraph`] per scan, shared by every detector that needs neighbours.
//!
//! # Overview
//! [`exact_knn`] computes distances by blocked matrix products (`|a|^2 + |b|^2 - 2ab`, f32 GEMM
//! from faer) with a bounded top-k list per query row, never an `n x n` matrix; candidates are
//! re-ranked with exact differences (f64 accumulation), so results match a naive O(n^2) search.
//! Up to 12 features a k-d tree (median splits on the widest dimension, leaves of 32 rows)
//! answers the same queries exactly, without the quadratic cost. For large n where an
//! approximate graph will do, [`approximate_knn`] searches an inverted-file index (k-means cells,
//! each row searched exactly within the cells nearest to it); [`knn_graph`] picks one by a
//! [`KnnMode`].
//! Query blocks run in parallel; results do not depend on the thread count.
//!
//! ```
//! use ndarray::Array2;
//! use poisonguard_neighbors::exact_knn;
//! let x = Array2::from_shape_fn((100, 4), |(i, j)| ((i * 7 + j) % 13) as f32);
//! let graph = exact_knn(x.view(), 5)?;
//! assert_eq!(graph.neighbors(0).len(), 5);
//! assert!(!graph.neighbors(0).contains(&0));
//! # Ok::<(), poisonguard_neighbors::Error>(())
//! ```

mod approx;
mod error;
mod exact;
mod ivf;
mod kdtree;
mod rows;

pub use approx::{SHORTLIST_FACTOR, approximate_knn};
pub use error::{Error, Result};
pub use exact::{KDTREE_MAX_DIM, exact_knn, exact_knn_query};
pub use ivf::{ApproxParams, IvfIndex};
pub use poisonguard_core::KnnGraph;

/// `f(0), ..., f(n - 1)`, in parallel with the `parallel` feature, in index order (so results do
/// not depend on the thread count). The parallel map of every algorithm crate above this one.
///
/// ```
/// assert_eq!(poisonguard_neighbors::map_range(4, |i| i * i), [0, 1, 4, 9]);
/// ```
pub fn map_range<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync + Send) -> Vec<T> {
    #[cfg(feature = "parallel")]
    {
        use rayon::prelude::*;
        (0..n).into_par_iter().map(f).collect()
    }
    #[cfg(not(feature = "parallel"))]
    {
        (0..n).map(f).collect()
    }
}

/// `f(start, chunk)` for each chunk of `chunk` items of `items` (the last may be shorter),
/// `start` the index of the chunk's first item; in parallel with the `parallel` feature.
pub(crate) fn for_each_chunk_mut<T: Send>(
    items: &mut [T],
    chunk: usize,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    #[cfg(feature = "parallel")]
    {
        use rayon::prelude::*;
        items.par_chunks_mut(chunk).enumerate().for_each(|(c, part)| f(c * chunk, part));
    }
    #[cfg(not(feature = "parallel"))]
    {
        items.chunks_mut(chunk).enumerate().for_each(|(c, part)| f(c * chunk, part));
    }
}

/// Rows above which [`KnnMode::Auto`] switches to the approximate search (when the data have
/// more than 12 features; below that the exact k-d tree is fast at any n). At 50,000 rows in
/// 128 dimensions the exact search takes about 5 s on 2 cores, and it grows as n^2.
pub const AUTO_APPROX_ROWS: usize = 50_000;

/// How a kNN graph is built.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub enum KnnMode {
    /// Exact below [`AUTO_APPROX_ROWS`] rows or up to 12 features, approximate above.
    #[default]
    Auto,
    /// Always exact ([`exact_knn`]).
    Exact,
    /// Always approximate ([`approximate_knn`]; exact up to 12 features).
    Approximate(ApproxParams),
    /// As [`KnnMode::Auto`], the approximate search above [`AUTO_APPROX_ROWS`] run with these
    /// parameters (`Auto` is `AutoWith(ApproxParams::default())`): e.g. more probed cells on a
    /// large table where `examples/knn_recall` measures a low recall, fewer for a faster graph.
    AutoWith(ApproxParams),
}

impl KnnMode {
    /// The same mode with its approximate search probing `n_probe` cells per row (at least one;
    /// all of them when `n_probe` exceeds the cells), where it searches approximately: `Auto`
    /// becomes [`KnnMode::AutoWith`]. `None` for [`KnnMode::Exact`], which probes nothing.
    ///
    /// ```
    /// use poisonguard_neighbors::{ApproxParams, KnnMode};
    /// let four = ApproxParams { n_probe: 4, ..ApproxParams::default() };
    /// assert_eq!(KnnMode::Auto.with_probes(4), Some(KnnMode::AutoWith(four)));
    /// assert_eq!(KnnMode::Exact.with_probes(4), None);
    /// ```
    #[must_use]
    pub fn with_probes(self, n_probe: usize) -> Option<KnnMode> {
        let set = |p: ApproxParams| ApproxParams { n_probe, ..p };
        match self {
            KnnMode::Exact => None,
            KnnMode::Auto => Some(KnnMode::AutoWith(set(ApproxParams::default()))),
            KnnMode::AutoWith(p) => Some(KnnMode::AutoWith(set(p))),
            KnnMode::Approximate(p) => Some(KnnMode::Approximate(set(p))),
        }
    }
}

/// The kNN graph of `x` by `mode`.
///
/// # Errors
/// As [`exact_knn`].
///
/// ```
/// use ndarray::Array2;
/// use poisonguard_neighbors::{ApproxParams, KnnMode, exact_knn, knn_graph};
/// let x = Array2::from_shape_fn((200, 16), |(i, j)| ((i * 7 + j * 3) % 17) as f32);
/// // small data: Auto is exact, whatever the approximate search's parameters
/// assert_eq!(knn_graph(x.view(), 5, KnnMode::Auto)?, exact_knn(x.view(), 5)?);
/// let fewer_probes = ApproxParams { n_probe: 4, ..ApproxParams::default() };
/// assert_eq!(knn_graph(x.view(), 5, KnnMode::AutoWith(fewer_probes))?, exact_knn(x.view(), 5)?);
/// # Ok::<(), poisonguard_neighbors::Error>(())
/// ```
pub fn knn_graph(x: ndarray::ArrayView2<'_, f32>, k: usize, mode: KnnMode) -> Result<KnnGraph> {
    graph_of(rows::Rows::View(x), k, mode, &Progress::silent())
}

/// [`knn_graph`] of a matrix made only for the search: centred in place, so the search holds no
/// second copy of it. Same graph as `knn_graph(x.view(), ..)` with the exact search; with the
/// approximate one, the same up to f32 rounding (the index reads borrowed rows through an f32
/// map instead of the f64 centring of owned ones).
///
/// # Errors
/// As [`knn_graph`].
///
/// ```
/// use ndarray::Array2;
/// use poisonguard_neighbors::{KnnMode, knn_graph, knn_graph_owned};
/// let x = Array2::from_shape_fn((200, 16), |(i, j)| ((i * 7 + j * 3) % 17) as f32);
/// assert_eq!(knn_graph_owned(x.clone(), 5, KnnMode::Auto)?, knn_graph(x.view(), 5, KnnMode::Auto)?);
/// # Ok::<(), poisonguard_neighbors::Error>(())
/// ```
pub fn knn_graph_owned(x: ndarray::Array2<f32>, k: usize, mode: KnnMode) -> Result<KnnGraph> {
    graph_of(rows::Rows::Owned(x), k, mode, &Progress::silent())
}

/// The kNN graph of the rows of `x` standardized by `z`
/// ([`Standardizer::transform`](poisonguard_core::Standardizer::transform)), calling
/// `progress(done, total)` as rows are answered. The exact search (for smaller tables) searches
/// `z.transform(x)`: the graph of `knn_graph_owned(z.transform(x), ..)`. The approximate search
/// reads the rows standardized and centred as it goes, with the two maps folded into one per
/// column, so that it holds no `n x d` copy of the rows; its distances differ from those of the
/// standardized copy by f32 rounding (and the order of neighbours at such near-ties).
///
/// Progress: `done` rows of the `total` (= the rows of `x`) have their neighbours, `done`
/// increases from call to call (calls come from the search's worker threads, one at a time) and
/// the last call has `done == total`. For a progress display with an
/// ETA: the search's cost is about the same for every block of rows; the approximate search
/// first places its cells, before the first call (about 10 s of 100 s for 10^6 x 128 on 2
/// cores).
///
/// # Errors
/// As [`knn_graph`].
///
/// ```
/// use ndarray::Array2;
/// use poisonguard_core::Standardizer;
/// use poisonguard_neighbors::{KnnMode, knn_graph_owned, knn_graph_standardized_with_progress};
/// use std::sync::Mutex;
/// let x = Array2::from_shape_fn((2000, 16), |(i, j)| ((i * 7 + j * 3) % 17) as f32 * (j + 1) as f32);
/// let z = Standardizer::fit(x.view());
/// let seen = Mutex::new(Vec::new());
/// let graph = knn_graph_standardized_with_progress(x.view(), &z, 5, KnnMode::Exact, &|done, total| {
///     seen.lock().unwrap().push((done, total))
/// })?;
/// assert_eq!(graph, knn_graph_owned(z.transform(x.view()), 5, KnnMode::Exact)?);
/// let seen = seen.into_inner().unwrap();
/// assert!(seen.windows(2).all(|w| w[0].0 < w[1].0));
/// assert_eq!(seen.last(), Some(&(2000, 2000)));
/// # Ok::<(), poisonguard_neighbors::Error>(())
/// ```
pub fn knn_graph_standardized_with_progress<'a>(
    x: ndarray::ArrayView2<'a, f32>,
    z: &'a poisonguard_core::Standardizer,
    k: usize,
    mode: KnnMode,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<KnnGraph> {
    graph_of(rows::Rows::Standardized(x, z), k, mode, &Progress::new(x.nrows(), progress))
}

/// [`knn_graph`] with progress, as [`knn_graph_standardized_with_progress`].
///
/// # Errors
/// As [`knn_graph`].
pub fn knn_graph_with_progress(
    x: ndarray::ArrayView2<'_, f32>,
    k: usize,
    mode: KnnMode,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<KnnGraph> {
    graph_of(rows::Rows::View(x), k, mode, &Progress::new(x.nrows(), progress))
}

fn graph_of(
    rows: rows::Rows<'_>,
    k: usize,
    mode: KnnMode,
    progress: &Progress<'_>,
) -> Result<KnnGraph> {
    let n = rows.dim().0;
    match mode {
        KnnMode::Exact => exact::exact_knn_rows(rows, k, progress),
        KnnMode::Approximate(p) => approx::approximate_knn_rows(rows, k, p, progress),
        KnnMode::Auto => graph_of(rows, k, KnnMode::AutoWith(ApproxParams::default()), progress),
        KnnMode::AutoWith(p) if n > AUTO_APPROX_ROWS => {
            approx::approximate_knn_rows(rows, k, p, progress)
        }
        KnnMode::AutoWith(_) => exact::exact_knn_rows(rows, k, progress),
    }
}

/// Rows answered so far by a search, reported to a caller's function after each block of rows;
/// the lock makes the reports arrive one at a time, in increasing order.
pub(crate) struct Progress<'a> {
    total: usize,
    done: std::sync::Mutex<usize>,
    report: Option<&'a (dyn Fn(usize, usize) + Sync)>,
}

impl<'a> Progress<'a> {
    /// Reports to `report`, out of `total` rows.
    fn new(total: usize, report: &'a (dyn Fn(usize, usize) + Sync)) -> Self {
        Self { total, done: std::sync::Mutex::new(0), report: Some(report) }
    }

    /// Reports to no one.
    pub(crate) fn silent() -> Self {
        Self { total: 0, done: std::sync::Mutex::new(0), report: None }
    }

    /// `rows` more rows are answered.
    pub(crate) fn add(&self, rows: usize) {
        if let (Some(report), true) = (self.report, rows > 0) {
            // a poisoned lock only means another report panicked; the count is still right
            let mut done = self.done.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            *done += rows;
            report(*done, self.total);
        }
    }
}
