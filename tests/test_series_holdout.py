"""A series holds out blocks a window apart from training: early stopping sees overfitting, and the
threshold is the higher of the training and the held-out fences (issue 31)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import seasonal_series

from vae_anomaly import TimeSeriesVAEDetector
from vae_anomaly.holdout import BLOCK_WINDOWS, held_out_blocks
from vae_anomaly.thresholds import offset_from
from vae_anomaly.user_warnings import ShortSeriesWarning
from vae_anomaly.windowing import segment_window_starts


def ar1_sensors(n: int, seed: int = 0) -> np.ndarray:
    """Three noisy sensors around one stationary AR(1) factor (phi 0.95), as issue 31 measured."""
    rng = np.random.default_rng(seed)
    factor = np.zeros(n)
    for t in range(1, n):
        factor[t] = 0.95 * factor[t - 1] + rng.normal(scale=0.3)
    return factor[:, None] * np.array([1.0, 0.7, -0.5]) + 0.1 * rng.normal(size=(n, 3))


@pytest.mark.parametrize("lengths", [[3000], [1000, 700, 1300], [5184]])
def test_no_training_window_comes_within_a_window_of_a_block(lengths):
    window = 32
    held_out = held_out_blocks(lengths, window, 1, 0.1)
    starts = segment_window_starts(lengths, window, 1)
    ends = np.cumsum(lengths)
    blocks = np.split(held_out.samples, np.cumsum(held_out.segments)[:-1])
    assert all(len(block) == BLOCK_WINDOWS * window for block in blocks)
    trained = starts[held_out.split.train]
    for block in blocks:  # consecutive timestamps, inside one segment
        assert (np.diff(block) == 1).all()
        assert np.searchsorted(ends, block[0], side="right") == np.searchsorted(ends, block[-1], side="right")
        assert ((trained + window <= block[0] - window) | (trained >= block[-1] + 1 + window)).all()
    validating = starts[held_out.split.validation]
    inside = [(validating >= b[0]) & (validating + window <= b[-1] + 1) for b in blocks]
    assert np.logical_or.reduce(inside).all()
    assert len(held_out.samples) >= 0.1 * sum(lengths) - BLOCK_WINDOWS * window


@pytest.mark.parametrize(("lengths", "fraction"), [([300], 0.1), ([3000], 0.0), ([60] * 30, 0.1)])
def test_no_blocks_where_the_series_is_too_short_or_nothing_is_held_out(lengths, fraction):
    assert held_out_blocks(lengths, 32, 1, fraction) is None


def test_the_threshold_is_the_higher_of_the_training_and_the_held_out_fences():
    series = ar1_sensors(3000)
    # stride 1: the windows have one phase, so anomaly_score gives every score the fences see
    detector = TimeSeriesVAEDetector(window=32, stride=1, epochs=30, random_state=0).fit(series)
    held_out = held_out_blocks([3000], 32, 1, detector.validation_fraction)
    blocks = np.split(series[held_out.samples], np.cumsum(held_out.segments)[:-1])
    block_scores = np.concatenate([detector.anomaly_score(block) for block in blocks])
    fences = [-offset_from(-scores, "auto") for scores in (detector.anomaly_score(series), block_scores)]
    assert detector.anomaly_threshold_ == pytest.approx(max(fences), rel=1e-6)
    assert "validation_loss" in detector.history_[-1]


def test_a_stationary_series_is_not_flagged_for_what_the_model_memorized():
    # Fitted with window 128 on 3,000 points (23 independent windows), the detector flagged 77% of the
    # clean continuation when random windows validated and training scores set the threshold; 9.2% now.
    series = ar1_sensors(6000)
    detector = TimeSeriesVAEDetector(random_state=0).fit(series[:3000])
    assert np.mean(detector.predict(series[3000:]) == -1) < 0.15


def test_the_clean_continuation_of_a_seasonal_series_is_not_flagged():
    series = seasonal_series(3000)
    detector = TimeSeriesVAEDetector(window=32, epochs=40, random_state=0).fit(series[:2000])
    assert np.mean(detector.predict(series[2000:]) == -1) == 0.0


def periodic_spikes(n: int) -> np.ndarray:
    """A spike pair every 100 points on a flat line, noise-free (as NAB's art_increase_spike_density)."""
    series = np.zeros(n)
    series[17::100] = 1.0
    series[20::100] = 0.6
    return series


def test_the_threshold_holds_at_every_phase_of_the_stride():
    # A timestamp's score depends on where the windows that hold it start. The continuation, cut from
    # its own first point, lands on another phase of the stride than the fitted series: set on the
    # fitted series' own phase alone, the threshold flagged 85% of the continuation cut from its
    # third point (and nothing from its first); it now holds at every phase.
    series = periodic_spikes(2200)
    detector = TimeSeriesVAEDetector(epochs=20, random_state=1)
    with pytest.warns(ShortSeriesWarning):  # 1,100 points: too short for validation blocks
        detector.fit(series[:1100])
    flagged = [np.mean(detector.predict(series[1100 + phase :]) == -1) for phase in range(detector.stride)]
    assert flagged == [0.0, 0.0, 0.0, 0.0]


@pytest.mark.parametrize(("stride", "exact"), [(1, True), (4, False)])
def test_contamination_is_the_most_of_the_training_series_flagged(stride, exact):
    # With one phase (stride 1) the threshold flags exactly that share of the training series, as
    # scikit-learn's outlier detectors do; with more, it holds at each phase, so at most that share.
    # Under ten windows: no blocks held out, the threshold is set on the training scores alone. "mean"
    # gives timestamps few tied scores ("max" ties a window's score over its timestamps).
    series = seasonal_series(300)
    params = {"window": 32, "stride": stride, "aggregation": "mean", "contamination": 0.1}
    with pytest.warns(ShortSeriesWarning):
        flagged = np.mean(TimeSeriesVAEDetector(**params, epochs=5, random_state=0).fit_predict(series) == -1)
    assert flagged == pytest.approx(0.1) if exact else 0.0 < flagged < 0.1
