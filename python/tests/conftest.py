"""Shared fixtures: the repository's shipped tables and the command-line binary the Python
results are checked against."""

import os
import pathlib
import subprocess

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def cli_binary() -> pathlib.Path:
    """The `poisonguard` binary: $POISONGUARD_BIN, else the workspace's debug or release build.
    A missing binary fails the tests that need it (`.ci/run` builds it before pytest)."""
    explicit = os.environ.get("POISONGUARD_BIN")
    candidates = [pathlib.Path(explicit)] if explicit else [
        ROOT / "target" / "debug" / "poisonguard",
        ROOT / "target" / "release" / "poisonguard",
    ]
    for path in candidates:
        if path.is_file():
            return path
    pytest.fail(f"no poisonguard binary at {[str(c) for c in candidates]}: run `cargo build` first")


@pytest.fixture(scope="session")
def cli():
    binary = cli_binary()

    def run(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run([str(binary), *args], capture_output=True, text=True)
        assert done.returncode == 0, f"poisonguard {' '.join(args)}:\n{done.stderr}"
        return done

    return run


def table(name: str) -> pa.Table:
    return pq.read_table(ROOT / "datasets" / name)


@pytest.fixture(scope="session")
def badnets() -> pa.Table:
    """The shipped BadNets table (1,817 digits 8x8, 20 poisoned rows in `is_poison`)."""
    return table("poisoned/digits_badnets.parquet")


@pytest.fixture(scope="session")
def wine() -> pa.Table:
    return table("tabular/wine.parquet")


@pytest.fixture(scope="session")
def cifar() -> pa.Table:
    """Every fifth row (600) of the shipped CIFAR-10 ResNet-18 embeddings (a fixed-size-list
    column of 512 float32)."""
    return table("real-embeddings/cifar10_resnet18_3class_3000.parquet").take(list(range(0, 3000, 5)))


def same_rows(a: pa.Table, b: pa.Table) -> bool:
    """The same columns holding the same values (the command line writes text as Arrow's
    string view, pyarrow builds plain strings)."""
    return a.column_names == b.column_names and all(
        a[c].to_pylist() == b[c].to_pylist() for c in a.column_names
    )
