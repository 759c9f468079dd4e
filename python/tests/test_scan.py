"""The Python audit against the command line on shipped tables, and its inputs: numpy, pyarrow,
polars, pandas give the same report."""

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import poisonguard
from conftest import ROOT


def test_scan_equals_the_command_line(badnets, cli, tmp_path):
    out = tmp_path / "report.parquet"
    summary = tmp_path / "summary.json"
    cli("scan", str(ROOT / "datasets/poisoned/digits_badnets.parquet"), "--label", "label",
        "--truth", "is_poison", "-o", str(out), "--summary", str(summary))
    expected = pq.read_table(out)

    rows, found = poisonguard.scan(badnets.drop_columns(["is_poison"]), labels="label")

    assert rows.column_names == expected.column_names
    for name in expected.column_names:
        assert rows[name].to_pylist() == expected[name].to_pylist(), name
    import json
    cli_summary = json.loads(summary.read_text())
    doc = found.to_dict()
    for key in ("verdict", "threats", "flagged", "estimated_poisoned", "detectors"):
        assert doc[key] == cli_summary[key], key
    # the backdoor is found: the 20 poisoned rows rank first by suspicion
    truth = badnets["is_poison"].to_numpy()
    top = np.argsort(-rows["suspicion"].to_numpy())[: truth.sum()]
    assert truth[top].mean() >= 0.8
    assert found.flagged == int(np.asarray(rows["flagged"]).sum())
    assert found.verdict.startswith("evidence of poisoning")


def test_every_input_kind_gives_the_same_report(cifar):
    n = cifar.num_rows
    matrix = cifar["embedding"].combine_chunks().flatten().to_numpy().reshape(n, 512)
    labels = cifar["label"].to_numpy()
    reference, summary = poisonguard.scan(matrix, labels, seed=7)
    assert reference.num_rows == n
    assert summary.rows == n

    variants = {
        "pyarrow table": lambda: poisonguard.scan(cifar, "label", seed=7),
        "record batch": lambda: poisonguard.scan(cifar.to_batches()[0], "label", seed=7)
        if len(cifar.to_batches()) == 1 else poisonguard.scan(cifar, "label", seed=7),
        "chunked list column": lambda: poisonguard.scan(cifar["embedding"], cifar["label"], seed=7),
        "polars": lambda: poisonguard.scan(pl.from_arrow(cifar), "label", seed=7),
        "variable lists": lambda: poisonguard.scan(
            cifar.cast(pa.schema([("embedding", pa.list_(pa.float32())), ("label", pa.int64())])),
            "label", seed=7),
        "float64 numpy": lambda: poisonguard.scan(matrix.astype(np.float64), list(labels), seed=7),
        "fortran order": lambda: poisonguard.scan(np.asfortranarray(matrix), labels, seed=7),
    }
    for name, run in variants.items():
        rows, _ = run()
        assert rows.equals(reference), name


def test_numeric_columns_of_a_table_are_the_features(wine):
    x = np.column_stack([wine[c].to_numpy() for c in wine.column_names if c != "label"])
    expected, _ = poisonguard.scan(x, wine["label"].to_numpy())
    # the same scores; the reasons name the table's columns
    scores = [c for c in expected.column_names if c != "reasons"]
    for frame in (wine, wine.to_pandas(), pl.from_arrow(wine)):
        rows, _ = poisonguard.scan(frame, labels="label")
        assert rows.select(scores).equals(expected.select(scores)), type(frame)
    # text labels stay text
    names = np.array(["a", "b", "c"])[wine["label"].to_numpy()]
    rows, summary = poisonguard.scan(x, names)
    assert rows["label"].to_pylist()[:3] == list(names[:3])
    assert rows["suspicion"].equals(expected["suspicion"])
    assert summary.to_dict()["classes"] == 3


def test_ids_sources_and_detectors(wine):
    x = np.column_stack([wine[c].to_numpy() for c in wine.column_names if c != "label"])
    ids = [f"w{i}" for i in range(len(x))]
    sources = ["good" if i % 3 else "bad" for i in range(len(x))]
    rows, summary = poisonguard.scan(x, wine["label"].to_numpy(), ids=ids, sources=sources,
                                     detectors=["ecod", "knn_label"], fdr=0.2)
    assert rows.column_names[:3] == ["row", "id", "label"]
    assert rows["id"].to_pylist() == ids
    assert [d["id"] for d in summary.detectors] == ["ecod", "knn_label"]
    assert summary.fdr == 0.2
    assert "sources" in summary.to_dict()
    every, defaults = poisonguard.detector_ids()
    assert set(defaults) <= set(every) and "spectre" in every


def test_same_seed_same_report_and_progress_is_reported(wine):
    x = np.column_stack([wine[c].to_numpy() for c in wine.column_names if c != "label"])
    y = wine["label"].to_numpy()
    events = []
    first, _ = poisonguard.scan(x, y, seed=3, progress=lambda *e: events.append(e))
    second, _ = poisonguard.scan(x, y, seed=3)
    assert first.equals(second)
    finished = [e[1] for e in events if e[0] == "finished"]
    detectors = [c[: -len("_score")] for c in first.column_names if c.endswith("_score")]
    assert sorted(finished) == sorted(detectors)
    # a failing callback does not stop the audit
    def broken(*_):
        raise RuntimeError("callback")
    third, _ = poisonguard.scan(x, y, seed=3, progress=broken)
    assert third.equals(first)


def test_a_clean_table_says_so(cifar):
    rows, summary = poisonguard.scan(cifar, "label")
    assert summary.flagged <= 0.01 * rows.num_rows
    assert not any(t["declared_classes"] for t in summary.threats)
    assert repr(summary).startswith("Summary(rows=600")


def test_trusted_rows_measure_the_label_law_and_are_counted(cifar):
    # a fifth of the rows trusted (about 40 of each class's 200): knn_label measures every class's law on
    # them, and the summary counts how many of them were flagged
    labels = cifar["label"].to_pylist()
    trusted = [i % 5 == 0 for i in range(len(labels))]
    rows, summary = poisonguard.scan(cifar, "label", trusted=trusted)
    alone, _ = poisonguard.scan(cifar, "label")
    flagged = rows["flagged"].to_pylist()
    doc = summary.to_dict()
    assert doc["trusted"] == {"rows": sum(trusted),
                              "flagged": sum(f for f, t in zip(flagged, trusted) if t)}
    assert rows["knn_label_p"].to_pylist() != alone["knn_label_p"].to_pylist()
    knn = next(d for d in doc["detectors"] if d["id"] == "knn_label")
    for c in knn["classes"]:
        assert c["trusted_rows"] == sum(t for t, y in zip(trusted, labels) if y == c["label"])
        assert c["trusted_rows"] >= 30
    # the other detectors do not read them
    assert rows["ecod_p"].to_pylist() == alone["ecod_p"].to_pylist()


def test_a_reference_table_as_the_command_line(cli, tmp_path):
    """``scan(..., reference=...)`` is ``poisonguard scan --reference``: the same rows (the audited
    table's alone), and the summary says how many of the reference's rows were flagged."""
    data = pq.read_table(ROOT / "datasets/real-embeddings/cifar10_resnet18_3class_3000.parquet")
    audited = data.take(list(range(0, 3000, 5)))
    vetted = data.take(list(range(1, 3000, 5)))
    paths = {name: tmp_path / f"{name}.parquet" for name in ("audited", "vetted", "report")}
    pq.write_table(audited, paths["audited"])
    pq.write_table(vetted, paths["vetted"])
    summary = tmp_path / "summary.json"
    cli("scan", str(paths["audited"]), "--label", "label", "--embedding", "embedding",
        "--reference", str(paths["vetted"]), "-o", str(paths["report"]), "--summary", str(summary))
    expected = pq.read_table(paths["report"])
    import json
    cli_reference = json.loads(summary.read_text())["reference"]

    rows, found = poisonguard.scan(audited, "label", reference=vetted, reference_labels="label")
    assert rows.num_rows == audited.num_rows
    for name in expected.column_names:
        assert rows[name].to_pylist() == expected[name].to_pylist(), name
    assert found.to_dict()["reference"] == {"rows": 600, "flagged": cli_reference["flagged"]}
    # numpy matrices and label arrays give the same report
    matrix = lambda t: t["embedding"].combine_chunks().flatten().to_numpy().reshape(-1, 512)
    again, _ = poisonguard.scan(matrix(audited), audited["label"].to_numpy(),
                                reference=matrix(vetted), reference_labels=vetted["label"].to_numpy())
    assert again["suspicion"].to_pylist() == rows["suspicion"].to_pylist()

    with pytest.raises(poisonguard.PoisonguardError, match="features"):
        poisonguard.scan(matrix(audited), audited["label"].to_numpy(),
                         reference=matrix(vetted)[:, :10], reference_labels=vetted["label"].to_numpy())
    with pytest.raises(poisonguard.PoisonguardError, match="without a reference"):
        poisonguard.scan(audited, "label", reference_labels="label")
    with pytest.raises(poisonguard.PoisonguardError, match="label"):
        poisonguard.scan(audited, "label", reference=vetted)


def test_knn_probes_reach_the_index(badnets):
    # probing every cell (more than the table's sqrt(n)) makes the approximate search exhaustive:
    # the exact search's scores; one cell per row misses neighbours
    table = badnets.drop_columns(["is_poison"])
    detectors = ["knn_distance", "knn_label"]
    exact, _ = poisonguard.scan(table, labels="label", detectors=detectors, knn="exact")
    every, _ = poisonguard.scan(table, labels="label", detectors=detectors, knn="approx",
                                knn_probes=100_000)
    one, _ = poisonguard.scan(table, labels="label", detectors=detectors, knn="approx",
                              knn_probes=1)
    assert every.to_pylist() == exact.to_pylist()
    assert one["knn_distance_score"].to_pylist() != exact["knn_distance_score"].to_pylist()
