#!/usr/bin/env python3
"""Spectral signatures: poisonguard against a numpy reference on the same Parquet files.

The reference is Tran et al.'s algorithm written the obvious way: per class, centre, take
`numpy.linalg.svd(full_matrices=False)`, score = squared projection on the top right singular
vector. For each shape it
  1. writes a seeded Parquet file (10 classes, 5% of class 0 shifted along 8 features, as
     benches/spectral_signature.rs) into a temporary folder,
  2. times the numpy reference in-process (read excluded) and whole-process,
  3. times `poisonguard scan FILE --label label --detectors spectral_signature` whole-process,
  4. checks that both rank rows the same way (Spearman correlation of scores within class 0).

Run by hand (never in CI), with a release build:
    cargo build --release -p poisonguard-cli
    python benches/peers/spectral_numpy.py [--repeats 5] [--shapes 10000x64,10000x512,100000x64,100000x512]
Prints medians and ratios (numpy / poisonguard).

With `--quality FILE [FILE ...]` (files with f* features, `label` and `is_poison`), it prints
instead the ROC-AUC against `is_poison` of the numpy reference and of poisonguard's
spectral_signature and spectre on each file, with the whole-process time ratio of the reference
to our spectral_signature.
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

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
BINARY = os.path.join(ROOT, "target", "release", "poisonguard")
N_CLASSES = 10

def make(n, d, path):
    rng = np.random.default_rng(2018)
    scale = 1.0 / np.sqrt(1.0 + np.arange(d))
    x = (rng.uniform(-1, 1, size=(n, d)) * scale).astype(np.float32)
    y = np.arange(n) % N_CLASSES
    poisoned = np.flatnonzero(y == 0)[: n // N_CLASSES // 20]
    x[np.ix_(poisoned, np.arange(min(d, 8)))] += 2.0
    cols = {f"f{j}": x[:, j] for j in range(d)}
    cols["label"] = y.astype(np.int64)
    pq.write_table(pa.table(cols), path, compression="zstd")
    return x, y


def reference_scores(x, y):
    scores = np.zeros(len(y))
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        xc = x[idx] - x[idx].mean(axis=0)
        _, _, vt = np.linalg.svd(xc, full_matrices=False)
        scores[idx] = (xc @ vt[0]) ** 2
    return scores


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def spearman(a, b):
    ra = np.argsort(np.argsort(a))
    rb = np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def reference_process(path, out):
    t = pq.read_table(path)
    y = t.column("label").to_numpy()
    x = np.column_stack([t.column(n).to_numpy() for n in t.schema.names if n != "label"]).astype(np.float32)
    np.save(out, reference_scores(x, y))


def quality(files, repeats):
    from sklearn.metrics import roc_auc_score

    print(f"numpy {np.__version__}, cores {os.cpu_count()}, repeats {repeats} (medians)")
    print(f"{'file':<36} {'numpy ref':>9} {'signature':>9} {'spectre':>9} {'proc ratio':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for path in files:
            t = pq.read_table(path)
            truth = t.column("is_poison").to_numpy().astype(bool)
            y = t.column("label").to_numpy()
            feats = [n for n in t.schema.names if n.startswith("f")]
            x = np.column_stack([t.column(n).to_numpy() for n in feats]).astype(np.float32)
            ref = reference_scores(x, y)
            out = os.path.join(tmp, "report.csv")
            cmd = [BINARY, "scan", path, "--label", "label", "--truth", "is_poison",
                   "--detectors", "spectral_signature,spectre", "-o", out]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            rep = np.genfromtxt(out, delimiter=",", names=True, usecols=None, dtype=None, encoding=None)
            sig = np.asarray(rep["spectral_signature_score"], dtype=float)
            spe = np.asarray(rep["spectre_score"], dtype=float)
            # whole process: the reference reading the file itself against our scan
            npy = os.path.join(tmp, "ref.npy")
            strip = os.path.join(tmp, "features.parquet")
            pq.write_table(t.select(feats + ["label"]), strip)
            t_np = timed(lambda: subprocess.run([sys.executable, __file__, "--reference", strip, npy], check=True), repeats)
            fast = [BINARY, "scan", path, "--label", "label", "--truth", "is_poison", "--detectors", "spectral_signature"]
            t_pg = timed(lambda: subprocess.run(fast, check=True, stdout=subprocess.DEVNULL), repeats)
            print(f"{os.path.basename(path):<36} {roc_auc_score(truth, ref):>9.4f} {roc_auc_score(truth, sig):>9.4f} "
                  f"{roc_auc_score(truth, spe):>9.4f} {t_np / t_pg:>9.1f}x")


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--reference":
        return reference_process(sys.argv[2], sys.argv[3])
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--shapes", default="10000x64,10000x512,100000x64,100000x512")
    ap.add_argument("--quality", nargs="+", metavar="FILE")
    args = ap.parse_args()
    if not os.path.exists(BINARY):
        sys.exit(f"{BINARY} missing: cargo build --release -p poisonguard-cli")
    if args.quality:
        return quality(args.quality, args.repeats)
    print(f"numpy {np.__version__}, cores {os.cpu_count()}, repeats {args.repeats} (medians)")
    print(f"{'shape':>12} {'numpy svd':>10} {'numpy proc':>11} {'pg proc':>9} {'proc ratio':>10} {'spearman c0':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        for shape in args.shapes.split(","):
            n, d = (int(v) for v in shape.split("x"))
            path = os.path.join(tmp, f"spectral_{n}x{d}.parquet")
            x, y = make(n, d, path)
            ref = reference_scores(x, y)
            t_svd = timed(lambda: reference_scores(x, y), args.repeats)
            npy = os.path.join(tmp, "ref.npy")
            # the same reference in a fresh process that reads the file itself
            t_np_proc = timed(
                lambda: subprocess.run([sys.executable, __file__, "--reference", path, npy], check=True),
                args.repeats,
            )
            out = os.path.join(tmp, "report.parquet")
            cmd = [BINARY, "scan", path, "--label", "label", "--detectors", "spectral_signature", "-o", out]
            t_pg = timed(lambda: subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL), args.repeats)
            ours = pq.read_table(out).column("spectral_signature_score").to_numpy()
            c0 = y == 0
            rho = spearman(ours[c0], ref[c0])
            print(f"{shape:>12} {t_svd:>9.3f}s {t_np_proc:>10.3f}s {t_pg:>8.3f}s {t_np_proc / t_pg:>9.1f}x {rho:>11.4f}")


if __name__ == "__main__":
    main()
