"""The audit of a Spark DataFrame: ``poisonguard.spark.audit(dataframe, labels="label")``.

The DataFrame's partitions are the parts (see ``poisonguard._parts``), read through
``mapInArrow`` three times: each partition's row count, labels and sources; the reference rows'
features; each partition's scores against the model fitted on the driver, which travels as a
broadcast variable. The row order is the DataFrame's (partition by partition); the report
equals ``poisonguard scan --memory-limit`` of the same table with the same seed.

>>> from pyspark.sql import SparkSession
>>> import poisonguard.spark
>>> spark = SparkSession.builder.master("local[2]").getOrCreate()  # doctest: +SKIP
>>> df = spark.read.parquet("datasets/tabular/wine.parquet")  # doctest: +SKIP
>>> rows, summary = poisonguard.spark.audit(df, labels="label")  # doctest: +SKIP
"""

from __future__ import annotations

import pickle
from typing import Any, Iterator, Optional, Sequence

import numpy as np
import pyarrow as pa

from . import _native
from ._api import Audit
from ._parts import Columns, Layout, describe, model_of, part_rows, run

_OUT = "part long, payload binary"


def _partition() -> int:
    from pyspark import TaskContext

    return TaskContext.get().partitionId()


def _whole(batches: Iterator[pa.RecordBatch]) -> Optional[pa.Table]:
    batches = [b for b in batches if b.num_rows]
    return pa.Table.from_batches(batches) if batches else None


def _emit(part: int, value: Any) -> Iterator[pa.RecordBatch]:
    yield pa.RecordBatch.from_pydict({"part": [part], "payload": [pickle.dumps(value)]},
                                     schema=pa.schema([("part", pa.int64()), ("payload", pa.binary())]))


def _collect(df, fn) -> dict:
    """``fn`` over every partition: ``{partition: value}``."""
    table = df.mapInArrow(fn, _OUT).toArrow()
    return {p: pickle.loads(v) for p, v in zip(table["part"].to_pylist(), table["payload"].to_pylist())}


def audit(
    dataframe: "pyspark.sql.DataFrame",
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
    """Audits every row of a Spark DataFrame; arguments and result as
    :func:`poisonguard.ray.audit`. Cache the DataFrame when reading it is costly: it is read
    three times."""
    columns = Columns(column, labels, sources)
    spark = dataframe.sparkSession

    described = _collect(
        dataframe, lambda batches: _emit(_partition(), describe(columns, _whole(batches))))
    order = sorted(described)
    if order != list(range(len(order))):
        raise _native.PoisonguardError(f"partitions {order} are not 0..{len(order) - 1}")
    layout = Layout([described[p] for p in order], "partitions")
    starts, counts, d = layout.starts, layout.counts, layout.n_features

    def take(reference: np.ndarray) -> np.ndarray:
        shared = spark.sparkContext.broadcast(reference.astype(np.int64))

        def pick(batches):
            p = _partition()
            rows = part_rows(shared.value, int(starts[p]), int(counts[p]))
            part = _whole(batches)
            if part is None or not len(rows):
                return _emit(p, np.zeros((0, d), np.float32))
            x = columns.features(part.take(pa.array(rows)))[0]
            return _emit(p, np.asarray(x, dtype=np.float32))

        picked = _collect(dataframe, pick)
        shared.unpersist()
        return np.concatenate([picked[p] for p in order]) if order else np.zeros((0, d), np.float32)

    def score(model: bytes) -> list:
        shared = spark.sparkContext.broadcast(model)

        def scored(batches):
            p = _partition()
            part = _whole(batches)
            if part is None:
                return _emit(p, None)
            x, names = columns.features(part)
            y, _ = columns.keys(part)
            fitted = model_of(shared.value)
            return _emit(p, fitted.score_part(x, y, start=int(starts[p]), feature_names=names))

        parts = _collect(dataframe, scored)
        shared.unpersist()
        return [parts[p] for p in order if parts[p] is not None]

    return run(layout, take, score, detectors=detectors, fdr=fdr, seed=seed, per_class=per_class,
               knn=knn, knn_probes=knn_probes, reference_rows=reference_rows,
               memory_limit=memory_limit, progress=progress)
