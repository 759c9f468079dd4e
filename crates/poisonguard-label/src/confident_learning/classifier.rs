//! Your own classifier in confident learning: the [`ProbabilisticClassifier`] trait, the
//! built-in [`LogisticRegression`] behind it, and (feature `linfa`) [`LinfaClassifier`], an
//! adapter for any linfa model that gives class probabilities.
//!
//! Confident learning needs out-of-sample class probabilities. With
//! [`ConfidentLearningParams::classifier`](super::ConfidentLearningParams::classifier) poisonguard
//! cross-validates the given classifier with the same seeded, stratified folds as its built-in one
//! (fitted in parallel, in fold order, so a deterministic classifier gives the same probabilities
//! for any thread count), checks what it returns (shape, finite, non-negative, rows summing to 1
//! within 1e-3, then renormalized), and keeps the fold models to score new rows by their mean
//! probabilities.
//!
//! ```
//! use ndarray::Array2;
//! use poisonguard_core::{Dataset, Detector, FittedDetector, Labels, LabelValue};
//! use poisonguard_label::ConfidentLearning;
//! use poisonguard_label::confident_learning::LogisticRegression;
//! let x = Array2::from_shape_fn((80, 2), |(i, j)| (i % 2) as f32 * 4.0 + ((i * 7 + j * 5) % 9) as f32 * 0.2);
//! let mut y: Vec<LabelValue> = (0..80).map(|i| LabelValue::Int((i % 2) as i64)).collect();
//! y[0] = LabelValue::Int(1);
//! let data = Dataset::new(x)?.with_labels(Labels::from_values(&y))?;
//! let fitted = ConfidentLearning::params()
//!     .classifier(LogisticRegression { c: 1.0, max_iter: 100 })
//!     .fit(&data)?;
//! let s = fitted.training().scores();
//! assert!((1..80).all(|i| s[0] > s[i]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::sync::Arc;

use ndarray::{Array2, ArrayView2, Axis};

use super::cross_val::stratified_folds;
use super::logistic::{LogisticSettings, ScaledLogistic};

/// An error of a user's classifier, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A classifier that gives class probabilities: what confident learning cross-validates.
pub trait ProbabilisticClassifier: Send + Sync {
    /// A short name, for messages.
    fn name(&self) -> String;

    /// Fits on the rows of `x` (raw features, as the dataset holds them) with classes `y` in
    /// `0..n_classes`; a class may be absent from `y` (a small class in a cross-validation fold).
    ///
    /// # Errors
    /// Whatever the classifier cannot fit.
    fn fit(
        &self,
        x: ArrayView2<'_, f32>,
        y: &[u32],
        n_classes: usize,
    ) -> Result<Box<dyn ClassProbabilities>, BoxError>;
}

/// A fitted [`ProbabilisticClassifier`].
pub trait ClassProbabilities: Send + Sync {
    /// Class probabilities of the rows of `x`: `rows x n_classes` (the `n_classes` of the fit,
    /// column `j` = class `j`), each row summing to 1.
    ///
    /// # Errors
    /// Whatever the model cannot predict.
    fn predict_proba(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f64>, BoxError>;
}

/// The built-in classifier with a fixed inverse L2 strength: multinomial logistic regression on
/// features standardized by the fit's rows, L-BFGS (scikit-learn's objective,
/// `C * sum(log loss) + |W|^2 / 2`). Confident learning's default path is the same model with
/// `C` chosen by out-of-fold log loss ([`C_GRID`](super::C_GRID)).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogisticRegression {
    /// Inverse L2 strength, > 0.
    pub c: f64,
    /// L-BFGS iteration cap, >= 1.
    pub max_iter: usize,
}

impl ProbabilisticClassifier for LogisticRegression {
    fn name(&self) -> String {
        format!("poisonguard logistic regression (C = {})", self.c)
    }

    fn fit(
        &self,
        x: ArrayView2<'_, f32>,
        y: &[u32],
        n_classes: usize,
    ) -> Result<Box<dyn ClassProbabilities>, BoxError> {
        if !(self.c > 0.0 && self.c.is_finite()) || self.max_iter == 0 {
            return Err(format!("C must be in (0, inf), max_iter >= 1: {self:?}").into());
        }
        let rows: Vec<usize> = (0..x.nrows()).collect();
        let s = LogisticSettings { c: self.c, max_iter: self.max_iter, gtol: 1e-4 };
        let mut path = ScaledLogistic::fit_path(x, y, &rows, n_classes, s, &[self.c]);
        let model = path.pop().ok_or("no model fitted")?;
        Ok(Box::new(BuiltIn { model, n_classes }))
    }
}

/// Refuses rows of another width than the `fitted` features a model was fitted on.
fn check_width(x: ArrayView2<'_, f32>, fitted: usize) -> Result<(), BoxError> {
    if x.ncols() == fitted {
        Ok(())
    } else {
        Err(format!("{} features, the model was fitted on {fitted}", x.ncols()).into())
    }
}

/// A fitted [`LogisticRegression`].
struct BuiltIn {
    model: ScaledLogistic,
    n_classes: usize,
}

impl ClassProbabilities for BuiltIn {
    fn predict_proba(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f64>, BoxError> {
        check_width(x, self.model.n_features())?;
        let rows: Vec<usize> = (0..x.nrows()).collect();
        Ok(Array2::from_shape_vec((x.nrows(), self.n_classes), self.model.predict(x, &rows))?)
    }
}

/// A user's classifier as confident learning holds it (compared by identity).
#[derive(Clone)]
pub(crate) struct Classifier(pub(crate) Arc<dyn ProbabilisticClassifier>);

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.name())
    }
}

impl PartialEq for Classifier {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// The fold models of a user's classifier (not saved with the fitted detector).
#[derive(Clone, Default)]
pub(crate) struct FoldModels(pub(crate) Vec<Arc<dyn ClassProbabilities>>);

impl std::fmt::Debug for FoldModels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FoldModels({} models)", self.0.len())
    }
}

impl FoldModels {
    /// Mean probabilities of the fold models for the rows of `x`, checked.
    pub(crate) fn predict(&self, x: ArrayView2<'_, f32>, k: usize) -> Result<Array2<f64>, String> {
        let mut sum = Array2::<f64>::zeros((x.nrows(), k));
        for m in &self.0 {
            sum += &checked(m.predict_proba(x), x.nrows(), k)?;
        }
        sum /= self.0.len().max(1) as f64;
        Ok(sum)
    }
}

/// The probabilities a classifier returned, checked and renormalized.
fn checked(p: Result<Array2<f64>, BoxError>, rows: usize, k: usize) -> Result<Array2<f64>, String> {
    let mut p = p.map_err(|e| format!("the classifier failed to predict: {e}"))?;
    if p.dim() != (rows, k) {
        return Err(format!(
            "the classifier returned {:?} probabilities for {rows} rows of {k} classes",
            p.dim()
        ));
    }
    for (i, mut row) in p.axis_iter_mut(Axis(0)).enumerate() {
        let sum: f64 = row.sum();
        if row.iter().any(|v| !v.is_finite() || *v < 0.0) || (sum - 1.0).abs() > 1e-3 {
            return Err(format!(
                "the classifier's probabilities of row {i} are not a distribution: {row}"
            ));
        }
        row /= sum;
    }
    Ok(p)
}

/// One fold of [`cross_val_custom`]: its held-out rows, their probabilities, its model.
type FoldFit = (Vec<usize>, Array2<f64>, Arc<dyn ClassProbabilities>);

/// Out-of-fold probabilities of every row by the stratified folds of the built-in classifier
/// (`stratified_folds(classes, k, folds, seed)`), and the fold models. Folds are fitted in
/// parallel with the `parallel` feature, results gathered in fold order.
pub(crate) fn cross_val_custom(
    classifier: &dyn ProbabilisticClassifier,
    x: ArrayView2<'_, f32>,
    classes: &[u32],
    k: usize,
    folds: usize,
    seed: u64,
) -> Result<(Array2<f64>, FoldModels), String> {
    let fold = stratified_folds(classes, k, folds, seed);
    let work = |f: usize| -> Result<FoldFit, String> {
        let (test, train): (Vec<usize>, Vec<usize>) =
            (0..classes.len()).partition(|&i| fold[i] == f);
        let y: Vec<u32> = train.iter().map(|&i| classes[i]).collect();
        let model = classifier
            .fit(x.select(Axis(0), &train).view(), &y, k)
            .map_err(|e| format!("{} failed to fit fold {f}: {e}", classifier.name()))?;
        let p = checked(model.predict_proba(x.select(Axis(0), &test).view()), test.len(), k)?;
        Ok((test, p, Arc::from(model)))
    };
    let parts: Vec<_> = crate::map_range(folds, work).into_iter().collect::<Result<_, _>>()?;
    let mut out = Array2::zeros((classes.len(), k));
    let mut models = Vec::with_capacity(folds);
    for (rows, p, model) in parts {
        for (r, &i) in rows.iter().enumerate() {
            out.row_mut(i).assign(&p.row(r));
        }
        models.push(model);
    }
    Ok((out, FoldModels(models)))
}

#[cfg(feature = "linfa")]
pub use self::linfa_adapter::LinfaClassifier;

#[cfg(feature = "linfa")]
mod linfa_adapter {
    use std::marker::PhantomData;

    use linfa::DatasetBase;
    use linfa::traits::Fit;
    use ndarray::{Array1, Array2, ArrayView2};
    use poisonguard_core::Standardizer;

    use super::{BoxError, ClassProbabilities, ProbabilisticClassifier};

    /// How a [`LinfaClassifier`] reads probabilities off a fitted linfa model: the
    /// `rows x columns` probabilities of standardized `f64` records and the class (`0..k`) of
    /// each column.
    pub type ProbaFn<O> = fn(&O, ArrayView2<'_, f64>) -> (Array2<f64>, Vec<usize>);

    /// Any linfa model that gives class probabilities, as a [`ProbabilisticClassifier`]:
    /// `params` fits on `f64` records standardized by the fit's rows (mean 0, sd 1 per column,
    /// as linfa's logistic regression recommends) with `usize` targets; `proba` reads the
    /// fitted model's probabilities and column classes (classes absent from a fold get
    /// probability 0).
    ///
    /// With feature `linfa-logistic`, `LinfaClassifier::multi_logistic` is linfa's multinomial
    /// logistic regression.
    pub struct LinfaClassifier<P, O, E> {
        params: P,
        proba: ProbaFn<O>,
        name: String,
        _error: PhantomData<fn() -> E>,
    }

    impl<P, O, E> std::fmt::Debug for LinfaClassifier<P, O, E> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("LinfaClassifier").field("name", &self.name).finish_non_exhaustive()
        }
    }

    impl<P, O, E> LinfaClassifier<P, O, E> {
        /// Wraps linfa hyperparameters `params` and the function that reads the fitted model's
        /// probabilities.
        pub fn new(name: impl Into<String>, params: P, proba: ProbaFn<O>) -> Self {
            Self { params, proba, name: name.into(), _error: PhantomData }
        }
    }

    #[cfg(feature = "linfa-logistic")]
    impl
        LinfaClassifier<
            linfa_logistic::MultiLogisticRegression<f64>,
            linfa_logistic::MultiFittedLogisticRegression<f64, usize>,
            linfa_logistic::error::Error,
        >
    {
        /// linfa's multinomial logistic regression (`linfa-logistic`, L-BFGS from argmin)
        /// with L2 strength `alpha` (its objective, `sum(log loss) + alpha |W|^2 / 2`, is
        /// scikit-learn's at `C = 1 / alpha`) and iteration cap `max_iter`.
        ///
        /// ```
        /// use poisonguard_label::confident_learning::LinfaClassifier;
        /// use poisonguard_label::ConfidentLearning;
        /// let clf = LinfaClassifier::multi_logistic(1.0, 100);
        /// let params = ConfidentLearning::params().classifier(clf);
        /// # let _ = params;
        /// ```
        pub fn multi_logistic(alpha: f64, max_iter: u64) -> Self {
            let params = linfa_logistic::MultiLogisticRegression::default()
                .alpha(alpha)
                .max_iterations(max_iter);
            Self::new(format!("linfa-logistic multinomial (alpha = {alpha})"), params, |m, x| {
                (m.predict_probabilities(&x), m.classes().to_vec())
            })
        }
    }

    impl<P, O, E> ProbabilisticClassifier for LinfaClassifier<P, O, E>
    where
        P: Fit<Array2<f64>, Array1<usize>, E, Object = O> + Send + Sync,
        O: Send + Sync + 'static,
        E: std::error::Error + Send + Sync + 'static + From<linfa::Error>,
    {
        fn name(&self) -> String {
            self.name.clone()
        }

        fn fit(
            &self,
            x: ArrayView2<'_, f32>,
            y: &[u32],
            n_classes: usize,
        ) -> Result<Box<dyn ClassProbabilities>, BoxError> {
            let rows: Vec<usize> = (0..x.nrows()).collect();
            let scaler = Standardizer::fit_rows(x, &rows);
            let records = standardized(&scaler, x);
            let targets: Array1<usize> = y.iter().map(|&c| c as usize).collect();
            let model = self.params.fit(&DatasetBase::new(records, targets))?;
            Ok(Box::new(Fitted { model, scaler, proba: self.proba, n_classes }))
        }
    }

    fn standardized(scaler: &Standardizer, x: ArrayView2<'_, f32>) -> Array2<f64> {
        Array2::from_shape_fn(x.dim(), |(i, j)| scaler.z(j, x[[i, j]]))
    }

    struct Fitted<O> {
        model: O,
        scaler: Standardizer,
        proba: ProbaFn<O>,
        n_classes: usize,
    }

    impl<O: Send + Sync> ClassProbabilities for Fitted<O> {
        fn predict_proba(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f64>, BoxError> {
            super::check_width(x, self.scaler.n_features())?;
            let (p, classes) = (self.proba)(&self.model, standardized(&self.scaler, x).view());
            if p.ncols() != classes.len() || classes.iter().any(|&c| c >= self.n_classes) {
                return Err(format!(
                    "{} probability columns for classes {classes:?} of {}",
                    p.ncols(),
                    self.n_classes
                )
                .into());
            }
            let mut out = Array2::zeros((x.nrows(), self.n_classes));
            for (col, &c) in classes.iter().enumerate() {
                out.column_mut(c).assign(&p.column(col));
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConfidentLearning;
    use poisonguard_core::{Dataset, Detector, FittedDetector, LabelValue, Labels};

    /// Three noisy clusters of 60 rows, every tenth label flipped to the next class.
    fn flipped() -> (Dataset, Vec<bool>) {
        let x = Array2::from_shape_fn((180, 3), |(i, j)| {
            let c = (i % 3) as f32;
            c * 3.0 * f32::from(u8::from(j == i % 3)) + ((i * 37 + j * 11) % 17) as f32 * 0.15
        });
        let truth: Vec<bool> = (0..180).map(|i| i % 10 == 0).collect();
        let y: Vec<LabelValue> = (0..180)
            .map(|i| LabelValue::Int(((i % 3) + usize::from(truth[i])) as i64 % 3))
            .collect();
        (Dataset::new(x).unwrap().with_labels(Labels::from_values(&y)).unwrap(), truth)
    }

    #[test]
    fn the_built_in_model_as_a_user_classifier_gives_the_built_in_probabilities() {
        let (data, _) = flipped();
        let built_in = ConfidentLearning::params().c(1.0).fit(&data).unwrap();
        let as_user = ConfidentLearning::params()
            .classifier(LogisticRegression { c: 1.0, max_iter: 100 })
            .fit(&data)
            .unwrap();
        // The same model up to rounding: the built-in path fits every fold on one standardized
        // matrix (held-out rows weigh 0, the fold's standardizer applied as an affine map), the
        // user path on a standardized copy of the fold's rows; their f32 products round
        // differently (measured: 8e-8 at most).
        let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
        let (p, q) = (built_in.probabilities(), as_user.probabilities());
        assert!(close(p.as_slice().unwrap(), q.as_slice().unwrap()));
        assert!(close(built_in.training().scores(), as_user.training().scores()));
        assert_eq!(built_in.training().flagged(), as_user.training().flagged());
        // new rows are scored by the fold models' mean, as the built-in ensemble
        let again = as_user.detect(&data).unwrap();
        let built_in_again = built_in.detect(&data).unwrap();
        assert!(close(again.scores(), built_in_again.scores()));
    }

    /// Probabilities of `rows` rows of `classes` classes.
    type Proba = fn(usize, usize) -> Array2<f64>;

    /// Returns what it was built to return, whatever the rows.
    struct Broken(Proba);

    impl ProbabilisticClassifier for Broken {
        fn name(&self) -> String {
            "broken".into()
        }
        fn fit(
            &self,
            _: ArrayView2<'_, f32>,
            _: &[u32],
            _: usize,
        ) -> Result<Box<dyn ClassProbabilities>, BoxError> {
            Ok(Box::new(Broken(self.0)))
        }
    }

    impl ClassProbabilities for Broken {
        fn predict_proba(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f64>, BoxError> {
            Ok((self.0)(x.nrows(), 3))
        }
    }

    #[test]
    fn a_classifier_that_returns_no_distribution_is_a_clear_error() {
        let (data, _) = flipped();
        let cases: [(Proba, &str); 3] = [
            (|n, k| Array2::from_elem((n, k - 1), 0.5), "probabilities for"),
            (|n, k| Array2::from_elem((n, k), f64::NAN), "not a distribution"),
            (|n, k| Array2::from_elem((n, k), 0.5), "not a distribution"),
        ];
        for (f, expected) in cases {
            let err = ConfidentLearning::params().classifier(Broken(f)).fit(&data).unwrap_err();
            assert!(err.to_string().contains(expected), "{err}");
        }
    }

    #[test]
    fn user_fold_models_are_not_saved_and_say_so() {
        let (data, _) = flipped();
        let fitted = ConfidentLearning::params()
            .classifier(LogisticRegression { c: 1.0, max_iter: 100 })
            .fit(&data)
            .unwrap();
        let json = rmp_serde::to_vec(&fitted).unwrap();
        let back: ConfidentLearning = rmp_serde::from_slice(&json).unwrap();
        let err = back.detect(&data).unwrap_err();
        assert!(err.to_string().contains("new rows need pred_probs"), "{err}");
    }

    #[cfg(feature = "linfa-logistic")]
    #[test]
    fn linfa_logistic_regression_finds_the_flipped_labels() {
        let (data, truth) = flipped();
        let fitted = ConfidentLearning::params()
            .classifier(LinfaClassifier::multi_logistic(1.0, 100))
            .fit(&data)
            .unwrap();
        let auc = poisonguard_core::metrics::roc_auc(fitted.training().scores(), &truth).unwrap();
        assert!(auc > 0.95, "ROC-AUC {auc}");
        let p = fitted.probabilities();
        assert!(p.rows().into_iter().all(|r| (r.sum() - 1.0).abs() < 1e-9));
        assert_eq!(fitted.detect(&data).unwrap().scores().len(), 180);
    }
}
