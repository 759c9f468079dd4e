"""Seeded class-stratified subsamples of the real ResNet-18 embedding tables.

    python scripts/make_real_fixtures.py ../shared/datasets/real-embeddings

writes `datasets/real-embeddings/cifar10_resnet18_3class_3000.parquet` (CIFAR-10, freely
redistributed: shipped data) and `tests/fixtures/svhn_resnet18_3class_3000.parquet` (SVHN is for
non-commercial use: a test fixture only), 1,000 rows of each of the three classes, seed 2026,
column `embedding` (FixedSizeList<float32>, 512) and `label`, zstd level 19. Needs numpy and
pyarrow.
"""

import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def subsample(src, dst, per_class, seed):
    table = pq.read_table(src)
    y = table.column("label").to_numpy()
    rng = np.random.default_rng(seed)
    idx = np.sort(
        np.concatenate(
            [rng.choice(np.where(y == c)[0], per_class, replace=False) for c in np.unique(y)]
        )
    )
    pq.write_table(table.take(pa.array(idx)), dst, compression="zstd", compression_level=19)


if __name__ == "__main__":
    root = sys.argv[1] if len(sys.argv) > 1 else "../shared/datasets/real-embeddings"
    subsample(
        f"{root}/cifar10_resnet18_3class.parquet",
        "datasets/real-embeddings/cifar10_resnet18_3class_3000.parquet",
        1000,
        2026,
    )
    subsample(
        f"{root}/svhn_resnet18_3class.parquet",
        "tests/fixtures/svhn_resnet18_3class_3000.parquet",
        1000,
        2026,
    )
