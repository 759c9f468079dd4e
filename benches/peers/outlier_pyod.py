#!/usr/bin/env python3
"""Outlier detectors: poisonguard against PyOD on the same ADBench Parquet files.

Two modes, run by hand (never in CI) after `cargo build --release -p poisonguard-cli`:

  quality  ROC-AUC of every detector on every file (PyOD's `decision_scores_`: fit on all rows,
           score all rows; ours: `poisonguard scan FILE --detectors D`); the isolation forest's
           is the mean over --seeds seeds on both sides.
      python benches/peers/outlier_pyod.py quality [--data-dir DIR] [--skip-large]
  speed    whole-process time, median of --repeats runs, per detector, on the given files:
           `poisonguard scan FILE --detectors D` (summary only) against
           `python -c "read the Parquet file with pyarrow; PyOD detector fit"`.
      python benches/peers/outlier_pyod.py speed FILE [FILE ...] [--repeats 3]
  knn      exact k-NN (k = 10, self excluded), in-process: scikit-learn's NearestNeighbors
           brute force against poisonguard's (`cargo build --release --example knn_scale`).
      python benches/peers/outlier_pyod.py knn FILE [FILE ...]

The PyOD detectors use the same parameters as ours: IForest(n_estimators=100, max_samples=256,
random_state=0), KNN(n_neighbors=5, method='largest'), LOF(n_neighbors=50), ECOD(),
MCD(random_state=0), PCA().
Requirements: benches/peers/requirements.txt.
"""
import argparse
import glob
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow.parquet as pq
from sklearn.metrics import roc_auc_score

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
BINARY = os.path.join(ROOT, "target", "release", "poisonguard")
DETECTORS = ["isolation_forest", "knn_distance", "lof", "ecod", "mahalanobis", "pca"]
RANDOMIZED = {"isolation_forest", "mahalanobis"}

PYOD = {
    "isolation_forest": "from pyod.models.iforest import IForest as C; kw = dict(n_estimators=100, max_samples=256, random_state=0)",
    "knn_distance": "from pyod.models.knn import KNN as C; kw = dict(n_neighbors=5, method='largest')",
    "lof": "from pyod.models.lof import LOF as C; kw = dict(n_neighbors=50)",
    "ecod": "from pyod.models.ecod import ECOD as C; kw = dict()",
    "mahalanobis": "from pyod.models.mcd import MCD as C; kw = dict(random_state=0)",
    "pca": "from pyod.models.pca import PCA as C; kw = dict()",
}

PROCESS = r"""
import sys, numpy as np, pyarrow.parquet as pq
{imp}
t = pq.read_table(sys.argv[1])
x = np.column_stack([t.column(n).to_numpy() for n in t.schema.names if n != "is_outlier"]).astype(np.float64)
C(**kw).fit(x)
"""


def load(path):
    t = pq.read_table(path)
    names = [n for n in t.schema.names if n != "is_outlier"]
    x = np.column_stack([t.column(n).to_numpy() for n in names]).astype(np.float64)
    return x, t.column("is_outlier").to_numpy().astype(int)


def pyod_scores(det, x, seed=0):
    ns = {}
    exec(PYOD[det], ns)
    kw = ns["kw"]
    if "random_state" in kw:
        kw["random_state"] = seed
    clf = ns["C"](**kw)
    clf.fit(x)
    return clf.decision_scores_


def ours(path, det, out, seed=0):
    cmd = [BINARY, "scan", path, "--exclude", "is_outlier", "--detectors", det, "--seed", str(seed), "-o", out]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return pq.read_table(out).column(f"{det}_score").to_numpy()


def auc(y, raw):
    """ROC-AUC; PyOD's PCA divides by zero explained variance on rank-deficient data: +inf is
    read as "most outlying", NaN as least (such cells are marked with '*')."""
    return roc_auc_score(y, np.nan_to_num(raw, nan=-1e308, posinf=1e308, neginf=-1e308))


def quality(args):
    files = sorted(glob.glob(os.path.join(args.data_dir, "*.parquet")))
    print(f"{'dataset':<24} {'n':>7} {'d':>4} " + " ".join(f"{d[:8]:>8}/pyod" for d in DETECTORS))
    worst = {d: 0.0 for d in DETECTORS}
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "r.parquet")
        for path in files:
            x, y = load(path)
            if args.skip_large and x.shape[0] * x.shape[0] > 1e10:
                continue
            cells = []
            for det in DETECTORS:
                # randomized detectors: mean over --seeds seeds on both sides
                seeds = range(args.seeds if det in RANDOMIZED else 1)
                a = np.mean([roc_auc_score(y, ours(path, det, out, s)) for s in seeds])
                mark, bs = "", []
                for s in seeds:
                    with np.errstate(all="ignore"):
                        raw = pyod_scores(det, x, s)
                    mark = mark or ("" if np.all(np.isfinite(raw)) else "*")
                    bs.append(auc(y, raw))
                b = np.mean(bs)
                worst[det] = max(worst[det], b - a)
                cells.append(f"{a:.3f}/{b:.3f}{mark}")
            name = os.path.basename(path)[:-8]
            print(f"{name:<24} {x.shape[0]:>7} {x.shape[1]:>4} " + " ".join(f"{c:>14}" for c in cells), flush=True)
    print("largest shortfall (pyod - ours): " + ", ".join(f"{d} {v:+.3f}" for d, v in worst.items()))


def timed(cmd, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def speed(args):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "r.parquet")
        print(f"{'file':<20} {'detector':<18} {'poisonguard':>12} {'pyod':>10} {'ratio':>8}")
        for path in args.files:
            for det in args.detectors.split(","):
                # no report file: the PyOD process writes nothing either
                ours_cmd = [BINARY, "scan", path, "--exclude", "is_outlier", "--detectors", det]
                t_ours = timed(ours_cmd, args.repeats)
                code = PROCESS.format(imp=PYOD[det])
                t_pyod = timed([sys.executable, "-c", code, path], args.repeats)
                name = os.path.basename(path)[:-8]
                print(f"{name:<20} {det:<18} {t_ours:>11.3f}s {t_pyod:>9.3f}s {t_pyod / t_ours:>7.1f}x", flush=True)


def knn(args):
    """Exact k-NN of every row (self excluded): scikit-learn's brute force against
    poisonguard's, both timed in-process on data already in memory (median of --repeats)."""
    from sklearn.neighbors import NearestNeighbors

    example = os.path.join(ROOT, "target", "release", "examples", "knn_scale")
    if not os.path.exists(example):
        sys.exit(f"{example} missing: cargo build --release --example knn_scale")
    print(f"{'file':<20} {'n':>7} {'d':>4} {'poisonguard':>12} {'sklearn brute':>14} {'ratio':>8}")
    for path in args.files:
        x, _ = load(path)
        x = x.astype(np.float32)
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            NearestNeighbors(n_neighbors=args.k, algorithm="brute").fit(x).kneighbors()
            times.append(time.perf_counter() - t0)
        t_sk = statistics.median(times)
        ours_t = []
        for _ in range(args.repeats):
            out = subprocess.run([example, path, str(args.k), "is_outlier"], check=True, capture_output=True, text=True).stdout
            ours_t.append(float(next(l for l in out.splitlines() if l.startswith("seconds:")).split()[1]))
        t_pg = statistics.median(ours_t)
        name = os.path.basename(path)[:-8]
        print(f"{name:<20} {x.shape[0]:>7} {x.shape[1]:>4} {t_pg:>11.3f}s {t_sk:>13.3f}s {t_sk / t_pg:>7.1f}x", flush=True)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="mode", required=True)
    q = sub.add_parser("quality")
    q.add_argument("--data-dir", default=os.path.join(ROOT, "datasets", "adbench"))
    q.add_argument("--skip-large", action="store_true", help="skip files with n^2 > 1e10")
    q.add_argument("--seeds", type=int, default=5, help="seeds averaged for randomized detectors")
    s = sub.add_parser("speed")
    s.add_argument("files", nargs="+")
    s.add_argument("--repeats", type=int, default=3)
    s.add_argument("--detectors", default=",".join(DETECTORS))
    kn = sub.add_parser("knn")
    kn.add_argument("files", nargs="+")
    kn.add_argument("--k", type=int, default=10)
    kn.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if not os.path.exists(BINARY):
        sys.exit(f"{BINARY} missing: cargo build --release -p poisonguard-cli")
    {"quality": quality, "speed": speed, "knn": knn}[args.mode](args)


if __name__ == "__main__":
    main()
