//! Column standardization shared by the label detectors.

use ndarray::{Array2, ArrayView2};

/// Per-column mean and standard deviation (f64 accumulation); a constant column gets scale 0
/// and maps to 0.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Scaler {
    mean: Vec<f64>,
    inv_sd: Vec<f64>,
}

impl Scaler {
    /// Fits on the rows of `x`.
    pub(crate) fn fit(x: ArrayView2<'_, f32>) -> Self {
        let rows: Vec<usize> = (0..x.nrows()).collect();
        Self::fit_rows(x, &rows)
    }

    /// Fits on `rows` of `x`.
    pub(crate) fn fit_rows(x: ArrayView2<'_, f32>, rows: &[usize]) -> Self {
        let n = rows.len().max(1) as f64;
        let d = x.ncols();
        let mut mean = vec![0.0f64; d];
        for &i in rows {
            for (m, &v) in mean.iter_mut().zip(x.row(i)) {
                *m += f64::from(v);
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        let mut var = vec![0.0f64; d];
        for &i in rows {
            for ((s, &v), m) in var.iter_mut().zip(x.row(i)).zip(&mean) {
                let c = f64::from(v) - m;
                *s += c * c;
            }
        }
        let inv_sd = var
            .iter()
            .zip(&mean)
            .map(|(&s, &m)| {
                let sd = (s / n).sqrt();
                // Spread below f32 resolution of the column's magnitude is rounding noise.
                if sd > 1e-6 * m.abs().max(1e-30) && sd > 0.0 { 1.0 / sd } else { 0.0 }
            })
            .collect();
        Self { mean, inv_sd }
    }

    /// The standardized copy of `x` as f32.
    pub(crate) fn transform(&self, x: ArrayView2<'_, f32>) -> Array2<f32> {
        Array2::from_shape_fn(x.dim(), |(i, j)| {
            ((f64::from(x[[i, j]]) - self.mean[j]) * self.inv_sd[j]) as f32
        })
    }

    /// The standardized copy of `x` as f64, row-major `n x d`, for the classifier.
    pub(crate) fn transform_f64(&self, x: ArrayView2<'_, f32>, rows: &[usize]) -> faer::Mat<f64> {
        faer::Mat::from_fn(rows.len(), x.ncols(), |r, j| {
            (f64::from(x[[rows[r], j]]) - self.mean[j]) * self.inv_sd[j]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn standardizes_and_zeroes_constant_columns() {
        let x = array![[1.0f32, 5.0], [3.0, 5.0]];
        let z = Scaler::fit(x.view()).transform(x.view());
        assert_eq!(z, array![[-1.0f32, 0.0], [1.0, 0.0]]);
    }
}
