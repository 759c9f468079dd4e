"""The audit of a Ray Dataset: ``poisonguard.ray.audit(dataset, labels="label")``.

The dataset's blocks are the parts (see ``poisonguard._parts``): Ray tasks read each block's
labels and sources, send the reference rows, and score the block against the model fitted on
the driver, which travels once through the object store. A task whose worker dies is retried
(``max_retries``), so a lost worker costs time, not results. The report equals
``poisonguard scan --memory-limit`` of the same table with the same seed.

The rows are the dataset's, in the order its blocks come (the audit executes it with
``preserve_order``). ``ray.data.read_parquet`` does not keep a file's row order: on a 10^6-row
file of 20 row groups (Ray 2.60) it gave 5 blocks, the first starting at row group 5, and the
reference sample, hence the fit and every score, then differ from the CLI's on the file.
:func:`read_parquet` reads Parquet files row group by row group in Ray tasks and keeps their
order.

>>> import ray, poisonguard.ray
>>> ds = poisonguard.ray.read_parquet("datasets/real-embeddings/cifar10_resnet18_3class_3000.parquet")
>>> rows, summary = poisonguard.ray.audit(ds, labels="label")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from typing import Any, Optional, Sequence

import numpy as np
import pyarrow as pa
import ray

from . import _native
from ._api import Audit
from ._parts import Columns, model_of, part_rows, run

RETRIES = 3
"""Times a task is retried after its worker process dies."""


def _table(block: Any) -> pa.Table:
    return block if isinstance(block, pa.Table) else pa.Table.from_pandas(block)


@ray.remote(max_retries=RETRIES)
def _describe(block: Any, columns: Columns):
    part = _table(block)
    x, names = columns.features(part.slice(0, 1)) if part.num_rows else (np.zeros((0, 0)), None)
    return part.num_rows, columns.keys(part), x.shape[1], names


@ray.remote(max_retries=RETRIES)
def _take(block: Any, columns: Columns, rows: np.ndarray) -> np.ndarray:
    part = _table(block).take(pa.array(rows, pa.int64()))
    return np.asarray(columns.features(part)[0], dtype=np.float32)


@ray.remote(max_retries=RETRIES)
def _score(block: Any, columns: Columns, model: bytes, start: int) -> bytes:
    kill = os.environ.get("POISONGUARD_TEST_KILL_ONCE")
    if kill and not os.path.exists(kill):
        # fault injection for the tests: the first task to get here kills its worker process
        open(kill, "w").close()
        os._exit(1)
    part = _table(block)
    x, names = columns.features(part)
    labels, _ = columns.keys(part)
    return model_of(model).score_part(x, labels, start=start, feature_names=names)


@ray.remote(max_retries=RETRIES)
def _row_group(path: str, group: int) -> pa.Table:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).read_row_group(group)


def read_parquet(paths: Any) -> "ray.data.Dataset":
    """A Ray Dataset of the Parquet file(s) ``paths`` (a path or a list, in that order), one
    block per row group read by a Ray task, in file and row-group order: the table
    ``poisonguard scan`` reads."""
    import pyarrow.parquet as pq

    paths = [str(paths)] if isinstance(paths, (str, os.PathLike)) else [str(p) for p in paths]
    refs = [_row_group.remote(p, g) for p in paths for g in range(pq.ParquetFile(p).num_row_groups)]
    return ray.data.from_arrow_refs(refs)


def audit(
    dataset: "ray.data.Dataset",
    labels: Optional[str] = None,
    *,
    column: Optional[str] = None,
    sources: Optional[str] = None,
    detectors: Optional[Sequence[str]] = None,
    fdr: float = 0.1,
    seed: Optional[int] = None,
    per_class: bool = False,
    knn: str = "auto",
    reference_rows: Optional[int] = None,
    memory_limit: Any = None,
    progress: Any = None,
) -> Audit:
    """Audits every row of a Ray Dataset, in its row order; returns ``(rows, summary)`` as
    :func:`poisonguard.scan` does.

    ``labels``, ``sources``, ``column``: column names (the features are the one list column,
    ``column``, or every numeric column but the labels and sources). ``reference_rows``: the
    rows the detectors are fitted on; by default the command line's choice for
    ``memory_limit`` (bytes or text such as ``"8G"``; default half this machine's memory):
    every row when the table fits, else the batched audit's plan. Other options as
    :func:`poisonguard.scan`.
    """
    columns = Columns(column, labels, sources)
    # the blocks in the dataset's row order, whatever order the executor finishes them in: a
    # dataset executes with the context it was created with (at 10^6 rows read from one file,
    # the global context's setting left the blocks shuffled and every score different)
    context = dataset.context
    kept = context.execution_options.preserve_order
    context.execution_options.preserve_order = True
    try:
        blocks = dataset.to_arrow_refs()
    finally:
        context.execution_options.preserve_order = kept
    described = ray.get([_describe.remote(b, columns) for b in blocks])
    counts = [d[0] for d in described]
    shapes = {(d[2], tuple(d[3]) if d[3] else None) for d in described if d[0]}
    if len(shapes) != 1:
        raise _native.PoisonguardError(f"the blocks disagree on the features: {shapes}")
    d, names = shapes.pop()
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def take(reference: np.ndarray) -> np.ndarray:
        reference = reference.astype(np.int64)
        jobs = [_take.remote(b, columns, part_rows(reference, int(s), c))
                for b, s, c in zip(blocks, starts, counts) if c]
        parts = [p for p in ray.get(jobs) if len(p)]
        return np.concatenate(parts) if parts else np.zeros((0, d), np.float32)

    def score(model: bytes, part_starts: list) -> list:
        shared = ray.put(model)
        return ray.get([_score.remote(b, columns, shared, int(s))
                        for b, s, c in zip(blocks, part_starts, counts) if c])

    return run(counts, [d[1] for d in described], d, list(names) if names else None, take, score,
               detectors=detectors, fdr=fdr, seed=seed, per_class=per_class, knn=knn,
               reference_rows=reference_rows, memory_limit=memory_limit, progress=progress)
