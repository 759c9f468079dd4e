"""Writes the fixtures of the page reader of Parquet feature columns (`src/pages.rs`).

The same 300 x 5 embedding (seeded; every value a multiple of 1/64 in its first 150 rows, so
pyarrow's dictionary holds them, and arbitrary float32 in the last 150, so a small dictionary
page limit makes the writer fall back to PLAIN pages in the middle of a column chunk) and labels
0, 1, 2, written by pyarrow with the page layouts writers produce: data pages v1 and v2,
dictionary, PLAIN and BYTE_STREAM_SPLIT values, each compression polars reads, one or several row
groups, pages of a few hundred bytes (many pages per chunk). `values.npy` holds the embedding as
float32 (the float64 files hold it widened, exactly). `columns_*.parquet` hold it as five
numeric columns (nullable, or required), `ints_*.parquet` integer columns of every width and
sign. Run from this folder with pyarrow 26:
`python make.py`.
"""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

rng = np.random.default_rng(20261207)
n, d = 300, 5
x = np.empty((n, d), dtype=np.float32)
x[:150] = np.round(rng.normal(size=(150, d)) * 64) / 64
x[150:] = rng.normal(size=(150, d)).astype(np.float32)
labels = pa.array(np.arange(n) % 3, pa.int64())
np.save("values.npy", x)


def column(kind, dtype):
    flat = pa.array(x.reshape(-1).astype(dtype))
    if kind == "fixed":
        return pa.FixedSizeListArray.from_arrays(flat, d)
    offsets = pa.array(np.arange(0, n * d + 1, d), pa.int32() if kind == "list" else pa.int64())
    cls = pa.ListArray if kind == "list" else pa.LargeListArray
    return cls.from_arrays(offsets, flat)


CASES = {
    # name: (list kind, value type, writer options)
    "dict_v1_snappy": ("list", np.float32, dict(
        data_page_version="1.0", compression="snappy", row_group_size=128,
        data_page_size=512, dictionary_pagesize_limit=256)),
    "plain_v2_zstd": ("fixed", np.float32, dict(
        data_page_version="2.0", compression="zstd", use_dictionary=False, data_page_size=700)),
    "split_v2_gzip": ("list", np.float64, dict(
        data_page_version="2.0", compression="gzip", use_dictionary=False,
        use_byte_stream_split=True, row_group_size=100, data_page_size=600)),
    "dict_v2_none": ("large", np.float32, dict(
        data_page_version="2.0", compression="none", data_page_size=300,
        dictionary_pagesize_limit=1024)),
    "plain_v1_lz4": ("fixed", np.float64, dict(
        data_page_version="1.0", compression="lz4", use_dictionary=False, row_group_size=77)),
    "dict_v1_brotli": ("fixed", np.float32, dict(
        data_page_version="1.0", compression="brotli")),
}

for name, (kind, dtype, options) in CASES.items():
    table = pa.table({"emb": column(kind, dtype), "label": labels})
    pq.write_table(table, f"{name}.parquet", **options)

# the embedding as five numeric columns f0..f4 (float32, but f1 and f3 float64) beside the labels
numeric = {f"f{j}": x[:, j].astype(np.float64 if j in (1, 3) else np.float32) for j in range(d)}
numeric["label"] = labels
pq.write_table(pa.table(numeric), "columns_v1_snappy.parquet", data_page_version="1.0",
               compression="snappy", row_group_size=128, data_page_size=200,
               dictionary_pagesize_limit=128)
pq.write_table(pa.table(numeric), "columns_v2_zstd.parquet", data_page_version="2.0",
               compression="zstd", use_dictionary=False, data_page_size=300)
# integer columns of every width and sign (large values included: 2^53 + 1, near 2^63 and
# 2^64, which become f32 through f64 as polars' cast reads them), dictionary and PLAIN pages
k = np.arange(n)
ints = {
    "i8": pa.array((k % 250 - 125).astype(np.int8)),
    "i16": pa.array((k * 211 % 60000 - 30000).astype(np.int16)),
    "i32": pa.array((k * 7_919_993 % 4_000_000_000 - 2_000_000_000).astype(np.int32)),
    "i64": pa.array(np.where(k % 2 == 0, 2**53 + 1 + k, -(2**62) - k * 977).astype(np.int64)),
    "u8": pa.array((k % 256).astype(np.uint8)),
    "u16": pa.array((k * 331 % 65536).astype(np.uint16)),
    "u32": pa.array((4_294_967_295 - k * 12_345).astype(np.uint32)),
    "u64": pa.array((np.uint64(2**64 - 1) - k.astype(np.uint64) * np.uint64(999_999_937))),
    "label": labels,
}
pq.write_table(pa.table(ints), "ints_v1.parquet", data_page_version="1.0", compression="snappy",
               row_group_size=128, data_page_size=256, dictionary_pagesize_limit=200)
pq.write_table(pa.table(ints), "ints_v2.parquet", data_page_version="2.0", compression="zstd",
               use_dictionary=False, data_page_size=400)
# the same columns declared required (no definition levels at all)
required = pa.schema([pa.field(k, v.type if hasattr(v, "type") else pa.from_numpy_dtype(v.dtype),
                               nullable=False) for k, v in numeric.items()])
pq.write_table(pa.table(numeric, schema=required), "columns_required.parquet",
               data_page_version="1.0", compression="none", row_group_size=200,
               data_page_size=256)
