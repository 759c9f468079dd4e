//! What every per-class detector of this crate does the same way: fit the classes in parallel,
//! centre a class's rows, check new rows before scoring them.

use faer::Mat;
use poisonguard_core::{ClassId, DataError, Dataset, LabelMap, Labels};

use crate::error::{Error, Result};

/// Runs `fit(class, rows)` on every class with at least `min_rows` rows, classes in parallel
/// (feature `parallel`), results in class order; `None` for smaller classes. A `None` from `fit`
/// (an eigensolver that did not converge) becomes [`Error::EigenNotConverged`] naming the class.
pub(crate) fn fit_classes<T: Send>(
    labels: &Labels,
    by_class: &[Vec<usize>],
    min_rows: usize,
    fit: impl Fn(usize, &[usize]) -> Option<T> + Sync,
) -> Result<Vec<Option<T>>> {
    let work = |(c, rows): (usize, &Vec<usize>)| {
        if rows.len() < min_rows {
            return Ok(None);
        }
        fit(c, rows)
            .map(Some)
            .ok_or_else(|| Error::EigenNotConverged { class: labels.map().values()[c].to_string() })
    };
    #[cfg(feature = "parallel")]
    {
        use rayon::prelude::*;
        by_class.par_iter().enumerate().map(work).collect()
    }
    #[cfg(not(feature = "parallel"))]
    {
        by_class.iter().enumerate().map(work).collect()
    }
}

/// The class mean (f64 accumulation) and the centred rows as an f64 matrix.
pub(crate) fn centred(data: &Dataset, rows: &[usize]) -> (Vec<f64>, Mat<f64>) {
    let x = data.features();
    let d = x.ncols();
    let mut mean = vec![0.0f64; d];
    for &i in rows {
        for (m, &v) in mean.iter_mut().zip(x.row(i)) {
            *m += f64::from(v);
        }
    }
    mean.iter_mut().for_each(|m| *m /= rows.len().max(1) as f64);
    let c = Mat::from_fn(rows.len(), d, |r, j| f64::from(x[[rows[r], j]]) - mean[j]);
    (mean, c)
}

/// New rows to score against a fit: same feature count, labelled, every label seen at fit time.
/// Returns the labels and each row's class in the fit's label map.
pub(crate) fn new_rows<'a>(
    data: &'a Dataset,
    n_features: usize,
    map: &LabelMap,
    detector: &'static str,
) -> std::result::Result<(&'a Labels, Vec<ClassId>), DataError> {
    if data.n_features() != n_features {
        return Err(DataError::FeatureCountMismatch {
            expected: n_features,
            actual: data.n_features(),
        });
    }
    let labels = data.labels().ok_or(DataError::LabelsRequired { detector })?;
    let ids = labels.ids_in(map)?;
    Ok((labels, ids))
}
