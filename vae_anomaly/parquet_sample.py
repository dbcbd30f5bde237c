"""What training needs of parquet data of any size, from one streaming pass: a sample and exact statistics.

``sample_parquet`` reads a parquet file, folder (hive-partitioned or not) or glob once, in record
batches, and returns a ``TrainingSample``: a seeded uniform sample of at most ``max_rows`` rows (at
positions drawn from the footers' row count before the pass, ``row_sample``), the exact statistics
of every numeric column over all rows (``column_statistics``), and every level of the other columns
(``parquet_training`` fits on it).
Columns, types and nulls are checked from the files' parquet metadata before any row is read, as the
scorer does (``parquet_pass``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vae_anomaly.batch.files import DEFAULT_BATCH_ROWS
from vae_anomaly.batch.schema import decimals_as_float
from vae_anomaly.parquet_pass import (
    NUMERIC_KINDS,
    CheckedStatistics,
    check_metadata,
    open_input,
    record_batches,
)
from vae_anomaly.row_sample import RowSample
from vae_anomaly.training_sample import MAX_LEVELS, TrainingSample, sample_size


def sample_parquet(
    source: str | os.PathLike[str],
    *,
    columns: Sequence[str] | None = None,
    drop_columns: Sequence[str] = (),
    max_rows: int | Literal["auto"] = "auto",
    numeric_only: bool = False,
    allow_nulls: bool = True,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    random_state: int | np.random.Generator | None = None,
    progress: bool | None = None,
) -> TrainingSample:
    """Read parquet data once, in bounded memory: a uniform sample of its rows and exact column statistics.

    Memory grows with ``max_rows`` and ``batch_rows``, not with the data. The sample depends on the
    rows, their order (files in path order) and ``random_state`` only, not on ``batch_rows``.

    Parameters
    ----------
    source : str or PathLike
        A parquet file, a folder (hive-partitioned or not; names starting with ``.`` or ``_`` are
        skipped) or a glob.
    columns : sequence of str or None, default=None
        The columns to read, in order; hive partition keys may be named. None reads every column of
        the files (not the partition keys) but ``drop_columns``.
    drop_columns : sequence of str, default=()
        Columns not to read, e.g. a label column.
    max_rows : int or "auto", default="auto"
        Rows sampled at most. "auto": 262,144, fewer for a table so wide that they would hold over
        256 MB of float64 values (at least 1,024).
    numeric_only : bool, default=False
        Refuse columns that are not numeric or boolean (a bare detector reads only numbers).
    allow_nulls : bool, default=True
        False refuses nulls and NaN, naming file, column and row (from the parquet statistics before
        reading where the files have them).
    batch_rows : int, default=65536
        Rows per record batch read.
    random_state : int, Generator or None, default=None
        Seeds the sample; None draws a fresh one.
    progress : bool or None, default=None
        Show a progress bar of rows read; None shows it on a terminal only.

    Returns
    -------
    TrainingSample

    Raises
    ------
    FileNotFoundError
        If ``source`` matches no file.
    SchemaError
        Listing every problem of every file found in the metadata: an unreadable file, a missing
        column, a column of the wrong kind, nulls where they are refused.
    ValueError
        If there are no rows; if a value is infinite, beyond float32's range, or NaN where nulls are
        refused (naming file, column and row); or if a non-numeric column has over 65,536 levels.
    """
    opened = open_input(source, columns, drop_columns)
    check_metadata(opened, numeric_only=numeric_only, allow_nulls=allow_nulls)
    names, kinds = list(opened.kinds), opened.kinds
    numeric = [name for name in names if kinds[name] in NUMERIC_KINDS]
    reader = _SampleReader(
        names,
        numeric,
        RowSample(opened.n_rows, sample_size(max_rows, len(names)), np.random.default_rng(random_state)),
        allow_nulls,
    )
    for batch, file in record_batches(opened, batch_rows, progress):
        reader.add(batch, file)
    return reader.result(source)


def column_kinds(
    source: str | os.PathLike[str], *, columns: Sequence[str] | None = None, drop_columns: Sequence[str] = ()
) -> dict[str, str]:
    """The columns ``sample_parquet`` would read and the kind of values each holds, from the metadata.

    Parameters
    ----------
    source, columns, drop_columns
        As ``sample_parquet`` takes them.

    Returns
    -------
    dict of str to str
        Each column, in order, and its kind: "numeric", "boolean", "string", "datetime" or the
        Arrow type's name.

    Raises
    ------
    FileNotFoundError, SchemaError, ValueError
        As ``sample_parquet`` raises them for what the metadata shows.
    """
    return open_input(source, columns, drop_columns).kinds


class _SampleReader:
    """The streaming pass: checks each batch, adds it to the statistics and offers it to the sample."""

    def __init__(self, names: list[str], numeric: list[str], sample: RowSample, allow_nulls: bool) -> None:
        self._names = names
        self._statistics = CheckedStatistics(numeric, allow_nulls)
        self._sample = sample
        self._levels: dict[str, dict[Any, int]] = {name: {} for name in names if name not in numeric}
        self._level_rows: list[tuple[np.ndarray, pa.Table]] = []  # stream positions, rows
        self._rows = 0
        self._file = ""

    def add(self, batch: pa.RecordBatch, file: str) -> None:
        table = pa.Table.from_batches([batch]).select(self._names)
        self._statistics.add(table, file)
        self._file = file
        self._add_levels(table)
        self._sample.add(table)
        self._rows += table.num_rows

    def _add_levels(self, table: pa.Table) -> None:
        """Record the batch's new levels of each non-numeric column and keep the first row of each."""
        first_rows = []
        for name, levels in self._levels.items():
            column = table.column(name)
            new = [value for value in pc.unique(column.drop_null()).to_pylist() if value not in levels]
            if len(levels) + len(new) > MAX_LEVELS:
                raise ValueError(
                    f"{self._file}: column {name!r} has over {MAX_LEVELS:,} distinct values; a column with "
                    "so many levels (an identifier?) is no feature to encode: drop it (drop_columns)."
                )
            for value in new:
                levels[value] = self._rows + (position := pc.index(column, value).as_py())
                first_rows.append(position)
        if first_rows:
            positions = np.unique(first_rows)
            self._level_rows.append((self._rows + positions, table.take(pa.array(positions))))

    def result(self, source: str | os.PathLike[str]) -> TrainingSample:
        sampled = self._sample.sample()
        if sampled is None:  # no row was added
            raise ValueError(f"{source} holds no rows to train on.")
        table = _with_level_rows(*sampled, self._levels, self._level_rows)
        return TrainingSample(
            frame=decimals_as_float(table).to_pandas(),
            statistics=self._statistics.result(),
            levels={name: list(levels) for name, levels in self._levels.items()},
            n_rows=self._rows,
        )


def _with_level_rows(
    table: pa.Table,
    positions: np.ndarray,
    levels: dict[str, dict[Any, int]],
    level_rows: list[tuple[np.ndarray, pa.Table]],
) -> pa.Table:
    """The sample with the first row of each level it lacks added, all in stream order."""
    wanted = set()
    for name, first in levels.items():
        sampled = set(pc.unique(table.column(name)).to_pylist())
        wanted |= {position for value, position in first.items() if value not in sampled}
    if not wanted:
        return table
    pieces, extra = [table], [positions]
    for stream_positions, rows in level_rows:
        keep = np.flatnonzero(np.isin(stream_positions, list(wanted)))
        if len(keep):
            pieces.append(rows.take(pa.array(keep)))
            extra.append(stream_positions[keep])
    table, positions = pa.concat_tables(pieces), np.concatenate(extra)
    return table.take(pa.array(np.argsort(positions, kind="stable"))).combine_chunks()
