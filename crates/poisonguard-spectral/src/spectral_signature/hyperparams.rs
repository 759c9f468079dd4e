use poisonguard_core::{ParamError, ParamGuard, ThresholdRule};

/// Default cap on subspace iterations per class.
pub const DEFAULT_MAX_ITER: usize = 300;
/// Default relative tolerance on the top two eigenvalues between iterations.
pub const DEFAULT_TOL: f64 = 1e-10;

/// Which spectral-signature score.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SignatureScore {
    /// The paper's: squared projection of the centred row, in units of the class's robust
    /// variance along the direction (chi-square(1) null). The default.
    #[default]
    Centred,
    /// The reference code's (MadryLab/backdoor_data_poisoning): `|<x, v>|` of the uncentred row,
    /// in units of the robust sd. It ranks by the signed centred projection plus the class
    /// mean's projection, so it favours one side of the class; no stated null.
    Reference,
}

/// Checked hyperparameters of [`SpectralSignature`](super::SpectralSignature).
#[derive(Debug, Clone, PartialEq)]
pub struct SpectralSignatureValidParams {
    pub(crate) seed: u64,
    pub(crate) max_iter: usize,
    pub(crate) tol: f64,
    pub(crate) threshold: ThresholdRule,
    pub(crate) score: SignatureScore,
}

impl SpectralSignatureValidParams {
    /// Which score.
    pub fn score(&self) -> SignatureScore {
        self.score
    }

    /// Seed of the random start of the subspace iteration (used only for classes where
    /// `min(rows, features) > 128`).
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Cap on subspace iterations per class.
    pub fn max_iter(&self) -> usize {
        self.max_iter
    }

    /// Relative tolerance on the top two eigenvalues between iterations.
    pub fn tol(&self) -> f64 {
        self.tol
    }

    /// How the score threshold is fitted.
    pub fn threshold(&self) -> ThresholdRule {
        self.threshold
    }
}

/// Unchecked hyperparameters of [`SpectralSignature`](super::SpectralSignature); a consuming
/// builder. `fit` checks them first.
#[derive(Debug, Clone, PartialEq)]
pub struct SpectralSignatureParams(SpectralSignatureValidParams);

impl Default for SpectralSignatureParams {
    fn default() -> Self {
        Self(SpectralSignatureValidParams {
            seed: poisonguard_core::DEFAULT_SEED,
            max_iter: DEFAULT_MAX_ITER,
            tol: DEFAULT_TOL,
            threshold: ThresholdRule::Auto,
            score: SignatureScore::Centred,
        })
    }
}

impl SpectralSignatureParams {
    /// Sets the seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.0.seed = seed;
        self
    }

    /// Sets the iteration cap (>= 1).
    pub fn max_iter(mut self, max_iter: usize) -> Self {
        self.0.max_iter = max_iter;
        self
    }

    /// Sets the tolerance, in (0, 1).
    pub fn tol(mut self, tol: f64) -> Self {
        self.0.tol = tol;
        self
    }

    /// Sets the threshold rule.
    pub fn threshold(mut self, rule: ThresholdRule) -> Self {
        self.0.threshold = rule;
        self
    }

    /// Chooses the paper's centred score (default) or the reference code's uncentred one.
    pub fn score(mut self, score: SignatureScore) -> Self {
        self.0.score = score;
        self
    }
}

impl ParamGuard for SpectralSignatureParams {
    type Checked = SpectralSignatureValidParams;
    type Error = ParamError;

    fn check_ref(&self) -> Result<&Self::Checked, ParamError> {
        let p = &self.0;
        if p.max_iter == 0 {
            return Err(ParamError::CountOutOfRange {
                name: "max_iter",
                value: p.max_iter,
                allowed: "[1, inf)",
            });
        }
        if !(p.tol > 0.0 && p.tol < 1.0) {
            return Err(ParamError::OutOfRange { name: "tol", value: p.tol, allowed: "(0, 1)" });
        }
        p.threshold.check()?;
        Ok(p)
    }

    fn check(self) -> Result<Self::Checked, ParamError> {
        self.check_ref()?;
        Ok(self.0)
    }
}

impl poisonguard_core::Configure for SpectralSignatureParams {
    fn with_threshold(self, rule: ThresholdRule) -> Self {
        self.threshold(rule)
    }

    fn with_seed(self, seed: u64) -> Self {
        self.seed(seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_check_has_its_error() {
        let p = SpectralSignatureParams::default();
        assert!(p.clone().check().is_ok());
        assert!(matches!(
            p.clone().max_iter(0).check(),
            Err(ParamError::CountOutOfRange { name: "max_iter", .. })
        ));
        assert!(matches!(
            p.clone().tol(0.0).check(),
            Err(ParamError::OutOfRange { name: "tol", .. })
        ));
        assert!(matches!(
            p.threshold(ThresholdRule::Contamination(2.0)).check(),
            Err(ParamError::OutOfRange { name: "contamination", .. })
        ));
    }
}
