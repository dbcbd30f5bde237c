"""The numpy series scorer: a saved series detector scored without torch, as the detector scores it
(issue 33, item 3)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import score_without_heavy_imports, seasonal_series

from vae_anomaly import TimeSeriesVAEDetector, numpy_vae
from vae_anomaly.batch import load_scoring_model, write_events
from vae_anomaly.numpy_scorer import load_numpy_scorer
from vae_anomaly.numpy_series_scorer import NumpySeriesScorer
from vae_anomaly.time_index import IrregularSamplingWarning

CHANNELS = ["cpu", "memory", "latency"]


def sensor_frame(n: int, seed: int) -> pd.DataFrame:
    """Three seasonal channels every 5 minutes, the timestamps in a ``time`` column."""
    frame = pd.DataFrame(seasonal_series(n, n_channels=3, seed=seed), columns=CHANNELS)
    frame.insert(0, "time", pd.date_range("2024-01-01", periods=n, freq="5min"))
    return frame


@pytest.fixture(scope="module")
def training() -> pd.DataFrame:
    return sensor_frame(800, seed=0)


@pytest.fixture(scope="module")
def new_series() -> pd.DataFrame:
    frame = sensor_frame(300, seed=1)
    frame.loc[150:154, "memory"] += 3.0  # planted: a burst in one channel
    return frame


def saved(detector: TimeSeriesVAEDetector, folder: Path) -> Path:
    detector.save(folder)
    return folder


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"aggregation": "mean", "stride": 1},
        {"aggregation": "min", "stride": 3},
        {"aggregation": "last", "score_method": "reconstruction"},
        {"early_weight": 0.5},
    ],
    ids=["defaults", "mean-stride-1", "min-stride-3", "last-reconstruction", "early-checkpoint"],
)
def test_the_numpy_scores_and_flags_are_the_detectors(params, training, new_series, tmp_path):
    detector = TimeSeriesVAEDetector(window=16, epochs=5, time_column="time", random_state=0, **params)
    detector.fit(training)
    scorer = load_numpy_scorer(saved(detector, tmp_path / "model"))
    assert isinstance(scorer, NumpySeriesScorer)
    np.testing.assert_allclose(
        scorer.anomaly_score(new_series), detector.anomaly_score(new_series), rtol=1e-6
    )
    frame = scorer.score_frame(new_series)
    assert list(frame.columns) == ["anomaly_score", "is_anomaly"]
    assert (frame.index == new_series.index).all()
    np.testing.assert_array_equal(frame["is_anomaly"], detector.predict(new_series) == -1)
    assert frame["is_anomaly"].iloc[150:155].all()  # the burst is found


def test_a_series_indexed_by_its_timestamps_scores_as_with_the_detector(training, new_series, tmp_path):
    detector = TimeSeriesVAEDetector(window=16, epochs=5, random_state=0)
    detector.fit(training.set_index("time"))
    scorer = load_numpy_scorer(saved(detector, tmp_path / "model"))
    series = new_series.set_index("time")
    np.testing.assert_allclose(scorer.anomaly_score(series), detector.anomaly_score(series), rtol=1e-6)


def test_the_windows_score_the_same_in_any_pass(training, new_series, tmp_path, monkeypatch):
    detector = TimeSeriesVAEDetector(window=16, epochs=5, time_column="time", random_state=0).fit(training)
    scorer = load_numpy_scorer(saved(detector, tmp_path / "m"))
    together = scorer.anomaly_score(new_series)
    monkeypatch.setattr(numpy_vae, "ROWS_PER_PASS", 5)
    np.testing.assert_allclose(scorer.anomaly_score(new_series), together, rtol=1e-12)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda f: f.head(10), "n_samples=10 timestamps, but window=16"),
        (
            lambda f: f.assign(latency=f.latency.where(f.index != 7, np.inf)),
            "column 'latency'.*first at row 7",
        ),
        (lambda f: f.iloc[[0, 2, 1, *range(3, len(f))]], "not sorted"),
    ],
    ids=["too-short", "inf", "unsorted"],
)
def test_bad_input_is_refused_with_the_detectors_message(change, match, training, new_series, tmp_path):
    detector = TimeSeriesVAEDetector(window=16, epochs=3, time_column="time", random_state=0).fit(training)
    scorer = load_numpy_scorer(saved(detector, tmp_path / "m"))
    bad = change(new_series)
    with pytest.raises(ValueError) as from_torch:
        detector.anomaly_score(bad)
    with pytest.raises(ValueError, match=match) as from_numpy:
        scorer.anomaly_score(bad)
    assert str(from_numpy.value) == str(from_torch.value)


def test_a_series_spaced_unlike_training_warns_as_with_the_detector(training, new_series, tmp_path):
    detector = TimeSeriesVAEDetector(window=16, epochs=3, time_column="time", random_state=0).fit(training)
    scorer = load_numpy_scorer(saved(detector, tmp_path / "m"))
    hourly = new_series.assign(time=pd.date_range("2024-02-01", periods=len(new_series), freq="h"))
    with pytest.warns(IrregularSamplingWarning, match="trained on data sampled every") as from_numpy:
        scorer.anomaly_score(hourly)
    with pytest.warns(IrregularSamplingWarning) as from_torch:
        detector.anomaly_score(hourly)
    assert [str(w.message) for w in from_numpy] == [str(w.message) for w in from_torch]


@pytest.mark.parametrize("gap_fill", ["reconstruction", "mean"])
def test_a_series_with_missing_points_scores_as_with_the_detector(gap_fill, training, new_series, tmp_path):
    detector = TimeSeriesVAEDetector(
        window=16, epochs=3, time_column="time", gap_fill=gap_fill, early_weight=0.5, random_state=0
    ).fit(training)
    folder = saved(detector, tmp_path / "m")
    gapped = new_series.assign(cpu=new_series.cpu.where(~new_series.index.isin(range(40, 50))))
    gapped.loc[200:230, CHANNELS] = np.nan  # an outage longer than a window: windows with nothing observed
    gapped.loc[5, "latency"] = np.nan
    gapped.to_parquet(tmp_path / "in.parquet")
    batch_model = load_scoring_model(folder, input_path=tmp_path / "in.parquet")
    assert isinstance(batch_model.model, NumpySeriesScorer)
    assert batch_model.columns == [*CHANNELS, "time"] and batch_model.whole_files and batch_model.allows_nulls
    expected = detector.anomaly_score(gapped)
    assert np.isfinite(expected).all()
    np.testing.assert_allclose(batch_model.model.anomaly_score(gapped), expected, rtol=1e-6)
    np.testing.assert_allclose(
        batch_model.score(gapped[batch_model.columns])["anomaly_score"], expected, rtol=1e-6
    )
    # The gaps change the scores, and the scores of the complete series are untouched by them.
    assert not np.allclose(expected, detector.anomaly_score(new_series), rtol=1e-3)
    np.testing.assert_allclose(
        batch_model.model.anomaly_score(new_series), detector.anomaly_score(new_series), rtol=1e-6
    )


def test_the_command_line_scores_a_small_series_without_torch_or_scikit_learn(training, new_series, tmp_path):
    detector = TimeSeriesVAEDetector(window=16, epochs=5, time_column="time", random_state=0).fit(training)
    folder = saved(detector, tmp_path / "m")
    new_series.to_parquet(tmp_path / "in.parquet")
    assert score_without_heavy_imports(folder, tmp_path / "in.parquet", tmp_path / "out") == []
    output = pd.read_parquet(tmp_path / "out" / "in.parquet")
    np.testing.assert_allclose(output["anomaly_score"], detector.anomaly_score(new_series), rtol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no sampling warning: the series is spaced as in training
        np.testing.assert_array_equal(output["is_anomaly"], detector.predict(new_series) == -1)


def test_events_are_refused_for_a_numpy_model_with_the_way_to_get_them(training, new_series, tmp_path):
    detector = TimeSeriesVAEDetector(window=16, epochs=3, time_column="time", random_state=0).fit(training)
    folder = saved(detector, tmp_path / "m")
    new_series.to_parquet(tmp_path / "in.parquet")
    with pytest.raises(TypeError, match=r"load the model without input_path"):
        write_events(
            load_scoring_model(folder, input_path=tmp_path / "in.parquet"),
            tmp_path / "in.parquet",
            tmp_path / "ev",
        )
    assert write_events(load_scoring_model(folder), tmp_path / "in.parquet", tmp_path / "ev").failed == {}
