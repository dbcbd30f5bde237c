"""A series' timestamps: splitting them off the input, refusing missing, unsorted or repeated ones, and
reporting uneven spacing."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from vae_anomaly.user_warnings import warn


class IrregularSamplingWarning(UserWarning):
    """The timestamps are not evenly spaced, or not spaced as in training."""


def with_time_column(names: Iterable[Any], time_column: str | None) -> list[str]:
    """The columns a detector reads: its feature ``names`` as strings, then its ``time_column`` where
    it has one that is not among them (a series detector's timestamps, split off its channels).

    Parameters
    ----------
    names : iterable
        The fitted feature names (``feature_names_in_``).
    time_column : str or None

    Returns
    -------
    list of str
    """
    columns = [str(name) for name in names]
    return columns if time_column is None or time_column in columns else [*columns, time_column]


def check_time_index(
    times: pd.DatetimeIndex, source: str, *, segment_starts: np.ndarray | None = None, first_row: int = 0
) -> None:
    """Refuse missing, unsorted or repeated timestamps, naming the first offending one.

    Parameters
    ----------
    times : DatetimeIndex
        The timestamps, in row order.
    source : str
        What holds them, for the message, e.g. "X's DatetimeIndex".
    segment_starts : ndarray of int or None, default=None
        Rows where a new segment begins: each segment must be sorted, not the segments among them.
    first_row : int, default=0
        The row number of ``times[0]`` in the messages (where ``times`` are part of a longer input).

    Raises
    ------
    ValueError
        At the first missing (NaT), decreasing or repeated timestamp, naming its row.
    """
    if times.hasnans:
        raise ValueError(
            f"{source} has missing timestamps (NaT) at row "
            f"{first_row + int(np.flatnonzero(times.isna())[0])}."
        )
    steps, rows = _steps(times, segment_starts)
    if (steps < 0).any():
        row = int(rows[np.flatnonzero(steps < 0)[0]])
        raise ValueError(
            f"{source} is not sorted: row {first_row + row} ({times[row]}) comes before row "
            f"{first_row + row - 1} ({times[row - 1]}). Sort it first, e.g. X.sort_index()."
        )
    if (steps == 0).any():
        row = int(rows[np.flatnonzero(steps == 0)[0]])
        raise ValueError(
            f"{source} has duplicated timestamps, first {times[row]} at rows {first_row + row - 1} and "
            f"{first_row + row}. "
            "Aggregate them first, e.g. X.groupby(level=0).mean()."
        )


def split_time_index(
    X: Any, time_column: str | None, n_rows: int, segment_starts: np.ndarray | None = None
) -> tuple[Any, pd.Index]:
    """Split a series' timestamps off X: its time column, its DatetimeIndex, or row positions.

    Parameters
    ----------
    X : array-like or DataFrame
        The series as a detector is given it.
    time_column : str or None
        The DataFrame column that holds the timestamps; None takes a DatetimeIndex where X has one.
    n_rows : int
        Rows of X, for the positions of an input without an index.
    segment_starts : ndarray of int or None, default=None
        Rows where a new segment begins: each segment's timestamps must be sorted.

    Returns
    -------
    X : array-like or DataFrame
        X without its time column.
    index : pandas.Index
        The timestamps (checked by :func:`check_time_index`), X's own index, or 0, 1, ...

    Raises
    ------
    ValueError
        If ``time_column`` is not a datetime64 column of X, or the timestamps are missing, unsorted or
        repeated.
    """
    if time_column is not None:
        if not isinstance(X, pd.DataFrame) or time_column not in X.columns:
            columns = list(X.columns) if isinstance(X, pd.DataFrame) else None
            raise ValueError(f"time_column={time_column!r} is not a column of X (columns: {columns}).")
        times = X[time_column]
        if not pd.api.types.is_datetime64_any_dtype(times):
            raise ValueError(
                f"time_column {time_column!r} has dtype {times.dtype}, not datetime64; "
                "convert it with pd.to_datetime first."
            )
        index = pd.DatetimeIndex(times, name=time_column)
        check_time_index(index, f"time_column {time_column!r}", segment_starts=segment_starts)
        return X.drop(columns=time_column), index
    if isinstance(X, pd.DataFrame | pd.Series) and isinstance(X.index, pd.DatetimeIndex):
        check_time_index(X.index, "X's DatetimeIndex", segment_starts=segment_starts)
        return X, X.index
    return X, X.index if isinstance(X, pd.DataFrame | pd.Series) else pd.RangeIndex(n_rows)


def _steps(times: pd.DatetimeIndex, segment_starts: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The steps between consecutive timestamps of each segment, in the index's unit (``times.unit``:
    nanoseconds would overflow past 2262), and the row each step leads to."""
    steps, rows = np.diff(times.asi8), np.arange(1, len(times))
    if segment_starts is not None and len(steps):
        within = ~np.isin(rows, segment_starts)
        steps, rows = steps[within], rows[within]
    return steps, rows


def report_sampling(
    times: pd.Index, trained: pd.Timedelta | None, *, segment_starts: np.ndarray | None = None
) -> pd.Timedelta | None:
    """The median spacing of ``times``; warn when it is uneven, or unlike the training spacing.

    Parameters
    ----------
    times : Index
        The timestamps; anything but a DatetimeIndex has no spacing.
    trained : Timedelta or None
        The training spacing to compare with; None in training.
    segment_starts : ndarray of int or None, default=None
        Rows where a new segment begins (a separate stretch of the series): the step into it is no
        sampling step, so it counts neither for the median nor as uneven.

    Returns
    -------
    Timedelta or None
        The median spacing; None without timestamps or with one per segment.
    """
    if not isinstance(times, pd.DatetimeIndex):
        return None
    steps, rows = _steps(times, segment_starts)
    if not len(steps):
        return None
    median = int(np.median(steps))
    interval = pd.Timedelta(median, unit=times.unit)
    uneven = steps != median
    if uneven.any():
        largest = int(np.argmax(steps))
        gap = pd.Timedelta(int(steps[largest]), unit=times.unit)
        warn_uneven(
            "X's timestamps", int(uneven.sum()), len(steps), interval, (gap, times[rows[largest] - 1])
        )
    if trained is not None and interval != trained:
        warn(
            f"X is sampled every {interval}, but the detector was trained on data sampled every "
            f"{trained}; resample X to {trained} for meaningful scores.",
            IrregularSamplingWarning,
        )
    return interval


def warn_uneven(
    what: str, n_uneven: int, n_steps: int, interval: pd.Timedelta, largest: tuple[pd.Timedelta, pd.Timestamp]
) -> None:
    """Warn (``IrregularSamplingWarning``) that ``n_uneven`` of ``n_steps`` steps differ from ``interval``.

    Parameters
    ----------
    what : str
        Whose timestamps, for the message, e.g. "X's timestamps".
    n_uneven, n_steps : int
    interval : Timedelta
        The spacing the steps should have.
    largest : (Timedelta, Timestamp)
        The largest step and the timestamp it follows.
    """
    gap, after = largest
    warn(
        f"{what} are unevenly spaced: {n_uneven} of {n_steps} steps differ from the median {interval} "
        f"(largest: {gap} after {after}). Windows are cut by position, so a gap reads as consecutive "
        f"samples; resample first, e.g. X.asfreq('{pd.tseries.frequencies.to_offset(interval).freqstr}'), "
        "to turn gaps into missing points the detector skips.",
        IrregularSamplingWarning,
    )
