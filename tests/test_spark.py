"""Scale-out: the logged pyfunc model as a Spark UDF scores like score_parquet (slow; needs pyspark)."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from vae_anomaly import tracking
from vae_anomaly.batch import score_parquet
from vae_anomaly.pipelines import tabular_pipeline

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


@pytest.mark.slow
def test_spark_computes_the_sample_the_driver_fits_and_the_udf_scores(tmp_path, monkeypatch):
    from vae_anomaly import VAEAnomalyDetector, fit_sample, sample_spark

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)
    tracking.use_tracking_store(f"sqlite:///{tmp_path / 'mlflow.db'}")
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(30_000, 2))
    data = pd.DataFrame(10 + latent @ rng.normal(size=(2, 5)), columns=[f"c{i}" for i in range(5)])
    data["flag"] = (latent[:, 0] > 0).astype(float)  # a 0/1 column, kept as it is
    data.loc[7, "c1"] = np.nan
    regions = pd.Series(rng.choice(["eu", "us"], len(data))).where(np.arange(len(data)) != 20_000, "mars")
    data.assign(region=regions).to_parquet(tmp_path / "data.parquet")
    spark = pyspark_sql.SparkSession.builder.master("local[2]").appName("vae-anomaly-test").getOrCreate()
    try:
        frame = spark.read.parquet(str(tmp_path / "data.parquet"))
        with_regions = sample_spark(frame, max_rows=4000, random_state=0)
        assert with_regions.levels == {"region": ["eu", "mars", "us"]}  # "mars", in 1 row of 30,000
        assert len(with_regions.frame) == 4001 and with_regions.frame["region"].eq("mars").sum() == 1
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sample = sample_spark(frame, drop_columns=["region"], max_rows=4000, random_state=0)
        assert not [str(w.message) for w in caught if "pyspark" in w.filename], "pandas 3 notices"
        statistics = sample.statistics
        np.testing.assert_allclose(statistics.mean, data.mean().to_numpy(), rtol=1e-12)
        np.testing.assert_allclose(statistics.variance, data.var(ddof=0).to_numpy(), rtol=1e-9)
        assert statistics.nulls.tolist() == [0, 1, 0, 0, 0, 0] and statistics.binary.tolist()[-1]
        assert len(sample.frame) == 4000 and sample.n_rows == 30_000
        merged = data.reset_index().merge(sample.frame.dropna(), on=list(data.columns))
        assert merged["index"].is_unique and len(merged) >= 3999  # rows of the data, each once
        detector = fit_sample(VAEAnomalyDetector(missing="skip", epochs=3, random_state=0), sample)
        np.testing.assert_allclose(detector.mean_, statistics.mean)
        with mlflow.start_run():
            info = tracking.log_model(detector, "model", input_example=sample.frame.head(5))
        scores = mlflow.pyfunc.spark_udf(
            spark, info.model_uri, result_type="anomaly_score double, is_anomaly boolean"
        )
        head = frame.limit(500)
        scored = head.withColumn("scores", scores(pyspark_sql.functions.struct(*data.columns)))
        result = scored.select("*", "scores.*").toPandas()
    finally:
        spark.stop()
        mlflow.set_tracking_uri(None)
    expected = -detector.score_samples(result[list(data.columns)])
    np.testing.assert_allclose(result["anomaly_score"], expected, rtol=1e-5)
