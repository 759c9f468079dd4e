use poisonguard_core::ParamError;

use crate::model::Common;

/// Model hyperparameters of the robust Mahalanobis detector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MahalanobisModelParams {
    pub(crate) support_fraction: Option<f64>,
}

/// Checked hyperparameters of [`Mahalanobis`](super::Mahalanobis).
#[derive(Debug, Clone, PartialEq)]
pub struct MahalanobisValidParams {
    pub(crate) model: MahalanobisModelParams,
    pub(crate) common: Common,
}

impl MahalanobisValidParams {
    /// Share of rows in the MCD support; `None` = `(n + d + 1) / 2n` (maximal breakdown).
    pub fn support_fraction(&self) -> Option<f64> {
        self.model.support_fraction
    }

    pub(super) fn check_model(&self) -> Result<(), ParamError> {
        match self.model.support_fraction {
            Some(f) if !(f > 0.0 && f <= 1.0) => Err(ParamError::OutOfRange {
                name: "support_fraction",
                value: f,
                allowed: "(0, 1]",
            }),
            _ => Ok(()),
        }
    }
}

/// Unchecked hyperparameters of [`Mahalanobis`](super::Mahalanobis): maximal-breakdown support,
/// global fit, automatic (chi-square) threshold, seeded.
#[derive(Debug, Clone, PartialEq)]
pub struct MahalanobisParams(pub(crate) MahalanobisValidParams);

impl Default for MahalanobisParams {
    fn default() -> Self {
        Self(MahalanobisValidParams {
            model: MahalanobisModelParams { support_fraction: None },
            common: Common::default(),
        })
    }
}

impl MahalanobisParams {
    /// Sets the share of rows in the MCD support, in (0, 1].
    pub fn support_fraction(mut self, fraction: f64) -> Self {
        self.0.model.support_fraction = Some(fraction);
        self
    }
}
