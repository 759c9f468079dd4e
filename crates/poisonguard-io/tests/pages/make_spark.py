"""Writes `spark_mr.parquet`, the page reader's fixture written by parquet-mr (Spark 4): the
300 x 5 embedding of `values.npy` as a required array<float> column `emb` (parquet-mr's
three-level list), its first two columns as an optional double `a` and a required double `b`,
and labels 0, 1, 2; small row groups and pages. parquet-mr names BIT_PACKED as the encoding of
levels a column does not have, where pyarrow names RLE. Run from this folder with pyspark:
`python make_spark.py`.
"""

import glob
import os
import shutil

import numpy as np
from pyspark.sql import SparkSession
from pyspark.sql.types import ArrayType, DoubleType, FloatType, LongType, StructField, StructType

x = np.load("values.npy")
spark = (
    SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()
)
rows = [(x[i].tolist(), float(x[i, 0]), float(x[i, 1]), i % 3) for i in range(len(x))]
schema = StructType([
    StructField("emb", ArrayType(FloatType(), False), False),
    StructField("a", DoubleType(), True),
    StructField("b", DoubleType(), False),
    StructField("label", LongType(), False),
])
(
    spark.createDataFrame(rows, schema)
    .coalesce(1)
    .write.mode("overwrite")
    .option("parquet.block.size", 4096)
    .option("parquet.page.size", 1024)
    .parquet("spark_out")
)
spark.stop()
shutil.move(glob.glob("spark_out/part-*.parquet")[0], "spark_mr.parquet")
shutil.rmtree("spark_out")
for crc in glob.glob(".spark_mr.parquet.crc"):
    os.remove(crc)
