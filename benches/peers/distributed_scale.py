"""The distributed audits at scale, against the command line's batched audit of the same file.

Builds (once, seeded) an N x D float32 table of ten Gaussian classes with a planted 1% shift of
one class (a fixed-size-list column `embedding`, Parquet row groups of 50,000 rows), then runs
the same audit three ways with the same memory limit and seed, one after the other:

  cli    poisonguard scan FILE --embedding embedding --label label --memory-limit LIMIT
  ray    poisonguard.ray.audit(poisonguard.ray.read_parquet(FILE), ...)   (local cluster, all cores)
  spark  poisonguard.spark.audit(spark.read.parquet(FILE), ...)    (local[*])

and prints wall time, rows per second, the workers' peak memory and whether each flags exactly
the CLI's rows (SCALE_ENGINES=ray or spark runs one). Needs the
package installed in release (`pip install ./python`), ray[data] and pyspark, and the CLI
(`cargo build --release -p poisonguard-cli`).

Run: python benches/peers/distributed_scale.py [N [D [LIMIT]]]   (default 1000000 128 1G)
"""

import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def table_file(n: int, d: int, path: str) -> None:
    if os.path.exists(path):
        return
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1.5, (10, d)).astype(np.float32)
    labels = np.arange(n) % 10
    writer = None
    for start in range(0, n, 50_000):
        rows = np.arange(start, min(n, start + 50_000))
        x = centres[labels[rows]] + rng.normal(0, 1, (len(rows), d)).astype(np.float32)
        # 1% of class 3 shifted along one direction: a planted sub-population
        planted = (labels[rows] == 3) & (rows % 1000 < 100)
        x[planted, 0] += 6.0
        emb = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), d)
        batch = pa.table({"embedding": emb, "label": pa.array(labels[rows])})
        writer = writer or pq.ParquetWriter(path, batch.schema)
        writer.write_table(batch, row_group_size=50_000)
    writer.close()


def worker_peaks(marks) -> str:
    """Peak RSS (VmHWM) of the live processes whose command line holds one of `marks` (Ray's
    worker processes, Spark's Python workers and JVM), read before the cluster stops."""
    peaks = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            if not any(m in cmd for m in marks):
                continue
            with open(f"/proc/{pid}/status") as f:
                hwm = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
            peaks.append(hwm // 1024)
        except (OSError, StopIteration):
            continue
    peaks.sort(reverse=True)
    return f"{len(peaks)} worker processes, peak RSS (MiB): {peaks[:8]}"


def timed(name, fn, rows):
    start = time.perf_counter()
    flagged = fn()
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{name:6s} wall {wall:8.1f} s  {rows / wall:10.0f} rows/s  flagged {len(flagged):7d}  "
          f"driver peak RSS so far {peak:7.0f} MiB", flush=True)
    return flagged


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    d = int(sys.argv[2]) if len(sys.argv) > 2 else 128
    limit = sys.argv[3] if len(sys.argv) > 3 else "1G"
    work = os.environ.get("SCALE_DIR", tempfile.gettempdir())
    path = os.path.join(work, f"scale_{n}x{d}.parquet")
    table_file(n, d, path)
    cli = os.path.join(ROOT, "target", "release", "poisonguard")

    def run_cli():
        out = os.path.join(work, "scale_cli.parquet")
        subprocess.run([cli, "scan", path, "--embedding", "embedding", "--label", "label",
                        "--memory-limit", limit, "-o", out], check=True, capture_output=True)
        return np.flatnonzero(pq.read_table(out, columns=["flagged"])["flagged"].to_numpy())

    def run_ray():
        import ray
        import poisonguard.ray
        ray.init(include_dashboard=False, log_to_driver=False)
        try:
            rows, _ = poisonguard.ray.audit(poisonguard.ray.read_parquet(path), labels="label",
                                            memory_limit=limit)
            print("ray:", worker_peaks(["ray::", "default_worker.py"]), flush=True)
        finally:
            ray.shutdown()
        return np.flatnonzero(rows["flagged"].to_numpy())

    def run_spark():
        from pyspark.sql import SparkSession
        import poisonguard.spark
        os.environ["PYSPARK_PYTHON"] = sys.executable
        spark = (SparkSession.builder.master("local[*]").config("spark.ui.enabled", "false")
                 .config("spark.driver.memory", "8g")
                 .config("spark.pyspark.python", sys.executable).getOrCreate())
        try:
            rows, _ = poisonguard.spark.audit(spark.read.parquet(path), labels="label",
                                              memory_limit=limit)
            print("spark:", worker_peaks(["pyspark.daemon", "pyspark.worker", "org.apache.spark"]),
                  flush=True)
        finally:
            spark.stop()
        return np.flatnonzero(rows["flagged"].to_numpy())

    print(f"{n} x {d}, memory limit {limit}, {os.cpu_count()} cores", flush=True)
    expected = timed("cli", run_cli, n)
    engines = {"ray": run_ray, "spark": run_spark}
    for name in os.environ.get("SCALE_ENGINES", "ray,spark").split(","):
        fn = engines[name]
        got = timed(name, fn, n)
        print(f"{name}: flags the CLI's rows exactly: {np.array_equal(got, expected)}", flush=True)


if __name__ == "__main__":
    main()
