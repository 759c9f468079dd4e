"""Plant seeded random label flips in a clean labelled table (run by hand, never in CI).

    python scripts/make_label_flips.py datasets/tabular/wine.parquet \
        datasets/poisoned/wine_labelflip.parquet --rate 0.1 --seed 0

Each of round(rate * n) rows, drawn without replacement, gets a label drawn uniformly from the
other classes; `is_poison` = 1 marks them. Every other column is copied unchanged.
Needs numpy, pandas, pyarrow (benches/peers/requirements.txt).
"""

import argparse

import numpy as np
import pandas as pd


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--label", default="label")
    ap.add_argument("--rate", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    df = pd.read_parquet(a.input)
    rng = np.random.default_rng(a.seed)
    y = df[a.label].to_numpy().copy()
    classes = np.unique(y)
    n_flip = int(round(a.rate * len(y)))
    rows = rng.choice(len(y), size=n_flip, replace=False)
    for i in rows:
        others = classes[classes != y[i]]
        y[i] = rng.choice(others)
    df[a.label] = y
    truth = np.zeros(len(y), dtype=np.int8)
    truth[rows] = 1
    df["is_poison"] = truth
    df.to_parquet(a.output, compression="zstd", index=False)
    print(f"{a.output}: {len(y)} rows, {n_flip} labels flipped (seed {a.seed})")


if __name__ == "__main__":
    main()
