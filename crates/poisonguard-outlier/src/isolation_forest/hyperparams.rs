use poisonguard_core::ParamError;

use crate::model::Common;

/// Default number of trees (the paper's and PyOD's).
pub const DEFAULT_N_TREES: usize = 100;
/// Default subsample size per tree (the paper's psi = 256).
pub const DEFAULT_MAX_SAMPLES: usize = 256;

/// Model hyperparameters of the isolation forest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IsolationForestModelParams {
    pub(crate) n_trees: usize,
    pub(crate) max_samples: usize,
}

/// Checked hyperparameters of [`IsolationForest`](super::IsolationForest).
#[derive(Debug, Clone, PartialEq)]
pub struct IsolationForestValidParams {
    pub(crate) model: IsolationForestModelParams,
    pub(crate) common: Common,
}

impl IsolationForestValidParams {
    /// Trees in the forest.
    pub fn n_trees(&self) -> usize {
        self.model.n_trees
    }

    /// Rows drawn per tree (capped at the number of rows).
    pub fn max_samples(&self) -> usize {
        self.model.max_samples
    }

    pub(super) fn check_model(&self) -> Result<(), ParamError> {
        if self.model.n_trees == 0 {
            return Err(ParamError::CountOutOfRange {
                name: "n_trees",
                value: 0,
                allowed: "[1, inf)",
            });
        }
        if self.model.max_samples < 2 {
            return Err(ParamError::CountOutOfRange {
                name: "max_samples",
                value: self.model.max_samples,
                allowed: "[2, inf)",
            });
        }
        Ok(())
    }
}

/// Unchecked hyperparameters of [`IsolationForest`](super::IsolationForest): 100 trees of 256
/// rows, global fit, automatic threshold, seeded.
#[derive(Debug, Clone, PartialEq)]
pub struct IsolationForestParams(pub(crate) IsolationForestValidParams);

impl Default for IsolationForestParams {
    fn default() -> Self {
        Self(IsolationForestValidParams {
            model: IsolationForestModelParams {
                n_trees: DEFAULT_N_TREES,
                max_samples: DEFAULT_MAX_SAMPLES,
            },
            common: Common::default(),
        })
    }
}

impl IsolationForestParams {
    /// Sets the number of trees (>= 1).
    pub fn n_trees(mut self, n_trees: usize) -> Self {
        self.0.model.n_trees = n_trees;
        self
    }

    /// Sets the rows drawn per tree (>= 2).
    pub fn max_samples(mut self, max_samples: usize) -> Self {
        self.0.model.max_samples = max_samples;
        self
    }
}
