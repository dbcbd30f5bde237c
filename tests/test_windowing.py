"""Sliding windows and the mapping of window scores to timestamps."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from vae_anomaly.windowing import (
    MAX_TRAINING_VALUES,
    MAX_TRAINING_WINDOWS,
    Windows,
    training_stride,
    window_scores_to_points,
    window_starts,
    window_values_to_points,
)


def test_window_starts_end_with_a_window_on_the_last_timestamp():
    assert window_starts(10, 4, 3).tolist() == [0, 3, 6]
    assert window_starts(11, 4, 3).tolist() == [0, 3, 6, 7]
    assert window_starts(4, 4, 1).tolist() == [0]


def test_window_starts_at_a_phase_start_with_the_first_window_and_end_with_the_last():
    assert window_starts(10, 4, 3, phase=1).tolist() == [0, 1, 4, 6]
    assert window_starts(11, 4, 3, phase=2).tolist() == [0, 2, 5, 7]
    assert window_starts(5, 4, 4, phase=3).tolist() == [0, 1]  # no window starts at the phase itself
    assert window_starts(4, 4, 2, phase=1).tolist() == [0]


def test_window_starts_refuse_a_series_shorter_than_the_window():
    with pytest.raises(ValueError, match="n_samples=3 timestamps, but window=4 needs at least 4"):
        window_starts(3, 4, 1)


@pytest.mark.parametrize(
    ("n_timestamps", "stride", "expected"),
    [
        (2_000, 4, 1),  # a short series: every window
        (MAX_TRAINING_WINDOWS + 31, 4, 1),  # exactly the cap at stride 1
        (MAX_TRAINING_WINDOWS + 32, 4, 2),
        (150_000, 4, 3),
        (1_000_000, 4, 4),  # never above the scoring stride
        (1_000_000, 1, 1),
    ],
)
def test_training_takes_every_window_up_to_the_cap(n_timestamps, stride, expected):
    chosen = training_stride([n_timestamps], 32, stride)
    assert chosen == expected
    assert chosen == stride or len(window_starts(n_timestamps, 32, chosen)) <= MAX_TRAINING_WINDOWS


@pytest.mark.parametrize(
    ("n_timestamps", "n_channels", "expected"),
    [
        (20_000, 4, 1),  # 128 x 4 = 512 values a window: only the window cap applies
        (20_000, 25, 2),  # 3,200 values: at most 10,485 windows, so every second one
        (9_000, 25, 1),
        (1_000_000, 25, 4),  # never above the scoring stride
    ],
)
def test_wide_windows_are_capped_by_their_values(n_timestamps, n_channels, expected):
    chosen = training_stride([n_timestamps], 128, 4, n_channels)
    assert chosen == expected
    n_values = len(window_starts(n_timestamps, 128, chosen)) * 128 * n_channels
    assert chosen == 4 or n_values <= MAX_TRAINING_VALUES


def test_windows_are_time_major_rows_of_every_channel():
    series = np.arange(12.0).reshape(6, 2)  # x[t, c] = 2t + c
    windows = Windows(series, 3, window_starts(6, 3, 2))
    assert windows[:].tolist() == [
        [0, 1, 2, 3, 4, 5],
        [4, 5, 6, 7, 8, 9],
        [6, 7, 8, 9, 10, 11],
    ]
    assert windows[1:2].tolist() == [[4, 5, 6, 7, 8, 9]]


def test_windows_of_a_long_series_are_not_copied():
    series = np.zeros((1_000_000, 1), dtype=np.float32)
    starts = window_starts(len(series), 64, 1)
    tracemalloc.start()
    windows = Windows(series, 64, starts)
    allocated = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(windows) == 1_000_000 - 63
    assert allocated < 1_000_000  # 64 copies would be 256 MB; the view costs a few hundred bytes


# Windows [0,1,2], [1,2,3], [2,3,4] with scores 1, 2, 6 over five timestamps.
@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("last", [1, 1, 1, 2, 6]),
        ("mean", [1, 1.5, 3, 4, 6]),
        ("max", [1, 2, 6, 6, 6]),
        ("min", [1, 1, 1, 2, 6]),
    ],
)
def test_each_rule_by_hand(rule, expected):
    points = window_scores_to_points(np.array([1.0, 2.0, 6.0]), np.array([0, 1, 2]), 3, 5, rule)
    assert points.tolist() == pytest.approx(expected)


# Stride 2 over six timestamps: windows start at 0, 2 and (covering the end) 3; scores 1, 5, 2.
@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("last", [1, 1, 1, 5, 5, 2]),
        ("mean", [1, 1, 3, 3.5, 3.5, 2]),
        ("max", [1, 1, 5, 5, 5, 2]),
        ("min", [1, 1, 1, 2, 2, 2]),
    ],
)
def test_each_rule_by_hand_with_a_stride(rule, expected):
    starts = window_starts(6, 3, 2)
    points = window_scores_to_points(np.array([1.0, 5.0, 2.0]), starts, 3, 6, rule)
    assert points.tolist() == pytest.approx(expected)


@pytest.mark.parametrize(("n", "window", "stride"), [(200, 16, 1), (200, 16, 5), (97, 10, 3), (50, 50, 1)])
def test_rules_match_a_brute_force_loop(n, window, stride):
    starts = window_starts(n, window, stride)
    scores = np.random.default_rng(0).normal(size=(len(starts), 2))
    covering = [[k for k, s in enumerate(starts) if s <= t < s + window] for t in range(n)]
    expected = {
        "last": np.array([scores[c[0]] for c in covering]),
        "mean": np.array([scores[c].mean(axis=0) for c in covering]),
        "max": np.array([scores[c].max(axis=0) for c in covering]),
        "min": np.array([scores[c].min(axis=0) for c in covering]),
    }
    for rule, values in expected.items():
        np.testing.assert_allclose(window_scores_to_points(scores, starts, window, n, rule), values)


def test_min_rule_keeps_an_infinite_window_to_the_points_only_it_covers():
    # Windows [0,1,2], [1,2,3], [2,3,4]: only timestamp 4 lies in the infinite window alone.
    points = window_scores_to_points(np.array([1.0, 2.0, np.inf]), np.array([0, 1, 2]), 3, 5, "min")
    assert points.tolist() == [1, 1, 1, 2, np.inf]


def test_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="rule must be one of"):
        window_scores_to_points(np.ones(3), np.array([0, 1, 2]), 3, 5, "median")


def test_window_values_sum_per_timestamp_and_channel():
    values = np.arange(12.0).reshape(2, 3, 2)  # two windows of three timestamps, two channels
    sums, counts = window_values_to_points(values, np.array([0, 1]), 4)
    assert counts.tolist() == [1, 2, 2, 1]
    assert sums.tolist() == [[0, 1], [2 + 6, 3 + 7], [4 + 8, 5 + 9], [10, 11]]
