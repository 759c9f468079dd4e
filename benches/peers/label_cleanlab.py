#!/usr/bin/env python3
"""Label detectors: poisonguard against cleanlab on the same Parquet files.

Run by hand (never in CI) after `cargo build --release -p poisonguard-cli`:

  quality  ROC-AUC against `is_poison` of cleanlab's label-quality scores (self-confidence and
           normalized margin) and of its `find_label_issues` mask (prune_by_noise_rate), from
           5-fold out-of-sample probabilities of scikit-learn's LogisticRegression() with its
           defaults on the raw features; and of poisonguard's knn_label, confident_learning and
           duplicates scores (`poisonguard scan FILE --detectors ... -o report.csv`).
      With --seeds N, both sides run with N fold seeds (ours `--seed s`, scikit-learn's
      StratifiedKFold(shuffle=True, random_state=s)) and the mean and sd of each ROC-AUC are
      printed: the fold split alone moves these ROC-AUCs by several thousandths.
      python benches/peers/label_cleanlab.py quality FILE [FILE ...] [--seeds 10]
  speed    whole-process time, median of --repeats runs: `poisonguard scan FILE --label label
           --detectors knn_label,confident_learning,duplicates` against `python: read the
           Parquet file; cross_val_predict(LogisticRegression(), cv=5); find_label_issues;
           get_label_quality_scores`.
      python benches/peers/label_cleanlab.py speed FILE [FILE ...] [--repeats 3]
  synth    writes a seeded 10-class Gaussian-mixture table with 10% random flips
           (`synth OUT.parquet --rows 100000 --dims 128`).

Files need feature columns f0.., a `label` column and (for quality) `is_poison`.
Requirements: benches/peers/requirements.txt.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.metrics import roc_auc_score

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
BINARY = os.path.join(ROOT, "target", "release", "poisonguard")
OURS = ["knn_label", "confident_learning", "duplicates"]

PEER = r"""
import sys, warnings
import numpy as np, pyarrow.parquet as pq
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores
warnings.filterwarnings("ignore")
t = pq.read_table(sys.argv[1])
cols = [c for c in t.column_names if c.startswith("f")]
X = np.column_stack([t.column(c).to_numpy() for c in cols]).astype(np.float64)
y_raw = t.column("label").to_numpy()
classes, y = np.unique(y_raw, return_inverse=True)
cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=int(sys.argv[3]))
probs = cross_val_predict(LogisticRegression(), X, y, cv=cv, method="predict_proba", n_jobs=int(sys.argv[2]))
mask = find_label_issues(y, probs)
sc = get_label_quality_scores(y, probs, method="self_confidence")
nm = get_label_quality_scores(y, probs, method="normalized_margin")
if len(sys.argv) > 4:
    np.savez(sys.argv[4], mask=mask, sc=sc, nm=nm)
"""


def run_ours(path, out=None, seed=None):
    cmd = [BINARY, "scan", path, "--label", "label", "--detectors", ",".join(OURS)]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    if "is_poison" in pq.read_schema(path).names:
        cmd += ["--truth", "is_poison"]
    if out:
        cmd += ["-o", out]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def run_peer(path, jobs, out=None, seed=0):
    cmd = [sys.executable, "-c", PEER, path, str(jobs), str(seed)] + ([out] if out else [])
    subprocess.run(cmd, check=True)


def quality(files, seeds=None):
    import csv

    print(f"{'file':<34} {'scores':<32} {'roc_auc':>8}" + ("   (sd)" if seeds else ""))
    for path in files:
        truth = pq.read_table(path).column("is_poison").to_numpy().astype(bool)
        name = os.path.basename(path)
        aucs = {}
        for seed in range(seeds) if seeds else [None]:
            with tempfile.TemporaryDirectory() as tmp:
                report = os.path.join(tmp, "report.csv")
                run_ours(path, report, seed)
                with open(report) as fh:
                    rows = list(csv.DictReader(fh))
                for d in OURS:
                    s = np.array([float(r[f"{d}_score"]) for r in rows])
                    aucs.setdefault("poisonguard " + d, []).append(roc_auc_score(truth, s))
                peer = os.path.join(tmp, "peer.npz")
                run_peer(path, 1, peer, seed or 0)
                z = np.load(peer)
                for label, s in [
                    ("cleanlab self_confidence", 1 - z["sc"]),
                    ("cleanlab normalized_margin", 1 - z["nm"]),
                    ("cleanlab find_label_issues", z["mask"].astype(float)),
                ]:
                    aucs.setdefault(label, []).append(roc_auc_score(truth, s))
        for label, v in aucs.items():
            sd = f"  {np.std(v):.4f}" if seeds else ""
            print(f"{name:<34} {label:<32} {np.mean(v):>8.4f}{sd}")


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def speed(files, repeats, jobs):
    print(f"{'file':<34} {'poisonguard s':>14} {'cleanlab s':>11} {'ratio':>7}")
    for path in files:
        ours, ot = timed(lambda: run_ours(path), repeats)
        peer, pt = timed(lambda: run_peer(path, jobs), repeats)
        name = os.path.basename(path)
        print(f"{name:<34} {ours:>14.2f} {peer:>11.2f} {peer / ours:>6.1f}x")
        print(f"    runs: ours {[round(t, 2) for t in ot]}, cleanlab {[round(t, 2) for t in pt]}")


def synth(out, rows, dims, seed=0):
    rng = np.random.default_rng(seed)
    k = 10
    centres = rng.normal(0.0, 1.0, size=(k, dims)) * 0.6
    y = rng.integers(0, k, size=rows)
    X = (centres[y] + rng.normal(0.0, 1.0, size=(rows, dims))).astype(np.float32)
    flip = rng.random(rows) < 0.1
    noisy = y.copy()
    noisy[flip] = (y[flip] + rng.integers(1, k, size=flip.sum())) % k
    table = {f"f{j}": X[:, j] for j in range(dims)}
    table["label"] = noisy
    table["is_poison"] = flip.astype(np.int8)
    pq.write_table(pa.table(table), out, compression="zstd")
    print(f"{out}: {rows} x {dims}, {flip.sum()} flipped labels")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    q = sub.add_parser("quality")
    q.add_argument("files", nargs="+")
    q.add_argument("--seeds", type=int, default=None, help="fold seeds per side (mean and sd)")
    s = sub.add_parser("speed")
    s.add_argument("files", nargs="+")
    s.add_argument("--repeats", type=int, default=3)
    s.add_argument("--jobs", type=int, default=-1, help="cross_val_predict n_jobs (default: all cores)")
    g = sub.add_parser("synth")
    g.add_argument("out")
    g.add_argument("--rows", type=int, default=100_000)
    g.add_argument("--dims", type=int, default=128)
    a = ap.parse_args()
    if a.mode == "quality":
        quality(a.files, a.seeds)
    elif a.mode == "speed":
        speed(a.files, a.repeats, a.jobs)
    else:
        synth(a.out, a.rows, a.dims)


if __name__ == "__main__":
    main()
