"""The ready-made pipelines on the committed sample data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from pipelines import tabular_pipeline, timeseries_pipeline
from vae_anomaly.frames import score_frame

SAMPLE_DATA = Path(__file__).resolve().parents[1] / "sample_data"


@pytest.fixture(scope="module")
def tabular() -> pd.DataFrame:
    return pd.read_parquet(SAMPLE_DATA / "tabular.parquet")


def test_tabular_pipeline_finds_the_planted_anomalies(tabular):
    features, labels = tabular.drop(columns="is_anomaly"), tabular["is_anomaly"]
    model = tabular_pipeline(random_state=0).fit(features)
    assert roc_auc_score(labels, -model.score_samples(features)) > 0.9


@pytest.fixture(scope="module")
def readme_model(tabular):
    """The README's pipeline example."""
    return tabular_pipeline(contamination=0.02, random_state=0).fit(tabular.drop(columns="is_anomaly"))


def test_rows_with_a_null_are_not_flagged_for_it(tabular, readme_model):
    features = tabular.drop(columns="is_anomaly")
    flagged = readme_model.predict(features) == -1
    null_memory = features["memory_gb"].isna().to_numpy()
    assert flagged[null_memory].sum() <= 3  # of 60 rows; all 60 were flagged when nulls were imputed
    assert tabular["is_anomaly"][flagged].mean() > 0.75


def test_contributions_are_per_input_column_and_cover_the_whole_score(tabular, readme_model):
    features = tabular.drop(columns="is_anomaly")
    scored = score_frame(readme_model, features, contributions=True)
    shares = scored.filter(like="contribution_")
    assert list(shares.columns) == [f"contribution_{column}" for column in features.columns]
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    top = scored["anomaly_score"].idxmax()
    assert shares.loc[top].idxmax() == "contribution_latency_ms"  # a planted "slow without load" row


def test_tabular_pipeline_takes_nulls_and_unseen_categories(tabular):
    features = tabular.drop(columns="is_anomaly")
    model = tabular_pipeline(epochs=3, random_state=0).fit(features)
    new = features.head(3).assign(region=["mars-north", None, "eu-west"], memory_gb=[np.nan, 3.0, 4.0])
    assert np.isfinite(model.score_samples(new)).all()
    assert set(model.predict(new)) <= {-1, 1}


def test_timeseries_pipeline_finds_the_planted_anomalies():
    frame = pd.read_parquet(SAMPLE_DATA / "timeseries_multivariate.parquet").assign(host="web-1")
    series = frame.set_index("timestamp").drop(columns="label")
    n_train = 10 * 288  # ten clean days
    model = timeseries_pipeline(random_state=0).fit(series.iloc[:n_train])
    scores = -model.score_samples(series)
    assert roc_auc_score(frame["label"][n_train:], scores[n_train:]) > 0.9


def test_timeseries_pipeline_with_a_time_column():
    frame = pd.read_parquet(SAMPLE_DATA / "timeseries_univariate.parquet")
    model = timeseries_pipeline(["value"], time_column="timestamp", epochs=3, random_state=0)
    model.fit(frame.iloc[:3000])
    assert model.score_samples(frame).shape == (len(frame),)
    assert model[-1].sampling_interval_ == pd.Timedelta("5min")
