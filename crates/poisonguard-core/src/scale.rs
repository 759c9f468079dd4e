//! [`Standardizer`]: z-scores of the feature columns, shared by the detectors that standardize
//! and by an audit that shares a kNN graph of standardized features.

use ndarray::{Array2, ArrayView2};

/// Per-column mean and standard deviation (f64 accumulation); a column without spread (sd below
/// 1e-6 of its mean's magnitude: f32 rounding noise) maps to 0.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
pub struct Standardizer {
    mean: Vec<f64>,
    inv_sd: Vec<f64>,
}

impl Standardizer {
    /// Fits on the rows of `x`.
    pub fn fit(x: ArrayView2<'_, f32>) -> Self {
        let rows: Vec<usize> = (0..x.nrows()).collect();
        Self::fit_rows(x, &rows)
    }

    /// Fits on `rows` of `x`.
    pub fn fit_rows(x: ArrayView2<'_, f32>, rows: &[usize]) -> Self {
        let n = rows.len().max(1) as f64;
        let d = x.ncols();
        // each row as a slice (a copy only for a strided view), so that the sums over the
        // columns run in vector registers: the same sums, row by row
        let row = |i: usize| -> std::borrow::Cow<'_, [f32]> {
            let view = x.row(i);
            match view.to_slice() {
                Some(values) => std::borrow::Cow::Borrowed(values),
                None => std::borrow::Cow::Owned(view.to_vec()),
            }
        };
        let mut mean = vec![0.0f64; d];
        for &i in rows {
            for (m, &v) in mean.iter_mut().zip(row(i).iter()) {
                *m += f64::from(v);
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        let mut var = vec![0.0f64; d];
        for &i in rows {
            for ((s, &v), m) in var.iter_mut().zip(row(i).iter()).zip(&mean) {
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
    pub fn transform(&self, x: ArrayView2<'_, f32>) -> Array2<f32> {
        Array2::from_shape_fn(x.dim(), |(i, j)| {
            ((f64::from(x[[i, j]]) - self.mean[j]) * self.inv_sd[j]) as f32
        })
    }

    /// The z-score of value `v` of column `j`.
    ///
    /// # Panics
    /// If `j` is not a column of the fit.
    pub fn z(&self, j: usize, v: f32) -> f64 {
        (f64::from(v) - self.mean[j]) * self.inv_sd[j]
    }

    /// The z-scores of one row (`z` of each value, rounded to f32) into `out`.
    ///
    /// ```
    /// use ndarray::array;
    /// use poisonguard_core::Standardizer;
    /// let x = array![[1.0f32, 10.0], [3.0, 30.0]];
    /// let s = Standardizer::fit(x.view());
    /// let mut out = [0.0f32; 2];
    /// s.z_row_into(&[3.0, 10.0], &mut out);
    /// assert_eq!(out, [s.z(0, 3.0) as f32, s.z(1, 10.0) as f32]);
    /// ```
    pub fn z_row_into(&self, row: &[f32], out: &mut [f32]) {
        for (((o, &v), &m), &s) in out.iter_mut().zip(row).zip(&self.mean).zip(&self.inv_sd) {
            *o = ((f64::from(v) - m) * s) as f32;
        }
    }

    /// The mean and the inverse standard deviation of column `j` (0 for a column without
    /// spread): `z(j, v) = (v - mean) * inv_sd`.
    ///
    /// # Panics
    /// If `j` is not a column of the fit.
    pub fn column(&self, j: usize) -> (f64, f64) {
        (self.mean[j], self.inv_sd[j])
    }

    /// Columns of the fit.
    pub fn n_features(&self) -> usize {
        self.mean.len()
    }

    /// The map from this standardizer's z-scores to `other`'s (both fitted on the same columns,
    /// on different rows): per column `(a, c)` with `other.z(j, v) = a * self.z(j, v) + c`. A
    /// column without spread here maps to `(0, 0)`.
    pub fn affine_to(&self, other: &Self) -> Vec<(f64, f64)> {
        (0..self.n_features())
            .map(|j| {
                if self.inv_sd[j] == 0.0 {
                    (0.0, 0.0)
                } else {
                    (
                        other.inv_sd[j] / self.inv_sd[j],
                        (self.mean[j] - other.mean[j]) * other.inv_sd[j],
                    )
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn standardizes_and_zeroes_constant_columns() {
        let x = array![[1.0f32, 5.0], [3.0, 5.0]];
        let z = Standardizer::fit(x.view()).transform(x.view());
        assert_eq!(z, array![[-1.0f32, 0.0], [1.0, 0.0]]);
    }

    /// Rows read from a strided view (a transposed array) fit the same scaler as the same rows
    /// held contiguously, bit for bit.
    #[test]
    fn strided_rows_fit_the_same_scaler() {
        let x =
            ndarray::Array2::from_shape_fn((40, 9), |(i, j)| ((i * 7 + j * 3) % 11) as f32 * 0.37);
        let strided = x.t().as_standard_layout().into_owned();
        let rows = [3, 0, 17, 39, 8, 8];
        let (a, b) =
            (Standardizer::fit_rows(x.view(), &rows), Standardizer::fit_rows(strided.t(), &rows));
        assert!(strided.t().row(0).as_slice().is_none(), "the view is strided");
        assert_eq!(a.mean, b.mean);
        assert_eq!(a.inv_sd, b.inv_sd);
    }
}
