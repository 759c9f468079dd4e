"""Models between Python and the command line: the same bytes, the same scores, both ways."""

import pickle

import numpy as np
import pyarrow.parquet as pq
import pytest

import poisonguard
from conftest import ROOT, same_rows


def halves(table):
    n = table.num_rows
    order = np.random.default_rng(0).permutation(n)
    return table.take(np.sort(order[: n // 2])), table.take(np.sort(order[n // 2:]))


def test_a_model_fitted_in_python_scores_in_the_cli_and_back(wine, cli, tmp_path):
    trusted, incoming = halves(wine)
    pq.write_table(trusted, tmp_path / "trusted.parquet")
    pq.write_table(incoming, tmp_path / "incoming.parquet")

    model = poisonguard.fit(trusted, labels="label", seed=5)
    assert model.n_training_rows == trusted.num_rows and model.n_features == 13
    assert model.training.rows.num_rows == trusted.num_rows
    model.save(tmp_path / "py.model")

    # the command line fits the same model, byte for byte
    cli("fit", str(tmp_path / "trusted.parquet"), "--label", "label", "--seed", "5",
        "--save", str(tmp_path / "cli.model"))
    assert (tmp_path / "cli.model").read_bytes() == (tmp_path / "py.model").read_bytes()

    # the Python model scores in the command line as it scores in Python, and the reverse
    ours, _ = model.scan(incoming, labels="label")
    for saved in ("py.model", "cli.model"):
        out = tmp_path / f"{saved}.parquet"
        cli("scan", str(tmp_path / "incoming.parquet"), "--label", "label", "--model",
            str(tmp_path / saved), "-o", str(out))
        assert same_rows(pq.read_table(out), ours), saved
        loaded, _ = poisonguard.load(tmp_path / saved).scan(incoming, labels="label")
        assert loaded.equals(ours), saved


def test_models_pickle_and_travel_as_bytes(wine):
    model = poisonguard.fit(wine, labels="label", detectors=["ecod", "knn_label"], fdr=0.05)
    again = pickle.loads(pickle.dumps(model))
    assert again.detectors == ["ecod", "knn_label"] and again.fdr == 0.05
    assert again.to_bytes() == model.to_bytes()
    first, _ = model.scan(wine, labels="label")
    second, _ = again.scan(wine, labels="label")
    assert first.equals(second)
    assert poisonguard.Model.from_bytes(model.to_bytes()).to_bytes() == model.to_bytes()


def test_damaged_models_are_refused(wine):
    data = poisonguard.fit(wine, labels="label", detectors=["ecod"]).to_bytes()
    for bad in (b"", b"not a model", data[: len(data) // 2], data[:-1]):
        with pytest.raises(poisonguard.PoisonguardError):
            poisonguard.Model.from_bytes(bad)
    rng = np.random.default_rng(1)
    for _ in range(50):
        damaged = bytearray(data)
        at = int(rng.integers(0, len(data) - 8))
        damaged[at:at + 8] = rng.integers(0, 256, 8, dtype=np.uint8).tobytes()
        if bytes(damaged) == data:
            continue
        with pytest.raises(poisonguard.PoisonguardError):
            poisonguard.Model.from_bytes(bytes(damaged))
