"""Bad inputs raise `PoisonguardError` (a `ValueError`) with a message; none crashes the
interpreter."""

import numpy as np
import pyarrow as pa
import pytest

import poisonguard
from poisonguard import PoisonguardError

rng = np.random.default_rng(0)
X = rng.normal(size=(120, 4)).astype(np.float32)
Y = np.repeat([0, 1, 2], 40)


def refused(match, *args, **kwargs):
    with pytest.raises(PoisonguardError, match=match):
        poisonguard.scan(*args, **kwargs)


def test_bad_features():
    nan = X.copy()
    nan[7, 2] = np.nan
    refused("row 7", nan, Y)
    inf = X.copy()
    inf[3, 0] = np.inf
    refused("row 3", inf, Y)
    refused("dtype", np.array([["a", "b"], ["c", "d"]]), [0, 1])
    refused("dtype", X.astype(np.complex64), Y)
    refused("2 dimensions", X[:, 0], Y)
    refused("not a rectangular", [[1.0, 2.0], [3.0]], None)
    refused("no rows|empty|0 rows", np.zeros((0, 4), np.float32), None)
    refused("no feature|0 columns|features", np.zeros((10, 0), np.float32), None)


def test_bad_lists():
    ragged = pa.array([[1.0, 2.0], [3.0], [4.0, 5.0]], pa.list_(pa.float32()))
    refused("ragged", ragged)
    refused("null", pa.array([[1.0, 2.0], None, [4.0, 5.0]], pa.list_(pa.float32())))
    refused("null", pa.array([[1.0, None], [3.0, 2.0]], pa.list_(pa.float32())))
    refused("not numbers", pa.array([["a"], ["b"]], pa.list_(pa.string())))
    table = pa.table({"a": pa.array([[1.0]] * 3, pa.list_(pa.float32())),
                      "b": pa.array([[1.0]] * 3, pa.list_(pa.float32()))})
    refused("column=", table)
    refused("not found", table, column="c")
    refused("non-numeric", pa.table({"x": [1.0, 2.0], "s": ["a", "b"]}))


def test_bad_labels():
    refused("length|rows|labels", X, Y[:-1])
    refused("single class", X, np.zeros(len(X), dtype=np.int64))
    refused("whole numbers", X, Y + 0.5)
    refused("missing", X, [None] + ["a"] * (len(X) - 1))
    refused("not found", pa.table({"x": [1.0, 2.0]}), labels="label")
    refused("not a table", X, labels="label")
    refused("1 dimension", X, Y.reshape(-1, 1))


def test_bad_options():
    refused("unknown detector", X, Y, detectors=["nope"])
    refused("fdr", X, Y, fdr=1.5)
    refused("knn", X, Y, knn="fast")
    refused("knn_probes=0", X, Y, knn="approx", knn_probes=0)
    refused("knn=\"exact\" searches every row", X, Y, knn="exact", knn_probes=4)
    refused("trusted", X, Y, trusted=[True] * (len(X) + 5))
    refused("trusted", X, Y, trusted=[True] * 5)
    refused("ids|length|rows", X, Y, ids=["a"])
    with pytest.raises(PoisonguardError, match="k|neighbours|rows"):
        poisonguard.scan(X[:3], detectors=["knn_distance"])
