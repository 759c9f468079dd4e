"""The audit of a table held in parts by another engine (Ray, Spark): the batched audit's plan
in four steps, each part touched by the engine's workers, the global steps on the driver.

1. the driver gathers every row's labels and sources (a few bytes a row) and the number of
   rows of every part, in table order, and draws the seeded class-stratified reference sample;
2. the workers send the reference rows' features; the driver fits the detectors on them;
3. the fitted model travels to the workers as bytes; each scores its part;
4. the driver assembles the parts' scores: Benjamini-Hochberg over every row's combined
   p-value, sources tested on all their rows, class findings from the reference fit.

The result is the single-machine batched audit's (``poisonguard scan --memory-limit``) for the
same table, seed and reference size.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Optional, Sequence

import numpy as np
import pyarrow as pa

from . import _native
from ._api import Audit, PoisonguardError, _audit, _features, _labels, _progress, _strings


class Columns:
    """Which columns of a part are what: the features (one list column, ``column``, or every
    numeric column but the others), the labels and the sources."""

    def __init__(self, column: Optional[str], labels: Optional[str], sources: Optional[str]):
        for name, value in (("labels", labels), ("sources", sources), ("column", column)):
            if value is not None and not isinstance(value, str):
                raise PoisonguardError(f"{name}: name a column of the table (got {type(value).__name__})")
        self.column, self.labels, self.sources = column, labels, sources

    def features(self, part: pa.Table):
        skip = [c for c in (self.labels, self.sources) if c]
        return _features(part, part, self.column, skip)

    def keys(self, part: pa.Table):
        """The part's labels (int64 array or list of str) and sources."""
        return _labels(self.labels, part), _strings(self.sources, part, "sources")


def describe(columns: Columns, part: Optional[pa.Table]) -> tuple:
    """What the driver needs of one part, read where the part is: its rows, its keys (labels,
    sources), and its feature count and names (one row's features read)."""
    if part is None or part.num_rows == 0:
        return 0, (None, None), 0, None
    x, names = columns.features(part.slice(0, 1))
    return part.num_rows, columns.keys(part), x.shape[1], names


class Layout:
    """The parts of a table in row order, from each part's :func:`describe`: their row counts
    and first rows, the keys of the parts with rows, and the features they agree on."""

    def __init__(self, described: Sequence[tuple], what: str):
        self.counts = [int(d[0]) for d in described]
        shapes = {(d[2], tuple(d[3]) if d[3] else None) for d in described if d[0]}
        if len(shapes) != 1:
            raise PoisonguardError(f"the {what} disagree on the features: {shapes}")
        self.n_features, names = shapes.pop()
        self.feature_names = list(names) if names else None
        self.starts = np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)
        self.keys = [d[1] for d in described if d[0]]


def parse_size(size: Any) -> int:
    """Bytes from an int or a text such as ``"512M"``, ``"2GiB"`` (as ``--memory-limit``)."""
    if isinstance(size, (int, np.integer)):
        return int(size)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B)?\s*", str(size), re.IGNORECASE)
    if not m:
        raise PoisonguardError(f"memory_limit {size!r}: a number of bytes, e.g. 2G or 512MiB")
    return int(float(m.group(1)) * 1024 ** "_KMGT".index(m.group(2).upper() or "_"))


def memory_budget(memory_limit: Any) -> int:
    """The budget: ``memory_limit``, else half of this machine's memory (as the CLI)."""
    if memory_limit is not None:
        return parse_size(memory_limit)
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024 // 2
    raise PoisonguardError("cannot read the machine's memory: give memory_limit")


def concat_keys(keys: list):
    """The labels (and sources) of every part, concatenated in table order."""
    labels = [k[0] for k in keys]
    if all(v is None for v in labels):
        y = None
    elif any(v is None for v in labels):
        raise PoisonguardError("some parts have labels and some do not")
    elif all(isinstance(v, np.ndarray) for v in labels):
        y = np.concatenate(labels)
    else:
        y = [str(v) for part in labels for v in (part.tolist() if isinstance(part, np.ndarray) else part)]
    sources = [k[1] for k in keys]
    s = None if all(v is None for v in sources) else [v for part in sources for v in (part or [])]
    return y, s


def run(
    layout: Layout,
    take: Callable[[np.ndarray], np.ndarray],
    score: Callable[[bytes], list],
    *,
    detectors: Optional[Sequence[str]],
    fdr: float,
    seed: Optional[int],
    per_class: bool,
    knn: str,
    knn_probes: Optional[int],
    reference_rows: Optional[int],
    memory_limit: Any,
    progress: Any,
) -> Audit:
    """The four steps over the parts of ``layout``: ``take(reference rows) -> features`` and
    ``score(model bytes) -> the parts' scores`` are the engine's."""
    n = int(layout.starts[-1])
    n_features = layout.n_features
    if n == 0:
        raise PoisonguardError("the table has no rows")
    y, sources = concat_keys(layout.keys)
    if reference_rows is None:
        budget = memory_budget(memory_limit)
        # the command line audits a table that fits in memory whole: every row is the reference
        fits = n * n_features * 4 * 3 <= budget
        reference_rows = n if fits else _native.batch_plan(budget, n, n_features, seed)[0]
    reference = _native.reference_sample(n, int(reference_rows), y, seed)
    x = take(reference)
    fit = _native.fit_reference(
        x, reference.tolist(), n, y, sources=sources, feature_names=layout.feature_names,
        detectors=None if detectors is None else list(detectors), fdr=fdr, seed=seed,
        per_class=per_class, knn=knn, knn_probes=knn_probes, progress=_progress(progress))
    parts = score(fit.model_bytes())
    return _audit(fit.assemble(parts))


_MODEL: dict = {}


def model_of(data: bytes) -> "_native.Model":
    """The model in ``data``, decoded once per worker process: the next part a worker scores
    against the same model reuses it, with the search indexes its detectors built on the first
    part (an index over the reference rows of a large table takes seconds to build)."""
    import hashlib

    key = hashlib.blake2b(data, digest_size=16).digest()
    if key not in _MODEL:
        _MODEL.clear()
        _MODEL[key] = _native.Model.from_bytes(data)
    return _MODEL[key]


def part_rows(reference: np.ndarray, start: int, count: int) -> np.ndarray:
    """The reference rows inside rows ``start..start + count``, as positions in the part."""
    lo, hi = np.searchsorted(reference, [start, start + count])
    return (reference[lo:hi] - start).astype(np.int64)
