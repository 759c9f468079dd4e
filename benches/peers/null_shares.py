#!/usr/bin/env python3
"""How valid the default audit's nulls are on a clean table: rows flagged, and for every detector
the share of its p-values at or below 0.01 and 0.001 (a valid p-value puts at most 1% and 0.1%
of clean rows there; the calibration tests' bars are 1.5% and 0.2% plus three binomial
standard errors).

Run by hand after `cargo build --release -p poisonguard-cli` (pyarrow only):

    python benches/peers/null_shares.py FILE [--embedding embedding] [--label label]

It runs `target/release/poisonguard scan FILE --label LABEL [--embedding COL] -o REPORT` and
reads the report's `<detector>_p` and `flagged` columns.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import pyarrow.parquet as pq

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.join(HERE, "..", "..", "target", "release", "poisonguard")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("file")
    ap.add_argument("--label", default="label")
    ap.add_argument("--embedding")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "report.parquet")
        cmd = [BIN, "scan", args.file, "--label", args.label, "-o", report]
        if args.embedding:
            cmd += ["--embedding", args.embedding]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        table = pq.read_table(report)
    n = table.num_rows
    flagged = sum(table.column("flagged").to_pylist())
    print(f"{args.file}: {n} rows, {flagged} flagged ({100 * flagged / n:.2f}%)")
    print(f"{'detector':<22}{'p <= 0.01':>12}{'p <= 0.001':>12}")
    for name in table.column_names:
        if not name.endswith("_p") or name == "combined_p":
            continue
        p = table.column(name).to_pylist()
        at = lambda t: 100 * sum(1 for v in p if v <= t) / n  # noqa: E731
        print(f"{name[:-2]:<22}{at(0.01):>11.2f}%{at(0.001):>11.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
