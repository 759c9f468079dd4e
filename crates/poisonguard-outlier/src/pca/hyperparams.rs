use poisonguard_core::ParamError;

use crate::model::Common;

/// Model hyperparameters of the PCA detector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PcaModelParams {
    pub(crate) standardize: bool,
}

/// Checked hyperparameters of [`Pca`](super::Pca).
#[derive(Debug, Clone, PartialEq)]
pub struct PcaValidParams {
    pub(crate) model: PcaModelParams,
    pub(crate) common: Common,
}

impl PcaValidParams {
    /// Whether features are standardized first.
    pub fn standardize(&self) -> bool {
        self.model.standardize
    }

    pub(super) fn check_model(&self) -> Result<(), ParamError> {
        Ok(())
    }
}

/// Unchecked hyperparameters of [`Pca`](super::Pca): standardized features, global fit,
/// automatic threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct PcaParams(pub(crate) PcaValidParams);

impl Default for PcaParams {
    fn default() -> Self {
        Self(PcaValidParams {
            model: PcaModelParams { standardize: true },
            common: Common::default(),
        })
    }
}

impl PcaParams {
    /// Whether to standardize features first (PyOD's default: yes).
    pub fn standardize(mut self, standardize: bool) -> Self {
        self.0.model.standardize = standardize;
        self
    }
}
