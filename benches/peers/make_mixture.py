#!/usr/bin/env python3
"""A seeded Gaussian mixture as a `.npy` feature array and a Parquet meta table: the large clean
tables of benches/RESULTS.md (10^6 x 512, 10^6 x 128) are this recipe.

    python benches/peers/make_mixture.py OUT --rows 1000000 --dims 512 --classes 10 --seed 2

writes OUT.npy (f32, rows x dims) and OUT_meta.parquet (`label`); with --parquet also OUT.parquet,
the same rows as a FixedSizeList<float32> column `embedding` beside `label`, written a block of
65,536 rows (one row group) at a time, as a streaming writer (pyarrow's ParquetWriter, Spark)
writes a large table; `--row-group 1000000` writes 10^6 rows as one row group, as
`pq.write_table` of a whole table does. Each class has a centre drawn
N(0, 1) per coordinate; each row is its class's centre plus unit Gaussian noise; labels are
uniform over the classes. Rows are written a block at a time, so the table never sits in memory
twice. Then, after `cargo build --release -p poisonguard-cli`:

    /usr/bin/time -v target/release/poisonguard scan OUT.npy --meta OUT_meta.parquet \\
        --label label --timings
    /usr/bin/time -v target/release/poisonguard scan OUT.parquet --embedding embedding \\
        --label label --timings
"""
import argparse

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

BLOCK = 65_536


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dims", type=int, default=512)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--parquet", action="store_true", help="also write OUT.parquet (list column)")
    ap.add_argument("--row-group", type=int, default=BLOCK, help="rows per Parquet row group")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    centres = rng.standard_normal((args.classes, args.dims)).astype(np.float32)
    labels = rng.integers(args.classes, size=args.rows)
    x = np.lib.format.open_memmap(
        f"{args.out}.npy", mode="w+", dtype=np.float32, shape=(args.rows, args.dims)
    )
    for start in range(0, args.rows, BLOCK):
        stop = min(start + BLOCK, args.rows)
        noise = rng.standard_normal((stop - start, args.dims), dtype=np.float32)
        x[start:stop] = centres[labels[start:stop]] + noise
    x.flush()
    pq.write_table(pa.table({"label": labels.astype(np.int64)}), f"{args.out}_meta.parquet")
    if args.parquet:
        vector = pa.list_(pa.float32(), args.dims)
        schema = pa.schema([("embedding", vector), ("label", pa.int64())])
        with pq.ParquetWriter(f"{args.out}.parquet", schema) as writer:
            for start in range(0, args.rows, args.row_group):
                stop = min(start + args.row_group, args.rows)
                values = pa.array(np.ascontiguousarray(x[start:stop]).reshape(-1))
                block = {
                    "embedding": pa.FixedSizeListArray.from_arrays(values, args.dims),
                    "label": labels[start:stop].astype(np.int64),
                }
                writer.write_table(pa.table(block, schema=schema), row_group_size=args.row_group)


if __name__ == "__main__":
    main()
