"""TimeSeriesVAEDetector.fit(X, segments=...): a series made of separate stretches, no window across two."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import seasonal_series

from vae_anomaly import TimeSeriesVAEDetector
from vae_anomaly.windowing import segment_window_starts

FAST = dict(window=32, epochs=60, random_state=0)


def _timed(values: np.ndarray, start: str) -> pd.DataFrame:
    index = pd.date_range(start, periods=len(values), freq="5min", name="time")
    return pd.DataFrame({"ch0": values}, index=index)


@pytest.mark.parametrize("lengths", [[40], [40, 50], [32, 33, 100]])
def test_segment_windows_cover_every_timestamp_within_their_segment(lengths):
    starts = segment_window_starts(lengths, 32, 4)
    ends = np.cumsum(lengths)
    segment = np.searchsorted(ends, starts, side="right")
    assert (starts + 32 <= ends[segment]).all()  # no window runs past its segment's end
    covered = np.zeros(sum(lengths), dtype=bool)
    for start in starts:
        covered[start : start + 32] = True
    assert covered.all()


def test_one_segment_is_the_whole_series(seasonal):
    plain = TimeSeriesVAEDetector(**FAST).fit(seasonal[:1500])
    segmented = TimeSeriesVAEDetector(**FAST).fit(seasonal[:1500], segments=[1500])
    np.testing.assert_array_equal(plain.score_samples(seasonal), segmented.score_samples(seasonal))
    assert plain.offset_ == segmented.offset_


def test_no_window_learns_the_jumps_between_segments():
    """Runs at alternating levels: fitted as segments, the jump from one level to the other is never a
    training window, so a new series that jumps so scores far higher at the jump than fitted as one
    series, where the model learns the joins."""
    runs = [seasonal_series(300, seed=k) + 4.0 * (k % 2) for k in range(8)]
    jumping = np.concatenate([seasonal_series(600, seed=30), seasonal_series(600, seed=31) + 4.0])
    ratios = {}
    for segments in ([300] * 8, None):
        detector = TimeSeriesVAEDetector(**FAST, stride=1).fit(np.concatenate(runs), segments=segments)
        scores = detector.anomaly_score(jumping)
        ratios[segments is None] = scores[600] / np.median(scores)
        if segments is not None:  # fitted as one series, jumps are in its training data and held-out blocks
            assert (detector.predict(jumping)[595:605] == -1).all()
    # 5.7 and 4.2 (6.2 and 2.9 before a series held out blocks, which leave some joins out of training)
    assert ratios[False] > 5 and ratios[False] > 1.25 * ratios[True]


def test_segments_may_overlap_in_time_and_the_step_between_them_is_no_sampling_step():
    first, second = seasonal_series(400, seed=1), seasonal_series(300, seed=2)
    frame = pd.concat([_timed(first, "2024-01-01"), _timed(second, "2024-01-01 03:00")])
    with pytest.raises(ValueError, match="is not sorted: row 400"):
        TimeSeriesVAEDetector(window=32, epochs=2).fit(frame)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no IrregularSamplingWarning for the step back in time
        detector = TimeSeriesVAEDetector(window=32, epochs=2).fit(frame, segments=[400, 300])
    assert detector.sampling_interval_ == pd.Timedelta("5min")


def test_a_repeated_timestamp_within_a_segment_is_still_refused():
    frame = _timed(seasonal_series(300), "2024-01-01")
    frame.index = frame.index.where(np.arange(300) != 250, frame.index[249])
    with pytest.raises(ValueError, match=r"duplicated timestamps, first .* at rows 249 and 250"):
        TimeSeriesVAEDetector(window=32, epochs=2).fit(frame, segments=[100, 200])


@pytest.mark.parametrize(
    ("segments", "message"),
    [
        ([100, 100], "segments add up to 200 timestamps in 2 segment"),
        ([], "segments add up to 0 timestamps in 0 segment"),
        ([150, 0, 150], r"segments\[1\] is 0; each segment's length must be a positive integer"),
        ([150, 150.0], r"segments\[1\] is 150.0"),
        ([280, 20], r"segments\[1\] holds 20 timestamps, but window=32 needs at least 32 in each"),
    ],
)
def test_bad_segments_are_refused_by_name(segments, message):
    with pytest.raises(ValueError, match=message):
        TimeSeriesVAEDetector(window=32, epochs=2).fit(seasonal_series(300), segments=segments)


def test_the_automatic_window_fits_in_every_segment():
    # 40 runs of 50 points: the channel rule's 128 steps fit in none of them (fit raised before).
    detector = TimeSeriesVAEDetector(epochs=2, random_state=0).fit(seasonal_series(2000), segments=[50] * 40)
    assert detector.window_ == 32
    with pytest.raises(ValueError, match=r"segments\[1\] holds 5 timestamps, but window=8 needs at least 8"):
        TimeSeriesVAEDetector(epochs=2).fit(seasonal_series(300), segments=[295, 5])


def test_the_segments_are_recorded_and_kept_by_save_and_load(tmp_path):
    detector = TimeSeriesVAEDetector(window=32, epochs=2, random_state=0)
    detector.fit(seasonal_series(300), segments=[100, 200])
    assert detector.segments_ == (100, 200)
    detector.save(tmp_path / "model")
    assert TimeSeriesVAEDetector.load(tmp_path / "model").segments_ == (100, 200)
    assert TimeSeriesVAEDetector(window=32, epochs=2).fit(seasonal_series(300)).segments_ is None
