"""TimeSeriesVAEDetector: a score per timestamp, planted anomalies, gaps, channels, bad input."""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import seasonal_series
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, TimeSeriesSplit
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from vae_anomaly import (
    IrregularSamplingWarning,
    ShortSeriesWarning,
    TimeSeriesVAEDetector,
    anomaly_roc_auc_scorer,
)
from vae_anomaly.metrics import vus_pr
from vae_anomaly.windowing import MAX_TRAINING_VALUES

FAST = dict(window=32, epochs=60, random_state=0)


def _frame(values: np.ndarray, freq: str = "5min") -> pd.DataFrame:
    values = values.reshape(len(values), -1)
    index = pd.date_range("2024-01-01", periods=len(values), freq=freq, name="time")
    return pd.DataFrame(values, index=index, columns=[f"ch{i}" for i in range(values.shape[1])])


def _planted(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """The seasonal series with one anomaly planted in its last third, and the anomaly's labels."""
    values = seasonal_series()
    labels = np.zeros(len(values), dtype=int)
    if kind == "spike":
        values[2500] += 4.0
        labels[2500] = 1
    elif kind == "level_shift":
        values[2400:2500] += 1.5
        labels[2400:2500] = 1
    else:  # frequency change: the period halves for three periods
        t = np.arange(2400, 2550)
        values[t] = np.sin(2 * np.pi * t / 25) + 0.1 * np.random.default_rng(1).normal(size=len(t))
        labels[t] = 1
    return values, labels


@pytest.mark.parametrize("kind", ["spike", "level_shift", "frequency_change"])
def test_planted_anomalies_are_found(fitted_series_detector, kind):
    values, labels = _planted(kind)
    scores = fitted_series_detector.anomaly_score(values)
    assert roc_auc_score(labels[2000:], scores[2000:]) > 0.95
    assert vus_pr(labels[2000:], scores[2000:]) > 0.5


def test_min_aggregation_flags_the_burst_where_max_flags_its_windows(fitted_series_detector, seasonal):
    values = seasonal.copy()
    values[2500:2510] += 1.0  # a ten-point burst, as in the README
    narrow = TimeSeriesVAEDetector(**FAST, aggregation="min").fit(seasonal[:2000])
    # Timestamps after training: the threshold flags a few training timestamps by design.
    flagged = 2000 + np.flatnonzero(narrow.predict(values)[2000:] == -1)
    wide = 2000 + np.flatnonzero(fitted_series_detector.predict(values)[2000:] == -1)
    stride = narrow.stride
    assert set(range(2500, 2510)) <= set(flagged)
    assert flagged.min() >= 2500 - stride and flagged.max() < 2510 + stride
    assert wide.min() < 2500 - 16 and wide.max() > 2510 + 16  # "max" widens by up to window - 1


@pytest.mark.parametrize(
    "make_input",
    [
        lambda v: v,
        lambda v: v.tolist(),
        lambda v: v.reshape(-1, 1),
        lambda v: _frame(v),
        lambda v: _frame(v)["ch0"],
        lambda v: _frame(v).reset_index(),
    ],
    ids=["1d", "list", "2d", "datetime_index", "series", "time_column"],
)
def test_every_timestamp_gets_a_finite_score(make_input, seasonal):
    time_column = "time" if isinstance(make_input(seasonal[:10]), pd.DataFrame) else None
    detector = TimeSeriesVAEDetector(window=32, epochs=3, random_state=0)
    data = make_input(seasonal[:500])
    if time_column and "time" not in getattr(data, "columns", []):
        time_column = None
    detector.set_params(time_column=time_column).fit(data)
    scores = detector.score_samples(data)
    assert scores.shape == (500,)
    assert np.isfinite(scores).all()
    assert set(np.unique(detector.predict(data))) <= {-1, 1}


@pytest.mark.parametrize("stride", [1, 7])
def test_the_first_window_minus_one_timestamps_are_scored_too(seasonal, stride):
    detector = TimeSeriesVAEDetector(window=32, stride=stride, epochs=3, random_state=0).fit(seasonal[:500])
    scores = detector.anomaly_score(seasonal[:500])
    assert np.isfinite(scores[:31]).all()
    assert np.ptp(scores[:31]) >= 0  # present, not padding


def test_a_short_series_is_trained_on_every_window(seasonal, monkeypatch):
    import vae_anomaly.fitting

    trained_rows = []
    real = vae_anomaly.fitting.train_vae
    monkeypatch.setattr(
        vae_anomaly.fitting,
        "train_vae",
        lambda module, rows, *a: trained_rows.append(len(rows)) or real(module, rows, *a),
    )
    detector = TimeSeriesVAEDetector(window=32, stride=4, epochs=2, random_state=0).fit(seasonal[:500])
    assert trained_rows == [500 - 32 + 1]  # stride 1, where stride 4 would give 118
    assert np.isfinite(detector.anomaly_score(seasonal[:500])).all()


def test_gaps_of_missing_points_are_skipped_and_reported(seasonal):
    values, labels = _planted("spike")
    values[500:510] = np.nan  # a gap in training
    values[2700:2710] = np.nan  # and one in scoring
    # The default step budget: a model trained for a few hundred steps is still near the fence on the
    # gaps' windows (60 epochs at stride 4 passed by 0.4 nats, at stride 1 fails by 0.7).
    detector = TimeSeriesVAEDetector(window=32, random_state=0).fit(values[:2000])
    components = detector.score_components(values)
    assert np.isfinite(components.drop(columns="missing").to_numpy()).all()
    assert components["missing"].to_numpy().nonzero()[0].tolist() == [*range(500, 510), *range(2700, 2710)]
    scores = components["neg_elbo"].to_numpy()
    assert roc_auc_score(labels[2000:], scores[2000:]) > 0.95
    flagged = set((detector.predict(values) == -1).nonzero()[0])
    assert flagged and flagged <= set(range(2500 - 32, 2500 + 32))  # the spike's windows, not the gaps


def test_a_gap_in_one_channel_is_not_flagged_for_itself():
    # Issue 29, item 7: a 4-channel sine, one channel blanked for 10 points in 5 places of new data.
    rng = np.random.default_rng(0)
    t = np.arange(4000)[:, None]
    values = np.sin(2 * np.pi * t / 50 + np.arange(4) * np.pi / 4) + 0.02 * rng.normal(size=(4000, 4))
    detector = TimeSeriesVAEDetector(random_state=0).fit(values[:2000])
    blanked, gapped = values[2000:].copy(), np.zeros(2000, dtype=bool)
    for start in (331, 663, 995, 1326, 1658):  # as benchmarks/missing.py places them
        gapped[start : start + 10] = True
        blanked[start : start + 10, rng.integers(4)] = np.nan
    flagged = {}
    for fill in ("reconstruction", "mean"):
        flagged[fill] = (detector.set_params(gap_fill=fill).predict(blanked) == -1)[gapped].mean()
    # Refilled from the model's reconstruction, the gaps score as the complete series does (0 of its
    # timestamps flagged); filled with the channel mean, 80% of them were flagged.
    assert flagged["reconstruction"] <= 0.1 < 0.5 <= flagged["mean"], flagged


def test_a_gap_in_a_constant_series_is_not_flagged():
    # A series whose training windows all score alike (SMAP D-12's training part): its threshold sits
    # on tied scores, which a refilled gap may move by float32 rounding only.
    values = np.tile([-1.0, 0.0, 0.0], (400, 1))
    detector = TimeSeriesVAEDetector(window=32, epochs=5, random_state=0).fit(values[:250])
    blanked = values[250:].copy()
    blanked[50:60, 1] = np.nan
    assert (detector.predict(blanked) == 1).all()


def test_explain_points_at_the_anomalous_channel():
    values = seasonal_series(n_channels=5)
    detector = TimeSeriesVAEDetector(**FAST).fit(_frame(values[:2000]))
    values[2500:2520, 3] += 2.0
    shares = detector.explain(_frame(values))
    assert (shares.iloc[2500:2520].idxmax(axis=1) == "ch3").all()
    assert shares.sum(axis=1).to_numpy() == pytest.approx(1.0)


def test_sampling_interval_is_kept_through_save_load(seasonal, tmp_path):
    detector = TimeSeriesVAEDetector(window=32, epochs=3, random_state=0).fit(_frame(seasonal[:400]))
    detector.save(tmp_path / "model")
    assert TimeSeriesVAEDetector.load(tmp_path / "model").sampling_interval_ == pd.Timedelta("5min")


def test_works_in_a_pipeline_and_a_time_series_grid_search(seasonal):
    values, labels = _planted("level_shift")
    pipeline = make_pipeline(
        StandardScaler().set_output(transform="pandas"),
        TimeSeriesVAEDetector(window=32, epochs=5, random_state=0),
    )
    frame = _frame(values)
    assert pipeline.fit(frame.iloc[:2000]).score_samples(frame).shape == (3000,)
    search = GridSearchCV(
        clone(pipeline),
        {"timeseriesvaedetector__window": [16, 32]},
        scoring=anomaly_roc_auc_scorer,
        cv=[(np.arange(2000), np.arange(2000, 3000))],
    )
    search.fit(frame, labels)
    assert search.best_params_["timeseriesvaedetector__window"] in (16, 32)
    assert TimeSeriesSplit(n_splits=2).get_n_splits(frame) == 2


# ------------------------------------------------------------------------------------- bad input
def test_unsorted_timestamps_are_refused(seasonal):
    frame = _frame(seasonal[:200]).iloc[::-1]
    with pytest.raises(ValueError, match=r"is not sorted: row 1 .* comes before row 0"):
        TimeSeriesVAEDetector(window=32).fit(frame)


def test_duplicated_timestamps_are_refused(seasonal):
    frame = _frame(seasonal[:200])
    frame.index = frame.index[[0, *range(199)]]
    with pytest.raises(ValueError, match="duplicated timestamps, first 2024-01-01 00:00:00 at rows 0 and 1"):
        TimeSeriesVAEDetector(window=32).fit(frame)


def test_missing_timestamps_are_refused(seasonal):
    frame = _frame(seasonal[:200]).reset_index()
    frame.loc[5, "time"] = pd.NaT
    with pytest.raises(ValueError, match="missing timestamps \\(NaT\\) at row 5"):
        TimeSeriesVAEDetector(window=32, time_column="time").fit(frame)


@pytest.mark.parametrize(
    ("time_column", "message"),
    [("when", "time_column='when' is not a column of X"), ("ch0", "time_column 'ch0' has dtype float64")],
)
def test_a_bad_time_column_is_named(seasonal, time_column, message):
    with pytest.raises(ValueError, match=message):
        TimeSeriesVAEDetector(window=32, time_column=time_column).fit(_frame(seasonal[:200]).reset_index())


def test_irregular_sampling_is_reported(seasonal):
    frame = _frame(seasonal[:300]).drop(index=_frame(seasonal[:300]).index[100:110])
    with pytest.warns(
        IrregularSamplingWarning, match="1 of 289 steps differ from the median 0 days 00:05:00"
    ):
        TimeSeriesVAEDetector(window=32, epochs=2).fit(frame)


def test_scoring_data_sampled_unlike_training_is_reported(seasonal):
    detector = TimeSeriesVAEDetector(window=32, epochs=2).fit(_frame(seasonal[:300]))
    with pytest.warns(
        IrregularSamplingWarning, match="sampled every 0 days 01:00:00, but .* every 0 days 00:05:00"
    ):
        detector.score_samples(_frame(seasonal[:300], freq="1h"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        detector.score_samples(_frame(seasonal[:300]))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            np.r_[np.zeros(40), np.inf, np.zeros(59)],
            "infinite values.*column 0: inf in 1 row\\(s\\), first at row 40",
        ),
        (np.zeros(20), "n_samples=20 timestamps, but window=32 needs at least 32"),
        (
            np.column_stack([np.zeros(100), np.full(100, np.nan)]),
            "Channels \\['x1'\\] have no observed values",
        ),
    ],
    ids=["inf", "too_short", "empty_channel"],
)
def test_bad_values_are_named(values, message):
    with pytest.raises(ValueError, match=message):
        TimeSeriesVAEDetector(window=32, epochs=2).fit(values)


# The longest of 128, 64 and 32 steps within 512 values; 32 when none is (17 channels or more).
@pytest.mark.parametrize(("n_channels", "window"), [(1, 128), (4, 128), (5, 64), (8, 64), (9, 32), (25, 32)])
def test_auto_window_picks_by_the_number_of_channels(n_channels, window):
    values = seasonal_series(400, n_channels=max(n_channels, 2))[:, :n_channels]
    detector = TimeSeriesVAEDetector(epochs=1, random_state=0).fit(values)
    assert detector.window_ == window
    assert detector.module_.to_x_mean.out_features == window * n_channels


# Halved until it fits in the series, down to 8 steps (a series under 128 points raised before).
@pytest.mark.filterwarnings("ignore:TimeSeriesVAEDetector was fitted on")
@pytest.mark.parametrize(("n_timestamps", "window"), [(128, 128), (127, 64), (60, 32), (9, 8)])
def test_auto_window_is_shorter_for_a_short_series(n_timestamps, window):
    detector = TimeSeriesVAEDetector(epochs=1, random_state=0).fit(seasonal_series(n_timestamps))
    assert detector.window_ == window


def test_the_chosen_window_is_kept_through_save_load(tmp_path):
    detector = TimeSeriesVAEDetector(epochs=1, random_state=0).fit(seasonal_series(400, n_channels=8))
    detector.save(tmp_path / "model")
    assert TimeSeriesVAEDetector.load(tmp_path / "model").window_ == 64


@pytest.mark.parametrize("stride", [33, 100])
def test_a_stride_longer_than_the_window_is_refused(seasonal, stride):
    with pytest.raises(ValueError, match=f"stride={stride} is larger than window=32"):
        TimeSeriesVAEDetector(window=32, stride=stride, epochs=2).fit(seasonal[:500])


def test_a_stride_changed_after_fit_is_refused_when_scoring(fitted_series_detector, seasonal):
    detector = clone(fitted_series_detector)
    detector.__dict__.update(fitted_series_detector.__dict__)
    detector.set_params(stride=64)
    with pytest.raises(ValueError, match="stride=64 is larger than window=32"):
        detector.score_samples(seasonal)


def test_mean_aggregation_keeps_an_unrepresentable_point_to_its_windows(seasonal):
    detector = TimeSeriesVAEDetector(window=32, stride=1, aggregation="mean", epochs=3, random_state=0)
    detector.fit(seasonal[:1000])
    values = seasonal[:1000].copy()
    values[500] = 1e39
    scores = detector.anomaly_score(values)
    assert np.isinf(scores[469:532]).all()
    assert np.isfinite(np.r_[scores[:469], scores[532:]]).all()


def test_a_text_channel_is_named(seasonal):
    frame = _frame(seasonal[:100]).assign(host="a")
    with pytest.raises(ValueError, match="non-numeric columns: 'host'"):
        TimeSeriesVAEDetector(window=32).fit(frame)


def test_a_1d_series_for_a_multichannel_model_says_how_to_reshape():
    detector = TimeSeriesVAEDetector(window=8, epochs=2).fit(seasonal_series(200, n_channels=2))
    with pytest.raises(ValueError, match=r"fitted on 2 channels\. Reshape your data to \(n_timestamps, 2\)"):
        detector.score_samples(np.zeros(100))


def test_training_on_wide_windows_holds_at_most_the_value_cap():
    # 128 steps of 25 channels are 3,200 values a window: all 19,873 windows of this series would be
    # 254 MB (a traced peak of 328 MB); within the cap the peak is the capped windows and change.
    series = np.random.default_rng(0).normal(size=(20_000, 25))
    detector = TimeSeriesVAEDetector(window=128, epochs=1, validation_fraction=0.0, random_state=0)
    tracemalloc.start()
    try:
        detector.fit(series)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * MAX_TRAINING_VALUES * 4


@pytest.mark.parametrize("seed", [0, 1])
def test_harmless_flips_of_rare_flags_do_not_outrank_an_anomaly_in_the_reading(seed):
    # SMAP's shape: a reading and command flags that are rarely on in training and more often later.
    rng = np.random.default_rng(seed)
    t = np.arange(3000)
    reading = np.sin(2 * np.pi * t / 50) + 0.1 * rng.normal(size=len(t))
    reading[2500:2510] += 1.0
    flags = rng.random((len(t), 5)) < np.where(t < 2000, 0.003, 0.01)[:, None]
    series = np.column_stack([reading, flags])
    labels = np.zeros(len(t), dtype=int)
    labels[2500:2510] = 1
    detector = TimeSeriesVAEDetector(random_state=0).fit(series[:2000])
    assert detector.binary_features_.tolist() == [False] + [True] * 5
    # Standardized, a flip of a flag on in 0.3% of training rows was 18 units and ranked first (0.38).
    assert roc_auc_score(labels[2000:], detector.anomaly_score(series)[2000:]) > 0.95


def test_a_series_too_short_to_validate_on_is_fitted_with_a_warning(seasonal):
    with pytest.warns(
        ShortSeriesWarning, match="fitted on 100 timestamps, 69 windows of 32: too few to hold out"
    ):
        TimeSeriesVAEDetector(window=32, epochs=1, random_state=0).fit(seasonal[:100])
    with pytest.warns(ShortSeriesWarning, match="fitted on 32 timestamps, 1 window of 32"):
        TimeSeriesVAEDetector(window=32, epochs=1, random_state=0).fit(seasonal[:32])
    # 169 windows: 17 validate at random, as training.MIN_VALIDATION_ROWS asks, but no blocks fit
    with pytest.warns(
        ShortSeriesWarning, match="too short to hold out validation blocks.*threshold is set on"
    ):
        TimeSeriesVAEDetector(window=32, epochs=1, random_state=0).fit(seasonal[:200])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TimeSeriesVAEDetector(window=32, epochs=1, random_state=0).fit(seasonal[:350])  # blocks fit
        unvalidated = TimeSeriesVAEDetector(window=32, epochs=1, validation_fraction=0.0, random_state=0)
        unvalidated.fit(seasonal[:100])  # asked for no validation: nothing to warn of
