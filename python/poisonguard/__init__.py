"""Audit machine-learning training data for poisoning.

``poisonguard.scan(X, labels)`` scores every row of a feature matrix (raw features or model
embeddings) for poisoning — backdoor triggers, label manipulation, injected samples,
near-duplicate flooding — and returns the per-row report as a :class:`pyarrow.Table` with a
:class:`Summary` of the findings. ``poisonguard.fit`` fits the audit on a trusted table and
returns a :class:`Model` that scores incoming tables against it and saves to the command line's
model format (``poisonguard fit --save`` / ``scan --model``).

>>> import numpy as np, poisonguard
>>> X = np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32)
>>> y = np.repeat([0, 1, 2], 100)
>>> rows, summary = poisonguard.scan(X, y)
>>> rows.num_rows
300
"""

from ._api import Audit, Model, Summary, fit, load, scan
from ._native import MODEL_VERSION, PoisonguardError, __version__, detector_ids

__all__ = [
    "Audit",
    "MODEL_VERSION",
    "Model",
    "PoisonguardError",
    "Summary",
    "__version__",
    "detector_ids",
    "fit",
    "load",
    "scan",
]
