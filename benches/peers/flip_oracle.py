#!/usr/bin/env python3
"""What flagging a targeted flip could reach at best on a clean real table: an oracle that knows
every clean row's label.

A targeted flip relabels rows of class A as B. The strongest row test a trusted reference can
give is a classifier's probability of B for the row, ranked among clean B rows' (a conformal
p-value). Here the classifier is scikit-learn's 5-fold out-of-fold LogisticRegression trained
on *all* clean rows (more than any trusted sample), and the null is *every* clean B row's
out-of-fold P(B | x) (exact, not estimated from a sample). For each ordered pair (A, B) the
script prints the share of A rows whose P(B | x) falls below B's 0.1%, 0.5%, 1% and 2%
quantiles: the flagged recall a flip of A into B could reach if Benjamini-Hochberg selected
rows at that p-value. Run by hand (scikit-learn, pyarrow):

    python benches/peers/flip_oracle.py ../shared/datasets/real-embeddings/cifar10_resnet18_3class.parquet
"""
import sys

import numpy as np
import pyarrow.parquet as pq
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict

LEVELS = [0.001, 0.005, 0.01, 0.02]


def main() -> int:
    for path in sys.argv[1:]:
        t = pq.read_table(path)
        x = np.stack(t.column("embedding").to_numpy(zero_copy_only=False)).astype(np.float64)
        y = t.column("label").to_numpy()
        classes = np.unique(y)
        p = cross_val_predict(LogisticRegression(max_iter=2000), x, y, cv=5, method="predict_proba")
        accuracy = (classes[p.argmax(1)] == y).mean()
        print(f"{path}: {len(y)} rows, classes {list(classes)}, out-of-fold accuracy {accuracy:.3f}")
        print("  A -> B   " + "".join(f"{f'below B {q:g}':>14}" for q in LEVELS))
        for a in classes:
            for b in classes:
                if a == b:
                    continue
                col = list(classes).index(b)
                null = p[y == b, col]
                rows = p[y == a, col]
                shares = [(rows < np.quantile(null, q)).mean() for q in LEVELS]
                print(f"  {a} -> {b}  " + "".join(f"{s:>14.3f}" for s in shares))
    return 0


if __name__ == "__main__":
    sys.exit(main())
