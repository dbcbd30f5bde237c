"""What training needs of a series longer than memory, from one streaming pass over its parquet file(s):
segments sampled at random from the stream, and exact statistics of every channel.

A series of at most ``max_windows`` training windows is read whole. A longer one is cut into blocks of
``segment_length`` consecutive timestamps, and a seeded uniform draw of blocks (as many as hold
``max_windows`` windows: a default fit's cap) is kept as it streams past. The detector trains on
the blocks as separate segments (``TimeSeriesVAEDetector.fit(..., segments=)``): no window spans two,
and its threshold is set on their timestamps, a uniform sample of the series'.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from vae_anomaly.batch.files import DEFAULT_BATCH_ROWS
from vae_anomaly.column_statistics import ColumnStatistics
from vae_anomaly.parquet_pass import (
    CheckedStatistics,
    OpenedInput,
    check_metadata,
    float_column,
    open_input,
    record_batches,
)
from vae_anomaly.time_index import check_time_index, warn_uneven
from vae_anomaly.windowing import auto_window, max_training_windows

#: segment_length="auto": this many windows' length per segment.
SEGMENT_WINDOWS = 8


@dataclass(frozen=True)
class SeriesSample:
    """Segments sampled from a long series, with what is known of all its timestamps.

    Parameters
    ----------
    frame : DataFrame
        The segments one after another, in time order: the channels, the time column when one was
        named, and as index the stored DatetimeIndex (a pandas index saved with the file) or else
        each timestamp's position in the series.
    segments : tuple of int
        Timestamps in each segment, as ``TimeSeriesVAEDetector.fit(..., segments=)`` takes them.
    statistics : ColumnStatistics
        Exact statistics of every timestamp of each channel.
    n_rows : int
        Timestamps read.
    window : int
        The window length the segments were cut for.
    holdout : DataFrame or None
        The last ``holdout_rows`` timestamps, whole and like ``frame``; None without them.
    """

    frame: pd.DataFrame
    segments: tuple[int, ...]
    statistics: ColumnStatistics
    n_rows: int
    window: int
    holdout: pd.DataFrame | None = None


def sample_series_parquet(
    source: str | os.PathLike[str],
    *,
    window: int | Literal["auto"] = "auto",
    columns: Sequence[str] | None = None,
    drop_columns: Sequence[str] = (),
    time_column: str | None = None,
    max_windows: int | Literal["auto"] = "auto",
    segment_length: int | Literal["auto"] = "auto",
    holdout_rows: int = 0,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    random_state: int | np.random.Generator | None = None,
    progress: bool | None = None,
) -> SeriesSample:
    """Read a long series once, in bounded memory: random segments of it and exact channel statistics.

    Memory grows with ``max_windows`` and ``batch_rows``, not with the series. The sample depends on
    the series' length, ``window``, ``max_windows``, ``segment_length`` and ``random_state`` only.

    Parameters
    ----------
    source : str or PathLike
        A parquet file holding one series in time order, or a folder or glob of files that, in path
        order, hold it (e.g. one file per day).
    window : int or "auto", default="auto"
        The detector's window length; "auto" picks it by the number of channels as
        ``TimeSeriesVAEDetector(window="auto")`` does.
    columns : sequence of str or None, default=None
        The channels, in order. None reads every column of the files but ``drop_columns``, the time
        column and a stored pandas index.
    drop_columns : sequence of str, default=()
        Columns not to read, e.g. a label column.
    time_column : str or None, default=None
        The column of timestamps, as the detector's ``time_column``; it stays a column of the frame.
        None uses a DatetimeIndex stored with the file by pandas, if there is one.
    max_windows : int or "auto", default="auto"
        Training windows (at stride 1) the segments hold at most. "auto": as many as a fit trains on,
        65,536 windows and 2^25 values.
    segment_length : int or "auto", default="auto"
        Timestamps per segment, at least ``window``; "auto": 8 windows' length.
    holdout_rows : int, default=0
        The series' last timestamps to keep whole, apart (``SeriesSample.holdout``), e.g. to validate
        on: the segments are drawn from the timestamps before them, and the statistics are theirs.
    batch_rows : int, default=65536
        Rows per record batch read.
    random_state : int, Generator or None, default=None
        Seeds the draw of segments; None draws a fresh one.
    progress : bool or None, default=None
        Show a progress bar of rows read; None shows it on a terminal only.

    Returns
    -------
    SeriesSample

    Raises
    ------
    FileNotFoundError
        If ``source`` matches no file.
    SchemaError
        Listing every problem of every file found in the metadata: an unreadable file, a missing
        column, a channel that is not numeric or boolean, a time column that holds no timestamps or
        misses some.
    ValueError
        If the series is shorter than ``window``; if a value is infinite or beyond float32's range;
        or if the timestamps are missing, unsorted or repeated (naming file and row).

    Warns
    -----
    IrregularSamplingWarning
        After the pass, if any step between timestamps differs from the first batch's median step.
    """
    opened, time_name, as_index = _series_input(source, columns, drop_columns, time_column)
    check_metadata(opened, numeric_only=True, allow_nulls=True, time_column=time_name)
    channels = [name for name in opened.kinds if name != time_name]
    length = auto_window(len(channels)) if window == "auto" else _positive("window", window)
    if isinstance(holdout_rows, bool) or not isinstance(holdout_rows, int | np.integer) or holdout_rows < 0:
        raise ValueError(f"holdout_rows must be a non-negative integer, got {holdout_rows!r}.")
    sizes = (
        _windows_cap(max_windows, length, len(channels)),
        length * SEGMENT_WINDOWS if segment_length == "auto" else _positive("segment_length", segment_length),
        int(holdout_rows),
    )
    reader = _SegmentReader(
        opened.n_rows, length, channels, time_name, sizes, np.random.default_rng(random_state)
    )
    for batch, file in record_batches(opened, batch_rows, progress):
        reader.add(pa.Table.from_batches([batch]), file)
    return reader.result(as_index)


def _positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer or 'auto', got {value!r}.")
    return int(value)


def _windows_cap(max_windows: int | Literal["auto"], window: int, n_channels: int) -> int:
    """The training windows a sample holds at most: ``max_windows``, or the detector's training caps."""
    if max_windows != "auto":
        return _positive("max_windows", max_windows)
    return max_training_windows(window, n_channels)


def _series_input(
    source: str | os.PathLike[str],
    columns: Sequence[str] | None,
    drop_columns: Sequence[str],
    time_column: str | None,
) -> tuple[OpenedInput, str | None, bool]:
    """The input opened for its channels and timestamps: the timestamps' column (``time_column``, or a
    stored pandas DatetimeIndex) and whether it is the frame's index."""
    opened = open_input(source, columns, drop_columns)
    stored_index = None
    if time_column is None:
        schema = opened.dataset.schema
        stored = (schema.pandas_metadata or {}).get("index_columns", [])
        if (
            len(stored) == 1
            and isinstance(stored[0], str)
            and pa.types.is_timestamp(schema.field(stored[0]).type)
        ):
            stored_index = stored[0]
    time_name = time_column if time_column is not None else stored_index
    if time_name is None:
        return opened, None, False
    if time_name not in opened.dataset.schema.names:
        raise ValueError(
            f"time_column={time_name!r} is not a column of the input; its columns are "
            f"{opened.dataset.schema.names}."
        )
    kinds = {name: kind for name, kind in opened.kinds.items() if name != time_name}
    kinds[time_name] = "datetime"
    return opened._replace(kinds=kinds), time_name, time_name == stored_index


class _SegmentReader:
    """The streaming pass: checks each batch and its timestamps, adds the rows before the holdout to the
    statistics, and keeps the rows of the chosen segments and of the holdout."""

    def __init__(
        self,
        n_rows: int,
        window: int,
        channels: list[str],
        time_name: str | None,
        sizes: tuple[int, int, int],
        rng: np.random.Generator,
    ) -> None:
        max_windows, segment_length, holdout_rows = sizes
        self._training_rows = n_rows - holdout_rows
        if self._training_rows < window:
            raise ValueError(
                f"The series has {self._training_rows} timestamps to train on, but window={window} needs "
                f"at least {window}."
            )
        if segment_length < window:
            raise ValueError(f"segment_length={segment_length} is shorter than window={window}.")
        self._channels, self._time_name, self._window = channels, time_name, window
        self._statistics = CheckedStatistics(channels, allow_nulls=True)
        n_training = self._training_rows
        if n_training - window + 1 <= max_windows:  # the whole series
            self._n_segments, starts, lengths = 1, np.zeros(1, dtype=np.int64), np.asarray([n_training])
        else:
            per_segment = segment_length - window + 1
            self._n_segments = max(1, min(n_training // segment_length, max_windows // per_segment))
            blocks = rng.choice(n_training // segment_length, size=self._n_segments, replace=False)
            starts = np.sort(blocks) * segment_length
            lengths = np.full(self._n_segments, segment_length)
        # The kept ranges of rows, in order: the segments, then the holdout (if any).
        self._starts = np.append(starts, n_training) if holdout_rows else starts
        self._lengths = np.append(lengths, holdout_rows) if holdout_rows else lengths
        self._ends = self._starts + self._lengths
        self._offsets = np.cumsum([0, *self._lengths[:-1]])
        self._values = np.empty((int(self._lengths.sum()), len(channels)))
        self._times: np.ndarray | None = None
        self._spacing = _Spacing()
        self._rows = 0
        self._file, self._file_row, self._last_time = "", 0, None

    def add(self, table: pa.Table, file: str) -> None:
        first, last = self._rows, self._rows + table.num_rows
        training = min(table.num_rows, max(0, self._training_rows - first))
        columns = self._statistics.add(table.slice(0, training), file)
        if training < table.num_rows:  # holdout rows: read, not counted
            columns = [float_column(table, name) for name in self._channels]
        if file != self._file:
            self._previous_file, self._file, self._file_row = self._file, file, 0
        if self._time_name is not None:
            self._check_times(table.column(self._time_name))
        for k in range(
            int(np.searchsorted(self._ends, first, side="right")), int(np.searchsorted(self._starts, last))
        ):
            start, stop = max(first, self._starts[k]), min(last, self._ends[k])
            slot = slice(
                self._offsets[k] + start - self._starts[k], self._offsets[k] + stop - self._starts[k]
            )
            rows = slice(start - first, stop - first)
            self._values[slot] = np.column_stack([column[rows] for column in columns])
            if self._times is not None:
                self._times[slot] = self._batch_times[rows]
        self._rows = last
        self._file_row += table.num_rows

    def _check_times(self, column: pa.ChunkedArray) -> None:
        """Refuse missing, unsorted or repeated timestamps of this batch, and a batch that does not follow
        the last one; keep the batch's timestamps for the segments."""
        times = pd.DatetimeIndex(column.to_pandas())
        if self._times is None:
            self._times = np.empty(len(self._values), dtype=np.int64)
            self._time_zone, self._time_unit = times.tz, times.unit
        # With the previous batch's last timestamp first, so the step into this batch counts; a new
        # file's first step is checked below, with a message naming both files.
        with_previous = times if self._last_time is None else times.insert(0, self._last_time)
        follows = self._file_row > 0 and self._last_time is not None
        check_time_index(
            with_previous if follows else times,
            f"{self._file}: column {self._time_name!r}",
            first_row=self._file_row - follows,
        )
        self._spacing.add(with_previous)
        if self._file_row == 0 and self._last_time is not None and len(times) and times[0] <= self._last_time:
            raise ValueError(
                f"{self._file} starts at {times[0]}, not after {self._last_time}, the last timestamp of "
                f"{self._previous_file}: the files, in path order, must hold the series in time order."
            )
        if len(times):
            self._last_time = times[-1]
        self._batch_times = times.as_unit(self._time_unit).asi8

    def result(self, as_index: bool) -> SeriesSample:
        self._spacing.report()
        positions = np.concatenate(
            [
                np.arange(start, start + length)
                for start, length in zip(self._starts, self._lengths, strict=True)
            ]
        )
        frame = pd.DataFrame(self._values, columns=self._channels)
        if self._time_name is None:
            frame.index = pd.Index(positions, name="position")
        else:
            times = pd.DatetimeIndex(self._times.view(f"M8[{self._time_unit}]"), name=self._time_name)
            if self._time_zone is not None:
                times = times.tz_localize("UTC").tz_convert(self._time_zone)
            if as_index:
                frame.index = times
            else:
                frame[self._time_name] = times
        cut = int(self._offsets[self._n_segments]) if len(self._lengths) > self._n_segments else len(frame)
        return SeriesSample(
            frame.iloc[:cut],
            tuple(int(length) for length in self._lengths[: self._n_segments]),
            self._statistics.result(),
            self._rows,
            self._window,
            frame.iloc[cut:] if cut < len(frame) else None,
        )


class _Spacing:
    """The steps of a streamed series' timestamps against the first batch's median step: how many
    differ, and the largest, for one warning after the pass."""

    def __init__(self) -> None:
        self._step: int | None = None
        self._unit = "ns"
        self._steps = self._uneven = 0
        self._largest: tuple[int, pd.Timestamp | None] = (0, None)

    def add(self, times: pd.DatetimeIndex) -> None:
        """The timestamps of a batch, the one before it first (so the step into the batch counts)."""
        if len(times) < 2:
            return
        if self._step is None:
            self._unit = times.unit
        steps = np.diff(times.as_unit(self._unit).asi8)
        if self._step is None:
            self._step = int(np.median(steps))
        self._steps += len(steps)
        self._uneven += int((steps != self._step).sum())
        largest = int(np.argmax(steps))
        if steps[largest] > self._largest[0]:
            self._largest = (int(steps[largest]), times[largest])

    def report(self) -> None:
        """Warn if any step differed."""
        if self._uneven:
            gap, after = self._largest
            interval = pd.Timedelta(self._step, unit=self._unit)
            warn_uneven(
                "The series' timestamps",
                self._uneven,
                self._steps,
                interval,
                (pd.Timedelta(gap, unit=self._unit), after),
            )
