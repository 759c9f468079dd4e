use poisonguard_core::ParamError;

use crate::model::Common;

/// ECOD has no model hyperparameters.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EcodModelParams;

/// Checked hyperparameters of [`Ecod`](super::Ecod).
#[derive(Debug, Clone, PartialEq)]
pub struct EcodValidParams {
    pub(crate) model: EcodModelParams,
    pub(crate) common: Common,
}

impl EcodValidParams {
    pub(super) fn check_model(&self) -> Result<(), ParamError> {
        Ok(())
    }
}

/// Unchecked hyperparameters of [`Ecod`](super::Ecod): global fit, automatic threshold.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EcodParams(pub(crate) EcodValidParams);

impl Default for EcodValidParams {
    fn default() -> Self {
        Self { model: EcodModelParams, common: Common::default() }
    }
}
