"""The Python API: inputs turned into the native module's arrays, results into pyarrow."""

from __future__ import annotations

import json
import os
from typing import Any, Callable, NamedTuple, Optional, Sequence, Union

import numpy as np
import pyarrow as pa

from . import _native
from ._native import PoisonguardError

ProgressCallback = Callable[[str, str, int, int], None]
"""``callback(kind, detector, done, total)``: ``("knn", "", rows done, rows)`` while a shared
neighbour graph is built, ``("started", id, 0, 0)`` and ``("finished", id, 0, 0)`` per
detector."""


class Summary:
    """The findings of an audit: the verdict, the findings by threat, per detector its flagged
    rows, class findings and estimate, per source its test. The same document as the command
    line's ``--summary`` file (without the input's path); :meth:`to_dict` gives all of it."""

    def __init__(self, document: dict):
        self._doc = document

    @property
    def verdict(self) -> str:
        """The one-line verdict, e.g. ``"no evidence of poisoning: ..."``."""
        return self._doc["verdict"]

    @property
    def flagged(self) -> int:
        """Rows flagged at the false-discovery rate."""
        return self._doc["flagged"]

    @property
    def fdr(self) -> float:
        """The false-discovery rate of the flags."""
        return self._doc["fdr"]

    @property
    def rows(self) -> int:
        """Rows audited."""
        return self._doc["rows"]

    @property
    def threats(self) -> list:
        """One finding per threat: its detectors, rows flagged on its evidence alone, classes
        declared attacked."""
        return self._doc["threats"]

    @property
    def detectors(self) -> list:
        """Per detector: threshold, flagged rows, class findings (and noise matrix, sources)."""
        return self._doc["detectors"]

    @property
    def estimated_poisoned(self) -> Optional[dict]:
        """The estimate of poisoned rows with its interval, when a detector gives one."""
        return self._doc.get("estimated_poisoned")

    @property
    def failures(self) -> list:
        """Detectors that could not run, with why."""
        return self._doc["failures"]

    def to_dict(self) -> dict:
        """The whole summary document (JSON types)."""
        return json.loads(json.dumps(self._doc))

    def __repr__(self) -> str:
        return f"Summary(rows={self.rows}, flagged={self.flagged}, verdict={self.verdict!r})"


class Audit(NamedTuple):
    """What :func:`scan` returns: the per-row report and the summary."""

    rows: pa.Table
    """One row per input row, in input order: ``row``, ``id``, ``label``, per detector
    ``<id>_score``, ``<id>_flagged``, ``<id>_p``, then ``suspicion``, ``p_value``, ``flagged``,
    ``threats`` (the threats whose own evidence flags the row), ``reasons`` (the command line's
    ``-o`` file)."""
    summary: Summary


def _audit(result: tuple) -> Audit:
    columns, summary = result
    return Audit(pa.table({name: values for name, values in columns}), Summary(json.loads(summary)))


def _as_table(x: Any) -> Optional[pa.Table]:
    """``x`` as a pyarrow Table when it is a table (pyarrow, polars or anything with the Arrow
    C stream, pandas); None otherwise."""
    if isinstance(x, pa.Table):
        return x
    if isinstance(x, pa.RecordBatch):
        return pa.Table.from_batches([x])
    if type(x).__module__.startswith("pandas") and hasattr(x, "columns"):
        return pa.Table.from_pandas(x, preserve_index=False)
    if hasattr(x, "__arrow_c_stream__") and not isinstance(x, (pa.Array, pa.ChunkedArray)):
        return pa.table(x)
    return None


def _list_matrix(column: Union[pa.Array, pa.ChunkedArray], name: str) -> np.ndarray:
    """A list or fixed-size-list column as an ``(n, d)`` array, without a copy where the values
    are contiguous floats."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if column.null_count:
        raise PoisonguardError(f"{name}: {column.null_count} rows are null")
    n = len(column)
    if pa.types.is_fixed_size_list(column.type):
        d = column.type.list_size
        values = column.flatten()
    elif pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        offsets = column.offsets.to_numpy()
        lengths = np.diff(offsets)
        if n and (lengths != lengths[0]).any():
            bad = int(np.argmax(lengths != lengths[0]))
            raise PoisonguardError(
                f"{name}: ragged lists: row 0 holds {lengths[0]} values, row {bad} holds "
                f"{lengths[bad]}"
            )
        d = int(lengths[0]) if n else 0
        values = column.flatten()
    else:
        raise PoisonguardError(f"{name}: expected a list or fixed-size-list column, got {column.type}")
    if values.null_count:
        raise PoisonguardError(f"{name}: {values.null_count} values inside the lists are null")
    if not (pa.types.is_floating(values.type) or pa.types.is_integer(values.type)):
        raise PoisonguardError(f"{name}: list values of type {values.type} are not numbers")
    flat = values.to_numpy(zero_copy_only=False)
    return _float_matrix(flat.reshape(n, d), name)


def _float_matrix(x: np.ndarray, name: str = "X") -> np.ndarray:
    if x.ndim != 2:
        raise PoisonguardError(f"{name}: expected 2 dimensions (rows, features), got {x.ndim}")
    if x.dtype in (np.float32, np.float64):
        return x
    if x.dtype.kind in "iub" or x.dtype == np.float16:
        return x.astype(np.float32)
    raise PoisonguardError(f"{name}: expected numbers, got dtype {x.dtype}")


def _features(x: Any, table: Optional[pa.Table], column: Optional[str], skip: Sequence[str]):
    """The feature matrix and, for a table's numeric columns, their names."""
    if table is None:
        if isinstance(x, (pa.Array, pa.ChunkedArray)):
            return _list_matrix(x, "X"), None
        try:
            array = np.asarray(x)
        except (ValueError, TypeError) as e:  # ragged nested lists
            raise PoisonguardError(f"X: not a rectangular array of numbers: {e}") from None
        return _float_matrix(array), None
    if column is not None:
        if column not in table.column_names:
            raise PoisonguardError(f"column {column!r} not found; columns: {table.column_names}")
        return _list_matrix(table[column], column), None
    lists = [f.name for f in table.schema if pa.types.is_list(f.type)
             or pa.types.is_large_list(f.type) or pa.types.is_fixed_size_list(f.type)]
    if len(lists) == 1:
        return _list_matrix(table[lists[0]], lists[0]), None
    if len(lists) > 1:
        raise PoisonguardError(f"several list columns {lists}: name the features with column=")
    names = [n for n in table.column_names if n not in skip]
    if not names:
        raise PoisonguardError("no feature columns left")
    bad = [n for n in names if not (pa.types.is_floating(table.schema.field(n).type)
                                    or pa.types.is_integer(table.schema.field(n).type))]
    if bad:
        raise PoisonguardError(f"non-numeric feature columns {bad}: drop them or name them as labels, ids or sources")
    for n in names:
        if table[n].null_count:
            raise PoisonguardError(f"column {n!r}: {table[n].null_count} nulls")
    return np.column_stack([table[n].to_numpy() for n in names]).astype(np.float32, copy=False), names


def _labels(y: Any, table: Optional[pa.Table], name: str = "labels"):
    """Labels as an int64 array (integers) or a list of str (anything else)."""
    if y is None:
        return None
    if isinstance(y, str):
        if table is None:
            raise PoisonguardError(f"{name}={y!r} names a column, but X is not a table")
        if y not in table.column_names:
            raise PoisonguardError(f"{name}: column {y!r} not found; columns: {table.column_names}")
        y = table[y]
    if isinstance(y, (pa.Array, pa.ChunkedArray)):
        if y.null_count:
            raise PoisonguardError(f"{name}: {y.null_count} values are null")
        y = y.to_numpy(zero_copy_only=False)
    elif hasattr(y, "to_numpy") and not isinstance(y, np.ndarray):  # pandas, polars series
        y = y.to_numpy()
    array = np.asarray(y)
    if array.ndim != 1:
        raise PoisonguardError(f"{name}: expected one value per row (1 dimension), got {array.ndim}")
    if array.dtype.kind in "iub":
        return array.astype(np.int64, copy=False)
    if array.dtype.kind == "f":
        if not np.isfinite(array).all() or (array != np.round(array)).any():
            raise PoisonguardError(f"{name}: float values that are not whole numbers; pass classes as integers or strings")
        return array.astype(np.int64)
    values = array.tolist()
    if any(v is None for v in values):
        raise PoisonguardError(f"{name}: missing values")
    return [str(v) for v in values]


def _strings(v: Any, table: Optional[pa.Table], name: str) -> Optional[list]:
    if v is None:
        return None
    if isinstance(v, str):
        if table is None or v not in table.column_names:
            raise PoisonguardError(f"{name}: column {v!r} not found")
        v = table[v]
    if isinstance(v, (pa.Array, pa.ChunkedArray)):
        v = v.to_pylist()
    return [str(s) for s in v]


def _trusted(v: Any, table: Optional[pa.Table]) -> Optional[list]:
    if v is None:
        return None
    if isinstance(v, str):
        if table is None or v not in table.column_names:
            raise PoisonguardError(f"trusted: column {v!r} not found")
        v = table[v].to_numpy(zero_copy_only=False)
    return [bool(b) for b in np.asarray(v).ravel()]


def _progress(progress: Union[None, bool, ProgressCallback]) -> Optional[ProgressCallback]:
    if progress is None or progress is False:
        return None
    if callable(progress):
        return progress
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    state: dict = {}

    def update(kind: str, detector: str, done: int, total: int) -> None:
        if kind == "knn":
            bar = state.get("knn")
            if bar is None:
                bar = state["knn"] = tqdm(total=total, desc="neighbours", unit="row", leave=False)
            bar.update(done - bar.n)
            if done >= total:
                bar.close()
                state.pop("knn")
        elif kind == "finished":
            state["detectors"] = state.get("detectors", 0) + 1
            tqdm.write(f"poisonguard: {detector} done ({state['detectors']} detectors)")

    return update


def _inputs(X, labels, column, ids, sources, trusted):
    table = _as_table(X)
    skip = [c for c in (labels, ids, sources, trusted) if isinstance(c, str)]
    x, names = _features(X, table, column, skip)
    return (x, names, _labels(labels, table), _strings(ids, table, "ids"),
            _strings(sources, table, "sources"), _trusted(trusted, table))


def _audit_call(native, X, labels, column, ids, sources, detectors, fdr, seed, per_class, knn,
                knn_probes, trusted, progress):
    """``native`` (``_native.scan`` or ``_native.fit``) on the inputs, converted once."""
    x, names, y, ids, sources, trusted = _inputs(X, labels, column, ids, sources, trusted)
    return native(
        x, y, feature_names=names, ids=ids, sources=sources,
        detectors=None if detectors is None else list(detectors), fdr=fdr, seed=seed,
        per_class=per_class, knn=knn, knn_probes=knn_probes, trusted=trusted,
        progress=_progress(progress))


def scan(
    X: Any,
    labels: Any = None,
    *,
    column: Optional[str] = None,
    ids: Any = None,
    sources: Any = None,
    detectors: Optional[Sequence[str]] = None,
    fdr: float = 0.1,
    seed: Optional[int] = None,
    per_class: bool = False,
    knn: str = "auto",
    knn_probes: Optional[int] = None,
    trusted: Any = None,
    progress: Union[None, bool, ProgressCallback] = None,
    reference: Any = None,
    reference_labels: Any = None,
) -> Audit:
    """Audits every row of ``X`` for poisoning, as ``poisonguard scan`` does.

    ``X``: a 2-D numpy array (float32 is used as given, other numbers converted once); a pyarrow
    Table, RecordBatch, list or fixed-size-list array; a polars DataFrame or anything exposing
    the Arrow C stream; a pandas DataFrame. From a table the features are its one list column
    (or ``column``), else every numeric column but those named by ``labels``, ``ids``,
    ``sources`` and ``trusted``.

    ``labels``, ``ids``, ``sources``, ``trusted``: one value per row, or a column name of a
    table ``X``. Integer labels stay integers; anything else is read as text. ``trusted`` marks
    rows known clean. ``detectors``: ids (``poisonguard.detector_ids()``), else the default set
    for what the input has. ``fdr``: false-discovery rate of the flags. ``seed``: of every
    randomized step (by default the command line's). ``knn``: ``"auto"``, ``"exact"`` or
    ``"approx"``; ``knn_probes``: the cells the approximate neighbour search probes per row
    (default 16; more find more of the true neighbours, slower; ``--knn-probes``).
    ``progress``: ``True`` for tqdm when installed, or a :data:`ProgressCallback`.

    ``reference``: a vetted table in the same feature space (any form ``X`` takes; from a table,
    the same ``column`` or the same named feature columns), with ``reference_labels`` (values or
    a column name of it) where ``X`` has labels, as ``poisonguard scan --reference``: its rows are
    audited beside ``X``'s as trusted rows, so the label nulls are measured on them; the rows
    returned are ``X``'s, and ``summary["reference"]`` says how many of the reference's rows were
    flagged.

    Returns an :class:`Audit` ``(rows, summary)``; raises :class:`PoisonguardError` on bad
    input with the command line's message.
    """
    x, names, y, ids, sources, trusted = _inputs(X, labels, column, ids, sources, trusted)
    ref_x = ref_y = None
    if reference is not None:
        ref_table = _as_table(reference)
        if names is not None and ref_table is not None \
                and all(c in ref_table.column_names for c in names):
            # X's named feature columns, read by name from the reference
            if isinstance(reference_labels, str):
                reference_labels = _labels(reference_labels, ref_table, "reference_labels")
            reference = ref_table.select(names)
        ref_x, _, ref_y, _, _, _ = _inputs(reference, reference_labels, column, None, None, None)
    elif reference_labels is not None:
        raise PoisonguardError("reference_labels given without a reference")
    return _audit(_native.scan(
        x, y, feature_names=names, ids=ids, sources=sources,
        detectors=None if detectors is None else list(detectors), fdr=fdr, seed=seed,
        per_class=per_class, knn=knn, knn_probes=knn_probes, trusted=trusted,
        progress=_progress(progress), reference=ref_x, reference_labels=ref_y))


class Model:
    """The detectors of an audit fitted on a trusted table (:func:`fit`): scores incoming tables
    against it (:meth:`scan`) and travels as the command line's model file (:meth:`to_bytes`,
    :meth:`save`; ``poisonguard scan --model`` reads it, and :meth:`load` reads what
    ``poisonguard fit --save`` wrote). Pickles as those bytes."""

    def __init__(self, native: "_native.Model", fdr: float, training: Optional[Audit] = None):
        self._native = native
        self._fdr = fdr
        self.training = training
        """The audit of the training rows (a model read from bytes has none)."""

    @property
    def detectors(self) -> list:
        """Ids of the fitted detectors, in audit order."""
        return self._native.detectors

    @property
    def n_features(self) -> int:
        """Feature columns the model was fitted on."""
        return self._native.n_features

    @property
    def n_training_rows(self) -> int:
        """Rows the model was fitted on."""
        return self._native.n_training_rows

    @property
    def fdr(self) -> float:
        """The false-discovery rate of :meth:`scan`'s flags."""
        return self._fdr

    def scan(self, X: Any, labels: Any = None, *, column: Optional[str] = None, ids: Any = None,
             sources: Any = None, progress: Union[None, bool, ProgressCallback] = None) -> Audit:
        """Scores the rows of ``X`` against the model (inputs as :func:`scan`)."""
        x, names, y, ids, sources, _ = _inputs(X, labels, column, ids, sources, None)
        return _audit(self._native.scan(x, y, feature_names=names, ids=ids, sources=sources, progress=_progress(progress)))

    def to_bytes(self) -> bytes:
        """The model file's bytes."""
        return self._native.to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes, fdr: float = 0.1) -> "Model":
        """The model in ``data`` (a model file's bytes); refuses damaged or foreign bytes."""
        return cls(_native.Model.from_bytes(bytes(data), fdr), fdr)

    def save(self, path: Union[str, os.PathLike]) -> None:
        """Writes the model file to ``path``."""
        with open(path, "wb") as f:
            f.write(self.to_bytes())

    def __reduce__(self):
        return (Model.from_bytes, (self.to_bytes(), self._fdr))

    def __repr__(self) -> str:
        return (f"Model(detectors={self.detectors}, n_training_rows={self.n_training_rows}, "
                f"n_features={self.n_features}, fdr={self.fdr})")


def load(path: Union[str, os.PathLike], fdr: float = 0.1) -> Model:
    """Reads a model file (written by :meth:`Model.save` or ``poisonguard fit --save``)."""
    with open(path, "rb") as f:
        return Model.from_bytes(f.read(), fdr)


def fit(
    X: Any,
    labels: Any = None,
    *,
    column: Optional[str] = None,
    ids: Any = None,
    sources: Any = None,
    detectors: Optional[Sequence[str]] = None,
    fdr: float = 0.1,
    seed: Optional[int] = None,
    per_class: bool = False,
    knn: str = "auto",
    knn_probes: Optional[int] = None,
    trusted: Any = None,
    progress: Union[None, bool, ProgressCallback] = None,
) -> Model:
    """Fits the audit on ``X`` (a trusted table; arguments as :func:`scan`) and returns the
    :class:`Model`, with the audit of the training rows as ``model.training``."""
    native, columns, summary = _audit_call(_native.fit, X, labels, column, ids, sources, detectors,
                                           fdr, seed, per_class, knn, knn_probes, trusted,
                                           progress)
    return Model(native, fdr, _audit((columns, summary)))
