"""The Ray and Spark audits (local clusters) against the command line's batched audit of the
same file with the same seed and memory limit: the same rows flagged, the same scores."""

import os
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import ROOT, same_rows

# 3,000 real CIFAR-10 embeddings x 512: the in-memory audit needs 18 MiB; at 12 MiB the command
# line audits in batches, fitting on a reference sample of about 700 rows.
LIMIT = "12M"


@pytest.fixture(scope="module")
def embeddings(tmp_path_factory):
    """The shipped table with 60 rows (2%, seeded) pushed out of the data (scaled 2.5x, with
    noise), rewritten in row groups of 400 rows (Spark splits a file by them)."""
    table = pq.read_table(ROOT / "datasets/real-embeddings/cifar10_resnet18_3class_3000.parquet")
    n = table.num_rows
    x = table["embedding"].combine_chunks().flatten().to_numpy().reshape(n, 512).copy()
    rng = np.random.default_rng(38)
    injected = rng.choice(n, 60, replace=False)
    x[injected] = x[injected] * 2.5 + rng.normal(0, 0.5, (60, 512)).astype(np.float32)
    embedding = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 512)
    table = pa.table({"embedding": embedding, "label": table["label"]})
    path = tmp_path_factory.mktemp("data") / "cifar.parquet"
    pq.write_table(table, path, row_group_size=400)
    return table, path


@pytest.fixture(scope="module")
def batched(embeddings, cli, tmp_path_factory):
    _, path = embeddings
    out = tmp_path_factory.mktemp("cli") / "report.parquet"
    done = cli("scan", str(path), "--embedding", "embedding", "--label", "label",
               "--memory-limit", LIMIT, "-o", str(out))
    assert "reference" in done.stderr + done.stdout, "the command line did not audit in batches"
    return pq.read_table(out)


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    import ray
    # a worker process dies once, in the middle of the scoring: Ray retries its task
    marker = tmp_path_factory.mktemp("fault") / "killed"
    os.environ["POISONGUARD_TEST_KILL_ONCE"] = str(marker)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"POISONGUARD_TEST_KILL_ONCE": str(marker)}})
    yield ray, marker
    ray.shutdown()
    del os.environ["POISONGUARD_TEST_KILL_ONCE"]


def test_ray_audit_equals_the_batched_command_line(embeddings, batched, local_ray):
    import poisonguard.ray
    ray, marker = local_ray
    _, path = embeddings
    # the file read by Ray tasks, one block per row group, in the file's order
    ds = poisonguard.ray.read_parquet(path)
    assert ds.num_blocks() >= 5
    rows, summary = poisonguard.ray.audit(ds, labels="label", memory_limit=LIMIT)
    assert marker.exists(), "no worker was killed: the retry was not tested"
    assert same_rows(rows, batched)
    assert summary.flagged == int(np.asarray(batched["flagged"]).sum()) >= 50


def test_spark_audit_equals_the_batched_command_line(embeddings, batched):
    from pyspark.sql import SparkSession

    import poisonguard.spark
    _, path = embeddings
    spark = (SparkSession.builder.master("local[2]").appName("poisonguard-test")
             .config("spark.sql.files.maxPartitionBytes", "1m")
             .config("spark.sql.execution.arrow.pyspark.enabled", "true")
             .config("spark.ui.enabled", "false")
             .config("spark.pyspark.python", sys.executable)
             .getOrCreate())
    try:
        df = spark.read.parquet(str(path))
        assert df.rdd.getNumPartitions() >= 2
        rows, summary = poisonguard.spark.audit(df, labels="label", memory_limit=LIMIT)
    finally:
        spark.stop()
    assert same_rows(rows, batched)
    assert summary.flagged == int(np.asarray(batched["flagged"]).sum())
