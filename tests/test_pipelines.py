"""The ready-made pipelines on the committed sample data."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

import vae_anomaly.pipelines
from vae_anomaly import DetectorPipeline
from vae_anomaly.frames import score_frame
from vae_anomaly.pipelines import tabular_pipeline, timeseries_pipeline

SAMPLE_DATA = Path(__file__).resolve().parents[1] / "sample_data"


@pytest.fixture(scope="module")
def tabular() -> pd.DataFrame:
    return pd.read_parquet(SAMPLE_DATA / "tabular.parquet")


def test_the_old_top_level_import_still_works_and_says_where_the_pipelines_went(monkeypatch):
    monkeypatch.delitem(sys.modules, "pipelines", raising=False)  # import it afresh, warning again
    with pytest.warns(DeprecationWarning, match="from vae_anomaly.pipelines import tabular_pipeline"):
        old = importlib.import_module("pipelines")
    assert old.tabular_pipeline is vae_anomaly.pipelines.tabular_pipeline
    assert old.timeseries_pipeline is vae_anomaly.pipelines.timeseries_pipeline


def test_a_pipeline_refuses_the_label_its_column_selection_would_train_on(tabular):
    with pytest.raises(
        ValueError,
        match=r"\['numeric__is_anomaly'\] are named as the scores.*data\.drop\(columns=\['is_anomaly'\]\)",
    ):
        tabular_pipeline(epochs=1).fit(tabular)


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
    numeric = features.select_dtypes("number")
    q1, median, q3 = numeric.quantile([0.25, 0.5, 0.75]).to_numpy()
    farthest = ((numeric.loc[top] - median).abs() / (q3 - q1)).idxmax()  # the most extreme reading
    assert shares.loc[top].idxmax() == f"contribution_{farthest}"


def test_the_pipeline_explains_saves_and_loads_as_one_model(tabular, readme_model, tmp_path):
    features = tabular.drop(columns="is_anomaly")
    shares = readme_model.explain(features.head(50))
    contributions = score_frame(readme_model, features.head(50), contributions=True).filter(
        like="contribution_"
    )
    np.testing.assert_array_equal(shares.to_numpy(), contributions.to_numpy())
    assert list(shares.columns) == list(features.columns)
    parts = readme_model.explain(features.head(50), shares=False)
    np.testing.assert_allclose(
        parts.sum(axis=1),
        readme_model[-1].explain(readme_model[:-1].transform(features.head(50)), shares=False).sum(axis=1),
    )
    loaded = DetectorPipeline.load(readme_model.save(tmp_path / "model"))
    assert type(loaded) is DetectorPipeline and [name for name, _ in loaded.steps] == ["features", "detector"]
    np.testing.assert_array_equal(loaded.score_samples(features), readme_model.score_samples(features))
    pd.testing.assert_frame_equal(loaded.explain(features.head(50)), shares)
    copy = clone(readme_model)
    assert type(copy) is DetectorPipeline and copy.get_params()["detector__contamination"] == 0.02
    readme_model[-1].save(tmp_path / "bare")
    with pytest.raises(TypeError, match="holds a bare VAEAnomalyDetector, not a pipeline"):
        DetectorPipeline.load(tmp_path / "bare")


def test_tabular_pipeline_takes_nulls_and_unseen_categories(tabular):
    features = tabular.drop(columns="is_anomaly")
    model = tabular_pipeline(epochs=3, random_state=0).fit(features)
    new = features.head(3).assign(region=["mars-north", None, "eu-west"], memory_gb=[np.nan, 3.0, 4.0])
    assert np.isfinite(model.score_samples(new)).all()
    assert set(model.predict(new)) <= {-1, 1}


def test_an_unseen_category_is_flagged_and_named_and_a_null_one_is_not(tabular, readme_model):
    features = tabular.drop(columns="is_anomaly")
    normal = features[~tabular["is_anomaly"].astype(bool)].head(40)
    assert (readme_model.predict(normal) == 1).all()
    new = normal.assign(region=["mars-north"] * 20 + [None] * 20)
    flagged = readme_model.predict(new) == -1
    assert flagged[:20].all() and not flagged[20:].any()
    assert (readme_model.explain(new.head(20)).idxmax(axis=1) == "region").all()


@pytest.fixture(scope="module")
def metrics_series() -> tuple[pd.DataFrame, pd.Series]:
    frame = pd.read_parquet(SAMPLE_DATA / "timeseries_multivariate.parquet").assign(host="web-1")
    return frame.set_index("timestamp").drop(columns="label"), frame["label"]


@pytest.fixture(scope="module")
def series_model(metrics_series):
    """The time-series pipeline fitted on ten clean days."""
    return timeseries_pipeline(random_state=0).fit(metrics_series[0].iloc[: 10 * 288])


def test_timeseries_pipeline_finds_the_planted_anomalies(metrics_series, series_model):
    series, labels = metrics_series
    scores = -series_model.score_samples(series)
    n_train = 10 * 288
    assert roc_auc_score(labels[n_train:], scores[n_train:]) > 0.9


def test_timeseries_pipeline_gives_its_events_at_the_series_timestamps(metrics_series, series_model):
    series = metrics_series[0]
    events = series_model.events(series, top_channels=1)
    assert len(events) and set(events["start"]) <= set(series.index)
    assert list(events.columns[-2:]) == ["channel_1", "share_1"]
    assert set(events["channel_1"]) <= set(series.columns)


def test_timeseries_pipeline_with_a_time_column():
    frame = pd.read_parquet(SAMPLE_DATA / "timeseries_univariate.parquet")
    model = timeseries_pipeline(["value"], time_column="timestamp", epochs=3, random_state=0)
    model.fit(frame.iloc[:3000])
    assert model.score_samples(frame).shape == (len(frame),)
    assert model[-1].sampling_interval_ == pd.Timedelta("5min")


def test_contributions_follow_the_encoder_not_the_names():
    """A one-hot level ``b`` of a column ``a`` is ``a``'s, not that of a numeric column ``a_b``."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"a": rng.choice(["b", "c"], 200), "a_b": rng.normal(size=200), "x": rng.normal(size=200)}
    )
    model = tabular_pipeline(epochs=2, random_state=0).fit(frame)
    shares = model[-1].explain(model[:-1].transform(frame.head(10)))
    scored = score_frame(model, frame.head(10), contributions=True)
    np.testing.assert_array_equal(scored["contribution_a_b"], shares["numeric__a_b"])
    np.testing.assert_allclose(
        scored["contribution_a"], shares["categorical__a_b"] + shares["categorical__a_c"], rtol=1e-12
    )


def test_feature_sources_read_the_fitted_transformers():
    from sklearn.compose import ColumnTransformer
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from vae_anomaly.input_columns import feature_sources

    frame = pd.DataFrame({"c": ["u"] * 10 + ["v"] * 10 + ["w", "z"], "n": np.arange(22.0), "m": 1.0})
    encoder = OneHotEncoder(min_frequency=5, drop="first", sparse_output=False)
    features = ColumnTransformer(
        [("cat", encoder, ["c"]), ("num", StandardScaler(), [1]), ("mixed", PCA(1), ["n", "m"])]
    ).fit(frame)
    # c: "v" and the infrequent group (u dropped); n scaled; PCA mixes n and m, so it does not say.
    assert feature_sources(features, list(frame.columns)) == ["c", "c", "n", None]
