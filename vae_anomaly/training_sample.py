"""What a fit on data larger than memory takes: a uniform sample of the rows with exact statistics of
all of them (``TrainingSample``), and how many rows the sample holds (``sample_size``).
``parquet_sample`` makes one from parquet files, ``spark_sample`` from a Spark DataFrame."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

from vae_anomaly.column_statistics import ColumnStatistics

#: Rows of the default sample ("auto"), fewer where that many rows would hold over DEFAULT_SAMPLE_BYTES
#: of float64 values: a default fit trains on a few hundred thousand rows (about 1,250 steps).
DEFAULT_SAMPLE_ROWS = 262_144
DEFAULT_SAMPLE_BYTES = 256 * 2**20
#: Distinct values a non-numeric column may have: their first rows are kept, so memory stays bounded.
MAX_LEVELS = 65_536


@dataclass(frozen=True)
class TrainingSample:
    """A uniform sample of a training set's rows, with what is known of all of them.

    Parameters
    ----------
    frame : DataFrame
        The sampled rows with a fresh RangeIndex: in the data's order from ``sample_parquet`` (hive
        partition keys named in ``columns`` are columns), in random order from ``sample_spark``.
        Beside the uniform sample it holds a row of each level of a non-numeric column that the
        sample lacks (from parquet the level's first row), so that an encoder fitted on it knows
        every level.
    statistics : ColumnStatistics
        Exact statistics of every row of the numeric and boolean columns.
    levels : dict of str to list
        Every distinct non-null value of each other column: in order of first appearance from
        parquet, sorted from Spark.
    n_rows : int
        Rows read.
    """

    frame: pd.DataFrame
    statistics: ColumnStatistics
    levels: dict[str, list[Any]]
    n_rows: int


def sample_size(max_rows: int | Literal["auto"], n_columns: int) -> int:
    """The rows a sample holds at most: ``max_rows``, or for "auto" 262,144, fewer for a table so wide
    that they would hold over 256 MB of float64 values (at least 1,024).

    Parameters
    ----------
    max_rows : int or "auto"
    n_columns : int

    Returns
    -------
    int

    Raises
    ------
    ValueError
        If ``max_rows`` is neither a positive integer nor "auto".
    """
    if max_rows == "auto":
        return max(1024, min(DEFAULT_SAMPLE_ROWS, DEFAULT_SAMPLE_BYTES // (8 * max(1, n_columns))))
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
        raise ValueError(f"max_rows must be a positive integer or 'auto', got {max_rows!r}.")
    return max_rows
