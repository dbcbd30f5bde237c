"""Sliding windows over a series, cut a batch at a time, and the mapping of window scores to timestamps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

WindowRule = Literal["last", "mean", "max", "min"]
WINDOW_RULES: tuple[str, ...] = ("last", "mean", "max", "min")
# A series is trained on every window (stride 1) up to this many windows. Against training at the
# scoring stride 4, that raised mean VUS-PR on NAB (0.572 -> 0.608, over three seeds +0.02 to +0.04)
# and on the multivariate dev series (benchmarks/RESULTS.md); the cap bounds a long series' memory.
MAX_TRAINING_WINDOWS = 65_536
# ... and up to this many values in all (128 MiB as float32: 65,536 windows of 512 values, the widest
# window="auto" picks for up to 16 channels), so that a wide window (128 steps of 25 channels is 3,200
# values) does not make training hold 65,536 of them (840 MB, plus a copy on a CUDA device).
MAX_TRAINING_VALUES = 65_536 * 512


# window="auto": the longest of these window lengths whose window holds at most AUTO_WINDOW_VALUES
# values, else the shortest. On the multivariate dev series 32-step windows of 19 and 25 channels beat
# 128-step ones by far, and on NAB (one channel) 128 beat 64 and 32 (benchmarks/RESULTS.md).
AUTO_WINDOW_STEPS = (128, 64, 32)
AUTO_WINDOW_VALUES = 512
# ... and halved (down to AUTO_WINDOW_MIN_STEPS) until one fits in the training series and in each of
# its segments.
AUTO_WINDOW_MIN_STEPS = 8


def auto_window(n_channels: int, fit_within: int | None = None) -> int:
    """The window length ``window="auto"`` picks for a series of ``n_channels`` channels.

    Parameters
    ----------
    n_channels : int
    fit_within : int or None
        The training series' length, or the shortest of its segments: the window is halved until it
        fits in it (at least ``AUTO_WINDOW_MIN_STEPS`` steps). None: no limit.

    Returns
    -------
    int
        128 for 1 to 4 channels, 64 for 5 to 8, 32 from 9 on, less for a shorter series.
    """
    fitting = [steps for steps in AUTO_WINDOW_STEPS if steps * n_channels <= AUTO_WINDOW_VALUES]
    window = fitting[0] if fitting else AUTO_WINDOW_STEPS[-1]
    while fit_within is not None and window > max(fit_within, AUTO_WINDOW_MIN_STEPS):
        window //= 2
    return window


def window_starts(n_timestamps: int, window: int, stride: int, phase: int = 0) -> np.ndarray:
    """First timestamp of each window: every ``stride`` steps, plus one window ending at the last timestamp.

    Parameters
    ----------
    n_timestamps : int
        Length of the series; at least ``window``.
    window : int
        Timestamps per window.
    stride : int
        Steps between the starts of consecutive windows.
    phase : int, default=0
        Start of the second window: windows start at 0, then ``phase``, ``phase + stride``, ...; with
        the phases ``0 .. stride - 1`` the windows take every position of the stride on the series.

    Returns
    -------
    ndarray of shape (n_windows,), int64
        Increasing starts; the first one is 0 and the last one ``n_timestamps - window``, so every
        timestamp is covered.

    Raises
    ------
    ValueError
        If the series is shorter than a window (:func:`check_series_length`).
    """
    check_series_length(n_timestamps, window)
    starts = np.arange(phase, n_timestamps - window + 1, stride, dtype=np.int64)
    if phase:  # the timestamps before the phase are covered too
        starts = np.insert(starts, 0, 0)
    if starts[-1] != n_timestamps - window:
        starts = np.append(starts, n_timestamps - window)
    return starts


def check_series_length(n_timestamps: int, window: int) -> None:
    """Refuse a series shorter than one window, which no window can score.

    Parameters
    ----------
    n_timestamps : int
    window : int

    Raises
    ------
    ValueError
        Naming both lengths.
    """
    if n_timestamps < window:
        raise ValueError(
            f"X has n_samples={n_timestamps} timestamps, but window={window} needs at least {window}."
        )


def checked_segments(segments: Sequence[int], n_timestamps: int) -> tuple[int, ...]:
    """Segment lengths as ints, refused unless they are positive and add up to the series' length.

    Parameters
    ----------
    segments : sequence of int
        Timestamps in each segment, in order.
    n_timestamps : int
        Length of the series they divide.

    Returns
    -------
    tuple of int

    Raises
    ------
    ValueError
        Naming the first length that is no positive integer, or the sum that differs.
    """
    lengths = list(segments) if not isinstance(segments, np.ndarray) else segments.tolist()
    for k, length in enumerate(lengths):
        if isinstance(length, bool) or not isinstance(length, int | np.integer) or length < 1:
            raise ValueError(
                f"segments[{k}] is {length!r}; each segment's length must be a positive integer."
            )
    if not lengths or sum(lengths) != n_timestamps:
        raise ValueError(
            f"segments add up to {sum(lengths)} timestamps in {len(lengths)} segment(s), but X has "
            f"{n_timestamps}: they must divide X exactly."
        )
    return tuple(int(length) for length in lengths)


def segment_window_starts(lengths: Sequence[int], window: int, stride: int, phase: int = 0) -> np.ndarray:
    """First timestamp of each window of a series made of consecutive segments, no window spanning two.

    Parameters
    ----------
    lengths : sequence of int
        Timestamps in each segment, in order; each at least ``window``. One segment is a whole
        series, whose windows are :func:`window_starts`.
    window : int
        Timestamps per window.
    stride : int
        Steps between the starts of consecutive windows of a segment.
    phase : int, default=0
        The windows' phase in each segment (:func:`window_starts`).

    Returns
    -------
    ndarray of shape (n_windows,), int64
        Increasing starts, counted from the first segment's first timestamp: each segment's
        ``window_starts``, so every timestamp is covered by windows of its own segment only.
    """
    offsets = np.cumsum([0, *lengths[:-1]])
    pieces = [
        offset + window_starts(int(length), window, stride, phase)
        for offset, length in zip(offsets, lengths, strict=True)
    ]
    return np.concatenate(pieces)


def max_training_windows(window: int, n_channels: int) -> int:
    """The most windows a series is trained on: ``MAX_TRAINING_WINDOWS``, fewer where they would hold
    over ``MAX_TRAINING_VALUES`` values (at least 1).

    Parameters
    ----------
    window : int
        Timestamps per window.
    n_channels : int
        Channels of the series.

    Returns
    -------
    int
    """
    return min(MAX_TRAINING_WINDOWS, max(1, MAX_TRAINING_VALUES // (window * n_channels)))


def training_stride(lengths: Sequence[int], window: int, stride: int, n_channels: int = 1) -> int:
    """Stride of the windows a series is trained on: every window while there are at most
    ``MAX_TRAINING_WINDOWS`` holding at most ``MAX_TRAINING_VALUES`` values, else the smallest stride
    that keeps within both caps, never above ``stride``.

    Parameters
    ----------
    lengths : sequence of int
        Timestamps in each segment of the training series (one length for a whole series); each at
        least ``window``.
    window : int
        Timestamps per window.
    stride : int
        The scoring stride.
    n_channels : int, default=1
        Channels of the series: a window holds ``window * n_channels`` values.

    Returns
    -------
    int
        Between 1 and ``stride``.
    """
    spans = np.asarray(lengths, dtype=np.int64) - window
    max_windows = max_training_windows(window, n_channels)
    for candidate in range(1, stride):
        if int((spans // candidate + 1 + (spans % candidate != 0)).sum()) <= max_windows:
            return candidate
    return stride


class Windows:
    """The windows of a series as flat rows, cut on demand: a read-only view, never all at once.

    Row ``k`` holds timestamps ``starts[k] .. starts[k] + window - 1`` of every channel, time-major:
    ``[x[t, 0], ..., x[t, c-1], x[t+1, 0], ...]``. Slicing returns a fresh array of those rows only.

    Parameters
    ----------
    series : ndarray of shape (n_timestamps, n_channels)
        The series; C-contiguous so that a window is one contiguous run of its memory.
    window : int
        Timestamps per window.
    starts : ndarray of int
        First timestamp of each window, e.g. from :func:`window_starts`.
    """

    def __init__(self, series: np.ndarray, window: int, starts: np.ndarray) -> None:
        series = np.ascontiguousarray(series)
        self.n_channels = series.shape[1]
        # Consecutive windows overlap in memory, so a 1-D sliding view over the flat series serves all.
        self._flat_windows = sliding_window_view(series.reshape(-1), window * self.n_channels)
        self._starts = starts

    def __len__(self) -> int:
        return len(self._starts)

    def __getitem__(self, rows: slice) -> np.ndarray:
        return self._flat_windows[self._starts[rows] * self.n_channels]

    def select(self, rows: slice) -> Windows:
        """The ``rows``-th of these windows, a view over the same series like this one."""
        selected = object.__new__(Windows)
        selected.n_channels, selected._flat_windows = self.n_channels, self._flat_windows
        selected._starts = self._starts[rows]
        return selected


def _covering_windows(starts: np.ndarray, window: int, n_timestamps: int) -> tuple[np.ndarray, np.ndarray]:
    """For each timestamp, the first and the last window that contain it (windows are sorted by start)."""
    # first[t] = number of windows ending before t; last[t] = number of windows starting at or before t, - 1.
    ends_before = np.bincount(starts + window, minlength=n_timestamps + 1)[:n_timestamps]
    starts_at = np.bincount(starts, minlength=n_timestamps)
    return np.cumsum(ends_before), np.cumsum(starts_at) - 1


def _range_max(values: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """max(values[first[i] : last[i] + 1]) for every i, with a sparse table: O(n log w) work."""
    lengths = last - first + 1
    level = np.floor(np.log2(lengths)).astype(np.int64)
    result = np.empty((len(first), *values.shape[1:]), dtype=values.dtype)
    table = values
    for power in range(int(level.max()) + 1):
        if power:
            half = 1 << (power - 1)
            table = np.maximum(table[:-half], table[half:])  # table[k] = max(values[k : k + 2**power])
        at_level = level == power
        if at_level.any():
            result[at_level] = np.maximum(table[first[at_level]], table[last[at_level] - (1 << power) + 1])
    return result


def window_scores_to_points(
    window_scores: np.ndarray,
    starts: np.ndarray,
    window: int,
    n_timestamps: int,
    rule: WindowRule = "mean",
) -> np.ndarray:
    """Give each timestamp a score from the scores of the windows that cover it.

    Parameters
    ----------
    window_scores : ndarray of shape (n_windows,) or (n_windows, n_columns)
        One score (or one row of scores, each column mapped on its own) per window.
    starts : ndarray of shape (n_windows,)
        Increasing first timestamp of each window; together the windows must cover every timestamp.
    window : int
        Timestamps per window.
    n_timestamps : int
        Length of the series.
    rule : {"last", "mean", "max", "min"}, default="mean"
        "last": the score of the earliest-ending window that covers the timestamp, i.e. with stride 1
        the window that ends at it; it uses no later data, as an online detector would. The first
        ``window - 1`` timestamps take the first window's score. "mean": the mean over all covering
        windows. "max": their maximum. "min": their minimum, so a timestamp scores high only if every
        window that holds it does: an anomaly of a few points then raises those points (give or take
        a stride) rather than the ``window - 1`` points either side that "max" raises with them. An
        infinite window score (a value the model cannot represent) makes every timestamp it covers
        infinite under "mean" and "max", and under "min" where every covering window is infinite.

    Returns
    -------
    ndarray of shape (n_timestamps,) or (n_timestamps, n_columns)
    """
    if rule not in WINDOW_RULES:
        raise ValueError(f"rule must be one of {WINDOW_RULES}, got {rule!r}.")
    first, last = _covering_windows(starts, window, n_timestamps)
    if rule == "last":
        return window_scores[first]
    if rule == "max":
        return _range_max(window_scores, first, last)
    if rule == "min":
        return -_range_max(-window_scores, first, last)
    infinite = np.isinf(window_scores)
    counts = (last - first + 1).reshape(-1, *([1] * (window_scores.ndim - 1)))
    means = _range_sums(np.where(infinite, 0.0, window_scores), first, last) / counts
    if infinite.any():  # a running sum that met inf would give inf - inf = NaN for every later range
        means[_range_sums(infinite, first, last) > 0] = np.inf
    return means


def _range_sums(values: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """sum(values[first[i] : last[i] + 1]) for every i, from one running sum."""
    cumulative = np.concatenate(
        [np.zeros((1, *values.shape[1:])), np.cumsum(values, axis=0, dtype=np.float64)]
    )
    return cumulative[last + 1] - cumulative[first]


def window_values_to_points(
    values: np.ndarray, starts: np.ndarray, n_timestamps: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sum what windows say about each of their points, per timestamp and channel.

    Parameters
    ----------
    values : ndarray of shape (n_windows, window, n_channels)
        A value for every point of every window, e.g. its share of the reconstruction term.
    starts : ndarray of shape (n_windows,)
        First timestamp of each window.
    n_timestamps : int
        Length of the series.

    Returns
    -------
    sums : ndarray of shape (n_timestamps, n_channels)
        Per timestamp and channel, the sum over the windows that hold it.
    counts : ndarray of shape (n_timestamps,)
        How many of these windows hold each timestamp, to turn sums into means.
    """
    _, window, n_channels = values.shape
    timestamps = (starts[:, None] + np.arange(window)).ravel()
    counts = np.bincount(timestamps, minlength=n_timestamps)
    cells = (timestamps[:, None] * n_channels + np.arange(n_channels)).ravel()
    sums = np.bincount(cells, weights=values.reshape(-1), minlength=n_timestamps * n_channels)
    return sums.reshape(n_timestamps, n_channels), counts
