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
from ._parts import Columns, Layout, describe, model_of, part_rows, run

RETRIES = 3
"""Times a task is retried after its worker process dies."""


def _table(block: Any) -> pa.Table:
    return block if isinstance(block, pa.Table) else pa.Table.from_pandas(block)


@ray.remote(max_retries=RETRIES)
def _describe(block: Any, columns: Columns) -> tuple:
    return describe(columns, _table(block))


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
    knn_probes: Optional[int] = None,
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
    layout = Layout(ray.get([_describe.remote(b, columns) for b in blocks]), "blocks")
    parts = [(b, int(s), c) for b, s, c in zip(blocks, layout.starts, layout.counts) if c]

    def take(reference: np.ndarray) -> np.ndarray:
        reference = reference.astype(np.int64)
        jobs = [_take.remote(b, columns, part_rows(reference, s, c)) for b, s, c in parts]
        picked = [p for p in ray.get(jobs) if len(p)]
        return np.concatenate(picked) if picked else np.zeros((0, layout.n_features), np.float32)

    def score(model: bytes) -> list:
        shared = ray.put(model)
        return ray.get([_score.remote(b, columns, shared, s) for b, s, _ in parts])

    return run(layout, take, score, detectors=detectors, fdr=fdr, seed=seed, per_class=per_class,
               knn=knn, knn_probes=knn_probes, reference_rows=reference_rows,
               memory_limit=memory_limit, progress=progress)
