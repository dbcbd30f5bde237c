"""Scale-out: the logged pyfunc model as a Spark UDF scores like score_parquet (slow; needs pyspark)."""

from __future__ import annotations

import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from pipelines import tabular_pipeline
from vae_anomaly import tracking
from vae_anomaly.batch import score_parquet

pyspark_sql = pytest.importorskip("pyspark.sql")
SAMPLE_DATA = Path(__file__).resolve().parents[1] / "sample_data"


@pytest.mark.slow
def test_spark_udf_scores_like_score_parquet(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)
    tracking.use_tracking_store(f"sqlite:///{tmp_path / 'mlflow.db'}")
    features = pd.read_parquet(SAMPLE_DATA / "tabular.parquet").drop(columns="is_anomaly")
    model = tabular_pipeline(epochs=5, random_state=0).fit(features)
    with mlflow.start_run():
        info = tracking.log_model(model, "model", input_example=features.head(5))
    features.assign(row_id=np.arange(len(features))).to_parquet(tmp_path / "input.parquet")
    score_parquet(info.model_uri, tmp_path / "input.parquet", tmp_path / "out")
    expected = pd.read_parquet(tmp_path / "out" / "input.parquet")

    spark = pyspark_sql.SparkSession.builder.master("local[2]").appName("vae-anomaly-test").getOrCreate()
    try:
        scores = mlflow.pyfunc.spark_udf(
            spark, info.model_uri, result_type="anomaly_score double, is_anomaly boolean"
        )
        frame = spark.read.parquet(str(tmp_path / "input.parquet"))
        scored = frame.withColumn("scores", scores(pyspark_sql.functions.struct(*features.columns)))
        result = scored.select("row_id", "scores.*").toPandas().sort_values("row_id", ignore_index=True)
    finally:
        spark.stop()
        mlflow.set_tracking_uri(None)
    assert len(result) == len(expected)
    # Spark hands the model batches of its own size: float32 matrix products may differ in the last bit.
    np.testing.assert_allclose(result["anomaly_score"], expected["anomaly_score"], rtol=1e-5)
    np.testing.assert_array_equal(result["is_anomaly"], expected["is_anomaly"])
