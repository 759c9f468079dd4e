#!/usr/bin/env python3
"""The whole default audit: poisonguard against the same job done in Python on the same file.

Run by hand (never in CI) after `cargo build --release -p poisonguard-cli`:

  speed    whole-process time, median of --repeats runs: `poisonguard scan FILE --label label`
           (the default audit: spectral_signature, spectre, isolation_forest, ecod, knn_label,
           confident_learning, duplicates; p-values, combination, summary) against one Python
           process that reads the same Parquet file and runs
             - PyOD's IForest() and ECOD() (their defaults; n_jobs as --jobs),
             - scikit-learn's LogisticRegression() out of fold (StratifiedKFold(5, shuffle),
               cross_val_predict) with cleanlab's find_label_issues and self-confidence scores,
             - a kNN label vote: NearestNeighbors on standardized features, k as ours
               (sqrt of the smallest class, clamped to [5, 50]), the share of the k neighbours
               whose label differs from the row's,
             - numpy spectral signatures: per class, the squared projection of the centred rows
               on the top right singular vector (numpy.linalg.svd(full_matrices=False)).
           The Python side does less than ours (no SPECTRE, no duplicate groups, no p-values or
           combination), so the ratio flatters it. Its per-stage times are printed too.
      python benches/peers/audit_python.py speed FILE [FILE ...] [--repeats 3] [--jobs -1]
  synth    a seeded 10-class Gaussian mixture with 10% random label flips, as
           label_cleanlab.py's (`synth OUT.parquet --rows 100000 --dims 128`).

Files need feature columns f0.. or one list column `embedding` (a vector per row, read with
`--embedding embedding`), and a `label` column. Requirements: benches/peers/requirements.txt.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import pyarrow.parquet as pq

# the same seeded table as the label benchmark's (one generator for both scripts)
from label_cleanlab import synth

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
BINARY = os.path.join(ROOT, "target", "release", "poisonguard")

PEER = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
T = {}
def stage(name, fn):
    t0 = time.perf_counter()
    r = fn()
    T[name] = time.perf_counter() - t0
    return r
t0 = time.perf_counter()
import numpy as np, pyarrow.parquet as pq
from pyod.models.iforest import IForest
from pyod.models.ecod import ECOD
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores
T["import"] = time.perf_counter() - t0
path, jobs = sys.argv[1], int(sys.argv[2])
def read():
    t = pq.read_table(path)
    if "embedding" in t.column_names:
        e = t.column("embedding").combine_chunks()
        X = e.flatten().to_numpy(zero_copy_only=False).reshape(len(e), -1).astype(np.float64)
    else:
        cols = [c for c in t.column_names if c.startswith("f")]
        X = np.column_stack([t.column(c).to_numpy() for c in cols]).astype(np.float64)
    _, y = np.unique(t.column("label").to_numpy(), return_inverse=True)
    return X, y
X, y = stage("read", read)
stage("iforest", lambda: IForest(random_state=0, n_jobs=jobs).fit(X).decision_scores_)
stage("ecod", lambda: ECOD(n_jobs=jobs).fit(X).decision_scores_)
cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
probs = stage("logistic_5fold", lambda: cross_val_predict(
    LogisticRegression(), X, y, cv=cv, method="predict_proba", n_jobs=jobs))
def cleanlab():
    find_label_issues(y, probs)
    return get_label_quality_scores(y, probs, method="self_confidence")
stage("cleanlab", cleanlab)
k = int(min(50, max(5, round(np.sqrt(np.bincount(y).min())))))
def vote():
    Z = StandardScaler().fit_transform(X)
    _, idx = NearestNeighbors(n_neighbors=k + 1, n_jobs=jobs).fit(Z).kneighbors(Z)
    return (y[idx[:, 1:]] != y[:, None]).mean(axis=1)
stage("knn_vote", vote)
def spectral():
    s = np.zeros(len(y))
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        xc = X[rows] - X[rows].mean(axis=0)
        _, _, vt = np.linalg.svd(xc, full_matrices=False)
        s[rows] = (xc @ vt[0]) ** 2
    return s
stage("spectral_signatures", spectral)
print(json.dumps(T))
"""


def timed(fn, repeats):
    times, last = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        last = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, last


def run_ours(path):
    names = pq.read_schema(path).names
    cmd = [BINARY, "scan", path, "--label", "label"]
    if "embedding" in names:
        cmd += ["--embedding", "embedding"]  # a list column of vectors, as the Python side reads it
    if "is_poison" in names:
        cmd += ["--truth", "is_poison"]  # not a feature (the Python side reads f0.. only)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def run_peer(path, jobs):
    out = subprocess.run(
        [sys.executable, "-c", PEER, path, str(jobs)], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def speed(files, repeats, jobs):
    print(f"{'file':<28} {'poisonguard s':>14} {'python s':>9} {'ratio':>7}")
    for path in files:
        # pairs run alternately, so that a noisy stretch of the machine hits both sides
        ot, pt, stages = [], [], None
        for _ in range(repeats):
            ot.append(timed(lambda: run_ours(path), 1)[0])
            t, _, stages = timed(lambda: run_peer(path, jobs), 1)
            pt.append(t)
        ours, peer = statistics.median(ot), statistics.median(pt)
        name = os.path.basename(path)
        print(f"{name:<28} {ours:>14.2f} {peer:>9.2f} {peer / ours:>6.1f}x")
        print(f"    runs: ours {[round(t, 2) for t in ot]}, python {[round(t, 2) for t in pt]}")
        print("    python stages (last run): " + ", ".join(f"{k} {v:.2f} s" for k, v in stages.items()))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("speed")
    s.add_argument("files", nargs="+")
    s.add_argument("--repeats", type=int, default=3)
    s.add_argument("--jobs", type=int, default=-1, help="n_jobs of the Python estimators (default: all cores)")
    g = sub.add_parser("synth")
    g.add_argument("out")
    g.add_argument("--rows", type=int, default=100_000)
    g.add_argument("--dims", type=int, default=128)
    a = ap.parse_args()
    if a.mode == "speed":
        speed(a.files, a.repeats, a.jobs)
    else:
        synth(a.out, a.rows, a.dims)


if __name__ == "__main__":
    main()
