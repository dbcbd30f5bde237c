"""TimeSeriesVAEDetector.events: one event per planted anomaly, its core and peak on it, its channel."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from conftest import seasonal_series
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from vae_anomaly import TimeSeriesVAEDetector, VAEAnomalyDetector
from vae_anomaly.events import EVENT_COLUMNS, flagged_runs, split_run
from vae_anomaly.frames import event_frame
from vae_anomaly.metrics import events_to_flags

FAST = dict(window=32, epochs=60, random_state=0)


def _frame(values: np.ndarray) -> pd.DataFrame:
    values = values.reshape(len(values), -1)
    index = pd.date_range("2024-01-01", periods=len(values), freq="5min", name="time")
    return pd.DataFrame(values, index=index, columns=[f"ch{i}" for i in range(values.shape[1])])


@pytest.fixture(scope="module")
def detector(seasonal):
    return TimeSeriesVAEDetector(**FAST).fit(_frame(seasonal[:2000]))


def test_a_spike_and_a_burst_two_windows_apart_are_two_events_with_their_cores(detector, seasonal):
    values = seasonal.copy()
    values[2300] += 4.0
    values[2600:2610] += 1.5
    frame = _frame(values)
    events = detector.events(frame.iloc[2000:])
    assert len(events) == 2
    times = frame.index
    spike, burst = events.iloc[0], events.iloc[1]
    assert spike["peak"] == times[2300]
    assert spike["core_start"] <= times[2300] <= spike["core_end"]
    assert (spike["core_end"] - spike["core_start"]) / pd.Timedelta("5min") + 1 <= 8
    assert times[2600] <= burst["peak"] <= times[2609]
    assert burst["core_start"] <= times[2609] and burst["core_end"] >= times[2600]
    assert (burst["core_end"] - burst["core_start"]) / pd.Timedelta("5min") + 1 <= 40
    assert not events["open_ended"].any()
    assert (events["probability"] > 0.5).all() and (events["channel_1"] == "ch0").all()
    assert events["share_1"].tolist() == [1.0, 1.0]


def test_events_hold_every_flag_of_predict_and_score_as_anomaly_score(detector, seasonal):
    values = seasonal.copy()
    values[2300] += 4.0
    frame = _frame(values)
    flags = detector.predict(frame) == -1
    events = detector.events(frame)
    assert list(events.columns) == [*EVENT_COLUMNS, "channel_1", "share_1"]
    assert events["n_points"].sum() == flags.sum()
    assert set(np.flatnonzero(events_to_flags(events, frame.index))) >= set(np.flatnonzero(flags))
    scores, probabilities = detector.anomaly_score(frame), detector.predict_proba(frame)[:, 1]
    for event in events.itertuples():
        extent = slice(frame.index.get_loc(event.start), frame.index.get_loc(event.end) + 1)
        assert event.score == scores[extent].max()
        assert event.probability == probabilities[extent].max()


def test_a_level_shift_that_never_returns_is_one_open_ended_event(detector, seasonal):
    values = seasonal.copy()
    values[2500:] += 3.0
    events = detector.events(_frame(values).iloc[2000:].reset_index(drop=True))
    assert len(events) == 1
    event = events.iloc[0]
    assert event["open_ended"] and event["core_end"] == 999
    # The core starts at the shift, within half a window: 509 here (within a stride before series held
    # out validation blocks, which changed the fitted model).
    assert 500 - 32 <= event["core_start"] <= 500 + 16 and event["start"] <= 500


def test_the_anomalous_channel_is_named_first():
    values = seasonal_series(n_channels=4)
    detector = TimeSeriesVAEDetector(**FAST).fit(_frame(values[:2000]))
    values[2500:2506, 2] += 2.0
    events = detector.events(_frame(values).iloc[2000:], top_channels=2)
    event = events[
        (events["start"] <= pd.Timestamp("2024-01-09 16:20"))
        & (events["end"] >= pd.Timestamp("2024-01-09 16:40"))
    ]
    assert len(event) == 1
    assert event["channel_1"].item() == "ch2" and event["share_1"].item() > 0.5
    assert list(events.columns[-4:]) == ["channel_1", "share_1", "channel_2", "share_2"]


def test_no_flag_gives_an_empty_table_with_the_columns(detector, seasonal):
    quiet = copy.deepcopy(detector)
    quiet.offset_ = -1e9  # nothing is above this threshold
    frame = _frame(seasonal).iloc[2000:]
    assert (quiet.predict(frame) == 1).all()
    events = quiet.events(frame)
    assert events.empty and list(events.columns) == [*EVENT_COLUMNS, "channel_1", "share_1"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(merge_gap=-1), "merge_gap must be an integer of at least 0, got -1"),
        (dict(merge_gap=2.5), "merge_gap must be an integer of at least 0, got 2.5"),
        (dict(top_channels=0), "top_channels must be an integer of at least 1, got 0"),
    ],
)
def test_bad_options_are_named(detector, seasonal, options, message):
    with pytest.raises(ValueError, match=message):
        detector.events(_frame(seasonal).iloc[2000:], **options)


def test_events_from_the_scores_predict_gave_are_the_events_it_finds_itself(detector, seasonal):
    values = seasonal.copy()
    values[2300] += 4.0
    values[2600:2610] += 1.5
    frame = _frame(values).iloc[2000:]
    events = detector.events(frame)
    assert len(events) == 2
    pd.testing.assert_frame_equal(detector.events(frame, scores=detector.anomaly_score(frame)), events)


def test_events_follow_the_scores_they_are_given(detector, seasonal):
    frame = _frame(seasonal).iloc[2000:]
    scores = np.zeros(len(frame))
    scores[100:104] = detector.anomaly_threshold_ + 1.0
    events = detector.events(frame, scores=scores)
    assert len(events) == 1
    event = events.iloc[0]
    assert (event["start"], event["end"]) == (frame.index[100], frame.index[103])
    assert event["n_points"] == 4 and event["score"] == detector.anomaly_threshold_ + 1.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda scores: scores[:-1], r"scores has shape \(999,\), but X has 1000 timestamps"),
        (lambda scores: np.where(np.arange(len(scores)) == 7, np.nan, scores), "holds NaN at position 7"),
        (lambda scores: ["high"] * len(scores), "scores must be numbers, one per timestamp"),
    ],
)
def test_given_scores_that_do_not_fit_the_series_are_named(detector, seasonal, change, message):
    frame = _frame(seasonal).iloc[2000:3000]
    with pytest.raises(ValueError, match=message):
        detector.events(frame, scores=change(np.zeros(len(frame))))


def test_runs_merge_across_short_gaps_only():
    flags = np.zeros(40, dtype=bool)
    flags[[2, 3, 6, 7, 20]] = True
    assert flagged_runs(flags, merge_gap=0) == [(2, 3), (6, 7), (20, 20)]
    assert flagged_runs(flags, merge_gap=2) == [(2, 7), (20, 20)]
    assert flagged_runs(flags, merge_gap=12) == [(2, 20)]
    assert flagged_runs(np.zeros(5, dtype=bool), merge_gap=3) == []


def test_a_run_with_two_cores_more_than_a_window_apart_splits_halfway():
    evidence = np.ones(60)
    evidence[[10, 11]] = 9.0
    evidence[40] = 7.0
    first, second = split_run(evidence, first=100, window=20, open_ended=False)
    assert (first.start, first.end, first.core_start, first.core_end, first.peak) == (100, 125, 110, 111, 110)
    assert (second.start, second.end, second.core_start, second.core_end, second.peak) == (
        126,
        159,
        140,
        140,
        140,
    )
    (joined,) = split_run(evidence, first=100, window=40, open_ended=False)
    assert (joined.core_start, joined.core_end, joined.peak) == (110, 140, 110)


def test_event_frame_gives_a_pipelines_events_at_the_frames_timestamps(seasonal):
    frame = _frame(seasonal.copy())
    pipeline = make_pipeline(StandardScaler(), TimeSeriesVAEDetector(**FAST)).fit(frame.iloc[:2000])
    frame.iloc[2300, 0] += 4.0
    events = event_frame(pipeline, frame.iloc[2000:])
    spike = frame.index[2300]
    assert ((events["core_start"] <= spike) & (events["core_end"] >= spike)).sum() == 1
    positions = pipeline[-1].events(pipeline[0].transform(frame.iloc[2000:]))
    assert events["peak"].tolist() == frame.index[2000:][positions["peak"].to_numpy()].tolist()


def test_event_frame_refuses_a_table_detector(planted_frame):
    detector = VAEAnomalyDetector(epochs=2, random_state=0).fit(planted_frame)
    with pytest.raises(TypeError, match="this model's detector is a VAEAnomalyDetector, which scores"):
        event_frame(detector, planted_frame)


def test_a_run_with_infinite_or_missing_evidence_has_its_core_where_it_is_largest():
    evidence = np.ones(30)
    evidence[[5, 6]] = np.nan
    evidence[12] = np.inf
    (span,) = split_run(evidence, first=0, window=8, open_ended=False)
    assert (span.core_start, span.core_end, span.peak) == (12, 12, 12)
    (span,) = split_run(np.full(10, np.nan), first=40, window=8, open_ended=False)
    assert (span.start, span.end, span.peak) == (40, 49, 40)
