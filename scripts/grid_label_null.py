"""What `knn_label`'s p-value costs the audit on a grid dump (run by hand, never in CI).

    GRID_DUMP=/tmp/grid.csv cargo run --release --example grid -- 0 1 2
    cargo build --release -p poisonguard-cli   # the detector families are read off its registry
    python scripts/grid_label_null.py /tmp/grid.csv [--only TEXT]

For every poisoned scenario of the dump, recombines the detectors' p-values as the audit does
(`combined_p_values` in src/combine.rs: weighted harmonic mean, base weight 1 per detector, the
outlier detectors sharing one, each times its enrichment, abstaining detectors left out) and
prints the suspicion ROC-AUC
  - `audit`: with `knn_label`'s own p-values (as shipped; checks the recombination),
  - `oracle`: with `knn_label`'s p-value replaced by the share of the scenario's *clean* rows
    whose `knn_label` score is at least the row's (a calibration that knows which rows are
    clean: the best any p-value computed from the score can do),
  - `other`: replaced by the share of rows of the *other* classes scoring at least as high
    (a null that assumes all classes agree with their neighbours alike),
and, for clean scenarios, the share of rows at p <= 0.01 under each (1% expected).
Needs numpy and scipy.
"""

import argparse
import csv
import os
import subprocess
from collections import OrderedDict

import numpy as np

BIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "poisonguard")


def outlier_ids():
    """The outlier family of the registry (they share one base weight), read off `poisonguard
    detectors` (one tab-separated line per detector: id, family, needs, runs, paper)."""
    out = subprocess.run([BIN, "detectors"], capture_output=True, text=True, check=True).stdout
    return {f[0] for f in (line.split("\t") for line in out.splitlines()) if f[1] == "outlier"}


OUTLIER = outlier_ids()


def auc(score, truth):
    """ROC-AUC with ties counted half."""
    order = np.argsort(score, kind="mergesort")
    s = score[order]
    ranks = np.empty(len(s))
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[i : j + 1] = (i + j) / 2 + 1
        i = j + 1
    r = np.empty(len(s))
    r[order] = ranks
    n1 = truth.sum()
    n0 = len(truth) - n1
    return (r[truth].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)


# the levels `enrichment` in src/combine.rs reads
ENRICHMENT_LEVELS = [0.1, 0.03, 0.01, 3e-3, 1e-3, 3e-4, 1e-4]


def enrichment(p):
    """As src/combine.rs: the largest, over the levels where a clean table expects a row, of the
    lower 99% Poisson (Garwood) bound of the count at or below the level over its expectation."""
    from scipy.stats import chi2

    n = len(p)
    best = 1.0
    for t in ENRICHMENT_LEVELS:
        if n * t < 1.0:
            continue
        count = (p <= t).sum()
        low = chi2.ppf(0.01, 2 * count) / 2 if count > 0 else 0.0
        best = max(best, low / (n * t))
    return best


def combine(pvals):
    dets = [d for d, p in pvals.items() if not np.all(p == 1.0)]
    n_out = max(1, sum(d in OUTLIER for d in dets))
    w = {d: (1.0 / n_out if d in OUTLIER else 1.0) * enrichment(pvals[d]) for d in dets}
    total = sum(w.values())
    if total == 0:
        return np.ones(len(next(iter(pvals.values()))))
    inv = sum(w[d] / total / np.clip(pvals[d], 1e-300, 1.0) for d in dets)
    return np.minimum(1.0, 1.0 / inv)


def survival_among(score, reference):
    """Share of `reference` scores >= each score (at least 1 / len(reference))."""
    ref = np.sort(reference)
    above = len(ref) - np.searchsorted(ref, score, side="left")
    return np.maximum(above, 1) / len(ref)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dump")
    ap.add_argument("--only", default="", help="scenarios whose name contains this text")
    args = ap.parse_args()
    rows = OrderedDict()
    with open(args.dump, newline="") as f:
        reader = csv.DictReader(f)
        detectors = [c[:-2] for c in reader.fieldnames if c.endswith("_p") and c != "combined_p"]
        for r in reader:
            if args.only in r["scenario"]:
                rows.setdefault(r["scenario"], []).append(r)
    print(f"{'scenario':<78} {'best':>6} {'audit':>6} {'oracle':>6} {'other':>6}")
    for name, rs in rows.items():
        truth = np.array([r["poison"] == "1" for r in rs])
        labels = np.array([int(r["label"]) for r in rs])
        p = {d: np.array([float(r[d + "_p"]) for r in rs]) for d in detectors}
        s = {d: np.array([float(r[d + "_score"]) for r in rs]) for d in detectors}
        knn = s["knn_label"]
        other = np.array([survival_among(knn[i : i + 1], knn[labels != labels[i]])[0] for i in range(len(rs))])
        if truth.any():
            oracle = survival_among(knn, knn[~truth])
            best = max(auc(s[d], truth) for d in detectors)
            out = [auc(-np.log(combine(p)), truth)]
            for alt in (oracle, other):
                q = dict(p)
                q["knn_label"] = alt
                out.append(auc(-np.log(combine(q)), truth))
            print(f"{name:<78} {best:6.3f} " + " ".join(f"{v:6.3f}" for v in out))
        else:
            shipped = np.mean(p["knn_label"] <= 0.01)
            print(f"{name:<78} clean: rows at p <= 0.01: knn_label {shipped:.4f}, other-classes null {np.mean(other <= 0.01):.4f}")


if __name__ == "__main__":
    main()
