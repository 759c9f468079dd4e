"""Type stubs of the native module (crates/poisonguard-py)."""

from typing import Callable, Optional, Sequence, Union

import numpy as np

MODEL_VERSION: int
__version__: str

class PoisonguardError(ValueError):
    """An input, an option or a model that poisonguard refuses, with the command line's message."""

_Columns = list[tuple[str, Union[np.ndarray, list[str]]]]
_Progress = Optional[Callable[[str, str, int, int], None]]
_Labels = Union[np.ndarray, list[str], None]

def scan(
    x: np.ndarray,
    labels: _Labels = None,
    *,
    feature_names: Optional[list[str]] = None,
    ids: Optional[list[str]] = None,
    sources: Optional[list[str]] = None,
    detectors: Optional[list[str]] = None,
    fdr: float = 0.1,
    seed: Optional[int] = None,
    per_class: bool = False,
    knn: str = "auto",
    knn_probes: Optional[int] = None,
    trusted: Optional[list[bool]] = None,
    progress: _Progress = None,
    reference: Optional[np.ndarray] = None,
    reference_labels: _Labels = None,
) -> tuple[_Columns, str]: ...
def fit(
    x: np.ndarray,
    labels: _Labels = None,
    *,
    feature_names: Optional[list[str]] = None,
    ids: Optional[list[str]] = None,
    sources: Optional[list[str]] = None,
    detectors: Optional[list[str]] = None,
    fdr: float = 0.1,
    seed: Optional[int] = None,
    per_class: bool = False,
    knn: str = "auto",
    knn_probes: Optional[int] = None,
    trusted: Optional[list[bool]] = None,
    progress: _Progress = None,
) -> tuple["Model", _Columns, str]: ...
def detector_ids() -> tuple[list[str], list[str]]: ...

class Model:
    @property
    def detectors(self) -> list[str]: ...
    @property
    def n_training_rows(self) -> int: ...
    @property
    def n_features(self) -> int: ...
    def scan(
        self,
        x: np.ndarray,
        labels: _Labels = None,
        *,
        feature_names: Optional[list[str]] = None,
        ids: Optional[list[str]] = None,
        sources: Optional[list[str]] = None,
        progress: _Progress = None,
    ) -> tuple[_Columns, str]: ...
    def to_bytes(self) -> bytes: ...
    @staticmethod
    def from_bytes(data: bytes, fdr: float = 0.1) -> "Model": ...
