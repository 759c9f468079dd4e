use poisonguard_core::ParamError;

use crate::model::{Common, check_k};

/// Default number of neighbours: above the size of the groups of rows LOF should call outlying
/// (see the [module docs](super), "Default k = 50"; PyOD's default is 20).
pub const DEFAULT_K: usize = 50;

/// Model hyperparameters of LOF.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LofModelParams {
    pub(crate) k: usize,
}

/// Checked hyperparameters of [`Lof`](super::Lof).
#[derive(Debug, Clone, PartialEq)]
pub struct LofValidParams {
    pub(crate) model: LofModelParams,
    pub(crate) common: Common,
}

impl LofValidParams {
    /// Neighbours per row.
    pub fn k(&self) -> usize {
        self.model.k
    }

    pub(super) fn check_model(&self) -> Result<(), ParamError> {
        check_k(self.model.k)
    }
}

/// Unchecked hyperparameters of [`Lof`](super::Lof): `k` = 50, global fit, automatic threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct LofParams(pub(crate) LofValidParams);

impl Default for LofParams {
    fn default() -> Self {
        Self(LofValidParams { model: LofModelParams { k: DEFAULT_K }, common: Common::default() })
    }
}

impl LofParams {
    /// Sets the number of neighbours (>= 1, < rows).
    pub fn k(mut self, k: usize) -> Self {
        self.0.model.k = k;
        self
    }
}
